"""Process mechanics of the generator and plugin, against a fake ``lb-dfaas``."""

from __future__ import annotations

import json
import os
import logging
import signal
from pathlib import Path

import pytest
from lb_plugin_testing import process_gone, wait_for

from lb_dfaas_plugin import binary as lb_binary
from lb_dfaas_plugin import context as lb_context
from lb_dfaas_plugin import generator as lb_generator
from lb_dfaas_plugin import plugin


def make_generator(
    env: dict[str, str], config: dict, **kwargs
) -> tuple[lb_generator.DfaasGenerator, list[str]]:
    events: list[str] = []
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(**config), environ=env, event_writer=events.append, **kwargs
    )
    return generator, events


def run_to_end(generator: lb_generator.DfaasGenerator) -> dict:
    generator.prepare()
    generator.start()
    wait_for(lambda: not generator._is_running)
    generator.stop()  # lb always calls stop() after the wait loop
    return generator.get_result()


def test_run_writes_the_request_and_returns_the_result(fake_env: dict, tmp_path: Path) -> None:
    record = tmp_path / "request.json"
    env = dict(
        fake_env,
        LB_RUN_HOST="node1",
        LB_RUN_ID="run-1",
        LB_RUN_REPETITION="1",
        LB_RUN_TOTAL_REPS="2",
    )
    config = {
        "functions": [{"name": "figlet"}],
        "max_retries": 1,
        "fake": {"mode": "ok", "record": str(record)},
    }
    generator, _ = make_generator(env, config)
    result = run_to_end(generator)

    request = json.loads(record.read_text())
    assert request["config"] == {
        "functions": [{"name": "figlet"}],
        "fake": {"mode": "ok", "record": str(record)},
        "max_retries": 1,
        "timeout_buffer": 10,
        "tags": [],
    }
    assert request["context"] == {
        "host": "node1",
        "run_id": "run-1",
        "repetition": 1,
        "total_repetitions": 2,
        # Run by lb (LB_RUN_*): relative memory paths resolve in lb's workdir.
        "lb_workdir": os.getcwd(),
    }
    assert request["plugin"] == "dfaas"
    assert result["returncode"] == 0 and result["success"] is True and result["error"] is None
    assert result["dfaas_index"] == [
        {"functions": ["figlet"], "rates": [10], "results_file": "results.csv"}
    ]


def test_lb_event_lines_are_forwarded_and_other_lines_kept(fake_env: dict) -> None:
    config = {"functions": [{"name": "figlet"}], "fake": {"mode": "fail", "events": 5}}
    generator, events = make_generator(fake_env, config)
    result = run_to_end(generator)

    assert [json.loads(line.split(" ", 1)[1])["message"] for line in events] == [
        f"event {i}" for i in range(5)
    ]
    assert all(line.startswith("LB_EVENT {") for line in events)
    assert list(generator._stderr_tail) == [
        f"2026-01-01T00:00:00Z INFO ordinary log line {i}" for i in range(5)
    ]
    assert result["returncode"] == 1 and result["success"] is False
    assert result["error"] == "1 configuration failed"
    assert result["error_type"] == "configuration_failed"


def test_events_reach_the_current_sys_stdout(
    fake_env: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(functions=[{"name": "figlet"}], fake={"mode": "ok", "events": 2}),
        environ=fake_env,
    )
    run_to_end(generator)
    out_lines = capsys.readouterr().out.splitlines()
    assert [line for line in out_lines if line.startswith("LB_EVENT ")] == [
        "LB_EVENT " + json.dumps({"status": "running", "type": "status", "message": f"event {i}"})
        for i in range(2)
    ]


def test_stderr_tail_is_bounded(fake_env: dict) -> None:
    config = {
        "functions": [{"name": "figlet"}],
        "fake": {"mode": "ok", "events": lb_generator.STDERR_TAIL_LINES + 30},
    }
    generator, events = make_generator(fake_env, config)
    run_to_end(generator)
    assert len(events) == lb_generator.STDERR_TAIL_LINES + 30
    assert len(generator._stderr_tail) == lb_generator.STDERR_TAIL_LINES
    assert generator._stderr_tail[-1].endswith(f"line {lb_generator.STDERR_TAIL_LINES + 29}")


def test_non_json_stdout_is_an_error_result_not_an_exception(fake_env: dict) -> None:
    generator, _ = make_generator(
        fake_env, {"functions": [{"name": "figlet"}], "fake": {"mode": "garbage"}}
    )
    result = run_to_end(generator)
    assert result["success"] is False
    assert result["error_type"] == "OutputParseError"
    assert "fatal: something broke" in result["error"]
    assert result["error_context"]["stdout_head"] == "this is not json\n"


