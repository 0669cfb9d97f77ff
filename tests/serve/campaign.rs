//! DFaaS campaigns through the API on the testbed: to completion with the
//! outputs `lb-dfaas run` writes, and stopped midway.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    base_config, config_id, dirs_below, eventually, k6_processes, read_json, request, run, serial,
    with, Workdir,
};
use crate::server::{block_on, Serve, ServeDirs};
use crate::support::{Testbed, TestbedOptions};

const LIMIT: Duration = Duration::from_secs(300);

fn testbed(id: u32) -> Testbed {
    let options = TestbedOptions {
        functions: Some("fast=2:4".into()),
        ..TestbedOptions::default()
    };
    Testbed::up(id, &options).unwrap_or_else(|e| panic!("testbed {id}: {e}"))
}

/// Every file below `root`, relative to it.
fn files_below(root: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for dir in
        std::iter::once(root.to_path_buf()).chain(dirs_below(root).iter().map(|d| root.join(d)))
    {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().is_file() {
                let relative = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                files.insert(relative);
            }
        }
    }
    files
}

#[test]
fn a_campaign_runs_to_completion_with_the_outputs_of_run() {
    let _serial = serial();
    block_on(async {
        let tb = testbed(173);
        let work = Workdir::new();
        let dirs = ServeDirs::new();
        let config = with(
            base_config(&tb, &work),
            json!({
                "functions": [{"name": "fast"}],
                "rate_strategy": {"type": "custom", "rates": [5, 10]},
                "duration": "2s",
                "iterations": 1,
            }),
        );
        let serve = Serve::start(&dirs);
        let mut live = serve.live().await;
        let (code, body) = serve
            .put_json("/config", &json!({"kind": "campaign", "campaign": config}))
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, started) = serve.post("/start").await;
        assert_eq!(code, 202, "{started}");
        let job = started["jobId"].as_str().unwrap().to_string();
        assert_eq!(started["status"]["progress"]["total"], 2);

        let measuring = live
            .wait_for(LIMIT, |m| {
                m["type"] == "status" && m["status"]["currentConfig"]["iteration"] == 1
            })
            .await;
        let current = &measuring["status"]["currentConfig"];
        assert_eq!(current["rates"], json!({"fast": 5}));
        assert_eq!(current["id"], config_id(&[("fast", 5)]));
        let status = live.wait_state(LIMIT, "finished").await;
        assert_eq!(live.states(), ["idle", "running", "finished"]);
        assert_eq!(status["progress"]["done"], 2);
        assert_eq!(status["progress"]["completed"], 2);
        assert_eq!(status["resultRows"], 2);
        assert_eq!(
            status["completedConfigs"],
            json!([config_id(&[("fast", 5)]), config_id(&[("fast", 10)])])
        );
        assert_eq!(status["lastError"], Value::Null, "{status}");
        for event in [
            "run_started",
            "baseline",
            "config_started",
            "iteration_started",
            "k6",
            "iteration_finished",
            "config_finished",
            "run_finished",
        ] {
            assert!(live.saw_event(event), "no {event} entry over the WebSocket");
        }

        // Results as JSON rows and CSV, and a summary on request.
        let (code, results) = serve.get("/results").await;
        assert_eq!(code, 200, "{results}");
        assert_eq!(results["kind"], "campaign");
        assert_eq!(results["functions"], json!(["fast"]));
        assert_eq!(results["results"]["total"], 2);
        let rows = results["results"]["rows"].as_array().unwrap();
        assert_eq!(rows[0]["rate_function_fast"], "5");
        assert_eq!(rows[1]["rate_function_fast"], "10");
        assert_eq!(results["index"]["total"], 2);
        assert_eq!(results["skipped"]["total"], 0);
        let output = dirs.state().join("jobs").join(&job).join("output");
        let csv = serve
            .request(reqwest::Method::GET, "/results?format=csv&table=results")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            csv,
            std::fs::read_to_string(output.join("results.csv")).unwrap()
        );
        let (code, summary) = serve
            .get(&format!(
                "/results/summary?config={}&iteration=1",
                config_id(&[("fast", 10)])
            ))
            .await;
        assert_eq!(code, 200, "{summary}");
        assert!(summary["metrics"]["http_reqs"]["count"].as_f64().unwrap() > 0.0);

        // The same outputs as `lb-dfaas run` with the same config.
        let ran = run(&request(config.clone(), &work, "run", "e2e-serve"));
        assert_eq!(ran.code, Some(0), "{}", ran.log());
        let by_run = work.output("run");
        assert_eq!(files_below(&output), files_below(&by_run));
        let header = |dir: &Path| {
            std::fs::read_to_string(dir.join("results.csv"))
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(header(&output), header(&by_run));
        assert_eq!(
            std::fs::read_to_string(output.join("index.csv")).unwrap(),
            std::fs::read_to_string(by_run.join("index.csv")).unwrap()
        );
        let document = read_json(&dirs.state().join("jobs").join(&job).join("result.json"));
        let printed = ran.result();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&document), keys(&printed));
        for key in [
            "returncode",
            "success",
            "interrupted",
            "dfaas_functions",
            "dfaas_index",
            "error",
        ] {
            assert_eq!(document[key], printed[key], "{key}");
        }
        assert_eq!(
            document["dfaas_results"].as_array().unwrap().len(),
            printed["dfaas_results"].as_array().unwrap().len()
        );
    });
}

