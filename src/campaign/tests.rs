//! The loop driven by in-memory services: ordering, skips, durability and
//! resume, failures and stops. The real services are exercised end to end
//! in tests/e2e_*.rs.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::services::{LoadError, LoadGenerator, LoadJob, LoadRun, Measurements};
use super::{run, Outcome, RunEnd, Services};
use crate::config::{Config, FunctionName};
use crate::context::RunContext;
use crate::events::{EventKind, LbEvents, MemorySink};
use crate::k6::metric_names;
use crate::metrics::prometheus::Measured;
use crate::metrics::readings::{FunctionMetrics, IterationMetrics, NodeReading, QueryWindow};
use crate::output::Fault;
use crate::protocol::Request;
use crate::protocol::RunResult;
use crate::report::run_report;
use crate::stop::{Stop, StopHandle};

fn name(n: &str) -> FunctionName {
    FunctionName::parse(n).unwrap()
}

/// A validated config through the real loader: `functions` at custom
/// `rates`, single-function configurations, 2 s iterations.
fn config(functions: &[&str], rates: &[u64], iterations: u32) -> Config {
    let functions: Vec<Value> = functions.iter().map(|f| json!({"name": f})).collect();
    let request = Request {
        config: json!({
            "functions": functions,
            "rate_strategy": {"type": "custom", "rates": rates},
            "duration": "2s",
            "iterations": iterations,
            "cooldown": {"max_wait_seconds": 20, "sleep_step_seconds": 5, "idle_threshold_pct": 15},
        }),
        ..Request::default()
    };
    crate::config::load_request(&request).unwrap().config
}

/// A k6 stand-in: every function answers all requests up to `capacity`
/// req/s and only `capacity / rate` of them above. Records what it ran.
struct FakeK6 {
    capacity: u64,
    runs: Vec<String>,
    fail_config: Option<String>,
    stop_after: Option<(usize, StopHandle)>,
    /// From this run on (1-based), summaries carry 200 KiB of padding.
    big_summary_from: Option<usize>,
}

impl FakeK6 {
    fn new(capacity: u64) -> Self {
        FakeK6 {
            capacity,
            runs: vec![],
            fail_config: None,
            stop_after: None,
            big_summary_from: None,
        }
    }
}

/// A k6 v1 summary for `rates` (function → rate) run for 2 s.
fn summary(rates: &[(String, u64)], capacity: u64) -> Value {
    let mut metrics = Map::new();
    for (f, rate) in rates {
        let ids = metric_names(&name(f));
        let sent = rate * 2;
        let ok = if *rate <= capacity {
            sent
        } else {
            sent * capacity / rate
        };
        metrics.insert(ids.requests, json!({"count": sent, "rate": *rate}));
        metrics.insert(
            ids.success,
            json!({"passes": ok, "fails": sent - ok, "value": ok as f64 / sent.max(1) as f64}),
        );
        metrics.insert(ids.latency, json!({"avg": 12.5, "count": sent}));
        metrics.insert(ids.dropped, json!({"count": 0, "rate": 0}));
    }
    json!({ "metrics": metrics })
}

