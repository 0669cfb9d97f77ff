//! k6 on the load generator, over one multiplexed SSH connection.
//!
//! One OpenSSH ControlMaster (through the `openssh` crate) serves the
//! whole run; every step is a short remote command on it: upload the
//! script on stdin, start k6 detached, poll its log and exit status, stop
//! it by pid, read the summary on stdout. k6 runs under `setsid` with its
//! output in a file, so a dying SSH channel cannot take it down (k6 does
//! not trap SIGHUP), and a cancelled run stops it with `kill -INT <pid>`
//! (a graceful stop that still writes the summary), then `kill -KILL`.
//!
//! Per configuration the workspace is
//! `<workspace_root>/<host>/<run_id>/<config_id>/` holding `script.js`,
//! `summary.json`, `k6.log`, `k6.pid` and `exit_code`. Every value placed
//! in a remote command is shell-quoted, and path segments are checked not
//! to leave their directory.
//!
//! This module owns the SSH master's lifetime (bounded connect, bounded
//! idle persistence, reconnect once when it dropped, the masters of killed
//! runs cleaned up at the next start: [`super::control_dir`]) and never
//! prints: k6 log lines go to a caller-supplied callback.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::control_dir;
use crate::config::K6Host;
use crate::report::error_chain;

/// k6's exit code after an external stop (first SIGINT/SIGTERM).
pub const EXIT_ABORTED: i32 = 105;
/// k6's exit code when thresholds failed.
pub const EXIT_THRESHOLDS_FAILED: i32 = 99;

/// Lines of k6's log kept for error messages.
const LOG_TAIL_LINES: usize = 30;
/// Longest remote stderr kept in an error.
const STDERR_EXCERPT_CHARS: usize = 2000;
/// How long the remote start command waits for k6's pid file, in 10 ms
/// steps (5 s).
const PID_WAIT_STEPS: u32 = 500;

/// Granularity, in milliseconds, of the remote wait for k6's end inside a
/// poll (`sleep 0.02`): k6's exit is noticed within this, which matters
/// for the per-iteration overhead (BENCHMARKS.md).
const POLL_STEP_MS: u128 = 20;
/// Polls in a row that may fail on the transport before the run fails.
const MAX_POLL_FAILURES: u32 = 3;
/// Polls that may see k6 gone without its exit status being written yet.
const MAX_GONE_POLLS: u32 = 20;

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
    /// The target host's name: a workspace path segment.
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

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot connect to the k6 host {host} over SSH: {reason}")]
    Connect { host: String, reason: String },
    /// The k6 host stopped answering and did not come back in time.
    #[error("the k6 host {host} did not answer over SSH for {after:?} ({attempts} attempts); last error: {reason}")]
    Unreachable {
        host: String,
        after: Duration,
        attempts: u32,
        reason: String,
    },
    #[error("invalid k6 workspace {what} {value:?}: {reason}")]
    InvalidWorkspace {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{value_of} contains a NUL byte and cannot be passed to a remote command")]
    Unquotable { value_of: String },
    #[error("the {what} {path:?} cannot be given to ssh: {reason}")]
    SshPath {
        what: &'static str,
        path: PathBuf,
        reason: &'static str,
    },
    #[error("on the k6 host, {action} failed (exit {}): {stderr}", exit.map_or("signal".to_string(), |c| c.to_string()))]
    Remote {
        action: String,
        exit: Option<i32>,
        stderr: String,
    },
    #[error("on the k6 host, {action} failed: {reason}")]
    Ssh { action: String, reason: String },
    #[error("on the k6 host, {action} did not finish within {timeout:?}")]
    CommandTimeout { action: String, timeout: Duration },
    #[error("k6 wrote no summary in {workspace} (exit {}); end of k6.log:\n{log_tail}", exit_code.map_or("unknown".to_string(), |c| c.to_string()))]
    MissingSummary {
        workspace: String,
        exit_code: Option<i32>,
        log_tail: String,
    },
    #[error("k6 summary in {workspace} is not JSON: {reason}")]
    BadSummary { workspace: String, reason: String },
    #[error("k6 failed with exit code {}; end of k6.log:\n{log_tail}", code.map_or("unknown".to_string(), |c| c.to_string()))]
    K6Failed { code: Option<i32>, log_tail: String },
    #[error("k6 was interrupted{}", if summary.is_some() { " (summary written)" } else { "" })]
    Interrupted {
        /// The summary, when k6 wrote one on the way out.
        summary: Option<Box<Value>>,
        log_tail: String,
    },
    #[error("k6 ran longer than {after:?} and was stopped; end of k6.log:\n{log_tail}")]
    Timeout { after: Duration, log_tail: String },
}

