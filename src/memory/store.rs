//! [`MemoryStore`]: the campaign memory file, open for writing.
//!
//! Every record is its own transaction, committed before the call returns:
//! DuckDB writes and syncs its write-ahead log at commit, so a process
//! killed at any instant leaves a file that opens with every committed
//! record (the log is replayed on the next open). The store is meant to sit
//! behind a progress observer: each method takes plain data and does one
//! thing; none of them knows the campaign loop.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use duckdb::{params, AccessMode, Config, Connection};
use serde_json::Value;

use super::config::MemoryPaths;
use super::record::{
    epoch_s, epoch_us, writer, CampaignIdentity, IterationRecord, Known, Recorded, RunInfo,
    RunStatus, SkipRecord, MODE, STATUS_RUNNING,
};
use super::schema::{self, CORE_TABLES, DEBUG_TABLES, SCHEMA_VERSION};
use super::MemoryError;
use crate::config::FunctionName;
use crate::plan::{ConfigKey, Configuration};

/// The memory file, open read-write (DuckDB allows one such process per
/// file; readers in other processes wait for it to close).
pub struct MemoryStore {
    conn: Connection,
    path: PathBuf,
    export_core_dir: Option<PathBuf>,
    export_debug_dir: Option<PathBuf>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// Opens the file (creating it and its directory if needed), checks or
    /// creates the schema, then preloads the Parquet core when configured
    /// and the directory exists (as `peva_faas` does: a first run may name
    /// the directory a later export fills). A file of another schema
    /// version is an error and is not modified.
    pub fn open(paths: &MemoryPaths) -> Result<MemoryStore, MemoryError> {
        let mut store = MemoryStore::open_file(&paths.db_path, &paths.schema_version)?;
        store.export_core_dir = paths.export_core_parquet_dir.clone();
        store.export_debug_dir = paths.export_raw_debug_parquet_dir.clone();
        if let Some(dir) = paths
            .preload_core_parquet_dir
            .as_ref()
            .filter(|d| d.exists())
        {
            store.preload_parquet(dir, paths.preload_raw_debug)?;
        }
        Ok(store)
    }

