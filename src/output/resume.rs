//! Reading results.csv back to resume a campaign killed mid-configuration.
//!
//! A configuration is indexed only after all its iterations; if the run
//! dies in between, its finished iterations are already in results.csv. A
//! rerun asks [`completed_iterations`] how many rows (and how many
//! overloaded ones) each configuration has, runs only the missing
//! iterations, and counts the overloaded ones towards the majority rule —
//! so no row is ever written twice.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::crlf::CrlfToLf;
use super::tail::{complete_len, describe, TornLine};
use super::OutputError;
use crate::plan::ConfigKey;

/// Rows of one configuration found in results.csv.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompletedIterations {
    /// Rows (iterations) recorded.
    pub rows: u32,
    /// Of those, rows with `overloaded_node` = 1.
    pub overloaded: u32,
}

/// Counts the rows of results.csv at `path` per configuration. A missing
/// file has none. An unfinished last line is ignored and returned; the
/// file is not modified. Works on any results.csv layout (the functions are
/// read from the `function_<f>` / `rate_function_<f>` header columns).
pub fn completed_iterations(
    path: &Path,
) -> Result<(HashMap<ConfigKey, CompletedIterations>, Option<TornLine>), OutputError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((HashMap::new(), None)),
        Err(e) => return Err(OutputError::io("open", path, e)),
    };
    let read_err = |e| OutputError::io("read", path, e);
    let (complete, total) = complete_len(&mut file).map_err(read_err)?;
    let torn = if complete < total {
        Some(describe(&mut file, path.to_path_buf(), complete, total, false).map_err(read_err)?)
    } else {
        None
    };
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let counts = parse_completed_iterations(file.take(complete), &path.display().to_string())?;
    Ok((counts, torn))
}

/// [`completed_iterations`] over any reader; `source_name` names it in
/// errors.
pub fn parse_completed_iterations<R: Read>(
    reader: R,
    source_name: &str,
) -> Result<HashMap<ConfigKey, CompletedIterations>, OutputError> {
    count_rows(reader, source_name, true)
}

/// The configurations skipped.csv at `path` already lists (a rerun does not
/// list them twice). A missing file lists none; an unfinished last line is
/// ignored.
pub fn skipped_keys(path: &Path) -> Result<HashSet<ConfigKey>, OutputError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(OutputError::io("open", path, e)),
    };
    let read_err = |e| OutputError::io("read", path, e);
    let (complete, _) = complete_len(&mut file).map_err(read_err)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let counts = count_rows(file.take(complete), &path.display().to_string(), false)?;
    Ok(counts.into_keys().collect())
}

/// Rows per configuration of a results.csv or skipped.csv layout; the
/// `overloaded_node` column is read (and required) only with
/// `with_overload`.
fn count_rows<R: Read>(
    reader: R,
    source_name: &str,
    with_overload: bool,
) -> Result<HashMap<ConfigKey, CompletedIterations>, OutputError> {
    let malformed = |line: u64, reason: String| OutputError::Malformed {
        source_name: source_name.to_string(),
        line,
        reason,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(CrlfToLf::new(reader));
    let mut records = csv.byte_records();
    let header = match records.next() {
        None => return Ok(HashMap::new()),
        Some(h) => h.map_err(|e| malformed(e.position().map_or(1, |p| p.line()), e.to_string()))?,
    };
    let header: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let at = |name: &str| header.iter().position(|h| h == name);
    // (function, its name column, its rate column)
    let mut columns = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(function) = h.strip_prefix("function_") {
            let rate_at = at(&format!("rate_function_{function}")).ok_or_else(|| {
                malformed(
                    1,
                    format!("column {h} has no rate_function_{function} column"),
                )
            })?;
            columns.push((function.to_string(), i, rate_at));
        }
    }
    if columns.is_empty() {
        return Err(malformed(
            1,
            "header has no function_<name> column".to_string(),
        ));
    }
    let overloaded_at = match at("overloaded_node") {
        Some(i) => Some(i),
        None if with_overload => {
            return Err(malformed(
                1,
                "header has no overloaded_node column".to_string(),
            ))
        }
        None => None,
    };

    let mut counts: HashMap<ConfigKey, CompletedIterations> = HashMap::new();
    for record in records {
        let record =
            record.map_err(|e| malformed(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell =
            |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default()).unwrap_or("\u{fffd}");
        let mut functions = Vec::new();
        let mut rates = Vec::new();
        for (function, name_at, rate_at) in &columns {
            if cell(*name_at).is_empty() {
                continue;
            }
            let rate = cell(*rate_at);
            let rate = rate.parse::<u64>().map_err(|_| {
                malformed(
                    line,
                    format!("rate_function_{function}: {rate:?} is not a whole number"),
                )
            })?;
            functions.push(function.clone());
            rates.push(rate);
        }
        let key = ConfigKey::new(functions, rates)
            .map_err(|_| malformed(line, "the row names no function".to_string()))?;
        let overloaded = match overloaded_at.map(cell).unwrap_or("0") {
            "1" => true,
            "0" => false,
            other => {
                return Err(malformed(
                    line,
                    format!("overloaded_node: expected 0 or 1, found {other:?}"),
                ))
            }
        };
        let entry = counts.entry(key).or_default();
        entry.rows = entry.rows.saturating_add(1);
        entry.overloaded = entry.overloaded.saturating_add(u32::from(overloaded));
    }
    Ok(counts)
}
