//! The endpoints the campaign reads, refusing or failing: a gateway that
//! refuses the credentials and a Prometheus that is unreachable or failing
//! at start (exit 3 naming the endpoint and the HTTP status, never a
//! "successful" dataset), a Prometheus that hangs when a stop arrives
//! (exit 130 at once, no half-measured row), 1 s iterations against a 1 s
//! scrape (measured, not nan), and a Prometheus behind TLS and basic auth.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::tls_prometheus::TlsPrometheus;
use crate::support::{Testbed, TestbedOptions};

fn gateway() -> TestbedOptions {
    TestbedOptions {
        functions: Some("fast=2:2".into()),
        ..TestbedOptions::default()
    }
}

fn one_function(tb: &Testbed, work: &Workdir, extra: Value) -> Value {
    with(
        with(
            base_config(tb, work),
            json!({
                "functions": [{"name": "fast"}],
                "rate_strategy": {"type": "custom", "rates": [5]},
            }),
        ),
        extra,
    )
}

/// Asserts a run ended with exit 3 at start: an environment error whose
/// message names `endpoint` and `status`, and no dataset rows.
fn assert_refused_at_start(finished: &Finished, endpoint: &str, status: &str, work: &Workdir) {
    assert_eq!(finished.code, Some(3), "stderr:\n{}", finished.log());
    let result = finished.result();
    assert_eq!(result["error"]["type"], "environment");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(endpoint) && message.contains(status),
        "the message does not name {endpoint} and {status}: {message}"
    );
    assert_eq!(result["dfaas_results"], json!([]));
    let results = work.output("out").join("results.csv");
    assert!(
        !results.exists() || std::fs::read_to_string(&results).unwrap().lines().count() <= 1,
        "rows for a run that never started"
    );
}

#[test]
fn gateway_refusing_the_credentials_exits_3_at_start_never_a_dataset_of_zero_replicas() {
    let _serial = serial();
    let tb = Testbed::start_with(&TestbedOptions {
        basic_auth: Some(("admin".into(), "right-pw".into())),
        ..gateway()
    });
    let system_functions = format!("{}/system/functions", tb.gateway_url);
    for (case, credentials) in [
        ("missing", json!({})),
        (
            "wrong",
            json!({"openfaas_user": "admin", "openfaas_password": "wr0ng-pw"}),
        ),
    ] {
        let work = Workdir::new();
        let config = one_function(&tb, &work, credentials);
        let finished = run(&request(config, &work, "out", "e2e-gateway-auth"));
        assert_refused_at_start(&finished, &system_functions, "401", &work);
        assert_eq!(finished.result()["error"]["context"]["status"], 401);
        assert!(
            !finished.stdout.contains("wr0ng-pw") && !finished.log().contains("wr0ng-pw"),
            "{case}: the password was printed"
        );
        eprintln!(
            "{case} gateway password: exit 3 after {:?}",
            finished.elapsed
        );
    }

    // The right password: replicas are read (an integer, never nan or a
    // made-up 0 for a function that ran).
    let work = Workdir::new();
    let config = one_function(
        &tb,
        &work,
        json!({"openfaas_user": "admin", "openfaas_password": "right-pw"}),
    );
    let finished = run(&request(config, &work, "out", "e2e-gateway-auth"));
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.log());
    let results = Table::read(&work.output("out").join("results.csv"), b',');
    check_results(&results, &["fast"]);
    let replicas: u64 = results.cell(0, "replica_fast").parse().unwrap();
    assert!(replicas >= 1, "{:?}", results.rows[0]);
}

/// A Prometheus stand-in answering every request with HTTP 503, counting
/// the requests. Its thread ends with the test process.
fn failing_prometheus() -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "overloaded";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, count)
}

