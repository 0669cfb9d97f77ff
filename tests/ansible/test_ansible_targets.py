"""setup_global.yml on lb's targets, for real over SSH: the controller's k6
key copied to each target's ~/.ssh/dfaas_k6_key, the check that lb on a
target runs lb-dfaas's plugin (against a small lb laid out as lb's setup
leaves it), provisioning through lb's own target set-up (a stand-in that
records what it got), and the install options read from the plugin
settings section.

Each target is an sshd of the test's own in the k6 host's namespace, with
its HOME in the test's directory (see playbook_runner.TargetSshd).
"""

from __future__ import annotations

import filecmp
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fake_lb import BINARY_BROKEN, BINARY_OK, installed_plugin_file, make_lb_dfaas_playbooks, make_lb_workdir
from playbook_runner import ANSIBLE_DIR, GENERATOR_NAME, Ansible, PlaybookRun, TargetSshd, task_results

SETUP_GLOBAL = ANSIBLE_DIR / "setup_global.yml"
KEY_TASK = "Copy the k6 SSH key to ~/.ssh/dfaas_k6_key"
K6_COPY_TASK = "Copy the k6 binary from the controller"


def install_vars(ansible: Ansible, k6_binary: Path, k6_version: str, tmp_path: Path) -> dict[str, Any]:
    """Extra vars installing the real k6 from a controller binary into the test's directory."""
    return {
        "k6_version": k6_version,
        "k6_install_method": "binary",
        "k6_binary_src": str(k6_binary),
        "k6_bin_dir": str(tmp_path / "bin"),
        **ansible.generator_vars(),
    }


def setup(
    ansible: Ansible,
    target: TargetSshd,
    settings: dict[str, Any],
    extra: dict[str, Any],
    section: str = "dfaas",
    workloads: dict[str, Any] | None = None,
) -> PlaybookRun:
    benchmark_config: dict[str, Any] = {"plugin_settings": {section: settings}}
    if workloads is not None:
        benchmark_config["workloads"] = workloads
    extra_vars = {"benchmark_config": benchmark_config, **extra}
    if section != "dfaas":
        extra_vars["dfaas_settings_section"] = section
    return ansible.run(SETUP_GLOBAL, {"target1": ansible.target_host_vars(target)}, extra_vars)


def flat_output(run: PlaybookRun) -> str:
    """The output with the default callback's line folding undone."""
    return " ".join(run.output.split())


# -- the k6 SSH key --------------------------------------------------------


