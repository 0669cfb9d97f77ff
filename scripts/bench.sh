#!/usr/bin/env bash
# Runs lb-dfaas's benchmarks and prints the report:
#   1. the criterion micro-benchmarks (plan, output, k6), short settings;
#   2. the testbed benchmark (benches/testbed/): orchestration overhead per
#      iteration (ours vs fresh ssh vs ansible-playbook), plan scale, load
#      fidelity, overloads predicted from subsets vs lb's same-set rule (two
#      campaigns of a 3-function plan through lb-dfaas run), one load from
#      one and from two generators merged, and a starved generator — on testbed
#      instance $BENCH_TESTBED_ID (default 20), which
#      is brought up with the functions the benchmark needs and always
#      torn down on exit.
# Run as root (the testbed creates a network namespace). Extra arguments go
# to the testbed benchmark (e.g. --only overhead --iterations 30).
#
# Environment: BENCH_TESTBED_ID (20), BENCH_OUTPUT (target/bench-report.txt),
# BENCH_SKIP_CRITERION=1 to run only the testbed benchmark, BENCH_RC_K6HOST_ID
# (ID + 100) for the k6 host with a login shell that runs ~/.bashrc.
set -euo pipefail
cd "$(dirname "$0")/.."

ID=${BENCH_TESTBED_ID:-20}
OUTPUT=${BENCH_OUTPUT:-target/bench-report.txt}
[[ $(id -u) -eq 0 ]] || { echo "bench.sh: must run as root (network namespaces)" >&2; exit 1; }

bash scripts/setup.sh
PY=${PYTHON:-python3}
PY_SCRIPTS=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$PY_SCRIPTS:$PATH"
export K6_NO_USAGE_REPORT=true
# ansible-playbook itself, not a pyenv shim in front of it (the shim's own
# start-up would be charged to Ansible).
BENCH_ANSIBLE_PLAYBOOK=$(command -v ansible-playbook)
if command -v pyenv >/dev/null 2>&1 && pyenv which ansible-playbook >/dev/null 2>&1; then
    BENCH_ANSIBLE_PLAYBOOK=$(pyenv which ansible-playbook)
fi
BENCH_ANSIBLE_PYTHON=$("$PY" -c 'import sys; print(sys.executable)')
export BENCH_ANSIBLE_PLAYBOOK BENCH_ANSIBLE_PYTHON

echo "== building (release)" >&2
cargo build --release -p dfaas-test-gateway
cargo bench --no-run --bench testbed --bench plan --bench output --bench k6

mkdir -p "$(dirname "$OUTPUT")"
: > "$OUTPUT"
report() { tee -a "$OUTPUT"; }

{
    echo "# lb-dfaas benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "nproc: $(nproc); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel: $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    # `sed -n 1p` reads all input, so the tools never see a closed pipe.
    echo "tools: $(cargo --version); $(rustc --version); $(k6 version 2>/dev/null | sed -n 1p); $(ssh -V 2>&1); $("$BENCH_ANSIBLE_PLAYBOOK" --version 2>/dev/null | sed -n 1p); $(prometheus --version 2>&1 | sed -n 1p)"
} | report

if [[ ${BENCH_SKIP_CRITERION:-0} != 1 ]]; then
    echo | report
    echo "## criterion micro-benchmarks (warm-up 1 s, measurement 2 s each)" | report
    cargo bench --bench plan --bench output --bench k6 -- --warm-up-time 1 --measurement-time 2 --noplot 2>/dev/null \
        | grep -E '^[a-z0-9_-]+/|time:' | report
fi

# A fresh instance with the functions the benchmark needs: `fast` answers
# at once (64 workers, deep queue), `slow` burns 20 ms of CPU per call on
# 2 workers with a 32-deep queue (about 100 calls/s at most, less while
# k6 competes for the same cores); `io30` and `io50` wait (no CPU) 100 ms
# on 3 workers and 40 ms on 2, without a queue: at most 30 and 50 calls/s
# whatever the machine's load (the prediction section's functions).
# The k6 host runs remote commands without root's interactive ~/.bashrc,
# as a real load generator would (see testbed/k6host.sh).
export TESTBED_SKIP_SHELL_RC=1
export TESTBED_FUNCTIONS=${BENCH_FUNCTIONS:-fast=0:64:4096,slow=20:2:32,io30=100:3:0:wait,io50=40:2:0:wait}
export GATEWAY_BIN=$PWD/target/release/dfaas-test-gateway
# A second k6 host whose root login shell runs ~/.bashrc (pyenv init here,
# ~250 ms per remote command), as on a researcher's own machine; the
# overhead section measures ours and Ansible on it too, and the generators
# section uses it as the second load generator. It reaches the
# gateway through the host (a default route into the root namespace).
RC_ID=${BENCH_RC_K6HOST_ID:-$((ID + 100))}
teardown() {
    testbed/testbed.sh down "$ID" >/dev/null 2>&1 || echo "bench.sh: testbed down $ID failed" >&2
    testbed/k6host.sh down "$RC_ID" >/dev/null 2>&1 || echo "bench.sh: k6host down $RC_ID failed" >&2
}
trap teardown EXIT
testbed/testbed.sh down "$ID"
testbed/testbed.sh up "$ID"
set -a
eval "$(testbed/testbed.sh env "$ID")"
set +a
testbed/k6host.sh down "$RC_ID"
TESTBED_SKIP_SHELL_RC=0 testbed/k6host.sh up "$RC_ID"
ip netns exec "lbd-k6-$RC_ID" ip route replace default via "10.211.$RC_ID.1"
while IFS='=' read -r name value; do
    export "RC_$name=$(eval "printf '%s' $value")"
done < <(testbed/k6host.sh env "$RC_ID")

echo | report
echo "## testbed benchmark: cargo bench --bench testbed -- $*" | report
status=0
cargo bench --bench testbed -- "$@" 2>&1 | grep -v -E '^\s+(Finished|Running) ' | report || status=$?
echo "report written to $OUTPUT" >&2
exit "$status"
