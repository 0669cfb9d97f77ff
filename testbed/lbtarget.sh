#!/usr/bin/env bash
# lbtarget.sh — an lb *target* host next to a testbed instance: sshd in its
# own network namespace and its own mount namespace, reached over real SSH by
# lb's controller (Ansible), where lb's runner and lb-dfaas then run.
#
# Usage: lbtarget.sh up|down|env|status ID      (ID: a testbed instance 1..200
#                                               whose k6 host is up)
#
# Per ID:
#   netns   lbd-tgt-<ID>
#   veth    lbdt<ID>h (root namespace, 10.212.<ID>.1/24) <-> lbdt<ID>t (target, 10.212.<ID>.2/24)
#   veth    lbdk<ID>k (in the k6 host's netns lbd-k6-<ID>, 10.213.<ID>.1/24) <-> lbdk<ID>t
#           (target, 10.213.<ID>.2/24)
#   routes  in the target: 10.211.<ID>.1/32 (the gateway, on the root namespace)
#           via 10.212.<ID>.1 and 10.211.<ID>.2/32 (the k6 host) via 10.213.<ID>.1,
#           so the target reaches the k6 host and the gateway at the addresses
#           the controller uses, with no IP forwarding anywhere (each packet is
#           delivered to a local address of the namespace it enters)
#   sshd    10.212.<ID>.2:2222 inside the namespace, root login by key only
#   forward 10.212.<ID>.1:<port> -> 127.0.0.1:<port> for each port in
#           LBTARGET_FORWARD (default: the instance's Prometheus port), since
#           Prometheus listens on the root namespace's loopback only
#   state   ${TESTBED_DIR:-/tmp/lbd-testbed}/lbtarget-<ID>/ (keys, sshd_config,
#           sshd.pid, sshd.log, authorized_keys, known_hosts, forward-*.{pid,log},
#           home/)
#
# The file system is shared with the machine, except what the target must
# not share with the controller. sshd runs in a private mount namespace where
#   - /root is <state>/home (so the target's ~/.ssh, ~/.lb, ... are its own,
#     inspectable from outside, and the machine's /root is never touched),
#     with the names in LBTARGET_HOME_KEEP (default ".pyenv") bound back in
#     from the real /root;
#   - every directory in LBTARGET_HIDE (colon separated; default the k6
#     host's state directory <root>/<ID>, which holds the controller's key
#     for the k6 host) is covered by an empty tmpfs.
#
# Environment read by `up`:
#   TESTBED_DIR, TESTBED_PORT_BASE   as testbed.sh (state root, port base)
#   LBTARGET_HIDE        directories hidden from the target (see above)
#   LBTARGET_HOME_KEEP   names under /root visible in the target's home
#   LBTARGET_PATH        directories put first on the sessions' PATH (colon separated)
#   LBTARGET_SETENV      extra NAME=value words for the sessions' environment (space separated)
#   LBTARGET_FORWARD     ports forwarded from 10.212.<ID>.1 to 127.0.0.1 (space separated)
#
# `up` keeps a healthy target with the same configuration and rebuilds
# anything else; `down` is idempotent and stops only the processes whose
# pids it recorded (checked against their command lines). Run as root.
set -euo pipefail

SSH_PORT=2222
SSH_USER=root
TB_NAME=lbtarget
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() { die "usage: $0 up|down|env|status ID   (ID an integer 1..200)"; }

