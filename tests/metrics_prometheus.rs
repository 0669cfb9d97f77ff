//! The Prometheus client and meter against a real Prometheus 2.x scraping a
//! real node-exporter every second (ports 19581/19582, own temp dir,
//! stopped in `Drop`), and against a second Prometheus behind its own TLS
//! and basic auth.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use lb_dfaas::config::{BasicAuth, CaBundle, FunctionName, PrometheusAuth, Secret, Tls};
use lb_dfaas::metrics::meter::Meter;
use lb_dfaas::metrics::prometheus::{
    Deadlines, PrometheusClient, PrometheusError, PrometheusSettings, QueryRequest,
};
use lb_dfaas::metrics::queries::{QuerySet, TimeSpan};
use lb_dfaas::metrics::scrape::{self, SamplingSource};
use lb_dfaas::stop::Stop;

#[path = "support/tls_prometheus.rs"]
mod tls_prometheus;
use tls_prometheus::TlsPrometheus;

const PROMETHEUS_PORT: u16 = 19581;
const NODE_EXPORTER_PORT: u16 = 19582;

/// Prometheus + node-exporter, shared by the tests that run at the same
/// time and stopped (by pid) when the last one lets go.
struct Stack {
    prometheus: Child,
    node_exporter: Child,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn acquire() -> Arc<Stack> {
        static SHARED: OnceLock<Mutex<Weak<Stack>>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| Mutex::new(Weak::new()));
        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stack) = guard.upgrade() {
            return stack;
        }
        let stack = Arc::new(Stack::start());
        *guard = Arc::downgrade(&stack);
        stack
    }

    fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{PROMETHEUS_PORT}']\n\
             \x20 - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{NODE_EXPORTER_PORT}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();

        let node_exporter = Command::new("prometheus-node-exporter")
            .arg(format!(
                "--web.listen-address=127.0.0.1:{NODE_EXPORTER_PORT}"
            ))
            .stdout(Stdio::null())
            .stderr(log("node-exporter.log"))
            .spawn()
            .expect("prometheus-node-exporter must be installed");
        let prometheus = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .stdout(Stdio::null())
            .stderr(log("prometheus.log"))
            .spawn()
            .expect("prometheus must be installed");
        Stack {
            prometheus,
            node_exporter,
            _dir: dir,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in [&mut self.prometheus, &mut self.node_exporter] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn settings(retry_budget: Duration) -> PrometheusSettings {
    PrometheusSettings {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        retry_budget,
        retry_pause: Duration::from_millis(250),
    }
}

fn client(retry_budget: Duration) -> PrometheusClient {
    PrometheusClient::new(
        &format!("http://127.0.0.1:{PROMETHEUS_PORT}"),
        settings(retry_budget),
    )
    .unwrap()
}

fn meter(retry_budget: Duration, time_span: &str) -> Meter {
    Meter::new(
        client(retry_budget),
        QuerySet::bundled(false).unwrap(),
        TimeSpan::parse(time_span).unwrap(),
        false,
        BTreeMap::new(),
    )
}

/// Waits (bounded) until both scrape targets have been up for a while.
async fn wait_until_scraping() {
    let request = QueryRequest::Instant {
        query: "count(up == 1)".to_string(),
        at: None,
    };
    let client = client(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(2.0) = client.try_query(&request).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus on :{PROMETHEUS_PORT} did not scrape both targets within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// CPUs as node-exporter counts them: the `cpuN` lines of /proc/stat.
fn cpus_in_proc_stat() -> u32 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    stat.lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count() as u32
}

#[tokio::test]
async fn cores_equal_the_machines_cpus() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    let cores = meter(Duration::from_secs(10), "5s")
        .node_cores()
        .await
        .unwrap();
    assert!(cores >= 1);
    assert_eq!(cores, cpus_in_proc_stat());
    let nproc = Command::new("nproc").arg("--all").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&nproc.stdout).trim(),
        cores.to_string()
    );
}

