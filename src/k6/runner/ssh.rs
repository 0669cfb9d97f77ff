//! The SSH session to the k6 host: one OpenSSH ControlMaster (through the
//! `openssh` crate) and bounded commands on it.
//!
//! It owns the master's lifetime: a bounded connect (ssh's connect timeout
//! plus a bound on key exchange and authentication), a bounded idle
//! persistence (a killed client does not leave the master behind for
//! ever), a check before use that starts a new master when the old one
//! dropped, reconnecting with backoff for a bounded time when the host
//! stops answering (cancelled by a [`Stop`]), and the control directory
//! (the masters of killed runs cleaned up at the next start:
//! [`super::control_dir`]). Every command has a time bound and its stdout
//! and stderr captured, never inherited: our stdout carries the result
//! document.
//!
//! It knows nothing of k6: the programs it runs come from
//! [`super::remote`]. The file paths it gives ssh (key, known_hosts) are
//! checked and escaped here, since ssh expands `%` and `${}` in them.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::{
    Child, ControlPersist, ForwardType, KnownHosts, Session, SessionBuilder, Socket, Stdio,
};
use tokio::io::AsyncWriteExt;

use super::error::require_success;
use super::{control_dir, HostKeyCheck, RunnerError, RunnerOptions};
use crate::config::K6Host;
use crate::report::error_chain;
use crate::stop::Stop;

/// First wait between reconnect attempts; it doubles up to
/// [`MAX_RECONNECT_BACKOFF`].
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(8);

/// The master to one k6 host, reopened when it drops.
pub(super) struct SshSession {
    target: K6Host,
    options: RunnerOptions,
    session: Option<Arc<Session>>,
    /// Remote commands launched so far (each pays the login shell's
    /// start-up on the k6 host).
    launched: AtomicU64,
    /// Short directory holding the control socket (Unix socket paths are
    /// limited to ~108 bytes).
    control_dir: tempfile::TempDir,
    /// Control directories of killed runs removed when this one started.
    leftovers: Vec<PathBuf>,
}

impl SshSession {
    /// Cleans up what killed runs left, then starts the master to
    /// `target`, within `options.connect_timeout`.
    pub(super) async fn connect(
        target: &K6Host,
        options: &RunnerOptions,
    ) -> Result<SshSession, RunnerError> {
        let root = short_temp_root();
        let control_dir = control_dir::create(&root).map_err(|e| RunnerError::Connect {
            host: format!("{}:{}", target.host, target.port),
            reason: format!("cannot create the control directory: {e}"),
        })?;
        let leftovers = control_dir::clean_leftovers(&root, control_dir.path());
        let mut ssh = SshSession {
            target: target.clone(),
            options: options.clone(),
            session: None,
            launched: AtomicU64::new(0),
            control_dir,
            leftovers,
        };
        ssh.session = Some(Arc::new(ssh.open().await?));
        Ok(ssh)
    }

    /// `host:port`, as errors name it.
    pub(super) fn destination(&self) -> String {
        format!("{}:{}", self.target.host, self.target.port)
    }

    /// Remote commands launched on this session so far.
    pub(super) fn commands_launched(&self) -> u64 {
        self.launched.load(Ordering::Relaxed)
    }

    pub(super) fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    pub(super) fn leftovers_removed(&self) -> &[PathBuf] {
        &self.leftovers
    }

    pub(super) fn control_directory(&self) -> &Path {
        self.control_dir.path()
    }

    pub(super) fn control_socket(&self) -> Option<&Path> {
        self.session.as_ref().map(|s| s.control_socket())
    }

