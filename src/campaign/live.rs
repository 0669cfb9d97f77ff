//! The real services behind the campaign traits: k6 over the multiplexed
//! SSH runner or on this machine (`k6_host: local`), Prometheus through the
//! meter, replicas from the gateway.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::config::{Config, FunctionName};
use crate::context::RunContext;
use crate::k6::runner::{K6Job, K6Runner, LocalK6Runner, RunnerError};
use crate::k6::script::DEFAULT_REQUEST_TIMEOUT;
use crate::metrics::gateway::GatewayClient;
use crate::metrics::meter::Meter;
use crate::metrics::prometheus::Measured;
use crate::metrics::readings::IterationMetrics;

use futures_util::future::join_all;

use super::services::{GeneratorPart, LoadError, LoadGenerator, LoadJob, LoadRun, Measurements};
use crate::k6::merge::{segments, Segment};
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
    /// `args`: further k6 arguments (a generator's execution segment).
    fn job<'j>(&'j self, job: &LoadJob<'j>, args: &'j [String]) -> K6Job<'j> {
        K6Job {
            host: &self.ctx.host,
            run_id: &self.ctx.run_id,
            config_id: job.config_id,
            script: job.script,
            outputs: self.outputs,
            tags: &self.tags,
            args,
            max_runtime: job.duration + DEFAULT_REQUEST_TIMEOUT + RUNTIME_MARGIN,
        }
    }
}

/// One load generator of a run: its SSH runner and its share of the load.
struct Generator {
    /// `host:port`, as messages name it.
    name: String,
    runner: K6Runner,
    /// k6's execution segment (`None`: the whole test).
    segment: Option<Segment>,
    /// The segment as k6 arguments.
    args: Vec<String>,
}

/// k6 on one or several remote hosts. With several, each runs the same
/// script with its execution segment and the whole sequence (k6 splits
/// every scenario's arrivals itself), all started during the cooldown,
/// paused, and resumed together; the first that fails stops the others.
pub(crate) struct RemoteK6<'a> {
    generators: Vec<Generator>,
    settings: K6Settings<'a>,
}

impl<'a> RemoteK6<'a> {
    /// `runners`: the connected generators with their names, in the
    /// configured order. The context's host and run id name the
    /// workspaces; the standard tags (run_id, component, workload,
    /// repetition) are merged over `k6_tags`.
    pub(crate) fn new(
        runners: Vec<(String, K6Runner)>,
        config: &'a Config,
        ctx: &'a RunContext,
    ) -> Self {
        let segments = segments(runners.len());
        let generators = runners
            .into_iter()
            .zip(segments)
            .map(|((name, runner), segment)| {
                let args = segment
                    .as_ref()
                    .map(|s| {
                        vec![
                            "--execution-segment".to_string(),
                            s.segment.clone(),
                            "--execution-segment-sequence".to_string(),
                            s.sequence.clone(),
                        ]
                    })
                    .unwrap_or_default();
                Generator {
                    name,
                    runner,
                    segment,
                    args,
                }
            })
            .collect();
        RemoteK6 {
            generators,
            settings: K6Settings::new(config, ctx),
        }
    }

    /// Stops whatever still runs remotely and closes every connection.
    pub(crate) async fn close(self) -> Result<(), RunnerError> {
        let closed = join_all(self.generators.into_iter().map(|g| g.runner.close())).await;
        closed.into_iter().collect()
    }
}

