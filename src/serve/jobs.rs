//! Jobs: one at a time, started from the stored configuration, stopped
//! the way `run` stops on SIGTERM.
//!
//! A job gets a directory `jobs/<job-id>/` (ids sort by start time):
//!
//! ```text
//! job.json       kind, state, start and end, last error, the configuration (passwords redacted)
//! output/        a campaign's output directory, exactly as `lb-dfaas run` writes it
//! result.json    a campaign's result document, exactly what `run` prints
//! suite.json     a suite's per-script outcomes
//! summaries/     a suite's k6 summaries, one per script
//! ```
//!
//! A campaign runs through [`crate::session::run_with`] — the same
//! start-up checks, campaign and result document as `run` — with the
//! [`HubObserver`] beside the `LB_EVENT` lines and the job's own
//! [`Stop`]: `POST stop` and the server's shutdown request that stop, as
//! SIGTERM does in `run` (the remote k6 is stopped, every finished row
//! kept). The slot holding the running job is cleared in the same
//! critical section that reports the job's end, so a client that sees
//! `finished` can start the next job at once.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::error::ApiError;
use super::hub::{Hub, HubObserver};
use super::state::StoredConfig;
use super::status::{self, Estimate, JobKind, JobState, Tracked};
use super::suite::{self, Suite};
use super::Server;
use crate::campaign::progress::Observer;
use crate::config::{self, Config};
use crate::events::Level;
use crate::output::artifact::write_atomic;
use crate::plan::Plan;
use crate::protocol::{Context, ErrorKind, Request};
use crate::report;
use crate::stop::{Stop, StopHandle};

/// How long the server's shutdown waits for a stopped job to wind down.
pub(crate) const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobEnd {
    pub state: JobState,
    pub error: Option<String>,
}

impl JobEnd {
    pub(crate) fn finished() -> Self {
        JobEnd {
            state: JobState::Finished,
            error: None,
        }
    }

    pub(crate) fn stopped() -> Self {
        JobEnd {
            state: JobState::Stopped,
            error: None,
        }
    }

    pub(crate) fn failed(error: String) -> Self {
        JobEnd {
            state: JobState::Failed,
            error: Some(error),
        }
    }
}

/// A job's directory.
#[derive(Debug, Clone)]
pub(crate) struct JobDir {
    pub id: String,
    pub dir: PathBuf,
}

impl JobDir {
    /// A new directory for a job of `kind` starting at `now`:
    /// `20240501T120000Z-campaign`, with `-2`, `-3`... if taken.
    pub(crate) fn create(jobs: &Path, kind: JobKind, now: SystemTime) -> std::io::Result<Self> {
        let stamp = status::rfc3339(now).replace(['-', ':'], "");
        let base = format!("{stamp}-{}", kind_name(kind));
        for n in 1..1000 {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = jobs.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(JobDir { id, dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "no free job directory for {base}"
        )))
    }

    /// An existing job's directory; `None` for an id that is not one.
    pub(crate) fn find(jobs: &Path, id: &str) -> Option<Self> {
        if !config::is_path_segment(id) || id.starts_with('.') {
            return None;
        }
        let dir = jobs.join(id);
        std::fs::symlink_metadata(&dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|_| JobDir {
                id: id.to_string(),
                dir,
            })
    }

    /// The most recent job, if any.
    pub(crate) fn latest(jobs: &Path) -> Option<Self> {
        let entries = std::fs::read_dir(jobs).ok()?;
        let newest = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| !id.starts_with('.'))
            .max()?;
        Self::find(jobs, &newest)
    }

    pub(crate) fn output(&self) -> PathBuf {
        self.dir.join("output")
    }

    pub(crate) fn result_file(&self) -> PathBuf {
        self.dir.join("result.json")
    }

    pub(crate) fn suite_record(&self) -> PathBuf {
        self.dir.join("suite.json")
    }

    pub(crate) fn record_file(&self) -> PathBuf {
        self.dir.join("job.json")
    }

    /// The job's `job.json`.
    pub(crate) fn record(&self) -> Option<JobRecord> {
        let text = read_small(&self.record_file(), 16 * 1024 * 1024).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

fn kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Campaign => "campaign",
        JobKind::Suite => "suite",
    }
}

/// Reads a regular file of at most `max_bytes` (a FIFO would block).
pub(crate) fn read_small(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// `job.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    pub state: JobState,
    pub start_time: String,
    pub end_time: Option<String>,
    pub last_error: Option<String>,
    /// The configuration the job ran with (passwords redacted).
    pub config: Value,
}

/// A validated job, ready to run.
enum Prepared {
    Campaign(Box<Config>),
    Suite(Box<Suite>),
}

/// The running job, if any.
struct Active {
    id: String,
    kind: JobKind,
    stop: StopHandle,
    done: watch::Receiver<bool>,
}

/// The one job slot.
#[derive(Default)]
pub(crate) struct Jobs {
    slot: Mutex<Option<Active>>,
}

