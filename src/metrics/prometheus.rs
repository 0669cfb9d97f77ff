//! A small Prometheus HTTP API client: instant and range queries reduced to
//! one number each.
//!
//! Reducing a response is pure ([`instant_sum`], [`range_average`]): an
//! instant result is the sum of its series; a range result is summed across
//! series per timestamp, then averaged over the timestamps. The HTTP edge
//! adds short per-request timeouts and bounded retries ([`Deadlines`]):
//! failures (unreachable, 5xx) until a time budget is spent, empty answers
//! only while waiting can still change them; after that a query becomes
//! NaN with a warning ([`Measured`]): a stopped Prometheus costs seconds,
//! never a hang. A stop request ([`Stop`]) ends any request, retry or
//! pause at once. TLS and credentials (basic auth or a bearer token) are
//! as configured; the secret is exposed only when a request is built.
//! This module neither prints nor decides what a number means.

use super::http::{http_client, ClientSetupError, Credentials};
use crate::config::{PrometheusAuth, Tls};
use crate::report::error_chain;
use crate::stop::Stop;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Longest part of an error body kept in messages.
const BODY_EXCERPT_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot build the HTTP client for Prometheus: {0}")]
    Client(#[source] reqwest::Error),
    #[error("request to Prometheus at {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("Prometheus at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus rejected query {query:?}: {error_type}: {message}")]
    Rejected {
        query: String,
        error_type: String,
        message: String,
    },
    #[error("query {query:?} returned no data")]
    Empty { query: String },
    #[error("malformed Prometheus answer to {query:?}: {reason}")]
    Malformed { query: String, reason: String },
    #[error("query {query:?} answered {value}, not a CPU count")]
    NotACount { query: String, value: f64 },
    #[error("malformed answer from Prometheus at {url}: {reason}")]
    MalformedApi { url: String, reason: String },
    #[error("stopped before Prometheus answered")]
    Interrupted,
}

impl From<ClientSetupError> for PrometheusError {
    fn from(error: ClientSetupError) -> Self {
        match error {
            ClientSetupError::Url { url, reason } => PrometheusError::Url { url, reason },
            ClientSetupError::Client(e) => PrometheusError::Client(e),
        }
    }
}

impl PrometheusError {
    /// Worth asking again: Prometheus may be starting, behind on scrapes or
    /// briefly overloaded. A rejected or malformed query will not improve.
    fn is_transient(&self) -> bool {
        match self {
            PrometheusError::Request { .. } | PrometheusError::Empty { .. } => true,
            PrometheusError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Why a response could not be reduced to a number (pure part).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ReduceError {
    #[error("no series")]
    Empty,
    #[error("Prometheus error {error_type}: {message}")]
    Rejected { error_type: String, message: String },
    #[error("{0}")]
    Malformed(String),
}

/// A value with the warnings gathered while getting it. The caller decides
/// how to report them.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// Timeouts and the retry budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrometheusSettings {
    /// Whole-request timeout (connect + answer).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long failed queries (and empty ones, when nothing better is
    /// known) are retried (shared by a batch).
    pub retry_budget: Duration,
    /// Pause between attempts.
    pub retry_pause: Duration,
}

impl Default for PrometheusSettings {
    fn default() -> Self {
        PrometheusSettings {
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(10),
            retry_pause: Duration::from_millis(500),
        }
    }
}

/// Until when a request is asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Transient failures (unreachable, timeouts, 5xx, 429).
    pub failure: Instant,
    /// Empty answers: the moment from which the data the query reads can
    /// no longer change (every scrape that could add a sample is in).
    pub empty: Instant,
}

impl Deadlines {
    /// Both kinds retried for `budget` from now.
    pub fn within(budget: Duration) -> Self {
        let at = Instant::now() + budget;
        Deadlines {
            failure: at,
            empty: at,
        }
    }
}

/// What to ask.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryRequest {
    /// `/api/v1/query` at `at` (Prometheus's now when `None`).
    Instant {
        query: String,
        at: Option<SystemTime>,
    },
    /// `/api/v1/query_range` over `[start, end]` every `step`.
    Range {
        query: String,
        start: SystemTime,
        end: SystemTime,
        /// A PromQL duration or seconds.
        step: String,
    },
}

impl QueryRequest {
    pub(crate) fn query(&self) -> &str {
        match self {
            QueryRequest::Instant { query, .. } | QueryRequest::Range { query, .. } => query,
        }
    }

