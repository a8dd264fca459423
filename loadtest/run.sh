#!/usr/bin/env bash
# The load test on a private nats-server (JetStream, file storage, in a
# temporary directory), with `kairos run` on pipelines/retail.toml and short
# timers (a cart is abandoned after 5 s, a browsing session closes after
# 15 s), everything built with --release and stopped at the end. The
# arguments go to kairos-loadtest, which gets --nats and --metrics here.
# With --raw, kairos is not started: the broker is measured alone.
# KAIROS_RUN_FLAGS adds flags to kairos run (e.g. "--snapshot-every 10m");
# KAIROS_CATALOG=FILE loads a catalog first (e.g. pipelines/catalog.jsonl).
#
#   loadtest/run.sh --rate 20000 --duration 60 --report load.html --json load.json
#   loadtest/run.sh --ramp --rate 10000 --ramp-step 5000 --duration 20 --json ramp.json
#   loadtest/run.sh --raw --ramp --rate 20000 --ramp-step 20000 --duration 20 --json raw.json
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p kairos -p kairos-loadtest
. loadtest/lib.sh
start_nats
admin=$(free_port 19464)
raw=0
for arg in "$@"; do [ "$arg" = --raw ] && raw=1; done
if [ "$raw" = 0 ]; then
    start_engine "$admin" \
        --set abandoned_cart.after=5s \
        --set 'browse_abandonment.window={ session = "15s" }' \
        --set post_purchase_review.after=20s ${KAIROS_RUN_FLAGS:-}
fi
"$bin"/kairos-loadtest --nats "$nats_url" --metrics "http://127.0.0.1:$admin/metrics" "$@"
