//! `lb-dfaas memory summary` and `lb-dfaas memory query`: the memory file
//! opened read-only (DuckDB's `access_mode = READ_ONLY`), so neither can
//! change it, whatever SQL it is given.
//!
//! Query results are written row by row to a caller-supplied writer, as
//! JSON lines (one object per row, columns in order) or CSV (a header,
//! then the rows). Values follow DuckDB's own text forms (timestamps as
//! `2026-01-02 03:04:05.123456`); NaN and infinities are the strings
//! `nan`, `inf`, `-inf` in JSON, as elsewhere in lb-dfaas.

use std::io::Write;
use std::path::Path;

use duckdb::arrow::datatypes::{DataType, IntervalUnit, TimeUnit as ArrowTimeUnit};
use duckdb::types::{TimeUnit, Value};
use duckdb::{AccessMode, Connection};
use serde::Serialize;
use serde_json::{Map, Number, Value as Json};

use super::schema::{self, SCHEMA_VERSION};
use super::store::open_connection;
use super::MemoryError;

/// Opens an existing memory file read-only and checks its schema.
pub fn open_read_only(path: &Path) -> Result<Connection, MemoryError> {
    if !path.is_file() {
        return Err(MemoryError::NoFile(path.to_path_buf()));
    }
    let conn = open_connection(path, AccessMode::ReadOnly)?;
    schema::check(&conn, SCHEMA_VERSION)?;
    Ok(conn)
}

/// Output format of `memory query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFormat {
    JsonLines,
    Csv,
}

/// Runs one SQL statement and writes its rows to `out`; returns the row
/// count. A statement that cannot run (syntax, a write on the read-only
/// file, an unknown table) is [`MemoryError::Query`].
pub fn query(
    conn: &Connection,
    sql: &str,
    format: QueryFormat,
    out: &mut dyn Write,
) -> Result<u64, MemoryError> {
    let mut statement = conn
        .prepare(sql)
        .map_err(|e| MemoryError::Query(e.to_string()))?;
    let mut rows = statement
        .query([])
        .map_err(|e| MemoryError::Query(e.to_string()))?;
    let (names, types) = match rows.as_ref() {
        Some(statement) => (
            unique_names(&statement.column_names()),
            (0..statement.column_count())
                .map(|i| statement.column_type(i))
                .collect::<Vec<_>>(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    // The driver reads values through Arrow; refuse types it cannot
    // represent up front instead of failing half-way through the output.
    for (name, data_type) in names.iter().zip(&types) {
        if !printable(data_type) {
            return Err(MemoryError::Query(format!(
                "column {name:?} has a type this command cannot print ({data_type}); \
                 cast it, e.g. CAST({name} AS VARCHAR)"
            )));
        }
    }
    let write_error =
        |e: std::io::Error| MemoryError::Query(format!("cannot write the output: {e}"));
    let csv_error = |e: csv::Error| MemoryError::Query(format!("cannot write the output: {e}"));
    let mut sink = match format {
        QueryFormat::Csv => {
            let mut writer = csv::WriterBuilder::new().from_writer(out);
            writer.write_record(&names).map_err(csv_error)?;
            Sink::Csv(Box::new(writer))
        }
        QueryFormat::JsonLines => Sink::JsonLines(out),
    };
    let mut count = 0u64;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return Err(MemoryError::Query(e.to_string())),
        };
        let mut values = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            values.push(
                row.get::<_, Value>(i)
                    .map_err(|e| MemoryError::Query(e.to_string()))?,
            );
        }
        match &mut sink {
            Sink::Csv(writer) => {
                let cells: Vec<String> = values.iter().map(csv_cell).collect();
                writer.write_record(&cells).map_err(csv_error)?;
            }
            Sink::JsonLines(out) => {
                let object: Map<String, Json> = names
                    .iter()
                    .cloned()
                    .zip(values.iter().map(to_json))
                    .collect();
                let mut line = serde_json::to_vec(&Json::Object(object))
                    .map_err(|e| MemoryError::Query(e.to_string()))?;
                line.push(b'\n');
                out.write_all(&line).map_err(write_error)?;
            }
        }
        count += 1;
    }
    match sink {
        Sink::Csv(mut writer) => writer.flush().map_err(write_error)?,
        Sink::JsonLines(out) => out.flush().map_err(write_error)?,
    }
    Ok(count)
}