def test_target_gets_the_controller_k6_key_once(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    settings = ansible.dfaas_settings(tmp_path / "ws")
    extra = install_vars(ansible, k6_binary, k6_version, tmp_path)

    first = setup(ansible, target, settings, extra).assert_ok()

    assert set(first.recap) == {"localhost", "target1", GENERATOR_NAME}, first.describe()
    copy = target.home / ".ssh" / "dfaas_k6_key"
    assert copy.read_bytes() == ansible.k6host.key.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert copy.stat().st_uid == os.getuid()
    assert stat.S_IMODE((target.home / ".ssh").stat().st_mode) == 0o700
    assert task_results(first.output, KEY_TASK) == [("changed", "target1")]
    text = flat_output(first)
    assert "not run by lb (no lb_workdir): not checking which 'dfaas' plugin lb resolves on target1" in text
    assert "WARNING: provision_targets is true but lb's dfaas target set-up was not given" in text

    second = setup(ansible, target, settings, extra).assert_ok()
    assert second.total_changed() == 0, second.describe()
    assert task_results(second.output, KEY_TASK) == [("ok", "target1")]


def test_missing_controller_key_fails_naming_the_path(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    name = f"no-such-dfaas-key-{os.getpid()}-{target.port}"
    settings = {**ansible.dfaas_settings(tmp_path / "ws"), "k6_ssh_key": f"~/{name}"}

    run = setup(ansible, target, settings, install_vars(ansible, k6_binary, k6_version, tmp_path))

    assert run.rc != 0
    assert run.recap["localhost"]["failed"] == 1, run.describe()
    expanded = Path(os.environ["HOME"]) / name
    assert f"k6_ssh_key ~/{name} (plugin_settings.dfaas or extra var) does not exist on the controller: no file {expanded}" in flat_output(run), run.describe()
    assert not (target.home / ".ssh").exists()
    assert not (tmp_path / "bin").exists()


# -- lb on the target ------------------------------------------------------


def test_lb_running_its_built_in_plugin_fails_the_target(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    lb_workdir = make_lb_workdir(tmp_path / "lb", lb_dfaas_plugin=False)
    extra = {**install_vars(ansible, k6_binary, k6_version, tmp_path), "lb_workdir": str(lb_workdir)}

    run = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), extra)

    assert run.rc != 0
    assert run.recap["target1"]["failed"] == 1, run.describe()
    builtin = lb_workdir / "lb_plugins" / "plugins" / "dfaas" / "plugin.py"
    text = flat_output(run)
    assert (
        f"lb on target1 ({lb_workdir}) resolves the plugin 'dfaas' to lb_plugins.plugins.dfaas.plugin ({builtin}), "
        "not to lb-dfaas's plugin (package lb_dfaas_plugin): this target would run lb's built-in implementation. "
        "Install lb-dfaas into the controller's lb with `lb-dfaas lb-install`"
    ) in text, run.describe()
    # Checked before anything is written on the target.
    assert not (target.home / ".ssh").exists()


@pytest.mark.parametrize("binary", [None, BINARY_BROKEN], ids=["missing", "broken"])
def test_lb_dfaas_plugin_without_a_runnable_binary_fails_the_target(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path, binary: str | None
) -> None:
    lb_workdir = make_lb_workdir(tmp_path / "lb", lb_dfaas_plugin=True, binary=binary)
    extra = {**install_vars(ansible, k6_binary, k6_version, tmp_path), "lb_workdir": str(lb_workdir)}

    run = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), extra)

    assert run.rc != 0
    assert run.recap["target1"]["failed"] == 1, run.describe()
    plugin_file = installed_plugin_file(lb_workdir)
    assert (
        f"lb on target1 runs lb-dfaas's plugin ({plugin_file}), but {plugin_file.parent.parent}/bin/lb-dfaas "
        "is missing or does not run there"
    ) in flat_output(run), run.describe()
    if binary is not None:
        assert "wrong architecture" in flat_output(run)


def test_lb_dfaas_plugin_with_its_binary_passes_and_version_drift_is_reported(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    lb_workdir = make_lb_workdir(tmp_path / "lb", lb_dfaas_plugin=True, binary=BINARY_OK)
    extra = {
        **install_vars(ansible, k6_binary, k6_version, tmp_path),
        "lb_workdir": str(lb_workdir),
        "dfaas_binary_version": "0.0.9",
    }

    run = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), extra).assert_ok()

    text = flat_output(run)
    assert f"lb on target1 resolves 'dfaas' to {installed_plugin_file(lb_workdir)}; lb-dfaas 1.2.3 runs there" in text
    assert "WARNING: lb-dfaas on target1 is 1.2.3, the controller's is 0.0.9" in text
    assert (target.home / ".ssh" / "dfaas_k6_key").is_file()

    same = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), {**extra, "dfaas_binary_version": "1.2.3"})
    assert "WARNING: lb-dfaas on target1" not in same.assert_ok().output
    assert same.total_changed() == 0, same.describe()


def test_lb_check_asks_for_the_settings_section_name(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    # lb-dfaas's package registers peva_faas as well as dfaas.
    lb_workdir = make_lb_workdir(tmp_path / "lb", lb_dfaas_plugin=True, binary=BINARY_OK)
    extra = {**install_vars(ansible, k6_binary, k6_version, tmp_path), "lb_workdir": str(lb_workdir)}
    run = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), extra, section="peva_faas").assert_ok()
    assert f"lb on target1 resolves 'peva_faas' to {installed_plugin_file(lb_workdir)}" in flat_output(run)

    # An lb without it knows no peva_faas at all.
    bare = make_lb_workdir(tmp_path / "lb-bare", lb_dfaas_plugin=False)
    extra["lb_workdir"] = str(bare)
    run = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), extra, section="peva_faas")
    assert run.rc != 0
    assert "resolves the plugin 'peva_faas' to nothing" in flat_output(run), run.describe()


