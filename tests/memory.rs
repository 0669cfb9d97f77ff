//! The campaign memory against the real DuckDB (the linked libduckdb 1.4.4)
//! and lb's own `peva_faas` memory code run by Python's `duckdb` 1.4.4:
//! schema parity both ways, strict versions, durability after SIGKILL,
//! Parquet export and preload, and the read-only `lb-dfaas memory` commands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lb_dfaas::config::FunctionName;
use lb_dfaas::memory::inspect::{self, QueryFormat};
use lb_dfaas::memory::{
    skip_reason, CampaignIdentity, IterationRecord, MemoryError, MemoryStore, Recorded, RunInfo,
    RunStatus, SkipRecord, SCHEMA_VERSION,
};
use lb_dfaas::plan::Configuration;
use serde_json::{json, Map, Value};

// ------------------------------------------------------------------ helpers

fn configuration(pairs: &[(&str, u64)]) -> Configuration {
    Configuration::from_pairs(
        pairs
            .iter()
            .map(|(name, rate)| (FunctionName::parse(name).unwrap(), *rate)),
    )
    .unwrap()
}

fn identity() -> CampaignIdentity {
    CampaignIdentity {
        duration_ms: 30_000,
        duration_text: "30s".into(),
        query_set: CampaignIdentity::query_set_digest(&["queries.yml text", "false"]),
        iterations: 3,
    }
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
}