/// Where `query` writes its rows.
enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    JsonLines(&'a mut dyn Write),
}

/// Column names made unique (`x`, `x_2`, ...) so JSON objects keep every column.
fn unique_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let mut candidate = name.clone();
        let mut n = 2;
        while out.contains(&candidate) {
            candidate = format!("{name}_{n}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

/// The Arrow types DuckDB's results come in that the driver reads back.
fn printable(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Timestamp(..)
        | DataType::Date32
        | DataType::Time64(ArrowTimeUnit::Microsecond)
        | DataType::Interval(IntervalUnit::MonthDayNano)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::FixedSizeBinary(_) => true,
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::FixedSizeList(field, _)
        | DataType::Map(field, _) => printable(field.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| printable(f.data_type())),
        DataType::Dictionary(key, value) => {
            matches!(
                key.as_ref(),
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32
            ) && printable(value)
        }
        _ => false,
    }
}

/// A value as JSON: numbers as numbers, NaN/infinities and values without
/// a JSON form as text, lists as arrays, structs as objects.
pub(crate) fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::TinyInt(v) => Json::from(*v),
        Value::SmallInt(v) => Json::from(*v),
        Value::Int(v) => Json::from(*v),
        Value::BigInt(v) => Json::from(*v),
        Value::UTinyInt(v) => Json::from(*v),
        Value::USmallInt(v) => Json::from(*v),
        Value::UInt(v) => Json::from(*v),
        Value::UBigInt(v) => Json::from(*v),
        Value::HugeInt(v) => i64::try_from(*v)
            .map(Json::from)
            .or_else(|_| u64::try_from(*v).map(Json::from))
            .unwrap_or_else(|_| Json::String(v.to_string())),
        Value::Float(v) => float(f64::from(*v)),
        Value::Double(v) => float(*v),
        Value::Decimal(d) => d
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Json::String(d.to_string()), Json::Number),
        Value::List(items) | Value::Array(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Value::Map(entries) => {
            let all_text = entries.iter().all(|(k, _)| matches!(k, Value::Text(_)));
            if all_text {
                Json::Object(entries.iter().map(|(k, v)| (text(k), to_json(v))).collect())
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                )
            }
        }
        Value::Union(inner) => to_json(inner),
        other => Json::String(text(other)),
    }
}

fn float(v: f64) -> Json {
    Number::from_f64(v).map_or_else(|| Json::String(float_text(v)), Json::Number)
}

fn float_text(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        v.to_string()
    }
}

/// A CSV cell: NULL is empty, nested values are their JSON text.
fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::List(_) | Value::Array(_) | Value::Struct(_) | Value::Map(_) => {
            to_json(value).to_string()
        }
        Value::Union(inner) => csv_cell(inner),
        other => text(other),
    }
}

/// A scalar's text, as DuckDB casts it to VARCHAR where it matters.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Boolean(b) => b.to_string(),
        Value::TinyInt(v) => v.to_string(),
        Value::SmallInt(v) => v.to_string(),
        Value::Int(v) => v.to_string(),
        Value::BigInt(v) => v.to_string(),
        Value::HugeInt(v) => v.to_string(),
        Value::UTinyInt(v) => v.to_string(),
        Value::USmallInt(v) => v.to_string(),
        Value::UInt(v) => v.to_string(),
        Value::UBigInt(v) => v.to_string(),
        Value::Float(v) => float_text(f64::from(*v)),
        Value::Double(v) => float_text(*v),
        Value::Decimal(d) => d.to_string(),
        Value::Timestamp(unit, v) => timestamp_text(*unit, *v),
        Value::Text(s) | Value::Enum(s) => s.clone(),
        Value::Blob(bytes) => bytes.iter().map(|b| format!("\\x{b:02X}")).collect(),
        Value::Date32(days) => date_text(i64::from(*days)),
        Value::Time64(unit, v) => {
            let micros = to_micros(*unit, *v).rem_euclid(86_400_000_000);
            time_text(micros)
        }
        Value::Interval {
            months,
            days,
            nanos,
        } => format!("{months} months {days} days {nanos} ns"),
        Value::List(_) | Value::Array(_) | Value::Struct(_) | Value::Map(_) => {
            to_json(value).to_string()
        }
        Value::Union(inner) => text(inner),
    }
}

