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
//! directory: k6 and measurements come in through the [`services`] traits
//! ([`Services`], owned by the campaign while it runs), progress goes out
//! as typed [`progress::Progress`] values to the observers it is given
//! (the `LB_EVENT` stream and the campaign memory's recorder are two);
//! what the memory already knows comes in as plain data
//! ([`Campaign::recall`]). It returns an [`Outcome`] — what it
//! recorded and how it ended ([`RunEnd`]) — and leaves the result
//! document and the exit code to [`crate::report::run_report`].

pub mod cooldown;
mod generators;
pub mod live;
pub mod progress;
mod recall;
pub mod row;
pub mod services;
pub mod verdict;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::config::{Config, FunctionName};
use crate::context::RunContext;
use crate::k6::script;
use crate::memory::Known;
use crate::metrics::readings::{IterationMetrics, NodeReading};
use crate::output::resume::CompletedIterations;
use crate::output::row::{index_entry, skipped_to_protocol};
use crate::output::{self, artifact, Dataset, IterationRecord, OutputError};
use crate::plan::{ConfigId, ConfigKey, Configuration, OverloadMemory, Plan, SkipReason};
use crate::protocol::{MetricsEntry, RunData, ScriptEntry, SummaryEntry};

use crate::stop::Stop;
use cooldown::CooldownEnd;
use progress::{Observer, Progress};
use recall::{Recalled, Resume};
use services::{LoadError, LoadGenerator, LoadJob, Measurements};

/// Why a campaign could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CampaignError {
    /// The output directory cannot be used or written: files this campaign
    /// must not touch (another header, an unreadable index, a special
    /// file), or the system refused (read-only, full). [`OutputError::fault`]
    /// says which.
    #[error("output directory {}: {source}", dir.display())]
    Dataset {
        dir: PathBuf,
        #[source]
        source: OutputError,
    },
}

/// What a campaign did: what it recorded and how it ended.
/// [`crate::report::run_report`] turns it into `run`'s result document.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub data: RunData,
    pub end: RunEnd,
}

/// How a campaign ended.
#[derive(Debug, Default)]
pub(crate) enum RunEnd {
    /// Every configuration ran or was skipped.
    #[default]
    Completed,
    /// The run went on to the end, but this many configurations failed
    /// operationally (cooldown timeout, k6/SSH error, missing summary
    /// metrics) and are in skipped.csv.
    ConfigurationsFailed(u32),
    /// Stopped by a signal or the stop file; what finished is on disk.
    Interrupted { output_dir: PathBuf },
    /// The k6 host stopped answering beyond its reconnect bound.
    GeneratorLost {
        reason: String,
        k6_host: String,
        output_dir: PathBuf,
    },
    /// An output failure stopped the campaign part-way (a full disk);
    /// what finished before it is on disk and in the data. `field` names
    /// where the output directory came from.
    OutputFailed {
        dir: PathBuf,
        source: OutputError,
        field: &'static str,
    },
}

/// What the campaign uses from the outside world.
pub(crate) struct Services<'s, L, M> {
    pub load: &'s mut L,
    pub meter: &'s M,
    pub stop: &'s Stop,
}

#[cfg(test)]
/// Runs the whole campaign: [`Campaign::open`], then [`Campaign::execute`].
pub(crate) async fn run<L: LoadGenerator, M: Measurements>(
    config: &Config,
    ctx: &RunContext,
    observer: &dyn Observer,
    services: Services<'_, L, M>,
    cores: f64,
) -> Result<Outcome, CampaignError> {
    Ok(Campaign::open(config, ctx, observer)?
        .execute(services, cores)
        .await)
}

/// One campaign, its output directory open.
pub(crate) struct Campaign<'a> {
    config: &'a Config,
    ctx: &'a RunContext,
    observer: &'a dyn Observer,
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
    data: RunData,
    failed_configs: u32,
}