impl LoadGenerator for RemoteK6<'_> {
    async fn prepare(&mut self, job: LoadJob<'_>, stop: &Stop) {
        let settings = &self.settings;
        join_all(self.generators.iter_mut().map(|g| async {
            let k6_job = settings.job(&job, &g.args);
            // Not prepared: `run` launches the command itself.
            if let Err(e) = g.runner.prepare(&k6_job, stop).await {
                tracing::debug!(
                    "preparing the k6 run on {} ahead of the cooldown: {e}",
                    g.name
                );
            }
        }))
        .await;
    }

    async fn run(
        &mut self,
        job: LoadJob<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<LoadRun, LoadError> {
        let several = self.generators.len() > 1;
        // The generators' own stop: the campaign's, or a generator failing.
        let (stop_all, generators_stop) = Stop::new();
        let (finished, all_finished) = Stop::new();
        let lines = std::sync::Mutex::new(on_line);
        let settings = &self.settings;
        let runs = self.generators.iter_mut().map(|g| {
            let Generator {
                name,
                runner,
                segment,
                args,
            } = g;
            let stop_all = stop_all.clone();
            let generators_stop = generators_stop.clone();
            let lines = &lines;
            let job = settings.job(&job, args.as_slice());
            async move {
                let mut on_line = |line: &str| {
                    if let Ok(mut on_line) = lines.lock() {
                        if several {
                            on_line(&format!("[{name}] {line}"));
                        } else {
                            on_line(line);
                        }
                    }
                };
                let result = runner.run(&job, &mut on_line, &generators_stop).await;
                if result.is_err() {
                    stop_all.stop();
                }
                (
                    name.clone(),
                    segment.as_ref().map(|s| s.segment.clone()),
                    result,
                )
            }
        });
        let (results, ()) = tokio::join!(
            async {
                let results = join_all(runs).await;
                finished.stop();
                results
            },
            async {
                tokio::select! {
                    () = stop.stopped() => stop_all.stop(),
                    () = all_finished.stopped() => {}
                }
            }
        );
        if stop.is_stopped() {
            return Err(LoadError::Interrupted);
        }
        let mut parts = Vec::new();
        let mut warnings = Vec::new();
        let mut failure = None;
        for (name, segment, result) in results {
            match result {
                Ok(run) => {
                    warnings.extend(run.warnings.into_iter().map(|w| {
                        if several {
                            format!("generator {name}: {w}")
                        } else {
                            w
                        }
                    }));
                    parts.push((
                        run.started_at,
                        run.ended_at,
                        GeneratorPart {
                            generator: name,
                            segment,
                            summary: run.summary,
                            cpu: run.generator_cpu,
                        },
                    ));
                }
                // Stopped because another generator failed.
                Err(RunnerError::Interrupted { .. }) => {}
                Err(e) => {
                    failure.get_or_insert((name, e));
                }
            }
        }
        match failure {
            Some((_, e @ RunnerError::Unreachable { .. })) if !several => {
                Err(LoadError::Unreachable(e.to_string()))
            }
            Some((name, e)) if several => Err(LoadError::Failed(format!("generator {name}: {e}"))),
            Some((_, e)) => Err(LoadError::Failed(e.to_string())),
            None => load_run(parts, warnings).ok_or(LoadError::Interrupted),
        }
    }
}

/// The run of every generator's part (`None`: no part).
fn load_run(
    parts: Vec<(SystemTime, SystemTime, GeneratorPart)>,
    warnings: Vec<String>,
) -> Option<LoadRun> {
    let started_at = parts.iter().map(|(start, _, _)| *start).min()?;
    let ended_at = parts.iter().map(|(_, end, _)| *end).max()?;
    Some(LoadRun {
        parts: parts.into_iter().map(|(_, _, part)| part).collect(),
        started_at,
        ended_at,
        warnings,
    })
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
        let k6_job = self.settings.job(&job, &[]);
        match self.runner.run(&k6_job, on_line, stop).await {
            Ok(run) => Ok(LoadRun {
                parts: vec![GeneratorPart {
                    generator: crate::config::LOCAL_K6_HOST.to_string(),
                    segment: None,
                    summary: run.summary,
                    cpu: run.generator_cpu,
                }],
                started_at: run.started_at,
                ended_at: run.ended_at,
                warnings: run.warnings,
            }),
            Err(RunnerError::Interrupted { .. }) => Err(LoadError::Interrupted),
            Err(e) => Err(LoadError::Failed(e.to_string())),
        }
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
    async fn prepare(&mut self, job: LoadJob<'_>, stop: &Stop) {
        if let LiveK6::Remote(remote) = self {
            remote.prepare(job, stop).await;
        }
    }

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
