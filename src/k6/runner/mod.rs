//! k6 on the load generator, over one multiplexed SSH connection.
//!
//! One OpenSSH ControlMaster serves the whole run. A k6 run is one remote
//! command on it ([`remote::run`]), launched ahead of time by
//! [`K6Runner::prepare`] (the campaign calls it before the cooldown): it
//! receives the script on stdin, starts k6 paused and waits.
//! [`K6Runner::run`] waits for k6's VUs to be initialised and resumes it
//! through k6's REST API, over a Unix socket the master forwards (`api`;
//! the remote program runs `k6 resume` when forwarding is refused), and
//! the same command streams k6's log to k6's end, then its exit status,
//! `/proc/stat` as read at k6's start and end, k6's own CPU times and the
//! summary. So the normal iteration launches no remote command between
//! the end of the cooldown and its row, whatever the k6 host's login shell
//! costs to start. k6 runs under `setsid` with its output in a file, so a
//! dying SSH channel cannot take it down (k6 does not trap SIGHUP); a
//! stream cut short is followed again from the same log offset
//! ([`remote::follow`]) after a reconnect, and a stopped run ([`Stop`])
//! stops k6 with `kill -INT <pid>` (a graceful stop that still writes the
//! summary), then `kill -KILL`.
//!
//! The parts, one concern each:
//! - `ssh`: the session — the master's lifetime (bounded connect, bounded
//!   idle persistence, reconnect with backoff when the host stops
//!   answering, the masters of killed runs cleaned up at the next start:
//!   `control_dir`) and bounded commands on it;
//! - `remote`: the shell programs (run, follow, stop) as pure
//!   functions of typed inputs, every value shell-quoted, and the
//!   workspace `<workspace_root>/<host>/<run_id>/<config_id>/` whose path
//!   segments are checked;
//! - `stream`: reading that stream back (header, log, trailer);
//! - `api`: k6's REST API over the forwarded socket (init done, resume);
//! - `log_lines`: framing of k6's streamed log into lines;
//! - this module: [`K6Runner`], which orders those steps for one k6 run
//!   and decides what its end means (a summary, a warning or an error).
//! - `local`: [`LocalK6Runner`], k6 on this machine as a child process
//!   (`k6_host: local`), with the same log framing, stop bound and
//!   outcomes.
//!
//! Nothing here prints: k6 log lines go to a caller-supplied callback.

mod api;
mod control_dir;
mod error;
mod local;
mod log_lines;
mod remote;
mod ssh;
mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use openssh::{Child, ChildStdin, ChildStdout, Session};
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::config::K6Host;
use crate::k6::saturation::{
    busy_fraction, k6_busy_fraction, parse_k6_ticks, parse_proc_stat, parse_times,
};
use crate::stop::Stop;
pub use error::RunnerError;
use error::{excerpt, require_success};
pub use local::{LocalK6Runner, LocalOptions};
use log_lines::LogLines;
use remote::Workspace;
use ssh::SshSession;
use stream::{Exit, StreamReader, Trailer};

/// k6's exit code when thresholds failed.
pub(crate) const EXIT_THRESHOLDS_FAILED: i32 = 99;

/// Streams that may end before k6 (a dropped connection) before the run
/// fails.
const MAX_STREAM_FAILURES: u32 = 3;
/// Most bytes of a remote command's stderr kept.
const MAX_STDERR_BYTES: u64 = 64 * 1024;
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
    /// Bound on each short remote command (preparing a run, stopping k6).
    pub command_timeout: Duration,
    /// Unused since k6's log is streamed by one command (kept so that
    /// existing option sets still build).
    pub poll_interval: Duration,
    /// Time between `kill -INT` and `kill -KILL` when stopping k6.
    pub stop_grace: Duration,
    /// The k6 executable on the remote PATH (or an absolute path).
    pub k6_command: String,
    /// How long a k6 host that stopped answering is retried, with
    /// backoff, before a run gives up with [`RunnerError::Unreachable`].
    /// The first connection is not retried (a wrong host fails fast).
    pub reconnect_within: Duration,
    /// Resume k6 through its REST API over a port forward of the master;
    /// `false` (or a host refusing forwards): the remote program resumes
    /// it with `k6 resume`, a k6 start-up later.
    pub forward_api: bool,
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
            forward_api: true,
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
    /// The k6 host's CPU use over the k6 window (`None` when it could not
    /// be read).
    pub generator_cpu: Option<GeneratorCpu>,
    /// k6 was resumed through its REST API over the SSH master (no
    /// process started on the k6 host to start the load); `false` when
    /// the remote program resumed it, or k6 was started unpaused.
    pub resumed_through_api: bool,
}

