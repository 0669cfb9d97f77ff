//! The control API's one error shape: `{"error": {"type", "message",
//! "fields": [{"field", "reason"}]}}` with its HTTP status.
//!
//! Every refusal of the API goes through [`ApiError`], including axum's own
//! (unknown route, wrong method, body too large), so a client never has to
//! parse anything but JSON. Messages never carry a token or a password.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::config::{ConfigError, FieldError};

/// What kind of refusal; its `type` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorType {
    /// The body is not JSON.
    MalformedJson,
    /// JSON of the wrong shape or values out of bounds; `fields` says which.
    InvalidInput,
    UnsupportedMediaType,
    PayloadTooLarge,
    /// No token or the wrong one.
    Unauthorized,
    /// A request from a web origin or host that may not use the API.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// A job runs already (start), or none runs (stop).
    Conflict,
    /// The request took longer than the server allows.
    Timeout,
    /// Too many WebSocket clients.
    Unavailable,
    Internal,
}

impl ErrorType {
    fn status(self) -> StatusCode {
        match self {
            ErrorType::MalformedJson | ErrorType::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorType::Forbidden => StatusCode::FORBIDDEN,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::Conflict => StatusCode::CONFLICT,
            ErrorType::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub kind: ErrorType,
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl ApiError {
    pub(crate) fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// Invalid input naming every field at fault.
    pub(crate) fn fields(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("invalid input: {one}"),
            many => format!("invalid input: {} problems", many.len()),
        };
        ApiError {
            kind: ErrorType::InvalidInput,
            message,
            fields,
        }
    }

    /// One field at fault.
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::new(field, reason)])
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Conflict, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorType::NotFound, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }

    /// A config that does not validate, its fields under `prefix`
    /// (`campaign.`), as `run` would report them.
    pub(crate) fn config(error: &ConfigError, prefix: &str) -> Self {
        let fields: Vec<FieldError> = error
            .field_errors()
            .into_iter()
            .map(|e| FieldError::new(format!("{prefix}{}", e.field), e.reason))
            .collect();
        if fields.is_empty() {
            return ApiError::field(prefix.trim_end_matches('.'), error.to_string());
        }
        ApiError::fields(fields)
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The JSON document.
    pub(crate) fn body(&self) -> serde_json::Value {
        json!({"error": {"type": self.kind, "message": self.message, "fields": self.fields}})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if self.kind == ErrorType::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lb-dfaas\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_type_message_and_fields() {
        let error = ApiError::fields(vec![
            FieldError::new("suite.globalUserCount", "must be 1..=10000"),
            FieldError::new("suite.testDuration", "must not be empty"),
        ]);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.body(),
            json!({"error": {
                "type": "invalid_input",
                "message": "invalid input: 2 problems",
                "fields": [
                    {"field": "suite.globalUserCount", "reason": "must be 1..=10000"},
                    {"field": "suite.testDuration", "reason": "must not be empty"},
                ],
            }})
        );
    }

    #[test]
    fn statuses() {
        for (kind, status) in [
            (ErrorType::MalformedJson, 400),
            (ErrorType::UnsupportedMediaType, 415),
            (ErrorType::PayloadTooLarge, 413),
            (ErrorType::Unauthorized, 401),
            (ErrorType::Forbidden, 403),
            (ErrorType::Conflict, 409),
            (ErrorType::Timeout, 408),
        ] {
            assert_eq!(ApiError::new(kind, "x").status().as_u16(), status);
        }
    }
}
