"""Fixtures for the tests that run lb's real controller: the cached lb
installation with our plugin installed into it, and testbed instance 12 with
an lb target host next to it (see lb_real_harness.py)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from lb_real_harness import (
    LBTARGET,
    TESTBED,
    HarnessError,
    SshHost,
    find_lb_dfaas,
    install_plugin,
    lb_installation,
    log,
    namespace_pids,
    script_env,
    stop_pids,
)

#: Testbed instance of these tests (10.211.12.0/24, ports 19120..19122; the
#: target on 10.212.12.0/24 and 10.213.12.0/24). Other suites use 1, 7, 11,
#: 20 and 100..199. LBD_LB_REAL_TESTBED_ID picks another (to run beside
#: someone else's tests).
TESTBED_ID = int(os.environ.get("LBD_LB_REAL_TESTBED_ID", "12"))


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("lb's real controller runs against network namespaces: root needed")


@pytest.fixture(scope="session")
def lb_install():
    """The editable lb in its venv and the uv cache (built once, then cached)."""
    _require_root()
    started = time.monotonic()
    try:
        install = lb_installation(log=log)
    except HarnessError as exc:
        pytest.fail(str(exc))
    how = "built" if install.build_seconds is not None else "cached"
    log(f"lb installation {how} in {time.monotonic() - started:.1f}s: {install.root} {install.timings}")
    return install


@pytest.fixture(scope="session")
def plugin_install(lb_install):
    """Our plugin, binary and playbooks installed into the editable lb by
    ``lb-dfaas lb-install``."""
    try:
        report = install_plugin(lb_install, find_lb_dfaas())
    except HarnessError as exc:
        pytest.fail(str(exc))
    plugin_dir = lb_install.source / "lb_plugins" / "plugins" / "_user" / "lb_dfaas_plugin"
    assert report["ok"] is True, report
    installed = plugin_dir / "lb_dfaas_plugin" / "plugin.py"
    assert Path(report["dfaas_resolves_to"]) == installed, report
    # lb's real registry hands out our plugin for both of lb's DFaaS names.
    assert {name: Path(path) for name, path in report["resolves_to"].items()} == {
        "dfaas": installed,
        "peva_faas": installed,
    }, report
    assert (plugin_dir / "bin" / "lb-dfaas").is_file()
    assert (plugin_dir / "ansible" / "setup_global.yml").is_file()
    return report


def _home_names(*paths: Path) -> str:
    """Names directly under /root that the target must keep seeing."""
    names = set()
    for path in paths:
        parts = path.resolve().parts
        if len(parts) > 2 and parts[:2] == ("/", "root"):
            names.add(parts[2])
    return " ".join(sorted(names))


def _teardown(target_netns: str, k6_netns: str) -> None:
    # Whatever still runs in the two namespaces was started by these tests
    # through their sshd (lb's runner, lb-dfaas, k6): stop it by pid first.
    for netns in (target_netns, k6_netns):
        stop_pids(namespace_pids(netns))
    subprocess.run([str(LBTARGET), "down", str(TESTBED_ID)], timeout=300, check=False)
    subprocess.run([str(TESTBED), "down", str(TESTBED_ID)], timeout=300, check=False)


@pytest.fixture(scope="session")
def bed(lb_install):
    """Testbed instance 12 (k6 host, gateway, Prometheus) and an lb target,
    always torn down. The values of ``testbed.sh env`` and ``lbtarget.sh env``."""
    _require_root()
    for path in (lb_install.uv_cache, lb_install.python312):
        if " " in str(path):
            pytest.fail(f"{path}: the target's sshd environment cannot hold a path with spaces")
    target_netns, k6_netns = f"lbd-tgt-{TESTBED_ID}", f"lbd-k6-{TESTBED_ID}"
    try:
        _teardown(target_netns, k6_netns)  # a target left up holds the Prometheus port
        # Fresh, with the k6 host's sessions skipping root's ~/.bashrc (as on a
        # host whose .bashrc returns early for non-interactive shells): here
        # that file runs `pyenv init`, whose shims fool Ansible's interpreter
        # discovery on the k6 host.
        subprocess.run(
            [str(TESTBED), "up", str(TESTBED_ID)],
            check=True,
            timeout=900,
            env=dict(os.environ, TESTBED_SKIP_SHELL_RC="1"),
        )
        subprocess.run(
            [str(LBTARGET), "up", str(TESTBED_ID)],
            check=True,
            timeout=300,
            env=dict(
                os.environ,
                LBTARGET_HOME_KEEP=_home_names(lb_install.python312, lb_install.uv_cache) or "",
                LBTARGET_PATH=str(lb_install.python312.parent),
                # lb's runner role calls plain `uv run` (which would add the
                # dev group) and targets have no route to PyPI: uv works
                # offline from the cache filled where PyPI is reachable.
                LBTARGET_SETENV=(
                    f"UV_CACHE_DIR={lb_install.uv_cache} UV_OFFLINE=1 UV_NO_DEV=1 "
                    "UV_PYTHON_DOWNLOADS=never K6_NO_USAGE_REPORT=true"
                ),
            ),
        )
        values = script_env(TESTBED, TESTBED_ID)
        values.update(script_env(LBTARGET, TESTBED_ID))
    except (subprocess.SubprocessError, OSError) as exc:
        _teardown(target_netns, k6_netns)
        pytest.fail(f"testbed/target {TESTBED_ID} did not come up: {exc}")
    try:
        yield values
    finally:
        _teardown(target_netns, k6_netns)


@pytest.fixture
def k6_host(bed) -> SshHost:
    return SshHost.k6_host(bed)


@pytest.fixture
def target(bed) -> SshHost:
    return SshHost.target(bed)
