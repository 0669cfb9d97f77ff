//! Script suites on the testbed: to completion, stopped midway, and
//! stopped by the server's own shutdown.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{eventually, k6_processes, serial};
use crate::server::{block_on, gateway_script, Live, Serve, ServeDirs};
use crate::support::{Testbed, TestbedOptions};

/// The longest any suite here may take to reach the state waited for.
const LIMIT: Duration = Duration::from_secs(240);

fn testbed(id: u32) -> Testbed {
    let options = TestbedOptions {
        functions: Some("fast=2:4".into()),
        ..TestbedOptions::default()
    };
    Testbed::up(id, &options).unwrap_or_else(|e| panic!("testbed {id}: {e}"))
}

/// The k6 host fields of the suite, as in a dfaas config.
fn k6_host(tb: &Testbed, dirs: &ServeDirs) -> Value {
    json!({
        "k6_host": tb.k6_host,
        "k6_port": tb.k6_port,
        "k6_user": tb.k6_user,
        "k6_ssh_key": tb.k6_ssh_key,
        "k6_known_hosts_file": tb.k6_known_hosts,
        "k6_workspace_root": dirs.path().join("k6ws"),
    })
}

/// Scripts against the testbed's gateway: one passing its thresholds, one
/// failing them (k6 exits 99), one like the first.
fn write_scripts(tb: &Testbed, dirs: &ServeDirs) {
    let url = &tb.gateway_url;
    dirs.script(
        "pass.js",
        &gateway_script(url, "fast", "{ checks: ['rate>0.9'] }"),
    );
    dirs.script(
        "fail.js",
        &gateway_script(url, "fast", "{ http_req_duration: ['avg<0'] }"),
    );
    dirs.script(
        "long.js",
        &gateway_script(url, "fast", "{ checks: ['rate>0.9'] }"),
    );
}

async fn configure(serve: &Serve, suite: Value) {
    let (code, body) = serve
        .put_json("/config", &json!({"kind": "suite", "suite": suite}))
        .await;
    assert_eq!(code, 200, "{body}");
}

/// Starts the stored job; its id.
async fn start(serve: &Serve) -> String {
    let (code, body) = serve.post("/start").await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"]["state"], "running");
    body["jobId"].as_str().unwrap().to_string()
}

/// Waits until k6 runs on the k6 host (its output streams back and the
/// process is there).
async fn wait_until_k6_runs(live: &mut Live, tb: &Testbed) {
    live.wait_for(LIMIT, |m| m["type"] == "log" && m["entry"]["event"] == "k6")
        .await;
    assert!(
        eventually(Duration::from_secs(10), || !k6_processes(&tb.netns)
            .is_empty()),
        "k6 is not running on the k6 host although it streams output"
    );
}