/// The (function, rate) pairs a fake script was rendered for, read back
/// from the scenario names in it.
fn pairs_in(script: &str, functions: &[&str]) -> Vec<(String, u64)> {
    functions
        .iter()
        .filter_map(|f| {
            let scenario = metric_names(&name(f)).scenario;
            let at = script.find(&format!("{scenario}: {{"))?;
            let rest = &script[at..];
            let rate_at = rest.find("rate: ")? + "rate: ".len();
            let digits: String = rest[rate_at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some((f.to_string(), digits.parse().ok()?))
        })
        .collect()
}

impl LoadGenerator for FakeK6 {
    async fn run(
        &mut self,
        job: LoadJob<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        _stop: &Stop,
    ) -> Result<LoadRun, LoadError> {
        self.runs.push(job.config_id.to_string());
        on_line("running (00m02.0s), 0/1 VUs");
        if let Some((after, handle)) = &self.stop_after {
            if self.runs.len() > *after {
                handle.stop();
                return Err(LoadError::Interrupted);
            }
        }
        if self.fail_config.as_deref() == Some(job.config_id) {
            return Err(LoadError::Failed("ssh: connection reset".into()));
        }
        let pairs = pairs_in(job.script, &["env", "figlet"]);
        let mut summary = summary(&pairs, self.capacity);
        if self
            .big_summary_from
            .is_some_and(|from| self.runs.len() >= from)
        {
            summary["padding"] = json!("x".repeat(200 * 1024));
        }
        Ok(LoadRun {
            parts: vec![super::services::GeneratorPart {
                generator: "k6:22".to_string(),
                segment: None,
                summary,
                cpu: None,
            }],
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_002),
            warnings: vec![],
        })
    }
}

/// Node CPU per snapshot call (1 = the baseline), one replica each
/// (or what `replicas` says); `stop_in_metrics` requests a stop while the
/// iteration's metrics are read.
struct FakeMeter {
    cpu_at_call: fn(u32) -> f64,
    calls: Cell<u32>,
    replicas: Result<BTreeMap<String, u64>, String>,
    stop_in_metrics: Option<StopHandle>,
}

impl FakeMeter {
    fn new(cpu_at_call: fn(u32) -> f64) -> Self {
        FakeMeter {
            cpu_at_call,
            calls: Cell::new(0),
            replicas: Ok([("env".to_string(), 1), ("figlet".to_string(), 1)].into()),
            stop_in_metrics: None,
        }
    }

    fn quiet() -> Self {
        FakeMeter::new(|_| 10.0)
    }
}

impl Measurements for FakeMeter {
    async fn node_snapshot(&self) -> Measured<NodeReading> {
        self.calls.set(self.calls.get() + 1);
        let cpu = (self.cpu_at_call)(self.calls.get());
        Measured {
            value: NodeReading {
                cpu_pct: cpu,
                ram_bytes: 1e9,
                ram_pct: 20.0,
                power_uw: f64::NAN,
            },
            warnings: vec![],
        }
    }

    async fn iteration_metrics(
        &self,
        functions: &[FunctionName],
        _start: SystemTime,
        _end: SystemTime,
    ) -> Measured<IterationMetrics> {
        if let Some(handle) = &self.stop_in_metrics {
            handle.stop();
        }
        Measured {
            value: IterationMetrics {
                cpu_usage_node: 50.0,
                ram_usage_node: 2e9,
                ram_usage_node_pct: 30.0,
                power_usage_node: f64::NAN,
                functions: functions
                    .iter()
                    .map(|f| {
                        (
                            f.clone(),
                            FunctionMetrics {
                                cpu: 5.0,
                                ram: 1e8,
                                power: f64::NAN,
                            },
                        )
                    })
                    .collect(),
                window: Some(QueryWindow {
                    time_span: "2s".into(),
                    seconds: 2.0,
                    k6_seconds: 2.0,
                    scrape_interval_seconds: Some(1.0),
                    scrape_interval_source: Some("targets"),
                    end_unix_seconds: 1002.0,
                }),
            },
            warnings: vec!["power_usage_node: no series".into()],
        }
    }

    async fn replicas(&self) -> Result<BTreeMap<String, u64>, String> {
        self.replicas.clone()
    }
}

/// Runs the whole campaign in `dir` on a 2-core node.
async fn campaign(
    cfg: &Config,
    dir: &Path,
    k6: &mut FakeK6,
    meter: &FakeMeter,
    em: &LbEvents,
    stop: &Stop,
) -> Ran {
    let services = Services {
        load: k6,
        meter,
        stop,
    };
    ran(run(cfg, &ctx(dir), em, services, 2.0).await.unwrap())
}

