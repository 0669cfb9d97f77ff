//! The run context: where and as what a run happens, resolved once from
//! the request's `context` and the config (SPEC §2) and borrowed by
//! everything that needs it — the campaign, the `LB_EVENT` observer, the
//! k6 load generator, `plan` and `validate`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::output::OutputError;
use crate::protocol::Context;
use crate::report::{self, CommandError};

/// The request context with every default filled in and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RunContext {
    /// The node's name (a path segment on the k6 host).
    pub host: String,
    pub workload: String,
    /// A path segment on the k6 host and in file names.
    pub run_id: String,
    pub repetition: u32,
    pub total_repetitions: u32,
    pub output_dir: PathBuf,
    /// Where `output_dir` came from, for errors: `context.output_dir` or
    /// the config's `output_dir` (the default counts as the latter).
    pub output_dir_field: &'static str,
    pub stop_file: Option<PathBuf>,
    /// lb's working directory (absolute), when lb runs the campaign: the
    /// base of relative memory paths (else the output directory).
    pub lb_workdir: Option<PathBuf>,
}

impl RunContext {
    /// Fills in the context's defaults and checks the values that become
    /// path segments on the k6 host and in file names.
    pub(crate) fn resolve(context: &Context, config: &Config) -> Result<Self, CommandError> {
        let host = match &context.host {
            Some(host) => host.clone(),
            None => local_hostname(),
        };
        check_segment("context.host", &host)?;
        let run_id = match (&context.run_id, &config.run_id) {
            (Some(id), _) | (None, Some(id)) => id.clone(),
            (None, None) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!("run-{now}")
            }
        };
        check_segment("context.run_id", &run_id)?;
        let repetition = context.repetition.unwrap_or(1);
        let total_repetitions = context.total_repetitions.unwrap_or(1).max(repetition);
        if repetition == 0 {
            return Err(CommandError::input(
                "context.repetition",
                "must be at least 1",
            ));
        }
        let output_dir_field = if context.output_dir.is_some() {
            "context.output_dir"
        } else {
            "output_dir"
        };
        let output_dir = match (&context.output_dir, &config.output_dir) {
            (Some(dir), _) if dir.trim().is_empty() => {
                return Err(CommandError::input(
                    "context.output_dir",
                    "must not be empty",
                ))
            }
            (Some(dir), _) => PathBuf::from(dir),
            (None, Some(dir)) => dir.clone(),
            (None, None) => PathBuf::from(crate::config::default_output_dir(config.plugin)),
        };
        let lb_workdir = match context.lb_workdir.as_deref() {
            None => None,
            Some(dir) if !std::path::Path::new(dir).is_absolute() => {
                return Err(CommandError::input(
                    "context.lb_workdir",
                    format!("{dir:?} must be an absolute path"),
                ))
            }
            Some(dir) => Some(PathBuf::from(dir)),
        };
        Ok(RunContext {
            host,
            workload: context
                .workload
                .clone()
                .unwrap_or_else(|| config.plugin.name().to_string()),
            run_id,
            repetition,
            total_repetitions,
            output_dir,
            output_dir_field,
            stop_file: context
                .stop_file
                .as_ref()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            lb_workdir,
        })
    }

    #[cfg(test)]
    /// A context for tests and library callers: one repetition of `run_id`
    /// on `host`, written to `output_dir`.
    pub(crate) fn local(host: &str, run_id: &str, output_dir: PathBuf) -> Self {
        RunContext {
            host: host.to_string(),
            workload: "dfaas".to_string(),
            run_id: run_id.to_string(),
            repetition: 1,
            total_repetitions: 1,
            output_dir,
            output_dir_field: "output_dir",
            stop_file: None,
            lb_workdir: None,
        }
    }

    /// Checks the output location without creating or writing anything
    /// (what `validate` and `plan` can do; `run` prepares it, see
    /// [`crate::output::location::prepare`]).
    pub(crate) fn inspect_output(&self) -> Result<(), CommandError> {
        crate::output::location::inspect(&self.output_dir).map_err(|e| self.output_error(e))
    }

    /// An error about the output location as the command's error: a bad
    /// location is invalid input naming [`Self::output_dir_field`].
    pub(crate) fn output_error(&self, source: OutputError) -> CommandError {
        report::output_failure(&self.output_dir, &source, self.output_dir_field)
    }
}

/// A path segment on the k6 host and in local file names.
fn check_segment(field: &str, value: &str) -> Result<(), CommandError> {
    if crate::config::is_path_segment(value) {
        Ok(())
    } else {
        Err(CommandError::input(
            field,
            format!("{value:?} must be 1-128 characters of [A-Za-z0-9._-] (it names directories)"),
        ))
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Plugin, Request};

    fn config(plugin: Plugin) -> Config {
        crate::config::load_request(&Request {
            plugin,
            ..Request::default()
        })
        .unwrap()
        .config
    }

    /// Without a context, the workload and the output directory are named
    /// after the plugin, as lb's dfaas and peva_faas name them.
    #[test]
    fn defaults_follow_the_plugin() {
        for (plugin, workload, output) in [
            (Plugin::Dfaas, "dfaas", "benchmark_results/dfaas"),
            (Plugin::PevaFaas, "peva_faas", "benchmark_results/peva_faas"),
        ] {
            let ctx = RunContext::resolve(&Context::default(), &config(plugin)).unwrap();
            assert_eq!(ctx.workload, workload);
            assert_eq!(ctx.output_dir, PathBuf::from(output));
        }
        let given = Context {
            workload: Some("my_peva".into()),
            output_dir: Some("/data/out".into()),
            ..Context::default()
        };
        let ctx = RunContext::resolve(&given, &config(Plugin::PevaFaas)).unwrap();
        assert_eq!(
            (ctx.workload.as_str(), ctx.output_dir),
            ("my_peva", PathBuf::from("/data/out"))
        );
    }
}