impl Jobs {
    fn lock(&self) -> MutexGuard<'_, Option<Active>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the stored configuration's job; its id.
    pub(crate) fn start(&self, server: &Arc<Server>) -> Result<String, ApiError> {
        let mut slot = self.lock();
        if let Some(active) = slot.as_ref() {
            return Err(ApiError::conflict(format!(
                "the {} job {} is running: stop it first",
                kind_name(active.kind),
                active.id
            )));
        }
        let stored = server.stored_config();
        let (prepared, total, estimate, iterations) = prepare(&stored, server)?;
        let now = SystemTime::now();
        let job = JobDir::create(&server.state.jobs(), stored.kind, now)
            .map_err(|e| ApiError::internal(format!("cannot create the job directory: {e}")))?;
        let snapshot = match stored.kind {
            JobKind::Campaign => stored.redacted().campaign,
            JobKind::Suite => serde_json::to_value(&stored.suite).unwrap_or(Value::Null),
        };
        let record = JobRecord {
            id: job.id.clone(),
            kind: stored.kind,
            state: JobState::Running,
            start_time: status::rfc3339(now),
            end_time: None,
            last_error: None,
            config: snapshot,
        };
        write_record(&job, &record).map_err(ApiError::internal)?;

        let (handle, stop) = Stop::new();
        let (done_tx, done_rx) = watch::channel(false);
        server.hub.update(|t| {
            let mut started = Tracked::started(stored.kind, &job.id, total, estimate, now);
            started.iterations = iterations;
            started.last_job_id = t.last_job_id.clone();
            *t = started;
        });
        server.hub.log(
            Level::Info,
            "job_started",
            &format!("{} job {} started", kind_name(stored.kind), job.id),
        );
        *slot = Some(Active {
            id: job.id.clone(),
            kind: stored.kind,
            stop: handle,
            done: done_rx,
        });
        drop(slot);

        let id = job.id.clone();
        let server = Arc::clone(server);
        // The campaign's future is not `Send` (its cooldown reports through
        // a plain `FnMut`): the job runs on a thread of its own, driven by
        // this runtime. A panic fails the job instead of leaving the slot
        // taken for ever.
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let work = AssertUnwindSafe(|| {
                runtime.block_on(async {
                    match prepared {
                        Prepared::Campaign(config) => {
                            campaign_job(&config, &job, Arc::clone(&server.hub), stop).await
                        }
                        Prepared::Suite(suite) => {
                            suite::run(&suite, &server.scripts, &job, &server.hub, &stop).await
                        }
                    }
                })
            });
            let end = std::panic::catch_unwind(work).unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                JobEnd::failed(format!("internal error: panic: {message}"))
            });
            server.jobs.finish(&server, &job, record, end);
            let _ = done_tx.send(true);
        });
        Ok(id)
    }

    /// Reports a job's end and frees the slot, in one critical section.
    fn finish(&self, server: &Server, job: &JobDir, mut record: JobRecord, end: JobEnd) {
        let mut slot = self.lock();
        *slot = None;
        let now = SystemTime::now();
        record.state = end.state;
        record.end_time = Some(status::rfc3339(now));
        record.last_error = end.error.clone();
        if let Err(e) = write_record(job, &record) {
            server
                .hub
                .log(Level::Error, "log", &format!("job {}: {e}", job.id));
        }
        let (level, word) = match end.state {
            JobState::Finished => (Level::Info, "finished"),
            JobState::Stopped => (Level::Info, "stopped"),
            _ => (Level::Error, "failed"),
        };
        let reason = end
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        server.hub.log(
            level,
            "job_finished",
            &format!("job {} {word}{reason}", job.id),
        );
        server.hub.update(|t| t.end(end.state, end.error, now));
    }

    /// Asks the running job to stop.
    pub(crate) fn stop(&self, hub: &Hub) -> Result<(), ApiError> {
        let slot = self.lock();
        let Some(active) = slot.as_ref() else {
            return Err(ApiError::conflict("no job is running"));
        };
        active.stop.stop();
        hub.update(|t| {
            if t.state == JobState::Running {
                t.state = JobState::Stopping;
            }
        });
        hub.log(
            Level::Info,
            "stop_requested",
            &format!("stop requested for job {}", active.id),
        );
        Ok(())
    }

    /// Stops the running job, if any, and waits (at most
    /// [`SHUTDOWN_WAIT`]) until it has ended.
    pub(crate) async fn stop_and_wait(&self, hub: &Hub) {
        let done = {
            let slot = self.lock();
            slot.as_ref().map(|active| active.done.clone())
        };
        let Some(mut done) = done else { return };
        let _ = self.stop(hub);
        if tokio::time::timeout(SHUTDOWN_WAIT, done.wait_for(|d| *d))
            .await
            .is_err()
        {
            tracing::error!(
                "the job did not end within {} s of the stop",
                SHUTDOWN_WAIT.as_secs()
            );
        }
    }
}

