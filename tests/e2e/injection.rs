//! Hostile values: names that would break out of a shell, a URL or the k6
//! script are rejected before anything runs; bodies, header values and k6
//! tags that would do the same are carried as data — the run works, the
//! gateway gets the bytes as configured, and nothing is executed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::support::{http_request, Testbed, TestbedOptions};

/// Marker files a successful injection would create.
fn markers(work: &Workdir, count: usize) -> Vec<PathBuf> {
    (1..=count)
        .map(|i| work.path().join(format!("pwned-{i}")))
        .collect()
}

fn assert_untouched(markers: &[PathBuf]) {
    for m in markers {
        assert!(
            !m.exists(),
            "{} exists: something was executed",
            m.display()
        );
    }
}

#[test]
fn hostile_names_tags_and_header_values_are_rejected_before_anything_runs() {
    let _serial = serial();
    let work = Workdir::new();
    let m = markers(&work, 8);
    let touch = |i: usize| format!("touch {}", m[i].display());
    // Nothing listens on port 1: should validation let any of these
    // through, the run fails with 3, not 2.
    let base = json!({
        "k6_host": "127.0.0.1",
        "k6_port": 1,
        "k6_workspace_root": work.workspace_root(),
        "prometheus_url": "http://127.0.0.1:1",
        "gateway_url": "http://127.0.0.1:1",
        "rate_strategy": {"type": "custom", "rates": [5]},
    });
    let fine = json!([{"name": "ok"}]);
    let cases: Vec<(&str, Value)> = vec![
        (
            "functions[0].name",
            json!({"functions": [{"name": format!("a;{}", touch(0))}]}),
        ),
        (
            "functions[0].name",
            json!({"functions": [{"name": format!("$({})", touch(1))}]}),
        ),
        (
            "functions[0].name",
            json!({"functions": [{"name": format!("`{}`", touch(2))}]}),
        ),
        (
            "functions[0].name",
            json!({"functions": [{"name": format!("a'; {}; '", touch(3))}]}),
        ),
        (
            "functions[0].name",
            json!({"functions": [{"name": "x\"); require('child_process'); (\""}]}),
        ),
        (
            "functions[0].name",
            json!({"functions": [{"name": "../../etc"}]}),
        ),
        (
            "functions[0].name",
            json!({"functions": [{"name": "Figlet"}]}),
        ),
        ("functions[0].name", json!({"functions": [{"name": "a b"}]})),
        (
            "k6_tags",
            json!({"functions": fine, "k6_tags": {format!("a;{}", touch(4)): "x"}}),
        ),
        (
            "k6_tags.note",
            json!({"functions": fine, "k6_tags": {"note": format!("x\n{}", touch(5))}}),
        ),
        (
            "functions[0].headers.X-Note",
            json!({"functions": [{"name": "ok", "headers": {"X-Note": "a\r\nX-Evil: 1"}}]}),
        ),
        (
            "functions[0].headers",
            json!({"functions": [{"name": "ok", "headers": {"X Note:": "a"}}]}),
        ),
    ];
    for (field, extra) in cases {
        let config = with(base.clone(), extra.clone());
        let finished = run(&request(config, &work, "out", "e2e-names"));
        assert_eq!(
            finished.code,
            Some(2),
            "{extra}: exit code; stderr:\n{}",
            finished.log()
        );
        let result = finished.result();
        assert_eq!(result["error"]["type"], "invalid_input", "{extra}");
        let fields: Vec<&str> = result["error"]["context"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.contains(&field),
            "{extra}: errors name {fields:?}, not {field}"
        );
        assert!(
            !work.output("out").exists(),
            "{extra}: the output directory was made"
        );
        assert!(
            !work.workspace_root().exists(),
            "{extra}: a k6 workspace was made"
        );
        assert_untouched(&m);
    }
}

// --- a recording proxy in front of the gateway -----------------------------

