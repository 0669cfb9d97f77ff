//! The CSV datasets (results.csv, skipped.csv, index.csv) and the
//! per-iteration artifacts (summaries, metrics, k6 scripts), byte-compatible
//! with the legacy DFaaS sampler (SPEC §5).
//!
//! Layers: [`cell`] formats values, [`table`] knows the headers and encodes
//! lines, [`row`] turns typed rows into cells (and into the protocol's JSON
//! rows) — all pure. [`Dataset`] appends lines durably to the three files,
//! [`index`] reads index.csv back, [`records`] results and skipped rows
//! (for [`resume`] and the campaign report), [`artifact`] writes the
//! per-iteration files atomically. [`export`] writes the same files from
//! the result documents lb collected (`lb-dfaas export`). Decisions about
//! what to write (overload, skips) belong to the campaign, not here.
//!
//! A line counts only once its terminating `\n` is on disk: every line is
//! written with one `write_all` and synced before the caller goes on, so a
//! kill can leave at most one unfinished last line. Readers ignore such a
//! line and [`Dataset::open`] cuts it off, each reporting a [`TornLine`].

pub mod artifact;
pub mod cell;
mod crlf;
mod dataset;
pub mod export;
pub mod index;
pub mod location;
pub mod records;
pub mod resume;
pub mod row;
pub mod table;
pub(crate) mod tail;

pub use dataset::{Dataset, IterationFiles, IterationRecord};
pub use row::{FunctionCells, NodeCells, ResultRow};
pub use tail::TornLine;

use std::io;
use std::path::{Path, PathBuf};

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
    /// A path where a table or an artifact directory belongs is something
    /// a campaign must not write to (a directory, a FIFO, a symbolic link,
    /// a file where a directory belongs).
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
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

/// Whose problem an [`OutputError`] is, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The output location is wrong (exit 2): a file where a directory
    /// belongs, a special file or a link where a table belongs, a table of
    /// another layout, an unreadable index. The user must choose another
    /// place or move the file away.
    Location,
    /// The system refused (exit 3): read-only filesystem, no permission,
    /// disk full, an I/O error.
    Environment,
    /// A bug: a row that does not fit the dataset.
    Internal,
}

/// errno values (Linux, every architecture) that mean "this path is the
/// wrong kind of thing", not "the system refused".
pub(crate) const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const EEXIST: i32 = 17;
const ENXIO: i32 = 6;

impl OutputError {
    /// Classifies the error for its exit code (see [`Fault`]).
    pub fn fault(&self) -> Fault {
        match self {
            OutputError::Unusable { .. }
            | OutputError::HeaderMismatch { .. }
            | OutputError::Malformed { .. } => Fault::Location,
            OutputError::Io { source, .. } => match source.raw_os_error() {
                Some(ENOTDIR | EISDIR | EEXIST | ENXIO) => Fault::Location,
                _ if source.kind() == io::ErrorKind::InvalidInput => Fault::Location,
                _ => Fault::Environment,
            },
            OutputError::UnknownFunction(_) | OutputError::EmptyRow | OutputError::NoFunctions => {
                Fault::Internal
            }
        }
    }

    /// The file or directory the error is about, if it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            OutputError::Io { path, .. }
            | OutputError::Unusable { path, .. }
            | OutputError::HeaderMismatch { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The operating system's message, for an I/O error.
    pub(crate) fn os_error(&self) -> Option<String> {
        match self {
            OutputError::Io { source, .. } => Some(source.to_string()),
            _ => None,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        OutputError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
