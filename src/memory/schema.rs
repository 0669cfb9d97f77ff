//! Schema `peva_faas_mem_v1`: the tables, columns, types and constraints
//! of lb's `peva_faas` memory store, so that a file written by either
//! program opens in the other.
//!
//! The tables are described once, as data ([`TABLES`]); the DDL and the
//! check of an existing file both come from it. A file is accepted only
//! when its `memory_schema_meta` says `peva_faas_mem_v1` and every table
//! has every column with its type: anything else is an error, never a
//! migration. Opening checks before it creates, so a file of another
//! version is left untouched.

use duckdb::{params, Connection, OptionalExt};

use super::MemoryError;

/// The one schema version this program reads and writes.
pub const SCHEMA_VERSION: &str = "peva_faas_mem_v1";

/// One column: name, DuckDB type as `duckdb_columns()` reports it, NOT NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: &'static str,
    pub data_type: &'static str,
    pub not_null: bool,
}

/// One table and its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The column declared `PRIMARY KEY` (which implies NOT NULL).
    pub primary_key: Option<&'static str>,
    /// Columns of the table's `UNIQUE (...)` constraint, if any.
    pub unique: &'static [&'static str],
}

const fn col(name: &'static str, data_type: &'static str) -> Column {
    Column {
        name,
        data_type,
        not_null: false,
    }
}

const fn required(name: &'static str, data_type: &'static str) -> Column {
    Column {
        name,
        data_type,
        not_null: true,
    }
}

/// Every table of the schema, in creation order.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "memory_schema_meta",
        columns: &[
            required("schema_version", "VARCHAR"),
            required("created_at", "TIMESTAMP"),
            required("updated_at", "TIMESTAMP"),
        ],
        primary_key: None,
        unique: &[],
    },
    Table {
        name: "run_sessions",
        columns: &[
            required("run_id", "VARCHAR"),
            col("started_at", "TIMESTAMP"),
            col("ended_at", "TIMESTAMP"),
            col("mode", "VARCHAR"),
            col("batch_size_n", "INTEGER"),
            col("batch_window_s", "INTEGER"),
            col("config_hash", "VARCHAR"),
            col("git_rev", "VARCHAR"),
            col("status", "VARCHAR"),
        ],
        primary_key: Some("run_id"),
        unique: &[],
    },
    Table {
        name: "config_catalog",
        columns: &[
            required("config_id", "VARCHAR"),
            col("functions", "JSON"),
            col("rates", "JSON"),
            col("config_json", "JSON"),
            col("n_functions", "INTEGER"),
            col("sum_rate", "DOUBLE"),
        ],
        primary_key: Some("config_id"),
        unique: &[],
    },
    Table {
        name: "execution_events",
        columns: &[
            required("config_id", "VARCHAR"),
            required("iteration", "INTEGER"),
            required("repetition", "INTEGER"),
            required("run_id", "VARCHAR"),
            col("config_functions", "JSON"),
            col("config_rates", "JSON"),
            col("start_ts", "DOUBLE"),
            col("end_ts", "DOUBLE"),
            col("duration_s", "DOUBLE"),
            col("skip_reason", "VARCHAR"),
            col("payload_json", "JSON"),
        ],
        primary_key: None,
        unique: &["config_id", "iteration", "repetition", "run_id"],
    },
    Table {
        name: "k6_raw_summaries",
        columns: &[
            required("config_id", "VARCHAR"),
            required("iteration", "INTEGER"),
            required("repetition", "INTEGER"),
            required("run_id", "VARCHAR"),
            required("summary_json", "JSON"),
            col("summary_size_bytes", "BIGINT"),
            col("ingested_at", "TIMESTAMP"),
        ],
        primary_key: None,
        unique: &["config_id", "iteration", "repetition", "run_id"],
    },
    Table {
        name: "policy_updates",
        columns: &[
            required("update_id", "VARCHAR"),
            required("run_id", "VARCHAR"),
            required("mode", "VARCHAR"),
            col("records_seen", "BIGINT"),
            col("score", "DOUBLE"),
            col("loss", "DOUBLE"),
            required("ts", "TIMESTAMP"),
        ],
        primary_key: Some("update_id"),
        unique: &[],
    },
];

/// Tables of the Parquet "memory core" checkpoint (preloaded at start).
pub(crate) const CORE_TABLES: &[&str] = &[
    "memory_schema_meta",
    "run_sessions",
    "config_catalog",
    "execution_events",
    "policy_updates",
];

/// Tables of the Parquet "debug archive" (not preloaded by default).
pub(crate) const DEBUG_TABLES: &[&str] = &["k6_raw_summaries"];