    /// API path and URL parameters.
    pub(crate) fn to_params(&self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            QueryRequest::Instant { query, at } => {
                let mut params = vec![("query", query.clone())];
                if let Some(at) = at {
                    params.push(("time", unix_seconds_text(*at)));
                }
                ("/api/v1/query", params)
            }
            QueryRequest::Range {
                query,
                start,
                end,
                step,
            } => (
                "/api/v1/query_range",
                vec![
                    ("query", query.clone()),
                    ("start", unix_seconds_text(*start)),
                    ("end", unix_seconds_text(*end)),
                    ("step", step.clone()),
                ],
            ),
        }
    }

    /// Reduces an answer to this request to one number.
    pub(crate) fn reduce(&self, body: &Value) -> Result<f64, ReduceError> {
        match self {
            QueryRequest::Instant { .. } => instant_sum(body),
            QueryRequest::Range { .. } => range_average(body),
        }
    }
}

/// Seconds since the epoch with millisecond precision, as Prometheus takes
/// them.
fn unix_seconds_text(at: SystemTime) -> String {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The `data.result` array of a successful answer.
fn result_series(body: &Value) -> Result<&Vec<Value>, ReduceError> {
    match body.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let text = |key: &str| {
                body.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            return Err(ReduceError::Rejected {
                error_type: text("errorType"),
                message: text("error"),
            });
        }
        _ => return Err(ReduceError::Malformed("no \"status\": \"success\"".into())),
    }
    let result = body
        .get("data")
        .and_then(|d| d.get("result"))
        .ok_or_else(|| ReduceError::Malformed("no data.result".into()))?;
    match result {
        Value::Array(series) if series.is_empty() => Err(ReduceError::Empty),
        Value::Array(series) => Ok(series),
        // A scalar answer (`data.result` = [t, "v"]) is not a vector.
        _ => Err(ReduceError::Malformed("data.result is not a vector".into())),
    }
}

/// One `[timestamp, "value"]` pair.
fn sample(pair: &Value) -> Result<(f64, f64), ReduceError> {
    let malformed = || ReduceError::Malformed(format!("sample {pair} is not [time, \"value\"]"));
    let items = pair.as_array().ok_or_else(malformed)?;
    let [t, v] = items.as_slice() else {
        return Err(malformed());
    };
    let t = t.as_f64().ok_or_else(malformed)?;
    let v = v
        .as_str()
        .and_then(parse_sample_value)
        .ok_or_else(malformed)?;
    Ok((t, v))
}

/// Prometheus writes values as Go formats them: `1.5`, `NaN`, `+Inf`, `-Inf`.
fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// An instant vector answer: the sum of its series' values.
pub(crate) fn instant_sum(body: &Value) -> Result<f64, ReduceError> {
    let mut total = 0.0;
    for series in result_series(body)? {
        let value = series
            .get("value")
            .ok_or_else(|| ReduceError::Malformed("series without \"value\"".into()))?;
        total += sample(value)?.1;
    }
    Ok(total)
}

/// A range (matrix) answer: series summed per timestamp, then the mean of
/// those sums. A series missing at some timestamp adds nothing there.
pub(crate) fn range_average(body: &Value) -> Result<f64, ReduceError> {
    // Keyed by milliseconds: Prometheus timestamps have ms precision.
    let mut per_timestamp: BTreeMap<i64, f64> = BTreeMap::new();
    for series in result_series(body)? {
        let values = series
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| ReduceError::Malformed("series without \"values\"".into()))?;
        for pair in values {
            let (t, v) = sample(pair)?;
            *per_timestamp
                .entry((t * 1000.0).round() as i64)
                .or_insert(0.0) += v;
        }
    }
    if per_timestamp.is_empty() {
        return Err(ReduceError::Empty);
    }
    let count = per_timestamp.len() as f64;
    Ok(per_timestamp.values().sum::<f64>() / count)
}

/// Talks to one Prometheus server.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    base_url: String,
    http: reqwest::Client,
    settings: PrometheusSettings,
    credentials: Option<Credentials>,
    stop: Option<Stop>,
}

impl PrometheusClient {
    /// `base_url` like `http://10.0.0.5:30411` (a trailing `/` is dropped),
    /// no credentials, system TLS roots.
    pub fn new(base_url: &str, settings: PrometheusSettings) -> Result<Self, PrometheusError> {
        Self::with_access(base_url, settings, None, &Tls::default())
    }

