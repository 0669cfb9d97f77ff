//! Section 4: overloads predicted from subsets (`overload.skip_predicted`)
//! against lb's same-set dominance rule.
//!
//! The same plan — 3 functions × 11 rates, combinations of 1 and 2
//! functions — runs twice through the built `lb-dfaas run` against the
//! test gateway: once with lb's rule only, once with prediction on (memory
//! off both times, so neither run knows the other). Reported: the
//! configurations and load-seconds (k6 seconds) each ran, what prediction
//! saved, and whether both runs drew the same overload frontier — every
//! configuration of the plan classed the same way, "ok" (measured, not
//! overloaded) or "overloaded" (measured overloaded, or skipped as
//! dominated or predicted). A difference on a configuration prediction
//! skipped is a prediction the lb-rule run measured otherwise; one on a
//! configuration both measured is run-to-run noise near the boundary. The
//! prediction rule is also replayed on the lb-rule run's own measurements,
//! which tells whether it would have skipped anything that run found not
//! overloaded.
//!
//! CPU-bound functions made a poor yardstick here: on the shared two cores
//! their capacity moved with other work between two runs (the same
//! single-function configuration overloaded in one run and not in the
//! other), so the frontiers differed by noise, prediction or not.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lb_dfaas::config::FunctionName;
use lb_dfaas::plan::{predicts_overload, ConfigKey, Configuration, Plan};
use lb_dfaas::protocol::Request;
use serde_json::{json, Value};

use crate::env::Testbed;
use crate::report::{heading, number, Goal, Target};

/// The plan's functions (sorted) and rate ladder. `io30` and `io50` wait
/// (`:wait` in `TESTBED_FUNCTIONS`, scripts/bench.sh) rather than burn CPU:
/// 3 workers × 100 ms and 2 × 40 ms, no queue, so they answer at most 30
/// and 50 calls/s whatever else runs on the machine — the overload
/// boundary stays where it is from one run to the next (20/40 and 40/60
/// req/s), and the comparison measures the rule, not the machine's noise.
pub const FUNCTIONS: [&str; 3] = [crate::FAST_FUNCTION, "io30", "io50"];
const RATES: (u64, u64, u64) = (0, 200, 20);
const DURATION: &str = "1s";
const DURATION_S: f64 = 1.0;
const ITERATIONS: u32 = 1;

/// How one configuration ended in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Overloaded,
    Dominated,
    Predicted,
    Failed,
    Absent,
}

impl Class {
    /// The frontier's two sides.
    fn overloaded(self) -> Option<bool> {
        match self {
            Class::Ok => Some(false),
            Class::Overloaded | Class::Dominated | Class::Predicted => Some(true),
            Class::Failed | Class::Absent => None,
        }
    }
}

/// One campaign run and what came of each configuration.
struct Campaign {
    classes: HashMap<ConfigKey, Class>,
    measured: usize,
    load_seconds: f64,
    requests: f64,
    wall_s: f64,
    exit_code: Option<i32>,
}

impl Campaign {
    fn count(&self, class: Class) -> usize {
        self.classes.values().filter(|c| **c == class).count()
    }
}

fn config_json(testbed: &Testbed, workspace: &Path, predicted: bool) -> Value {
    json!({
        "k6_host": testbed.k6_host,
        "k6_port": testbed.k6_port,
        "k6_user": testbed.k6_user,
        "k6_ssh_key": testbed.k6_ssh_key,
        "k6_known_hosts_file": testbed.k6_known_hosts,
        "k6_workspace_root": workspace,
        "k6_log_stream": false,
        "gateway_url": testbed.gateway_url,
        "prometheus_url": testbed.prometheus_url,
        "functions": FUNCTIONS.iter().map(|f| json!({"name": f})).collect::<Vec<_>>(),
        "rate_strategy": {"type": "linear", "min_rate": RATES.0, "max_rate": RATES.1, "step": RATES.2},
        "combinations": {"min_functions": 1, "max_functions": 3},
        "duration": DURATION,
        "iterations": ITERATIONS,
        "cooldown": {"max_wait_seconds": 60, "sleep_step_seconds": 1, "idle_threshold_pct": 100},
        // Overload from the gateway's answers (success rates, replicas), not
        // from the load other work puts on this machine's CPU and RAM.
        "overload": {"cpu_overload_pct_of_capacity": 100, "ram_overload_pct": 100, "skip_predicted": predicted},
        "memory": {"enabled": false},
    })
}

