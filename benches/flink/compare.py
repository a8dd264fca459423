#!/usr/bin/env python3
"""Compares kairos' decisions with the Flink peer's, as sets of
(user_id, cart_id, fired_at).

    benches/flink/compare.py KAIROS_ACTIONS.jsonl FLINK_DECISIONS.jsonl

KAIROS_ACTIONS is `kairos backtest --out` (CloudEvents; the fields used are
data.user_id, data.payload.cart_id, data.fired_at; only abandoned_cart step 1
actions count, and a suppressed one is an error since cart-only.toml has an
open policy). FLINK_DECISIONS is AbandonedCart.java's output
({"user_id", "cart_id", "fired_at"} per line). Prints counts, the size of the
symmetric difference and up to 10 examples of each side's extras. Exit 0 iff
the two sets are identical (and neither side has duplicates); 1 otherwise;
2 on bad input.
"""
import collections
import json
import sys


def fail(message):
    print(f"compare.py: {message}", file=sys.stderr)
    sys.exit(2)


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as error:
                        fail(f"{path}:{number}: not JSON: {error}")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")


def kairos_decisions(path):
    decisions, skipped = [], collections.Counter()
    for number, action in read_lines(path):
        data = action.get("data") or {}
        if data.get("trigger") != "abandoned_cart" or data.get("step") != 1:
            skipped[f"trigger {data.get('trigger')!r} step {data.get('step')!r}"] += 1
            continue
        if data.get("suppressed") is not None:
            skipped[f"suppressed {data['suppressed']!r}"] += 1
            continue
        try:
            decisions.append((data["user_id"], data["payload"]["cart_id"], data["fired_at"]))
        except (KeyError, TypeError):
            fail(f"{path}:{number}: no data.user_id / data.payload.cart_id / data.fired_at")
    return decisions, skipped


def flink_decisions(path):
    decisions = []
    for number, decision in read_lines(path):
        try:
            decisions.append((decision["user_id"], decision["cart_id"], decision["fired_at"]))
        except (KeyError, TypeError):
            fail(f"{path}:{number}: no user_id / cart_id / fired_at")
    return decisions


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    kairos_path, flink_path = sys.argv[1:]
    kairos, skipped = kairos_decisions(kairos_path)
    flink = flink_decisions(flink_path)
    kairos_set, flink_set = set(kairos), set(flink)
    identical = True

    print(f"kairos: {len(kairos)} decisions ({len(kairos_set)} distinct) in {kairos_path}")
    for reason, count in sorted(skipped.items()):
        print(f"  not compared: {count} actions with {reason}")
        identical = False  # cart-only.toml should make nothing else
    print(f"flink:  {len(flink)} decisions ({len(flink_set)} distinct) in {flink_path}")
    for name, items, distinct in (("kairos", kairos, kairos_set), ("flink", flink, flink_set)):
        if len(items) != len(distinct):
            identical = False
            repeated = [d for d, n in collections.Counter(items).items() if n > 1][:10]
            print(f"  {name} repeats {len(items) - len(distinct)} decisions, e.g. {repeated}")

    only_kairos = sorted(kairos_set - flink_set, key=lambda d: (d[2], d[0], d[1]))
    only_flink = sorted(flink_set - kairos_set, key=lambda d: (d[2], d[0], d[1]))
    print(f"in both: {len(kairos_set & flink_set)}")
    print(f"symmetric difference: {len(only_kairos) + len(only_flink)} "
          f"(only kairos {len(only_kairos)}, only flink {len(only_flink)})")
    for name, extras in (("only kairos", only_kairos), ("only flink", only_flink)):
        for user_id, cart_id, fired_at in extras[:10]:
            print(f"  {name}: user_id={user_id} cart_id={cart_id} fired_at={fired_at}")
    identical = identical and not only_kairos and not only_flink
    print("IDENTICAL" if identical else "DIFFERENT")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