/// An outcome as the tests read it: the result document `run` prints,
/// and how the campaign ended.
struct Ran {
    result: RunResult,
    failed_configs: u32,
    interrupted: bool,
    /// The output failure that stopped the campaign: its fault and text.
    stopped_by: Option<(Fault, String)>,
}

fn ran(out: Outcome) -> Ran {
    let failed_configs = match out.end {
        RunEnd::ConfigurationsFailed(n) => n,
        _ => 0,
    };
    let interrupted = matches!(out.end, RunEnd::Interrupted { .. });
    let stopped_by = match &out.end {
        RunEnd::OutputFailed { source, .. } => Some((source.fault(), source.to_string())),
        _ => None,
    };
    Ran {
        result: run_report(Ok(out)).0,
        failed_configs,
        interrupted,
        stopped_by,
    }
}

fn ctx(dir: &Path) -> RunContext {
    RunContext::local("node1", "run-1", dir.to_path_buf())
}

fn emitter() -> (LbEvents, MemorySink) {
    let sink = MemorySink::default();
    (
        LbEvents::new(&ctx(Path::new("")), Arc::new(sink.clone()), true),
        sink,
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn overload_skips_dominating_configurations_and_rerun_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env", "figlet"], &[0, 10, 20, 30], 1);
    let (em, sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(10);
    let out = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop).await;

    // env:0 env:10 env:20(overloaded) | env:30 dominated; same for figlet.
    assert_eq!(k6.runs.len(), 6, "{:?}", k6.runs);
    assert_eq!(out.result.returncode, 0);
    assert!(out.result.success);
    assert_eq!(out.result.data.dfaas_results.len(), 6);
    assert_eq!(out.result.data.dfaas_index.len(), 6);
    let results = lines(&dir.path().join("results.csv"));
    assert_eq!(results.len(), 7);
    let skipped = lines(&dir.path().join("skipped.csv"));
    assert_eq!(
        skipped,
        vec![
            "function_env,rate_function_env,function_figlet,rate_function_figlet".to_string(),
            "env,30,,".to_string(),
            ",,figlet,30".to_string(),
        ]
    );
    let index = lines(&dir.path().join("index.csv"));
    assert_eq!(index[0], "functions;rates;results_file");
    assert_eq!(index[3], "['env'];[20];results.csv");
    let kinds: Vec<EventKind> = sink.events().iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::ConfigOverloaded));
    assert!(sink
        .events()
        .iter()
        .any(|e| e.kind == EventKind::Log && e.message.starts_with("k6: running")));

    // Same output directory again: nothing is sent, nothing is appended.
    let mut again = FakeK6::new(10);
    let out2 = campaign(
        &cfg,
        dir.path(),
        &mut again,
        &FakeMeter::quiet(),
        &em,
        &stop,
    )
    .await;
    assert!(again.runs.is_empty(), "{:?}", again.runs);
    assert_eq!(out2.result.returncode, 0);
    assert_eq!(lines(&dir.path().join("results.csv")), results);
    assert_eq!(lines(&dir.path().join("skipped.csv")), skipped);
    assert_eq!(out2.result.data.dfaas_skipped.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_failed_configuration_is_skipped_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env"], &[10, 20], 1);
    let (em, sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    k6.fail_config = Some(
        crate::plan::Configuration::from_pairs([(name("env"), 10)])
            .unwrap()
            .config_id()
            .to_string(),
    );
    let out = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop).await;
    assert_eq!(k6.runs.len(), 2);
    assert_eq!(out.result.returncode, 1);
    assert!(!out.result.success);
    assert_eq!(out.failed_configs, 1);
    assert_eq!(lines(&dir.path().join("skipped.csv"))[1], "env,10");
    assert_eq!(lines(&dir.path().join("results.csv")).len(), 2);
    assert!(sink
        .events()
        .iter()
        .any(|e| e.kind == EventKind::ConfigFailed && e.message.contains("connection reset")));

    // A rerun completes it: it is measured, indexed, and no longer listed
    // as skipped (the other lines of skipped.csv are kept as they were).
    let mut k6 = FakeK6::new(100);
    let rerun = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop).await;
    assert_eq!(rerun.result.returncode, 0);
    assert_eq!(k6.runs.len(), 1);
    assert_eq!(
        lines(&dir.path().join("skipped.csv")),
        ["function_env,rate_function_env"]
    );
    assert_eq!(lines(&dir.path().join("index.csv")).len(), 3);
    assert_eq!(lines(&dir.path().join("results.csv")).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_rerun_resumes_a_configuration_killed_between_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env"], &[10], 3);
    let (em, _sink) = emitter();
    let (handle, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    k6.stop_after = Some((1, handle));
    let out = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop).await;
    assert!(out.interrupted);
    assert_eq!(out.result.returncode, 130);
    assert_eq!(
        lines(&dir.path().join("results.csv")).len(),
        2,
        "one finished iteration kept"
    );
    assert_eq!(
        lines(&dir.path().join("index.csv")).len(),
        1,
        "not indexed yet"
    );

    let (_h2, stop2) = Stop::new();
    let mut k6 = FakeK6::new(100);
    let out = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop2).await;
    assert_eq!(k6.runs.len(), 2, "only the two missing iterations run");
    assert_eq!(out.result.returncode, 0);
    assert_eq!(lines(&dir.path().join("results.csv")).len(), 4);
    assert_eq!(lines(&dir.path().join("index.csv")).len(), 2);
    let summaries: Vec<u32> = out
        .result
        .data
        .dfaas_summaries
        .iter()
        .map(|s| s.iteration)
        .collect();
    assert_eq!(summaries, vec![2, 3]);
}