    /// As [`PrometheusClient::new`], with credentials and TLS settings.
    pub fn with_access(
        base_url: &str,
        settings: PrometheusSettings,
        auth: Option<&PrometheusAuth>,
        tls: &Tls,
    ) -> Result<Self, PrometheusError> {
        let (base_url, http) = http_client(
            base_url,
            settings.request_timeout,
            settings.connect_timeout,
            tls,
        )
        .map_err(PrometheusError::from)?;
        let credentials = auth.map(|auth| match auth {
            PrometheusAuth::Basic(basic) => Credentials::Basic(basic.clone()),
            PrometheusAuth::Bearer(token) => Credentials::Bearer(token.clone()),
        });
        Ok(PrometheusClient {
            base_url,
            http,
            settings,
            credentials,
            stop: None,
        })
    }

    /// Ends requests, retries and pauses as soon as `stop` fires (they
    /// return [`PrometheusError::Interrupted`]).
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = Some(stop);
        self
    }

    #[cfg(test)]
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn settings(&self) -> &PrometheusSettings {
        &self.settings
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(Stop::is_stopped)
    }

    /// Resolves when a stop is requested (never without a [`Stop`]).
    async fn stopped(&self) {
        match &self.stop {
            Some(stop) => stop.stopped().await,
            None => std::future::pending().await,
        }
    }

    /// One GET of `path` with `params`: the status and the body text.
    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(reqwest::StatusCode, String), PrometheusError> {
        let url = format!("{}{}", self.base_url, path);
        let request_error = |e: reqwest::Error| PrometheusError::Request {
            url: url.clone(),
            reason: error_chain(&e),
        };
        let exchange = async {
            let mut request = self.http.get(&url).query(params);
            if let Some(credentials) = &self.credentials {
                request = credentials.apply(request);
            }
            let response = request.send().await.map_err(request_error)?;
            let status = response.status();
            let text = response.text().await.map_err(request_error)?;
            Ok((status, text))
        };
        tokio::select! {
            answer = exchange => answer,
            () = self.stopped() => Err(PrometheusError::Interrupted),
        }
    }

    /// One attempt, no retry.
    pub async fn try_query(&self, request: &QueryRequest) -> Result<f64, PrometheusError> {
        let (path, params) = request.to_params();
        let url = format!("{}{}", self.base_url, path);
        let (status, text) = self.get(path, &params).await?;
        let query = request.query().to_string();
        match serde_json::from_str::<Value>(&text) {
            // Prometheus puts its error in a JSON body for 4xx/5xx too.
            Ok(body) => match request.reduce(&body) {
                Ok(value) => Ok(value),
                Err(ReduceError::Empty) => Err(PrometheusError::Empty { query }),
                Err(ReduceError::Rejected {
                    error_type,
                    message,
                }) => {
                    if status.is_server_error() {
                        Err(PrometheusError::Status {
                            url,
                            status: status.as_u16(),
                            body: format!("{error_type}: {message}"),
                        })
                    } else {
                        Err(PrometheusError::Rejected {
                            query,
                            error_type,
                            message,
                        })
                    }
                }
                Err(ReduceError::Malformed(reason)) if status.is_success() => {
                    Err(PrometheusError::Malformed { query, reason })
                }
                Err(ReduceError::Malformed(_)) => Err(PrometheusError::Status {
                    url,
                    status: status.as_u16(),
                    body: excerpt(&text),
                }),
            },
            Err(_) if !status.is_success() => Err(PrometheusError::Status {
                url,
                status: status.as_u16(),
                body: excerpt(&text),
            }),
            Err(e) => Err(PrometheusError::Malformed {
                query,
                reason: format!("not JSON: {e}"),
            }),
        }
    }

    /// One GET of an API path answering `{"status":"success","data":...}`:
    /// the `data` value.
    pub(crate) async fn try_api(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Value, PrometheusError> {
        let url = format!("{}{}", self.base_url, path);
        let (status, text) = self.get(path, params).await?;
        if !status.is_success() {
            return Err(PrometheusError::Status {
                url,
                status: status.as_u16(),
                body: excerpt(&text),
            });
        }
        let body: Value =
            serde_json::from_str(&text).map_err(|e| PrometheusError::MalformedApi {
                url: url.clone(),
                reason: format!("not JSON: {e}"),
            })?;
        match (body.get("status").and_then(Value::as_str), body.get("data")) {
            (Some("success"), Some(data)) => Ok(data.clone()),
            _ => Err(PrometheusError::MalformedApi {
                url,
                reason: format!("no successful data: {}", excerpt(&text)),
            }),
        }
    }

    /// Calls `attempt` until it succeeds, fails for good, or its deadline
    /// passes: failures retried until `deadlines.failure`, empty answers
    /// until `deadlines.empty` (at least one attempt; one more at the
    /// deadline itself). A stop ends it at once.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        deadlines: Deadlines,
        mut attempt: F,
    ) -> Result<T, PrometheusError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PrometheusError>>,
    {
        loop {
            if self.is_stopped() {
                return Err(PrometheusError::Interrupted);
            }
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let deadline = match &error {
                PrometheusError::Empty { .. } => deadlines.empty,
                e if e.is_transient() => deadlines.failure,
                _ => return Err(error),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(error);
            }
            let pause = self.settings.retry_pause.min(deadline - now);
            let slept = match &self.stop {
                Some(stop) => stop.sleep(pause).await,
                None => {
                    tokio::time::sleep(pause).await;
                    true
                }
            };
            if !slept {
                return Err(PrometheusError::Interrupted);
            }
        }
    }

    /// [`PrometheusClient::try_query`] retried within `deadlines`.
    pub async fn query_until(
        &self,
        request: &QueryRequest,
        deadlines: Deadlines,
    ) -> Result<f64, PrometheusError> {
        self.retry(deadlines, || self.try_query(request)).await
    }

    /// Retries within `deadlines`, then NaN with a warning naming `label`.
    /// A stop gives NaN without a warning: the caller drops the reading.
    pub(crate) async fn measure_until(
        &self,
        label: &str,
        request: &QueryRequest,
        deadlines: Deadlines,
    ) -> Measured<f64> {
        match self.query_until(request, deadlines).await {
            Ok(value) => Measured {
                value,
                warnings: Vec::new(),
            },
            Err(PrometheusError::Interrupted) => Measured {
                value: f64::NAN,
                warnings: Vec::new(),
            },
            Err(e) => Measured {
                value: f64::NAN,
                warnings: vec![format!(
                    "prometheus query {label} gave no value, using NaN: {e}"
                )],
            },
        }
    }

    /// Instant query with the full retry budget; NaN and a warning on failure.
    pub async fn instant(&self, query: &str, at: Option<SystemTime>) -> Measured<f64> {
        let request = QueryRequest::Instant {
            query: query.to_string(),
            at,
        };
        let deadlines = Deadlines::within(self.settings.retry_budget);
        self.measure_until(query, &request, deadlines).await
    }

    /// Range query (series summed per timestamp, averaged over time) with
    /// the full retry budget; NaN and a warning on failure.
    pub async fn range(
        &self,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: &str,
    ) -> Measured<f64> {
        let request = QueryRequest::Range {
            query: query.to_string(),
            start,
            end,
            step: step.to_string(),
        };
        let deadlines = Deadlines::within(self.settings.retry_budget);
        self.measure_until(query, &request, deadlines).await
    }
}

fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    match trimmed.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instant_sums_series() {
        let body = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"cpu":"0"},"value":[1700000000.5,"1.5"]},
            {"metric":{"cpu":"1"},"value":[1700000000.5,"2.25"]}
        ]}});
        assert_eq!(instant_sum(&body), Ok(3.75));
    }

    #[test]
    fn range_sums_per_timestamp_then_averages() {
        // t=10: 1+3=4, t=20: 2+5=7, t=30: 6 (second series absent) -> 17/3
        let body = json!({"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"1"},"values":[[10,"1"],[20,"2"],[30,"6"]]},
            {"metric":{"a":"2"},"values":[[10,"3"],[20.0,"5"]]}
        ]}});
        let avg = range_average(&body).unwrap();
        assert!((avg - 17.0 / 3.0).abs() < 1e-12, "{avg}");
    }

    #[test]
    fn single_series_range_is_its_mean() {
        let body = json!({"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1.001,"10"],[1.002,"20"],[1.003,"30"],[1.004,"40"]]}
        ]}});
        assert_eq!(range_average(&body), Ok(25.0));
    }

    #[test]
    fn empty_and_error_answers() {
        let empty = json!({"status":"success","data":{"resultType":"vector","result":[]}});
        assert_eq!(instant_sum(&empty), Err(ReduceError::Empty));
        assert_eq!(range_average(&empty), Err(ReduceError::Empty));
        let no_samples = json!({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[]}]}});
        assert_eq!(range_average(&no_samples), Err(ReduceError::Empty));

        let error =
            json!({"status":"error","errorType":"bad_data","error":"parse error at char 3"});
        assert_eq!(
            instant_sum(&error),
            Err(ReduceError::Rejected {
                error_type: "bad_data".into(),
                message: "parse error at char 3".into()
            })
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for body in [
            json!({}),
            json!({"status":"success"}),
            json!({"status":"success","data":{"result":[{"value":[1]}]}}),
            json!({"status":"success","data":{"result":[{"value":[1,"x"]}]}}),
            json!({"status":"success","data":{"result":[{"value":[1,2]}]}}),
            json!({"status":"success","data":{"result":[1,"2"]}}),
            json!({"status":"success","data":{"result":[{"metric":{}}]}}),
        ] {
            assert!(
                matches!(instant_sum(&body), Err(ReduceError::Malformed(_))),
                "{body}"
            );
        }
        let bad_range = json!({"status":"success","data":{"result":[{"values":[[1,"1"],"2"]}]}});
        assert!(matches!(
            range_average(&bad_range),
            Err(ReduceError::Malformed(_))
        ));
    }

    #[test]
    fn go_float_spellings() {
        let body = json!({"status":"success","data":{"result":[{"value":[1,"+Inf"]}]}});
        assert_eq!(instant_sum(&body), Ok(f64::INFINITY));
        let body = json!({"status":"success","data":{"result":[{"value":[1,"NaN"]}]}});
        assert!(instant_sum(&body).unwrap().is_nan());
        assert_eq!(parse_sample_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_sample_value("1e3"), Some(1000.0));
    }

    #[test]
    fn request_parameters() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let (path, params) = QueryRequest::Instant {
            query: "up".into(),
            at: Some(at),
        }
        .to_params();
        assert_eq!(path, "/api/v1/query");
        assert_eq!(
            params,
            vec![
                ("query", "up".to_string()),
                ("time", "1700000000.123".to_string())
            ]
        );
        let (path, params) = QueryRequest::Range {
            query: "up".into(),
            start: UNIX_EPOCH + Duration::from_millis(5),
            end: UNIX_EPOCH + Duration::from_secs(30),
            step: "10s".into(),
        }
        .to_params();
        assert_eq!(path, "/api/v1/query_range");
        assert_eq!(
            params,
            vec![
                ("query", "up".to_string()),
                ("start", "0.005".to_string()),
                ("end", "30.000".to_string()),
                ("step", "10s".to_string())
            ]
        );
    }

    /// Answers every connection with an empty vector; keeps request heads.
    async fn serve_empty() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        crate::metrics::http::serve_for_tests(
            "200 OK",
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .await
    }

    #[tokio::test]
    async fn bearer_token_goes_in_the_authorization_header_and_nowhere_else() {
        let (url, heads) = serve_empty().await;
        let token = PrometheusAuth::Bearer(crate::config::Secret::new("t0ken-s3cret"));
        let client = PrometheusClient::with_access(
            &url,
            PrometheusSettings::default(),
            Some(&token),
            &Tls::default(),
        )
        .unwrap();
        let err = client
            .query_until(
                &QueryRequest::Instant {
                    query: "up".into(),
                    at: None,
                },
                Deadlines::within(Duration::ZERO),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PrometheusError::Empty { .. }), "{err}");
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1, "a zero budget asks once");
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains("authorization: bearer t0ken-s3cret"),
            "{}",
            heads[0]
        );
        assert!(!format!("{client:?}").contains("s3cret"));
        assert!(!err.to_string().contains("s3cret"));
    }

    #[tokio::test]
    async fn empty_answers_are_retried_until_their_own_deadline_only() {
        let (url, heads) = serve_empty().await;
        let client = PrometheusClient::new(&url, PrometheusSettings::default()).unwrap();
        let now = Instant::now();
        let deadlines = Deadlines {
            failure: now + Duration::from_secs(60),
            empty: now + Duration::from_millis(1200),
        };
        let request = QueryRequest::Instant {
            query: "up".into(),
            at: None,
        };
        let err = client.query_until(&request, deadlines).await.unwrap_err();
        assert!(matches!(err, PrometheusError::Empty { .. }), "{err}");
        // At 0, 0.5, 1.0 s and once more at the 1.2 s deadline.
        assert_eq!(heads.lock().unwrap().len(), 4);
    }

    #[test]
    fn http_and_https_urls() {
        let settings = PrometheusSettings::default();
        assert!(PrometheusClient::new("http://127.0.0.1:9090/", settings).is_ok());
        assert_eq!(
            PrometheusClient::new("http://127.0.0.1:9090/", settings)
                .unwrap()
                .base_url(),
            "http://127.0.0.1:9090"
        );
        assert!(PrometheusClient::new("https://127.0.0.1:9090", settings).is_ok());
        assert!(matches!(
            PrometheusClient::new("ftp://127.0.0.1:9090", settings),
            Err(PrometheusError::Url { .. })
        ));
        assert!(matches!(
            PrometheusClient::new("not a url", settings),
            Err(PrometheusError::Url { .. })
        ));
    }
}
