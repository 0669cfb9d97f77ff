//! The script suite: the cluster-manager model of k6 testing. Each
//! enabled script, taken by name from the scripts directory, runs in turn
//! on the k6 host over the same SSH runner as a campaign's iterations,
//! with the global user count as VUs (after the ramp-up, when there is
//! one), for the test duration, stopped after the maximum duration, and
//! with the interval between scripts. A script passes when k6 exits 0; it
//! fails on any other exit (99: its thresholds failed), on a k6 that
//! could not run, or when it outlasts the maximum duration.
//!
//! [`RawSuite`] is the JSON as received (the design's `K6Config` names);
//! [`validate`] checks it into a [`Suite`] that cannot be invalid. Script
//! names are file names (`[A-Za-z0-9._-]`, ending in `.js`, not hidden):
//! no `/`, no `..`, nothing absolute, and a symbolic link is followed only
//! when it stays inside the directory ([`ScriptsDir`]). The k6 host is
//! given with the dfaas config's own `k6_*` fields under `k6`, validated
//! by the same code as a campaign's.
//!
//! [`run`] reports through the [`Hub`] (status, log) and keeps per-script
//! outcomes (`suite.json`) and k6 summaries (`summaries/<script>.json`) in
//! the job's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::hub::Hub;
use super::jobs::{JobDir, JobEnd};
use super::status::{self, JobState};
use crate::config::{self, Config, FieldError};
use crate::context::RunContext;
use crate::events::Level;
use crate::k6::runner::{K6Job, K6Run, K6Runner, RunnerError, EXIT_THRESHOLDS_FAILED};
use crate::output::artifact::write_atomic;
use crate::protocol::{Context, Request};
use crate::stop::Stop;

/// Most VUs a suite may ask for.
pub(crate) const MAX_USERS: u64 = 10_000;
/// Longest test duration and ramp-up.
const MAX_TEST: Duration = Duration::from_secs(24 * 3600);
/// Longest maximum duration of one script.
const MAX_RUN: Duration = Duration::from_secs(48 * 3600);
/// Longest pause between scripts.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Most scripts in a suite.
const MAX_SCRIPTS: usize = 100;
/// A script larger than this is refused.
pub(crate) const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// The dfaas config fields a suite takes under `k6`.
pub(crate) const K6_FIELDS: [&str; 9] = [
    "k6_host",
    "k6_port",
    "k6_user",
    "k6_ssh_key",
    "k6_known_hosts_file",
    "k6_workspace_root",
    "k6_reconnect_timeout",
    "k6_outputs",
    "k6_tags",
];

/// A suite as received. Missing fields take their defaults; durations are
/// k6 durations (`<n>ms|s|m|h`, `0s` allowed for the ramp-up and the
/// interval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RawSuite {
    pub global_user_count: u64,
    pub test_duration: String,
    pub ramp_up_duration: String,
    pub max_duration: String,
    pub enabled_scripts: Vec<String>,
    pub interval_between_tests: String,
    /// The k6 host: `k6_host`, `k6_port`, `k6_user`, `k6_ssh_key`, ... as
    /// in the dfaas config.
    pub k6: Map<String, Value>,
}

impl Default for RawSuite {
    fn default() -> Self {
        RawSuite {
            global_user_count: 10,
            test_duration: "30s".into(),
            ramp_up_duration: "0s".into(),
            max_duration: "5m".into(),
            enabled_scripts: Vec::new(),
            interval_between_tests: "5s".into(),
            k6: Map::new(),
        }
    }
}

impl RawSuite {
    /// Reads the JSON of `suite`: wrong types and unknown fields are field
    /// errors under `suite.`.
    pub(crate) fn from_value(value: &Value) -> Result<Self, Vec<FieldError>> {
        if !value.is_object() {
            return Err(vec![FieldError::new("suite", "must be a JSON object")]);
        }
        let mut unknown = Vec::new();
        let parsed: Result<RawSuite, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(value, &mut |path: serde_ignored::Path<'_>| {
                unknown.push(path.to_string())
            }),
        );
        let mut errors: Vec<FieldError> = unknown
            .into_iter()
            .map(|field| FieldError::new(format!("suite.{field}"), "unknown field"))
            .collect();
        match parsed {
            Ok(raw) if errors.is_empty() => Ok(raw),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.push(FieldError::new(
                    format!("suite.{}", e.path()),
                    e.inner().to_string(),
                ));
                Err(errors)
            }
        }
    }
}

