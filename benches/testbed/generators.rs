//! Section 5: one load split across two generators (issue 14).
//!
//! The same total rate on the fast function from one k6 host and from two
//! (the testbed's and the second k6 host, each in its own network
//! namespace), each with its execution segment, prepared (started paused)
//! and resumed together through [`K6Runner`] as a campaign does; the
//! per-generator summaries are merged with `k6::merge::merge` and set
//! beside the gateway's `/truth`. Then one generator's k6 is starved
//! (moved into a cgroup allowed 2 % of one CPU while it waits, paused) and
//! the saturation verdict of `k6::saturation` is read for each generator.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use lb_dfaas::k6::merge::{merge, segments};
use lb_dfaas::k6::runner::{K6Job, K6Run, K6Runner};
use lb_dfaas::k6::saturation::saturation;
use lb_dfaas::k6::script::DEFAULT_REQUEST_TIMEOUT;
use lb_dfaas::k6::summary::{self, expected_requests, FunctionOutcome};
use lb_dfaas::stop::Stop;

use crate::env::{Testbed, Truth};
use crate::load::script;
use crate::report::{heading, Goal, Target};

/// Total rates on the fast function, requests per second.
const RATES: [u64; 3] = [500, 1000, 2000];
const DURATION_S: u64 = 5;
/// Lets calls the client gave up on finish before the truth is read.
const SETTLE: Duration = Duration::from_millis(500);
/// The starved generator's CPU quota: 2 ms per 100 ms period.
const STARVED_QUOTA_US: u64 = 2_000;

/// One generator: its runner and its workspace root (this file system).
struct Generator {
    name: String,
    runner: K6Runner,
    root: String,
}

/// What one run of a configuration measured.
struct Observation {
    generators: usize,
    rate: u64,
    merged: FunctionOutcome,
    truth: Truth,
    /// Largest gap between the generators' resume instants, ms.
    start_skew_ms: f64,
    parts: Vec<(String, FunctionOutcome, Option<f64>)>,
}

impl Observation {
    fn configured(&self) -> f64 {
        (self.rate * DURATION_S) as f64
    }

    fn fidelity(&self) -> f64 {
        self.truth.requests as f64 / self.configured()
    }

    fn truth_success(&self) -> f64 {
        let denominator =
            (self.truth.requests + self.merged.dropped).max(self.merged.expected.saturating_sub(1));
        if denominator == 0 {
            return f64::NAN;
        }
        self.truth.ok as f64 / denominator as f64
    }

    fn success_gap(&self) -> f64 {
        (self.merged.success_rate - self.truth_success()).abs()
    }
}

