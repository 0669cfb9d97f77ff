//! Section 1: per-iteration orchestration overhead, side by side.
//!
//! Overhead = an iteration's wall time minus k6's own test-run time, for
//! the same short script run four ways, interleaved round by round so
//! that drifting machine load hits every method alike:
//!
//! - (0) k6 alone: the same k6 binary as a local process, no SSH at all —
//!   the part of every method's overhead that is k6's own start and exit;
//! - (a) ours: one [`K6Runner`] (one multiplexed SSH master, connected
//!   once); per iteration `prepare()` before the clock starts (the
//!   campaign calls it before the cooldown: one remote command that
//!   receives the script and waits), then, timed, `run()` (the word to
//!   start; k6's log, exit status and summary stream back on the same
//!   command), `summary::parse`, the gateway replicas GET and the
//!   Prometheus iteration queries of [`Meter`], as the campaign does;
//!   remote commands launched inside the timed part are counted;
//! - (a') and (c') the same as (a) and (c) on a second k6 host whose
//!   root login shell runs `~/.bashrc` (pyenv init, ~250 ms per remote
//!   command), when scripts/bench.sh started one (`RC_K6_HOST`);
//! - (b) a fresh `ssh` process per step (upload, run k6, fetch summary:
//!   three connections, no ControlMaster), same key and known_hosts;
//! - (c) `ansible-playbook benches/ansible/run_k6.yml` per iteration
//!   (file, copy, command, fetch), ansible's default SSH settings.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_dfaas::k6::runner::{K6Job, K6Runner};
use lb_dfaas::k6::script::DEFAULT_REQUEST_TIMEOUT;
use lb_dfaas::k6::summary;
use lb_dfaas::metrics::gateway::GatewayClient;
use lb_dfaas::metrics::meter::Meter;
use lb_dfaas::metrics::prometheus::{PrometheusClient, PrometheusSettings};
use lb_dfaas::metrics::queries::{QuerySet, TimeSpan};
use lb_dfaas::stop::Stop;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::env::Testbed;
use crate::load::{script, test_run_ms, Script};
use crate::report::{heading, median, number, p95, Goal, Target};

/// The short script every method runs: one function, a tiny load.
const SCRIPT_DURATION_S: u64 = 1;
const SCRIPT_RATE: u64 = 5;
/// Samples of one bare remote command, for the unit costs of SSH.
const ROUND_TRIPS: usize = 20;
/// Bound on one ssh step or one playbook run.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// How many iterations each method gets (after one discarded warm-up).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub iterations: usize,
    pub ansible_iterations: usize,
}

/// One measured iteration.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    wall_ms: f64,
    k6_ms: f64,
    /// Ours only: `runner.run`, replicas GET, Prometheus queries.
    runner_ms: f64,
    replicas_ms: f64,
    metrics_ms: f64,
    /// Ours only: readings that came back NaN (each retried up to the
    /// meter's budget before giving up).
    nan_readings: usize,
    /// Ours only: remote commands launched in the timed part.
    commands: u64,
    /// Ours only: `prepare()`, before the clock starts.
    prepare_ms: f64,
}

impl Sample {
    fn overhead_ms(&self) -> f64 {
        self.wall_ms - self.k6_ms
    }
}

/// The samples of one method, or why it stopped.
#[derive(Debug, Default)]
struct Series {
    samples: Vec<Sample>,
    error: Option<String>,
}

impl Series {
    fn record(&mut self, sample: Result<Sample>, keep: bool) {
        match sample {
            Ok(sample) if keep => self.samples.push(sample),
            Ok(_) => {}
            Err(e) => self.error = Some(format!("{e:#}")),
        }
    }

    fn active(&self) -> bool {
        self.error.is_none()
    }

    fn values(&self, of: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples.iter().map(of).collect()
    }

    fn overhead_median(&self) -> f64 {
        median(&self.values(Sample::overhead_ms))
    }

    fn overhead_p95(&self) -> f64 {
        p95(&self.values(Sample::overhead_ms))
    }
}