#[tokio::test(start_paused = true)]
async fn cooldown_waits_and_records_rest_seconds() {
    let cfg = config(&["env"], &[10], 1);
    let (em, _sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);

    let dir = tempfile::tempdir().unwrap();
    let out = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop).await;
    assert_eq!(out.result.data.dfaas_results[0]["rest_seconds"], json!(0));

    // A quiet baseline, then two busy polls 5 s apart: 10 s of rest.
    let dir = tempfile::tempdir().unwrap();
    let meter = FakeMeter::new(|call| if call == 2 || call == 3 { 150.0 } else { 10.0 });
    let out = campaign(&cfg, dir.path(), &mut k6, &meter, &em, &stop).await;
    assert_eq!(out.result.data.dfaas_results[0]["rest_seconds"], json!(10));
    assert_eq!(
        out.result.data.dfaas_results[0]["cpu_usage_idle_node"],
        json!("10.000")
    );
}

#[tokio::test(start_paused = true)]
async fn cooldown_timeout_fails_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env"], &[10], 1);
    let (em, _sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    // Busy after the baseline for longer than the 20 s maximum wait.
    let meter = FakeMeter::new(|call| if call == 1 { 10.0 } else { 150.0 });
    let out = campaign(&cfg, dir.path(), &mut k6, &meter, &em, &stop).await;
    assert!(k6.runs.is_empty());
    assert_eq!(out.result.returncode, 1);
    assert_eq!(lines(&dir.path().join("skipped.csv"))[1], "env,10");
    assert_eq!(
        meter.calls.get(),
        6,
        "baseline + polls at 0, 5, 10, 15, 20 s"
    );
}

