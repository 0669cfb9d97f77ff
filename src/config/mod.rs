//! The campaign configuration, in two stages.
//!
//! `raw` mirrors the JSON/YAML that lb sends (lb's `dfaas` plugin field
//! names and defaults, unknown fields tolerated with a warning);
//! `validate` turns it into [`Config`], which cannot be invalid: later code
//! never re-checks a field. This module owns config loading (request,
//! `--config FILE`, `config_path`, deep merge of `common` + `plugins.dfaas`)
//! and never touches the network.
//!
//! A request may hold lb's `peva_faas` config instead (its `plugin`):
//! `plugin` has what differs — the `plugins.peva_faas` section, the
//! defaults (`k6_host` `local`), the fields only peva_faas has.
//!
//! Entry points: [`load_request`] (a request envelope, as lb sends it),
//! [`load_file`] (`--config FILE`), [`json_schema`] (for `describe`).
//! Errors name the field (`functions[1].name`) and the reason, and list
//! every problem found, not just the first.

mod endpoint;
mod name;
mod plugin;
mod python_random;
mod rates;
pub mod raw;
mod source;
mod validate;

pub use name::{is_path_segment, FunctionName, NameError, PATH_SEGMENT_RULE};
pub(crate) use plugin::default_output_dir;
pub use plugin::LOCAL_K6_HOST;
pub(crate) use validate::parse_k6_duration;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{Context, Plugin, Request};
use raw::RawConfig;

/// A validated campaign configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The lb plugin whose config this was (the k6 `workload` tag and the
    /// default output directory follow it).
    pub plugin: Plugin,
    pub k6: K6Host,
    /// Several generators (`k6_hosts`), each running its share of every
    /// configuration; empty: `k6` is the one generator.
    pub k6_hosts: Vec<K6Host>,
    /// When a generator counts as saturated.
    pub saturation: Saturation,
    /// Base URL of the OpenFaaS gateway, `{host.address}` already resolved,
    /// without a trailing slash (e.g. `http://10.0.0.5:31112`).
    pub gateway_url: String,
    /// Base URL of Prometheus, resolved like `gateway_url`, no trailing slash.
    pub prometheus_url: String,
    /// Optional basic-auth credentials for the gateway's `/system/functions`.
    pub openfaas_auth: Option<BasicAuth>,
    /// Optional credentials for Prometheus's HTTP API.
    pub prometheus_auth: Option<PrometheusAuth>,
    /// How `https` endpoints (gateway and Prometheus) are verified.
    pub tls: Tls,
    /// Functions, sorted by name, names unique.
    pub functions: Vec<FunctionSpec>,
    /// The rate ladder produced by the rate strategy: sorted, deduplicated.
    pub rates: Vec<u64>,
    /// Human description of the strategy that produced `rates`.
    pub rate_strategy: RateStrategy,
    pub combinations: Combinations,
    /// k6 scenario duration.
    pub duration: Duration,
    /// The duration as the user wrote it (`30s`), passed to k6 unchanged.
    pub duration_text: String,
    /// Iterations per configuration, at least 1.
    pub iterations: u32,
    pub cooldown: Cooldown,
    pub overload: Overload,
    /// Prometheus queries file (bundled default when not configured).
    pub queries_path: Option<PathBuf>,
    pub scaphandre_enabled: bool,
    /// Per-function PID regex for Scaphandre queries.
    pub function_pid_regexes: BTreeMap<FunctionName, String>,
    /// Output directory from the config (the request context wins).
    pub output_dir: Option<PathBuf>,
    /// Run id from the config (the request context wins).
    pub run_id: Option<String>,
    /// Campaign memory settings (paths not yet resolved).
    pub memory: crate::memory::MemoryConfig,
}

/// When a load generator counts as saturated: its iteration measured the
/// generator, not the node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    /// Share of the generator's cores k6 may use, in `(0, 1]`.
    pub cpu_threshold: f64,
    /// Retries of a saturated iteration before its configuration fails.
    pub retries: u32,
}

impl Default for Saturation {
    fn default() -> Self {
        Saturation {
            cpu_threshold: 0.9,
            retries: 1,
        }
    }
}