/// A checked suite.
#[derive(Debug, Clone)]
pub(crate) struct Suite {
    pub users: u32,
    pub test: Duration,
    /// As given to k6.
    pub test_text: String,
    pub ramp_up: Duration,
    pub ramp_up_text: String,
    pub max: Duration,
    pub interval: Duration,
    pub scripts: Vec<String>,
    /// The k6 host (and defaults for everything a campaign needs).
    pub config: Config,
}

impl Suite {
    /// `k6 run` arguments: the VUs for the test duration, after a ramp-up
    /// stage when there is one. They override the script's own scenarios.
    pub(crate) fn k6_args(&self) -> Vec<String> {
        let users = self.users.to_string();
        if self.ramp_up.is_zero() {
            vec![
                "--vus".into(),
                users,
                "--duration".into(),
                self.test_text.clone(),
            ]
        } else {
            vec![
                "--stage".into(),
                format!("{}:{users}", self.ramp_up_text),
                "--stage".into(),
                format!("{}:{users}", self.test_text),
            ]
        }
    }

    /// Planned seconds of one script (ramp-up and test).
    pub(crate) fn script_seconds(&self) -> f64 {
        (self.ramp_up + self.test).as_secs_f64()
    }
}

/// Checks a suite; `for_start` also wants at least one script. Every
/// problem is reported, each naming its field under `suite.`.
pub(crate) fn validate(
    raw: &RawSuite,
    scripts: &ScriptsDir,
    for_start: bool,
) -> Result<Suite, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut error = |field: &str, reason: String| {
        errors.push(FieldError::new(format!("suite.{field}"), reason));
    };
    let users = match u32::try_from(raw.global_user_count) {
        Ok(n) if (1..=MAX_USERS).contains(&u64::from(n)) => Some(n),
        _ => {
            error("globalUserCount", format!("must be 1..={MAX_USERS}"));
            None
        }
    };
    let mut duration_in = |field: &str, text: &str, min: Duration, max: Duration| {
        match crate::config::parse_k6_duration(text) {
            Ok(d) if d >= min && d <= max => Some((d, text.trim().to_string())),
            Ok(_) => {
                error(
                    field,
                    format!("{text:?} must be from {} to {}", human(min), human(max)),
                );
                None
            }
            Err(reason) => {
                error(field, reason);
                None
            }
        }
    };
    let test = duration_in(
        "testDuration",
        &raw.test_duration,
        Duration::from_secs(1),
        MAX_TEST,
    );
    let ramp_up = duration_in(
        "rampUpDuration",
        &raw.ramp_up_duration,
        Duration::ZERO,
        MAX_TEST,
    );
    let max = duration_in(
        "maxDuration",
        &raw.max_duration,
        Duration::from_secs(1),
        MAX_RUN,
    );
    let interval = duration_in(
        "intervalBetweenTests",
        &raw.interval_between_tests,
        Duration::ZERO,
        MAX_INTERVAL,
    );
    if let (Some((test, _)), Some((ramp_up, _)), Some((max, text))) = (&test, &ramp_up, &max) {
        if *max < *test + *ramp_up {
            error(
                "maxDuration",
                format!("{text:?} must be at least rampUpDuration + testDuration"),
            );
        }
    }
    if raw.enabled_scripts.len() > MAX_SCRIPTS {
        error("enabledScripts", format!("at most {MAX_SCRIPTS} scripts"));
    } else if for_start && raw.enabled_scripts.is_empty() {
        error("enabledScripts", "no script is enabled".to_string());
    }
    for (at, name) in raw.enabled_scripts.iter().enumerate() {
        if let Err(reason) = scripts.check(name) {
            error(&format!("enabledScripts[{at}]"), reason);
        } else if raw.enabled_scripts[..at].contains(name) {
            error(
                &format!("enabledScripts[{at}]"),
                format!("{name:?} is enabled twice"),
            );
        }
    }
    let config = k6_config(&raw.k6).map_err(|e| errors.extend(e)).ok();
    match (users, test, ramp_up, max, interval, config) {
        (Some(users), Some(test), Some(ramp_up), Some(max), Some(interval), Some(config))
            if errors.is_empty() =>
        {
            Ok(Suite {
                users,
                test: test.0,
                test_text: test.1,
                ramp_up: ramp_up.0,
                ramp_up_text: ramp_up.1,
                max: max.0,
                interval: interval.0,
                scripts: raw.enabled_scripts.clone(),
                config,
            })
        }
        _ => Err(errors),
    }
}

