//! `lb-dfaas export`: a campaign's dataset files written from the result
//! documents lb collected, for the lb plugin's `export_results_to_csv`.
//!
//! lb keeps each repetition's result document (its `generator_result`)
//! and, at the end of a workload, asks the plugin to export them into the
//! workload's directory. The binary already wrote the same files there,
//! row by row, while it ran: a file it reported in `artifacts` that is at
//! the same path is kept as it is (it also holds the rows of an
//! interrupted earlier attempt of the same run, which lb's results no
//! longer carry). Everything else is written with the run's own writers
//! ([`super::table`], [`super::cell`], [`super::row`], [`super::artifact`]),
//! each file atomically, so a file is the same whoever wrote it:
//!
//! - `results.csv`, `skipped.csv`: the rows of every document in order,
//!   laid out on the columns of the campaign's functions (the union of the
//!   documents' `dfaas_functions`), cells spelled by [`Cell::from_json`];
//!   a column the header does not have is left out (a warning names it);
//! - `index.csv`: each configuration once, first seen first;
//! - `summaries/`, `metrics/` (the metrics CSV, the query window and the
//!   load generators' figures) and
//!   `k6_scripts/`: one file per entry, named by the repetition; a k6
//!   script already there is never replaced (the first one wins).
//!
//! Documents without functions give nothing to export: no file, no
//! directory. An entry that is not what the binary writes (a config id
//! that is not one, a row that is not an object) is left out with a
//! warning; a function name that is not one is invalid input (exit 2).

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::artifact;
use super::cell::Cell;
use super::row::index_line;
use super::table::{encode_line, Table};
use super::{Fault, OutputError};
use crate::config::FunctionName;
use crate::metrics::readings::IterationMetrics;
use crate::plan::{ConfigId, ConfigKey};
use crate::report::CommandError;

/// One repetition's result document, as lb keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where it came from, for messages: `stdin[0].generator_result`.
    pub label: String,
    /// lb's repetition number, which names the per-iteration files; `None`
    /// when lb's entry has none (its summaries and metrics are left out).
    pub repetition: Option<u32>,
    /// The document `run` printed.
    pub result: Map<String, Value>,
}

/// What `export` did; printed as its JSON document.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExportReport {
    pub ok: bool,
    pub output_dir: PathBuf,
    /// Files written, in the order written.
    pub written: Vec<PathBuf>,
    /// Files left as they were: written by the binary during the run, or
    /// k6 scripts already there.
    pub kept: Vec<PathBuf>,
    /// Entries, rows and values left out, and why.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The input is not result documents (exit 2); `field` names where.
    #[error("{field}: {reason}")]
    Input { field: String, reason: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}

