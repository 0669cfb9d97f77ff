//! Debian's headless Chromium driven over the DevTools protocol: launch
//! it on a free port with a throw-away profile, attach to its page, run
//! JavaScript in it, wait for conditions, take screenshots. Dropping the
//! [`Browser`] kills Chromium (by the pid it was started with).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium.
pub struct Browser {
    child: Child,
    /// `http://127.0.0.1:PORT` of the DevTools endpoint.
    devtools: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium; panics with a hint when it is not installed.
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,1700",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chromium ({e}): run scripts/setup.sh"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads Chromium's stderr to its end (it must never block on it).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let ws = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("chromium printed no DevTools address within 60 s"));
        // ws://127.0.0.1:PORT/devtools/browser/ID
        let authority = ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Browser {
            child,
            devtools: format!("http://{authority}"),
            _profile: profile,
        }
    }

    /// The browser's first page.
    pub async fn page(&self) -> Page {
        let targets: Value = reqwest::get(format!("{}/json/list", self.devtools))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("the DevTools WebSocket opens");
        let mut page = Page {
            socket,
            next_id: 0,
            console: Vec::new(),
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, over its DevTools WebSocket.
pub struct Page {
    socket: Socket,
    next_id: u64,
    /// Console messages and uncaught exceptions seen (for failures).
    pub console: Vec<String>,
}

impl Page {
    /// Sends a command and returns its `result`; events on the way are
    /// kept when they are console output or exceptions.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(Message::Text(command.into()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within 60 s"))
                .unwrap_or_else(|| panic!("{method}: the DevTools socket closed"))
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    panic!("{method}: {error}");
                }
                return value["result"].clone();
            }
            match value["method"].as_str() {
                Some("Runtime.consoleAPICalled") => self.console.push(format!(
                    "console.{}: {}",
                    value["params"]["type"].as_str().unwrap_or("?"),
                    value["params"]["args"]
                )),
                Some("Runtime.exceptionThrown") => self.console.push(format!(
                    "exception: {}",
                    value["params"]["exceptionDetails"]
                )),
                _ => {}
            }
        }
    }

    /// Evaluates `expression` in the page (promises awaited); its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Loads `url` and waits for the document to be complete.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "the page to load",
            "document.readyState === 'complete'",
            Duration::from_secs(60),
        )
        .await;
    }

    /// Polls `expression` until it is truthy; its value. Panics after
    /// `limit` with `what`, the page's text and its console.
    pub async fn wait_for(&mut self, what: &str, expression: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let value = self.eval(expression).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self.eval("document.body.innerText").await;
                panic!(
                    "waited {limit:?} for {what}; page text:\n{}\nconsole: {:#?}",
                    text.as_str().unwrap_or(""),
                    self.console
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Clicks the element with `id` as a user would (it must be enabled).
    pub async fn click(&mut self, id: &str) {
        let clicked = self
            .eval(&format!(
                "(() => {{ const b = document.getElementById('{id}'); if (!b || b.disabled) return false; b.click(); return true; }})()"
            ))
            .await;
        assert_eq!(clicked, json!(true), "#{id} is missing or disabled");
    }

    /// A PNG of the whole page, written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let data = shot["data"].as_str().expect("screenshot data");
        std::fs::write(path, decode_base64(data)).unwrap();
    }
}

/// Standard base64 (what DevTools sends screenshots in).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let digits: Vec<u8> = chunk.iter().copied().filter(|c| *c != b'=').collect();
        let mut n = 0u32;
        for (i, c) in digits.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..digits.len()]);
    }
    out
}

#[test]
fn base64_round_trip() {
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("aGVsbG8h"), b"hello!");
    assert_eq!(decode_base64("aGk="), b"hi");
    assert_eq!(decode_base64(""), b"");
}
