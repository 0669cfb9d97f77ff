#!/usr/bin/env bash
# Brings up the local testbed (k6 host = sshd with the real k6 in a network
# namespace, Prometheus + node-exporter, the OpenFaaS-shaped test gateway),
# runs a small DFaaS campaign end to end with lb-dfaas, prints where the CSVs
# are, writes the campaign's HTML report and prints its path, and tears the
# testbed down again. Run as root on a Debian machine.
#
#   DEMO_TESTBED_ID=1   testbed instance (10.211.<ID>.0/24, ports 19000+10*ID..)
#   KEEP_TESTBED=1      leave the testbed running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
id=${DEMO_TESTBED_ID:-1}

bash scripts/setup.sh
echo "== building lb-dfaas and the test gateway" >&2
cargo build --workspace --bins --quiet

cleanup() {
  if [ "${KEEP_TESTBED:-0}" != 1 ]; then
    testbed/testbed.sh down "$id" >&2 || true
  fi
}
trap cleanup EXIT
echo "== testbed $id up" >&2
testbed/testbed.sh up "$id" >&2
eval "$(testbed/testbed.sh env "$id")"

out="$root/benchmark_results/demo-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cat > "$out/demo.yaml" <<YAML
# A small campaign against the local testbed: two functions, rates 0/10/200
# req/s, single functions and pairs, one 5 s iteration per configuration.
plugins:
  dfaas:
    k6_host: "$K6_HOST"
    k6_port: $K6_PORT
    k6_user: "$K6_USER"
    k6_ssh_key: "$K6_SSH_KEY"
    k6_known_hosts_file: "$K6_KNOWN_HOSTS"
    k6_workspace_root: "$TESTBED_STATE_DIR/k6-workspace"
    gateway_url: "$GATEWAY_URL"
    prometheus_url: "$PROMETHEUS_URL"
    functions:
      - name: env
      - name: figlet
        method: POST
        body: "Hello DFaaS!"
        headers: {Content-Type: text/plain}
    rate_strategy: {type: custom, rates: [0, 10, 200]}
    combinations: {min_functions: 1, max_functions: 3}
    duration: 5s
    iterations: 1
    cooldown: {max_wait_seconds: 60, sleep_step_seconds: 1, idle_threshold_pct: 50}
    output_dir: "$out"
YAML

echo "== lb-dfaas run --config $out/demo.yaml (progress below, result in $out/result.json)" >&2
set +e
if [ -t 2 ]; then
  # A terminal: the binary's live progress view.
  target/debug/lb-dfaas run --config "$out/demo.yaml" > "$out/result.json"
  code=$?
else
  # Piped (a CI log): the LB_EVENT lines, their messages only.
  target/debug/lb-dfaas run --config "$out/demo.yaml" > "$out/result.json" 2> >(grep --line-buffered -v '"type":"log"' | sed -u 's/^LB_EVENT .*"message":"\([^"]*\)".*/  \1/' >&2)
  code=$?
  sleep 0.2
fi
set -e
python3 - "$out" "$code" <<'PY'
import csv, json, sys
out, code = sys.argv[1], sys.argv[2]
result = json.load(open(f"{out}/result.json"))
rows = list(csv.DictReader(open(f"{out}/results.csv")))
skipped = list(csv.DictReader(open(f"{out}/skipped.csv")))
print(f"\nexit code {code}; {len(rows)} result rows, {len(skipped)} skipped configurations")
for r in rows:
    cfg = ", ".join(f"{f}={r['rate_function_' + f]}" for f in result["dfaas_functions"] if r["function_" + f])
    succ = ", ".join(f"{f} {r['success_rate_function_' + f]}" for f in result["dfaas_functions"] if r["function_" + f])
    print(f"  {cfg:<22} success: {succ:<28} node cpu {r['cpu_usage_node']:>8} %  overloaded {r['overloaded_node']}")
print(f"\nCSV files: {out}/results.csv, {out}/skipped.csv, {out}/index.csv")
print(f"per iteration: {out}/summaries/, {out}/metrics/, {out}/k6_scripts/")
PY
# The campaign's report: thresholds from the demo config, the CPU threshold
# line for this machine's cores (the testbed's node is this machine).
if report=$(target/debug/lb-dfaas report "$out" --config "$out/demo.yaml" --cores "$(nproc)"); then
  echo "report: $report (open it in a browser)"
else
  echo "report: lb-dfaas report $out failed: $report" >&2
  exit 1
fi
exit "$code"
