//! The CSV datasets against checked-in golden files (produced by Python's
//! csv module in the legacy layout), durability and resume behaviour on
//! real files, and `export` against the files the lb plugin's former Python
//! exporter wrote from the same result entries.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use lb_dfaas::config::FunctionName;
use lb_dfaas::metrics::readings::{FunctionMetrics, IterationMetrics, QueryWindow};
use lb_dfaas::output::artifact::{self, write_atomic};
use lb_dfaas::output::export::{export, read_entries};
use lb_dfaas::output::index::{parse_index, read_index};
use lb_dfaas::output::resume::{
    completed_iterations, parse_completed_iterations, CompletedIterations,
};
use lb_dfaas::output::row::{index_entry, index_line, skipped_line, skipped_to_protocol};
use lb_dfaas::output::table::Table;
use lb_dfaas::output::{
    Dataset, Fault, FunctionCells, IterationRecord, NodeCells, OutputError, ResultRow,
};
use lb_dfaas::plan::{ConfigId, ConfigKey, Configuration};
use serde_json::json;

fn name(n: &str) -> FunctionName {
    FunctionName::parse(n).unwrap()
}

fn functions() -> Vec<FunctionName> {
    vec![name("env"), name("figlet"), name("shasum")]
}

fn golden(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what} differs\n--- got ---\n{}\n--- want ---\n{}",
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want)
    );
}

