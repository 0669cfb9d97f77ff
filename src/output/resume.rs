//! Reading results.csv back to resume a campaign killed mid-configuration.
//!
//! A configuration is indexed only after all its iterations; if the run
//! dies in between, its finished iterations are already in results.csv. A
//! rerun asks [`completed_iterations`] how many rows (and how many
//! overloaded ones) each configuration has, runs only the missing
//! iterations, and counts the overloaded ones towards the majority rule —
//! so no row is ever written twice.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use super::records::{for_each_row, malformed, parse_flag, RowsHeader};
use super::tail::{open_complete, TornLine};
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
    let Some(lines) = open_complete(path)? else {
        return Ok((HashMap::new(), None));
    };
    let counts =
        parse_completed_iterations(lines.file.take(lines.complete), &path.display().to_string())?;
    let torn = lines.torn;
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
pub(crate) fn skipped_keys(path: &Path) -> Result<HashSet<ConfigKey>, OutputError> {
    let Some(lines) = open_complete(path)? else {
        return Ok(HashSet::new());
    };
    let counts = count_rows(
        lines.file.take(lines.complete),
        &path.display().to_string(),
        false,
    )?;
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
    let mut counts: HashMap<ConfigKey, CompletedIterations> = HashMap::new();
    // `Some(position)` once the header has been checked.
    let mut overloaded_at: Option<Option<usize>> = None;
    let header = for_each_row(reader, source_name, |header, row| {
        let at = match overloaded_at {
            Some(at) => at,
            None => overload_column(header, source_name, with_overload)?,
        };
        overloaded_at = Some(at);
        let overloaded = match at {
            Some(i) => parse_flag(row.cell(i), "overloaded_node", source_name, row.line)?,
            None => false,
        };
        let entry = counts.entry(row.key).or_default();
        entry.rows = entry.rows.saturating_add(1);
        entry.overloaded = entry.overloaded.saturating_add(u32::from(overloaded));
        Ok(())
    })?;
    if let (Some(header), None) = (&header, overloaded_at) {
        overload_column(header, source_name, with_overload)?;
    }
    Ok(counts)
}

/// The `overloaded_node` column, required with `with_overload`.
fn overload_column(
    header: &RowsHeader,
    source_name: &str,
    with_overload: bool,
) -> Result<Option<usize>, OutputError> {
    match header.column("overloaded_node") {
        None if with_overload => Err(malformed(
            source_name,
            1,
            "header has no overloaded_node column",
        )),
        at => Ok(at),
    }
}
