//! The job status the API reports: the cluster-manager design's `K6Status`
//! names (`isRunning`, `currentScript`, `startTime`, `currentUserCount`,
//! `completedScripts`, `failedScripts`, `lastError`) and the campaign's
//! (`kind`, `state`, `currentConfig`, `completedConfigs`, `failedConfigs`,
//! `progress`).
//!
//! [`Tracked`] is what changes when something happens — a campaign's
//! [`Progress`] applied by [`apply`], the suite runner's steps — and is
//! compared to decide whether a status change is pushed. [`Status`] is
//! the document: [`Tracked`] plus the clock-dependent elapsed time and
//! estimate, computed when it is read. Pure: the clock is a parameter.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::campaign::progress::Progress;

/// Lists in the status keep at most this many most recent names; the
/// counts in `progress` are complete, and the results have everything.
pub(crate) const MAX_LISTED: usize = 200;

/// Where a job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    /// No job has run since the server started.
    #[default]
    Idle,
    Running,
    /// A stop was requested; the job is winding down.
    Stopping,
    /// Stopped on request (or by the server's shutdown); what finished is kept.
    Stopped,
    /// Ran to its end (a campaign with failed configurations, or a suite
    /// with failed scripts, is finished too: see the failed lists).
    Finished,
    /// Could not run or could not go on (the k6 host unreachable, a full
    /// disk); `lastError` says why.
    Failed,
}

impl JobState {
    pub(crate) fn is_active(self) -> bool {
        matches!(self, JobState::Running | JobState::Stopping)
    }
}

/// The two kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobKind {
    /// A DFaaS sampling campaign, as `lb-dfaas run` runs it.
    Campaign,
    /// k6 scripts from the scripts directory, one after the other.
    Suite,
}

/// The configuration a campaign is measuring.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CurrentConfig {
    pub id: String,
    /// Requests per second per function.
    pub rates: BTreeMap<String, u64>,
    /// The iteration running (0 before the first starts).
    pub iteration: u32,
    pub iterations: u32,
}

/// How the time left is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) enum Estimate {
    #[default]
    None,
    /// Configurations take `planned_s` each (duration × iterations) until
    /// some have run; then the mean of those that ran (skipped ones take
    /// no time and are not counted).
    Campaign {
        planned_s: f64,
        ran: u64,
        ran_s: f64,
    },
    /// Each script takes `script_s` (ramp-up + duration) and is followed
    /// by `interval_s`, but the last.
    Suite { script_s: f64, interval_s: f64 },
}

/// The status fields that change when something happens.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Tracked {
    pub state: JobState,
    pub kind: Option<JobKind>,
    pub job_id: Option<String>,
    pub start_time: Option<SystemTime>,
    pub end_time: Option<SystemTime>,
    pub current_script: Option<String>,
    /// When the current script or configuration started.
    pub current_since: Option<SystemTime>,
    pub current_user_count: Option<u32>,
    pub completed_scripts: Vec<String>,
    pub failed_scripts: Vec<String>,
    pub current_config: Option<CurrentConfig>,
    pub completed_configs: Vec<String>,
    pub failed_configs: Vec<String>,
    /// Configurations or scripts done (finished, failed or skipped).
    pub done: u64,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// results.csv rows this job wrote.
    pub result_rows: u64,
    /// A campaign's iterations per configuration.
    pub iterations: u32,
    pub last_error: Option<String>,
    /// The job that ran before this server started, if any (its results
    /// are still served).
    pub last_job_id: Option<String>,
    pub estimate: Estimate,
}

impl Tracked {
    /// A job that starts now.
    pub(crate) fn started(
        kind: JobKind,
        job_id: &str,
        total: u64,
        estimate: Estimate,
        now: SystemTime,
    ) -> Self {
        Tracked {
            state: JobState::Running,
            kind: Some(kind),
            job_id: Some(job_id.to_string()),
            start_time: Some(now),
            total,
            estimate,
            ..Tracked::default()
        }
    }