fn config(pairs: &[(&str, u64)]) -> Configuration {
    Configuration::from_pairs(pairs.iter().map(|&(n, r)| (name(n), r))).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn f(
    rate: u64,
    success_rate: f64,
    cpu: f64,
    ram: f64,
    power: f64,
    replicas: u64,
    overloaded: bool,
    latency: f64,
) -> FunctionCells {
    FunctionCells {
        rate,
        success_rate,
        cpu_usage: cpu,
        ram_usage: ram,
        power_usage: power,
        replicas: Some(replicas),
        overloaded,
        mean_latency_ms: latency,
    }
}

#[allow(clippy::too_many_arguments)]
fn node(
    ci: f64,
    c: f64,
    ri: f64,
    r: f64,
    rip: f64,
    rp: f64,
    pi: f64,
    p: f64,
    rest: u64,
    overloaded: bool,
) -> NodeCells {
    NodeCells {
        cpu_usage_idle: ci,
        cpu_usage: c,
        ram_usage_idle: ri,
        ram_usage: r,
        ram_usage_idle_pct: rip,
        ram_usage_pct: rp,
        power_usage_idle: pi,
        power_usage: p,
        rest_seconds: rest,
        overloaded,
    }
}

/// The rows of tests/golden/results.csv.
fn golden_rows() -> Vec<ResultRow> {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    vec![
        ResultRow {
            functions: BTreeMap::from([(
                name("env"),
                f(10, 1.0, 12.3456, 104857600.0, nan, 1, false, 3.14259),
            )]),
            node: node(5.0, 20.5, 1e9, 1.2e9, 25.0, 30.0004, nan, nan, 15, false),
        },
        ResultRow {
            functions: BTreeMap::from([
                (name("env"), f(0, 1.0, 0.5, 2048.0, nan, 1, false, 0.0)),
                (
                    name("figlet"),
                    f(10, 0.8, -0.0001, inf, nan, 3, true, 1234.5678),
                ),
            ]),
            node: node(4.25, 95.0625, 1.5e9, 3.75e9, 37.5, 93.75, nan, nan, 0, true),
        },
        ResultRow {
            functions: BTreeMap::from([
                (
                    name("figlet"),
                    f(200, 0.0625, 180.0, 7.5e8, 12.5, 15, true, 30000.0),
                ),
                (
                    name("shasum"),
                    f(50, 0.999, 0.0015, -inf, 0.0, 0, false, 12.0),
                ),
            ]),
            node: node(0.0, 199.99, 0.0, 7.9e9, 0.0, 98.0, 1.25, 250.5, 180, true),
        },
    ]
}

fn golden_skipped() -> Vec<Configuration> {
    vec![
        config(&[("shasum", 0), ("env", 20)]),
        config(&[("figlet", 0)]),
    ]
}

fn golden_index() -> Vec<ConfigKey> {
    vec![
        config(&[("env", 10)]).key(),
        config(&[("env", 0), ("figlet", 10)]).key(),
        config(&[("figlet", 200), ("shasum", 50)]).key(),
    ]
}

/// A fresh directory under the target dir, removed when dropped.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> Self {
        TempDir(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn write_golden_dataset(dir: &Path) -> Dataset {
    let (mut ds, repairs) = Dataset::open(dir, &functions()).unwrap();
    assert!(repairs.is_empty());
    for row in golden_rows() {
        ds.append_result(&row).unwrap();
    }
    for c in golden_skipped() {
        ds.append_skipped(&c).unwrap();
    }
    for k in golden_index() {
        ds.append_index(&k).unwrap();
    }
    ds
}

#[test]
fn in_memory_lines_match_golden_files() {
    let fns = functions();
    let mut results = Table::Results.header_line(&fns);
    for row in golden_rows() {
        results.extend(row.csv_line(&fns).unwrap());
    }
    assert_bytes(&results, &golden("results.csv"), "results.csv");

    let mut skipped = Table::Skipped.header_line(&fns);
    for c in golden_skipped() {
        skipped.extend(skipped_line(&c, &fns).unwrap());
    }
    assert_bytes(&skipped, &golden("skipped.csv"), "skipped.csv");

    let mut index = Table::Index.header_line(&fns);
    for k in golden_index() {
        index.extend(index_line(&k));
    }
    assert_bytes(&index, &golden("index.csv"), "index.csv");
}

#[test]
fn dataset_files_match_golden_files() {
    let dir = TempDir::new();
    let out = dir.path().join("nested/out");
    let ds = write_golden_dataset(&out);
    assert_bytes(
        &fs::read(ds.results_path()).unwrap(),
        &golden("results.csv"),
        "results.csv",
    );
    assert_bytes(
        &fs::read(ds.skipped_path()).unwrap(),
        &golden("skipped.csv"),
        "skipped.csv",
    );
    assert_bytes(
        &fs::read(ds.index_path()).unwrap(),
        &golden("index.csv"),
        "index.csv",
    );
}

#[test]
fn reopening_appends_without_a_second_header() {
    let dir = TempDir::new();
    {
        let (mut ds, _) = Dataset::open(dir.path(), &functions()).unwrap();
        ds.append_result(&golden_rows()[0]).unwrap();
    }
    let (mut ds, repairs) = Dataset::open(dir.path(), &functions()).unwrap();
    assert!(repairs.is_empty());
    for row in &golden_rows()[1..] {
        ds.append_result(row).unwrap();
    }
    assert_bytes(
        &fs::read(dir.file("results.csv")).unwrap(),
        &golden("results.csv"),
        "results.csv",
    );
}

#[test]
fn a_different_header_is_an_error_and_the_file_is_untouched() {
    let dir = TempDir::new();
    {
        // A dataset of another campaign (no shasum).
        let (mut ds, _) = Dataset::open(dir.path(), &functions()[..2]).unwrap();
        ds.append_result(&golden_rows()[0]).unwrap();
    }
    let before = fs::read(dir.file("results.csv")).unwrap();
    let err = Dataset::open(dir.path(), &functions()).unwrap_err();
    match &err {
        OutputError::HeaderMismatch {
            path,
            expected,
            found,
        } => {
            assert_eq!(path, &dir.file("results.csv"));
            assert!(expected.contains("function_shasum"));
            assert!(!found.contains("function_shasum"));
            assert!(found.ends_with("overloaded_node"), "{found}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("results.csv") && text.contains("expected:") && text.contains("found:"),
        "{text}"
    );
    assert_eq!(fs::read(dir.file("results.csv")).unwrap(), before);
}

#[test]
fn foreign_files_are_not_taken_over() {
    for content in [&b"hello\n"[..], b"not a header at all, no newline", b"\n"] {
        let dir = TempDir::new();
        fs::write(dir.file("skipped.csv"), content).unwrap();
        let err = Dataset::open(dir.path(), &functions()).unwrap_err();
        assert!(
            matches!(&err, OutputError::HeaderMismatch { path, .. } if path == &dir.file("skipped.csv")),
            "{content:?}: {err}"
        );
        assert_eq!(fs::read(dir.file("skipped.csv")).unwrap(), content);
    }
}

#[test]
fn a_torn_last_line_is_cut_before_appending() {
    let dir = TempDir::new();
    let rows = golden_rows();
    {
        let (mut ds, _) = Dataset::open(dir.path(), &functions()).unwrap();
        ds.append_result(&rows[0]).unwrap();
        ds.append_index(&golden_index()[0]).unwrap();
    }
    // A kill in the middle of the second row's write.
    let partial = &rows[1].csv_line(&functions()).unwrap()[..37];
    let mut content = fs::read(dir.file("results.csv")).unwrap();
    content.extend_from_slice(partial);
    fs::write(dir.file("results.csv"), &content).unwrap();

    // Readers ignore the torn line without touching the file.
    let (counts, torn) = completed_iterations(&dir.file("results.csv")).unwrap();
    assert_eq!(counts.len(), 1);
    let torn = torn.unwrap();
    assert_eq!((torn.bytes, torn.removed), (37, false));
    assert_eq!(fs::read(dir.file("results.csv")).unwrap(), content);

    let (mut ds, repairs) = Dataset::open(dir.path(), &functions()).unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].path, dir.file("results.csv"));
    assert_eq!(repairs[0].bytes, 37);
    assert!(repairs[0].removed);
    assert_eq!(repairs[0].text.as_bytes(), partial);
    assert!(repairs[0]
        .to_string()
        .contains("removed an unfinished last line"));
    for row in &rows[1..] {
        ds.append_result(row).unwrap();
    }
    assert_bytes(
        &fs::read(dir.file("results.csv")).unwrap(),
        &golden("results.csv"),
        "results.csv",
    );
}

#[test]
fn a_torn_header_is_rewritten() {
    let dir = TempDir::new();
    let header = Table::Index.header_line(&functions());
    fs::write(dir.file("index.csv"), &header[..7]).unwrap();
    fs::write(dir.file("results.csv"), b"").unwrap();
    let (mut ds, repairs) = Dataset::open(dir.path(), &functions()).unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].text, "functio");
    for k in golden_index() {
        ds.append_index(&k).unwrap();
    }
    assert_bytes(
        &fs::read(dir.file("index.csv")).unwrap(),
        &golden("index.csv"),
        "index.csv",
    );
    assert_eq!(
        fs::read(dir.file("results.csv")).unwrap(),
        Table::Results.header_line(&functions())
    );
}

