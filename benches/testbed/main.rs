//! The testbed benchmark: numbers for the claims the project makes, on the
//! real parts (k6 over SSH in a network namespace, the test gateway,
//! Prometheus), printed side by side in one run.
//!
//! 1. per-iteration orchestration overhead: ours vs a fresh `ssh` per step
//!    vs `ansible-playbook` per iteration ([`overhead`]);
//! 2. plan scale: count and iterate 10^6 / 10^7 configurations, dominance
//!    checks, each phase's time and peak memory ([`plan_scale`]);
//! 3. load fidelity and CSV success vs the gateway's truth ([`fidelity`]);
//! 4. overloads predicted from subsets vs lb's same-set rule: configurations
//!    and load-seconds saved, and the overload frontier ([`prediction`]).
//!
//! It asserts nothing: each target is reported "met" or "MISSED by X".
//! Sections 1, 3 and 4 need a testbed instance described by the environment
//! (`testbed/testbed.sh env ID`); without `TESTBED_ID` they are skipped.
//! `scripts/bench.sh` brings instance 20 up with the functions this needs,
//! runs everything and tears it down.
//!
//! ```text
//! cargo bench --bench testbed [-- [--only overhead,plan,fidelity,prediction,generators]
//!                                 [--iterations N] [--ansible-iterations N]]
//! ```

mod env;
mod fidelity;
mod generators;
mod load;
mod overhead;
mod plan_scale;
mod prediction;
mod report;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use report::{heading, Target};

/// The gateway function that answers at once (`TESTBED_FUNCTIONS`).
pub const FAST_FUNCTION: &str = "fast";
/// The gateway function that a moderate rate overloads.
pub const SLOW_FUNCTION: &str = "slow";

/// Command-line choices.
#[derive(Debug)]
struct Args {
    phase: Option<String>,
    sections: Vec<String>,
    overhead: overhead::Settings,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        phase: None,
        sections: vec![
            "overhead".into(),
            "plan".into(),
            "fidelity".into(),
            "prediction".into(),
            "generators".into(),
        ],
        overhead: overhead::Settings {
            iterations: 20,
            ansible_iterations: 10,
        },
    };
    let mut raw = std::env::args().skip(1);
    while let Some(arg) = raw.next() {
        let mut value = |name: &str| raw.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--phase" => args.phase = Some(value("--phase")?),
            "--only" => {
                args.sections = value("--only")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect();
            }
            "--iterations" => {
                args.overhead.iterations = value("--iterations")?
                    .parse()
                    .context("--iterations must be a count")?;
            }
            "--ansible-iterations" => {
                args.overhead.ansible_iterations = value("--ansible-iterations")?
                    .parse()
                    .context("--ansible-iterations must be a count")?;
            }
            other => bail!(
                "unknown argument {other:?}; use --only overhead,plan,fidelity,prediction,generators, --iterations N, --ansible-iterations N"
            ),
        }
    }
    for section in &args.sections {
        if !["overhead", "plan", "fidelity", "prediction", "generators"].contains(&section.as_str())
        {
            bail!("unknown section {section:?} in --only (overhead, plan, fidelity, prediction, generators)");
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if let Some(phase) = &args.phase {
        return plan_scale::run_phase(phase);
    }
    let started = Instant::now();
    println!("lb-dfaas testbed benchmark");
    println!("machine: {}", machine_facts());
    let testbed = env::Testbed::from_env()?;
    match &testbed {
        Some(tb) => println!(
            "testbed: instance {}, k6 host {}@{}:{}, gateway {}, prometheus {}",
            tb.id, tb.k6_user, tb.k6_host, tb.k6_port, tb.gateway_url, tb.prometheus_url
        ),
        None => println!("testbed: none (TESTBED_ID unset) — sections 1, 3 and 4 skipped"),
    }
    let wants = |section: &str| args.sections.iter().any(|s| s == section);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut targets: Vec<Target> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let testbed = match testbed {
        Some(tb)
            if wants("overhead")
                || wants("fidelity")
                || wants("prediction")
                || wants("generators") =>
        {
            let mut needed = vec![FAST_FUNCTION, SLOW_FUNCTION];
            if wants("prediction") {
                needed.extend(prediction::FUNCTIONS);
            }
            match runtime.block_on(tb.require_functions(&needed)) {
                Ok(()) => Some(tb),
                Err(e) => {
                    failures.push(format!("testbed: {e:#}"));
                    None
                }
            }
        }
        other => other,
    };
    if wants("overhead") {
        if let Some(tb) = &testbed {
            if let Err(e) = runtime.block_on(overhead::run(tb, args.overhead, &mut targets)) {
                failures.push(format!("overhead: {e:#}"));
            }
        }
    }
    if wants("plan") {
        if let Err(e) = plan_scale::run(&mut targets) {
            failures.push(format!("plan scale: {e:#}"));
        }
    }
    if wants("fidelity") {
        if let Some(tb) = &testbed {
            if let Err(e) = runtime.block_on(fidelity::run(tb, &mut targets)) {
                failures.push(format!("fidelity: {e:#}"));
            }
        }
    }

    if wants("prediction") {
        if let Some(tb) = &testbed {
            if let Err(e) = prediction::run(tb, &mut targets) {
                failures.push(format!("prediction: {e:#}"));
            }
        }
    }

    if wants("generators") {
        if let Some(tb) = &testbed {
            if let Err(e) = runtime.block_on(generators::run(tb, &mut targets)) {
                failures.push(format!("generators: {e:#}"));
            }
        }
    }

    heading("Targets");
    for target in &targets {
        println!("{target}");
    }
    for failure in &failures {
        println!("section failed: {failure}");
    }
    println!(
        "total benchmark time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{} section(s) failed", failures.len())
    }
}

/// CPUs, memory and load, from /proc.
fn machine_facts() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "{cpus} CPUs ({cpu_model}), {:.1} GiB RAM, load average {load}",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}
