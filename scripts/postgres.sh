#!/usr/bin/env bash
# A throwaway PostgreSQL from Debian's packages, for the tests and scripts/cluster.sh.
#   scripts/postgres.sh start DIR [PORT]   initdb into DIR (as the postgres user when run as root), start it on
#                                          127.0.0.1:PORT (default 55432), print its postgres:// URL on stdout
#   scripts/postgres.sh stop DIR           stop it (the folder stays; remove it yourself)
# Installs the `postgresql` package when it is missing.
set -euo pipefail
command="${1:-}"
dir="${2:-}"
port="${3:-55432}"
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 64; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres.sh: installing postgresql" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

# PostgreSQL refuses to run as root: run its commands as the postgres user then.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
        # The postgres user must be able to reach the folder (mktemp makes parents private to root).
        chmod o+x "$(dirname "$dir")"
    fi
    chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
            || as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >"$dir.initdb.log" 2>&1
    fi
    # TLS offered with a self-signed certificate (clients choose with sslmode=disable/prefer/require).
    if [ ! -f "$dir/server.crt" ] && command -v openssl >/dev/null 2>&1; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
            -keyout "$dir/server.key" -out "$dir/server.crt" >/dev/null 2>&1
        chmod 600 "$dir/server.key"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/server.key" "$dir/server.crt"
    fi
    ssl=""
    [ -f "$dir/server.crt" ] && ssl="-c ssl=on"
    # Durable like production (fsync on), small, loopback only; the socket lives in the folder.
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=128MB $ssl" start >&2
    echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    ;;
stop)
    [ -f "$dir/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >&2 || true
    ;;
*)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 64
    ;;
esac