#[test]
fn rows_of_unknown_functions_are_refused() {
    let dir = TempDir::new();
    let (mut ds, _) = Dataset::open(dir.path(), &functions()[..1]).unwrap();
    let err = ds.append_result(&golden_rows()[1]).unwrap_err();
    assert!(
        matches!(&err, OutputError::UnknownFunction(f) if f == "figlet"),
        "{err}"
    );
    let err = ds.append_skipped(&config(&[("shasum", 1)])).unwrap_err();
    assert!(
        matches!(&err, OutputError::UnknownFunction(f) if f == "shasum"),
        "{err}"
    );
    assert_eq!(
        fs::read(ds.results_path()).unwrap(),
        Table::Results.header_line(&functions()[..1])
    );
    assert!(matches!(
        Dataset::open(dir.path(), &[]),
        Err(OutputError::NoFunctions)
    ));
}

#[test]
fn reads_a_legacy_index() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/legacy_index.csv");
    let index = read_index(&path).unwrap();
    assert!(index.torn.is_none());
    let got: Vec<(Vec<String>, Vec<u64>, String, u64)> = index
        .records
        .iter()
        .map(|r| {
            (
                r.key.functions().to_vec(),
                r.key.rates().to_vec(),
                r.results_file.clone(),
                r.line,
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (s(&["env"]), vec![0], "results.csv".to_string(), 2),
            (
                s(&["env", "figlet"]),
                vec![0, 10],
                "results.csv".to_string(),
                3
            ),
            (s(&["figlet"]), vec![200], "results.csv".to_string(), 4),
            (
                s(&["figlet", "shasum"]),
                vec![10, 20],
                "results.csv".to_string(),
                5
            ),
            // Listed out of order in the file; keys are sorted by name.
            (
                s(&["env", "shasum"]),
                vec![7, 5],
                "results.csv".to_string(),
                6
            ),
        ]
    );
    let indexed = index.indexed();
    assert!(indexed.contains(&config(&[("figlet", 10), ("shasum", 20)])));
    assert!(indexed.contains(&config(&[("shasum", 5), ("env", 7)])));
    assert!(!indexed.contains(&config(&[("shasum", 7), ("env", 5)])));
}

