#!/usr/bin/env bash
# The live demo, on a machine that has only Rust: installs nats-server with
# apt if it is missing, starts it with JetStream in a temporary directory,
# builds kairos, runs `kairos run` with pipelines/retail.toml (demo
# thresholds: a cart is abandoned after 20 s instead of 30 min), sends it
# synthetic shoppers with `kairos demo`, and prints every decision live
# (time, channel, customer, trigger, rule or reason) until Ctrl-C; then
# stops everything it started and removes the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
nats_server=$(command -v nats-server || true)
if [ -z "$nats_server" ] && [ -x /usr/sbin/nats-server ]; then nats_server=/usr/sbin/nats-server; fi
if [ -z "$nats_server" ]; then
    echo "deploy/demo.sh: installing nats-server (apt)" >&2
    as_root apt-get update -qq
    as_root apt-get install -y -qq nats-server
    nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
fi

echo "deploy/demo.sh: building kairos (release)" >&2
cargo build --release --quiet -p kairos
bin="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/kairos-demo.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (bash's /dev/tcp: no other tool needed).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local port=$1; while listening "$port"; do port=$((port + 1)); done; echo "$port"; }
wait_for() { # what, test...
    local what=$1; shift
    for _ in $(seq 1 300); do "$@" && return 0; sleep 0.1; done
    echo "deploy/demo.sh: $what did not come up; logs in $work" >&2
    trap - EXIT
    exit 1
}
ready() { # GET /readyz on the admin port answers 200
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
        head -n 1 <&3 | grep -q ' 200 '
    ) 2>/dev/null
}

port=$(free_port 4333)
admin=$(free_port 9464)
"$nats_server" -js -a 127.0.0.1 -p "$port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_for "nats-server" listening "$port"

# The demo catalog (coffee, tea and retail items, the shoppers' products
# among them): recommending actions carry items from it.
"$bin"/kairos catalog load pipelines/catalog.jsonl --data-dir "$work/data" 2>>"$work/kairos.log"
"$bin"/kairos run --nats "nats://127.0.0.1:$port" --pipeline pipelines/retail.toml \
    --data-dir "$work/data" --admin "127.0.0.1:$admin" \
    --set abandoned_cart.after=20s \
    --set 'browse_abandonment.window={ session = "15s" }' \
    --set post_purchase_review.after=40s \
    --set 'complaint_sla.ladder[0].at=30s' \
    2>"$work/kairos.log" &
pids+=($!)
wait_for "kairos run" ready "$admin"

cat >&2 <<TEXT
kairos is running on nats://127.0.0.1:$port with pipelines/retail.toml (demo thresholds).
  metrics: http://127.0.0.1:$admin/metrics    log: $work/kairos.log
Synthetic shoppers follow; every decision is printed as it is published. Ctrl-C stops everything.
TEXT
# In the background, waited for: a signal sent to this script alone (a
# supervisor's SIGTERM, `timeout`) then stops everything too, where bash
# would hold it until a foreground command ended.
"$bin"/kairos demo --nats "nats://127.0.0.1:$port" &
pids+=($!)
wait "$!"
