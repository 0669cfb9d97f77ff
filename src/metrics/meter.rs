//! Node and function measurements, as the campaign needs them: idle
//! snapshots (instant queries), per-iteration metrics (range queries over
//! the k6 window) and the node's core count.
//!
//! Every query of one call shares one set of [`Deadlines`], so a call is
//! bounded even when Prometheus is gone: a failed query is NaN plus a
//! warning in the returned [`Measured`], never a hang or an error. Only
//! [`Meter::node_cores`] fails, because without it overload cannot be
//! judged.
//!
//! Windows: `{time_span}` is the iteration duration for snapshots and the
//! k6 window for iterations, as in lb's sampler, but never shorter than
//! the [`Sampling`]'s two scrape intervals (a shorter `rate` window holds
//! one sample and answers nothing). With a [`Sampling`] an empty answer
//! is retried only until every scrape that could fill the window is in;
//! without one (tests), within the retry budget.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::prometheus::{
    Deadlines, Measured, PrometheusClient, PrometheusError, PrometheusSettings, QueryRequest,
};
use super::queries::{render, Placeholders, QueryDefinition, QueryError, QuerySet, TimeSpan};
use super::readings::{FunctionMetrics, IterationMetrics, NodeReading, QueryWindow};
use super::scrape::{self, Sampling};
use crate::config::{Config, FunctionName};
use crate::stop::Stop;

/// Why a [`Meter`] could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MeterError {
    #[error(transparent)]
    Queries(#[from] QueryError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
}

/// The query that counts the node's CPUs.
pub(crate) const CORES_QUERY: &str = r#"count(node_cpu_seconds_total{mode="idle"})"#;

/// Reads measurements from one Prometheus with one query set.
#[derive(Debug, Clone)]
pub struct Meter {
    client: PrometheusClient,
    queries: QuerySet,
    time_span: TimeSpan,
    /// `time_span` as a duration (zero when it cannot be read).
    time_span_duration: Duration,
    scaphandre_enabled: bool,
    pid_regexes: BTreeMap<FunctionName, String>,
    sampling: Option<Sampling>,
}

/// When to evaluate a query.
#[derive(Debug, Clone, Copy)]
enum Window {
    Now,
    Between(SystemTime, SystemTime),
}

impl Meter {
    /// `time_span` fills `{time_span}`; `pid_regexes` feed
    /// `power_usage_function` (only with Scaphandre).
    pub fn new(
        client: PrometheusClient,
        queries: QuerySet,
        time_span: TimeSpan,
        scaphandre_enabled: bool,
        pid_regexes: BTreeMap<FunctionName, String>,
    ) -> Self {
        let time_span_duration = scrape::parse_duration(time_span.as_str()).unwrap_or_default();
        Meter {
            client,
            queries,
            time_span,
            time_span_duration,
            scaphandre_enabled,
            pid_regexes,
            sampling: None,
        }
    }

