//! Several load generators (`k6_hosts`) on the testbed: the testbed's own
//! k6 host and a second one in its own network namespace. One
//! configuration split by k6's execution segments and merged exactly
//! (against the gateway's own count); a generator whose k6 is killed
//! mid-iteration fails that configuration naming it, with the other's k6
//! stopped; a generator starved of CPU (its k6 in a cgroup with a tiny
//! CPU quota) is reported as saturated, and the configuration fails as
//! `generator_saturated`, never as a node overload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{K6Host, Testbed, TestbedOptions};

fn gateway() -> TestbedOptions {
    TestbedOptions {
        functions: Some("fast=0:64:4096".to_string()),
        ..TestbedOptions::default()
    }
}

/// `base_config` with two generators, each its own workspace root (the
/// namespaces share this machine's file system).
fn two_generators(tb: &Testbed, second: &K6Host, work: &Workdir, extra: Value) -> Value {
    let config = with(
        base_config(tb, work),
        json!({
            "k6_hosts": [
                {"host": tb.k6_host, "port": tb.k6_port, "user": tb.k6_user,
                 "ssh_key": tb.k6_ssh_key, "known_hosts_file": tb.k6_known_hosts,
                 "workspace_root": root_of(work, 0)},
                {"host": second.host, "port": second.port, "user": second.user,
                 "ssh_key": second.ssh_key, "known_hosts_file": second.known_hosts,
                 "workspace_root": root_of(work, 1)},
            ],
            "functions": [{"name": "fast"}],
        }),
    );
    with(config, extra)
}

/// A testbed, a second k6 host and the config of one configuration of
/// `fast` at `rate` loaded from both (plus `extra` fields).
struct TwoGenerators {
    tb: Testbed,
    second: K6Host,
    work: Workdir,
    config: Value,
    /// The configuration's id.
    id: String,
}

impl TwoGenerators {
    fn start(rate: u64, duration: &str, extra: Value) -> TwoGenerators {
        let tb = Testbed::start_with(&gateway());
        let second = K6Host::start();
        let work = Workdir::new();
        let config = two_generators(
            &tb,
            &second,
            &work,
            with(
                json!({"rate_strategy": {"type": "custom", "rates": [rate]}, "duration": duration}),
                extra,
            ),
        );
        TwoGenerators {
            tb,
            second,
            work,
            config,
            id: config_id(&[("fast", rate)]),
        }
    }

    /// Generator `index`'s workspace for the run named `run_id`.
    fn workspace(&self, index: usize, run_id: &str) -> PathBuf {
        workspace_dir(&root_of(&self.work, index), HOST, run_id, &self.id)
    }
}

fn root_of(work: &Workdir, index: usize) -> PathBuf {
    work.path().join(format!("generator-{index}"))
}

