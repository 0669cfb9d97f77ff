//! The campaign loop (SPEC §4): baseline, dominance and index skips,
//! cooldown, k6, summary, replicas, metrics, verdicts, rows.
//!
//! The loop owns ordering and durability: an iteration's files (summary,
//! metrics, window) are written first and its results.csv row last, so a
//! row always has its files; a row that cannot be written takes the
//! iteration's files with it. Every row is flushed before the next step,
//! the index row only after a configuration's last iteration, so a run
//! killed at any instant loses at most the iteration in flight and a rerun
//! resumes where it stopped. It does no I/O of its own beyond the output
//! directory: k6 and measurements come in through the [`services`] traits,
//! what the campaign memory already knows comes in as plain data
//! ([`Campaign::recall`]), progress goes out to observers (the `LB_EVENT`
//! lines, the memory's recorder).

pub mod cooldown;
pub mod live;
pub mod progress;
mod recall;
pub mod row;
pub mod services;
pub mod stop;
pub mod verdict;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::config::{Config, FunctionName};
use crate::k6::{script, summary};
use crate::memory::Known;
use crate::metrics::meter::IterationMetrics;
use crate::output::resume::CompletedIterations;
use crate::output::row::{index_entry, skipped_to_protocol};
use crate::output::{self, artifact, Dataset, IterationRecord, OutputError};
use crate::plan::{ConfigId, ConfigKey, Configuration, OverloadMemory, Plan, SkipReason};
use crate::protocol::{self, MetricsEntry, RunResult, ScriptEntry, SummaryEntry};

use cooldown::CooldownEnd;
use progress::{Observer, Progress};
use recall::{Recalled, Resume};
use services::{LoadError, LoadGenerator, LoadJob, Measurements};
use stop::Stop;
use verdict::NodeReading;

/// Where and as what this run happens (from the request context).
#[derive(Debug, Clone)]
pub struct RunContext {
    pub host: String,
    pub run_id: String,
    pub repetition: u32,
    pub output_dir: PathBuf,
}

/// Why a campaign could not run, or stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The output directory cannot be used or written: files this campaign
    /// must not touch (another header, an unreadable index, a special
    /// file), or the system refused (read-only, full). [`OutputError::fault`]
    /// says which.
    #[error("output directory {dir}: {source}")]
    Dataset {
        dir: PathBuf,
        #[source]
        source: OutputError,
    },
}

/// What a campaign did; the caller turns it into the protocol result.
#[derive(Debug, Default)]
pub struct Outcome {
    pub result: RunResult,
    /// Configurations that failed operationally (cooldown timeout, k6/SSH
    /// error, missing summary metrics).
    pub failed_configs: u32,
    pub interrupted: bool,
    /// The k6 host stopped answering beyond its reconnect bound: why.
    pub generator_lost: Option<String>,
    /// The output failure that stopped the campaign part-way (a full disk):
    /// what finished before it is on disk and in `result`.
    pub stopped_by: Option<CampaignError>,
}

/// Runs the whole campaign: [`Campaign::open`], then [`Campaign::execute`].
pub async fn run<L: LoadGenerator, M: Measurements>(
    config: &Config,
    ctx: &RunContext,
    load: &mut L,
    meter: &M,
    cores: f64,
    observer: &dyn Observer,
    stop: &Stop,
) -> Result<Outcome, CampaignError> {
    Ok(Campaign::open(config, ctx, observer)?
        .execute(load, meter, cores, stop)
        .await)
}

/// One campaign, its output directory open.
pub struct Campaign<'a> {
    config: &'a Config,
    ctx: &'a RunContext,
    observer: &'a dyn Observer,
    cores: f64,
    names: Vec<FunctionName>,
    dataset: Dataset,
    indexed: HashSet<ConfigKey>,
    /// Iterations already in results.csv for configurations not yet indexed
    /// (a run killed mid-configuration).
    partial: HashMap<ConfigKey, CompletedIterations>,
    skipped_before: HashSet<ConfigKey>,
    /// What the campaign memory holds of configurations this output
    /// directory knows nothing of ([`Campaign::recall`]).
    recalled: Recalled,
    memory: OverloadMemory,
    outcome: Outcome,
}

/// How one configuration ended.
enum ConfigEnd {
    Done,
    Failed,
    Interrupted,
    /// The k6 host is gone for good; nothing of this configuration is
    /// recorded as failed (a rerun runs it).
    GeneratorLost(String),
}