pub async fn run(testbed: &Testbed, settings: Settings, targets: &mut Vec<Target>) -> Result<()> {
    heading("1. Per-iteration orchestration overhead");
    let function = crate::FAST_FUNCTION;
    let script = script(
        &testbed.gateway_url,
        function,
        SCRIPT_RATE,
        SCRIPT_DURATION_S,
    )?;
    println!(
        "script: k6::script::render, {function} at {SCRIPT_RATE} req/s for {SCRIPT_DURATION_S} s \
         (constant-arrival-rate); overhead = iteration wall time − k6's test-run time \
         (summary Counter count ÷ rate = k6's testRunDurationMs)"
    );
    println!(
        "rounds: 1 warm-up (discarded) + {} measured; methods interleaved in each round; \
         (c) runs in the first {} rounds only (it is slow)",
        settings.iterations, settings.ansible_iterations
    );

    let workdir = tempfile::Builder::new()
        .prefix("lbd-bench")
        .tempdir_in("/tmp")
        .context("creating the benchmark work directory")?;
    let root = workdir.path();
    let script_file = root.join("script.js");
    std::fs::write(&script_file, &script.text).context("writing script.js")?;

    let mut local = LocalK6::new(testbed.k6_binary(), root.join("local"));
    let mut ours = Ours::connect(testbed, &root.join("ours")).await?;
    let fresh = FreshSsh::new(testbed, root.join("ssh"));
    let ansible = Ansible::new(testbed, root)?;
    let rc_testbed = testbed.with_k6_host_from("RC_")?;
    let mut ours_rc = match &rc_testbed {
        Some(tb) => Some(Ours::connect(tb, &root.join("ours-rc")).await?),
        None => None,
    };
    let ansible_rc = match &rc_testbed {
        Some(tb) => {
            let dir = root.join("rc");
            std::fs::create_dir_all(&dir).context("creating the rc work directory")?;
            Some(Ansible::new(tb, &dir)?)
        }
        None => None,
    };

    let mut series: BTreeMap<&'static str, Series> = BTreeMap::new();
    for round in 0..=settings.iterations {
        let keep = round > 0;
        let id = format!("it-{round:03}");
        let entry = series.entry(LOCAL).or_default();
        if entry.active() {
            entry.record(local.iteration(&script_file, &id).await, keep);
        }
        let entry = series.entry(OURS).or_default();
        if entry.active() {
            entry.record(ours.iteration(&script, &id).await, keep);
        }
        let entry = series.entry(FRESH_SSH).or_default();
        if entry.active() {
            entry.record(fresh.iteration(&script.text, &id).await, keep);
        }
        let entry = series.entry(ANSIBLE).or_default();
        if entry.active() && round <= settings.ansible_iterations {
            entry.record(ansible.iteration(&script_file, &id).await, keep);
        }
        if let Some(ours_rc) = &mut ours_rc {
            let entry = series.entry(OURS_RC).or_default();
            if entry.active() {
                entry.record(ours_rc.iteration(&script, &id).await, keep);
            }
        }
        if let Some(ansible_rc) = &ansible_rc {
            let entry = series.entry(ANSIBLE_RC).or_default();
            if entry.active() && round <= settings.ansible_iterations {
                entry.record(ansible_rc.iteration(&script_file, &id).await, keep);
            }
        }
    }
    if let Some(ours_rc) = ours_rc {
        if let Err(e) = ours_rc.runner.close().await {
            println!("warning: closing the SSH master (rc host): {e}");
        }
    }
    if let Some(ansible_rc) = ansible_rc {
        ansible_rc.close().await;
    }
    let round_trips = round_trips(&ours, &fresh).await;
    if let Err(e) = ours.runner.close().await {
        println!("warning: closing the SSH master: {e}");
    }
    ansible.close().await;

    println!();
    println!(
        "{:<44} {:>3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "method", "n", "k6 ms", "wall ms", "ovh med", "ovh p95", "ovh min", "ovh max"
    );
    for (key, label) in [
        (LOCAL, "(0) k6 alone: local process, no SSH"),
        (OURS, "(a) ours: K6Runner, one SSH master"),
        (FRESH_SSH, "(b) fresh ssh per step (3 connections)"),
        (ANSIBLE, "(c) ansible-playbook per iteration"),
        (OURS_RC, "(a') ours, k6 host shell start-up ~250 ms"),
        (ANSIBLE_RC, "(c') ansible-playbook, same host as (a')"),
    ] {
        let Some(s) = series.get(key) else { continue };
        let overhead = s.values(Sample::overhead_ms);
        println!(
            "{label:<44} {:>3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            s.samples.len(),
            number(median(&s.values(|x| x.k6_ms))),
            number(median(&s.values(|x| x.wall_ms))),
            number(median(&overhead)),
            number(p95(&overhead)),
            number(crate::report::quantile(&overhead, 0.0)),
            number(crate::report::quantile(&overhead, 1.0)),
        );
        if let Some(error) = &s.error {
            println!("    stopped by an error: {error}");
        }
    }
    let default = Series::default();
    let ours_s = series.get(OURS).unwrap_or(&default);
    let local_s = series.get(LOCAL).unwrap_or(&default);
    let fresh_s = series.get(FRESH_SSH).unwrap_or(&default);
    let ansible_s = series.get(ANSIBLE).unwrap_or(&default);
    for (key, label) in [(OURS, "(a)"), (OURS_RC, "(a')")] {
        let Some(s) = series.get(key).filter(|s| !s.samples.is_empty()) else {
            continue;
        };
        let commands = s.values(|x| x.commands as f64);
        println!(
            "    {label} remote commands launched per iteration between the end of the cooldown and the row: \
             median {}, max {}; prepare() before the cooldown: median {} ms",
            number(median(&commands)),
            number(crate::report::quantile(&commands, 1.0)),
            number(median(&s.values(|x| x.prepare_ms))),
        );
    }
    if !ours_s.samples.is_empty() {
        println!(
            "    (a) breakdown, medians: runner.run − k6 run {} ms (waiting for k6's init, the resume over the forward, k6's exit and the stream's end; k6 starts paused in prepare()); \
             replicas GET {} ms; Prometheus iteration queries {} ms ({} NaN readings in {} iterations)",
            number(median(&ours_s.values(|x| x.runner_ms - x.k6_ms))),
            number(median(&ours_s.values(|x| x.replicas_ms))),
            number(median(&ours_s.values(|x| x.metrics_ms))),
            ours_s.samples.iter().map(|x| x.nan_readings).sum::<usize>(),
            ours_s.samples.len(),
        );
        println!(
            "    (a) − (0), medians: {} ms (negative: k6's own start-up is in prepare(), before the cooldown, for ours)",
            number(ours_s.overhead_median() - local_s.overhead_median())
        );
    }
    println!("    unit costs, one remote `true` ({ROUND_TRIPS} each): {round_trips}");
    let ours_median = ours_s.overhead_median();
    let ratio = |other: &Series| other.overhead_median() / ours_median;
    let ratio_p95 = |other: &Series| other.overhead_p95() / ours_s.overhead_p95();
    println!(
        "ratios of median overhead: (c)/(a) = {}×, (b)/(a) = {}×   (of p95: (c)/(a) = {}×, (b)/(a) = {}×)",
        number(ratio(ansible_s)),
        number(ratio(fresh_s)),
        number(ratio_p95(ansible_s)),
        number(ratio_p95(fresh_s)),
    );
    let beyond = |other: &Series| {
        (other.overhead_median() - local_s.overhead_median())
            / (ours_median - local_s.overhead_median())
    };
    println!(
        "ratios of median overhead beyond k6 alone (method − (0)): (c)/(a) = {}×, (b)/(a) = {}×",
        number(beyond(ansible_s)),
        number(beyond(fresh_s)),
    );
    targets.push(Target::new(
        "1a ours: median overhead per iteration",
        ours_median,
        Goal::AtMost(100.0),
        " ms",
    ));
    targets.push(Target::new(
        "1c ansible-per-iteration ÷ ours (median overhead)",
        ratio(ansible_s),
        Goal::AtLeast(50.0),
        "×",
    ));
    if let (Some(ours_rc), Some(ansible_rc)) = (series.get(OURS_RC), series.get(ANSIBLE_RC)) {
        println!(
            "ratio of median overhead on the host with shell start-up: (c')/(a') = {}×",
            number(ansible_rc.overhead_median() / ours_rc.overhead_median())
        );
        targets.push(Target::new(
            "1a' ours, k6 host shell start-up ~250 ms: median overhead per iteration",
            ours_rc.overhead_median(),
            Goal::AtMost(100.0),
            " ms",
        ));
        targets.push(Target::new(
            "1c' ansible-per-iteration ÷ ours, same host with shell start-up",
            ansible_rc.overhead_median() / ours_rc.overhead_median(),
            Goal::AtLeast(50.0),
            "×",
        ));
    }
    Ok(())
}

