//! A whole campaign against the testbed: the datasets it writes, its
//! success rates against the gateway's own counters, overload and the
//! configurations skipped because they dominate an overloaded one, and a
//! rerun over the same output directory.

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{Testbed, TestbedOptions};

/// `fast` answers in 2 ms of CPU with 2 workers: 5 req/s is nothing.
/// `slow` takes 50 ms of CPU on a single worker with a queue of 8: about
/// 20 req/s at best, so 5 req/s is comfortable and 100 req/s gets mostly
/// 429s (overload by success rate, whatever else runs on the machine).
fn gateway() -> TestbedOptions {
    TestbedOptions {
        functions: Some("fast=2:2,slow=50:1:8".into()),
        ..TestbedOptions::default()
    }
}

/// The campaign's configurations in plan order: functions sorted,
/// combinations of 1 then 2 functions, the first function's rate varying
/// slowest. `fast` only gets rates up to 5.
const PLAN: [&[(&str, u64)]; 14] = [
    &[("fast", 0)],
    &[("fast", 5)],
    &[("slow", 0)],
    &[("slow", 5)],
    &[("slow", 100)],
    &[("slow", 150)],
    &[("fast", 0), ("slow", 0)],
    &[("fast", 0), ("slow", 5)],
    &[("fast", 0), ("slow", 100)],
    &[("fast", 0), ("slow", 150)],
    &[("fast", 5), ("slow", 0)],
    &[("fast", 5), ("slow", 5)],
    &[("fast", 5), ("slow", 100)],
    &[("fast", 5), ("slow", 150)],
];

/// Overloaded: `slow` at 100 req/s.
fn overloaded(pairs: &[(&str, u64)]) -> bool {
    pairs.contains(&("slow", 100))
}

/// Dominates an overloaded configuration (same functions, every rate at
/// least as high, one higher) seen before it: never sent to k6.
fn dominated(pairs: &[(&str, u64)]) -> bool {
    pairs.contains(&("slow", 150)) || pairs == [("fast", 5), ("slow", 100)]
}

fn campaign_config(tb: &Testbed, work: &Workdir) -> Value {
    with(
        base_config(tb, work),
        json!({
            "functions": [{"name": "slow"}, {"name": "fast", "max_rate": 5}],
            "rate_strategy": {"type": "custom", "rates": [150, 0, 100, 5]},
            "combinations": {"min_functions": 1, "max_functions": 3},
        }),
    )
}

