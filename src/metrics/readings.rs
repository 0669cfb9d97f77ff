//! The measurement vocabulary, from the meter to the row: what the node
//! and each function did, at one instant or over an iteration's k6 window.
//! NaN always means "unknown" (a failed or disabled query), never 0.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::FunctionName;

/// Node values at one instant (idle snapshots: baseline and cooldown).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NodeReading {
    /// CPU busy percent summed over cores: `0 ..= cores * 100`.
    pub cpu_pct: f64,
    pub ram_bytes: f64,
    /// `0 ..= 100`.
    pub ram_pct: f64,
    /// Microwatts (NaN without Scaphandre).
    pub power_uw: f64,
}

impl NodeReading {
    #[cfg(test)]
    pub(crate) const UNKNOWN: NodeReading = NodeReading {
        cpu_pct: f64::NAN,
        ram_bytes: f64::NAN,
        ram_pct: f64::NAN,
        power_uw: f64::NAN,
    };
}

/// One function's averages over an iteration: CPU percent, RAM bytes,
/// power microwatts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FunctionMetrics {
    pub cpu: f64,
    pub ram: f64,
    pub power: f64,
}

/// Averages over one iteration's k6 window, in the shape of lb's
/// `dfaas_metrics` entries, with the window the queries really used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IterationMetrics {
    pub cpu_usage_node: f64,
    pub ram_usage_node: f64,
    pub ram_usage_node_pct: f64,
    pub power_usage_node: f64,
    /// The functions measured (those of the configuration).
    pub functions: BTreeMap<FunctionName, FunctionMetrics>,
    /// `None` only where no query ran (datasets rebuilt from files).
    pub window: Option<QueryWindow>,
}

impl IterationMetrics {}

/// The window an iteration's queries covered: `{time_span}` ending at the
/// k6 run's end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryWindow {
    /// `{time_span}` as placed into the queries (`30s`).
    pub time_span: String,
    pub seconds: f64,
    /// The k6 run's own length (the window is longer when that is under
    /// two scrape intervals).
    pub k6_seconds: f64,
    /// The scrape interval the window was fitted to (`None`: unknown).
    pub scrape_interval_seconds: Option<f64>,
    /// Where that interval came from (`targets`, `config`, `assumed`).
    pub scrape_interval_source: Option<&'static str>,
    /// Unix seconds of the evaluation instant (the k6 run's end).
    pub end_unix_seconds: f64,
}