fn row(overloaded: bool) -> Map<String, Value> {
    match json!({"function_figlet": "figlet", "rate_function_figlet": 10,
                 "cpu_usage_node": "12.500", "overloaded_node": u8::from(overloaded)})
    {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Records iteration `iteration` of `config` in run `run_id`.
fn record(
    store: &mut MemoryStore,
    run_id: &str,
    config: &Configuration,
    iteration: u32,
    overloaded: bool,
    identity: &CampaignIdentity,
) -> Recorded {
    let metrics = json!({"cpu_usage_node": 12.5, "functions": {}});
    let summary = json!({"metrics": {"http_reqs": {"count": 300, "rate": 10.0}}});
    store
        .record_iteration(&IterationRecord {
            run_id,
            repetition: 1,
            configuration: config,
            iteration,
            started_at: at(u64::from(iteration) * 40),
            ended_at: at(u64::from(iteration) * 40 + 30),
            result_row: &row(overloaded),
            metrics: &metrics,
            summary: &summary,
            identity,
        })
        .unwrap()
}

fn begin(store: &mut MemoryStore, run_id: &str) {
    store
        .begin_run(&RunInfo {
            run_id: run_id.into(),
            started_at: at(0),
            config_hash: "c0ffee".into(),
        })
        .unwrap();
}

fn rows(db: &Path, sql: &str) -> Vec<Value> {
    let conn = inspect::open_read_only(db).unwrap();
    let mut out = Vec::new();
    inspect::query(&conn, sql, QueryFormat::JsonLines, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn count(db: &Path, table: &str) -> u64 {
    rows(db, &format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_u64()
        .unwrap()
}

/// lb's source tree (for `peva_faas`'s memory code): `$LB_SOURCE`, else the
/// pinned copy in `shared/vendor/` beside this repository.
fn lb_source() -> PathBuf {
    if let Some(dir) = std::env::var_os("LB_SOURCE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let vendored =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vendor/linux-benchmark-lib");
    assert!(
        vendored.join("lb_plugins").is_dir(),
        "lb's source is not at {} (set LB_SOURCE)",
        vendored.display()
    );
    vendored
}

/// Runs `tests/memory/peva_faas_memory.py COMMAND ARGS` (lb's `peva_faas`
/// memory code with Python's duckdb) and parses its JSON.
fn peva(command: &str, args: &[&Path]) -> Value {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/memory/peva_faas_memory.py");
    let output = Command::new(python)
        .arg(script)
        .arg(lb_source())
        .arg(command)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "peva_faas {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn lb_dfaas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A memory file with two runs: run-a measured figlet:10 (3 iterations,
/// the second overloaded) and skipped figlet:20; run-b measured env:5 +
/// figlet:10 once.
fn sample_file(dir: &Path) -> PathBuf {
    let db = dir.join("memory").join("m.duckdb");
    let mut store = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap();
    let id = identity();
    let figlet = configuration(&[("figlet", 10)]);
    begin(&mut store, "run-a");
    for i in 1..=3 {
        record(&mut store, "run-a", &figlet, i, i == 2, &id);
    }
    store
        .record_skip(&SkipRecord {
            run_id: "run-a",
            repetition: 1,
            configuration: &configuration(&[("figlet", 20)]),
            reason: skip_reason::DOMINATED_BY_OVERLOAD,
            detail: Some("dominates figlet:10"),
            at: at(200),
            identity: &id,
        })
        .unwrap();
    store
        .end_run("run-a", RunStatus::Completed, at(300))
        .unwrap();
    begin(&mut store, "run-b");
    record(
        &mut store,
        "run-b",
        &configuration(&[("env", 5), ("figlet", 10)]),
        1,
        false,
        &id,
    );
    store
        .end_run("run-b", RunStatus::Interrupted, at(400))
        .unwrap();
    store.checkpoint_and_close().unwrap();
    db
}

// ------------------------------------------------------- peva_faas parity

#[test]
fn the_store_writes_peva_faas_s_tables_columns_types_and_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("peva.duckdb");
    peva("create", &[&theirs]);
    let ours = sample_file(dir.path());
    let a = peva("describe", &[&theirs]);
    let b = peva("describe", &[&ours]);
    assert_eq!(a["duckdb"], "1.4.4");
    assert_eq!(a["tables"], b["tables"]);
    assert_eq!(a["constraints"], b["constraints"]);
    assert_eq!(b["schema_versions"], json!(["peva_faas_mem_v1"]));
    assert_eq!(a["tables"].as_object().unwrap().len(), 6, "{}", a["tables"]);
}

#[test]
fn peva_faas_opens_a_file_written_by_the_store_and_sees_its_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let seen = peva("read", &[&db]);
    assert_eq!(seen["schema_version"], "peva_faas_mem_v1");
    assert_eq!(seen["events"], 5, "3 + 1 iterations and 1 skip");
    assert_eq!(
        seen["seen"],
        json!([
            [["env", "figlet"], [5, 10]],
            [["figlet"], [10]],
            [["figlet"], [20]]
        ])
    );
}

#[test]
fn the_store_opens_a_file_written_by_peva_faas_and_adds_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("peva.duckdb");
    peva("create", &[&db]);
    let mut store = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap();
    let id = identity();
    // peva_faas's event has no campaign identity: never taken as known.
    let theirs = configuration(&[("env", 20), ("figlet", 10)]);
    assert!(store.known(&theirs, &id).unwrap().iterations.is_empty());
    begin(&mut store, "ours");
    record(&mut store, "ours", &theirs, 1, false, &id);
    assert_eq!(store.known(&theirs, &id).unwrap().iterations.len(), 1);
    store.checkpoint_and_close().unwrap();
    assert_eq!(count(&db, "execution_events"), 2);
    assert_eq!(peva("read", &[&db])["events"], 2);
}

// ------------------------------------------------------- versions

#[test]
fn another_schema_version_is_an_error_and_the_file_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v2.duckdb");
    {
        let conn = duckdb::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE memory_schema_meta (schema_version TEXT NOT NULL, \
             created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL); \
             INSERT INTO memory_schema_meta VALUES ('peva_faas_mem_v2', now()::TIMESTAMP, now()::TIMESTAMP);",
        )
        .unwrap();
    }
    let error = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap_err();
    assert!(
        matches!(&error, MemoryError::SchemaVersion { found, .. } if found == "peva_faas_mem_v2"),
        "{error}"
    );
    assert!(error.to_string().contains("never migrated"), "{error}");
    let conn = duckdb::Connection::open(&db).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE NOT internal",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "no table was created in the foreign file");
    drop(conn);

    let out = lb_dfaas(&["memory", "summary", "--db", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["context"]["errors"][0]["field"], "--db");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("peva_faas_mem_v2"),
        "{doc}"
    );
}

#[test]
fn a_file_with_the_right_version_but_other_columns_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    {
        let conn = duckdb::Connection::open(&db).unwrap();
        conn.execute_batch("ALTER TABLE run_sessions DROP COLUMN git_rev")
            .unwrap();
    }
    let error = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the memory file does not match schema peva_faas_mem_v1: run_sessions.git_rev is missing"
    );
}