    /// The job ended in `state`.
    pub(crate) fn end(&mut self, state: JobState, error: Option<String>, now: SystemTime) {
        self.state = state;
        self.end_time = Some(now);
        self.current_script = None;
        self.current_config = None;
        self.current_since = None;
        self.current_user_count = None;
        if error.is_some() {
            self.last_error = error;
        }
    }

    /// A suite script passed or failed.
    pub(crate) fn script_done(&mut self, name: &str, passed: bool, now: SystemTime) {
        if passed {
            push_listed(&mut self.completed_scripts, name);
            self.completed += 1;
        } else {
            push_listed(&mut self.failed_scripts, name);
            self.failed += 1;
        }
        self.ran(now);
        self.current_script = None;
        self.current_user_count = None;
    }

    /// One more configuration or script that took time is done.
    fn ran(&mut self, now: SystemTime) {
        self.done += 1;
        if let (Estimate::Campaign { ran, ran_s, .. }, Some(since)) =
            (&mut self.estimate, self.current_since)
        {
            *ran += 1;
            *ran_s += seconds_between(since, now);
        }
        self.current_since = None;
    }

    /// The document at `now`.
    pub(crate) fn status(&self, now: SystemTime) -> Status {
        let elapsed = self
            .start_time
            .map(|start| seconds_between(start, self.end_time.unwrap_or(now)));
        Status {
            is_running: self.state.is_active(),
            current_script: self.current_script.clone(),
            start_time: self.start_time.map(rfc3339),
            current_user_count: self.current_user_count,
            completed_scripts: self.completed_scripts.clone(),
            failed_scripts: self.failed_scripts.clone(),
            last_error: self.last_error.clone(),
            kind: self.kind,
            state: self.state,
            job_id: self.job_id.clone(),
            last_job_id: self.last_job_id.clone(),
            end_time: self.end_time.map(rfc3339),
            current_config: self.current_config.clone(),
            completed_configs: self.completed_configs.clone(),
            failed_configs: self.failed_configs.clone(),
            result_rows: self.result_rows,
            progress: ProgressInfo {
                done: self.done,
                total: self.total,
                completed: self.completed,
                failed: self.failed,
                skipped: self.skipped,
                elapsed_seconds: elapsed,
                eta_seconds: self.eta(now),
            },
        }
    }

    /// Seconds left, while running.
    fn eta(&self, now: SystemTime) -> Option<f64> {
        if self.state != JobState::Running {
            return None;
        }
        let left = self.total.saturating_sub(self.done) as f64;
        let in_current = self
            .current_since
            .map_or(0.0, |since| seconds_between(since, now));
        match self.estimate {
            Estimate::None => None,
            Estimate::Campaign {
                planned_s,
                ran,
                ran_s,
            } => {
                let each = if ran > 0 {
                    ran_s / ran as f64
                } else {
                    planned_s
                };
                Some((left * each - in_current.min(each)).max(0.0))
            }
            Estimate::Suite {
                script_s,
                interval_s,
            } => {
                let pauses = (left - 1.0).max(0.0);
                Some((left * script_s + pauses * interval_s - in_current.min(script_s)).max(0.0))
            }
        }
    }
}

