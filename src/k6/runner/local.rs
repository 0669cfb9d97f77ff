//! k6 on this machine (`k6_host: local`, lb's peva_faas way): the same run
//! as over SSH — a workspace per configuration, k6's output streamed line
//! by line, the summary from `--summary-export`, a stop that leaves no k6
//! behind within a few seconds, the same outcomes ([`super::conclude`]) —
//! with k6 a child process instead of a remote one.
//!
//! The workspace is `<root>/<host>/<run_id>/<config_id>/` (the campaign
//! gives `<output dir>/k6` as the root, where lb's peva_faas keeps it),
//! holding `script.js`, `summary.json`, `k6.log` and `k6.pid`. k6 runs
//! there in a process group of its own, stdout and stderr appended to
//! k6.log, which is read on as it grows and framed into lines by
//! [`LogLines`], as the remote k6.log is. A terminal's Ctrl+C so reaches
//! this program only, which stops k6 itself: SIGTERM to k6's group (k6
//! stops gracefully and still writes its summary), SIGKILL after
//! `stop_grace`.
//!
//! A k6 left running in the workspace by a killed earlier client (SIGKILL
//! cannot be trapped, and k6's process group outlives its parent) is
//! killed before the workspace is used again, as on a remote host: only a
//! process whose working directory is that workspace and whose command
//! line is k6's summary-exporting run.
//!
//! Signals are sent by the `kill` of `/bin/sh`, the signal and the group
//! passed as arguments, never in the shell text (the crate has no binding
//! to kill(2) and no `unsafe`). Nothing here prints: k6's lines go to the
//! caller's callback.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::error::excerpt;
use super::log_lines::LogLines;
use super::remote::check_segments;
use super::{conclude, Ending, Finished, K6Job, K6Run, RunnerError};
use crate::stop::Stop;

/// How long to wait for a leftover k6, once killed, to be gone.
const LEFTOVER_WAIT: Duration = Duration::from_secs(5);
/// Bound on one `kill` (a shell built-in).
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Supervision settings of a local k6.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// The k6 executable, on PATH or an absolute path.
    pub k6_command: String,
    /// How often k6.log is read on while k6 runs.
    pub poll_interval: Duration,
    /// From SIGTERM to SIGKILL when k6 is stopped.
    pub stop_grace: Duration,
    /// How long k6 may take to be gone after SIGKILL.
    pub kill_wait: Duration,
    /// Bound on `k6 version`.
    pub command_timeout: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            k6_command: "k6".to_string(),
            poll_interval: Duration::from_millis(200),
            stop_grace: Duration::from_secs(3),
            kill_wait: Duration::from_secs(1),
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// k6 runs on this machine, below one workspace root.
#[derive(Debug)]
pub struct LocalK6Runner {
    root: PathBuf,
    options: LocalOptions,
}

impl LocalK6Runner {
    /// Runs k6 below `root`, made absolute against the current directory
    /// (k6 runs in the workspace, so every path it is given is relative
    /// to it).
    pub fn new(root: &Path, options: LocalOptions) -> Result<Self, RunnerError> {
        let root = std::path::absolute(root).map_err(|e| {
            local(
                format!("resolving the k6 workspace root {}", root.display()),
                &e,
            )
        })?;
        Ok(LocalK6Runner { root, options })
    }

