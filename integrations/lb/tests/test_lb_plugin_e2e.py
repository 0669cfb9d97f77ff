"""End to end: the plugin driving the real ``lb-dfaas`` binary.

``describe`` and ``validate`` need no network; the campaign tests run
against the project's testbed (real sshd + k6 in a network namespace, the
test gateway, Prometheus and node-exporter). lb itself is not needed: the
generator is driven the way lb's runner drives it. One test also runs under
lb's LocalRunner when lb is importable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lb_plugin_testing import process_gone, wait_for

from lb_dfaas_plugin import binary as lb_binary
from lb_dfaas_plugin import generator as lb_generator
from lb_dfaas_plugin import plugin


def lb_environment(binary: Path, tmp_path: Path, host: str = "e2e-target") -> dict[str, str]:
    """What lb's Ansible role gives its runner on a target, pointing at tmp_path."""
    bench_config = tmp_path / "benchmark_config.generated.json"
    bench_config.write_text(json.dumps({"output_dir": str(tmp_path / "results" / host)}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("LB_")}
    env.update(
        {
            "LB_DFAAS_BIN": str(binary),
            "LB_RUN_HOST": host,
            "LB_RUN_WORKLOAD": "dfaas",
            "LB_RUN_ID": "run-e2e",
            "LB_RUN_REPETITION": "1",
            "LB_RUN_TOTAL_REPS": "1",
            "LB_RUN_STOP_FILE": str(tmp_path / "STOP"),
            "LB_BENCH_CONFIG_PATH": str(bench_config),
            "K6_NO_USAGE_REPORT": "true",
        }
    )
    return env


def parse_events(lines: list[str]) -> list[dict]:
    """The JSON payloads of forwarded ``LB_EVENT`` lines."""
    return [json.loads(line.split(" ", 1)[1]) for line in list(lines)]


def campaign_config(testbed: dict[str, str], tmp_path: Path, **overrides: object) -> dict:
    config = {
        "k6_host": testbed["K6_HOST"],
        "k6_port": int(testbed["K6_PORT"]),
        "k6_user": testbed["K6_USER"],
        "k6_ssh_key": testbed["K6_SSH_KEY"],
        "k6_workspace_root": str(tmp_path / "k6-workspace"),
        "gateway_url": testbed["GATEWAY_URL"],
        "prometheus_url": testbed["PROMETHEUS_URL"],
        "functions": [{"name": "figlet"}],
        "rate_strategy": {"type": "custom", "rates": [2, 5]},
        "combinations": {"min_functions": 1, "max_functions": 2},
        "duration": "2s",
        "iterations": 1,
        "cooldown": {"max_wait_seconds": 60, "sleep_step_seconds": 1, "idle_threshold_pct": 100},
        # Each test's own campaign memory: the default path is relative to
        # lb's workdir (here the working directory), shared by every test and
        # run, where a configuration measured before is skipped as known.
        "memory": {"db_path": str(tmp_path / "memory" / "campaign.duckdb")},
        # This machine is shared: never call a configuration overloaded, so
        # no configuration is skipped as dominated and the rows are known.
        "overload": {
            "cpu_overload_pct_of_capacity": 100,
            "ram_overload_pct": 100,
            "success_rate_node_min": 0,
            "success_rate_function_min": 0,
            "replicas_overload_threshold": 1000000,
        },
    }
    config.update(overrides)
    return config


# -- describe / validate ----------------------------------------------------


def test_describe_gives_the_bundled_playbooks(real_binary: Path) -> None:
    manifest = lb_binary.describe(real_binary)
    assert manifest["name"] == "dfaas"
    assert set(lb_binary.PLAYBOOK_KEYS) <= set(manifest["playbooks"])
    dfaas = plugin.DfaasPlugin(environ=dict(os.environ, LB_DFAAS_BIN=str(real_binary)))
    for hook in (
        dfaas.get_ansible_setup_path,
        dfaas.get_ansible_collect_pre_path,
        dfaas.get_ansible_collect_post_path,
        dfaas.get_ansible_teardown_path,
    ):
        path = hook()
        assert path is not None and path.is_file(), hook.__name__


def test_validate_accepts_a_good_config(real_binary: Path, tmp_path: Path) -> None:
    env = lb_environment(real_binary, tmp_path)
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(functions=[{"name": "figlet"}]), environ=env
    )
    assert generator.validate() == []
    assert generator.check_prerequisites() is True


