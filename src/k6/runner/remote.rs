//! The shell programs run on the k6 host (pure): each is built from typed
//! inputs into one command line for the remote login shell, and tested
//! for its quoting by splitting it back as a shell would.
//!
//! A k6 run is five programs on one workspace ([`Workspace`]): upload the
//! script ([`upload_script`]), start k6 detached and print its pid
//! ([`start`]), wait a little and report status plus new log bytes
//! ([`poll`], read back by [`parse_poll`]), print the summary
//! ([`read_summary`]), stop k6 by pid ([`stop`]); [`k6_version`] is the
//! preflight. Every value placed in a program is shell-quoted (a NUL byte,
//! which no quoting can carry, is refused), and the workspace's path
//! segments are plain directory names ([`is_path_segment`]).
//!
//! Nothing here runs a command or touches the network: the runner passes
//! the text to the SSH session.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use super::{K6Job, RunnerError};
use crate::config::{is_path_segment, PATH_SEGMENT_RULE};

/// How long the remote start program waits for k6's pid file, in 10 ms
/// steps (5 s).
const PID_WAIT_STEPS: u32 = 500;

/// Granularity, in milliseconds, of the remote wait for k6's end inside a
/// poll (`sleep 0.02`): k6's exit is noticed within this, which matters
/// for the per-iteration overhead (BENCHMARKS.md).
const POLL_STEP_MS: u128 = 20;

/// Exit status of [`read_summary`] when k6 wrote no summary.
pub(super) const SUMMARY_ABSENT: i32 = 3;

/// A k6 workspace on the k6 host, `<root>/<host>/<run_id>/<config_id>/`,
/// holding `script.js`, `summary.json`, `k6.log`, `k6.pid` and
/// `exit_code`. Only [`Workspace::new`] makes one, so every program gets
/// a checked path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Workspace(String);

impl Workspace {
    /// `<root>/<host>/<run_id>/<config_id>`: `root` absolute without NUL
    /// (it is quoted, not interpreted), each segment a plain directory
    /// name by the crate's one rule for them ([`is_path_segment`]).
    pub(super) fn new(root: &str, job: &K6Job<'_>) -> Result<Workspace, RunnerError> {
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
        check_segments(job)?;
        Ok(Workspace(format!(
            "{}/{}/{}/{}",
            root.trim_end_matches('/'),
            job.host,
            job.run_id,
            job.config_id
        )))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    fn quoted(&self) -> Result<Cow<'_, str>, RunnerError> {
        quote(&self.0, "workspace")
    }
}

/// The job's host, run id and config id are plain directory names, by the
/// crate's one rule for them ([`is_path_segment`]): the workspace's path
/// segments, here and on this machine (`local`).
pub(super) fn check_segments(job: &K6Job<'_>) -> Result<(), RunnerError> {
    for (what, value) in [
        ("host", job.host),
        ("run id", job.run_id),
        ("config id", job.config_id),
    ] {
        if !is_path_segment(value) {
            return Err(RunnerError::InvalidWorkspace {
                what,
                value: value.to_string(),
                reason: PATH_SEGMENT_RULE,
            });
        }
    }
    Ok(())
}

/// Prints the remote k6's version line.
pub(super) fn k6_version(k6_command: &str) -> Result<String, RunnerError> {
    Ok(format!("{} version", quote(k6_command, "k6_command")?))
}

/// Creates the workspace and writes stdin to its `script.js`.
pub(super) fn upload_script(workspace: &Workspace) -> Result<String, RunnerError> {
    let q_workspace = workspace.quoted()?;
    Ok(format!(
        "mkdir -p -- {q_workspace} && cat > {q_workspace}/script.js"
    ))
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

/// Starts k6 detached and prints its pid.
///
/// Inside a new session (`setsid`), a small `sh` starts k6 in the
/// background with all output in k6.log, records its pid, waits for it and
/// writes its exit status; each file is written whole (`mv`). A k6 still
/// running in the workspace is stopped first ([`STOP_LEFTOVER_K6`]).
/// Blank `outputs` are dropped; each tag is one `--tag key=value`; `args`
/// are further `k6 run` arguments, one quoted word each.
pub(super) fn start(
    workspace: &Workspace,
    k6_command: &str,
    outputs: &[String],
    tags: &BTreeMap<String, String>,
    args: &[String],
) -> Result<String, RunnerError> {
    let mut k6 = vec![
        quote(k6_command, "k6_command")?.into_owned(),
        "run".to_string(),
        "--summary-export".to_string(),
        "summary.json".to_string(),
    ];
    for output in outputs.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        k6.push("--out".to_string());
        k6.push(quote(output, "k6 output")?.into_owned());
    }
    for (key, value) in tags {
        k6.push("--tag".to_string());
        k6.push(quote(&format!("{key}={value}"), "k6 tag")?.into_owned());
    }
    for arg in args {
        k6.push(quote(arg, "k6 argument")?.into_owned());
    }
    k6.push("script.js".to_string());
    let inner = format!(
        "K6_NO_USAGE_REPORT=true {} > k6.log 2>&1 < /dev/null & pid=$!; \
         echo \"$pid\" > k6.pid.tmp && mv k6.pid.tmp k6.pid; \
         wait \"$pid\"; echo \"$?\" > exit_code.tmp && mv exit_code.tmp exit_code",
        k6.join(" ")
    );
    let q_workspace = workspace.quoted()?;
    Ok(format!(
        "cd -- {q_workspace} && {{ {STOP_LEFTOVER_K6} }} && \
         rm -f -- summary.json k6.log k6.pid exit_code && \
         (setsid sh -c {} < /dev/null > /dev/null 2>&1 &) && \
         i=0; while [ ! -s k6.pid ] && [ \"$i\" -lt {PID_WAIT_STEPS} ]; do sleep 0.01; i=$((i+1)); done; \
         cat k6.pid",
        quote(&inner, "k6 command")?
    ))
}