const LOCAL: &str = "0-local";
const OURS: &str = "a-ours";
const FRESH_SSH: &str = "b-ssh";
const ANSIBLE: &str = "c-ansible";
const OURS_RC: &str = "d-ours-rc";
const ANSIBLE_RC: &str = "e-ansible-rc";

/// (0) The k6 binary the k6 host runs, started here directly.
struct LocalK6 {
    binary: PathBuf,
    root: PathBuf,
}

impl LocalK6 {
    fn new(binary: PathBuf, root: PathBuf) -> Self {
        LocalK6 { binary, root }
    }

    async fn iteration(&mut self, script_file: &Path, id: &str) -> Result<Sample> {
        let dir = self.root.join(id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("k6.log")).context("creating k6.log")?;
        let log_err = log.try_clone().context("duplicating the k6.log handle")?;
        let started = Instant::now();
        let status = Command::new(&self.binary)
            .arg("run")
            .arg("--summary-export")
            .arg("summary.json")
            .arg(script_file)
            .current_dir(&dir)
            .env("K6_NO_USAGE_REPORT", "true")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .status();
        let status = tokio::time::timeout(STEP_TIMEOUT, status)
            .await
            .context("local k6 did not finish in time")?
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let summary = std::fs::read(dir.join("summary.json"));
        let wall = started.elapsed();
        if !status.success() {
            bail!("local k6 exited with {status}; see {}", dir.display());
        }
        let summary: serde_json::Value =
            serde_json::from_slice(&summary.context("reading the local summary.json")?)
                .context("local summary.json is not JSON")?;
        Ok(Sample {
            wall_ms: ms(wall),
            k6_ms: test_run_ms(&summary)?,
            ..Sample::default()
        })
    }
}

