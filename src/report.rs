//! Outcome and error reporting policy, in one place: what kind each
//! failure is, which exit code it gives (SPEC §2), the protocol `error`
//! object lb reads, and `run`'s result document.
//!
//! Commands return [`CommandError`]; the CLI turns it into a document with
//! [`failure_document`] (`{"ok": false, "error": ...}`) and exits with
//! [`CommandError::exit_code`]. `run` ends in [`run_report`], which turns
//! the campaign's [`Outcome`] — or the error that stopped `run` before or
//! outside the campaign — into the result document and its exit code.
//! Messages never contain secrets: config errors name fields, not values
//! of password fields.

use std::path::Path;

use serde_json::{json, Value};

use crate::campaign::{Outcome, RunEnd};
use crate::config::{ConfigError, FieldError};
use crate::output::{Fault, OutputError};
use crate::protocol::{ErrorInfo, RunResult};
pub use crate::protocol::{ErrorKind, ExitCode};

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
    pub(crate) fn input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        CommandError::Input {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            CommandError::Input { .. } | CommandError::Config(_) => ErrorKind::InvalidInput,
            CommandError::Environment { .. } => ErrorKind::Environment,
            CommandError::Interrupted => ErrorKind::Interrupted,
            CommandError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        self.kind().exit_code()
    }

    /// The protocol's `error` object. Invalid input always carries
    /// `context.errors: [{field, reason}]`.
    pub(crate) fn to_error_info(&self) -> ErrorInfo {
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
            kind: self.kind(),
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
pub(crate) fn failure_document(error: &CommandError) -> Value {
    json!({ "ok": false, "error": error.to_error_info() })
}

/// The failure for a person at a terminal (`validate --format text`,
/// `plan --format table`): invalid input as one line per field with its
/// reason, anything else as one `error:` line.
pub(crate) fn failure_text(error: &CommandError) -> String {
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

/// `run`'s result document and exit code: from the campaign's outcome
/// (what finished is in the document; the error says why the rest did
/// not run), or from the error that stopped `run` before or outside the
/// campaign (empty datasets, `error` set).
pub(crate) fn run_report(ran: Result<Outcome, CommandError>) -> (RunResult, ExitCode) {
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(error) => {
            let code = error.exit_code();
            let result = RunResult {
                returncode: i32::from(code.code()),
                success: false,
                interrupted: error.kind() == ErrorKind::Interrupted,
                error: Some(error.to_error_info()),
                ..RunResult::default()
            };
            return (result, code);
        }
    };
    let error = end_error(outcome.end);
    let code = error.as_ref().map_or(ExitCode::Ok, |e| e.kind.exit_code());
    let result = RunResult {
        returncode: i32::from(code.code()),
        success: code == ExitCode::Ok,
        interrupted: code == ExitCode::Interrupted,
        data: outcome.data,
        error,
    };
    (result, code)
}

/// The exit code a campaign's end gives (what [`run_report`] returns).
pub(crate) fn run_exit_code(end: &RunEnd) -> ExitCode {
    match end {
        RunEnd::Completed => ExitCode::Ok,
        RunEnd::ConfigurationsFailed(_) => ErrorKind::ConfigurationFailed.exit_code(),
        RunEnd::Interrupted { .. } => ErrorKind::Interrupted.exit_code(),
        RunEnd::GeneratorLost { .. } => ErrorKind::Environment.exit_code(),
        RunEnd::OutputFailed { dir, source, field } => {
            output_failure(dir, source, field).exit_code()
        }
    }
}

/// Why a campaign did not end cleanly, as the protocol's `error`.
fn end_error(end: RunEnd) -> Option<ErrorInfo> {
    let info = |kind, message: String, context| ErrorInfo {
        kind,
        message,
        context,
    };
    match end {
        RunEnd::Completed => None,
        RunEnd::ConfigurationsFailed(failed) => Some(info(
            ErrorKind::ConfigurationFailed,
            format!("{failed} configuration(s) failed and are listed in skipped.csv"),
            json!({"failed_configurations": failed}),
        )),
        RunEnd::Interrupted { output_dir } => Some(info(
            ErrorKind::Interrupted,
            "interrupted by a signal or the stop file; finished rows are on disk".into(),
            json!({"output_dir": output_dir}),
        )),
        RunEnd::GeneratorLost {
            reason,
            k6_host,
            output_dir,
        } => Some(info(
            ErrorKind::Environment,
            format!("{reason}; the run stopped, finished rows are on disk"),
            json!({"output_dir": output_dir, "k6_host": k6_host}),
        )),
        // What finished is on disk and in the result; the error says why
        // the rest was not run.
        RunEnd::OutputFailed { dir, source, field } => {
            Some(output_failure(&dir, &source, field).to_error_info())
        }
    }
}

/// An output failure as the command's error: a bad output location is
/// invalid input naming `field` (exit 2), the system refusing to write is
/// an environment fault (exit 3); either way the message names the path
/// and the OS error.
pub(crate) fn output_failure(dir: &Path, source: &OutputError, field: &str) -> CommandError {
    let message = format!("output directory {}: {source}", dir.display());
    match source.fault() {
        Fault::Location => CommandError::input(field, message),
        Fault::Environment => CommandError::Environment {
            message,
            context: json!({
                "output_dir": dir,
                "path": source.path(),
                "os_error": source.os_error(),
            }),
        },
        Fault::Internal => CommandError::Internal(message),
    }
}

/// An error and its causes on one line. Client libraries keep the useful
/// part in the source chain (reqwest's "connection refused", openssh's
/// copy of ssh's own message); a cause already contained in the text is
/// not repeated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
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
            assert_eq!(serde_json::to_value(error.kind()).unwrap(), json!(kind));
            assert_eq!(error.exit_code().code(), code);
            assert_eq!(
                serde_json::to_value(error.to_error_info()).unwrap()["type"],
                json!(kind)
            );
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
        let (result, code) = run_report(Err(CommandError::input("stdin", "empty input")));
        assert_eq!(code, ExitCode::InvalidInput);
        assert_eq!(result.returncode, 2);
        assert!(!result.success && !result.interrupted);
        assert!(result.data.dfaas_results.is_empty() && result.data.artifacts.is_empty());
        assert_eq!(
            result.error.as_ref().map(|e| e.kind),
            Some(ErrorKind::InvalidInput)
        );
        let (interrupted, _) = run_report(Err(CommandError::Interrupted));
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
