#!/usr/bin/env bash
# Builds and runs the server on the embedded SQLite database with demo data.
# Extra arguments go to `chat-server serve` (e.g. --port 9000 --database /tmp/chat.sqlite).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product chat-server
exec .build/release/chat-server serve --demo "$@"