/// (a) The product's runner and meter, as the campaign drives them.
struct Ours {
    runner: K6Runner,
    meter: Meter,
    gateway: GatewayClient,
    tags: BTreeMap<String, String>,
    testbed: Testbed,
}

impl Ours {
    async fn connect(testbed: &Testbed, root: &Path) -> Result<Ours> {
        let root = root
            .to_str()
            .context("the workspace root is not UTF-8")?
            .to_string();
        let mut runner =
            K6Runner::connect(&testbed.k6_target(&root), testbed.runner_options()).await?;
        runner.k6_version().await?;
        let client = PrometheusClient::new(&testbed.prometheus_url, PrometheusSettings::default())?;
        let meter = Meter::new(
            client,
            QuerySet::bundled(false)?,
            TimeSpan::parse(&format!("{SCRIPT_DURATION_S}s"))
                .map_err(|e| anyhow::anyhow!("time span: {e}"))?,
            false,
            BTreeMap::new(),
        );
        let gateway = GatewayClient::new(&testbed.gateway_admin_url, None)?;
        // The tags RemoteK6 adds in a campaign.
        let tags = BTreeMap::from([
            ("run_id".to_string(), "bench".to_string()),
            ("component".to_string(), "k6".to_string()),
            ("workload".to_string(), "dfaas".to_string()),
            ("repetition".to_string(), "1".to_string()),
        ]);
        Ok(Ours {
            runner,
            meter,
            gateway,
            tags,
            testbed: testbed.clone(),
        })
    }