/// A campaign at work: the open campaign with its services, the node's
/// size and the idle baseline.
struct Running<'a, 's, L, M> {
    campaign: Campaign<'a>,
    load: &'s mut L,
    meter: &'s M,
    stop: &'s Stop,
    cores: f64,
    baseline: NodeReading,
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
    pub(crate) fn open(
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
        let data = RunData {
            dfaas_functions: names.iter().map(|n| n.to_string()).collect(),
            ..RunData::default()
        };
        Ok(Campaign {
            config,
            ctx,
            observer,
            names,
            dataset,
            indexed,
            partial,
            skipped_before,
            recalled: Recalled::default(),
            memory,
            data,
            failed_configs: 0,
        })
    }

    /// Takes what the campaign memory knows (`memory.skip_known`): the
    /// iterations of each configuration measured with this campaign's
    /// duration and queries. Configurations known in full are skipped as
    /// `already_in_memory` (their overloads count for dominance), those
    /// known in part run only their missing iterations; this output
    /// directory's own index and rows win (see [`recall`]). Returns how
    /// many configurations are known in full and in part.
    pub(crate) fn recall(&mut self, known: HashMap<ConfigKey, Known>) -> (usize, usize) {
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
    /// way (a full disk) stops the campaign: the outcome ends in
    /// [`RunEnd::OutputFailed`], with everything finished before it.
    pub(crate) async fn execute<L: LoadGenerator, M: Measurements>(
        self,
        services: Services<'_, L, M>,
        cores: f64,
    ) -> Outcome {
        let baseline = services.meter.node_snapshot().await;
        if services.stop.is_stopped() {
            let output_dir = self.ctx.output_dir.clone();
            return self.finish(RunEnd::Interrupted { output_dir });
        }
        self.warn_all(baseline.warnings);
        let baseline = baseline.value;
        self.observer.observe(&Progress::Baseline {
            reading: &baseline,
            cores,
        });
        let mut running = Running {
            campaign: self,
            load: services.load,
            meter: services.meter,
            stop: services.stop,
            cores,
            baseline,
        };
        let end = running.run_plan().await;
        running.campaign.finish(end)
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
            self.data.dfaas_skipped.push(row);
        }
    }

    /// A configuration whose iterations all finished: its index row, out
    /// of skipped.csv if an earlier run failed it, and remembered when
    /// overloaded in most iterations.
    fn configuration_done(
        &mut self,
        configuration: &Configuration,
        id: &ConfigId,
        overloaded: u32,
    ) -> Result<(), CampaignError> {
        let key = configuration.key();
        self.dataset
            .append_index(&key)
            .map_err(|source| self.dataset_error(source))?;
        self.data.dfaas_index.push(index_entry(&key));
        if self.skipped_before.remove(&key) {
            // Failed in an earlier run, complete now: no longer skipped.
            self.dataset
                .remove_skipped(configuration)
                .map_err(|source| self.dataset_error(source))?;
        }
        self.indexed.insert(key);
        if verdict::config_overloaded(overloaded, self.config.iterations) {
            self.memory.remember(configuration);
            self.observer.observe(&Progress::ConfigOverloaded {
                id,
                overloaded,
                iterations: self.config.iterations,
            });
        }
        self.observer.observe(&Progress::ConfigFinished { id });
        Ok(())
    }

    /// Renders a configuration's k6 script and keeps it as an artifact.
    fn write_script(
        &mut self,
        id: &ConfigId,
        pairs: &[(FunctionName, u64)],
    ) -> Result<String, CampaignError> {
        let script = script::for_campaign(self.config, pairs);
        let script_path = artifact::write_script(self.dataset.dir(), id, &script)
            .map_err(|source| self.dataset_error(source))?;
        self.artifact(script_path);
        self.data.dfaas_scripts.push(ScriptEntry {
            config_id: id.to_string(),
            script: script.clone(),
        });
        Ok(script)
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
        generators: &serde_json::Value,
    ) -> Result<(), CampaignError> {
        let repetition = self.ctx.repetition;
        let files = self
            .dataset
            .append_iteration(&IterationRecord {
                config_id: id,
                iteration,
                repetition,
                summary: &summary,
                metrics,
                generators: Some(generators),
                row,
            })
            .map_err(|source| self.dataset_error(source))?;
        self.artifact(files.summary);
        self.artifact(files.metrics);
        for extra in [files.window, files.generators].into_iter().flatten() {
            self.artifact(extra);
        }
        if let Ok(json) = row.to_protocol(&self.names) {
            self.data.dfaas_results.push(json);
        }
        self.data.dfaas_summaries.push(SummaryEntry {
            config_id: id.to_string(),
            iteration,
            summary,
        });
        let mut metrics = metrics.to_json();
        if let Some(entry) = metrics.as_object_mut() {
            entry.insert("generators".to_string(), generators.clone());
        }
        self.data.dfaas_metrics.push(MetricsEntry {
            config_id: id.to_string(),
            iteration,
            metrics,
        });
        Ok(())
    }

