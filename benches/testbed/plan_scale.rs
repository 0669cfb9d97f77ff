//! Section 2: plan scale — time and peak memory to count and to iterate
//! 10^6 and 10^7 configurations of a validated [`Config`], and the
//! dominance check against 10^3 remembered overloads.
//!
//! Each phase runs in a child process (this binary re-executed with
//! `--phase NAME`) that reports its own `VmHWM` (peak resident set) from
//! `/proc/self/status` at the end, so one phase's allocations never show
//! up in another's peak. The `baseline` phase only loads the config: the
//! floor every other phase starts from.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use lb_dfaas::config::{load_request, Config, FunctionName};
use lb_dfaas::plan::{Configuration, OverloadMemory, Plan};
use lb_dfaas::protocol::{Context as RequestContext, Request};
use serde::{Deserialize, Serialize};

use crate::report::{heading, mib, number, Goal, Target};

/// Rates 0..RATES (custom strategy) for every function.
const RATES: u64 = 1000;
/// 2 functions, pairs only: 1 × 1000² = 10^6 configurations.
const FUNCTIONS_1E6: usize = 2;
/// 5 functions, pairs only: 10 × 1000² = 10^7 configurations.
const FUNCTIONS_1E7: usize = 5;
const REMEMBERED_OVERLOADS: usize = 1000;
/// Distinct candidate configurations, each checked CHECK_ROUNDS times.
const CANDIDATES: usize = 10_000;
const CHECK_ROUNDS: usize = 100;

/// Marks the one line of a child's stdout that carries its result.
const RESULT_PREFIX: &str = "PHASE_RESULT ";

/// What one phase measured, reported by the child as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    pub phase: String,
    /// Configurations counted or iterated, checks made.
    pub items: u128,
    /// Validating the config and building the plan.
    pub setup_ns: u128,
    /// The measured work.
    pub work_ns: u128,
    pub vm_hwm_kib: u64,
    /// Phase-specific facts (dominance hits, kept overloads).
    pub note: String,
}

/// The phases, in report order.
const PHASES: [&str; 7] = [
    "baseline",
    "count-1e6",
    "count-1e7",
    "iterate-1e6",
    "iterate-1e7",
    "dominance",
    "dominance-all-kept",
];

