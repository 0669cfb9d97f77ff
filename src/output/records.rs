//! Reading results.csv and skipped.csv back, row by row.
//!
//! One reader for both tables and for every writer of them (this program,
//! lb's Python plugin, the legacy sampler): the functions are taken from
//! the header (`function_<f>` with its `rate_function_<f>`), so a legacy
//! file whose header names only its own combination reads like a
//! campaign-wide one, and a row's configuration is the functions whose
//! `function_<f>` cell is not empty. [`super::resume`] counts rows with it;
//! [`read_results`] gives the values (the campaign report draws them).
//! CRLF or LF line ends; an unfinished last line is ignored and reported.

use std::io::Read;
use std::path::Path;

use super::crlf::CrlfToLf;
use super::table::RESULT_NODE_COLUMNS;
use super::tail::{open_complete, TornLine};
use super::OutputError;
use crate::plan::ConfigKey;

/// The columns of a results.csv or skipped.csv header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowsHeader {
    columns: Vec<String>,
    /// `(function, its function_<f> column, its rate_function_<f> column)`
    /// in header order.
    functions: Vec<(String, usize, usize)>,
}

impl RowsHeader {
    /// The functions the header has columns for, in header order.
    pub(crate) fn functions(&self) -> impl Iterator<Item = &str> + '_ {
        self.functions.iter().map(|(f, _, _)| f.as_str())
    }

    /// Position of a column by name.
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// One data row: its line, its configuration and its cells.
pub(crate) struct RawRow<'a> {
    pub line: u64,
    pub key: ConfigKey,
    record: &'a csv::ByteRecord,
}

impl RawRow<'_> {
    /// The cell at column `at` (empty when the row is short); invalid UTF-8
    /// shows as U+FFFD.
    pub(crate) fn cell(&self, at: usize) -> &str {
        std::str::from_utf8(self.record.get(at).unwrap_or_default()).unwrap_or("\u{fffd}")
    }
}

pub(crate) fn malformed(source_name: &str, line: u64, reason: impl Into<String>) -> OutputError {
    OutputError::Malformed {
        source_name: source_name.to_string(),
        line,
        reason: reason.into(),
    }
}

/// Reads the header, then calls `visit` for every data row in order.
/// Returns the header, `None` for empty input.
pub(crate) fn for_each_row<R: Read>(
    reader: R,
    source_name: &str,
    mut visit: impl FnMut(&RowsHeader, RawRow<'_>) -> Result<(), OutputError>,
) -> Result<Option<RowsHeader>, OutputError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(CrlfToLf::new(reader));
    let mut records = csv.byte_records();
    let header = match records.next() {
        None => return Ok(None),
        Some(h) => h.map_err(|e| {
            malformed(
                source_name,
                e.position().map_or(1, |p| p.line()),
                e.to_string(),
            )
        })?,
    };
    let columns: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let at = |name: &str| columns.iter().position(|h| h == name);
    let mut functions = Vec::new();
    for (i, h) in columns.iter().enumerate() {
        if let Some(function) = h.strip_prefix("function_") {
            let rate_at = at(&format!("rate_function_{function}")).ok_or_else(|| {
                malformed(
                    source_name,
                    1,
                    format!("column {h} has no rate_function_{function} column"),
                )
            })?;
            functions.push((function.to_string(), i, rate_at));
        }
    }
    if functions.is_empty() {
        return Err(malformed(
            source_name,
            1,
            "header has no function_<name> column",
        ));
    }
    let header = RowsHeader { columns, functions };

    for record in records {
        let record = record.map_err(|e| {
            malformed(
                source_name,
                e.position().map_or(0, |p| p.line()),
                e.to_string(),
            )
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let cell =
            |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default()).unwrap_or("\u{fffd}");
        let mut names = Vec::new();
        let mut rates = Vec::new();
        for (function, name_at, rate_at) in &header.functions {
            if cell(*name_at).is_empty() {
                continue;
            }
            let rate = cell(*rate_at);
            let rate = rate.parse::<u64>().map_err(|_| {
                malformed(
                    source_name,
                    line,
                    format!("rate_function_{function}: not a whole number"),
                )
            })?;
            names.push(function.clone());
            rates.push(rate);
        }
        let key = ConfigKey::new(names, rates)
            .map_err(|_| malformed(source_name, line, "the row names no function"))?;
        visit(
            &header,
            RawRow {
                line,
                key,
                record: &record,
            },
        )?;
    }
    Ok(Some(header))
}

/// A 0/1 flag cell.
pub(crate) fn parse_flag(
    text: &str,
    column: &str,
    source_name: &str,
    line: u64,
) -> Result<bool, OutputError> {
    match text {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(malformed(
            source_name,
            line,
            format!("{column}: expected 0 or 1"),
        )),
    }
}

/// Per-function values of one results.csv row. Units as written (CPU in
/// percent of one core, RAM in bytes, latency as the writer recorded it);
/// an empty or `nan` cell is NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionValues {
    pub function: String,
    pub rate: u64,
    pub success_rate: f64,
    pub cpu_usage: f64,
    pub ram_usage: f64,
    pub power_usage: f64,
    pub replicas: f64,
    pub overloaded: bool,
    pub mean_latency: f64,
}