impl<'a> Campaign<'a> {
    /// Prepares the output directory (see [`output::location::prepare`]),
    /// opens its tables and reads what earlier runs left there. Sends no
    /// load: every output problem is found here, before the first k6 run.
    pub fn open(
        config: &'a Config,
        ctx: &'a RunContext,
        observer: &'a dyn Observer,
    ) -> Result<Self, CampaignError> {
        let names: Vec<FunctionName> = config.functions.iter().map(|f| f.name.clone()).collect();
        let dataset_err = |source| CampaignError::Dataset {
            dir: ctx.output_dir.clone(),
            source,
        };
        output::location::prepare(&ctx.output_dir).map_err(dataset_err)?;
        let (dataset, torn) = Dataset::open(&ctx.output_dir, &names).map_err(dataset_err)?;
        for line in torn {
            observer.observe(&Progress::Warning(&line.to_string()));
        }
        let indexed: HashSet<ConfigKey> = dataset
            .read_index()
            .map_err(dataset_err)?
            .indexed()
            .iter()
            .cloned()
            .collect();
        let completed = dataset.completed_iterations().map_err(dataset_err)?;
        let skipped_before = dataset.skipped_keys().map_err(dataset_err)?;
        // Rebuild the overload memory from what earlier runs measured, so
        // a rerun skips the same dominated configurations.
        let mut memory = OverloadMemory::new();
        let mut partial = HashMap::new();
        for (key, done) in completed {
            if indexed.contains(&key) {
                if verdict::config_overloaded(done.overloaded, done.rows) {
                    if let Some(config) = configuration_of(&key) {
                        memory.remember(&config);
                    }
                }
            } else {
                partial.insert(key, done);
            }
        }
        let mut outcome = Outcome::default();
        outcome.result.dfaas_functions = names.iter().map(|n| n.to_string()).collect();
        Ok(Campaign {
            config,
            ctx,
            observer,
            cores: f64::NAN,
            names,
            dataset,
            indexed,
            partial,
            skipped_before,
            recalled: Recalled::default(),
            memory,
            outcome,
        })
    }

    /// Takes what the campaign memory knows (`memory.skip_known`): the
    /// iterations of each configuration measured with this campaign's
    /// duration and queries. Configurations known in full are skipped as
    /// `already_in_memory` (their overloads count for dominance), those
    /// known in part run only their missing iterations; this output
    /// directory's own index and rows win (see [`recall`]). Returns how
    /// many configurations are known in full and in part.
    pub fn recall(&mut self, known: HashMap<ConfigKey, Known>) -> (usize, usize) {
        self.recalled = Recalled::fold(
            known,
            &self.indexed,
            &self.partial,
            self.config.iterations,
            &mut self.memory,
        );
        self.recalled.counts()
    }

    /// Runs the plan on a node of `cores` cores. An output failure on the
    /// way (a full disk) stops the campaign: it is in
    /// [`Outcome::stopped_by`], with everything finished before it.
    pub async fn execute<L: LoadGenerator, M: Measurements>(
        mut self,
        load: &mut L,
        meter: &M,
        cores: f64,
        stop: &Stop,
    ) -> Outcome {
        self.cores = cores;
        let baseline = meter.node_snapshot().await;
        if stop.is_stopped() {
            self.outcome.interrupted = true;
            self.finish();
            return self.outcome;
        }
        self.warn_all(baseline.warnings);
        let baseline = baseline.value;
        self.observer.observe(&Progress::Baseline {
            reading: &baseline,
            cores: self.cores,
        });
        let plan = Plan::new(self.config);
        for configuration in plan.iter() {
            if stop.is_stopped() {
                self.outcome.interrupted = true;
                break;
            }
            let step = match self.skip_reason(&configuration) {
                Some(reason) => self.skip(&configuration, reason).map(|()| ConfigEnd::Done),
                None => {
                    self.run_configuration(&configuration, &baseline, load, meter, stop)
                        .await
                }
            };
            match step {
                Ok(ConfigEnd::Done) => {}
                Ok(ConfigEnd::Failed) => self.outcome.failed_configs += 1,
                Ok(ConfigEnd::Interrupted) => {
                    self.outcome.interrupted = true;
                    break;
                }
                Ok(ConfigEnd::GeneratorLost(reason)) => {
                    self.outcome.generator_lost = Some(reason);
                    break;
                }
                Err(error) => {
                    self.observer
                        .observe(&Progress::OutputFailed(&error.to_string()));
                    self.outcome.stopped_by = Some(error);
                    break;
                }
            }
        }
        self.finish();
        self.outcome
    }

