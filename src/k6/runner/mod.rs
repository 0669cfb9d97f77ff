//! k6 on the load generator, over one multiplexed SSH connection.
//!
//! One OpenSSH ControlMaster serves the whole run; every step is a short
//! remote command on it: upload the script on stdin, start k6 detached,
//! poll its log and exit status, stop it by pid, read the summary on
//! stdout. k6 runs under `setsid` with its output in a file, so a dying
//! SSH channel cannot take it down (k6 does not trap SIGHUP), and a
//! stopped run ([`Stop`]) stops it with `kill -INT <pid>` (a graceful stop
//! that still writes the summary), then `kill -KILL`.
//!
//! The parts, one concern each:
//! - `ssh`: the session — the master's lifetime (bounded connect, bounded
//!   idle persistence, reconnect with backoff when the host stops
//!   answering, the masters of killed runs cleaned up at the next start:
//!   `control_dir`) and bounded commands on it;
//! - `remote`: the shell programs (start, poll, summary, stop) as pure
//!   functions of typed inputs, every value shell-quoted, and the
//!   workspace `<workspace_root>/<host>/<run_id>/<config_id>/` whose path
//!   segments are checked;
//! - `log_lines`: framing of k6's streamed log into lines;
//! - this module: [`K6Runner`], which orders those steps for one k6 run
//!   and decides what its end means (a summary, a warning or an error).
//! - `local`: [`LocalK6Runner`], k6 on this machine as a child process
//!   (`k6_host: local`), with the same log framing, stop bound and
//!   outcomes.
//!
//! Nothing here prints: k6 log lines go to a caller-supplied callback.

mod control_dir;
mod error;
mod local;
mod log_lines;
mod remote;
mod ssh;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::config::K6Host;
use crate::stop::Stop;
pub use error::RunnerError;
use error::{excerpt, require_success};
pub use local::{LocalK6Runner, LocalOptions};
use log_lines::LogLines;
use remote::{parse_poll, K6Status, Workspace};
use ssh::SshSession;

/// k6's exit code when thresholds failed.
pub(crate) const EXIT_THRESHOLDS_FAILED: i32 = 99;

/// Polls in a row that may fail on the transport before the run fails.
const MAX_POLL_FAILURES: u32 = 3;
/// Polls that may see k6 gone without its exit status being written yet.
const MAX_GONE_POLLS: u32 = 20;
/// Pause after a poll that saw k6 gone, before looking again.
const GONE_PAUSE: Duration = Duration::from_millis(100);
/// Margin on top of `command_timeout + stop_grace` for the stop program.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// How strictly the k6 host's key is checked (`StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Only hosts already in known_hosts.
    Strict,
    /// Add unknown hosts, refuse changed keys (`accept-new`).
    AcceptNew,
    /// No checking at all.
    Off,
}

/// Connection and supervision settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerOptions {
    /// Bound on establishing the master (TCP, handshake, auth).
    pub connect_timeout: Duration,
    /// `ServerAliveInterval`: a dead peer is noticed after 3 of these.
    pub server_alive_interval: Duration,
    /// The master exits after this long without sessions, so a killed
    /// client does not leave it behind for ever (a live runner reconnects).
    pub control_persist_idle: Duration,
    pub host_key_check: HostKeyCheck,
    /// known_hosts file to use instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
    /// Bound on each short remote command (upload, start, poll, fetch).
    pub command_timeout: Duration,
    /// How often k6's log and status are polled.
    pub poll_interval: Duration,
    /// Time between `kill -INT` and `kill -KILL` when stopping k6.
    pub stop_grace: Duration,
    /// The k6 executable on the remote PATH (or an absolute path).
    pub k6_command: String,
    /// How long a k6 host that stopped answering is retried, with
    /// backoff, before a run gives up with [`RunnerError::Unreachable`].
    /// The first connection is not retried (a wrong host fails fast).
    pub reconnect_within: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            connect_timeout: Duration::from_secs(10),
            server_alive_interval: Duration::from_secs(10),
            control_persist_idle: Duration::from_secs(600),
            host_key_check: HostKeyCheck::AcceptNew,
            known_hosts_file: None,
            command_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            stop_grace: Duration::from_secs(3),
            k6_command: "k6".to_string(),
            reconnect_within: Duration::from_secs(60),
        }
    }
}

