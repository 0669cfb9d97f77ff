//! The campaign memory (DuckDB) of a real run, laid out as lb lays a
//! target out: the output directory `<remote root>/<target>/<workload>`
//! and lb's workdir (`context.lb_workdir`), under which the default
//! `memory.db_path` resolves.
//!
//! - the stop file mid-run: exit 130 within 5 s, no k6 left, the memory
//!   checkpointed (no write-ahead log) and closed; lb-dfaas's collect task
//!   files, included the way lb's collect play includes them, bring the
//!   file to the controller, where Python's own `duckdb` (PyPI) finds the
//!   finished iterations with their Prometheus-derived metrics;
//! - SIGKILL mid-iteration: the file and its write-ahead log open in DuckDB
//!   with every finished iteration, and a rerun into a fresh output
//!   directory runs only what the memory does not have.
//!
//! The stop test runs 4 s iterations; `LBD_E2E_MEMORY_DURATION=1m` runs it
//! with 1-minute ones (`cargo test --test e2e -- --test-threads=1
//! memory_stop_file`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{Testbed, TestbedOptions};

/// The target's name in the collect inventory.
const TARGET: &str = "target1";
const WORKLOAD: &str = "dfaas";
/// `memory.db_path`'s default, under lb's workdir.
const DEFAULT_DB: &str = "benchmark_results/peva_faas/memory/peva_faas.duckdb";

fn gateway() -> TestbedOptions {
    TestbedOptions {
        functions: Some("fast=2:2".into()),
        ..TestbedOptions::default()
    }
}

/// A test's lb-shaped directories.
struct LbLayout {
    remote_root: PathBuf,
    lb_workdir: PathBuf,
    controller_root: PathBuf,
}

impl LbLayout {
    fn new(work: &Workdir) -> Self {
        LbLayout {
            remote_root: work.path().join("remote"),
            lb_workdir: work.path().join("lb-workdir"),
            controller_root: work.path().join("controller"),
        }
    }

    /// lb's output directory for the workload on the target (`name` lets a
    /// rerun use a fresh one).
    fn output_dir(&self, name: &str) -> PathBuf {
        self.remote_root.join(TARGET).join(name)
    }

    fn memory(&self) -> PathBuf {
        self.lb_workdir.join(DEFAULT_DB)
    }
}

/// A request as the lb plugin sends it on the target.
fn lb_request(
    config: Value,
    work: &Workdir,
    layout: &LbLayout,
    output: &str,
    run_id: &str,
) -> Value {
    json!({
        "config": config,
        "context": {
            "host": TARGET,
            "workload": WORKLOAD,
            "run_id": run_id,
            "repetition": 1,
            "total_repetitions": 1,
            "output_dir": layout.output_dir(output),
            "stop_file": work.stop_file(),
            "lb_workdir": layout.lb_workdir,
        },
    })
}

fn one_function(
    tb: &Testbed,
    work: &Workdir,
    rates: &[u64],
    duration: &str,
    iterations: u32,
) -> Value {
    with(
        base_config(tb, work),
        json!({
            "functions": [{"name": "fast"}],
            "rate_strategy": {"type": "custom", "rates": rates},
            "combinations": {"min_functions": 1, "max_functions": 2},
            "duration": duration,
            "iterations": iterations,
        }),
    )
}

/// Waits for `iteration` (`"2/3"`) of config `id` to start and k6 to run.
fn wait_until_k6_runs(
    running: &mut Running,
    tb: &Testbed,
    id: &str,
    iteration: &str,
    limit: Duration,
) {
    running.wait_for_event(limit, |e| {
        is_event(
            e,
            "iteration_started",
            &format!("config {id} iteration {iteration} started"),
        )
    });
    running.wait_for_event(Duration::from_secs(60), is_k6_line);
    assert!(
        eventually(Duration::from_secs(10), || !k6_processes(&tb.netns)
            .is_empty()),
        "k6 is not running on the k6 host although it streams output"
    );
}

