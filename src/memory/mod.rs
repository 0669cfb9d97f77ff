//! Campaign memory: every iteration of every run in an embedded DuckDB
//! file, in lb's `peva_faas` schema (`peva_faas_mem_v1`), so a file written
//! by either program opens in the other.
//!
//! - [`config`]: the `memory` config section (peva_faas's fields and
//!   defaults) and where relative paths resolve;
//! - [`schema`]: the tables as data, their DDL, and the strict version check;
//! - [`store`]: [`MemoryStore`], the file open for writing: runs,
//!   iterations, skips, what is already known, Parquet export and preload;
//! - [`record`]: the plain data the store takes and gives;
//! - [`recorder`]: [`MemoryRecorder`], the progress observer that writes a
//!   run into the store (each record committed before the campaign's next
//!   step) and closes it when the run ends;
//! - [`inspect`]: the read-only side (`lb-dfaas memory summary|query`).
//!
//! The campaign loop does not know the memory: it reports progress, which
//! the recorder turns into calls on [`MemoryStore`], and it takes what the
//! memory already knows ([`MemoryStore::known_all`]) as plain data before
//! it starts (`crate::campaign::Campaign::recall`). DuckDB comes from
//! a prebuilt `libduckdb.so` (1.4.4, the version lb pins) linked at run time
//! — see `build.rs`.

pub mod config;
pub mod inspect;
pub mod record;
pub mod recorder;
pub mod schema;
pub mod store;

use std::path::{Path, PathBuf};

pub use config::{MemoryConfig, MemoryPaths, RawMemoryConfig};
pub use record::{
    digest, skip_reason, CampaignIdentity, IterationRecord, Known, Recorded, RunInfo, RunStatus,
    SkipRecord,
};
pub use recorder::{MemoryRecorder, RunPlace, RunSetup};
pub use schema::SCHEMA_VERSION;
pub use store::MemoryStore;

/// Why the memory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// DuckDB refused to open the file (locked by another process, not a
    /// DuckDB file, written by a newer DuckDB, no permission).
    #[error("cannot open the memory file {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// A read-only command was pointed at a file that does not exist.
    #[error("no memory file at {}", .0.display())]
    NoFile(PathBuf),
    /// The file (or a preload directory) holds another schema version.
    #[error(
        "schema_version mismatch: the memory holds {found:?}, lb-dfaas uses {expected:?} \
         (files are never migrated: use another memory.db_path)"
    )]
    SchemaVersion { found: String, expected: String },
    /// A schema version other than the one this program writes was asked for.
    #[error("schema_version {0:?} is not supported: lb-dfaas uses {SCHEMA_VERSION:?}")]
    UnsupportedVersion(String),
    /// A DuckDB file without `memory_schema_meta`.
    #[error("not a campaign memory file: it has no memory_schema_meta table")]
    NotAMemoryFile,
    /// The version matches but tables or columns differ.
    #[error("the memory file does not match schema peva_faas_mem_v1: {}", .0.join("; "))]
    SchemaMismatch(Vec<String>),
    /// A statement of the store itself failed.
    #[error("memory: cannot {what}: {source}")]
    Sql {
        what: String,
        #[source]
        source: duckdb::Error,
    },
    /// A file-system step around DuckDB failed.
    #[error("memory: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Parquet preload directory that cannot be used.
    #[error("memory preload from {}: {reason}", dir.display())]
    Preload { dir: PathBuf, reason: String },
    /// DuckDB takes paths as text.
    #[error("memory: path {} is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    /// A `memory query` statement that cannot run or be printed.
    #[error("{0}")]
    Query(String),
}

impl MemoryError {
    pub(crate) fn sql(what: impl Into<String>, source: duckdb::Error) -> Self {
        MemoryError::Sql {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        MemoryError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True for problems with what the user pointed at (a missing or
    /// foreign file, another schema version, a bad query), as opposed to
    /// the environment (a lock held by a running campaign, permissions).
    pub(crate) fn is_input(&self) -> bool {
        matches!(
            self,
            MemoryError::NoFile(_)
                | MemoryError::SchemaVersion { .. }
                | MemoryError::UnsupportedVersion(_)
                | MemoryError::NotAMemoryFile
                | MemoryError::SchemaMismatch(_)
                | MemoryError::Preload { .. }
                | MemoryError::NonUtf8Path(_)
                | MemoryError::Query(_)
        )
    }
}

/// The DuckDB shared library this process runs with, found in
/// `/proc/self/maps` (so `lb-install` can copy the very file beside the
/// binary it installs). `None` when it cannot be told.
pub fn loaded_library() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    library_in_maps(&maps)
}

fn library_in_maps(maps: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(mapped_path)
        .find(|path| {
            path.is_absolute()
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("libduckdb.so"))
        })
        .map(Path::to_path_buf)
}

/// The path column of a maps line: what follows the first five fields
/// (it may hold spaces).
fn mapped_path(line: &str) -> Option<&Path> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start().split_once(char::is_whitespace)?.1;
    }
    let path = rest.trim();
    (!path.is_empty()).then(|| Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_found_in_the_process_maps() {
        let maps = "55d0 r--p 00000000 08:01 1 /opt/bin/lb-dfaas\n\
                    7f00 r-xp 00001000 08:01 2     /opt/my bin/libduckdb.so\n\
                    7f10 rw-p 00000000 00:00 0 \n";
        assert_eq!(
            library_in_maps(maps),
            Some(PathBuf::from("/opt/my bin/libduckdb.so"))
        );
        assert_eq!(library_in_maps("7f10 rw-p 00000000 00:00 0 [heap]\n"), None);
    }

    #[test]
    fn this_process_runs_with_libduckdb() {
        // Opening a database makes sure the library is used (and mapped).
        let conn = duckdb::Connection::open_in_memory();
        assert!(conn.is_ok());
        let library = loaded_library();
        assert!(library.as_deref().is_some_and(Path::is_file), "{library:?}");
    }
}