#[tokio::test]
async fn node_snapshot_is_finite_without_warnings() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    let snapshot = meter(Duration::from_secs(10), "5s").node_snapshot().await;
    assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    let node = snapshot.value;
    let cores = f64::from(cpus_in_proc_stat());
    assert!(
        node.cpu_pct.is_finite() && node.cpu_pct >= 0.0 && node.cpu_pct <= cores * 100.0 + 1.0,
        "{node:?}"
    );
    assert!(
        node.ram_bytes.is_finite() && node.ram_bytes > 0.0,
        "{node:?}"
    );
    assert!(
        node.ram_pct.is_finite() && node.ram_pct > 0.0 && node.ram_pct <= 100.0,
        "{node:?}"
    );
    assert!(node.power_uw.is_nan(), "power needs Scaphandre: {node:?}");
}

#[tokio::test]
async fn range_queries_sum_series_and_average_over_time() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    // Let ten seconds of samples with both targets up accumulate.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let end = SystemTime::now();
    let start = end - Duration::from_secs(10);
    let client = client(Duration::from_secs(5));

    // Two series (both targets) of 1 at every step: summed 2, averaged 2.
    let up = client.range("up", start, end, "1s").await;
    assert!(up.warnings.is_empty(), "{:?}", up.warnings);
    assert_eq!(up.value, 2.0);

    // A constant series averages to its instant value.
    let total = client
        .range("node_memory_MemTotal_bytes", start, end, "2s")
        .await;
    let instant = client
        .instant("node_memory_MemTotal_bytes", Some(end))
        .await;
    assert!(total.value > 0.0);
    assert_eq!(total.value, instant.value);

    // The bundled queries over the window: the node is measured; a function
    // without container series is NaN with a warning that names it.
    let figlet = FunctionName::parse("figlet").unwrap();
    let measured = meter(Duration::from_secs(2), "5s")
        .iteration_metrics(std::slice::from_ref(&figlet), start, end)
        .await;
    let metrics = measured.value;
    assert!(metrics.cpu_usage_node.is_finite(), "{metrics:?}");
    assert!(
        metrics.ram_usage_node.is_finite() && metrics.ram_usage_node > 0.0,
        "{metrics:?}"
    );
    assert!(metrics.ram_usage_node_pct.is_finite(), "{metrics:?}");
    assert!(metrics.power_usage_node.is_nan());
    let f = metrics.functions[&FunctionName::parse("figlet").unwrap()];
    assert!(
        f.cpu.is_nan() && f.ram.is_nan() && f.power.is_nan(),
        "{f:?}"
    );
    assert_eq!(measured.warnings.len(), 2, "{:?}", measured.warnings);
    assert!(measured
        .warnings
        .iter()
        .all(|w| w.contains("(figlet)") && w.contains("no data")));
}

#[tokio::test]
async fn rejected_query_is_nan_at_once_with_the_reason() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    // A long budget that must not be spent: a syntax error never improves.
    let client = client(Duration::from_secs(60));
    let measured = tokio::time::timeout(
        Duration::from_secs(10),
        client.instant("sum(rate(up[5s]", None),
    )
    .await
    .expect("a rejected query must not be retried for the whole budget");
    assert!(measured.value.is_nan());
    assert_eq!(measured.warnings.len(), 1);
    assert!(
        measured.warnings[0].contains("bad_data"),
        "{:?}",
        measured.warnings
    );
}

#[tokio::test]
async fn stopped_prometheus_gives_nan_and_warnings_quickly() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = PrometheusClient::new(
        &format!("http://127.0.0.1:{port}"),
        settings(Duration::from_secs(1)),
    )
    .unwrap();
    let meter = Meter::new(
        client.clone(),
        QuerySet::bundled(false).unwrap(),
        TimeSpan::parse("30s").unwrap(),
        false,
        BTreeMap::new(),
    );
    let bounded = Duration::from_secs(15);

    let one = tokio::time::timeout(bounded, client.instant("up", None))
        .await
        .expect("a query to a stopped Prometheus must end within its budget");
    assert!(one.value.is_nan());
    assert!(
        one.warnings[0].contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        one.warnings
    );

    let snapshot = tokio::time::timeout(bounded, meter.node_snapshot())
        .await
        .expect("a snapshot from a stopped Prometheus must end within its budget");
    let node = snapshot.value;
    assert!(node.cpu_pct.is_nan() && node.ram_bytes.is_nan() && node.ram_pct.is_nan());
    assert_eq!(snapshot.warnings.len(), 3, "{:?}", snapshot.warnings);

    let cores = tokio::time::timeout(bounded, meter.node_cores())
        .await
        .expect("the core count from a stopped Prometheus must end within its budget");
    let err = cores.unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