// ------------------------------------------------------- what is recorded

#[test]
fn every_table_is_filled_as_peva_faas_fills_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let runs = rows(
        &db,
        "SELECT run_id, status, mode, git_rev, config_hash, \
         CAST(started_at AS VARCHAR) AS started, CAST(ended_at AS VARCHAR) AS ended \
         FROM run_sessions ORDER BY run_id",
    );
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[1]["status"], "interrupted");
    assert_eq!(runs[0]["mode"], "sampling");
    assert_eq!(
        runs[0]["git_rev"],
        format!("lb-dfaas {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(runs[0]["started"], "2027-01-15 08:00:00");
    assert_eq!(runs[0]["ended"], "2027-01-15 08:05:00");

    let events = rows(
        &db,
        "SELECT config_id, iteration, run_id, skip_reason, duration_s, config_functions, \
         config_rates, payload_json FROM execution_events ORDER BY run_id, config_id, iteration",
    );
    assert_eq!(events.len(), 5);
    let first = &events[1];
    let figlet = configuration(&[("figlet", 10)]);
    assert_eq!(first["config_id"], figlet.config_id().to_string());
    assert_eq!(first["duration_s"], 30.0);
    assert_eq!(first["config_functions"], "[\"figlet\"]");
    let payload: Value = serde_json::from_str(first["payload_json"].as_str().unwrap()).unwrap();
    assert_eq!(payload["result_row"]["overloaded_node"], 0);
    assert_eq!(payload["metrics"]["cpu_usage_node"], 12.5);
    assert_eq!(payload["summary"]["metrics"]["http_reqs"]["count"], 300);
    assert_eq!(payload["campaign"]["duration_ms"], 30_000);
    let skipped: Vec<&Value> = events
        .iter()
        .filter(|e| !e["skip_reason"].is_null())
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["skip_reason"], "dominated_by_overload");
    assert_eq!(skipped[0]["iteration"], 0);

    assert_eq!(count(&db, "k6_raw_summaries"), 4);
    assert_eq!(count(&db, "policy_updates"), 0);
    let catalog = rows(
        &db,
        "SELECT config_json, n_functions, sum_rate FROM config_catalog \
         WHERE n_functions = 2",
    );
    assert_eq!(catalog[0]["sum_rate"], 15.0);
    let config_json: Value =
        serde_json::from_str(catalog[0]["config_json"].as_str().unwrap()).unwrap();
    assert_eq!(
        config_json,
        json!({"functions": ["env", "figlet"], "rates": [5, 10],
               "config_pairs": [["env", 5], ["figlet", 10]]})
    );
}