fn to_micros(unit: TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (naive, as stored).
fn timestamp_text(unit: TimeUnit, v: i64) -> String {
    let micros = to_micros(unit, v);
    let days = micros.div_euclid(86_400_000_000);
    let time = micros.rem_euclid(86_400_000_000);
    format!("{} {}", date_text(days), time_text(time))
}

fn time_text(micros: i64) -> String {
    let seconds = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    let hms = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction == 0 {
        hms
    } else {
        format!("{hms}.{fraction:06}")
    }
}

/// Days since 1970-01-01 as a proleptic Gregorian date (H. Hinnant's
/// civil-from-days).
fn date_text(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// What `memory summary` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Summary {
    pub db: String,
    pub schema_version: String,
    /// Every run, oldest first.
    pub runs: Vec<RunSummary>,
    /// Configurations in `config_catalog`.
    pub configurations: u64,
    /// Measured iterations (events without a skip reason).
    pub iterations: u64,
    /// Measured iterations that overloaded the node.
    pub overloaded_iterations: u64,
    /// Configurations with at least one overloaded iteration.
    pub overloaded_configurations: u64,
    /// Skipped configurations per reason.
    pub skipped: Map<String, Json>,
    /// Per function, by name.
    pub functions: Vec<FunctionSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunSummary {
    pub run_id: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub status: Option<String>,
    pub mode: Option<String>,
    pub git_rev: Option<String>,
    pub config_hash: Option<String>,
    pub iterations: u64,
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FunctionSummary {
    pub function: String,
    /// Configurations measured or skipped that include the function.
    pub configurations: u64,
    pub iterations: u64,
    pub overloaded_iterations: u64,
    /// Highest rate measured for it, if any iteration was.
    pub max_rate: Option<i64>,
}

/// `overloaded_node` of an event, as a boolean SQL expression.
const OVERLOADED: &str =
    "coalesce(lower(trim(json_extract_string(payload_json, '$.result_row.overloaded_node'))) \
     IN ('1', '1.0', 'true'), false)";

/// Reads the summary of an open memory file.
pub(crate) fn summary(conn: &Connection, db: &Path) -> Result<Summary, MemoryError> {
    let sql_error = |e: duckdb::Error| MemoryError::sql("summarise the memory", e);
    let schema_version = schema::stored_version(conn)?.unwrap_or_default();
    let mut runs = Vec::new();
    {
        let mut statement = conn
            .prepare(
                "SELECT r.run_id, CAST(r.started_at AS VARCHAR), CAST(r.ended_at AS VARCHAR), \
                 r.status, r.mode, r.git_rev, r.config_hash, \
                 (SELECT count(*) FROM execution_events e \
                  WHERE e.run_id = r.run_id AND e.skip_reason IS NULL), \
                 (SELECT count(*) FROM execution_events e \
                  WHERE e.run_id = r.run_id AND e.skip_reason IS NOT NULL) \
                 FROM run_sessions r ORDER BY r.started_at NULLS LAST, r.run_id",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map([], |row| {
                Ok(RunSummary {
                    run_id: row.get(0)?,
                    started_at: row.get(1)?,
                    ended_at: row.get(2)?,
                    status: row.get(3)?,
                    mode: row.get(4)?,
                    git_rev: row.get(5)?,
                    config_hash: row.get(6)?,
                    iterations: count(row.get(7)?),
                    skipped: count(row.get(8)?),
                })
            })
            .map_err(sql_error)?;
        for run in rows {
            runs.push(run.map_err(sql_error)?);
        }
    }
    let count_of = |sql: &str| -> Result<u64, MemoryError> {
        conn.query_row(sql, [], |row| row.get::<_, i64>(0))
            .map(count)
            .map_err(sql_error)
    };
    let configurations = count_of("SELECT count(*) FROM config_catalog")?;
    let iterations = count_of("SELECT count(*) FROM execution_events WHERE skip_reason IS NULL")?;
    let overloaded_iterations = count_of(&format!(
        "SELECT count(*) FROM execution_events WHERE skip_reason IS NULL AND {OVERLOADED}"
    ))?;
    let overloaded_configurations = count_of(&format!(
        "SELECT count(DISTINCT config_id) FROM execution_events \
         WHERE skip_reason IS NULL AND {OVERLOADED}"
    ))?;
    let mut skipped = Map::new();
    {
        let mut statement = conn
            .prepare(
                "SELECT skip_reason, count(*) FROM execution_events \
                 WHERE skip_reason IS NOT NULL GROUP BY skip_reason ORDER BY skip_reason",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(sql_error)?;
        for row in rows {
            let (reason, n) = row.map_err(sql_error)?;
            skipped.insert(reason, Json::from(count(n)));
        }
    }
    let mut functions = Vec::new();
    {
        let mut statement = conn
            .prepare(&format!(
                "WITH pairs AS ( \
                   SELECT config_id, skip_reason, {OVERLOADED} AS overloaded, \
                          unnest(CAST(config_functions AS VARCHAR[])) AS function, \
                          unnest(CAST(config_rates AS BIGINT[])) AS rate \
                   FROM execution_events) \
                 SELECT function, count(DISTINCT config_id), \
                        count(*) FILTER (WHERE skip_reason IS NULL), \
                        count(*) FILTER (WHERE skip_reason IS NULL AND overloaded), \
                        max(rate) FILTER (WHERE skip_reason IS NULL) \
                 FROM pairs GROUP BY function ORDER BY function"
            ))
            .map_err(sql_error)?;
        let rows = statement
            .query_map([], |row| {
                Ok(FunctionSummary {
                    function: row.get(0)?,
                    configurations: count(row.get(1)?),
                    iterations: count(row.get(2)?),
                    overloaded_iterations: count(row.get(3)?),
                    max_rate: row.get(4)?,
                })
            })
            .map_err(sql_error)?;
        for row in rows {
            functions.push(row.map_err(sql_error)?);
        }
    }
    Ok(Summary {
        db: db.display().to_string(),
        schema_version,
        runs,
        configurations,
        iterations,
        overloaded_iterations,
        overloaded_configurations,
        skipped,
        functions,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps_read_as_duckdb_writes_them() {
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(date_text(19_723), "2024-01-01");
        assert_eq!(date_text(11_016), "2000-02-29");
        assert_eq!(
            timestamp_text(TimeUnit::Microsecond, 1_704_067_200_000_001),
            "2024-01-01 00:00:00.000001"
        );
        assert_eq!(
            timestamp_text(TimeUnit::Second, 1_704_153_599),
            "2024-01-01 23:59:59"
        );
        assert_eq!(
            timestamp_text(TimeUnit::Microsecond, -1),
            "1969-12-31 23:59:59.999999"
        );
    }

    #[test]
    fn values_become_json_without_losing_nan() {
        assert_eq!(to_json(&Value::Double(f64::NAN)), Json::from("nan"));
        assert_eq!(to_json(&Value::Double(-f64::INFINITY)), Json::from("-inf"));
        assert_eq!(to_json(&Value::Double(1.5)), Json::from(1.5));
        assert_eq!(to_json(&Value::HugeInt(7)), Json::from(7));
        assert_eq!(
            to_json(&Value::HugeInt(i128::MAX)),
            Json::from(i128::MAX.to_string())
        );
        assert_eq!(
            to_json(&Value::List(vec![Value::Int(1), Value::Null])),
            serde_json::json!([1, null])
        );
        assert_eq!(csv_cell(&Value::Null), "");
        assert_eq!(csv_cell(&Value::Blob(vec![0xab, 1])), "\\xAB\\x01");
    }

    #[test]
    fn repeated_column_names_are_made_unique() {
        let names = ["a", "a", "b", "a"].map(String::from);
        assert_eq!(unique_names(&names), ["a", "a_2", "b", "a_3"]);
    }
}
