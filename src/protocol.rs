//! The JSON contract with lb: the request read on stdin and the result
//! written on stdout. Key names are the ones lb's CSV export reads; do not
//! rename them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What lb writes on stdin.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Request {
    /// The config, as lb's plugin named by `plugin` accepts it. Validated
    /// by `config`, so kept as plain JSON here.
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub context: Context,
    /// Whose config `config` is: `dfaas` (the default) or `peva_faas`.
    #[serde(default)]
    pub plugin: Plugin,
}

/// The lb plugin whose config a request holds. lb has two DFaaS plugins
/// with the same campaign and nearly the same fields; the name selects the
/// section of a config file (`plugins.<name>`), the defaults that differ
/// (peva_faas runs k6 on the runner host itself: `k6_host` `local`), the
/// fields only one of them has, and the `workload` k6 tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plugin {
    /// lb's `dfaas` plugin.
    #[default]
    Dfaas,
    /// lb's `peva_faas` plugin (dfaas plus a memory; k6 on the runner host).
    PevaFaas,
}

impl Plugin {
    /// Every plugin, `dfaas` first.
    pub const ALL: [Plugin; 2] = [Plugin::Dfaas, Plugin::PevaFaas];

    /// The plugin's name in lb (`plugin_settings.<name>`, `plugins.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Plugin::Dfaas => "dfaas",
            Plugin::PevaFaas => "peva_faas",
        }
    }
}

impl std::fmt::Display for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the run happens. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_repetitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_file: Option<String>,
    /// lb's working directory when lb runs the campaign (where lb's runner
    /// starts workloads): relative `memory` paths resolve against it, as
    /// lb's `peva_faas` plugin resolves its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_workdir: Option<String>,
}

/// A CSV row as a JSON object: column name → cell text, in header order.
pub(crate) type Row = Map<String, Value>;

/// The one document `run` prints on stdout: how the run ended, what it
/// recorded, and why it failed when it did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub returncode: i32,
    pub success: bool,
    pub interrupted: bool,
    #[serde(flatten)]
    pub data: RunData,
    pub error: Option<ErrorInfo>,
}

/// What a run recorded, in the protocol's shape (one entry per row, file
/// or artifact, in the order they were written).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunData {
    pub dfaas_functions: Vec<String>,
    pub dfaas_results: Vec<Row>,
    pub dfaas_skipped: Vec<Row>,
    pub dfaas_index: Vec<IndexEntry>,
    pub dfaas_summaries: Vec<SummaryEntry>,
    pub dfaas_metrics: Vec<MetricsEntry>,
    pub dfaas_scripts: Vec<ScriptEntry>,
    pub artifacts: Vec<String>,
}

/// One index.csv row as lb's export expects it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexEntry {
    pub functions: Vec<String>,
    pub rates: Vec<u64>,
    pub results_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryEntry {
    pub config_id: String,
    pub iteration: u32,
    /// k6's `--summary-export` document, unchanged.
    pub summary: Value,
}

/// Measured metrics of one iteration, in the shape lb's export flattens:
/// `{cpu_usage_node, ram_usage_node, ram_usage_node_pct, power_usage_node,
/// functions: {name: {cpu, ram, power}}}`; NaN is written as the string "nan".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricsEntry {
    pub config_id: String,
    pub iteration: u32,
    pub metrics: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScriptEntry {
    pub config_id: String,
    pub script: String,
}

/// The protocol's `error` object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorInfo {
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    pub message: String,
    /// Structured details, e.g. `{"errors": [{"field": "functions[1].name", "reason": "..."}]}`.
    pub context: Value,
}

/// The stable kinds of the protocol's `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad JSON, bad flags, bad config: the user must fix the input.
    InvalidInput,
    /// The environment is unusable (k6 host or Prometheus unreachable, the
    /// k6 host lost for good, the system refusing to write).
    Environment,
    /// Some configurations failed operationally; the run went on.
    ConfigurationFailed,
    /// SIGINT/SIGTERM or the stop file.
    Interrupted,
    /// A bug or an unexpected failure of this program.
    Internal,
}

impl ErrorKind {
    /// The exit code of SPEC §2. The spec has no code of its own for
    /// internal errors; they exit 1 ("failed"), never 0 or 2, so lb treats
    /// them as a failed run rather than as bad input.
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            ErrorKind::InvalidInput => ExitCode::InvalidInput,
            ErrorKind::Environment => ExitCode::Environment,
            ErrorKind::ConfigurationFailed | ErrorKind::Internal => ExitCode::Failed,
            ErrorKind::Interrupted => ExitCode::Interrupted,
        }
    }
}

/// Exit codes of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    /// Configurations failed, or an internal error.
    Failed = 1,
    InvalidInput = 2,
    Environment = 3,
    Interrupted = 130,
}

impl ExitCode {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}
