//! The HTTP client both measurement sources use: a plain-`http` base URL
//! (this build has no TLS stack), no proxy, bounded timeouts.

use std::time::Duration;

/// Why a client could not be set up; each caller wraps it in its own error.
#[derive(Debug)]
pub(crate) enum ClientSetupError {
    Url { url: String, reason: String },
    Client(reqwest::Error),
}

/// Checks `base_url` (a trailing `/` is dropped) and builds the client.
pub(crate) fn plain_http_client(
    base_url: &str,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<(String, reqwest::Client), ClientSetupError> {
    let base_url = base_url.trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&base_url).map_err(|e| ClientSetupError::Url {
        url: base_url.clone(),
        reason: e.to_string(),
    })?;
    if parsed.scheme() != "http" {
        return Err(ClientSetupError::Url {
            url: base_url,
            reason: "only http:// is supported".to_string(),
        });
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(request_timeout)
        .connect_timeout(connect_timeout)
        .build()
        .map_err(ClientSetupError::Client)?;
    Ok((base_url, http))
}
