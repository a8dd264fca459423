#!/usr/bin/env bash
# Collector ingest, measured: a private nats-server with JetStream (file
# storage, in a temporary directory), the streams created by `kairos run`
# (which then stops, unless WITH_ENGINE=1 keeps it consuming), `kairos
# collect`, and kairos-loadtest sending batches through it at each rate
# given, one run per rate. Everything is built with --release and stopped
# at the end.
#
#   loadtest/ingest.sh [--duration S] [--batch N] RATE...
#   e.g. loadtest/ingest.sh --duration 30 25000 50000 60000
set -euo pipefail
cd "$(dirname "$0")/.."

duration=30 batch=100 rates=()
while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        *) rates+=("$1"); shift ;;
    esac
done
[ ${#rates[@]} -gt 0 ] || { echo "usage: loadtest/ingest.sh [--duration S] [--batch N] RATE..." >&2; exit 2; }

nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
cargo build --release --quiet -p kairos -p kairos-loadtest
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/kairos-ingest.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local port=$1; while listening "$port"; do port=$((port + 1)); done; echo "$port"; }
wait_for() { for _ in $(seq 1 300); do "$@" && return 0; sleep 0.1; done; echo "ingest.sh: $* failed; logs in $work" >&2; trap - EXIT; exit 1; }
ready() { ( exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    head -n 1 <&3 | grep -q ' 200 ' ) 2>/dev/null; }

port=$(free_port 14555)
"$nats_server" -js -a 127.0.0.1 -p "$port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_for listening "$port"
admin=$(free_port 19464)
"$bin"/kairos run --nats "nats://127.0.0.1:$port" --pipeline pipelines/retail.toml \
    --data-dir "$work/data" --admin "127.0.0.1:$admin" 2>"$work/kairos.log" &
engine=$!
pids+=("$engine")
wait_for ready "$admin"
if [ "${WITH_ENGINE:-0}" != 1 ]; then kill "$engine"; wait "$engine" || true; fi

printf '[[key]]\nwrite_key = "wk_load"\nsource = "load"\n' >"$work/keys.toml"
http=$(free_port 18080)
collect_admin=$(free_port 19465)
"$bin"/kairos collect --nats "nats://127.0.0.1:$port" --keys "$work/keys.toml" \
    --listen "127.0.0.1:$http" --admin "127.0.0.1:$collect_admin" 2>"$work/collect.log" &
pids+=($!)
wait_for listening "$http"

for rate in "${rates[@]}"; do
    echo "== $rate events/s for $duration s, batches of $batch"
    "$bin"/kairos-loadtest --via http --collector "http://127.0.0.1:$http" --write-key wk_load \
        --rate "$rate" --duration "$duration" --batch "$batch" --json "$work/ingest-$rate.json"
    cp "$work/ingest-$rate.json" "${TMPDIR:-/tmp}/kairos-ingest-$rate.json"
done
