#!/usr/bin/env bash
# Two engine-loop binaries timed side by side: each round runs A and B at the
# same time, pinned to different cores (swapped every round), and prints both
# rates. On a shared VM whose speed drifts by tens of percent from minute to
# minute, runs made at the same moment are comparable where runs made one
# after the other are not. Both compete for the shared L3 and memory, so the
# absolute rates are lower than a lone run's; compare A with B, round by round.
# Both binaries must accept the arguments given (`--no-drain` is newer than
# 2026-11-26's `17fec0d`).
#
# usage: benches/scripts/ab.sh ROUNDS A_BINARY B_BINARY -- [engine-loop args...]
#   e.g. benches/scripts/ab.sh 4 /tmp/base-target/release/engine-loop \
#          target/release/engine-loop -- --workload cart --customers 200000 \
#          --events 2000000 --pipeline benches/cart-only.toml --no-drain
set -euo pipefail
usage() {
  sed -n 's/^# \{0,1\}//p' "$0" | sed -n '/^usage/,$p' >&2
  exit 2
}
[[ $# -ge 4 && $4 == -- && $1 =~ ^[1-9][0-9]*$ ]] || usage
rounds=$1 a=$2 b=$3
shift 4
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
rate() {
  local rate
  rate=$(sed -n 's/^engine: .*: \([0-9]*\) events\/s.*/\1/p' "$1")
  if [[ -z $rate ]]; then
    echo "no rate from $2; its output:" >&2
    cat "$1" "$1.err" >&2
    exit 1
  fi
  echo "$rate"
}
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then core_a=0 core_b=1; else core_a=1 core_b=0; fi
  taskset -c "$core_a" "$a" "$@" >"$out/a" 2>"$out/a.err" &
  pids=($!)
  taskset -c "$core_b" "$b" "$@" >"$out/b" 2>"$out/b.err" &
  pids+=($!)
  status=0
  wait "${pids[0]}" || status=$?
  wait "${pids[1]}" || status=$?
  pids=()
  rate_a=$(rate "$out/a" "$a")
  rate_b=$(rate "$out/b" "$b")
  echo "round $round: A $rate_a events/s, B $rate_b events/s"
  (( status == 0 )) || { echo "a run exited with status $status" >&2; exit 1; }
done
