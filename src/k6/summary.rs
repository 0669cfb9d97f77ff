//! Per-function outcomes from a k6 end-of-test summary (pure).
//!
//! Reads the metrics that [`super::script`] declares — found through
//! [`metric_names`] — from either summary shape k6 writes:
//!
//! - `--summary-export` (k6 0.x–2.x): stats at the top level of each
//!   metric — Counter `{count, rate}`, Rate `{passes, fails, value}`, Trend
//!   `{avg, min, med, max, p(90), p(95), count}`;
//! - the `handleSummary(data)` document: the same stats under
//!   `metrics.<name>.values` (Rate's `value` is called `rate` there).
//!
//! It decides success and mean latency per function (SPEC §4) and never
//! reads files or panics on odd input: a missing or malformed metric is a
//! [`SummaryError`] naming the function, the metric and the field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::script::metric_names;
use crate::config::FunctionName;

/// What one function got during one k6 run.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionOutcome {
    /// The configured rate, requests per second.
    pub rate: u64,
    /// Iterations that sent a request, answered or not (timeouts and
    /// iterations cut off at the end included).
    pub requests: u64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Iterations k6 dropped because no VU was free.
    pub dropped: u64,
    /// `ceil(rate × duration)`: what the rate asks for, for reference.
    /// k6 schedules one arrival more than this when the end of the
    /// duration falls on a tick (20/s for 2 s starts 41 iterations).
    pub expected: u64,
    /// `ok ÷ (requests + dropped)`, in `[0, 1]`; see `success_rate` in this module.
    pub success_rate: f64,
    /// Mean of the latency Trend in ms; NaN when a loaded function sent no
    /// request (k6 then reports an average of 0, which was not measured).
    /// 0 for a function at rate 0, as the legacy sampler wrote.
    pub mean_latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SummaryError {
    #[error("k6 summary is not a JSON object with a \"metrics\" object")]
    NoMetrics,
    #[error("k6 summary has no metric {metric:?} for function {function}")]
    MissingMetric {
        function: FunctionName,
        metric: String,
    },
    #[error("k6 summary metric {metric:?} of function {function}: {field:?} {reason}")]
    Malformed {
        function: FunctionName,
        metric: String,
        field: String,
        reason: String,
    },
}

/// The outcome of every function in `pairs` (the configuration the script
/// was rendered for) from k6's `summary`, run for `duration`.
///
/// A function at rate 0 has success 1 and latency 0, and nothing is read
/// from the summary for it. For any other function the request Counter,
/// the success Rate, the latency Trend and the scenario's dropped
/// iterations must all be present.
pub fn parse(
    summary: &Value,
    pairs: &[(FunctionName, u64)],
    duration: Duration,
) -> Result<BTreeMap<FunctionName, FunctionOutcome>, SummaryError> {
    let metrics = summary
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or(SummaryError::NoMetrics)?;
    let mut outcomes = BTreeMap::new();
    for (function, rate) in pairs {
        let outcome = if *rate == 0 {
            FunctionOutcome {
                rate: 0,
                requests: 0,
                ok: 0,
                dropped: 0,
                expected: 0,
                success_rate: 1.0,
                mean_latency_ms: 0.0,
            }
        } else {
            outcome(metrics, function, *rate, duration)?
        };
        outcomes.insert(function.clone(), outcome);
    }
    Ok(outcomes)
}

/// Success of a function that was loaded: 2xx responses ÷ the requests
/// that should have been sent at the configured rate, capped to `[0, 1]`.
///
/// The denominator is the larger of what k6 scheduled (`requests`, counted
/// before the request goes out, so timeouts, errors and iterations cut off
/// at the end are in it, plus `dropped` iterations that found no free VU)
/// and what the configured rate asks for (`expected` = rate × duration,
/// less one arrival). So an unanswered request, a dropped iteration and an
/// arrival a CPU-starved k6 silently never scheduled all count as failures
/// (SPEC §4), while a run in which every request got a 2xx scores exactly
/// 1: k6 schedules one arrival more than rate × duration, or, when its
/// ticker falls behind at the very end, one fewer — hence the one-arrival
/// allowance.
pub(crate) fn success_rate(ok: u64, requests: u64, dropped: u64, expected: u64) -> f64 {
    let scheduled = requests.saturating_add(dropped);
    let denominator = scheduled.max(expected.saturating_sub(1));
    if denominator == 0 {
        return 1.0;
    }
    (ok as f64 / denominator as f64).clamp(0.0, 1.0)
}

