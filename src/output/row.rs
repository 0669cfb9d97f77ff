//! Typed rows and their cells: results.csv, skipped.csv, index.csv and the
//! per-iteration metrics CSV, each also as the JSON the protocol carries.
//!
//! Pure. A row is laid out against the campaign's sorted function list: a
//! function of the campaign that is not in the row's configuration gets
//! empty cells; a function the campaign does not know is an error.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::cell::{python_float_repr, Cell};
use super::table::{encode_line, Table, RESULTS_FILE};
use super::OutputError;
use crate::config::FunctionName;
use crate::metrics::readings::{FunctionMetrics, IterationMetrics};
use crate::plan::{ConfigKey, Configuration};
use crate::protocol;

/// One results.csv row: one iteration of one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The configuration's functions (and only those).
    pub functions: BTreeMap<FunctionName, FunctionCells>,
    pub node: NodeCells,
}

/// Per-function measurements of an iteration. Resource values are in the
/// units the Prometheus queries return (CPU in percent of one core, RAM in
/// bytes, power in the Scaphandre query's unit); NaN when not measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunctionCells {
    /// Requests per second the function was loaded at.
    pub rate: u64,
    /// 0..=1.
    pub success_rate: f64,
    pub cpu_usage: f64,
    pub ram_usage: f64,
    pub power_usage: f64,
    /// Replicas the gateway reported after the run; `None` when it could
    /// not be read (written `nan`, never 0).
    pub replicas: Option<u64>,
    pub overloaded: bool,
    /// Mean request latency in milliseconds (column `medium_latency_function_<f>`).
    pub mean_latency_ms: f64,
}

/// Node measurements of an iteration: the idle snapshot that ended the
/// cooldown and the averages over the k6 run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeCells {
    pub cpu_usage_idle: f64,
    pub cpu_usage: f64,
    pub ram_usage_idle: f64,
    pub ram_usage: f64,
    /// Percent of node memory.
    pub ram_usage_idle_pct: f64,
    pub ram_usage_pct: f64,
    pub power_usage_idle: f64,
    pub power_usage: f64,
    /// Seconds waited in cooldown before the iteration.
    pub rest_seconds: u64,
    pub overloaded: bool,
}

impl ResultRow {
    /// The configuration this row measured.
    pub fn key(&self) -> ConfigKey {
        let (functions, rates) = self
            .functions
            .iter()
            .map(|(f, c)| (f.to_string(), c.rate))
            .unzip();
        // A BTreeMap has sorted unique names; emptiness is checked by cells().
        ConfigKey::new(functions, rates).unwrap_or_else(|_| unreachable!("checked by cells()"))
    }

    /// Cells in results.csv column order for a campaign over `functions`.
    pub(crate) fn cells(&self, functions: &[FunctionName]) -> Result<Vec<Cell>, OutputError> {
        check_members(self.functions.keys(), functions, Members::AtLeastOne)?;
        let mut cells = Vec::with_capacity(functions.len() * 9 + 10);
        for name in functions {
            match self.functions.get(name) {
                Some(f) => cells.extend([
                    Cell::Text(name.to_string()),
                    Cell::Int(f.rate),
                    Cell::Float(f.success_rate),
                    Cell::Float(f.cpu_usage),
                    Cell::Float(f.ram_usage),
                    Cell::Float(f.power_usage),
                    f.replicas.map_or(Cell::Float(f64::NAN), Cell::Int),
                    Cell::flag(f.overloaded),
                    Cell::Float(f.mean_latency_ms),
                ]),
                None => cells.extend(std::iter::repeat(Cell::Empty).take(9)),
            }
        }
        let n = &self.node;
        cells.extend([
            Cell::Float(n.cpu_usage_idle),
            Cell::Float(n.cpu_usage),
            Cell::Float(n.ram_usage_idle),
            Cell::Float(n.ram_usage),
            Cell::Float(n.ram_usage_idle_pct),
            Cell::Float(n.ram_usage_pct),
            Cell::Float(n.power_usage_idle),
            Cell::Float(n.power_usage),
            Cell::Int(n.rest_seconds),
            Cell::flag(n.overloaded),
        ]);
        Ok(cells)
    }

    /// The results.csv line, `\n` included.
    pub fn csv_line(&self, functions: &[FunctionName]) -> Result<Vec<u8>, OutputError> {
        Ok(cells_line(&self.cells(functions)?, Table::Results))
    }

    /// The row as lb's export receives it in `dfaas_results`.
    pub fn to_protocol(&self, functions: &[FunctionName]) -> Result<protocol::Row, OutputError> {
        Ok(json_row(
            Table::Results.header(functions),
            &self.cells(functions)?,
        ))
    }
}

