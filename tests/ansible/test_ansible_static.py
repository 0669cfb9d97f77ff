"""Every bundled playbook passes ansible-playbook --syntax-check and
ansible-lint with the production profile."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from playbook_runner import ANSIBLE_DIR, HARNESS_DIR

PLAYBOOKS = ["setup_global.yml", "setup_k6.yml", "teardown_k6.yml"]


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
