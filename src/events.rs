//! Progress events in lb's `LB_EVENT {json}` shape.
//!
//! Deep code never prints: it sends [`Event`]s to an [`EventSink`]. The
//! binary's sink writes `LB_EVENT {json}` lines to stderr; tests collect
//! them in memory. Events never carry secrets.

use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Who is running: the fields every event repeats.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EventOrigin {
    pub run_id: String,
    pub host: String,
    pub workload: String,
    pub repetition: u32,
    pub total_repetitions: u32,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

/// One event. `kind` is lb's `type` (`status`, `log`, ...); `status` is
/// lb's status word (`running`, `skipped`, `overloaded`, `done`, `failed`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    #[serde(flatten)]
    pub origin: EventOrigin,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub level: Level,
    pub message: String,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// Where events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Writes `LB_EVENT {json}` lines to stderr, one write per line.
#[derive(Debug, Default)]
pub struct StderrSink;

impl EventSink for StderrSink {
    fn emit(&self, event: Event) {
        if let Ok(json) = serde_json::to_string(&event) {
            let line = format!("LB_EVENT {json}\n");
            let mut err = std::io::stderr().lock();
            // Nothing sensible can be done if stderr is gone.
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
    }
}

/// Keeps events in memory (tests, and callers that want to inspect them).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    events: Arc<Mutex<Vec<Event>>>,
}

impl MemorySink {
    pub fn events(&self) -> Vec<Event> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: Event) {
        match self.events.lock() {
            Ok(mut events) => events.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }
}

/// Builds events for one origin with the current time.
#[derive(Clone)]
pub struct Emitter {
    origin: EventOrigin,
    sink: Arc<dyn EventSink>,
}

impl Emitter {
    pub fn new(origin: EventOrigin, sink: Arc<dyn EventSink>) -> Self {
        Emitter { origin, sink }
    }

    pub fn origin(&self) -> &EventOrigin {
        &self.origin
    }

    /// A `status` event.
    pub fn status(&self, status: &str, level: Level, message: impl Into<String>) {
        self.emit("status", status, level, message.into());
    }

    /// A `log` event (k6 output lines, warnings).
    pub fn log(&self, level: Level, message: impl Into<String>) {
        self.emit("log", "running", level, message.into());
    }

    fn emit(&self, kind: &str, status: &str, level: Level, message: String) {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.sink.emit(Event {
            origin: self.origin.clone(),
            status: status.to_string(),
            kind: kind.to_string(),
            level,
            message,
            timestamp,
        });
    }
}