fn input_error(field: impl Into<String>, reason: impl Into<String>) -> ExportError {
    ExportError::Input {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads `export`'s input from `reader` (named `source` in messages): a
/// JSON array of lb's result entries (`{"repetition": N,
/// "generator_result": {...}}`, as lb hands them to
/// `export_results_to_csv`), one such entry, or one result document as
/// `run` prints it (repetition 1, the binary's default). An entry without
/// a result document (a repetition that ended before the binary answered)
/// is passed over.
pub fn read_entries(reader: impl Read, source: &str) -> Result<Vec<Entry>, ExportError> {
    let value: Value = serde_json::from_reader(BufReader::new(reader))
        .map_err(|e| input_error(source, format!("malformed JSON: {e}")))?;
    entries_from_json(value, source)
}

/// The entries of an already parsed input (see [`read_entries`]).
pub(crate) fn entries_from_json(value: Value, source: &str) -> Result<Vec<Entry>, ExportError> {
    match value {
        Value::Array(items) => Ok(items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| lb_entry(item, &format!("{source}[{i}]")))
            .collect()),
        Value::Object(object) if object.contains_key("generator_result") => {
            Ok(lb_entry(Value::Object(object), source)
                .into_iter()
                .collect())
        }
        Value::Object(object) if object.contains_key("dfaas_functions") => Ok(vec![Entry {
            label: source.to_string(),
            repetition: Some(1),
            result: object,
        }]),
        _ => Err(input_error(
            source,
            "expected a JSON array of lb's result entries ({\"repetition\": N, \
             \"generator_result\": {...}}), one such entry, or one result document of `run`",
        )),
    }
}

fn lb_entry(item: Value, label: &str) -> Option<Entry> {
    let Value::Object(mut object) = item else {
        return None;
    };
    let repetition = object
        .get("repetition")
        .and_then(Value::as_u64)
        .and_then(|r| u32::try_from(r).ok())
        .filter(|&r| r > 0);
    match object.remove("generator_result") {
        Some(Value::Object(result)) => Some(Entry {
            label: format!("{label}.generator_result"),
            repetition,
            result,
        }),
        _ => None,
    }
}

/// Writes the dataset files of `entries` into `out` (see the module docs).
pub fn export(entries: &[Entry], out: &Path) -> Result<ExportReport, ExportError> {
    let mut report = ExportReport {
        ok: true,
        output_dir: out.to_path_buf(),
        ..ExportReport::default()
    };
    let functions = campaign_functions(entries)?;
    if functions.is_empty() {
        return Ok(report);
    }
    fs::create_dir_all(out).map_err(|e| OutputError::io("create directory", out, e))?;
    let by_binary = reported_artifacts(entries);
    let mut files = Files {
        report: &mut report,
        by_binary,
    };

    for table in [Table::Results, Table::Skipped] {
        let path = out.join(table.file_name().unwrap_or_default());
        if files.keeps(&path) {
            continue;
        }
        let contents = rows_table(entries, table, &functions, &mut files.report.warnings);
        artifact::write_atomic(&path, &contents)?;
        files.report.written.push(path);
    }
    let index_path = out.join(Table::Index.file_name().unwrap_or_default());
    if !files.keeps(&index_path) {
        let contents = index_table(entries, &functions, &mut files.report.warnings);
        artifact::write_atomic(&index_path, &contents)?;
        files.report.written.push(index_path);
    }

    for entry in entries {
        iteration_files(entry, out, &functions, &mut files)?;
    }
    Ok(report)
}

/// The sorted union of the documents' `dfaas_functions`.
fn campaign_functions(entries: &[Entry]) -> Result<Vec<FunctionName>, ExportError> {
    let mut functions = BTreeSet::new();
    for entry in entries {
        let field = format!("{}.dfaas_functions", entry.label);
        let names = match entry.result.get("dfaas_functions") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(names)) => names,
            Some(_) => return Err(input_error(field, "not an array of function names")),
        };
        for (i, name) in names.iter().enumerate() {
            let name = name
                .as_str()
                .ok_or_else(|| input_error(format!("{field}[{i}]"), "not a string"))
                .and_then(|raw| {
                    FunctionName::parse(raw)
                        .map_err(|e| input_error(format!("{field}[{i}]"), e.to_string()))
                })?;
            functions.insert(name);
        }
    }
    Ok(functions.into_iter().collect())
}

/// The files the binary reported writing (`artifacts`), resolved.
fn reported_artifacts(entries: &[Entry]) -> HashSet<PathBuf> {
    entries
        .iter()
        .filter_map(|entry| entry.result.get("artifacts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|path| fs::canonicalize(path).ok())
        .collect()
}

/// The report being filled and what decides which files are kept.
struct Files<'a> {
    report: &'a mut ExportReport,
    by_binary: HashSet<PathBuf>,
}

impl Files<'_> {
    /// True (and recorded) when `path` is a file the binary reported.
    fn keeps(&mut self, path: &Path) -> bool {
        let kept = fs::canonicalize(path).is_ok_and(|p| self.by_binary.contains(&p));
        if kept {
            self.report.kept.push(path.to_path_buf());
        }
        kept
    }
}

/// The items of `entry.result[key]`, if it is an array (a warning if it
/// is something else).
fn items<'a>(entry: &'a Entry, key: &str, warnings: &mut Vec<String>) -> &'a [Value] {
    match entry.result.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            warnings.push(format!("{}.{key}: not an array, left out", entry.label));
            &[]
        }
    }
}

/// results.csv or skipped.csv: the header, then every row of every entry.
fn rows_table(
    entries: &[Entry],
    table: Table,
    functions: &[FunctionName],
    warnings: &mut Vec<String>,
) -> Vec<u8> {
    let key = match table {
        Table::Results => "dfaas_results",
        _ => "dfaas_skipped",
    };
    let header = table.header(functions);
    let columns: HashSet<&str> = header.iter().map(String::as_str).collect();
    let mut unknown = BTreeSet::new();
    let mut contents = table.header_line(functions);
    for entry in entries {
        for (i, row) in items(entry, key, warnings).iter().enumerate() {
            let Some(row) = row.as_object() else {
                warnings.push(format!(
                    "{}.{key}[{i}]: not an object, left out",
                    entry.label
                ));
                continue;
            };
            unknown.extend(
                row.keys()
                    .filter(|c| !columns.contains(c.as_str()))
                    .cloned(),
            );
            let cells: Vec<Cell> = header
                .iter()
                .map(|column| Cell::from_json(row.get(column).unwrap_or(&Value::Null)))
                .collect();
            let texts: Vec<_> = cells.iter().map(Cell::text).collect();
            contents.extend(encode_line(
                &texts.iter().map(|t| t.as_bytes()).collect::<Vec<_>>(),
                table.delimiter(),
            ));
        }
    }
    if !unknown.is_empty() {
        let file = table.file_name().unwrap_or_default();
        let unknown: Vec<String> = unknown.into_iter().collect();
        warnings.push(format!(
            "{file}: columns not in its header left out: {}",
            unknown.join(", ")
        ));
    }
    contents
}

