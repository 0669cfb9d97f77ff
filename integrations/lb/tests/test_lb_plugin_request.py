"""Request building, context discovery, binary lookup and result mapping (pure parts)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from lb_dfaas_plugin import binary as lb_binary
from lb_dfaas_plugin import context as lb_context
from lb_dfaas_plugin import plugin


class LBEventLogHandler(logging.Handler):
    """Same class name and attributes as the handler lb's runner attaches."""

    def __init__(
        self, run_id: str, host: str, workload: str, repetition: int, total_repetitions: int
    ):
        super().__init__()
        self.run_id = run_id
        self.host = host
        self.workload = workload
        self.repetition = repetition
        self.total_repetitions = total_repetitions

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - never used
        pass


class JsonlFile(logging.Handler):
    """A handler with a file name, like lb's JSONL (RotatingFileHandler) one."""

    def __init__(self, filename: Path):
        super().__init__()
        self.baseFilename = str(filename)

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - never used
        pass


# -- request ---------------------------------------------------------------


def test_config_payload_passes_every_field_but_drops_none() -> None:
    config = plugin.DfaasConfig(
        k6_host="10.0.0.9",
        functions=[{"name": "figlet", "max_rate": None, "headers": {"X-A": "1", "X-B": None}}],
        rate_strategy={"type": "random", "seed": None, "count": 3},
        output_dir=None,
        some_future_field={"nested": [1, None]},
        max_retries=2,
        tags=["a"],
    )
    assert lb_context.config_payload(config) == {
        "k6_host": "10.0.0.9",
        "functions": [{"name": "figlet", "headers": {"X-A": "1"}}],
        "rate_strategy": {"type": "random", "count": 3},
        "some_future_field": {"nested": [1, None]},
        "max_retries": 2,
        "tags": ["a"],
        "timeout_buffer": 10,
    }


def test_build_request_has_config_and_known_context_fields_only() -> None:
    context = lb_context.RunContext(host="node1", run_id="run-1", repetition=2, total_repetitions=3)
    request = lb_context.build_request({"functions": [{"name": "env"}], "duration": None}, context)
    assert request == {
        "config": {"functions": [{"name": "env"}]},
        "context": {"host": "node1", "run_id": "run-1", "repetition": 2, "total_repetitions": 3},
        "plugin": "dfaas",
    }
    json.dumps(request)  # serialisable as is
    peva = lb_context.build_request({}, lb_context.RunContext(), "peva_faas")
    assert peva == {"config": {}, "context": {}, "plugin": "peva_faas"}


def test_the_package_registers_one_plugin_per_workload_name() -> None:
    import lb_dfaas_plugin

    assert [p.name for p in plugin.PLUGINS] == ["dfaas", "peva_faas"]
    assert plugin.PLUGIN in plugin.PLUGINS
    assert plugin.PEVA_FAAS_PLUGIN in plugin.PLUGINS
    # What lb takes when it imports the package itself as the entry point.
    assert lb_dfaas_plugin.PLUGINS is plugin.PLUGINS
    # lb's registry checks these two attributes of each plugin.
    for each in plugin.PLUGINS:
        assert hasattr(each, "name") and hasattr(each, "create_generator")


def test_peva_faas_plugin_is_dfaas_under_its_own_name_and_config() -> None:
    peva = plugin.PEVA_FAAS_PLUGIN
    assert (peva.name, "k6 on the runner host" in peva.description) == ("peva_faas", True)
    assert peva.config_cls is plugin.PevaFaasConfig
    assert issubclass(peva.config_cls, plugin.DfaasConfig)
    # peva_faas's own fields pass through like every other.
    config = peva.config_cls(k3s_host="10.0.0.5", selection_mode="micro_batch", memory={})
    assert lb_context.config_payload(config)["k3s_host"] == "10.0.0.5"


