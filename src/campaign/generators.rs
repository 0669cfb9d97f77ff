//! What the generators of one iteration say together (pure): the merged
//! per-function outcomes, each generator's own figures, and whether one of
//! them was saturated — in which case the iteration measured the
//! generator, not the node.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::services::GeneratorPart;
use crate::config::{FunctionName, Saturation};
use crate::k6::merge::merge;
use crate::k6::saturation::saturation;
use crate::k6::summary::{self, expected_requests, FunctionOutcome};

/// One generator's figures for one iteration (the metrics artifact's
/// `generators-*.json` and the result's `dfaas_metrics[].generators`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct GeneratorReading {
    pub generator: String,
    /// k6's execution segment (`null`: the whole test).
    pub segment: Option<String>,
    /// Share of the generator's cores busy over the k6 window (any
    /// process; `null`: not measured).
    pub cpu_busy: Option<f64>,
    /// Share of its cores k6 itself used (`null`: not measured).
    pub k6_cpu_busy: Option<f64>,
    pub cores: Option<u32>,
    /// Arrivals k6 scheduled (requests sent plus dropped iterations) over
    /// the configuration's loaded functions.
    pub scheduled: u64,
    /// What its share of rate × duration asks for.
    pub asked: u64,
    pub dropped: u64,
    /// Why it counts as saturated (`null`: it kept up).
    pub saturated: Option<String>,
}

/// An iteration's load, all generators together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Combined {
    pub outcomes: BTreeMap<FunctionName, FunctionOutcome>,
    pub generators: Vec<GeneratorReading>,
    /// The summary recorded: k6's own for one generator; for several,
    /// `{"generators": [{generator, segment, summary}, ...]}`.
    pub summary: Value,
}

impl Combined {
    /// The first saturated generator and why.
    pub(crate) fn saturated(&self) -> Option<(&str, &str)> {
        self.generators.iter().find_map(|g| {
            g.saturated
                .as_deref()
                .map(|why| (g.generator.as_str(), why))
        })
    }
}

