//! Command-line flags and the run loop of the binary: parse, bind, serve
//! until SIGINT/SIGTERM, write the truth file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use crate::functions::{load_file, parse_spec};
use crate::scaling::ScalingRule;
use crate::server::{serve, Credentials, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "dfaas-test-gateway",
    version,
    about = "OpenFaaS-shaped test gateway for lb-dfaas"
)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Functions as name=work_ms[:workers[:queue[:wait]]][,...] (`wait`:
    /// the worker waits work_ms instead of burning CPU).
    #[arg(
        long,
        required_unless_present = "functions_file",
        conflicts_with = "functions_file"
    )]
    pub functions: Option<String>,
    /// JSON list of {"name","work_ms","workers"?,"queue"?,"wait"?} instead of --functions.
    #[arg(long)]
    pub functions_file: Option<PathBuf>,
    /// Calls allowed to wait for a worker, per function (unless its spec says otherwise).
    #[arg(long, default_value_t = 32)]
    pub queue_capacity: usize,
    /// Longest wait for a worker before answering 503, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub queue_timeout_ms: u64,
    /// Concurrent calls one replica carries (replica rule).
    #[arg(long, default_value_t = 2)]
    pub replica_target_concurrency: u32,
    /// Most replicas a function reports.
    #[arg(long, default_value_t = 20)]
    pub max_replicas: u32,
    /// How long a load peak keeps its replicas, in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    pub scale_window_ms: u64,
    /// Basic auth required on /system/* as user:password.
    #[arg(long, env = "GATEWAY_BASIC_AUTH", hide_env_values = true)]
    pub basic_auth: Option<Credentials>,
    /// On shutdown, write the final /truth JSON to this file.
    #[arg(long)]
    pub truth_file: Option<PathBuf>,
}

impl Args {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let functions = match (&self.functions, &self.functions_file) {
            (Some(spec), _) => parse_spec(spec).context("--functions")?,
            (None, Some(path)) => load_file(path).context("--functions-file")?,
            (None, None) => anyhow::bail!("one of --functions or --functions-file is required"),
        };
        Ok(Settings {
            functions,
            rule: ScalingRule {
                target_concurrency_per_replica: self.replica_target_concurrency.max(1),
                min_replicas: 1,
                max_replicas: self.max_replicas.max(1),
            },
            queue_capacity: self.queue_capacity,
            queue_timeout: Duration::from_millis(self.queue_timeout_ms),
            scale_tick: Duration::from_millis(250),
            scale_window: Duration::from_millis(self.scale_window_ms),
            basic_auth: self.basic_auth.clone(),
        })
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    // One line on stdout so scripts and tests learn the port.
    println!("dfaas-test-gateway listening on http://{bound}");
    let registry = serve(listener, &settings, shutdown_signal())
        .await
        .context("serving")?;
    if let Some(path) = &args.truth_file {
        let json = serde_json::to_string_pretty(&registry.truth()).context("encoding truth")?;
        std::fs::write(path, json)
            .with_context(|| format!("writing truth file {}", path.display()))?;
    }
    Ok(())
}
