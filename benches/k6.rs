//! k6 script rendering and summary parsing: both run once per iteration of
//! a campaign, and summaries are parsed again when a dataset is rebuilt.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lb_dfaas::config::{FunctionName, FunctionSpec, HttpMethod};
use lb_dfaas::k6::metric_names;
use lb_dfaas::k6::script::{render, ScriptInput, DEFAULT_REQUEST_TIMEOUT};
use lb_dfaas::k6::summary::parse;
use serde_json::{json, Map, Value};

/// A real `--summary-export` of k6 1.1 for the functions below, 2 s run.
const REAL_SUMMARY: &str = include_str!("../tests/fixtures/k6/summary-export.json");
const REAL_PAIRS: [(&str, u64); 5] = [
    ("fail.fn", 5),
    ("half-fn", 10),
    ("idle-fn", 0),
    ("ok-fn", 20),
    ("slow-fn", 10),
];

fn names(count: usize) -> Vec<FunctionName> {
    (0..count)
        .map(|i| FunctionName::parse(&format!("fn-{i:02}")).unwrap())
        .collect()
}

fn specs(names: &[FunctionName]) -> Vec<FunctionSpec> {
    names
        .iter()
        .map(|name| FunctionSpec {
            name: name.clone(),
            method: HttpMethod::Post,
            body: "Hello DFaaS! <\"quoted\">".to_string(),
            headers: [("Content-Type".to_string(), "text/plain".to_string())].into(),
            max_rate: None,
        })
        .collect()
}

/// A summary in k6's `--summary-export` shape holding every metric the
/// script declares for `pairs`.
fn synthetic_summary(pairs: &[(FunctionName, u64)]) -> Value {
    let mut metrics = Map::new();
    for (name, rate) in pairs {
        let ids = metric_names(name);
        let requests = rate * 30;
        metrics.insert(
            ids.requests,
            json!({"count": requests, "rate": *rate as f64}),
        );
        metrics.insert(
            ids.success,
            json!({"passes": requests - 3, "fails": 3, "value": 0.99}),
        );
        metrics.insert(
            ids.latency,
            json!({"avg": 12.5, "min": 1.0, "med": 10.0, "max": 90.0, "p(90)": 20.0, "p(95)": 30.0, "count": requests}),
        );
        metrics.insert(ids.dropped, json!({"count": 1, "rate": 0.03}));
    }
    json!({ "root_group": {}, "metrics": metrics })
}

fn script_benches(c: &mut Criterion) {
    for count in [1, 3, 20] {
        let names = names(count);
        let functions = specs(&names);
        let pairs: Vec<(FunctionName, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), 10 * i as u64 + 10))
            .collect();
        let input = ScriptInput {
            gateway_url: "http://10.0.0.5:31112",
            duration_text: "30s",
            duration: Duration::from_secs(30),
            functions: &functions,
            pairs: &pairs,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        };
        c.bench_function(&format!("k6/render script {count} functions"), |b| {
            b.iter(|| render(black_box(&input)))
        });
    }
}

fn summary_benches(c: &mut Criterion) {
    let real: Value = serde_json::from_str(REAL_SUMMARY).unwrap();
    let real_pairs: Vec<(FunctionName, u64)> = REAL_PAIRS
        .iter()
        .map(|(n, r)| (FunctionName::parse(n).unwrap(), *r))
        .collect();
    c.bench_function("k6/parse real summary 5 functions", |b| {
        b.iter(|| parse(black_box(&real), &real_pairs, Duration::from_secs(2)).unwrap())
    });
    c.bench_function("k6/read and parse real summary text 5 functions", |b| {
        b.iter(|| {
            let summary: Value = serde_json::from_str(black_box(REAL_SUMMARY)).unwrap();
            parse(&summary, &real_pairs, Duration::from_secs(2)).unwrap()
        })
    });
    let pairs: Vec<(FunctionName, u64)> = names(20).into_iter().map(|n| (n, 100)).collect();
    let summary = synthetic_summary(&pairs);
    c.bench_function("k6/parse summary 20 functions", |b| {
        b.iter(|| parse(black_box(&summary), &pairs, Duration::from_secs(30)).unwrap())
    });
}

criterion_group!(benches, script_benches, summary_benches);
criterion_main!(benches);