    fn skip_reason(&self, configuration: &Configuration) -> Option<SkipReason> {
        if self.memory.dominates_any(configuration) {
            Some(SkipReason::DominatedByOverload)
        } else if self.indexed.contains(&configuration.key()) {
            Some(SkipReason::AlreadyIndexed)
        } else if self.recalled.is_complete(&configuration.key()) {
            Some(SkipReason::AlreadyInMemory)
        } else if self.config.overload.skip_predicted
            && self.memory.predicts_overload(configuration)
        {
            Some(SkipReason::PredictedOverload)
        } else {
            None
        }
    }

    /// Records a skip: an event, the protocol row, and a skipped.csv row
    /// for configurations skipped as overloaded, dominated or predicted
    /// (not already there from an earlier run). Those measured before
    /// (indexed, in memory) are not skipped.csv's business.
    fn skip(
        &mut self,
        configuration: &Configuration,
        reason: SkipReason,
    ) -> Result<(), CampaignError> {
        let id = configuration.config_id();
        self.observer.observe(&Progress::ConfigSkipped {
            id: &id,
            configuration,
            reason,
        });
        match reason {
            SkipReason::DominatedByOverload | SkipReason::PredictedOverload => {
                self.append_skipped(configuration)?;
            }
            SkipReason::AlreadyIndexed | SkipReason::AlreadyInMemory => {
                self.push_skipped_row(configuration);
            }
        }
        Ok(())
    }

    fn append_skipped(&mut self, configuration: &Configuration) -> Result<(), CampaignError> {
        let key = configuration.key();
        if self.skipped_before.insert(key) {
            self.dataset
                .append_skipped(configuration)
                .map_err(|source| self.dataset_error(source))?;
        }
        self.push_skipped_row(configuration);
        Ok(())
    }

    fn push_skipped_row(&mut self, configuration: &Configuration) {
        if let Ok(row) = skipped_to_protocol(configuration, &self.names) {
            self.outcome.result.dfaas_skipped.push(row);
        }
    }