#[test]
fn our_index_reads_back() {
    let dir = TempDir::new();
    let ds = write_golden_dataset(dir.path());
    let index = ds.read_index().unwrap();
    let keys: Vec<ConfigKey> = index.records.into_iter().map(|r| r.key).collect();
    assert_eq!(keys, golden_index());
    assert!(read_index(&dir.file("missing.csv"))
        .unwrap()
        .records
        .is_empty());
}

#[test]
fn garbage_index_lines_are_errors_naming_line_and_reason() {
    let header = "functions;rates;results_file\n";
    let cases = [
        ("['env'];[0]\n", 2, "expected 3 fields"),
        (
            "['env'];[0];results.csv\nenv;0;results.csv\n",
            3,
            "functions: expected a list",
        ),
        ("['env'];['0'];results.csv\n", 2, "rates: expected a rate"),
        ("['env'];[-5];results.csv\n", 2, "negative"),
        ("['env'];[1.5];results.csv\n", 2, "whole numbers"),
        (
            "['env', 'figlet'];[0];results.csv\n",
            2,
            "2 functions but 1 rates",
        ),
        ("['env', 'env'];[0, 1];results.csv\n", 2, "more than once"),
        ("[];[];results.csv\n", 2, "at least one function"),
        ("['env';[0];results.csv\n", 2, "functions:"),
        ("[1];[0];results.csv\n", 2, "expected a function name"),
    ];
    for (body, line, reason) in cases {
        let err = parse_index(format!("{header}{body}").as_bytes(), "out/index.csv").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, OutputError::Malformed { line: l, .. } if *l == line)
                && text.starts_with(&format!("out/index.csv line {line}: "))
                && text.contains(reason),
            "{body:?}: {text}"
        );
    }
    let err = parse_index(&b"a;b;c\n['env'];[0];x\n"[..], "i.csv").unwrap_err();
    assert!(
        err.to_string().contains("i.csv line 1: header must name"),
        "{err}"
    );
    assert!(parse_index(&b""[..], "i.csv").unwrap().is_empty());
}

#[test]
fn torn_index_line_is_ignored_by_readers() {
    let dir = TempDir::new();
    fs::write(
        dir.file("index.csv"),
        "functions;rates;results_file\n['env'];[10];results.csv\n['env'];[10",
    )
    .unwrap();
    let index = read_index(&dir.file("index.csv")).unwrap();
    assert_eq!(index.records.len(), 1);
    let torn = index.torn.unwrap();
    assert_eq!((torn.text.as_str(), torn.removed), ("['env'];[10", false));
}

#[test]
fn completed_iterations_count_rows_per_configuration() {
    let dir = TempDir::new();
    let (mut ds, _) = Dataset::open(dir.path(), &functions()).unwrap();
    let rows = golden_rows();
    // Two iterations of the second configuration, one overloaded.
    ds.append_result(&rows[1]).unwrap();
    let mut calm = rows[1].clone();
    calm.node.overloaded = false;
    ds.append_result(&calm).unwrap();
    ds.append_result(&rows[0]).unwrap();
    let counts = ds.completed_iterations().unwrap();
    assert_eq!(counts.len(), 2);
    assert_eq!(
        counts[&rows[1].key()],
        CompletedIterations {
            rows: 2,
            overloaded: 1
        }
    );
    assert_eq!(
        counts[&config(&[("env", 10)]).key()],
        CompletedIterations {
            rows: 1,
            overloaded: 0
        }
    );

    let golden_counts =
        parse_completed_iterations(&golden("results.csv")[..], "results.csv").unwrap();
    assert_eq!(golden_counts.len(), 3);
    assert_eq!(
        golden_counts[&config(&[("figlet", 200), ("shasum", 50)]).key()],
        CompletedIterations {
            rows: 1,
            overloaded: 1
        }
    );
    assert!(completed_iterations(&dir.file("none.csv"))
        .unwrap()
        .0
        .is_empty());
}

