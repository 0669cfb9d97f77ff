//! A running `lb-dfaas serve` for the tests: the built binary as a child
//! process on a free loopback port, with its own state directory, scripts
//! directory and token; a real HTTP client (reqwest) and a real WebSocket
//! client (tokio-tungstenite) to talk to it. Dropping it sends SIGTERM and
//! waits (then kills): no process is left behind.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Directories of one server: state, scripts, the token file, its stderr.
pub struct ServeDirs {
    tmp: tempfile::TempDir,
}

impl ServeDirs {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("lbd-serve-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(tmp.path().join("scripts")).unwrap();
        ServeDirs { tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    pub fn scripts(&self) -> PathBuf {
        self.tmp.path().join("scripts")
    }

    pub fn token_file(&self) -> PathBuf {
        self.tmp.path().join("token")
    }

    /// Writes a script into the scripts directory.
    pub fn script(&self, name: &str, text: &str) {
        std::fs::write(self.scripts().join(name), text).unwrap();
    }
}

/// Runs a test's async body on a runtime of its own. The tests are plain
/// `#[test]` functions so that the serial lock is held outside any
/// `.await`.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The token every test server uses.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running server.
pub struct Serve {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub token: String,
    stderr_file: PathBuf,
    pub http: reqwest::Client,
}

impl Serve {
    /// Starts `lb-dfaas serve` on `dirs` with [`TOKEN`].
    pub fn start(dirs: &ServeDirs) -> Serve {
        std::fs::write(dirs.token_file(), format!("{TOKEN}\n")).unwrap();
        Self::start_with(dirs, &["--token-file", dirs.token_file().to_str().unwrap()])
    }

    /// Starts it with further flags (the stderr of earlier starts is kept).
    pub fn start_with(dirs: &ServeDirs, flags: &[&str]) -> Serve {
        let stderr_file = dirs.path().join("serve.stderr");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_file)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(dirs.state())
            .arg("--scripts-dir")
            .arg(dirs.scripts())
            .args(flags)
            .env("K6_NO_USAGE_REPORT", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot start lb-dfaas serve");
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        let read = BufReader::new(stdout).read_line(&mut first);
        let announced: Value = match read {
            Ok(n) if n > 0 => serde_json::from_str(&first)
                .unwrap_or_else(|e| panic!("serve's first line is not JSON ({e}): {first}")),
            _ => {
                let status = child.wait();
                panic!(
                    "serve ended before it listened ({status:?}):\n{}",
                    std::fs::read_to_string(&stderr_file).unwrap_or_default()
                );
            }
        };
        let url = announced["listening"].as_str().unwrap().to_string();
        let token = if announced["token_required"] == true {
            TOKEN.to_string()
        } else {
            String::new()
        };
        Serve {
            child: Some(child),
            url,
            token,
            stderr_file,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything the server wrote on stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/k6{path}", self.url)
    }

    /// A request with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.api(path))
            .bearer_auth(&self.token)
    }

    /// Sends `request`; the status and the JSON body (`Null` when none).
    pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        Self::send(self.request(reqwest::Method::POST, path)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::send(self.request(reqwest::Method::PUT, path).json(body)).await
    }

    /// The status document.
    pub async fn status(&self) -> Value {
        let (code, status) = self.get("/status").await;
        assert_eq!(code, 200, "{status}");
        status
    }

    /// Polls the status until `wanted` holds, or panics after `limit`
    /// with the last status and the log.
    pub async fn wait_status(&self, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status().await;
            if wanted(&status) {
                return status;
            }
            if Instant::now() >= deadline {
                let (_, logs) = self.get("/logs?limit=200").await;
                panic!("status not reached within {limit:?}: {status}\nlog: {logs:#}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Connects a WebSocket client with the token in the header.
    pub async fn live(&self) -> Live {
        let ws_url = self.url.replacen("http://", "ws://", 1) + "/api/k6/ws";
        let mut request = ws_url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.token)).unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket opens");
        Live::new(socket)
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        crate::harness::send_signal(child.id(), "TERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve did not exit within {limit:?} of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                crate::harness::send_signal(child.id(), "TERM");
                let deadline = Instant::now() + Duration::from_secs(90);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A WebSocket client: every message it received, in order.
pub struct Live {
    messages: mpsc::UnboundedReceiver<Value>,
    /// Everything received so far.
    pub seen: Vec<Value>,
    /// Whether the server sent a close frame.
    pub closed_by_server: bool,
    reader: tokio::task::JoinHandle<()>,
}

impl Live {
    fn new(
        socket: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Live {
        let (tx, messages) = mpsc::unbounded_channel();
        let (mut sink, mut stream) = socket.split();
        let reader = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(Message::Text(text)) => {
                        let value: Value = serde_json::from_str(text.as_str())
                            .unwrap_or_else(|e| panic!("a WebSocket message is not JSON ({e})"));
                        if tx.send(value).is_err() {
                            return;
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        let _ = tx.send(
                            serde_json::json!({"type": "closed", "frame": format!("{frame:?}")}),
                        );
                        let _ = sink.close().await;
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Live {
            messages,
            seen: Vec::new(),
            closed_by_server: false,
            reader,
        }
    }

    /// Reads until a message satisfies `wanted`; panics after `limit` or
    /// when the socket closes first.
    pub async fn wait_for(&mut self, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv()).await;
            match message {
                Ok(Some(message)) => {
                    if message["type"] == "closed" {
                        self.closed_by_server = true;
                    }
                    self.seen.push(message.clone());
                    if wanted(&message) {
                        return message;
                    }
                    if self.closed_by_server {
                        panic!(
                            "the WebSocket closed before the message; seen: {:#?}",
                            tail(&self.seen)
                        );
                    }
                }
                Ok(None) => panic!("the WebSocket ended; seen: {:#?}", tail(&self.seen)),
                Err(_) => panic!(
                    "no such WebSocket message within {limit:?}; last seen: {:#?}",
                    tail(&self.seen)
                ),
            }
        }
    }

    /// Waits for a status message in `state`.
    pub async fn wait_state(&mut self, limit: Duration, state: &str) -> Value {
        self.wait_for(limit, |m| {
            m["type"] == "status" && m["status"]["state"] == state
        })
        .await["status"]
            .clone()
    }

    /// Log entries seen so far.
    pub fn entries(&self) -> Vec<&Value> {
        self.seen
            .iter()
            .filter(|m| m["type"] == "log")
            .map(|m| &m["entry"])
            .collect()
    }

    /// Whether an entry of `event` was seen.
    pub fn saw_event(&self, event: &str) -> bool {
        self.entries().iter().any(|e| e["event"] == event)
    }

    /// The states of the status messages seen, in order, repeats merged.
    pub fn states(&self) -> Vec<String> {
        let mut states: Vec<String> = Vec::new();
        for m in self.seen.iter().filter(|m| m["type"] == "status") {
            let state = m["status"]["state"].as_str().unwrap_or("?").to_string();
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
        states
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn tail(seen: &[Value]) -> &[Value] {
    &seen[seen.len().saturating_sub(15)..]
}

/// A k6 script for the testbed's gateway: `vus` users calling `function`
/// with a check; `thresholds` is the JS of the `thresholds` option.
pub fn gateway_script(gateway_url: &str, function: &str, thresholds: &str) -> String {
    format!(
        r#"import http from 'k6/http';
import {{ check, sleep }} from 'k6';

export const options = {{ thresholds: {thresholds} }};

export default function () {{
  const res = http.post('{gateway_url}/function/{function}', 'hello');
  check(res, {{ 'status is 200': (r) => r.status === 200 }});
  sleep(0.2);
}}
"#
    )
}
