//! k6's REST API, reached through a Unix socket that the SSH master
//! forwards to the k6 host's loopback: the one call the runner makes,
//! resuming a k6 started with `--paused`.
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

/// Resumes the paused k6 whose REST API `socket` reaches, within `bound`.
/// `Err` says why (connection, HTTP status and body excerpt).
pub(super) async fn resume(socket: &Path, bound: Duration) -> Result<(), String> {
    match tokio::time::timeout(bound, patch_status(socket)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", bound.as_millis())),
    }
}

async fn patch_status(socket: &Path) -> Result<(), String> {
    let mut connection = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    let request = format!(
        "PATCH /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{RESUME_BODY}",
        RESUME_BODY.len()
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
    check_response(&response)
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
