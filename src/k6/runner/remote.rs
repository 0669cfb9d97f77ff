//! The shell programs run on the k6 host (pure): each is built from typed
//! inputs into one command line for the remote login shell, and tested
//! for its quoting by splitting it back as a shell would.
//!
//! A k6 run is one program on one workspace ([`Workspace`]): [`run`]
//! writes the script, starts k6 detached and paused, waits for the word to stream and
//! streams its log to k6's end, followed by its exit status, the
//! generator's CPU counters and the summary (read back by
//! [`super::stream`]). [`follow`] picks that stream up again after a
//! dropped connection or a stop, [`stop`] stops k6 by pid, and
//! [`k6_version`] is the preflight. Every value placed in a program is shell-quoted (a NUL byte,
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

/// A k6 workspace on the k6 host, `<root>/<host>/<run_id>/<config_id>/`,
/// holding `script.js`, `summary.json`, `k6.log`, `k6.pid`,
/// `exit_code` and `cpu.start`. Only [`Workspace::new`] makes one, so every program gets
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

/// The k6 command line (run in the workspace), every value quoted:
/// `--summary-export summary.json`, each non-blank output one `--out`, each
/// tag one `--tag key=value`, then `script.js`.
fn k6_command_line(
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
    Ok(k6.join(" "))
}

/// The start of the line [`run`] prints once k6 waits, paused, for the
/// word to start: `ready <port>` (k6's REST API on the k6 host's
/// loopback, in hex as `/proc/net/tcp` has it), `ready none` (no API
/// socket found: k6 ended, or `k6_command` does not exec k6 itself).
pub(super) const READY: &[u8] = b"ready ";

/// What the client writes to [`run`]'s stdin once it has resumed k6
/// through the REST API itself (over a port forward of the SSH master).
pub(super) const GO: &[u8] = b"go\n";

/// What the client writes to [`run`]'s stdin to have the remote program
/// resume k6 (`k6 resume`: a k6 start-up on the critical path, the
/// fallback when no port forward could be made).
pub(super) const RESUME: &[u8] = b"resume\n";

/// Exit status of [`follow`] when the workspace holds no k6 pid.
pub(super) const NOT_STARTED: i32 = 92;

/// Exit status of [`run`] when k6 wrote no pid file within 5 s.
pub(super) const NO_PID: i32 = 91;

/// Exit status of [`run`] when k6 runs but opened no REST API socket
/// within [`API_WAIT_SECONDS`].
pub(super) const NO_API: i32 = 93;

/// How long [`run`] waits for a starting k6's REST API (its init, all VUs
/// included, comes first).
const API_WAIT_SECONDS: u32 = 60;

/// [`API_WAIT_SECONDS`] as a duration, for the client's bound.
pub(super) const API_WAIT: Duration = Duration::from_secs(API_WAIT_SECONDS as u64);

/// [`API_WAIT_SECONDS`] in steps of at least 10 ms.
const API_WAIT_STEPS: u32 = API_WAIT_SECONDS * 100;

/// Streams k6's log from byte `$off` until k6 (`$pid`) ends, then prints
/// the trailer: the end marker line, `exit <code>` (`none` when k6 left no
/// exit status, `running` when it still runs), `log-size <bytes>`,
/// `k6-times` and k6's CPU times (the `times` of the `sh` that waited for
/// it), `cpu-end` and the `cpu` lines of `/proc/stat`, then `summary <bytes>`
/// and `summary.json` (or `summary none`).
///
/// GNU `tail --pid` follows the log as it grows (inotify) and notices k6's
/// end within 10 ms; without GNU tail the log comes whole at the end.
fn follow_body(marker: &str) -> Result<String, RunnerError> {
    Ok(format!(
        "if [ -n \"$gnu\" ]; then tail -c +$((off+1)) -f --pid=\"$pid\" -s 0.01 k6.log 2>/dev/null; \
         else while kill -0 \"$pid\" 2>/dev/null; do sleep 0.05; done; tail -c +$((off+1)) k6.log; fi; \
         cpu_end=$(grep '^cpu' /proc/stat); \
         i=0; while [ ! -s exit_code ] && kill -0 \"$pid\" 2>/dev/null && [ \"$i\" -lt 100 ]; do sleep 0.01; i=$((i+1)); done; \
         i=0; while [ ! -s exit_code ] && [ \"$i\" -lt 20 ]; do sleep 0.01; i=$((i+1)); done; \
         printf '\\n%s\\n' {marker}; \
         if [ -s exit_code ]; then printf 'exit %s\\n' \"$(cat exit_code)\"; \
         elif kill -0 \"$pid\" 2>/dev/null; then echo 'exit running'; else echo 'exit none'; fi; \
         printf 'log-size %s\\nk6-times %s\\ncpu-end\\n%s\\n' \"$(wc -c < k6.log)\" \"$(tail -n 1 k6.times 2>/dev/null)\" \"$cpu_end\"; \
         if [ -f summary.json ]; then printf 'summary %s\\n' \"$(wc -c < summary.json)\"; cat summary.json; \
         else echo 'summary none'; fi",
        marker = quote(marker, "stream marker")?,
    ))
}

