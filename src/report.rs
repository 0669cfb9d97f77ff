//! Error reporting policy, in one place: what kind each failure is, which
//! exit code it gives (SPEC §2), and the protocol `error` object lb reads.
//!
//! Commands return [`CommandError`]; the CLI turns it into a document with
//! [`failure_document`] (`{"ok": false, "error": ...}`) or, for `run`,
//! [`failed_run_result`], and exits with [`CommandError::exit_code`].
//! Messages never contain secrets: config errors name fields, not values
//! of password fields.

use serde_json::{json, Value};

use crate::config::{ConfigError, FieldError};
use crate::protocol::{exit, ErrorInfo, RunResult};

/// The stable kinds of the protocol's `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad JSON, bad flags, bad config: the user must fix the input.
    InvalidInput,
    /// The environment is unusable at start (k6 host or Prometheus unreachable).
    Environment,
    /// Some configurations failed operationally; the run went on.
    ConfigurationFailed,
    /// SIGINT/SIGTERM or the stop file.
    Interrupted,
    /// A bug or an unexpected failure of this program.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Environment => "environment",
            ErrorKind::ConfigurationFailed => "configuration_failed",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Internal => "internal",
        }
    }

    /// The exit code of SPEC §2. The spec has no code of its own for
    /// internal errors; they exit 1 ("failed"), never 0 or 2, so lb treats
    /// them as a failed run rather than as bad input.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::InvalidInput => exit::INVALID_INPUT,
            ErrorKind::Environment => exit::ENVIRONMENT,
            ErrorKind::ConfigurationFailed | ErrorKind::Internal => exit::CONFIG_FAILED,
            ErrorKind::Interrupted => exit::INTERRUPTED,
        }
    }
}

/// Why a command failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input outside the config itself: stdin, flags. `field` names it
    /// (`stdin`, `context.repetition`, `--pairs`).
    #[error("{field}: {reason}")]
    Input { field: String, reason: String },
    /// The config is invalid or its file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The environment is unusable; `context` carries details for lb.
    #[error("{message}")]
    Environment { message: String, context: Value },
    /// Stopped by a signal or the stop file.
    #[error("interrupted")]
    Interrupted,
    /// Anything else: a bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    pub fn input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CommandError::Input {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::Input { .. } | CommandError::Config(_) => ErrorKind::InvalidInput,
            CommandError::Environment { .. } => ErrorKind::Environment,
            CommandError::Interrupted => ErrorKind::Interrupted,
            CommandError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }

    /// The protocol's `error` object. Invalid input always carries
    /// `context.errors: [{field, reason}]`.
    pub fn to_error_info(&self) -> ErrorInfo {
        let context = match self {
            CommandError::Input { field, reason } => {
                errors_context(&[FieldError::new(field.clone(), reason.clone())])
            }
            CommandError::Config(error) => {
                let mut context = errors_context(&error.field_errors());
                if let (ConfigError::File { path, .. }, Value::Object(map)) = (error, &mut context)
                {
                    map.insert("file".into(), json!(path.display().to_string()));
                }
                context
            }
            CommandError::Environment { context, .. } => context.clone(),
            CommandError::Interrupted | CommandError::Internal(_) => json!({}),
        };
        ErrorInfo {
            kind: self.kind().as_str().to_string(),
            message: self.to_string(),
            context,
        }
    }
}

/// Unexpected failures from deeper code become internal errors with their
/// whole cause chain.
impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        CommandError::Internal(format!("{error:#}"))
    }
}

fn errors_context(errors: &[FieldError]) -> Value {
    json!({ "errors": errors })
}

/// `{"ok": false, "error": {...}}`: what `validate`, `plan` and `script`
/// print on stdout when they fail.
pub fn failure_document(error: &CommandError) -> Value {
    json!({ "ok": false, "error": error.to_error_info() })
}

