#!/usr/bin/env bash
# The backtest demo: builds kairos, generates half an hour of synthetic retail traffic
# (20 000 customers, 200 000 Segment events), replays it through the default
# pipeline with `kairos backtest`, and shows the summary and a few actions.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p kairos -p kairos-benches --bin kairos --bin gen-events
# Where cargo put them (a CARGO_TARGET_DIR set by the user moves them).
bin="${CARGO_TARGET_DIR:-target}/release"
work="${TMPDIR:-/tmp}/kairos-demo"
mkdir -p "$work"
"$bin"/gen-events --workload retail --customers 20000 --events 200000 > "$work/events.jsonl"
echo "== kairos validate pipelines/retail.toml"
"$bin"/kairos validate pipelines/retail.toml
echo "== kairos backtest (200 000 events)"
"$bin"/kairos backtest --pipeline pipelines/retail.toml --events "$work/events.jsonl" \
    --out "$work/actions.jsonl" --summary-json "$work/summary.json"
echo "== first 3 actions of $(wc -l < "$work/actions.jsonl") ($work/actions.jsonl)"
head -n 3 "$work/actions.jsonl"
