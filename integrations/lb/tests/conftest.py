"""Shared fixtures: the plugin package on sys.path and a fake ``lb-dfaas``."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PLUGIN_DIR.parent.parent
sys.path.insert(0, str(PLUGIN_DIR))

FAKE_SOURCE = Path(__file__).resolve().parent / "fake_lb_dfaas.py"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """An executable ``lb-dfaas`` stand-in (see fake_lb_dfaas.py)."""
    path = tmp_path / "bin" / "lb-dfaas"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n" + FAKE_SOURCE.read_text())
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_env(fake_bin: Path, tmp_path: Path) -> dict[str, str]:
    """An environment (given to the plugin, and by it to the binary) selecting
    the fake binary, without lb's run variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LB_")}
    env["LB_DFAAS_BIN"] = str(fake_bin)
    env["FAKE_PLAYBOOK_DIR"] = str(tmp_path / "playbooks")
    return env


# -- end-to-end: the real binary and the project's testbed ------------------

TESTBED_ID = "11"


@pytest.fixture(scope="session")
def real_binary() -> Path:
    """The repository's own ``lb-dfaas`` build (``$LB_DFAAS_BIN`` if set)."""
    from lb_dfaas_plugin import binary as lb_binary

    try:
        return lb_binary.find_binary(dict(os.environ, PATH=""))
    except lb_binary.BinaryNotFound as exc:
        pytest.fail(f"end-to-end tests need the binary: run `cargo build --bin lb-dfaas` ({exc})")


@pytest.fixture(scope="session")
def testbed() -> dict[str, str]:
    """Testbed instance 11 (k6 host over SSH, gateway, Prometheus), always torn down."""
    import shlex
    import subprocess

    script = REPO_ROOT / "testbed" / "testbed.sh"
    if os.geteuid() != 0:
        pytest.skip("the testbed needs root (network namespaces)")
    if not script.exists():
        pytest.fail(f"{script} is missing")
    try:
        subprocess.run([str(script), "up", TESTBED_ID], check=True, timeout=900)
        listing = subprocess.run(
            [str(script), "env", TESTBED_ID], check=True, capture_output=True, text=True, timeout=60
        ).stdout
        values: dict[str, str] = {}
        for line in listing.splitlines():
            for word in shlex.split(line):
                key, _, value = word.partition("=")
                values[key] = value
        yield values
    finally:
        subprocess.run([str(script), "down", TESTBED_ID], timeout=300, check=False)