/// Cells of the skipped.csv row of `config`.
pub(crate) fn skipped_cells(
    config: &Configuration,
    functions: &[FunctionName],
) -> Result<Vec<Cell>, OutputError> {
    check_members(config.functions().iter(), functions, Members::AtLeastOne)?;
    Ok(functions
        .iter()
        .flat_map(|name| match config.rate_of(name) {
            Some(rate) => [Cell::Text(name.to_string()), Cell::Int(rate)],
            None => [Cell::Empty, Cell::Empty],
        })
        .collect())
}

/// The skipped.csv line of `config`, `\n` included.
pub fn skipped_line(
    config: &Configuration,
    functions: &[FunctionName],
) -> Result<Vec<u8>, OutputError> {
    Ok(cells_line(
        &skipped_cells(config, functions)?,
        Table::Skipped,
    ))
}

/// The skipped row as lb's export receives it in `dfaas_skipped`.
pub fn skipped_to_protocol(
    config: &Configuration,
    functions: &[FunctionName],
) -> Result<protocol::Row, OutputError> {
    Ok(json_row(
        Table::Skipped.header(functions),
        &skipped_cells(config, functions)?,
    ))
}

/// The index.csv line of `key`: `['env', 'figlet'];[0, 10];results.csv\n`.
pub fn index_line(key: &ConfigKey) -> Vec<u8> {
    let functions: Vec<String> = key.functions().iter().map(|f| python_str_repr(f)).collect();
    let rates: Vec<String> = key.rates().iter().map(u64::to_string).collect();
    let fields = [
        format!("[{}]", functions.join(", ")),
        format!("[{}]", rates.join(", ")),
        RESULTS_FILE.to_string(),
    ];
    encode_line(&fields, Table::Index.delimiter())
}

/// The index row as lb's export receives it in `dfaas_index`.
pub fn index_entry(key: &ConfigKey) -> protocol::IndexEntry {
    protocol::IndexEntry {
        functions: key.functions().to_vec(),
        rates: key.rates().to_vec(),
        results_file: RESULTS_FILE.to_string(),
    }
}

/// Python's `repr(str)` for the strings index.csv holds: single quotes
/// unless the text contains a single quote and no double quote;
/// backslash, the chosen quote and control characters escaped.
fn python_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Raw metrics of one iteration ([`IterationMetrics`]), as the legacy
/// sampler stored them per iteration
/// (`metrics/metrics-<id>-iter<i>-rep<r>.csv`). Units as in
/// [`FunctionCells`]; NaN when not measured. The query window is kept out
/// of the CSV (whose columns are the legacy sampler's) and written beside
/// it ([`super::artifact::write_window`]) and into the protocol entry.
impl IterationMetrics {
    /// The whole metrics CSV: header and one row. Floats as Python's
    /// `repr` (the legacy file held raw floats), `nan` for NaN.
    pub(crate) fn csv(&self, functions: &[FunctionName]) -> Result<Vec<u8>, OutputError> {
        check_members(self.functions.keys(), functions, Members::MayBeEmpty)?;
        let mut cells = vec![
            python_float_repr(self.cpu_usage_node),
            python_float_repr(self.ram_usage_node),
            python_float_repr(self.ram_usage_node_pct),
            python_float_repr(self.power_usage_node),
        ];
        for name in functions {
            match self.functions.get(name) {
                Some(m) => cells.extend([m.cpu, m.ram, m.power].map(python_float_repr)),
                None => cells.extend(std::iter::repeat(String::new()).take(3)),
            }
        }
        let mut out = Table::Metrics.header_line(functions);
        out.extend(encode_line(&cells, Table::Metrics.delimiter()));
        Ok(out)
    }

    /// The `metrics` value of a protocol `MetricsEntry`:
    /// `{cpu_usage_node, ram_usage_node, ram_usage_node_pct, power_usage_node,
    /// functions: {name: {cpu, ram, power}}}`, numbers as JSON numbers and
    /// NaN / infinities as the strings `"nan"`, `"inf"`, `"-inf"`.
    pub(crate) fn to_json(&self) -> Value {
        let mut functions = Map::new();
        for (name, m) in &self.functions {
            let mut f = Map::new();
            f.insert("cpu".into(), json_float(m.cpu));
            f.insert("ram".into(), json_float(m.ram));
            f.insert("power".into(), json_float(m.power));
            functions.insert(name.to_string(), Value::Object(f));
        }
        let mut out = Map::new();
        out.insert("cpu_usage_node".into(), json_float(self.cpu_usage_node));
        out.insert("ram_usage_node".into(), json_float(self.ram_usage_node));
        out.insert(
            "ram_usage_node_pct".into(),
            json_float(self.ram_usage_node_pct),
        );
        out.insert("power_usage_node".into(), json_float(self.power_usage_node));
        out.insert("functions".into(), Value::Object(functions));
        if let Some(window) = self
            .window
            .as_ref()
            .and_then(|w| serde_json::to_value(w).ok())
        {
            out.insert("window".into(), window);
        }
        Value::Object(out)
    }

