//! [`MemoryRecorder`]: the campaign's progress, written to the memory.
//!
//! A progress observer (see [`crate::campaign::progress`]): every finished
//! iteration becomes an `execution_events` row (payload: the results.csv
//! row, the metrics and the k6 summary), a `k6_raw_summaries` row and a
//! `config_catalog` entry; every configuration not measured becomes an
//! event with its `skip_reason`. Observers are called synchronously, so
//! each record is committed before the campaign takes its next step. At
//! `RunFinished` (sent after k6 is stopped and the SSH connection closed)
//! the run's end and status are recorded and the file is checkpointed,
//! exported (Parquet, when configured) and closed.
//!
//! A write that fails is reported as a warning naming what is missing, and
//! the run goes on: the CSVs, which lb reads, have the iteration; the
//! memory lacks it, so a later run with `skip_known` measures it again.
//! Stopping a campaign of hours because its second copy failed would lose
//! more than it protects. Opening the memory at the start, on the other
//! hand, fails the run before any load ([`MemoryRecorder::open`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde_json::Map;

use super::config::{base_dir, MemoryPaths};
use super::record::{
    digest, skip_reason, CampaignIdentity, IterationRecord, Known, RunInfo, RunStatus, SkipRecord,
};
use super::store::MemoryStore;
use super::MemoryError;
use crate::campaign::progress::{Observer, Progress};
use crate::config::{Config, FunctionName};
use crate::metrics::queries::{QueryError, QuerySet};
use crate::plan::{ConfigKey, Configuration};
use crate::report::CommandError;

/// What a run records besides its iterations: who it is and what makes
/// its measurements comparable with earlier ones.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSetup {
    pub run_id: String,
    pub repetition: u32,
    pub started_at: SystemTime,
    /// Digest of the campaign's settings ([`RunSetup::of`]).
    pub config_hash: String,
    pub identity: CampaignIdentity,
    /// Every function of the campaign, sorted (the result row's columns).
    pub functions: Vec<FunctionName>,
}

impl RunSetup {
    /// The setup of a run of `config`. The query set is the queries that
    /// are active (file or bundled, Scaphandre ones only when enabled) and
    /// the PID regexes when Scaphandre is on: what decides what the metrics
    /// measure. The config hash covers the campaign's settings (functions,
    /// rates, combinations, duration, iterations, cooldown, overload,
    /// endpoints, k6 host and the query set), not paths or credentials.
    pub(crate) fn of(
        config: &Config,
        run_id: &str,
        repetition: u32,
        started_at: SystemTime,
    ) -> Result<RunSetup, QueryError> {
        let queries = QuerySet::load(config.queries_path.as_deref(), config.scaphandre_enabled)?;
        let mut parts: Vec<String> = Vec::new();
        for name in queries.names() {
            if let Some(q) = queries.get(name) {
                parts.extend([
                    q.name.clone(),
                    q.query.clone(),
                    q.range.to_string(),
                    q.step.clone(),
                    q.enabled_if.clone().unwrap_or_default(),
                ]);
            }
        }
        parts.push(format!("scaphandre={}", config.scaphandre_enabled));
        if config.scaphandre_enabled {
            for (name, regex) in &config.function_pid_regexes {
                parts.extend([name.to_string(), regex.clone()]);
            }
        }
        let query_set = digest(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        let settings = [
            format!("{:?}", config.functions),
            format!("{:?}", config.rates),
            format!("{:?}", config.combinations),
            config.duration_text.clone(),
            config.iterations.to_string(),
            format!("{:?}", config.cooldown),
            format!("{:?}", config.overload),
            config.gateway_url.clone(),
            config.prometheus_url.clone(),
            format!("{}@{}:{}", config.k6.user, config.k6.host, config.k6.port),
            query_set.clone(),
        ];
        Ok(RunSetup {
            run_id: run_id.to_string(),
            repetition,
            started_at,
            config_hash: digest(&settings.iter().map(String::as_str).collect::<Vec<_>>()),
            identity: CampaignIdentity {
                duration_ms: CampaignIdentity::duration_ms(config.duration),
                duration_text: config.duration_text.clone(),
                query_set,
                iterations: config.iterations,
            },
            functions: config.functions.iter().map(|f| f.name.clone()).collect(),
        })
    }
}

/// The memory writer of one run; see the module docs.
pub struct MemoryRecorder {
    state: Mutex<State>,
    /// Where warnings go (the `LB_EVENT` observer).
    report: Arc<dyn Observer>,
}

#[derive(Default)]
struct State {
    /// `None` before [`MemoryRecorder::open`] and after the run ended.
    store: Option<MemoryStore>,
    setup: Option<RunSetup>,
    path: Option<PathBuf>,
    /// Records that could not be written.
    failures: u32,
}

impl std::fmt::Debug for MemoryRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRecorder")
            .field("path", &self.lock().path)
            .finish_non_exhaustive()
    }
}