def test_validate_names_the_bad_field(real_binary: Path, tmp_path: Path) -> None:
    env = lb_environment(real_binary, tmp_path)
    config = plugin.DfaasConfig(functions=[{"name": "figlet"}, {"name": "Bad Name!"}], iterations=0)
    generator = lb_generator.DfaasGenerator(config, environ=env)
    reasons = generator.validate()
    assert any(reason.startswith("functions[1].name") for reason in reasons), reasons
    assert any(reason.startswith("iterations") for reason in reasons), reasons
    assert generator.check_prerequisites() is False
    with pytest.raises(lb_generator.WorkloadError, match=r"functions\[1\]\.name"):
        generator.start()


# -- campaigns against the testbed -------------------------------------------


def test_short_campaign_through_the_generator(
    real_binary: Path, testbed: dict, tmp_path: Path
) -> None:
    env = lb_environment(real_binary, tmp_path)
    events: list[str] = []
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(**campaign_config(testbed, tmp_path)),
        environ=env,
        event_writer=events.append,
    )
    # Two configurations of one 2 s iteration, each with up to 60 s of
    # cooldown and 30 s of overhead, and 120 s for the run: the plan's bound.
    assert generator.expected_runtime_seconds == 2 * 2 + 2 * (60 + 30) + 120
    generator.prepare()
    output_dir = tmp_path / "results" / "e2e-target" / "dfaas"
    assert generator.context().output_dir == str(output_dir.resolve())
    generator.start()
    wait_for(lambda: not generator._is_running, timeout_s=300)
    generator.stop()
    result = generator.get_result()

    assert result["error"] is None, result["error"]
    assert (result["returncode"], result["success"], result["interrupted"]) == (0, True, False)
    assert result["dfaas_functions"] == ["figlet"]
    assert [row["rate_function_figlet"] for row in result["dfaas_results"]] == [2, 5]
    assert [entry["rates"] for entry in result["dfaas_index"]] == [[2], [5]]

    lines = (output_dir / "results.csv").read_text().splitlines()
    assert lines[0].split(",") == [
        "function_figlet",
        "rate_function_figlet",
        "success_rate_function_figlet",
        "cpu_usage_function_figlet",
        "ram_usage_function_figlet",
        "power_usage_function_figlet",
        "replica_figlet",
        "overloaded_function_figlet",
        "medium_latency_function_figlet",
        "cpu_usage_idle_node",
        "cpu_usage_node",
        "ram_usage_idle_node",
        "ram_usage_node",
        "ram_usage_idle_node_percentage",
        "ram_usage_node_percentage",
        "power_usage_idle_node",
        "power_usage_node",
        "rest_seconds",
        "overloaded_node",
    ]
    assert len(lines) == 3
    parsed = parse_events(events)
    assert parsed, "no LB_EVENT line was forwarded"
    assert {(event["run_id"], event["host"], event["workload"]) for event in parsed} == {
        ("run-e2e", "e2e-target", "dfaas")
    }

    # lb's export then keeps every file the binary wrote, untouched.
    assert str(output_dir / "results.csv") in result["artifacts"]
    before = (output_dir / "results.csv").read_bytes()
    dfaas = plugin.DfaasPlugin(environ=env)
    written = dfaas.export_results_to_csv(
        [{"repetition": 1, "generator_result": result}], output_dir, "run-e2e", "dfaas"
    )
    assert written == []
    assert (output_dir / "results.csv").read_bytes() == before

    # Elsewhere, the export rebuilds the binary's files: CSV byte for byte,
    # k6 summaries as the same JSON.
    elsewhere = tmp_path / "exported"
    dfaas.export_results_to_csv(
        [{"repetition": 1, "generator_result": result}], elsewhere, "run-e2e", "dfaas"
    )
    rebuilt = sorted(path.relative_to(elsewhere) for path in elsewhere.rglob("*") if path.is_file())
    assert rebuilt == sorted(
        path.relative_to(output_dir) for path in output_dir.rglob("*") if path.is_file()
    )
    for relative in rebuilt:
        ours, theirs = (elsewhere / relative).read_bytes(), (output_dir / relative).read_bytes()
        if relative.suffix == ".json":
            assert json.loads(ours) == json.loads(theirs), relative
        else:
            assert ours == theirs, relative


def test_stop_in_the_middle_interrupts_the_campaign(
    real_binary: Path, testbed: dict, tmp_path: Path
) -> None:
    env = lb_environment(real_binary, tmp_path)
    events: list[str] = []
    config = campaign_config(
        testbed,
        tmp_path,
        duration="30s",
        iterations=2,
        rate_strategy={"type": "custom", "rates": [2, 4, 6]},
    )
    generator = lb_generator.DfaasGenerator(
        plugin.DfaasConfig(**config), environ=env, event_writer=events.append
    )
    generator.prepare()
    generator.start()
    # Stop once k6 is under way (its output arrives as `log` events).
    wait_for(lambda: any(event["type"] == "log" for event in parse_events(events)), timeout_s=120)
    assert generator._process is not None
    pid = generator._process.pid

    generator.stop()

    assert not generator._is_running
    assert process_gone(pid)
    result = generator.get_result()
    assert result["returncode"] == 130, result.get("error")
    assert result["interrupted"] is True
    assert result["success"] is False


