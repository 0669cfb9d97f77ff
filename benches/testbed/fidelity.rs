//! Section 3: load fidelity and CSV success against the gateway's truth.
//!
//! Each run is the product's own script (`k6::script::render`) through
//! [`K6Runner`], read back with `k6::summary::parse` — the numbers that go
//! into results.csv — and set beside the gateway's `/truth` counters
//! (reset before every run):
//!
//! - fidelity = requests the gateway received ÷ (rate × duration), on a
//!   function that answers at once (k6's own request count beside it);
//! - under overload (a slow function beyond its capacity), the CSV success
//!   rate `ok ÷ max(requests + dropped, rate × duration − 1)` beside the
//!   truth's `truth_ok ÷ max(truth_requests + dropped, rate × duration − 1)`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use lb_dfaas::k6::runner::{K6Job, K6Runner};
use lb_dfaas::k6::script::DEFAULT_REQUEST_TIMEOUT;
use lb_dfaas::k6::summary::{self, FunctionOutcome};
use lb_dfaas::stop::Stop;

use crate::env::{Testbed, Truth};
use crate::load::{script, test_run_ms};
use crate::report::{heading, number, Goal, Target};

/// Rates on the fast function, requests per second.
const FAST_RATES: [u64; 5] = [50, 200, 500, 1000, 2000];
/// Fidelity must hold up to this rate.
const FIDELITY_TARGET_MAX_RATE: u64 = 1000;
/// Rates on the slow function, all beyond its capacity.
const OVERLOAD_RATES: [u64; 2] = [150, 400];
const DURATION_S: u64 = 5;
/// Lets calls the client gave up on finish before the truth is read.
const SETTLE: Duration = Duration::from_millis(500);

/// One run and what both sides counted.
struct Observation {
    function: &'static str,
    rate: u64,
    outcome: FunctionOutcome,
    truth: Truth,
    k6_run_ms: f64,
}

impl Observation {
    fn configured(&self) -> f64 {
        (self.rate * DURATION_S) as f64
    }

    fn fidelity_truth(&self) -> f64 {
        self.truth.requests as f64 / self.configured()
    }

    fn fidelity_k6(&self) -> f64 {
        self.outcome.requests as f64 / self.configured()
    }

    fn truth_success(&self) -> f64 {
        // What should have been sent at the configured rate, as the CSV
        // counts it (k6::summary::success_rate).
        let denominator = (self.truth.requests + self.outcome.dropped)
            .max(self.outcome.expected.saturating_sub(1));
        if denominator == 0 {
            f64::NAN
        } else {
            self.truth.ok as f64 / denominator as f64
        }
    }

    fn success_gap(&self) -> f64 {
        (self.outcome.success_rate - self.truth_success()).abs()
    }
}

pub async fn run(testbed: &Testbed, targets: &mut Vec<Target>) -> Result<()> {
    heading("3. Load fidelity and CSV success vs the gateway's truth");
    println!(
        "gateway functions: {}; {DURATION_S} s per run; script = k6::script::render, \
         run through K6Runner, read with k6::summary::parse",
        testbed.functions_spec
    );
    let workdir = tempfile::Builder::new()
        .prefix("lbd-bench")
        .tempdir_in("/tmp")
        .context("creating the fidelity work directory")?;
    let root = workdir
        .path()
        .to_str()
        .context("work directory is not UTF-8")?
        .to_string();
    let mut runner = K6Runner::connect(&testbed.k6_target(&root), testbed.runner_options()).await?;

    let mut observations = Vec::new();
    let plan = FAST_RATES
        .iter()
        .map(|&r| (crate::FAST_FUNCTION, r))
        .chain(OVERLOAD_RATES.iter().map(|&r| (crate::SLOW_FUNCTION, r)));
    for (function, rate) in plan {
        match observe(testbed, &mut runner, function, rate).await {
            Ok(observation) => observations.push(observation),
            Err(e) => println!("{function} at {rate} req/s failed: {e:#}"),
        }
    }
    if let Err(e) = runner.close().await {
        println!("warning: closing the SSH master: {e}");
    }

    println!();
    println!(
        "{:<6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "fn",
        "rate",
        "config",
        "sched",
        "k6 req",
        "drop",
        "truth",
        "t.ok",
        "t.fail",
        "fid.k6",
        "fid.gw",
        "csv ok",
        "truth ok",
        "|diff|",
        "lat ms"
    );
    for o in &observations {
        println!(
            "{:<6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.5} {:>8}",
            o.function,
            o.rate,
            o.configured(),
            o.outcome.requests + o.outcome.dropped,
            o.outcome.requests,
            o.outcome.dropped,
            o.truth.requests,
            o.truth.ok,
            o.truth.failed + o.truth.abandoned,
            o.fidelity_k6(),
            o.fidelity_truth(),
            o.outcome.success_rate,
            o.truth_success(),
            o.success_gap(),
            number(o.outcome.mean_latency_ms),
        );
    }
    println!(
        "config = rate × {DURATION_S} s; sched = arrivals k6 scheduled (requests + dropped); fid.k6 = k6's request count ÷ config, fid.gw = requests \
         the gateway received ÷ config; csv ok = summary::parse's success (results.csv); \
         truth ok = truth_ok ÷ max(truth_requests + dropped, rate×duration − 1); k6 test-run ms: {}",
        observations
            .iter()
            .map(|o| format!("{}@{}={}", o.function, o.rate, number(o.k6_run_ms)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    for o in observations
        .iter()
        .filter(|o| o.function == crate::FAST_FUNCTION)
    {
        let name = format!(
            "3 fidelity at {} req/s (gateway-received ÷ configured)",
            o.rate
        );
        if o.rate <= FIDELITY_TARGET_MAX_RATE {
            targets.push(Target::new(
                name,
                o.fidelity_truth(),
                Goal::AtLeast(0.99),
                "",
            ));
        } else {
            println!(
                "(no target above {FIDELITY_TARGET_MAX_RATE} req/s) fidelity at {} req/s: {:.4}",
                o.rate,
                o.fidelity_truth()
            );
        }
    }
    let worst_gap = observations
        .iter()
        .map(Observation::success_gap)
        .fold(f64::NAN, f64::max);
    targets.push(Target::new(
        "3 CSV success vs truth, worst |difference| over all runs",
        worst_gap * 100.0,
        Goal::AtMost(0.5),
        " %-points",
    ));
    let overload: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.function == crate::SLOW_FUNCTION)
        .collect();
    if overload.is_empty() {
        println!("no overload run succeeded");
    }
    Ok(())
}

async fn observe(
    testbed: &Testbed,
    runner: &mut K6Runner,
    function: &'static str,
    rate: u64,
) -> Result<Observation> {
    let script = script(&testbed.gateway_url, function, rate, DURATION_S)?;
    let tags = BTreeMap::new();
    let config_id = format!("{function}-{rate}");
    let job = K6Job {
        host: "bench",
        run_id: "fidelity",
        config_id: &config_id,
        script: &script.text,
        outputs: &[],
        tags: &tags,
        args: &[],
        max_runtime: script.duration + DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(60),
    };
    testbed.reset_truth().await?;
    let run = runner.run(&job, &mut |_| {}, &Stop::never()).await?;
    tokio::time::sleep(SETTLE).await;
    let truth = testbed.truth(function).await?;
    let outcomes = summary::parse(&run.summary, &script.pairs, script.duration)?;
    let outcome = outcomes
        .into_values()
        .next()
        .context("summary::parse returned no outcome")?;
    Ok(Observation {
        function,
        rate,
        outcome,
        truth,
        k6_run_ms: test_run_ms(&run.summary)?,
    })
}