#[test]
fn unreachable_or_failing_prometheus_at_start_exits_3_after_bounded_tries() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());

    // Nothing listens on the port.
    let port = crate::support::tls_prometheus::free_port();
    let refused = format!("http://127.0.0.1:{port}");
    let work = Workdir::new();
    let config = one_function(&tb, &work, json!({"prometheus_url": refused}));
    let finished = run(&request(config, &work, "out", "e2e-prom-refused"));
    assert_refused_at_start(&finished, &refused, "refused", &work);
    eprintln!(
        "Prometheus unreachable at start: exit 3 after {:?}",
        finished.elapsed
    );

    // Accepts connections and never answers: each request is bounded like
    // the retries, so this fails as fast.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let work = Workdir::new();
    let config = one_function(&tb, &work, json!({"prometheus_url": silent_url}));
    let finished = run(&request(config, &work, "out", "e2e-prom-silent"));
    assert_refused_at_start(&finished, &silent_url, "timed out", &work);
    eprintln!(
        "Prometheus silent at start: exit 3 after {:?}",
        finished.elapsed
    );
    drop(silent);

    // Answers 503 to everything: retried a bounded number of times (a 2 s
    // budget, 0.5 s apart), then exit 3 naming the status.
    let (failing, requests) = failing_prometheus();
    let work = Workdir::new();
    let config = one_function(&tb, &work, json!({"prometheus_url": failing}));
    let finished = run(&request(config, &work, "out", "e2e-prom-503"));
    assert_refused_at_start(&finished, &failing, "503", &work);
    assert_eq!(finished.result()["error"]["context"]["status"], 503);
    let tries = requests.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&tries),
        "{tries} requests to a failing Prometheus"
    );
    eprintln!(
        "Prometheus answering 503 at start: exit 3 after {:?}, {tries} requests",
        finished.elapsed
    );
}

/// SIGCONTs a stopped process when dropped (even on panic), so the
/// testbed's teardown finds it alive.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        send_signal(self.0, "CONT");
    }
}

/// How the stop is asked for while Prometheus hangs.
#[derive(Debug, Clone, Copy)]
enum StopBy {
    /// SIGTERM while the iteration's metrics are being queried.
    SigtermDuringMetrics,
    /// The stop file while the cooldown polls Prometheus.
    StopFileDuringCooldown,
}