/// The k6 host fields through the dfaas config's own validation.
fn k6_config(fields: &Map<String, Value>) -> Result<Config, Vec<FieldError>> {
    let mut errors = Vec::new();
    for key in fields.keys() {
        if !K6_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("suite.k6.{key}"),
                format!("unknown field (the k6 host takes {})", K6_FIELDS.join(", ")),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let request = Request {
        config: Value::Object(fields.clone()),
        context: Context::default(),
        plugin: Default::default(),
    };
    config::load_request(&request)
        .map(|loaded| loaded.config)
        .map_err(|e| {
            e.field_errors()
                .into_iter()
                .map(|f| FieldError::new(format!("suite.k6.{}", f.field), f.reason))
                .collect()
        })
}

fn human(d: Duration) -> String {
    match d.as_secs() {
        0 => "0s".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

/// The directory scripts are taken from, by name.
#[derive(Debug, Clone)]
pub(crate) struct ScriptsDir {
    /// Canonical.
    root: PathBuf,
}

impl ScriptsDir {
    /// Creates the directory if needed.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(path)?;
        Ok(ScriptsDir {
            root: path.canonicalize()?,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// The scripts that can be enabled, sorted.
    pub(crate) fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| self.check(name).is_ok())
            .collect();
        names.sort();
        names
    }

    /// The script's file, if `name` is a script of this directory.
    pub(crate) fn check(&self, name: &str) -> Result<PathBuf, String> {
        check_name(name)?;
        let path = self.root.join(name);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|_| format!("{name:?} is not in the scripts directory"))?;
        let target = if meta.file_type().is_symlink() {
            let target = path
                .canonicalize()
                .map_err(|_| format!("{name:?} is a broken symbolic link"))?;
            if !target.starts_with(&self.root) {
                return Err(format!(
                    "{name:?} is a symbolic link leading out of the scripts directory"
                ));
            }
            target
        } else {
            path
        };
        let meta = std::fs::metadata(&target).map_err(|e| format!("cannot read {name:?}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{name:?} is not a regular file"));
        }
        if meta.len() > MAX_SCRIPT_BYTES {
            return Err(format!("{name:?} is larger than {MAX_SCRIPT_BYTES} bytes"));
        }
        Ok(target)
    }

    /// The script's text.
    pub(crate) fn read(&self, name: &str) -> Result<String, String> {
        let path = self.check(name)?;
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {name:?}: {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("{name:?} is not UTF-8 text"))
    }
}

/// A script name: a plain file name ending in `.js`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(64).collect();
    if name.contains('/') || name.contains('\\') || name.contains("..") {
        return Err(format!(
            "{shown:?} must be a file name in the scripts directory (no '/', no '..')"
        ));
    }
    if !config::is_path_segment(name) || name.starts_with('.') || !name.ends_with(".js") {
        return Err(format!(
            "{shown:?} must be a script name: up to 128 characters of [A-Za-z0-9._-], not starting with '.', ending in .js"
        ));
    }
    Ok(())
}

/// How one script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScriptStatus {
    Passed,
    Failed,
    Stopped,
}

/// One script's outcome, as `GET results` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScriptOutcome {
    pub name: String,
    pub status: ScriptStatus,
    /// k6's exit code, when it was seen.
    pub exit_code: Option<i32>,
    pub start_time: String,
    pub end_time: String,
    pub duration_seconds: f64,
    pub users: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// `summaries/<name>.json` in the job directory, when k6 wrote one.
    pub summary: Option<String>,
    /// From the summary (`null` when k6 did not report them).
    pub http_reqs: Option<f64>,
    pub http_req_failed_rate: Option<f64>,
    pub http_req_duration_avg_ms: Option<f64>,
    pub iterations: Option<f64>,
    pub checks_rate: Option<f64>,
}