/// Prints the stream header: `pid <pid>`, `cpu-start` and the `cpu` lines
/// read when k6 started, then `log` (the log bytes follow).
const HEADER: &str =
    "printf 'pid %s\\ncpu-start\\n' \"$pid\"; cat cpu.start 2>/dev/null; echo log;";

/// Detects GNU tail (for [`follow_body`]).
const DETECT_GNU_TAIL: &str = "gnu=; if tail --version 2>/dev/null | grep -q GNU; then gnu=1; fi;";

/// Finds the TCP port k6 (`$pid`) listens on (its REST API), in hex, from
/// its socket inodes and `/proc/net/tcp`; empty while there is none.
const FIND_API_PORT: &str = concat!(
    r#"inodes=" $(ls -l /proc/"$pid"/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ') "; "#,
    r#"port=$(awk -v inodes="$inodes" '$4 == "0A" && index(inodes, " " $10 " ") { n = split($2, a, ":"); print a[n]; exit }' /proc/net/tcp 2>/dev/null);"#,
);

/// The one remote command of a k6 run: writes the script (`script_len`
/// bytes on stdin) into a fresh workspace, stops a k6 an earlier client
/// left running there ([`STOP_LEFTOVER_K6`]), starts k6 **paused**, with
/// its REST API on an ephemeral loopback port, waits until that API
/// listens (k6's start-up and init happen here, during the cooldown),
/// prints [`READY`] with the port and waits for a word on stdin: [`GO`]
/// (the client resumed k6) or [`RESUME`] (resume it here). End of input,
/// a hang-up or anything else kills the paused k6 — nothing runs. Then it
/// reads `/proc/stat`, prints the stream header and streams the log to
/// k6's end with the trailer ([`follow_body`]).
///
/// k6 runs inside a new session (`setsid`) under a small `sh` that records
/// its pid, waits for it and writes its CPU times (`times`) and exit
/// status, each file written whole (`mv`), so a dropped connection cannot
/// take a running k6 down and [`follow`] can pick the stream up again.
/// `args` are further `k6 run` arguments (e.g. the execution segment).
pub(super) fn run(
    workspace: &Workspace,
    script_len: usize,
    k6_command: &str,
    outputs: &[String],
    tags: &BTreeMap<String, String>,
    args: &[String],
    marker: &str,
) -> Result<String, RunnerError> {
    let paused: Vec<String> = ["--paused", "--address", "127.0.0.1:0"]
        .iter()
        .map(ToString::to_string)
        .chain(args.iter().cloned())
        .collect();
    let inner = format!(
        "K6_NO_USAGE_REPORT=true {} > k6.log 2>&1 < /dev/null & pid=$!; \
         echo \"$pid\" > k6.pid.tmp && mv k6.pid.tmp k6.pid; \
         wait \"$pid\"; code=$?; times > k6.times.tmp && mv k6.times.tmp k6.times; \
         echo \"$code\" > exit_code.tmp && mv exit_code.tmp exit_code",
        k6_command_line(k6_command, outputs, tags, &paused)?
    );
    let q_workspace = workspace.quoted()?;
    // Once every VU is initialised (k6's status 4, PausedBeforeRun, or
    // later), as the client waits through the API.
    let q_k6 = quote(k6_command, "k6_command")?;
    let resume = format!(
        "address=\"127.0.0.1:$(printf '%d' \"0x$port\")\"; i=0; \
         while [ \"$i\" -lt {API_WAIT_STEPS} ] && ! {q_k6} status --address \"$address\" 2>/dev/null | grep -Eq '^status: ([4-9]|[1-9][0-9])$'; do sleep 0.01; i=$((i+1)); done; \
         {q_k6} resume --address \"$address\" > /dev/null 2>&1"
    );
    Ok(format!(
        "mkdir -p -- {q_workspace} && cd -- {q_workspace} && head -c {script_len} > script.js && \
         {{ {STOP_LEFTOVER_K6} }} && \
         rm -f -- summary.json k6.log k6.pid exit_code cpu.start k6.times && {DETECT_GNU_TAIL} \
         (setsid sh -c {} < /dev/null > /dev/null 2>&1 &); \
         i=0; while [ ! -s k6.pid ] && [ \"$i\" -lt {PID_WAIT_STEPS} ]; do sleep 0.01; i=$((i+1)); done; \
         [ -s k6.pid ] || {{ echo 'k6 wrote no pid file within 5 s' >&2; exit {NO_PID}; }}; \
         pid=$(cat k6.pid); trap 'kill -KILL \"$pid\" 2>/dev/null; exit 0' HUP INT TERM PIPE; \
         port=; i=0; while [ -z \"$port\" ] && kill -0 \"$pid\" 2>/dev/null && [ \"$i\" -lt {API_WAIT_STEPS} ]; do {FIND_API_PORT} [ -n \"$port\" ] || sleep 0.01; i=$((i+1)); done; \
         if [ -z \"$port\" ] && kill -0 \"$pid\" 2>/dev/null; then kill -KILL \"$pid\"; echo \"k6 (pid $pid) opened no REST API socket within {API_WAIT_SECONDS} s: k6_command must exec k6 itself\" >&2; exit {NO_API}; fi; \
         printf 'ready %s\\n' \"${{port:-none}}\"; read -r go; \
         case \"$go\" in go) ;; resume) [ -z \"$port\" ] || {{ {resume}; }} ;; *) kill -KILL \"$pid\" 2>/dev/null; exit 0 ;; esac; \
         trap - HUP INT TERM PIPE; {{ grep '^cpu' /proc/stat; sed 's/.*) //' /proc/\"$pid\"/stat 2>/dev/null | awk '{{print \"k6-ticks\", $12 + $13}}'; }} > cpu.start; \
         off=0; {HEADER} {}",
        quote(&inner, "k6 command")?,
        follow_body(marker)?,
    ))
}