impl Config {
    /// The load generators: `k6_hosts`, or the one `k6`.
    pub fn generators(&self) -> Vec<&K6Host> {
        if self.k6_hosts.is_empty() {
            vec![&self.k6]
        } else {
            self.k6_hosts.iter().collect()
        }
    }
}

/// Where and how to reach the k6 load generator.
#[derive(Debug, Clone, PartialEq)]
pub struct K6Host {
    /// The k6 host's address or name, or [`LOCAL_K6_HOST`]: k6 runs on
    /// this machine, without SSH (the SSH fields are then unused).
    pub host: String,
    pub user: String,
    /// Private key path, `~` expanded.
    pub ssh_key: PathBuf,
    pub port: u16,
    /// Absolute workspace root on the k6 host.
    pub workspace_root: String,
    /// known_hosts file for the k6 host (`None`: the user's own).
    pub known_hosts_file: Option<PathBuf>,
    /// Extra `--out` values.
    pub outputs: Vec<String>,
    /// Extra `--tag` values (run_id, component, workload, repetition are
    /// merged in at run time).
    pub tags: BTreeMap<String, String>,
    /// Stream k6's output as log events while it runs.
    pub log_stream: bool,
    /// How long a k6 host that stops answering mid-run is retried.
    pub reconnect_within: Duration,
}

impl K6Host {
    /// k6 runs on this machine as a child process ([`LOCAL_K6_HOST`]).
    pub fn is_local(&self) -> bool {
        self.host == LOCAL_K6_HOST
    }
}

/// One OpenFaaS function to load.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: FunctionName,
    pub method: HttpMethod,
    pub body: String,
    pub headers: BTreeMap<String, String>,
    /// Only rates `<=` this are used for this function.
    pub max_rate: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Options,
}

impl HttpMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rate strategy as configured (kept for `plan` output and docs).
#[derive(Debug, Clone, PartialEq)]
pub enum RateStrategy {
    Linear {
        min_rate: u64,
        max_rate: u64,
        step: u64,
    },
    Random {
        min_rate: u64,
        max_rate: u64,
        count: u64,
        seed: Option<i64>,
    },
    Exponential {
        base: u64,
        min_power: u32,
        max_power: u32,
        max_rate: Option<u64>,
    },
    Custom {
        rates: Vec<u64>,
    },
}

/// Combination sizes `min_functions .. max_functions` (exclusive upper bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Combinations {
    pub min_functions: usize,
    pub max_functions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cooldown {
    pub max_wait: Duration,
    pub sleep_step: Duration,
    /// A metric is idle when `<= baseline * (1 + idle_threshold_pct / 100)`.
    pub idle_threshold_pct: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overload {
    /// Percent of node capacity (cores x 100).
    pub cpu_overload_pct_of_capacity: f64,
    pub ram_overload_pct: f64,
    pub success_rate_node_min: f64,
    pub success_rate_function_min: f64,
    pub replicas_overload_threshold: u64,
    /// Skip configurations predicted to overload from an overloaded
    /// configuration of a subset of their functions.
    pub skip_predicted: bool,
}

/// OpenFaaS basic-auth credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub user: String,
    pub password: Secret,
}

/// Credentials for Prometheus's HTTP API (its `--web.config.file`
/// `basic_auth_users`, or a bearer token checked by a proxy in front).
#[derive(Debug, Clone, PartialEq)]
pub enum PrometheusAuth {
    Basic(BasicAuth),
    Bearer(Secret),
}

/// TLS verification for `https` endpoints. Plain `http` URLs ignore it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tls {
    /// Extra trusted CA certificates (PEM), on top of the system's roots.
    pub ca: Option<CaBundle>,
    /// Accept any certificate and host name: for self-signed lab set-ups
    /// only (a warning says so at validation).
    pub insecure_skip_verify: bool,
}

/// A PEM file of CA certificates, read and checked at validation.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub path: PathBuf,
    /// The file's bytes (at least one `CERTIFICATE` block).
    pub pem: Vec<u8>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("pem_bytes", &self.pem.len())
            .finish()
    }
}

