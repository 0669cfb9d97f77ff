//! One `run`: resolve the request context, open the output directory and
//! the campaign memory, check the environment (k6 host over SSH,
//! Prometheus), drive the campaign with the real services, stop cleanly on
//! a signal or the stop file (k6 first, then the memory is closed), and
//! return the campaign's outcome.
//!
//! Start-up failures are environment errors (exit 3) and happen within
//! seconds: the SSH connect (or, with `k6_host: local`, `k6 version` on
//! this machine), the Prometheus check (core count, scrape
//! interval) and the gateway check (`/system/functions` with the
//! configured credentials) run side by side, each with its own bound, and
//! a stop request ends them at once (exit 130).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::campaign::live::{LiveK6, LiveMeasurements, LocalK6, RemoteK6};
use crate::campaign::progress::{Observer, Observers, Progress, RunStarted, RunTotals};
use crate::campaign::{Campaign, CampaignError, Outcome, Services};
use crate::config::{Config, K6Host};
use crate::context::RunContext;
use crate::events::{LbEvents, StderrSink};
use crate::k6::runner::{K6Runner, LocalK6Runner, LocalOptions, RunnerOptions};
use crate::memory::{MemoryRecorder, RunPlace, RunStatus};
use crate::metrics::gateway::{GatewayClient, GatewayError, GatewaySettings};
use crate::metrics::meter::Meter;
use crate::metrics::prometheus::{Deadlines, Measured, PrometheusError, PrometheusSettings};
use crate::metrics::scrape::{self, Sampling};
use crate::protocol::Context;
use crate::report::{self, CommandError};
use crate::stop::Stop;
use crate::terminal_progress::RunDisplay;

/// Runs the campaign described by `config` in `context`, showing its
/// progress as `display` says: what it did, or why it could not start
/// ([`report::run_report`] makes either the result document).
pub(crate) fn run(
    config: &Config,
    context: &Context,
    display: RunDisplay,
) -> Result<Outcome, CommandError> {
    let ctx = RunContext::resolve(context, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let (handle, stop) = Stop::new();
        handle.watch(ctx.stop_file.clone());
        run_async(config, &ctx, display, None, stop).await
    })
}

/// [`run`] inside the caller's runtime (the control API's jobs):
/// `observer` gets every progress value besides the `LB_EVENT` lines, and
/// `stop` is the only stop request — no signal or stop file is watched.
pub(crate) async fn run_with(
    config: &Config,
    context: &Context,
    observer: Arc<dyn Observer>,
    stop: Stop,
) -> Result<Outcome, CommandError> {
    let ctx = RunContext::resolve(context, config)?;
    run_async(config, &ctx, RunDisplay::PROTOCOL, Some(observer), stop).await
}

async fn run_async(
    config: &Config,
    ctx: &RunContext,
    display: RunDisplay,
    extra: Option<Arc<dyn Observer>>,
    stop: Stop,
) -> Result<Outcome, CommandError> {
    let lb_events = LbEvents::new(ctx, Arc::new(StderrSink), config.k6.log_stream);
    let shown: Arc<dyn Observer> = Arc::new(display.observers(lb_events));
    let memory = Arc::new(MemoryRecorder::new(shown.clone()));
    // The memory first: at run_finished it is closed before lb reads that line.
    let mut observers = Observers::new(vec![memory.clone(), shown]);
    if let Some(extra) = extra {
        observers.push(extra);
    }
    let ran = run_observed(config, ctx, &observers, &memory, stop).await;
    // A run that ended before its campaign did (a start-up check failed, a
    // stop during them) ends in the memory here; the others did at
    // run_finished. Either way after k6 stopped and before the exit.
    memory.finish(match &ran {
        Ok(outcome) => RunStatus::of_exit_code(report::run_exit_code(&outcome.end).code()),
        Err(CommandError::Interrupted) => RunStatus::Interrupted,
        Err(_) => RunStatus::Failed,
    });
    ran
}