#[test]
fn completed_iterations_reject_garbage() {
    let golden = String::from_utf8(golden("results.csv")).unwrap();
    let header = golden.lines().next().unwrap();
    let bad_rate = golden.replacen("env,10,", "env,ten,", 1);
    let err = parse_completed_iterations(bad_rate.as_bytes(), "r.csv").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("r.csv line 2: rate_function_env"),
        "{err}"
    );
    let empty_row = format!("{header}\n{}\n", ",".repeat(header.matches(',').count()));
    let err = parse_completed_iterations(empty_row.as_bytes(), "r.csv").unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2: the row names no function"),
        "{err}"
    );
    let crlf = bad_rate
        .replace('\n', "\r\n")
        .replacen("env,0,", "env,x,", 1);
    let err = parse_completed_iterations(crlf.as_bytes(), "r.csv").unwrap_err();
    assert!(err.to_string().starts_with("r.csv line 2: "), "{err}");
    let crlf = golden.replace('\n', "\r\n").replacen("env,0,", "env,x,", 1);
    let err = parse_completed_iterations(crlf.as_bytes(), "r.csv").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("r.csv line 3: rate_function_env"),
        "{err}"
    );
    let err = parse_completed_iterations(&b"a,b\n1,2\n"[..], "r.csv").unwrap_err();
    assert!(
        err.to_string().contains("line 1: header has no function_"),
        "{err}"
    );
}

#[test]
fn protocol_rows_follow_header_order_and_types() {
    let fns = functions();
    let row = golden_rows()[1].to_protocol(&fns).unwrap();
    let keys: Vec<&String> = row.keys().collect();
    assert_eq!(keys, Table::Results.header(&fns).iter().collect::<Vec<_>>());
    assert_eq!(row["function_env"], json!("env"));
    assert_eq!(row["rate_function_figlet"], json!(10));
    assert_eq!(row["success_rate_function_figlet"], json!("0.800"));
    assert_eq!(row["ram_usage_function_figlet"], json!("inf"));
    assert_eq!(row["power_usage_function_env"], json!("nan"));
    assert_eq!(row["replica_figlet"], json!(3));
    assert_eq!(row["overloaded_function_figlet"], json!(1));
    assert_eq!(row["function_shasum"], json!(""));
    assert_eq!(row["replica_shasum"], json!(""));
    assert_eq!(row["rest_seconds"], json!(0));
    assert_eq!(row["overloaded_node"], json!(1));
    assert_eq!(row["cpu_usage_node"], json!("95.062"));

    let skipped = skipped_to_protocol(&golden_skipped()[0], &fns).unwrap();
    assert_eq!(
        serde_json::to_string(&skipped).unwrap(),
        r#"{"function_env":"env","rate_function_env":20,"function_figlet":"","rate_function_figlet":"","function_shasum":"shasum","rate_function_shasum":0}"#
    );
    assert_eq!(
        serde_json::to_value(index_entry(&golden_index()[1])).unwrap(),
        json!({"functions": ["env", "figlet"], "rates": [0, 10], "results_file": "results.csv"})
    );
}