    /// The inverse of [`IterationMetrics::to_json`], for `export`, which gets the
    /// protocol entries back from lb: numbers and the texts `"nan"`, `"inf"`,
    /// `"-inf"` (or any float text) as floats; a missing or `null` value is
    /// not a measurement and reads as NaN. Functions outside `functions`
    /// are left out. The query window is not read back (`export` copies
    /// the entry's `window` object as it is). Returns the metrics and what
    /// was left out or unreadable.
    pub(crate) fn from_json(value: &Value, functions: &[FunctionName]) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let node =
            |key: &str, warnings: &mut Vec<String>| metric_value(value.get(key), key, warnings);
        let mut row = IterationMetrics {
            cpu_usage_node: node("cpu_usage_node", &mut warnings),
            ram_usage_node: node("ram_usage_node", &mut warnings),
            ram_usage_node_pct: node("ram_usage_node_pct", &mut warnings),
            power_usage_node: node("power_usage_node", &mut warnings),
            functions: BTreeMap::new(),
            window: None,
        };
        let measured = value.get("functions").and_then(Value::as_object);
        for (raw, values) in measured.into_iter().flatten() {
            let known = FunctionName::parse(raw)
                .ok()
                .filter(|name| functions.binary_search(name).is_ok());
            let Some(name) = known else {
                warnings.push(format!(
                    "functions.{raw}: not one of the campaign's functions, left out"
                ));
                continue;
            };
            let value = |key: &str, warnings: &mut Vec<String>| {
                metric_value(values.get(key), &format!("functions.{raw}.{key}"), warnings)
            };
            let metrics = FunctionMetrics {
                cpu: value("cpu", &mut warnings),
                ram: value("ram", &mut warnings),
                power: value("power", &mut warnings),
            };
            row.functions.insert(name, metrics);
        }
        (row, warnings)
    }
}

/// One value of a metrics entry (see [`IterationMetrics::from_json`]).
fn metric_value(value: Option<&Value>, field: &str, warnings: &mut Vec<String>) -> f64 {
    match value {
        None | Some(Value::Null) => f64::NAN,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(text)) => text.trim().parse().unwrap_or_else(|_| {
            warnings.push(format!("{field}: {text:?} is not a number, written nan"));
            f64::NAN
        }),
        Some(other) => {
            warnings.push(format!("{field}: {other} is not a number, written nan"));
            f64::NAN
        }
    }
}

fn json_float(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map_or_else(|| Value::String(python_float_repr(v)), Value::Number)
}

#[derive(PartialEq)]
enum Members {
    AtLeastOne,
    MayBeEmpty,
}

/// Every member must be a campaign function.
fn check_members<'a>(
    members: impl Iterator<Item = &'a FunctionName>,
    functions: &[FunctionName],
    rule: Members,
) -> Result<(), OutputError> {
    let mut any = false;
    for name in members {
        any = true;
        if functions.binary_search(name).is_err() {
            return Err(OutputError::UnknownFunction(name.to_string()));
        }
    }
    if any || rule == Members::MayBeEmpty {
        Ok(())
    } else {
        Err(OutputError::EmptyRow)
    }
}

fn cells_line(cells: &[Cell], table: Table) -> Vec<u8> {
    let texts: Vec<_> = cells.iter().map(|c| c.text()).collect();
    let bytes: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    encode_line(&bytes, table.delimiter())
}

