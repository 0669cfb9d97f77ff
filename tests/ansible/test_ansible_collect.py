"""collect/pre.yml and collect/post.yml, included with include_tasks from a
harness shaped like lb's collect playbook, for real: one target reached over
SSH to the testbed's k6 host, one over a local connection, a fabricated lb
output tree and k6 workspace, and the fetched files compared byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from playbook_runner import ANSIBLE_DIR, HARNESS_DIR, Ansible

HARNESS = HARNESS_DIR / "collect.yml"
RUN_ID = "run-20240101-1"
CONFIG_IDS = ("0a1b2c3d4e5f", "5f4e3d2c1b0a")


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def fabricate(tmp_path: Path) -> dict[str, Path]:
    """lb's remote output tree and the k6 workspace, as a finished run leaves them."""
    remote = tmp_path / "remote"
    ws = tmp_path / "ws"
    t1 = remote / "target1" / "dfaas"
    write(t1 / "results.csv", b"function_env,rate_function_env\nenv,10\n")
    write(t1 / "skipped.csv", b"function_env,rate_function_env\n")
    write(t1 / "index.csv", b"functions;rates;results_file\n['env'];[10];results.csv\n")
    write(t1 / "summaries" / f"summary-{CONFIG_IDS[0]}-iter1-rep1.json", b'{"metrics": {}}\n')
    write(t1 / "metrics" / f"metrics-{CONFIG_IDS[0]}-iter1-rep1.csv", os.urandom(4096))
    write(t1 / "k6_scripts" / f"config-{CONFIG_IDS[0]}.js", b"export default function () {}\r\n")
    write(t1 / "notes.txt", b"not a dfaas output\n")
    write(remote / "target1" / "other" / "results.csv", b"another workload\n")
    t2 = remote / "target2" / "dfaas"
    write(t2 / "results.csv", os.urandom(1000))
    write(t2 / "summaries" / f"summary-{CONFIG_IDS[1]}-iter1-rep1.json", b"{}\n")
    for config_id in CONFIG_IDS:
        write(ws / "target1" / RUN_ID / config_id / "k6.log", os.urandom(2048))
    write(ws / "target2" / RUN_ID / CONFIG_IDS[0] / "k6.log", b"running (0m01.0s)\n")
    write(ws / "target1" / "run-older" / CONFIG_IDS[0] / "k6.log", b"an older run\n")
    return {"remote": remote, "ws": ws, "out": tmp_path / "ctl" / "out", "hosts": tmp_path / "ctl" / "hosts"}


def collect_vars(ansible: Ansible, paths: dict[str, Path], **plugin_assets: str) -> dict[str, Any]:
    return {
        "benchmark_config": {
            "plugin_settings": {"dfaas": ansible.dfaas_settings(paths["ws"])},
            "workloads": {
                "dfaas": {"plugin": "dfaas", "enabled": True, "options": {}},
                "other": {"plugin": "stream", "enabled": True},
            },
            "plugin_assets": {"dfaas": plugin_assets},
        },
        "run_id": RUN_ID,
        "remote_output_root": str(paths["remote"]),
        "output_root": str(paths["out"]),
        "per_host_output": {"target1": str(paths["hosts"] / "target1")},
        **ansible.generator_vars(),
    }


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def targets(ansible: Ansible) -> dict[str, dict[str, Any]]:
    return {"target1": ansible.ssh_host_vars(), "target2": ansible.local_host_vars()}


def test_post_fetches_outputs_and_k6_logs(ansible: Ansible, tmp_path: Path) -> None:
    paths = fabricate(tmp_path)
    extra = collect_vars(
        ansible,
        paths,
        collect_pre_playbook=str(ANSIBLE_DIR / "collect" / "pre.yml"),
        collect_post_playbook=str(ANSIBLE_DIR / "collect" / "post.yml"),
    )

    run = ansible.run(HARNESS, targets(ansible), extra).assert_ok()

    remote = paths["remote"]
    t1 = files_under(remote / "target1" / "dfaas")
    del t1["notes.txt"]
    # target1 has per_host_output; target2 falls back to <output_root>/target2.
    assert files_under(paths["hosts"] / "target1") == {f"dfaas/{name}": data for name, data in t1.items()}
    assert files_under(paths["out"] / "target2") == {
        f"dfaas/{name}": data for name, data in files_under(remote / "target2" / "dfaas").items()
    }
    ws = paths["ws"]
    assert files_under(paths["out"] / "logs" / "k6") == {
        f"target1/{CONFIG_IDS[0]}/k6.log": (ws / "target1" / RUN_ID / CONFIG_IDS[0] / "k6.log").read_bytes(),
        f"target1/{CONFIG_IDS[1]}/k6.log": (ws / "target1" / RUN_ID / CONFIG_IDS[1] / "k6.log").read_bytes(),
        f"target2/{CONFIG_IDS[0]}/k6.log": (ws / "target2" / RUN_ID / CONFIG_IDS[0] / "k6.log").read_bytes(),
    }
    # What target2 lacks is reported, not fatal.
    assert (
        f"not found under {remote / 'target2'} on target2: dfaas/index.csv, dfaas/k6_scripts, dfaas/metrics, "
        "dfaas/skipped.csv" in run.output
    ), run.describe()
    assert f"not found under {remote / 'target1'}" not in run.output

    again = ansible.run(HARNESS, targets(ansible), extra).assert_ok()
    assert again.total_changed() == 0, again.describe()