/// The k6 host's CPU use between k6's start and its end, from
/// `/proc/stat` read by the run's own remote command, and k6's own share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorCpu {
    /// Share of all its cores busy (any process), in `[0, 1]`.
    pub busy: f64,
    /// Share of all its cores k6 itself used, in `[0, 1]` (`None`:
    /// unknown).
    pub k6_busy: Option<f64>,
    pub cores: u32,
}

impl GeneratorCpu {
    fn between(start: &str, end: &str, k6_times: &str) -> Option<GeneratorCpu> {
        let first = parse_proc_stat(start)?;
        let last = parse_proc_stat(end)?;
        let k6_busy = match (parse_k6_ticks(start), parse_times(k6_times)) {
            (Some(ticks), Some(seconds)) => k6_busy_fraction(ticks, seconds, first, last),
            _ => None,
        };
        Some(GeneratorCpu {
            busy: busy_fraction(first, last)?,
            k6_busy,
            cores: last.cores,
        })
    }
}

/// A k6 started by this runner and not yet seen to end.
#[derive(Debug, Clone)]
struct ActiveK6 {
    workspace: Workspace,
    /// Known once the stream's header came.
    pid: Option<u32>,
}

/// A job's remote command, launched, with its k6 paused.
struct Prepared {
    key: String,
    workspace: Workspace,
    marker: String,
    stream: Stream,
    /// k6's REST API, forwarded to a local Unix socket (`None`: k6 ended
    /// before it listened, or no forward could be made; the remote
    /// program resumes k6 then).
    api: Option<ApiForward>,
}

/// A local Unix socket forwarded by the SSH master to k6's REST API port
/// on the k6 host's loopback.
struct ApiForward {
    socket: PathBuf,
    port: u16,
}

/// A long-lived remote command: its stdin, stdout, and stderr read aside.
struct Stream {
    child: Child<Arc<Session>>,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: JoinHandle<Vec<u8>>,
    /// The port of k6's REST API that [`remote::run`] reported ready.
    api_port: Option<u16>,
}

impl Stream {
    /// Writes `word` ([`remote::GO`] or [`remote::RESUME`]) and closes
    /// stdin.
    async fn go(&mut self, word: &[u8]) -> Result<(), RunnerError> {
        let failed = |e: std::io::Error| RunnerError::Ssh {
            action: "starting k6".to_string(),
            reason: e.to_string(),
        };
        let mut stdin = self.stdin.take().ok_or_else(|| RunnerError::Ssh {
            action: "starting k6".to_string(),
            reason: "the run was started already".to_string(),
        })?;
        stdin.write_all(word).await.map_err(failed)?;
        stdin.flush().await.map_err(failed)?;
        stdin.shutdown().await.map_err(failed)?;
        Ok(())
    }

    /// The command's exit status and stderr once its output ended (within
    /// `bound`; `None` for no status).
    async fn end(self, bound: Duration) -> (Option<i32>, Vec<u8>) {
        let Stream { child, stderr, .. } = self;
        let exit = match tokio::time::timeout(bound, child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        };
        let stderr = tokio::time::timeout(Duration::from_secs(1), stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (exit, stderr)
    }
}

/// How the supervision of a k6 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited(i32),
    /// Gone without an exit status.
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
    generator_cpu: Option<GeneratorCpu>,
    resumed_through_api: bool,
}

/// The connection to the k6 host and the k6 runs on it.
pub struct K6Runner {
    ssh: SshSession,
    options: RunnerOptions,
    workspace_root: String,
    active: Option<ActiveK6>,
    prepared: Option<Prepared>,
    /// REST API forwards made so far (names their sockets).
    forwards: u64,
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
            prepared: None,
            forwards: 0,
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

    /// Remote commands launched on the k6 host so far (each one pays the
    /// login shell's start-up there; BENCHMARKS.md counts them per
    /// iteration).
    pub fn remote_commands(&self) -> u64 {
        self.ssh.commands_launched()
    }

