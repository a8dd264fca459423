#!/usr/bin/env bash
# Stops the nodes that start.sh DIR started (by the pid files in DIR) and
# waits for each to exit; SIGTERM lets JetStream flush and leave cleanly.
# Nodes already gone are skipped. Data in DIR stays; delete DIR to start
# over. Usage: deploy/nats/cluster/stop.sh DIR
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
status=0
for n in 1 2 3; do
    pidfile="$dir/node-$n.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$0: node $n (pid $pid) still runs after 30 s" >&2
            status=1
            continue
        fi
        echo "node $n (pid $pid) stopped"
    fi
    rm -f "$pidfile"
done
exit $status