def test_pre_only_prepares_controller_dirs(ansible: Ansible, tmp_path: Path) -> None:
    paths = {"remote": tmp_path / "remote", "ws": tmp_path / "ws", "out": tmp_path / "out", "hosts": tmp_path / "hosts"}
    extra = collect_vars(ansible, paths, collect_pre_playbook=str(ANSIBLE_DIR / "collect" / "pre.yml"))

    ansible.run(HARNESS, targets(ansible), extra).assert_ok()

    assert (paths["hosts"] / "target1" / "dfaas").is_dir()
    assert (paths["out"] / "target2" / "dfaas").is_dir()
    assert (paths["out"] / "logs" / "k6" / "target1").is_dir()
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert not paths["remote"].exists() and not paths["ws"].exists()


def test_post_with_unreachable_generator_is_not_fatal(ansible: Ansible, tmp_path: Path) -> None:
    paths = fabricate(tmp_path)
    extra = collect_vars(ansible, paths, collect_post_playbook=str(ANSIBLE_DIR / "collect" / "post.yml"))
    # Nothing listens there: the generator is unreachable.
    extra["benchmark_config"]["plugin_settings"]["dfaas"]["k6_port"] = ansible.k6host.port + 1

    run = ansible.run(HARNESS, targets(ansible), extra).assert_ok()

    assert (paths["hosts"] / "target1" / "dfaas" / "results.csv").is_file()
    assert not (paths["out"] / "logs" / "k6").exists()
    assert "no k6 logs for target1 (k6 generator dfaas-k6 unreachable" in run.output, run.describe()
    assert "no k6 logs for target2 (k6 generator dfaas-k6 unreachable" in run.output


def test_post_reads_the_section_named_in_the_collect_extravars(ansible: Ansible, tmp_path: Path) -> None:
    """A plugin registered under another name (peva_faas) passes its section in
    its collect extravars; lb's collect play exposes them only as the loop item."""
    paths = fabricate(tmp_path)
    for host in ("target1", "target2"):
        (paths["remote"] / host / "dfaas").rename(paths["remote"] / host / "peva_faas")
    extra = collect_vars(ansible, paths)
    config = extra["benchmark_config"]
    config["plugin_settings"] = {"peva_faas": config["plugin_settings"]["dfaas"]}
    config["workloads"] = {
        "peva_faas": {"plugin": "peva_faas", "enabled": True},
        "dfaas": {"plugin": "dfaas", "enabled": True},
    }
    config["plugin_assets"] = {
        "peva_faas": {
            "collect_post_playbook": str(ANSIBLE_DIR / "collect" / "post.yml"),
            "collect_post_extravars": {"dfaas_settings_section": "peva_faas"},
        }
    }

    ansible.run(HARNESS, targets(ansible), extra).assert_ok()

    t1 = files_under(paths["remote"] / "target1" / "peva_faas")
    del t1["notes.txt"]
    assert files_under(paths["hosts"] / "target1") == {f"peva_faas/{name}": data for name, data in t1.items()}
    assert (paths["out"] / "logs" / "k6" / "target1" / CONFIG_IDS[0] / "k6.log").is_file()


