//! `lb-dfaas serve`: the control API, its WebSocket and the dashboard.
//!
//! One process (axum on tokio) that keeps a job configuration, runs one
//! job at a time — a DFaaS campaign exactly as `lb-dfaas run` runs it, or
//! a suite of k6 scripts over the same SSH runner — and reports status,
//! log and results while it runs:
//!
//! - [`api`]: routes, body and query parsing, the WebSocket;
//! - [`auth`]: the bearer token and the browser guard;
//! - [`state`]: the state directory and the persisted configuration;
//! - [`jobs`]: the job slot, job directories, the campaign job;
//! - [`suite`]: the script suite (config, script names, the run);
//! - [`hub`]: status, log ring and WebSocket fan-out in one place;
//! - [`status`], [`logs`], [`results`]: the documents the API returns;
//! - [`dashboard`]: the page at `/`, embedded in the binary.
//!
//! The campaign does not know about any of this: the server subscribes to
//! its progress like the `LB_EVENT` writer does ([`hub::HubObserver`]).
//! A SIGTERM or SIGINT to the server stops a running job the way `POST
//! stop` does, waits for it to end, closes the WebSockets and exits 0.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod hub;
pub mod jobs;
pub mod logs;
pub mod results;
pub mod state;
pub mod status;
pub mod suite;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::events::Level;
use crate::report::CommandError;
use auth::{Guard, Token};
use hub::Hub;
use jobs::{JobDir, Jobs};
use state::{StateDir, StoredConfig};
use status::{JobState, Tracked};
use suite::ScriptsDir;

/// Where `serve` listens unless told.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// `lb-dfaas serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT (port 0 picks a free one). Anything
    /// but a loopback address needs --token-file.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Where the configuration, the jobs' outputs and the logs are kept.
    #[arg(long, value_name = "DIR", default_value = "lb-dfaas-serve")]
    pub state_dir: PathBuf,
    /// File holding the bearer token every API request must carry
    /// (16-512 characters of [A-Za-z0-9._~-], e.g. `openssl rand -hex 32`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Directory the suite's scripts are taken from, by name (default:
    /// STATE_DIR/scripts).
    #[arg(long, value_name = "DIR")]
    pub scripts_dir: Option<PathBuf>,
    /// A web origin (`https://host[:port]`) whose pages may call the API
    /// (CORS). Repeatable. None by default: only the server's own page.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
}

/// Everything the handlers share.
pub(crate) struct Server {
    pub state: StateDir,
    pub scripts: ScriptsDir,
    pub hub: Arc<Hub>,
    config: Mutex<StoredConfig>,
    /// Serialises configuration updates.
    pub config_writer: tokio::sync::Mutex<()>,
    pub jobs: Jobs,
    pub token: Option<Token>,
    pub guard: Guard,
    pub ws_clients: AtomicUsize,
    /// `true` once the server shuts down (WebSocket clients are closed).
    pub shutdown: watch::Sender<bool>,
}

impl Server {
    /// Opens the state directory (its configuration, its log files) and
    /// the scripts directory.
    pub(crate) fn open(
        state_dir: &std::path::Path,
        scripts_dir: Option<&std::path::Path>,
        token: Option<Token>,
        guard: Guard,
    ) -> Result<Self, CommandError> {
        let state = StateDir::open(state_dir)
            .map_err(|e| CommandError::input("--state-dir", e.to_string()))?;
        let config = state
            .load_config()
            .map_err(|e| CommandError::input("--state-dir", e.to_string()))?;
        let scripts_path = scripts_dir.map_or_else(|| state.default_scripts(), PathBuf::from);
        let scripts = ScriptsDir::open(&scripts_path).map_err(|e| {
            CommandError::input("--scripts-dir", format!("{}: {e}", scripts_path.display()))
        })?;
        let files = logs::LogFiles::start(&state.logs()).map_err(|e| {
            CommandError::input(
                "--state-dir",
                format!("cannot write {}: {e}", state.logs().display()),
            )
        })?;
        let last_job = close_interrupted_job(&state);
        let tracked = Tracked {
            last_job_id: last_job,
            ..Tracked::default()
        };
        Ok(Server {
            state,
            scripts,
            hub: Arc::new(Hub::new(Some(files), tracked)),
            config: Mutex::new(config),
            config_writer: tokio::sync::Mutex::new(()),
            jobs: Jobs::default(),
            token,
            guard,
            ws_clients: AtomicUsize::new(0),
            shutdown: watch::channel(false).0,
        })
    }

    /// The stored configuration.
    pub(crate) fn stored_config(&self) -> StoredConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_config(&self, config: StoredConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }
}

/// The last job, if any; a job the previous server left `running` (it was
/// killed) is recorded as failed.
fn close_interrupted_job(state: &StateDir) -> Option<String> {
    let job = JobDir::latest(&state.jobs())?;
    if let Some(mut record) = job.record() {
        if record.state.is_active() {
            record.state = JobState::Failed;
            record.last_error = Some("the server ended while the job ran".into());
            if let Ok(text) = serde_json::to_vec_pretty(&record) {
                let _ = crate::output::artifact::write_atomic(&job.record_file(), &text);
            }
        }
    }
    Some(job.id)
}

