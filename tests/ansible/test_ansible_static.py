"""Every bundled playbook passes ansible-playbook --syntax-check and
ansible-lint with the production profile; setup_global.yml imports lb's own
dfaas target set-up statically, so a syntax check parses it."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from pathlib import Path

from playbook_runner import ANSIBLE_DIR, HARNESS_DIR, lb_dfaas_ansible_dir

PLAYBOOKS = ["setup_global.yml", "setup_k6.yml", "teardown_k6.yml", "provision_skipped.yml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS + [str(HARNESS_DIR / "collect.yml"), str(HARNESS_DIR / "install_env.yml")])
def test_syntax_check(playbook_bin: str, playbook: str, tmp_path) -> None:
    proc = subprocess.run(
        [playbook_bin, "--syntax-check", "-i", "localhost,", str(ANSIBLE_DIR / playbook)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bundle_layout() -> None:
    """The files lb and the plugin point at exist, and the collect files are task lists."""
    for name in PLAYBOOKS + ["tasks/install_k6.yml", "collect/pre.yml", "collect/post.yml"]:
        assert (ANSIBLE_DIR / name).is_file(), name
    for name in ["collect/pre.yml", "collect/post.yml", "tasks/install_k6.yml"]:
        tasks = yaml.safe_load((ANSIBLE_DIR / name).read_text())
        assert isinstance(tasks, list) and tasks, name
        for task in tasks:
            assert "hosts" not in task, f"{name} must be a task file, not a playbook"
            assert task.get("name"), f"unnamed task in {name}: {task}"


def test_ansible_lint_production_profile(lint_bin: str) -> None:
    proc = subprocess.run(
        [lint_bin, "--offline", "--profile", "production", "--config-file", ".ansible-lint"],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output, output


@pytest.fixture(scope="module")
def lb_ansible_dir() -> Path:
    try:
        return lb_dfaas_ansible_dir()
    except RuntimeError as err:
        pytest.fail(str(err))


def setup_global_check(playbook_bin: str, mode: str, lb_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            playbook_bin,
            mode,
            "-i",
            "localhost,",
            str(ANSIBLE_DIR / "setup_global.yml"),
            "-e",
            f"dfaas_lb_builtin_ansible_dir={lb_dir}",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_setup_global_parses_lbs_target_setup(playbook_bin: str, lb_ansible_dir: Path, tmp_path: Path) -> None:
    """With lb's directory given, the syntax check covers lb's target set-up."""
    check = setup_global_check(playbook_bin, "--syntax-check", lb_ansible_dir, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr

    listing = setup_global_check(playbook_bin, "--list-tasks", lb_ansible_dir, tmp_path)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    for task in ("Install k3s", "Install OpenFaaS via helm", "Copy Prometheus manifests", "Deploy OpenFaaS store functions"):
        assert task in listing.stdout, listing.stdout


def test_setup_global_syntax_check_catches_a_broken_lb_target_setup(
    playbook_bin: str, lb_ansible_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "lb-dfaas-ansible"
    (broken / "vars").mkdir(parents=True)
    (broken / "vars" / "target.yml").write_text((lb_ansible_dir / "vars" / "target.yml").read_text())
    (broken / "setup_target.yml").write_text(
        (lb_ansible_dir / "setup_target.yml").read_text()
        + "    - name: Two actions in one task\n"
        + "      ansible.builtin.debug:\n        msg: one\n"
        + "      ansible.builtin.command: echo two\n"
    )

    check = setup_global_check(playbook_bin, "--syntax-check", broken, tmp_path)

    assert check.returncode != 0, check.stdout + check.stderr
    assert "conflicting action statements" in check.stdout + check.stderr


def test_lbs_target_setup_playbook_runs_its_target_tasks(lb_ansible_dir: Path) -> None:
    """setup_global.yml imports lb's setup_target.yml (a playbook, so that its
    tasks find lb's manifests through playbook_dir) for what lb's built-in
    set-up runs: vars/target.yml and tasks/setup_target_tasks.yml."""
    plays = yaml.safe_load((lb_ansible_dir / "setup_target.yml").read_text())
    target_tasks = yaml.safe_load((lb_ansible_dir / "tasks" / "setup_target_tasks.yml").read_text())
    assert len(plays) == 1
    play = plays[0]
    assert play["hosts"] == "all"
    assert "vars/target.yml" in play["vars_files"]
    assert play["tasks"] == target_tasks
    # lb's orchestrated set-up runs the same task file with the same vars file.
    orchestrated = yaml.safe_load((lb_ansible_dir / "setup_plugin.yml").read_text())
    targets_play = next(p for p in orchestrated if p["hosts"] == "all:!k6_generators:!localhost")
    assert "vars/target.yml" in targets_play["vars_files"]
    assert {"name": "Setup target infrastructure", "ansible.builtin.import_tasks": "tasks/setup_target_tasks.yml"} in targets_play["tasks"]


def _resolved_workloads(playbook_bin: str, tmp_path, workloads) -> dict:
    extra = {
        "dfaas_paths_file": str(ANSIBLE_DIR / "collect" / "paths.yml"),
        "benchmark_config": {"workloads": workloads},
    }
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    proc = subprocess.run(
        [playbook_bin, "-i", "localhost,", "-c", "local", str(HARNESS_DIR / "paths.yml"), "-e", f"@{tmp_path / 'vars.json'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    match = re.search(r"DFAAS_PATHS (\{.*\})\"", output)
    assert match, output
    return json.loads(match[1].replace('\\"', '"'))


def test_collect_paths_tolerate_workloads_without_optional_keys(playbook_bin: str, tmp_path) -> None:
    """A workload without `enabled` (lb's default: enabled), without `plugin`,
    or not even a mapping must not fail the collect phase (ansible-core 2.19+
    refuses a missing attribute in selectattr/rejectattr)."""
    resolved = _resolved_workloads(
        playbook_bin,
        tmp_path,
        {
            "dfaas": {"plugin": "dfaas"},
            "off": {"plugin": "dfaas", "enabled": False},
            "on": {"plugin": "dfaas", "enabled": True},
            "other": {"plugin": "stream"},
            "bare": {"enabled": True},
            "empty": None,
            "text": "dfaas",
            "bad name": {"plugin": "dfaas"},
        },
    )
    assert resolved == {"workloads": ["dfaas", "on"], "bad": ["bad name"]}


def test_collect_paths_without_workloads(playbook_bin: str, tmp_path) -> None:
    assert _resolved_workloads(playbook_bin, tmp_path, None) == {"workloads": [], "bad": []}