    /// Times `true` over a multiplexed master opened the way the runner
    /// opens its own (openssh native mux, strict known_hosts).
    async fn mux_round_trips(&self) -> Result<Vec<f64>> {
        let tb = &self.testbed;
        let control_dir = tempfile::Builder::new()
            .prefix("lbd-bmux")
            .tempdir_in("/tmp")
            .context("creating a control directory")?;
        let mut builder = openssh::SessionBuilder::default();
        builder
            .user(tb.k6_user.clone())
            .port(tb.k6_port)
            .keyfile(&tb.k6_ssh_key)
            .known_hosts_check(openssh::KnownHosts::Strict)
            .user_known_hosts_file(&tb.k6_known_hosts)
            .connect_timeout(Duration::from_secs(10))
            .control_directory(control_dir.path());
        let session = builder
            .connect_mux(&tb.k6_host)
            .await
            .context("opening an SSH master")?;
        let mut samples = Vec::with_capacity(ROUND_TRIPS);
        let mut failure = None;
        for _ in 0..ROUND_TRIPS {
            let started = Instant::now();
            match session.command("true").status().await {
                Ok(status) if status.success() => samples.push(ms(started.elapsed())),
                Ok(status) => {
                    failure = Some(anyhow::anyhow!("remote true exited with {status}"));
                    break;
                }
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context("remote true"));
                    break;
                }
            }
        }
        session.close().await.context("closing the SSH master")?;
        match failure {
            Some(e) => Err(e),
            None => Ok(samples),
        }
    }

    async fn iteration(&mut self, script: &Script, id: &str) -> Result<Sample> {
        let job = K6Job {
            host: "bench",
            run_id: "overhead",
            config_id: id,
            script: &script.text,
            outputs: &[],
            tags: &self.tags,
            args: &[],
            max_runtime: script.duration + DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(60),
        };
        let functions: Vec<_> = script.pairs.iter().map(|(f, _)| f.clone()).collect();
        // What the campaign does before the cooldown.
        let preparing = Instant::now();
        self.runner.prepare(&job, &Stop::never()).await?;
        let prepare_ms = ms(preparing.elapsed());
        let commands_before = self.runner.remote_commands();
        let started = Instant::now();
        let run = self.runner.run(&job, &mut |_| {}, &Stop::never()).await?;
        let runner_done = Instant::now();
        let commands = self.runner.remote_commands() - commands_before;
        let outcomes = summary::parse(&run.summary, &script.pairs, script.duration)?;
        let replicas = self.gateway.replicas().await;
        let replicas_done = Instant::now();
        let metrics = self
            .meter
            .iteration_metrics(&functions, run.started_at, run.ended_at)
            .await;
        let wall = started.elapsed();
        std::hint::black_box((&outcomes, &replicas, &metrics));
        replicas.context("gateway replicas")?;
        let m = &metrics.value;
        let mut readings = vec![m.cpu_usage_node, m.ram_usage_node, m.ram_usage_node_pct];
        for f in m.functions.values() {
            readings.extend([f.cpu, f.ram]);
        }
        Ok(Sample {
            wall_ms: ms(wall),
            k6_ms: test_run_ms(&run.summary)?,
            runner_ms: ms(runner_done - started),
            replicas_ms: ms(replicas_done - runner_done),
            metrics_ms: ms(wall - (replicas_done - started)),
            nan_readings: readings.iter().filter(|v| v.is_nan()).count(),
            commands,
            prepare_ms,
        })
    }
}