/// One request k6 sent.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// Header names lower-cased.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Listens where k6 can reach it (the host side of the instance's link),
/// records every request and forwards it to the real gateway, answering
/// with the gateway's status and body (HTTP/1.1, keep-alive).
struct RecordingProxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl RecordingProxy {
    fn start(tb: &Testbed) -> RecordingProxy {
        let host = tb
            .gateway_url
            .strip_prefix("http://")
            .and_then(|a| a.rsplit_once(':'))
            .unwrap()
            .0
            .to_string();
        let listener = TcpListener::bind((host.as_str(), 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = tb.gateway_admin_url.clone();
        let acceptor = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (seen, upstream) = (seen.clone(), upstream.clone());
                            std::thread::spawn(move || serve(conn, &upstream, &seen));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        RecordingProxy {
            url,
            seen,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Serves one connection until the client closes it.
fn serve(conn: TcpStream, upstream: &str, seen: &Mutex<Vec<Seen>>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = request_line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return;
        };
        let (method, path) = (method.to_string(), path.to_string());
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim_start().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let forwarded = http_request(
            &method,
            &format!("{upstream}{path}"),
            &String::from_utf8_lossy(&body),
            &[],
        );
        seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
            body,
        });
        let (status, answer) = match forwarded {
            Ok(r) => (r.status, r.body),
            Err(e) => (502, e),
        };
        let response = format!(
            "HTTP/1.1 {status} Proxied\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn hostile_bodies_headers_and_tags_are_sent_as_data_and_execute_nothing() {
    let _serial = serial();
    let tb = Testbed::start_with(&TestbedOptions {
        functions: Some("fast=2:2".into()),
        ..TestbedOptions::default()
    });
    let work = Workdir::new();
    let proxy = RecordingProxy::start(&tb);
    let m = markers(&work, 8);
    let touch = |i: usize| format!("touch {}", m[i].display());
    let pwned = |i: usize| format!("{}/function/pwned-{i}", proxy.url);
    // Each piece would, if it escaped its string literal, request a
    // `pwned-<i>` path through the proxy or run `touch` in a shell.
    let body = [
        format!("\"}}); http.get(\"{}\"); ({{\"a\": \"", pwned(1)),
        format!("'); http.get('{}'); ('", pwned(2)),
        format!("`; http.get(`{}`); `", pwned(3)),
        format!("${{http.get(\"{}\")}}", pwned(4)),
        format!("</script><script>http.get('{}')</script>", pwned(5)),
        format!("\\\"; $({}); `{}`; '; {}; '", touch(0), touch(1), touch(2)),
        "\n\r\n\ttabs, ünïcödé ☃ \u{2028}\u{2029} 𝄞 end".to_string(),
    ]
    .concat();
    let header = format!(
        "\"}}); http.get(\"{}\"); ({{\"a\": \"'); $({}) `{}` </script> ${{x}}",
        pwned(6),
        touch(3),
        touch(4)
    );
    let config = with(
        base_config(&tb, &work),
        json!({
            "gateway_url": proxy.url,
            "functions": [{
                "name": "fast",
                "method": "POST",
                "body": body,
                "headers": {"X-Inject": header, "Content-Type": "text/plain; charset=utf-8"},
            }],
            "rate_strategy": {"type": "custom", "rates": [3]},
            "combinations": {"min_functions": 1, "max_functions": 2},
            "k6_tags": {
                "note": format!("$({})", touch(5)),
                "quote": format!("'; {}; '", touch(6)),
                "tick": format!("`{}`", touch(7)),
            },
        }),
    );
    tb.reset_truth().unwrap();
    let finished = run(&request(config, &work, "out", "e2e-inject"));
    assert_eq!(
        finished.code,
        Some(0),
        "exit code; stderr:\n{}",
        finished.log()
    );
    let results = Table::read(&work.output("out").join("results.csv"), b',');
    assert_eq!(
        check_results(&results, &["fast"]),
        vec![owned(&[("fast", 3)])]
    );
    assert_eq!(results.cell(0, "success_rate_function_fast"), "1.000");
    assert_untouched(&m);

    // What k6 sent: only the configured function, the body byte for byte,
    // the header value as configured.
    let calls: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/function/"))
        .collect();
    assert!(!calls.is_empty(), "k6 sent nothing through the proxy");
    for call in &calls {
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("POST", "/function/fast"),
            "{call:?}"
        );
        assert!(
            call.body == body.as_bytes(),
            "body changed on the way: {:?}",
            String::from_utf8_lossy(&call.body)
        );
        assert_eq!(call.headers.get("x-inject"), Some(&header), "{call:?}");
    }
    let truth: Value = tb.truth().unwrap();
    assert_eq!(
        truth["fast"]["requests"].as_u64().unwrap(),
        calls.len() as u64,
        "the gateway got what the proxy forwarded: {truth}"
    );

    // The stored script holds the values as escaped JSON strings.
    let id = config_id(&[("fast", 3)]);
    let script = std::fs::read_to_string(
        work.output("out")
            .join(format!("k6_scripts/config-{id}.js")),
    )
    .unwrap();
    assert!(
        !script.contains("</script>"),
        "the script holds a raw </script>"
    );
}