pub fn run(testbed: &Testbed, targets: &mut Vec<Target>) -> Result<()> {
    heading("4. Overloads predicted from subsets vs lb's same-set rule");
    let workdir = tempfile::Builder::new()
        .prefix("lbd-bench-predict")
        .tempdir_in("/tmp")
        .context("creating the prediction work directory")?;
    let plan_config = lb_dfaas::config::load_request(&Request {
        config: config_json(testbed, workdir.path(), false),
        ..Request::default()
    })
    .context("the benchmark's config does not validate")?
    .config;
    let plan: Vec<Configuration> = Plan::new(&plan_config).iter().collect();
    let by_id: HashMap<String, Configuration> = plan
        .iter()
        .map(|c| (c.config_id().to_string(), c.clone()))
        .collect();
    println!(
        "plan: {} functions ({}) x {} rates ({}..{} step {}), combinations of 1 and 2: {} configurations; \
         {ITERATIONS} iteration of {DURATION} each; overload from success rates and replicas; memory off",
        FUNCTIONS.len(),
        FUNCTIONS.join(", "),
        plan_config.rates.len(),
        RATES.0,
        RATES.1,
        RATES.2,
        plan.len()
    );
    println!("gateway functions: {}", testbed.functions_spec);

    let lb_rule = campaign(testbed, workdir.path(), "lb-rule", false, &plan, &by_id)?;
    let predicted = campaign(testbed, workdir.path(), "predicted", true, &plan, &by_id)?;

    println!();
    println!(
        "{:<22} {:>6} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10} {:>7} {:>7}",
        "run",
        "ran",
        "overload",
        "dominated",
        "predicted",
        "failed",
        "load-s",
        "requests",
        "wall s",
        "exit"
    );
    for (name, c) in [
        ("lb same-set rule", &lb_rule),
        ("skip_predicted", &predicted),
    ] {
        println!(
            "{:<22} {:>6} {:>9} {:>9} {:>10} {:>8} {:>10} {:>10} {:>7.0} {:>7}",
            name,
            c.measured,
            c.count(Class::Overloaded),
            c.count(Class::Dominated),
            c.count(Class::Predicted),
            c.count(Class::Failed),
            number(c.load_seconds),
            number(c.requests),
            c.wall_s,
            c.exit_code
                .map_or("signal".to_string(), |code| code.to_string()),
        );
    }
    let saved = lb_rule.measured as f64 - predicted.measured as f64;
    let saved_load = lb_rule.load_seconds - predicted.load_seconds;
    println!(
        "saved by prediction: {} configurations ({}% of the lb-rule run's), {} load-seconds, {} requests, {:.0} s of wall time",
        number(saved),
        number(100.0 * saved / lb_rule.measured.max(1) as f64),
        number(saved_load),
        number(lb_rule.requests - predicted.requests),
        lb_rule.wall_s - predicted.wall_s
    );

    // The frontier: every configuration classed the same way?
    let mut same = 0usize;
    let mut by_prediction = Vec::new();
    let mut by_noise = Vec::new();
    let mut unknown = 0usize;
    for configuration in &plan {
        let key = configuration.key();
        let a = lb_rule.classes.get(&key).copied().unwrap_or(Class::Absent);
        let b = predicted
            .classes
            .get(&key)
            .copied()
            .unwrap_or(Class::Absent);
        match (a.overloaded(), b.overloaded()) {
            (Some(x), Some(y)) if x == y => same += 1,
            (Some(_), Some(_)) if b == Class::Predicted => {
                by_prediction.push(format!("{configuration} (lb rule: {a:?})"));
            }
            (Some(_), Some(_)) => by_noise.push(format!("{configuration} ({a:?} vs {b:?})")),
            _ => unknown += 1,
        }
    }
    println!(
        "overload frontier: {same} of {} configurations classed alike (ok / overloaded); \
         {} differ where prediction skipped, {} where both runs measured (noise near the boundary); \
         {unknown} failed in either run",
        plan.len(),
        by_prediction.len(),
        by_noise.len()
    );
    for line in by_prediction.iter().chain(&by_noise) {
        println!("  differs: {line}");
    }
    for (name, c) in [("lb rule", &lb_rule), ("prediction", &predicted)] {
        println!("  minimal overloaded ({name}): {}", frontier(c, &plan));
    }

    // The prediction rule replayed on the lb-rule run's measurements.
    let overloaded_a: Vec<&Configuration> = plan
        .iter()
        .filter(|c| lb_rule.classes.get(&c.key()) == Some(&Class::Overloaded))
        .collect();
    let would_skip: Vec<&Configuration> = plan
        .iter()
        .filter(|c| overloaded_a.iter().any(|o| predicts_overload(c, o)))
        .collect();
    let wrong: Vec<String> = would_skip
        .iter()
        .filter(|c| lb_rule.classes.get(&c.key()) == Some(&Class::Ok))
        .map(|c| c.to_string())
        .collect();
    let measured_there = would_skip
        .iter()
        .filter(|c| {
            matches!(
                lb_rule.classes.get(&c.key()),
                Some(Class::Ok | Class::Overloaded)
            )
        })
        .count();
    println!(
        "replayed on the lb-rule run: prediction covers {} configurations, {measured_there} of which that run measured \
         (the savings), {} of those not overloaded{}",
        would_skip.len(),
        wrong.len(),
        if wrong.is_empty() {
            String::new()
        } else {
            format!(": {}", wrong.join(", "))
        }
    );

    targets.push(Target::new(
        "prediction: configurations saved vs lb's same-set rule",
        saved,
        Goal::AtLeast(1.0),
        "",
    ));
    targets.push(Target::new(
        "prediction: skipped configurations the lb-rule run found not overloaded",
        wrong.len() as f64,
        Goal::AtMost(0.0),
        "",
    ));
    targets.push(Target::new(
        "prediction: frontier differences where prediction skipped",
        by_prediction.len() as f64,
        Goal::AtMost(0.0),
        "",
    ));
    Ok(())
}

