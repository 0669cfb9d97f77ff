//! Starts the real gateway binary and checks its endpoints over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The running binary; killed on drop, whatever the test did.
struct Gateway {
    child: Child,
    url: String,
}

impl Gateway {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dfaas-test-gateway"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("dfaas-test-gateway listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_functions_status_metrics_and_truth() {
    let gw = Gateway::start(&[
        "--functions",
        "figlet=5,env=1:2",
        "--basic-auth",
        "admin:secret",
    ]);
    let http = client();

    for _ in 0..3 {
        let r = http
            .get(format!("{}/function/figlet", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .post(format!("{}/function/env", gw.url))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/function/nope", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // /system/functions needs the credentials.
    let r = http
        .get(format!("{}/system/functions", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/system/functions", gw.url))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let list: Value = http
        .get(format!("{}/system/functions", gw.url))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let figlet = list.iter().find(|f| f["name"] == "figlet").unwrap();
    assert_eq!(figlet["invocationCount"], 3);
    assert!(figlet["replicas"].as_u64().unwrap() >= 1);
    assert_eq!(figlet["availableReplicas"], figlet["replicas"]);
    assert_eq!(figlet["image"], "dfaas-test/figlet:latest");

    let metrics = http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cpu_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("container_cpu_usage_seconds_total{")
                && l.contains("id=\"/kubepods/figlet\"")
                && l.contains("container_label_io_kubernetes_container_name=\"figlet\"")
        })
        .unwrap_or_else(|| panic!("no figlet cpu series in\n{metrics}"));
    let cpu_s: f64 = cpu_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        cpu_s >= 0.015,
        "3 calls x 5 ms should burn >= 15 ms, got {cpu_s}"
    );
    assert!(metrics.contains("container_memory_usage_bytes{id=\"/kubepods/env\""));
    assert!(metrics.contains("gateway_function_requests_total{function=\"figlet\"} 3"));
    assert!(metrics.contains("gateway_function_responses_total{function=\"env\",code=\"200\"} 1"));

    let truth: Value = http
        .get(format!("{}/truth", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(truth["figlet"]["requests"], 3);
    assert_eq!(truth["figlet"]["ok"], 3);
    assert_eq!(truth["figlet"]["failed"], 0);
    assert_eq!(truth["env"]["ok"], 1);

    let r = http
        .post(format!("{}/truth/reset", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let truth: Value = http
        .get(format!("{}/truth", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(truth["figlet"]["requests"], 0);
    // The Prometheus counters stay monotonic across a truth reset.
    let metrics = http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gateway_function_requests_total{function=\"figlet\"} 3"));
}

#[tokio::test]
async fn overload_turns_calls_away_and_raises_replicas() {
    // One worker, one queue slot, 300 ms of CPU per call: of 8 calls at
    // once, at most 2 can be admitted before the rest find the queue full.
    let gw = Gateway::start(&[
        "--functions",
        "slow=300:1:1",
        "--replica-target-concurrency",
        "1",
        // Only a full queue turns calls away here, however loaded the machine.
        "--queue-timeout-ms",
        "60000",
    ]);
    let http = client();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let http = http.clone();
            let url = format!("{}/function/slow", gw.url);
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut codes = Vec::new();
    for c in calls {
        codes.push(c.await.unwrap());
    }
    let ok = codes.iter().filter(|&&c| c == 200).count() as u64;
    let full = codes.iter().filter(|&&c| c == 429).count() as u64;
    assert!(full >= 1, "no call was turned away: {codes:?}");
    assert_eq!(ok + full, 8, "unexpected codes {codes:?}");

    let truth: Value = http
        .get(format!("{}/truth", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(truth["slow"]["requests"], 8);
    assert_eq!(truth["slow"]["ok"], ok);
    assert_eq!(truth["slow"]["failed"], full);
    assert_eq!(truth["slow"]["codes"]["429"], full);

    // The peak of 8 calls at once is within the 3 s window: replicas > 1.
    let list: Value = http
        .get(format!("{}/system/functions", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list[0]["replicas"].as_u64().unwrap() > 1,
        "replicas did not scale: {list}"
    );
}

/// A `:wait` function: one worker waiting 300 ms and no queue answers one
/// of four calls sent at once and refuses the others (429); no CPU time is
/// burned for it.
#[tokio::test]
async fn a_wait_function_is_bounded_by_its_workers_not_the_cpu() {
    let gw = Gateway::start(&["--functions", "io=300:1:0:wait"]);
    let http = client();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let request = http.get(format!("{}/function/io", gw.url)).send();
            tokio::spawn(async move { request.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap().unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, refused), (1, 3), "{statuses:?}");
    let metrics = http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cpu_line = metrics
        .lines()
        .find(|l| l.starts_with("container_cpu_usage_seconds_total") && l.contains("io"))
        .unwrap_or_else(|| panic!("no CPU series for io:\n{metrics}"));
    let cpu: f64 = cpu_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(cpu < 0.05, "{cpu_line}");
}