/// index.csv: each configuration of the entries' `dfaas_index` once.
fn index_table(
    entries: &[Entry],
    functions: &[FunctionName],
    warnings: &mut Vec<String>,
) -> Vec<u8> {
    let mut contents = Table::Index.header_line(functions);
    let mut seen = HashSet::new();
    for entry in entries {
        for (i, item) in items(entry, "dfaas_index", warnings).iter().enumerate() {
            let Some(key) = index_key(item) else {
                warnings.push(format!(
                    "{}.dfaas_index[{i}]: not {{functions: [names], rates: [whole numbers]}} \
                     of the same length, left out",
                    entry.label
                ));
                continue;
            };
            if seen.insert(key.clone()) {
                contents.extend(index_line(&key));
            }
        }
    }
    contents
}

fn index_key(item: &Value) -> Option<ConfigKey> {
    let functions = item
        .get("functions")?
        .as_array()?
        .iter()
        .map(|f| f.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    let rates = item
        .get("rates")?
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect::<Option<Vec<_>>>()?;
    ConfigKey::new(functions, rates).ok()
}

/// The config id and iteration of a summaries or metrics entry.
fn iteration_of(item: &Value) -> Option<(ConfigId, u32)> {
    let id = ConfigId::parse(item.get("config_id")?.as_str()?).ok()?;
    let iteration = u32::try_from(item.get("iteration")?.as_u64()?).ok()?;
    Some((id, iteration))
}

/// The summaries, metrics (and query windows) and k6 scripts of one entry.
fn iteration_files(
    entry: &Entry,
    out: &Path,
    functions: &[FunctionName],
    files: &mut Files<'_>,
) -> Result<(), ExportError> {
    let summaries = items(entry, "dfaas_summaries", &mut files.report.warnings);
    let metrics = items(entry, "dfaas_metrics", &mut files.report.warnings);
    let repetition = match entry.repetition {
        Some(repetition) => Some(repetition),
        None if summaries.is_empty() && metrics.is_empty() => None,
        None => {
            files.report.warnings.push(format!(
                "{}: the entry has no repetition number, which names the summary and metrics \
                 files: they are left out",
                entry.label
            ));
            None
        }
    };
    let malformed = |key: &str, i: usize| {
        format!(
            "{}.{key}[{i}]: no valid config_id (12 hex digits) and iteration, left out",
            entry.label
        )
    };

    for (i, item) in summaries.iter().enumerate() {
        let Some(repetition) = repetition else { break };
        let Some((id, iteration)) = iteration_of(item) else {
            files.report.warnings.push(malformed("dfaas_summaries", i));
            continue;
        };
        let path = artifact::summary_path(out, &id, iteration, repetition);
        if !files.keeps(&path) {
            let summary = item.get("summary").unwrap_or(&Value::Null);
            let written = artifact::write_summary(out, &id, iteration, repetition, summary)?;
            files.report.written.push(written);
        }
    }

    for (i, item) in metrics.iter().enumerate() {
        let Some(repetition) = repetition else { break };
        let Some((id, iteration)) = iteration_of(item) else {
            files.report.warnings.push(malformed("dfaas_metrics", i));
            continue;
        };
        let measured = item.get("metrics").unwrap_or(&Value::Null);
        let (row, warnings) = IterationMetrics::from_json(measured, functions);
        let label = format!("{}.dfaas_metrics[{i}].metrics", entry.label);
        files
            .report
            .warnings
            .extend(warnings.into_iter().map(|w| format!("{label}.{w}")));
        let path = artifact::metrics_path(out, &id, iteration, repetition);
        if !files.keeps(&path) {
            let written =
                artifact::write_metrics(out, &id, iteration, repetition, functions, &row)?;
            files.report.written.push(written);
        }
        if let Some(window) = measured.get("window").filter(|w| w.is_object()) {
            let path = artifact::window_path(out, &id, iteration, repetition);
            if !files.keeps(&path) {
                let written = artifact::write_window(out, &id, iteration, repetition, window)?;
                files.report.written.push(written);
            }
        }
        if let Some(generators) = measured.get("generators").filter(|g| g.is_array()) {
            let path = artifact::generators_path(out, &id, iteration, repetition);
            if !files.keeps(&path) {
                let written =
                    artifact::write_generators(out, &id, iteration, repetition, generators)?;
                files.report.written.push(written);
            }
        }
    }

    for (i, item) in items(entry, "dfaas_scripts", &mut files.report.warnings)
        .iter()
        .enumerate()
    {
        let id = item
            .get("config_id")
            .and_then(Value::as_str)
            .and_then(|id| ConfigId::parse(id).ok());
        let script = match item.get("script") {
            None | Some(Value::Null) => Some(""),
            Some(script) => script.as_str(),
        };
        let (Some(id), Some(script)) = (id, script) else {
            files.report.warnings.push(format!(
                "{}.dfaas_scripts[{i}]: no valid config_id (12 hex digits) and script text, \
                 left out",
                entry.label
            ));
            continue;
        };
        let path = artifact::script_path(out, &id);
        if fs::symlink_metadata(&path).is_ok() {
            if !files.report.written.contains(&path) && !files.report.kept.contains(&path) {
                files.report.kept.push(path);
            }
            continue;
        }
        let written = artifact::write_script(out, &id, script)?;
        files.report.written.push(written);
    }
    Ok(())
}

/// `export --out DIR [FILE...]`: reads the entries from the files, or from
/// stdin without files, writes them and logs the warnings.
pub(crate) fn export_cmd(
    out: &Path,
    inputs: &[PathBuf],
    stdin: Option<&mut dyn Read>,
) -> Result<ExportReport, CommandError> {
    let mut entries = Vec::new();
    if inputs.is_empty() {
        let stdin = stdin.ok_or_else(|| {
            CommandError::input(
                "stdin",
                "no input on stdin: pipe lb's result entries (JSON) or name files",
            )
        })?;
        entries = read_entries(stdin, "stdin")?;
    }
    for path in inputs {
        let name = path.display().to_string();
        let file = fs::File::open(path)
            .map_err(|e| CommandError::input(name.clone(), format!("cannot read: {e}")))?;
        entries.extend(read_entries(file, &name)?);
    }
    let report = export(&entries, out)?;
    for warning in &report.warnings {
        tracing::warn!("export: {warning}");
    }
    Ok(report)
}

/// Bad input is exit 2; an output directory that cannot hold the files is
/// exit 2 (`--out`), the system refusing to write exit 3, as for `run`.
impl From<ExportError> for CommandError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Input { field, reason } => CommandError::Input { field, reason },
            ExportError::Output(source) => match source.fault() {
                Fault::Location => CommandError::input("--out", source.to_string()),
                Fault::Environment => CommandError::Environment {
                    message: source.to_string(),
                    context: json!({"path": source.path(), "os_error": source.os_error()}),
                },
                Fault::Internal => CommandError::Internal(source.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(repetition: u32, result: Value) -> Value {
        json!({"repetition": repetition, "generator_result": result})
    }

    fn document() -> Value {
        json!({
            "dfaas_functions": ["figlet"],
            "dfaas_results": [{"function_figlet": "figlet", "rate_function_figlet": 10,
                               "success_rate_function_figlet": "1.000", "extra": 1}],
            "dfaas_skipped": [],
            "dfaas_index": [{"functions": ["figlet"], "rates": [10], "results_file": "results.csv"}],
            "dfaas_summaries": [{"config_id": "abcdef012345", "iteration": 1, "summary": {"a": 1}},
                                {"config_id": "../../etc", "iteration": 1, "summary": {}}],
            "dfaas_metrics": [],
            "dfaas_scripts": [{"config_id": "abcdef012345", "script": "first\n"}],
        })
    }

    #[test]
    fn input_shapes() {
        let lb = entries_from_json(
            json!([entry(2, document()), {"repetition": 3, "generator_result": null}, 7]),
            "stdin",
        )
        .unwrap();
        assert_eq!(lb.len(), 1);
        assert_eq!(lb[0].label, "stdin[0].generator_result");
        assert_eq!(lb[0].repetition, Some(2));
        let one = entries_from_json(entry(4, document()), "f.json").unwrap();
        assert_eq!(one[0].repetition, Some(4));
        let bare = entries_from_json(document(), "f.json").unwrap();
        assert_eq!(
            (bare[0].label.as_str(), bare[0].repetition),
            ("f.json", Some(1))
        );
        let error = entries_from_json(json!({"a": 1}), "stdin").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("stdin: expected a JSON array"),
            "{error}"
        );
        let error = read_entries(&b"{"[..], "stdin").unwrap_err();
        assert!(
            error.to_string().starts_with("stdin: malformed JSON"),
            "{error}"
        );
    }

    #[test]
    fn writes_with_the_run_writers_and_reports_what_it_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let entries = entries_from_json(json!([entry(1, document())]), "stdin").unwrap();
        let report = export(&entries, &out).unwrap();
        assert_eq!(
            fs::read_to_string(out.join("index.csv")).unwrap(),
            "functions;rates;results_file\n['figlet'];[10];results.csv\n"
        );
        assert_eq!(
            fs::read_to_string(out.join("summaries/summary-abcdef012345-iter1-rep1.json")).unwrap(),
            "{\n  \"a\": 1\n}\n"
        );
        assert_eq!(report.written.len(), 5, "{report:?}");
        assert_eq!(
            report.warnings,
            [
                "results.csv: columns not in its header left out: extra",
                "stdin[0].generator_result.dfaas_summaries[1]: no valid config_id (12 hex \
                 digits) and iteration, left out"
            ]
        );
        assert!(!dir.path().join("etc").exists());
    }

    #[test]
    fn the_generators_figures_come_back_as_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let generators = json!([
            {"generator": "a:22", "segment": "0:1/2", "scheduled": 50, "saturated": null},
            {"generator": "b:22", "segment": "1/2:1", "scheduled": 31, "saturated": "short"},
        ]);
        let mut doc = document();
        doc["dfaas_metrics"] = json!([{"config_id": "abcdef012345", "iteration": 1,
            "metrics": {"cpu_usage_node": 0.5, "functions": {}, "generators": generators}}]);
        let report = export(
            &entries_from_json(json!([entry(2, doc)]), "stdin").unwrap(),
            &out,
        )
        .unwrap();
        let path = out.join("metrics/generators-abcdef012345-iter1-rep2.json");
        assert!(report.written.contains(&path), "{report:?}");
        let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, generators);
    }

    #[test]
    fn files_the_binary_reported_are_kept_and_the_first_script_wins() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results.csv");
        fs::write(&results, "the binary's rows\n").unwrap();
        let script = dir.path().join("k6_scripts/config-abcdef012345.js");
        let mut first = document();
        first["artifacts"] = json!([results.display().to_string()]);
        let mut second = document();
        second["dfaas_scripts"] = json!([{"config_id": "abcdef012345", "script": "second\n"}]);
        let entries =
            entries_from_json(json!([entry(1, first), entry(2, second)]), "stdin").unwrap();
        let report = export(&entries, dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&results).unwrap(), "the binary's rows\n");
        assert_eq!(fs::read_to_string(&script).unwrap(), "first\n");
        assert_eq!(report.kept, [results]);
        assert_eq!(report.written.iter().filter(|p| **p == script).count(), 1);
    }

    #[test]
    fn nothing_to_export_without_functions_and_bad_names_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let entries =
            entries_from_json(json!([entry(1, json!({"error": "crashed"}))]), "stdin").unwrap();
        assert!(export(&entries, &out).unwrap().written.is_empty());
        assert!(!out.exists());
        let entries = entries_from_json(
            json!([entry(1, json!({"dfaas_functions": ["Bad"]}))]),
            "stdin",
        )
        .unwrap();
        let error = CommandError::from(export(&entries, &out).unwrap_err());
        assert_eq!(error.exit_code(), crate::protocol::ExitCode::InvalidInput);
        assert!(
            error
                .to_string()
                .starts_with("stdin[0].generator_result.dfaas_functions[0]: "),
            "{error}"
        );
    }

    #[test]
    fn an_output_directory_that_is_a_file_is_invalid_input_naming_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let entries = entries_from_json(json!([entry(1, document())]), "stdin").unwrap();
        let error = CommandError::from(export(&entries, &file.join("out")).unwrap_err());
        assert_eq!(error.exit_code(), crate::protocol::ExitCode::InvalidInput);
        assert!(error.to_string().starts_with("--out: "), "{error}");
    }
}