#[test]
fn a_run_id_seen_again_keeps_its_start_and_an_event_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.duckdb");
    let mut store = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap();
    let id = identity();
    let figlet = configuration(&[("figlet", 10)]);
    begin(&mut store, "run");
    store.end_run("run", RunStatus::Failed, at(50)).unwrap();
    store
        .begin_run(&RunInfo {
            run_id: "run".into(),
            started_at: at(100),
            config_hash: "other".into(),
        })
        .unwrap();
    assert_eq!(
        record(&mut store, "run", &figlet, 1, false, &id),
        Recorded::Added
    );
    assert_eq!(
        record(&mut store, "run", &figlet, 1, true, &id),
        Recorded::AlreadyThere
    );
    store.checkpoint_and_close().unwrap();
    let run = &rows(
        &db,
        "SELECT status, ended_at, CAST(started_at AS VARCHAR) AS started, config_hash \
         FROM run_sessions",
    )[0];
    assert_eq!(run["status"], "running");
    assert!(run["ended_at"].is_null());
    assert_eq!(run["started"], "2027-01-15 08:00:00");
    assert_eq!(run["config_hash"], "other");
    assert_eq!(count(&db, "execution_events"), 1);
}

#[test]
fn known_iterations_match_the_configuration_duration_and_query_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.duckdb");
    let mut store = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap();
    let id = identity();
    let figlet = configuration(&[("figlet", 10)]);
    begin(&mut store, "first");
    record(&mut store, "first", &figlet, 1, true, &id);
    record(&mut store, "first", &figlet, 2, false, &id);
    // Interrupted before iteration 3: it is the one still to run.
    let known = store.known(&figlet, &id).unwrap();
    assert_eq!(known.missing(3), [3]);
    assert_eq!(known.overloaded_iterations(3), 1);
    begin(&mut store, "second");
    record(&mut store, "second", &figlet, 3, true, &id);
    let known = store.known(&figlet, &id).unwrap();
    assert!(known.is_complete(3));
    assert_eq!(known.overloaded_iterations(3), 2);

    let longer = CampaignIdentity {
        duration_ms: 60_000,
        ..identity()
    };
    assert!(store.known(&figlet, &longer).unwrap().iterations.is_empty());
    let other_queries = CampaignIdentity {
        query_set: CampaignIdentity::query_set_digest(&["other queries"]),
        ..identity()
    };
    assert!(store
        .known(&figlet, &other_queries)
        .unwrap()
        .iterations
        .is_empty());
    let other_rate = configuration(&[("figlet", 20)]);
    assert!(store.known(&other_rate, &id).unwrap().iterations.is_empty());
    store
        .record_skip(&SkipRecord {
            run_id: "second",
            repetition: 1,
            configuration: &other_rate,
            reason: skip_reason::ALREADY_IN_MEMORY,
            detail: None,
            at: at(500),
            identity: &id,
        })
        .unwrap();
    assert!(store.known(&other_rate, &id).unwrap().iterations.is_empty());
    store.checkpoint_and_close().unwrap();
}

// ------------------------------------------------------- durability

/// Not a test on its own: the writer process of the SIGKILL test. It
/// records iterations in a loop and prints `committed N` after each.
#[test]
fn sigkill_writer_process() {
    let Some(db) = std::env::var_os("LB_DFAAS_MEMORY_WRITER_DB") else {
        return;
    };
    let mut store = MemoryStore::open_file(Path::new(&db), SCHEMA_VERSION).unwrap();
    let id = identity();
    let run_id = std::env::var("LB_DFAAS_MEMORY_WRITER_RUN").unwrap();
    begin(&mut store, &run_id);
    let mut committed = 0u32;
    for rate in 0..u64::MAX {
        let config = configuration(&[("figlet", rate)]);
        for i in 1..=3 {
            record(&mut store, &run_id, &config, i, false, &id);
            committed += 1;
            println!("committed {committed}");
            // Checkpoints now and then, so that kills land in them too.
            if committed % 7 == 0 {
                store.checkpoint().unwrap();
            }
        }
    }
}

