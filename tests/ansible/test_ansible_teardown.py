"""teardown_k6.yml, run for real against the testbed's k6 host: it removes a
run's workspaces and refuses unsafe paths before touching anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbook_runner import ANSIBLE_DIR, GENERATOR_NAME, Ansible

TEARDOWN = ANSIBLE_DIR / "teardown_k6.yml"
RUN_ID = "run-7"


def make_workspaces(ws: Path) -> None:
    for host, run in [("target1", RUN_ID), ("target2", RUN_ID), ("target3", RUN_ID), ("target1", "run-6")]:
        log = ws / host / run / "0a1b2c3d4e5f" / "k6.log"
        log.parent.mkdir(parents=True)
        log.write_text("k6 output\n")


def remaining(ws: Path) -> set[str]:
    return {str(p.relative_to(ws)) for p in ws.glob("*/*")}


def teardown_vars(ansible: Ansible, ws: Path, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark_config": {"plugin_settings": {"dfaas": ansible.dfaas_settings(ws)}},
        "run_id": RUN_ID,
        **ansible.generator_vars(),
        **extra,
    }


def targets(ansible: Ansible, *names: str) -> dict[str, dict[str, Any]]:
    return {name: ansible.local_host_vars() for name in names}


def test_removes_the_run_of_each_inventory_target(ansible: Ansible, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    make_workspaces(ws)

    run = ansible.run(TEARDOWN, targets(ansible, "target1", "target2"), teardown_vars(ansible, ws)).assert_ok()

    assert run.recap[GENERATOR_NAME]["changed"] == 1
    # target3 is not in this inventory; run-6 is another run.
    assert remaining(ws) == {f"target3/{RUN_ID}", "target1/run-6"}
    again = ansible.run(TEARDOWN, targets(ansible, "target1", "target2"), teardown_vars(ansible, ws)).assert_ok()
    assert again.total_changed() == 0


def test_run_scope_removes_the_run_on_every_host(ansible: Ansible, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    make_workspaces(ws)

    ansible.run(TEARDOWN, targets(ansible, "target1"), teardown_vars(ansible, ws, k6_teardown_scope="run")).assert_ok()

    assert remaining(ws) == {"target1/run-6"}


def test_explicit_path_below_the_workspace_root_is_removed(ansible: Ansible, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    make_workspaces(ws)

    ansible.run(
        TEARDOWN, targets(ansible, "target1"), teardown_vars(ansible, ws, k6_teardown_path=str(ws / "target1" / "run-6"))
    ).assert_ok()

    assert remaining(ws) == {f"target1/{RUN_ID}", f"target2/{RUN_ID}", f"target3/{RUN_ID}"}


def test_generator_comes_from_the_settings_section_passed_by_the_plugin(ansible: Ansible, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    make_workspaces(ws)
    extra = teardown_vars(ansible, ws, dfaas_settings_section="peva_faas")
    extra["benchmark_config"] = {"plugin_settings": {"peva_faas": ansible.dfaas_settings(ws)}}

    run = ansible.run(TEARDOWN, targets(ansible, "target1"), extra).assert_ok()

    assert run.recap[GENERATOR_NAME]["changed"] == 1, run.describe()
    assert remaining(ws) == {f"target2/{RUN_ID}", f"target3/{RUN_ID}", "target1/run-6"}


def test_a_k6_run_on_the_target_has_nothing_to_remove(ansible: Ansible, tmp_path: Path) -> None:
    """k6_host local (peva_faas's default): the workspaces are in lb's
    output directory, which the teardown leaves alone."""
    ws = tmp_path / "ws"
    make_workspaces(ws)
    extra = teardown_vars(ansible, ws, dfaas_settings_section="peva_faas")
    extra["benchmark_config"] = {"plugin_settings": {"peva_faas": {"k6_workspace_root": str(ws)}}}

    run = ansible.run(TEARDOWN, targets(ansible, "target1"), extra).assert_ok()

    assert run.total_changed() == 0, run.describe()
    assert len(remaining(ws)) == 4
    assert "k6 ran on target1 itself (k6_host local): its workspaces are in the output directory" in " ".join(
        run.output.split()
    ), run.describe()


@pytest.mark.parametrize(
    "unsafe",
    ["/", "", "/root", "/home", "WS", "WS/target1/../target1", "WS/", "target1/run-7"],
    ids=["root", "empty", "root-home", "home", "workspace-root", "dotdot", "trailing-slash", "relative"],
)
def test_refuses_unsafe_paths(ansible: Ansible, tmp_path: Path, unsafe: str) -> None:
    ws = tmp_path / "ws"
    make_workspaces(ws)
    path = unsafe.replace("WS", str(ws))

    run = ansible.run(TEARDOWN, targets(ansible, "target1"), teardown_vars(ansible, ws, k6_teardown_path=path))

    assert run.rc != 0, run.describe()
    assert f'refusing to remove \\"{path}\\"' in run.output, run.describe()
    assert len(remaining(ws)) == 4


@pytest.mark.parametrize("run_id", ["", "..", "../run-7", "run 7"])
def test_refuses_a_run_id_that_is_not_a_plain_name(ansible: Ansible, tmp_path: Path, run_id: str) -> None:
    ws = tmp_path / "ws"
    make_workspaces(ws)

    run = ansible.run(TEARDOWN, targets(ansible, "target1"), teardown_vars(ansible, ws, run_id=run_id))

    assert run.rc != 0, run.describe()
    assert "refusing to clean up" in run.output, run.describe()
    assert len(remaining(ws)) == 4