/// A secret string that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// A validated config and the warnings noticed on the way (unknown fields,
/// deprecated fields, unseeded random rates). The caller reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// One problem with one field. `field` is a path such as
/// `functions[1].name` or `rate_strategy.max_rate`; `reason` never
/// contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Why a config could not be loaded. Every variant is invalid input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Fields with wrong types or values.
    #[error("invalid configuration: {}", join_errors(.0))]
    Invalid(Vec<FieldError>),
    /// A config file that cannot be used. `origin` says where its name came
    /// from (`config_path`, `--config`).
    #[error("{origin}: cannot use {}: {reason}", .path.display())]
    File {
        origin: String,
        path: PathBuf,
        reason: String,
    },
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid(vec![FieldError::new(field, reason)])
    }

    /// The problems as field errors (a file error is reported against the
    /// field or flag that named the file).
    pub(crate) fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ConfigError::Invalid(errors) => errors.clone(),
            ConfigError::File {
                origin,
                path,
                reason,
            } => vec![FieldError::new(
                origin.clone(),
                format!("{}: {reason}", path.display()),
            )],
        }
    }
}

/// Loads and validates the config of a request: `config_path` (if any)
/// first, the request's own fields on top, then every check.
pub fn load_request(request: &Request) -> Result<Loaded, ConfigError> {
    let merged = source::apply_config_path(request.config.clone(), request.plugin)?;
    from_value(&merged, &request.context, request.plugin)
}

/// What `--config FILE` yields: the request to run (context included).
///
/// A file holding a request envelope (`config` + `context`, optionally
/// `plugin`) gives that request; any other file gives a request with an
/// empty context whose config is the file's (`common` + `plugins.dfaas`
/// merged, or `common` + `plugins.peva_faas` for a peva_faas request when
/// the file has only that plugin section, or the whole mapping).
pub(crate) fn read_request_file(path: &Path) -> Result<Request, ConfigError> {
    match source::read_config_file(path, "--config")? {
        source::FileContents::Request(request) => Ok(request),
        source::FileContents::Config(config, plugin) => Ok(Request {
            config,
            context: Context::default(),
            plugin,
        }),
    }
}

#[cfg(test)]
/// Loads and validates a config file (see [`read_request_file`]) against
/// `context`; a request envelope's own context is replaced by `context`.
pub(crate) fn load_file(path: &Path, context: &Context) -> Result<Loaded, ConfigError> {
    let mut request = read_request_file(path)?;
    request.context = context.clone();
    load_request(&request)
}

/// Parses and validates a merged config (no `config_path` left to apply)
/// of `plugin`: its defaults under the received fields, the other plugin's
/// fields out (unknown fields).
fn from_value(
    value: &serde_json::Value,
    context: &Context,
    plugin: Plugin,
) -> Result<Loaded, ConfigError> {
    let (value, foreign) = match value {
        serde_json::Value::Object(received) => {
            let mut received = received.clone();
            let foreign = plugin::take_foreign_fields(plugin, &mut received);
            let mut config = plugin::default_overrides(plugin);
            source::deep_merge(&mut config, received);
            (serde_json::Value::Object(config), foreign)
        }
        serde_json::Value::Null => (
            serde_json::Value::Object(plugin::default_overrides(plugin)),
            Vec::new(),
        ),
        other => (other.clone(), Vec::new()),
    };
    let parsed = RawConfig::from_value(&value).map_err(ConfigError::Invalid)?;
    let mut warnings: Vec<String> = parsed
        .unknown_fields
        .iter()
        .map(|field| format!("unknown field `{field}` ignored"))
        .chain(foreign.iter().map(|field| {
            format!(
                "unknown field `{field}` ignored (a {} field)",
                Plugin::PevaFaas
            )
        }))
        .collect();
    let machine = validate::Machine::current();
    let validated = validate::validate(parsed.config, plugin, context, &machine)
        .map_err(ConfigError::Invalid)?;
    warnings.extend(validated.warnings);
    Ok(Loaded {
        config: validated.config,
        warnings,
    })
}

/// JSON Schema (draft 2020-12) of the config as received.
pub(crate) fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawConfig).to_value()
}

/// `$HOME`, if set and not empty.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

/// Expands a leading `~` or `~/` with `home`; other paths (including
/// `~user/...`) are unchanged.
pub(crate) fn expand_home(path: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    let rest = match path.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => return Ok(PathBuf::from(path)),
    };
    match home {
        Some(home) => Ok(home.join(rest)),
        None => Err(format!("cannot expand ~ in {path:?}: HOME is not set")),
    }
}

#[cfg(test)]
mod tests;