fn stopped_while_prometheus_hangs(by: StopBy) {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let config = one_function(
        &tb,
        &work,
        json!({"duration": "3s", "iterations": 3, "rate_strategy": {"type": "custom", "rates": [5]}}),
    );
    let id = config_id(&[("fast", 5)]);
    let prometheus = service_pid(&tb, "prometheus");
    let mut running = Running::spawn(&request(config, &work, "out", "e2e-prom-hangs"));
    running.wait_for_event(Duration::from_secs(120), |e| {
        is_event(
            e,
            "iteration_started",
            &format!("config {id} iteration 2/3 started"),
        )
    });
    // Prometheus stops answering (its requests hang until their timeout)
    // while k6 runs, so the queries after the run meet it.
    send_signal(prometheus, "STOP");
    let _resume = Resume(prometheus);
    match by {
        StopBy::SigtermDuringMetrics => {
            // k6's 3 s scenario ends, the metrics queries start and hang.
            running.wait_for_event(Duration::from_secs(60), |e| {
                is_k6_line(e) && e["message"].as_str().is_some_and(|m| m.contains("100%"))
            });
            std::thread::sleep(Duration::from_millis(1500));
        }
        StopBy::StopFileDuringCooldown => {
            // The run's metrics give up (nan and warnings, row 2 written);
            // then the next cooldown's polls hang.
            running.wait_for_event(Duration::from_secs(60), |e| {
                e["level"] == "warning"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("ram_usage_function (fast) gave no value"))
            });
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    let signalled = Instant::now();
    match by {
        StopBy::SigtermDuringMetrics => running.signal("TERM"),
        StopBy::StopFileDuringCooldown => std::fs::write(work.stop_file(), b"stop\n").unwrap(),
    }
    let finished = running.wait(Duration::from_secs(120));
    let to_exit = signalled.elapsed();
    assert_eq!(
        finished.code,
        Some(130),
        "{by:?}: stderr:\n{}",
        finished.log()
    );
    let result = finished.result();
    assert_eq!(result["interrupted"], true);
    assert_eq!(result["error"]["type"], "interrupted");
    let results = Table::read(&work.output("out").join("results.csv"), b',');
    let expected_rows = match by {
        // The iteration whose metrics were cut short writes no row.
        StopBy::SigtermDuringMetrics => 1,
        // Iteration 2 finished (with nan where Prometheus hung).
        StopBy::StopFileDuringCooldown => 2,
    };
    assert_eq!(
        check_results(&results, &["fast"]).len(),
        expected_rows,
        "{by:?}: {:?}",
        results.rows
    );
    assert_rows_match_protocol(&results, &result["dfaas_results"]);
    eprintln!("{by:?}: exit 130 {to_exit:?} after the stop");
}

#[test]
fn sigterm_while_prometheus_hangs_in_the_metrics_exits_130_without_a_half_measured_row() {
    stopped_while_prometheus_hangs(StopBy::SigtermDuringMetrics);
}

#[test]
fn stop_file_while_prometheus_hangs_in_the_cooldown_exits_130() {
    stopped_while_prometheus_hangs(StopBy::StopFileDuringCooldown);
}

#[test]
fn one_second_iterations_on_a_one_second_scrape_measure_cpu_over_two_scrapes() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let config = one_function(
        &tb,
        &work,
        json!({"duration": "1s", "iterations": 2, "rate_strategy": {"type": "custom", "rates": [10]}}),
    );
    let finished = run(&request(config, &work, "out", "e2e-short"));
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.log());
    let results = Table::read(&work.output("out").join("results.csv"), b',');
    assert_eq!(check_results(&results, &["fast"]).len(), 2);
    for row in 0..2 {
        for col in [
            "cpu_usage_idle_node",
            "cpu_usage_node",
            "cpu_usage_function_fast",
            "ram_usage_function_fast",
        ] {
            assert_ne!(
                results.cell(row, col),
                "nan",
                "{col}: {:?}",
                results.rows[row]
            );
        }
    }
    let id = config_id(&[("fast", 10)]);
    let window = read_json(
        &work
            .output("out")
            .join(format!("metrics/window-{id}-iter1-rep1.json")),
    );
    assert_eq!(window["scrape_interval_seconds"], 1.0);
    assert_eq!(window["scrape_interval_source"], "targets");
    assert!(window["seconds"].as_f64().unwrap() >= 2.0, "{window}");
    assert_eq!(
        finished.result()["dfaas_metrics"][0]["metrics"]["window"],
        window
    );
    assert!(
        finished.events().iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("query windows at least 2 s"))),
        "{}",
        finished.log()
    );
    eprintln!("1 s iterations, 1 s scrape: window {window}");
}

#[test]
fn https_prometheus_with_basic_auth_runs_the_campaign_and_refuses_a_wrong_password() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let host_port = |url: &str| {
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    };
    let tls = TlsPrometheus::start(
        "reader",
        "prom-s3cret",
        &[
            host_port(&tb.node_exporter_url),
            host_port(&tb.gateway_admin_url),
        ],
    );
    let access = |password: &str| {
        json!({
            "prometheus_url": tls.url,
            "tls_ca_file": tls.ca_file,
            "prometheus_user": "reader",
            "prometheus_password": password,
        })
    };

    let work = Workdir::new();
    let config = one_function(&tb, &work, access("wr0ng-s3cret"));
    let finished = run(&request(config, &work, "out", "e2e-tls-wrong"));
    assert_refused_at_start(&finished, &tls.url, "401", &work);
    assert!(!finished.stdout.contains("wr0ng-s3cret") && !finished.log().contains("wr0ng-s3cret"));

    let work = Workdir::new();
    let config = one_function(&tb, &work, access("prom-s3cret"));
    let finished = run(&request(config, &work, "out", "e2e-tls"));
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.log());
    let results = Table::read(&work.output("out").join("results.csv"), b',');
    check_results(&results, &["fast"]);
    for col in [
        "cpu_usage_node",
        "ram_usage_node",
        "cpu_usage_function_fast",
    ] {
        assert_ne!(results.cell(0, col), "nan", "{col}: {:?}", results.rows[0]);
    }
    assert!(!finished.stdout.contains("prom-s3cret") && !finished.log().contains("prom-s3cret"));
}
