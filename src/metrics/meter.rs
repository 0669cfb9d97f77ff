//! Node and function measurements, as the campaign needs them: idle
//! snapshots (instant queries), per-iteration metrics (range queries over
//! the k6 window) and the node's core count.
//!
//! Every query of one call shares one retry budget, so a call is bounded
//! even when Prometheus is gone: a failed query is NaN plus a warning in
//! the returned [`Measured`], never a hang or an error. Only
//! [`Meter::node_cores`] fails, because without it overload cannot be
//! judged. The placeholder `{time_span}` is the iteration duration, as in
//! lb's sampler, for snapshots and iterations alike.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::prometheus::{
    Measured, PrometheusClient, PrometheusError, PrometheusSettings, QueryRequest,
};
use super::queries::{render, Placeholders, QueryDefinition, QueryError, QuerySet, TimeSpan};
use crate::config::{Config, FunctionName};

/// Why a [`Meter`] could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error(transparent)]
    Queries(#[from] QueryError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
}

/// The query that counts the node's CPUs.
pub const CORES_QUERY: &str = r#"count(node_cpu_seconds_total{mode="idle"})"#;

/// Node values at one instant. `cpu` runs 0..cores×100, `ram` in bytes,
/// `ram_pct` 0..100, `power` in microwatts (NaN without Scaphandre).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NodeSnapshot {
    pub cpu: f64,
    pub ram: f64,
    pub ram_pct: f64,
    pub power: f64,
}

/// One function's averages over an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FunctionMetrics {
    pub cpu: f64,
    pub ram: f64,
    pub power: f64,
}

/// Averages over one iteration's k6 window, in the shape of lb's
/// `dfaas_metrics` entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IterationMetrics {
    pub cpu_usage_node: f64,
    pub ram_usage_node: f64,
    pub ram_usage_node_pct: f64,
    pub power_usage_node: f64,
    pub functions: BTreeMap<String, FunctionMetrics>,
}

/// Reads measurements from one Prometheus with one query set.
#[derive(Debug, Clone)]
pub struct Meter {
    client: PrometheusClient,
    queries: QuerySet,
    time_span: TimeSpan,
    scaphandre_enabled: bool,
    pid_regexes: BTreeMap<FunctionName, String>,
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
        Meter {
            client,
            queries,
            time_span,
            scaphandre_enabled,
            pid_regexes,
        }
    }

    /// The meter a campaign uses: `prometheus_url`, the configured (or
    /// bundled) queries, `{time_span}` = the iteration duration as written
    /// (`30s`), Scaphandre and PID regexes as configured.
    pub fn from_config(config: &Config, settings: PrometheusSettings) -> Result<Self, MeterError> {
        let client = PrometheusClient::new(&config.prometheus_url, settings)?;
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

    pub fn time_span(&self) -> &TimeSpan {
        &self.time_span
    }

    pub fn client(&self) -> &PrometheusClient {
        &self.client
    }

    /// The node right now (instant queries), for the baseline and cooldown.
    pub async fn node_snapshot(&self) -> Measured<NodeSnapshot> {
        let deadline = self.deadline();
        let mut warnings = Vec::new();
        let snapshot = self.node(Window::Now, deadline, &mut warnings).await;
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
        let deadline = self.deadline();
        let window = Window::Between(start, end);
        let mut warnings = Vec::new();
        let node = self.node(window, deadline, &mut warnings).await;
        let mut per_function = BTreeMap::new();
        for function in functions {
            let cpu = self
                .measure(
                    "cpu_usage_function",
                    Some(function),
                    None,
                    window,
                    deadline,
                    &mut warnings,
                )
                .await;
            let ram = self
                .measure(
                    "ram_usage_function",
                    Some(function),
                    None,
                    window,
                    deadline,
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
                        deadline,
                        &mut warnings,
                    )
                    .await
                }
                _ => f64::NAN,
            };
            per_function.insert(function.to_string(), FunctionMetrics { cpu, ram, power });
        }
        Measured {
            value: IterationMetrics {
                cpu_usage_node: node.cpu,
                ram_usage_node: node.ram,
                ram_usage_node_pct: node.ram_pct,
                power_usage_node: node.power,
                functions: per_function,
            },
            warnings,
        }
    }

    /// The node's CPU count (`count(node_cpu_seconds_total{mode="idle"})`),
    /// retried within the budget. Node capacity is this × 100.
    pub async fn node_cores(&self) -> Result<u32, PrometheusError> {
        let request = QueryRequest::Instant {
            query: CORES_QUERY.to_string(),
            at: None,
        };
        let value = self.client.query_until(&request, self.deadline()).await?;
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

    fn deadline(&self) -> Instant {
        Instant::now() + self.client.settings().retry_budget
    }

    async fn node(
        &self,
        window: Window,
        deadline: Instant,
        warnings: &mut Vec<String>,
    ) -> NodeSnapshot {
        let cpu = self
            .measure("cpu_usage_node", None, None, window, deadline, warnings)
            .await;
        let ram = self
            .measure("ram_usage_node", None, None, window, deadline, warnings)
            .await;
        let ram_pct = self
            .measure("ram_usage_node_pct", None, None, window, deadline, warnings)
            .await;
        let power = if self.scaphandre_enabled {
            self.measure("power_usage_node", None, None, window, deadline, warnings)
                .await
        } else {
            f64::NAN
        };
        NodeSnapshot {
            cpu,
            ram,
            ram_pct,
            power,
        }
    }

    /// One named query; NaN plus a warning when it is missing or fails.
    async fn measure(
        &self,
        name: &str,
        function: Option<&FunctionName>,
        pid_regex: Option<&str>,
        window: Window,
        deadline: Instant,
        warnings: &mut Vec<String>,
    ) -> f64 {
        let Some(definition) = self.queries.get(name) else {
            warnings.push(format!("no query named {name} is configured, using NaN"));
            return f64::NAN;
        };
        let span = match window {
            Window::Now => self.time_span.clone(),
            Window::Between(start, end) => window_span(start, end),
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
        let measured = self.client.measure_until(&label, &request, deadline).await;
        warnings.extend(measured.warnings);
        measured.value
    }
}

/// The k6 window as a PromQL duration, rounded up to whole seconds.
fn window_span(start: SystemTime, end: SystemTime) -> TimeSpan {
    let window = end.duration_since(start).unwrap_or_default();
    let seconds = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    TimeSpan::from_duration(std::time::Duration::from_secs(seconds.max(1)))
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

    #[test]
    fn metrics_serialize_in_lb_shape() {
        let metrics = IterationMetrics {
            cpu_usage_node: 12.5,
            ram_usage_node: 1e9,
            ram_usage_node_pct: 40.0,
            power_usage_node: f64::NAN,
            functions: BTreeMap::from([(
                "figlet".to_string(),
                FunctionMetrics {
                    cpu: 3.0,
                    ram: 2e6,
                    power: f64::NAN,
                },
            )]),
        };
        let json = serde_json::to_value(&metrics).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cpu_usage_node": 12.5, "ram_usage_node": 1e9, "ram_usage_node_pct": 40.0,
                "power_usage_node": null,
                "functions": {"figlet": {"cpu": 3.0, "ram": 2e6, "power": null}}
            })
        );
    }
}