/// `suite.json` of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SuiteRecord {
    pub scripts: Vec<ScriptOutcome>,
}

/// Runs the suite to its end, a stop, or a k6 host that is gone.
pub(crate) async fn run(
    suite: &Suite,
    scripts: &ScriptsDir,
    job: &JobDir,
    hub: &Hub,
    stop: &Stop,
) -> JobEnd {
    hub.log(
        Level::Info,
        "suite_started",
        &format!(
            "suite {}: {} script(s), {} VUs, ramp-up {}, duration {}, at most {:?} each, {:?} between scripts",
            job.id,
            suite.scripts.len(),
            suite.users,
            suite.ramp_up_text,
            suite.test_text,
            suite.max,
            suite.interval
        ),
    );
    let context = Context {
        run_id: Some(job.id.clone()),
        workload: Some("suite".into()),
        ..Context::default()
    };
    let ctx = match RunContext::resolve(&context, &suite.config) {
        Ok(ctx) => ctx,
        Err(e) => return JobEnd::failed(e.to_string()),
    };
    let connected = tokio::select! {
        connected = crate::session::connect_k6(&suite.config) => connected,
        () = stop.stopped() => return JobEnd::stopped(),
    };
    let mut runner = match connected {
        Ok(runner) => runner,
        Err(e) => return JobEnd::failed(e.to_string()),
    };
    let mut tags: BTreeMap<String, String> = suite.config.k6.tags.clone();
    tags.insert("run_id".into(), job.id.clone());
    tags.insert("component".into(), "k6".into());
    tags.insert("workload".into(), "suite".into());
    let run = ScriptRun {
        suite,
        scripts,
        job,
        hub,
        stop,
        ctx: &ctx,
        tags: &tags,
        args: &suite.k6_args(),
    };
    let mut record = SuiteRecord::default();
    let mut end = JobEnd::finished();
    for (at, name) in suite.scripts.iter().enumerate() {
        if at > 0 && !suite.interval.is_zero() {
            hub.log(
                Level::Info,
                "log",
                &format!("waiting {:?} before {name}", suite.interval),
            );
            if !stop.sleep(suite.interval).await {
                end = JobEnd::stopped();
                break;
            }
        }
        if stop.is_stopped() {
            end = JobEnd::stopped();
            break;
        }
        let outcome = match run.script(&mut runner, name).await {
            Ok(outcome) => outcome,
            Err(lost) => {
                end = JobEnd::failed(lost);
                break;
            }
        };
        let status = outcome.status;
        record.scripts.push(outcome);
        if let Err(e) = write_json(&job.suite_record(), &record) {
            end = JobEnd::failed(e);
            break;
        }
        if status == ScriptStatus::Stopped {
            end = JobEnd::stopped();
            break;
        }
    }
    if let Err(e) = runner.close().await {
        hub.log(
            Level::Warning,
            "log",
            &format!("closing the SSH connection: {e}"),
        );
    }
    // A suite that ended early still says which scripts it ran.
    if let Err(e) = write_json(&job.suite_record(), &record) {
        end = JobEnd::failed(e);
    }
    let count = |status| record.scripts.iter().filter(|s| s.status == status).count();
    let (passed, failed) = (count(ScriptStatus::Passed), count(ScriptStatus::Failed));
    hub.log(
        if failed == 0 && end.state == JobState::Finished {
            Level::Info
        } else {
            Level::Warning
        },
        "suite_finished",
        &format!(
            "suite {} {}: {passed} passed, {failed} failed, {} not run",
            job.id,
            match end.state {
                JobState::Stopped => "stopped",
                JobState::Failed => "failed",
                _ => "finished",
            },
            suite.scripts.len() - record.scripts.len()
        ),
    );
    end
}

/// What every script of a suite run shares.
struct ScriptRun<'a> {
    suite: &'a Suite,
    scripts: &'a ScriptsDir,
    job: &'a JobDir,
    hub: &'a Hub,
    stop: &'a Stop,
    ctx: &'a RunContext,
    tags: &'a BTreeMap<String, String>,
    args: &'a [String],
}