#[tokio::test(start_paused = true)]
async fn replicas_the_gateway_refused_are_nan_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env"], &[10], 1);
    let (em, sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    let mut meter = FakeMeter::quiet();
    meter.replicas = Err("gateway at http://gw/system/functions answered HTTP 401".into());
    let out = campaign(&cfg, dir.path(), &mut k6, &meter, &em, &stop).await;
    let row = &out.result.data.dfaas_results[0];
    assert_eq!(row["replica_env"], json!("nan"));
    assert_eq!(row["overloaded_function_env"], json!(0));
    let results = lines(&dir.path().join("results.csv"));
    let header: Vec<&str> = results[0].split(',').collect();
    let cells: Vec<&str> = results[1].split(',').collect();
    let at = header.iter().position(|c| *c == "replica_env").unwrap();
    assert_eq!(cells[at], "nan");
    assert!(sink
        .events()
        .iter()
        .any(|e| e.level == crate::events::Level::Warning
            && e.message.contains("replicas unknown, recorded as nan")
            && e.message.contains("401")));
    // A dataset with a nan replica cell reads back: a rerun resumes it.
    let mut again = FakeK6::new(100);
    let out = campaign(&cfg, dir.path(), &mut again, &meter, &em, &stop).await;
    assert!(again.runs.is_empty(), "{:?}", again.runs);
    assert_eq!(out.result.returncode, 0);
}

