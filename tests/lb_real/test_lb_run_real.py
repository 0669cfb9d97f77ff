"""End to end through lb's real controller: ``lb run``.

lb 0.67.0 (the vendored source, installed editable into a Python 3.12 venv)
runs its own playbooks over SSH — setup.yml (ships lb to the target, uv
venv + sync there), our plugin's setup (the k6 host, the target's copy of
the k6 key), run_benchmark.yml (lb's runner on the target, which runs
``lb-dfaas`` through our plugin, and lb's 30 s event poll), collect.yml
(with our collect task files) and the teardowns — against:

- an lb *target*: sshd in its own network namespace and its own mount
  namespace (``testbed/lbtarget.sh``), where the controller's key for the k6
  host is hidden (so the run can only work with the copy the set-up puts in
  the target's ``~/.ssh/dfaas_k6_key``) and ``~`` is a directory of its own;
- the testbed's k6 host (real k6 over SSH), test gateway and Prometheus
  (instance 12; Prometheus reached from the target through a forwarder).

The plugin, the binary and the playbooks get into lb with the product's own
``lb-dfaas lb-install``.

Case 1 runs three configurations of 15 s, so lb's 30 s poll of the target's
event stream lands while the campaign runs: lb's journal must say COMPLETED,
the rows must agree with the gateway's truth counters, the CSVs, summaries
and k6 logs must arrive in lb's output tree on the controller, and no event
of the campaign may match lb's poller rule for the end of a repetition
(status done/failed/stopped) before the campaign ended.

Case 2 stops the run midway with lb's own mechanism (``lb run --stop-file``:
the controller interrupts its playbook and its stop protocol creates
``<lb_workdir>/STOP`` on the target, which lb's runner and lb-dfaas watch):
k6 must be gone from the k6 host within 5 s of that file appearing, the rows
finished before the stop must be on the target, and lb's journal must record
the repetition as stopped.

What lb itself gets wrong offline, worked around here (harness only):

- ``PYSTRAY_BACKEND=dummy``: lb's CLI imports pystray, which without a
  display raises Xlib's DisplayNameError before the run starts.
- lb's setup.yml downloads uv from astral.sh unless
  ``<lb_workdir>/.local/bin/uv`` exists: the venv's ``uv`` is put there before
  each run. Targets have no route to PyPI: the harness fills a uv cache from
  the same tree (``uv sync --frozen --no-dev``) and the target's sshd sets
  ``UV_CACHE_DIR``, ``UV_OFFLINE=1``, ``UV_PYTHON_DOWNLOADS=never`` and
  ``UV_NO_DEV=1`` (lb's runner calls plain ``uv run``, which would add the
  dev group), with Python 3.12 on its PATH.
- ``ANSIBLE_SKIP_TAGS=deps`` skips setup.yml's apt task (no apt repository
  for targets), hence ``collectors: {cli_commands: []}`` (no sysstat).
- ``lb run`` exits 0 even when a phase failed: the tests read lb's
  ``run_journal.json`` and its output tree instead of the exit code.
- The controller's ``HOME`` and ``ANSIBLE_SSH_ARGS`` (a known_hosts file of
  the test) keep lb's and Ansible's files and SSH host keys out of the
  machine's home; ``remote_hosts`` use ``become: false`` (no sudo here) and an
  explicit ``ansible_python_interpreter``.
- The k6 host's sessions skip root's ``~/.bashrc`` (``TESTBED_SKIP_SHELL_RC``),
  whose ``pyenv init`` would fool Ansible's interpreter discovery there.

What lb 0.67.0 does on a stop, as observed (asserted only where noted):
the controller kills its run playbook, so no poll brings the runner's stop
confirmation back and its stop protocol times out (30 s, twice) before a
"best-effort" teardown; the collect phase is skipped, and the global
teardown deletes the target's output directory — the finished rows are
kept on the target until then (asserted), not collected to the controller.
The journal has no "stopped" status: the repetition is FAILED with the
reason ``stopped`` (asserted).

Run: ``python3 -m pytest -q tests/lb_real`` as root (9 minutes on a busy
2-core machine: case 1 about 5, case 2 about 4; the first run on a machine
also builds lb's venv and uv cache under ``target/lb-real/``, 1-3 minutes,
reused while the vendored lb tree and the interpreter are unchanged).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lb_real_harness import (
    LbRun,
    SshHost,
    config_id,
    ends_repetition,
    from_binary,
    http_json,
    log,
    poll_batches,
    read_csv,
    stream_events,
    wait_until,
)

HOST = "dfaas-target"
WORKLOAD = "dfaas"
#: One function per configuration, so each function's truth is its row's.
FUNCTIONS = ["env", "figlet", "nodeinfo"]
RATE = 5
DURATION_S = 15
#: Configurations of the stop case: long enough that lb's stop (its
#: controller kills its playbook, then runs another to create the STOP file;
#: several seconds on a loaded machine) reaches the target well within the
#: second configuration.
STOP_CASE_DURATION_S = 30
#: Bound on a whole `lb run` (a normal one takes about 3 minutes here).
LB_RUN_LIMIT_S = 900


def benchmark_config(
    bed: dict[str, str], workdir: Path, lb_python312: Path, duration_s: int = DURATION_S
) -> dict:
    """lb's BenchmarkConfig: one target, our dfaas plugin, a campaign of
    three configurations of ``duration_s`` whose verdicts do not depend on
    machine load."""
    interpreter = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else str(lb_python312)
    return {
        "repetitions": 1,
        "warmup_seconds": 0,
        "cooldown_seconds": 0,
        "output_dir": str(workdir / "out"),
        "report_dir": str(workdir / "reports"),
        "data_export_dir": str(workdir / "exports"),
        "collectors": {"cli_commands": []},
        "remote_hosts": [
            {
                "name": HOST,
                "address": bed["LB_TARGET_HOST"],
                "port": int(bed["LB_TARGET_PORT"]),
                "user": bed["LB_TARGET_USER"],
                "become": False,
                "vars": {
                    "ansible_ssh_private_key_file": bed["LB_TARGET_SSH_KEY"],
                    "ansible_ssh_common_args": (
                        f"-o UserKnownHostsFile={bed['LB_TARGET_KNOWN_HOSTS']} "
                        "-o StrictHostKeyChecking=yes"
                    ),
                    "ansible_python_interpreter": interpreter,
                },
            }
        ],
        "remote_execution": {"enabled": True},
        "plugin_settings": {
            "dfaas": {
                "k6_host": bed["K6_HOST"],
                "k6_port": int(bed["K6_PORT"]),
                "k6_user": bed["K6_USER"],
                # The controller's key: hidden from the target (lbtarget.sh).
                "k6_ssh_key": bed["K6_SSH_KEY"],
                "k6_workspace_root": str(workdir / "k6-workspace"),
                "gateway_url": bed["GATEWAY_URL"],
                "prometheus_url": bed["LB_TARGET_PROMETHEUS_URL"],
                # k3s/OpenFaaS cannot run here: no target provisioning.
                "provision_targets": False,
                "functions": [{"name": name} for name in FUNCTIONS],
                "rate_strategy": {"type": "custom", "rates": [RATE]},
                "combinations": {"min_functions": 1, "max_functions": 2},
                "duration": f"{duration_s}s",
                "iterations": 1,
                "cooldown": {"max_wait_seconds": 120, "sleep_step_seconds": 1, "idle_threshold_pct": 100},
                # This machine is shared: never call a configuration
                # overloaded, so none is skipped as dominated and the rows
                # are known in advance.
                "overload": {
                    "cpu_overload_pct_of_capacity": 100,
                    "ram_overload_pct": 100,
                    "success_rate_node_min": 0,
                    "success_rate_function_min": 0,
                    "replicas_overload_threshold": 1000000,
                },
            }
        },
        "workloads": {WORKLOAD: {"plugin": "dfaas"}},
    }


def prepare_target(lb_install, bed: dict[str, str], target: SshHost) -> Path:
    """Before each run: uv where lb's setup.yml looks for it (lb's teardown
    removes the whole workdir), no k6 key left from an earlier run, and the
    controller's k6 key really out of the target's sight. Returns where the
    set-up must put the target's copy of the key."""
    home = Path(bed["LB_TARGET_HOME"])
    uv_dir = home / ".lb" / ".local" / "bin"
    uv_dir.mkdir(parents=True, exist_ok=True)
    (uv_dir / "uv").write_bytes(lb_install.uv.read_bytes())
    (uv_dir / "uv").chmod(0o755)
    key_copy = home / ".ssh" / "dfaas_k6_key"
    key_copy.unlink(missing_ok=True)
    seen = target.ssh(f"test -e {bed['K6_SSH_KEY']} && echo visible || echo hidden")
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == "hidden", "the target sees the controller's k6 key"
    return key_copy


