"""export_results_to_csv: the files lb's own dfaas plugin writes, from lb's
result entries, by the real ``lb-dfaas export``."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from lb_dfaas_plugin import plugin

FUNCTIONS = ["env", "figlet"]

#: The per-function columns of results.csv, then the node columns.
FUNCTION_COLUMNS = (
    "function_{f}",
    "rate_function_{f}",
    "success_rate_function_{f}",
    "cpu_usage_function_{f}",
    "ram_usage_function_{f}",
    "power_usage_function_{f}",
    "replica_{f}",
    "overloaded_function_{f}",
    "medium_latency_function_{f}",
)
NODE_COLUMNS = [
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
RESULTS_HEADER = [c.format(f=f) for f in FUNCTIONS for c in FUNCTION_COLUMNS] + NODE_COLUMNS
METRICS_HEADER = ["cpu_usage_node", "ram_usage_node", "ram_usage_node_pct", "power_usage_node"] + [
    f"{kind}_usage_function_{f}" for f in FUNCTIONS for kind in ("cpu", "ram", "power")
]


@pytest.fixture
def dfaas(real_binary: Path) -> plugin.DfaasPlugin:
    """The plugin, using the repository's binary."""
    return plugin.DfaasPlugin(environ=dict(os.environ, LB_DFAAS_BIN=str(real_binary)))


def result_row(env_rate: object, figlet_rate: object, rest: int) -> dict:
    row: dict = {}
    for name, rate in (("env", env_rate), ("figlet", figlet_rate)):
        present = rate is not None
        row.update(
            {
                f"function_{name}": name if present else "",
                f"rate_function_{name}": rate if present else "",
                f"success_rate_function_{name}": "1.000" if present else "",
                f"cpu_usage_function_{name}": 12.3456 if present else "",
                f"ram_usage_function_{name}": float("nan") if present else "",
                f"power_usage_function_{name}": "nan" if present else "",
                f"replica_{name}": 1 if present else "",
                f"overloaded_function_{name}": False if present else "",
                f"medium_latency_function_{name}": "3.500" if present else "",
            }
        )
    row.update(
        {
            "cpu_usage_idle_node": "1.000",
            "cpu_usage_node": "20.000",
            "ram_usage_idle_node": "100.000",
            "ram_usage_node": "120.000",
            "ram_usage_idle_node_percentage": "10.000",
            "ram_usage_node_percentage": "12.000",
            "power_usage_idle_node": "nan",
            "power_usage_node": "nan",
            "rest_seconds": rest,
            "overloaded_node": 0,
        }
    )
    return row


def entries(artifacts: list[str] | None = None) -> list[dict]:
    rep1 = {
        "dfaas_functions": FUNCTIONS,
        "dfaas_results": [result_row(0, 10, 5)],
        "dfaas_skipped": [
            {
                "function_env": "env",
                "rate_function_env": 10,
                "function_figlet": "",
                "rate_function_figlet": "",
            }
        ],
        "dfaas_index": [
            {"functions": ["env", "figlet"], "rates": [0, 10], "results_file": "results.csv"}
        ],
        "dfaas_summaries": [
            {"config_id": "abcdef012345", "iteration": 1, "summary": {"metrics": {"a": 1}}}
        ],
        "dfaas_metrics": [
            {
                "config_id": "abcdef012345",
                "iteration": 1,
                "metrics": {
                    "cpu_usage_node": 20.0,
                    "ram_usage_node": 120.0,
                    "ram_usage_node_pct": 12.0,
                    "power_usage_node": "nan",
                    "functions": {"env": {"cpu": 1.5, "ram": 2.0, "power": "nan"}},
                },
            }
        ],
        "dfaas_scripts": [
            {"config_id": "abcdef012345", "script": "export default function () {}\n"}
        ],
        "artifacts": artifacts or [],
    }
    rep2 = {
        "dfaas_functions": FUNCTIONS,
        "dfaas_results": [result_row(None, 20, 7)],
        "dfaas_skipped": [],
        "dfaas_index": [
            {"functions": ["env", "figlet"], "rates": [0, 10], "results_file": "results.csv"},
            {"functions": ["figlet"], "rates": [20], "results_file": "results.csv"},
        ],
        "dfaas_summaries": [],
        "dfaas_metrics": [],
        "dfaas_scripts": [{"config_id": "abcdef012345", "script": "a different script\n"}],
        "artifacts": [],
    }
    return [
        {"repetition": 1, "success": True, "generator_result": rep1},
        {"repetition": 2, "success": True, "generator_result": rep2},
        {"repetition": 3, "success": False, "generator_result": {"error": "crashed"}},
    ]