pub fn run(targets: &mut Vec<Target>) -> Result<()> {
    heading("2. Plan scale (each phase in its own child process)");
    println!(
        "config: custom rates 0..{} for every function, combinations of exactly 2 functions \
         (min_functions 2, max_functions 3): {FUNCTIONS_1E6} functions → 10^6, {FUNCTIONS_1E7} functions → 10^7 configurations",
        RATES - 1
    );
    let exe = std::env::current_exe().context("locating this benchmark binary")?;
    let mut results = Vec::new();
    for phase in PHASES {
        let output = Command::new(&exe)
            .arg("--phase")
            .arg(phase)
            .output()
            .with_context(|| format!("running phase {phase}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(RESULT_PREFIX)) else {
            bail!(
                "phase {phase} reported nothing (exit {}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        };
        let result: PhaseResult =
            serde_json::from_str(line).with_context(|| format!("phase {phase} result {line:?}"))?;
        results.push(result);
    }

    println!();
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>11} {:>10}  note",
        "phase", "items", "setup ms", "work ms", "per item ns", "VmHWM"
    );
    for r in &results {
        let per_item = if r.items > 0 && !r.phase.starts_with("count") {
            number(r.work_ns as f64 / r.items as f64)
        } else {
            "-".to_string()
        };
        println!(
            "{:<18} {:>10} {:>10} {:>10} {:>11} {:>10}  {}",
            r.phase,
            r.items,
            number(r.setup_ns as f64 / 1e6),
            number(r.work_ns as f64 / 1e6),
            per_item,
            mib(r.vm_hwm_kib),
            r.note
        );
    }
    let get = |phase: &str| results.iter().find(|r| r.phase == phase);
    if let Some(count) = get("count-1e7") {
        targets.push(Target::new(
            "2 count 10^7 configurations (validate config + build plan + count)",
            (count.setup_ns + count.work_ns) as f64 / 1e6,
            Goal::AtMost(1000.0),
            " ms",
        ));
    }
    if let (Some(small), Some(large)) = (get("iterate-1e6"), get("iterate-1e7")) {
        println!(
            "VmHWM iterating 10^7 vs 10^6: {} vs {} ({:+} KiB)",
            mib(large.vm_hwm_kib),
            mib(small.vm_hwm_kib),
            large.vm_hwm_kib as i64 - small.vm_hwm_kib as i64
        );
        targets.push(Target::new(
            "2 iterate in constant memory: VmHWM(10^7) ÷ VmHWM(10^6)",
            large.vm_hwm_kib as f64 / small.vm_hwm_kib as f64,
            Goal::AtMost(1.05),
            "",
        ));
    }
    Ok(())
}

/// Runs one phase in this (child) process and prints its result line.
pub fn run_phase(phase: &str) -> Result<()> {
    let result = match phase {
        "baseline" => {
            let started = Instant::now();
            let config = config(FUNCTIONS_1E6)?;
            black_box(&config);
            phase_result(phase, 0, started.elapsed().as_nanos(), 0, String::new())
        }
        "count-1e6" => count(phase, FUNCTIONS_1E6)?,
        "count-1e7" => count(phase, FUNCTIONS_1E7)?,
        "iterate-1e6" => iterate(phase, FUNCTIONS_1E6)?,
        "iterate-1e7" => iterate(phase, FUNCTIONS_1E7)?,
        "dominance" => dominance(
            phase,
            random_configs(1, REMEMBERED_OVERLOADS, 4)?,
            random_configs(2, CANDIDATES, 4)?,
        )?,
        "dominance-all-kept" => dominance(
            phase,
            antichain(REMEMBERED_OVERLOADS)?,
            random_configs(2, CANDIDATES, 3)?,
        )?,
        other => bail!("unknown phase {other:?}; phases: {}", PHASES.join(", ")),
    };
    let result = PhaseResult {
        vm_hwm_kib: vm_hwm_kib()?,
        ..result
    };
    println!("{RESULT_PREFIX}{}", serde_json::to_string(&result)?);
    Ok(())
}

fn phase_result(
    phase: &str,
    items: u128,
    setup_ns: u128,
    work_ns: u128,
    note: String,
) -> PhaseResult {
    PhaseResult {
        phase: phase.to_string(),
        items,
        setup_ns,
        work_ns,
        vm_hwm_kib: 0,
        note,
    }
}

/// A validated config with `functions` functions, custom rates 0..RATES
/// and combinations of exactly two functions.
fn config(functions: usize) -> Result<Config> {
    let names: Vec<serde_json::Value> = (0..functions)
        .map(|i| serde_json::json!({"name": format!("fn-{i}")}))
        .collect();
    let rates: Vec<u64> = (0..RATES).collect();
    let request = Request {
        config: serde_json::json!({
            "k6_host": "127.0.0.1",
            "gateway_url": "http://127.0.0.1:31112",
            "prometheus_url": "http://127.0.0.1:30411",
            "functions": names,
            "rate_strategy": {"type": "custom", "rates": rates},
            "combinations": {"min_functions": 2, "max_functions": 3},
        }),
        context: RequestContext::default(),
        plugin: Default::default(),
    };
    let loaded = load_request(&request).map_err(|e| anyhow!("config: {e}"))?;
    Ok(loaded.config)
}

fn count(phase: &str, functions: usize) -> Result<PhaseResult> {
    let started = Instant::now();
    let config = config(functions)?;
    let plan = Plan::new(&config);
    let setup = started.elapsed();
    let counting = Instant::now();
    let total = black_box(&plan).count()?;
    let work = counting.elapsed();
    Ok(phase_result(
        phase,
        total,
        setup.as_nanos(),
        work.as_nanos(),
        format!("count() alone {} ns", work.as_nanos()),
    ))
}

fn iterate(phase: &str, functions: usize) -> Result<PhaseResult> {
    let started = Instant::now();
    let config = config(functions)?;
    let plan = Plan::new(&config);
    let expected = plan.count()?;
    let setup = started.elapsed();
    let iterating = Instant::now();
    let mut seen: u128 = 0;
    let mut rate_sum: u64 = 0;
    for configuration in plan.iter() {
        seen += 1;
        rate_sum = rate_sum.wrapping_add(configuration.rates().iter().sum::<u64>());
        black_box(&configuration);
    }
    let work = iterating.elapsed();
    if seen != expected {
        bail!("{phase}: iterated {seen} configurations but count() said {expected}");
    }
    Ok(phase_result(
        phase,
        seen,
        setup.as_nanos(),
        work.as_nanos(),
        format!("rate checksum {rate_sum}"),
    ))
}

/// splitmix64: reproducible pseudo-random configurations.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Configurations of three functions, rates 0..=200 step 10. With
/// `from` = 4 names each leaves out a random one (four function sets, as
/// a campaign with three-function combinations of four functions); with
/// 3 names all share one set.
fn random_configs(seed: u64, n: usize, from: usize) -> Result<Vec<Configuration>> {
    let names: Vec<FunctionName> = ["env", "figlet", "nodeinfo", "shasum"]
        .iter()
        .take(from)
        .map(|n| FunctionName::parse(n).map_err(|e| anyhow!("{n}: {e}")))
        .collect::<Result<_>>()?;
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let left_out = if names.len() > 3 {
                Some(rng.below(names.len() as u64) as usize)
            } else {
                None
            };
            let pairs: Vec<(FunctionName, u64)> = names
                .iter()
                .enumerate()
                .filter(|&(i, _)| Some(i) != left_out)
                .map(|(_, f)| (f.clone(), rng.below(21) * 10))
                .collect();
            Configuration::from_pairs(pairs).map_err(|e| anyhow!("configuration: {e}"))
        })
        .collect()
}

