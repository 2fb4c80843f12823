#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine that has only the Swift toolchain.
# Safe to run again: it installs only what is missing. Usage: scripts/setup.sh [--test | --bench]
# --bench also installs the benchmark's peers and tools: Node with `ws` (the Node room server) and wrk.
# --test installs those too (the test command runs the bench's smoke run), the browser and proxy the browser tests
# drive, and the Python tools the end-to-end tests use (Tests/requirements.txt).
set -euo pipefail

need=()
packages=(libsqlite3-dev zlib1g-dev libssl-dev)
# The browser tests drive Debian's Chromium through chromedriver, also through a real nginx in front of the server.
[ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ] && packages+=(node-ws wrk)
[ "${1:-}" = "--test" ] && packages+=(chromium chromium-driver nginx-light openssl systemd)
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# node-ws needs a node: Debian's nodejs unless one is already installed (as from NodeSource).
case " ${need[*]:-} " in *" node-ws "*) command -v node >/dev/null 2>&1 || need+=(nodejs) ;; esac
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
    command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || {
        $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip >/dev/null; }
    requirements="$(dirname "$0")/../Tests/requirements.txt"
    # A Debian system Python refuses pip installs (PEP 668) unless told; a pyenv or venv Python does not need it.
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r "$requirements" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r "$requirements"
fi
