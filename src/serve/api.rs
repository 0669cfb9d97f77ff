//! The HTTP routes: the dashboard at `/`, the API under `/api/k6/`, the
//! WebSocket at `/api/k6/ws`.
//!
//! Layers around the API, outermost first: a time bound on every request
//! (408), the browser guard and CORS ([`auth::Guard`]; preflights answered
//! only for configured origins) and the bearer token (401); bodies are
//! bounded where they are read (413). Handlers parse bodies themselves so that every refusal is
//! the API's JSON error with the field at fault — never axum's plain-text
//! rejections. The dashboard's files carry no data and no secret and are
//! served without a token (a browser cannot send one when it loads a
//! page); the page asks for the token and sends it with every call.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::auth;
use super::dashboard;
use super::error::{ApiError, ErrorType};
use super::hub;
use super::jobs::{validate_campaign, JobDir};
use super::results::{self, SummaryOf, TableName};
use super::state::StoredConfig;
use super::status::JobKind;
use super::suite::{self, RawSuite};
use super::Server;
use crate::config::FieldError;

/// Largest request body (a config).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A larger body is read and dropped up to this size before the 413.
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Longest time a request may take (reading its body included).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// WebSocket clients at once.
pub(crate) const MAX_WS_CLIENTS: usize = 64;
/// Largest message a WebSocket client may send (it has nothing to say).
const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;
/// A WebSocket client that does not take a message within this is dropped.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole application.
pub(crate) fn router(server: Arc<Server>) -> Router {
    let api = Router::new()
        .route("/config", get(get_config).put(put_config))
        .route("/config/reset", post(reset_config))
        .route("/start", post(start))
        .route("/stop", post(stop))
        .route("/status", get(status))
        .route("/logs", get(logs))
        .route("/results", get(results))
        .route("/results/summary", get(summary))
        .route("/jobs", get(jobs))
        .route("/scripts", get(scripts))
        .route("/ws", get(websocket))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            guard_and_cors,
        ))
        .layer(middleware::from_fn(time_bound));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .nest("/api/k6", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(server)
}

// ---------------------------------------------------------------- layers

async fn time_bound(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorType::Timeout,
            format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

async fn guard_and_cors(
    State(server): State<Arc<Server>>,
    request: Request,
    next: Next,
) -> Response {
    let cors_origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| server.guard.origin_allowed(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    if let Err(error) = server.guard.check(request.headers()) {
        return error.into_response();
    }
    let mut response = match (&cors_origin, request.method()) {
        (Some(_), &Method::OPTIONS) => {
            let mut preflight = StatusCode::NO_CONTENT.into_response();
            let headers = preflight.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, PUT, POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            preflight
        }
        _ => next.run(request).await,
    };
    if let Some(origin) = cors_origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn authenticate(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    match auth::authorize(server.token.as_ref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see GET /api/k6/status, /config, /logs, /results)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorType::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}

// ---------------------------------------------------------------- config

/// The configuration as shown: passwords redacted.
fn config_document(config: &StoredConfig, warnings: &[String]) -> Value {
    let shown = config.redacted();
    json!({
        "kind": shown.kind,
        "campaign": shown.campaign,
        "suite": shown.suite,
        "warnings": warnings,
    })
}

async fn get_config(State(server): State<Arc<Server>>) -> Json<Value> {
    Json(config_document(&server.stored_config(), &[]))
}

async fn put_config(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let value = json_body(&headers, body).await?;
    // One writer at a time: validation reads the stored passwords.
    let _writing = server.config_writer.lock().await;
    let stored = server.stored_config();
    let updated = apply_update(&stored, value, &server)?;
    let warnings = updated.1;
    server
        .state
        .save_config(&updated.0)
        .map_err(|e| ApiError::internal(format!("cannot save the configuration: {e}")))?;
    server.set_config(updated.0.clone());
    Ok(Json(config_document(&updated.0, &warnings)))
}

async fn reset_config(State(server): State<Arc<Server>>) -> Result<Json<Value>, ApiError> {
    let _writing = server.config_writer.lock().await;
    let defaults = StoredConfig::default();
    server
        .state
        .save_config(&defaults)
        .map_err(|e| ApiError::internal(format!("cannot save the configuration: {e}")))?;
    server.set_config(defaults.clone());
    Ok(Json(config_document(&defaults, &[])))
}

/// A JSON body: `application/json`, within the size bound, well-formed.
async fn json_body(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorType::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ));
    }
    let bytes = read_body(headers, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorType::MalformedJson,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// Reads a body of at most [`MAX_BODY_BYTES`]. A larger one is read on
/// and dropped up to [`MAX_DRAIN_BYTES`] before the 413: a client still
/// sending when the server closed would see a reset, not the answer.
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorType::PayloadTooLarge,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut seen: usize = 0;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorType::MalformedJson,
                format!("cannot read the body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= MAX_BODY_BYTES {
                bytes.extend_from_slice(&data);
            } else if seen > MAX_DRAIN_BYTES {
                break;
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `{"kind": "campaign"|"suite", "campaign": {...}, "suite": {...}}`: the
/// kind's own section is required, the other one may come too (a client
/// sending back what `GET` showed). Every problem is reported at once.
fn apply_update(
    stored: &StoredConfig,
    value: Value,
    server: &Server,
) -> Result<(StoredConfig, Vec<String>), ApiError> {
    let Value::Object(mut map) = value else {
        return Err(ApiError::field(
            "",
            "the body must be a JSON object {\"kind\": ..., \"campaign\"|\"suite\": {...}}",
        ));
    };
    let mut errors: Vec<FieldError> = Vec::new();
    let kind = match map.remove("kind") {
        Some(Value::String(k)) if k == "campaign" => Some(JobKind::Campaign),
        Some(Value::String(k)) if k == "suite" => Some(JobKind::Suite),
        Some(_) => {
            errors.push(FieldError::new("kind", "must be \"campaign\" or \"suite\""));
            None
        }
        None => {
            errors.push(FieldError::new(
                "kind",
                "is required: \"campaign\" or \"suite\"",
            ));
            None
        }
    };
    let campaign = map.remove("campaign");
    let suite = map.remove("suite");
    // What GET shows; accepted and ignored.
    map.remove("warnings");
    for key in map.keys() {
        errors.push(FieldError::new(
            key.clone(),
            "unknown field (expected kind, campaign, suite)",
        ));
    }
    match (kind, &campaign, &suite) {
        (Some(JobKind::Campaign), None, _) => errors.push(FieldError::new(
            "campaign",
            "is required for kind \"campaign\"",
        )),
        (Some(JobKind::Suite), _, None) => {
            errors.push(FieldError::new("suite", "is required for kind \"suite\""))
        }
        _ => {}
    }
    let mut updated = stored.clone();
    let mut warnings = Vec::new();
    if let Some(campaign) = campaign {
        match stored.keep_secrets(campaign) {
            Ok(campaign) => match validate_campaign(&campaign) {
                Ok((_, found)) => {
                    warnings.extend(found);
                    updated.campaign = campaign;
                }
                Err(e) => errors.extend(e.fields),
            },
            Err(field) => errors.push(FieldError::new(
                format!("campaign.{field}"),
                "no password is stored to keep: give the password itself",
            )),
        }
    }
    if let Some(suite) = suite {
        match RawSuite::from_value(&suite) {
            Ok(raw) => match suite::validate(&raw, &server.scripts, false) {
                Ok(_) => updated.suite = raw,
                Err(found) => errors.extend(found),
            },
            Err(found) => errors.extend(found),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    if let Some(kind) = kind {
        updated.kind = kind;
    }
    Ok((updated, warnings))
}

// ---------------------------------------------------------------- jobs

async fn start(State(server): State<Arc<Server>>) -> Result<Response, ApiError> {
    let id = server.jobs.start(&server)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"jobId": id, "status": server.hub.status()})),
    )
        .into_response())
}