def test_config_model_accepts_unknown_fields_and_dumps_them() -> None:
    config = plugin.PLUGIN.config_cls(**{"k6_user": "root", "overload": {"ram_overload_pct": 70}})
    dumped = config.model_dump()
    assert dumped["k6_user"] == "root"
    assert dumped["overload"] == {"ram_overload_pct": 70}


# -- context ---------------------------------------------------------------

ANSIBLE_ENV = {
    "LB_RUN_HOST": "target1",
    "LB_RUN_HOST_ADDRESS": "10.0.0.5",
    "LB_RUN_WORKLOAD": "dfaas",
    "LB_RUN_REPETITION": "2",
    "LB_RUN_TOTAL_REPS": "3",
    "LB_RUN_ID": "run-20260101-000000",
    "LB_RUN_STOP_FILE": "/opt/lb/STOP",
}


def test_context_from_lb_ansible_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "benchmark_config.generated.json"
    config_file.write_text(json.dumps({"output_dir": str(tmp_path / "out" / "target1")}))
    env = dict(ANSIBLE_ENV, LB_BENCH_CONFIG_PATH=str(config_file))
    context = lb_context.discover_context({}, env, [])
    assert context == lb_context.RunContext(
        host="target1",
        host_address="10.0.0.5",
        workload="dfaas",
        run_id="run-20260101-000000",
        repetition=2,
        total_repetitions=3,
        output_dir=str((tmp_path / "out" / "target1" / "dfaas").resolve()),
        stop_file="/opt/lb/STOP",
        lb_workdir=os.getcwd(),
    )


def test_bench_config_output_dir_is_scoped_by_run_id_when_not_already(tmp_path: Path) -> None:
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps({"output_dir": str(tmp_path / "results")}))
    env = {
        "LB_RUN_WORKLOAD": "dfaas_big",
        "LB_RUN_ID": "run-7",
        "LB_BENCH_CONFIG_PATH": str(config_file),
    }
    context = lb_context.discover_context({}, env, [])
    assert context.output_dir == str((tmp_path / "results" / "run-7" / "dfaas_big").resolve())


def test_in_process_runner_handlers_win_over_environment(tmp_path: Path) -> None:
    handlers = [
        JsonlFile(tmp_path / "root" / "run-9" / "logs" / "runner-hostA.jsonl"),
        LBEventLogHandler("run-9", "hostA", "dfaas_small", 1, 4),
    ]
    env = dict(ANSIBLE_ENV)
    del env["LB_RUN_STOP_FILE"]
    context = lb_context.discover_context({}, env, handlers, stop_file="STOP")
    assert (context.run_id, context.host, context.workload) == ("run-9", "hostA", "dfaas_small")
    assert (context.repetition, context.total_repetitions) == (1, 4)
    assert context.host_address == "10.0.0.5"  # only the environment knows it
    assert context.output_dir == str(tmp_path / "root" / "run-9" / "dfaas_small")
    assert context.stop_file == os.path.abspath("STOP")


def test_custom_jsonl_template_is_not_inverted(tmp_path: Path) -> None:
    handlers = [
        JsonlFile(tmp_path / "root" / "logs" / "runner-hostA.jsonl"),
        LBEventLogHandler("run-9", "hostA", "dfaas", 1, 1),
    ]
    context = lb_context.discover_context(
        {}, {"LB_JSONL_LOG_PATH": "/var/log/{run_id}.jsonl"}, handlers
    )
    assert context.output_dir is None


def test_config_output_dir_is_left_to_the_binary(tmp_path: Path) -> None:
    handlers = [
        JsonlFile(tmp_path / "logs" / "runner-h.jsonl"),
        LBEventLogHandler("run-1", "h", "dfaas", 1, 1),
    ]
    context = lb_context.discover_context({"output_dir": "/data/mine"}, {}, handlers)
    assert context.output_dir is None
    assert context.run_id == "run-1"


