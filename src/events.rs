//! The `LB_EVENT` observer: a campaign's [`Progress`] as the events lb
//! reads.
//!
//! [`LbEvents`] turns each progress value into lb's event shape (kind,
//! level, message — the only place these messages are written) and hands
//! it to an [`EventSink`]: the binary's writes `LB_EVENT {json}` lines to
//! stderr, tests collect them in memory. Every event's status is
//! `running` (see [`Status`]). Events never carry secrets.

use serde::Serialize;

use crate::campaign::progress::{Observer, Progress};
use crate::context::RunContext;
use crate::plan::Configuration;
use std::sync::Arc;

/// Who is running: the fields of the [`RunContext`] every event repeats.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct EventOrigin {
    pub run_id: String,
    pub host: String,
    pub workload: String,
    pub repetition: u32,
    pub total_repetitions: u32,
}

impl From<&RunContext> for EventOrigin {
    fn from(ctx: &RunContext) -> Self {
        EventOrigin {
            run_id: ctx.run_id.clone(),
            host: ctx.host.clone(),
            workload: ctx.workload.clone(),
            repetition: ctx.repetition,
            total_repetitions: ctx.total_repetitions,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Info,
    Warning,
    Error,
}

/// lb's status word. lb's workload runner ends a repetition at the first
/// event whose status is `done`, `failed` or `stopped`, before its own
/// runner has written the repetition's status file (the repetition then
/// ends FAILED). The end of a repetition is lb's to report, so the binary
/// has no way to say anything but `running`: outcomes ride in
/// [`EventKind`] and the message.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Running,
}

/// What an event reports: lb's `type`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EventKind {
    /// The run's settings, once at the start.
    RunStarted,
    /// The idle node reading every cooldown compares against.
    Baseline,
    ConfigStarted,
    ConfigSkipped,
    /// A configuration failed operationally; the run goes on.
    ConfigFailed,
    /// A configuration was overloaded in most of its iterations.
    ConfigOverloaded,
    ConfigFinished,
    IterationStarted,
    IterationOverloaded,
    /// The k6 host stopped answering beyond its reconnect bound; the run
    /// stops.
    GeneratorLost,
    /// A load generator could not keep up with its share of the load; the
    /// iteration is retried or its configuration fails (never a node
    /// overload).
    GeneratorSaturated,
    /// The campaign's totals, once at the end (not the repetition's end,
    /// which lb reports).
    RunFinished,
    /// k6 output lines and warnings.
    Log,
}

/// One event in lb's shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Event {
    #[serde(flatten)]
    pub origin: EventOrigin,
    pub status: Status,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub level: Level,
    pub message: String,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// Where events go.
pub(crate) trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Writes `LB_EVENT {json}` lines to stderr, one write per line.
#[derive(Debug, Default)]
pub(crate) struct StderrSink;

impl EventSink for StderrSink {
    fn emit(&self, event: Event) {
        if let Ok(json) = serde_json::to_string(&event) {
            let line = format!("LB_EVENT {json}\n");
            // Above the terminal view when it is up, else straight to
            // stderr (nothing sensible can be done if stderr is gone).
            crate::terminal_progress::write_stderr(line.as_bytes());
        }
    }
}

#[cfg(test)]
/// Keeps events in memory (tests, and callers that want to inspect them).
#[derive(Debug, Default, Clone)]
pub(crate) struct MemorySink {
    events: Arc<std::sync::Mutex<Vec<Event>>>,
}

#[cfg(test)]
impl MemorySink {
    pub(crate) fn events(&self) -> Vec<Event> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
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
pub(crate) struct Emitter {
    origin: EventOrigin,
    sink: Arc<dyn EventSink>,
}

impl Emitter {
    pub(crate) fn new(origin: EventOrigin, sink: Arc<dyn EventSink>) -> Self {
        Emitter { origin, sink }
    }

