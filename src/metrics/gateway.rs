//! Replica counts from the OpenFaaS gateway (`GET /system/functions`).
//!
//! Parsing the answer is pure ([`parse_replicas`]); the client adds short
//! timeouts, TLS as configured and optional basic auth, whose password is
//! exposed only when the request is built. No faas-cli, no retries: the
//! cooldown loop polls again on its own schedule. A count the gateway did
//! not give is absent (`None`), never 0.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::http::{http_client, ClientSetupError, Credentials};
use crate::config::{BasicAuth, Tls};
use crate::report::error_chain;

/// Longest part of an error body kept in messages.
const BODY_EXCERPT_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid gateway URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot build the HTTP client for the gateway: {0}")]
    Client(#[source] reqwest::Error),
    #[error("request to the gateway at {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("gateway at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("gateway at {url} sent an unexpected function list: {reason}")]
    Malformed { url: String, reason: String },
}

impl From<ClientSetupError> for GatewayError {
    fn from(error: ClientSetupError) -> Self {
        match error {
            ClientSetupError::Url { url, reason } => GatewayError::Url { url, reason },
            ClientSetupError::Client(e) => GatewayError::Client(e),
        }
    }
}

/// Timeouts for gateway requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GatewaySettings {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Deserialize)]
struct FunctionStatus {
    name: String,
    #[serde(default)]
    replicas: Option<u64>,
}

/// Replicas by function name from a `/system/functions` body. A function
/// without a `replicas` field counts 0: OpenFaaS's `FunctionStatus` omits
/// the field when it is zero (`omitempty`).
pub(crate) fn parse_replicas(body: &str) -> Result<BTreeMap<String, u64>, String> {
    let functions: Vec<FunctionStatus> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(functions
        .into_iter()
        .map(|f| (f.name, f.replicas.unwrap_or(0)))
        .collect())
}

/// Talks to one OpenFaaS gateway.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    base_url: String,
    credentials: Option<Credentials>,
    http: reqwest::Client,
}

impl GatewayClient {
    /// `base_url` like `http://10.0.0.5:31112` (a trailing `/` is dropped),
    /// system TLS roots.
    pub fn new(base_url: &str, auth: Option<BasicAuth>) -> Result<Self, GatewayError> {
        Self::with_settings(base_url, auth, &Tls::default(), GatewaySettings::default())
    }

    pub(crate) fn with_settings(
        base_url: &str,
        auth: Option<BasicAuth>,
        tls: &Tls,
        settings: GatewaySettings,
    ) -> Result<Self, GatewayError> {
        let (base_url, http) = http_client(
            base_url,
            settings.request_timeout,
            settings.connect_timeout,
            tls,
        )
        .map_err(GatewayError::from)?;
        Ok(GatewayClient {
            base_url,
            credentials: auth.map(Credentials::Basic),
            http,
        })
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Replicas of every function the gateway lists.
    pub async fn replicas(&self) -> Result<BTreeMap<String, u64>, GatewayError> {
        let url = format!("{}/system/functions", self.base_url);
        let mut request = self.http.get(&url);
        if let Some(credentials) = &self.credentials {
            request = credentials.apply(request);
        }
        let request_error = |e: reqwest::Error| GatewayError::Request {
            url: url.clone(),
            reason: error_chain(&e),
        };
        let response = request.send().await.map_err(request_error)?;
        let status = response.status();
        let body = response.text().await.map_err(request_error)?;
        if !status.is_success() {
            let trimmed = body.trim();
            let body = match trimmed.char_indices().nth(BODY_EXCERPT_CHARS) {
                Some((cut, _)) => format!("{}…", &trimmed[..cut]),
                None => trimmed.to_string(),
            };
            return Err(GatewayError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
        parse_replicas(&body).map_err(|reason| GatewayError::Malformed { url, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::sync::{Arc, Mutex};

    const LISTING: &str = r#"[
        {"name":"figlet","image":"x","replicas":3,"availableReplicas":3,"invocationCount":10},
        {"name":"env","image":"y","availableReplicas":0},
        {"name":"nodeinfo","replicas":0}
    ]"#;

    #[test]
    fn parses_listing() {
        let replicas = parse_replicas(LISTING).unwrap();
        assert_eq!(
            replicas,
            BTreeMap::from([
                ("env".to_string(), 0),
                ("figlet".to_string(), 3),
                ("nodeinfo".to_string(), 0)
            ])
        );
        assert_eq!(parse_replicas("[]").unwrap(), BTreeMap::new());
        assert!(parse_replicas("{}").is_err());
        assert!(parse_replicas(r#"[{"replicas":1}]"#).is_err());
        assert!(parse_replicas(r#"[{"name":"a","replicas":-1}]"#).is_err());
    }

    /// Serves `status` + `body` to every connection; keeps request heads.
    async fn serve(status: &'static str, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        crate::metrics::http::serve_for_tests(status, body).await
    }

    #[tokio::test]
    async fn reads_replicas_with_basic_auth() {
        let (url, heads) = serve("200 OK", LISTING).await;
        let auth = BasicAuth {
            user: "admin".into(),
            password: Secret::new("s3cret"),
        };
        let client = GatewayClient::new(&format!("{url}/"), Some(auth)).unwrap();
        let replicas = client.replicas().await.unwrap();
        assert_eq!(
            (replicas.get("figlet"), replicas.get("shasum")),
            (Some(&3), None)
        );

        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1);
        assert!(
            heads[0].starts_with("GET /system/functions HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        // base64("admin:s3cret")
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains("authorization: basic ywrtaw46cznjcmv0"),
            "{}",
            heads[0]
        );
    }

    #[tokio::test]
    async fn no_auth_header_without_credentials() {
        let (url, heads) = serve("200 OK", "[]").await;
        let client = GatewayClient::new(&url, None).unwrap();
        assert_eq!(client.replicas().await.unwrap(), BTreeMap::new());
        let heads = heads.lock().unwrap().clone();
        assert!(!heads[0].to_ascii_lowercase().contains("authorization"));
    }

    #[tokio::test]
    async fn http_errors_and_bad_bodies_are_named() {
        let (url, _) = serve("401 Unauthorized", "unauthorized").await;
        let err = GatewayClient::new(&url, None)
            .unwrap()
            .replicas()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("401") && msg.contains("unauthorized") && msg.contains(&url),
            "{msg}"
        );

        let (url, _) = serve("200 OK", "{\"not\":\"a list\"}").await;
        let err = GatewayClient::new(&url, None)
            .unwrap()
            .replicas()
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::Malformed { .. }), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_an_error_naming_the_url() {
        // Bind then drop to get a port with nothing listening.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let err = GatewayClient::new(&url, None)
            .unwrap()
            .replicas()
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::Request { .. }), "{err}");
        assert!(err.to_string().contains(&url), "{err}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let auth = BasicAuth {
            user: "admin".into(),
            password: Secret::new("s3cret"),
        };
        let client = GatewayClient::new("http://127.0.0.1:1", Some(auth)).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