/// `CREATE TABLE IF NOT EXISTS` for one table.
pub(crate) fn create_sql(table: &Table) -> String {
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let constraint = if table.primary_key == Some(c.name) {
                " PRIMARY KEY"
            } else if c.not_null {
                " NOT NULL"
            } else {
                ""
            };
            format!("{} {}{constraint}", c.name, c.data_type)
        })
        .collect();
    if !table.unique.is_empty() {
        parts.push(format!("UNIQUE ({})", table.unique.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    {}\n)",
        table.name,
        parts.join(",\n    ")
    )
}

/// The version a file records, `None` when it has no `memory_schema_meta`
/// table or no row in it.
pub(crate) fn stored_version(conn: &Connection) -> Result<Option<String>, MemoryError> {
    if !table_exists(conn, "memory_schema_meta")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT schema_version FROM memory_schema_meta LIMIT 1",
        [],
        |row| row.get::<_, String>(0),
    )
    .optional()
    .map_err(|e| MemoryError::sql("read memory_schema_meta", e))
}

/// Checks that the file is `expected` with every table and column of the
/// schema (extra tables or columns are tolerated: they are someone else's).
pub(crate) fn check(conn: &Connection, expected: &str) -> Result<(), MemoryError> {
    match stored_version(conn)? {
        None => return Err(MemoryError::NotAMemoryFile),
        Some(found) if found != expected => {
            return Err(MemoryError::SchemaVersion {
                found,
                expected: expected.to_string(),
            })
        }
        Some(_) => {}
    }
    check_tables(conn)
}

/// Every table of [`TABLES`] exists with every column and type.
pub(crate) fn check_tables(conn: &Connection) -> Result<(), MemoryError> {
    let mut problems = Vec::new();
    let mut statement = conn
        .prepare(
            "SELECT data_type FROM duckdb_columns() \
             WHERE schema_name = 'main' AND table_name = ? AND column_name = ?",
        )
        .map_err(|e| MemoryError::sql("read the table catalog", e))?;
    for table in TABLES {
        if !table_exists(conn, table.name)? {
            problems.push(format!("table {} is missing", table.name));
            continue;
        }
        for column in table.columns {
            let found: Option<String> = statement
                .query_row(params![table.name, column.name], |row| row.get(0))
                .optional()
                .map_err(|e| MemoryError::sql("read the table catalog", e))?;
            match found {
                None => problems.push(format!("{}.{} is missing", table.name, column.name)),
                Some(t) if t != column.data_type => problems.push(format!(
                    "{}.{} is {t}, expected {}",
                    table.name, column.name, column.data_type
                )),
                Some(_) => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MemoryError::SchemaMismatch(problems))
    }
}

/// Creates what is missing of the schema (in one transaction) and records
/// `version` in a new file. Call [`check`] first on a file that has a
/// version.
pub(crate) fn create(conn: &Connection, version: &str, now_us: i64) -> Result<(), MemoryError> {
    let mut sql = String::from("BEGIN TRANSACTION;\n");
    for table in TABLES {
        sql.push_str(&create_sql(table));
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;");
    conn.execute_batch(&sql)
        .map_err(|e| MemoryError::sql("create the memory tables", e))?;
    let inserted = conn
        .execute(
            "INSERT INTO memory_schema_meta (schema_version, created_at, updated_at) \
             SELECT ?, make_timestamp(?), make_timestamp(?) \
             WHERE NOT EXISTS (SELECT 1 FROM memory_schema_meta)",
            params![version, now_us, now_us],
        )
        .map_err(|e| MemoryError::sql("write memory_schema_meta", e))?;
    if inserted == 0 {
        conn.execute(
            "UPDATE memory_schema_meta SET updated_at = make_timestamp(?)",
            params![now_us],
        )
        .map_err(|e| MemoryError::sql("update memory_schema_meta", e))?;
    }
    Ok(())
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, MemoryError> {
    conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
        params![name],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(|e| MemoryError::sql("read the table catalog", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ddl_declares_every_column_and_key() {
        let sql = create_sql(&TABLES[1]);
        assert!(sql.contains("run_id VARCHAR PRIMARY KEY,"), "{sql}");
        let sql = create_sql(&TABLES[3]);
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS execution_events ("));
        assert!(sql.contains("iteration INTEGER NOT NULL"));
        assert!(sql.contains("payload_json JSON"));
        assert!(sql.ends_with("UNIQUE (config_id, iteration, repetition, run_id)\n)"));
    }

    #[test]
    fn core_and_debug_tables_cover_the_schema_once() {
        let mut names: Vec<&str> = CORE_TABLES.iter().chain(DEBUG_TABLES).copied().collect();
        names.sort_unstable();
        let mut tables: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        tables.sort_unstable();
        assert_eq!(names, tables);
    }
}
