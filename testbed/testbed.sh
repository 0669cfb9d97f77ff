#!/usr/bin/env bash
# testbed.sh — the whole local testbed for lb-dfaas end-to-end tests, one
# instance per ID (1..200), several able to run side by side:
#
#   k6 host        sshd + real k6 in netns lbd-k6-<ID> at 10.211.<ID>.2:2222 (k6host.sh)
#   gateway        dfaas-test-gateway on 10.211.<ID>.1:<base+2> (reachable from the netns)
#   node-exporter  prometheus-node-exporter on 127.0.0.1:<base+1>
#   Prometheus     2.42, scrape_interval 1s, on 127.0.0.1:<base+0>, own config + tsdb
#
#   base = ${TESTBED_PORT_BASE:-19000} + 10 * ID
#
# Usage: testbed.sh up|down|env|status ID
#
# Environment read by `up`:
#   TESTBED_DIR          state root (default /tmp/lbd-testbed); instance state in <root>/<ID>/
#   TESTBED_PORT_BASE    port base (default 19000)
#   TESTBED_FUNCTIONS    gateway functions, name=work_ms[:workers[:queue[:wait]]],...
#                        (default figlet=20,env=5,nodeinfo=40)
#   TESTBED_GATEWAY_ARGS extra gateway flags, split on spaces (e.g. "--queue-capacity 8")
#   TESTBED_BASIC_AUTH   user:password for the gateway's /system/* (passed via env, not argv)
#   GATEWAY_BIN          gateway binary to use instead of building one
#   TESTBED_WAIT_S       bound on the readiness wait (default 90)
#
# `up` is idempotent (a healthy instance is kept, a broken one rebuilt) and
# installs what is missing. `down` stops every process by its recorded pid,
# removes the namespace and veth, and deletes the state; it is idempotent.
set -euo pipefail

