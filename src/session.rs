//! One `run`: resolve the request context, open the output directory and
//! the campaign memory, check the environment (k6 host over SSH,
//! Prometheus), drive the campaign with the real services, stop cleanly on
//! a signal or the stop file (k6 first, then the memory is closed), and
//! build the result document.
//!
//! Start-up failures are environment errors (exit 3) and happen within
//! seconds: the SSH connect, the Prometheus check (core count, scrape
//! interval) and the gateway check (`/system/functions` with the
//! configured credentials) run side by side, each with its own bound, and
//! a stop request ends them at once (exit 130).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::campaign::live::{LiveMeasurements, RemoteK6};
use crate::campaign::progress::{Observer, Observers, Progress, RunStarted, RunTotals};
use crate::campaign::stop::Stop;
use crate::campaign::{Campaign, CampaignError, RunContext};
use crate::config::Config;
use crate::events::{EventOrigin, LbEvents, StderrSink};
use crate::k6::runner::{K6Runner, RunnerOptions};
use crate::memory::{MemoryRecorder, RunPlace, RunStatus};
use crate::metrics::gateway::{GatewayClient, GatewayError, GatewaySettings};
use crate::metrics::meter::Meter;
use crate::metrics::prometheus::{Deadlines, Measured, PrometheusError, PrometheusSettings};
use crate::metrics::scrape::{self, Sampling};
use crate::output::{Fault, OutputError};
use crate::protocol::{exit, Context, ErrorInfo, RunResult};
use crate::report::{CommandError, ErrorKind};

/// Where output goes when neither the context nor the config says.
const DEFAULT_OUTPUT_DIR: &str = "benchmark_results/dfaas";

/// The request context with every default filled in and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedContext {
    pub host: String,
    pub workload: String,
    pub run_id: String,
    pub repetition: u32,
    pub total_repetitions: u32,
    pub output_dir: PathBuf,
    /// Where `output_dir` came from, for errors: `context.output_dir` or
    /// the config's `output_dir` (the default counts as the latter).
    pub output_dir_field: &'static str,
    pub stop_file: Option<PathBuf>,
    /// lb's working directory (absolute), when lb runs the campaign: the
    /// base of relative memory paths (else the output directory).
    pub lb_workdir: Option<PathBuf>,
}

/// Fills in the context's defaults (SPEC §2) and checks the values that
/// become path segments on the k6 host and in file names.
pub fn resolve_context(
    context: &Context,
    config: &Config,
) -> Result<ResolvedContext, CommandError> {
    let host = match &context.host {
        Some(host) => host.clone(),
        None => local_hostname(),
    };
    check_segment("context.host", &host)?;
    let run_id = match (&context.run_id, &config.run_id) {
        (Some(id), _) | (None, Some(id)) => id.clone(),
        (None, None) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("run-{now}")
        }
    };
    check_segment("context.run_id", &run_id)?;
    let repetition = context.repetition.unwrap_or(1);
    let total_repetitions = context.total_repetitions.unwrap_or(1).max(repetition);
    if repetition == 0 {
        return Err(CommandError::input(
            "context.repetition",
            "must be at least 1",
        ));
    }
    let output_dir_field = if context.output_dir.is_some() {
        "context.output_dir"
    } else {
        "output_dir"
    };
    let output_dir = match (&context.output_dir, &config.output_dir) {
        (Some(dir), _) if dir.trim().is_empty() => {
            return Err(CommandError::input(
                "context.output_dir",
                "must not be empty",
            ))
        }
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(dir)) => dir.clone(),
        (None, None) => PathBuf::from(DEFAULT_OUTPUT_DIR),
    };
    let lb_workdir = match context.lb_workdir.as_deref() {
        None => None,
        Some(dir) if !std::path::Path::new(dir).is_absolute() => {
            return Err(CommandError::input(
                "context.lb_workdir",
                format!("{dir:?} must be an absolute path"),
            ))
        }
        Some(dir) => Some(PathBuf::from(dir)),
    };
    Ok(ResolvedContext {
        host,
        workload: context
            .workload
            .clone()
            .unwrap_or_else(|| "dfaas".to_string()),
        run_id,
        repetition,
        total_repetitions,
        output_dir,
        output_dir_field,
        stop_file: context
            .stop_file
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        lb_workdir,
    })
}

/// Checks the output location without creating or writing anything (what
/// `validate` and `plan` can do; `run` prepares it, see
/// [`crate::output::location::prepare`]).
pub fn inspect_output(ctx: &ResolvedContext) -> Result<(), CommandError> {
    crate::output::location::inspect(&ctx.output_dir).map_err(|source| output_error(ctx, source))
}