    /// The workspace root (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `k6 version` here (the start-up check that k6 is installed).
    pub async fn k6_version(&self) -> Result<String, RunnerError> {
        let k6 = &self.options.k6_command;
        let action = format!("running `{k6} version`");
        let mut command = Command::new(k6);
        command
            .arg("version")
            .env("K6_NO_USAGE_REPORT", "true")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(self.options.command_timeout, command.output())
            .await
            .map_err(|_| RunnerError::Local {
                action: action.clone(),
                reason: format!("no answer within {:?}", self.options.command_timeout),
            })?
            .map_err(|e| local(action.clone(), &e))?;
        if !output.status.success() {
            return Err(RunnerError::Local {
                action,
                reason: format!(
                    "{}: {}",
                    describe_status(output.status.code()),
                    excerpt(&String::from_utf8_lossy(&output.stderr))
                ),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs one k6 job to its end, handing each line of k6's output to
    /// `on_line`. When `stop` is requested, k6 is stopped (SIGTERM, then
    /// SIGKILL after `stop_grace`) and [`RunnerError::Interrupted`] is
    /// returned; past `job.max_runtime` it is stopped the same way and the
    /// run fails with [`RunnerError::Timeout`].
    ///
    /// Dropping the returned future kills k6 (the child's kill on drop).
    pub async fn run(
        &mut self,
        job: &K6Job<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<K6Run, RunnerError> {
        check_segments(job)?;
        let workspace = self
            .root
            .join(job.host)
            .join(job.run_id)
            .join(job.config_id);
        prepare_workspace(&workspace, job.script).await?;
        // A stop asked for before k6 starts: do not start it.
        if stop.is_stopped() {
            return Err(RunnerError::interrupted());
        }

        let started_at = SystemTime::now();
        let started = Instant::now();
        let mut child = self.spawn(&workspace, job)?;
        let Some(pid) = child.id() else {
            return Err(RunnerError::Local {
                action: "starting k6".to_string(),
                reason: "k6 ended before its pid could be read".to_string(),
            });
        };
        write_pid(&workspace, pid).await?;
        let mut log_file = tokio::fs::File::open(workspace.join("k6.log"))
            .await
            .map_err(|e| local(format!("opening {}/k6.log", workspace.display()), &e))?;
        let mut log = LogLines::default();
        let ending = self
            .supervise(
                &mut child,
                job.max_runtime,
                &mut log_file,
                &mut log,
                on_line,
                stop,
            )
            .await?;
        let ended_at = SystemTime::now();
        let exit_code = match ending {
            Ending::Exited(code) => Some(code),
            Ending::Vanished => None,
            Ending::Cancelled | Ending::TimedOut => {
                self.stop_k6(&mut child, pid, &workspace).await?
            }
        };
        read_on(&mut log_file, &mut log, on_line).await?;
        log.finish(on_line);

        let summary = read_summary(&workspace).await?;
        conclude(Finished {
            ending,
            exit_code,
            summary,
            log_tail: log.tail(),
            workspace: workspace.display().to_string(),
            started_at,
            ended_at,
            ran_for: started.elapsed(),
            generator_cpu: None,
            resumed_through_api: false,
        })
    }

    /// Starts k6 in `workspace`, in a process group of its own, its output
    /// appended to k6.log.
    fn spawn(&self, workspace: &Path, job: &K6Job<'_>) -> Result<Child, RunnerError> {
        let log_path = workspace.join("k6.log");
        let open_log = || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .map_err(|e| local(format!("opening {}", log_path.display()), &e))
        };
        let (stdout, stderr) = (open_log()?, open_log()?);
        let k6 = &self.options.k6_command;
        Command::new(k6)
            .args(k6_arguments(job.outputs, job.tags, job.args))
            .current_dir(workspace)
            .env("K6_NO_USAGE_REPORT", "true")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| local(format!("starting `{k6}` in {}", workspace.display()), &e))
    }

    /// Waits for k6 to exit, `stop` or `max_runtime`, reading k6.log on
    /// every `poll_interval`.
    async fn supervise(
        &self,
        child: &mut Child,
        max_runtime: Duration,
        log_file: &mut tokio::fs::File,
        log: &mut LogLines,
        on_line: &mut (dyn FnMut(&str) + Send),
        stop: &Stop,
    ) -> Result<Ending, RunnerError> {
        let deadline = tokio::time::sleep(max_runtime);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(self.options.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.stopped() => return Ok(Ending::Cancelled),
                _ = &mut deadline => return Ok(Ending::TimedOut),
                status = child.wait() => {
                    let status = status.map_err(|e| local("waiting for k6".to_string(), &e))?;
                    // Ended by a signal this runner did not send: no exit code.
                    return Ok(status.code().map_or(Ending::Vanished, Ending::Exited));
                }
                _ = tick.tick() => read_on(log_file, log, on_line).await?,
            }
        }
    }

    /// SIGTERM to k6's group, up to `stop_grace` for it to end, then
    /// SIGKILL and up to `kill_wait`: k6's exit code (`None` after a
    /// signal), or an error naming the workspace if k6 survived.
    async fn stop_k6(
        &self,
        child: &mut Child,
        pid: u32,
        workspace: &Path,
    ) -> Result<Option<i32>, RunnerError> {
        // A group already gone (k6 ended in between) is no failure.
        signal_group(pid, "TERM").await;
        if let Ok(status) = tokio::time::timeout(self.options.stop_grace, child.wait()).await {
            let status = status.map_err(|e| local("waiting for k6".to_string(), &e))?;
            return Ok(status.code());
        }
        signal_group(pid, "KILL").await;
        let _ = child.start_kill();
        match tokio::time::timeout(self.options.kill_wait, child.wait()).await {
            Ok(status) => Ok(status
                .map_err(|e| local("waiting for k6".to_string(), &e))?
                .code()),
            Err(_) => Err(RunnerError::Local {
                action: "stopping k6".to_string(),
                reason: format!(
                    "k6 (pid {pid}) in {} survived SIGKILL for {:?}",
                    workspace.display(),
                    self.options.kill_wait
                ),
            }),
        }
    }
}

/// k6's arguments after the executable: a summary-exporting run of
/// `script.js` in the workspace, each non-blank output as `--out`, each
/// tag as `--tag key=value`, then the job's further arguments (the remote
/// start program's command, unquoted: no shell is involved here).
fn k6_arguments(
    outputs: &[String],
    tags: &BTreeMap<String, String>,
    extra: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--summary-export", "summary.json"]
        .map(String::from)
        .to_vec();
    for output in outputs.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        args.extend(["--out".to_string(), output.to_string()]);
    }
    for (key, value) in tags {
        args.extend(["--tag".to_string(), format!("{key}={value}")]);
    }
    args.extend(extra.iter().cloned());
    args.push("script.js".to_string());
    args
}

/// Creates the workspace, stops a k6 an earlier client left running in it,
/// clears the files of an earlier attempt and writes `script.js` and an
/// empty k6.log (each created anew: a link left in their place is removed,
/// never written through).
async fn prepare_workspace(workspace: &Path, script: &str) -> Result<(), RunnerError> {
    tokio::fs::create_dir_all(workspace)
        .await
        .map_err(|e| local(format!("creating {}", workspace.display()), &e))?;
    stop_leftover(workspace).await;
    for name in ["summary.json", "k6.log", "k6.pid", "script.js"] {
        let path = workspace.join(name);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(local(format!("removing {}", path.display()), &e))
            }
            _ => {}
        }
    }
    create_new(&workspace.join("script.js"), script.as_bytes()).await?;
    create_new(&workspace.join("k6.log"), b"").await
}