/// One k6 execution.
#[derive(Debug, Clone, Copy)]
pub struct K6Job<'a> {
    /// The target host's name: a workspace path segment (as are the next
    /// two: [`crate::config::is_path_segment`], else
    /// [`RunnerError::InvalidWorkspace`]).
    pub host: &'a str,
    /// A workspace path segment.
    pub run_id: &'a str,
    /// A workspace path segment.
    pub config_id: &'a str,
    /// The k6 script, uploaded as `script.js`.
    pub script: &'a str,
    /// `--out` values.
    pub outputs: &'a [String],
    /// `--tag key=value` pairs.
    pub tags: &'a BTreeMap<String, String>,
    /// Further `k6 run` arguments placed before the script, each one
    /// quoted word (e.g. `--vus`, `10`: the CLI overrides the script's
    /// own options).
    pub args: &'a [String],
    /// k6 is stopped and the run fails with [`RunnerError::Timeout`] after
    /// this long (scenario duration plus a margin).
    pub max_runtime: Duration,
}

/// A k6 run that finished with a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct K6Run {
    /// The `--summary-export` document.
    pub summary: Value,
    pub exit_code: i32,
    /// Just before k6 was started (local clock).
    pub started_at: SystemTime,
    /// When k6 was seen to have exited (local clock, within ~0.1 s).
    pub ended_at: SystemTime,
    /// The last lines of k6's log.
    pub log_tail: String,
    /// The remote workspace directory.
    pub workspace: String,
    /// Things the caller should report (e.g. thresholds failed).
    pub warnings: Vec<String>,
}

/// A k6 started by this runner and not yet seen to end.
#[derive(Debug, Clone)]
struct ActiveK6 {
    workspace: Workspace,
    pid: u32,
}

/// How the supervision of a k6 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited(i32),
    /// Gone without an exit status, for [`MAX_GONE_POLLS`] polls.
    Vanished,
    Cancelled,
    TimedOut,
}

/// Everything known once a k6 run is over: what [`conclude`] decides on.
#[derive(Debug)]
struct Finished {
    ending: Ending,
    /// From k6's `exit_code` file; `None` when k6 left none.
    exit_code: Option<i32>,
    summary: Option<Value>,
    log_tail: String,
    workspace: String,
    started_at: SystemTime,
    ended_at: SystemTime,
    /// From just before k6 was started to the end of the summary fetch.
    ran_for: Duration,
}

/// The connection to the k6 host and the k6 runs on it.
pub struct K6Runner {
    ssh: SshSession,
    options: RunnerOptions,
    workspace_root: String,
    active: Option<ActiveK6>,
}

impl std::fmt::Debug for K6Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K6Runner")
            .field("host", &self.ssh.destination())
            .field("connected", &self.ssh.is_connected())
            .finish()
    }
}

impl K6Runner {
    /// Starts the SSH master to `target`, within `options.connect_timeout`.
    pub async fn connect(target: &K6Host, options: RunnerOptions) -> Result<Self, RunnerError> {
        let ssh = SshSession::connect(target, &options).await?;
        Ok(K6Runner {
            ssh,
            options,
            workspace_root: target.workspace_root.clone(),
            active: None,
        })
    }

    /// Control directories (and their SSH masters) that killed runs of
    /// this program had left, removed when this runner started.
    pub fn leftovers_removed(&self) -> &[PathBuf] {
        self.ssh.leftovers_removed()
    }

    /// This run's control directory (for diagnostics and tests).
    pub fn control_directory(&self) -> &Path {
        self.ssh.control_directory()
    }

    /// The master's control socket (for diagnostics and tests).
    pub fn control_socket(&self) -> Option<&Path> {
        self.ssh.control_socket()
    }

