#!/usr/bin/env bash
# kairos run's memory per customer: a private nats-server, `kairos run` on
# pipelines/retail.toml, and kairos-loadtest --populate sending one
# identify and one page view for each of N customers; once every event is
# applied, the engine's resident memory (VmRSS) against the customers it
# holds.
#
#   loadtest/memory.sh [CUSTOMERS] [RATE]      (default 1000000 at 50000 events/s)
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-1000000}
rate=${2:-50000}
cargo build --release --quiet -p kairos -p kairos-loadtest
. loadtest/lib.sh
start_nats
admin=$(free_port 19464)
start_engine "$admin"
metric() { # NAME: its value on /metrics
    ( exec 3<>"/dev/tcp/127.0.0.1/$admin"
      printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
      cat <&3 ) | awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $2 } END { printf "%.0f\n", sum }'
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$engine/status"; }
before=$(rss_kib)
"$bin"/kairos-loadtest --nats "$nats_url" --populate --customers "$customers" --rate "$rate" --linger 0 | tail -4
events=$((2 * customers))
for _ in $(seq 1 600); do
    [ "$(metric kairos_events_total)" -ge "$events" ] && break
    sleep 1
done
sleep 2
after=$(rss_kib)
held=$(metric kairos_customers)
echo "customers held: $held; events applied: $(metric kairos_events_total)"
echo "kairos run VmRSS: $((before / 1024)) MiB at start, $((after / 1024)) MiB with $held customers"
[ "${held:-0}" -gt 0 ] || { echo "memory.sh: kairos run holds no customers; its log: $work/kairos.log" >&2; keep_work=1; exit 1; }
awk -v b="$before" -v a="$after" -v c="$held" 'BEGIN { printf "per customer: %.0f bytes (RSS growth / customers), %.0f bytes (RSS / customers)\n", (a - b) * 1024 / c, a * 1024 / c }'
