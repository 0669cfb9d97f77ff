//! `run` piped, as lb calls it: whatever `--progress` and `--events` say,
//! stdout and stderr are the protocol, byte for byte (timestamps aside),
//! with no terminal control; only `--progress always` draws the view into
//! a pipe, and then stdout is still the one result document.
//!
//! The requests point the k6 host, the gateway and Prometheus at a closed
//! local port: the run gets as far as its `run_started` event and the
//! start-up checks, and fails there (exit 3) in a few seconds. The view on
//! a real terminal is tested end to end (tests/e2e/terminal.rs).

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;
use std::time::Duration;

use cli::{closed_port_request, lb_dfaas};
use serde_json::json;

/// Far more than a start-up failure needs.
const LIMIT: Duration = Duration::from_secs(60);

/// A warning in the logs (`typo`), before the run starts.
fn request(output_dir: &Path) -> String {
    closed_port_request(output_dir, json!({"typo": 1}))
}

/// stderr with its timestamps (log lines' first word, events'
/// `"timestamp"` value) replaced by `T`.
fn without_timestamps(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| match line.strip_prefix("LB_EVENT ") {
            Some(json) => {
                let mut event: serde_json::Value = serde_json::from_str(json)
                    .unwrap_or_else(|e| panic!("bad LB_EVENT ({e}): {line}"));
                event["timestamp"] = json!("T");
                format!("LB_EVENT {event}")
            }
            None => match line.split_once(' ') {
                Some((time, rest)) if time.ends_with('Z') => format!("T {rest}"),
                _ => line.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn piped_run_output_is_the_same_whatever_progress_and_events_say() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let request = request(&out);
    let run = |args: &[&str]| {
        // Each run starts from no output directory, as the first did.
        let _ = std::fs::remove_dir_all(&out);
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        lb_dfaas(&all, &request, LIMIT)
    };
    let today = run(&[]);
    assert_eq!(today.code, 3, "stderr:\n{}", today.stderr);
    assert_eq!(today.json()["error"]["type"], "environment");
    let stderr = without_timestamps(&today.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("T  WARN lb_dfaas::cli: unknown field `typo` ignored"),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("LB_EVENT ") && l.contains(r#""type":"run_started""#)),
        "{stderr}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("T ERROR lb_dfaas::cli: k6 host"),
        "{stderr}"
    );
    assert!(!today.stderr.contains('\x1b'), "{}", today.stderr);

    for args in [
        &["--progress", "auto"][..],
        &["--progress", "never"],
        &["--events"],
        &["-v", "--progress", "auto"],
    ] {
        let other = run(args);
        assert_eq!(other.code, today.code, "{args:?}");
        assert_eq!(other.stdout, today.stdout, "{args:?}: stdout");
        assert_eq!(
            without_timestamps(&other.stderr),
            stderr,
            "{args:?}: stderr"
        );
    }

    // Asked for in a pipe, the view is drawn there (terminal control and
    // all, the LB_EVENT lines left out), and stdout is untouched.
    let always = run(&["--progress", "always"]);
    assert_eq!(always.code, today.code);
    assert_eq!(always.stdout, today.stdout, "--progress always: stdout");
    assert!(always.stderr.contains('\x1b'), "{}", always.stderr);
    assert!(
        always.stderr.contains("0/? configurations"),
        "{}",
        always.stderr
    );
    assert!(!always.stderr.contains("LB_EVENT"), "{}", always.stderr);
    assert!(
        always
            .stderr
            .contains("dfaas run run-1 on node1: k6 host ubuntu@127.0.0.1:1"),
        "{}",
        always.stderr
    );
}
