//! The CSV datasets (results.csv, skipped.csv, index.csv) and the
//! per-iteration artifacts (summaries, metrics, k6 scripts), byte-compatible
//! with the legacy DFaaS sampler (SPEC §5).
//!
//! Layers: [`cell`] formats values, [`table`] knows the headers and encodes
//! lines, [`row`] turns typed rows into cells (and into the protocol's JSON
//! rows) — all pure. [`Dataset`] appends lines durably to the three files,
//! [`index`] reads index.csv back, [`records`] results and skipped rows
//! (for [`resume`] and the campaign report), [`artifact`] writes the
//! per-iteration files atomically. Decisions about what to write (overload,
//! skips) belong to the campaign, not here.
//!
//! A line counts only once its terminating `\n` is on disk: every line is
//! written with one `write_all` and synced before the caller goes on, so a
//! kill can leave at most one unfinished last line. Readers ignore such a
//! line and [`Dataset::open`] cuts it off, each reporting a [`TornLine`].

pub mod artifact;
pub mod cell;
mod crlf;
mod dataset;
pub mod index;
pub mod records;
pub mod resume;
pub mod row;
pub mod table;
mod tail;

pub use dataset::Dataset;
pub use row::{FunctionCells, FunctionMetrics, MetricsRow, NodeCells, ResultRow};
pub use tail::TornLine;

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "append a row to".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} has a different header than this campaign writes (rows are never mixed; use another output directory or move the file away)\n  expected: {expected}\n  found:    {found}"
    )]
    HeaderMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{source_name} line {line}: {reason}")]
    Malformed {
        /// File path or another name of the input.
        source_name: String,
        /// 1-based line number.
        line: u64,
        reason: String,
    },
    #[error("a row names function {0:?}, which is not one of the campaign's functions")]
    UnknownFunction(String),
    #[error("a row needs at least one function")]
    EmptyRow,
    #[error("a dataset needs at least one function")]
    NoFunctions,
}

impl OutputError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        OutputError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
