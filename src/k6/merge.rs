//! One k6 test split across several load generators, and the exact merge
//! of what they report (pure).
//!
//! k6 splits a test itself: every instance runs the same script with
//! `--execution-segment i/N:(i+1)/N` and the same
//! `--execution-segment-sequence 0,1/N,…,1`, and runs its share of every
//! scenario's arrivals with no coordination after the start (the
//! mechanism k6-operator uses). [`segments`] gives those arguments.
//!
//! [`merge`] folds the per-generator outcomes of one iteration into the
//! outcome of the whole configured rate: requests, 2xx responses and
//! dropped iterations are summed, the mean latency is weighted by each
//! generator's request count, and the success rate is computed over what
//! the whole rate asks for — so arrivals a starved generator never
//! scheduled still count as failures. Percentiles cannot be merged from
//! summaries and are not in results.csv, so they are not merged.

use std::collections::BTreeMap;
use std::time::Duration;

use super::summary::{expected_requests, success_rate, FunctionOutcome};
use crate::config::FunctionName;

/// k6's arguments for generator `index` of `count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `--execution-segment`, e.g. `1/3:2/3`.
    pub segment: String,
    /// `--execution-segment-sequence`, e.g. `0,1/3,2/3,1`.
    pub sequence: String,
}

/// The segments of a test split evenly across `count` generators; none
/// for a single generator (k6 then runs the whole test, as without them).
pub fn segments(count: usize) -> Vec<Option<Segment>> {
    if count <= 1 {
        return vec![None];
    }
    let point = |i: usize| match i {
        0 => "0".to_string(),
        i if i == count => "1".to_string(),
        i => format!("{i}/{count}"),
    };
    let sequence = (0..=count).map(point).collect::<Vec<_>>().join(",");
    (0..count)
        .map(|i| {
            Some(Segment {
                segment: format!("{}:{}", point(i), point(i + 1)),
                sequence: sequence.clone(),
            })
        })
        .collect()
}