/// Applies a campaign's progress value.
pub(crate) fn apply(tracked: &mut Tracked, progress: &Progress<'_>, now: SystemTime) {
    match progress {
        Progress::ConfigStarted {
            id, configuration, ..
        } => {
            let iterations = tracked.iterations;
            tracked.current_config = Some(CurrentConfig {
                id: id.to_string(),
                rates: configuration
                    .pairs()
                    .map(|(f, r)| (f.to_string(), r))
                    .collect(),
                iteration: 0,
                iterations,
            });
            tracked.current_since = Some(now);
        }
        Progress::IterationStarted {
            iteration,
            iterations,
            ..
        } => {
            if let Some(current) = &mut tracked.current_config {
                current.iteration = *iteration;
                current.iterations = *iterations;
            }
        }
        Progress::IterationFinished { .. } => tracked.result_rows += 1,
        Progress::ConfigFinished { id } => {
            push_listed(&mut tracked.completed_configs, id.as_str());
            tracked.completed += 1;
            tracked.ran(now);
            tracked.current_config = None;
        }
        Progress::ConfigFailed { id, reason, .. } => {
            push_listed(&mut tracked.failed_configs, id.as_str());
            tracked.failed += 1;
            tracked.last_error = Some(format!("config {id}: {reason}"));
            tracked.ran(now);
            tracked.current_config = None;
        }
        Progress::ConfigSkipped { .. } => {
            tracked.skipped += 1;
            tracked.done += 1;
        }
        Progress::GeneratorLost { reason, .. } => {
            tracked.last_error = Some(reason.to_string());
        }
        Progress::OutputFailed(error) => tracked.last_error = Some(error.to_string()),
        Progress::RunStarted(_)
        | Progress::PlanCounted { .. }
        | Progress::CooldownStarted { .. }
        | Progress::LoadFinished { .. }
        | Progress::Baseline { .. }
        | Progress::ConfigOverloaded { .. }
        | Progress::IterationOverloaded { .. }
        | Progress::Warning(_)
        | Progress::GeneratorSaturated { .. }
        | Progress::Note(_)
        | Progress::K6Line(_)
        | Progress::RunFinished(_) => {}
    }
}

fn push_listed(list: &mut Vec<String>, name: &str) {
    if list.len() == MAX_LISTED {
        list.remove(0);
    }
    list.push(name.to_string());
}

fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// `2024-05-01T12:00:00Z` (UTC, whole seconds).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let unix_s = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // `YYYY-MM-DD HH:MM:SS UTC` → RFC 3339.
    crate::html_report::format_utc(unix_s)
        .replacen(' ', "T", 1)
        .replace(" UTC", "Z")
}

/// `GET /api/k6/status`, and what the WebSocket pushes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    pub is_running: bool,
    pub current_script: Option<String>,
    pub start_time: Option<String>,
    pub current_user_count: Option<u32>,
    pub completed_scripts: Vec<String>,
    pub failed_scripts: Vec<String>,
    pub last_error: Option<String>,
    pub kind: Option<JobKind>,
    pub state: JobState,
    pub job_id: Option<String>,
    pub last_job_id: Option<String>,
    pub end_time: Option<String>,
    pub current_config: Option<CurrentConfig>,
    pub completed_configs: Vec<String>,
    pub failed_configs: Vec<String>,
    pub result_rows: u64,
    pub progress: ProgressInfo,
}