/// Resolves once `stop` holds `true`; never resolves if its sender is gone
/// without asking to stop. Use it as the `cancel` argument of
/// [`K6Runner::run`].
pub async fn stop_requested(mut stop: tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn interrupted() -> RunnerError {
    RunnerError::Interrupted {
        summary: None,
        log_tail: String::new(),
    }
}

/// A k6 started by this runner and not yet seen to end.
#[derive(Debug, Clone)]
struct ActiveK6 {
    workspace: String,
    pid: u32,
}

/// The connection to the k6 host and the k6 runs on it.
pub struct K6Runner {
    target: K6Host,
    options: RunnerOptions,
    session: Option<Session>,
    /// Short directory holding the control socket (Unix socket paths are
    /// limited to ~108 bytes).
    control_dir: tempfile::TempDir,
    /// Control directories of killed runs removed when this one started.
    leftovers: Vec<PathBuf>,
    active: Option<ActiveK6>,
}

impl std::fmt::Debug for K6Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K6Runner")
            .field("host", &self.destination())
            .field("connected", &self.session.is_some())
            .finish()
    }
}

impl K6Runner {
    /// Starts the SSH master to `target`, within `options.connect_timeout`.
    pub async fn connect(target: &K6Host, options: RunnerOptions) -> Result<Self, RunnerError> {
        let root = short_temp_root();
        let control_dir = control_dir::create(&root).map_err(|e| RunnerError::Connect {
            host: format!("{}:{}", target.host, target.port),
            reason: format!("cannot create the control directory: {e}"),
        })?;
        let leftovers = control_dir::clean_leftovers(&root, control_dir.path());
        let mut runner = K6Runner {
            target: target.clone(),
            options,
            session: None,
            control_dir,
            leftovers,
            active: None,
        };
        runner.session = Some(runner.open_session().await?);
        Ok(runner)
    }

    /// `host:port`, as errors name it.
    pub fn destination(&self) -> String {
        format!("{}:{}", self.target.host, self.target.port)
    }

    /// Control directories (and their SSH masters) that killed runs of
    /// this program had left, removed when this runner started.
    pub fn leftovers_removed(&self) -> &[PathBuf] {
        &self.leftovers
    }

    /// This run's control directory (for diagnostics and tests).
    pub fn control_directory(&self) -> &Path {
        self.control_dir.path()
    }

    /// The master's control socket (for diagnostics and tests).
    pub fn control_socket(&self) -> Option<&Path> {
        self.session.as_ref().map(|s| s.control_socket())
    }