#[test]
fn artifacts_are_written_whole_under_legacy_names() {
    let dir = TempDir::new();
    let id = ConfigId::parse("a6836d82b30b").unwrap();
    let summary = json!({"metrics": {"http_reqs": {"count": 300, "rate": 10.0}}});
    let path = artifact::write_summary(dir.path(), &id, 1, 2, &summary).unwrap();
    assert_eq!(
        path,
        dir.file("summaries/summary-a6836d82b30b-iter1-rep2.json")
    );
    let back: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, summary);

    let metrics = IterationMetrics {
        window: None,
        cpu_usage_node: 95.0625,
        ram_usage_node: 3.75e9,
        ram_usage_node_pct: 93.75,
        power_usage_node: f64::NAN,
        functions: BTreeMap::from([
            (
                name("env"),
                FunctionMetrics {
                    cpu: 0.5,
                    ram: 2048.0,
                    power: f64::NAN,
                },
            ),
            (
                name("figlet"),
                FunctionMetrics {
                    cpu: 1e-5,
                    ram: 1.5e16,
                    power: f64::INFINITY,
                },
            ),
        ]),
    };
    let path = artifact::write_metrics(dir.path(), &id, 3, 1, &functions(), &metrics).unwrap();
    assert_eq!(
        path,
        dir.file("metrics/metrics-a6836d82b30b-iter3-rep1.csv")
    );
    assert_bytes(
        &fs::read(&path).unwrap(),
        &golden("metrics.csv"),
        "metrics.csv",
    );

    let path = artifact::write_script(dir.path(), &id, "export default function () {}\n").unwrap();
    assert_eq!(path, dir.file("k6_scripts/config-a6836d82b30b.js"));
    // Overwrite in place; no temporary file is left behind.
    write_atomic(&path, b"// v2\n").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"// v2\n");
    for sub in ["summaries", "metrics", "k6_scripts"] {
        let names: Vec<_> = fs::read_dir(dir.file(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{sub}: {names:?}");
    }
}

/// Python's csv module writes `\r\n`: rows appended to such a file keep
/// its line ending, so the file never mixes the two.
#[test]
fn a_legacy_crlf_results_file_is_continued_with_crlf() {
    let dir = TempDir::new();
    let legacy = String::from_utf8(golden("results.csv")).unwrap();
    let mut lines = legacy.lines();
    let crlf: String = lines.by_ref().take(2).map(|l| format!("{l}\r\n")).collect();
    fs::write(dir.file("results.csv"), &crlf).unwrap();
    let (mut ds, repairs) = Dataset::open(dir.path(), &functions()).unwrap();
    assert!(repairs.is_empty());
    ds.append_result(&golden_rows()[1]).unwrap();
    let content = String::from_utf8(fs::read(dir.file("results.csv")).unwrap()).unwrap();
    assert_eq!(content, format!("{crlf}{}\r\n", lines.next().unwrap()));
    let counts = ds.completed_iterations().unwrap();
    assert_eq!(counts.len(), 2);
    // skipped.csv and index.csv follow their own files' line endings.
    drop(ds);
    let mut index = String::from_utf8(golden("index.csv")).unwrap();
    index = index.lines().next().unwrap().to_string() + "\r\n";
    fs::write(dir.file("index.csv"), &index).unwrap();
    let (mut ds, _) = Dataset::open(dir.path(), &functions()).unwrap();
    ds.append_index(&golden_index()[0]).unwrap();
    ds.append_skipped(&golden_skipped()[0]).unwrap();
    let index_text = fs::read_to_string(dir.file("index.csv")).unwrap();
    assert!(index_text.starts_with(&index), "{index_text:?}");
    assert!(
        index_text[index.len()..].ends_with("\r\n"),
        "{index_text:?}"
    );
    assert_eq!(
        index_text.matches('\n').count(),
        index_text.matches("\r\n").count()
    );
    let skipped_text = fs::read_to_string(dir.file("skipped.csv")).unwrap();
    assert!(
        !skipped_text.contains('\r'),
        "a new file is written with LF: {skipped_text:?}"
    );
    assert_eq!(ds.read_index().unwrap().records.len(), 1);
}

#[path = "support/small_fs.rs"]
mod small_fs;

fn empty_metrics() -> IterationMetrics {
    IterationMetrics {
        cpu_usage_node: 1.0,
        ram_usage_node: 2.0,
        ram_usage_node_pct: 3.0,
        power_usage_node: f64::NAN,
        functions: BTreeMap::new(),
        window: Some(QueryWindow {
            time_span: "2s".into(),
            seconds: 2.0,
            k6_seconds: 2.0,
            scrape_interval_seconds: None,
            scrape_interval_source: None,
            end_unix_seconds: 2.0,
        }),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|list| {
            list.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn an_iteration_is_recorded_files_first_row_last() {
    let dir = TempDir::new();
    let (mut ds, _) = Dataset::open(dir.path(), &functions()).unwrap();
    let id = ConfigId::parse("a6836d82b30b").unwrap();
    let summary = json!({"metrics": {}});
    let row = &golden_rows()[0];
    let files = ds
        .append_iteration(&IterationRecord {
            config_id: &id,
            iteration: 1,
            repetition: 1,
            summary: &summary,
            metrics: &empty_metrics(),
            generators: None,
            row,
        })
        .unwrap();
    assert_eq!(
        files.summary,
        dir.file("summaries/summary-a6836d82b30b-iter1-rep1.json")
    );
    assert!(files.summary.is_file() && files.metrics.is_file());
    assert_eq!(
        fs::read_to_string(dir.file("results.csv"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

/// A row that cannot be written takes the iteration's files with it: no
/// file outlives a row that was never written.
#[test]
fn an_iteration_whose_row_fails_leaves_no_files() {
    let dir = TempDir::new();
    // A dataset without figlet: the second golden row cannot be written.
    let (mut ds, _) = Dataset::open(dir.path(), &[name("env")]).unwrap();
    let before = fs::read(dir.file("results.csv")).unwrap();
    let id = ConfigId::parse("a6836d82b30b").unwrap();
    let error = ds
        .append_iteration(&IterationRecord {
            config_id: &id,
            iteration: 2,
            repetition: 1,
            summary: &json!({"metrics": {}}),
            metrics: &empty_metrics(),
            generators: None,
            row: &golden_rows()[1],
        })
        .unwrap_err();
    assert!(matches!(error, OutputError::UnknownFunction(_)), "{error}");
    assert_eq!(entries(&dir.file("summaries")), Vec::<String>::new());
    assert_eq!(entries(&dir.file("metrics")), Vec::<String>::new());
    assert_eq!(fs::read(dir.file("results.csv")).unwrap(), before);
}

/// ENOSPC while an iteration is written: neither its row nor any of its
/// files (nor a temporary file) is left, and the error is the
/// environment's, naming the file and the OS error.
#[test]
fn enospc_while_writing_an_iteration_leaves_neither_row_nor_files() {
    let Some(fs_small) = small_fs::SmallFs::mount(64, false) else {
        return;
    };
    let out = fs_small.join("out");
    lb_dfaas::output::location::prepare(&out).unwrap();
    let (mut ds, _) = Dataset::open(&out, &functions()).unwrap();
    let before = fs::read(out.join("results.csv")).unwrap();
    let id = ConfigId::parse("a6836d82b30b").unwrap();
    // A summary larger than the whole filesystem.
    let summary = json!({"metrics": {"padding": "x".repeat(200 * 1024)}});
    let error = ds
        .append_iteration(&IterationRecord {
            config_id: &id,
            iteration: 1,
            repetition: 1,
            summary: &summary,
            metrics: &empty_metrics(),
            generators: None,
            row: &golden_rows()[0],
        })
        .unwrap_err();
    assert_eq!(error.fault(), Fault::Environment, "{error}");
    assert!(
        error.to_string().contains("No space left on device"),
        "{error}"
    );
    assert!(error.path().is_some_and(|p| p.starts_with(&out)), "{error}");
    assert_eq!(entries(&out.join("summaries")), Vec::<String>::new());
    assert_eq!(entries(&out.join("metrics")), Vec::<String>::new());
    assert_eq!(fs::read(out.join("results.csv")).unwrap(), before);
}

/// ENOSPC in the middle of a line: the line is rolled back, the file ends
/// on a line boundary and the rows before it are intact.
#[test]
fn enospc_on_append_rolls_the_line_back() {
    let Some(fs_small) = small_fs::SmallFs::mount(64, false) else {
        return;
    };
    let out = fs_small.join("out");
    let (mut ds, _) = Dataset::open(&out, &functions()).unwrap();
    fs_small.fill_leaving(0);
    let rows = golden_rows();
    let mut appended = 0;
    let error = loop {
        match ds.append_result(&rows[appended % rows.len()]) {
            Ok(()) => appended += 1,
            Err(error) => break error,
        }
        assert!(appended < 10_000, "the disk never filled up");
    };
    assert_eq!(error.fault(), Fault::Environment, "{error}");
    let content = fs::read(out.join("results.csv")).unwrap();
    assert!(content.ends_with(b"\n"), "a torn line was left");
    assert_eq!(
        content.iter().filter(|&&b| b == b'\n').count(),
        appended + 1
    );
    drop(ds);
    let (_, repairs) = Dataset::open(&out, &functions()).unwrap();
    assert!(repairs.is_empty(), "{repairs:?}");
}

#[test]
fn a_completed_configuration_leaves_skipped_csv_and_every_other_line_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = write_golden_dataset(dir.path());
    let path = dir.path().join("skipped.csv");
    let before = fs::read(&path).unwrap();
    let gone = golden_skipped()[0].clone();
    assert!(ds.remove_skipped(&gone).unwrap());
    let line = skipped_line(&gone, &functions()).unwrap();
    let mut expected = before.clone();
    let at = expected
        .windows(line.len())
        .position(|w| w == line.as_slice())
        .unwrap();
    expected.drain(at..at + line.len());
    assert_bytes(&fs::read(&path).unwrap(), &expected, "skipped.csv");
    // Nothing more to remove; appends go to the rewritten file.
    assert!(!ds.remove_skipped(&gone).unwrap());
    ds.append_skipped(&gone).unwrap();
    let mut appended = expected;
    appended.extend(&line);
    assert_bytes(
        &fs::read(&path).unwrap(),
        &appended,
        "skipped.csv after an append",
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Errors about a garbled index or results file say where and what was
/// expected, never what the file holds past its header (which is all the
/// header check quotes, and only its start).
#[test]
fn errors_quote_no_file_content_beyond_the_header() {
    let secret = "s3cr3t-value";
    let header = "functions;rates;results_file\n";
    for body in [
        format!("['env'];[{secret}];results.csv\n"),
        format!("{secret};[0];results.csv\n"),
        format!("['env'];[0] {secret};results.csv\n"),
        format!("['{secret}', '{secret}'];[0, 1];results.csv\n"),
        format!("['env\\{secret}'];[0];results.csv\n"),
        format!("[{secret}];[0];results.csv\n"),
    ] {
        let err = parse_index(format!("{header}{body}").as_bytes(), "index.csv").unwrap_err();
        assert!(!err.to_string().contains(secret), "{body:?}: {err}");
    }
    let long_header = format!("{};x\n", "h".repeat(5000));
    let err = parse_index(long_header.as_bytes(), "index.csv").unwrap_err();
    assert!(err.to_string().len() < 400, "{err}");

    let golden = String::from_utf8(golden("results.csv")).unwrap();
    for bad in [
        golden.replacen("env,10,", &format!("env,{secret},"), 1),
        golden.replacen(",0\n", &format!(",{secret}\n"), 1),
    ] {
        let err = parse_completed_iterations(bad.as_bytes(), "r.csv").unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// tests/fixtures/export/<name>.json exported: the same files as
/// tests/golden/export/<name>/ (tests/fixtures/export/generate.py), the
/// CSVs and k6 scripts byte for byte, the JSON files (summaries, query
/// windows) as the same JSON (the former exporter left out the final
/// newline the binary writes).
#[test]
fn export_writes_the_files_of_the_former_python_exporter() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for fixture in ["synthetic", "campaign", "edge"] {
        let input = root.join(format!("tests/fixtures/export/{fixture}.json"));
        let golden = root.join(format!("tests/golden/export/{fixture}"));
        let entries = read_entries(fs::File::open(&input).unwrap(), fixture).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dfaas");
        let report = export(&entries, &out).unwrap();

        let files = files_under(&golden);
        assert_eq!(files_under(&out), files, "{fixture}");
        let mut written: Vec<PathBuf> = report
            .written
            .iter()
            .map(|p| p.strip_prefix(&out).unwrap().to_path_buf())
            .collect();
        written.sort();
        assert_eq!(
            written, files,
            "{fixture}: the report lists what was written"
        );
        assert!(report.kept.is_empty(), "{fixture}: {:?}", report.kept);
        for file in &files {
            let (got, want) = (
                fs::read(out.join(file)).unwrap(),
                fs::read(golden.join(file)).unwrap(),
            );
            let what = format!("{fixture}/{}", file.display());
            if file.extension().is_some_and(|e| e == "json") {
                let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
                assert_eq!(parse(&got), parse(&want), "{what}");
            } else {
                assert_bytes(&got, &want, &what);
            }
        }
    }
}