def test_stop_sends_sigterm_and_returns_the_interrupted_result(
    fake_env: dict, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    config = {"functions": [{"name": "figlet"}], "fake": {"mode": "hang", "ready": str(ready)}}
    generator, _ = make_generator(fake_env, config)
    generator.prepare()
    generator.start()
    wait_for(ready.exists)
    pid = int(ready.read_text())
    assert generator._is_running

    generator.stop()

    assert not generator._is_running
    assert process_gone(pid)
    result = generator.get_result()
    assert result["returncode"] == 130
    assert result["interrupted"] is True
    assert result["error_type"] == "interrupted"


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(fake_env: dict, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    config = {"functions": [{"name": "figlet"}], "fake": {"mode": "deaf", "ready": str(ready)}}
    generator, _ = make_generator(fake_env, config, stop_timeout_s=0.5)
    generator.start()
    wait_for(ready.exists)
    pid = int(ready.read_text())

    generator.stop()

    assert process_gone(pid)
    result = generator.get_result()
    assert result["returncode"] == -signal.SIGKILL
    assert result["interrupted"] is True
    assert "signal SIGKILL" in result["error"]


def test_stop_before_the_run_starts_spawns_nothing(fake_env: dict, tmp_path: Path) -> None:
    record = tmp_path / "request.json"
    generator, _ = make_generator(
        fake_env, {"functions": [{"name": "f"}], "fake": {"record": str(record)}}
    )
    generator.stop()
    generator._run_worker()  # what the thread would do if it started late
    assert not record.exists()
    assert generator.get_result()["returncode"] == 130


def test_invalid_config_fails_prerequisites_and_start(
    fake_env: dict, caplog: pytest.LogCaptureFixture
) -> None:
    generator, _ = make_generator(fake_env, {"fake": {"mode": "ok"}})
    with caplog.at_level(logging.ERROR):
        assert generator.check_prerequisites() is False
    assert "functions: at least one function is required" in caplog.text
    with pytest.raises(lb_generator.WorkloadError, match="functions: at least one function is required"):
        generator.start()
    assert not generator._is_running


def test_valid_config_passes_prerequisites(fake_env: dict) -> None:
    generator, _ = make_generator(fake_env, {"functions": [{"name": "figlet"}]})
    assert generator.check_prerequisites() is True


def test_missing_binary_fails_prepare_with_the_places_looked_at(
    fake_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend the plugin lives in an empty tree: nothing beside it, no build.
    monkeypatch.setattr(lb_binary, "__file__", str(tmp_path / "a" / "b" / "c" / "binary.py"))
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(), environ=dict(fake_env, LB_DFAAS_BIN="", PATH="")
    )
    with pytest.raises(lb_binary.BinaryNotFound, match="PATH"):
        generator.prepare()
    assert generator.check_prerequisites() is False
    with pytest.raises(lb_generator.WorkloadError, match="not found"):
        generator.start()


def test_expected_runtime_is_the_plans_upper_bound_from_counts_only(fake_env: dict) -> None:
    env = dict(fake_env, FAKE_PLAN_ENTRIES="300000")
    generator, _ = make_generator(env, {"functions": [{"name": "figlet"}]})
    # The fake's plan: 300000 entries, 2 iterations of 5 s, a bound of its own.
    assert generator.expected_runtime_seconds == 300000 * 2 * 5 + 7


def test_expected_runtime_is_zero_when_the_plan_fails(fake_env: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho nope >&2\nexit 2\n")
    broken.chmod(0o755)
    generator, _ = make_generator(dict(fake_env, LB_DFAAS_BIN=str(broken)), {})
    assert generator.expected_runtime_seconds == 0


def test_plugin_playbooks_come_from_describe_once(fake_env: dict, tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    for name in ("setup_global.yml", "collect/pre.yml", "collect/post.yml", "teardown_k6.yml"):
        (playbooks / name).parent.mkdir(parents=True, exist_ok=True)
        (playbooks / name).write_text("---\n")
    count = tmp_path / "describe-calls"
    dfaas = plugin.DfaasPlugin(environ=dict(fake_env, FAKE_DESCRIBE_COUNT=str(count)))

    assert dfaas.get_ansible_setup_path() == playbooks / "setup_global.yml"
    assert dfaas.get_ansible_collect_pre_path() == playbooks / "collect" / "pre.yml"
    assert dfaas.get_ansible_collect_post_path() == playbooks / "collect" / "post.yml"
    assert dfaas.get_ansible_teardown_path() == playbooks / "teardown_k6.yml"
    assert count.read_text() == "x"


def test_plugin_without_binary_has_no_playbooks_and_does_not_raise(tmp_path: Path) -> None:
    dfaas = plugin.DfaasPlugin(environ={"LB_DFAAS_BIN": str(tmp_path / "missing")})
    assert dfaas.get_ansible_setup_path() is None
    assert dfaas.get_ansible_collect_post_path() is None
    assert dfaas.get_grafana_assets() is None


def test_plugin_creates_generators_from_dicts_and_models(fake_env: dict) -> None:
    dfaas = plugin.DfaasPlugin(environ=fake_env)
    from_dict = dfaas.create_generator({"k6_host": "10.0.0.2"})
    assert lb_context.config_payload(from_dict.config)["k6_host"] == "10.0.0.2"
    model = dfaas.config_cls(k6_port=2222)
    assert dfaas.create_generator(model).config is model
    assert (dfaas.name, isinstance(dfaas.description, str)) == ("dfaas", True)


def test_peva_faas_generators_send_peva_faas_requests(fake_env: dict, tmp_path: Path) -> None:
    """Every request of a peva_faas workload (validate, plan, run) names the
    plugin, so the binary reads its config as peva_faas's; errors name it."""
    record = tmp_path / "request.json"
    peva = plugin.PevaFaasPlugin(environ=fake_env)
    generator = peva.create_generator(
        {"functions": [{"name": "figlet"}], "fake": {"mode": "ok", "record": str(record)}}
    )
    assert generator.request()["plugin"] == "peva_faas"
    result = run_to_end(generator)
    assert result["success"] is True
    assert json.loads(record.read_text())["plugin"] == "peva_faas"

    invalid = peva.create_generator({"k3s_host": "10.0.0.5"})
    with pytest.raises(lb_generator.WorkloadError, match="invalid peva_faas config") as raised:
        invalid.start()
    assert raised.value.context["workload"] == "peva_faas"
