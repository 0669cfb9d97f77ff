# shellcheck shell=bash
# lib.sh — shell functions shared by k6host.sh and testbed.sh (sourced, not run).
# Callers set TB_NAME (prefix for messages) before sourcing.

die() { echo "${TB_NAME:-testbed}: $*" >&2; exit 1; }
log() { echo "${TB_NAME:-testbed}: $*" >&2; }

# Validates an instance id (1..200) and prints it normalised.
tb_parse_id() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || (( 10#$1 < 1 || 10#$1 > 200 )); then
        die "ID must be an integer 1..200, got '$1'"
    fi
    echo $((10#$1))
}

# apt-get install without letting packages start their own services
# (policy-rc.d answering 101 = "action forbidden").
tb_apt_install() {
    log "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
    fi
    apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null; } \
        || rc=$?
    if (( created_policy )); then rm -f "$policy"; fi
    (( rc == 0 )) || die "apt-get install $* failed"
}

# Prints the pid recorded in FILE if that process is alive and its command
# line contains MARKER (a path unique to this instance); fails otherwise.
tb_live_pid() {
    local file=$1 marker=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
    echo "$pid"
}

# Stops the process recorded in FILE (checked against MARKER): TERM, wait up
# to 5 s, then KILL. Never looks processes up by name.
tb_stop_pid() {
    local file=$1 marker=$2 pid
    if pid=$(tb_live_pid "$file" "$marker"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f -- "$file"
}

# Succeeds if something listens on TCP PORT (any address).
tb_port_busy() {
    [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
}