def test_peva_faas_campaign_with_k6_on_the_runner_host(
    real_binary: Path, testbed: dict, tmp_path: Path
) -> None:
    """A peva_faas section as lb's peva_faas takes it (no k6 host: k6 runs
    where the runner runs, here) through the ``peva_faas`` plugin."""
    env = dict(lb_environment(real_binary, tmp_path), LB_RUN_WORKLOAD="peva_faas")
    events: list[str] = []
    settings = {
        key: value
        for key, value in campaign_config(
            testbed, tmp_path, rate_strategy={"type": "custom", "rates": [2]}
        ).items()
        if not key.startswith("k6_")
    }
    settings.update({"selection_mode": "online", "micro_batch_size": 8, "micro_batch_window_s": 30})
    generator = lb_generator.DfaasGenerator(
        plugin.PevaFaasConfig(**settings),
        environ=env,
        event_writer=events.append,
        plugin=plugin.PEVA_FAAS_PLUGIN.name,
    )
    assert generator.validate() == []
    generator.prepare()
    output_dir = tmp_path / "results" / "e2e-target" / "peva_faas"
    assert generator.context().output_dir == str(output_dir.resolve())
    generator.start()
    wait_for(lambda: not generator._is_running, timeout_s=300)
    generator.stop()
    result = generator.get_result()

    assert result["error"] is None, result["error"]
    assert (result["returncode"], result["success"]) == (0, True)
    assert [row["rate_function_figlet"] for row in result["dfaas_results"]] == [2]
    parsed = parse_events(events)
    assert {event["workload"] for event in parsed} == {"peva_faas"}
    assert any(event["type"] == "log" and event["message"].startswith("k6: ") for event in parsed)
    started = [event for event in parsed if event["type"] == "run_started"]
    assert "k6 host local," in started[0]["message"], started
    # k6 ran here, in the workspace below the output directory.
    logs = list((output_dir / "k6" / "e2e-target" / "run-e2e").glob("*/k6.log"))
    assert len(logs) == 1 and logs[0].read_text().strip(), logs
    assert len((output_dir / "results.csv").read_text().splitlines()) == 2


def test_under_lb_local_runner(
    real_binary: Path, testbed: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin loaded by lb itself, run by its LocalRunner (needs lb installed)."""
    pytest.importorskip("lb_runner.api", reason="lb is not installed")
    from lb_plugins.api import create_registry, hydrate_plugin_settings, set_user_plugin_dir
    from lb_runner.api import BenchmarkConfig, LocalRunner, WorkloadConfig

    monkeypatch.setenv("LB_DFAAS_BIN", str(real_binary))
    # integrations/ holds the plugin directory lb/ as lb's _user/ holds the
    # installed lb_dfaas_plugin/: lb imports lb_dfaas_plugin.plugin from it.
    integrations = Path(plugin.__file__).resolve().parents[2]
    monkeypatch.setenv("LB_USER_PLUGIN_DIR", str(integrations))
    set_user_plugin_dir(integrations)
    registry = create_registry(refresh=True)
    loaded = registry.get("dfaas")
    assert type(loaded).__name__ == "DfaasPlugin"
    settings = campaign_config(testbed, tmp_path)
    config = BenchmarkConfig(
        repetitions=1,
        warmup_seconds=0,
        cooldown_seconds=0,
        collect_system_info=False,
        output_dir=tmp_path / "lb",
        report_dir=tmp_path / "lb" / "reports",
        data_export_dir=tmp_path / "lb" / "exports",
        plugin_settings={"dfaas": settings},
        workloads={"dfaas": WorkloadConfig(plugin="dfaas", collectors_enabled=False)},
    )
    hydrate_plugin_settings(config, registry=registry)
    runner = LocalRunner(config, registry=registry, host_name="lb-local")
    assert runner.run_benchmark("dfaas", run_id="run-lb") is True
    workload_dir = tmp_path / "lb" / "run-lb" / "dfaas"
    lines = (workload_dir / "results.csv").read_text().splitlines()
    assert len(lines) == 3
    rep = json.loads((workload_dir / "rep1" / "result.json").read_text())
    assert rep["success"] is True
    assert rep["generator_result"]["returncode"] == 0
