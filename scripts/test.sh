#!/usr/bin/env bash
# Runs every test: the Swift unit and live-server tests, then the end-to-end scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
swift build --build-tests
swift test --skip-build
