//! Who may use the control API: the bearer token, compared in constant
//! time, and the web origins and host names a browser may call it from.
//!
//! The token comes from `--token-file` (a small regular file; surrounding
//! whitespace ignored) and is never logged or echoed: [`Token`] prints
//! `(redacted)`. HTTP clients send `Authorization: Bearer <token>`; a
//! browser's WebSocket cannot set headers, so the WebSocket also accepts
//! the token as the subprotocol `lb-dfaas.bearer.<token>` (offered next to
//! [`WS_PROTOCOL`], which is the one the server selects — the token is
//! never sent back). Tokens are therefore limited to characters that may
//! appear in a subprotocol name.
//!
//! Browsers also call servers on loopback from any page they show, so
//! [`Guard`] refuses a request whose `Origin` is neither the server itself
//! nor a configured one, and — when there is no token — whose `Host` is
//! not a loopback name (DNS rebinding).

use std::fmt;
use std::path::Path;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorType};

/// The subprotocol the WebSocket speaks (and selects).
pub(crate) const WS_PROTOCOL: &str = "lb-dfaas";
/// Prefix of the subprotocol that carries the token.
pub(crate) const WS_TOKEN_PREFIX: &str = "lb-dfaas.bearer.";

/// A token shorter than this is refused: it could be guessed.
pub(crate) const MIN_TOKEN_LEN: usize = 16;
const MAX_TOKEN_LEN: usize = 512;
/// A token file larger than this is not a token file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The API's bearer token. Never printed.
#[derive(Clone)]
pub(crate) struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token((redacted))")
    }
}

impl Token {
    /// Checks a token's form: [`MIN_TOKEN_LEN`]..=512 characters of
    /// `[A-Za-z0-9._~-]` (e.g. `openssl rand -hex 32`).
    pub(crate) fn new(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token must be at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        if text.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the token must be at most {MAX_TOKEN_LEN} characters"
            ));
        }
        if !text.bytes().all(is_token_byte) {
            return Err(
                "the token may only hold letters, digits and . _ ~ - (it must fit in a WebSocket subprotocol)"
                    .to_string(),
            );
        }
        Ok(Token(text.to_string()))
    }

    /// Reads the token file: a small regular file (a FIFO would block).
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if meta.len() > MAX_TOKEN_FILE_BYTES {
            return Err(format!(
                "{} is larger than {MAX_TOKEN_FILE_BYTES} bytes",
                path.display()
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
        Token::new(&text)
    }

    /// Whether `offered` is this token, in time independent of where
    /// they differ (and of the offered length: both sides are hashed).
    pub(crate) fn matches(&self, offered: &str) -> bool {
        constant_time_eq(
            &Sha256::digest(self.0.as_bytes()),
            &Sha256::digest(offered.as_bytes()),
        )
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~-".contains(&b)
}

/// Equal slices, compared without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    difference == 0
}

/// What a request offered as its token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offered<'a> {
    None,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    Token(&'a str),
}

/// The token of `Authorization: Bearer <token>`, or of the WebSocket
/// subprotocol `lb-dfaas.bearer.<token>`.
pub(crate) fn offered(headers: &HeaderMap) -> Offered<'_> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Ok(text) = value.to_str() else {
            return Offered::Malformed;
        };
        return match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Offered::Token(token.trim())
            }
            _ => Offered::Malformed,
        };
    }
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for protocol in protocols {
        if let Some(token) = protocol.strip_prefix(WS_TOKEN_PREFIX) {
            return Offered::Token(token);
        }
    }
    Offered::None
}

/// Checks a request's token against `token` (`None`: no token needed).
pub(crate) fn authorize(token: Option<&Token>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    match offered(headers) {
        Offered::Token(offered) if token.matches(offered) => Ok(()),
        Offered::Token(_) => Err(ApiError::new(
            ErrorType::Unauthorized,
            "the bearer token is not valid",
        )),
        Offered::Malformed => Err(ApiError::new(
            ErrorType::Unauthorized,
            "the Authorization header must be `Bearer <token>`",
        )),
        Offered::None => Err(ApiError::new(
            ErrorType::Unauthorized,
            "a bearer token is required: send `Authorization: Bearer <token>`",
        )),
    }
}

/// Which browsers' requests are let through.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guard {
    /// Origins allowed besides the server's own (`--cors-origin`).
    pub allowed_origins: Vec<String>,
    /// Only loopback `Host` names are accepted (no token: a DNS name
    /// rebound to 127.0.0.1 must not reach the API).
    pub loopback_hosts_only: bool,
}

