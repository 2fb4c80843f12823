#!/usr/bin/env bash
# Runs every test: the Swift unit and live-server tests, then the end-to-end scripts against the built server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
swift build --build-tests
swift test --skip-build

export CHAT_SERVER_BINARY="$PWD/.build/debug/chat-server"
status=0
for script in admin_test.py crash_test.py slow_consumer_test.py fuzz_test.py; do
    echo "== Tests/e2e/$script"
    (cd Tests/e2e && python3 "$script") || status=1
done
echo "== chat-bench --smoke (keeps the benchmark working; measures nothing)"
.build/debug/chat-bench --smoke --server .build/debug/chat-server --output "$(mktemp -d)/bench-smoke.json" || status=1
echo "== Tests/browser (Chromium + selenium)"
(cd Tests/browser && python3 -m pytest -q -p no:cacheprovider) || status=1
exit $status
