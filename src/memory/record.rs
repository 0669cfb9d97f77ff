//! What the store records and answers, as plain data: the observer that
//! feeds the store builds these from the campaign's progress; nothing here
//! knows the campaign loop.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::plan::Configuration;
use crate::protocol::ExitCode;

/// What makes two measurements of one configuration comparable: the same
/// k6 duration and the same Prometheus queries. Stored in every event's
/// payload (`payload_json.campaign`) and matched by [`super::MemoryStore::known`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignIdentity {
    /// k6 scenario duration, in milliseconds.
    pub duration_ms: u64,
    /// The duration as configured (`30s`), for people reading the payload.
    pub duration_text: String,
    /// Digest of the query set (see [`CampaignIdentity::query_set_digest`]).
    pub query_set: String,
    /// Iterations per configuration in the run that recorded the event.
    pub iterations: u32,
}

impl CampaignIdentity {
    /// A stable digest of everything that decides what the Prometheus
    /// queries measure (e.g. the queries file's text, the Scaphandre switch
    /// and the PID regexes, joined): the first 16 hex digits of SHA-256.
    pub fn query_set_digest(parts: &[&str]) -> String {
        digest(parts)
    }

    /// `duration` in milliseconds, saturating.
    pub(crate) fn duration_ms(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "duration_ms": self.duration_ms,
            "duration": self.duration_text,
            "query_set": self.query_set,
            "iterations": self.iterations,
            "writer": writer(),
        })
    }
}

/// The first 16 hex digits of SHA-256 over `parts`, each length-prefixed
/// (so `["ab", "c"]` and `["a", "bc"]` differ): for `query_set` and
/// `config_hash`.
pub fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let mut digest = hex::encode(hasher.finalize());
    digest.truncate(16);
    digest
}

/// `lb-dfaas <version>`: recorded as `run_sessions.git_rev` and in payloads.
pub(crate) fn writer() -> String {
    format!("lb-dfaas {}", env!("CARGO_PKG_VERSION"))
}

/// A run (one lb-dfaas process for one repetition) as `run_sessions` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: String,
    pub started_at: SystemTime,
    /// Digest of the config the run was asked for (e.g. [`digest`] of its JSON).
    pub config_hash: String,
}

/// How a run ended, as `run_sessions.status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every executed configuration succeeded.
    Completed,
    /// Some configurations failed operationally, or the run stopped on an error.
    Failed,
    /// SIGINT/SIGTERM or the stop file.
    Interrupted,
}

impl RunStatus {
    /// The status of a run that exited with `code` (SPEC §2).
    pub(crate) fn of_exit_code(code: u8) -> RunStatus {
        if code == ExitCode::Ok.code() {
            RunStatus::Completed
        } else if code == ExitCode::Interrupted.code() {
            RunStatus::Interrupted
        } else {
            RunStatus::Failed
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// `run_sessions.status` while the run is going on.
pub(crate) const STATUS_RUNNING: &str = "running";

/// `run_sessions.mode` of the runs this program records (`peva_faas`
/// writes its selection mode there).
pub(crate) const MODE: &str = "sampling";

/// One finished iteration: one `execution_events` row (payload = the
/// result row, the metrics and the k6 summary), one `k6_raw_summaries` row
/// and the configuration in `config_catalog`.
#[derive(Debug, Clone, Copy)]
pub struct IterationRecord<'a> {
    pub run_id: &'a str,
    pub repetition: u32,
    pub configuration: &'a Configuration,
    /// 1-based.
    pub iteration: u32,
    /// k6's start and end.
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    /// The results.csv row as the protocol carries it (column → value).
    pub result_row: &'a Map<String, Value>,
    /// The iteration's metrics (the protocol's `MetricsEntry.metrics`).
    pub metrics: &'a Value,
    /// k6's `--summary-export` document, unchanged.
    pub summary: &'a Value,
    pub identity: &'a CampaignIdentity,
}

impl IterationRecord<'_> {
    pub(crate) fn payload(&self) -> Value {
        json!({
            "result_row": self.result_row,
            "metrics": self.metrics,
            "summary": self.summary,
            "campaign": self.identity.to_json(),
        })
    }
}

/// Canonical `skip_reason` values.
pub mod skip_reason {
    /// It dominates a configuration that overloaded the node.
    pub const DOMINATED_BY_OVERLOAD: &str = "dominated_by_overload";
    /// The memory already holds all its iterations.
    pub const ALREADY_IN_MEMORY: &str = "already_in_memory";
    /// It failed operationally (cooldown timeout, k6 or SSH error, ...).
    pub(crate) const FAILED: &str = "failed";
}

/// A configuration that was not measured in this run: one
/// `execution_events` row with iteration 0 and its `skip_reason`.
#[derive(Debug, Clone, Copy)]
pub struct SkipRecord<'a> {
    pub run_id: &'a str,
    pub repetition: u32,
    pub configuration: &'a Configuration,
    /// One of [`skip_reason`]'s values, or another short snake_case word.
    pub reason: &'a str,
    /// What a person needs to know (the failure message, the dominated
    /// configuration), if anything.
    pub detail: Option<&'a str>,
    pub at: SystemTime,
    pub identity: &'a CampaignIdentity,
}