fn meter_of(client: PrometheusClient, time_span: &str) -> Meter {
    Meter::new(
        client,
        QuerySet::bundled(false).unwrap(),
        TimeSpan::parse(time_span).unwrap(),
        false,
        BTreeMap::new(),
    )
}

#[tokio::test]
async fn scrape_interval_is_read_from_prometheus_for_the_jobs_queried() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    let meter = meter(Duration::from_secs(5), "1s");
    let sampling = scrape::discover(
        meter.client(),
        &meter.templates(),
        Deadlines::within(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert!(sampling.warnings.is_empty(), "{:?}", sampling.warnings);
    let sampling = sampling.value;
    assert_eq!(sampling.interval, Duration::from_secs(1));
    assert_eq!(sampling.source, SamplingSource::Targets);
    // The bundled queries read node-exporter's series (no container
    // series here), not Prometheus's own.
    assert_eq!(sampling.jobs, ["node"]);
    assert_eq!(sampling.min_window(), Duration::from_secs(2));
}

#[tokio::test]
async fn one_second_iteration_is_measured_over_two_scrapes_not_nan() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = SystemTime::now() - Duration::from_millis(1500);
    let start = end - Duration::from_secs(1);
    let meter = meter(Duration::from_secs(5), "1s");
    let sampling = scrape::discover(
        meter.client(),
        &meter.templates(),
        Deadlines::within(Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .value;
    let fitted = meter.clone().with_sampling(sampling);
    let measured = fitted.iteration_metrics(&[], start, end).await;
    assert!(measured.warnings.is_empty(), "{:?}", measured.warnings);
    let m = measured.value;
    assert!(m.cpu_usage_node.is_finite(), "{m:?}");
    assert_eq!(m.window.as_ref().unwrap().time_span, "2s");
    assert_eq!(
        m.window.as_ref().unwrap().scrape_interval_seconds,
        Some(1.0)
    );
    let snapshot = fitted.node_snapshot().await;
    assert!(snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    assert!(snapshot.value.cpu_pct.is_finite());
    // What the window fixes: `rate(...[1s])` of a 1 s scrape holds one
    // sample (reported, not asserted: an evaluation instant exactly on a
    // sample's millisecond would hold two).
    let unfitted = meter.iteration_metrics(&[], start, end).await.value;
    eprintln!(
        "1 s window: cpu_usage_node {} (fitted 2 s window: {})",
        unfitted.cpu_usage_node, m.cpu_usage_node
    );
}

#[tokio::test]
async fn empty_answer_of_a_finished_window_is_not_retried_for_the_budget() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    let meter = meter(Duration::from_secs(120), "1s");
    let sampling = scrape::discover(
        meter.client(),
        &meter.templates(),
        Deadlines::within(Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .value;
    let meter = meter.with_sampling(sampling);
    // figlet has no series: its queries stay empty whatever happens. The
    // window ended 5 s ago, so no scrape (every 1 s) can fill it any more.
    let figlet = FunctionName::parse("figlet").unwrap();
    let end = SystemTime::now() - Duration::from_secs(5);
    let started = Instant::now();
    let measured = tokio::time::timeout(
        Duration::from_secs(60),
        meter.iteration_metrics(
            std::slice::from_ref(&figlet),
            end - Duration::from_secs(5),
            end,
        ),
    )
    .await
    .expect("an empty answer over a finished window must not be retried for the 120 s budget");
    let f = measured.value.functions[&FunctionName::parse("figlet").unwrap()];
    assert!(f.cpu.is_nan() && f.ram.is_nan());
    let figlet_warnings = measured
        .warnings
        .iter()
        .filter(|w| w.contains("(figlet)") && w.contains("no data"))
        .count();
    assert_eq!(figlet_warnings, 2, "{:?}", measured.warnings);
    eprintln!(
        "empty queries over a finished window: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stop_ends_prometheus_retries_and_requests_at_once() {
    // Nothing listens: connection refused, retried for a long budget.
    let refused = format!("http://127.0.0.1:{}", tls_prometheus::free_port());
    // Accepts and never answers: a request hangs for its whole timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let long = PrometheusSettings {
        request_timeout: Duration::from_secs(120),
        connect_timeout: Duration::from_secs(1),
        retry_budget: Duration::from_secs(120),
        retry_pause: Duration::from_millis(500),
    };
    for url in [refused, silent_url] {
        let (handle, stop) = Stop::new();
        let client = PrometheusClient::new(&url, long).unwrap().with_stop(stop);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            handle.stop();
            Instant::now()
        });
        let answer = tokio::time::timeout(
            Duration::from_secs(60),
            client.query_until(
                &QueryRequest::Instant {
                    query: "up".into(),
                    at: None,
                },
                Deadlines::within(long.retry_budget),
            ),
        )
        .await
        .expect("a stop must end the retries long before their 120 s budget");
        let stopped_at = stopper.await.unwrap();
        assert!(
            matches!(answer, Err(PrometheusError::Interrupted)),
            "{url}: {answer:?}"
        );
        eprintln!("{url}: returned {:?} after the stop", stopped_at.elapsed());
    }
    drop(silent);
}

#[tokio::test]
async fn https_prometheus_with_basic_auth_needs_the_ca_and_the_password() {
    let _stack = Stack::acquire();
    wait_until_scraping().await;
    let tls = TlsPrometheus::start(
        "reader",
        "s3cret-pw",
        &[format!("127.0.0.1:{NODE_EXPORTER_PORT}")],
    );
    let ca = Tls {
        ca: Some(CaBundle {
            path: tls.ca_file.clone(),
            pem: std::fs::read(&tls.ca_file).unwrap(),
        }),
        insecure_skip_verify: false,
    };
    let basic = |password: &str| {
        PrometheusAuth::Basic(BasicAuth {
            user: "reader".into(),
            password: Secret::new(password),
        })
    };
    let budget = Duration::from_secs(2);
    let client = |auth: Option<&PrometheusAuth>, tls_settings: &Tls| {
        PrometheusClient::with_access(&tls.url, settings(budget), auth, tls_settings).unwrap()
    };

    // The CA and the right password: the real answer.
    let right = basic("s3cret-pw");
    let cores = meter_of(client(Some(&right), &ca), "5s")
        .node_cores()
        .await
        .unwrap();
    assert_eq!(cores, cpus_in_proc_stat());

    // A wrong or missing password: 401, at once (not retried).
    for auth in [Some(basic("wrong")), None] {
        let err = meter_of(client(auth.as_ref(), &ca), "5s")
            .node_cores()
            .await
            .unwrap_err();
        assert!(
            matches!(err, PrometheusError::Status { status: 401, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&tls.url), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    // Without the CA the certificate is refused; the insecure switch
    // accepts it.
    let err = meter_of(client(Some(&right), &Tls::default()), "5s")
        .node_cores()
        .await
        .unwrap_err();
    assert!(matches!(err, PrometheusError::Request { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let insecure = Tls {
        ca: None,
        insecure_skip_verify: true,
    };
    let cores = meter_of(client(Some(&right), &insecure), "5s")
        .node_cores()
        .await
        .unwrap();
    assert_eq!(cores, cpus_in_proc_stat());

    // The scrape interval comes through the same TLS and credentials.
    let meter = meter_of(client(Some(&right), &ca), "5s");
    let sampling = scrape::discover(
        meter.client(),
        &meter.templates(),
        Deadlines::within(budget),
    )
    .await
    .unwrap();
    assert!(sampling.warnings.is_empty(), "{:?}", sampling.warnings);
    assert_eq!(sampling.value.jobs, ["lab"]);
    assert!(!format!("{:?}", meter.client()).contains("s3cret"));
}