async fn stop(State(server): State<Arc<Server>>) -> Result<Response, ApiError> {
    server.jobs.stop(&server.hub)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": server.hub.status()})),
    )
        .into_response())
}

async fn status(State(server): State<Arc<Server>>) -> Json<Value> {
    Json(json!(server.hub.status()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

async fn logs(
    State(server): State<Arc<Server>>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let page = server
        .hub
        .logs(query.since.unwrap_or(0), query.limit.unwrap_or(500));
    Ok(Json(json!(page)))
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::field("query", rejection.body_text())
}

// ---------------------------------------------------------------- results

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsQuery {
    job: Option<String>,
    table: Option<String>,
    format: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The job a results request is about: the one named, else the current or
/// the last one.
fn job_of(server: &Server, named: Option<&str>) -> Result<JobDir, ApiError> {
    let jobs = server.state.jobs();
    if let Some(id) = named {
        return JobDir::find(&jobs, id)
            .ok_or_else(|| ApiError::not_found(format!("there is no job {id:?}")));
    }
    let tracked = server.hub.tracked();
    tracked
        .job_id
        .or(tracked.last_job_id)
        .and_then(|id| JobDir::find(&jobs, &id))
        .or_else(|| JobDir::latest(&jobs))
        .ok_or_else(|| ApiError::not_found("no job has run yet"))
}

async fn results(
    State(server): State<Arc<Server>>,
    query: Result<Query<ResultsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let job = job_of(&server, query.job.as_deref())?;
    let record = job.record();
    let kind = record.as_ref().map_or(JobKind::Campaign, |r| r.kind);
    let state = record.as_ref().map(|r| r.state);
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::field("format", "must be json or csv")),
    };
    let table = match query.table.as_deref() {
        None => None,
        Some(text) => match (kind, TableName::parse(text)) {
            (JobKind::Campaign, Some(table)) => Some(table),
            (JobKind::Campaign, None) => {
                return Err(ApiError::field(
                    "table",
                    "must be results, skipped or index",
                ))
            }
            (JobKind::Suite, _) => {
                return Err(ApiError::field(
                    "table",
                    "a suite has no tables: leave it out",
                ))
            }
        },
    };
    match kind {
        JobKind::Suite => {
            let record = results::suite_record(&job)?;
            if csv {
                return Ok(csv_response(
                    &job.id,
                    "scripts",
                    results::suite_csv(&record)?,
                ));
            }
            Ok(Json(json!({
                "jobId": job.id,
                "kind": kind,
                "state": state,
                "scripts": record.scripts,
            }))
            .into_response())
        }
        JobKind::Campaign => {
            let output = job.output();
            if csv {
                let table = table.ok_or_else(|| {
                    ApiError::field("table", "CSV needs a table: results, skipped or index")
                })?;
                return Ok(csv_response(
                    &job.id,
                    table.key(),
                    results::table_csv(&output, table)?,
                ));
            }
            let offset = query.offset.unwrap_or(0);
            let limit = query.limit.unwrap_or(1000);
            let mut document = json!({"jobId": job.id, "kind": kind, "state": state});
            for name in TableName::ALL {
                if table.is_none() || table == Some(name) {
                    let rows = results::read_rows(&output, name, offset, limit)?;
                    if name == TableName::Results {
                        document["functions"] = json!(results::functions(&rows.columns));
                    }
                    document[name.key()] = json!(rows);
                }
            }
            Ok(Json(document).into_response())
        }
    }
}

fn csv_response(job_id: &str, what: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{job_id}-{what}.csv\"");
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    job: Option<String>,
    config: Option<String>,
    iteration: Option<u32>,
    script: Option<String>,
}

async fn summary(
    State(server): State<Arc<Server>>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let job = job_of(&server, query.job.as_deref())?;
    let which = match (query.config, query.iteration, query.script) {
        (Some(config), iteration, None) => SummaryOf::Iteration {
            config,
            iteration: iteration.unwrap_or(1),
        },
        (None, None, Some(script)) => SummaryOf::Script(script),
        _ => {
            return Err(ApiError::field(
                "query",
                "give config (and iteration, default 1) for a campaign, or script for a suite",
            ))
        }
    };
    results::summary(&job, &which).map(Json)
}

async fn jobs(State(server): State<Arc<Server>>) -> Json<Value> {
    let jobs_dir = server.state.jobs();
    let mut ids: Vec<String> = std::fs::read_dir(&jobs_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|id| !id.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let records: Vec<Value> = ids
        .iter()
        .take(100)
        .filter_map(|id| JobDir::find(&jobs_dir, id))
        .filter_map(|job| job.record())
        .map(|record| {
            json!({
                "id": record.id,
                "kind": record.kind,
                "state": record.state,
                "startTime": record.start_time,
                "endTime": record.end_time,
                "lastError": record.last_error,
            })
        })
        .collect();
    Json(json!({ "jobs": records }))
}

async fn scripts(State(server): State<Arc<Server>>) -> Json<Value> {
    Json(json!({ "scripts": server.scripts.list() }))
}

// ---------------------------------------------------------------- WebSocket

/// Counts a WebSocket client while it is connected (or being upgraded).
struct ClientSlot(Arc<Server>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.ws_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn websocket(
    State(server): State<Arc<Server>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            ErrorType::InvalidInput,
            format!("this endpoint speaks WebSocket: {}", rejection.body_text()),
        )
    })?;
    if server.ws_clients.fetch_add(1, Ordering::SeqCst) >= MAX_WS_CLIENTS {
        server.ws_clients.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::new(
            ErrorType::Unavailable,
            format!("at most {MAX_WS_CLIENTS} WebSocket clients at once"),
        ));
    }
    let slot = ClientSlot(Arc::clone(&server));
    Ok(upgrade
        .protocols([auth::WS_PROTOCOL])
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .on_upgrade(move |socket| client(socket, slot)))
}