pub async fn run(testbed: &Testbed, targets: &mut Vec<Target>) -> Result<()> {
    heading("5. One load from one and from two generators, merged, and a starved generator");
    let Some(second) = testbed.with_k6_host_from("RC_")? else {
        bail!("no second k6 host (scripts/bench.sh starts one: RC_K6_HOST)");
    };
    println!(
        "fast function, {DURATION_S} s per run; generators: {}@{}:{} and {}@{}:{}; \
         each k6 started paused before the run and resumed over its SSH master's port forward",
        testbed.k6_user,
        testbed.k6_host,
        testbed.k6_port,
        second.k6_user,
        second.k6_host,
        second.k6_port
    );
    let workdir = tempfile::Builder::new()
        .prefix("lbd-bench-gen")
        .tempdir_in("/tmp")
        .context("creating the work directory")?;
    let mut generators = Vec::new();
    for (index, tb) in [testbed, &second].into_iter().enumerate() {
        let root = workdir.path().join(format!("g{index}"));
        let root = root
            .to_str()
            .context("work directory is not UTF-8")?
            .to_string();
        let runner = K6Runner::connect(&tb.k6_target(&root), tb.runner_options()).await?;
        generators.push(Generator {
            name: format!("{}:{}", tb.k6_host, tb.k6_port),
            runner,
            root,
        });
    }

    let mut observations = Vec::new();
    for rate in RATES {
        for count in [1, 2] {
            match observe(testbed, &mut generators[..count], rate, None).await {
                Ok(o) => observations.push(o),
                Err(e) => println!("{count} generator(s) at {rate} req/s failed: {e:#}"),
            }
        }
    }
    println!();
    println!(
        "{:>4} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "gens",
        "rate",
        "config",
        "sched",
        "truth",
        "t.ok",
        "fid.gw",
        "csv ok",
        "truth ok",
        "|diff|",
        "skew ms"
    );
    for o in &observations {
        println!(
            "{:>4} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8.4} {:>8.4} {:>8.4} {:>8.5} {:>9.2}",
            o.generators,
            o.rate,
            o.configured(),
            o.merged.requests + o.merged.dropped,
            o.truth.requests,
            o.truth.ok,
            o.fidelity(),
            o.merged.success_rate,
            o.truth_success(),
            o.success_gap(),
            o.start_skew_ms,
        );
    }
    println!(
        "sched = arrivals scheduled over all generators; fid.gw = requests the gateway received ÷ config; \
         csv ok = the merged success (k6::merge, results.csv); skew = largest gap between the generators' resume instants"
    );
    for count in [1, 2] {
        let runs: Vec<&Observation> = observations
            .iter()
            .filter(|o| o.generators == count)
            .collect();
        if runs.is_empty() {
            continue;
        }
        let worst_fidelity_gap = runs
            .iter()
            .map(|o| (1.0 - o.fidelity()).abs())
            .fold(0.0, f64::max);
        let worst_success_gap = runs.iter().map(|o| o.success_gap()).fold(0.0, f64::max);
        targets.push(Target::new(
            format!("5 {count} generator(s): worst |fidelity − 1| (gateway-received ÷ configured)"),
            worst_fidelity_gap * 100.0,
            Goal::AtMost(0.5),
            " %",
        ));
        targets.push(Target::new(
            format!("5 {count} generator(s): worst |merged success − truth|"),
            worst_success_gap * 100.0,
            Goal::AtMost(0.5),
            " %-points",
        ));
    }

    // The starved generator.
    let starved_rate = 1000;
    let cgroup =
        Path::new("/sys/fs/cgroup/cpu").join(format!("lbd-bench-starve-{}", std::process::id()));
    let starved = observe(testbed, &mut generators[..2], starved_rate, Some(&cgroup)).await;
    let _ = std::fs::remove_dir(&cgroup);
    let starved = starved?;
    println!();
    println!(
        "starved: generator 2's k6 in a cgroup allowed {} % of one CPU, {starved_rate} req/s in total for {DURATION_S} s",
        STARVED_QUOTA_US as f64 / 1000.0
    );
    let asked = expected_requests(starved_rate, Duration::from_secs(DURATION_S)) / 2;
    let mut verdicts = Vec::new();
    for (name, outcome, k6_busy) in &starved.parts {
        let verdict = saturation(*k6_busy, 0.9, outcome.requests + outcome.dropped, asked, 1);
        println!(
            "  {name}: scheduled {} of {asked}, k6 CPU {}: {}",
            outcome.requests + outcome.dropped,
            k6_busy.map_or("unknown".to_string(), |b| format!("{:.1} %", b * 100.0)),
            verdict
                .as_ref()
                .map_or("kept up".to_string(), |v| format!("SATURATED ({v})"))
        );
        verdicts.push(verdict.is_some());
    }
    println!(
        "  merged success {:.4} (truth {:.4}): a node verdict on it would read an overload (success_rate_node_min 0.95); \
         the campaign discards the iteration as generator_saturated instead (tests/e2e/generators.rs)",
        starved.merged.success_rate,
        starved.truth_success()
    );
    targets.push(Target::new(
        "5 starved generator reported as saturated (1 = yes)",
        if verdicts.get(1) == Some(&true) {
            1.0
        } else {
            0.0
        },
        Goal::AtLeast(1.0),
        "",
    ));
    targets.push(Target::new(
        "5 the generator that kept up reported as saturated (0 = no)",
        if verdicts.first() == Some(&true) {
            1.0
        } else {
            0.0
        },
        Goal::AtMost(0.0),
        "",
    ));
    for generator in generators {
        if let Err(e) = generator.runner.close().await {
            println!("warning: closing the SSH master to {}: {e}", generator.name);
        }
    }
    Ok(())
}

