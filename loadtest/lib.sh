# Shared by loadtest/*.sh: a private nats-server and kairos processes in a
# temporary directory, stopped and removed on exit. Source it after `cd`
# to the repository; it sets $bin, $work, $nats_url and defines:
#   start_nats; start_engine ADMIN_PORT [kairos run flags...]; wait_for CMD...
set -euo pipefail
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/kairos-loadtest.XXXXXX")
pids=()
keep_work=0
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "$keep_work" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local port=$1; while listening "$port"; do port=$((port + 1)); done; echo "$port"; }
wait_for() { for _ in $(seq 1 300); do "$@" && return 0; sleep 0.1; done; echo "loadtest: $* failed; logs in $work" >&2; keep_work=1; exit 1; }
ready() { ( exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    head -n 1 <&3 | grep -q ' 200 ' ) 2>/dev/null; }
start_nats() {
    local port
    port=$(free_port 14555)
    "$nats_server" -js -a 127.0.0.1 -p "$port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
    pids+=($!)
    wait_for listening "$port"
    nats_url="nats://127.0.0.1:$port"
}
# kairos run with pipelines/retail.toml; its pid in $engine. With
# KAIROS_CATALOG=FILE, the catalog is loaded into its data directory first
# (recommending actions then carry items from it).
start_engine() {
    local admin=$1; shift
    if [ -n "${KAIROS_CATALOG:-}" ]; then
        "$bin"/kairos catalog load "$KAIROS_CATALOG" --data-dir "$work/data" 2>>"$work/kairos.log"
    fi
    "$bin"/kairos run --nats "$nats_url" --pipeline pipelines/retail.toml \
        --data-dir "$work/data" --admin "127.0.0.1:$admin" "$@" 2>"$work/kairos.log" &
    engine=$!
    pids+=("$engine")
    wait_for ready "$admin"
}
