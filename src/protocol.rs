//! The JSON contract with lb: the request read on stdin and the result
//! written on stdout. Key names are the ones lb's CSV export reads; do not
//! rename them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What lb writes on stdin.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Request {
    /// The dfaas config, as lb's `dfaas` plugin accepts it. Validated by
    /// `config`, so kept as plain JSON here.
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub context: Context,
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
pub type Row = Map<String, Value>;

/// The one document `run` prints on stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub returncode: i32,
    pub success: bool,
    pub interrupted: bool,
    pub dfaas_functions: Vec<String>,
    pub dfaas_results: Vec<Row>,
    pub dfaas_skipped: Vec<Row>,
    pub dfaas_index: Vec<IndexEntry>,
    pub dfaas_summaries: Vec<SummaryEntry>,
    pub dfaas_metrics: Vec<MetricsEntry>,
    pub dfaas_scripts: Vec<ScriptEntry>,
    pub artifacts: Vec<String>,
    pub error: Option<ErrorInfo>,
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
    /// A stable kind: `invalid_input`, `environment`, `interrupted`,
    /// `configuration_failed`, `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// Structured details, e.g. `{"errors": [{"field": "functions[1].name", "reason": "..."}]}`.
    pub context: Value,
}

/// Exit codes of SPEC §2.
pub mod exit {
    pub const OK: u8 = 0;
    pub const CONFIG_FAILED: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    pub const ENVIRONMENT: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}