fn json_row(header: Vec<String>, cells: &[Cell]) -> protocol::Row {
    header
        .into_iter()
        .zip(cells.iter().map(Cell::to_json))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FunctionName {
        FunctionName::parse(n).unwrap()
    }

    #[test]
    fn python_str_repr_quotes_like_python() {
        assert_eq!(python_str_repr("env"), "'env'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        assert_eq!(python_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(python_str_repr("a\\b\n"), "'a\\\\b\\n'");
    }

    #[test]
    fn index_line_is_python_lists() {
        let key = ConfigKey::new(vec!["figlet".into(), "env".into()], vec![10, 0]).unwrap();
        assert_eq!(
            String::from_utf8(index_line(&key)).unwrap(),
            "['env', 'figlet'];[0, 10];results.csv\n"
        );
        let entry = index_entry(&key);
        assert_eq!(entry.functions, ["env", "figlet"]);
        assert_eq!(entry.rates, [0, 10]);
        assert_eq!(entry.results_file, "results.csv");
    }

    #[test]
    fn rows_reject_foreign_and_empty() {
        let functions = vec![name("env")];
        let config = Configuration::from_pairs([(name("figlet"), 1)]).unwrap();
        assert!(matches!(
            skipped_cells(&config, &functions),
            Err(OutputError::UnknownFunction(f)) if f == "figlet"
        ));
        let row = IterationMetrics {
            cpu_usage_node: 0.0,
            ram_usage_node: 0.0,
            ram_usage_node_pct: 0.0,
            power_usage_node: 0.0,
            functions: BTreeMap::from([(
                name("shasum"),
                FunctionMetrics {
                    cpu: 0.0,
                    ram: 0.0,
                    power: 0.0,
                },
            )]),
            window: None,
        };
        assert!(matches!(
            row.csv(&functions),
            Err(OutputError::UnknownFunction(_))
        ));
    }

    #[test]
    fn unknown_replicas_are_written_nan_never_zero() {
        let functions = vec![name("env"), name("figlet")];
        let cells = |replicas| FunctionCells {
            rate: 10,
            success_rate: 1.0,
            cpu_usage: 1.0,
            ram_usage: 2.0,
            power_usage: f64::NAN,
            replicas,
            overloaded: false,
            mean_latency_ms: 3.0,
        };
        let row = ResultRow {
            functions: BTreeMap::from([
                (name("env"), cells(None)),
                (name("figlet"), cells(Some(0))),
            ]),
            node: NodeCells {
                cpu_usage_idle: 1.0,
                cpu_usage: 1.0,
                ram_usage_idle: 1.0,
                ram_usage: 1.0,
                ram_usage_idle_pct: 1.0,
                ram_usage_pct: 1.0,
                power_usage_idle: f64::NAN,
                power_usage: f64::NAN,
                rest_seconds: 0,
                overloaded: false,
            },
        };
        let line = String::from_utf8(row.csv_line(&functions).unwrap()).unwrap();
        assert!(
            line.starts_with(
                "env,10,1.000,1.000,2.000,nan,nan,0,3.000,figlet,10,1.000,1.000,2.000,nan,0,0,"
            ),
            "{line}"
        );
        let json = row.to_protocol(&functions).unwrap();
        assert_eq!(json["replica_env"], serde_json::json!("nan"));
        assert_eq!(json["replica_figlet"], serde_json::json!(0));
    }

    #[test]
    fn metrics_json_reads_back_to_the_same_csv() {
        let functions = vec![name("env"), name("figlet")];
        let row = IterationMetrics {
            cpu_usage_node: 60.49999999997908,
            ram_usage_node: 1e-5,
            ram_usage_node_pct: f64::INFINITY,
            power_usage_node: f64::NAN,
            functions: BTreeMap::from([(
                name("env"),
                FunctionMetrics {
                    cpu: 0.708732085,
                    ram: 25165824.0,
                    power: f64::NAN,
                },
            )]),
            window: None,
        };
        let (back, warnings) = IterationMetrics::from_json(&row.to_json(), &functions);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.csv(&functions).unwrap(), row.csv(&functions).unwrap());

        let (partial, warnings) = IterationMetrics::from_json(
            &serde_json::json!({
                "cpu_usage_node": "12.5", "ram_usage_node": null, "ram_usage_node_pct": true,
                "functions": {"env": {"cpu": 1}, "shasum": {"cpu": 2.0}}
            }),
            &functions,
        );
        assert_eq!(
            String::from_utf8(partial.csv(&functions).unwrap())
                .unwrap()
                .lines()
                .nth(1),
            Some("12.5,nan,nan,nan,1.0,nan,nan,,,")
        );
        assert_eq!(
            warnings,
            [
                "ram_usage_node_pct: true is not a number, written nan",
                "functions.shasum: not one of the campaign's functions, left out"
            ]
        );
    }

    #[test]
    fn metrics_json_spells_non_finite_as_text() {
        let row = IterationMetrics {
            cpu_usage_node: 12.5,
            ram_usage_node: f64::NAN,
            ram_usage_node_pct: f64::INFINITY,
            power_usage_node: 0.0,
            functions: BTreeMap::from([(
                name("env"),
                FunctionMetrics {
                    cpu: 1.0,
                    ram: f64::NAN,
                    power: 2.0,
                },
            )]),
            window: None,
        };
        assert_eq!(
            row.to_json(),
            serde_json::json!({
                "cpu_usage_node": 12.5, "ram_usage_node": "nan", "ram_usage_node_pct": "inf",
                "power_usage_node": 0.0,
                "functions": {"env": {"cpu": 1.0, "ram": "nan", "power": 2.0}}
            })
        );
    }
}
