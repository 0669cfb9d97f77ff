//! What every client sees, in one place: the job status, the log ring and
//! files, and the fan-out to WebSocket clients.
//!
//! Everything that changes the status or adds a log entry goes through
//! [`Hub`], which pushes one JSON message per change to every subscriber:
//! `{"type": "status", "status": {...}}` when the status changed (compared
//! without the clock-dependent fields) and `{"type": "log", "entry":
//! {...}}` per log entry. A subscriber gets the current status first, in
//! the same critical section that subscribes it, so it misses nothing
//! between the two. [`HubObserver`] feeds a campaign's progress in.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde_json::json;
use tokio::sync::broadcast;

use super::logs::{Entry, LogFiles, Page, Ring};
use super::status::{self, Status, Tracked};
use crate::campaign::progress::{Observer, Progress};
use crate::events::{self, Level};

/// Messages a slow WebSocket client may fall behind by before it is told
/// it missed some (and gets a fresh status).
const FAN_OUT_CAPACITY: usize = 1024;

/// The shared status, log and fan-out.
pub(crate) struct Hub {
    inner: Mutex<Inner>,
    fan_out: broadcast::Sender<Arc<str>>,
}

struct Inner {
    tracked: Tracked,
    ring: Ring,
    files: Option<LogFiles>,
}

impl Hub {
    /// A hub writing its log to `files` (none in unit tests).
    pub(crate) fn new(files: Option<LogFiles>, tracked: Tracked) -> Self {
        Hub {
            inner: Mutex::new(Inner {
                tracked,
                ring: Ring::default(),
                files,
            }),
            fan_out: broadcast::channel(FAN_OUT_CAPACITY).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the status down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status now.
    pub(crate) fn status(&self) -> Status {
        self.lock().tracked.status(SystemTime::now())
    }

    /// The tracked fields (for the job runner's own decisions).
    pub(crate) fn tracked(&self) -> Tracked {
        self.lock().tracked.clone()
    }

    /// Changes the status; pushes it when something changed.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Tracked)) {
        let mut inner = self.lock();
        let before = inner.tracked.clone();
        change(&mut inner.tracked);
        if inner.tracked != before {
            let message = status_message(&inner.tracked.status(SystemTime::now()));
            let _ = self.fan_out.send(message);
        }
    }

    /// Adds a log entry for the current job and pushes it.
    pub(crate) fn log(&self, level: Level, event: &str, message: &str) {
        let mut inner = self.lock();
        let job_id = inner.tracked.job_id.clone();
        let entry = inner
            .ring
            .push(now_s(), level, event, job_id.as_deref(), message);
        if let Some(files) = &inner.files {
            files.write(&entry);
        }
        let _ = self.fan_out.send(log_message(&entry));
    }

    /// A page of the log ring.
    pub(crate) fn logs(&self, since: u64, limit: usize) -> Page {
        self.lock().ring.page(since, limit)
    }

    /// The current status message and a receiver of every later message.
    pub(crate) fn subscribe(&self) -> (Arc<str>, broadcast::Receiver<Arc<str>>) {
        let inner = self.lock();
        let receiver = self.fan_out.subscribe();
        (
            status_message(&inner.tracked.status(SystemTime::now())),
            receiver,
        )
    }

    /// Writes the queued log lines and closes the files.
    pub(crate) fn close_files(&self) {
        if let Some(mut files) = self.lock().files.take() {
            files.close();
        }
    }
}

pub(crate) fn status_message(status: &Status) -> Arc<str> {
    Arc::from(json!({"type": "status", "status": status}).to_string())
}

fn log_message(entry: &Entry) -> Arc<str> {
    Arc::from(json!({"type": "log", "entry": entry}).to_string())
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A campaign's progress into the hub: the status fields ([`status::apply`])
/// and log entries with the `LB_EVENT` messages ([`events::describe`]).
pub(crate) struct HubObserver {
    hub: Arc<Hub>,
}

impl HubObserver {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        HubObserver { hub }
    }
}

impl Observer for HubObserver {
    fn observe(&self, progress: &Progress<'_>) {
        match progress {
            Progress::K6Line(line) => self.hub.log(Level::Info, "k6", line),
            Progress::IterationFinished {
                id, iteration, row, ..
            } => {
                let overloaded =
                    if row.node.overloaded || row.functions.values().any(|f| f.overloaded) {
                        ", overloaded"
                    } else {
                        ""
                    };
                self.hub.log(
                    Level::Info,
                    "iteration_finished",
                    &format!("config {id} iteration {iteration} recorded{overloaded}"),
                );
            }
            other => {
                for (kind, level, message) in events::describe(other, true) {
                    let event = serde_json::to_value(kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "log".to_string());
                    self.hub.log(level, &event, &message);
                }
            }
        }
        self.hub
            .update(|tracked| status::apply(tracked, progress, SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::status::{Estimate, JobKind, JobState};

    fn next(rx: &mut broadcast::Receiver<Arc<str>>) -> serde_json::Value {
        serde_json::from_str(&rx.try_recv().unwrap()).unwrap()
    }

    #[test]
    fn subscribers_get_the_status_then_every_change() {
        let hub = Hub::new(None, Tracked::default());
        let (first, mut rx) = hub.subscribe();
        let first: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(first["type"], "status");
        assert_eq!(first["status"]["state"], "idle");

        hub.update(|t| {
            *t = Tracked::started(JobKind::Suite, "j", 2, Estimate::None, SystemTime::now())
        });
        let message = next(&mut rx);
        assert_eq!(message["status"]["state"], "running");
        assert_eq!(message["status"]["isRunning"], true);

        // No change, no message.
        hub.update(|_| {});
        assert!(rx.try_recv().is_err());

        hub.log(Level::Warning, "log", "careful");
        let message = next(&mut rx);
        assert_eq!(message["type"], "log");
        assert_eq!(message["entry"]["seq"], 1);
        assert_eq!(message["entry"]["jobId"], "j");
        assert_eq!(message["entry"]["level"], "warning");

        hub.update(|t| t.end(JobState::Stopped, None, SystemTime::now()));
        assert_eq!(next(&mut rx)["status"]["state"], "stopped");
        assert_eq!(hub.logs(0, 10).entries.len(), 1);
    }

    #[test]
    fn the_observer_logs_k6_lines_and_tracks_progress() {
        let hub = Arc::new(Hub::new(None, Tracked::default()));
        let observer = HubObserver::new(Arc::clone(&hub));
        observer.observe(&Progress::K6Line("running (0m01.0s)"));
        observer.observe(&Progress::Warning("a metric was not measured"));
        observer.observe(&Progress::OutputFailed("disk full"));
        let page = hub.logs(0, 10);
        let events: Vec<&str> = page.entries.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events, ["k6", "log", "log"]);
        assert_eq!(page.entries[0].message, "running (0m01.0s)");
        assert_eq!(hub.tracked().last_error.as_deref(), Some("disk full"));
    }
}