/// How far the job is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProgressInfo {
    /// Configurations or scripts done: completed + failed + skipped.
    pub done: u64,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub elapsed_seconds: Option<f64>,
    /// Estimated seconds left while running; `null` otherwise.
    pub eta_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FunctionName;
    use crate::plan::Configuration;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn configuration(rate: u64) -> Configuration {
        Configuration::from_pairs([(FunctionName::parse("figlet").unwrap(), rate)]).unwrap()
    }

    #[test]
    fn a_campaign_seen_through_its_progress() {
        let estimate = Estimate::Campaign {
            planned_s: 10.0,
            ran: 0,
            ran_s: 0.0,
        };
        let mut t = Tracked::started(JobKind::Campaign, "job-1", 3, estimate, at(0));
        t.iterations = 2;
        let status = t.status(at(0));
        assert!(status.is_running);
        assert_eq!(status.start_time.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(status.progress.eta_seconds, Some(30.0));

        let c = configuration(10);
        let id = c.config_id();
        apply(
            &mut t,
            &Progress::ConfigStarted {
                id: &id,
                configuration: &c,
                resumed_after: 0,
            },
            at(1),
        );
        assert_eq!(t.current_config.as_ref().unwrap().iterations, 2);
        apply(
            &mut t,
            &Progress::IterationStarted {
                id: &id,
                iteration: 1,
                iterations: 2,
                rest_seconds: 0,
            },
            at(2),
        );
        let current = t.current_config.clone().unwrap();
        assert_eq!(current.rates, BTreeMap::from([("figlet".to_string(), 10)]));
        assert_eq!((current.iteration, current.iterations), (1, 2));
        apply(&mut t, &Progress::ConfigFinished { id: &id }, at(21));
        assert_eq!(t.completed_configs, [id.to_string()]);
        assert!(t.current_config.is_none());
        // One configuration took 20 s: two left take 40 s.
        assert_eq!(t.status(at(21)).progress.eta_seconds, Some(40.0));

        let c2 = configuration(20);
        let id2 = c2.config_id();
        apply(
            &mut t,
            &Progress::ConfigSkipped {
                id: &id2,
                configuration: &c2,
                reason: crate::plan::SkipReason::DominatedByOverload,
            },
            at(22),
        );
        apply(
            &mut t,
            &Progress::ConfigFailed {
                id: &id2,
                configuration: &c2,
                iteration: 1,
                reason: "cooldown timed out",
            },
            at(23),
        );
        let status = t.status(at(23));
        assert_eq!(status.progress.done, 3);
        assert_eq!(
            (
                status.progress.completed,
                status.progress.failed,
                status.progress.skipped
            ),
            (1, 1, 1)
        );
        assert_eq!(
            status.last_error.as_deref(),
            Some(format!("config {id2}: cooldown timed out").as_str())
        );
        assert_eq!(status.progress.eta_seconds, Some(0.0));

        t.end(JobState::Finished, None, at(30));
        let status = t.status(at(100));
        assert!(!status.is_running);
        assert_eq!(status.progress.elapsed_seconds, Some(30.0));
        assert_eq!(status.progress.eta_seconds, None);
        assert_eq!(status.end_time.as_deref(), Some("2023-11-14T22:13:50Z"));
    }

    #[test]
    fn a_suite_estimate_counts_scripts_and_pauses() {
        let estimate = Estimate::Suite {
            script_s: 10.0,
            interval_s: 5.0,
        };
        let mut t = Tracked::started(JobKind::Suite, "job-2", 3, estimate, at(0));
        // 3 scripts and 2 pauses.
        assert_eq!(t.status(at(0)).progress.eta_seconds, Some(40.0));
        t.current_script = Some("a.js".into());
        t.current_since = Some(at(0));
        assert_eq!(t.status(at(4)).progress.eta_seconds, Some(36.0));
        t.script_done("a.js", false, at(10));
        assert_eq!(t.failed_scripts, ["a.js"]);
        assert_eq!(t.status(at(10)).progress.eta_seconds, Some(25.0));
    }

    #[test]
    fn lists_keep_the_most_recent() {
        let mut list = Vec::new();
        for i in 0..MAX_LISTED + 3 {
            push_listed(&mut list, &i.to_string());
        }
        assert_eq!(list.len(), MAX_LISTED);
        assert_eq!(list[0], "3");
    }

    #[test]
    fn the_document_uses_the_design_names() {
        let t = Tracked::default();
        let json = serde_json::to_value(t.status(at(0))).unwrap();
        for key in [
            "isRunning",
            "currentScript",
            "startTime",
            "currentUserCount",
            "completedScripts",
            "failedScripts",
            "lastError",
            "kind",
            "state",
            "currentConfig",
            "completedConfigs",
            "failedConfigs",
            "progress",
        ] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(json["state"], "idle");
        for key in ["done", "total", "etaSeconds", "elapsedSeconds"] {
            assert!(json["progress"].get(key).is_some(), "progress.{key}");
        }
    }
}