/// Node values of one results.csv row.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeValues {
    pub cpu_usage_idle: f64,
    pub cpu_usage: f64,
    pub ram_usage_idle: f64,
    pub ram_usage: f64,
    pub ram_usage_idle_pct: f64,
    pub ram_usage_pct: f64,
    pub power_usage_idle: f64,
    pub power_usage: f64,
    pub rest_seconds: f64,
    pub overloaded: bool,
}

/// One results.csv row read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRecord {
    pub key: ConfigKey,
    /// 1-based line in its file.
    pub line: u64,
    /// The configuration's functions, in key (name) order.
    pub functions: Vec<FunctionValues>,
    pub node: NodeValues,
}

impl ResultRecord {
    /// The values of `function`, if the row's configuration has it.
    pub(crate) fn function(&self, function: &str) -> Option<&FunctionValues> {
        self.functions.iter().find(|f| f.function == function)
    }

    /// Sum of the configuration's rates, requests per second.
    pub(crate) fn total_rate(&self) -> u64 {
        self.key.rates().iter().sum()
    }
}

/// What [`read_results`] found in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResultsFile {
    /// Functions of the header, in header order.
    pub functions: Vec<String>,
    pub rows: Vec<ResultRecord>,
    /// An unfinished last line that was ignored.
    pub torn: Option<TornLine>,
}

/// The per-function columns after `function_<f>` and `rate_function_<f>`.
const VALUE_PREFIXES: [&str; 7] = [
    "success_rate_function_",
    "cpu_usage_function_",
    "ram_usage_function_",
    "power_usage_function_",
    "replica_",
    "overloaded_function_",
    "medium_latency_function_",
];

/// Reads a results.csv (any writer's layout) at `path`; a missing file is
/// `None`. Every column of the legacy header must be present; a number
/// that does not parse is an error naming the file, line and column.
pub(crate) fn read_results(path: &Path) -> Result<Option<ResultsFile>, OutputError> {
    let Some(lines) = open_complete(path)? else {
        return Ok(None);
    };
    let mut file = parse_results(lines.file.take(lines.complete), &path.display().to_string())?;
    file.torn = lines.torn;
    Ok(Some(file))
}

/// [`read_results`] over any reader; `source_name` names it in errors.
pub(crate) fn parse_results<R: Read>(
    reader: R,
    source_name: &str,
) -> Result<ResultsFile, OutputError> {
    let mut rows = Vec::new();
    // Column positions, resolved once from the header.
    let mut positions: Option<ValueColumns> = None;
    let header = for_each_row(reader, source_name, |header, row| {
        let (function_at, node_at) = match positions.take() {
            Some(resolved) => resolved,
            None => value_columns(header, source_name)?,
        };
        let number =
            |at: usize, column: &str| parse_number(row.cell(at), column, source_name, row.line);
        let mut functions = Vec::with_capacity(row.key.functions().len());
        for ((name, _, _), at) in header.functions.iter().zip(&function_at) {
            let Some(rate) = row
                .key
                .functions()
                .iter()
                .position(|f| f == name)
                .map(|i| row.key.rates()[i])
            else {
                continue;
            };
            let column = |i: usize| format!("{}{name}", VALUE_PREFIXES[i]);
            functions.push(FunctionValues {
                function: name.clone(),
                rate,
                success_rate: number(at[0], &column(0))?,
                cpu_usage: number(at[1], &column(1))?,
                ram_usage: number(at[2], &column(2))?,
                power_usage: number(at[3], &column(3))?,
                replicas: number(at[4], &column(4))?,
                overloaded: parse_flag(row.cell(at[5]), &column(5), source_name, row.line)?,
                mean_latency: number(at[6], &column(6))?,
            });
        }
        functions.sort_by(|a, b| a.function.cmp(&b.function));
        let node = |i: usize| number(node_at[i], RESULT_NODE_COLUMNS[i]);
        rows.push(ResultRecord {
            key: row.key.clone(),
            line: row.line,
            functions,
            node: NodeValues {
                cpu_usage_idle: node(0)?,
                cpu_usage: node(1)?,
                ram_usage_idle: node(2)?,
                ram_usage: node(3)?,
                ram_usage_idle_pct: node(4)?,
                ram_usage_pct: node(5)?,
                power_usage_idle: node(6)?,
                power_usage: node(7)?,
                rest_seconds: node(8)?,
                overloaded: parse_flag(
                    row.cell(node_at[9]),
                    RESULT_NODE_COLUMNS[9],
                    source_name,
                    row.line,
                )?,
            },
        });
        positions = Some((function_at, node_at));
        Ok(())
    })?;
    if let (Some(header), None) = (&header, &positions) {
        // A header without rows must still be a results header.
        value_columns(header, source_name)?;
    }
    Ok(ResultsFile {
        functions: header
            .map(|h| h.functions().map(str::to_string).collect())
            .unwrap_or_default(),
        rows,
        torn: None,
    })
}