/// `ceil(rate × duration)` requests.
pub fn expected_requests(rate: u64, duration: Duration) -> u64 {
    let total = u128::from(rate).saturating_mul(duration.as_nanos());
    u64::try_from(total.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

fn outcome(
    metrics: &Map<String, Value>,
    function: &FunctionName,
    rate: u64,
    duration: Duration,
) -> Result<FunctionOutcome, SummaryError> {
    let ids = metric_names(function);
    let requests = Metric::find(metrics, function, &ids.requests)?.count("count")?;
    let success = Metric::find(metrics, function, &ids.success)?;
    let ok = success.count("passes")?;
    // Read so that a malformed Rate is caught even though only passes count.
    success.count("fails")?;
    let mean_latency_ms = Metric::find(metrics, function, &ids.latency)?.number("avg")?;
    // No request, no latency: k6's 0 is not a measurement.
    let mean_latency_ms = if requests == 0 {
        f64::NAN
    } else {
        mean_latency_ms
    };
    let dropped = Metric::find(metrics, function, &ids.dropped)?.count("count")?;
    let expected = expected_requests(rate, duration);
    Ok(FunctionOutcome {
        rate,
        requests,
        ok,
        dropped,
        expected,
        success_rate: success_rate(ok, requests, dropped, expected),
        mean_latency_ms,
    })
}

/// One metric's statistics, in whichever shape the summary has.
struct Metric<'a> {
    function: &'a FunctionName,
    name: &'a str,
    stats: &'a Map<String, Value>,
}

impl<'a> Metric<'a> {
    fn find(
        metrics: &'a Map<String, Value>,
        function: &'a FunctionName,
        name: &'a str,
    ) -> Result<Self, SummaryError> {
        let metric = metrics
            .get(name)
            .ok_or_else(|| SummaryError::MissingMetric {
                function: function.clone(),
                metric: name.to_string(),
            })?;
        let object = metric.as_object().ok_or_else(|| SummaryError::Malformed {
            function: function.clone(),
            metric: name.to_string(),
            field: name.to_string(),
            reason: "is not an object".to_string(),
        })?;
        // handleSummary's shape nests the stats under "values".
        let stats = match object.get("values") {
            Some(Value::Object(values)) => values,
            _ => object,
        };
        Ok(Metric {
            function,
            name,
            stats,
        })
    }

    fn malformed(&self, field: &str, reason: impl Into<String>) -> SummaryError {
        SummaryError::Malformed {
            function: self.function.clone(),
            metric: self.name.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// A finite, non-negative number.
    fn number(&self, field: &str) -> Result<f64, SummaryError> {
        let value = self
            .stats
            .get(field)
            .ok_or_else(|| self.malformed(field, "is missing"))?;
        let number = value
            .as_f64()
            .ok_or_else(|| self.malformed(field, format!("is not a number: {value}")))?;
        if !number.is_finite() || number < 0.0 {
            return Err(self.malformed(field, format!("is not a non-negative number: {value}")));
        }
        Ok(number)
    }

    /// A whole, non-negative number (k6 may write `40` or `40.0`).
    fn count(&self, field: &str) -> Result<u64, SummaryError> {
        if let Some(count) = self.stats.get(field).and_then(Value::as_u64) {
            return Ok(count);
        }
        let number = self.number(field)?;
        // 2^53: beyond it an f64 no longer holds every whole number.
        if number.fract() != 0.0 || number > 9_007_199_254_740_992.0 {
            return Err(self.malformed(field, format!("is not a whole count: {number}")));
        }
        Ok(number as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn name(raw: &str) -> FunctionName {
        FunctionName::parse(raw).unwrap()
    }

    fn pairs(list: &[(&str, u64)]) -> Vec<(FunctionName, u64)> {
        list.iter().map(|(n, r)| (name(n), *r)).collect()
    }

    /// A `--summary-export` document holding `function`'s four metrics.
    fn export(
        function: &str,
        requests: u64,
        passes: u64,
        fails: u64,
        dropped: u64,
        avg: f64,
    ) -> Value {
        let ids = metric_names(&name(function));
        let mut metrics = Map::new();
        metrics.insert(ids.requests, json!({"count": requests, "rate": 1.0}));
        metrics.insert(
            ids.success,
            json!({"passes": passes, "fails": fails, "value": 0.5}),
        );
        metrics.insert(
            ids.latency,
            json!({"avg": avg, "min": 0, "med": avg, "max": avg, "p(90)": avg, "p(95)": avg, "count": passes + fails}),
        );
        metrics.insert(ids.dropped, json!({"count": dropped, "rate": 0}));
        json!({ "metrics": metrics })
    }

    /// The same metrics in handleSummary's `values` shape.
    fn values_shape(export: &Value) -> Value {
        let mut metrics = Map::new();
        for (key, stats) in export["metrics"].as_object().unwrap() {
            let mut stats = stats.as_object().unwrap().clone();
            if let Some(value) = stats.remove("value") {
                stats.insert("rate".to_string(), value);
            }
            metrics.insert(
                key.clone(),
                json!({"type": "x", "contains": "default", "values": stats}),
            );
        }
        json!({ "metrics": metrics })
    }

    #[test]
    fn success_and_latency_from_hand_built_summaries() {
        let two_s = Duration::from_secs(2);
        // (case, requests, passes, fails, dropped, rate, success, expected)
        let cases = [
            ("all ok", 41, 41, 0, 0, 20, 1.0, 40),
            (
                "one more arrival than rate x duration",
                41,
                41,
                0,
                0,
                20,
                1.0,
                40,
            ),
            ("one fewer arrival", 39, 39, 0, 0, 20, 1.0, 40),
            ("all 5xx", 40, 0, 40, 0, 20, 0.0, 40),
            ("dropped count as failures", 30, 30, 0, 10, 20, 0.75, 40),
            ("unanswered count as failures", 40, 30, 0, 0, 20, 0.75, 40),
            ("timeouts and 5xx and drops", 32, 8, 10, 8, 20, 0.2, 40),
            (
                "arrivals a starved k6 never scheduled count as failures",
                20,
                20,
                0,
                0,
                20,
                20.0 / 39.0,
                40,
            ),
            ("nothing scheduled", 0, 0, 0, 0, 20, 0.0, 40),
            ("inconsistent passes capped", 10, 12, 0, 0, 5, 1.0, 10),
        ];
        for (case, requests, passes, fails, dropped, rate, success, expected) in cases {
            let summary = export("fn-a", requests, passes, fails, dropped, 12.5);
            for shape in [summary.clone(), values_shape(&summary)] {
                let got = parse(&shape, &pairs(&[("fn-a", rate)]), two_s).unwrap();
                let mut got = got[&name("fn-a")].clone();
                if requests == 0 {
                    assert!(got.mean_latency_ms.is_nan(), "{case}: {got:?}");
                    got.mean_latency_ms = 12.5;
                }
                assert_eq!(
                    &got,
                    &FunctionOutcome {
                        rate,
                        requests,
                        ok: passes,
                        dropped,
                        expected,
                        success_rate: success,
                        mean_latency_ms: 12.5,
                    },
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn a_loaded_function_that_sent_nothing_has_nan_latency_never_0() {
        // k6 reports avg 0 for a Trend without samples.
        let summary = export("fn-a", 0, 0, 0, 40, 0.0);
        let got = parse(&summary, &pairs(&[("fn-a", 20)]), Duration::from_secs(2)).unwrap();
        let got = &got[&name("fn-a")];
        assert!(got.mean_latency_ms.is_nan(), "{got:?}");
        assert_eq!(got.success_rate, 0.0);
    }

    #[test]
    fn rate_zero_needs_nothing_from_the_summary() {
        let summary = json!({"metrics": {}});
        let got = parse(
            &summary,
            &pairs(&[("idle", 0), ("b.c", 0)]),
            Duration::from_secs(30),
        )
        .unwrap();
        for function in ["idle", "b.c"] {
            let outcome = &got[&name(function)];
            assert_eq!(outcome.success_rate, 1.0);
            assert_eq!(outcome.mean_latency_ms, 0.0);
            assert_eq!((outcome.requests, outcome.expected), (0, 0));
        }
    }

    #[test]
    fn missing_metrics_name_the_function() {
        let full = export("fn-a", 10, 10, 0, 0, 1.0);
        let ids = metric_names(&name("fn-a"));
        for metric in [&ids.requests, &ids.success, &ids.latency, &ids.dropped] {
            let mut summary = full.clone();
            summary["metrics"]
                .as_object_mut()
                .unwrap()
                .remove(metric.as_str());
            let err = parse(&summary, &pairs(&[("fn-a", 5)]), Duration::from_secs(2)).unwrap_err();
            assert_eq!(
                err,
                SummaryError::MissingMetric {
                    function: name("fn-a"),
                    metric: metric.clone(),
                }
            );
            assert!(err.to_string().contains("fn-a"), "{err}");
        }
        // Another function's metrics do not stand in.
        let err = parse(&full, &pairs(&[("fn-b", 5)]), Duration::from_secs(2)).unwrap_err();
        assert!(
            matches!(err, SummaryError::MissingMetric { function, .. } if function == name("fn-b"))
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let ids = metric_names(&name("fn-a"));
        // (metric, field, replacement)
        let cases: Vec<(&str, &str, Value)> = vec![
            (&ids.requests, "count", json!("41")),
            (&ids.requests, "count", json!(-1)),
            (&ids.requests, "count", json!(2.5)),
            (&ids.requests, "count", json!(1e300)),
            (&ids.requests, "count", Value::Null),
            (&ids.success, "passes", json!(true)),
            (&ids.success, "fails", json!({})),
            (&ids.latency, "avg", json!("fast")),
            (&ids.latency, "avg", json!(-3.0)),
            (&ids.dropped, "count", json!([1])),
        ];
        for (metric, field, replacement) in cases {
            let mut summary = export("fn-a", 10, 10, 0, 0, 1.0);
            summary["metrics"][metric][field] = replacement.clone();
            for shape in [summary.clone(), values_shape(&summary)] {
                let err =
                    parse(&shape, &pairs(&[("fn-a", 5)]), Duration::from_secs(2)).unwrap_err();
                match &err {
                    SummaryError::Malformed {
                        function,
                        metric: m,
                        field: f,
                        ..
                    } => {
                        assert_eq!(
                            (function, m.as_str(), f.as_str()),
                            (&name("fn-a"), metric, field),
                            "{err}"
                        );
                    }
                    other => panic!("{metric}.{field} = {replacement}: {other:?}"),
                }
            }
        }
        let mut summary = export("fn-a", 10, 10, 0, 0, 1.0);
        summary["metrics"][&ids.latency] = json!(7);
        assert!(matches!(
            parse(&summary, &pairs(&[("fn-a", 5)]), Duration::from_secs(2)),
            Err(SummaryError::Malformed { .. })
        ));
        let mut summary = export("fn-a", 10, 10, 0, 0, 1.0);
        summary["metrics"][&ids.latency]
            .as_object_mut()
            .unwrap()
            .remove("avg");
        assert!(matches!(
            parse(&summary, &pairs(&[("fn-a", 5)]), Duration::from_secs(2)),
            Err(SummaryError::Malformed { reason, .. }) if reason == "is missing"
        ));
    }

    #[test]
    fn documents_without_metrics_are_errors() {
        for summary in [
            json!(null),
            json!([]),
            json!({}),
            json!({"metrics": []}),
            json!("x"),
        ] {
            assert_eq!(
                parse(&summary, &pairs(&[("fn-a", 0)]), Duration::from_secs(2)),
                Err(SummaryError::NoMetrics),
                "{summary}"
            );
        }
    }

    #[test]
    fn whole_counts_written_as_floats_are_accepted() {
        let mut summary = export("fn-a", 10, 10, 0, 0, 1.0);
        let ids = metric_names(&name("fn-a"));
        summary["metrics"][&ids.requests]["count"] = json!(10.0);
        let got = parse(&summary, &pairs(&[("fn-a", 5)]), Duration::from_secs(2)).unwrap();
        assert_eq!(got[&name("fn-a")].requests, 10);
    }

    /// The configuration of the real run in `tests/fixtures/k6/` (2 s).
    const FIXTURE_PAIRS: [(&str, u64); 5] = [
        ("fail.fn", 5),
        ("half-fn", 10),
        ("idle-fn", 0),
        ("ok-fn", 20),
        ("slow-fn", 10),
    ];

    fn fixture(file: &str) -> Value {
        let path = format!("{}/tests/fixtures/k6/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn real_k6_summaries_in_both_shapes() {
        let outcome = |rate, requests, ok, dropped, expected, success_rate, mean_latency_ms| {
            FunctionOutcome {
                rate,
                requests,
                ok,
                dropped,
                expected,
                success_rate,
                mean_latency_ms,
            }
        };
        // Read off the fixture by hand: request_count_*.count,
        // success_rate_*.passes, dropped_iterations{scenario:fn_*}.count,
        // latency_*.avg.
        let want = BTreeMap::from([
            (
                name("fail.fn"),
                outcome(5, 11, 0, 0, 10, 0.0, 2.1853315454545457),
            ),
            (
                name("half-fn"),
                outcome(10, 21, 11, 0, 20, 11.0 / 21.0, 2.433786714285714),
            ),
            (name("idle-fn"), outcome(0, 0, 0, 0, 0, 1.0, 0.0)),
            (
                name("ok-fn"),
                outcome(20, 41, 41, 0, 40, 1.0, 1.2558990731707318),
            ),
            // 20 timed out, 1 dropped for lack of a VU: 21 failures.
            (
                name("slow-fn"),
                outcome(10, 20, 0, 1, 20, 0.0, 1000.0065197500002),
            ),
        ]);
        for file in ["summary-export.json", "summary-handle.json"] {
            let got = parse(
                &fixture(file),
                &pairs(&FIXTURE_PAIRS),
                Duration::from_secs(2),
            )
            .unwrap();
            assert_eq!(got, want, "{file}");
        }
    }

    #[test]
    fn real_k6_summary_without_a_function_names_it() {
        let mut config = pairs(&FIXTURE_PAIRS);
        config.push((name("other"), 5));
        for file in ["summary-export.json", "summary-handle.json"] {
            let err = parse(&fixture(file), &config, Duration::from_secs(2)).unwrap_err();
            assert_eq!(
                err,
                SummaryError::MissingMetric {
                    function: name("other"),
                    metric: "request_count_other".to_string(),
                },
                "{file}"
            );
        }
    }

    #[test]
    fn expected_requests_round_up() {
        let cases = [
            (20, Duration::from_secs(2), 40),
            (3, Duration::from_millis(500), 2),
            (1, Duration::from_millis(1), 1),
            (0, Duration::from_secs(30), 0),
            (u64::MAX, Duration::from_secs(2), u64::MAX),
            (u64::MAX, Duration::MAX, u64::MAX),
        ];
        for (rate, duration, want) in cases {
            assert_eq!(
                expected_requests(rate, duration),
                want,
                "{rate}/s for {duration:?}"
            );
        }
    }
}