    /// Launches `job`'s one remote command ahead of time (before the
    /// cooldown): it writes the script and starts k6 paused, so that
    /// [`K6Runner::run`] of the same job costs no command launch and no k6
    /// start-up. A job prepared earlier and not run is dropped (its remote
    /// command kills its paused k6).
    pub async fn prepare(&mut self, job: &K6Job<'_>, stop: &Stop) -> Result<(), RunnerError> {
        self.prepared = None;
        self.prepared = Some(self.launch(job, stop).await?);
        Ok(())
    }

    /// [`K6Runner::prepare`]'s work: the launched command, k6 paused, and
    /// the forward to its REST API.
    async fn launch(&mut self, job: &K6Job<'_>, stop: &Stop) -> Result<Prepared, RunnerError> {
        let workspace = Workspace::new(&self.workspace_root, job)?;
        let key = job_key(&workspace, job);
        let marker = stream::marker();
        let program = remote::run(
            &workspace,
            job.script.len(),
            &self.options.k6_command,
            job.outputs,
            job.tags,
            job.args,
            &marker,
        )?;
        self.connect_for_run(stop).await?;
        let stream = self
            .open_stream(
                "preparing the k6 run",
                &program,
                Some(job.script.as_bytes()),
            )
            .await?;
        let api = match stream.api_port {
            Some(port) if self.options.forward_api => self.forward_api(port).await,
            _ => None,
        };
        Ok(Prepared {
            key,
            workspace,
            marker,
            stream,
            api,
        })
    }

    /// Forwards a local socket to k6's REST API `port`; `None` (with the
    /// reason logged) when the k6 host refuses forwarding.
    async fn forward_api(&mut self, port: u16) -> Option<ApiForward> {
        self.forwards += 1;
        let socket = self
            .ssh
            .control_directory()
            .join(format!("api-{}.sock", self.forwards));
        match self.ssh.forward_local(&socket, port).await {
            Ok(()) => Some(ApiForward { socket, port }),
            Err(e) => {
                tracing::debug!("k6 will be resumed by the remote program: {e}");
                None
            }
        }
    }

    /// Starts the prepared k6: waits (stoppably) for it to have initialised
    /// its VUs, resumes it through its REST API, then tells the remote
    /// program to stream ([`remote::GO`]); without the API, the remote
    /// program does both ([`remote::RESUME`]). `Ok(true)` when k6 was
    /// resumed through the API.
    async fn start_prepared(
        &mut self,
        prepared: &mut Prepared,
        stop: &Stop,
    ) -> Result<bool, RunnerError> {
        let word = match prepared.api.take() {
            Some(forward) => {
                let resumed = tokio::select! {
                    () = stop.stopped() => None,
                    resumed = async {
                        api::wait_until_initialised(&forward.socket, remote::API_WAIT).await?;
                        api::resume(&forward.socket, self.options.command_timeout).await
                    } => Some(resumed),
                };
                self.ssh.close_forward(&forward.socket, forward.port).await;
                match resumed {
                    // Stopped while k6 initialised: the prepared command,
                    // dropped, kills the paused k6.
                    None => return Err(RunnerError::interrupted()),
                    Some(Ok(())) => remote::GO,
                    Some(Err(e)) => {
                        tracing::debug!("resuming k6 through its REST API: {e}");
                        remote::RESUME
                    }
                }
            }
            None => remote::RESUME,
        };
        prepared.stream.go(word).await?;
        Ok(word == remote::GO)
    }

