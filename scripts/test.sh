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
echo "== cargo test" >&2
cargo test --workspace --no-fail-fast
if [ -d tests/ansible ] || [ -d integrations/lb/tests ]; then
  echo "== pytest" >&2
  cargo build --workspace --bins
  "$PY" -m pytest -q $(ls -d tests/ansible integrations/lb/tests 2>/dev/null)
fi
