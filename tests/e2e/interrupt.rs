//! Stopping a campaign while k6 runs: the stop file and SIGTERM end the
//! run with 130, stop the remote k6 and keep every finished row; SIGKILL
//! loses at most the iteration in flight and a rerun over the same output
//! directory finishes the campaign without losing or repeating a row.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{Testbed, TestbedOptions};

fn gateway() -> TestbedOptions {
    TestbedOptions {
        functions: Some("fast=2:2".into()),
        ..TestbedOptions::default()
    }
}

/// How the campaign is asked to stop.
#[derive(Debug, Clone, Copy)]
enum StopBy {
    File,
    Sigterm,
}

/// Waits until the campaign is in iteration `iteration` of `config` and k6
/// is really running on the k6 host (its output is streamed back and the
/// process is there).
fn wait_until_k6_runs(running: &mut Running, tb: &Testbed, id: &str, iteration: &str) {
    running.wait_for_event(Duration::from_secs(120), |e| {
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

fn stopped_during_k6(by: StopBy) {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let config = with(
        base_config(&tb, &work),
        json!({
            "functions": [{"name": "fast"}],
            "rate_strategy": {"type": "custom", "rates": [5]},
            "combinations": {"min_functions": 1, "max_functions": 2},
            "duration": "8s",
            "iterations": 3,
        }),
    );
    // The stop comes about a second into the second iteration's 8 s of k6:
    // one row is finished by then, the second is in flight.
    let id = config_id(&[("fast", 5)]);
    let mut running = Running::spawn(&request(config, &work, "out", "e2e-stop"));
    wait_until_k6_runs(&mut running, &tb, &id, "2/3");
    match by {
        StopBy::File => std::fs::write(work.stop_file(), b"stop\n").unwrap(),
        StopBy::Sigterm => running.signal("TERM"),
    }
    let finished = running.wait(Duration::from_secs(120));
    let exited = Instant::now();
    assert_eq!(
        finished.code,
        Some(130),
        "{by:?}: exit code; stderr:\n{}",
        finished.log()
    );
    let result = finished.result();
    assert_eq!(result["returncode"], 130);
    assert_eq!(result["interrupted"], true);
    assert_eq!(result["success"], false);
    assert_eq!(result["error"]["type"], "interrupted");

    // Nothing of k6 is left on the k6 host, and the SSH master is gone.
    let gone = eventually(Duration::from_secs(5), || {
        k6_processes(&tb.netns).is_empty()
    });
    assert!(
        gone,
        "{by:?}: k6 still runs {:?} after lb-dfaas exited: {:?}",
        exited.elapsed(),
        k6_processes(&tb.netns)
    );
    assert!(
        eventually(Duration::from_secs(5), || ssh_masters(&tb).is_empty()),
        "{by:?}: SSH master left running: {:?}",
        ssh_masters(&tb)
    );

    // The first iteration's row is intact; the interrupted one wrote none,
    // and the configuration is not indexed (a rerun will redo it).
    let out = work.output("out");
    let results = Table::read(&out.join("results.csv"), b',');
    assert_eq!(
        check_results(&results, &["fast"]),
        vec![owned(&[("fast", 5)])]
    );
    assert_rows_match_protocol(&results, &result["dfaas_results"]);
    assert!(out
        .join(format!("summaries/summary-{id}-iter1-rep1.json"))
        .is_file());
    assert!(!out
        .join(format!("summaries/summary-{id}-iter2-rep1.json"))
        .exists());
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    assert_eq!(
        index.lines().collect::<Vec<_>>(),
        ["functions;rates;results_file"],
        "{by:?}: an interrupted configuration was indexed"
    );
}

#[test]
fn stop_file_during_k6_stops_the_remote_k6_and_keeps_finished_rows() {
    stopped_during_k6(StopBy::File);
}

#[test]
fn sigterm_during_k6_stops_the_remote_k6_and_keeps_finished_rows() {
    stopped_during_k6(StopBy::Sigterm);
}

/// Seconds since the epoch of an event.
fn timestamp(event: &Value) -> f64 {
    event["timestamp"].as_f64().unwrap()
}

/// SIGKILL during the second iteration of the first configuration, then an
/// immediate rerun with the same output directory and run id.
///
/// The killed run's k6 keeps running on the k6 host (it is detached, and
/// nobody is left to stop it); the rerun resumes that configuration in the
/// same workspace and stops the leftover k6 before starting its own. A
/// rerun under another run id uses another workspace: the leftover k6 then
/// finishes its scenario (at most the duration plus the graceful stop)
/// alongside the rerun's first iteration. The killed client's SSH master
/// lingers until its idle bound (ControlPersist) or the k6 host goes away.
#[test]
fn sigkill_mid_configuration_then_rerun_loses_and_repeats_no_row() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    // The killed client's SSH master outlives it (until its idle
    // ControlPersist bound): ended here rather than left to the teardown.
    let _sweep = SshMasterSweep(&tb);
    let work = Workdir::new();
    let duration_s = 6.0;
    let config = with(
        base_config(&tb, &work),
        json!({
            "functions": [{"name": "fast"}],
            "rate_strategy": {"type": "custom", "rates": [5, 10]},
            "combinations": {"min_functions": 1, "max_functions": 2},
            "duration": "6s",
            "iterations": 2,
        }),
    );
    let first = [("fast", 5)];
    let second = [("fast", 10)];
    let id1 = config_id(&first);
    let id2 = config_id(&second);
    // The same run id on both runs, as a resumed lb run has: the rerun
    // meets the killed run's workspace on the k6 host.
    let req = request(config, &work, "out", "e2e-kill");
    let out = work.output("out");

    let mut running = Running::spawn(&req);
    wait_until_k6_runs(&mut running, &tb, &id1, "2/2");
    let before_kill = std::fs::read(out.join("results.csv")).unwrap();
    let killed_pid = running.pid();
    let killed_control_dirs = control_dirs_of(killed_pid);
    assert_eq!(
        killed_control_dirs.len(),
        1,
        "the run's SSH control directory, with its owner file"
    );
    running.signal("KILL");
    let killed = running.wait(Duration::from_secs(30));
    assert_eq!(killed.code, None, "SIGKILL ends the process by signal");
    // k6 runs detached on the k6 host: it outlives its killed client, so
    // the rerun below meets it (what this test is about).
    let orphans = k6_processes(&tb.netns);
    assert!(!orphans.is_empty(), "the killed run's k6 is already gone");

    // SIGKILL left the run's ControlMaster and control directory behind.
    assert!(killed_control_dirs[0].exists());

    let mut rerun = Running::spawn(&req);
    let resumed = rerun.wait_for_event(Duration::from_secs(120), |e| {
        is_event(
            e,
            "iteration_started",
            &format!("config {id1} iteration 2/2 started"),
        )
    });
    rerun.wait_for_event(Duration::from_secs(60), is_k6_line);
    // Whatever the killed run left running was stopped before the rerun
    // started its own k6: only one k6 loads the gateway.
    let k6_binaries = |ps: &[String]| ps.iter().filter(|p| !p.contains(" -c ")).count();
    let now_running = k6_processes(&tb.netns);
    assert_eq!(
        k6_binaries(&now_running),
        1,
        "k6 processes while the resumed iteration runs: {now_running:?} (left by the killed run: {orphans:?})"
    );
    let finished_1 = rerun.wait_for_event(Duration::from_secs(120), |e| {
        is_event(e, "config_finished", &format!("config {id1} finished"))
    });
    // The resumed iteration's row came from a k6 run of its own, which
    // cannot end before its scenario does.
    let took = timestamp(&finished_1) - timestamp(&resumed);
    assert!(
        took >= duration_s,
        "the resumed iteration finished {took:.1} s after it started, before its {duration_s} s scenario could"
    );
    let finished = rerun.wait(Duration::from_secs(180));
    assert_eq!(
        finished.code,
        Some(0),
        "rerun exit code; stderr:\n{}",
        finished.log()
    );
    assert!(
        finished
            .events()
            .iter()
            .any(
                |e| e["message"].as_str().is_some_and(|m| m.contains(&format!(
                    "config {id1}: resuming after 1 completed iteration(s)"
                )))
            ),
        "the rerun did not resume mid-configuration:\n{}",
        finished.log()
    );
    assert!(
        eventually(Duration::from_secs(5), || k6_processes(&tb.netns)
            .is_empty()),
        "k6 left running after the rerun: {:?}",
        k6_processes(&tb.netns)
    );

    // The rerun cleaned up what the kill left of the SSH connection.
    assert!(
        !killed_control_dirs[0].exists(),
        "the killed run's control directory {} is still there",
        killed_control_dirs[0].display()
    );

    // Every (configuration, iteration) exactly once, the row written
    // before the kill untouched.
    let after = std::fs::read(out.join("results.csv")).unwrap();
    assert!(
        after.starts_with(&before_kill),
        "rows written before the kill changed"
    );
    let results = Table::read(&out.join("results.csv"), b',');
    assert_eq!(
        check_results(&results, &["fast"]),
        vec![owned(&first), owned(&first), owned(&second), owned(&second)],
        "results.csv"
    );
    for id in [&id1, &id2] {
        for iteration in 1..=2 {
            let summary = out.join(format!("summaries/summary-{id}-iter{iteration}-rep1.json"));
            assert!(summary.is_file(), "{} missing", summary.display());
        }
    }
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    assert_eq!(
        index.lines().collect::<Vec<_>>(),
        [
            "functions;rates;results_file",
            &index_line(&first),
            &index_line(&second)
        ]
    );
}

/// The SSH control directories (`/tmp/lbd-ssh*`) whose owner file names
/// the process `pid`.
fn control_dirs_of(pid: u32) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lbd-ssh"))
        })
        .filter(|p| {
            std::fs::read_to_string(p.join("owner"))
                .is_ok_and(|owner| owner.split_whitespace().nth(1) == Some(&pid.to_string()))
        })
        .collect()
}