/// The k6 pid a generator's workspace for `config_id` holds, once there.
fn wait_for_pid(workspace: &Path, limit: Duration) -> u32 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(pid) = std::fs::read_to_string(workspace.join("k6.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no k6 in {}",
            workspace.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

/// A cgroup allowing 2 % of one CPU: the cpu controller of cgroup v1
/// (`cpu.cfs_quota_us`), else cgroup v2's `cpu.max`. Removed on drop.
struct Starvation {
    dir: PathBuf,
}

impl Starvation {
    fn new(id: u32) -> Starvation {
        let name = format!("lbd-starve-{id}-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.cfs_period_us"), "100000").unwrap();
            std::fs::write(dir.join("cpu.cfs_quota_us"), "2000").unwrap();
            return Starvation { dir };
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        assert!(
            controllers.split_whitespace().any(|c| c == "cpu"),
            "no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 /sys/fs/cgroup) to starve k6 with"
        );
        let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
        let dir = v2.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu.max"), "2000 100000").unwrap();
        Starvation { dir }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Starvation {
    fn drop(&mut self) {
        // Empty once its k6 is gone; a cgroup directory is removed with rmdir.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn two_generators_split_one_configuration_and_merge_exactly() {
    let setup = TwoGenerators::start(60, "4s", json!({}));
    let TwoGenerators {
        tb,
        second,
        work,
        config,
        id,
    } = &setup;
    tb.reset_truth().unwrap();
    let finished = run(&request(config.clone(), work, "two", "two"));
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.log());
    let truth = tb.truth().unwrap();
    let out = work.output("two");
    let generators = read_json(&out.join(format!("metrics/generators-{id}-iter1-rep1.json")));
    let generators = generators.as_array().expect("one entry per generator");
    assert_eq!(generators.len(), 2, "{generators:?}");
    assert_eq!(generators[0]["segment"], "0:1/2");
    assert_eq!(generators[1]["segment"], "1/2:1");
    let scheduled: Vec<u64> = generators
        .iter()
        .map(|g| g["scheduled"].as_u64().unwrap())
        .collect();
    // Each ran about half of the 240 arrivals; neither was saturated.
    for (g, n) in generators.iter().zip(&scheduled) {
        assert!((115..=125).contains(n), "{g}");
        assert_eq!(g["saturated"], Value::Null, "{g}");
        assert!(g["k6_cpu_busy"].as_f64().is_some(), "{g}");
    }
    // The merged row against the gateway's own count.
    let received = truth["fast"]["requests"].as_u64().unwrap();
    let ok = truth["fast"]["ok"].as_u64().unwrap();
    assert_eq!(received, scheduled.iter().sum::<u64>(), "{truth}");
    let results = Table::read(&out.join("results.csv"), b',');
    assert_eq!(results.rows.len(), 1);
    let csv: f64 = results
        .cell(0, "success_rate_function_fast")
        .parse()
        .unwrap();
    let expected = ok as f64 / received.max(239) as f64;
    assert!(
        (csv - expected).abs() < 0.0015,
        "{csv} vs {expected}: {truth}"
    );
    // Each generator's summary is kept, under its name and segment.
    let summary = read_json(&out.join(format!("summaries/summary-{id}-iter1-rep1.json")));
    assert_eq!(summary["generators"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        summary["generators"][1]["generator"],
        format!("{}:{}", second.host, second.port)
    );
    // Both generators ran the same script in their own workspace.
    for index in 0..2 {
        let workspace = setup.workspace(index, "two");
        assert!(
            workspace.join("k6.log").is_file(),
            "{}",
            workspace.display()
        );
    }
    let result = finished.result();
    assert_eq!(
        result["dfaas_metrics"][0]["metrics"]["generators"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_generator_killed_mid_iteration_fails_the_configuration_naming_it() {
    let setup = TwoGenerators::start(20, "30s", json!({}));
    let (second, work) = (&setup.second, &setup.work);
    let mut running = Running::spawn(&request(setup.config.clone(), work, "killed", "killed"));
    running.wait_for_event(Duration::from_secs(120), |e| {
        is_event(e, "iteration_started", "iteration 1/1")
    });
    let first = wait_for_pid(&setup.workspace(0, "killed"), Duration::from_secs(10));
    let victim = wait_for_pid(&setup.workspace(1, "killed"), Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    send_signal(victim, "KILL");
    let failed = running.wait_for_event(Duration::from_secs(30), |e| {
        is_event(e, "config_failed", "generator")
    });
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("generator {}:{}", second.host, second.port)),
        "{message}"
    );
    let finished = running.wait(Duration::from_secs(60));
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.log());
    // The other generator's k6 was stopped with it, long before its 30 s.
    assert!(
        !alive(first),
        "k6 {first} on the other generator still runs"
    );
    let out = work.output("killed");
    let skipped = std::fs::read_to_string(out.join("skipped.csv")).unwrap();
    assert_eq!(skipped.lines().count(), 2, "{skipped}");
    let results = Table::read(&out.join("results.csv"), b',');
    assert!(results.rows.is_empty());
}

#[test]
fn a_starved_generator_is_saturated_never_an_overloaded_node() {
    let setup = TwoGenerators::start(400, "4s", json!({"k6_saturation_retries": 0}));
    let (second, work) = (&setup.second, &setup.work);
    let cgroup = Starvation::new(second.id);
    let mut running = Running::spawn(&request(setup.config.clone(), work, "starved", "starved"));
    // k6 starts paused during the cooldown: starve it before it resumes.
    let pid = wait_for_pid(&setup.workspace(1, "starved"), Duration::from_secs(120));
    cgroup.add(pid);
    let saturated = running.wait_for_event(Duration::from_secs(120), |e| {
        is_event(e, "generator_saturated", "saturated")
    });
    let message = saturated["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("generator {}:{}", second.host, second.port)),
        "{message}"
    );
    let finished = running.wait(Duration::from_secs(120));
    drop(cgroup);
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.log());
    assert!(
        finished
            .events()
            .iter()
            .any(|e| is_event(e, "config_failed", "generator_saturated")),
        "{}",
        finished.log()
    );
    // Not a node overload: no overload event, no row, no overloaded index.
    assert!(
        !finished
            .events()
            .iter()
            .any(|e| e["type"] == "iteration_overloaded" || e["type"] == "config_overloaded"),
        "{}",
        finished.log()
    );
    let out = work.output("starved");
    let results = Table::read(&out.join("results.csv"), b',');
    assert!(results.rows.is_empty());
}