#[test]
fn a_sigkilled_writer_leaves_a_file_with_every_committed_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.duckdb");
    let mut expected = 0u64;
    // Several kills at different instants, each after a different number of
    // commits; the same file is reopened and written again each time.
    for (round, after) in [3u32, 17, 40, 95].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_writer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LB_DFAAS_MEMORY_WRITER_DB", &db)
            .env("LB_DFAAS_MEMORY_WRITER_RUN", format!("round-{round}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A thread drains the writer's output (so it never blocks on a full
        // pipe, nor fails writing to a closed one) and reports each commit.
        let stdout = child.stdout.take().unwrap();
        let (commits, reported) = std::sync::mpsc::channel::<u32>();
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("committed ") {
                    if let Ok(n) = n.trim().parse() {
                        let _ = commits.send(n);
                    }
                }
            }
        });
        let mut last = 0u32;
        while last < after {
            last = reported
                .recv_timeout(Duration::from_secs(120))
                .expect("the writer stopped reporting commits");
        }
        if round == 0 {
            // A campaign holds the file: the read-only commands say so (exit 3).
            let out = lb_dfaas(&["memory", "summary", "--db", db.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                doc["error"]["message"].as_str().unwrap().contains("lock"),
                "{doc}"
            );
        }
        // SIGKILL while the writer is in the middle of a later record.
        child.kill().unwrap();
        child.wait().unwrap();
        drain.join().unwrap();
        // Commits it reported after `last` are committed too.
        last = reported.try_iter().last().unwrap_or(last).max(last);
        assert!(last >= after, "the writer stopped after {last} commits");
        let conn = inspect::open_read_only(&db).unwrap();
        let mut out = Vec::new();
        inspect::query(
            &conn,
            &format!("SELECT count(*) AS n FROM execution_events WHERE run_id = 'round-{round}'"),
            QueryFormat::Csv,
            &mut out,
        )
        .unwrap();
        drop(conn);
        let found: u64 = String::from_utf8(out)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            found >= u64::from(last),
            "round {round}: {last} iterations were committed, the file has {found}"
        );
        expected += found;
        assert_eq!(count(&db, "execution_events"), expected);
        assert_eq!(count(&db, "k6_raw_summaries"), expected);
    }
    // Python's duckdb (and peva_faas) open the file too.
    assert_eq!(peva("read", &[&db])["events"], expected);
}

// ------------------------------------------------------- Parquet

#[test]
fn parquet_export_and_preload_round_trip_with_peva_faas() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let core = dir.path().join("core");
    let debug = dir.path().join("debug");
    let store = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap();
    store.export_parquet(Some(&core), Some(&debug)).unwrap();
    drop(store);
    let mut names: Vec<String> = std::fs::read_dir(&core)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config_catalog.parquet",
            "execution_events.parquet",
            "memory_schema_meta.parquet",
            "policy_updates.parquet",
            "run_sessions.parquet"
        ]
    );
    assert!(debug.join("k6_raw_summaries.parquet").is_file());

    // Ours → ours, with the debug archive copied beside the core.
    std::fs::copy(
        debug.join("k6_raw_summaries.parquet"),
        core.join("k6_raw_summaries.parquet"),
    )
    .unwrap();
    let copy = dir.path().join("copy.duckdb");
    let paths = lb_dfaas::memory::MemoryConfig {
        db_path: copy.clone(),
        preload_core_parquet_dir: Some(core.clone()),
        preload_raw_debug: true,
        ..Default::default()
    }
    .resolve(dir.path());
    MemoryStore::open(&paths)
        .unwrap()
        .checkpoint_and_close()
        .unwrap();
    let all = |db: &Path, table: &str| rows(db, &format!("SELECT * FROM {table} ORDER BY ALL"));
    for table in [
        "run_sessions",
        "config_catalog",
        "execution_events",
        "k6_raw_summaries",
    ] {
        assert_eq!(all(&db, table), all(&copy, table), "{table}");
    }

    // Ours → peva_faas's preload.
    let theirs = dir.path().join("theirs.duckdb");
    assert_eq!(peva("preload", &[&theirs, &core])["events"], 5);

    // peva_faas's export → ours.
    let peva_db = dir.path().join("peva.duckdb");
    peva("create", &[&peva_db]);
    let peva_core = dir.path().join("peva-core");
    let peva_debug = dir.path().join("peva-debug");
    peva("export", &[&peva_db, &peva_core, &peva_debug]);
    let mut store =
        MemoryStore::open_file(&dir.path().join("from-peva.duckdb"), SCHEMA_VERSION).unwrap();
    store.preload_parquet(&peva_core, false).unwrap();
    store.checkpoint_and_close().unwrap();
    assert_eq!(
        count(&dir.path().join("from-peva.duckdb"), "execution_events"),
        1
    );
}