    async fn run_configuration<L: LoadGenerator, M: Measurements>(
        &mut self,
        configuration: &Configuration,
        baseline: &NodeReading,
        load: &mut L,
        meter: &M,
        stop: &Stop,
    ) -> Result<ConfigEnd, CampaignError> {
        let id = configuration.config_id();
        let key = configuration.key();
        let iterations = self.config.iterations;
        let resume = Resume::of(
            self.partial.remove(&key),
            self.recalled.take_partial(&key),
            iterations,
        );
        let pairs: Vec<(FunctionName, u64)> =
            configuration.pairs().map(|(f, r)| (f.clone(), r)).collect();
        let script = script::render(&script::ScriptInput {
            gateway_url: &self.config.gateway_url,
            duration_text: &self.config.duration_text,
            duration: self.config.duration,
            functions: &self.config.functions,
            pairs: &pairs,
            request_timeout: script::DEFAULT_REQUEST_TIMEOUT,
        });
        let script_path = artifact::write_script(self.dataset.dir(), &id, &script)
            .map_err(|source| self.dataset_error(source))?;
        self.artifact(script_path);
        self.outcome.result.dfaas_scripts.push(ScriptEntry {
            config_id: id.to_string(),
            script: script.clone(),
        });
        self.observer.observe(&Progress::ConfigStarted {
            id: &id,
            configuration,
            resumed_after: resume.done,
        });
        let mut overloaded = resume.overloaded;
        for iteration in resume.to_run {
            let step = self
                .run_iteration(
                    configuration,
                    &id,
                    iteration,
                    &pairs,
                    &script,
                    baseline,
                    load,
                    meter,
                    stop,
                )
                .await?;
            match step {
                IterationEnd::Row { overloaded: o } => overloaded += u32::from(o),
                IterationEnd::Failed(reason) => {
                    self.observer.observe(&Progress::ConfigFailed {
                        id: &id,
                        configuration,
                        iteration,
                        reason: &reason,
                    });
                    self.append_skipped(configuration)?;
                    return Ok(ConfigEnd::Failed);
                }
                IterationEnd::Interrupted => return Ok(ConfigEnd::Interrupted),
                IterationEnd::GeneratorLost(reason) => {
                    self.observer.observe(&Progress::GeneratorLost {
                        id: &id,
                        iteration,
                        reason: &reason,
                    });
                    return Ok(ConfigEnd::GeneratorLost(reason));
                }
            }
        }
        self.dataset
            .append_index(&key)
            .map_err(|source| self.dataset_error(source))?;
        self.outcome.result.dfaas_index.push(index_entry(&key));
        if self.skipped_before.remove(&key) {
            // Failed in an earlier run, complete now: no longer skipped.
            self.dataset
                .remove_skipped(configuration)
                .map_err(|source| self.dataset_error(source))?;
        }
        self.indexed.insert(key);
        if verdict::config_overloaded(overloaded, iterations) {
            self.memory.remember(configuration);
            self.observer.observe(&Progress::ConfigOverloaded {
                id: &id,
                overloaded,
                iterations,
            });
        }
        self.observer.observe(&Progress::ConfigFinished { id: &id });
        Ok(ConfigEnd::Done)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_iteration<L: LoadGenerator, M: Measurements>(
        &mut self,
        configuration: &Configuration,
        id: &ConfigId,
        iteration: u32,
        pairs: &[(FunctionName, u64)],
        script: &str,
        baseline: &NodeReading,
        load: &mut L,
        meter: &M,
        stop: &Stop,
    ) -> Result<IterationEnd, CampaignError> {
        let mut warnings = Vec::new();
        let end = cooldown::wait_for_idle(
            meter,
            baseline,
            &self.names,
            &self.config.cooldown,
            stop,
            &mut |w| warnings.push(w),
        )
        .await;
        self.warn_all(warnings);
        let (idle, rest_seconds) = match end {
            CooldownEnd::Idle { snapshot, rest_seconds } => (snapshot, rest_seconds),
            CooldownEnd::Interrupted => return Ok(IterationEnd::Interrupted),
            CooldownEnd::TimedOut { waited_seconds, last, replicas } => {
                return Ok(IterationEnd::Failed(format!(
                    "cooldown timeout after {waited_seconds} s (max {} s): cpu {:.3} vs baseline {:.3}, ram {:.0} vs {:.0}, replicas {:?}",
                    self.config.cooldown.max_wait.as_secs(),
                    last.cpu_pct,
                    baseline.cpu_pct,
                    last.ram_bytes,
                    baseline.ram_bytes,
                    replicas
                )))
            }
        };
        self.observer.observe(&Progress::IterationStarted {
            id,
            iteration,
            iterations: self.config.iterations,
            rest_seconds,
        });
        let job = LoadJob {
            config_id: id.as_str(),
            iteration,
            script,
            duration: self.config.duration,
        };
        let observer = self.observer;
        let mut on_line = move |line: &str| observer.observe(&Progress::K6Line(line));
        let run = match load.run(job, &mut on_line, stop).await {
            Ok(run) => run,
            Err(LoadError::Interrupted) => return Ok(IterationEnd::Interrupted),
            Err(LoadError::Failed(reason)) => return Ok(IterationEnd::Failed(reason)),
            Err(LoadError::Unreachable(reason)) => return Ok(IterationEnd::GeneratorLost(reason)),
        };
        self.warn_all(run.warnings.clone());
        let (k6_started_at, k6_ended_at) = (run.started_at, run.ended_at);
        let outcomes = match summary::parse(&run.summary, pairs, self.config.duration) {
            Ok(outcomes) => outcomes,
            Err(e) => return Ok(IterationEnd::Failed(format!("k6 summary: {e}"))),
        };
        let replicas = match meter.replicas().await {
            Ok(replicas) => {
                let unlisted: Vec<&str> = configuration
                    .functions()
                    .iter()
                    .map(FunctionName::as_str)
                    .filter(|f| !replicas.contains_key(*f))
                    .collect();
                if !unlisted.is_empty() {
                    self.observer.observe(&Progress::Warning(&format!(
                        "config {id} iteration {iteration}: the gateway does not list {}: replicas recorded as nan",
                        unlisted.join(", ")
                    )));
                }
                replicas
            }
            Err(_) if stop.is_stopped() => return Ok(IterationEnd::Interrupted),
            Err(reason) => {
                self.observer.observe(&Progress::Warning(&format!(
                    "config {id} iteration {iteration}: replicas unknown, recorded as nan: {reason}"
                )));
                BTreeMap::new()
            }
        };
        let metrics = meter
            .iteration_metrics(configuration.functions(), run.started_at, run.ended_at)
            .await;
        // A stop cut the queries short: this iteration writes no row (a
        // rerun measures it again) rather than one with readings missing.
        if stop.is_stopped() {
            return Ok(IterationEnd::Interrupted);
        }
        self.warn_all(metrics.warnings);
        let metrics = metrics.value;
        let row = row::build_row(
            &row::IterationMeasures {
                outcomes: &outcomes,
                replicas: &replicas,
                metrics: &metrics,
                idle: &idle,
                rest_seconds,
                cores: self.cores,
            },
            &self.config.overload,
        );
        let node_overloaded = row.node.overloaded;
        self.record_iteration(id, iteration, &row, run.summary, &metrics)?;
        if let Some(entry) = self.outcome.result.dfaas_summaries.last() {
            self.observer.observe(&Progress::IterationFinished {
                id,
                configuration,
                iteration,
                row: &row,
                metrics: &metrics,
                summary: &entry.summary,
                started_at: k6_started_at,
                ended_at: k6_ended_at,
            });
        }
        if node_overloaded {
            self.observer
                .observe(&Progress::IterationOverloaded { id, iteration });
        }
        Ok(IterationEnd::Row {
            overloaded: node_overloaded,
        })
    }

    /// Writes a finished iteration, files and row together or not at all
    /// (see [`Dataset::append_iteration`]), and its protocol entries.
    fn record_iteration(
        &mut self,
        id: &ConfigId,
        iteration: u32,
        row: &output::ResultRow,
        summary: serde_json::Value,
        metrics: &IterationMetrics,
    ) -> Result<(), CampaignError> {
        let repetition = self.ctx.repetition;
        let metrics_row = row::metrics_row(metrics);
        let files = self
            .dataset
            .append_iteration(&IterationRecord {
                config_id: id,
                iteration,
                repetition,
                summary: &summary,
                metrics: &metrics_row,
                row,
            })
            .map_err(|source| self.dataset_error(source))?;
        self.artifact(files.summary);
        self.artifact(files.metrics);
        if let Some(window) = files.window {
            self.artifact(window);
        }
        if let Ok(json) = row.to_protocol(&self.names) {
            self.outcome.result.dfaas_results.push(json);
        }
        self.outcome.result.dfaas_summaries.push(SummaryEntry {
            config_id: id.to_string(),
            iteration,
            summary,
        });
        self.outcome.result.dfaas_metrics.push(MetricsEntry {
            config_id: id.to_string(),
            iteration,
            metrics: metrics_row.to_json(),
        });
        Ok(())
    }

    fn artifact(&mut self, path: PathBuf) {
        let text = path.display().to_string();
        if !self.outcome.result.artifacts.contains(&text) {
            self.outcome.result.artifacts.push(text);
        }
    }

    fn warn_all(&self, warnings: Vec<String>) {
        for warning in warnings {
            tracing::warn!("{warning}");
            self.observer.observe(&Progress::Warning(&warning));
        }
    }

    fn dataset_error(&self, source: OutputError) -> CampaignError {
        CampaignError::Dataset {
            dir: self.ctx.output_dir.clone(),
            source,
        }
    }

    fn finish(&mut self) {
        for path in [
            self.dataset.results_path().to_path_buf(),
            self.dataset.skipped_path().to_path_buf(),
            self.dataset.index_path().to_path_buf(),
        ] {
            self.artifact(path);
        }
        let result = &mut self.outcome.result;
        result.interrupted = self.outcome.interrupted;
        let code = if let Some(CampaignError::Dataset { source, .. }) = &self.outcome.stopped_by {
            match source.fault() {
                output::Fault::Location => protocol::exit::INVALID_INPUT,
                output::Fault::Environment => protocol::exit::ENVIRONMENT,
                output::Fault::Internal => protocol::exit::CONFIG_FAILED,
            }
        } else if self.outcome.interrupted {
            protocol::exit::INTERRUPTED
        } else if self.outcome.generator_lost.is_some() {
            protocol::exit::ENVIRONMENT
        } else if self.outcome.failed_configs > 0 {
            protocol::exit::CONFIG_FAILED
        } else {
            protocol::exit::OK
        };
        result.returncode = i32::from(code);
        result.success = code == protocol::exit::OK;
    }
}

/// How one iteration ended.
enum IterationEnd {
    Row { overloaded: bool },
    Failed(String),
    GeneratorLost(String),
    Interrupted,
}

/// The configuration an index key names (`None` for names that are not
/// valid function names, which no configuration of ours can have).
fn configuration_of(key: &ConfigKey) -> Option<Configuration> {
    let pairs: Option<Vec<(FunctionName, u64)>> = key
        .functions()
        .iter()
        .zip(key.rates())
        .map(|(f, r)| FunctionName::parse(f).ok().map(|n| (n, *r)))
        .collect();
    Configuration::from_pairs(pairs?).ok()
}

/// `env=0, figlet=10` for messages.
#[cfg(test)]
mod tests;
