//! The testbed instance to measure against, from the variables
//! `testbed/testbed.sh env ID` prints (exported by `scripts/bench.sh`),
//! plus the gateway truth endpoints and the k6 target the runner needs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use lb_dfaas::config::K6Host;
use lb_dfaas::k6::runner::{HostKeyCheck, RunnerOptions};
use lb_dfaas::metrics::gateway::GatewayClient;
use serde::Deserialize;

/// Connection facts of one testbed instance.
#[derive(Debug, Clone)]
pub struct Testbed {
    pub id: String,
    pub k6_host: String,
    pub k6_port: u16,
    pub k6_user: String,
    pub k6_ssh_key: PathBuf,
    pub k6_known_hosts: PathBuf,
    /// Directory whose `bin/k6` is the k6 that ssh sessions run.
    pub k6_state_dir: PathBuf,
    /// The gateway as k6 in the namespace reaches it.
    pub gateway_url: String,
    /// The gateway for `/truth` and `/system/functions`.
    pub gateway_admin_url: String,
    pub prometheus_url: String,
    /// `TESTBED_FUNCTIONS` the instance was started with (for the report).
    pub functions_spec: String,
    http: reqwest::Client,
}

/// The gateway's ground truth for one function since the last reset.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Truth {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub abandoned: u64,
}

impl Testbed {
    /// The instance described by the environment, or `None` when
    /// `TESTBED_ID` is not set (the testbed sections are then skipped).
    pub fn from_env() -> Result<Option<Testbed>> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let Some(id) = vars.get("TESTBED_ID").cloned() else {
            return Ok(None);
        };
        let var = |name: &str| {
            vars.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| anyhow!("TESTBED_ID is set but {name} is not"))
        };
        let k6_port = var("K6_PORT")?
            .parse()
            .with_context(|| format!("K6_PORT {:?} is not a port", vars.get("K6_PORT")))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Some(Testbed {
            id,
            k6_host: var("K6_HOST")?,
            k6_port,
            k6_user: var("K6_USER")?,
            k6_ssh_key: PathBuf::from(var("K6_SSH_KEY")?),
            k6_known_hosts: PathBuf::from(var("K6_KNOWN_HOSTS")?),
            k6_state_dir: PathBuf::from(var("K6HOST_STATE_DIR")?),
            gateway_url: var("GATEWAY_URL")?,
            gateway_admin_url: var("GATEWAY_ADMIN_URL")?,
            prometheus_url: var("PROMETHEUS_URL")?,
            functions_spec: vars
                .get("TESTBED_FUNCTIONS")
                .cloned()
                .unwrap_or_else(|| "(testbed default)".to_string()),
            http,
        }))
    }

    /// The same testbed with the k6 host that `testbed/k6host.sh env`
    /// printed under `prefix` (e.g. `RC_K6_HOST`), `None` when it is not
    /// set: scripts/bench.sh starts one whose root shell runs `~/.bashrc`.
    pub fn with_k6_host_from(&self, prefix: &str) -> Result<Option<Testbed>> {
        let var = |name: &str| {
            std::env::var(format!("{prefix}{name}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let Some(host) = var("K6_HOST") else {
            return Ok(None);
        };
        let need = |name: &str| {
            var(name).ok_or_else(|| anyhow!("{prefix}K6_HOST is set but {prefix}{name} is not"))
        };
        let mut other = self.clone();
        other.k6_host = host;
        other.k6_port = need("K6_PORT")?.parse().context("the k6 port")?;
        other.k6_user = need("K6_USER")?;
        other.k6_ssh_key = PathBuf::from(need("K6_SSH_KEY")?);
        other.k6_known_hosts = PathBuf::from(need("K6_KNOWN_HOSTS")?);
        other.k6_state_dir = PathBuf::from(need("K6HOST_STATE_DIR")?);
        Ok(Some(other))
    }

    /// The k6 target of [`lb_dfaas::k6::runner::K6Runner`], workspaces
    /// under `workspace_root` (the namespace shares this file system).
    pub fn k6_target(&self, workspace_root: &str) -> K6Host {
        K6Host {
            host: self.k6_host.clone(),
            user: self.k6_user.clone(),
            ssh_key: self.k6_ssh_key.clone(),
            port: self.k6_port,
            workspace_root: workspace_root.to_string(),
            known_hosts_file: Some(self.k6_known_hosts.clone()),
            outputs: Vec::new(),
            tags: BTreeMap::new(),
            log_stream: false,
            reconnect_within: Duration::from_secs(60),
        }
    }

    /// The runner settings a campaign uses, with the testbed's known_hosts
    /// checked strictly.
    pub fn runner_options(&self) -> RunnerOptions {
        RunnerOptions {
            known_hosts_file: Some(self.k6_known_hosts.clone()),
            host_key_check: HostKeyCheck::Strict,
            // The testbed's own k6, not whatever a login shell's start-up
            // files put first on PATH (a pyenv shim, here).
            k6_command: self.k6_binary().display().to_string(),
            ..RunnerOptions::default()
        }
    }

    /// `user@host` for ssh.
    pub fn ssh_destination(&self) -> String {
        format!("{}@{}", self.k6_user, self.k6_host)
    }

    /// The k6 binary ssh sessions on the k6 host run.
    pub fn k6_binary(&self) -> PathBuf {
        self.k6_state_dir.join("bin").join("k6")
    }

    /// Fails unless the gateway serves every function in `names` (a
    /// function it does not know would get only 404s, and its metrics
    /// queries would retry for their whole budget).
    pub async fn require_functions(&self, names: &[&str]) -> Result<()> {
        let gateway = GatewayClient::new(&self.gateway_admin_url, None)?;
        let replicas = gateway.replicas().await?;
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !replicas.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            bail!(
                "the gateway at {} does not serve {missing:?} (it serves {:?}); start the testbed with \
                 TESTBED_FUNCTIONS like fast=0:64:4096,slow=20:2:32 (scripts/bench.sh does)",
                self.gateway_admin_url,
                replicas.keys().collect::<Vec<_>>()
            );
        }
        Ok(())
    }

    pub async fn reset_truth(&self) -> Result<()> {
        let url = format!("{}/truth/reset", self.gateway_admin_url);
        let response = self
            .http
            .post(&url)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("POST {url}: status {}", response.status());
        }
        Ok(())
    }

    /// The truth of `function` (zeros when the gateway has not seen it).
    pub async fn truth(&self, function: &str) -> Result<Truth> {
        let url = format!("{}/truth", self.gateway_admin_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !response.status().is_success() {
            bail!("GET {url}: status {}", response.status());
        }
        let all: BTreeMap<String, Truth> = response
            .json()
            .await
            .with_context(|| format!("GET {url}: not a truth document"))?;
        Ok(all.get(function).copied().unwrap_or_default())
    }
}