    /// Opens `path` for writing with schema `version`, no preload, no export.
    pub fn open_file(path: &Path, version: &str) -> Result<MemoryStore, MemoryError> {
        if version != SCHEMA_VERSION {
            return Err(MemoryError::UnsupportedVersion(version.to_string()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| MemoryError::io("create", parent, e))?;
        }
        let conn = open_connection(path, AccessMode::ReadWrite)?;
        if schema::stored_version(&conn)?.is_some() {
            schema::check(&conn, version)?;
        }
        schema::create(&conn, version, epoch_us(SystemTime::now()))?;
        schema::check_tables(&conn)?;
        Ok(MemoryStore {
            conn,
            path: path.to_path_buf(),
            export_core_dir: None,
            export_debug_dir: None,
        })
    }

    /// The connection itself, for tests that break the file on purpose.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Records the run as `running`. A run id seen before (another
    /// repetition, or a resumed run) keeps its first start time.
    pub fn begin_run(&mut self, run: &RunInfo) -> Result<(), MemoryError> {
        self.conn
            .execute(
                "INSERT INTO run_sessions (run_id, started_at, ended_at, mode, batch_size_n, \
                 batch_window_s, config_hash, git_rev, status) \
                 VALUES (?, make_timestamp(?), NULL, ?, NULL, NULL, ?, ?, ?) \
                 ON CONFLICT (run_id) DO UPDATE SET ended_at = NULL, \
                 config_hash = excluded.config_hash, git_rev = excluded.git_rev, \
                 status = excluded.status",
                params![
                    run.run_id,
                    epoch_us(run.started_at),
                    MODE,
                    run.config_hash,
                    writer(),
                    STATUS_RUNNING
                ],
            )
            .map(|_| ())
            .map_err(|e| MemoryError::sql("record the run start", e))
    }

    /// Records the run's end and status.
    pub fn end_run(
        &mut self,
        run_id: &str,
        status: RunStatus,
        at: SystemTime,
    ) -> Result<(), MemoryError> {
        self.conn
            .execute(
                "UPDATE run_sessions SET ended_at = make_timestamp(?), status = ? WHERE run_id = ?",
                params![epoch_us(at), status.as_str(), run_id],
            )
            .map(|_| ())
            .map_err(|e| MemoryError::sql("record the run end", e))
    }

    /// Records one iteration (event, raw summary, catalog entry) in one
    /// transaction, committed before returning.
    pub fn record_iteration(
        &mut self,
        record: &IterationRecord<'_>,
    ) -> Result<Recorded, MemoryError> {
        let configuration = record.configuration;
        let config_id = configuration.config_id().to_string();
        let (functions, rates) = key_json(configuration);
        let payload = json_text(&record.payload());
        let summary = json_text(record.summary);
        let started = epoch_s(record.started_at);
        let ended = epoch_s(record.ended_at);
        let tx = self
            .conn
            .transaction()
            .map_err(|e| MemoryError::sql("begin a transaction", e))?;
        let added = tx
            .execute(
                "INSERT INTO execution_events (config_id, iteration, repetition, run_id, \
                 config_functions, config_rates, start_ts, end_ts, duration_s, skip_reason, \
                 payload_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) \
                 ON CONFLICT DO NOTHING",
                params![
                    config_id,
                    record.iteration,
                    record.repetition,
                    record.run_id,
                    functions,
                    rates,
                    started,
                    ended,
                    (ended - started).max(0.0),
                    payload
                ],
            )
            .map_err(|e| MemoryError::sql("record the iteration", e))?;
        tx.execute(
            "INSERT INTO k6_raw_summaries (config_id, iteration, repetition, run_id, \
             summary_json, summary_size_bytes, ingested_at) \
             VALUES (?, ?, ?, ?, ?, ?, make_timestamp(?)) ON CONFLICT DO NOTHING",
            params![
                config_id,
                record.iteration,
                record.repetition,
                record.run_id,
                summary,
                i64::try_from(summary.len()).unwrap_or(i64::MAX),
                epoch_us(SystemTime::now())
            ],
        )
        .map_err(|e| MemoryError::sql("record the k6 summary", e))?;
        catalog(&tx, configuration, &config_id, &functions, &rates)?;
        tx.commit()
            .map_err(|e| MemoryError::sql("commit the iteration", e))?;
        Ok(if added > 0 {
            Recorded::Added
        } else {
            Recorded::AlreadyThere
        })
    }

    /// Records a configuration that was not measured (iteration 0, with
    /// its `skip_reason`), committed before returning.
    pub fn record_skip(&mut self, record: &SkipRecord<'_>) -> Result<Recorded, MemoryError> {
        let configuration = record.configuration;
        let config_id = configuration.config_id().to_string();
        let (functions, rates) = key_json(configuration);
        let payload = json_text(&record.payload());
        let at = epoch_s(record.at);
        let tx = self
            .conn
            .transaction()
            .map_err(|e| MemoryError::sql("begin a transaction", e))?;
        let added = tx
            .execute(
                "INSERT INTO execution_events (config_id, iteration, repetition, run_id, \
                 config_functions, config_rates, start_ts, end_ts, duration_s, skip_reason, \
                 payload_json) VALUES (?, 0, ?, ?, ?, ?, ?, ?, 0.0, ?, ?) \
                 ON CONFLICT DO NOTHING",
                params![
                    config_id,
                    record.repetition,
                    record.run_id,
                    functions,
                    rates,
                    at,
                    at,
                    record.reason,
                    payload
                ],
            )
            .map_err(|e| MemoryError::sql("record the skipped configuration", e))?;
        catalog(&tx, configuration, &config_id, &functions, &rates)?;
        tx.commit()
            .map_err(|e| MemoryError::sql("commit the skipped configuration", e))?;
        Ok(if added > 0 {
            Recorded::Added
        } else {
            Recorded::AlreadyThere
        })
    }

    /// The measured iterations of `configuration` recorded under the same
    /// duration and query set, by any run, and whether each overloaded the
    /// node (the latest measurement of an iteration number wins). Events
    /// without that identity (e.g. written by `peva_faas`) never match.
    pub fn known(
        &self,
        configuration: &Configuration,
        identity: &CampaignIdentity,
    ) -> Result<Known, MemoryError> {
        let config_id = configuration.config_id().to_string();
        let (functions, rates) = key_json(configuration);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT iteration, json_extract_string(payload_json, '$.result_row.overloaded_node'), \
                 CAST(config_functions AS VARCHAR), CAST(config_rates AS VARCHAR) \
                 FROM execution_events \
                 WHERE config_id = ? AND skip_reason IS NULL AND iteration >= 1 \
                 AND json_extract_string(payload_json, '$.campaign.duration_ms') = ? \
                 AND json_extract_string(payload_json, '$.campaign.query_set') = ? \
                 ORDER BY end_ts NULLS FIRST",
            )
            .map_err(|e| MemoryError::sql("read known iterations", e))?;
        let rows = statement
            .query_map(
                params![
                    config_id,
                    identity.duration_ms.to_string(),
                    identity.query_set
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .map_err(|e| MemoryError::sql("read known iterations", e))?;
        let mut known = Known::default();
        for row in rows {
            let (iteration, overloaded, row_functions, row_rates) =
                row.map_err(|e| MemoryError::sql("read known iterations", e))?;
            // The id is a 48-bit digest of the pairs: check the pairs too.
            if !same_json(row_functions.as_deref(), &functions)
                || !same_json(row_rates.as_deref(), &rates)
            {
                continue;
            }
            if let Ok(iteration) = u32::try_from(iteration) {
                known
                    .iterations
                    .insert(iteration, is_flag_set(overloaded.as_deref()));
            }
        }
        Ok(known)
    }

    /// [`MemoryStore::known`] for every configuration at once, read in one
    /// pass before a run: each configuration (by its functions and rates)
    /// with the iterations measured under `identity`. Rows whose pairs do
    /// not give their `config_id`, or whose names are not function names,
    /// are left out.
    pub(crate) fn known_all(
        &self,
        identity: &CampaignIdentity,
    ) -> Result<HashMap<ConfigKey, Known>, MemoryError> {
        let read = |e| MemoryError::sql("read known iterations", e);
        let mut statement = self
            .conn
            .prepare(
                "SELECT config_id, iteration, \
                 json_extract_string(payload_json, '$.result_row.overloaded_node'), \
                 CAST(config_functions AS VARCHAR), CAST(config_rates AS VARCHAR) \
                 FROM execution_events \
                 WHERE skip_reason IS NULL AND iteration >= 1 \
                 AND json_extract_string(payload_json, '$.campaign.duration_ms') = ? \
                 AND json_extract_string(payload_json, '$.campaign.query_set') = ? \
                 ORDER BY end_ts NULLS FIRST",
            )
            .map_err(read)?;
        let rows = statement
            .query_map(
                params![identity.duration_ms.to_string(), identity.query_set],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .map_err(read)?;
        let mut known: HashMap<ConfigKey, Known> = HashMap::new();
        for row in rows {
            let (config_id, iteration, overloaded, functions, rates) = row.map_err(read)?;
            let Some(configuration) =
                configuration_from_json(functions.as_deref(), rates.as_deref())
            else {
                continue;
            };
            // The id is a 48-bit digest of the pairs: check the pairs give it.
            if configuration.config_id().as_str() != config_id {
                continue;
            }
            if let Ok(iteration) = u32::try_from(iteration) {
                known
                    .entry(configuration.key())
                    .or_default()
                    .iterations
                    .insert(iteration, is_flag_set(overloaded.as_deref()));
            }
        }
        Ok(known)
    }

    /// Exports the core tables to `core_dir` and the raw summaries to
    /// `debug_dir` as `<table>.parquet`, through DuckDB's `COPY`. Each file
    /// is written beside its final name and renamed over it.
    pub fn export_parquet(
        &self,
        core_dir: Option<&Path>,
        debug_dir: Option<&Path>,
    ) -> Result<(), MemoryError> {
        for (dir, tables) in [(core_dir, CORE_TABLES), (debug_dir, DEBUG_TABLES)] {
            let Some(dir) = dir else { continue };
            fs::create_dir_all(dir).map_err(|e| MemoryError::io("create", dir, e))?;
            for table in tables {
                let target = dir.join(format!("{table}.parquet"));
                let partial = dir.join(format!(".{table}.parquet.partial"));
                self.conn
                    .execute_batch(&format!(
                        "COPY (SELECT * FROM {table}) TO {} (FORMAT PARQUET)",
                        sql_string(&partial)?
                    ))
                    .map_err(|e| MemoryError::sql(format!("export {table} to Parquet"), e))?;
                fs::rename(&partial, &target)
                    .map_err(|e| MemoryError::io("rename into place", &target, e))?;
            }
        }
        Ok(())
    }

    /// Replaces the core tables (and `k6_raw_summaries` when `with_debug`)
    /// with the `<table>.parquet` files found in `dir`, in one transaction,
    /// after checking `memory_schema_meta.parquet`'s version. A table
    /// without a file is left as it is.
    pub fn preload_parquet(&mut self, dir: &Path, with_debug: bool) -> Result<(), MemoryError> {
        let meta = dir.join("memory_schema_meta.parquet");
        if !meta.is_file() {
            return Err(MemoryError::Preload {
                dir: dir.to_path_buf(),
                reason: "memory_schema_meta.parquet is missing".into(),
            });
        }
        let version: Option<String> = self
            .conn
            .query_row(
                &format!(
                    "SELECT CAST(schema_version AS VARCHAR) FROM read_parquet({}) LIMIT 1",
                    sql_string(&meta)?
                ),
                [],
                |row| row.get(0),
            )
            .map_err(|e| MemoryError::Preload {
                dir: dir.to_path_buf(),
                reason: format!("cannot read memory_schema_meta.parquet: {e}"),
            })?;
        match version {
            None => {
                return Err(MemoryError::Preload {
                    dir: dir.to_path_buf(),
                    reason: "memory_schema_meta.parquet has no schema_version".into(),
                })
            }
            Some(found) if found != SCHEMA_VERSION => {
                return Err(MemoryError::SchemaVersion {
                    found,
                    expected: SCHEMA_VERSION.to_string(),
                })
            }
            Some(_) => {}
        }
        let debug: &[&str] = if with_debug { DEBUG_TABLES } else { &[] };
        let tx = self
            .conn
            .transaction()
            .map_err(|e| MemoryError::sql("begin a transaction", e))?;
        for table in CORE_TABLES.iter().chain(debug) {
            let file = dir.join(format!("{table}.parquet"));
            if !file.is_file() {
                continue;
            }
            tx.execute_batch(&format!(
                "DELETE FROM {table}; \
                 INSERT INTO {table} BY NAME SELECT * FROM read_parquet({});",
                sql_string(&file)?
            ))
            .map_err(|e| MemoryError::Preload {
                dir: dir.to_path_buf(),
                reason: format!("cannot load {table}.parquet: {e}"),
            })?;
        }
        tx.commit()
            .map_err(|e| MemoryError::sql("commit the preload", e))
    }

    /// Folds the write-ahead log into the file (DuckDB also does it on its
    /// own when the log grows); committed records are durable without it.
    pub fn checkpoint(&self) -> Result<(), MemoryError> {
        self.conn
            .execute_batch("CHECKPOINT")
            .map_err(|e| MemoryError::sql("checkpoint", e))
    }

    /// Checkpoints the file (the write-ahead log folded into it), exports
    /// the configured Parquet directories, and closes. The file is closed
    /// even when the export fails.
    pub fn checkpoint_and_close(self) -> Result<(), MemoryError> {
        let checkpoint = self.checkpoint();
        let export = self.export_parquet(
            self.export_core_dir.as_deref(),
            self.export_debug_dir.as_deref(),
        );
        let close = self
            .conn
            .close()
            .map_err(|(_, e)| MemoryError::sql("close the file", e));
        checkpoint.and(export).and(close)
    }
}

/// Opens a DuckDB file with extension auto-loading off (JSON and Parquet
/// are built into the library; nothing is ever downloaded).
pub(crate) fn open_connection(path: &Path, mode: AccessMode) -> Result<Connection, MemoryError> {
    let open_error = |reason: String| MemoryError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let config = Config::default()
        .access_mode(mode)
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .map_err(|e| open_error(e.to_string()))?;
    Connection::open_with_flags(path, config).map_err(|e| open_error(e.to_string()))
}

/// The configuration `config_functions` and `config_rates` (JSON lists)
/// name, if they name one.
fn configuration_from_json(functions: Option<&str>, rates: Option<&str>) -> Option<Configuration> {
    let functions: Vec<String> = serde_json::from_str(functions?).ok()?;
    let rates: Vec<u64> = serde_json::from_str(rates?).ok()?;
    if functions.len() != rates.len() {
        return None;
    }
    let pairs: Option<Vec<(FunctionName, u64)>> = functions
        .iter()
        .zip(rates)
        .map(|(f, r)| FunctionName::parse(f).ok().map(|n| (n, r)))
        .collect();
    Configuration::from_pairs(pairs?).ok()
}

/// `config_functions` / `config_rates` as JSON lists.
fn key_json(configuration: &Configuration) -> (String, String) {
    let functions: Vec<&str> = configuration
        .functions()
        .iter()
        .map(|f| f.as_str())
        .collect();
    (
        json_text(&Value::from(functions)),
        json_text(&Value::from(configuration.rates().to_vec())),
    )
}

/// Adds the configuration to `config_catalog` unless it is there.
fn catalog(
    conn: &Connection,
    configuration: &Configuration,
    config_id: &str,
    functions: &str,
    rates: &str,
) -> Result<(), MemoryError> {
    let pairs: Vec<Value> = configuration
        .pairs()
        .map(|(f, r)| serde_json::json!([f.as_str(), r]))
        .collect();
    let config_json = json_text(&serde_json::json!({
        "functions": configuration.functions().iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "rates": configuration.rates(),
        "config_pairs": pairs,
    }));
    let sum_rate: f64 = configuration.rates().iter().map(|r| *r as f64).sum();
    conn.execute(
        "INSERT INTO config_catalog (config_id, functions, rates, config_json, n_functions, \
         sum_rate) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        params![
            config_id,
            functions,
            rates,
            config_json,
            i64::try_from(configuration.functions().len()).unwrap_or(i64::MAX),
            sum_rate
        ],
    )
    .map(|_| ())
    .map_err(|e| MemoryError::sql("record the configuration", e))
}

fn json_text(value: &Value) -> String {
    // Serialising a `Value` cannot fail: its map keys are strings.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// Two JSON texts hold the same value.
fn same_json(stored: Option<&str>, expected: &str) -> bool {
    let parse = |text: &str| serde_json::from_str::<Value>(text).ok();
    match stored {
        Some(stored) => parse(stored).is_some_and(|s| Some(s) == parse(expected)),
        None => false,
    }
}

/// An `overloaded_*` cell as written by this program (`1`) or by Python
/// (`1`, `True`, `1.0`).
fn is_flag_set(text: Option<&str>) -> bool {
    match text.map(str::trim) {
        Some(t) => t.eq_ignore_ascii_case("true") || t.parse::<f64>().is_ok_and(|v| v != 0.0),
        None => false,
    }
}

/// A path as an SQL string literal (DuckDB's `COPY ... TO` and
/// `read_parquet` take paths as text).
pub(crate) fn sql_string(path: &Path) -> Result<String, MemoryError> {
    let text = path
        .to_str()
        .ok_or_else(|| MemoryError::NonUtf8Path(path.to_path_buf()))?;
    Ok(format!("'{}'", text.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A progress observer (`Observer: Send + Sync`) holds the store in a
    /// `Mutex`, which needs the store to be `Send`.
    #[test]
    fn the_store_can_live_in_an_observer() {
        fn send<T: Send>() {}
        send::<MemoryStore>();
    }

    #[test]
    fn flags_written_by_either_program_are_read() {
        for set in ["1", "True", "true", "1.0", " 1 "] {
            assert!(is_flag_set(Some(set)), "{set}");
        }
        for unset in ["0", "False", "0.0", "", "x"] {
            assert!(!is_flag_set(Some(unset)), "{unset}");
        }
        assert!(!is_flag_set(None));
    }

    #[test]
    fn paths_become_quoted_sql_strings() {
        assert_eq!(
            sql_string(Path::new("/a/it's.parquet")).unwrap(),
            "'/a/it''s.parquet'"
        );
    }

    #[test]
    fn json_texts_compare_by_value() {
        assert!(same_json(Some("[\"a\", \"b\"]"), "[\"a\",\"b\"]"));
        assert!(!same_json(Some("[1,2]"), "[1,3]"));
        assert!(!same_json(None, "[]"));
        assert!(!same_json(Some("not json"), "[]"));
    }
}
