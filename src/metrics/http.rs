//! The HTTP client both measurement sources use: an `http` or `https` base
//! URL (rustls; extra CA certificates or, for self-signed lab set-ups, no
//! verification at all, as configured), no proxy, bounded timeouts, and
//! the credentials a request carries.

use std::time::Duration;

use crate::config::{BasicAuth, Secret, Tls};

/// Why a client could not be set up; each caller wraps it in its own error.
#[derive(Debug)]
pub(crate) enum ClientSetupError {
    Url { url: String, reason: String },
    Client(reqwest::Error),
}

/// Credentials added to every request of one client. Debug output never
/// shows them (both wrap a [`Secret`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Credentials {
    Basic(BasicAuth),
    Bearer(Secret),
}

impl Credentials {
    /// Adds the `Authorization` header; the secret is exposed only here.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Basic(auth) => {
                request.basic_auth(&auth.user, Some(auth.password.expose()))
            }
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
        }
    }
}

/// Checks `base_url` (a trailing `/` is dropped) and builds the client.
pub(crate) fn http_client(
    base_url: &str,
    request_timeout: Duration,
    connect_timeout: Duration,
    tls: &Tls,
) -> Result<(String, reqwest::Client), ClientSetupError> {
    let base_url = base_url.trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&base_url).map_err(|e| ClientSetupError::Url {
        url: base_url.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ClientSetupError::Url {
            url: base_url,
            reason: "only http:// and https:// are supported".to_string(),
        });
    }
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(request_timeout)
        .connect_timeout(connect_timeout);
    if let Some(ca) = &tls.ca {
        let certificates =
            reqwest::Certificate::from_pem_bundle(&ca.pem).map_err(|e| ClientSetupError::Url {
                url: base_url.clone(),
                reason: format!("CA file {}: {e}", ca.path.display()),
            })?;
        builder = builder.tls_certs_merge(certificates);
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let http = builder.build().map_err(ClientSetupError::Client)?;
    Ok((base_url, http))
}

/// A one-answer HTTP server for unit tests of the clients: serves `status`
/// and `body` to every connection and keeps each request's head.
#[cfg(test)]
pub(crate) async fn serve_for_tests(
    status: &'static str,
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..read]).into_owned());
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (format!("http://{addr}"), heads)
}