def run_id_for(name: str) -> str:
    return f"{name}-{os.getpid()}-{int(time.time())}"


def target_output(run_id: str) -> Path:
    """lb's output directory of the target (remote_output_root/<host>; the
    file system is shared, so it is read in place)."""
    return Path("/tmp/benchmark_results") / run_id / HOST


def assert_no_early_end(events: list[dict], where: str) -> None:
    """No event of the campaign ends the repetition by lb's poller rule; only
    lb's own runner may, after the campaign's last event."""
    campaign = [i for i, event in enumerate(events) if from_binary(event)]
    assert campaign, f"{where}: no lb-dfaas event"
    early = [events[i] for i in campaign if ends_repetition(events[i], WORKLOAD, 1)]
    assert not early, f"{where}: lb-dfaas events that end the repetition for lb's poller: {early}"
    terminal = [i for i, event in enumerate(events) if ends_repetition(event, WORKLOAD, 1)]
    assert all(i > campaign[-1] for i in terminal), (
        f"{where}: a terminal status came before lb-dfaas's last event: "
        f"{[events[i] for i in terminal if i < campaign[-1]]}"
    )


def test_lb_run_completes_a_campaign(lb_install, plugin_install, bed, k6_host, target, tmp_path):
    key_copy = prepare_target(lb_install, bed, target)
    http_json(f"{bed['GATEWAY_ADMIN_URL']}/truth/reset", method="POST")
    run = LbRun(
        install=lb_install,
        workdir=tmp_path,
        run_id=run_id_for("lbreal"),
        config=benchmark_config(bed, tmp_path, lb_install.python312),
    )
    run.start()
    try:
        run.wait(LB_RUN_LIMIT_S)
    finally:
        run.kill()
    log(f"case 1: lb run took {run.finished_at - run.started_at:.1f}s")
    truth = http_json(f"{bed['GATEWAY_ADMIN_URL']}/truth")

    task = run.task(HOST, WORKLOAD)
    assert task["status"] == "COMPLETED", f"{task}\n{run.diagnostics()}"

    # The set-up gave the target its own copy of the controller's k6 key;
    # the run could only reach the k6 host with it.
    controller_key = Path(bed["K6_SSH_KEY"])
    assert key_copy.is_file(), "the set-up put no k6 key in the target's ~/.ssh/dfaas_k6_key"
    assert key_copy.read_bytes() == controller_key.read_bytes()
    assert key_copy.stat().st_mode & 0o077 == 0, oct(key_copy.stat().st_mode)

    # lb's 30 s poll saw the campaign under way and went on polling.
    batches = poll_batches(run.run_log())
    with_campaign = [i for i, batch in enumerate(batches) if any(from_binary(e) for e in batch)]
    assert len(with_campaign) >= 2, (
        f"no poll of lb's landed while lb-dfaas ran (campaign events in polls {with_campaign} "
        f"of {len(batches)})"
    )
    started = [i for i, b in enumerate(batches) if any(e.get("type") == "run_started" for e in b)]
    finished = [i for i, b in enumerate(batches) if any(e.get("type") == "run_finished" for e in b)]
    assert started and finished and started[0] < finished[0], (started, finished)

    # The target's event stream, as collected to the controller.
    stream = run.output_root / "logs" / f"lb_events-{HOST}.stream.log"
    assert stream.is_file(), f"{stream} was not collected"
    assert_no_early_end(stream_events(stream.read_text()), str(stream))

    # Outputs in lb's output tree on the controller.
    workload_dir = run.output_root / HOST / WORKLOAD
    ids = {name: config_id([(name, RATE)]) for name in FUNCTIONS}
    for relative in ["results.csv", "skipped.csv", "index.csv"]:
        assert (workload_dir / relative).is_file(), f"{relative} not collected"
    for name, cid in ids.items():
        for relative in [
            f"summaries/summary-{cid}-iter1-rep1.json",
            f"metrics/metrics-{cid}-iter1-rep1.csv",
            f"k6_scripts/config-{cid}.js",
        ]:
            assert (workload_dir / relative).is_file(), f"{name}: {relative} not collected"
        k6_log = run.output_root / "logs" / "k6" / HOST / cid / "k6.log"
        assert k6_log.is_file() and k6_log.stat().st_size > 0, f"{name}: {k6_log} not collected"

    # The campaign memory: written under lb's workdir on the target (the
    # default memory.db_path, resolved against the context.lb_workdir our
    # plugin sends), checkpointed at the end, fetched beside the CSVs by our
    # collect tasks, and read here by the duckdb lb pins.
    memory = workload_dir / "peva_faas.duckdb"
    assert memory.is_file(), f"{memory} not collected"
    assert not (workload_dir / "peva_faas.duckdb.wal").exists(), "the memory was not checkpointed"
    import duckdb

    with duckdb.connect(str(memory), read_only=True) as con:
        measured = con.execute(
            "SELECT config_id, iteration FROM execution_events WHERE skip_reason IS NULL"
        ).fetchall()
        sessions = con.execute("SELECT run_id, status FROM run_sessions").fetchall()
    assert sorted(measured) == sorted((cid, 1) for cid in ids.values()), measured
    assert sessions == [(run.run_id, "completed")], sessions

    index = read_csv(workload_dir / "index.csv", delimiter=";")
    assert [row["functions"] for row in index] == [str([name]) for name in FUNCTIONS]
    assert read_csv(workload_dir / "skipped.csv") == []

    # Rows against the gateway's truth: ok / max(received + dropped by k6,
    # rate x duration - 1), as the binary's e2e tests.
    results = read_csv(workload_dir / "results.csv")
    assert len(results) == len(FUNCTIONS), results
    for name in FUNCTIONS:
        rows = [row for row in results if row[f"function_{name}"] == name]
        assert len(rows) == 1, f"{name}: {len(rows)} rows"
        row = rows[0]
        assert row[f"rate_function_{name}"] == str(RATE)
        counts = truth[name]
        assert counts["requests"] > 0, f"{name}: the gateway saw no call: {truth}"
        assert counts["abandoned"] == 0, f"{name}: k6 gave up on calls: {truth}"
        summary = json.loads((workload_dir / f"summaries/summary-{ids[name]}-iter1-rep1.json").read_text())
        dropped = summary["metrics"].get(f"dropped_iterations{{scenario:fn_{name}}}", {}).get("count", 0)
        expected = counts["ok"] / max(counts["requests"] + dropped, RATE * DURATION_S - 1)
        measured = float(row[f"success_rate_function_{name}"])
        assert abs(measured - expected) <= 0.01, (
            f"{name}: success {measured} in results.csv, gateway {counts['ok']} ok of "
            f"{counts['requests']} (+{dropped} dropped by k6) = {expected:.4f}"
        )

    assert k6_host.k6_processes(run.run_id) == []