/// Positions of the value columns: per header function (in header order)
/// the seven after its name and rate, then the ten node columns.
type ValueColumns = (Vec<[usize; 7]>, [usize; 10]);

fn value_columns(header: &RowsHeader, source_name: &str) -> Result<ValueColumns, OutputError> {
    let require = |name: &str| {
        header.column(name).ok_or_else(|| {
            malformed(
                source_name,
                1,
                format!("header has no {name} column (not a results.csv header)"),
            )
        })
    };
    let mut function_at = Vec::with_capacity(header.functions.len());
    for (name, _, _) in &header.functions {
        let mut at = [0; 7];
        for (slot, prefix) in at.iter_mut().zip(VALUE_PREFIXES) {
            *slot = require(&format!("{prefix}{name}"))?;
        }
        function_at.push(at);
    }
    let mut node_at = [0; 10];
    for (slot, name) in node_at.iter_mut().zip(RESULT_NODE_COLUMNS) {
        *slot = require(name)?;
    }
    Ok((function_at, node_at))
}

/// A number cell: `%.3f`, Python's repr, `nan`, `inf`, `-inf`; empty is NaN.
fn parse_number(
    text: &str,
    column: &str,
    source_name: &str,
    line: u64,
) -> Result<f64, OutputError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(f64::NAN);
    }
    text.parse::<f64>()
        .map_err(|_| malformed(source_name, line, format!("{column}: not a number")))
}

/// What [`read_skipped`] found in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SkippedFile {
    /// The configurations in file order, duplicates kept.
    pub keys: Vec<ConfigKey>,
    /// An unfinished last line that was ignored.
    pub torn: Option<TornLine>,
}

/// The configurations of a skipped.csv at `path`; a missing file is `None`.
pub(crate) fn read_skipped(path: &Path) -> Result<Option<SkippedFile>, OutputError> {
    let Some(lines) = open_complete(path)? else {
        return Ok(None);
    };
    let mut keys = Vec::new();
    for_each_row(
        lines.file.take(lines.complete),
        &path.display().to_string(),
        |_, row| {
            keys.push(row.key);
            Ok(())
        },
    )?;
    Ok(Some(SkippedFile {
        keys,
        torn: lines.torn,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "function_env,rate_function_env,success_rate_function_env,cpu_usage_function_env,ram_usage_function_env,power_usage_function_env,replica_env,overloaded_function_env,medium_latency_function_env,cpu_usage_idle_node,cpu_usage_node,ram_usage_idle_node,ram_usage_node,ram_usage_idle_node_percentage,ram_usage_node_percentage,power_usage_idle_node,power_usage_node,rest_seconds,overloaded_node";

    #[test]
    fn values_by_header() {
        let text = format!(
            "{HEADER}\r\nenv,10,0.950,12.5,1e6,nan,2,0,3.25,1.0,20.0,5,6,7,8,,inf,15,1\r\n"
        );
        let file = parse_results(text.as_bytes(), "r.csv").unwrap();
        assert_eq!(file.functions, ["env"]);
        let row = &file.rows[0];
        assert_eq!(row.line, 2);
        assert_eq!(row.total_rate(), 10);
        let env = row.function("env").unwrap();
        assert_eq!((env.rate, env.success_rate, env.replicas), (10, 0.95, 2.0));
        assert!(env.power_usage.is_nan() && !env.overloaded);
        assert!(row.node.power_usage_idle.is_nan());
        assert_eq!(row.node.power_usage, f64::INFINITY);
        assert_eq!((row.node.rest_seconds, row.node.overloaded), (15.0, true));
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let text = format!("{HEADER}\nenv,10,x,12.5,1e6,nan,2,0,3,1,2,3,4,5,6,7,8,9,0\n");
        let err = parse_results(text.as_bytes(), "r.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.csv line 2: success_rate_function_env: not a number"
        );
        let text = format!("{HEADER}\nenv,10,1,12.5,1e6,nan,2,yes,3,1,2,3,4,5,6,7,8,9,0\n");
        let err = parse_results(text.as_bytes(), "r.csv").unwrap_err();
        assert!(err
            .to_string()
            .contains("overloaded_function_env: expected 0 or 1"));
        let short = "function_env,rate_function_env,cpu_usage_node\n";
        let err = parse_results(short.as_bytes(), "r.csv").unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: header has no success_rate_function_env column"),
            "{err}"
        );
    }
}