/// The unit costs behind the methods: one remote `true` over the
/// runner's kind of SSH master (a second master, built the same way)
/// and over a fresh `ssh` connection, as "median (p95) ms" text.
async fn round_trips(ours: &Ours, fresh: &FreshSsh) -> String {
    let mut text = Vec::new();
    match ours.mux_round_trips().await {
        Ok(samples) => text.push(format!(
            "over an SSH master {} ms (p95 {})",
            number(median(&samples)),
            number(p95(&samples))
        )),
        Err(e) => text.push(format!("over an SSH master: failed: {e:#}")),
    }
    let mut samples = Vec::new();
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        if let Err(e) = fresh.ssh("true", None).await {
            text.push(format!("fresh ssh: failed: {e:#}"));
            return text.join("; ");
        }
        samples.push(ms(started.elapsed()));
    }
    text.push(format!(
        "fresh ssh connection {} ms (p95 {})",
        number(median(&samples)),
        number(p95(&samples))
    ));
    text.join("; ")
}

/// (b) One new `ssh` process (and connection) per step.
struct FreshSsh {
    args: Vec<OsString>,
    root: PathBuf,
}

impl FreshSsh {
    fn new(testbed: &Testbed, root: PathBuf) -> Self {
        let mut args: Vec<OsString> = vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            testbed.k6_ssh_key.clone().into(),
            "-p".into(),
            testbed.k6_port.to_string().into(),
        ];
        let mut option = |o: String| {
            args.push("-o".into());
            args.push(o.into());
        };
        option(format!(
            "UserKnownHostsFile={}",
            testbed.k6_known_hosts.display()
        ));
        option("StrictHostKeyChecking=yes".into());
        option("IdentitiesOnly=yes".into());
        option("BatchMode=yes".into());
        option("ControlMaster=no".into());
        option("ControlPath=none".into());
        option("ConnectTimeout=10".into());
        args.push(testbed.ssh_destination().into());
        args.push("--".into());
        FreshSsh { args, root }
    }

    async fn ssh(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output> {
        let mut child = Command::new("ssh")
            .args(&self.args)
            .arg(command)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting ssh")?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(bytes).await.context("writing ssh stdin")?;
            pipe.shutdown().await.context("closing ssh stdin")?;
        }
        let output = tokio::time::timeout(STEP_TIMEOUT, child.wait_with_output())
            .await
            .context("ssh did not finish in time")?
            .context("waiting for ssh")?;
        if !output.status.success() {
            bail!(
                "ssh {command:?} exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output)
    }

    async fn iteration(&self, script: &str, id: &str) -> Result<Sample> {
        let dir = self.root.join(id);
        let dir = shlex::try_quote(dir.to_str().context("workspace path is not UTF-8")?)
            .context("quoting the workspace")?
            .into_owned();
        let started = Instant::now();
        self.ssh(
            &format!("mkdir -p -- {dir} && cat > {dir}/script.js"),
            Some(script.as_bytes()),
        )
        .await?;
        self.ssh(
            &format!(
                "cd -- {dir} && K6_NO_USAGE_REPORT=true k6 run --summary-export summary.json script.js > k6.log 2>&1"
            ),
            None,
        )
        .await?;
        let summary = self
            .ssh(&format!("cat -- {dir}/summary.json"), None)
            .await?;
        let wall = started.elapsed();
        let summary: serde_json::Value =
            serde_json::from_slice(&summary.stdout).context("fetched summary is not JSON")?;
        Ok(Sample {
            wall_ms: ms(wall),
            k6_ms: test_run_ms(&summary)?,
            ..Sample::default()
        })
    }
}

/// (c) `ansible-playbook` per iteration, with a private configuration
/// (own known_hosts, temp and control-socket directories) but otherwise
/// ansible's defaults (SSH ControlPersist 60 s, no pipelining).
struct Ansible {
    playbook_bin: String,
    playbook: PathBuf,
    inventory: PathBuf,
    env: Vec<(String, OsString)>,
    root: PathBuf,
    control_dir: tempfile::TempDir,
}

impl Ansible {
    fn new(testbed: &Testbed, root: &Path) -> Result<Ansible> {
        let dir = root.join("ansible");
        for sub in ["home", "local-tmp", "remote-tmp", "runs"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        // Unix socket paths are limited to ~108 bytes: a short directory.
        let control_dir = tempfile::Builder::new()
            .prefix("lbd-bcp")
            .tempdir_in("/tmp")
            .context("creating the control socket directory")?;
        let python = std::env::var("BENCH_ANSIBLE_PYTHON").unwrap_or_else(|_| "python3".into());
        let inventory = dir.join("inventory.json");
        let hosts = serde_json::json!({"all": {"hosts": {"k6": {
            "ansible_connection": "ssh",
            "ansible_host": testbed.k6_host,
            "ansible_port": testbed.k6_port,
            "ansible_user": testbed.k6_user,
            "ansible_ssh_private_key_file": testbed.k6_ssh_key,
            "ansible_ssh_common_args": format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes",
                testbed.k6_known_hosts.display()
            ),
            // The namespace shares this file system: the same interpreter is there.
            "ansible_python_interpreter": python,
            // The testbed's k6, as ours runs (not a shim first on PATH).
            "bench_k6": testbed.k6_binary(),
        }}}});
        std::fs::write(&inventory, serde_json::to_vec_pretty(&hosts)?)
            .context("writing the inventory")?;
        let config = dir.join("ansible.cfg");
        std::fs::write(&config, "[defaults]\nretry_files_enabled = False\n")
            .context("writing ansible.cfg")?;
        let env = vec![
            ("ANSIBLE_CONFIG".to_string(), config.into_os_string()),
            ("ANSIBLE_HOME".into(), dir.join("home").into_os_string()),
            (
                "ANSIBLE_LOCAL_TEMP".into(),
                dir.join("local-tmp").into_os_string(),
            ),
            (
                "ANSIBLE_REMOTE_TEMP".into(),
                dir.join("remote-tmp").into_os_string(),
            ),
            (
                "ANSIBLE_SSH_CONTROL_PATH_DIR".into(),
                control_dir.path().as_os_str().to_owned(),
            ),
            ("ANSIBLE_NOCOLOR".into(), "1".into()),
        ];
        Ok(Ansible {
            playbook_bin: std::env::var("BENCH_ANSIBLE_PLAYBOOK")
                .unwrap_or_else(|_| "ansible-playbook".into()),
            playbook: Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ansible/run_k6.yml"),
            inventory,
            env,
            root: dir,
            control_dir,
        })
    }

    async fn iteration(&self, script_file: &Path, id: &str) -> Result<Sample> {
        let workspace = self.root.join("runs").join(id);
        let summary_dest = self.root.join(format!("summary-{id}.json"));
        let vars = serde_json::json!({
            "bench_workspace": workspace,
            "bench_script_src": script_file,
            "bench_summary_dest": summary_dest,
        });
        let started = Instant::now();
        let output = Command::new(&self.playbook_bin)
            .arg("-i")
            .arg(&self.inventory)
            .arg("-e")
            .arg(vars.to_string())
            .arg(&self.playbook)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(STEP_TIMEOUT, output)
            .await
            .context("ansible-playbook did not finish in time")?
            .with_context(|| format!("starting {}", self.playbook_bin))?;
        let wall = started.elapsed();
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout);
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            bail!(
                "ansible-playbook exited with {}: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let summary = std::fs::read(&summary_dest)
            .with_context(|| format!("reading {}", summary_dest.display()))?;
        let summary: serde_json::Value =
            serde_json::from_slice(&summary).context("fetched summary is not JSON")?;
        Ok(Sample {
            wall_ms: ms(wall),
            k6_ms: test_run_ms(&summary)?,
            ..Sample::default()
        })
    }

    /// Ends the SSH control masters ansible-playbook left behind.
    async fn close(&self) {
        let Ok(entries) = std::fs::read_dir(self.control_dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let socket = entry.path();
            let result = Command::new("ssh")
                .arg("-O")
                .arg("exit")
                .arg("-o")
                .arg(format!("ControlPath={}", socket.display()))
                .arg("lbd-bench-control-master")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if let Err(e) = result {
                println!(
                    "warning: closing the control master {}: {e}",
                    socket.display()
                );
            }
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
