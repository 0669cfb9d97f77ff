"""What the plugin gives lb's playbooks (extra vars), the target's copy of the
k6 SSH key, and the events it lets through to lb's event stream."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

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


# -- the k6 SSH keys of several generators (k6_hosts) on a target -----------

# What the set-up leaves in the target's ~/.ssh: the single generator's copy
# (dfaas_k6_key) and generator <i>'s (dfaas_k6_key_<i>), plus keys that
# exist on the target under the name the config gives them.
SINGLE_COPY = "dfaas_k6_key"


def copy_of(index: int) -> str:
    return f"dfaas_k6_key_{index}"


def home_with(tmp_path: Path, files: list[str]) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for name in files:
        (home / ".ssh" / name).write_text(f"{name}\n")
    return home


def generator_for(config: Any, home: Path) -> lb_generator.DfaasGenerator:
    return lb_generator.DfaasGenerator(
        config, environ={"HOME": str(home)}, event_writer=lambda _: None
    )


# Each case: the files in ~/.ssh, k6_ssh_key (None: not set), the entries'
# ssh_key (None: not set, the entry inherits k6_ssh_key), then what the
# binary is sent: each entry's ssh_key (None: still not set; "~/.ssh/<name>"
# stands for that file under the temporary home) and k6_ssh_key.
KEY_CASES = [
    pytest.param(
        ["id_a"], "~/.ssh/k6", ["~/.ssh/id_a"], ["~/.ssh/id_a"], "~/.ssh/k6",
        id="entry-key-exists",
    ),
    pytest.param(
        ["id_a", copy_of(0)], "~/.ssh/k6", ["~/.ssh/id_a"], ["~/.ssh/id_a"], "~/.ssh/k6",
        id="entry-key-exists-copy-unused",
    ),
    pytest.param(
        [copy_of(0)], "~/.ssh/k6", ["~/.ssh/controller_only"], [f"@{copy_of(0)}"], "~/.ssh/k6",
        id="entry-key-missing-uses-its-copy",
    ),
    pytest.param(
        [SINGLE_COPY], None, ["~/.ssh/controller_only"], ["~/.ssh/controller_only"], None,
        id="entry-key-missing-no-copy-unchanged",
    ),
    pytest.param(
        [copy_of(1)], None, ["/nowhere/key"], ["/nowhere/key"], None,
        id="another-entrys-copy-is-not-used",
    ),
    pytest.param(
        [copy_of(0), SINGLE_COPY], "~/.ssh/k6", [None], [f"@{copy_of(0)}"], f"@{SINGLE_COPY}",
        id="inherited-key-missing-uses-the-entrys-copy",
    ),
    pytest.param(
        [SINGLE_COPY], "~/.ssh/k6", [None], [None], f"@{SINGLE_COPY}",
        id="inherited-key-missing-no-entry-copy-single-rule",
    ),
    pytest.param(
        [], "~/.ssh/k6", [None], [None], "~/.ssh/k6",
        id="inherited-key-missing-no-copy-unchanged",
    ),
    pytest.param(
        ["k6", copy_of(0), SINGLE_COPY], "~/.ssh/k6", [None], [None], "~/.ssh/k6",
        id="inherited-key-exists",
    ),
    pytest.param(
        [copy_of(0)], None, [None], [None], None,
        id="no-key-at-all-unchanged",
    ),
    pytest.param(
        ["id_a", copy_of(1), copy_of(3), SINGLE_COPY],
        "~/.ssh/k6",
        ["~/.ssh/id_a", "~/.ssh/gone_b", "~/.ssh/gone_c", None, None],
        ["~/.ssh/id_a", f"@{copy_of(1)}", "~/.ssh/gone_c", f"@{copy_of(3)}", None],
        f"@{SINGLE_COPY}",
        id="several-entries",
    ),
]


def in_home(value: str | None, home: Path) -> str | None:
    """An expected key: ``@<name>`` is ``<home>/.ssh/<name>``, the path the
    plugin sends for a copy."""
    if value is not None and value.startswith("@"):
        return str(home / ".ssh" / value[1:])
    return value


def keys_config(k6_ssh_key: str | None, entry_keys: list[str | None]) -> dict[str, Any]:
    entries = []
    for index, key in enumerate(entry_keys):
        entry: dict[str, Any] = {"host": f"10.0.0.{index + 5}"}
        if key is not None:
            entry["ssh_key"] = key
        entries.append(entry)
    config: dict[str, Any] = {"functions": [{"name": "figlet"}], "k6_hosts": entries}
    if k6_ssh_key is not None:
        config["k6_ssh_key"] = k6_ssh_key
    return config


@pytest.mark.parametrize(
    ("files", "k6_ssh_key", "entry_keys", "sent_keys", "sent_k6_ssh_key"), KEY_CASES
)
def test_k6_hosts_keys_sent_to_the_binary(
    tmp_path: Path,
    files: list[str],
    k6_ssh_key: str | None,
    entry_keys: list[str | None],
    sent_keys: list[str | None],
    sent_k6_ssh_key: str | None,
) -> None:
    home = home_with(tmp_path, files)
    config = plugin.DfaasConfig(**keys_config(k6_ssh_key, entry_keys))
    before = config.model_dump(mode="json")

    sent = generator_for(config, home).request()["config"]

    assert [entry.get("ssh_key") for entry in sent["k6_hosts"]] == [
        in_home(key, home) for key in sent_keys
    ]
    assert sent.get("k6_ssh_key") == in_home(sent_k6_ssh_key, home)
    # Only ssh_key changes, and only in the request: the config lb holds is untouched.
    assert [{k: v for k, v in e.items() if k != "ssh_key"} for e in sent["k6_hosts"]] == [
        {"host": f"10.0.0.{index + 5}"} for index in range(len(entry_keys))
    ]
    assert config.model_dump(mode="json") == before


def test_k6_hosts_keys_of_a_mapping_config_are_not_mutated(tmp_path: Path) -> None:
    home = home_with(tmp_path, [copy_of(0), copy_of(1)])
    config = keys_config("~/.ssh/k6", ["~/.ssh/gone_a", None])
    before = json.loads(json.dumps(config))

    sent = generator_for(config, home).request()["config"]

    assert [entry["ssh_key"] for entry in sent["k6_hosts"]] == [
        str(home / ".ssh" / copy_of(0)),
        str(home / ".ssh" / copy_of(1)),
    ]
    assert config == before


def test_k6_hosts_key_fallbacks_are_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = home_with(tmp_path, [copy_of(0), copy_of(1)])
    generator = generator_for(
        plugin.DfaasConfig(**keys_config("~/.ssh/k6", ["~/.ssh/gone_a", None])), home
    )

    with caplog.at_level(logging.INFO, logger="lb_dfaas_plugin"):
        generator.request()
        generator.request()

    copy_0, copy_1 = (home / ".ssh" / copy_of(i) for i in (0, 1))
    assert f"k6_hosts[0]: ssh_key ~/.ssh/gone_a not found here, using {copy_0}" in caplog.text
    assert f"k6_hosts[1]: k6_ssh_key ~/.ssh/k6 not found here, using {copy_1}" in caplog.text
    assert caplog.text.count("not found here") == 2


def test_k6_hosts_keys_reach_the_binary(fake_env: dict, tmp_path: Path) -> None:
    home = home_with(tmp_path, [copy_of(1)])
    record = tmp_path / "request.json"
    config = keys_config("~/.ssh/k6", ["/nowhere/key", None])
    config["fake"] = {"mode": "ok", "record": str(record)}
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(**config),
        environ=dict(fake_env, HOME=str(home)),
        event_writer=lambda _: None,
    )
    generator.prepare()
    generator.start()
    wait_for(lambda: not generator._is_running)
    generator.stop()

    sent = json.loads(record.read_text())["config"]
    assert sent["k6_hosts"] == [
        {"host": "10.0.0.5", "ssh_key": "/nowhere/key"},
        {"host": "10.0.0.6", "ssh_key": str(home / ".ssh" / copy_of(1))},
    ]
    assert sent["k6_ssh_key"] == "~/.ssh/k6"


@pytest.mark.parametrize(
    "k6_hosts",
    [
        pytest.param("[{host: 10.0.0.5}]", id="text"),
        pytest.param([["10.0.0.5"]], id="entry-not-a-mapping"),
        pytest.param([{"host": "10.0.0.5", "ssh_key": " "}], id="blank-ssh_key"),
        pytest.param([{"host": "10.0.0.5", "ssh_key": 7}], id="ssh_key-not-text"),
    ],
)
def test_k6_hosts_key_fallbacks_leave_what_the_binary_rejects(
    tmp_path: Path, k6_hosts: Any
) -> None:
    home = home_with(tmp_path, [copy_of(0), SINGLE_COPY])

    # The binary names these fields in its error; the plugin does not guess.
    config = {"k6_ssh_key": "~/.ssh/gone", "k6_hosts": k6_hosts}
    assert lb_context.k6_hosts_key_fallbacks(config, home) == []


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