/// Parses every generator's summary for the configuration `pairs` ran
/// for `duration`, merges them (k6's segments split the arrivals) and
/// judges each generator against `policy`. `Err` names the generator
/// whose summary is unusable.
pub(crate) fn combine(
    parts: Vec<GeneratorPart>,
    pairs: &[(FunctionName, u64)],
    duration: Duration,
    policy: &Saturation,
) -> Result<Combined, String> {
    let count = parts.len().max(1) as u64;
    let several = parts.len() > 1;
    let loaded: Vec<&(FunctionName, u64)> = pairs.iter().filter(|(_, rate)| *rate > 0).collect();
    let asked: u64 = loaded
        .iter()
        .map(|(_, rate)| expected_requests(*rate, duration) / count)
        .sum();
    let mut outcomes = Vec::new();
    let mut generators = Vec::new();
    for part in &parts {
        let parsed = summary::parse(&part.summary, pairs, duration).map_err(|e| {
            if several {
                format!("k6 summary of generator {}: {e}", part.generator)
            } else {
                format!("k6 summary: {e}")
            }
        })?;
        let scheduled: u64 = parsed
            .values()
            .map(|o| o.requests.saturating_add(o.dropped))
            .sum();
        let dropped: u64 = parsed.values().map(|o| o.dropped).sum();
        let k6_busy = part.cpu.and_then(|c| c.k6_busy);
        let verdict = saturation(
            k6_busy,
            policy.cpu_threshold,
            scheduled,
            asked,
            loaded.len() as u64,
        );
        generators.push(GeneratorReading {
            generator: part.generator.clone(),
            segment: part.segment.clone(),
            cpu_busy: part.cpu.map(|c| c.busy),
            k6_cpu_busy: k6_busy,
            cores: part.cpu.map(|c| c.cores),
            scheduled,
            asked,
            dropped,
            saturated: verdict.map(|v| v.to_string()),
        });
        outcomes.push(parsed);
    }
    let merged = if several {
        merge(&outcomes, duration)
    } else {
        outcomes.pop().unwrap_or_default()
    };
    let summary = if several {
        json!({
            "generators": parts
                .into_iter()
                .map(|p| json!({"generator": p.generator, "segment": p.segment, "summary": p.summary}))
                .collect::<Vec<_>>()
        })
    } else {
        parts
            .into_iter()
            .next()
            .map(|p| p.summary)
            .unwrap_or(Value::Null)
    };
    Ok(Combined {
        outcomes: merged,
        generators,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k6::runner::GeneratorCpu;

    fn name(n: &str) -> FunctionName {
        FunctionName::parse(n).unwrap()
    }

    /// A summary-export document for `figlet` as the campaign script
    /// names its metrics.
    fn summary(requests: u64, ok: u64, dropped: u64) -> Value {
        let ids = crate::k6::script::metric_names(&name("figlet"));
        json!({"metrics": {
            ids.requests: {"count": requests, "rate": 1.0},
            ids.success: {"passes": ok, "fails": requests - ok, "value": 1.0},
            ids.latency: {"avg": 5.0, "min": 1.0, "med": 5.0, "max": 9.0, "p(90)": 8.0, "p(95)": 9.0},
            ids.dropped: {"count": dropped, "rate": 0.0},
        }})
    }

    fn part(generator: &str, summary: Value, k6_busy: Option<f64>) -> GeneratorPart {
        GeneratorPart {
            generator: generator.into(),
            segment: None,
            summary,
            cpu: Some(GeneratorCpu {
                busy: 0.5,
                k6_busy,
                cores: 2,
            }),
        }
    }

    #[test]
    fn generators_are_judged_by_k6s_own_cpu_and_their_arrivals() {
        let pairs = [(name("figlet"), 100)];
        let duration = Duration::from_secs(10);
        let policy = Saturation::default();
        // (parts, saturated generator)
        let cases: Vec<(Vec<GeneratorPart>, Option<&str>)> = vec![
            (vec![part("a:22", summary(1001, 1001, 0), Some(0.2))], None),
            // A busy node does not saturate a generator that kept up.
            (vec![part("a:22", summary(1001, 500, 0), Some(0.3))], None),
            (
                vec![part("a:22", summary(1001, 1001, 0), Some(0.95))],
                Some("a:22"),
            ),
            // 1,849 of 2,000: short of arrivals, whatever the CPU says.
            (
                vec![part("a:22", summary(849, 849, 0), Some(0.5))],
                Some("a:22"),
            ),
            (vec![part("a:22", summary(849, 849, 0), None)], Some("a:22")),
            // Dropped iterations were scheduled: the node's, not k6's.
            (vec![part("a:22", summary(900, 900, 101), Some(0.2))], None),
            // Two halves; the second starved.
            (
                vec![
                    part("a:22", summary(501, 501, 0), Some(0.2)),
                    part("b:22", summary(300, 300, 0), Some(0.99)),
                ],
                Some("b:22"),
            ),
            (
                vec![
                    part("a:22", summary(501, 501, 0), Some(0.2)),
                    part("b:22", summary(500, 500, 0), Some(0.3)),
                ],
                None,
            ),
        ];
        for (parts, expected) in cases {
            let combined = combine(parts.clone(), &pairs, duration, &policy).unwrap();
            assert_eq!(
                combined.saturated().map(|(g, _)| g),
                expected,
                "{:?}",
                combined.generators
            );
        }
    }

    #[test]
    fn several_generators_merge_and_keep_each_summary() {
        let pairs = [(name("figlet"), 100)];
        let duration = Duration::from_secs(10);
        let parts = vec![
            part("a:22", summary(501, 501, 0), Some(0.2)),
            part("b:22", summary(500, 400, 0), Some(0.2)),
        ];
        let combined = combine(parts, &pairs, duration, &Saturation::default()).unwrap();
        let figlet = &combined.outcomes[&name("figlet")];
        assert_eq!((figlet.requests, figlet.ok), (1001, 901));
        assert!((figlet.success_rate - 901.0 / 1001.0).abs() < 1e-12);
        assert_eq!(combined.generators[0].asked, 500);
        assert_eq!(combined.summary["generators"][1]["generator"], "b:22");
        assert_eq!(
            combined.summary["generators"][1]["summary"],
            summary(500, 400, 0)
        );
    }

    #[test]
    fn one_generator_records_its_own_summary_and_a_bad_one_is_named() {
        let pairs = [(name("figlet"), 10)];
        let duration = Duration::from_secs(2);
        let one = combine(
            vec![part("a:22", summary(21, 21, 0), None)],
            &pairs,
            duration,
            &Saturation::default(),
        )
        .unwrap();
        assert_eq!(one.summary, summary(21, 21, 0));
        let error = combine(
            vec![
                part("a:22", summary(11, 11, 0), None),
                part("b:22", json!({"nope": 1}), None),
            ],
            &pairs,
            duration,
            &Saturation::default(),
        )
        .unwrap_err();
        assert!(error.contains("generator b:22"), "{error}");
    }
}
