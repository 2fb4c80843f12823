#!/usr/bin/env bash
# The benchmark: builds release binaries, starts the server on fresh temporary databases, creates tenants, users and
# conversations, runs W1 (rooms; the Node ws peer of bench/node-room-server.js runs the same steps), W5 (a workspace
# of 10,000 people online), W6 (a tenant of 20,000 people: directory, conversation and member listings, page sizes),
# durable sends, W3 (one big room), W4 (transports; history, poll and /health requests beside bare Hummingbird, SwiftNIO
# and Node servers) and W2 (capacity), stops everything, prints a table
# with each target beside its figure, and writes the figures to bench-results.json. The pg workloads (durable sends
# and W1 on PostgreSQL with one node and with two) run on a throwaway PostgreSQL that this script starts and stops.
# Extra arguments go to chat-bench (e.g. --workloads w1,w3 --step-seconds 5, or --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
swift build -c release --product chat-server
swift build -c release --product chat-bench
# Each side of the test holds thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pg_dir="$(mktemp -d /tmp/chat-bench-pg.XXXXXX)"
trap 'scripts/postgres.sh stop "$pg_dir/data" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
export CHAT_BENCH_POSTGRES_URL="$(scripts/postgres.sh start "$pg_dir/data" "${CHAT_BENCH_POSTGRES_PORT:-55438}")"
defaults=(--workloads w1,w5,w6,durable,commit,w3,w4,w2,pg)
case " $* " in *" --workloads "*|*" --workloads="*) defaults=() ;; esac
.build/release/chat-bench --server .build/release/chat-server --output bench-results.json "${defaults[@]}" "$@"