def test_lb_stop_mid_run(lb_install, plugin_install, bed, k6_host, target, tmp_path):
    prepare_target(lb_install, bed, target)
    stop_file = tmp_path / "STOP"
    run = LbRun(
        install=lb_install,
        workdir=tmp_path,
        run_id=run_id_for("lbstop"),
        config=benchmark_config(bed, tmp_path, lb_install.python312, STOP_CASE_DURATION_S),
        stop_file=stop_file,
    )
    out = target_output(run.run_id)
    workload_out = out / WORKLOAD
    lb_workdir = Path(bed["LB_TARGET_HOME"]) / ".lb"

    def rows(name: str, delimiter: str = ",") -> list[dict[str, str]]:
        path = workload_out / name
        return read_csv(path, delimiter) if path.is_file() else []

    def second_configuration_running() -> bool:
        if not run.running():
            raise AssertionError(f"lb run ended before the stop\n{run.diagnostics()}")
        return len(rows("results.csv")) == 1 and bool(k6_host.k6_processes(run.run_id))

    run.start()
    try:
        wait_until(second_configuration_running, 600, "k6 running the second configuration", step_s=0.5)
        stop_file.touch()
        stopped_at = time.monotonic()
        reached = wait_until((lb_workdir / "STOP").exists, 120, "lb's STOP file on the target", step_s=0.05)
        log(f"case 2: the stop reached the target {reached - stopped_at:.1f}s after the stop file")
        gone = wait_until(lambda: not k6_host.k6_processes(run.run_id), 60, "k6 to leave the k6 host", step_s=0.1)
        log(f"case 2: k6 gone from the k6 host {gone - reached:.2f}s after the stop reached the target")
        assert gone - reached <= 5.0, f"k6 left the k6 host {gone - reached:.1f}s after the stop reached the target"

        # lb's runner on the target ends; what finished is on the target
        # (lb's own teardown deletes that directory later).
        wait_until((lb_workdir / "lb_localrunner.status.json").exists, 120, "lb's runner on the target to end")
        kept = rows("results.csv")
        kept_index = rows("index.csv", delimiter=";")
        stream_path = out / "lb_events.stream.log"
        events = stream_events(stream_path.read_text()) if stream_path.is_file() else []

        run.wait(LB_RUN_LIMIT_S)
    finally:
        run.kill()
    log(f"case 2: lb run took {run.finished_at - run.started_at:.1f}s")

    # The first configuration finished before the stop and stays; the second
    # was cut short, so it has no row.
    assert [row["function_env"] for row in kept] == ["env"], kept
    assert [row["functions"] for row in kept_index] == [str(["env"])], kept_index
    assert_no_early_end(events, str(stream_path))

    # lb 0.67.0 records a repetition stopped mid-run as FAILED, reason "stopped".
    task = run.task(HOST, WORKLOAD)
    log(f"case 2: lb's journal: {task['status']} / {task['current_action']} / {task['error']}")
    assert task["status"] == "FAILED" and "stopped" in (task["error"], task["current_action"]), (
        f"{task}\n{run.diagnostics()}"
    )
    assert k6_host.k6_processes(run.run_id) == []
