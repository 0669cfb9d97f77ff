//! What a job produced, read back from its directory for `GET results`:
//! a campaign's results.csv, skipped.csv and index.csv rows as JSON
//! objects (column → cell text, exactly as in the file) or the files
//! themselves, a suite's per-script outcomes, and the k6 summary of one
//! iteration or script.
//!
//! Read-only and safe while a job writes: tables are read up to their
//! last complete line, and only regular files are opened.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::jobs::{read_small, JobDir};
use super::suite::SuiteRecord;
use crate::output::artifact::summary_path;
use crate::output::table::Table;
use crate::output::tail::open_complete;
use crate::plan::ConfigId;

/// Most rows one request returns per table.
pub(crate) const MAX_ROWS: usize = 10_000;
/// A summary file larger than this is not sent.
const MAX_SUMMARY_BYTES: u64 = 16 * 1024 * 1024;
/// A table larger than this is not sent as CSV.
const MAX_CSV_BYTES: u64 = 512 * 1024 * 1024;

/// One of a campaign's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableName {
    Results,
    Skipped,
    Index,
}

impl TableName {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "results" => Some(TableName::Results),
            "skipped" => Some(TableName::Skipped),
            "index" => Some(TableName::Index),
            _ => None,
        }
    }

    fn table(self) -> Table {
        match self {
            TableName::Results => Table::Results,
            TableName::Skipped => Table::Skipped,
            TableName::Index => Table::Index,
        }
    }

    pub(crate) fn file_name(self) -> &'static str {
        self.table().file_name().unwrap_or("results.csv")
    }

    pub(crate) const ALL: [TableName; 3] =
        [TableName::Results, TableName::Skipped, TableName::Index];

    pub(crate) fn key(self) -> &'static str {
        match self {
            TableName::Results => "results",
            TableName::Skipped => "skipped",
            TableName::Index => "index",
        }
    }
}

/// Rows of one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Rows {
    pub columns: Vec<String>,
    /// Rows in the file (complete lines after the header).
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<Map<String, Value>>,
}

/// `limit` rows from `offset` of a table; an absent table has no rows.
pub(crate) fn read_rows(
    output_dir: &Path,
    table: TableName,
    offset: usize,
    limit: usize,
) -> Result<Rows, ApiError> {
    let path = output_dir.join(table.file_name());
    let mut rows = Rows {
        columns: Vec::new(),
        total: 0,
        offset,
        rows: Vec::new(),
    };
    let opened = open_complete(&path).map_err(|e| ApiError::internal(e.to_string()))?;
    let Some(lines) = opened else {
        return Ok(rows);
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(table.table().delimiter())
        .flexible(true)
        .from_reader(lines.file.take(lines.complete));
    rows.columns = reader
        .headers()
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let limit = limit.min(MAX_ROWS);
    for record in reader.records() {
        let record = record.map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        if rows.total >= offset && rows.rows.len() < limit {
            let row = rows
                .columns
                .iter()
                .zip(record.iter().map(|cell| Value::String(cell.to_string())))
                .map(|(column, cell)| (column.clone(), cell))
                .collect();
            rows.rows.push(row);
        }
        rows.total += 1;
    }
    Ok(rows)
}

/// A table's file up to its last complete line (empty when absent).
pub(crate) fn table_csv(output_dir: &Path, table: TableName) -> Result<Vec<u8>, ApiError> {
    let path = output_dir.join(table.file_name());
    let opened = open_complete(&path).map_err(|e| ApiError::internal(e.to_string()))?;
    let Some(lines) = opened else {
        return Ok(Vec::new());
    };
    if lines.complete > MAX_CSV_BYTES {
        return Err(ApiError::internal(format!(
            "{} is larger than {MAX_CSV_BYTES} bytes: read it from the state directory",
            table.file_name()
        )));
    }
    let mut bytes = Vec::new();
    lines
        .file
        .take(lines.complete)
        .read_to_end(&mut bytes)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    Ok(bytes)
}

/// The functions of a results header (`function_<f>` columns).
pub(crate) fn functions(columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .filter_map(|c| c.strip_prefix("function_"))
        .map(str::to_string)
        .collect()
}

/// A suite job's outcomes (none yet before its first script ended).
pub(crate) fn suite_record(job: &JobDir) -> Result<SuiteRecord, ApiError> {
    match read_small(&job.suite_record(), MAX_SUMMARY_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal(format!("suite.json: {e}"))),
        Err(_) if !job.suite_record().exists() => Ok(SuiteRecord::default()),
        Err(e) => Err(ApiError::internal(format!("suite.json: {e}"))),
    }
}