#[test]
fn a_campaign_stopped_midway_keeps_what_finished() {
    let _serial = serial();
    block_on(async {
        let tb = testbed(174);
        let work = Workdir::new();
        let dirs = ServeDirs::new();
        let config = with(
            base_config(&tb, &work),
            json!({
                "functions": [{"name": "fast"}],
                "rate_strategy": {"type": "custom", "rates": [5]},
                "duration": "8s",
                "iterations": 3,
            }),
        );
        let serve = Serve::start(&dirs);
        let mut live = serve.live().await;
        let (code, body) = serve
            .put_json("/config", &json!({"kind": "campaign", "campaign": config}))
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, started) = serve.post("/start").await;
        assert_eq!(code, 202, "{started}");
        let job = started["jobId"].as_str().unwrap().to_string();
        // Stop while k6 runs the second iteration: the first one's row is kept.
        live.wait_for(LIMIT, |m| {
            m["type"] == "status" && m["status"]["currentConfig"]["iteration"] == 2
        })
        .await;
        live.wait_for(LIMIT, |m| m["type"] == "log" && m["entry"]["event"] == "k6")
            .await;
        assert!(eventually(Duration::from_secs(10), || !k6_processes(
            &tb.netns
        )
        .is_empty()));
        let (code, body) = serve.post("/stop").await;
        assert_eq!(code, 202, "{body}");
        let status = live.wait_state(LIMIT, "stopped").await;
        assert!(
            eventually(Duration::from_secs(5), || k6_processes(&tb.netns)
                .is_empty()),
            "k6 still runs after the stop: {:?}",
            k6_processes(&tb.netns)
        );
        assert_eq!(live.states(), ["idle", "running", "stopping", "stopped"]);
        assert_eq!(status["resultRows"], 1);
        assert_eq!(status["completedConfigs"], json!([]));

        let job_dir = dirs.state().join("jobs").join(&job);
        let document = read_json(&job_dir.join("result.json"));
        assert_eq!(document["returncode"], 130);
        assert_eq!(document["interrupted"], true);
        assert_eq!(document["error"]["type"], "interrupted");
        let (_, results) = serve.get("/results").await;
        assert_eq!(results["state"], "stopped");
        assert_eq!(results["results"]["total"], 1, "{results}");
        assert_eq!(results["index"]["total"], 0);
    });
}