[[ $# -eq 2 ]] || usage
CMD=$1
ID=$(tb_parse_id "$2")

BASE_DIR=${TESTBED_DIR:-/tmp/lbd-testbed}
STATE=$BASE_DIR/lbtarget-$ID
HOME_DIR=$STATE/home
NETNS=lbd-tgt-$ID
K6_NETNS=lbd-k6-$ID
VETH_HOST=lbdt${ID}h
VETH_TGT=lbdt${ID}t
VETH_K6=lbdk${ID}k
VETH_TGT_K6=lbdk${ID}t
HOST_ADDR=10.212.$ID.1
TGT_ADDR=10.212.$ID.2
K6_LINK_ADDR=10.213.$ID.1
TGT_K6_ADDR=10.213.$ID.2
GATEWAY_ADDR=10.211.$ID.1
K6_ADDR=10.211.$ID.2
LOCK=$BASE_DIR/$ID.lbtarget.lock
PORT_BASE=${TESTBED_PORT_BASE:-19000}
[[ $PORT_BASE =~ ^[0-9]+$ ]] || die "TESTBED_PORT_BASE must be an integer, got '$PORT_BASE'"
PROM_PORT=$((PORT_BASE + 10 * ID))
FORWARD_PORTS=${LBTARGET_FORWARD-$PROM_PORT}
HIDE=${LBTARGET_HIDE-$BASE_DIR/$ID}
HOME_KEEP=${LBTARGET_HOME_KEEP-.pyenv}

emit_env() {
    printf 'LB_TARGET_HOST=%q\n' "$TGT_ADDR"
    printf 'LB_TARGET_PORT=%q\n' "$SSH_PORT"
    printf 'LB_TARGET_USER=%q\n' "$SSH_USER"
    printf 'LB_TARGET_SSH_KEY=%q\n' "$STATE/client_key"
    printf 'LB_TARGET_KNOWN_HOSTS=%q\n' "$STATE/known_hosts"
    printf 'LB_TARGET_NETNS=%q\n' "$NETNS"
    printf 'LB_TARGET_HOME=%q\n' "$HOME_DIR"
    printf 'LB_TARGET_STATE_DIR=%q\n' "$STATE"
    printf 'LB_TARGET_PROMETHEUS_URL=%q\n' "http://$HOST_ADDR:$PROM_PORT"
}

ssh_opts() {
    printf '%s\n' -i "$STATE/client_key" -p "$SSH_PORT" \
        -o BatchMode=yes -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$STATE/known_hosts" \
        -o ConnectTimeout=5 -o LogLevel=ERROR
}

netns_exists() { ip netns list 2>/dev/null | grep -qw -- "^$1"; }

sshd_pid() { tb_live_pid "$STATE/sshd.pid" "$STATE/sshd_config"; }

healthy() {
    sshd_pid >/dev/null || return 1
    netns_exists "$NETNS" || return 1
    local port opts
    for port in $FORWARD_PORTS; do
        tb_live_pid "$STATE/forward-$port.pid" "$STATE/forward-$port.pid" >/dev/null || return 1
    done
    mapfile -t opts < <(ssh_opts)
    timeout 15 ssh "${opts[@]}" "$SSH_USER@$TGT_ADDR" true </dev/null >/dev/null 2>&1
}

# Every process left in the target's namespace was started through its sshd
# (lb's runner daemon, lb-dfaas, ...): stop them by pid, TERM then KILL.
stop_namespace_pids() {
    netns_exists "$NETNS" || return 0
    local pids
    pids=$(ip netns pids "$NETNS" 2>/dev/null | tr '\n' ' ')
    [[ -n ${pids// /} ]] || return 0
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 50); do
        pids=$(ip netns pids "$NETNS" 2>/dev/null | tr '\n' ' ')
        [[ -n ${pids// /} ]] || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
}

do_down() {
    local file
    tb_stop_pid "$STATE/sshd.pid" "$STATE/sshd_config"
    stop_namespace_pids
    for file in "$STATE"/forward-*.pid; do
        [[ -e $file ]] || continue
        tb_stop_pid "$file" "$file"
    done
    if netns_exists "$NETNS"; then
        ip netns delete "$NETNS" || log "could not delete netns $NETNS"
    fi
    # Deleting the target's netns removes both pairs; delete explicitly in case
    # they were left half-made.
    if ip link show "$VETH_HOST" >/dev/null 2>&1; then
        ip link delete "$VETH_HOST" || log "could not delete $VETH_HOST"
    fi
    if netns_exists "$K6_NETNS" && ip netns exec "$K6_NETNS" ip link show "$VETH_K6" >/dev/null 2>&1; then
        ip netns exec "$K6_NETNS" ip link delete "$VETH_K6" || log "could not delete $VETH_K6"
    fi
    rm -rf -- "${STATE:?}"
}

# The sshd configuration for the current environment (also the health key:
# a running target with another configuration is rebuilt).
render_sshd_config() {
    local path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if [[ -n ${LBTARGET_PATH:-} ]]; then path="$LBTARGET_PATH:$path"; fi
    local session_env="PATH=$path HOME=/root SHLVL=1 ${LBTARGET_SETENV:-}"
    cat <<EOF
# sshd for the lb target of testbed instance $ID (netns $NETNS)
# hidden: $HIDE
# home keeps: $HOME_KEEP
# forwards: $FORWARD_PORTS
Port $SSH_PORT
ListenAddress $TGT_ADDR
HostKey $STATE/host_key
PidFile $STATE/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
X11Forwarding no
AllowTcpForwarding yes
MaxSessions 50
MaxStartups 50:30:100
SetEnv $session_env
Subsystem sftp internal-sftp
EOF
}

# The shell commands run in the target's private mount namespace before
# sshd starts.
mount_script() {
    local name dir
    printf 'set -e\n'
    for name in $HOME_KEEP; do
        [[ $name != */* && $name != . && $name != .. ]] || die "LBTARGET_HOME_KEEP: '$name' is not a plain name"
        [[ -e /root/$name ]] || continue
        if [[ -d /root/$name ]]; then mkdir -p "$HOME_DIR/$name"; else : > "$HOME_DIR/$name"; fi
        printf 'mount --bind %q %q\n' "/root/$name" "$HOME_DIR/$name"
    done
    printf 'mount --rbind %q /root\n' "$HOME_DIR"
    local IFS=:
    for dir in $HIDE; do
        [[ -n $dir ]] || continue
        [[ -d $dir ]] || { log "LBTARGET_HIDE: $dir is not a directory, nothing to hide"; continue; }
        printf 'mount -t tmpfs -o mode=0700,size=1m lbtarget-hidden %q\n' "$dir"
    done
}

start_forward() {
    local port=$1 py
    py=$(command -v python3) || die "python3 is needed for the port forwarder"
    [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
    "$py" "$HERE/tcp_forward.py" --listen "$HOST_ADDR:$port" --to "127.0.0.1:$port" \
        --pid-file "$STATE/forward-$port.pid" >"$STATE/forward-$port.log" 2>&1 </dev/null 8>&- 9>&- &
    local ok=0
    for _ in $(seq 50); do
        if grep -q '^listening on' "$STATE/forward-$port.log" 2>/dev/null \
            && tb_live_pid "$STATE/forward-$port.pid" "$STATE/forward-$port.pid" >/dev/null; then
            ok=1; break
        fi
        sleep 0.1
    done
    (( ok )) || die "forwarder for port $port did not start (see $STATE/forward-$port.log)"
}

do_up() {
    local wanted
    wanted=$(render_sshd_config)
    if healthy && [[ "$(cat "$STATE/sshd_config" 2>/dev/null)" == "$wanted" ]]; then
        log "target $ID already up"
        return 0
    fi
    do_down
    netns_exists "$K6_NETNS" || die "the k6 host of instance $ID is not up (no netns $K6_NETNS): run testbed.sh up $ID first"
    command -v unshare >/dev/null || die "unshare (util-linux) is needed"
    [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd is needed (testbed.sh up installs it)"

    mkdir -p "$HOME_DIR" /run/sshd
    chmod 700 "$STATE" "$HOME_DIR"

    ip netns add "$NETNS"
    ip netns exec "$NETNS" ip link set lo up
    ip link add "$VETH_HOST" type veth peer name "$VETH_TGT"
    ip link set "$VETH_TGT" netns "$NETNS"
    ip addr add "$HOST_ADDR/24" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    ip netns exec "$NETNS" ip addr add "$TGT_ADDR/24" dev "$VETH_TGT"
    ip netns exec "$NETNS" ip link set "$VETH_TGT" up

    ip netns exec "$K6_NETNS" ip link add "$VETH_K6" type veth peer name "$VETH_TGT_K6"
    ip netns exec "$K6_NETNS" ip link set "$VETH_TGT_K6" netns "$NETNS"
    ip netns exec "$K6_NETNS" ip addr add "$K6_LINK_ADDR/24" dev "$VETH_K6"
    ip netns exec "$K6_NETNS" ip link set "$VETH_K6" up
    ip netns exec "$NETNS" ip addr add "$TGT_K6_ADDR/24" dev "$VETH_TGT_K6"
    ip netns exec "$NETNS" ip link set "$VETH_TGT_K6" up

    ip netns exec "$NETNS" ip route add "$GATEWAY_ADDR/32" via "$HOST_ADDR"
    ip netns exec "$NETNS" ip route add "$K6_ADDR/32" via "$K6_LINK_ADDR"

    local port
    for port in $FORWARD_PORTS; do
        [[ $port =~ ^[0-9]+$ ]] || die "LBTARGET_FORWARD: '$port' is not a port"
        start_forward "$port"
    done

    ssh-keygen -q -t ed25519 -N '' -C "lbd-tgt-$ID-client" -f "$STATE/client_key"
    local keep=$BASE_DIR/hostkeys/lbtarget-$ID
    if [[ ! -s $keep/host_key || ! -s $keep/host_key.pub ]]; then
        mkdir -p "$keep" && chmod 700 "$BASE_DIR/hostkeys"
        rm -f "$keep/host_key" "$keep/host_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "lbd-tgt-$ID-host" -f "$keep/host_key"
    fi
    cp "$keep/host_key" "$keep/host_key.pub" "$STATE/"
    chmod 600 "$STATE/host_key"
    cp "$STATE/client_key.pub" "$STATE/authorized_keys"
    chmod 600 "$STATE/authorized_keys"
    printf '[%s]:%s %s\n' "$TGT_ADDR" "$SSH_PORT" "$(cut -d' ' -f1,2 "$STATE/host_key.pub")" > "$STATE/known_hosts"

    printf '%s\n' "$wanted" > "$STATE/sshd_config"
    /usr/sbin/sshd -t -f "$STATE/sshd_config" || die "sshd rejected $STATE/sshd_config"
    mount_script > "$STATE/mounts.sh"
    printf 'exec /usr/sbin/sshd -f %q -E %q\n' "$STATE/sshd_config" "$STATE/sshd.log" >> "$STATE/mounts.sh"
    # Lock descriptors closed so sshd can never hold an instance lock.
    ip netns exec "$NETNS" unshare --mount --propagation private /bin/sh "$STATE/mounts.sh" 8>&- 9>&- \
        || die "could not start sshd in its mount namespace (see $STATE/mounts.sh, $STATE/sshd.log)"

    local ok=0
    for _ in $(seq 100); do
        if sshd_pid >/dev/null; then ok=1; break; fi
        sleep 0.1
    done
    (( ok )) || die "sshd did not start (see $STATE/sshd.log)"

    local opts
    mapfile -t opts < <(ssh_opts)
    ok=0
    for _ in $(seq 50); do
        if timeout 15 ssh "${opts[@]}" "$SSH_USER@$TGT_ADDR" true </dev/null >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    (( ok )) || die "ssh to $TGT_ADDR:$SSH_PORT failed (see $STATE/sshd.log)"
    log "target $ID up: ssh -p $SSH_PORT $SSH_USER@$TGT_ADDR (netns $NETNS, home $HOME_DIR)"
}

[[ $(id -u) -eq 0 ]] || [[ $CMD == env ]] || die "must run as root"

case $CMD in
    env) emit_env ;;
    up|down|status)
        mkdir -p "$BASE_DIR"
        exec 9>"$LOCK"
        flock -w 120 9 || die "could not lock $LOCK"
        case $CMD in
            up) do_up ;;
            down) do_down ;;
            status) if healthy; then echo up; else echo down; exit 1; fi ;;
        esac
        ;;
    *) usage ;;
esac
