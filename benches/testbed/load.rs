//! The k6 scripts the benchmark runs (rendered by the product's own
//! `k6::script::render`) and what it reads back from k6's summary.

use std::time::Duration;

use anyhow::{bail, Result};
use lb_dfaas::config::{FunctionName, FunctionSpec, HttpMethod};
use lb_dfaas::k6::script::{render, ScriptInput, DEFAULT_REQUEST_TIMEOUT};
use serde_json::Value;

/// One rendered script and the configuration it loads.
#[derive(Debug, Clone)]
pub struct Script {
    pub text: String,
    pub pairs: Vec<(FunctionName, u64)>,
    pub duration: Duration,
}

/// The script a campaign would run for `function` at `rate` requests/s
/// for `duration_s` seconds against `gateway_url`.
pub fn script(gateway_url: &str, function: &str, rate: u64, duration_s: u64) -> Result<Script> {
    let name = FunctionName::parse(function)
        .map_err(|e| anyhow::anyhow!("function name {function:?}: {e}"))?;
    let functions = [FunctionSpec {
        name: name.clone(),
        method: HttpMethod::Get,
        body: String::new(),
        headers: Default::default(),
        max_rate: None,
    }];
    let pairs = vec![(name, rate)];
    let duration = Duration::from_secs(duration_s);
    let duration_text = format!("{duration_s}s");
    let text = render(&ScriptInput {
        gateway_url,
        duration_text: &duration_text,
        duration,
        functions: &functions,
        pairs: &pairs,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
    });
    Ok(Script {
        text,
        pairs,
        duration,
    })
}

/// k6's own test-run time, in ms.
///
/// k6 1.1's `--summary-export` has no `state.testRunDurationMs` (only
/// `root_group` and `metrics`), but every Counter's `rate` is its `count`
/// divided by exactly that duration, so `count / rate` gives it back
/// (checked against `handleSummary`'s `state.testRunDurationMs`: equal to
/// the nanosecond). `iterations` is used when present, else any Counter.
pub fn test_run_ms(summary: &Value) -> Result<f64> {
    let Some(metrics) = summary.get("metrics").and_then(Value::as_object) else {
        bail!("k6 summary has no metrics object");
    };
    let from = |metric: &Value| {
        let count = metric.get("count")?.as_f64()?;
        let rate = metric.get("rate")?.as_f64()?;
        (count > 0.0 && rate > 0.0).then(|| count / rate * 1000.0)
    };
    if let Some(ms) = metrics.get("iterations").and_then(from) {
        return Ok(ms);
    }
    match metrics.values().find_map(from) {
        Some(ms) => Ok(ms),
        None => bail!("k6 summary has no Counter with count > 0 to derive the run time from"),
    }
}