#[test]
fn a_suite_runs_to_completion_and_a_second_start_is_refused() {
    let _serial = serial();
    block_on(async {
        let tb = testbed(170);
        let dirs = ServeDirs::new();
        write_scripts(&tb, &dirs);
        let serve = Serve::start(&dirs);
        let (code, listed) = serve.get("/scripts").await;
        assert_eq!(code, 200);
        assert_eq!(listed["scripts"], json!(["fail.js", "long.js", "pass.js"]));
        let mut live = serve.live().await;
        configure(
            &serve,
            json!({
                "globalUserCount": 2,
                "testDuration": "2s",
                "rampUpDuration": "1s",
                "maxDuration": "1m",
                "enabledScripts": ["pass.js", "fail.js"],
                "intervalBetweenTests": "1s",
                "k6": k6_host(&tb, &dirs),
            }),
        )
        .await;
        let job = start(&serve).await;

        // One job at a time.
        let (code, body) = serve.post("/start").await;
        assert_eq!(code, 409, "{body}");
        assert_eq!(body["error"]["type"], "conflict");
        assert!(body["error"]["message"].as_str().unwrap().contains(&job));

        let running = live
            .wait_for(LIMIT, |m| {
                m["type"] == "status" && m["status"]["currentScript"] == "pass.js"
            })
            .await;
        assert_eq!(running["status"]["currentUserCount"], 2);
        assert_eq!(running["status"]["kind"], "suite");
        let status = live.wait_state(LIMIT, "finished").await;
        assert_eq!(live.states(), ["idle", "running", "finished"]);
        assert_eq!(status["completedScripts"], json!(["pass.js"]));
        assert_eq!(status["failedScripts"], json!(["fail.js"]));
        assert_eq!(status["progress"]["done"], 2);
        assert_eq!(status["progress"]["total"], 2);
        assert!(status["lastError"]
            .as_str()
            .unwrap()
            .contains("thresholds failed"));
        for event in [
            "job_started",
            "suite_started",
            "script_started",
            "k6",
            "script_passed",
            "script_failed",
            "suite_finished",
            "job_finished",
        ] {
            assert!(live.saw_event(event), "no {event} entry over the WebSocket");
        }

        // Per-script outcomes, the summaries, the CSV.
        let (code, results) = serve.get("/results").await;
        assert_eq!(code, 200, "{results}");
        assert_eq!(results["jobId"], job.as_str());
        assert_eq!(results["kind"], "suite");
        assert_eq!(results["state"], "finished");
        let scripts = results["scripts"].as_array().unwrap();
        assert_eq!(scripts.len(), 2);
        assert_eq!(
            (
                &scripts[0]["name"],
                &scripts[0]["status"],
                &scripts[0]["exitCode"]
            ),
            (&json!("pass.js"), &json!("passed"), &json!(0))
        );
        assert!(scripts[0]["httpReqs"].as_f64().unwrap() > 0.0);
        assert_eq!(scripts[0]["users"], 2);
        assert_eq!(
            (&scripts[1]["status"], &scripts[1]["exitCode"]),
            (&json!("failed"), &json!(99))
        );
        let (code, summary) = serve.get("/results/summary?script=pass.js").await;
        assert_eq!(code, 200, "{summary}");
        assert!(summary["metrics"]["http_reqs"]["count"].as_f64().unwrap() > 0.0);
        assert_eq!(
            summary["metrics"]["vus_max"]["max"], 2,
            "the global user count is k6's VUs"
        );
        let csv = serve
            .request(reqwest::Method::GET, "/results?format=csv")
            .send()
            .await
            .unwrap();
        assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = csv.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[1].starts_with("pass.js,passed,0,"), "{csv}");
        assert!(lines[2].starts_with("fail.js,failed,99,"), "{csv}");

        // The log: k6's lines, in the ring with a cursor and in the file.
        let (_, page) = serve.get("/logs?since=0&limit=2000").await;
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.iter().any(|e| e["event"] == "k6"));
        let next = page["next"].as_u64().unwrap();
        let (_, rest) = serve.get(&format!("/logs?since={next}")).await;
        assert_eq!(rest["entries"], json!([]));
        let file = std::fs::read_to_string(dirs.state().join("logs/serve.log")).unwrap();
        assert!(file.lines().any(|l| l.contains("\"event\":\"k6\"")));
        // The job's directory has its record and the summaries.
        let job_dir = dirs.state().join("jobs").join(&job);
        let record: Value =
            serde_json::from_str(&std::fs::read_to_string(job_dir.join("job.json")).unwrap())
                .unwrap();
        assert_eq!(record["state"], "finished");
        assert!(job_dir.join("summaries/fail.js.json").is_file());
        assert!(k6_processes(&tb.netns).is_empty());
    });
}