/// `n` configurations of the same three functions none of which
/// dominates another (rates on the plane a + b + c = 600, step 10), so
/// the memory keeps every one and a check that finds no dominated entry
/// compares against all of them: the worst case.
fn antichain(n: usize) -> Result<Vec<Configuration>> {
    let names: Vec<FunctionName> = ["env", "figlet", "nodeinfo"]
        .iter()
        .map(|n| FunctionName::parse(n).map_err(|e| anyhow!("{n}: {e}")))
        .collect::<Result<_>>()?;
    let mut configs = Vec::with_capacity(n);
    'fill: for a in 0..=60u64 {
        for b in 0..=(60 - a) {
            if configs.len() == n {
                break 'fill;
            }
            let rates = [a * 10, b * 10, (60 - a - b) * 10];
            let pairs: Vec<(FunctionName, u64)> = names.iter().cloned().zip(rates).collect();
            configs
                .push(Configuration::from_pairs(pairs).map_err(|e| anyhow!("configuration: {e}"))?);
        }
    }
    if configs.len() < n {
        bail!("only {} antichain configurations available", configs.len());
    }
    Ok(configs)
}

/// `overloaded` remembered, then every candidate checked CHECK_ROUNDS
/// times. The inputs are built before the clock starts.
fn dominance(
    phase: &str,
    overloaded: Vec<Configuration>,
    candidates: Vec<Configuration>,
) -> Result<PhaseResult> {
    let started = Instant::now();
    let mut memory = OverloadMemory::new();
    for o in &overloaded {
        memory.remember(o);
    }
    let setup = started.elapsed();
    let checking = Instant::now();
    let mut hits: u64 = 0;
    for _ in 0..CHECK_ROUNDS {
        for candidate in &candidates {
            hits += u64::from(memory.dominates_any(black_box(candidate)));
        }
    }
    let work = checking.elapsed();
    let checks = (candidates.len() * CHECK_ROUNDS) as u128;
    Ok(phase_result(
        phase,
        checks,
        setup.as_nanos(),
        work.as_nanos(),
        format!(
            "{} remembered ({} kept as minimal), {:.1} % of checks dominated",
            overloaded.len(),
            memory.kept_len(),
            100.0 * hits as f64 / checks as f64
        ),
    ))
}

/// Peak resident set size of this process, from /proc/self/status.
fn vm_hwm_kib() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("/proc/self/status has no VmHWM line")?;
    line.trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("VmHWM {line:?} is not a number of kB"))
}