    async fn open(&self) -> Result<Session, RunnerError> {
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
    pub(super) async fn ensure_connected(&mut self) -> Result<(), RunnerError> {
        if let Some(session) = &self.session {
            let alive = tokio::time::timeout(self.options.command_timeout, session.check()).await;
            if matches!(alive, Ok(Ok(()))) {
                return Ok(());
            }
        }
        if let Some(old) = self.session.take() {
            // The master is gone or stuck; closing may fail, which is fine
            // (a stream still holding it lets it go when dropped).
            if let Ok(old) = Arc::try_unwrap(old) {
                let _ = tokio::time::timeout(Duration::from_secs(2), old.close()).await;
            }
        }
        self.session = Some(Arc::new(self.open().await?));
        Ok(())
    }

    /// Like [`SshSession::ensure_connected`], but a host that does not
    /// answer is retried with backoff (0.5 s doubling to 8 s) for up to
    /// `options.reconnect_within`: a short outage (sshd restarting, a
    /// network blip) costs a wait, not the campaign. Gives up early with
    /// [`RunnerError::Interrupted`] when `stop` is requested.
    pub(super) async fn reconnect(&mut self, stop: &Stop) -> Result<(), RunnerError> {
        let started = Instant::now();
        let mut backoff = FIRST_RECONNECT_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = tokio::select! {
                biased;
                _ = stop.stopped() => return Err(RunnerError::interrupted()),
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
            if !stop
                .sleep(backoff.min(self.options.reconnect_within - elapsed))
                .await
            {
                return Err(RunnerError::interrupted());
            }
            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
        }
    }

    /// Shuts the master down (within 5 s).
    pub(super) async fn close(&mut self) -> Result<(), RunnerError> {
        if let Some(session) = self.session.take() {
            let Ok(session) = Arc::try_unwrap(session) else {
                return Err(RunnerError::Ssh {
                    action: "closing the SSH master".to_string(),
                    reason: "a remote command still uses it".to_string(),
                });
            };
            let closed = tokio::time::timeout(Duration::from_secs(5), session.close()).await;
            if let Ok(Err(e)) = closed {
                return Err(RunnerError::Ssh {
                    action: "closing the SSH master".to_string(),
                    reason: error_chain(&e),
                });
            }
        }
        Ok(())
    }

    /// [`SshSession::exec`], failing unless the command exits 0.
    pub(super) async fn exec_ok(
        &self,
        action: &str,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, RunnerError> {
        let output = self.exec(action, command, stdin).await?;
        require_success(action, output)
    }

    /// [`SshSession::exec_bounded`] within `options.command_timeout`.
    pub(super) async fn exec(
        &self,
        action: &str,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, RunnerError> {
        self.exec_bounded(action, command, stdin, self.options.command_timeout)
            .await
    }

    /// Runs `command` through the remote login shell, stdout and stderr
    /// captured (never inherited: our stdout carries the result document),
    /// failing with [`RunnerError::CommandTimeout`] after `bound`. `action`
    /// names the step in errors.
    pub(super) async fn exec_bounded(
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
        self.launched.fetch_add(1, Ordering::Relaxed);
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

    /// Forwards the Unix socket `local` (in this run's control directory)
    /// to `127.0.0.1:port` on the k6 host, through the master: no remote
    /// command is launched.
    pub(super) async fn forward_local(&self, local: &Path, port: u16) -> Result<(), RunnerError> {
        let session = self.session.as_ref().ok_or_else(|| RunnerError::Ssh {
            action: "forwarding k6's REST API".to_string(),
            reason: "not connected".to_string(),
        })?;
        let forward = session.request_port_forward(
            ForwardType::Local,
            Socket::UnixSocket { path: local.into() },
            Socket::TcpSocket {
                host: "127.0.0.1".into(),
                port,
            },
        );
        match tokio::time::timeout(self.options.command_timeout, forward).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RunnerError::Ssh {
                action: "forwarding k6's REST API".to_string(),
                reason: error_chain(&e),
            }),
            Err(_) => Err(RunnerError::CommandTimeout {
                action: "forwarding k6's REST API".to_string(),
                timeout: self.options.command_timeout,
            }),
        }
    }

    /// Ends a [`SshSession::forward_local`] forward and removes its socket
    /// (best effort: the master's end ends it anyway).
    pub(super) async fn close_forward(&self, local: &Path, port: u16) {
        if let Some(session) = &self.session {
            let close = session.close_port_forward(
                ForwardType::Local,
                Socket::UnixSocket { path: local.into() },
                Socket::TcpSocket {
                    host: "127.0.0.1".into(),
                    port,
                },
            );
            let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
        }
        let _ = std::fs::remove_file(local);
    }

    /// Starts `command` through the remote login shell with stdin, stdout
    /// and stderr piped, for a long-lived exchange (the caller reads and
    /// bounds it). The child keeps the master alive while it lives.
    pub(super) async fn spawn_stream(
        &self,
        action: &str,
        command: &str,
    ) -> Result<Child<Arc<Session>>, RunnerError> {
        let session = self.session.clone().ok_or_else(|| RunnerError::Ssh {
            action: action.to_string(),
            reason: "not connected".to_string(),
        })?;
        self.launched.fetch_add(1, Ordering::Relaxed);
        let mut remote = Session::to_raw_command(session, command);
        remote
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn = remote.spawn();
        match tokio::time::timeout(self.options.command_timeout, spawn).await {
            Ok(Ok(child)) => Ok(child),
            Ok(Err(e)) => Err(RunnerError::Ssh {
                action: action.to_string(),
                reason: error_chain(&e),
            }),
            Err(_) => Err(RunnerError::CommandTimeout {
                action: action.to_string(),
                timeout: self.options.command_timeout,
            }),
        }
    }
}

/// ssh expands `%` tokens (`%d`, `%h`, ...) and `${VAR}` in the file names
/// of `IdentityFile` and `UserKnownHostsFile`, from `-i` and `-o` alike.
const SSH_EXPANSION: &str = "${";

/// The private key path for `ssh -i`. ssh takes the argument whole (no
/// splitting), but checks that the path exists as written and then opens
/// it after `%` and `${}` expansion, so a path with either cannot work
/// whatever the escaping; config validation refuses such paths first.
fn identity_path(path: &Path) -> Result<&Path, RunnerError> {
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
fn option_path(what: &'static str, path: &Path) -> Result<String, RunnerError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
