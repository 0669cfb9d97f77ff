//! The real services behind the campaign traits: k6 over the multiplexed
//! SSH runner or on this machine (`k6_host: local`), Prometheus through the
//! meter, replicas from the gateway.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::config::{Config, FunctionName};
use crate::context::RunContext;
use crate::k6::runner::{K6Job, K6Run, K6Runner, LocalK6Runner, RunnerError};
use crate::k6::script::DEFAULT_REQUEST_TIMEOUT;
use crate::metrics::gateway::GatewayClient;
use crate::metrics::meter::Meter;
use crate::metrics::prometheus::Measured;
use crate::metrics::readings::IterationMetrics;

use super::services::{LoadError, LoadGenerator, LoadJob, LoadRun, Measurements};
use crate::metrics::readings::NodeReading;
use crate::stop::Stop;

/// Time k6 may take beyond its scenario duration before it is stopped:
/// start-up, the graceful stop (request timeout + 1 s) and the summary.
const RUNTIME_MARGIN: Duration = Duration::from_secs(60);

/// What every k6 run of a campaign shares: the workspace's host and run
/// id (the context's), `--out` values and tags.
struct K6Settings<'a> {
    ctx: &'a RunContext,
    outputs: &'a [String],
    tags: BTreeMap<String, String>,
}

impl<'a> K6Settings<'a> {
    /// The standard tags (run_id, component, workload: the plugin's name,
    /// repetition) are merged over `k6_tags`.
    fn new(config: &'a Config, ctx: &'a RunContext) -> Self {
        let mut tags = config.k6.tags.clone();
        tags.insert("run_id".into(), ctx.run_id.clone());
        tags.insert("component".into(), "k6".into());
        tags.insert("workload".into(), config.plugin.name().into());
        tags.insert("repetition".into(), ctx.repetition.to_string());
        K6Settings {
            ctx,
            outputs: &config.k6.outputs,
            tags,
        }
    }

    /// The runner's job for the campaign's `job`: k6 is stopped past its
    /// scenario duration plus the request timeout and a margin.
    fn job<'j>(&'j self, job: &LoadJob<'j>) -> K6Job<'j> {
        K6Job {
            host: &self.ctx.host,
            run_id: &self.ctx.run_id,
            config_id: job.config_id,
            script: job.script,
            outputs: self.outputs,
            tags: &self.tags,
            args: &[],
            max_runtime: job.duration + DEFAULT_REQUEST_TIMEOUT + RUNTIME_MARGIN,
        }
    }
}

/// A runner's answer as the campaign's.
fn load_result(result: Result<K6Run, RunnerError>) -> Result<LoadRun, LoadError> {
    match result {
        Ok(run) => Ok(LoadRun {
            summary: run.summary,
            started_at: run.started_at,
            ended_at: run.ended_at,
            warnings: run.warnings,
        }),
        Err(RunnerError::Interrupted { .. }) => Err(LoadError::Interrupted),
        Err(e @ RunnerError::Unreachable { .. }) => Err(LoadError::Unreachable(e.to_string())),
        Err(e) => Err(LoadError::Failed(e.to_string())),
    }
}

/// k6 on the remote host.
pub(crate) struct RemoteK6<'a> {
    runner: K6Runner,
    settings: K6Settings<'a>,
}

impl<'a> RemoteK6<'a> {
    /// The context's host and run id name the workspace; the standard tags
    /// (run_id, component, workload, repetition) are merged over `k6_tags`.
    pub(crate) fn new(runner: K6Runner, config: &'a Config, ctx: &'a RunContext) -> Self {
        RemoteK6 {
            runner,
            settings: K6Settings::new(config, ctx),
        }
    }

    /// Stops whatever still runs remotely and closes the connection.
    pub(crate) async fn close(self) -> Result<(), RunnerError> {
        self.runner.close().await
    }
}

impl LoadGenerator for RemoteK6<'_> {
    async fn prepare(&mut self, job: LoadJob<'_>, stop: &Stop) {
        let k6_job = self.settings.job(&job);
        // Not prepared: `run` launches the command itself.
        if let Err(e) = self.runner.prepare(&k6_job, stop).await {
            tracing::debug!("preparing the k6 run ahead of the cooldown: {e}");
        }
    }

    async fn run(
        &mut self,
        job: LoadJob<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<LoadRun, LoadError> {
        let k6_job = self.settings.job(&job);
        load_result(self.runner.run(&k6_job, on_line, stop).await)
    }
}

/// k6 on this machine (`k6_host: local`), in the workspaces below the
/// runner's root (`<output dir>/k6`).
pub(crate) struct LocalK6<'a> {
    runner: LocalK6Runner,
    settings: K6Settings<'a>,
}

impl<'a> LocalK6<'a> {
    /// Named and tagged as [`RemoteK6::new`] names and tags its runs.
    pub(crate) fn new(runner: LocalK6Runner, config: &'a Config, ctx: &'a RunContext) -> Self {
        LocalK6 {
            runner,
            settings: K6Settings::new(config, ctx),
        }
    }
}

impl LoadGenerator for LocalK6<'_> {
    async fn run(
        &mut self,
        job: LoadJob<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<LoadRun, LoadError> {
        let k6_job = self.settings.job(&job);
        load_result(self.runner.run(&k6_job, on_line, stop).await)
    }
}

/// The load generator of a run, as the config's `k6_host` says (the SSH
/// runner boxed: it is the bigger by far, and there is one per run).
pub(crate) enum LiveK6<'a> {
    Remote(Box<RemoteK6<'a>>),
    Local(LocalK6<'a>),
}

impl LiveK6<'_> {
    /// Stops whatever still runs and closes the SSH connection, if any (a
    /// local k6 is never left running: its run waits for it).
    pub(crate) async fn close(self) -> Result<(), RunnerError> {
        match self {
            LiveK6::Remote(remote) => (*remote).close().await,
            LiveK6::Local(_) => Ok(()),
        }
    }
}

impl LoadGenerator for LiveK6<'_> {
    async fn run(
        &mut self,
        job: LoadJob<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<LoadRun, LoadError> {
        match self {
            LiveK6::Remote(remote) => remote.run(job, on_line, stop).await,
            LiveK6::Local(local) => local.run(job, on_line, stop).await,
        }
    }
}

/// Prometheus and the gateway. The meter's queries end on `stop` by
/// themselves; gateway requests are raced against it here.
pub(crate) struct LiveMeasurements {
    pub meter: Meter,
    pub gateway: GatewayClient,
    pub stop: Stop,
}

impl Measurements for LiveMeasurements {
    async fn node_snapshot(&self) -> Measured<NodeReading> {
        self.meter.node_snapshot().await
    }

    async fn iteration_metrics(
        &self,
        functions: &[FunctionName],
        start: SystemTime,
        end: SystemTime,
    ) -> Measured<IterationMetrics> {
        self.meter.iteration_metrics(functions, start, end).await
    }

    async fn replicas(&self) -> Result<BTreeMap<String, u64>, String> {
        tokio::select! {
            answer = self.gateway.replicas() => answer.map_err(|e| e.to_string()),
            () = self.stop.stopped() => Err("stopped before the gateway answered".to_string()),
        }
    }
}