#[test]
fn a_preload_of_another_schema_version_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let core = dir.path().join("core");
    std::fs::create_dir_all(&core).unwrap();
    {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT 'peva_faas_mem_v9' AS schema_version, now()::TIMESTAMP AS created_at, \
             now()::TIMESTAMP AS updated_at) TO '{}' (FORMAT PARQUET)",
            core.join("memory_schema_meta.parquet").display()
        ))
        .unwrap();
    }
    let mut store = MemoryStore::open_file(&db, SCHEMA_VERSION).unwrap();
    let error = store.preload_parquet(&core, false).unwrap_err();
    assert!(error.to_string().contains("peva_faas_mem_v9"), "{error}");
    let error = store.preload_parquet(dir.path(), false).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("memory_schema_meta.parquet is missing"),
        "{error}"
    );
    store.checkpoint_and_close().unwrap();
    assert_eq!(count(&db, "execution_events"), 5);
}

// ------------------------------------------------------- the commands

#[test]
fn memory_summary_counts_runs_configurations_iterations_overloads_and_functions() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let out = lb_dfaas(&["memory", "summary", "--db", db.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["schema_version"], "peva_faas_mem_v1");
    assert_eq!(summary["configurations"], 3);
    assert_eq!(summary["iterations"], 4);
    assert_eq!(summary["overloaded_iterations"], 1);
    assert_eq!(summary["overloaded_configurations"], 1);
    assert_eq!(summary["skipped"], json!({"dominated_by_overload": 1}));
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], "run-a");
    assert_eq!(runs[0]["iterations"], 3);
    assert_eq!(runs[0]["skipped"], 1);
    assert_eq!(runs[1]["status"], "interrupted");
    assert_eq!(
        summary["functions"],
        json!([
            {"function": "env", "configurations": 1, "iterations": 1,
             "overloaded_iterations": 0, "max_rate": 5},
            {"function": "figlet", "configurations": 3, "iterations": 4,
             "overloaded_iterations": 1, "max_rate": 10}
        ])
    );
}

#[test]
fn memory_query_prints_rows_as_json_lines_or_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let db_arg = db.to_str().unwrap();
    let sql = "SELECT run_id, status, ended_at, 1.5::DOUBLE AS x, 'nan'::DOUBLE AS y, \
               [1, 2] AS l, NULL AS n FROM run_sessions ORDER BY run_id";
    let out = lb_dfaas(&["memory", "query", sql, "--db", db_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"run_id\":\"run-a\",\"status\":\"completed\",\"ended_at\":\"2027-01-15 08:05:00\",\"x\":1.5,\"y\":\"nan\",\"l\":[1,2],\"n\":null}\n\
         {\"run_id\":\"run-b\",\"status\":\"interrupted\",\"ended_at\":\"2027-01-15 08:06:40\",\"x\":1.5,\"y\":\"nan\",\"l\":[1,2],\"n\":null}\n"
    );
    let out = lb_dfaas(&["memory", "query", sql, "--format", "csv", "--db", db_arg]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "run_id,status,ended_at,x,y,l,n\n\
         run-a,completed,2027-01-15 08:05:00,1.5,nan,\"[1,2]\",\n\
         run-b,interrupted,2027-01-15 08:06:40,1.5,nan,\"[1,2]\",\n"
    );
}

