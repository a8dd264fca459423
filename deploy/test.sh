#!/usr/bin/env bash
# The whole test suite, from a clean checkout on a machine that has only Rust.
# Installs what the tests need (nats-server; Python and Node for the
# tests through Segment's SDKs) when it is missing, then runs every test of
# the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages, as root or through sudo.
apt_install() {
    echo "deploy/test.sh: installing $* (apt)" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "$@"
}

# nats-server, for the runtime's integration tests.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    apt_install nats-server
fi
# Python with pip and Node with npm: the collector's tests install Segment's
# own SDKs from PyPI and npm and send through them.
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
fi
if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests; run them first so nextest's summary
    # is the closing line.
    cargo test --workspace --doc
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