    /// Fits windows and empty-answer retries to `sampling`.
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = Some(sampling);
        self
    }

    /// Ends queries and their retries as soon as `stop` fires.
    pub(crate) fn with_stop(mut self, stop: Stop) -> Self {
        self.client = self.client.with_stop(stop);
        self
    }

    /// The query templates this meter may run (for [`scrape::discover`]).
    pub fn templates(&self) -> Vec<&str> {
        self.queries
            .names()
            .filter_map(|name| self.queries.get(name))
            .map(|definition| definition.query.as_str())
            .collect()
    }

    /// `{time_span}` of an idle snapshot: the iteration duration, at least
    /// two scrape intervals.
    pub(crate) fn snapshot_span(&self) -> TimeSpan {
        match &self.sampling {
            Some(sampling) if sampling.min_window() > self.time_span_duration => {
                TimeSpan::from_duration(sampling.min_window())
            }
            _ => self.time_span.clone(),
        }
    }

    /// `{time_span}` of an iteration: the k6 window (whole seconds, at
    /// least one), at least two scrape intervals.
    pub(crate) fn iteration_span(&self, start: SystemTime, end: SystemTime) -> TimeSpan {
        let k6 = window_duration(start, end);
        match &self.sampling {
            Some(sampling) if sampling.min_window() > k6 => {
                TimeSpan::from_duration(sampling.min_window())
            }
            _ => TimeSpan::from_duration(k6),
        }
    }

    /// The meter a campaign uses: `prometheus_url` with its credentials and
    /// TLS settings, the configured (or bundled) queries, `{time_span}` =
    /// the iteration duration as written (`30s`), Scaphandre and PID
    /// regexes as configured.
    pub(crate) fn from_config(
        config: &Config,
        settings: PrometheusSettings,
    ) -> Result<Self, MeterError> {
        let client = PrometheusClient::with_access(
            &config.prometheus_url,
            settings,
            config.prometheus_auth.as_ref(),
            &config.tls,
        )?;
        let queries = QuerySet::load(config.queries_path.as_deref(), config.scaphandre_enabled)?;
        let time_span = TimeSpan::parse(&config.duration_text)
            .unwrap_or_else(|_| TimeSpan::from_duration(config.duration));
        Ok(Meter::new(
            client,
            queries,
            time_span,
            config.scaphandre_enabled,
            config.function_pid_regexes.clone(),
        ))
    }

    pub fn client(&self) -> &PrometheusClient {
        &self.client
    }

    /// The node right now (instant queries), for the baseline and cooldown.
    pub async fn node_snapshot(&self) -> Measured<NodeReading> {
        let deadlines = self.deadlines(Window::Now);
        let mut warnings = Vec::new();
        let snapshot = self.node(Window::Now, deadlines, &mut warnings).await;
        Measured {
            value: snapshot,
            warnings,
        }
    }

    /// Averages over `[start, end]` (range queries; entries with
    /// `range: false` are read at `end`) for the node and each function.
    pub async fn iteration_metrics(
        &self,
        functions: &[FunctionName],
        start: SystemTime,
        end: SystemTime,
    ) -> Measured<IterationMetrics> {
        let window = Window::Between(start, end);
        let deadlines = self.deadlines(window);
        let mut warnings = Vec::new();
        let node = self.node(window, deadlines, &mut warnings).await;
        let mut per_function = BTreeMap::new();
        for function in functions {
            let cpu = self
                .measure(
                    "cpu_usage_function",
                    Some(function),
                    None,
                    window,
                    deadlines,
                    &mut warnings,
                )
                .await;
            let ram = self
                .measure(
                    "ram_usage_function",
                    Some(function),
                    None,
                    window,
                    deadlines,
                    &mut warnings,
                )
                .await;
            let power = match (self.scaphandre_enabled, self.pid_regexes.get(function)) {
                (true, Some(regex)) => {
                    self.measure(
                        "power_usage_function",
                        Some(function),
                        Some(regex),
                        window,
                        deadlines,
                        &mut warnings,
                    )
                    .await
                }
                _ => f64::NAN,
            };
            per_function.insert(function.clone(), FunctionMetrics { cpu, ram, power });
        }
        let span = self.iteration_span(start, end);
        let window = QueryWindow {
            seconds: scrape::parse_duration(span.as_str())
                .unwrap_or_default()
                .as_secs_f64(),
            time_span: span.as_str().to_string(),
            k6_seconds: end.duration_since(start).unwrap_or_default().as_secs_f64(),
            scrape_interval_seconds: self.sampling.as_ref().map(|s| s.interval.as_secs_f64()),
            scrape_interval_source: self.sampling.as_ref().map(|s| s.source.as_str()),
            end_unix_seconds: end
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        };
        Measured {
            value: IterationMetrics {
                cpu_usage_node: node.cpu_pct,
                ram_usage_node: node.ram_bytes,
                ram_usage_node_pct: node.ram_pct,
                power_usage_node: node.power_uw,
                functions: per_function,
                window: Some(window),
            },
            warnings,
        }
    }

    /// The node's CPU count (`count(node_cpu_seconds_total{mode="idle"})`),
    /// retried within the budget. Node capacity is this × 100.
    pub async fn node_cores(&self) -> Result<u32, PrometheusError> {
        self.node_cores_until(Deadlines::within(self.client.settings().retry_budget))
            .await
    }

    /// [`Meter::node_cores`] retried within `deadlines`.
    pub(crate) async fn node_cores_until(
        &self,
        deadlines: Deadlines,
    ) -> Result<u32, PrometheusError> {
        let request = QueryRequest::Instant {
            query: CORES_QUERY.to_string(),
            at: None,
        };
        let value = self.client.query_until(&request, deadlines).await?;
        if value.is_finite() && value >= 1.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX)
        {
            Ok(value as u32)
        } else {
            Err(PrometheusError::NotACount {
                query: CORES_QUERY.to_string(),
                value,
            })
        }
    }

    /// Failures retried within the budget; empty answers until the data of
    /// `window` is complete (see [`Sampling::settle`]), never past the
    /// budget's end when the window ends now.
    fn deadlines(&self, window: Window) -> Deadlines {
        let now = Instant::now();
        let failure = now + self.client.settings().retry_budget;
        let empty = match (&self.sampling, window) {
            (None, _) => failure,
            (Some(sampling), Window::Now) => now + sampling.settle(),
            (Some(sampling), Window::Between(_, end)) => {
                let settled = end + sampling.settle();
                now + settled
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
            }
        };
        Deadlines { failure, empty }
    }

    async fn node(
        &self,
        window: Window,
        deadlines: Deadlines,
        warnings: &mut Vec<String>,
    ) -> NodeReading {
        let cpu = self
            .measure("cpu_usage_node", None, None, window, deadlines, warnings)
            .await;
        let ram = self
            .measure("ram_usage_node", None, None, window, deadlines, warnings)
            .await;
        let ram_pct = self
            .measure(
                "ram_usage_node_pct",
                None,
                None,
                window,
                deadlines,
                warnings,
            )
            .await;
        let power = if self.scaphandre_enabled {
            self.measure("power_usage_node", None, None, window, deadlines, warnings)
                .await
        } else {
            f64::NAN
        };
        NodeReading {
            cpu_pct: cpu,
            ram_bytes: ram,
            ram_pct,
            power_uw: power,
        }
    }

    /// One named query; NaN plus a warning when it is missing or fails.
    async fn measure(
        &self,
        name: &str,
        function: Option<&FunctionName>,
        pid_regex: Option<&str>,
        window: Window,
        deadlines: Deadlines,
        warnings: &mut Vec<String>,
    ) -> f64 {
        let Some(definition) = self.queries.get(name) else {
            warnings.push(format!("no query named {name} is configured, using NaN"));
            return f64::NAN;
        };
        let span = match window {
            Window::Now => self.snapshot_span(),
            Window::Between(start, end) => self.iteration_span(start, end),
        };
        let request = build_request(
            definition,
            Placeholders {
                time_span: &span,
                function_name: function,
                pid_regex,
            },
            window,
        );
        let label = match function {
            Some(f) => format!("{name} ({f})"),
            None => name.to_string(),
        };
        let measured = self.client.measure_until(&label, &request, deadlines).await;
        warnings.extend(measured.warnings);
        measured.value
    }
}