    /// Runs one k6 job to its end, streaming each log line to `on_line`.
    /// When `stop` is requested, k6 is stopped (SIGINT, then SIGKILL after
    /// `stop_grace`) and [`RunnerError::Interrupted`] is returned.
    ///
    /// A job [`K6Runner::prepare`]d before costs no remote command launch
    /// in the normal case: k6 is resumed and the word to stream goes down the prepared
    /// command, whose output is k6's log, then its exit status, the
    /// generator's CPU counters and the summary. A dropped connection is
    /// picked up again ([`remote::follow`]): k6 runs detached.
    ///
    /// Dropping the returned future instead leaves k6 running remotely
    /// until [`K6Runner::close`] stops it.
    pub async fn run(
        &mut self,
        job: &K6Job<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<K6Run, RunnerError> {
        let workspace = Workspace::new(&self.workspace_root, job)?;
        let key = job_key(&workspace, job);
        let prepared = match self.prepared.take() {
            Some(prepared) if prepared.key == key => prepared,
            _ => self.launch(job, stop).await?,
        };
        // A stop asked for before k6 starts: do not start it (the
        // prepared command ends when its input closes).
        if stop.is_stopped() {
            return Err(RunnerError::interrupted());
        }
        let mut prepared = prepared;
        let mut started_at = SystemTime::now();
        let mut started = Instant::now();
        let first = self.start_prepared(&mut prepared, stop).await;
        if let Err(e @ RunnerError::Interrupted { .. }) = first {
            return Err(e);
        }
        let mut resumed_through_api = matches!(first, Ok(true));
        if first.is_err() {
            // The prepared command is gone (a connection dropped during
            // the cooldown; its k6 was killed with it): prepare again,
            // once, and start.
            drop(prepared);
            prepared = self.launch(job, stop).await?;
            started_at = SystemTime::now();
            started = Instant::now();
            resumed_through_api = self.start_prepared(&mut prepared, stop).await?;
        }
        let Prepared {
            workspace,
            marker,
            stream,
            ..
        } = prepared;
        self.active = Some(ActiveK6 {
            workspace: workspace.clone(),
            pid: None,
        });
        let mut log = LogLines::default();
        let mut pid = None;
        let (ending, trailer) = self
            .supervise(
                &workspace,
                &marker,
                stream,
                job.max_runtime,
                &mut log,
                &mut pid,
                on_line,
                stop,
            )
            .await?;
        let ended_at = SystemTime::now();
        let trailer = match ending {
            Ending::Cancelled | Ending::TimedOut => {
                self.wind_down(&workspace, &marker, pid, &mut log, on_line)
                    .await?
            }
            Ending::Exited(_) | Ending::Vanished => trailer,
        };
        log.finish(on_line);
        self.active = None;

        let summary = match trailer.as_ref().and_then(|t| t.summary.as_deref()) {
            None => None,
            Some(bytes) => {
                Some(
                    serde_json::from_slice(bytes).map_err(|e| RunnerError::BadSummary {
                        workspace: workspace.as_str().to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        let exit_code = match trailer.as_ref().map(|t| t.exit) {
            Some(Exit::Code(code)) => Some(code),
            _ => None,
        };
        let generator_cpu = trailer
            .as_ref()
            .and_then(|t| GeneratorCpu::between(&t.cpu_start, &t.cpu_end, &t.k6_times));
        conclude(Finished {
            ending,
            exit_code,
            summary,
            log_tail: log.tail(),
            workspace: workspace.as_str().to_string(),
            started_at,
            ended_at,
            ran_for: started.elapsed(),
            generator_cpu,
            resumed_through_api,
        })
    }

    /// Stops a k6 left running by a dropped [`K6Runner::run`] future.
    async fn stop_active(&mut self) -> Result<(), RunnerError> {
        self.prepared = None;
        if let Some(active) = self.active.clone() {
            self.ssh.ensure_connected().await?;
            self.stop_k6(&active.workspace, active.pid).await?;
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

    /// The usual case costs one check of the master (no remote command);
    /// only a host that does not answer goes through the (stoppable)
    /// retries.
    async fn connect_for_run(&mut self, stop: &Stop) -> Result<(), RunnerError> {
        match self.ssh.ensure_connected().await {
            Ok(()) => Ok(()),
            Err(RunnerError::Connect { .. }) => self.ssh.reconnect(stop).await,
            Err(other) => Err(other),
        }
    }

    /// Launches `program` with `input` on its stdin and, for
    /// [`remote::run`], waits (within `command_timeout`) for it to be
    /// ready (k6 started paused, its REST API port known).
    async fn open_stream(
        &self,
        action: &str,
        program: &str,
        input: Option<&[u8]>,
    ) -> Result<Stream, RunnerError> {
        let mut child = self.ssh.spawn_stream(action, program).await?;
        let missing = |what: &str| RunnerError::Ssh {
            action: action.to_string(),
            reason: format!("no {what} pipe"),
        };
        let stdin = child.stdin().take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout().take().ok_or_else(|| missing("stdout"))?;
        let mut stderr = child.stderr().take().ok_or_else(|| missing("stderr"))?;
        let stderr = tokio::spawn(async move {
            let mut bytes = Vec::new();
            let _ = (&mut stderr)
                .take(MAX_STDERR_BYTES)
                .read_to_end(&mut bytes)
                .await;
            bytes
        });
        let mut stream = Stream {
            child,
            stdin: Some(stdin),
            stdout,
            stderr,
            api_port: None,
        };
        let Some(input) = input else {
            stream.stdin = None;
            return Ok(stream);
        };
        let ready = async {
            let stdin = stream.stdin.as_mut().ok_or_else(|| missing("stdin"))?;
            stdin.write_all(input).await.map_err(|e| RunnerError::Ssh {
                action: action.to_string(),
                reason: format!("writing the script: {e}"),
            })?;
            stdin.flush().await.map_err(|e| RunnerError::Ssh {
                action: action.to_string(),
                reason: format!("writing the script: {e}"),
            })?;
            // `ready <port>`: a short line, read a byte at a time so that
            // nothing after it is consumed.
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while line.len() < 64 {
                match stream.stdout.read(&mut byte).await {
                    Ok(1) if byte[0] == b'\n' => return Ok(parse_ready(&line)),
                    Ok(1) => line.push(byte[0]),
                    _ => break,
                }
            }
            Ok(None)
        };
        // k6 starts and initialises every VU before its API listens.
        let bound = self.options.command_timeout + remote::API_WAIT;
        let ready = tokio::time::timeout(bound, ready).await.map_err(|_| {
            RunnerError::CommandTimeout {
                action: action.to_string(),
                timeout: bound,
            }
        })??;
        if let Some(api_port) = ready {
            stream.api_port = api_port;
            return Ok(stream);
        }
        let (exit, stderr) = stream.end(self.options.command_timeout).await;
        Err(RunnerError::Remote {
            action: action.to_string(),
            exit,
            stderr: excerpt(&String::from_utf8_lossy(&stderr)),
        })
    }

    /// Reads the stream of the k6 in `workspace` until k6 ends (its
    /// trailer), `stop` is requested or `max_runtime` passes, handing the
    /// log to `log`. A stream cut short (a dropped connection, a follower
    /// that died) is picked up again from the same log offset by
    /// [`remote::follow`] after a reconnect: k6 is detached.
    #[allow(clippy::too_many_arguments)]
    async fn supervise(
        &mut self,
        workspace: &Workspace,
        marker: &str,
        mut stream: Stream,
        max_runtime: Duration,
        log: &mut LogLines,
        pid: &mut Option<u32>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<(Ending, Option<Trailer>), RunnerError> {
        let deadline = tokio::time::sleep(max_runtime);
        tokio::pin!(deadline);
        let mut failures = 0;
        let mut missing_tail_read = false;
        loop {
            let mut reader = StreamReader::new(marker);
            let mut buffer = vec![0u8; 16 * 1024];
            let mut cpu_start = None;
            loop {
                let read = tokio::select! {
                    biased;
                    _ = stop.stopped() => return Ok((Ending::Cancelled, None)),
                    _ = &mut deadline => return Ok((Ending::TimedOut, None)),
                    read = stream.stdout.read(&mut buffer) => read,
                };
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = reader
                    .push(&buffer[..n])
                    .map_err(|reason| RunnerError::Remote {
                        action: "streaming k6's log".to_string(),
                        exit: None,
                        stderr: reason,
                    })?;
                if let Some(header) = chunk.header {
                    *pid = Some(header.pid);
                    if let Some(active) = &mut self.active {
                        active.pid = Some(header.pid);
                    }
                    cpu_start = Some(header.cpu_start);
                }
                log.push(&chunk.log, on_line);
            }
            let header_seen = reader.header_seen();
            let trailer = reader.finish();
            let (exit, stderr) = stream.end(self.options.command_timeout).await;
            match trailer {
                Ok(Some(mut trailer)) if trailer.exit != Exit::Running => {
                    if let Some(cpu_start) = cpu_start {
                        trailer.cpu_start = cpu_start;
                    }
                    if log.offset() < trailer.log_size && !missing_tail_read {
                        // The follower ended before the last log bytes:
                        // read them (k6 is gone, the follow returns at once).
                        missing_tail_read = true;
                        let program = remote::follow(workspace, log.offset(), marker)?;
                        stream = self.open_stream("reading k6's log", &program, None).await?;
                        continue;
                    }
                    let ending = match trailer.exit {
                        Exit::Code(code) => Ending::Exited(code),
                        _ => Ending::Vanished,
                    };
                    return Ok((ending, Some(trailer)));
                }
                Err(reason) => {
                    return Err(RunnerError::Remote {
                        action: "streaming k6's log".to_string(),
                        exit,
                        stderr: reason,
                    })
                }
                Ok(_) => {}
            }
            // The stream ended without its trailer.
            if !header_seen && exit == Some(remote::NO_PID) {
                return Err(RunnerError::Remote {
                    action: "starting k6".to_string(),
                    exit,
                    stderr: excerpt(&String::from_utf8_lossy(&stderr)),
                });
            }
            if !header_seen && exit == Some(remote::NOT_STARTED) {
                return Ok((Ending::Vanished, None));
            }
            failures += 1;
            if failures >= MAX_STREAM_FAILURES {
                return Err(RunnerError::Remote {
                    action: "streaming k6's log".to_string(),
                    exit,
                    stderr: format!(
                        "the stream ended {failures} times before k6 did; {}",
                        excerpt(&String::from_utf8_lossy(&stderr))
                    ),
                });
            }
            match self.ssh.reconnect(stop).await {
                Ok(()) => {}
                Err(RunnerError::Interrupted { .. }) => return Ok((Ending::Cancelled, None)),
                Err(other) => return Err(other),
            }
            let program = remote::follow(workspace, log.offset(), marker)?;
            stream = self
                .open_stream("following k6's log", &program, None)
                .await?;
        }
    }

    /// For a cancelled or overlong run: stops k6 and reads the rest of its
    /// log, its exit status and whatever summary it wrote on the way out.
    async fn wind_down(
        &mut self,
        workspace: &Workspace,
        marker: &str,
        pid: Option<u32>,
        log: &mut LogLines,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Option<Trailer>, RunnerError> {
        self.ssh.ensure_connected().await?;
        self.stop_k6(workspace, pid).await?;
        let program = remote::follow(workspace, log.offset(), marker)?;
        let mut stream = self.open_stream("reading k6's log", &program, None).await?;
        let mut reader = StreamReader::new(marker);
        let mut bytes = Vec::new();
        let bound = self.options.command_timeout;
        let _ = tokio::time::timeout(bound, stream.stdout.read_to_end(&mut bytes)).await;
        let _ = stream.end(bound).await;
        let chunk = reader.push(&bytes).unwrap_or_default();
        log.push(&chunk.log, on_line);
        let mut trailer = reader.finish().ok().flatten();
        if let (Some(trailer), Some(header)) = (&mut trailer, chunk.header) {
            trailer.cpu_start = header.cpu_start;
        }
        Ok(trailer)
    }

    /// `kill -INT`, wait up to `stop_grace`, then `kill -KILL`; returns
    /// once the process is gone (or after a bounded wait). Without a known
    /// pid, the workspace's `k6.pid`.
    async fn stop_k6(
        &mut self,
        workspace: &Workspace,
        pid: Option<u32>,
    ) -> Result<(), RunnerError> {
        let program = remote::stop(workspace, pid, self.options.stop_grace)?;
        let bound = self.options.command_timeout + self.options.stop_grace + STOP_MARGIN;
        self.ssh
            .exec_bounded("stopping k6", &program, None, bound)
            .await
            .and_then(|output| require_success("stopping k6", output))?;
        Ok(())
    }
}

/// The port in [`remote::run`]'s ready line (`ready <hex port>`):
/// `Some(None)` for `ready none` (k6 ended before its API listened),
/// `None` for a line that is no ready line.
fn parse_ready(line: &[u8]) -> Option<Option<u16>> {
    let rest = line.strip_prefix(remote::READY)?;
    let rest = std::str::from_utf8(rest).ok()?.trim();
    if rest == "none" {
        return Some(None);
    }
    u16::from_str_radix(rest, 16)
        .ok()
        .filter(|p| *p != 0)
        .map(Some)
}

/// What identifies a prepared job: the workspace and everything in the
/// remote command.
fn job_key(workspace: &Workspace, job: &K6Job<'_>) -> String {
    format!(
        "{}\0{}\0{:?}\0{:?}\0{:?}",
        workspace.as_str(),
        job.script,
        job.outputs,
        job.tags,
        job.args
    )
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
        generator_cpu,
        resumed_through_api,
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
        generator_cpu,
        resumed_through_api,
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
            generator_cpu: None,
            resumed_through_api: false,
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