impl ScriptRun<'_> {
    /// Runs one script; `Err` when the k6 host is gone for good.
    async fn script(&self, runner: &mut K6Runner, name: &str) -> Result<ScriptOutcome, String> {
        let (suite, hub) = (self.suite, self.hub);
        let started = SystemTime::now();
        hub.update(|t| {
            t.current_script = Some(name.to_string());
            t.current_since = Some(started);
            t.current_user_count = Some(suite.users);
        });
        hub.log(
            Level::Info,
            "script_started",
            &format!("script {name} started ({} VUs)", suite.users),
        );
        let mut outcome = ScriptOutcome {
            name: name.to_string(),
            status: ScriptStatus::Failed,
            exit_code: None,
            start_time: status::rfc3339(started),
            end_time: String::new(),
            duration_seconds: 0.0,
            users: suite.users,
            error: None,
            summary: None,
            http_reqs: None,
            http_req_failed_rate: None,
            http_req_duration_avg_ms: None,
            iterations: None,
            checks_rate: None,
        };
        // Read now, not at validation: the file may have changed since.
        let ran = match self.scripts.read(name) {
            Ok(script) => {
                let k6_job = K6Job {
                    host: &self.ctx.host,
                    run_id: &self.ctx.run_id,
                    config_id: name,
                    script: &script,
                    outputs: &suite.config.k6.outputs,
                    tags: self.tags,
                    args: self.args,
                    max_runtime: suite.max,
                };
                let mut on_line = |line: &str| hub.log(Level::Info, "k6", line);
                Some(runner.run(&k6_job, &mut on_line, self.stop).await)
            }
            Err(reason) => {
                outcome.error = Some(reason);
                None
            }
        };
        let mut summary = None;
        let mut lost = None;
        match ran {
            None => {}
            Some(Ok(K6Run {
                summary: s,
                exit_code,
                ..
            })) => {
                outcome.exit_code = Some(exit_code);
                if exit_code == 0 {
                    outcome.status = ScriptStatus::Passed;
                } else if exit_code == EXIT_THRESHOLDS_FAILED {
                    outcome.error = Some(format!(
                        "k6 exited {EXIT_THRESHOLDS_FAILED}: thresholds failed"
                    ));
                } else {
                    outcome.error = Some(format!("k6 exited {exit_code}"));
                }
                summary = Some(s);
            }
            Some(Err(RunnerError::Interrupted { summary: s, .. })) => {
                outcome.status = ScriptStatus::Stopped;
                summary = s.map(|s| *s);
            }
            Some(Err(RunnerError::Timeout { after, .. })) => {
                outcome.error = Some(format!(
                    "ran longer than maxDuration ({after:?}) and was stopped"
                ));
            }
            Some(Err(RunnerError::K6Failed { code, log_tail })) => {
                outcome.exit_code = code;
                outcome.error = Some(format!(
                    "k6 failed with exit code {}; end of its log: {}",
                    code.map_or("unknown".to_string(), |c| c.to_string()),
                    last_lines(&log_tail, 5)
                ));
            }
            Some(Err(e @ RunnerError::Unreachable { .. })) => {
                lost = Some(e.to_string());
                outcome.error = Some(e.to_string());
            }
            Some(Err(e)) => outcome.error = Some(e.to_string()),
        }
        if let Some(summary) = &summary {
            let file = format!("summaries/{name}.json");
            match write_json(&self.job.dir.join(&file), summary) {
                Ok(()) => outcome.summary = Some(file),
                Err(e) => hub.log(Level::Warning, "log", &e),
            }
            read_metrics(summary, &mut outcome);
        }
        let ended = SystemTime::now();
        outcome.end_time = status::rfc3339(ended);
        outcome.duration_seconds = ended
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        match outcome.status {
            ScriptStatus::Passed => {
                hub.log(
                    Level::Info,
                    "script_passed",
                    &format!("script {name} passed"),
                );
                hub.update(|t| t.script_done(name, true, ended));
            }
            ScriptStatus::Failed => {
                let reason = outcome.error.clone().unwrap_or_default();
                hub.log(
                    Level::Warning,
                    "script_failed",
                    &format!("script {name} failed: {reason}"),
                );
                hub.update(|t| {
                    t.script_done(name, false, ended);
                    t.last_error = Some(format!("{name}: {reason}"));
                });
            }
            ScriptStatus::Stopped => {
                hub.log(
                    Level::Info,
                    "script_stopped",
                    &format!("script {name} stopped"),
                );
                hub.update(|t| {
                    t.current_script = None;
                    t.current_user_count = None;
                });
            }
        }
        match lost {
            Some(reason) => Err(reason),
            None => Ok(outcome),
        }
    }
}

