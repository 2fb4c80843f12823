#!/usr/bin/env bash
# Runs every test: the Swift unit and live-server tests (the store suite against SQLite and a throwaway PostgreSQL
# this script starts and stops), then the end-to-end scripts against the built server, then the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
swift build --build-tests

# A throwaway PostgreSQL on a loopback port for the PostgreSQL half of the tests; stopped however this script ends.
pg_dir="$(mktemp -d /tmp/chat-test-pg.XXXXXX)"
# Below Linux's ephemeral range (32768-60999): a port there can be held by any client socket, such as a benchmark's.
pg_port="${CHAT_TEST_POSTGRES_PORT:-25439}"
trap 'scripts/postgres.sh stop "$pg_dir/data" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
# Assigned apart from `export`, so that a PostgreSQL that does not start stops the run here (set -e).
CHAT_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$pg_dir/data" "$pg_port")"
export CHAT_TEST_POSTGRES_URL
# The cluster test stops and restarts this server to check that nodes ride out a database outage.
export CHAT_TEST_POSTGRES_DIR="$pg_dir/data" CHAT_TEST_POSTGRES_PORT="$pg_port"
echo "== PostgreSQL for the tests: $CHAT_TEST_POSTGRES_URL"

swift test --skip-build

export CHAT_SERVER_BINARY="$PWD/.build/debug/chat-server"
status=0
for script in admin_test.py crash_test.py slow_consumer_test.py cluster_test.py migrate_test.py backup_test.py drain_test.py tls_test.py logs_test.py metrics_test.py deploy_test.py fuzz_test.py; do
    echo "== Tests/e2e/$script"
    (cd Tests/e2e && python3 "$script") || status=1
done
echo "== chat-bench --smoke (keeps the benchmark working; measures nothing)"
timeout 600 .build/debug/chat-bench --smoke --workloads w1,w5,w6,durable,commit,w3,w4,w2,pg --postgres "$CHAT_TEST_POSTGRES_URL" \
    --server .build/debug/chat-server --output "$(mktemp -d)/bench-smoke.json" || status=1
echo "== Tests/browser (Chromium + selenium)"
(cd Tests/browser && python3 -m pytest -q -p no:cacheprovider) || status=1
exit $status
