//! `run` for a person at a terminal, and the same run piped as lb calls it.
//!
//! Piped, stderr is the protocol whatever `--progress` says: `auto` and
//! `never` write the same `LB_EVENT` stream and log lines, no terminal
//! control, and the same result on stdout. On a pseudo-terminal (util-linux
//! `script`) the live view shows the configurations done out of the plan's,
//! the phase, the overloaded, skipped and failed counts and the warnings
//! above it; `LB_EVENT` lines appear only with `--events`, or without the
//! view (`--progress never`).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{Testbed, TestbedOptions};

/// `slow` takes 50 ms of CPU on a single worker with a queue of 8: 5 req/s
/// is comfortable, 100 req/s gets mostly 429s (overloaded by success rate).
fn gateway() -> TestbedOptions {
    TestbedOptions {
        functions: Some("slow=50:1:8".into()),
        ..TestbedOptions::default()
    }
}

/// Three configurations: slow at 5 (fine), 100 (overloaded) and 150
/// (dominates 100: skipped, never sent to k6).
fn config(tb: &Testbed, work: &Workdir) -> Value {
    with(
        base_config(tb, work),
        json!({
            "functions": [{"name": "slow"}],
            "rate_strategy": {"type": "custom", "rates": [5, 100, 150]},
            "combinations": {"min_functions": 1, "max_functions": 2},
        }),
    )
}

/// A tracing log line in the text format: `<time>Z  LEVEL target: message`.
fn is_log_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let time = words.next().unwrap_or_default();
    let level = words.next().unwrap_or_default();
    time.ends_with('Z')
        && time.starts_with(|c: char| c.is_ascii_digit())
        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level)
}

/// Every run of digits (and points between them) as `#`: measured values,
/// cooldown seconds.
fn mask_numbers(text: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// The events of a run but k6's own lines and warnings (`log`, which depend
/// on timing), without timestamps, numbers in messages masked.
fn protocol_events(run: &Finished) -> Vec<Value> {
    run.events()
        .into_iter()
        .filter(|e| e["type"] != "log")
        .map(|mut e| {
            let object = e.as_object_mut().unwrap();
            object.remove("timestamp");
            let message = object["message"].as_str().unwrap().to_string();
            object.insert("message".into(), Value::String(mask_numbers(&message)));
            e
        })
        .collect()
}

/// The result document without what is measured: the configurations, flags,
/// skips, index, scripts and artifacts, and which summaries and metrics
/// there are.
fn result_shape(result: &Value) -> Value {
    let rows: Vec<Value> = result["dfaas_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("function_")
                        || k.starts_with("rate_function_")
                        || k.starts_with("overloaded_")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect();
    let entries = |key: &str| -> Vec<Value> {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["config_id"], e["iteration"]]))
            .collect()
    };
    json!({
        "returncode": result["returncode"],
        "success": result["success"],
        "interrupted": result["interrupted"],
        "error": result["error"],
        "dfaas_functions": result["dfaas_functions"],
        "dfaas_results": rows,
        "dfaas_skipped": result["dfaas_skipped"],
        "dfaas_index": result["dfaas_index"],
        "dfaas_scripts": result["dfaas_scripts"],
        "dfaas_summaries": entries("dfaas_summaries"),
        "dfaas_metrics": entries("dfaas_metrics"),
        "artifacts": result["artifacts"],
    })
}

#[test]
fn piped_stderr_is_the_protocol_whatever_progress_says() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let request = request(config(&tb, &work), &work, "out", "e2e-piped");
    let mut runs = Vec::new();
    for mode in ["auto", "never"] {
        let finished = run_with(&request, &["--progress", mode]);
        assert_eq!(
            finished.code,
            Some(0),
            "--progress {mode}: exit code; stderr:\n{}",
            finished.log()
        );
        // The next run writes to the same (new) output directory, so that
        // the messages naming it are the same.
        std::fs::rename(work.output("out"), work.output(&format!("out-{mode}"))).unwrap();
        runs.push((mode, finished));
    }
    for (mode, finished) in &runs {
        for line in &finished.stderr {
            assert!(
                !line.contains('\x1b'),
                "--progress {mode}: terminal control on stderr: {line:?}"
            );
            assert!(
                line.starts_with("LB_EVENT ") || is_log_line(line),
                "--progress {mode}: neither an event nor a log line: {line:?}"
            );
        }
        // k6's own lines are still there (k6_log_stream), as lb reads them.
        assert!(
            finished.events().iter().any(is_k6_line),
            "--progress {mode}: no k6 lines:\n{}",
            finished.log()
        );
    }
    let (auto, never) = (&runs[0].1, &runs[1].1);
    let events = protocol_events(auto);
    assert_eq!(
        events,
        protocol_events(never),
        "the event streams differ:\n--progress auto:\n{}\n--progress never:\n{}",
        auto.log(),
        never.log()
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "baseline",
            "config_started",
            "iteration_started",
            "config_finished",
            "config_started",
            "iteration_started",
            "iteration_overloaded",
            "config_overloaded",
            "config_finished",
            "config_skipped",
            "run_finished"
        ]
    );
    assert_eq!(result_shape(&auto.result()), result_shape(&never.result()));
}

