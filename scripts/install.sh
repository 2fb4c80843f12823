#!/usr/bin/env bash
# Installs chat-server into PREFIX (default /usr/local): the release binary as PREFIX/bin/chat-server, templates and
# static files as PREFIX/share/chat-server/, the docs as PREFIX/share/doc/chat-server/. The binary finds its
# resources there by itself. Usage: scripts/install.sh [PREFIX] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-/usr/local}"
binary="${2:-}"
if [ -z "$binary" ]; then
    scripts/setup.sh
    swift build -c release --product chat-server
    binary=.build/release/chat-server
fi
install -d "$prefix/bin" "$prefix/share/chat-server" "$prefix/share/doc/chat-server"
install -m 0755 "$binary" "$prefix/bin/chat-server"
rm -rf "$prefix/share/chat-server/templates" "$prefix/share/chat-server/Public"
cp -R templates Public "$prefix/share/chat-server/"
install -m 0644 docs/DEPLOY.md docs/API.md deploy/nginx.conf deploy/chat-server.service deploy/chat-server.env "$prefix/share/doc/chat-server/"
echo "installed chat-server into $prefix"
