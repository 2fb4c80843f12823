#!/usr/bin/env bash
# Several nodes on PostgreSQL, on one machine: a throwaway PostgreSQL, two chat-server nodes with demo data, and
# Debian's nginx in front of them (round-robin, no sticky sessions, WebSocket upgrades and unbuffered SSE passed
# through). Open http://127.0.0.1:8080 (or the port given). Ctrl-C stops everything.
# Usage: scripts/cluster.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:-8080}"
scripts/setup.sh
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || {
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null
}
swift build -c release --product chat-server

work="$(mktemp -d /tmp/chat-cluster.XXXXXX)"
pids=()
cleanup() {
    trap - INT TERM EXIT
    echo "cluster: stopping"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup INT TERM EXIT

url="$(scripts/postgres.sh start "$work/pg" 55433)"
database="${url%%\?*}"
database="${database%/*}/chat?sslmode=disable"
psql "$url" -qc "CREATE DATABASE chat"

for node in 1 2; do
    .build/release/chat-server serve --demo --host 127.0.0.1 --port $((9000 + node)) --database "$database" \
        --trusted-proxy 127.0.0.1 >"$work/node$node.log" 2>&1 &
    pids+=($!)
done
for node in 1 2; do
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$((9000 + node))/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
done

mkdir -p "$work/nginx"
sed -e "s|@PORT@|$port|; s|@UPSTREAMS@|server 127.0.0.1:9001; server 127.0.0.1:9002;|; s|@PREFIX@|$work/nginx|g" \
    deploy/nginx-cluster.conf >"$work/nginx/nginx.conf"
user=""; [ "$(id -u)" -eq 0 ] && user="user root;"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g "daemon off; $user" &
pids+=($!)

cat <<EOF
cluster: PostgreSQL $database
cluster: node 1 on 127.0.0.1:9001, node 2 on 127.0.0.1:9002 (logs in $work)
cluster: nginx on http://127.0.0.1:$port (round-robin)
cluster: sign in as acme / alice / demo-password; Ctrl-C stops everything
EOF
wait -n "${pids[@]}" || true