impl Guard {
    /// Refuses a cross-origin request from an origin not allowed, and a
    /// foreign `Host` when only loopback names are accepted.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if self.loopback_hosts_only && !is_loopback_host(host) {
            return Err(ApiError::new(
                ErrorType::Forbidden,
                "without a token the API answers only requests addressed to a loopback name (127.0.0.1, [::1], localhost)",
            ));
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        if self.origin_allowed(origin) || same_origin(origin, host) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorType::Forbidden,
            "requests from this web origin are not allowed (see --cors-origin)",
        ))
    }

    /// Whether `origin` is one of the configured origins (CORS applies).
    pub(crate) fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

/// `http://HOST` or `https://HOST` for the request's own `Host`.
fn same_origin(origin: &str, host: &str) -> bool {
    !host.is_empty()
        && (origin.strip_prefix("http://") == Some(host)
            || origin.strip_prefix("https://") == Some(host))
}

/// `127.0.0.1[:port]`, `[::1][:port]`, `localhost[:port]`.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, _)) => inside,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const GOOD: &str = "0123456789abcdef-token";

    #[test]
    fn tokens_are_checked_for_form() {
        assert!(Token::new(GOOD).is_ok());
        assert!(Token::new(&format!("  {GOOD}\n")).is_ok());
        assert!(Token::new("short").is_err());
        assert!(Token::new("0123456789abcdef token").is_err());
        assert!(Token::new("0123456789abcdef/token").is_err());
        assert!(Token::new(&"a".repeat(513)).is_err());
    }

    #[test]
    fn a_token_never_prints() {
        let token = Token::new(GOOD).unwrap();
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        let token = Token::new(GOOD).unwrap();
        assert!(token.matches(GOOD));
        assert!(!token.matches("0123456789abcdef-tokeN"));
        assert!(!token.matches(""));
    }

    #[test]
    fn bearer_header_and_websocket_subprotocol() {
        let token = Token::new(GOOD).unwrap();
        let ok = |h: HeaderMap| authorize(Some(&token), &h);
        assert!(ok(headers(&[("authorization", &format!("Bearer {GOOD}"))])).is_ok());
        assert!(ok(headers(&[("authorization", &format!("bearer {GOOD}"))])).is_ok());
        assert!(ok(headers(&[(
            "sec-websocket-protocol",
            &format!("lb-dfaas, lb-dfaas.bearer.{GOOD}")
        )]))
        .is_ok());
        for refused in [
            headers(&[]),
            headers(&[("authorization", "Bearer wrong-token-0000000")]),
            headers(&[("authorization", &format!("Basic {GOOD}"))]),
            headers(&[("sec-websocket-protocol", "lb-dfaas")]),
        ] {
            let error = ok(refused).unwrap_err();
            assert_eq!(error.kind, ErrorType::Unauthorized);
            assert!(!error.message.contains(GOOD));
        }
        assert!(authorize(None, &headers(&[])).is_ok());
    }

    #[test]
    fn origins_and_hosts() {
        let guard = Guard {
            allowed_origins: vec!["https://dash.example".into()],
            loopback_hosts_only: false,
        };
        assert!(guard.check(&headers(&[("host", "10.0.0.5:7070")])).is_ok());
        assert!(guard
            .check(&headers(&[
                ("host", "10.0.0.5:7070"),
                ("origin", "http://10.0.0.5:7070")
            ]))
            .is_ok());
        assert!(guard
            .check(&headers(&[
                ("host", "10.0.0.5:7070"),
                ("origin", "https://dash.example")
            ]))
            .is_ok());
        let refused = guard
            .check(&headers(&[
                ("host", "10.0.0.5:7070"),
                ("origin", "https://evil.example"),
            ]))
            .unwrap_err();
        assert_eq!(refused.kind, ErrorType::Forbidden);

        let loopback = Guard {
            allowed_origins: Vec::new(),
            loopback_hosts_only: true,
        };
        for host in [
            "127.0.0.1:7070",
            "localhost:7070",
            "[::1]:7070",
            "127.0.0.1",
        ] {
            assert!(
                loopback.check(&headers(&[("host", host)])).is_ok(),
                "{host}"
            );
        }
        for host in ["evil.example:7070", "10.0.0.5:7070", "[::2]:1", ""] {
            assert!(
                loopback.check(&headers(&[("host", host)])).is_err(),
                "{host}"
            );
        }
    }
}
