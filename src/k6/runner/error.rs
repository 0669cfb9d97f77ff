//! What can go wrong running k6 on the k6 host: one error type for the
//! runners and their parts (SSH session, remote programs, the local child
//! process), each variant naming
//! the host, workspace or remote command it is about, with the remote
//! stderr or the end of k6's log when there is one.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

/// Longest remote stderr kept in an error.
const STDERR_EXCERPT_CHARS: usize = 2000;

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
    /// Running k6 on this machine (`k6_host: local`) failed: starting,
    /// signalling or waiting for it, or its workspace.
    #[error("on this machine, {action} failed: {reason}")]
    Local { action: String, reason: String },
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

impl RunnerError {
    /// A stop that came before k6 started (or while reconnecting): no
    /// summary, no log.
    pub(super) fn interrupted() -> RunnerError {
        RunnerError::Interrupted {
            summary: None,
            log_tail: String::new(),
        }
    }

    /// A remote command that ran and failed: its exit status and the end
    /// of its stderr.
    pub(super) fn remote_failure(action: &str, output: &Output) -> RunnerError {
        RunnerError::Remote {
            action: action.to_string(),
            exit: output.status.code(),
            stderr: excerpt(&String::from_utf8_lossy(&output.stderr)),
        }
    }
}

/// `output` when its command succeeded, its failure otherwise.
pub(super) fn require_success(action: &str, output: Output) -> Result<Output, RunnerError> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(RunnerError::remote_failure(action, &output))
    }
}

/// The end of a remote stderr, trimmed, at most [`STDERR_EXCERPT_CHARS`]
/// characters (`…` marks a cut).
pub(super) fn excerpt(text: &str) -> String {
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