def read_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def test_results_csv_header_and_cells(dfaas: plugin.DfaasPlugin, tmp_path: Path) -> None:
    dfaas.export_results_to_csv(entries(), tmp_path, "run-1", "dfaas")
    rows = read_rows(tmp_path / "results.csv")
    assert rows[0] == RESULTS_HEADER
    assert len(rows[0]) == 9 * 2 + 10
    assert rows[0][:9] == [
        "function_env",
        "rate_function_env",
        "success_rate_function_env",
        "cpu_usage_function_env",
        "ram_usage_function_env",
        "power_usage_function_env",
        "replica_env",
        "overloaded_function_env",
        "medium_latency_function_env",
    ]
    assert rows[0][-10:] == NODE_COLUMNS
    first = dict(zip(rows[0], rows[1]))
    assert first["rate_function_env"] == "0"
    assert first["cpu_usage_function_env"] == "12.346"
    assert first["ram_usage_function_env"] == "nan"
    assert first["overloaded_function_env"] == "0"
    assert first["rest_seconds"] == "5"
    second = dict(zip(rows[0], rows[2]))
    assert second["function_env"] == "" and second["replica_env"] == ""
    assert second["rate_function_figlet"] == "20"
    assert len(rows) == 3


def test_skipped_and_index_files(dfaas: plugin.DfaasPlugin, tmp_path: Path) -> None:
    dfaas.export_results_to_csv(entries(), tmp_path, "run-1", "dfaas")
    assert read_rows(tmp_path / "skipped.csv") == [
        ["function_env", "rate_function_env", "function_figlet", "rate_function_figlet"],
        ["env", "10", "", ""],
    ]
    assert (tmp_path / "index.csv").read_bytes() == (
        b"functions;rates;results_file\n"
        b"['env', 'figlet'];[0, 10];results.csv\n"
        b"['figlet'];[20];results.csv\n"
    )


def test_summaries_metrics_and_scripts(dfaas: plugin.DfaasPlugin, tmp_path: Path) -> None:
    paths = dfaas.export_results_to_csv(entries(), tmp_path, "run-1", "dfaas")
    summary = tmp_path / "summaries" / "summary-abcdef012345-iter1-rep1.json"
    assert json.loads(summary.read_text()) == {"metrics": {"a": 1}}
    metrics = read_rows(tmp_path / "metrics" / "metrics-abcdef012345-iter1-rep1.csv")
    assert metrics[0] == METRICS_HEADER
    assert dict(zip(metrics[0], metrics[1])) == {
        "cpu_usage_node": "20.0",
        "ram_usage_node": "120.0",
        "ram_usage_node_pct": "12.0",
        "power_usage_node": "nan",
        "cpu_usage_function_env": "1.5",
        "ram_usage_function_env": "2.0",
        "power_usage_function_env": "nan",
        "cpu_usage_function_figlet": "",
        "ram_usage_function_figlet": "",
        "power_usage_function_figlet": "",
    }
    script = tmp_path / "k6_scripts" / "config-abcdef012345.js"
    assert script.read_text() == "export default function () {}\n"  # the first one wins
    assert set(paths) == {
        tmp_path / "results.csv",
        tmp_path / "skipped.csv",
        tmp_path / "index.csv",
        summary,
        tmp_path / "metrics" / "metrics-abcdef012345-iter1-rep1.csv",
        script,
    }


def test_files_written_by_the_binary_are_kept(dfaas: plugin.DfaasPlugin, tmp_path: Path) -> None:
    durable = tmp_path / "results.csv"
    durable.write_text("the binary's rows, including an earlier attempt\n")
    index = tmp_path / "index.csv"
    index.write_text("binary index\n")
    paths = dfaas.export_results_to_csv(
        entries(artifacts=[str(durable), str(index)]), tmp_path, "run-1", "dfaas"
    )
    assert durable.read_text() == "the binary's rows, including an earlier attempt\n"
    assert index.read_text() == "binary index\n"
    assert durable not in paths and index not in paths
    assert (tmp_path / "skipped.csv") in paths


def test_nothing_to_export_without_functions(dfaas: plugin.DfaasPlugin, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        dfaas.export_results_to_csv(
            [{"generator_result": {"error": "x"}}], out, "r", "dfaas"
        )
        == []
    )
    assert not out.exists()


def test_csv_cell_formats(dfaas: plugin.DfaasPlugin, tmp_path: Path) -> None:
    values = (None, True, 3, 0.1236, float("nan"), -0.0001, "x")
    columns = RESULTS_HEADER[: len(values)]
    result = {"dfaas_functions": FUNCTIONS, "dfaas_results": [dict(zip(columns, values))]}
    dfaas.export_results_to_csv([{"repetition": 1, "generator_result": result}], tmp_path, "r", "d")
    rows = read_rows(tmp_path / "results.csv")
    assert rows[1][: len(values)] == ["", "1", "3", "0.124", "nan", "0.000", "x"]
