#!/usr/bin/env bash
# The whole test suite, from a clean checkout on a machine that has only Rust.
# Installs what the tests need (nats-server, for the runtime's integration
# tests) when it is missing, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    echo "deploy/test.sh: installing nats-server (apt)" >&2
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    sudo_if_needed apt-get install -y -qq nats-server
fi

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests; run them first so nextest's summary
    # is the closing line.
    cargo test --workspace --doc
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