async fn create_new(path: &Path, contents: &[u8]) -> Result<(), RunnerError> {
    use tokio::io::AsyncWriteExt;
    let write = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await?;
        file.write_all(contents).await?;
        file.flush().await
    };
    write
        .await
        .map_err(|e| local(format!("writing {}", path.display()), &e))
}

/// Records k6's pid (its process group) for [`stop_leftover`].
async fn write_pid(workspace: &Path, pid: u32) -> Result<(), RunnerError> {
    let tmp = workspace.join("k6.pid.tmp");
    let path = workspace.join("k6.pid");
    let write = async {
        tokio::fs::write(&tmp, format!("{pid}\n")).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    write
        .await
        .map_err(|e| local(format!("writing {}", path.display()), &e))
}

/// Kills the process group of a k6 that `k6.pid` names when it still runs
/// in `workspace`: its working directory is the workspace and its command
/// line k6's summary-exporting run (a pid reused since is left alone).
/// Waits, bounded, for it to be gone.
async fn stop_leftover(workspace: &Path) {
    let Ok(text) = tokio::fs::read_to_string(workspace.join("k6.pid")).await else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    if !is_k6_in(pid, workspace) {
        return;
    }
    signal_group(pid, "KILL").await;
    let gone_by = Instant::now() + LEFTOVER_WAIT;
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` is a k6 run working in `workspace`.
fn is_k6_in(pid: u32, workspace: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(cwd) = std::fs::read_link(proc_dir.join("cwd")) else {
        return false;
    };
    let same_dir = std::fs::canonicalize(workspace).is_ok_and(|w| w == cwd);
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    same_dir
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == b"--summary-export")
}

/// Sends `signal` (`TERM`, `KILL`) to the process group `group`; whether
/// `kill` succeeded (a group that is gone is not an error to the caller).
async fn signal_group(group: u32, signal: &str) -> bool {
    let mut command = Command::new("/bin/sh");
    command
        .args([
            "-c",
            r#"kill -s "$1" -- "-$2" 2>/dev/null"#,
            "kill",
            signal,
            &group.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    matches!(
        tokio::time::timeout(SIGNAL_TIMEOUT, command.status()).await,
        Ok(Ok(status)) if status.success()
    )
}

/// Reads k6.log on from where it was last read, framing it into lines.
async fn read_on(
    log_file: &mut tokio::fs::File,
    log: &mut LogLines,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(), RunnerError> {
    let mut bytes = Vec::new();
    log_file
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| local("reading k6.log".to_string(), &e))?;
    log.push(&bytes, on_line);
    Ok(())
}

/// The summary k6 wrote, or `None` when it wrote none.
async fn read_summary(workspace: &Path) -> Result<Option<Value>, RunnerError> {
    let path = workspace.join("summary.json");
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RunnerError::BadSummary {
                    workspace: workspace.display().to_string(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(local(format!("reading {}", path.display()), &e)),
    }
}

fn describe_status(code: Option<i32>) -> String {
    code.map_or("ended by a signal".to_string(), |code| {
        format!("exit {code}")
    })
}

fn local(action: String, error: &std::io::Error) -> RunnerError {
    RunnerError::Local {
        action,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_the_remote_commands() {
        let tags = BTreeMap::from([
            ("run_id".to_string(), "r 1".to_string()),
            ("workload".to_string(), "peva_faas".to_string()),
        ]);
        let outputs = [" json=out.json ".to_string(), "  ".to_string()];
        let extra = ["--vus".to_string(), "10".to_string()];
        assert_eq!(
            k6_arguments(&outputs, &tags, &extra),
            [
                "run",
                "--summary-export",
                "summary.json",
                "--out",
                "json=out.json",
                "--tag",
                "run_id=r 1",
                "--tag",
                "workload=peva_faas",
                "--vus",
                "10",
                "script.js"
            ]
        );
    }
}