/// An error about the output location as the command's error (see
/// [`output_failure`]).
pub fn output_error(ctx: &ResolvedContext, source: OutputError) -> CommandError {
    output_failure(
        &CampaignError::Dataset {
            dir: ctx.output_dir.clone(),
            source,
        },
        ctx.output_dir_field,
    )
}

/// A path segment on the k6 host and in local file names.
fn check_segment(field: &str, value: &str) -> Result<(), CommandError> {
    if crate::config::is_path_segment(value) {
        Ok(())
    } else {
        Err(CommandError::input(
            field,
            format!("{value:?} must be 1-128 characters of [A-Za-z0-9._-] (it names directories)"),
        ))
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Runs the campaign described by `config` in `context`.
pub fn run(config: &Config, context: &Context) -> Result<RunResult, CommandError> {
    let ctx = resolve_context(context, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(config, ctx))
}

async fn run_async(config: &Config, ctx: ResolvedContext) -> Result<RunResult, CommandError> {
    let lb_events = Arc::new(LbEvents::new(
        EventOrigin {
            run_id: ctx.run_id.clone(),
            host: ctx.host.clone(),
            workload: ctx.workload.clone(),
            repetition: ctx.repetition,
            total_repetitions: ctx.total_repetitions,
        },
        Arc::new(StderrSink),
        config.k6.log_stream,
    ));
    let memory = Arc::new(MemoryRecorder::new(lb_events.clone()));
    // The memory first: at run_finished it is closed before lb reads that line.
    let observers = Observers::new(vec![memory.clone(), lb_events]);
    let result = run_observed(config, &ctx, &observers, &memory).await;
    // A run that ended before its campaign did (a start-up check failed, a
    // stop during them) ends in the memory here; the others did at
    // run_finished. Either way after k6 stopped and before the exit.
    memory.finish(match &result {
        Ok(result) => {
            RunStatus::of_exit_code(u8::try_from(result.returncode).unwrap_or(exit::CONFIG_FAILED))
        }
        Err(CommandError::Interrupted) => RunStatus::Interrupted,
        Err(_) => RunStatus::Failed,
    });
    result
}

async fn run_observed(
    config: &Config,
    ctx: &ResolvedContext,
    observer: &dyn Observer,
    memory: &MemoryRecorder,
) -> Result<RunResult, CommandError> {
    let (handle, stop) = Stop::new();
    handle.watch(ctx.stop_file.clone());
    observer.observe(&Progress::RunStarted(RunStarted {
        run_id: &ctx.run_id,
        host: &ctx.host,
        k6_target: format!("{}@{}:{}", config.k6.user, config.k6.host, config.k6.port),
        gateway_url: config.gateway_url.as_str(),
        prometheus_url: config.prometheus_url.as_str(),
        output_dir: &ctx.output_dir,
    }));

    let meter = Meter::from_config(config, PrometheusSettings::default())
        .map_err(|e| CommandError::input("queries_path", e.to_string()))?
        .with_stop(stop.clone());
    let gateway = GatewayClient::with_settings(
        &config.gateway_url,
        config.openfaas_auth.clone(),
        &config.tls,
        GatewaySettings::default(),
    )
    .map_err(|e| CommandError::input("gateway_url", e.to_string()))?;
    let run_ctx = RunContext {
        host: ctx.host.clone(),
        run_id: ctx.run_id.clone(),
        repetition: ctx.repetition,
        output_dir: ctx.output_dir.clone(),
    };
    // Every output problem is found before connecting, let alone loading.
    let mut campaign = Campaign::open(config, &run_ctx, observer)
        .map_err(|e| output_failure(&e, ctx.output_dir_field))?;
    // So is a memory that cannot be used.
    let place = RunPlace {
        run_id: &ctx.run_id,
        repetition: ctx.repetition,
        lb_workdir: ctx.lb_workdir.as_deref(),
        output_dir: &ctx.output_dir,
    };
    if let Some(known) = memory.start(config, &place)? {
        let (full, part) = campaign.recall(known);
        observer.observe(&Progress::Note(&format!(
            "memory: {full} configuration(s) of this duration and query set known in full, {part} in part"
        )));
    }
    // The start-up checks' own meter: requests bounded like their retries,
    // so a Prometheus that accepts and never answers fails as fast.
    let startup_meter = Meter::from_config(config, STARTUP_SETTINGS)
        .map_err(|e| CommandError::input("queries_path", e.to_string()))?
        .with_stop(stop.clone());
    let checks = async {
        tokio::join!(
            connect_k6(config),
            check_prometheus(&startup_meter, config),
            check_gateway(&gateway, config),
        )
    };
    // A stop during the checks ends them at once (an SSH connect in
    // flight is dropped, as its own timeout would).
    let (runner, prometheus, listed) = tokio::select! {
        done = checks => done,
        () = stop.stopped() => return Err(CommandError::Interrupted),
    };
    let failure = match (&runner, prometheus, listed) {
        (Ok(_), Ok(prometheus), Ok(listed)) => Ok((prometheus, listed)),
        (Err(_), _, _) => Err(None),
        (Ok(_), Err(e), _) | (Ok(_), Ok(_), Err(e)) => Err(Some(e)),
    };
    let runner = runner?;
    let ((cores, sampling), listed) = match failure {
        Ok(found) => found,
        Err(e) => {
            let _ = runner.close().await;
            return Err(e.unwrap_or(CommandError::Interrupted));
        }
    };
    if stop.is_stopped() {
        let _ = runner.close().await;
        return Err(CommandError::Interrupted);
    }
    for warning in sampling.warnings {
        observer.observe(&Progress::Warning(&warning));
    }
    let sampling = sampling.value;
    observer.observe(&Progress::Note(&format!("prometheus: {sampling}")));
    let unlisted: Vec<&str> = config
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| !listed.contains_key(*name))
        .collect();
    if !unlisted.is_empty() {
        observer.observe(&Progress::Warning(&format!(
            "the gateway at {} does not list {}: their replicas will be recorded as nan",
            gateway.base_url(),
            unlisted.join(", ")
        )));
    }
    let meter = meter.with_sampling(sampling);

    let mut load = RemoteK6::new(runner, config, &ctx.host, &ctx.run_id, ctx.repetition);
    let services = LiveMeasurements {
        meter,
        gateway,
        stop: stop.clone(),
    };
    let outcome = campaign
        .execute(&mut load, &services, f64::from(cores), &stop)
        .await;
    if let Err(e) = load.close().await {
        observer.observe(&Progress::Warning(&format!(
            "closing the SSH connection: {e}"
        )));
    }
    let mut result = outcome.result;
    if let Some(stopped_by) = &outcome.stopped_by {
        // What finished is on disk and in the result; the error says why
        // the rest was not run.
        let error = output_failure(stopped_by, ctx.output_dir_field);
        result.returncode = i32::from(error.exit_code());
        result.success = false;
        result.error = Some(error.to_error_info());
    } else if outcome.interrupted {
        result.error = Some(ErrorInfo {
            kind: "interrupted".into(),
            message: "interrupted by a signal or the stop file; finished rows are on disk".into(),
            context: json!({"output_dir": ctx.output_dir}),
        });
    } else if let Some(reason) = &outcome.generator_lost {
        result.error = Some(ErrorInfo {
            kind: ErrorKind::Environment.as_str().into(),
            message: format!("{reason}; the run stopped, finished rows are on disk"),
            context: json!({"output_dir": ctx.output_dir, "k6_host": config.k6.host}),
        });
    } else if outcome.failed_configs > 0 {
        result.error = Some(ErrorInfo {
            kind: "configuration_failed".into(),
            message: format!(
                "{} configuration(s) failed and are listed in skipped.csv",
                outcome.failed_configs
            ),
            context: json!({"failed_configurations": outcome.failed_configs}),
        });
    }
    observer.observe(&Progress::RunFinished(RunTotals {
        rows: result.dfaas_results.len(),
        skipped: result.dfaas_skipped.len(),
        indexed: result.dfaas_index.len(),
        output_dir: &ctx.output_dir,
        exit_code: u8::try_from(result.returncode).unwrap_or(exit::CONFIG_FAILED),
    }));
    Ok(result)
}

/// How long start-up retries an unreachable or failing Prometheus: the run
/// must fail within seconds (exit 3), not wait for the campaign's budget.
const STARTUP_FAILURE_BUDGET: Duration = Duration::from_secs(2);

/// Prometheus requests at start-up: each bounded by the failure budget.
const STARTUP_SETTINGS: PrometheusSettings = PrometheusSettings {
    request_timeout: STARTUP_FAILURE_BUDGET,
    connect_timeout: Duration::from_secs(1),
    retry_budget: STARTUP_FAILURE_BUDGET,
    retry_pause: Duration::from_millis(500),
};

/// How long start-up waits for the core count to appear (a Prometheus that
/// has just started and not yet scraped node-exporter).
const STARTUP_EMPTY_BUDGET: Duration = Duration::from_secs(10);

/// Prometheus answers the core count with the configured credentials, and
/// tells how often it scrapes the series the queries read.
async fn check_prometheus(
    meter: &Meter,
    config: &Config,
) -> Result<(u32, Measured<Sampling>), CommandError> {
    let started = Instant::now();
    let deadlines = Deadlines {
        failure: started + STARTUP_FAILURE_BUDGET,
        empty: started + STARTUP_EMPTY_BUDGET,
    };
    let unusable = |e: PrometheusError| {
        environment(
            format!(
                "Prometheus at {} is unusable for the baseline: {e}{}",
                config.prometheus_url,
                auth_hint(
                    &e,
                    "prometheus_user/prometheus_password or prometheus_bearer_token_file"
                )
            ),
            json!({"prometheus_url": config.prometheus_url, "status": status_of(&e)}),
        )
    };
    let cores = match meter.node_cores_until(deadlines).await {
        Ok(cores) => cores,
        Err(PrometheusError::Interrupted) => return Err(CommandError::Interrupted),
        Err(e) => return Err(unusable(e)),
    };
    let discovery = Deadlines::within(STARTUP_FAILURE_BUDGET);
    match scrape::discover(meter.client(), &meter.templates(), discovery).await {
        Ok(sampling) => Ok((cores, sampling)),
        Err(_) => Err(CommandError::Interrupted),
    }
}

/// The gateway lists its functions with the configured credentials: a
/// refused login would otherwise only show as replicas never read.
async fn check_gateway(
    gateway: &GatewayClient,
    config: &Config,
) -> Result<BTreeMap<String, u64>, CommandError> {
    gateway.replicas().await.map_err(|e| {
        let status = match &e {
            GatewayError::Status { status, .. } => Some(*status),
            _ => None,
        };
        let hint = match status {
            Some(401 | 403) if config.openfaas_auth.is_none() => {
                " (it wants credentials: set openfaas_user and openfaas_password or openfaas_password_file)"
            }
            Some(401 | 403) => " (check openfaas_user and openfaas_password)",
            _ => "",
        };
        environment(
            format!("the OpenFaaS gateway is unusable: {e}{hint}"),
            json!({"gateway_url": config.gateway_url, "status": status}),
        )
    })
}

/// A hint naming the credential fields when Prometheus refused them.
fn auth_hint(error: &PrometheusError, fields: &str) -> String {
    match status_of(error) {
        Some(401 | 403) => format!(" (check {fields})"),
        _ => String::new(),
    }
}

fn status_of(error: &PrometheusError) -> Option<u16> {
    match error {
        PrometheusError::Status { status, .. } => Some(*status),
        _ => None,
    }
}

/// Connects to the k6 host and checks k6 is there.
async fn connect_k6(config: &Config) -> Result<K6Runner, CommandError> {
    let options = RunnerOptions {
        known_hosts_file: config.k6.known_hosts_file.clone(),
        reconnect_within: config.k6.reconnect_within,
        ..RunnerOptions::default()
    };
    let target = format!("{}@{}:{}", config.k6.user, config.k6.host, config.k6.port);
    let connect_bound = options.connect_timeout + Duration::from_secs(2);
    let mut runner =
        match tokio::time::timeout(connect_bound, K6Runner::connect(&config.k6, options)).await {
            Ok(Ok(runner)) => runner,
            Ok(Err(e)) => {
                return Err(environment(
                    format!("k6 host {target} is unreachable: {e}"),
                    json!({"k6_host": config.k6.host, "k6_port": config.k6.port}),
                ))
            }
            Err(_) => {
                return Err(environment(
                    format!(
                        "k6 host {target} is unreachable: no SSH connection within {} s",
                        connect_bound.as_secs()
                    ),
                    json!({"k6_host": config.k6.host, "k6_port": config.k6.port}),
                ))
            }
        };
    for leftover in runner.leftovers_removed() {
        tracing::info!(
            "removed the SSH control directory {} (and its master) left by a killed run",
            leftover.display()
        );
    }
    match runner.k6_version().await {
        Ok(version) => {
            tracing::info!("k6 host {target}: {version}");
            Ok(runner)
        }
        Err(e) => {
            let _ = runner.close().await;
            Err(environment(
                format!("k6 is not usable on the k6 host {target}: {e}"),
                json!({"k6_host": config.k6.host}),
            ))
        }
    }
}

fn environment(message: String, context: serde_json::Value) -> CommandError {
    CommandError::Environment { message, context }
}

/// An output failure as the command's error: a bad output location is
/// invalid input (exit 2), the system refusing to write is an environment
/// fault (exit 3); either way the message names the path and the OS error.
fn output_failure(error: &CampaignError, field: &str) -> CommandError {
    let CampaignError::Dataset { dir, source } = error;
    match source.fault() {
        Fault::Location => CommandError::input(field, error.to_string()),
        Fault::Environment => environment(
            error.to_string(),
            json!({
                "output_dir": dir,
                "path": source.path(),
                "os_error": source.os_error(),
            }),
        ),
        Fault::Internal => CommandError::Internal(error.to_string()),
    }
}