    /// An event of `kind`.
    pub(crate) fn emit(&self, kind: EventKind, level: Level, message: impl Into<String>) {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.sink.emit(Event {
            origin: self.origin.clone(),
            status: Status::Running,
            kind,
            level,
            message: message.into(),
            timestamp,
        });
    }
}

/// The `LB_EVENT` observer: every [`Progress`] value as the event lb reads
/// (kind, level, message), sent to a sink.
pub(crate) struct LbEvents {
    emitter: Emitter,
    /// Whether k6's own output lines become `log` events
    /// (`k6_log_stream`).
    k6_lines: bool,
}

impl LbEvents {
    pub(crate) fn new(ctx: &RunContext, sink: Arc<dyn EventSink>, k6_lines: bool) -> Self {
        LbEvents {
            emitter: Emitter::new(EventOrigin::from(ctx), sink),
            k6_lines,
        }
    }
}

impl Observer for LbEvents {
    fn observe(&self, progress: &Progress<'_>) {
        for (kind, level, message) in describe(progress, self.k6_lines) {
            self.emitter.emit(kind, level, message);
        }
    }
}

/// The events one progress value becomes (none, one, or a few).
pub(crate) fn describe(progress: &Progress<'_>, k6_lines: bool) -> Vec<(EventKind, Level, String)> {
    use EventKind as K;
    let one = |kind, level, message: String| vec![(kind, level, message)];
    match progress {
        Progress::RunStarted(run) => one(
            K::RunStarted,
            Level::Info,
            format!(
                "dfaas run {} on {}: k6 host {}, gateway {}, prometheus {}, output {}",
                run.run_id,
                run.host,
                run.k6_target,
                run.gateway_url,
                run.prometheus_url,
                run.output_dir.display()
            ),
        ),
        Progress::Baseline { reading, cores } => one(
            K::Baseline,
            Level::Info,
            format!(
                "baseline: cpu {:.3} %, ram {:.0} B ({:.3} %), power {:.3}; {} cores",
                reading.cpu_pct, reading.ram_bytes, reading.ram_pct, reading.power_uw, cores
            ),
        ),
        Progress::ConfigStarted {
            id,
            configuration,
            resumed_after,
        } => {
            let mut events = one(
                K::ConfigStarted,
                Level::Info,
                format!("config {id} started: {}", label(configuration)),
            );
            if *resumed_after > 0 {
                events.push((
                    K::Log,
                    Level::Info,
                    format!("config {id}: resuming after {resumed_after} completed iteration(s)"),
                ));
            }
            events
        }
        Progress::ConfigSkipped {
            id,
            configuration,
            reason,
        } => one(
            K::ConfigSkipped,
            Level::Info,
            format!(
                "config {id} skipped ({}): {}",
                reason.as_str(),
                label(configuration)
            ),
        ),
        Progress::ConfigFailed {
            id,
            iteration,
            reason,
            ..
        } => one(
            K::ConfigFailed,
            Level::Error,
            format!("config {id} failed at iteration {iteration}: {reason}"),
        ),
        Progress::ConfigOverloaded {
            id,
            overloaded,
            iterations,
        } => one(
            K::ConfigOverloaded,
            Level::Warning,
            format!(
                "config {id} overloaded in {overloaded} of {iterations} iterations: configurations dominating it will be skipped"
            ),
        ),
        Progress::ConfigFinished { id } => {
            one(K::ConfigFinished, Level::Info, format!("config {id} finished"))
        }
        Progress::IterationStarted {
            id,
            iteration,
            iterations,
            rest_seconds,
        } => one(
            K::IterationStarted,
            Level::Info,
            format!(
                "config {id} iteration {iteration}/{iterations} started after {rest_seconds} s of cooldown"
            ),
        ),
        // What only the terminal view shows.
        Progress::PlanCounted { .. }
        | Progress::CooldownStarted { .. }
        | Progress::LoadFinished { .. } => Vec::new(),
        Progress::IterationFinished { .. } => Vec::new(),
        Progress::IterationOverloaded { id, iteration } => one(
            K::IterationOverloaded,
            Level::Warning,
            format!("config {id} iteration {iteration}: node overloaded"),
        ),
        Progress::GeneratorLost {
            id,
            iteration,
            reason,
        } => one(
            K::GeneratorLost,
            Level::Error,
            format!(
                "config {id} iteration {iteration}: {reason}; the run stops, finished rows are kept"
            ),
        ),
        Progress::GeneratorSaturated {
            id,
            iteration,
            generator,
            reason,
            retrying,
        } => one(
            K::GeneratorSaturated,
            Level::Warning,
            format!(
                "config {id} iteration {iteration}: generator {generator} saturated: {reason}; {}",
                if *retrying {
                    "the iteration is discarded and run again"
                } else {
                    "the configuration fails as generator_saturated (not a node overload)"
                }
            ),
        ),
        Progress::Warning(message) => one(K::Log, Level::Warning, message.to_string()),
        Progress::Note(message) => one(K::Log, Level::Info, message.to_string()),
        Progress::OutputFailed(error) => one(
            K::Log,
            Level::Error,
            format!("the campaign stops: {error}; finished rows are on disk"),
        ),
        Progress::K6Line(line) if k6_lines => one(K::Log, Level::Info, format!("k6: {line}")),
        Progress::K6Line(_) => Vec::new(),
        Progress::RunFinished(totals) => one(
            K::RunFinished,
            if totals.exit_code == 0 {
                Level::Info
            } else {
                Level::Warning
            },
            format!(
                "dfaas run finished: {} rows, {} skipped, {} indexed; results in {}",
                totals.rows,
                totals.skipped,
                totals.indexed,
                totals.output_dir.display()
            ),
        ),
    }
}

/// `figlet=10, env=20`: a configuration as the events name it.
pub(crate) fn label(configuration: &Configuration) -> String {
    configuration
        .pairs()
        .map(|(f, r)| format!("{f}={r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_says_running_and_names_its_kind_in_snake_case() {
        let sink = MemorySink::default();
        let emitter = Emitter::new(EventOrigin::default(), Arc::new(sink.clone()));
        emitter.emit(EventKind::ConfigFinished, Level::Info, "config x finished");
        emitter.emit(EventKind::Log, Level::Warning, "k6: line");
        let json: Vec<serde_json::Value> = sink
            .events()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        assert_eq!(json[0]["status"], "running");
        assert_eq!(json[0]["type"], "config_finished");
        assert_eq!(json[1]["status"], "running");
        assert_eq!(json[1]["type"], "log");
        assert_eq!(json[1]["level"], "warning");
    }
}