    /// The remote k6 version line (a preflight check that k6 is there).
    pub async fn k6_version(&mut self) -> Result<String, RunnerError> {
        self.ssh.ensure_connected().await?;
        let program = remote::k6_version(&self.options.k6_command)?;
        let output = self.ssh.exec_ok("k6 version", &program, None).await?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs one k6 job to its end, streaming each log line to `on_line`.
    /// When `stop` is requested, k6 is stopped (SIGINT, then SIGKILL after
    /// `stop_grace`) and [`RunnerError::Interrupted`] is returned.
    ///
    /// Dropping the returned future instead leaves k6 running remotely
    /// until [`K6Runner::close`] stops it.
    pub async fn run(
        &mut self,
        job: &K6Job<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<K6Run, RunnerError> {
        // Every program is built (and every value checked) before the
        // host is contacted.
        let workspace = Workspace::new(&self.workspace_root, job)?;
        let start = remote::start(
            &workspace,
            &self.options.k6_command,
            job.outputs,
            job.tags,
            job.args,
        )?;
        let upload = remote::upload_script(&workspace)?;
        self.connect_for_run(stop).await?;
        self.ssh
            .exec_ok("uploading script.js", &upload, Some(job.script.as_bytes()))
            .await?;
        // A stop asked for before k6 starts: do not start it.
        if stop.is_stopped() {
            return Err(RunnerError::interrupted());
        }

        let started_at = SystemTime::now();
        let started = Instant::now();
        let k6 = self.start_k6(workspace, &start).await?;
        let mut log = LogLines::default();
        let ending = self
            .supervise(&k6, job.max_runtime, &mut log, on_line, stop)
            .await?;
        let ended_at = SystemTime::now();
        let exit_code = self.wind_down(&k6, ending, &mut log, on_line).await?;
        log.finish(on_line);
        self.active = None;

        let summary = self.fetch_summary(&k6.workspace).await?;
        conclude(Finished {
            ending,
            exit_code,
            summary,
            log_tail: log.tail(),
            workspace: k6.workspace.as_str().to_string(),
            started_at,
            ended_at,
            ran_for: started.elapsed(),
        })
    }

    /// Stops a k6 left running by a dropped [`K6Runner::run`] future.
    async fn stop_active(&mut self) -> Result<(), RunnerError> {
        if let Some(active) = self.active.clone() {
            self.ssh.ensure_connected().await?;
            self.stop_k6(&active).await?;
            self.active = None;
        }
        Ok(())
    }

    /// Stops any k6 still running and shuts the master down.
    pub async fn close(mut self) -> Result<(), RunnerError> {
        let stopped = self.stop_active().await;
        let closed = self.ssh.close().await;
        stopped?;
        closed
    }

    /// The usual case costs one check of the master; only a host that
    /// does not answer goes through the (stoppable) retries.
    async fn connect_for_run(&mut self, stop: &Stop) -> Result<(), RunnerError> {
        match self.ssh.ensure_connected().await {
            Ok(()) => Ok(()),
            Err(RunnerError::Connect { .. }) => self.ssh.reconnect(stop).await,
            Err(other) => Err(other),
        }
    }

    /// Starts k6 detached with `program` ([`remote::start`]) and records
    /// it as the active k6.
    async fn start_k6(
        &mut self,
        workspace: Workspace,
        program: &str,
    ) -> Result<ActiveK6, RunnerError> {
        let output = self.ssh.exec_ok("starting k6", program, None).await?;
        let pid_text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let pid: u32 = pid_text.parse().map_err(|_| RunnerError::Remote {
            action: "starting k6".to_string(),
            exit: Some(0),
            stderr: format!(
                "no k6 pid came back (got {pid_text:?}); {}",
                excerpt(&String::from_utf8_lossy(&output.stderr))
            ),
        })?;
        let k6 = ActiveK6 { workspace, pid };
        self.active = Some(k6.clone());
        Ok(k6)
    }

    /// Polls `k6` until it exits, vanishes, `stop` is requested or
    /// `max_runtime` passes, streaming its log through `log`. A poll that
    /// fails on the transport reconnects: k6 is detached, so a new master
    /// finds it still running and its log is read on from the same offset.
    async fn supervise(
        &mut self,
        k6: &ActiveK6,
        max_runtime: Duration,
        log: &mut LogLines,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<Ending, RunnerError> {
        let deadline = tokio::time::sleep(max_runtime);
        tokio::pin!(deadline);
        let wait_steps = remote::poll_wait_steps(self.options.poll_interval);
        let mut poll_failures = 0;
        let mut gone_polls = 0;
        loop {
            let status = tokio::select! {
                biased;
                _ = stop.stopped() => return Ok(Ending::Cancelled),
                _ = &mut deadline => return Ok(Ending::TimedOut),
                status = self.poll(k6, log.offset(), wait_steps) => status,
            };
            match status {
                Ok((status, bytes)) => {
                    poll_failures = 0;
                    log.push(&bytes, on_line);
                    match status {
                        K6Status::Exited(code) => return Ok(Ending::Exited(code)),
                        K6Status::Running => gone_polls = 0,
                        K6Status::Gone => {
                            gone_polls += 1;
                            if gone_polls > MAX_GONE_POLLS {
                                return Ok(Ending::Vanished);
                            }
                            tokio::time::sleep(GONE_PAUSE).await;
                        }
                    }
                }
                Err(e) => {
                    poll_failures += 1;
                    if poll_failures >= MAX_POLL_FAILURES {
                        return Err(e);
                    }
                    match self.ssh.reconnect(stop).await {
                        Ok(()) => {}
                        Err(RunnerError::Interrupted { .. }) => return Ok(Ending::Cancelled),
                        Err(other) => return Err(other),
                    }
                }
            }
        }
    }

    /// k6's exit code once supervision ended: the one seen, or, for a
    /// cancelled or overlong run, stops k6 and collects the rest of its log
    /// and its exit status. `None` when k6 left no exit status.
    async fn wind_down(
        &mut self,
        k6: &ActiveK6,
        ending: Ending,
        log: &mut LogLines,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<i32>, RunnerError> {
        match ending {
            Ending::Exited(code) => Ok(Some(code)),
            Ending::Vanished => Ok(None),
            Ending::Cancelled | Ending::TimedOut => {
                self.ssh.ensure_connected().await?;
                self.stop_k6(k6).await?;
                let (status, bytes) = self.poll(k6, log.offset(), 1).await?;
                log.push(&bytes, on_line);
                Ok(match status {
                    K6Status::Exited(code) => Some(code),
                    _ => None,
                })
            }
        }
    }

    /// `kill -INT`, wait up to `stop_grace`, then `kill -KILL`; returns
    /// once the process is gone (or after a bounded wait).
    async fn stop_k6(&mut self, k6: &ActiveK6) -> Result<(), RunnerError> {
        let program = remote::stop(&k6.workspace, k6.pid, self.options.stop_grace)?;
        let bound = self.options.command_timeout + self.options.stop_grace + STOP_MARGIN;
        self.ssh
            .exec_bounded("stopping k6", &program, None, bound)
            .await
            .and_then(|output| require_success("stopping k6", output))?;
        Ok(())
    }

    /// Waits up to `wait_steps` × 20 ms for k6 to end, then reports its
    /// status and the log bytes after `offset`.
    async fn poll(
        &self,
        k6: &ActiveK6,
        offset: u64,
        wait_steps: u32,
    ) -> Result<(K6Status, Vec<u8>), RunnerError> {
        let program = remote::poll(&k6.workspace, k6.pid, offset, wait_steps)?;
        let output = self.ssh.exec_ok("polling k6", &program, None).await?;
        parse_poll(&output.stdout).ok_or_else(|| RunnerError::Remote {
            action: "polling k6".to_string(),
            exit: Some(0),
            stderr: format!(
                "unexpected status line {:?}",
                String::from_utf8_lossy(output.stdout.split(|b| *b == b'\n').next().unwrap_or(b""))
            ),
        })
    }

    /// The summary, or `None` when k6 wrote none.
    async fn fetch_summary(&self, workspace: &Workspace) -> Result<Option<Value>, RunnerError> {
        let program = remote::read_summary(workspace)?;
        let action = "reading summary.json";
        let output = self.ssh.exec(action, &program, None).await?;
        match output.status.code() {
            Some(0) => serde_json::from_slice(&output.stdout)
                .map(Some)
                .map_err(|e| RunnerError::BadSummary {
                    workspace: workspace.as_str().to_string(),
                    reason: e.to_string(),
                }),
            Some(remote::SUMMARY_ABSENT) => Ok(None),
            _ => Err(RunnerError::remote_failure(action, &output)),
        }
    }
}

/// What a finished k6 run means: a stop or an overrun is an error whatever
/// k6 wrote (a stop keeps the summary k6 wrote on the way out); otherwise
/// exit 0 with a summary is the run, exit 99 (thresholds failed) with a
/// summary is the run plus a warning, and anything else is an error.
fn conclude(finished: Finished) -> Result<K6Run, RunnerError> {
    let Finished {
        ending,
        exit_code,
        summary,
        log_tail,
        workspace,
        started_at,
        ended_at,
        ran_for,
    } = finished;
    match ending {
        Ending::Cancelled => {
            return Err(RunnerError::Interrupted {
                summary: summary.map(Box::new),
                log_tail,
            })
        }
        Ending::TimedOut => {
            return Err(RunnerError::Timeout {
                after: ran_for,
                log_tail,
            })
        }
        Ending::Vanished | Ending::Exited(_) => {}
    }
    let mut warnings = Vec::new();
    match exit_code {
        Some(0) => {}
        Some(EXIT_THRESHOLDS_FAILED) if summary.is_some() => warnings.push(format!(
            "k6 exited {EXIT_THRESHOLDS_FAILED} (thresholds failed) in {workspace}; the summary is used"
        )),
        code => return Err(RunnerError::K6Failed { code, log_tail }),
    }
    let summary = summary.ok_or_else(|| RunnerError::MissingSummary {
        workspace: workspace.clone(),
        exit_code,
        log_tail: log_tail.clone(),
    })?;
    Ok(K6Run {
        summary,
        exit_code: exit_code.unwrap_or(0),
        started_at,
        ended_at,
        log_tail,
        workspace,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(ending: Ending, exit_code: Option<i32>, summary: Option<Value>) -> Finished {
        Finished {
            ending,
            exit_code,
            summary,
            log_tail: "last line".to_string(),
            workspace: "/w/node1/run/cfg".to_string(),
            started_at: SystemTime::UNIX_EPOCH,
            ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(30),
            ran_for: Duration::from_secs(31),
        }
    }

    fn summary() -> Option<Value> {
        Some(serde_json::json!({"metrics": {}}))
    }

    #[test]
    fn a_clean_exit_with_a_summary_is_the_run() {
        let run = conclude(finished(Ending::Exited(0), Some(0), summary())).unwrap();
        assert_eq!(run.summary, summary().unwrap());
        assert_eq!(run.exit_code, 0);
        assert!(run.warnings.is_empty());
        assert_eq!(run.workspace, "/w/node1/run/cfg");
        assert_eq!(run.log_tail, "last line");
        assert_eq!(
            run.ended_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(30)
        );
    }

    #[test]
    fn failed_thresholds_with_a_summary_are_a_warning() {
        let run = conclude(finished(Ending::Exited(99), Some(99), summary())).unwrap();
        assert_eq!(run.exit_code, 99);
        assert_eq!(run.warnings.len(), 1);
        assert!(
            run.warnings[0].contains("thresholds failed"),
            "{:?}",
            run.warnings
        );
        assert!(run.warnings[0].contains("/w/node1/run/cfg"));
    }

    #[test]
    fn other_endings_are_errors() {
        type Expected = fn(&RunnerError) -> bool;
        let cases: [(Finished, Expected); 6] = [
            (finished(Ending::Exited(99), Some(99), None), |e| {
                matches!(e, RunnerError::K6Failed { code: Some(99), .. })
            }),
            (finished(Ending::Exited(107), Some(107), summary()), |e| {
                matches!(
                    e,
                    RunnerError::K6Failed {
                        code: Some(107),
                        ..
                    }
                )
            }),
            (finished(Ending::Vanished, None, summary()), |e| {
                matches!(e, RunnerError::K6Failed { code: None, .. })
            }),
            (finished(Ending::Exited(0), Some(0), None), |e| {
                matches!(
                    e,
                    RunnerError::MissingSummary {
                        exit_code: Some(0),
                        ..
                    }
                )
            }),
            (finished(Ending::Cancelled, Some(105), summary()), |e| {
                matches!(
                    e,
                    RunnerError::Interrupted {
                        summary: Some(_),
                        ..
                    }
                )
            }),
            (
                finished(Ending::TimedOut, Some(0), summary()),
                |e| matches!(e, RunnerError::Timeout { after, .. } if *after == Duration::from_secs(31)),
            ),
        ];
        for (finished, expected) in cases {
            let ending = finished.ending;
            let error = conclude(finished).unwrap_err();
            assert!(expected(&error), "{ending:?}: {error:?}");
        }
    }
}