/// Checked flags: the address, the token, the guard.
fn listen_settings(args: &ServeArgs) -> Result<(SocketAddr, Option<Token>, Guard), CommandError> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        CommandError::input(
            "--listen",
            format!(
                "{:?} is not IP:PORT (e.g. 127.0.0.1:7070 or [::1]:7070)",
                args.listen
            ),
        )
    })?;
    let token = match &args.token_file {
        Some(path) => Some(Token::read(path).map_err(|e| CommandError::input("--token-file", e))?),
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(CommandError::input(
            "--listen",
            format!(
                "{addr} is not a loopback address: give --token-file so that the API is not open to the network"
            ),
        ));
    }
    for origin in &args.cors_origins {
        let well_formed = (origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && origin.bytes().all(|b| b.is_ascii_graphic());
        if !well_formed {
            return Err(CommandError::input(
                "--cors-origin",
                format!("{origin:?} must be scheme://host[:port], e.g. https://dash.example"),
            ));
        }
    }
    let guard = Guard {
        allowed_origins: args.cors_origins.clone(),
        loopback_hosts_only: token.is_none(),
    };
    Ok((addr, token, guard))
}

/// `lb-dfaas serve`: serves until SIGTERM or SIGINT.
pub(crate) fn run(args: &ServeArgs) -> Result<(), CommandError> {
    let (addr, token, guard) = listen_settings(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::Internal(format!("cannot start the async runtime: {e}")))?;
    let served = runtime.block_on(async {
        let server = Arc::new(Server::open(
            &args.state_dir,
            args.scripts_dir.as_deref(),
            token,
            guard,
        )?);
        serve(server, addr).await
    });
    // A job that did not end within the shutdown wait is not waited for
    // again (dropping the runtime would wait for its thread).
    runtime.shutdown_timeout(Duration::from_secs(5));
    served
}

async fn serve(server: Arc<Server>, addr: SocketAddr) -> Result<(), CommandError> {
    let listener =
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CommandError::Environment {
                message: format!("cannot listen on {addr}: {e}"),
                context: json!({"listen": addr.to_string()}),
            })?;
    let bound = listener
        .local_addr()
        .map_err(|e| CommandError::Internal(format!("the listener has no address: {e}")))?;
    announce(&server, bound);
    let app = api::router(Arc::clone(&server));
    let on_signal = {
        let server = Arc::clone(&server);
        async move {
            crate::stop::wait_for_signal().await;
            tracing::info!("serve: stopping (signal)");
            server
                .hub
                .log(Level::Info, "server_stopping", "the server is stopping");
            server.jobs.stop_and_wait(&server.hub).await;
            server.shutdown.send_replace(true);
        }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(on_signal)
        .await;
    // WebSocket clients got a close frame; give them a moment to go.
    for _ in 0..40 {
        if server.ws_clients.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.hub.close_files();
    served.map_err(|e| CommandError::Internal(format!("the server failed: {e}")))
}

/// The one line on stdout: where the server listens (a test or a script
/// reads the port from it when it asked for port 0).
fn announce(server: &Server, bound: SocketAddr) {
    let line = json!({
        "listening": format!("http://{bound}"),
        "state_dir": server.state.root(),
        "scripts_dir": server.scripts.path(),
        "token_required": server.token.is_some(),
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    tracing::info!(
        "serve: listening on http://{bound} (state in {}, token {})",
        server.state.root().display(),
        if server.token.is_some() {
            "required"
        } else {
            "not required: loopback only"
        }
    );
    server.hub.log(
        Level::Info,
        "server_started",
        &format!("listening on http://{bound}"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, token_file: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            listen: listen.into(),
            state_dir: PathBuf::from("unused"),
            token_file,
            scripts_dir: None,
            cors_origins: Vec::new(),
        }
    }

    #[test]
    fn a_network_address_needs_a_token() {
        assert!(listen_settings(&args("127.0.0.1:0", None)).is_ok());
        assert!(listen_settings(&args("[::1]:0", None)).is_ok());
        let error = listen_settings(&args("0.0.0.0:7070", None)).unwrap_err();
        assert!(
            matches!(&error, CommandError::Input { field, .. } if field == "--listen"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
        let (_, token, guard) = listen_settings(&args("0.0.0.0:7070", Some(file))).unwrap();
        assert!(token.is_some());
        assert!(!guard.loopback_hosts_only);
        let error = listen_settings(&args("localhost:80", None)).unwrap_err();
        assert!(error.to_string().contains("IP:PORT"), "{error}");
    }

    #[test]
    fn cors_origins_are_checked() {
        let mut a = args("127.0.0.1:0", None);
        a.cors_origins = vec!["https://dash.example:8443".into()];
        assert!(listen_settings(&a).is_ok());
        a.cors_origins = vec!["*".into()];
        assert!(listen_settings(&a).is_err());
    }
}