def test_lb_workdir_is_where_lb_runs_us(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    handlers = [LBEventLogHandler("run-1", "h", "dfaas", 1, 1)]
    assert lb_context.discover_context({}, {}, handlers).lb_workdir == str(tmp_path)
    assert lb_context.discover_context({}, {"LB_RUN_ID": "run-1"}, []).lb_workdir == str(tmp_path)
    assert lb_context.discover_context({}, {}, []).lb_workdir is None


def test_no_lb_at_all_gives_an_empty_context() -> None:
    assert lb_context.discover_context({}, {}, []).as_json() == {}


def test_bad_numbers_in_environment_are_ignored() -> None:
    context = lb_context.discover_context(
        {}, {"LB_RUN_REPETITION": "two", "LB_RUN_TOTAL_REPS": "0"}, []
    )
    assert context.repetition is None and context.total_repetitions is None


# -- binary lookup ---------------------------------------------------------


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """The plugin directory of a repository-shaped tree:
    <repo>/integrations/lb/ holding the package lb_dfaas_plugin/."""
    directory = tmp_path / "repo" / "integrations" / "lb"
    (directory / "lb_dfaas_plugin").mkdir(parents=True)
    return directory


def test_binary_from_env_wins(layout: Path, tmp_path: Path) -> None:
    explicit = _executable(tmp_path / "elsewhere" / "lb-dfaas")
    _executable(layout / "bin" / "lb-dfaas")
    assert lb_binary.find_binary({"LB_DFAAS_BIN": str(explicit)}, layout) == explicit


def test_binary_env_pointing_nowhere_is_an_error(layout: Path, tmp_path: Path) -> None:
    _executable(layout / "bin" / "lb-dfaas")
    with pytest.raises(lb_binary.BinaryNotFound, match="LB_DFAAS_BIN=.*not an executable"):
        lb_binary.find_binary({"LB_DFAAS_BIN": str(tmp_path / "missing")}, layout)


def test_binary_next_to_the_plugin(layout: Path) -> None:
    beside = _executable(layout / "bin" / "lb-dfaas")
    _executable(layout.parents[1] / "target" / "release" / "lb-dfaas")
    assert lb_binary.find_binary({"PATH": ""}, layout) == beside


def test_binary_from_the_repository_build_newest_first(layout: Path) -> None:
    release = _executable(layout.parents[1] / "target" / "release" / "lb-dfaas")
    debug = _executable(layout.parents[1] / "target" / "debug" / "lb-dfaas")
    os.utime(release, (1_000_000, 1_000_000))
    assert lb_binary.find_binary({"PATH": ""}, layout) == debug
    os.utime(debug, (500_000, 500_000))
    assert lb_binary.find_binary({"PATH": ""}, layout) == release


def test_binary_from_path(layout: Path, tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "pathdir" / "lb-dfaas")
    assert lb_binary.find_binary({"PATH": str(on_path.parent)}, layout) == on_path


def test_missing_binary_error_names_all_three_places(layout: Path) -> None:
    with pytest.raises(lb_binary.BinaryNotFound) as info:
        lb_binary.find_binary({"PATH": ""}, layout)
    message = str(info.value)
    assert "LB_DFAAS_BIN" in message
    assert str(layout / "bin" / "lb-dfaas") in message
    assert str(layout.parents[1] / "target" / "release" / "lb-dfaas") in message
    assert "PATH" in message


def test_the_plugin_directory_is_the_one_holding_the_package() -> None:
    # integrations/lb/ here, as _user/lb_dfaas_plugin/ where lb-install puts it.
    assert lb_binary.plugin_dir() == Path(__file__).resolve().parents[1]
    assert (lb_binary.plugin_dir() / "lb_dfaas_plugin" / "plugin.py").is_file()


def test_non_executable_file_is_not_taken(layout: Path) -> None:
    beside = layout / "bin" / "lb-dfaas"
    beside.parent.mkdir()
    beside.write_text("not executable")
    with pytest.raises(lb_binary.BinaryNotFound):
        lb_binary.find_binary({"PATH": ""}, layout)


# -- result mapping --------------------------------------------------------


def _doc(**overrides: object) -> bytes:
    doc = {
        "returncode": 0,
        "success": True,
        "interrupted": False,
        "dfaas_functions": ["figlet"],
        "dfaas_results": [],
        "error": None,
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_successful_result_is_kept_whole() -> None:
    result = lb_binary.map_run_result(0, _doc(), [])
    assert result["success"] is True and result["returncode"] == 0 and result["error"] is None
    assert result["dfaas_functions"] == ["figlet"]


def test_protocol_error_object_becomes_lb_error_fields() -> None:
    error = {
        "type": "environment",
        "message": "k6 host unreachable",
        "context": {"host": "10.0.0.2"},
    }
    result = lb_binary.map_run_result(3, _doc(returncode=3, success=False, error=error), ["x"])
    assert result["error"] == "k6 host unreachable"
    assert result["error_type"] == "environment"
    assert result["error_context"] == {"host": "10.0.0.2"}
    assert result["success"] is False and result["returncode"] == 3


def test_nonzero_exit_without_error_gets_one() -> None:
    result = lb_binary.map_run_result(1, _doc(returncode=1, success=True), ["last words"])
    assert result["success"] is False
    assert "exit code 1" in result["error"]
    assert result["error_context"]["stderr_tail"] == ["last words"]


def test_process_exit_code_is_the_returncode() -> None:
    result = lb_binary.map_run_result(130, _doc(returncode=0, interrupted=True), [])
    assert result["returncode"] == 130 and result["success"] is False


@pytest.mark.parametrize(
    ("stdout", "returncode", "expected"),
    [
        (b"", -9, "signal SIGKILL"),
        (b"oops\n", 0, "not JSON"),
        (b"[1, 2]", 0, "a JSON list"),
        (b"\xff\xfe{", 2, "exit code 2"),
    ],
)
def test_non_json_stdout_is_a_clear_error_result(
    stdout: bytes, returncode: int, expected: str
) -> None:
    result = lb_binary.map_run_result(returncode, stdout, ["fatal: boom"])
    assert result["success"] is False
    assert result["returncode"] == returncode
    assert result["error_type"] == "OutputParseError"
    assert expected in result["error"]
    assert "fatal: boom" in result["error"]


def test_validation_reasons_from_the_protocol_error() -> None:
    assert lb_binary.validation_reasons(0, '{"ok": true, "warnings": []}') == []
    rejected = {
        "ok": False,
        "error": {
            "type": "invalid_input",
            "message": "invalid configuration: ...",
            "context": {
                "errors": [
                    {"field": "functions[0].name", "reason": "not a valid name"},
                    {"field": "iterations", "reason": "must be >= 1"},
                ]
            },
        },
    }
    assert lb_binary.validation_reasons(2, json.dumps(rejected)) == [
        "functions[0].name: not a valid name",
        "iterations: must be >= 1",
    ]
    bare = {"ok": False, "error": {"type": "invalid_input", "message": "bad JSON at line 1"}}
    assert lb_binary.validation_reasons(2, json.dumps(bare)) == ["bad JSON at line 1"]
    assert lb_binary.validation_reasons(2, "nope")[0].startswith("lb-dfaas validate printed no JSON")
    assert lb_binary.validation_reasons(0, '{"ok": false}') != []
    assert lb_binary.validation_reasons(2, '{"ok": true}') != []


def test_runtime_upper_bound_is_the_plans() -> None:
    head = {"estimated_runtime_seconds": 60, "to_run": 4, "runtime_upper_bound_seconds": 1140}
    assert lb_binary.runtime_upper_bound_s(head) == 1140
    for stale in ({"estimated_runtime_seconds": 60}, {"runtime_upper_bound_seconds": "9"}):
        with pytest.raises(lb_binary.LbDfaasError, match="runtime_upper_bound_seconds"):
            lb_binary.runtime_upper_bound_s(stale)