fn write_record(job: &JobDir, record: &JobRecord) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    write_atomic(&job.record_file(), &text).map_err(|e| format!("cannot write job.json: {e}"))
}

/// The context a campaign job runs in (its id and output directory come
/// later, from its job directory).
fn campaign_context() -> Context {
    Context {
        workload: Some("dfaas".into()),
        ..Context::default()
    }
}

/// Validates the stored configuration for `start`: the job, the number of
/// configurations or scripts, the estimate and a campaign's iterations.
fn prepare(
    stored: &StoredConfig,
    server: &Server,
) -> Result<(Prepared, u64, Estimate, u32), ApiError> {
    match stored.kind {
        JobKind::Campaign => {
            let config = validate_campaign(&stored.campaign)?.0;
            let total = Plan::new(&config)
                .count()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(u64::MAX);
            let estimate = Estimate::Campaign {
                planned_s: config.duration.as_secs_f64() * f64::from(config.iterations),
                ran: 0,
                ran_s: 0.0,
            };
            let iterations = config.iterations;
            Ok((
                Prepared::Campaign(Box::new(config)),
                total,
                estimate,
                iterations,
            ))
        }
        JobKind::Suite => {
            let suite =
                suite::validate(&stored.suite, &server.scripts, true).map_err(ApiError::fields)?;
            let estimate = Estimate::Suite {
                script_s: suite.script_seconds(),
                interval_s: suite.interval.as_secs_f64(),
            };
            let total = suite.scripts.len() as u64;
            Ok((Prepared::Suite(Box::new(suite)), total, estimate, 0))
        }
    }
}

/// A campaign config, validated as `run` validates it: the config and its
/// warnings, or every field error under `campaign.`.
pub(crate) fn validate_campaign(campaign: &Value) -> Result<(Config, Vec<String>), ApiError> {
    if !campaign.is_object() {
        return Err(ApiError::field("campaign", "must be a JSON object"));
    }
    let request = Request {
        config: campaign.clone(),
        context: campaign_context(),
        plugin: Default::default(),
    };
    config::load_request(&request)
        .map(|loaded| (loaded.config, loaded.warnings))
        .map_err(|e| ApiError::config(&e, "campaign."))
}

/// Runs a campaign as `run` does, into the job's directory.
async fn campaign_job(config: &Config, job: &JobDir, hub: Arc<Hub>, stop: Stop) -> JobEnd {
    let context = Context {
        run_id: Some(job.id.clone()),
        output_dir: Some(job.output().display().to_string()),
        ..campaign_context()
    };
    let observer: Arc<dyn Observer> = Arc::new(HubObserver::new(hub));
    let ran = crate::session::run_with(config, &context, observer, stop).await;
    let (result, _) = report::run_report(ran);
    let written = serde_json::to_vec_pretty(&result)
        .map_err(|e| e.to_string())
        .and_then(|text| write_atomic(&job.result_file(), &text).map_err(|e| e.to_string()));
    if let Err(e) = written {
        return JobEnd::failed(format!("cannot write result.json: {e}"));
    }
    match result.error {
        None => JobEnd::finished(),
        Some(error) => match error.kind {
            ErrorKind::Interrupted => JobEnd::stopped(),
            // The campaign went on to its end; the failed ones are listed.
            ErrorKind::ConfigurationFailed => JobEnd {
                state: JobState::Finished,
                error: Some(error.message),
            },
            _ => JobEnd::failed(error.message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn job_ids_sort_by_start_and_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = JobDir::create(dir.path(), JobKind::Campaign, at).unwrap();
        let b = JobDir::create(dir.path(), JobKind::Campaign, at).unwrap();
        let c = JobDir::create(dir.path(), JobKind::Suite, at + Duration::from_secs(1)).unwrap();
        assert_eq!(a.id, "20231114T221320Z-campaign");
        assert_eq!(b.id, "20231114T221320Z-campaign-2");
        assert_eq!(JobDir::latest(dir.path()).unwrap().id, c.id);
        assert!(JobDir::find(dir.path(), &a.id).is_some());
        for bad in ["..", "../x", "/etc", "", "nope"] {
            assert!(JobDir::find(dir.path(), bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn campaign_configs_are_validated_as_run_validates_them() {
        let errors = validate_campaign(&serde_json::json!({
            "functions": [{"name": "Bad Name"}],
            "iterations": 0,
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.fields.iter().map(|f| f.field.as_str()).collect();
        assert!(fields.contains(&"campaign.iterations"), "{fields:?}");
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("campaign.functions[0]")),
            "{fields:?}"
        );
        assert!(validate_campaign(&serde_json::json!({})).is_ok());
        assert_eq!(
            validate_campaign(&serde_json::json!([]))
                .unwrap_err()
                .fields[0]
                .field,
            "campaign"
        );
    }
}