/// The suite's outcomes as CSV.
pub(crate) fn suite_csv(record: &SuiteRecord) -> Result<Vec<u8>, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| ApiError::internal(e.to_string());
    writer
        .write_record([
            "name",
            "status",
            "exit_code",
            "start_time",
            "end_time",
            "duration_seconds",
            "users",
            "http_reqs",
            "http_req_failed_rate",
            "http_req_duration_avg_ms",
            "iterations",
            "checks_rate",
            "error",
        ])
        .map_err(fail)?;
    let number = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for s in &record.scripts {
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        writer
            .write_record([
                s.name.clone(),
                status,
                s.exit_code.map_or(String::new(), |c| c.to_string()),
                s.start_time.clone(),
                s.end_time.clone(),
                format!("{:.3}", s.duration_seconds),
                s.users.to_string(),
                number(s.http_reqs),
                number(s.http_req_failed_rate),
                number(s.http_req_duration_avg_ms),
                number(s.iterations),
                number(s.checks_rate),
                s.error.clone().unwrap_or_default(),
            ])
            .map_err(fail)?;
    }
    writer
        .into_inner()
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The k6 summary of a campaign iteration (`config`, `iteration`) or of
/// a suite script.
pub(crate) fn summary(job: &JobDir, which: &SummaryOf) -> Result<Value, ApiError> {
    let path = match which {
        SummaryOf::Iteration { config, iteration } => {
            let id =
                ConfigId::parse(config).map_err(|e| ApiError::field("config", e.to_string()))?;
            summary_path(&job.output(), &id, *iteration, 1)
        }
        SummaryOf::Script(name) => {
            super::suite::check_name(name).map_err(|reason| ApiError::field("script", reason))?;
            job.dir.join("summaries").join(format!("{name}.json"))
        }
    };
    if !path.exists() {
        return Err(ApiError::not_found(format!(
            "job {} has no such summary",
            job.id
        )));
    }
    let bytes = read_small(&path, MAX_SUMMARY_BYTES)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("{}: not JSON: {e}", path.display())))
}

/// Which summary.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SummaryOf {
    Iteration { config: String, iteration: u32 },
    Script(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_as_objects_up_to_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("results.csv"),
            "function_f,rate_function_f,success_rate_function_f\nf,10,1.000\nf,20,0.950\nf,30,0.",
        )
        .unwrap();
        let rows = read_rows(dir.path(), TableName::Results, 0, 10).unwrap();
        assert_eq!(rows.total, 2);
        assert_eq!(rows.rows[1]["rate_function_f"], "20");
        assert_eq!(rows.rows[1]["success_rate_function_f"], "0.950");
        assert_eq!(functions(&rows.columns), ["f"]);
        let page = read_rows(dir.path(), TableName::Results, 1, 10).unwrap();
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0]["rate_function_f"], "20");
        let csv = table_csv(dir.path(), TableName::Results).unwrap();
        assert!(String::from_utf8(csv).unwrap().ends_with("f,20,0.950\n"));
        let none = read_rows(dir.path(), TableName::Index, 0, 10).unwrap();
        assert_eq!(none.total, 0);
    }

    #[test]
    fn index_rows_use_semicolons() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.csv"),
            "functions;rates;results_file\n['f'];[10];results.csv\n",
        )
        .unwrap();
        let rows = read_rows(dir.path(), TableName::Index, 0, 10).unwrap();
        assert_eq!(rows.rows[0]["functions"], "['f']");
        assert_eq!(rows.rows[0]["rates"], "[10]");
    }

    #[test]
    fn summaries_are_found_by_validated_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobDir {
            id: "j".into(),
            dir: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(dir.path().join("summaries")).unwrap();
        std::fs::write(dir.path().join("summaries/a.js.json"), "{\"metrics\": {}}").unwrap();
        assert!(summary(&job, &SummaryOf::Script("a.js".into())).is_ok());
        let missing = summary(&job, &SummaryOf::Script("b.js".into())).unwrap_err();
        assert_eq!(missing.status().as_u16(), 404);
        let bad = summary(&job, &SummaryOf::Script("../x.js".into())).unwrap_err();
        assert_eq!(bad.status().as_u16(), 400);
        let bad = summary(
            &job,
            &SummaryOf::Iteration {
                config: "../../etc".into(),
                iteration: 1,
            },
        )
        .unwrap_err();
        assert_eq!(bad.status().as_u16(), 400);
    }
}