#[test]
fn a_suite_stopped_midway_leaves_no_k6_and_the_server_goes_on() {
    let _serial = serial();
    block_on(async {
        let tb = testbed(171);
        let dirs = ServeDirs::new();
        write_scripts(&tb, &dirs);
        let serve = Serve::start(&dirs);
        let mut live = serve.live().await;
        configure(
            &serve,
            json!({
                "globalUserCount": 2,
                "testDuration": "2m",
                "maxDuration": "5m",
                "enabledScripts": ["long.js", "pass.js"],
                "intervalBetweenTests": "0s",
                "k6": k6_host(&tb, &dirs),
            }),
        )
        .await;
        let job = start(&serve).await;
        wait_until_k6_runs(&mut live, &tb).await;

        let (code, body) = serve.post("/stop").await;
        assert_eq!(code, 202, "{body}");
        assert_eq!(body["status"]["state"], "stopping");
        let status = live.wait_state(LIMIT, "stopped").await;
        // As SIGTERM to `run`: the remote k6 is gone within 5 s.
        assert!(
            eventually(Duration::from_secs(5), || k6_processes(&tb.netns)
                .is_empty()),
            "k6 still runs after the stop: {:?}",
            k6_processes(&tb.netns)
        );
        assert_eq!(live.states(), ["idle", "running", "stopping", "stopped"]);
        assert!(!status["isRunning"].as_bool().unwrap());
        assert_eq!(status["completedScripts"], json!([]));
        assert_eq!(status["failedScripts"], json!([]));
        assert_eq!(status["currentScript"], Value::Null);
        let (_, results) = serve.get(&format!("/results?job={job}")).await;
        assert_eq!(results["state"], "stopped");
        let scripts = results["scripts"].as_array().unwrap();
        assert_eq!(scripts.len(), 1, "pass.js never started: {results}");
        assert_eq!(scripts[0]["status"], "stopped");
        let (code, _) = serve.post("/stop").await;
        assert_eq!(code, 409, "nothing left to stop");

        // The next job starts at once and runs.
        configure(
            &serve,
            json!({
                "globalUserCount": 1,
                "testDuration": "1s",
                "maxDuration": "1m",
                "enabledScripts": ["pass.js"],
                "k6": k6_host(&tb, &dirs),
            }),
        )
        .await;
        let next = start(&serve).await;
        assert_ne!(next, job);
        let status = live.wait_state(LIMIT, "finished").await;
        assert_eq!(status["jobId"], next.as_str());
        assert_eq!(status["completedScripts"], json!(["pass.js"]));
    });
}

#[test]
fn sigterm_to_the_server_stops_a_running_suite_first() {
    let _serial = serial();
    block_on(async {
        let tb = testbed(172);
        let dirs = ServeDirs::new();
        write_scripts(&tb, &dirs);
        let mut serve = Serve::start(&dirs);
        let mut live = serve.live().await;
        configure(
            &serve,
            json!({
                "globalUserCount": 1,
                "testDuration": "2m",
                "maxDuration": "5m",
                "enabledScripts": ["long.js"],
                "k6": k6_host(&tb, &dirs),
            }),
        )
        .await;
        let job = start(&serve).await;
        wait_until_k6_runs(&mut live, &tb).await;

        let exit = serve.terminate(Duration::from_secs(90));
        assert_eq!(exit.code(), Some(0), "{}", serve.stderr());
        assert!(
            eventually(Duration::from_secs(5), || k6_processes(&tb.netns)
                .is_empty()),
            "k6 still runs after the server's shutdown: {:?}",
            k6_processes(&tb.netns)
        );
        // Clients saw the job stop, then the server close the socket.
        live.wait_for(Duration::from_secs(10), |m| m["type"] == "closed")
            .await;
        assert_eq!(live.states(), ["idle", "running", "stopping", "stopped"]);
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(dirs.state().join("jobs").join(&job).join("job.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(record["state"], "stopped");

        // A new server serves the last job's results.
        let serve = Serve::start(&dirs);
        let status = serve.status().await;
        assert_eq!(status["state"], "idle");
        assert_eq!(status["lastJobId"], job.as_str());
        let (code, results) = serve.get("/results").await;
        assert_eq!(code, 200, "{results}");
        assert_eq!(results["scripts"][0]["status"], "stopped");
    });
}