impl MemoryRecorder {
    /// A recorder with no memory open yet: it ignores progress until
    /// [`MemoryRecorder::open`]. Warnings go to `report`.
    pub(crate) fn new(report: Arc<dyn Observer>) -> Self {
        MemoryRecorder {
            state: Mutex::new(State::default()),
            report,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the memory at `paths` (creating it, preloading Parquet when
    /// configured), records the run as `running`, and returns what the
    /// memory knows under this run's duration and queries when
    /// `read_known` (an empty map otherwise). A file that cannot be used
    /// is an error, and the recorder stays closed.
    pub(crate) fn open(
        &self,
        paths: &MemoryPaths,
        setup: RunSetup,
        read_known: bool,
    ) -> Result<HashMap<ConfigKey, Known>, MemoryError> {
        let mut store = MemoryStore::open(paths)?;
        store.begin_run(&RunInfo {
            run_id: setup.run_id.clone(),
            started_at: setup.started_at,
            config_hash: setup.config_hash.clone(),
        })?;
        let known = if read_known {
            store.known_all(&setup.identity)?
        } else {
            HashMap::new()
        };
        let mut state = self.lock();
        state.path = Some(paths.db_path.clone());
        state.setup = Some(setup);
        state.store = Some(store);
        Ok(known)
    }

    /// Opens the memory of a run of `config` at `place`, unless
    /// `memory.enabled` is off. Returns what the memory knows for
    /// [`crate::campaign::Campaign::recall`] when `memory.skip_known` is on.
    /// A memory that cannot be used fails the run before any load: a file
    /// or Parquet directory of another schema version, or not a memory
    /// file, is invalid input naming the field (exit 2); a lock held by
    /// another process, a permission or disk problem is the environment
    /// (exit 3). `memory: {enabled: false}` runs without it.
    pub(crate) fn start(
        &self,
        config: &Config,
        place: &RunPlace<'_>,
    ) -> Result<Option<HashMap<ConfigKey, Known>>, CommandError> {
        let memory = &config.memory;
        if !memory.enabled {
            return Ok(None);
        }
        let paths = memory.resolve(base_dir(place.lb_workdir, place.output_dir));
        let setup = RunSetup::of(config, place.run_id, place.repetition, SystemTime::now())
            .map_err(|e| CommandError::input("queries_path", e.to_string()))?;
        let known = self
            .open(&paths, setup, memory.skip_known)
            .map_err(|e| start_error(e, &paths))?;
        self.report.observe(&Progress::Note(&format!(
            "memory: {} (schema {})",
            paths.db_path.display(),
            paths.schema_version
        )));
        Ok(memory.skip_known.then_some(known))
    }

    /// The memory file, once open.
    #[cfg(test)]
    pub(crate) fn path(&self) -> Option<PathBuf> {
        self.lock().path.clone()
    }

    /// Records the run's end and `status`, then checkpoints, exports and
    /// closes the file. Does nothing when the memory is not open (never
    /// opened, or already finished). Problems are reported as warnings.
    pub(crate) fn finish(&self, status: RunStatus) {
        let (store, setup, path, failures) = {
            let mut state = self.lock();
            (
                state.store.take(),
                state.setup.clone(),
                state.path.clone(),
                std::mem::take(&mut state.failures),
            )
        };
        let (Some(mut store), Some(setup)) = (store, setup) else {
            return;
        };
        let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
        let mut warnings = Vec::new();
        if failures > 0 {
            warnings.push(format!(
                "memory: {failures} record(s) could not be written to {shown} (see the warnings \
                 before); the CSVs have them, a later run with memory.skip_known measures them again"
            ));
        }
        if let Err(e) = store.end_run(&setup.run_id, status, SystemTime::now()) {
            warnings.push(format!("memory {shown}: {e}"));
        }
        if let Err(e) = store.checkpoint_and_close() {
            warnings.push(format!(
                "memory {shown}: {e} (every committed record is in the file or its write-ahead log)"
            ));
        }
        for warning in warnings {
            self.warn(&warning);
        }
    }

    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
        self.report.observe(&Progress::Warning(message));
    }

    /// Runs `write` on the open store; a failure is counted and reported
    /// (after the lock is released) as `what`.
    fn write(
        &self,
        what: impl FnOnce() -> String,
        write: impl FnOnce(&mut MemoryStore, &RunSetup) -> Result<(), MemoryError>,
    ) {
        let failure = {
            let mut state = self.lock();
            let State {
                store,
                setup,
                path,
                failures,
            } = &mut *state;
            let (Some(store), Some(setup)) = (store.as_mut(), setup.as_ref()) else {
                return;
            };
            match write(store, setup) {
                Ok(()) => None,
                Err(e) => {
                    *failures += 1;
                    let shown = path.as_ref().map(|p| p.display().to_string());
                    Some(format!(
                        "memory: cannot record {} in {}: {e}; the run goes on (the CSVs have it)",
                        what(),
                        shown.unwrap_or_default()
                    ))
                }
            }
        };
        if let Some(message) = failure {
            self.warn(&message);
        }
    }

    fn record_skip(&self, configuration: &Configuration, reason: &str, detail: Option<&str>) {
        self.write(
            || format!("the skip of config {}", configuration.config_id()),
            |store, setup| {
                store
                    .record_skip(&SkipRecord {
                        run_id: &setup.run_id,
                        repetition: setup.repetition,
                        configuration,
                        reason,
                        detail,
                        at: SystemTime::now(),
                        identity: &setup.identity,
                    })
                    .map(|_| ())
            },
        );
    }
}

impl Observer for MemoryRecorder {
    fn observe(&self, progress: &Progress<'_>) {
        match progress {
            Progress::ConfigSkipped {
                configuration,
                reason,
                ..
            } => self.record_skip(configuration, reason.as_str(), None),
            Progress::ConfigFailed {
                configuration,
                iteration,
                reason,
                ..
            } => {
                let detail = format!("iteration {iteration}: {reason}");
                self.record_skip(configuration, skip_reason::FAILED, Some(&detail));
            }
            Progress::IterationFinished {
                id,
                configuration,
                iteration,
                row,
                metrics,
                summary,
                started_at,
                ended_at,
            } => self.write(
                || format!("config {id} iteration {iteration}"),
                |store, setup| {
                    let result_row = row
                        .to_protocol(&setup.functions)
                        .unwrap_or_else(|_| Map::new());
                    let metrics = metrics.to_json();
                    store
                        .record_iteration(&IterationRecord {
                            run_id: &setup.run_id,
                            repetition: setup.repetition,
                            configuration,
                            iteration: *iteration,
                            started_at: *started_at,
                            ended_at: *ended_at,
                            result_row: &result_row,
                            metrics: &metrics,
                            summary,
                            identity: &setup.identity,
                        })
                        .map(|_| ())
                },
            ),
            Progress::RunFinished(totals) => self.finish(RunStatus::of_exit_code(totals.exit_code)),
            _ => {}
        }
    }
}

/// Where a run happens, as far as the memory cares.
#[derive(Debug, Clone, Copy)]
pub struct RunPlace<'a> {
    pub run_id: &'a str,
    pub repetition: u32,
    /// lb's working directory, when lb runs the campaign.
    pub lb_workdir: Option<&'a Path>,
    pub output_dir: &'a Path,
}

/// A memory that cannot be opened, as the run's error.
fn start_error(error: MemoryError, paths: &MemoryPaths) -> CommandError {
    if error.is_input() {
        let field = match error {
            MemoryError::Preload { .. } => "memory.preload_core_parquet_dir",
            _ => "memory.db_path",
        };
        CommandError::input(field, error.to_string())
    } else {
        CommandError::Environment {
            message: format!(
                "the campaign memory is unusable: {error} (set memory.enabled: false to run without it)"
            ),
            context: serde_json::json!({"db_path": paths.db_path}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Config {
        let mut body = serde_json::json!({"functions": [{"name": "figlet"}, {"name": "env"}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let request = crate::protocol::Request {
            config: body,
            ..crate::protocol::Request::default()
        };
        crate::config::load_request(&request).unwrap().config
    }

    fn setup(extra: serde_json::Value) -> RunSetup {
        RunSetup::of(&config(extra), "run-1", 1, SystemTime::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn the_identity_follows_duration_and_queries_only() {
        let base = setup(serde_json::json!({}));
        assert_eq!(base.identity.duration_ms, 30_000);
        assert_eq!(base.identity.iterations, 3);
        assert_eq!(
            base.functions,
            [
                FunctionName::parse("env").unwrap(),
                FunctionName::parse("figlet").unwrap()
            ]
        );
        // Other thresholds: same measurements, another config hash.
        let other = setup(serde_json::json!({"overload": {"ram_overload_pct": 50}}));
        assert_eq!(other.identity, base.identity);
        assert_ne!(other.config_hash, base.config_hash);
        // PID regexes matter only with Scaphandre.
        let regexes = setup(serde_json::json!({"function_pid_regexes": {"figlet": "fig.*"}}));
        assert_eq!(regexes.identity, base.identity);
        let scaphandre = setup(serde_json::json!({"scaphandre_enabled": true}));
        assert_ne!(scaphandre.identity.query_set, base.identity.query_set);
        let longer = setup(serde_json::json!({"duration": "1m"}));
        assert_eq!(longer.identity.duration_ms, 60_000);
        assert_ne!(longer.identity, base.identity);
    }

    /// Warnings the recorder reports.
    #[derive(Default)]
    struct Warnings(Mutex<Vec<String>>);

    impl Observer for Warnings {
        fn observe(&self, progress: &Progress<'_>) {
            if let Progress::Warning(message) = progress {
                self.0.lock().unwrap().push(message.to_string());
            }
        }
    }

    #[test]
    fn a_failed_write_is_reported_and_the_next_ones_still_happen() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::memory::MemoryConfig::default().resolve(dir.path());
        let warnings = Arc::new(Warnings::default());
        let recorder = MemoryRecorder::new(warnings.clone());
        // Progress before the memory is open is not recorded (nor an error).
        let figlet =
            Configuration::from_pairs([(FunctionName::parse("figlet").unwrap(), 10)]).unwrap();
        let id = figlet.config_id();
        let skipped = Progress::ConfigSkipped {
            id: &id,
            configuration: &figlet,
            reason: crate::plan::SkipReason::DominatedByOverload,
        };
        recorder.observe(&skipped);
        let known = recorder
            .open(&paths, setup(serde_json::json!({})), true)
            .unwrap();
        assert!(known.is_empty());
        assert_eq!(recorder.path().as_deref(), Some(paths.db_path.as_path()));
        // The catalog is gone: recording a skip fails, and says what is missing.
        recorder
            .lock()
            .store
            .as_ref()
            .unwrap()
            .connection()
            .execute_batch("ALTER TABLE config_catalog RENAME TO elsewhere")
            .unwrap();
        recorder.observe(&skipped);
        {
            let seen = warnings.0.lock().unwrap();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert!(
                seen[0].starts_with(&format!(
                    "memory: cannot record the skip of config {id} in "
                )) && seen[0].contains("the run goes on"),
                "{seen:?}"
            );
        }
        // Once it can write again, it does.
        recorder
            .lock()
            .store
            .as_ref()
            .unwrap()
            .connection()
            .execute_batch("ALTER TABLE elsewhere RENAME TO config_catalog")
            .unwrap();
        let failed = Progress::ConfigFailed {
            id: &id,
            configuration: &figlet,
            iteration: 2,
            reason: "ssh: connection reset",
        };
        recorder.observe(&failed);
        recorder.finish(RunStatus::Failed);
        recorder.finish(RunStatus::Completed); // once only
        let seen = warnings.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[1].starts_with("memory: 1 record(s) could not be written"),
            "{seen:?}"
        );
        let conn = duckdb::Connection::open(&paths.db_path).unwrap();
        let (reason, detail, status): (String, String, String) = conn
            .query_row(
                "SELECT skip_reason, json_extract_string(payload_json, '$.detail'), \
                 (SELECT status FROM run_sessions) FROM execution_events",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (reason.as_str(), detail.as_str(), status.as_str()),
            ("failed", "iteration 2: ssh: connection reset", "failed")
        );
    }

    #[test]
    fn exit_codes_give_the_run_status() {
        assert_eq!(RunStatus::of_exit_code(0), RunStatus::Completed);
        assert_eq!(RunStatus::of_exit_code(130), RunStatus::Interrupted);
        assert_eq!(RunStatus::of_exit_code(1), RunStatus::Failed);
        assert_eq!(RunStatus::of_exit_code(3), RunStatus::Failed);
    }
}
