//! lb's peva_faas config, unchanged, with k6 on this machine (its default
//! `k6_host`: `local`) against the testbed's gateway and Prometheus: k6's
//! output streams as LB_EVENT log lines, the finished iteration has its
//! row and its measured metrics, and the stop file mid-run ends the run
//! with 130 and the local k6 gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{Testbed, TestbedOptions};

/// Processes with a working directory below `root`: the local k6 of a run
/// works in `<output dir>/k6/<host>/<run_id>/<config_id>/`.
fn processes_below(root: &Path) -> Vec<String> {
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            cwd.starts_with(&root).then(|| {
                format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
        })
        .collect()
}

/// A peva_faas section as a researcher writes it: no k6 field at all.
fn peva_faas_config(tb: &Testbed) -> Value {
    json!({
        "gateway_url": tb.gateway_url,
        "prometheus_url": tb.prometheus_url,
        "functions": [{"name": "fast"}],
        "rate_strategy": {"type": "custom", "rates": [5]},
        "duration": "8s",
        "iterations": 3,
        "selection_mode": "online",
        "micro_batch_size": 8,
        "micro_batch_window_s": 30,
        "cooldown": {"max_wait_seconds": 120, "sleep_step_seconds": 1, "idle_threshold_pct": 100},
        "overload": {
            "cpu_overload_pct_of_capacity": 100,
            "ram_overload_pct": 100,
            "success_rate_node_min": 0.5,
            "success_rate_function_min": 0.5,
        },
    })
}

#[test]
fn peva_faas_with_a_local_k6_streams_measures_and_stops_on_the_stop_file() {
    let _serial = serial();
    let tb = Testbed::start_with(&TestbedOptions {
        functions: Some("fast=2:2".into()),
        ..TestbedOptions::default()
    });
    let work = Workdir::new();
    let mut request = request(peva_faas_config(&tb), &work, "out", "e2e-peva");
    request["plugin"] = json!("peva_faas");
    request["context"]["workload"] = json!("peva_faas");
    let out = work.output("out");
    let k6_root = out.join("k6");
    let id = config_id(&[("fast", 5)]);
    let workspace: PathBuf = workspace_dir(&k6_root, HOST, "e2e-peva", &id);

    let mut running = Running::spawn(&request);
    let started = running.wait_for_event(Duration::from_secs(60), |e| {
        is_event(e, "run_started", "k6 host local,")
    });
    assert_eq!(started["workload"], "peva_faas");
    // The second iteration's k6 runs here, and its output streams back.
    running.wait_for_event(Duration::from_secs(120), |e| {
        is_event(
            e,
            "iteration_started",
            &format!("config {id} iteration 2/3 started"),
        )
    });
    running.wait_for_event(Duration::from_secs(60), is_k6_line);
    assert!(
        eventually(Duration::from_secs(10), || !processes_below(&k6_root)
            .is_empty()),
        "no local k6 runs although it streams output"
    );
    let k6 = processes_below(&k6_root).join("\n");
    assert!(
        k6.contains("--summary-export summary.json") && k6.contains("workload=peva_faas"),
        "{k6}"
    );
    std::fs::write(work.stop_file(), b"stop\n").unwrap();

    let finished = running.wait(Duration::from_secs(120));
    let exited = Instant::now();
    assert_eq!(finished.code, Some(130), "stderr:\n{}", finished.log());
    let result = finished.result();
    assert_eq!(result["returncode"], 130);
    assert_eq!(result["interrupted"], true);
    assert_eq!(result["error"]["type"], "interrupted");
    assert!(
        eventually(Duration::from_secs(5), || processes_below(&k6_root)
            .is_empty()),
        "the local k6 still runs {:?} after lb-dfaas exited: {:?}",
        exited.elapsed(),
        processes_below(&k6_root)
    );

    // k6's own lines came as log events, and are in the workspace's k6.log.
    let events = finished.events();
    let k6_lines: Vec<&str> = events
        .iter()
        .filter(|e| is_k6_line(e))
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(!k6_lines.is_empty(), "{}", finished.log());
    assert!(events.iter().all(|e| e["workload"] == "peva_faas"));
    let log = std::fs::read_to_string(workspace.join("k6.log")).unwrap();
    let first = k6_lines[0].trim_start_matches("k6: ");
    assert!(log.contains(first), "{first:?} not in k6.log:\n{log}");
    assert!(workspace.join("script.js").is_file());

    // The first iteration is measured and recorded; the interrupted one
    // wrote no row, and nothing is indexed.
    let results = Table::read(&out.join("results.csv"), b',');
    assert_eq!(
        check_results(&results, &["fast"]),
        vec![owned(&[("fast", 5)])]
    );
    assert_rows_match_protocol(&results, &result["dfaas_results"]);
    for column in [
        "cpu_usage_node",
        "ram_usage_node",
        "cpu_usage_function_fast",
    ] {
        let cell = results.cell(0, column);
        assert!(is_fixed3(cell) && cell != "nan", "{column}: {cell:?}");
    }
    let summary = read_json(&out.join(format!("summaries/summary-{id}-iter1-rep1.json")));
    assert!(summary["metrics"].is_object(), "{summary}");
    assert!(!out
        .join(format!("summaries/summary-{id}-iter2-rep1.json"))
        .exists());
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    assert_eq!(
        index.lines().collect::<Vec<_>>(),
        ["functions;rates;results_file"]
    );
}
