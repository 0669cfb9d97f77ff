//! The testbed itself works: SSH reaches k6 in the namespace, k6 there
//! reaches the gateway, and Prometheus scrapes node-exporter and the
//! gateway's function series.

mod support;

use std::time::{Duration, Instant};

use support::{http_get, Testbed, TestbedOptions};

/// Polls `f` every 500 ms until it yields a value or `limit` passes.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn testbed_runs_k6_over_ssh_against_the_gateway_and_prometheus_sees_it() {
    let tb = Testbed::start_with(&TestbedOptions {
        functions: Some("figlet=10,env=2".into()),
        ..TestbedOptions::default()
    });

    // k6 over SSH, found on the non-interactive session's PATH.
    let out = tb.ssh("k6 version").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh k6 version failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("k6 v1."),
        "unexpected k6 version output {stdout:?}"
    );

    // The gateway lists its functions.
    let list: serde_json::Value = serde_json::from_str(
        &http_get(&format!("{}/system/functions", tb.gateway_admin_url)).unwrap(),
    )
    .unwrap();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["env", "figlet"]);

    // Prometheus knows the node's cores.
    let cores = tb
        .prometheus_value(r#"count(node_cpu_seconds_total{mode="idle"})"#)
        .unwrap();
    assert!(
        cores.is_some_and(|c| c >= 1.0),
        "cores query answered {cores:?}"
    );

    // Load from the namespace: 20 req/s for 3 s, from a script on the
    // shared file system.
    tb.reset_truth().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("smoke.js");
    std::fs::write(
        &script,
        format!(
            "import http from 'k6/http';\n\
             export const options = {{ scenarios: {{ s: {{ executor: 'constant-arrival-rate', rate: 20, \
             timeUnit: '1s', duration: '3s', preAllocatedVUs: 5, maxVUs: 20 }} }} }};\n\
             export default function () {{ http.get('{}/function/figlet', {{ timeout: '10s' }}); }}\n",
            tb.gateway_url
        ),
    )
    .unwrap();
    let summary = dir.path().join("summary.json");
    let out = tb
        .ssh(&format!(
            "k6 run --quiet --no-color --summary-export {} {}",
            summary.display(),
            script.display()
        ))
        .unwrap();
    assert!(
        out.status.success(),
        "k6 run failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let sent = summary["metrics"]["http_reqs"]["count"].as_u64().unwrap();
    assert!(sent > 0, "k6 sent nothing: {summary}");

    // The gateway saw exactly what k6 sent, all answered.
    let truth = tb.truth().unwrap();
    assert_eq!(
        truth["figlet"]["requests"].as_u64(),
        Some(sent),
        "truth {truth}"
    );
    let ok = truth["figlet"]["ok"].as_u64().unwrap();
    let failed = truth["figlet"]["failed"].as_u64().unwrap();
    assert_eq!(ok + failed, sent, "truth {truth}");
    assert_eq!(truth["env"]["requests"].as_u64(), Some(0));

    // Prometheus has scraped the CPU the function burned, with lb's own query.
    let query = r#"100 * sum(rate(container_cpu_usage_seconds_total{id=~"^/kubepods.*", container_label_io_kubernetes_container_name="figlet"}[30s]))"#;
    let cpu = poll(Duration::from_secs(30), || {
        tb.prometheus_value(query)
            .ok()
            .flatten()
            .filter(|v| *v > 0.0)
    });
    assert!(cpu.is_some(), "function cpu query never became positive");
    let ram = r#"sum(avg_over_time(container_memory_usage_bytes{id=~"^/kubepods.*", container_label_io_kubernetes_container_name="figlet"}[30s]))"#;
    let ram = tb.prometheus_value(ram).unwrap();
    assert!(
        ram.is_some_and(|v| v > 0.0),
        "function ram query answered {ram:?}"
    );
}

#[test]
fn two_testbeds_coexist_and_get_distinct_addresses() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Testbed::start);
        let b = s.spawn(Testbed::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.id, b.id);
    assert_ne!(a.k6_host, b.k6_host);
    assert_ne!(a.prometheus_url, b.prometheus_url);
    for tb in [&a, &b] {
        let out = tb
            .ssh(&format!("curl -fsS {}/healthz", tb.gateway_url))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "OK",
            "instance {}",
            tb.id
        );
    }
    let state_a = a.state_dir.clone();
    drop(a);
    assert!(
        !state_a.exists(),
        "state of a torn-down instance remains at {}",
        state_a.display()
    );
    assert!(b.ssh("true").unwrap().status.success());
}