def test_loopback_k6_host_targets_are_checked_but_get_no_key(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    lb_workdir = make_lb_workdir(tmp_path / "lb", lb_dfaas_plugin=True, binary=BINARY_OK)
    settings = {**ansible.dfaas_settings(tmp_path / "ws"), "k6_host": "127.0.0.1"}
    extra = {**install_vars(ansible, k6_binary, k6_version, tmp_path), "lb_workdir": str(lb_workdir)}

    run = setup(ansible, target, settings, extra).assert_ok()

    # The target is its own generator (k6 installed there) and still a target.
    assert set(run.recap) == {"localhost", "target1"}, run.describe()
    assert task_results(run.output, K6_COPY_TASK) == [("changed", "target1")]
    assert filecmp.cmp(tmp_path / "bin" / "k6", k6_binary, shallow=False)
    text = flat_output(run)
    assert f"lb on target1 resolves 'dfaas' to {installed_plugin_file(lb_workdir)}" in text
    assert "no k6 SSH key copied to target1: the k6 host is a loopback address" in text
    assert not (target.home / ".ssh").exists()


@pytest.mark.parametrize(
    ("section", "settings"),
    [("peva_faas", {}), ("peva_faas", {"k6_host": "127.0.0.1"}), ("dfaas", {"k6_host": "local"})],
    ids=["peva_faas-default", "peva_faas-loopback", "dfaas-local"],
)
def test_local_k6_is_installed_on_each_target_without_key_or_workspace_root(
    ansible: Ansible,
    target: TargetSshd,
    k6_binary: Path,
    k6_version: str,
    tmp_path: Path,
    section: str,
    settings: dict[str, Any],
) -> None:
    """k6_host local (peva_faas's default; a loopback address there too):
    lb-dfaas runs k6 on each target as a child process, so the set-up
    installs k6 on every target and nothing else: no key, no workspace
    root (the workspaces are in the output directory)."""
    extra = install_vars(ansible, k6_binary, k6_version, tmp_path)

    run = setup(ansible, target, settings, extra, section=section).assert_ok()

    assert set(run.recap) == {"localhost", "target1"}, run.describe()
    assert task_results(run.output, K6_COPY_TASK) == [("changed", "target1")]
    assert filecmp.cmp(tmp_path / "bin" / "k6", k6_binary, shallow=False)
    assert task_results(run.output, "Create the k6 workspace root") == [("skipping", "target1")]
    text = flat_output(run)
    assert "no k6 SSH key copied to target1: k6 runs on the target itself, without SSH (k6_host local)" in text
    assert not (target.home / ".ssh").exists()
    if section == "peva_faas":
        assert (
            "provision_targets is false (the peva_faas default: lb's peva_faas provisions its k3s node "
            "k3s_host, not the targets): target1 is not provisioned"
        ) in text, run.describe()

    again = setup(ansible, target, settings, extra, section=section).assert_ok()
    assert again.total_changed() == 0, again.describe()


# -- provisioning ----------------------------------------------------------


def test_provisioning_runs_lbs_target_setup_on_targets_only(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    lb_dir = make_lb_dfaas_playbooks(tmp_path / "lb-dfaas-ansible")
    markers = tmp_path / "markers"
    markers.mkdir()
    settings = {**ansible.dfaas_settings(tmp_path / "ws"), "functions": [{"name": "figlet"}, {"name": "env"}]}
    workloads = {
        "dfaas": {"plugin": "dfaas"},
        "quick": {"plugin": "dfaas", "options": {"functions": [{"name": "nodeinfo"}, {"name": "env"}]}},
        "off": {"plugin": "dfaas", "enabled": False, "options": {"functions": [{"name": "disabled"}]}},
        "other": {"plugin": "stream", "options": {"functions": [{"name": "unrelated"}]}},
    }
    extra = {
        **install_vars(ansible, k6_binary, k6_version, tmp_path),
        "dfaas_lb_builtin_ansible_dir": str(lb_dir),
        "dfaas_test_marker_dir": str(markers),
    }

    run = setup(ansible, target, settings, extra, workloads=workloads).assert_ok()

    # lb's play ran from lb's directory (its tasks find files through
    # playbook_dir), on the target only, with the functions of every dfaas workload.
    assert sorted(p.name for p in markers.iterdir()) == ["target1.json"], run.describe()
    got = json.loads((markers / "target1.json").read_text())
    assert got == {"playbook_dir": str(lb_dir), "openfaas_functions": ["figlet", "env", "nodeinfo"], "gateway_port": 31112}
    assert f"target1 is provisioned by {lb_dir}/setup_target.yml with the functions figlet, env, nodeinfo" in flat_output(run)

    # provision_targets: false in the plugin settings: k6 host only.
    (markers / "target1.json").unlink()
    off = setup(ansible, target, {**settings, "provision_targets": False}, extra, workloads=workloads).assert_ok()
    assert not list(markers.iterdir()), off.describe()
    assert "provision_targets is false: target1 is not provisioned, only the k6 host is set up" in flat_output(off)

    # An extra var wins over the plugin settings.
    on = setup(ansible, target, {**settings, "provision_targets": False}, {**extra, "provision_targets": True})
    on.assert_ok()
    assert [p.name for p in markers.iterdir()] == ["target1.json"], on.describe()


def test_provisioning_without_lbs_target_setup_warns_and_goes_on(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    lb_dir = make_lb_dfaas_playbooks(tmp_path / "lb-dfaas-ansible", setup_target=False)
    extra = {**install_vars(ansible, k6_binary, k6_version, tmp_path), "dfaas_lb_builtin_ansible_dir": str(lb_dir)}

    run = setup(ansible, target, ansible.dfaas_settings(tmp_path / "ws"), extra).assert_ok()

    assert (
        f"WARNING: provision_targets is true but lb's dfaas target set-up was not found at {lb_dir}/setup_target.yml: "
        "target1 is not provisioned"
    ) in flat_output(run), run.describe()
    assert (target.home / ".ssh" / "dfaas_k6_key").is_file()


# -- install options from the plugin settings ------------------------------


def test_install_options_come_from_the_plugin_settings_section(
    ansible: Ansible, target: TargetSshd, k6_binary: Path, k6_version: str, tmp_path: Path
) -> None:
    base = ansible.dfaas_settings(tmp_path / "ws")
    options = {
        "k6_install_method": "binary",
        "k6_binary_src": str(k6_binary),
        "k6_bin_dir": str(tmp_path / "bin"),
        "provision_targets": False,
    }
    connection = ansible.generator_vars()

    # k6_version from the section reaches install_k6.yml...
    wrong = setup(ansible, target, {**base, **options, "k6_version": "0.0.1"}, connection)
    assert wrong.rc != 0
    assert wrong.recap[GENERATOR_NAME]["failed"] == 1, wrong.describe()
    text = flat_output(wrong)
    assert f"method=binary version=0.0.1 bin_dir={tmp_path / 'bin'}" in text
    assert "wanted k6 v0.0.1 (k6_version)" in text

    # ...and a plain extra var still wins.
    right = setup(ansible, target, {**base, **options, "k6_version": "0.0.1"}, {**connection, "k6_version": k6_version})
    right.assert_ok()
    assert filecmp.cmp(tmp_path / "bin" / "k6", k6_binary, shallow=False)

    # Another section (a later peva_faas registration) is read the same way,
    # generator connection settings included.
    other_bin = tmp_path / "peva-bin"
    peva = {**base, **options, **connection, "k6_version": k6_version, "k6_bin_dir": str(other_bin)}
    run = setup(ansible, target, peva, {}, section="peva_faas").assert_ok()
    assert "k6 install settings (plugin_settings.peva_faas, extra vars win): method=binary" in flat_output(run)
    assert filecmp.cmp(other_bin / "k6", k6_binary, shallow=False)
    assert (target.home / ".ssh" / "dfaas_k6_key").is_file()
