//! What the campaign loop needs from the outside world, as two small
//! traits: a load generator (k6 on the k6 host, or here) and a measurement
//! source (Prometheus + the gateway). The loop takes them as parameters so
//! unit tests can drive it with in-memory fakes; `run` wires the real ones.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::config::FunctionName;
use crate::metrics::prometheus::Measured;
use crate::metrics::readings::IterationMetrics;

use crate::metrics::readings::NodeReading;
use crate::stop::Stop;

/// One k6 run to perform.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadJob<'a> {
    pub config_id: &'a str,
    pub script: &'a str,
    /// k6's scenario duration (the run itself takes a little longer).
    pub duration: Duration,
}

/// A finished k6 run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadRun {
    /// What each generator ran and measured of itself, in the configured
    /// order (one part for one generator).
    pub parts: Vec<GeneratorPart>,
    /// The earliest start and the latest end over the generators.
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    /// Things worth telling the user (e.g. k6 exit 99 with a summary).
    pub warnings: Vec<String>,
}

/// One generator's share of a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GeneratorPart {
    /// The generator, as messages name it (`host:port`, `local`).
    pub generator: String,
    /// k6's execution segment (`None`: the whole test).
    pub segment: Option<String>,
    /// Its k6's `--summary-export` document.
    pub summary: serde_json::Value,
    /// Its CPU use over the k6 window (`None`: not measured).
    pub cpu: Option<crate::k6::runner::GeneratorCpu>,
}

/// Why a k6 run produced no usable summary.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum LoadError {
    /// Stopped on request (signal or stop file).
    #[error("interrupted")]
    Interrupted,
    /// The run failed (SSH, k6 exit code, missing summary); the message
    /// carries the remote details.
    #[error("{0}")]
    Failed(String),
    /// The load generator stopped answering and did not come back within
    /// its reconnect bound: the campaign cannot go on.
    #[error("{0}")]
    Unreachable(String),
}

/// Runs k6 scripts.
pub(crate) trait LoadGenerator {
    /// Gets `job` ready to start at once (called before the cooldown, so
    /// that the remote command's launch is off the critical path). A
    /// failure here is not reported: [`LoadGenerator::run`] starts the job
    /// itself then.
    fn prepare(&mut self, job: LoadJob<'_>, stop: &Stop) -> impl Future<Output = ()> {
        let _ = (job, stop);
        async {}
    }

    /// Runs `job`, handing every k6 output line to `on_line` while it runs;
    /// returns early with [`LoadError::Interrupted`] once `stop` fires,
    /// after the remote k6 is gone.
    fn run(
        &mut self,
        job: LoadJob<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> impl Future<Output = Result<LoadRun, LoadError>>;
}

/// Reads node and function measurements. Failed readings are NaN plus a
/// warning, never an error: only replicas can fail, and the loop decides.
pub(crate) trait Measurements {
    /// The node right now (instant queries).
    fn node_snapshot(&self) -> impl Future<Output = Measured<NodeReading>>;

    /// Averages over `[start, end]` for the node and `functions`.
    fn iteration_metrics(
        &self,
        functions: &[FunctionName],
        start: SystemTime,
        end: SystemTime,
    ) -> impl Future<Output = Measured<IterationMetrics>>;

    /// Replica counts by function name, from the gateway.
    fn replicas(&self) -> impl Future<Output = Result<BTreeMap<String, u64>, String>>;
}
