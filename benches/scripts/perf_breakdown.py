#!/usr/bin/env python3
"""Summarise `perf script` output (recorded with --call-graph dwarf) for kairos.

    perf record -F 249 --call-graph dwarf,16384 -o perf.data target/release/engine-loop ...
    perf script -i perf.data [--time START,END] [--comm kairos] > perf.txt
    python3 benches/scripts/perf_breakdown.py perf.txt

Prints, as shares of all samples in the file:
  1. a coarse split by engine phase (first matching rule wins, checked from
     the top of the list, against the whole stack);
  2. samples attributed to the innermost kairos frame (inlined frames count),
     with how much of each sits in the allocator, memcmp or memmove;
  3. how much of the time is spent inside the allocator itself.
"""

import collections
import re
import sys

PHASES = [
    ("timers: fire (ladder step, build_candidate, policy, deliver)",
     r"Engine::fire|on_ladder_timer|on_window_close|build_candidate|Engine::deliver"),
    ("output: Decision::to_action + JSON written to --out",
     r"to_action|backtest::drain|Action::new"),
    ("event apply: identity lookup (ids map)", r"resolve_identity|customer_slot"),
    ("event apply: de-dup (SeenMessages)", r"first_sighting"),
    ("event apply: carts (update_carts)", r"update_carts|cart_mut"),
    ("event apply: profile (update_profile)", r"update_profile"),
    ("event apply: patterns::on_event", r"patterns::on_event"),
    ("event apply: other", r"Engine::apply"),
    ("drop of the applied Event", r"drop_in_place<kairos_model::event::Event>"),
    ("reorder buffer / pump / handle_event", r"Engine::pump|Engine::handle_event"),
    ("parse (Event::from_json)", r"from_json|from_segment|serde_json::de"),
]
ALLOCATOR = re.compile(r"^(_?mi_|malloc|_int_malloc|_int_free|cfree|free|realloc|_int_realloc|"
                       r"unlink_chunk|malloc_consolidate|__libc_calloc)")
KAIROS = re.compile(r"kairos_engine|kairos_model")


def samples(path):
    stack = []
    with open(path, errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if not line.strip():
                if stack:
                    yield stack
                stack = []
            elif line.startswith(("\t", " ")):
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    frame = re.sub(r"\+0x[0-9a-f]+ \(.*\)$", "", parts[1])
                    stack.append(re.sub(r" \(.*\)$", "", frame))
            elif stack:
                yield stack
                stack = []
    if stack:
        yield stack


def main():
    phases = collections.Counter()
    owners = collections.Counter()
    owner_leaf = collections.Counter()
    in_allocator = 0
    total = 0
    for stack in samples(sys.argv[1]):
        total += 1
        joined = "\n".join(stack)
        phases[next((name for name, rule in PHASES if re.search(rule, joined)), "other")] += 1
        owner = next((frame for frame in stack if KAIROS.search(frame)), stack[0])
        owners[owner] += 1
        leaf = stack[0]
        kind = ("allocator" if ALLOCATOR.match(leaf) else
                "memcmp" if "memcmp" in leaf else
                "memmove" if "memmove" in leaf or "memcpy" in leaf else "")
        if kind:
            owner_leaf[(owner, kind)] += 1
        in_allocator += kind == "allocator"
    if not total:
        sys.exit("no samples")
    print(f"{total} samples\n\n== by phase ==")
    for name, count in phases.most_common():
        print(f"{100 * count / total:5.1f}%  {name}")
    print("\n== by innermost kairos frame ==")
    for owner, count in owners.most_common(35):
        kinds = ", ".join(f"{kind} {100 * owner_leaf[(owner, kind)] / count:.0f}%"
                          for kind in ("allocator", "memcmp", "memmove") if owner_leaf[(owner, kind)])
        print(f"{100 * count / total:5.1f}%  {owner[:100]}" + (f"   [{kinds}]" if kinds else ""))
    print(f"\nself time inside the allocator: {100 * in_allocator / total:.1f}%")


if __name__ == "__main__":
    main()
