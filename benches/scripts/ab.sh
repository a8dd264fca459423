#!/usr/bin/env bash
# Two engine-loop binaries timed side by side: each round runs A and B at the
# same time, pinned to different cores (swapped every round), and prints both
# rates. On a shared VM whose speed drifts by tens of percent from minute to
# minute, runs made at the same moment are comparable where runs made one
# after the other are not. Both compete for the shared L3 and memory, so the
# absolute rates are lower than a lone run's; compare A with B, round by round.
#
# usage: benches/scripts/ab.sh ROUNDS A_BINARY B_BINARY -- [engine-loop args...]
#   e.g. benches/scripts/ab.sh 4 /tmp/base-target/release/engine-loop \
#          target/release/engine-loop -- --workload cart --customers 200000 \
#          --events 2000000 --pipeline benches/cart-only.toml --no-drain
set -euo pipefail
if [[ $# -lt 4 || $4 != -- ]]; then
  sed -n 's/^# \{0,1\}//p' "$0" | sed -n '/^usage/,$p' >&2
  exit 2
fi
rounds=$1 a=$2 b=$3
shift 4
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rate() { grep '^engine:' "$1" | sed 's/.*: \([0-9]*\) events\/s.*/\1/'; }
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then core_a=0 core_b=1; else core_a=1 core_b=0; fi
  taskset -c "$core_a" "$a" "$@" >"$out/a" 2>/dev/null &
  taskset -c "$core_b" "$b" "$@" >"$out/b" 2>/dev/null &
  wait
  echo "round $round: A $(rate "$out/a") events/s, B $(rate "$out/b") events/s"
done