/// How many [`POLL_STEP_MS`] steps one [`poll`] may wait for k6's end, so
/// that polls come about every `poll_interval` (at least one step).
pub(super) fn poll_wait_steps(poll_interval: Duration) -> u32 {
    (poll_interval.as_millis() / POLL_STEP_MS).max(1) as u32
}

/// Waits up to `wait_steps` × 20 ms for k6 (`pid`) to end, then prints a
/// status line (`exit <code>`, `running` or `gone`) and the log bytes
/// after `offset`. Exit 90: the workspace is gone.
pub(super) fn poll(
    workspace: &Workspace,
    pid: u32,
    offset: u64,
    wait_steps: u32,
) -> Result<String, RunnerError> {
    let q_workspace = workspace.quoted()?;
    Ok(format!(
        "cd -- {q_workspace} || exit 90; i=0; \
         while kill -0 {pid} 2>/dev/null && [ ! -e exit_code ] && [ \"$i\" -lt {wait_steps} ]; do sleep 0.02; i=$((i+1)); done; \
         if [ -e exit_code ]; then printf 'exit %s\\n' \"$(cat exit_code)\"; \
         elif kill -0 {pid} 2>/dev/null; then echo running; else echo gone; fi; \
         tail -c +{} k6.log 2>/dev/null; true",
        offset + 1
    ))
}

/// What a poll saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum K6Status {
    Running,
    Exited(i32),
    /// Not running and no exit status (yet).
    Gone,
}

