#!/usr/bin/env bash
# Starts the local 3-node kairos NATS cluster (node-1..3.conf) in the
# background, with its data, logs and pid files under DIR:
#   DIR/node-N/jetstream   JetStream storage of node N
#   DIR/node-N.log         its log
#   DIR/node-N.pid         its process id (stop.sh reads it)
# and waits until every node answers /healthz (JetStream meta leader
# elected). Usage: deploy/nats/cluster/start.sh DIR ; stop with stop.sh DIR.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
server=$(command -v nats-server || echo /usr/sbin/nats-server)
mkdir -p "$1"
dir=$(cd "$1" && pwd)

for n in 1 2 3; do
    pidfile="$dir/node-$n.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "$0: node $n already runs (pid $(cat "$pidfile")); stop.sh $1 first" >&2
        exit 1
    fi
done

for n in 1 2 3; do
    mkdir -p "$dir/node-$n"
    # Run from DIR: store_dir "./node-N" in the config is relative to it.
    (cd "$dir" && exec "$server" -c "$here/node-$n.conf" \
        -P "$dir/node-$n.pid" -l "$dir/node-$n.log" </dev/null >/dev/null 2>&1 &)
done

# /healthz answers 200 once the node serves clients and JetStream is ready.
for n in 1 2 3; do
    port=823$n
    for _ in $(seq 1 60); do
        if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
            continue 2
        fi
        sleep 0.5
    done
    echo "$0: node $n not healthy after 30 s; see $dir/node-$n.log" >&2
    exit 1
done
echo "kairos NATS cluster up: nats://127.0.0.1:4231,nats://127.0.0.1:4232,nats://127.0.0.1:4233 (data in $dir)"