/// The minimal overloaded configurations of each function set (measured
/// overloaded or predicted), as `name:rate|...`.
fn frontier(campaign: &Campaign, plan: &[Configuration]) -> String {
    let mut sets: BTreeMap<Vec<String>, Vec<&Configuration>> = BTreeMap::new();
    for c in plan {
        if matches!(
            campaign.classes.get(&c.key()),
            Some(Class::Overloaded | Class::Predicted)
        ) {
            let names = c.functions().iter().map(|f| f.to_string()).collect();
            sets.entry(names).or_default().push(c);
        }
    }
    let mut minimal = Vec::new();
    for members in sets.values() {
        for c in members {
            let above_another = members.iter().any(|o| {
                o.rates() != c.rates() && o.rates().iter().zip(c.rates()).all(|(x, y)| x <= y)
            });
            if !above_another {
                minimal.push(c.to_string());
            }
        }
    }
    if minimal.is_empty() {
        "none".to_string()
    } else {
        minimal.join(", ")
    }
}

/// Runs the plan once with `lb-dfaas run`, reading its result and events.
fn campaign(
    testbed: &Testbed,
    root: &Path,
    name: &str,
    predicted: bool,
    plan: &[Configuration],
    by_id: &HashMap<String, Configuration>,
) -> Result<Campaign> {
    let workspace = root.join(format!("{name}-k6"));
    let output = root.join(name);
    let request = json!({
        "config": config_json(testbed, &workspace, predicted),
        "context": {"host": "bench", "run_id": format!("bench-{name}"), "output_dir": output},
    });
    println!("running the plan with {name} ...");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
        .args(["run", "--log-format", "text"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting lb-dfaas run")?;
    let mut stdin = child.stdin.take().context("lb-dfaas stdin")?;
    stdin
        .write_all(request.to_string().as_bytes())
        .context("writing the request")?;
    drop(stdin);
    let stdout = child.stdout.take().context("lb-dfaas stdout")?;
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout));
    let mut classes: HashMap<ConfigKey, Class> = HashMap::new();
    let stderr = child.stderr.take().context("lb-dfaas stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading lb-dfaas stderr")?;
        let Some(event) = line
            .strip_prefix("LB_EVENT ")
            .and_then(|json| serde_json::from_str::<Value>(json).ok())
        else {
            continue;
        };
        let message = event["message"].as_str().unwrap_or_default();
        let class = match event["type"].as_str() {
            Some("config_skipped") if message.contains("(dominated_by_overload)") => {
                Class::Dominated
            }
            Some("config_skipped") if message.contains("(predicted_overload)") => Class::Predicted,
            Some("config_failed") => Class::Failed,
            _ => continue,
        };
        if let Some(configuration) = message
            .strip_prefix("config ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|id| by_id.get(id))
        {
            classes.insert(configuration.key(), class);
        }
    }
    let status = child.wait().context("waiting for lb-dfaas")?;
    let wall_s = started.elapsed().as_secs_f64();
    let stdout = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the stdout reader panicked"))?
        .context("reading lb-dfaas stdout")?;
    let result: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("lb-dfaas printed no result document: {stdout}"))?;
    let rows = result["dfaas_results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut measured = 0;
    let mut requests = 0.0;
    for row in &rows {
        let pairs: Vec<(FunctionName, u64)> = FUNCTIONS
            .iter()
            .filter_map(|f| {
                let rate = cell(&row[format!("rate_function_{f}")])?;
                Some((FunctionName::parse(f).ok()?, rate.parse().ok()?))
            })
            .collect();
        let Ok(configuration) = Configuration::from_pairs(pairs) else {
            bail!("a results row names no configuration: {row}");
        };
        measured += 1;
        requests += configuration.rates().iter().sum::<u64>() as f64 * DURATION_S;
        let overloaded = cell(&row["overloaded_node"]).as_deref() == Some("1");
        let class = if overloaded {
            Class::Overloaded
        } else {
            Class::Ok
        };
        // Several iterations: overloaded when most were (here one each).
        classes.entry(configuration.key()).or_insert(class);
    }
    if plan.iter().any(|c| !classes.contains_key(&c.key())) {
        println!(
            "  {name}: {} configurations have no outcome",
            plan.iter()
                .filter(|c| !classes.contains_key(&c.key()))
                .count()
        );
    }
    Ok(Campaign {
        classes,
        measured,
        load_seconds: measured as f64 * f64::from(ITERATIONS) * DURATION_S,
        requests,
        wall_s,
        exit_code: status.code(),
    })
}

/// A result cell as text (`None` when empty: the function is not in the row).
fn cell(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}
