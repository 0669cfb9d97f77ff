//! Building one results.csv row from what an iteration measured, with the
//! overload verdicts. Pure.

use std::collections::BTreeMap;

use crate::config::{FunctionName, Overload};
use crate::k6::summary::FunctionOutcome;
use crate::metrics::readings::IterationMetrics;
use crate::output::{FunctionCells, NodeCells, ResultRow};

use super::verdict::{self, NodeReading, NodeVerdictInput};

/// Everything one iteration measured.
#[derive(Debug, Clone)]
pub(crate) struct IterationMeasures<'a> {
    pub outcomes: &'a BTreeMap<FunctionName, FunctionOutcome>,
    /// Replicas the gateway listed; a function missing here is unknown.
    pub replicas: &'a BTreeMap<String, u64>,
    pub metrics: &'a IterationMetrics,
    pub idle: &'a NodeReading,
    pub rest_seconds: u64,
    /// Node cores (CPU capacity = cores x 100 %).
    pub cores: f64,
}

/// The row and whether the node was overloaded.
pub(crate) fn build_row(m: &IterationMeasures<'_>, overload: &Overload) -> ResultRow {
    let mut functions = BTreeMap::new();
    let mut any_overloaded = false;
    let mut success_rates = Vec::with_capacity(m.outcomes.len());
    for (name, outcome) in m.outcomes {
        let replicas = m.replicas.get(name.as_str()).copied();
        let overloaded = verdict::function_overloaded(outcome.success_rate, replicas, overload);
        any_overloaded |= overloaded;
        success_rates.push(outcome.success_rate);
        let measured = m.metrics.functions.get(name);
        functions.insert(
            name.clone(),
            FunctionCells {
                rate: outcome.rate,
                success_rate: outcome.success_rate,
                cpu_usage: measured.map_or(f64::NAN, |f| f.cpu),
                ram_usage: measured.map_or(f64::NAN, |f| f.ram),
                power_usage: measured.map_or(f64::NAN, |f| f.power),
                replicas,
                overloaded,
                mean_latency_ms: outcome.mean_latency_ms,
            },
        );
    }
    let node_overloaded = verdict::node_overloaded(
        &NodeVerdictInput {
            mean_success_rate: verdict::mean_success_rate(&success_rates),
            cpu_pct: m.metrics.cpu_usage_node,
            ram_pct: m.metrics.ram_usage_node_pct,
            cores: m.cores,
            any_function_overloaded: any_overloaded,
        },
        overload,
    );
    ResultRow {
        functions,
        node: NodeCells {
            cpu_usage_idle: m.idle.cpu_pct,
            cpu_usage: m.metrics.cpu_usage_node,
            ram_usage_idle: m.idle.ram_bytes,
            ram_usage: m.metrics.ram_usage_node,
            ram_usage_idle_pct: m.idle.ram_pct,
            ram_usage_pct: m.metrics.ram_usage_node_pct,
            power_usage_idle: m.idle.power_uw,
            power_usage: m.metrics.power_usage_node,
            rest_seconds: m.rest_seconds,
            overloaded: node_overloaded,
        },
    }
}
