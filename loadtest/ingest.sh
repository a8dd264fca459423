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

cargo build --release --quiet -p kairos -p kairos-loadtest
. loadtest/lib.sh
start_nats
admin=$(free_port 19464)
start_engine "$admin"
if [ "${WITH_ENGINE:-0}" != 1 ]; then kill "$engine"; wait "$engine" || true; fi

printf '[[key]]\nwrite_key = "wk_load"\nsource = "load"\n' >"$work/keys.toml"
http=$(free_port 18080)
collect_admin=$(free_port 19465)
"$bin"/kairos collect --nats "$nats_url" --keys "$work/keys.toml" \
    --listen "127.0.0.1:$http" --admin "127.0.0.1:$collect_admin" 2>"$work/collect.log" &
pids+=($!)
wait_for listening "$http"

for rate in "${rates[@]}"; do
    echo "== $rate events/s for $duration s, batches of $batch"
    "$bin"/kairos-loadtest --via http --collector "http://127.0.0.1:$http" --write-key wk_load \
        --rate "$rate" --duration "$duration" --batch "$batch" --json "$work/ingest-$rate.json"
    cp "$work/ingest-$rate.json" "${TMPDIR:-/tmp}/kairos-ingest-$rate.json"
done