#[test]
fn memory_query_cannot_change_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample_file(dir.path());
    let before = std::fs::read(&db).unwrap();
    for sql in [
        "DELETE FROM execution_events",
        "DROP TABLE run_sessions",
        "UPDATE memory_schema_meta SET schema_version = 'x'",
    ] {
        let out = lb_dfaas(&["memory", "query", sql, "--db", db.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{sql}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            doc["error"]["context"]["errors"][0]["field"], "SQL",
            "{doc}"
        );
        assert!(
            doc["error"]["message"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{doc}"
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert_eq!(count(&db, "execution_events"), 5);
}

#[test]
fn memory_commands_name_the_missing_file_and_the_bad_query() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.duckdb");
    let out = lb_dfaas(&["memory", "summary", "--db", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["context"]["errors"][0]["field"], "--db");
    assert!(!missing.exists(), "a read-only command created the file");

    let db = sample_file(dir.path());
    let out = lb_dfaas(&["memory", "query", "SELEC 1", "--db", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["context"]["errors"][0]["field"], "SQL");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("syntax error"),
        "{doc}"
    );
}

// ------------------------------------------------------- config and install

#[test]
fn a_bad_memory_section_is_invalid_input_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"memory": {"backend": "sqlite", "schema_version": "peva_faas_mem_v2", "db_path": ""}}"#,
    )
    .unwrap();
    let out = lb_dfaas(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fields: Vec<&str> = doc["error"]["context"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["memory.backend", "memory.schema_version", "memory.db_path"]
    );
    std::fs::write(&config, r#"{"memory": {"enabled": false}}"#).unwrap();
    let out = lb_dfaas(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(&config, r#"{"memory": [1]}"#).unwrap();
    let out = lb_dfaas(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// `lb-install` lays out `bin/lb-dfaas` with `bin/libduckdb.so` beside it:
/// a copy laid out so loads the library beside it (`$ORIGIN`), not the
/// one it was linked from.
#[test]
fn a_copy_of_the_binary_loads_the_library_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_lb-dfaas"), bin.join("lb-dfaas")).unwrap();
    let library = lb_dfaas::memory::loaded_library().unwrap();
    std::fs::copy(&library, bin.join("libduckdb.so")).unwrap();
    let out = Command::new(bin.join("lb-dfaas"))
        .arg("describe")
        .env("LD_DEBUG", "libs")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let loader = String::from_utf8_lossy(&out.stderr);
    let beside = format!("calling init: {}", bin.join("libduckdb.so").display());
    assert!(loader.contains(&beside), "{loader}");
}

#[test]
fn closing_exports_the_configured_directories_and_a_missing_preload_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let paths = lb_dfaas::memory::MemoryConfig {
        db_path: PathBuf::from("m.duckdb"),
        // As peva_faas: a preload directory that a later export fills.
        preload_core_parquet_dir: Some(PathBuf::from("core")),
        export_core_parquet_dir: Some(PathBuf::from("core")),
        export_raw_debug_parquet_dir: Some(PathBuf::from("debug")),
        ..Default::default()
    }
    .resolve(dir.path());
    let mut store = MemoryStore::open(&paths).unwrap();
    begin(&mut store, "run");
    record(
        &mut store,
        "run",
        &configuration(&[("figlet", 10)]),
        1,
        false,
        &identity(),
    );
    store.checkpoint_and_close().unwrap();
    assert!(dir.path().join("core/execution_events.parquet").is_file());
    assert!(dir.path().join("debug/k6_raw_summaries.parquet").is_file());
    // The next open preloads what the last close exported.
    let store = MemoryStore::open(&paths).unwrap();
    store.checkpoint_and_close().unwrap();
    assert_eq!(count(&dir.path().join("m.duckdb"), "execution_events"), 1);
}