    async fn open_session(&self) -> Result<Session, RunnerError> {
        let mut builder = SessionBuilder::default();
        builder
            .user(self.target.user.clone())
            .port(self.target.port)
            .keyfile(identity_path(&self.target.ssh_key)?)
            .known_hosts_check(match self.options.host_key_check {
                HostKeyCheck::Strict => KnownHosts::Strict,
                HostKeyCheck::AcceptNew => KnownHosts::Add,
                HostKeyCheck::Off => KnownHosts::Accept,
            })
            .connect_timeout(whole_seconds(self.options.connect_timeout))
            .server_alive_interval(whole_seconds(self.options.server_alive_interval))
            .control_directory(self.control_dir.path())
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(
                    whole_seconds(self.options.control_persist_idle).as_secs() as usize
                )
                .unwrap_or(NonZeroUsize::MIN),
            ));
        if let Some(file) = &self.options.known_hosts_file {
            builder.user_known_hosts_file(option_path("known_hosts file", file)?);
        }
        let connect_error = |reason: String| RunnerError::Connect {
            host: self.destination(),
            reason,
        };
        // ssh's ConnectTimeout covers TCP and the banner; this bounds the
        // rest (key exchange, authentication) too.
        let bound = self.options.connect_timeout + Duration::from_secs(1);
        match tokio::time::timeout(bound, builder.connect_mux(&self.target.host)).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(e)) => Err(connect_error(error_chain(&e))),
            Err(_) => Err(connect_error(format!(
                "no SSH session within {}s",
                bound.as_secs()
            ))),
        }
    }

    /// Makes sure the master answers; starts a new one (once) if it does not.
    pub async fn ensure_connected(&mut self) -> Result<(), RunnerError> {
        if let Some(session) = &self.session {
            let alive = tokio::time::timeout(self.options.command_timeout, session.check()).await;
            if matches!(alive, Ok(Ok(()))) {
                return Ok(());
            }
        }
        if let Some(old) = self.session.take() {
            // The master is gone or stuck; closing may fail, which is fine.
            let _ = tokio::time::timeout(Duration::from_secs(2), old.close()).await;
        }
        self.session = Some(self.open_session().await?);
        Ok(())
    }

    /// Like [`K6Runner::ensure_connected`], but a host that does not answer
    /// is retried with backoff (0.5 s doubling to 8 s) for up to
    /// `options.reconnect_within`: a short outage (sshd restarting, a
    /// network blip) costs a wait, not the campaign. Gives up early with
    /// [`RunnerError::Interrupted`] when `cancel` resolves.
    async fn reconnect<F>(&mut self, cancel: &mut F) -> Result<(), RunnerError>
    where
        F: Future<Output = ()> + Unpin,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(500);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = tokio::select! {
                biased;
                _ = &mut *cancel => return Err(interrupted()),
                attempt = self.ensure_connected() => attempt,
            };
            let reason = match attempt {
                Ok(()) => return Ok(()),
                Err(RunnerError::Connect { reason, .. }) => reason,
                Err(other) => return Err(other),
            };
            let elapsed = started.elapsed();
            if elapsed >= self.options.reconnect_within {
                return Err(RunnerError::Unreachable {
                    host: self.destination(),
                    after: elapsed,
                    attempts,
                    reason,
                });
            }
            tracing::warn!(
                "k6 host {} does not answer ({reason}); retrying in {backoff:?}",
                self.destination()
            );
            let wait = backoff.min(self.options.reconnect_within - elapsed);
            tokio::select! {
                biased;
                _ = &mut *cancel => return Err(interrupted()),
                _ = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(8));
        }
    }

    /// The remote k6 version line (a preflight check that k6 is there).
    pub async fn k6_version(&mut self) -> Result<String, RunnerError> {
        self.ensure_connected().await?;
        let command = format!("{} version", quote(&self.options.k6_command, "k6_command")?);
        let output = self.exec_ok("k6 version", &command, None).await?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs one k6 job to its end, streaming each log line to `on_line`.
    /// When `cancel` resolves, k6 is stopped (SIGINT, then SIGKILL after
    /// `stop_grace`) and [`RunnerError::Interrupted`] is returned.
    ///
    /// Dropping the returned future instead leaves k6 running remotely
    /// until [`K6Runner::stop_active`] or [`K6Runner::close`].
    pub async fn run<C>(
        &mut self,
        job: &K6Job<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        cancel: C,
    ) -> Result<K6Run, RunnerError>
    where
        C: Future<Output = ()>,
    {
        let workspace = workspace_path(&self.target.workspace_root, job)?;
        let start_command = start_command(&workspace, &self.options.k6_command, job)?;
        let q_workspace = quote(&workspace, "workspace")?;
        tokio::pin!(cancel);

        // The usual case costs one check of the master; only a host that
        // does not answer goes through the (cancellable) retries.
        match self.ensure_connected().await {
            Ok(()) => {}
            Err(RunnerError::Connect { .. }) => self.reconnect(&mut cancel).await?,
            Err(other) => return Err(other),
        }
        let upload = format!("mkdir -p -- {q_workspace} && cat > {q_workspace}/script.js");
        self.exec_ok("uploading script.js", &upload, Some(job.script.as_bytes()))
            .await?;

        // A stop asked for before k6 starts: do not start it.
        let already_cancelled = tokio::select! {
            biased;
            _ = &mut cancel => true,
            _ = std::future::ready(()) => false,
        };
        if already_cancelled {
            return Err(RunnerError::Interrupted {
                summary: None,
                log_tail: String::new(),
            });
        }

        let started_at = SystemTime::now();
        let started = Instant::now();
        let output = self.exec_ok("starting k6", &start_command, None).await?;
        let pid_text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let pid: u32 = pid_text.parse().map_err(|_| RunnerError::Remote {
            action: "starting k6".to_string(),
            exit: Some(0),
            stderr: format!(
                "no k6 pid came back (got {pid_text:?}); {}",
                excerpt(&String::from_utf8_lossy(&output.stderr))
            ),
        })?;
        self.active = Some(ActiveK6 {
            workspace: workspace.clone(),
            pid,
        });

        let mut log = LogLines::default();
        let deadline = tokio::time::sleep(job.max_runtime);
        tokio::pin!(deadline);
        let wait_steps = (self.options.poll_interval.as_millis() / POLL_STEP_MS).max(1) as u32;
        let mut poll_failures = 0;
        let mut gone_polls = 0;

        enum Ending {
            Exited(i32),
            Vanished,
            Cancelled,
            TimedOut,
        }
        let ending = loop {
            let poll = self.poll(&workspace, pid, log.offset, wait_steps);
            let status = tokio::select! {
                biased;
                _ = &mut cancel => break Ending::Cancelled,
                _ = &mut deadline => break Ending::TimedOut,
                status = poll => status,
            };
            match status {
                Ok((status, bytes)) => {
                    poll_failures = 0;
                    log.push(&bytes, on_line);
                    match status {
                        K6Status::Exited(code) => break Ending::Exited(code),
                        K6Status::Running => gone_polls = 0,
                        K6Status::Gone => {
                            gone_polls += 1;
                            if gone_polls > MAX_GONE_POLLS {
                                break Ending::Vanished;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                Err(e) => {
                    poll_failures += 1;
                    if poll_failures >= MAX_POLL_FAILURES {
                        return Err(e);
                    }
                    // k6 is detached: a new master finds it still running,
                    // and its log is read on from the same offset.
                    match self.reconnect(&mut cancel).await {
                        Ok(()) => {}
                        Err(RunnerError::Interrupted { .. }) => break Ending::Cancelled,
                        Err(other) => return Err(other),
                    }
                }
            }
        };
        let ended_at = SystemTime::now();

        let exit_code = match ending {
            Ending::Exited(code) => Some(code),
            Ending::Vanished => None,
            Ending::Cancelled | Ending::TimedOut => {
                self.ensure_connected().await?;
                self.stop(&workspace, pid).await?;
                // Collect the rest of the log and the exit status.
                let (status, bytes) = self.poll(&workspace, pid, log.offset, 1).await?;
                log.push(&bytes, on_line);
                match status {
                    K6Status::Exited(code) => Some(code),
                    _ => None,
                }
            }
        };
        log.finish(on_line);
        self.active = None;
        let log_tail = log.tail();

        let summary = self.fetch_summary(&workspace).await?;
        match ending {
            Ending::Cancelled => {
                return Err(RunnerError::Interrupted {
                    summary: summary.map(Box::new),
                    log_tail,
                })
            }
            Ending::TimedOut => {
                return Err(RunnerError::Timeout {
                    after: started.elapsed(),
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

    /// Stops a k6 left running by a dropped [`K6Runner::run`] future.
    pub async fn stop_active(&mut self) -> Result<(), RunnerError> {
        if let Some(active) = self.active.clone() {
            self.ensure_connected().await?;
            self.stop(&active.workspace, active.pid).await?;
            self.active = None;
        }
        Ok(())
    }

    /// Stops any k6 still running and shuts the master down.
    pub async fn close(mut self) -> Result<(), RunnerError> {
        let stopped = self.stop_active().await;
        if let Some(session) = self.session.take() {
            let closed = tokio::time::timeout(Duration::from_secs(5), session.close()).await;
            if let Ok(Err(e)) = closed {
                stopped?;
                return Err(RunnerError::Ssh {
                    action: "closing the SSH master".to_string(),
                    reason: error_chain(&e),
                });
            }
        }
        stopped
    }

    /// `kill -INT`, wait up to `stop_grace`, then `kill -KILL`; returns
    /// once the process is gone (or after a bounded wait).
    async fn stop(&mut self, workspace: &str, pid: u32) -> Result<(), RunnerError> {
        let grace_steps = (self.options.stop_grace.as_millis() / 100).max(1);
        let command = format!(
            "kill -INT {pid} 2>/dev/null; i=0; \
             while kill -0 {pid} 2>/dev/null && [ \"$i\" -lt {grace_steps} ]; do sleep 0.1; i=$((i+1)); done; \
             if kill -0 {pid} 2>/dev/null; then kill -KILL {pid} 2>/dev/null; i=0; \
             while kill -0 {pid} 2>/dev/null && [ \"$i\" -lt 50 ]; do sleep 0.1; i=$((i+1)); done; fi; \
             if kill -0 {pid} 2>/dev/null; then echo \"k6 (pid {pid}) in $0 survived SIGKILL\" >&2; exit 1; fi"
        );
        // `$0` names the workspace in the message above.
        let command = format!(
            "sh -c {} {}",
            quote(&command, "stop command")?,
            quote(workspace, "workspace")?
        );
        let bound = self.options.command_timeout + self.options.stop_grace + Duration::from_secs(5);
        self.exec_bounded("stopping k6", &command, None, bound)
            .await
            .and_then(|output| require_success("stopping k6", output))?;
        Ok(())
    }

    /// Waits up to `wait_steps` × 20 ms for k6 to end, then reports its
    /// status and the log bytes after `offset`.
    async fn poll(
        &self,
        workspace: &str,
        pid: u32,
        offset: u64,
        wait_steps: u32,
    ) -> Result<(K6Status, Vec<u8>), RunnerError> {
        let q_workspace = quote(workspace, "workspace")?;
        let command = format!(
            "cd -- {q_workspace} || exit 90; i=0; \
             while kill -0 {pid} 2>/dev/null && [ ! -e exit_code ] && [ \"$i\" -lt {wait_steps} ]; do sleep 0.02; i=$((i+1)); done; \
             if [ -e exit_code ]; then printf 'exit %s\\n' \"$(cat exit_code)\"; \
             elif kill -0 {pid} 2>/dev/null; then echo running; else echo gone; fi; \
             tail -c +{} k6.log 2>/dev/null; true",
            offset + 1
        );
        let output = self.exec_ok("polling k6", &command, None).await?;
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
    async fn fetch_summary(&self, workspace: &str) -> Result<Option<Value>, RunnerError> {
        let q_workspace = quote(workspace, "workspace")?;
        let command = format!(
            "cd -- {q_workspace} && if [ -f summary.json ]; then cat summary.json; else exit 3; fi"
        );
        let output = self.exec("reading summary.json", &command, None).await?;
        match output.status.code() {
            Some(0) => serde_json::from_slice(&output.stdout)
                .map(Some)
                .map_err(|e| RunnerError::BadSummary {
                    workspace: workspace.to_string(),
                    reason: e.to_string(),
                }),
            Some(3) => Ok(None),
            _ => Err(remote_failure("reading summary.json", &output)),
        }
    }

    async fn exec_ok(
        &self,
        action: &str,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, RunnerError> {
        let output = self.exec(action, command, stdin).await?;
        require_success(action, output)
    }

    async fn exec(
        &self,
        action: &str,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, RunnerError> {
        self.exec_bounded(action, command, stdin, self.options.command_timeout)
            .await
    }

    /// Runs `command` through the remote login shell, stdout and stderr
    /// captured (never inherited: our stdout carries the result document).
    async fn exec_bounded(
        &self,
        action: &str,
        command: &str,
        stdin: Option<&[u8]>,
        bound: Duration,
    ) -> Result<Output, RunnerError> {
        let session = self.session.as_ref().ok_or_else(|| RunnerError::Ssh {
            action: action.to_string(),
            reason: "not connected".to_string(),
        })?;
        let ssh_error = |e: openssh::Error| RunnerError::Ssh {
            action: action.to_string(),
            reason: error_chain(&e),
        };
        let work = async {
            let mut remote = session.raw_command(command);
            remote
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = remote.spawn().await.map_err(ssh_error)?;
            if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin().take()) {
                pipe.write_all(bytes).await.map_err(|e| RunnerError::Ssh {
                    action: action.to_string(),
                    reason: format!("writing stdin: {e}"),
                })?;
                pipe.shutdown().await.map_err(|e| RunnerError::Ssh {
                    action: action.to_string(),
                    reason: format!("closing stdin: {e}"),
                })?;
            }
            child.wait_with_output().await.map_err(ssh_error)
        };
        tokio::time::timeout(bound, work)
            .await
            .map_err(|_| RunnerError::CommandTimeout {
                action: action.to_string(),
                timeout: bound,
            })?
    }
}

fn require_success(action: &str, output: Output) -> Result<Output, RunnerError> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(remote_failure(action, &output))
    }
}

fn remote_failure(action: &str, output: &Output) -> RunnerError {
    RunnerError::Remote {
        action: action.to_string(),
        exit: output.status.code(),
        stderr: excerpt(&String::from_utf8_lossy(&output.stderr)),
    }
}

/// What a poll saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K6Status {
    Running,
    Exited(i32),
    /// Not running and no exit status (yet).
    Gone,
}

/// Status line, then raw log bytes.
fn parse_poll(stdout: &[u8]) -> Option<(K6Status, Vec<u8>)> {
    let newline = stdout.iter().position(|b| *b == b'\n')?;
    let status_line = std::str::from_utf8(&stdout[..newline]).ok()?;
    let status = match status_line.trim() {
        "running" => K6Status::Running,
        "gone" => K6Status::Gone,
        other => {
            let code = other.strip_prefix("exit")?.trim();
            match code.parse() {
                Ok(code) => K6Status::Exited(code),
                // An empty or torn exit_code file: not final yet.
                Err(_) => K6Status::Gone,
            }
        }
    };
    Some((status, stdout[newline + 1..].to_vec()))
}

/// Splits streamed log bytes into lines and keeps the last few.
#[derive(Debug, Default)]
struct LogLines {
    /// Bytes of k6.log consumed so far.
    offset: u64,
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl LogLines {
    fn push(&mut self, bytes: &[u8], on_line: &mut (dyn FnMut(&str) + Send)) {
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&line[..end], on_line);
        }
    }

    /// Emits a last line without a newline.
    fn finish(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest, on_line);
    }

    fn line(&mut self, raw: &[u8], on_line: &mut (dyn FnMut(&str) + Send)) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        on_line(text);
        if self.tail.len() == LOG_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_string());
    }

    fn tail(&self) -> String {
        self.tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `<root>/<host>/<run_id>/<config_id>`, each segment checked.
fn workspace_path(root: &str, job: &K6Job<'_>) -> Result<String, RunnerError> {
    if !root.starts_with('/') {
        return Err(RunnerError::InvalidWorkspace {
            what: "root",
            value: root.to_string(),
            reason: "must be an absolute path",
        });
    }
    if root.contains('\0') {
        return Err(RunnerError::InvalidWorkspace {
            what: "root",
            value: root.to_string(),
            reason: "must not contain NUL",
        });
    }
    for (what, value) in [
        ("host", job.host),
        ("run id", job.run_id),
        ("config id", job.config_id),
    ] {
        check_segment(what, value)?;
    }
    Ok(format!(
        "{}/{}/{}/{}",
        root.trim_end_matches('/'),
        job.host,
        job.run_id,
        job.config_id
    ))
}

/// A single directory name: not empty, not `.`/`..`, no `/`, no control
/// characters.
fn check_segment(what: &'static str, value: &str) -> Result<(), RunnerError> {
    let invalid = |reason| RunnerError::InvalidWorkspace {
        what,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || value == "." || value == ".." {
        return Err(invalid("must be a directory name"));
    }
    if value.contains('/') {
        return Err(invalid("must not contain '/'"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

/// Run in the workspace before its files are cleared: a k6 that an earlier
/// client started here and that still runs is killed together with the
/// `sh` waiting for it (their process group, which `setsid` made theirs).
///
/// That happens when the client was killed (SIGKILL cannot be trapped)
/// and a rerun with the same run id resumes the configuration in flight:
/// left alone, the old `sh` would write its `exit_code` and the old k6 its
/// summary into the new run's files, and the new run would record the old
/// k6's end as its own iteration while its own k6 kept loading the gateway.
/// Only a process whose command line is this module's k6 command is
/// touched (`k6.pid` may name a pid reused since); `kill -SIG -<group>`
/// without `--`, which dash rejects.
const STOP_LEFTOVER_K6: &str = concat!(
    r#"if [ -s k6.pid ]; then old=$(cat k6.pid); "#,
    r#"if kill -0 "$old" 2>/dev/null && ps -o args= -p "$old" 2>/dev/null | grep -q -e '--summary-export summary.json'; then "#,
    r#"group=$(ps -o pgid= -p "$old" | tr -d ' '); own=$(ps -o pgid= -p $$ | tr -d ' '); target=$old; "#,
    r#"case "$group" in ''|*[!0-9]*|0|1|"$own") ;; *) target="-$group" ;; esac; "#,
    r#"kill -KILL "$target" "$old" 2>/dev/null; i=0; "#,
    r#"while { kill -0 "$target" || kill -0 "$old"; } 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "#,
    r#"fi; fi; true;"#,
);

/// The remote command that starts k6 detached and prints its pid.
///
/// Inside a new session (`setsid`), a small `sh` starts k6 in the
/// background with all output in k6.log, records its pid, waits for it and
/// writes its exit status; each file is written whole (`mv`). A k6 still
/// running in the workspace is stopped first ([`STOP_LEFTOVER_K6`]).
fn start_command(
    workspace: &str,
    k6_command: &str,
    job: &K6Job<'_>,
) -> Result<String, RunnerError> {
    let mut k6 = vec![
        quote(k6_command, "k6_command")?.into_owned(),
        "run".to_string(),
        "--summary-export".to_string(),
        "summary.json".to_string(),
    ];
    for output in job
        .outputs
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
    {
        k6.push("--out".to_string());
        k6.push(quote(output, "k6 output")?.into_owned());
    }
    for (key, value) in job.tags {
        k6.push("--tag".to_string());
        k6.push(quote(&format!("{key}={value}"), "k6 tag")?.into_owned());
    }
    for arg in job.args {
        k6.push(quote(arg, "k6 argument")?.into_owned());
    }
    k6.push("script.js".to_string());
    let inner = format!(
        "K6_NO_USAGE_REPORT=true {} > k6.log 2>&1 < /dev/null & pid=$!; \
         echo \"$pid\" > k6.pid.tmp && mv k6.pid.tmp k6.pid; \
         wait \"$pid\"; echo \"$?\" > exit_code.tmp && mv exit_code.tmp exit_code",
        k6.join(" ")
    );
    let q_workspace = quote(workspace, "workspace")?;
    Ok(format!(
        "cd -- {q_workspace} && {{ {STOP_LEFTOVER_K6} }} && \
         rm -f -- summary.json k6.log k6.pid exit_code && \
         (setsid sh -c {} < /dev/null > /dev/null 2>&1 &) && \
         i=0; while [ ! -s k6.pid ] && [ \"$i\" -lt {PID_WAIT_STEPS} ]; do sleep 0.01; i=$((i+1)); done; \
         cat k6.pid",
        quote(&inner, "k6 command")?
    ))
}

/// ssh expands `%` tokens (`%d`, `%h`, ...) and `${VAR}` in the file names
/// of `IdentityFile` and `UserKnownHostsFile`, from `-i` and `-o` alike.
const SSH_EXPANSION: &str = "${";

/// The private key path for `ssh -i`. ssh takes the argument whole (no
/// splitting), but checks that the path exists as written and then opens
/// it after `%` and `${}` expansion, so a path with either cannot work
/// whatever the escaping; config validation refuses such paths first.
pub(crate) fn identity_path(path: &Path) -> Result<&Path, RunnerError> {
    let refuse = |reason| RunnerError::SshPath {
        what: "private key",
        path: path.to_path_buf(),
        reason,
    };
    let text = path
        .to_str()
        .ok_or_else(|| refuse("it is not valid UTF-8"))?;
    if text.contains('%') || text.contains(SSH_EXPANSION) {
        return Err(refuse(
            "ssh expands '%' and '${' in key paths; rename the file or link to it from a plain path",
        ));
    }
    Ok(path)
}

/// A file path as the value of `-o Option=value`: ssh splits such values at
/// whitespace (a path with a space became two known_hosts files, and
/// `kh;touch x` created a file named `kh;touch`), unquotes `"..."` with
/// `\\` and `\"` escapes, and expands `%` tokens (`%%` is a literal `%`)
/// and `${VAR}` (which has no escape, so it is refused).
pub(crate) fn option_path(what: &'static str, path: &Path) -> Result<String, RunnerError> {
    let refuse = |reason| RunnerError::SshPath {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let text = path
        .to_str()
        .ok_or_else(|| refuse("it is not valid UTF-8"))?;
    if text.contains(SSH_EXPANSION) {
        return Err(refuse(
            "ssh expands '${...}' in file paths and has no escape for it",
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(refuse("it contains control characters"));
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '\\' | '"' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted)
}

fn quote<'a>(value: &'a str, value_of: &str) -> Result<Cow<'a, str>, RunnerError> {
    shlex::try_quote(value).map_err(|_| RunnerError::Unquotable {
        value_of: value_of.to_string(),
    })
}

/// ssh takes whole seconds; round up so a sub-second bound is not 0 (= none).
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

/// A short directory for control sockets: `/tmp` if it exists, since
/// `$TMPDIR` may be long.
fn short_temp_root() -> PathBuf {
    let tmp = PathBuf::from("/tmp");
    if tmp.is_dir() {
        tmp
    } else {
        std::env::temp_dir()
    }
}

fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars <= STDERR_EXCERPT_CHARS {
        trimmed.to_string()
    } else {
        let skip = trimmed
            .char_indices()
            .nth(chars - STDERR_EXCERPT_CHARS)
            .map_or(0, |(i, _)| i);
        format!("…{}", &trimmed[skip..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(
        run_id: &'a str,
        tags: &'a BTreeMap<String, String>,
        outputs: &'a [String],
    ) -> K6Job<'a> {
        K6Job {
            host: "node1",
            run_id,
            config_id: "0123456789ab",
            script: "",
            outputs,
            tags,
            args: &[],
            max_runtime: Duration::from_secs(60),
        }
    }

    #[test]
    fn workspace_segments() {
        let tags = BTreeMap::new();
        assert_eq!(
            workspace_path("/root/.dfaas-k6/", &job("run-1", &tags, &[])).unwrap(),
            "/root/.dfaas-k6/node1/run-1/0123456789ab"
        );
        for bad in ["", ".", "..", "a/b", "a\nb", "a\0b"] {
            assert!(
                matches!(
                    workspace_path("/w", &job(bad, &tags, &[])),
                    Err(RunnerError::InvalidWorkspace { what: "run id", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(workspace_path("relative", &job("r", &tags, &[])).is_err());
        // Shell metacharacters are allowed: they are quoted, not interpreted.
        assert!(workspace_path("/w", &job("$(x);`y`'z\"", &tags, &[])).is_ok());
    }

    #[test]
    fn start_command_quotes_every_value() {
        let tags = BTreeMap::from([
            ("run_id".to_string(), "r'1".to_string()),
            ("x".to_string(), "$(boom)".to_string()),
        ]);
        let outputs = vec!["json=out file.json".to_string(), "  ".to_string()];
        let args = vec![
            "--vus".to_string(),
            "2".to_string(),
            "--stage".to_string(),
            "1s:$(x)".to_string(),
        ];
        let command = start_command(
            "/w/a b/$(c)",
            "k6",
            &K6Job {
                args: &args,
                ..job("r", &tags, &outputs)
            },
        )
        .unwrap();
        // The outer command as the remote shell splits it.
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[..4], ["cd", "--", "/w/a b/$(c)", "&&"], "{command}");
        assert!(command.ends_with("cat k6.pid"), "{command}");
        // A k6 left running in the workspace is stopped before its files go.
        let stop_at = command.find(STOP_LEFTOVER_K6).unwrap();
        assert!(stop_at < command.find("rm -f -- summary.json").unwrap());
        let at = words.iter().position(|w| w == "(setsid").unwrap();
        assert_eq!(words[at + 1..at + 3], ["sh", "-c"]);
        // The inner script as `sh -c` splits it.
        let inner = shlex::split(&words[at + 3]).unwrap();
        assert_eq!(
            inner[..18],
            [
                "K6_NO_USAGE_REPORT=true",
                "k6",
                "run",
                "--summary-export",
                "summary.json",
                "--out",
                "json=out file.json",
                "--tag",
                "run_id=r'1",
                "--tag",
                "x=$(boom)",
                "--vus",
                "2",
                "--stage",
                "1s:$(x)",
                "script.js",
                ">",
                "k6.log"
            ],
            "blank outputs are dropped, every value is one word: {inner:?}"
        );
        assert!(words[at + 3].contains("wait \"$pid\""));
    }

    #[test]
    fn nul_cannot_be_quoted() {
        let tags = BTreeMap::from([("a".to_string(), "b\0c".to_string())]);
        assert!(matches!(
            start_command("/w", "k6", &job("r", &tags, &[])),
            Err(RunnerError::Unquotable { .. })
        ));
    }

    #[test]
    fn poll_output() {
        assert_eq!(
            parse_poll(b"running\nline 1\nline"),
            Some((K6Status::Running, b"line 1\nline".to_vec()))
        );
        assert_eq!(
            parse_poll(b"exit 105\n"),
            Some((K6Status::Exited(105), vec![]))
        );
        assert_eq!(parse_poll(b"exit \n"), Some((K6Status::Gone, vec![])));
        assert_eq!(
            parse_poll(b"gone\nx"),
            Some((K6Status::Gone, b"x".to_vec()))
        );
        assert_eq!(parse_poll(b"what\n"), None);
        assert_eq!(parse_poll(b""), None);
    }

    #[test]
    fn log_lines_across_chunks() {
        let mut seen = Vec::new();
        let mut on_line = |l: &str| seen.push(l.to_string());
        let mut log = LogLines::default();
        log.push(b"first li", &mut on_line);
        log.push(b"ne\r\n\nsecond\nthi", &mut on_line);
        log.push(b"rd", &mut on_line);
        log.finish(&mut on_line);
        assert_eq!(seen, ["first line", "second", "third"]);
        assert_eq!(log.offset, 25);
        assert_eq!(log.tail(), "first line\nsecond\nthird");

        let mut many = LogLines::default();
        let mut ignore = |_: &str| {};
        for i in 0..100 {
            many.push(format!("l{i}\n").as_bytes(), &mut ignore);
        }
        let tail = many.tail();
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(tail.ends_with("l99"));
    }

    #[test]
    fn option_paths_are_quoted_for_ssh() {
        let cases = [
            ("/home/u/.ssh/known_hosts", r#""/home/u/.ssh/known_hosts""#),
            ("/tmp/kh;touch x", r#""/tmp/kh;touch x""#),
            ("/a b/%d/k", r#""/a b/%%d/k""#),
            (r#"/q"uo\te'#"#, r#""/q\"uo\\te'#""#),
        ];
        for (path, want) in cases {
            assert_eq!(option_path("f", Path::new(path)).unwrap(), want, "{path}");
        }
        for bad in ["/x/${HOME}/kh", "/x/a\nb"] {
            assert!(matches!(
                option_path("f", Path::new(bad)),
                Err(RunnerError::SshPath { .. })
            ));
        }
    }

    /// ssh itself reads the quoted value back as the one path (`ssh -G`
    /// prints the known_hosts files after parsing and expansion).
    #[test]
    fn ssh_parses_a_quoted_option_path_back_to_the_path() {
        let path = "/tmp/lbd test/kh %d;touch x";
        let option = format!(
            "UserKnownHostsFile={}",
            option_path("f", Path::new(path)).unwrap()
        );
        let out = std::process::Command::new("ssh")
            .args(["-G", "-F", "/dev/null", "-o", &option, "example.invalid"])
            .output();
        let Ok(out) = out else {
            eprintln!("skipped: no ssh client here");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("userknownhostsfile "))
            .unwrap_or_default();
        assert_eq!(line, format!("userknownhostsfile {path}"), "{text}");
    }

    #[test]
    fn identity_paths_with_ssh_expansions_are_refused() {
        assert!(identity_path(Path::new("/keys/id ed25519;x")).is_ok());
        for bad in ["/keys/id%h", "/keys/${USER}"] {
            assert!(identity_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_seconds_never_zero() {
        assert_eq!(
            whole_seconds(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }
}