/// The outcome of the whole configuration from the outcomes each generator
/// reported for its segment. `parts` must hold one map per generator over
/// the same functions; a function missing from a part counts as nothing
/// sent there. `duration` is the scenario duration.
pub fn merge(
    parts: &[BTreeMap<FunctionName, FunctionOutcome>],
    duration: Duration,
) -> BTreeMap<FunctionName, FunctionOutcome> {
    let mut merged: BTreeMap<FunctionName, FunctionOutcome> = BTreeMap::new();
    let mut latency_weight: BTreeMap<FunctionName, (f64, u64)> = BTreeMap::new();
    for part in parts {
        for (function, outcome) in part {
            let total = merged
                .entry(function.clone())
                .or_insert_with(|| FunctionOutcome {
                    rate: outcome.rate,
                    requests: 0,
                    ok: 0,
                    dropped: 0,
                    expected: expected_requests(outcome.rate, duration),
                    success_rate: 1.0,
                    mean_latency_ms: 0.0,
                });
            total.requests = total.requests.saturating_add(outcome.requests);
            total.ok = total.ok.saturating_add(outcome.ok);
            total.dropped = total.dropped.saturating_add(outcome.dropped);
            let (sum, count) = latency_weight.entry(function.clone()).or_default();
            *sum += outcome.mean_latency_ms * outcome.requests as f64;
            *count = count.saturating_add(outcome.requests);
        }
    }
    for (function, total) in &mut merged {
        if total.rate == 0 {
            continue;
        }
        total.success_rate = success_rate(total.ok, total.requests, total.dropped, total.expected);
        total.mean_latency_ms = match latency_weight.get(function) {
            Some((sum, count)) if *count > 0 => sum / *count as f64,
            _ => 0.0,
        };
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FunctionName {
        FunctionName::parse(n).unwrap()
    }

    fn part(rate: u64, requests: u64, ok: u64, dropped: u64, latency: f64) -> FunctionOutcome {
        FunctionOutcome {
            rate,
            requests,
            ok,
            dropped,
            // What the segment's own parse would say: irrelevant to the merge.
            expected: 0,
            success_rate: f64::NAN,
            mean_latency_ms: latency,
        }
    }

    #[test]
    fn segments_cover_the_test_exactly_once() {
        assert_eq!(segments(1), vec![None]);
        assert_eq!(segments(0), vec![None]);
        let two: Vec<Segment> = segments(2).into_iter().flatten().collect();
        assert_eq!(
            two,
            [
                Segment {
                    segment: "0:1/2".into(),
                    sequence: "0,1/2,1".into()
                },
                Segment {
                    segment: "1/2:1".into(),
                    sequence: "0,1/2,1".into()
                },
            ]
        );
        let three: Vec<String> = segments(3)
            .into_iter()
            .flatten()
            .map(|s| s.segment)
            .collect();
        assert_eq!(three, ["0:1/3", "1/3:2/3", "2/3:1"]);
        assert!(segments(3)
            .iter()
            .flatten()
            .all(|s| s.sequence == "0,1/3,2/3,1"));
    }

    #[test]
    fn merge_sums_counts_weights_latency_and_rates_success_over_the_whole_rate() {
        let f = name("figlet");
        let duration = Duration::from_secs(10);
        // (parts, expected requests, ok, dropped, success, latency)
        let cases: Vec<(Vec<FunctionOutcome>, u64, u64, u64, f64, f64)> = vec![
            // Two halves of 100/s for 10 s, all answered.
            (
                vec![part(100, 501, 501, 0, 10.0), part(100, 500, 500, 0, 30.0)],
                1001,
                1001,
                0,
                1.0,
                (501.0 * 10.0 + 500.0 * 30.0) / 1001.0,
            ),
            // One generator starved: it scheduled only 300 of its 500; the
            // missing arrivals count as failures of the whole rate.
            (
                vec![part(100, 500, 500, 0, 5.0), part(100, 300, 300, 0, 5.0)],
                800,
                800,
                0,
                800.0 / 999.0,
                5.0,
            ),
            // Dropped iterations and failures add up across generators.
            (
                vec![part(100, 490, 480, 10, 8.0), part(100, 495, 400, 5, 12.0)],
                985,
                880,
                15,
                880.0 / 1000.0,
                (490.0 * 8.0 + 495.0 * 12.0) / 985.0,
            ),
            // A generator that sent nothing does not pull the latency to 0.
            (
                vec![part(100, 1000, 1000, 0, 7.0), part(100, 0, 0, 0, 0.0)],
                1000,
                1000,
                0,
                1.0,
                7.0,
            ),
        ];
        for (parts, requests, ok, dropped, success, latency) in cases {
            let maps: Vec<BTreeMap<FunctionName, FunctionOutcome>> = parts
                .iter()
                .map(|p| BTreeMap::from([(f.clone(), p.clone())]))
                .collect();
            let merged = &merge(&maps, duration)[&f];
            assert_eq!(
                (merged.requests, merged.ok, merged.dropped, merged.expected),
                (requests, ok, dropped, 1000),
                "{parts:?}"
            );
            assert!(
                (merged.success_rate - success).abs() < 1e-12,
                "{parts:?}: {}",
                merged.success_rate
            );
            assert!(
                (merged.mean_latency_ms - latency).abs() < 1e-9,
                "{parts:?}: {}",
                merged.mean_latency_ms
            );
        }
    }

    #[test]
    fn merge_of_one_part_is_that_part_rated_over_its_rate() {
        let f = name("env");
        let one = part(20, 41, 41, 0, 3.5);
        let merged = merge(
            &[BTreeMap::from([(f.clone(), one)])],
            Duration::from_secs(2),
        );
        assert_eq!(merged[&f].success_rate, 1.0);
        assert_eq!(merged[&f].mean_latency_ms, 3.5);
        assert_eq!(merged[&f].expected, 40);
    }

    #[test]
    fn a_function_at_rate_0_stays_a_perfect_zero() {
        let f = name("env");
        let zero = FunctionOutcome {
            rate: 0,
            requests: 0,
            ok: 0,
            dropped: 0,
            expected: 0,
            success_rate: 1.0,
            mean_latency_ms: 0.0,
        };
        let merged = merge(
            &[
                BTreeMap::from([(f.clone(), zero.clone())]),
                BTreeMap::from([(f.clone(), zero.clone())]),
            ],
            Duration::from_secs(5),
        );
        assert_eq!(merged[&f], zero);
    }
}
