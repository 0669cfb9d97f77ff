//! The HTTP face of the gateway, in OpenFaaS's shape:
//!
//! - `GET|POST|… /function/<name>[/…]` — one call: queue for a worker, burn
//!   the function's CPU time, answer 200; 429 when the queue is full, 503
//!   when the wait for a worker times out, 404 for an unknown function;
//! - `GET /system/functions`, `GET /system/function/<name>` — function
//!   status with replicas (optional basic auth, as OpenFaaS);
//! - `GET /metrics` — Prometheus text (see [`crate::exposition`]);
//! - `GET /truth`, `POST /truth/reset` — the resettable ground truth;
//! - `GET /healthz`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::functions::FunctionSpec;
use crate::pool::Rejected;
use crate::scaling::ScalingRule;
use crate::state::{Function, Registry, Ticket};
use crate::work::burn_cpu;

/// Basic-auth credentials for `/system/*`. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: (redacted) }}",
            self.user
        )
    }
}

impl std::str::FromStr for Credentials {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err("expected user:password with a non-empty user".to_owned()),
        }
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub functions: Vec<FunctionSpec>,
    pub rule: ScalingRule,
    /// Calls allowed to wait per function unless its spec says otherwise.
    pub queue_capacity: usize,
    pub queue_timeout: Duration,
    /// Sampling period of the replica rule.
    pub scale_tick: Duration,
    /// How long a load peak keeps its replicas.
    pub scale_window: Duration,
    pub basic_auth: Option<Credentials>,
}

struct App {
    registry: Arc<Registry>,
    basic_auth: Option<Credentials>,
}

/// Builds the router and the registry behind it. The replica rule's
/// ticker is not started here; [`serve`] starts it.
pub fn router(settings: &Settings) -> (Router, Arc<Registry>) {
    let tick_ms = settings.scale_tick.as_millis().max(1);
    let window_len =
        usize::try_from(settings.scale_window.as_millis().div_ceil(tick_ms)).unwrap_or(1);
    let registry = Arc::new(Registry::new(
        settings.functions.clone(),
        settings.rule,
        settings.queue_capacity,
        settings.queue_timeout,
        window_len.max(1),
    ));
    let app = Arc::new(App {
        registry: Arc::clone(&registry),
        basic_auth: settings.basic_auth.clone(),
    });
    let router = Router::new()
        .route("/function/{name}", any(invoke))
        .route("/function/{name}/", any(invoke))
        .route("/function/{name}/{*rest}", any(invoke))
        .route("/system/functions", get(list_functions))
        .route("/system/function/{name}", get(one_function))
        .route("/metrics", get(metrics))
        .route("/truth", get(truth))
        .route("/truth/reset", post(reset_truth))
        .route("/healthz", get(|| async { "OK" }))
        .with_state(app);
    (router, registry)
}

/// Serves until `shutdown` resolves; returns the registry so the caller can
/// read the final truth.
pub async fn serve(
    listener: TcpListener,
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Arc<Registry>> {
    let (router, registry) = router(settings);
    let ticker = tokio::spawn({
        let registry = Arc::clone(&registry);
        let period = settings.scale_tick.max(Duration::from_millis(1));
        async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                registry.tick();
            }
        }
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    ticker.abort();
    served.map(|()| registry)
}

/// Counts the call as abandoned unless it was answered.
struct Answer<'a> {
    registry: &'a Registry,
    function: &'a Function,
    ticket: Ticket,
    answered: bool,
}

impl Answer<'_> {
    fn answer(mut self, code: StatusCode, body: String) -> Response {
        self.answered = true;
        self.registry
            .answered(self.function, self.ticket, code.as_u16());
        (code, body).into_response()
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.registry.abandoned(self.function, self.ticket);
        }
    }
}