/// Pushes the status, then every message, until the client goes, falls
/// too far behind in reading, or the server shuts down.
async fn client(mut socket: WebSocket, slot: ClientSlot) {
    let server = Arc::clone(&slot.0);
    let (first, mut messages) = server.hub.subscribe();
    let mut shutdown = server.shutdown.subscribe();
    if !send(&mut socket, &first).await {
        return;
    }
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(text) => {
                    if !send(&mut socket, &text).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let notice = json!({"type": "lagged", "missed": missed}).to_string();
                    let fresh = hub::status_message(&server.hub.status());
                    if !send(&mut socket, &notice).await || !send(&mut socket, &fresh).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Clients have nothing to say; pings are answered below us.
                Some(Ok(_)) => {}
            },
            () = shutting_down(&mut shutdown) => break,
        }
    }
    let close = Message::Close(Some(CloseFrame {
        code: 1001,
        reason: "the server is shutting down".into(),
    }));
    let _ = tokio::time::timeout(WS_SEND_TIMEOUT, socket.send(close)).await;
}

/// Resolves once the server shuts down (never if the flag is gone).
async fn shutting_down(flag: &mut tokio::sync::watch::Receiver<bool>) {
    if flag.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn send(socket: &mut WebSocket, text: &str) -> bool {
    matches!(
        tokio::time::timeout(WS_SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}