#[tokio::test(start_paused = true)]
async fn a_function_the_gateway_does_not_list_has_nan_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env", "figlet"], &[10], 1);
    let (em, sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    let mut meter = FakeMeter::quiet();
    meter.replicas = Ok([("env".to_string(), 1)].into());
    let out = campaign(&cfg, dir.path(), &mut k6, &meter, &em, &stop).await;
    let rows = &out.result.data.dfaas_results;
    assert_eq!(rows[0]["replica_env"], json!(1));
    assert_eq!(rows[1]["replica_figlet"], json!("nan"));
    assert!(sink
        .events()
        .iter()
        .any(|e| e.message.contains("does not list figlet")));
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_metrics_are_read_writes_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env"], &[10], 2);
    let (em, _sink) = emitter();
    let (handle, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    let mut meter = FakeMeter::quiet();
    meter.stop_in_metrics = Some(handle);
    let out = campaign(&cfg, dir.path(), &mut k6, &meter, &em, &stop).await;
    assert!(out.interrupted);
    assert_eq!(out.result.returncode, 130);
    assert_eq!(k6.runs.len(), 1);
    assert!(out.result.data.dfaas_results.is_empty());
    assert_eq!(
        lines(&dir.path().join("results.csv")).len(),
        1,
        "header only"
    );
}

#[tokio::test(start_paused = true)]
async fn the_query_window_is_written_beside_the_metrics_csv() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["env"], &[10], 1);
    let (em, _sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    let out = campaign(&cfg, dir.path(), &mut k6, &FakeMeter::quiet(), &em, &stop).await;
    let id = out.result.data.dfaas_metrics[0].config_id.clone();
    let window: Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join(format!("metrics/window-{id}-iter1-rep1.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(window["time_span"], "2s");
    assert_eq!(window["scrape_interval_seconds"], 1.0);
    assert_eq!(out.result.data.dfaas_metrics[0].metrics["window"], window);
    // The metrics CSV keeps the legacy columns.
    let csv = lines(
        &dir.path()
            .join(format!("metrics/metrics-{id}-iter1-rep1.csv")),
    );
    assert!(!csv[0].contains("window"), "{}", csv[0]);
}

#[path = "../../tests/support/small_fs.rs"]
mod small_fs;

/// A disk that fills up mid-run stops the campaign with the environment's
/// error; the iteration that did not fit leaves neither a row nor files,
/// and what finished before it stays.
#[tokio::test(start_paused = true)]
async fn a_full_disk_stops_the_campaign_keeping_what_finished() {
    let Some(disk) = small_fs::SmallFs::mount(96, false) else {
        return;
    };
    let dir = disk.join("out");
    let cfg = config(&["env"], &[10, 20, 30], 1);
    let (em, sink) = emitter();
    let (_h, stop) = Stop::new();
    let mut k6 = FakeK6::new(100);
    k6.big_summary_from = Some(2);
    let out = campaign(&cfg, &dir, &mut k6, &FakeMeter::quiet(), &em, &stop).await;

    assert_eq!(k6.runs.len(), 2, "the campaign stops at the failed write");
    let Some((fault, source)) = &out.stopped_by else {
        panic!("not stopped by the disk: {:?}", out.result.error);
    };
    assert_eq!(*fault, crate::output::Fault::Environment, "{source}");
    assert!(source.contains("No space left on device"), "{source}");
    assert_eq!(lines(&dir.join("results.csv")).len(), 2, "header + env:10");
    assert_eq!(lines(&dir.join("index.csv")).len(), 2);
    assert_eq!(out.result.data.dfaas_results.len(), 1);
    let files = |sub: &str, prefix: &str| {
        std::fs::read_dir(dir.join(sub))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .count()
    };
    assert_eq!(
        (
            files("summaries", "summary-"),
            files("metrics", "metrics-"),
            files("metrics", "window-"),
            files("metrics", ".tmp"),
        ),
        (1, 1, 1, 0)
    );
    assert!(sink
        .events()
        .iter()
        .any(|e| e.message.contains("the campaign stops")));
}

// --- the campaign memory, through its progress observer -------------------

mod memory {
    use super::*;
    use crate::campaign::progress::{Observer, Observers};
    use crate::memory::{MemoryConfig, MemoryRecorder, RunSetup, RunStatus};

    /// `functions` at `rates` in combinations of 1..max_functions-1, with
    /// the given overload extras.
    fn config_with(functions: &[&str], rates: &[u64], iterations: u32, extra: Value) -> Config {
        let functions: Vec<Value> = functions.iter().map(|f| json!({"name": f})).collect();
        let mut body = json!({
            "functions": functions,
            "rate_strategy": {"type": "custom", "rates": rates},
            "duration": "2s",
            "iterations": iterations,
            "cooldown": {"max_wait_seconds": 20, "sleep_step_seconds": 5, "idle_threshold_pct": 15},
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let request = Request {
            config: body,
            ..Request::default()
        };
        crate::config::load_request(&request).unwrap().config
    }

    /// One run of `cfg` in `dir` with its memory at `db`: returns the
    /// outcome and the events.
    async fn run_with_memory(
        cfg: &Config,
        dir: &Path,
        db: &Path,
        k6: &mut FakeK6,
        stop: &Stop,
    ) -> (Ran, MemorySink) {
        let (em, sink) = emitter();
        let em: Arc<dyn Observer> = Arc::new(em);
        let recorder = Arc::new(MemoryRecorder::new(em.clone()));
        let paths = MemoryConfig {
            db_path: db.to_path_buf(),
            ..MemoryConfig::default()
        }
        .resolve(dir);
        let setup = RunSetup::of(cfg, "run-1", 1, SystemTime::now()).unwrap();
        let known = recorder.open(&paths, setup, true).unwrap();
        let observers = Observers::new(vec![recorder.clone(), em]);
        let run_ctx = ctx(dir);
        let mut campaign = super::super::Campaign::open(cfg, &run_ctx, &observers).unwrap();
        campaign.recall(known);
        let services = Services {
            load: k6,
            meter: &FakeMeter::quiet(),
            stop,
        };
        let outcome = campaign.execute(services, 2.0).await;
        recorder.finish(RunStatus::of_exit_code(
            crate::report::run_exit_code(&outcome.end).code(),
        ));
        (ran(outcome), sink)
    }

    /// `(config_id, iteration, skip_reason)` of every event, sorted.
    fn events(db: &Path) -> Vec<(String, i64, Option<String>)> {
        let conn = duckdb::Connection::open(db).unwrap();
        let mut statement = conn
            .prepare(
                "SELECT config_id, iteration, skip_reason FROM execution_events \
                 ORDER BY config_id, iteration, skip_reason",
            )
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn id(pairs: &[(&str, u64)]) -> String {
        crate::plan::Configuration::from_pairs(pairs.iter().map(|&(f, r)| (name(f), r)))
            .unwrap()
            .config_id()
            .to_string()
    }

    fn skipped_with(sink: &MemorySink, reason: &str) -> usize {
        sink.events()
            .iter()
            .filter(|e| {
                e.kind == EventKind::ConfigSkipped && e.message.contains(&format!("({reason})"))
            })
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn every_iteration_is_recorded_and_a_second_run_skips_what_the_memory_knows() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("mem").join("m.duckdb");
        let cfg = config_with(&["env", "figlet"], &[0, 10, 20, 30], 2, json!({}));
        let (_h, stop) = Stop::new();
        let mut k6 = FakeK6::new(10);
        let (out, _) = run_with_memory(&cfg, &tmp.path().join("a"), &db, &mut k6, &stop).await;
        assert_eq!(out.result.returncode, 0);
        // env:0 env:10 env:20 (overloaded) and the same for figlet, twice each.
        assert_eq!(k6.runs.len(), 12, "{:?}", k6.runs);
        let recorded = events(&db);
        let measured: Vec<_> = recorded.iter().filter(|e| e.2.is_none()).collect();
        assert_eq!(measured.len(), 12);
        assert!(measured.iter().all(|e| e.1 == 1 || e.1 == 2));
        let dominated: Vec<_> = recorded.iter().filter(|e| e.2.is_some()).collect();
        assert_eq!(dominated.len(), 2);
        assert!(dominated.iter().all(|e| e.1 == 0
            && e.2.as_deref() == Some("dominated_by_overload")
            && (e.0 == id(&[("env", 30)]) || e.0 == id(&[("figlet", 30)]))));
        {
            let conn = duckdb::Connection::open(&db).unwrap();
            let (status, summaries): (String, i64) = conn
                .query_row(
                    "SELECT status, (SELECT count(*) FROM k6_raw_summaries) FROM run_sessions",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .unwrap();
            assert_eq!((status.as_str(), summaries), ("completed", 12));
            let cpu: String = conn
                .query_row(
                    "SELECT json_extract_string(payload_json, '$.metrics.cpu_usage_node') \
                     FROM execution_events WHERE iteration = 1 LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(cpu, "50.0");
        }

        // Another output directory, the same memory: nothing is measured
        // again, and the overload found before still skips env:30.
        let mut again = FakeK6::new(10);
        let b = tmp.path().join("b");
        let (out, sink) = run_with_memory(&cfg, &b, &db, &mut again, &stop).await;
        assert!(again.runs.is_empty(), "{:?}", again.runs);
        assert_eq!(out.result.returncode, 0);
        assert_eq!(skipped_with(&sink, "already_in_memory"), 6);
        assert_eq!(skipped_with(&sink, "dominated_by_overload"), 2);
        assert_eq!(out.result.data.dfaas_skipped.len(), 8);
        // skipped.csv lists the dominated ones only; nothing was measured.
        assert_eq!(lines(&b.join("skipped.csv")).len(), 3);
        assert_eq!(lines(&b.join("results.csv")).len(), 1);
        // The second run's skips are events of its own; under the same run
        // id and repetition (a resumed run) a skip is recorded once.
        assert_eq!(events(&db).len(), 14 + 6);

        // Other iterations: the memory knows 2 of 3, the third runs.
        let more = config_with(&["env", "figlet"], &[0, 10, 20, 30], 3, json!({}));
        let mut third = FakeK6::new(10);
        let c = tmp.path().join("c");
        let (_, sink) = run_with_memory(&more, &c, &db, &mut third, &stop).await;
        assert_eq!(third.runs.len(), 6, "{:?}", third.runs);
        assert!(sink.events().iter().any(|e| e
            .message
            .contains("resuming after 2 completed iteration(s)")));
        assert_eq!(lines(&c.join("results.csv")).len(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_configuration_stopped_midway_runs_only_its_missing_iterations() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("m.duckdb");
        let cfg = config_with(&["env"], &[10, 20], 3, json!({}));
        let (handle, stop) = Stop::new();
        let mut k6 = FakeK6::new(100);
        k6.stop_after = Some((2, handle));
        let (out, _) = run_with_memory(&cfg, &tmp.path().join("a"), &db, &mut k6, &stop).await;
        assert!(out.interrupted);
        assert_eq!(events(&db).len(), 2);
        {
            let conn = duckdb::Connection::open(&db).unwrap();
            let status: String = conn
                .query_row("SELECT status FROM run_sessions", [], |row| row.get(0))
                .unwrap();
            assert_eq!(status, "interrupted");
        }
        let (_h, stop) = Stop::new();
        let mut rerun = FakeK6::new(100);
        let (out, _) = run_with_memory(&cfg, &tmp.path().join("b"), &db, &mut rerun, &stop).await;
        assert_eq!(out.result.returncode, 0);
        // Iteration 3 of env:10, then env:20 in full.
        assert_eq!(rerun.runs.len(), 4, "{:?}", rerun.runs);
        let mut iterations: Vec<i64> = events(&db)
            .iter()
            .filter(|e| e.0 == id(&[("env", 10)]))
            .map(|e| e.1)
            .collect();
        iterations.sort_unstable();
        assert_eq!(iterations, [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn predicted_overloads_are_skipped_only_when_asked() {
        let rates = [0, 10, 20];
        let combinations = json!({"combinations": {"min_functions": 1, "max_functions": 3}});
        let mut lb_rule = FakeK6::new(10);
        let tmp = tempfile::tempdir().unwrap();
        let (_h, stop) = Stop::new();
        let cfg = config_with(&["env", "figlet"], &rates, 1, combinations.clone());
        let (_, sink) = run_with_memory(
            &cfg,
            &tmp.path().join("a"),
            &tmp.path().join("a.duckdb"),
            &mut lb_rule,
            &stop,
        )
        .await;
        // 6 singles; pairs (0,0) (0,10) (0,20) (10,0) (10,10) (20,0).
        assert_eq!(lb_rule.runs.len(), 12, "{:?}", lb_rule.runs);
        assert_eq!(skipped_with(&sink, "predicted_overload"), 0);

        let mut extra = combinations;
        extra["overload"] = json!({"skip_predicted": true});
        let cfg = config_with(&["env", "figlet"], &rates, 1, extra);
        let mut predicted = FakeK6::new(10);
        let dir = tmp.path().join("b");
        let db = tmp.path().join("b.duckdb");
        let (out, sink) = run_with_memory(&cfg, &dir, &db, &mut predicted, &stop).await;
        assert_eq!(out.result.returncode, 0);
        // Every pair with figlet:20 or env:20 is predicted from those two
        // singles: (0,20) and (20,0), which the same-set rule measures,
        // and (10,20) (20,10) (20,20), which it skips as dominated.
        assert_eq!(predicted.runs.len(), 10, "{:?}", predicted.runs);
        assert!(!predicted.runs.contains(&id(&[("env", 0), ("figlet", 20)])));
        assert!(!predicted.runs.contains(&id(&[("env", 20), ("figlet", 0)])));
        assert_eq!(skipped_with(&sink, "predicted_overload"), 5);
        assert_eq!(skipped_with(&sink, "dominated_by_overload"), 0);
        let skipped = lines(&dir.join("skipped.csv"));
        assert_eq!(skipped.len(), 6, "{skipped:?}");
        assert!(
            skipped.contains(&"env,0,figlet,20".to_string()),
            "{skipped:?}"
        );
        assert!(
            skipped.contains(&"env,20,figlet,0".to_string()),
            "{skipped:?}"
        );
        let reasons: Vec<_> = events(&db).into_iter().filter_map(|e| e.2).collect();
        assert_eq!(reasons, vec!["predicted_overload"; 5]);
    }
}