async fn invoke(
    State(app): State<Arc<App>>,
    Path(params): Path<HashMap<String, String>>,
    _body: Bytes,
) -> Response {
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    let Some(function) = app.registry.get(name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("function '{name}' not found\n"),
        )
            .into_response();
    };
    let function = Arc::clone(function);
    let ticket = app.registry.received(&function);
    let answer = Answer {
        registry: &app.registry,
        function: &function,
        ticket,
        answered: false,
    };
    let in_system = function.enter();
    match function.pool.admit().await {
        Err(Rejected::QueueFull) => answer.answer(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{name}: queue full\n"),
        ),
        Err(Rejected::QueueTimeout) => answer.answer(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name}: timed out waiting for a worker\n"),
        ),
        Ok(permit) if function.spec.wait => {
            // An I/O-bound call: the worker is busy, the CPU is not. A task
            // of its own, so that the worker stays busy if the client goes.
            let work = Duration::from_millis(function.spec.work_ms);
            let done = tokio::spawn(async move {
                tokio::time::sleep(work).await;
                drop(permit);
                drop(in_system);
            })
            .await;
            match done {
                Ok(()) => answer.answer(StatusCode::OK, format!("{name}: done\n")),
                Err(_) => answer.answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{name}: worker failed\n"),
                ),
            }
        }
        Ok(permit) => {
            let work = Duration::from_millis(function.spec.work_ms);
            let worker = Arc::clone(&function);
            // The permit and the in-system mark travel with the work: if the
            // client goes away, the worker stays busy until the work is done.
            let done = tokio::task::spawn_blocking(move || {
                let used = burn_cpu(work);
                worker.add_cpu(used);
                drop(permit);
                drop(in_system);
            })
            .await;
            match done {
                Ok(()) => answer.answer(StatusCode::OK, format!("{name}: done\n")),
                Err(_) => answer.answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{name}: worker failed\n"),
                ),
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionStatus {
    name: String,
    image: String,
    namespace: &'static str,
    replicas: u32,
    available_replicas: u32,
    invocation_count: u64,
}

fn status(function: &Function) -> FunctionStatus {
    let snap = function.snapshot();
    FunctionStatus {
        image: format!("dfaas-test/{}:latest", snap.name),
        name: snap.name,
        namespace: "openfaas-fn",
        replicas: snap.replicas,
        available_replicas: snap.replicas,
        invocation_count: snap.responses_total.values().sum(),
    }
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(expected) = &app.basic_auth else {
        return true;
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let wanted = format!("{}:{}", expected.user, expected.password);
    constant_time_eq(&decoded, wanted.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"Restricted\"")],
        "unauthorized\n",
    )
        .into_response()
}

async fn list_functions(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    let list: Vec<FunctionStatus> = app.registry.functions().map(|f| status(f)).collect();
    Json(list).into_response()
}

async fn one_function(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    match app.registry.get(&name) {
        Some(f) => Json(status(f)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("function '{name}' not found\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::exposition::render(&app.registry.snapshots()),
    )
        .into_response()
}

async fn truth(State(app): State<Arc<App>>) -> Response {
    Json(app.registry.truth()).into_response()
}

async fn reset_truth(State(app): State<Arc<App>>) -> Response {
    app.registry.reset_truth();
    Json(app.registry.truth()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_redact() {
        let c: Credentials = "admin:s3:cret".parse().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("admin", "s3:cret"));
        assert!(!format!("{c:?}").contains("s3:cret"));
        assert!(":pw".parse::<Credentials>().is_err());
        assert!("nocolon".parse::<Credentials>().is_err());
    }

    #[test]
    fn basic_auth_check() {
        let app = App {
            registry: Arc::new(Registry::new(
                vec![],
                ScalingRule::default(),
                1,
                Duration::from_secs(1),
                1,
            )),
            basic_auth: Some("admin:pw".parse().unwrap()),
        };
        let mut headers = HeaderMap::new();
        assert!(!authorized(&app, &headers));
        let good = base64::engine::general_purpose::STANDARD.encode("admin:pw");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {good}").parse().unwrap(),
        );
        assert!(authorized(&app, &headers));
        let bad = base64::engine::general_purpose::STANDARD.encode("admin:px");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {bad}").parse().unwrap(),
        );
        assert!(!authorized(&app, &headers));
    }
}
