//! Runs the built `lb-dfaas` binary with a request on stdin, bounded in
//! time: a command that blocks (on a FIFO, say) is killed and reported
//! rather than hanging the test run. Included with `#[path]`.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What the binary printed and how it exited.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    /// Stdout must be exactly one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// `(field, reason)` of the first invalid-input error.
    pub fn first_error(&self) -> (String, String) {
        let value = self.json();
        let error = &value["error"]["context"]["errors"][0];
        (
            error["field"].as_str().unwrap_or_default().to_string(),
            error["reason"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Runs `lb-dfaas <args>` with `stdin`; panics if it runs longer than
/// `limit` (after killing it).
pub fn lb_dfaas(args: &[&str], stdin: &str, limit: Duration) -> Output {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
        .args(args)
        .env_remove("LB_DFAAS_HOME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lb-dfaas");
    if let Some(mut pipe) = child.stdin.take() {
        // The binary may exit before reading everything; that is fine.
        let _ = pipe.write_all(stdin.as_bytes());
    }
    loop {
        match child.try_wait().expect("wait for lb-dfaas") {
            Some(_) => break,
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect lb-dfaas");
                panic!(
                    "lb-dfaas {args:?} still running after {limit:?} (blocked?); stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let elapsed = started.elapsed();
    let output = child.wait_with_output().expect("collect lb-dfaas");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
    }
}

/// A one-function request whose k6 host, gateway and Prometheus are a
/// closed local port: a `run` fails at its start-up checks (exit 3) within
/// seconds, after everything checked before them. `extra` fields are
/// merged into the config.
pub fn closed_port_request(output_dir: &std::path::Path, extra: Value) -> String {
    let mut config = json!({
        "k6_host": "127.0.0.1",
        "k6_port": 1,
        "k6_ssh_key": "/nonexistent/key",
        "gateway_url": "http://127.0.0.1:1",
        "prometheus_url": "http://127.0.0.1:1",
        "functions": [{"name": "figlet"}],
        "rate_strategy": {"type": "custom", "rates": [10]},
        "duration": "1s",
        "iterations": 1,
    });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    json!({
        "config": config,
        "context": {"host": "node1", "run_id": "run-1", "output_dir": output_dir},
    })
    .to_string()
}
