//! k6's REST API, reached through a Unix socket that the SSH master
//! forwards to the k6 host's loopback: the runner waits for a k6 started
//! with `--paused` to have initialised its VUs, then resumes it.
//!
//! A hand-written HTTP/1.1 request (one request per connection,
//! `Connection: close`): the HTTP client of the rest of the program does
//! not speak over Unix sockets, and this is the whole exchange.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Most bytes of a response read.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// The body of `PATCH /v1/status` that resumes a paused k6.
const RESUME_BODY: &str =
    r#"{"data":{"type":"status","id":"default","attributes":{"paused":false}}}"#;

/// k6's execution status once every VU is initialised and the run waits
/// to be resumed (`lib.ExecutionStatusPausedBeforeRun`); later statuses
/// are greater.
const PAUSED_BEFORE_RUN: u64 = 4;

/// Pause between status reads while k6 initialises its VUs.
const INIT_POLL: Duration = Duration::from_millis(20);

/// Resumes the paused k6 whose REST API `socket` reaches, within `bound`.
/// `Err` says why (connection, HTTP status and body excerpt).
pub(super) async fn resume(socket: &Path, bound: Duration) -> Result<(), String> {
    match tokio::time::timeout(bound, request(socket, "PATCH", RESUME_BODY)).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(format!("no answer within {} ms", bound.as_millis())),
    }
}

/// Waits, within `bound`, until k6 has initialised every VU and waits,
/// paused, to be resumed (one status read when it already does): resumed
/// earlier, its load would begin whenever the init ends, not now.
pub(super) async fn wait_until_initialised(socket: &Path, bound: Duration) -> Result<(), String> {
    let wait = async {
        loop {
            let body = request(socket, "GET", "").await?;
            let status = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["data"]["attributes"]["status"].as_u64())
                .ok_or_else(|| format!("no status in k6's answer {:?}", excerpt(&body)))?;
            if status >= PAUSED_BEFORE_RUN {
                return Ok(());
            }
            tokio::time::sleep(INIT_POLL).await;
        }
    };
    match tokio::time::timeout(bound, wait).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "k6 did not finish initialising its VUs within {} s",
            bound.as_secs()
        )),
    }
}

/// One request on `/v1/status`; the body of a 2xx answer.
async fn request(socket: &Path, method: &str, body: &str) -> Result<String, String> {
    let mut connection = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    let request = format!(
        "{method} /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    connection
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut response = Vec::new();
    connection
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    check_response(&response)?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string())
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// `Ok` for a 2xx status line; else the status line and body excerpt.
fn check_response(response: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(response);
    let status_line = text.lines().next().unwrap_or_default();
    let code = status_line
        .split_ascii_whitespace()
        .nth(1)
        .unwrap_or_default();
    if status_line.starts_with("HTTP/1.") && code.len() == 3 && code.starts_with('2') {
        return Ok(());
    }
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    Err(format!(
        "k6 answered {:?}: {}",
        status_line,
        body.chars().take(200).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2xx_status_resumes() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"data\":{}}";
        assert_eq!(check_response(ok), Ok(()));
        let refused = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"errors\":[{\"detail\":\"execution is not paused\"}]}";
        let error = check_response(refused).unwrap_err();
        assert!(error.contains("400 Bad Request"), "{error}");
        assert!(error.contains("execution is not paused"), "{error}");
        assert!(check_response(b"").is_err());
        assert!(check_response(b"garbage 200\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn waits_for_the_vus_then_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        // InitVUs twice, then PausedBeforeRun.
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            for status in [1, 1, 4] {
                let (mut connection, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 4096];
                let n = connection.read(&mut request).await.unwrap();
                requests.push(String::from_utf8_lossy(&request[..n]).into_owned());
                let body =
                    format!(r#"{{"data":{{"attributes":{{"status":{status},"paused":true}}}}}}"#);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                connection.write_all(answer.as_bytes()).await.unwrap();
            }
            requests
        });
        wait_until_initialised(&socket, Duration::from_secs(5))
            .await
            .unwrap();
        let requests = server.await.unwrap();
        assert_eq!(requests.len(), 3);
        assert!(requests
            .iter()
            .all(|r| r.starts_with("GET /v1/status HTTP/1.1\r\n")));
        // Nobody answering within the bound is an error saying so.
        let error =
            wait_until_initialised(&dir.path().join("none.sock"), Duration::from_millis(200))
                .await
                .unwrap_err();
        assert!(error.contains("connecting"), "{error}");
    }

    #[tokio::test]
    async fn the_request_is_a_status_patch() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let (mut connection, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let n = connection.read(&mut request).await.unwrap();
            connection
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        resume(&socket, Duration::from_secs(5)).await.unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("PATCH /v1/status HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.ends_with(RESUME_BODY), "{request}");
        assert!(request.contains(&format!("Content-Length: {}\r\n", RESUME_BODY.len())));
    }
}
