#!/usr/bin/env bash
# Instructions the engine executes for a workload, counted by valgrind's
# callgrind inside engine-loop's timed feed only (populating, event
# generation, parsing and the final drain are not counted; before
# 2026-11-26's second session it counted every Engine::handle_event call,
# which included `--populate`'s identify and page calls). Unlike wall-clock
# time on a shared VM, the count is the same from run to run, so two builds can be compared with
# one run each.
#
# usage: benches/scripts/instructions.sh ENGINE_LOOP_BINARY [engine-loop args...]
#   e.g. benches/scripts/instructions.sh target/release/engine-loop \
#          --workload cart --customers 20000 --events 200000 --pipeline benches/cart-only.toml
# Set KEEP=FILE to keep the callgrind profile (callgrind_annotate FILE), and
# COUNT_IN=FUNCTION to count inside another function, e.g.
# COUNT_IN='kairos_benches::parse' for parsing (it wraps Event::from_json,
# which fat LTO inlines, so that name no longer matches a symbol). Hash maps
# are seeded per process, so counts differ by a few hundredths of a percent.
# Set CACHE_SIM=1 to also simulate the caches (callgrind's model of this
# machine's L1 and last level, prefetch instructions ignored): the columns
# are then Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
set -euo pipefail
binary=$1
shift
profile=$(mktemp)
trap 'rm -f "$profile"' EXIT
valgrind --tool=callgrind --cache-sim="$([[ ${CACHE_SIM:-0} == 1 ]] && echo yes || echo no)" \
  --toggle-collect="${COUNT_IN:-engine_loop::feed}*" \
  --callgrind-out-file="$profile" "$binary" "$@" >/dev/null
if [[ -n "${KEEP:-}" ]]; then cp "$profile" "$KEEP"; fi
callgrind_annotate "$profile" | grep 'PROGRAM TOTALS' | head -1