def test_post_brings_the_logs_of_a_k6_run_on_the_target_with_its_outputs(ansible: Ansible, tmp_path: Path) -> None:
    """peva_faas's default k6_host (local): k6 ran on the target, in the
    workload's output directory; its logs come with the outputs and no k6
    generator is asked for any."""
    paths = fabricate(tmp_path)
    t1 = paths["remote"] / "target1" / "peva_faas"
    (paths["remote"] / "target1" / "dfaas").rename(t1)
    local_log = t1 / "k6" / "target1" / RUN_ID / CONFIG_IDS[0] / "k6.log"
    write(local_log, os.urandom(512))
    write(t1 / "k6" / "target1" / RUN_ID / CONFIG_IDS[0] / "summary.json", b"{}\n")
    extra = collect_vars(ansible, paths)
    config = extra["benchmark_config"]
    config["plugin_settings"] = {"peva_faas": {}}
    config["workloads"] = {"peva_faas": {"plugin": "peva_faas", "enabled": True}}
    config["plugin_assets"] = {
        "peva_faas": {
            "collect_post_playbook": str(ANSIBLE_DIR / "collect" / "post.yml"),
            "collect_post_extravars": {"dfaas_settings_section": "peva_faas"},
        }
    }

    run = ansible.run(HARNESS, {"target1": ansible.ssh_host_vars()}, extra).assert_ok()

    fetched = files_under(paths["hosts"] / "target1" / "peva_faas")
    assert fetched[f"k6/target1/{RUN_ID}/{CONFIG_IDS[0]}/k6.log"] == local_log.read_bytes()
    # The workspace's other files duplicate summaries/ and k6_scripts/.
    assert not any(name.endswith("summary.json") and name.startswith("k6/") for name in fetched)
    assert "results.csv" in fetched
    assert not (paths["out"] / "logs" / "k6").exists()
    assert "k6 ran on target1 itself (k6_host local): its k6 logs came with the workload outputs" in " ".join(
        run.output.split()
    ), run.describe()
    assert "no k6 logs for target1" not in run.output


def test_post_fetches_each_workloads_memory_and_its_write_ahead_log(ansible: Ansible, tmp_path: Path) -> None:
    """memory.db_path as lb-dfaas resolves it: relative under lb's workdir,
    absolute as it is (from the workload's options, which lb merges over the
    plugin settings); the write-ahead log beside it when there is one, and a
    stale one from an earlier collect removed; nothing for a disabled memory
    or a path with '..'."""
    paths = fabricate(tmp_path)
    lb_workdir = tmp_path / "lbwd"
    shared = lb_workdir / "benchmark_results" / "peva_faas" / "memory" / "peva_faas.duckdb"
    write(shared, os.urandom(16384))
    write(shared.with_name("peva_faas.duckdb.wal"), os.urandom(700))
    own = tmp_path / "elsewhere" / "own.duckdb"
    write(own, os.urandom(3000))
    extra = collect_vars(ansible, paths, collect_post_playbook=str(ANSIBLE_DIR / "collect" / "post.yml"))
    extra["lb_workdir"] = str(lb_workdir)
    workloads = extra["benchmark_config"]["workloads"]
    workloads["dfaas_own"] = {"plugin": "dfaas", "options": {"memory": {"db_path": str(own)}}}
    workloads["dfaas_off"] = {"plugin": "dfaas", "options": {"memory": {"enabled": False}}}
    workloads["dfaas_up"] = {"plugin": "dfaas", "options": {"memory": {"db_path": "../up.duckdb"}}}
    controller = paths["hosts"] / "target1"
    stale = controller / "dfaas_own" / "own.duckdb.wal"
    write(stale, b"a log of an older file\n")

    run = ansible.run(HARNESS, {"target1": ansible.local_host_vars()}, extra).assert_ok()

    assert (controller / "dfaas" / "peva_faas.duckdb").read_bytes() == shared.read_bytes()
    assert (controller / "dfaas" / "peva_faas.duckdb.wal").read_bytes() == (
        shared.with_name("peva_faas.duckdb.wal").read_bytes()
    )
    assert (controller / "dfaas_own" / "own.duckdb").read_bytes() == own.read_bytes()
    assert not stale.exists(), "a stale write-ahead log would be replayed into the newer file"
    assert not list(controller.glob("dfaas_off/*.duckdb*"))
    assert not list(controller.glob("dfaas_up/*.duckdb*"))
    assert "memory.db_path of workload dfaas_up has '..' segments" in run.output, run.describe()

    # The log is gone once the run that left it is checkpointed.
    shared.with_name("peva_faas.duckdb.wal").unlink()
    ansible.run(HARNESS, {"target1": ansible.local_host_vars()}, extra).assert_ok()
    assert not (controller / "dfaas" / "peva_faas.duckdb.wal").exists()
    assert (controller / "dfaas" / "peva_faas.duckdb").read_bytes() == shared.read_bytes()
