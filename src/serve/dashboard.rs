//! The dashboard: one page, a script and a style sheet compiled into the
//! binary (`include_str!`), so it works offline — no CDN, no build step.
//!
//! The page holds no data: it calls the API (with the token the user
//! gives, kept in the tab's session storage) and listens on the
//! WebSocket. It shows the configuration editor with validation errors by
//! field, start and stop, the live status and log, the results table and
//! plots of success rate, mean latency and node CPU against the request
//! rate per function, overloaded points marked (SVG drawn in the page).

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Everything from this server only; the page may talk to the API and its
/// WebSocket (same origin) and nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub(crate) async fn index() -> Response {
    page(INDEX_HTML, "text/html; charset=utf-8")
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => page(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => page(STYLE_CSS, "text/css; charset=utf-8"),
        _ => ApiError::not_found("no such asset").into_response(),
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            for foreign in ["http://", "https://", "//cdn"] {
                let outside = text
                    .match_indices(foreign)
                    .filter(|(at, _)| !text[*at..].starts_with("http://www.w3.org/2000/svg"))
                    .count();
                assert_eq!(outside, 0, "a reference to {foreign} in an asset");
            }
        }
        assert!(INDEX_HTML.contains("/assets/app.js"));
        assert!(INDEX_HTML.contains("/assets/style.css"));
    }
}