TB_NAME=testbed
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() { die "usage: $0 up|down|env|status ID   (ID an integer 1..200)"; }
[[ $# -eq 2 ]] || usage
CMD=$1
ID=$(tb_parse_id "$2")

BASE_DIR=${TESTBED_DIR:-/tmp/lbd-testbed}
STATE=$BASE_DIR/$ID
SVC=$STATE/services
LOCK=$BASE_DIR/$ID.testbed.lock
PORT_BASE=${TESTBED_PORT_BASE:-19000}
[[ $PORT_BASE =~ ^[0-9]+$ ]] || die "TESTBED_PORT_BASE must be an integer, got '$PORT_BASE'"
PROM_PORT=$((PORT_BASE + 10 * ID))
NODE_PORT=$((PORT_BASE + 10 * ID + 1))
GATEWAY_PORT=$((PORT_BASE + 10 * ID + 2))
(( GATEWAY_PORT < 65536 )) || die "ports for ID $ID exceed 65535 with base $PORT_BASE"
HOST_ADDR=10.211.$ID.1
PROM_URL=http://127.0.0.1:$PROM_PORT
NODE_URL=http://127.0.0.1:$NODE_PORT
GATEWAY_URL=http://$HOST_ADDR:$GATEWAY_PORT
WAIT_S=${TESTBED_WAIT_S:-90}
[[ $WAIT_S =~ ^[0-9]+$ ]] || die "TESTBED_WAIT_S must be an integer, got '$WAIT_S'"

# Markers: paths unique to this instance that appear in each process's argv,
# so a recorded pid is only ever signalled while it is still our process.
PROM_MARK=$SVC/prometheus.yml
NODE_MARK=$SVC/textfile
GATEWAY_MARK=$SVC/gateway-truth.json

emit_env() {
    "$HERE/k6host.sh" env "$ID"
    printf 'TESTBED_ID=%q\n' "$ID"
    printf 'TESTBED_STATE_DIR=%q\n' "$STATE"
    printf 'GATEWAY_URL=%q\n' "$GATEWAY_URL"
    printf 'GATEWAY_ADMIN_URL=%q\n' "$GATEWAY_URL"
    printf 'GATEWAY_PORT=%q\n' "$GATEWAY_PORT"
    printf 'GATEWAY_LOG=%q\n' "$SVC/gateway.log"
    printf 'GATEWAY_TRUTH_FILE=%q\n' "$GATEWAY_MARK"
    printf 'PROMETHEUS_URL=%q\n' "$PROM_URL"
    printf 'PROMETHEUS_PORT=%q\n' "$PROM_PORT"
    printf 'PROMETHEUS_LOG=%q\n' "$SVC/prometheus.log"
    printf 'NODE_EXPORTER_URL=%q\n' "$NODE_URL"
    printf 'NODE_EXPORTER_PORT=%q\n' "$NODE_PORT"
}

# --- dependencies -----------------------------------------------------------

ensure_packages() {
    local missing=()
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
    command -v curl >/dev/null || missing+=(curl)
    command -v ss >/dev/null || missing+=(iproute2)
    (( ${#missing[@]} == 0 )) || tb_apt_install "${missing[@]}"
}

# Prints the gateway binary, building it when missing or older than its sources.
gateway_binary() {
    if [[ -n ${GATEWAY_BIN:-} ]]; then
        [[ -x $GATEWAY_BIN ]] || die "GATEWAY_BIN=$GATEWAY_BIN is not an executable"
        echo "$GATEWAY_BIN"
        return
    fi
    local src=$REPO/testbed/gateway
    local fresh=() candidate
    # A binary from the workspace's own build is used when it is up to date.
    for candidate in "${CARGO_TARGET_DIR:-$REPO/target}/debug/dfaas-test-gateway" \
                     "${CARGO_TARGET_DIR:-$REPO/target}/release/dfaas-test-gateway"; do
        if [[ -x $candidate ]] && [[ -z $(find "$src" "$REPO/Cargo.lock" -newer "$candidate" -type f -print -quit) ]]; then
            fresh+=("$candidate")
        fi
    done
    if (( ${#fresh[@]} > 0 )); then echo "${fresh[0]}"; return; fi
    # Otherwise build into a target dir of its own: a `cargo test` that runs
    # this script may hold the lock on the workspace's target dir.
    local target=${TESTBED_CARGO_TARGET_DIR:-$REPO/target/testbed}
    local bin=$target/debug/dfaas-test-gateway
    if [[ ! -x $bin ]] || [[ -n $(find "$src" "$REPO/Cargo.lock" -newer "$bin" -type f -print -quit) ]]; then
        local cargo=${CARGO:-cargo}
        command -v "$cargo" >/dev/null || die "cargo not found; cannot build the gateway (or set GATEWAY_BIN)"
        log "building dfaas-test-gateway into $target"
        "$cargo" build --quiet --manifest-path "$REPO/Cargo.toml" -p dfaas-test-gateway --target-dir "$target" >&2 \
            || die "building dfaas-test-gateway failed"
        touch "$bin"
    fi
    echo "$bin"
}

# --- lifecycle --------------------------------------------------------------

# Starts a long-running process detached from this script, logging to LOG,
# records its pid in PIDFILE, and waits (bounded) until the pid runs the
# program with MARKER in its argv.
start_bg() {
    local pidfile=$1 logfile=$2 marker=$3 pid
    shift 3
    # Close the lock descriptors (8, 9): a long-running child holding them
    # would keep the instance locked after this script exits.
    setsid "$@" >"$logfile" 2>&1 </dev/null 8>&- 9>&- &
    pid=$!
    echo "$pid" > "$pidfile"
    for _ in $(seq 100); do
        tb_live_pid "$pidfile" "$marker" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    die "$1 did not start: $(tail -n 5 "$logfile" 2>/dev/null)"
}

http_ok() { curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; }

prom_value() {
    # Prints the first sample value of an instant query, or nothing.
    curl -fsS --max-time 3 -G "$PROM_URL/api/v1/query" --data-urlencode "query=$1" 2>/dev/null \
        | sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}

ready() {
    [[ -n $(prom_value 'count(node_cpu_seconds_total{mode="idle"})') ]] || return 1
    [[ $(prom_value 'up{job="gateway"}') == 1 ]] || return 1
    [[ -n $(prom_value 'container_cpu_usage_seconds_total') ]] || return 1
}

healthy() {
    "$HERE/k6host.sh" status "$ID" >/dev/null 2>&1 || return 1
    tb_live_pid "$SVC/prometheus.pid" "$PROM_MARK" >/dev/null || return 1
    tb_live_pid "$SVC/node-exporter.pid" "$NODE_MARK" >/dev/null || return 1
    tb_live_pid "$SVC/gateway.pid" "$GATEWAY_MARK" >/dev/null || return 1
    http_ok "$GATEWAY_URL/healthz" && ready
}

do_down() {
    tb_stop_pid "$SVC/prometheus.pid" "$PROM_MARK"
    tb_stop_pid "$SVC/node-exporter.pid" "$NODE_MARK"
    tb_stop_pid "$SVC/gateway.pid" "$GATEWAY_MARK"
    rm -rf -- "${SVC:?}"
    "$HERE/k6host.sh" down "$ID"
}

do_up() {
    if healthy; then
        log "instance $ID already up"
        return 0
    fi
    do_down
    ensure_packages
    local gateway
    gateway=$(gateway_binary)

    local port
    for port in "$PROM_PORT" "$NODE_PORT" "$GATEWAY_PORT"; do
        tb_port_busy "$port" && die "port $port (instance $ID) is already in use; pick another ID or TESTBED_PORT_BASE"
    done

    "$HERE/k6host.sh" up "$ID"
    mkdir -p "$SVC/tsdb" "$SVC/textfile"

    # Gateway, on the host side of the veth so k6 in the namespace reaches it.
    local functions=${TESTBED_FUNCTIONS:-figlet=20,env=5,nodeinfo=40}
    local extra=()
    if [[ -n ${TESTBED_GATEWAY_ARGS:-} ]]; then read -r -a extra <<< "$TESTBED_GATEWAY_ARGS"; fi
    if [[ -n ${TESTBED_BASIC_AUTH:-} ]]; then export GATEWAY_BASIC_AUTH=$TESTBED_BASIC_AUTH; fi
    start_bg "$SVC/gateway.pid" "$SVC/gateway.log" "$GATEWAY_MARK" "$gateway" \
        --listen "$HOST_ADDR:$GATEWAY_PORT" --functions "$functions" \
        --truth-file "$GATEWAY_MARK" "${extra[@]}"
    unset GATEWAY_BASIC_AUTH

    start_bg "$SVC/node-exporter.pid" "$SVC/node-exporter.log" "$NODE_MARK" prometheus-node-exporter \
        "--web.listen-address=127.0.0.1:$NODE_PORT" \
        "--collector.textfile.directory=$NODE_MARK"

    cat > "$PROM_MARK" <<EOF
# Prometheus for lb-dfaas testbed instance $ID
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:$NODE_PORT']
  - job_name: gateway
    static_configs:
      - targets: ['$HOST_ADDR:$GATEWAY_PORT']
EOF
    start_bg "$SVC/prometheus.pid" "$SVC/prometheus.log" "$PROM_MARK" prometheus \
        "--config.file=$PROM_MARK" \
        "--storage.tsdb.path=$SVC/tsdb" \
        "--storage.tsdb.retention.time=6h" \
        "--web.listen-address=127.0.0.1:$PROM_PORT"

    local deadline=$((SECONDS + WAIT_S)) what=""
    while :; do
        what=""
        tb_live_pid "$SVC/gateway.pid" "$GATEWAY_MARK" >/dev/null \
            || die "gateway exited: $(tail -n 5 "$SVC/gateway.log" 2>/dev/null)"
        tb_live_pid "$SVC/node-exporter.pid" "$NODE_MARK" >/dev/null \
            || die "node-exporter exited: $(tail -n 5 "$SVC/node-exporter.log" 2>/dev/null)"
        tb_live_pid "$SVC/prometheus.pid" "$PROM_MARK" >/dev/null \
            || die "prometheus exited: $(tail -n 5 "$SVC/prometheus.log" 2>/dev/null)"
        if ! http_ok "$GATEWAY_URL/healthz"; then what="gateway at $GATEWAY_URL"
        elif ! http_ok "$NODE_URL/metrics"; then what="node-exporter at $NODE_URL"
        elif ! ready; then what="Prometheus at $PROM_URL to answer the cores query and scrape the gateway"
        else break
        fi
        if (( SECONDS >= deadline )); then
            die "instance $ID not ready after ${WAIT_S}s: waiting for $what (logs in $SVC)"
        fi
        sleep 0.5
    done
    log "instance $ID up: gateway $GATEWAY_URL, prometheus $PROM_URL, k6 host 10.211.$ID.2:2222"
}

teardown_failed_up() {
    local rc=$?
    trap - EXIT
    if (( rc != 0 )); then
        log "up failed, tearing instance $ID down"
        do_down || true
    fi
    exit "$rc"
}

case $CMD in
    env) emit_env ;;
    up|down|status)
        [[ $(id -u) -eq 0 ]] || die "must run as root"
        mkdir -p "$BASE_DIR"
        exec 8>"$LOCK"
        flock -w 300 8 || die "could not lock $LOCK"
        case $CMD in
            up)
                # A failed `up` leaves nothing running behind.
                trap teardown_failed_up EXIT
                do_up
                trap - EXIT
                ;;
            down) do_down ;;
            status) if healthy; then echo up; else echo down; exit 1; fi ;;
        esac
        ;;
    *) usage ;;
esac