    fn artifact(&mut self, path: PathBuf) {
        let text = path.display().to_string();
        if !self.data.artifacts.contains(&text) {
            self.data.artifacts.push(text);
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

    /// The outcome: the data with the dataset's tables listed, and how the
    /// run ended (`end`, or the configurations that failed on the way).
    fn finish(mut self, end: RunEnd) -> Outcome {
        for path in [
            self.dataset.results_path().to_path_buf(),
            self.dataset.skipped_path().to_path_buf(),
            self.dataset.index_path().to_path_buf(),
        ] {
            self.artifact(path);
        }
        let end = match end {
            RunEnd::Completed if self.failed_configs > 0 => {
                RunEnd::ConfigurationsFailed(self.failed_configs)
            }
            end => end,
        };
        Outcome {
            data: self.data,
            end,
        }
    }
}

impl<L: LoadGenerator, M: Measurements> Running<'_, '_, L, M> {
    /// Every configuration of the plan in order, until the end or a stop.
    async fn run_plan(&mut self) -> RunEnd {
        let campaign = &self.campaign;
        let plan = Plan::new(campaign.config);
        campaign.observer.observe(&Progress::PlanCounted {
            configurations: plan.count().ok(),
            already_indexed: campaign
                .indexed
                .iter()
                .filter(|k| plan.contains_key(k))
                .count() as u128,
            iterations: campaign.config.iterations,
            duration: campaign.config.duration,
        });
        for configuration in plan.iter() {
            if self.stop.is_stopped() {
                return self.interrupted();
            }
            let step = match self.campaign.skip_reason(&configuration) {
                Some(reason) => self
                    .campaign
                    .skip(&configuration, reason)
                    .map(|()| ConfigEnd::Done),
                None => self.run_configuration(&configuration).await,
            };
            match step {
                Ok(ConfigEnd::Done) => {}
                Ok(ConfigEnd::Failed) => self.campaign.failed_configs += 1,
                Ok(ConfigEnd::Interrupted) => return self.interrupted(),
                Ok(ConfigEnd::GeneratorLost(reason)) => {
                    return RunEnd::GeneratorLost {
                        reason,
                        k6_host: self.campaign.config.k6.host.clone(),
                        output_dir: self.campaign.ctx.output_dir.clone(),
                    }
                }
                Err(CampaignError::Dataset { dir, source }) => {
                    let message = format!("output directory {}: {source}", dir.display());
                    self.campaign
                        .observer
                        .observe(&Progress::OutputFailed(&message));
                    return RunEnd::OutputFailed {
                        dir,
                        source,
                        field: self.campaign.ctx.output_dir_field,
                    };
                }
            }
        }
        RunEnd::Completed
    }

    fn interrupted(&self) -> RunEnd {
        RunEnd::Interrupted {
            output_dir: self.campaign.ctx.output_dir.clone(),
        }
    }

    /// One configuration's missing iterations, then its index row and
    /// overload verdict.
    async fn run_configuration(
        &mut self,
        configuration: &Configuration,
    ) -> Result<ConfigEnd, CampaignError> {
        let id = configuration.config_id();
        let key = configuration.key();
        let resume = Resume::of(
            self.campaign.partial.remove(&key),
            self.campaign.recalled.take_partial(&key),
            self.campaign.config.iterations,
        );
        let pairs: Vec<(FunctionName, u64)> =
            configuration.pairs().map(|(f, r)| (f.clone(), r)).collect();
        let script = self.campaign.write_script(&id, &pairs)?;
        let observer = self.campaign.observer;
        observer.observe(&Progress::ConfigStarted {
            id: &id,
            configuration,
            resumed_after: resume.done,
        });
        let mut overloaded = resume.overloaded;
        let retries = self.campaign.config.saturation.retries;
        for iteration in resume.to_run {
            let mut attempt = 0;
            let step = loop {
                let step = self
                    .run_iteration(configuration, &id, iteration, &pairs, &script)
                    .await?;
                let IterationEnd::Saturated { generator, reason } = &step else {
                    break step;
                };
                let retrying = attempt < retries;
                observer.observe(&Progress::GeneratorSaturated {
                    id: &id,
                    iteration,
                    generator,
                    reason,
                    retrying,
                });
                if !retrying {
                    // Still saturated after its retries: the configuration fails.
                    break IterationEnd::Failed(format!(
                        "generator_saturated: generator {generator}: {reason} (the load measured the generator, not the node)"
                    ));
                }
                attempt += 1;
            };
            match step {
                IterationEnd::Row { overloaded: o } => overloaded += u32::from(o),
                // Saturated iterations left the loop above as failures.
                IterationEnd::Failed(reason) | IterationEnd::Saturated { reason, .. } => {
                    observer.observe(&Progress::ConfigFailed {
                        id: &id,
                        configuration,
                        iteration,
                        reason: &reason,
                    });
                    self.campaign.append_skipped(configuration)?;
                    return Ok(ConfigEnd::Failed);
                }
                IterationEnd::Interrupted => return Ok(ConfigEnd::Interrupted),
                IterationEnd::GeneratorLost(reason) => {
                    observer.observe(&Progress::GeneratorLost {
                        id: &id,
                        iteration,
                        reason: &reason,
                    });
                    return Ok(ConfigEnd::GeneratorLost(reason));
                }
            }
        }
        self.campaign
            .configuration_done(configuration, &id, overloaded)?;
        Ok(ConfigEnd::Done)
    }

    /// One iteration: cooldown, k6, summary, replicas, metrics, row.
    async fn run_iteration(
        &mut self,
        configuration: &Configuration,
        id: &ConfigId,
        iteration: u32,
        pairs: &[(FunctionName, u64)],
        script: &str,
    ) -> Result<IterationEnd, CampaignError> {
        let observer = self.campaign.observer;
        let config = self.campaign.config;
        let job = LoadJob {
            config_id: id.as_str(),
            script,
            duration: config.duration,
        };
        // The generator's remote command is launched before the cooldown,
        // with k6 started paused, so that only its resume is left for after it.
        self.load.prepare(job, self.stop).await;
        observer.observe(&Progress::CooldownStarted { id, iteration });
        let (idle, rest_seconds) = match self.cool_down().await {
            Ok(idle) => idle,
            Err(end) => return Ok(end),
        };
        observer.observe(&Progress::IterationStarted {
            id,
            iteration,
            iterations: config.iterations,
            rest_seconds,
        });
        let mut on_line = move |line: &str| observer.observe(&Progress::K6Line(line));
        let run = match self.load.run(job, &mut on_line, self.stop).await {
            Ok(run) => run,
            Err(LoadError::Interrupted) => return Ok(IterationEnd::Interrupted),
            Err(LoadError::Failed(reason)) => return Ok(IterationEnd::Failed(reason)),
            Err(LoadError::Unreachable(reason)) => return Ok(IterationEnd::GeneratorLost(reason)),
        };
        observer.observe(&Progress::LoadFinished { id, iteration });
        self.campaign.warn_all(run.warnings.clone());
        let (started_at, ended_at) = (run.started_at, run.ended_at);
        let combined =
            match generators::combine(run.parts, pairs, config.duration, &config.saturation) {
                Ok(combined) => combined,
                Err(reason) => return Ok(IterationEnd::Failed(reason)),
            };
        // A generator that could not keep up measured itself, not the
        // node: no row, no overload verdict.
        if let Some((generator, why)) = combined.saturated() {
            return Ok(IterationEnd::Saturated {
                generator: generator.to_string(),
                reason: why.to_string(),
            });
        }
        let outcomes = &combined.outcomes;
        let Some(replicas) = self.replicas(configuration, id, iteration).await else {
            return Ok(IterationEnd::Interrupted);
        };
        let metrics = self
            .meter
            .iteration_metrics(configuration.functions(), started_at, ended_at)
            .await;
        // A stop cut the queries short: this iteration writes no row (a
        // rerun measures it again) rather than one with readings missing.
        if self.stop.is_stopped() {
            return Ok(IterationEnd::Interrupted);
        }
        self.campaign.warn_all(metrics.warnings);
        let metrics = metrics.value;
        let row = row::build_row(
            &row::IterationMeasures {
                outcomes,
                replicas: &replicas,
                metrics: &metrics,
                idle: &idle,
                rest_seconds,
                cores: self.cores,
            },
            &config.overload,
        );
        let node_overloaded = row.node.overloaded;
        let generators = serde_json::to_value(&combined.generators).unwrap_or_default();
        self.campaign.record_iteration(
            id,
            iteration,
            &row,
            combined.summary,
            &metrics,
            &generators,
        )?;
        if let Some(entry) = self.campaign.data.dfaas_summaries.last() {
            observer.observe(&Progress::IterationFinished {
                id,
                configuration,
                iteration,
                row: &row,
                metrics: &metrics,
                summary: &entry.summary,
                started_at,
                ended_at,
            });
        }
        if node_overloaded {
            observer.observe(&Progress::IterationOverloaded { id, iteration });
        }
        Ok(IterationEnd::Row {
            overloaded: node_overloaded,
        })
    }

    /// Waits for the node to be idle again: its reading and the seconds
    /// waited, or how the iteration ends instead.
    async fn cool_down(&mut self) -> Result<(NodeReading, u64), IterationEnd> {
        let config = self.campaign.config;
        let mut warnings = Vec::new();
        let end = cooldown::wait_for_idle(
            self.meter,
            &self.baseline,
            &self.campaign.names,
            &config.cooldown,
            self.stop,
            &mut |w| warnings.push(w),
        )
        .await;
        self.campaign.warn_all(warnings);
        match end {
            CooldownEnd::Idle { snapshot, rest_seconds } => Ok((snapshot, rest_seconds)),
            CooldownEnd::Interrupted => Err(IterationEnd::Interrupted),
            CooldownEnd::TimedOut { waited_seconds, last, replicas } => {
                Err(IterationEnd::Failed(format!(
                    "cooldown timeout after {waited_seconds} s (max {} s): cpu {:.3} vs baseline {:.3}, ram {:.0} vs {:.0}, replicas {:?}",
                    config.cooldown.max_wait.as_secs(),
                    last.cpu_pct,
                    self.baseline.cpu_pct,
                    last.ram_bytes,
                    self.baseline.ram_bytes,
                    replicas
                )))
            }
        }
    }

    /// Replica counts after the run (unknown ones are NaN in the row, with
    /// a warning); `None` when a stop cut the request short.
    async fn replicas(
        &self,
        configuration: &Configuration,
        id: &ConfigId,
        iteration: u32,
    ) -> Option<BTreeMap<String, u64>> {
        let observer = self.campaign.observer;
        match self.meter.replicas().await {
            Ok(replicas) => {
                let unlisted: Vec<&str> = configuration
                    .functions()
                    .iter()
                    .map(FunctionName::as_str)
                    .filter(|f| !replicas.contains_key(*f))
                    .collect();
                if !unlisted.is_empty() {
                    observer.observe(&Progress::Warning(&format!(
                        "config {id} iteration {iteration}: the gateway does not list {}: replicas recorded as nan",
                        unlisted.join(", ")
                    )));
                }
                Some(replicas)
            }
            Err(_) if self.stop.is_stopped() => None,
            Err(reason) => {
                observer.observe(&Progress::Warning(&format!(
                    "config {id} iteration {iteration}: replicas unknown, recorded as nan: {reason}"
                )));
                Some(BTreeMap::new())
            }
        }
    }
}

/// How one iteration ended.
enum IterationEnd {
    Row {
        overloaded: bool,
    },
    Failed(String),
    /// A load generator could not keep up: the iteration measured it, not
    /// the node.
    Saturated {
        generator: String,
        reason: String,
    },
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