/// The failure for a person at a terminal (`validate --format text`,
/// `plan --format table`): invalid input as one line per field with its
/// reason, anything else as one `error:` line.
pub fn failure_text(error: &CommandError) -> String {
    let info = error.to_error_info();
    let fields: Vec<(String, String)> = info
        .context
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let text = |key: &str| e.get(key).and_then(Value::as_str).unwrap_or_default();
                    (text("field").to_string(), text("reason").to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    if error.kind() != ErrorKind::InvalidInput || fields.is_empty() {
        return format!("error: {}\n", info.message);
    }
    let mut text = format!(
        "invalid input: {} problem{}\n",
        fields.len(),
        if fields.len() == 1 { "" } else { "s" }
    );
    for (field, reason) in fields {
        text.push_str(&format!("{field}: {reason}\n"));
    }
    text
}

/// The one result document `run` prints when it fails before or outside
/// the campaign: empty datasets, `returncode` = the exit code, `error` set.
pub fn failed_run_result(error: &CommandError) -> RunResult {
    let kind = error.kind();
    RunResult {
        returncode: i32::from(kind.exit_code()),
        success: false,
        interrupted: kind == ErrorKind::Interrupted,
        error: Some(error.to_error_info()),
        ..RunResult::default()
    }
}

/// An error and its causes on one line. Client libraries keep the useful
/// part in the source chain (reqwest's "connection refused", openssh's
/// copy of ssh's own message); a cause already contained in the text is
/// not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn kinds_map_to_spec_exit_codes() {
        let cases = [
            (
                CommandError::input("stdin", "malformed"),
                "invalid_input",
                2,
            ),
            (
                CommandError::Config(ConfigError::Invalid(vec![])),
                "invalid_input",
                2,
            ),
            (
                CommandError::Environment {
                    message: "k6 host unreachable".into(),
                    context: json!({"host": "10.0.0.2"}),
                },
                "environment",
                3,
            ),
            (CommandError::Interrupted, "interrupted", 130),
            (CommandError::Internal("bug".into()), "internal", 1),
        ];
        for (error, kind, code) in cases {
            assert_eq!(error.kind().as_str(), kind);
            assert_eq!(error.exit_code(), code);
            assert_eq!(error.to_error_info().kind, kind);
        }
    }

    #[test]
    fn invalid_config_lists_fields() {
        let error = CommandError::from(ConfigError::Invalid(vec![
            FieldError::new(
                "functions[1].name",
                "invalid type: integer `5`, expected a string",
            ),
            FieldError::new("k6_port", "0 is not in 1..=65535"),
        ]));
        assert_eq!(
            serde_json::to_value(failure_document(&error)).unwrap(),
            json!({
                "ok": false,
                "error": {
                    "type": "invalid_input",
                    "message": "invalid configuration: functions[1].name: invalid type: integer `5`, expected a string; k6_port: 0 is not in 1..=65535",
                    "context": {"errors": [
                        {"field": "functions[1].name", "reason": "invalid type: integer `5`, expected a string"},
                        {"field": "k6_port", "reason": "0 is not in 1..=65535"},
                    ]},
                },
            })
        );
    }

    #[test]
    fn failure_text_is_one_line_per_field() {
        let error = CommandError::from(ConfigError::Invalid(vec![
            FieldError::new(
                "functions[1].name",
                "invalid type: integer `5`, expected a string",
            ),
            FieldError::new("k6_port", "0 is not in 1..=65535"),
        ]));
        assert_eq!(
            failure_text(&error),
            "invalid input: 2 problems\n\
             functions[1].name: invalid type: integer `5`, expected a string\n\
             k6_port: 0 is not in 1..=65535\n"
        );
        assert_eq!(
            failure_text(&CommandError::input("stdin", "empty input")),
            "invalid input: 1 problem\nstdin: empty input\n"
        );
        assert_eq!(
            failure_text(&CommandError::Internal("bug".into())),
            "error: internal error: bug\n"
        );
    }

    #[test]
    fn file_errors_carry_the_file() {
        let error = CommandError::from(ConfigError::File {
            origin: "--config".into(),
            path: PathBuf::from("/x/dfaas.yaml"),
            reason: "file not found".into(),
        });
        let info = error.to_error_info();
        assert_eq!(
            info.message,
            "--config: cannot use /x/dfaas.yaml: file not found"
        );
        assert_eq!(
            info.context,
            json!({
                "errors": [{"field": "--config", "reason": "/x/dfaas.yaml: file not found"}],
                "file": "/x/dfaas.yaml",
            })
        );
    }

    #[test]
    fn failed_run_result_is_a_full_result() {
        let result = failed_run_result(&CommandError::input("stdin", "empty input"));
        assert_eq!(result.returncode, 2);
        assert!(!result.success && !result.interrupted);
        assert!(result.dfaas_results.is_empty() && result.artifacts.is_empty());
        assert_eq!(
            result.error.as_ref().map(|e| e.kind.as_str()),
            Some("invalid_input")
        );
        let interrupted = failed_run_result(&CommandError::Interrupted);
        assert_eq!(interrupted.returncode, 130);
        assert!(interrupted.interrupted);
    }

    #[test]
    fn anyhow_chain_is_kept() {
        let error = anyhow::anyhow!("disk full").context("writing results.csv");
        let error = CommandError::from(error);
        assert_eq!(
            error.to_string(),
            "internal error: writing results.csv: disk full"
        );
    }
}