/// The k6 window rounded up to whole seconds (at least one).
fn window_duration(start: SystemTime, end: SystemTime) -> Duration {
    let window = end.duration_since(start).unwrap_or_default();
    let seconds = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

/// The k6 window as a PromQL duration, rounded up to whole seconds.
#[cfg(test)]
fn window_span(start: SystemTime, end: SystemTime) -> TimeSpan {
    TimeSpan::from_duration(window_duration(start, end))
}

/// An iteration's query covers exactly the k6 window: it is evaluated at
/// the window's end with `{time_span}` = the window, so `rate(...)` and
/// `avg_over_time(...)` average over `[start, end]`. (Sampling every
/// `step` from `start` with `{time_span}` = the duration would mix in up
/// to a whole duration of the idle time before k6 started: at `start`
/// itself the lookback covers only idle time, which roughly halves the
/// measured load of a 30 s run.) Range definitions stay range queries,
/// with the single evaluation at `end`, so a file written for the legacy
/// sampler works unchanged.
fn build_request(
    definition: &QueryDefinition,
    values: Placeholders<'_>,
    window: Window,
) -> QueryRequest {
    let query = render(&definition.query, values);
    match window {
        Window::Now => QueryRequest::Instant { query, at: None },
        Window::Between(_, end) if definition.range => QueryRequest::Range {
            query,
            start: end,
            end,
            step: definition.step.clone(),
        },
        Window::Between(_, end) => QueryRequest::Instant {
            query,
            at: Some(end),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn requests_follow_the_definition() {
        let set = QuerySet::bundled(false).unwrap();
        let span = TimeSpan::parse("30s").unwrap();
        let fn_name = FunctionName::parse("env").unwrap();
        let values = Placeholders {
            time_span: &span,
            function_name: Some(&fn_name),
            pid_regex: None,
        };
        let start = UNIX_EPOCH + Duration::from_secs(100);
        let end = UNIX_EPOCH + Duration::from_secs(130);
        let cpu = set.get("cpu_usage_function").unwrap();
        match build_request(cpu, values, Window::Between(start, end)) {
            QueryRequest::Range {
                query,
                start: s,
                end: e,
                step,
            } => {
                assert!(
                    query.contains(r#"container_label_io_kubernetes_container_name="env"}[30s]"#)
                );
                // Evaluated once, at the end of the window.
                assert_eq!((s, e, step.as_str()), (end, end, "10s"));
            }
            other => panic!("expected a range request, got {other:?}"),
        }
        let ms = Duration::from_millis;
        assert_eq!(window_span(start, end).as_str(), "30s");
        assert_eq!(window_span(start, end + ms(200)).as_str(), "31s");
        assert_eq!(window_span(end, start).as_str(), "1s");
        assert!(matches!(
            build_request(cpu, values, Window::Now),
            QueryRequest::Instant { at: None, .. }
        ));
        let mut instant_only = cpu.clone();
        instant_only.range = false;
        assert_eq!(
            build_request(&instant_only, values, Window::Between(start, end)),
            QueryRequest::Instant {
                query: render(&cpu.query, values),
                at: Some(end)
            }
        );
    }

    fn meter(time_span: &str, sampling: Option<Sampling>) -> Meter {
        let client =
            PrometheusClient::new("http://127.0.0.1:9", PrometheusSettings::default()).unwrap();
        let meter = Meter::new(
            client,
            QuerySet::bundled(false).unwrap(),
            TimeSpan::parse(time_span).unwrap(),
            false,
            BTreeMap::new(),
        );
        match sampling {
            Some(sampling) => meter.with_sampling(sampling),
            None => meter,
        }
    }

    fn every(seconds: u64) -> Sampling {
        Sampling {
            interval: Duration::from_secs(seconds),
            timeout: Duration::from_secs(seconds.min(10)),
            jobs: vec!["node".into()],
            source: scrape::SamplingSource::Targets,
        }
    }

    #[test]
    fn windows_are_at_least_two_scrape_intervals() {
        let start = UNIX_EPOCH + Duration::from_secs(100);
        let k6_end = |ms: u64| start + Duration::from_millis(ms);
        // A 1 s run scraped every second: 2 s, never the one-sample 1 s.
        let m = meter("1s", Some(every(1)));
        assert_eq!(m.snapshot_span().as_str(), "2s");
        assert_eq!(m.iteration_span(start, k6_end(1000)).as_str(), "2s");
        assert_eq!(m.iteration_span(start, k6_end(1200)).as_str(), "2s");
        assert_eq!(m.iteration_span(start, k6_end(2300)).as_str(), "3s");
        // Longer runs keep their own window.
        let m = meter("15s", Some(every(1)));
        assert_eq!(m.snapshot_span().as_str(), "15s");
        assert_eq!(m.iteration_span(start, k6_end(15_400)).as_str(), "16s");
        // Prometheus's usual 15 s scrape: 30 s at least.
        let m = meter("15s", Some(every(15)));
        assert_eq!(m.snapshot_span().as_str(), "30s");
        assert_eq!(m.iteration_span(start, k6_end(15_400)).as_str(), "30s");
        assert_eq!(m.iteration_span(start, k6_end(45_000)).as_str(), "45s");
        // Sampling unknown (tests only): the run's own window.
        let m = meter("1s", None);
        assert_eq!(m.snapshot_span().as_str(), "1s");
        assert_eq!(m.iteration_span(start, k6_end(1000)).as_str(), "1s");
    }

    #[test]
    fn empty_answers_wait_only_until_the_window_is_complete() {
        let m = meter("1s", Some(every(1)));
        let budget = PrometheusSettings::default().retry_budget;
        let before = Instant::now();
        let now = m.deadlines(Window::Now);
        assert!(now.failure >= before + budget);
        assert!(now.empty >= before + every(1).settle());
        assert!(now.empty < before + every(1).settle() + Duration::from_secs(1));
        // A window that ended long ago is complete: no retry for empties.
        let long_ago = SystemTime::now() - Duration::from_secs(60);
        let old = m.deadlines(Window::Between(long_ago - Duration::from_secs(1), long_ago));
        assert!(old.empty <= Instant::now());
        // One that ends now: until a scrape interval, its timeout and the
        // ingestion slack have passed.
        let just = SystemTime::now();
        let fresh = m.deadlines(Window::Between(just - Duration::from_secs(1), just));
        assert!(fresh.empty > Instant::now() + Duration::from_secs(2));
        // Without sampling the budget bounds both.
        let d = meter("1s", None).deadlines(Window::Now);
        assert_eq!(d.failure, d.empty);
    }

    #[test]
    fn metrics_serialize_in_lb_shape() {
        let metrics = IterationMetrics {
            cpu_usage_node: 12.5,
            ram_usage_node: 1e9,
            ram_usage_node_pct: 40.0,
            power_usage_node: f64::NAN,
            functions: BTreeMap::from([(
                FunctionName::parse("figlet").unwrap(),
                FunctionMetrics {
                    cpu: 3.0,
                    ram: 2e6,
                    power: f64::NAN,
                },
            )]),
            window: Some(QueryWindow {
                time_span: "2s".into(),
                seconds: 2.0,
                k6_seconds: 1.2,
                scrape_interval_seconds: Some(1.0),
                scrape_interval_source: Some("targets"),
                end_unix_seconds: 1.5,
            }),
        };
        let json = serde_json::to_value(&metrics).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cpu_usage_node": 12.5, "ram_usage_node": 1e9, "ram_usage_node_pct": 40.0,
                "power_usage_node": null,
                "functions": {"figlet": {"cpu": 3.0, "ram": 2e6, "power": null}},
                "window": {"time_span": "2s", "seconds": 2.0, "k6_seconds": 1.2,
                           "scrape_interval_seconds": 1.0, "scrape_interval_source": "targets",
                           "end_unix_seconds": 1.5}
            })
        );
    }
}