/// Runs `rate` on the fast function split across `generators`; with
/// `starve`, the last generator's paused k6 is moved into that cgroup
/// before the run.
async fn observe(
    testbed: &Testbed,
    generators: &mut [Generator],
    rate: u64,
    starve: Option<&Path>,
) -> Result<Observation> {
    let script = script(&testbed.gateway_url, crate::FAST_FUNCTION, rate, DURATION_S)?;
    let tags = BTreeMap::new();
    let count = generators.len();
    let config_id = format!(
        "fast-{rate}-{count}{}",
        if starve.is_some() { "-starved" } else { "" }
    );
    let args: Vec<Vec<String>> = segments(count)
        .into_iter()
        .map(|s| {
            s.map(|s| {
                vec![
                    "--execution-segment".to_string(),
                    s.segment,
                    "--execution-segment-sequence".to_string(),
                    s.sequence,
                ]
            })
            .unwrap_or_default()
        })
        .collect();
    let max_runtime = script.duration + DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(60);

    for (generator, args) in generators.iter_mut().zip(&args) {
        let job = job(&config_id, &script.text, &tags, args, max_runtime);
        generator.runner.prepare(&job, &Stop::never()).await?;
    }
    if let (Some(cgroup), Some(last)) = (starve, generators.last()) {
        let workspace = Path::new(&last.root)
            .join("bench/generators")
            .join(&config_id);
        let pid = std::fs::read_to_string(workspace.join("k6.pid"))
            .context("the starved generator's k6.pid")?;
        // Starved once its VUs are initialised: k6 logs its paused run.
        let mut waited = 0;
        while !std::fs::read_to_string(workspace.join("k6.log"))
            .unwrap_or_default()
            .contains("] paused")
        {
            waited += 1;
            if waited > 600 {
                bail!("the starved generator's k6 never reported its paused run");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::create_dir_all(cgroup).context("creating the cgroup (cgroup v1 cpu)")?;
        std::fs::write(cgroup.join("cpu.cfs_period_us"), "100000")?;
        std::fs::write(
            cgroup.join("cpu.cfs_quota_us"),
            STARVED_QUOTA_US.to_string(),
        )?;
        std::fs::write(cgroup.join("cgroup.procs"), pid.trim())?;
    }
    testbed.reset_truth().await?;
    let runs: Vec<Result<K6Run, _>> =
        futures_util::future::join_all(generators.iter_mut().zip(&args).map(|(g, args)| {
            let job = job(&config_id, &script.text, &tags, args, max_runtime);
            async move { g.runner.run(&job, &mut |_| {}, &Stop::never()).await }
        }))
        .await;
    tokio::time::sleep(SETTLE).await;
    let truth = testbed.truth(crate::FAST_FUNCTION).await?;
    let mut outcomes = Vec::new();
    let mut parts = Vec::new();
    let mut starts = Vec::new();
    for (generator, run) in generators.iter().zip(runs) {
        let run = run.with_context(|| format!("generator {}", generator.name))?;
        let parsed = summary::parse(&run.summary, &script.pairs, script.duration)?;
        let outcome = parsed.values().next().cloned().context("no outcome")?;
        parts.push((
            generator.name.clone(),
            outcome,
            run.generator_cpu.and_then(|c| c.k6_busy),
        ));
        starts.push(run.started_at);
        outcomes.push(parsed);
    }
    let merged = merge(&outcomes, script.duration)
        .into_values()
        .next()
        .context("no merged outcome")?;
    Ok(Observation {
        generators: count,
        rate,
        merged,
        truth,
        start_skew_ms: skew_ms(&starts),
        parts,
    })
}

/// The bench's k6 job for one generator (`args`: its segment).
fn job<'a>(
    config_id: &'a str,
    script: &'a str,
    tags: &'a BTreeMap<String, String>,
    args: &'a [String],
    max_runtime: Duration,
) -> K6Job<'a> {
    K6Job {
        host: "bench",
        run_id: "generators",
        config_id,
        script,
        outputs: &[],
        tags,
        args,
        max_runtime,
    }
}

fn skew_ms(starts: &[SystemTime]) -> f64 {
    let (Some(first), Some(last)) = (starts.iter().min(), starts.iter().max()) else {
        return f64::NAN;
    };
    last.duration_since(*first)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}