async fn run_observed(
    config: &Config,
    ctx: &RunContext,
    observer: &dyn Observer,
    memory: &MemoryRecorder,
    stop: Stop,
) -> Result<Outcome, CommandError> {
    observer.observe(&Progress::RunStarted(RunStarted {
        run_id: &ctx.run_id,
        host: &ctx.host,
        k6_target: k6_target(config),
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
    // Every output problem is found before connecting, let alone loading.
    let mut campaign = Campaign::open(config, ctx, observer).map_err(|e| campaign_error(ctx, e))?;
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
    let Ready {
        mut load,
        cores,
        sampling,
    } = start_up(config, ctx, &gateway, &stop, observer).await?;
    let meter = meter.with_sampling(sampling);

    let services = LiveMeasurements {
        meter,
        gateway,
        stop: stop.clone(),
    };
    let outcome = campaign
        .execute(
            Services {
                load: &mut load,
                meter: &services,
                stop: &stop,
            },
            f64::from(cores),
        )
        .await;
    if let Err(e) = load.close().await {
        observer.observe(&Progress::Warning(&format!(
            "closing the SSH connection: {e}"
        )));
    }
    observer.observe(&Progress::RunFinished(RunTotals {
        rows: outcome.data.dfaas_results.len(),
        skipped: outcome.data.dfaas_skipped.len(),
        indexed: outcome.data.dfaas_index.len(),
        output_dir: &ctx.output_dir,
        exit_code: report::run_exit_code(&outcome.end).code(),
    }));
    Ok(outcome)
}

/// What the start-up checks found.
struct Ready<'a> {
    load: LiveK6<'a>,
    cores: u32,
    sampling: Sampling,
}

/// The start-up checks, side by side: the k6 host over SSH (or k6 on this
/// machine), Prometheus (core count, scrape interval) and the gateway. Any
/// failure is the run's error (the SSH connection closed again); a stop
/// ends them at once.
async fn start_up<'a>(
    config: &'a Config,
    ctx: &'a RunContext,
    gateway: &GatewayClient,
    stop: &Stop,
    observer: &dyn Observer,
) -> Result<Ready<'a>, CommandError> {
    // The checks' own meter: requests bounded like their retries, so a
    // Prometheus that accepts and never answers fails as fast.
    let startup_meter = Meter::from_config(config, STARTUP_SETTINGS)
        .map_err(|e| CommandError::input("queries_path", e.to_string()))?
        .with_stop(stop.clone());
    let checks = async {
        tokio::join!(
            connect_load(config, ctx),
            check_prometheus(&startup_meter, config),
            check_gateway(gateway, config),
        )
    };
    // A stop during the checks ends them at once (an SSH connect in
    // flight is dropped, as its own timeout would).
    let (load, prometheus, listed) = tokio::select! {
        done = checks => done,
        () = stop.stopped() => return Err(CommandError::Interrupted),
    };
    let failure = match (&load, prometheus, listed) {
        (Ok(_), Ok(prometheus), Ok(listed)) => Ok((prometheus, listed)),
        (Err(_), _, _) => Err(None),
        (Ok(_), Err(e), _) | (Ok(_), Ok(_), Err(e)) => Err(Some(e)),
    };
    let load = load?;
    let ((cores, sampling), listed) = match failure {
        Ok(found) => found,
        Err(e) => {
            let _ = load.close().await;
            return Err(e.unwrap_or(CommandError::Interrupted));
        }
    };
    if stop.is_stopped() {
        let _ = load.close().await;
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
    Ok(Ready {
        load,
        cores,
        sampling,
    })
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

/// `user@host:port` of the k6 host (of each, comma-separated), or
/// `local`.
fn k6_target(config: &Config) -> String {
    if config.k6.is_local() && config.k6_hosts.is_empty() {
        return config.k6.host.clone();
    }
    config
        .generators()
        .iter()
        .map(|k6| format!("{}@{}:{}", k6.user, k6.host, k6.port))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The load generator: connected to the k6 host (or to each of
/// `k6_hosts`, side by side) with k6 there, or k6 on this machine (its
/// workspaces in `<output dir>/k6`).
async fn connect_load<'a>(
    config: &'a Config,
    ctx: &'a RunContext,
) -> Result<LiveK6<'a>, CommandError> {
    if config.k6.is_local() && config.k6_hosts.is_empty() {
        return local_k6(ctx)
            .await
            .map(|runner| LiveK6::Local(LocalK6::new(runner, config, ctx)));
    }
    let hosts = config.generators();
    let connected = join_all(hosts.iter().map(|host| connect_generator(host))).await;
    let mut runners = Vec::new();
    let mut failure = None;
    for (host, result) in hosts.iter().zip(connected) {
        match result {
            Ok(runner) => runners.push((format!("{}:{}", host.host, host.port), runner)),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(error) = failure {
        join_all(runners.into_iter().map(|(_, runner)| runner.close())).await;
        return Err(error);
    }
    Ok(LiveK6::Remote(Box::new(RemoteK6::new(
        runners, config, ctx,
    ))))
}

/// k6 on this machine: `k6 version` answers.
async fn local_k6(ctx: &RunContext) -> Result<LocalK6Runner, CommandError> {
    let unusable = |e: crate::k6::runner::RunnerError| {
        environment(
            format!("k6 is not usable on this machine (k6_host: local): {e}"),
            json!({"k6_host": crate::config::LOCAL_K6_HOST}),
        )
    };
    let runner = LocalK6Runner::new(&ctx.output_dir.join("k6"), LocalOptions::default())
        .map_err(unusable)?;
    let version = runner.k6_version().await.map_err(unusable)?;
    tracing::info!("k6 on this machine: {version}");
    Ok(runner)
}

/// Connects to the k6 host and checks k6 is there. With `k6_host: local`
/// there is no k6 host to connect to ([`connect_load`] runs k6 here
/// instead; a script suite of `serve` needs a k6 host).
pub(crate) async fn connect_k6(config: &Config) -> Result<K6Runner, CommandError> {
    if config.k6.is_local() {
        return Err(environment(
            "k6_host is local: k6 runs on this machine for campaigns only; connecting over SSH needs a k6 host"
                .to_string(),
            json!({"k6_host": config.k6.host}),
        ));
    }
    connect_generator(&config.k6).await
}

/// Connects to one k6 host and checks k6 is there.
async fn connect_generator(k6: &K6Host) -> Result<K6Runner, CommandError> {
    let options = RunnerOptions {
        known_hosts_file: k6.known_hosts_file.clone(),
        reconnect_within: k6.reconnect_within,
        ..RunnerOptions::default()
    };
    let target = format!("{}@{}:{}", k6.user, k6.host, k6.port);
    let connect_bound = options.connect_timeout + Duration::from_secs(2);
    let mut runner = match tokio::time::timeout(connect_bound, K6Runner::connect(k6, options)).await
    {
        Ok(Ok(runner)) => runner,
        Ok(Err(e)) => {
            return Err(environment(
                format!("k6 host {target} is unreachable: {e}"),
                json!({"k6_host": k6.host, "k6_port": k6.port}),
            ))
        }
        Err(_) => {
            return Err(environment(
                format!(
                    "k6 host {target} is unreachable: no SSH connection within {} s",
                    connect_bound.as_secs()
                ),
                json!({"k6_host": k6.host, "k6_port": k6.port}),
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
                json!({"k6_host": k6.host}),
            ))
        }
    }
}

fn environment(message: String, context: serde_json::Value) -> CommandError {
    CommandError::Environment { message, context }
}

/// A campaign that could not open its output directory, as the
/// command's error (see [`report::output_failure`]).
fn campaign_error(ctx: &RunContext, error: CampaignError) -> CommandError {
    let CampaignError::Dataset { dir, source } = error;
    report::output_failure(&dir, &source, ctx.output_dir_field)
}