impl SkipRecord<'_> {
    pub(crate) fn payload(&self) -> Value {
        json!({
            "result_row": null,
            "metrics": null,
            "summary": null,
            "skip_reason": self.reason,
            "detail": self.detail,
            "campaign": self.identity.to_json(),
        })
    }
}

/// Whether a write added a row or found it there already (the same run,
/// repetition, configuration and iteration: the first one is kept, as
/// `peva_faas` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Added,
    AlreadyThere,
}

/// What the memory knows of one configuration under one campaign identity:
/// each iteration number measured (by any run or repetition) and whether
/// its latest measurement overloaded the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub iterations: BTreeMap<u32, bool>,
}

impl Known {
    /// True when iterations `1..=iterations` are all there.
    pub fn is_complete(&self, iterations: u32) -> bool {
        (1..=iterations).all(|i| self.iterations.contains_key(&i))
    }

    /// The iterations of `1..=iterations` still to run, in order.
    pub fn missing(&self, iterations: u32) -> Vec<u32> {
        (1..=iterations)
            .filter(|i| !self.iterations.contains_key(i))
            .collect()
    }

    /// How many of iterations `1..=iterations` overloaded the node (the
    /// campaign's majority rule decides whether the configuration did).
    pub fn overloaded_iterations(&self, iterations: u32) -> u32 {
        let count = self
            .iterations
            .range(1..=iterations)
            .filter(|(_, overloaded)| **overloaded)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}

/// Seconds since the Unix epoch (`peva_faas` stores `time.time()`).
pub(crate) fn epoch_s(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// Microseconds since the Unix epoch, for `make_timestamp` (naive UTC, as
/// `peva_faas` writes its timestamps).
pub(crate) fn epoch_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros())
            .map(|us| -us)
            .unwrap_or(i64::MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tells_complete_missing_and_overloaded() {
        let known = Known {
            iterations: BTreeMap::from([(1, true), (3, false), (4, true)]),
        };
        assert!(!known.is_complete(3));
        assert_eq!(known.missing(3), [2]);
        assert_eq!(known.overloaded_iterations(3), 1);
        assert!(Known::default().missing(2) == [1, 2]);
        let full = Known {
            iterations: BTreeMap::from([(1, false), (2, false)]),
        };
        assert!(full.is_complete(2) && full.missing(2).is_empty());
    }

    #[test]
    fn the_query_set_digest_separates_its_parts() {
        let a = CampaignIdentity::query_set_digest(&["ab", "c"]);
        let b = CampaignIdentity::query_set_digest(&["a", "bc"]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_eq!(a, CampaignIdentity::query_set_digest(&["ab", "c"]));
    }

    #[test]
    fn epoch_conversions() {
        let t = UNIX_EPOCH + Duration::from_micros(1_500_000);
        assert_eq!(epoch_us(t), 1_500_000);
        assert!((epoch_s(t) - 1.5).abs() < 1e-9);
        assert_eq!(
            CampaignIdentity::duration_ms(Duration::from_secs(30)),
            30_000
        );
    }
}