#[test]
fn campaign_reaches_overload_skips_what_dominates_it_and_a_rerun_sends_nothing() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let out = work.output("out");
    let root = work.workspace_root();

    let run1 = run(&request(campaign_config(&tb, &work), &work, "out", "e2e-1"));
    assert_eq!(run1.code, Some(0), "exit code; stderr:\n{}", run1.log());
    let result = run1.result();
    assert_eq!(result["returncode"], 0);
    assert_eq!(result["success"], true);
    assert_eq!(result["interrupted"], false);
    assert_eq!(result["error"], Value::Null);
    assert_eq!(result["dfaas_functions"], json!(["fast", "slow"]));

    // results.csv: one row per executed configuration, in plan order,
    // every cell in its format.
    let executed: Vec<&[(&str, u64)]> = PLAN.iter().copied().filter(|p| !dominated(p)).collect();
    assert_eq!(executed.len(), 10);
    let results = Table::read(&out.join("results.csv"), b',');
    let rows = check_results(&results, &["fast", "slow"]);
    assert_eq!(
        rows,
        executed.iter().map(|p| owned(p)).collect::<Vec<_>>(),
        "results.csv configurations"
    );
    assert_rows_match_protocol(&results, &result["dfaas_results"]);
    for (i, pairs) in executed.iter().enumerate() {
        let row = &results.rows[i];
        for (f, rate) in pairs.iter() {
            let success: f64 = results
                .cell(i, &format!("success_rate_function_{f}"))
                .parse()
                .unwrap();
            let latency = results.cell(i, &format!("medium_latency_function_{f}"));
            let flag = results.cell(i, &format!("overloaded_function_{f}"));
            if *rate == 0 {
                assert_eq!(
                    (success, latency),
                    (1.0, "0.000"),
                    "rate 0 of {f} in {row:?}"
                );
            }
            if overloaded(&[(f, *rate)]) {
                assert!(
                    success < 0.5,
                    "{f} at {rate}/s succeeded {success}: {row:?}"
                );
                assert_eq!(flag, "1", "{row:?}");
            } else {
                assert!(
                    success >= 0.95,
                    "{f} at {rate}/s succeeded only {success}: {row:?}"
                );
                assert_eq!(flag, "0", "{row:?}");
                if *rate > 0 {
                    assert_ne!(latency, "0.000", "{f} at {rate}/s has no latency: {row:?}");
                }
            }
        }
        let expected = if overloaded(pairs) { "1" } else { "0" };
        assert_eq!(results.cell(i, "overloaded_node"), expected, "{row:?}");
        // No Scaphandre here: power is unknown, never made up.
        assert_eq!(results.cell(i, "power_usage_node"), "nan");
    }
    // Prometheus measured the CPU the gateway burned for slow (its
    // cAdvisor-style series) where slow was loaded. A window of a few
    // seconds can hold too few scrapes for a rate (then `nan`), so one
    // measured row is asked for, not every one.
    let slow_cpu: Vec<f64> = executed
        .iter()
        .enumerate()
        .filter(|(_, p)| p.iter().any(|&(f, r)| f == "slow" && r > 0))
        .map(|(i, _)| results.cell(i, "cpu_usage_function_slow").parse().unwrap())
        .collect();
    assert!(
        slow_cpu.iter().any(|cpu| *cpu > 0.0),
        "no CPU measured for slow under load: {slow_cpu:?}"
    );

    // Overload was reported as it happened.
    let events = run1.events();
    // Regression (lb ended the repetition FAILED at the first "config ...
    // finished" event): lb's poller, applied to the whole real stream with
    // the request's workload and repetition, never sees the end.
    assert!(events.len() > executed.len(), "too few events: {events:?}");
    assert!(
        !events
            .iter()
            .any(|e| ends_lb_repetition(e, &json!("dfaas"), &json!(1))),
        "an event ends lb's repetition early:\n{}",
        run1.log()
    );
    for pairs in executed.iter().filter(|p| overloaded(p)) {
        let id = config_id(pairs);
        assert!(
            events
                .iter()
                .any(|e| is_event(e, "config_overloaded", &id) && e["level"] == "warning"),
            "no overloaded event for {id} {pairs:?}; stderr:\n{}",
            run1.log()
        );
    }

    // skipped.csv holds the dominated configurations, empty cells for
    // functions not in them; they were never sent to k6.
    let skipped = Table::read(&out.join("skipped.csv"), b',');
    assert_eq!(
        skipped.header,
        [
            "function_fast",
            "rate_function_fast",
            "function_slow",
            "rate_function_slow"
        ]
    );
    let dominated_plan: Vec<&[(&str, u64)]> =
        PLAN.iter().copied().filter(|p| dominated(p)).collect();
    let expected_skipped: Vec<Vec<String>> = dominated_plan
        .iter()
        .map(|pairs| {
            ["fast", "slow"]
                .iter()
                .flat_map(|f| match pairs.iter().find(|(g, _)| g == f) {
                    Some((g, r)) => [g.to_string(), r.to_string()],
                    None => [String::new(), String::new()],
                })
                .collect()
        })
        .collect();
    assert_eq!(skipped.rows, expected_skipped, "skipped.csv");
    for pairs in &dominated_plan {
        let id = config_id(pairs);
        assert!(
            events.iter().any(|e| is_event(
                e,
                "config_skipped",
                &format!("{id} skipped (dominated_by_overload)")
            )),
            "no skip event for {id} {pairs:?}"
        );
        assert!(
            !out.join(format!("k6_scripts/config-{id}.js")).exists(),
            "script of {id}"
        );
        let summaries: Vec<_> = std::fs::read_dir(out.join("summaries"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(&id))
            .collect();
        assert!(
            summaries.is_empty(),
            "summaries of skipped {id}: {summaries:?}"
        );
        assert!(
            !workspace_dir(&root, HOST, "e2e-1", &id).exists(),
            "the k6 host has a workspace for skipped {id}"
        );
    }
    // ...while every executed one has its script, summary, metrics and
    // remote workspace.
    for pairs in &executed {
        let id = config_id(pairs);
        for file in [
            format!("k6_scripts/config-{id}.js"),
            format!("summaries/summary-{id}-iter1-rep1.json"),
            format!("metrics/metrics-{id}-iter1-rep1.csv"),
        ] {
            assert!(out.join(&file).is_file(), "{file} missing");
        }
        let ws = workspace_dir(&root, HOST, "e2e-1", &id);
        assert!(
            ws.join("summary.json").is_file(),
            "{} has no summary.json",
            ws.display()
        );
    }

    // index.csv: every executed configuration once, in order.
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    let mut expected_index = vec!["functions;rates;results_file".to_string()];
    expected_index.extend(executed.iter().map(|p| index_line(p)));
    assert_eq!(
        index.lines().collect::<Vec<_>>(),
        expected_index,
        "index.csv"
    );
    assert_eq!(
        result["dfaas_index"].as_array().unwrap().len(),
        executed.len()
    );

    // --- the rerun: everything is indexed or dominated, nothing is sent.
    let csv_before: Vec<Vec<u8>> = ["results.csv", "skipped.csv", "index.csv"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    let dirs_before = dirs_below(&root);
    tb.reset_truth().unwrap();
    let run2 = run(&request(campaign_config(&tb, &work), &work, "out", "e2e-2"));
    assert_eq!(
        run2.code,
        Some(0),
        "rerun exit code; stderr:\n{}",
        run2.log()
    );
    let result2 = run2.result();
    assert_eq!(result2["returncode"], 0);
    assert_eq!(result2["dfaas_results"], json!([]));
    assert_eq!(
        result2["dfaas_skipped"].as_array().unwrap().len(),
        PLAN.len()
    );
    let events2 = run2.events();
    for pairs in PLAN {
        let id = config_id(pairs);
        let reason = if dominated(pairs) {
            "dominated_by_overload"
        } else {
            "already_indexed"
        };
        assert!(
            events2.iter().any(|e| is_event(
                e,
                "config_skipped",
                &format!("{id} skipped ({reason})")
            )),
            "rerun: no {reason} skip for {id} {pairs:?}; stderr:\n{}",
            run2.log()
        );
    }
    assert!(
        !events2
            .iter()
            .any(|e| is_event(e, "iteration_started", "iteration")),
        "rerun started an iteration:\n{}",
        run2.log()
    );
    for (file, before) in ["results.csv", "skipped.csv", "index.csv"]
        .iter()
        .zip(&csv_before)
    {
        assert_eq!(
            &std::fs::read(out.join(file)).unwrap(),
            before,
            "{file} changed on rerun"
        );
    }
    assert_eq!(
        dirs_below(&root),
        dirs_before,
        "the rerun made k6 workspaces"
    );
    let truth = tb.truth().unwrap();
    for f in ["fast", "slow"] {
        assert_eq!(truth[f]["requests"], 0, "the rerun sent load: {truth}");
    }
}

/// One configuration's success rates in results.csv against the gateway's
/// truth: `ok ÷ max(requests received + iterations k6 dropped, rate ×
/// duration − 1)` — what should have been sent at the configured rate.
fn check_against_truth(
    tb: &Testbed,
    work: &Workdir,
    name: &str,
    config: Value,
    loaded: &[(&str, u64)],
) {
    let duration_s: u64 = config["duration"]
        .as_str()
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse().ok())
        .expect("durations in these tests are whole seconds");
    tb.reset_truth().unwrap();
    let finished = run(&request(config, work, name, name));
    assert_eq!(
        finished.code,
        Some(0),
        "{name}: stderr:\n{}",
        finished.log()
    );
    let truth = tb.truth().unwrap();
    let out = work.output(name);
    let results = Table::read(&out.join("results.csv"), b',');
    assert_eq!(
        results.rows.len(),
        1,
        "{name}: one configuration, one iteration"
    );
    let summary = read_json(&out.join(format!(
        "summaries/summary-{}-iter1-rep1.json",
        config_id(loaded)
    )));
    for (f, rate) in loaded {
        let t = &truth[*f];
        let requests = t["requests"].as_u64().unwrap();
        let ok = t["ok"].as_u64().unwrap();
        assert!(
            requests > 0,
            "{name}: the gateway saw no call of {f}: {truth}"
        );
        assert_eq!(
            t["abandoned"], 0,
            "{name}: k6 gave up on calls of {f}: {truth}"
        );
        let dropped = summary["metrics"][format!("dropped_iterations{{scenario:fn_{f}}}")]["count"]
            .as_u64()
            .unwrap_or(0);
        let should_send = (rate * duration_s).saturating_sub(1);
        let expected = ok as f64 / (requests + dropped).max(should_send) as f64;
        let csv: f64 = results
            .cell(0, &format!("success_rate_function_{f}"))
            .parse()
            .unwrap();
        assert!(
            (csv - expected).abs() <= 0.01,
            "{name}: {f} success {csv} in results.csv, gateway {ok} ok of {requests} (+{dropped} dropped by k6) = {expected:.4}"
        );
    }
}

#[test]
fn success_rates_agree_with_what_the_gateway_answered() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    // Both functions at once, comfortably within capacity.
    check_against_truth(
        &tb,
        &work,
        "both",
        with(
            base_config(&tb, &work),
            json!({
                "functions": [{"name": "fast"}, {"name": "slow"}],
                "rate_strategy": {"type": "custom", "rates": [5]},
                "combinations": {"min_functions": 2, "max_functions": 3},
            }),
        ),
        &[("fast", 5), ("slow", 5)],
    );
    // Overloaded: most calls answered 429.
    check_against_truth(
        &tb,
        &work,
        "overload",
        with(
            base_config(&tb, &work),
            json!({
                "functions": [{"name": "slow"}],
                "rate_strategy": {"type": "custom", "rates": [100]},
                "combinations": {"min_functions": 1, "max_functions": 2},
            }),
        ),
        &[("slow", 100)],
    );
}