/// The last `n` lines of a log tail, joined with ` | `.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The few numbers a suite's table shows, from k6's `--summary-export`.
fn read_metrics(summary: &Value, outcome: &mut ScriptOutcome) {
    let metric = |name: &str, field: &str| {
        summary
            .get("metrics")
            .and_then(|m| m.get(name))
            .and_then(|m| m.get(field))
            .and_then(Value::as_f64)
    };
    outcome.http_reqs = metric("http_reqs", "count");
    outcome.http_req_failed_rate = metric("http_req_failed", "value");
    outcome.http_req_duration_avg_ms = metric("http_req_duration", "avg");
    outcome.iterations = metric("iterations", "count");
    outcome.checks_rate = metric("checks", "value");
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    write_atomic(path, &text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scripts() -> (tempfile::TempDir, ScriptsDir) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scripts");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("smoke.js"), "export default function () {}").unwrap();
        std::fs::write(root.join("load-2.js"), "export default function () {}").unwrap();
        std::fs::write(dir.path().join("outside.js"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.js"), root.join("escape.js")).unwrap();
        std::os::unix::fs::symlink(root.join("smoke.js"), root.join("alias.js")).unwrap();
        std::fs::create_dir(root.join("dir.js")).unwrap();
        let scripts = ScriptsDir::open(&root).unwrap();
        (dir, scripts)
    }

    #[test]
    fn script_names_stay_in_the_directory() {
        let (_dir, scripts) = scripts();
        assert!(scripts.check("smoke.js").is_ok());
        assert!(scripts.check("alias.js").is_ok(), "a link inside is fine");
        for (name, why) in [
            ("../outside.js", "no '/'"),
            ("/etc/passwd", "no '/'"),
            ("..", "no '..'"),
            ("escape.js", "leading out"),
            ("missing.js", "not in the scripts directory"),
            ("dir.js", "not a regular file"),
            (".hidden.js", "not starting with '.'"),
            ("smoke.ts", "ending in .js"),
            ("a b.js", "[A-Za-z0-9._-]"),
        ] {
            let error = scripts.check(name).unwrap_err();
            assert!(error.contains(why), "{name}: {error}");
        }
        assert_eq!(scripts.list(), ["alias.js", "load-2.js", "smoke.js"]);
        assert_eq!(
            scripts.read("smoke.js").unwrap(),
            "export default function () {}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(crate::config::parse_k6_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            crate::config::parse_k6_duration("1500ms"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            crate::config::parse_k6_duration(" 2m "),
            Ok(Duration::from_secs(120))
        );
        assert!(crate::config::parse_k6_duration("2").is_err());
        assert!(crate::config::parse_k6_duration("1d").is_err());
        assert!(crate::config::parse_k6_duration("-1s").is_err());
        assert!(crate::config::parse_k6_duration("99999999999999999999h").is_err());
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_valid_suite_and_its_k6_arguments() {
        let (_dir, scripts) = scripts();
        let raw = RawSuite::from_value(&json!({
            "globalUserCount": 5,
            "testDuration": "10s",
            "rampUpDuration": "2s",
            "maxDuration": "1m",
            "enabledScripts": ["smoke.js", "load-2.js"],
            "intervalBetweenTests": "0s",
            "k6": {"k6_host": "10.0.0.2", "k6_port": 2222, "k6_user": "root"},
        }))
        .unwrap();
        let suite = validate(&raw, &scripts, true).unwrap();
        assert_eq!(suite.users, 5);
        assert_eq!(suite.config.k6.host, "10.0.0.2");
        assert_eq!(suite.config.k6.port, 2222);
        assert_eq!(suite.k6_args(), ["--stage", "2s:5", "--stage", "10s:5"]);
        assert_eq!(suite.script_seconds(), 12.0);
        let flat = Suite {
            ramp_up: Duration::ZERO,
            ramp_up_text: "0s".into(),
            ..suite
        };
        assert_eq!(flat.k6_args(), ["--vus", "5", "--duration", "10s"]);
    }

    #[test]
    fn every_problem_is_named() {
        let (_dir, scripts) = scripts();
        let raw = RawSuite::from_value(&json!({
            "globalUserCount": 0,
            "testDuration": "10x",
            "rampUpDuration": "25h",
            "maxDuration": "0s",
            "enabledScripts": ["../x.js", "/abs.js", "smoke.js", "smoke.js"],
            "intervalBetweenTests": "2h",
            "k6": {"k6_host": "bad host", "k6_password": "x"},
        }))
        .unwrap();
        let errors = validate(&raw, &scripts, true).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "suite.globalUserCount",
                "suite.testDuration",
                "suite.rampUpDuration",
                "suite.maxDuration",
                "suite.intervalBetweenTests",
                "suite.enabledScripts[0]",
                "suite.enabledScripts[1]",
                "suite.enabledScripts[3]",
                "suite.k6.k6_password",
            ]
        );
        let raw = RawSuite::from_value(&json!({"k6": {"k6_host": "bad host"}})).unwrap();
        let errors = validate(&raw, &scripts, false).unwrap_err();
        assert_eq!(fields(&errors), ["suite.k6.k6_host"]);
        // An empty list is a config one may save, not one to start.
        let raw = RawSuite::default();
        assert!(validate(&raw, &scripts, false).is_ok());
        let errors = validate(&raw, &scripts, true).unwrap_err();
        assert_eq!(fields(&errors), ["suite.enabledScripts"]);
        // The maximum must cover ramp-up and test.
        let raw = RawSuite {
            test_duration: "50s".into(),
            ramp_up_duration: "20s".into(),
            max_duration: "1m".into(),
            ..RawSuite::default()
        };
        let errors = validate(&raw, &scripts, false).unwrap_err();
        assert_eq!(fields(&errors), ["suite.maxDuration"]);
    }

    #[test]
    fn wrong_types_and_unknown_fields() {
        let errors = RawSuite::from_value(&json!({"globalUserCount": "ten"})).unwrap_err();
        assert_eq!(fields(&errors), ["suite.globalUserCount"]);
        let errors = RawSuite::from_value(&json!({"users": 3})).unwrap_err();
        assert_eq!(fields(&errors), ["suite.users"]);
        let errors = RawSuite::from_value(&json!([1])).unwrap_err();
        assert_eq!(fields(&errors), ["suite"]);
        let errors = RawSuite::from_value(&json!({"enabledScripts": ["a.js", 3]})).unwrap_err();
        assert_eq!(fields(&errors), ["suite.enabledScripts[1]"]);
    }

    #[test]
    fn summary_numbers() {
        let summary = json!({"metrics": {
            "http_reqs": {"count": 40, "rate": 4.0},
            "http_req_failed": {"passes": 0, "fails": 40, "value": 0},
            "http_req_duration": {"avg": 2.5, "p(95)": 4.0},
            "iterations": {"count": 40, "rate": 4.0},
        }});
        let mut outcome = ScriptOutcome {
            name: "a.js".into(),
            status: ScriptStatus::Passed,
            exit_code: Some(0),
            start_time: String::new(),
            end_time: String::new(),
            duration_seconds: 0.0,
            users: 1,
            error: None,
            summary: None,
            http_reqs: None,
            http_req_failed_rate: None,
            http_req_duration_avg_ms: None,
            iterations: None,
            checks_rate: None,
        };
        read_metrics(&summary, &mut outcome);
        assert_eq!(outcome.http_reqs, Some(40.0));
        assert_eq!(outcome.http_req_failed_rate, Some(0.0));
        assert_eq!(outcome.http_req_duration_avg_ms, Some(2.5));
        assert_eq!(outcome.checks_rate, None, "not measured is null, never 0");
    }
}