/// Runs `script` with Python's `duckdb` (the PyPI package lb uses) and
/// the arguments; returns its stdout as JSON.
fn python_duckdb(script: &str, args: &[&Path]) -> Value {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{python} with duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The measured events and the runs of a memory file, opened read-only by
/// Python's duckdb: `{"version", "events": [{config_id, iteration,
/// skip_reason, run_id, payload}], "runs": [{run_id, status, ended}]}`.
const READ_MEMORY: &str = r#"
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
events = [
    {"config_id": c, "iteration": i, "skip_reason": s, "run_id": r, "payload": json.loads(p)}
    for c, i, s, r, p in con.execute(
        "SELECT config_id, iteration, skip_reason, run_id, CAST(payload_json AS VARCHAR) "
        "FROM execution_events ORDER BY config_id, iteration, run_id").fetchall()
]
runs = [
    {"run_id": r, "status": s, "ended": e is not None}
    for r, s, e in con.execute("SELECT run_id, status, ended_at FROM run_sessions ORDER BY run_id").fetchall()
]
summaries = con.execute("SELECT count(*) FROM k6_raw_summaries").fetchone()[0]
print(json.dumps({"version": duckdb.__version__, "events": events, "runs": runs, "summaries": summaries}))
"#;

/// The measured (not skipped) events of `memory`, as `(config_id, iteration)`.
fn measured(memory: &Value) -> Vec<(String, i64)> {
    memory["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["skip_reason"].is_null())
        .map(|e| {
            (
                e["config_id"].as_str().unwrap().to_string(),
                e["iteration"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// A number the payload's metrics hold (NaN is written as the string `"nan"`).
fn measured_number(value: &Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a measured number: {value}"))
}

/// lb's collect play (the harness shaped like it, tests/ansible/harness/
/// collect.yml) including lb-dfaas's collect/post.yml, for one target
/// reached over a local connection; the k6 logs come from the testbed's
/// k6 host over SSH.
fn collect(tb: &Testbed, work: &Workdir, layout: &LbLayout, run_id: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = work.path().join("ansible");
    for sub in ["home", "local-tmp", "remote-tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("ansible.cfg"),
        "[defaults]\nretry_files_enabled = False\n",
    )
    .unwrap();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let interpreter = Command::new(&python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap();
    let inventory = json!({"all": {"hosts": {TARGET: {
        "ansible_connection": "local",
        "ansible_python_interpreter": interpreter,
    }}}});
    let ssh_args = format!(
        "-o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10",
        tb.k6_known_hosts.display()
    );
    let extra = json!({
        "benchmark_config": {
            "plugin_settings": {"dfaas": {
                "k6_host": tb.k6_host,
                "k6_port": tb.k6_port,
                "k6_user": tb.k6_user,
                "k6_ssh_key": tb.k6_ssh_key,
                "k6_workspace_root": work.workspace_root(),
                "k6_ssh_common_args": ssh_args,
                "k6_python_interpreter": interpreter,
            }},
            "workloads": {WORKLOAD: {"plugin": "dfaas", "enabled": true}},
            "plugin_assets": {"dfaas": {
                "collect_post_playbook": repo.join("ansible/collect/post.yml"),
            }},
        },
        "run_id": run_id,
        "remote_output_root": layout.remote_root,
        "output_root": layout.controller_root,
        "per_host_output": {},
        "lb_workdir": layout.lb_workdir,
    });
    std::fs::write(dir.join("inventory.json"), inventory.to_string()).unwrap();
    std::fs::write(dir.join("extra.json"), extra.to_string()).unwrap();
    let out = Command::new("ansible-playbook")
        .arg("-i")
        .arg(dir.join("inventory.json"))
        .arg(repo.join("tests/ansible/harness/collect.yml"))
        .arg("-e")
        .arg(format!("@{}", dir.join("extra.json").display()))
        .current_dir(&dir)
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_HOME", dir.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("local-tmp"))
        .env("ANSIBLE_REMOTE_TEMP", dir.join("remote-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_SSH_ARGS", "-o ControlMaster=no")
        .env("TESTBED_SKIP_SHELL_RC", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ansible-playbook (pip install ansible-core): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("failed=0") && text.contains("unreachable=0"),
        "the collect play failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stop_file_mid_run(duration: &str) {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let layout = LbLayout::new(&work);
    let run_id = "e2e-memory-stop";
    let config = one_function(&tb, &work, &[5], duration, 3);
    let id = config_id(&[("fast", 5)]);
    let mut running = Running::spawn(&lb_request(config, &work, &layout, WORKLOAD, run_id));
    // The first iteration is finished, the second in flight.
    wait_until_k6_runs(&mut running, &tb, &id, "2/3", Duration::from_secs(240));
    std::fs::write(work.stop_file(), b"stop\n").unwrap();
    let stopped = Instant::now();
    let mut exited = None;
    let quick = eventually(Duration::from_secs(5), || {
        exited = running.try_exit();
        exited.is_some()
    });
    assert!(
        quick,
        "lb-dfaas still runs 5 s after the stop file appeared; stderr:\n{}",
        running.stderr().join("\n")
    );
    eprintln!(
        "memory_stop_file: exited {:?} after the stop file",
        stopped.elapsed()
    );
    let finished = running.wait(RUN_LIMIT);
    assert_eq!(finished.code, Some(130), "stderr:\n{}", finished.log());
    assert_eq!(exited, Some(Some(130)));
    assert_eq!(finished.result()["interrupted"], true);
    assert!(
        eventually(Duration::from_secs(5), || k6_processes(&tb.netns)
            .is_empty()),
        "k6 left running: {:?}",
        k6_processes(&tb.netns)
    );

    // Checkpointed and closed before the exit: no write-ahead log left.
    let memory = layout.memory();
    assert!(memory.is_file(), "no memory at {}", memory.display());
    let wal = memory.with_file_name("peva_faas.duckdb.wal");
    assert!(
        !wal.exists(),
        "the memory was not checkpointed: {}",
        wal.display()
    );
    let events = finished.events();
    assert!(
        events
            .iter()
            .any(|e| is_event(e, "log", &format!("memory: {}", memory.display()))),
        "no event names the memory file:\n{}",
        finished.log()
    );

    collect(&tb, &work, &layout, run_id);
    let fetched = layout
        .controller_root
        .join(TARGET)
        .join(WORKLOAD)
        .join("peva_faas.duckdb");
    assert_eq!(
        std::fs::read(&fetched).unwrap_or_else(|e| panic!("{}: {e}", fetched.display())),
        std::fs::read(&memory).unwrap(),
        "the collected memory differs from the target's"
    );
    // The CSVs came along as before.
    assert!(fetched.with_file_name("results.csv").is_file());

    let read = python_duckdb(READ_MEMORY, &[&fetched]);
    assert_eq!(read["version"], "1.4.4");
    assert_eq!(measured(&read), [(id.clone(), 1)], "{read:#}");
    assert_eq!(read["summaries"], 1);
    assert_eq!(
        read["runs"],
        json!([{"run_id": run_id, "status": "interrupted", "ended": true}])
    );
    let payload = &read["events"][0]["payload"];
    let metrics = &payload["metrics"];
    for node in ["cpu_usage_node", "ram_usage_node", "ram_usage_node_pct"] {
        assert!(measured_number(&metrics[node], node) > 0.0, "{metrics:#}");
    }
    measured_number(&metrics["functions"]["fast"]["cpu"], "fast cpu");
    assert!(measured_number(&metrics["functions"]["fast"]["ram"], "fast ram") > 0.0);
    // The row is results.csv's, and the summary k6's own.
    let results = Table::read(&layout.output_dir(WORKLOAD).join("results.csv"), b',');
    for (column, cell) in results.header.iter().zip(&results.rows[0]) {
        let stored = match &payload["result_row"][column] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(&stored, cell, "result_row.{column}");
    }
    let summary = read_json(
        &layout
            .output_dir(WORKLOAD)
            .join(format!("summaries/summary-{id}-iter1-rep1.json")),
    );
    assert_eq!(payload["summary"], summary);
}

#[test]
fn memory_stop_file_mid_run_checkpoints_and_collect_brings_it_to_the_controller() {
    let duration = std::env::var("LBD_E2E_MEMORY_DURATION").unwrap_or_else(|_| "4s".into());
    stop_file_mid_run(&duration);
}

#[test]
fn memory_sigkill_mid_iteration_then_a_rerun_runs_only_what_is_missing() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let _sweep = SshMasterSweep(&tb);
    let work = Workdir::new();
    let layout = LbLayout::new(&work);
    let run_id = "e2e-memory-kill";
    let config = one_function(&tb, &work, &[5, 10], "4s", 2);
    let first = config_id(&[("fast", 5)]);
    let second = config_id(&[("fast", 10)]);

    let mut running = Running::spawn(&lb_request(config.clone(), &work, &layout, "out", run_id));
    wait_until_k6_runs(&mut running, &tb, &first, "2/2", Duration::from_secs(120));
    running.signal("KILL");
    let killed = running.wait(Duration::from_secs(30));
    assert_eq!(killed.code, None, "SIGKILL ends the process by signal");

    // What the kill left (the file and, likely, its write-ahead log) opens
    // in DuckDB with the finished iteration: copied, so that the rerun
    // still finds the file as the kill left it.
    let memory = layout.memory();
    let copy = work.path().join("killed-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for name in ["peva_faas.duckdb", "peva_faas.duckdb.wal"] {
        let from = memory.with_file_name(name);
        if from.exists() {
            std::fs::copy(&from, copy.join(name)).unwrap();
        }
    }
    let after_kill = python_duckdb(READ_MEMORY, &[&copy.join("peva_faas.duckdb")]);
    assert_eq!(
        measured(&after_kill),
        [(first.clone(), 1)],
        "{after_kill:#}"
    );
    assert_eq!(
        after_kill["runs"],
        json!([{"run_id": run_id, "status": "running", "ended": false}])
    );

    // A fresh output directory: only the memory knows what was done. The
    // same run id, as a resumed lb run has (the rerun stops what the
    // killed run left running on the k6 host).
    let rerun = run(&lb_request(config, &work, &layout, "rerun", run_id));
    assert_eq!(rerun.code, Some(0), "rerun; stderr:\n{}", rerun.log());
    let events = rerun.events();
    let started: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "iteration_started")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started.len(), 3, "{started:#?}");
    assert!(started[0].contains(&format!("config {first} iteration 2/2")));
    assert!(events.iter().any(|e| is_event(
        e,
        "log",
        &format!("config {first}: resuming after 1 completed iteration(s)")
    )));
    let rows = Table::read(&layout.output_dir("rerun").join("results.csv"), b',');
    assert_eq!(
        check_results(&rows, &["fast"]),
        vec![
            owned(&[("fast", 5)]),
            owned(&[("fast", 10)]),
            owned(&[("fast", 10)])
        ]
    );

    // Every iteration exactly once; the run ended as completed.
    let read = python_duckdb(READ_MEMORY, &[&memory]);
    let mut got = measured(&read);
    got.sort();
    let mut want = vec![
        (first.clone(), 1),
        (first, 2),
        (second.clone(), 1),
        (second, 2),
    ];
    want.sort();
    assert_eq!(got, want, "{read:#}");
    assert_eq!(read["summaries"], 4);
    assert_eq!(
        read["runs"],
        json!([{"run_id": run_id, "status": "completed", "ended": true}])
    );

    // A third run knows everything: nothing is sent to k6.
    let again = run(&lb_request(
        one_function(&tb, &work, &[5, 10], "4s", 2),
        &work,
        &layout,
        "third",
        "e2e-memory-third",
    ));
    assert_eq!(again.code, Some(0), "stderr:\n{}", again.log());
    let events = again.events();
    assert!(!events.iter().any(|e| e["type"] == "iteration_started"));
    assert_eq!(
        events
            .iter()
            .filter(|e| is_event(e, "config_skipped", "(already_in_memory)"))
            .count(),
        2,
        "{}",
        again.log()
    );
    assert_eq!(
        std::fs::read_to_string(layout.output_dir("third").join("skipped.csv"))
            .unwrap()
            .lines()
            .count(),
        1,
        "configurations known in memory are not skipped.csv's"
    );
}