/// Picks up the stream of a k6 that [`run`] started (after a dropped
/// connection, or once k6 was stopped): prints the header and the log
/// from byte `offset` on, to k6's end and the trailer. Exit
/// [`NOT_STARTED`] when the workspace holds no k6 pid.
pub(super) fn follow(
    workspace: &Workspace,
    offset: u64,
    marker: &str,
) -> Result<String, RunnerError> {
    let q_workspace = workspace.quoted()?;
    Ok(format!(
        "cd -- {q_workspace} && [ -s k6.pid ] || exit {NOT_STARTED}; {DETECT_GNU_TAIL} \
         pid=$(cat k6.pid); off={offset}; {HEADER} {}",
        follow_body(marker)?,
    ))
}

/// `kill -INT` k6 (`pid`), wait up to `grace`, then `kill -KILL`; ends
/// once the process is gone (or after a bounded wait), failing with a
/// message naming the workspace if it survived.
///
/// Without a known `pid`, the one in the workspace's `k6.pid` (waited
/// for up to 5 s: k6 may be starting); none at all is nothing to stop.
pub(super) fn stop(
    workspace: &Workspace,
    pid: Option<u32>,
    grace: Duration,
) -> Result<String, RunnerError> {
    let grace_steps = (grace.as_millis() / 100).max(1);
    let (find, pid) = match pid {
        Some(pid) => ("", pid.to_string()),
        None => (
            "cd -- \"$0\" || exit 0; i=0; while [ ! -s k6.pid ] && [ \"$i\" -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
             [ -s k6.pid ] || exit 0; pid=$(cat k6.pid); ",
            "\"$pid\"".to_string(),
        ),
    };
    let program = format!(
        "{find}kill -INT {pid} 2>/dev/null; i=0; \
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
    fn run_command_quotes_every_value() {
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
        let command = run(
            &odd_workspace(),
            123,
            "k6",
            &outputs,
            &tags,
            &args,
            "--end-x--",
        )
        .unwrap();
        // The outer command as the remote shell splits it.
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[..4], ["mkdir", "-p", "--", ODD], "{command}");
        assert_eq!(words[5..8], ["cd", "--", ODD], "{command}");
        assert!(command.contains("head -c 123 > script.js"), "{command}");
        // A k6 left running in the workspace is stopped before its files
        // go; k6 starts paused, and the stream (cpu.start, header) only
        // begins after the word to go.
        let stop_at = command.find(STOP_LEFTOVER_K6).unwrap();
        assert!(stop_at < command.find("rm -f -- summary.json").unwrap());
        assert!(command.find("(setsid").unwrap() < command.find("read -r go").unwrap());
        assert!(command.find("read -r go").unwrap() < command.find("> cpu.start").unwrap());
        // Anything but a word to go (end of input included) kills the
        // paused k6.
        assert!(
            command.contains("*) kill -KILL \"$pid\" 2>/dev/null; exit 0 ;;"),
            "{command}"
        );
        let at = words.iter().position(|w| w == "(setsid").unwrap();
        assert_eq!(words[at + 1..at + 3], ["sh", "-c"]);
        // The inner script as `sh -c` splits it.
        let inner = shlex::split(&words[at + 3]).unwrap();
        assert_eq!(
            inner[..21],
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
                "--paused",
                "--address",
                "127.0.0.1:0",
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
        // The stream: from byte 0, to the marker and the trailer.
        assert!(command.contains("off=0;"), "{command}");
        assert!(
            words.iter().any(|w| w.trim_end_matches(';') == "--end-x--"),
            "{command}"
        );
        assert!(
            command.ends_with("else echo 'summary none'; fi"),
            "{command}"
        );
    }

    #[test]
    fn follow_reads_on_after_the_offset() {
        let command = follow(&odd_workspace(), 99, "m 'x").unwrap();
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[..4], ["cd", "--", ODD, "&&"], "{command}");
        assert!(command.contains("off=99;"), "{command}");
        assert!(command.contains("tail -c +$((off+1)) -f --pid=\"$pid\""));
        assert!(
            words.iter().any(|w| w.trim_end_matches(';') == "m 'x"),
            "the marker is one word: {command}"
        );
        assert!(command.contains(&format!("exit {NOT_STARTED}")));
    }

    #[test]
    fn nul_cannot_be_quoted() {
        let tags = BTreeMap::from([("a".to_string(), "b\0c".to_string())]);
        assert!(matches!(
            run(&odd_workspace(), 0, "k6", &[], &tags, &[], "m"),
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
    fn stop_passes_the_workspace_as_one_argument() {
        let command = stop(&odd_workspace(), Some(4242), Duration::from_millis(3000)).unwrap();
        let words = shlex::split(&command).unwrap();
        assert_eq!(words.len(), 4, "{command}");
        assert_eq!(words[..2], ["sh", "-c"]);
        assert_eq!(words[3], ODD);
        let program = &words[2];
        assert!(program.starts_with("kill -INT 4242 "), "{program}");
        assert!(program.contains("-lt 30 ]"), "3 s of grace in 0.1 s steps");
        assert!(program.contains("kill -KILL 4242 "), "{program}");
        // Without a pid, the workspace's k6.pid ($0 is the workspace).
        let command = stop(&odd_workspace(), None, Duration::from_millis(3000)).unwrap();
        let words = shlex::split(&command).unwrap();
        assert_eq!(words[3], ODD);
        assert!(words[2].starts_with("cd -- \"$0\""), "{command}");
        assert!(
            words[2].contains("pid=$(cat k6.pid); kill -INT \"$pid\""),
            "{command}"
        );
    }
}