/// What a terminal showed, terminal control removed: escape sequences
/// (cursor moves, line clears, colours) and carriage returns.
fn strip_terminal_control(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A `run` on a pseudo-terminal: `lb-dfaas run --config FILE <args>` under
/// util-linux `script`, stderr the terminal, stdout redirected to a file.
struct OnTerminal {
    code: Option<i32>,
    /// What the terminal showed, terminal control removed.
    text: String,
    result: Value,
}

fn run_on_terminal(request: &Value, work: &Workdir, name: &str, args: &[&str]) -> OnTerminal {
    let request_file = work.path().join(format!("{name}-request.json"));
    let result_file = work.path().join(format!("{name}-result.json"));
    std::fs::write(&request_file, serde_json::to_vec(request).unwrap()).unwrap();
    let quote = |s: &str| shlex::try_quote(s).unwrap().into_owned();
    let path = |p: &Path| quote(p.to_str().unwrap());
    let mut command = format!(
        "exec {} run --config {}",
        path(Path::new(env!("CARGO_BIN_EXE_lb-dfaas"))),
        path(&request_file)
    );
    for arg in args {
        command.push(' ');
        command.push_str(&quote(arg));
    }
    command.push_str(&format!(" > {}", path(&result_file)));
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start script (util-linux)");
    let mut terminal = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut raw = Vec::new();
        terminal.read_to_end(&mut raw).unwrap();
        raw
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: still running after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let raw = reader.join().unwrap();
    let text = strip_terminal_control(&String::from_utf8_lossy(&raw));
    let result = std::fs::read_to_string(&result_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("{name}: no result document; the terminal showed:\n{text}"));
    OnTerminal {
        code: status.code(),
        text,
        result,
    }
}

/// The view's last counts line.
fn last_counts(text: &str) -> &str {
    let at = text
        .rfind("iterations ")
        .unwrap_or_else(|| panic!("no counts line in:\n{text}"));
    text[at..].lines().next().unwrap().trim_end()
}

#[test]
fn a_terminal_gets_the_live_view_and_events_only_when_asked() {
    let _serial = serial();
    let tb = Testbed::start_with(&gateway());
    let work = Workdir::new();
    let request = request(config(&tb, &work), &work, "out", "e2e-terminal");
    let overloaded = config_id(&[("slow", 100)]);

    let first = run_on_terminal(&request, &work, "first", &[]);
    let text = &first.text;
    assert_eq!(
        first.code,
        Some(0),
        "exit code; the terminal showed:\n{text}"
    );
    assert_eq!(first.result["returncode"], 0);
    assert_eq!(first.result["dfaas_index"].as_array().unwrap().len(), 2);
    // No protocol lines, no k6 output: the view.
    assert!(!text.contains("LB_EVENT"), "{text}");
    assert!(!text.contains("k6: "), "{text}");
    assert!(text.contains("0/3 configurations"), "{text}");
    assert!(text.contains("3/3 configurations"), "{text}");
    assert!(
        text.contains(&format!(
            "config {overloaded} (slow=100): iteration 1/1, load (k6)"
        )),
        "{text}"
    );
    assert_eq!(
        last_counts(text),
        "iterations 2 done, overloaded 1, skipped 1, failed 0",
        "{text}"
    );
    // Warnings above the view, and the totals.
    assert!(
        text.contains(&format!(
            "warning: config {overloaded} overloaded in 1 of 1 iterations"
        )),
        "{text}"
    );
    assert!(
        text.contains("dfaas run finished: 2 rows, 1 skipped, 2 indexed"),
        "{text}"
    );

    // A rerun skips everything; with --events the LB_EVENT lines come
    // above the view, each whole.
    let events = run_on_terminal(&request, &work, "events", &["--events"]);
    let text = &events.text;
    assert_eq!(
        events.code,
        Some(0),
        "exit code; the terminal showed:\n{text}"
    );
    assert_eq!(
        last_counts(text),
        "iterations 0 done, overloaded 0, skipped 3, failed 0",
        "{text}"
    );
    assert!(text.contains("3/3 configurations"), "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("LB_EVENT ").map(|at| &l[at..]))
        .collect();
    let skipped = lines
        .iter()
        .map(|l| event(l).unwrap())
        .filter(|e| e["type"] == "config_skipped")
        .count();
    assert_eq!(skipped, 3, "{text}");

    // Without the view a terminal gets the protocol.
    let never = run_on_terminal(&request, &work, "never", &["--progress", "never"]);
    let text = &never.text;
    assert_eq!(
        never.code,
        Some(0),
        "exit code; the terminal showed:\n{text}"
    );
    assert!(!text.contains("configurations,"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("LB_EVENT ")), "{text}");
}