/// A [`poll`]'s output: status line, then raw log bytes. `None` when the
/// status line is not one [`poll`] prints.
pub(super) fn parse_poll(stdout: &[u8]) -> Option<(K6Status, Vec<u8>)> {
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

/// Prints `summary.json`; exits [`SUMMARY_ABSENT`] when there is none.
pub(super) fn read_summary(workspace: &Workspace) -> Result<String, RunnerError> {
    let q_workspace = workspace.quoted()?;
    Ok(format!(
        "cd -- {q_workspace} && if [ -f summary.json ]; then cat summary.json; else exit {SUMMARY_ABSENT}; fi"
    ))
}

/// `kill -INT` k6 (`pid`), wait up to `grace`, then `kill -KILL`; ends
/// once the process is gone (or after a bounded wait), failing with a
/// message naming the workspace if it survived.
pub(super) fn stop(
    workspace: &Workspace,
    pid: u32,
    grace: Duration,
) -> Result<String, RunnerError> {
    let grace_steps = (grace.as_millis() / 100).max(1);
    let program = format!(
        "kill -INT {pid} 2>/dev/null; i=0; \
         while kill -0 {pid} 2>/dev/null && [ \"$i\" -lt {grace_steps} ]; do sleep 0.1; i=$((i+1)); done; \
         if kill -0 {pid} 2>/dev/null; then kill -KILL {pid} 2>/dev/null; i=0; \
         while kill -0 {pid} 2>/dev/null && [ \"$i\" -lt 50 ]; do sleep 0.1; i=$((i+1)); done; fi; \
         if kill -0 {pid} 2>/dev/null; then echo \"k6 (pid {pid}) in $0 survived SIGKILL\" >&2; exit 1; fi"
    );
    // `$0` names the workspace in the message above.
    Ok(format!(
        "sh -c {} {}",
        quote(&program, "stop command")?,
        workspace.quoted()?
    ))
}

fn quote<'a>(value: &'a str, value_of: &str) -> Result<Cow<'a, str>, RunnerError> {
    shlex::try_quote(value).map_err(|_| RunnerError::Unquotable {
        value_of: value_of.to_string(),
    })
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

    /// A workspace whose root holds shell metacharacters and a space.
    fn odd_workspace() -> Workspace {
        let tags = BTreeMap::new();
        Workspace::new("/w/a b/$(c)", &job("r", &tags, &[])).unwrap()
    }

    const ODD: &str = "/w/a b/$(c)/node1/r/0123456789ab";

    #[test]
    fn workspace_segments() {
        let tags = BTreeMap::new();
        assert_eq!(
            Workspace::new("/root/.dfaas-k6/", &job("run-1", &tags, &[]))
                .unwrap()
                .as_str(),
            "/root/.dfaas-k6/node1/run-1/0123456789ab"
        );
        for bad in ["", ".", "..", "a/b", "a\nb", "a\0b"] {
            assert!(
                matches!(
                    Workspace::new("/w", &job(bad, &tags, &[])),
                    Err(RunnerError::InvalidWorkspace { what: "run id", .. })
                ),
                "{bad:?}"
            );
        }
        assert!(Workspace::new("relative", &job("r", &tags, &[])).is_err());
        // Segments follow the one rule for names that become directories:
        // shell syntax is refused there, as the request's run id is.
        for bad in ["$(x);`y`'z\"", "a b", "ä", &"x".repeat(129)] {
            assert!(
                matches!(
                    Workspace::new("/w", &job(bad, &tags, &[])),
                    Err(RunnerError::InvalidWorkspace { what: "run id", .. })
                ),
                "{bad:?}"
            );
        }
        // The root may hold shell metacharacters: it is quoted, not
        // interpreted.
        assert!(Workspace::new("/w/a b/$(c);`d`'e\"", &job("r", &tags, &[])).is_ok());
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
        let command = start(&odd_workspace(), "k6", &outputs, &tags, &args).unwrap();
        // The outer command as the remote shell splits it.
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[..4], ["cd", "--", ODD, "&&"], "{command}");
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
            start(&odd_workspace(), "k6", &[], &tags, &[]),
            Err(RunnerError::Unquotable { .. })
        ));
        assert!(matches!(
            k6_version("k6\0"),
            Err(RunnerError::Unquotable { .. })
        ));
    }

    #[test]
    fn k6_version_quotes_the_command() {
        let words = shlex::split(&k6_version("/opt/k 6/$(k6)").unwrap()).unwrap();
        assert_eq!(words, ["/opt/k 6/$(k6)", "version"]);
    }

    #[test]
    fn upload_quotes_the_workspace() {
        let words = shlex::split(&upload_script(&odd_workspace()).unwrap()).unwrap();
        assert_eq!(
            words,
            [
                "mkdir",
                "-p",
                "--",
                ODD,
                "&&",
                "cat",
                ">",
                &format!("{ODD}/script.js")
            ]
        );
    }

    #[test]
    fn poll_quotes_the_workspace_and_reads_on_after_the_offset() {
        let command = poll(&odd_workspace(), 4242, 99, 25).unwrap();
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[..5], ["cd", "--", ODD, "||", "exit"], "{command}");
        assert!(command.contains("kill -0 4242 "), "{command}");
        assert!(command.contains("-lt 25 ]"), "{command}");
        assert!(command.contains("tail -c +100 k6.log"), "{command}");
    }

    #[test]
    fn poll_waits_in_20_ms_steps() {
        assert_eq!(poll_wait_steps(Duration::from_millis(500)), 25);
        assert_eq!(poll_wait_steps(Duration::from_millis(300)), 15);
        assert_eq!(poll_wait_steps(Duration::ZERO), 1);
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
    fn summary_quotes_the_workspace() {
        let command = read_summary(&odd_workspace()).unwrap();
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[..4], ["cd", "--", ODD, "&&"], "{command}");
        assert!(command.ends_with(&format!("else exit {SUMMARY_ABSENT}; fi")));
    }

    #[test]
    fn stop_passes_the_workspace_as_one_argument() {
        let command = stop(&odd_workspace(), 4242, Duration::from_millis(3000)).unwrap();
        let words = shlex::split(&command).unwrap();
        assert_eq!(words.len(), 4, "{command}");
        assert_eq!(words[..2], ["sh", "-c"]);
        assert_eq!(words[3], ODD);
        let program = &words[2];
        assert!(program.starts_with("kill -INT 4242 "), "{program}");
        assert!(program.contains("-lt 30 ]"), "3 s of grace in 0.1 s steps");
        assert!(program.contains("kill -KILL 4242 "), "{program}");
    }
}
