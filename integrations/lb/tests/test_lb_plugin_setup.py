"""What the plugin gives lb's playbooks (extra vars), the target's copy of the
k6 SSH key, and the events it lets through to lb's event stream."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from lb_plugin_testing import wait_for

from lb_dfaas_plugin import context as lb_context
from lb_dfaas_plugin import generator as lb_generator
from lb_dfaas_plugin import plugin

# -- extra vars ----------------------------------------------------------


def fake_lb_package(root: Path, *, ships_target_setup: bool, name: str = "dfaas") -> Path:
    """An importable ``lb_plugins`` package laid out as lb's, under ``root``,
    with the playbooks of its built-in plugin ``name``."""
    package = root / "lb_plugins"
    ansible_dir = package / "plugins" / name / "ansible"
    (ansible_dir / "tasks").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (ansible_dir / "tasks" / "setup_target_tasks.yml").write_text("---\n[]\n")
    if ships_target_setup:
        (ansible_dir / "setup_target.yml").write_text("---\n[]\n")
    return ansible_dir


@pytest.fixture
def importable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``tmp_path/site`` first on sys.path, with no ``lb_plugins`` imported yet."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "lb_plugins", raising=False)
    return site


def test_setup_extravars_name_the_section_lb_and_the_binary(
    fake_env: dict, importable: Path, tmp_path: Path
) -> None:
    ansible_dir = fake_lb_package(importable, ships_target_setup=True)
    dfaas = plugin.DfaasPlugin(environ=fake_env)

    extravars = dfaas.get_ansible_setup_extravars()

    assert extravars == {
        "dfaas_settings_section": "dfaas",
        "dfaas_lb_builtin_ansible_dir": str(ansible_dir.resolve()),
        "dfaas_binary_version": "0.0.0-fake",
    }
    json.dumps(extravars)  # lb hands them to ansible-playbook as JSON


def test_setup_extravars_without_lb_target_setup_or_binary(
    importable: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_lb_package(importable, ships_target_setup=False)
    # An LB_DFAAS_BIN that points nowhere: no binary, no manifest.
    dfaas = plugin.DfaasPlugin(environ={"LB_DFAAS_BIN": str(tmp_path / "missing")})

    with caplog.at_level(logging.INFO, logger="lb_dfaas_plugin"):
        extravars = dfaas.get_ansible_setup_extravars()

    assert extravars == {"dfaas_settings_section": "dfaas"}
    assert "cannot provision the targets" in caplog.text


def test_peva_faas_setup_extravars_name_its_section_and_lbs_peva_faas_playbooks(
    fake_env: dict, importable: Path
) -> None:
    fake_lb_package(importable, ships_target_setup=True, name="dfaas")
    peva_dir = fake_lb_package(importable, ships_target_setup=True, name="peva_faas")
    peva = plugin.PevaFaasPlugin(environ=fake_env)

    assert peva.get_ansible_setup_extravars() == {
        "dfaas_settings_section": "peva_faas",
        "dfaas_lb_builtin_ansible_dir": str(peva_dir.resolve()),
        "dfaas_binary_version": "0.0.0-fake",
    }
    for extravars in (
        peva.get_ansible_teardown_extravars(),
        peva.get_ansible_collect_pre_extravars(),
        peva.get_ansible_collect_post_extravars(),
    ):
        assert extravars == {"dfaas_settings_section": "peva_faas"}
    # The same bundled playbooks as dfaas.
    assert peva.get_ansible_setup_path() == plugin.DfaasPlugin(environ=fake_env).get_ansible_setup_path()


def test_lb_builtin_ansible_dir_absent_without_lb(importable: Path) -> None:
    assert plugin.lb_builtin_ansible_dir() is None


def test_teardown_and_collect_extravars_name_the_section(fake_env: dict) -> None:
    dfaas = plugin.DfaasPlugin(environ=fake_env)
    for extravars in (
        dfaas.get_ansible_teardown_extravars(),
        dfaas.get_ansible_collect_pre_extravars(),
        dfaas.get_ansible_collect_post_extravars(),
    ):
        assert extravars == {"dfaas_settings_section": "dfaas"}


# -- the k6 SSH key on a target --------------------------------------------


def target_home(tmp_path: Path, with_copy: bool) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    if with_copy:
        (home / ".ssh" / "dfaas_k6_key").write_text("key copied by the set-up\n")
    return home


def recorded_key(fake_env: dict, home: Path, tmp_path: Path, key: str | None) -> str | None:
    record = tmp_path / "request.json"
    config = {"functions": [{"name": "figlet"}], "fake": {"mode": "ok", "record": str(record)}}
    if key is not None:
        config["k6_ssh_key"] = key
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(**config), environ=dict(fake_env, HOME=str(home)), event_writer=lambda _: None
    )
    generator.prepare()
    generator.start()
    wait_for(lambda: not generator._is_running)
    generator.stop()
    return json.loads(record.read_text())["config"].get("k6_ssh_key")


def test_missing_configured_key_is_replaced_by_the_target_copy(
    fake_env: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = target_home(tmp_path, with_copy=True)

    with caplog.at_level(logging.INFO, logger="lb_dfaas_plugin"):
        key = recorded_key(fake_env, home, tmp_path, "~/.ssh/controller_only_key")

    assert key == str(home / ".ssh" / "dfaas_k6_key")
    assert "k6_ssh_key ~/.ssh/controller_only_key not found here, using" in caplog.text
    # validate and run both saw the copy; the note is logged once.
    assert caplog.text.count("not found here") == 1


def test_existing_configured_key_is_kept(fake_env: dict, tmp_path: Path) -> None:
    home = target_home(tmp_path, with_copy=True)
    (home / ".ssh" / "id_k6").write_text("the configured key\n")

    assert recorded_key(fake_env, home, tmp_path, "~/.ssh/id_k6") == "~/.ssh/id_k6"
    absolute = str(home / ".ssh" / "id_k6")
    assert recorded_key(fake_env, home, tmp_path, absolute) == absolute


def test_key_is_kept_without_a_copy_or_without_a_key(fake_env: dict, tmp_path: Path) -> None:
    home = target_home(tmp_path, with_copy=False)

    assert recorded_key(fake_env, home, tmp_path, "/nowhere/key") == "/nowhere/key"
    assert recorded_key(fake_env, home, tmp_path, None) is None


def test_key_fallback_rule() -> None:
    home = Path("/nonexistent-home")
    assert lb_context.k6_ssh_key_fallback({}, home) is None
    assert lb_context.k6_ssh_key_fallback({"k6_ssh_key": "  "}, home) is None
    assert lb_context.k6_ssh_key_fallback({"k6_ssh_key": "~/.ssh/x"}, home) is None  # no copy either


# -- events ----------------------------------------------------------------


@pytest.mark.parametrize("status", ["done", "failed", "stopped", "DONE"])
def test_terminal_status_becomes_running_with_its_message(status: str) -> None:
    event = {"run_id": "r", "workload": "dfaas", "repetition": 1, "status": status, "message": "finished"}

    line, rewritten = lb_generator.forwardable_event("LB_EVENT " + json.dumps(event))

    assert rewritten is True
    assert line is not None and line.startswith("LB_EVENT ")
    assert json.loads(line[len("LB_EVENT ") :]) == dict(event, status="running")


def test_other_events_are_forwarded_unchanged() -> None:
    for event in ({"status": "running", "message": "m"}, {"type": "log", "message": "k6"}, {}):
        line = "LB_EVENT " + json.dumps(event)
        assert lb_generator.forwardable_event(line) == (line, False)


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '"done"', "", '{"status": "done"'])
def test_non_object_events_are_dropped(payload: str) -> None:
    assert lb_generator.forwardable_event("LB_EVENT " + payload) == (None, False)


def test_pump_rewrites_terminal_events_and_drops_malformed_ones(
    fake_env: dict, caplog: pytest.LogCaptureFixture
) -> None:
    raw = [
        "LB_EVENT " + json.dumps({"status": "done", "message": "campaign finished"}),
        "LB_EVENT this is not an event",
        "LB_EVENT " + json.dumps({"status": "failed", "message": "config failed"}),
        "LB_EVENT " + json.dumps({"status": "running", "message": "still going"}),
    ]
    config = {"functions": [{"name": "figlet"}], "fake": {"mode": "ok", "raw_stderr": raw}}
    events: list[str] = []
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(**config), environ=fake_env, event_writer=events.append
    )

    with caplog.at_level(logging.WARNING, logger="lb_dfaas_plugin"):
        generator.prepare()
        generator.start()
        wait_for(lambda: not generator._is_running)
        generator.stop()

    forwarded = [json.loads(line[len("LB_EVENT ") :]) for line in events]
    assert forwarded == [
        {"status": "running", "message": "campaign finished"},
        {"status": "running", "message": "config failed"},
        {"status": "running", "message": "still going"},
    ]
    assert "LB_EVENT this is not an event" in generator._stderr_tail
    assert caplog.text.count("terminal status") == 1
