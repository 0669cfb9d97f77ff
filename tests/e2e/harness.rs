//! Shared pieces of the end-to-end tests: the serial lock, per-test
//! directories, configs and requests for a testbed instance, running the
//! built `lb-dfaas` as a child process (whole or watched line by line),
//! reading its LB_EVENT lines and datasets, and looking at the k6 host's
//! processes and workspaces.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::Testbed;

/// The whole `lb-dfaas run` of any test ends within this (or is killed
/// and the test fails).
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests of this binary one at a time (a failed test must not
/// block the others, so a poisoned lock is taken anyway).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// --- directories -----------------------------------------------------------

/// A test's own directories: the output directory, the k6 workspace root
/// (on the k6 host, which shares this file system) and the stop file.
pub struct Workdir {
    tmp: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            tmp: tempfile::Builder::new()
                .prefix("lbd-e2e-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// An output directory of this test (`out`, `rerun`, ...).
    pub fn output(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn workspace_root(&self) -> PathBuf {
        self.tmp.path().join("k6ws")
    }

    pub fn stop_file(&self) -> PathBuf {
        self.tmp.path().join("STOP")
    }
}

/// The k6 workspace of one configuration, as SPEC §6 lays it out.
pub fn workspace_dir(root: &Path, host: &str, run_id: &str, config_id: &str) -> PathBuf {
    root.join(host).join(run_id).join(config_id)
}

/// Every directory below `root`, relative to it.
pub fn dirs_below(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf());
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

// --- configs and requests --------------------------------------------------

/// A config for `tb` with short iterations. The overload thresholds that
/// depend on the whole machine (node CPU and RAM) are out of reach, so that
/// other work on the machine cannot overload a configuration: overload in
/// these tests comes from success rates, which the gateway decides.
pub fn base_config(tb: &Testbed, work: &Workdir) -> Value {
    json!({
        "k6_host": tb.k6_host,
        "k6_port": tb.k6_port,
        "k6_user": tb.k6_user,
        "k6_ssh_key": tb.k6_ssh_key,
        "k6_known_hosts_file": tb.k6_known_hosts,
        "k6_workspace_root": work.workspace_root(),
        "gateway_url": tb.gateway_url,
        "prometheus_url": tb.prometheus_url,
        "duration": "2s",
        "iterations": 1,
        "cooldown": {"max_wait_seconds": 120, "sleep_step_seconds": 1, "idle_threshold_pct": 100},
        "overload": {
            "cpu_overload_pct_of_capacity": 100,
            "ram_overload_pct": 100,
            "success_rate_node_min": 0.5,
            "success_rate_function_min": 0.5,
        },
    })
}

/// `base` with the top-level fields of `extra` set (replacing).
pub fn with(mut base: Value, extra: Value) -> Value {
    let (Value::Object(base_map), Value::Object(extra_map)) = (&mut base, extra) else {
        panic!("configs are JSON objects");
    };
    for (k, v) in extra_map {
        base_map.insert(k, v);
    }
    base
}

/// The host name the tests give in the context (a workspace path segment).
pub const HOST: &str = "node1";

/// A request envelope as lb writes it on stdin.
pub fn request(config: Value, work: &Workdir, output: &str, run_id: &str) -> Value {
    json!({
        "config": config,
        "context": {
            "host": HOST,
            "workload": "dfaas",
            "run_id": run_id,
            "repetition": 1,
            "total_repetitions": 1,
            "output_dir": work.output(output),
            "stop_file": work.stop_file(),
        },
    })
}

// --- running the binary ----------------------------------------------------

/// A finished `lb-dfaas run`.
#[derive(Debug)]
pub struct Finished {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: Vec<String>,
    /// From spawn to exit, polled every 20 ms.
    pub elapsed: Duration,
}

impl Finished {
    /// The one result document on stdout.
    pub fn result(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr.join("\n")
            )
        })
    }

    pub fn events(&self) -> Vec<Value> {
        self.stderr.iter().filter_map(|l| event(l)).collect()
    }

    /// stderr, for assertion messages.
    pub fn log(&self) -> String {
        self.stderr.join("\n")
    }
}

/// The event of an `LB_EVENT {json}` line. Every event the end-to-end
/// tests read passes lb's poller rule (see [`ends_lb_repetition`]).
pub fn event(line: &str) -> Option<Value> {
    line.strip_prefix("LB_EVENT ").map(|json| {
        let event: Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("bad LB_EVENT {e}: {line}"));
        assert!(
            !ends_lb_repetition(&event, &event["workload"], &event["repetition"]),
            "an event would end lb's repetition early: {line}"
        );
        event
    })
}

/// lb's workload-runner poller (`roles/workload_runner/tasks/stream_events_step.yml`
/// in lb 0.67.0): an event of the repetition's workload and number whose
/// `status` is `done`, `failed` or `stopped` ends the repetition, before
/// lb's own runner has written its status file.
pub fn ends_lb_repetition(event: &Value, workload: &Value, repetition: &Value) -> bool {
    event["workload"] == *workload
        && event["repetition"].as_i64() == repetition.as_i64()
        && ["done", "failed", "stopped"]
            .iter()
            .any(|terminal| event["status"] == *terminal)
}

/// An event of this `type` whose message contains `text`. Every event the
/// binary emits has status `running`.
pub fn is_event(event: &Value, kind: &str, text: &str) -> bool {
    event["type"] == kind
        && event["status"] == "running"
        && event["message"].as_str().is_some_and(|m| m.contains(text))
}

/// A k6 output line (`type: log`, message `k6: ...`).
pub fn is_k6_line(event: &Value) -> bool {
    event["type"] == "log"
        && event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("k6: "))
}

/// A running `lb-dfaas run`, its stderr read line by line as it comes.
pub struct Running {
    child: Child,
    started: Instant,
    lines: Receiver<String>,
    stderr: Vec<String>,
    stdout: Option<JoinHandle<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts `lb-dfaas run` with `request` on stdin.
    pub fn spawn(request: &Value) -> Running {
        Running::spawn_with(request, &[])
    }

    /// Starts `lb-dfaas run <args>` with `request` on stdin.
    pub fn spawn_with(request: &Value, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
            .arg("run")
            .arg("--log-format")
            .arg("text")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start lb-dfaas");
        let started = Instant::now();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(request).unwrap().as_bytes())
            .unwrap();
        drop(stdin);
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).unwrap();
            text
        });
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let stderr_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Running {
            child,
            started,
            lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
            stderr_reader: Some(stderr_reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line read so far.
    pub fn stderr(&self) -> &[String] {
        &self.stderr
    }

    /// Reads stderr until an event satisfies `wanted`; panics (with the
    /// stderr so far) if the process ends first or `limit` passes.
    pub fn wait_for_event(&mut self, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ev = event(&line);
                    self.stderr.push(line);
                    if let Some(ev) = ev {
                        if wanted(&ev) {
                            return ev;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no such event within {limit:?}; stderr so far:\n{}",
                        self.stderr.join("\n")
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!(
                        "lb-dfaas ended ({status:?}) before the event; stderr:\n{}",
                        self.stderr.join("\n")
                    );
                }
            }
        }
    }

    /// The exit code once the process has ended (`Some(None)`: ended by a
    /// signal), `None` while it runs.
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().unwrap().map(|status| status.code())
    }

    /// Sends `signal` (a `kill -s` name: TERM, INT, KILL) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Waits for the end (killing it and failing after `limit`).
    pub fn wait(mut self, limit: Duration) -> Finished {
        let deadline = self.started + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "lb-dfaas still running after {limit:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().unwrap();
        }
        self.stderr.extend(self.lines.try_iter());
        let stdout = self.stdout.take().unwrap().join().unwrap();
        Finished {
            code: status.code(),
            stdout,
            stderr: std::mem::take(&mut self.stderr),
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panicked while watching leaves no process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `lb-dfaas run` to its end.
pub fn run(request: &Value) -> Finished {
    Running::spawn(request).wait(RUN_LIMIT)
}

/// Runs `lb-dfaas run <args>` to its end.
pub fn run_with(request: &Value, args: &[&str]) -> Finished {
    Running::spawn_with(request, args).wait(RUN_LIMIT)
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg("-s")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

// --- datasets --------------------------------------------------------------

/// A CSV file: header and rows, every row as long as the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path, delimiter: u8) -> Table {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(false)
            .from_path(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut records = reader.records().map(|r| {
            r.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        let header = records
            .next()
            .unwrap_or_else(|| panic!("{} is empty", path.display()));
        Table {
            header,
            rows: records.collect(),
        }
    }

    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    pub fn cell(&self, row: usize, name: &str) -> &str {
        &self.rows[row][self.col(name)]
    }
}

/// The nine columns of one function (SPEC §5).
pub fn function_columns(f: &str) -> [String; 9] {
    [
        format!("function_{f}"),
        format!("rate_function_{f}"),
        format!("success_rate_function_{f}"),
        format!("cpu_usage_function_{f}"),
        format!("ram_usage_function_{f}"),
        format!("power_usage_function_{f}"),
        format!("replica_{f}"),
        format!("overloaded_function_{f}"),
        format!("medium_latency_function_{f}"),
    ]
}

pub const NODE_COLUMNS: [&str; 10] = [
    "cpu_usage_idle_node",
    "cpu_usage_node",
    "ram_usage_idle_node",
    "ram_usage_node",
    "ram_usage_idle_node_percentage",
    "ram_usage_node_percentage",
    "power_usage_idle_node",
    "power_usage_node",
    "rest_seconds",
    "overloaded_node",
];

/// results.csv's header for the campaign's (sorted) function names.
pub fn results_header(names: &[&str]) -> Vec<String> {
    let mut header: Vec<String> = names.iter().flat_map(|f| function_columns(f)).collect();
    header.extend(NODE_COLUMNS.iter().map(|c| c.to_string()));
    header
}

/// `%.3f`: digits, a point, exactly three digits (optionally negative).
pub fn is_fixed3(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    match s.split_once('.') {
        Some((int, frac)) => {
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.len() == 3
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

pub fn is_measure(s: &str) -> bool {
    s == "nan" || is_fixed3(s)
}

pub fn is_int(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

pub fn is_flag(s: &str) -> bool {
    s == "0" || s == "1"
}

/// Checks every cell of every row of results.csv against SPEC §5 and
/// returns, per row, the (function, rate) pairs it holds (functions whose
/// cells are all empty are absent from the row's configuration).
pub fn check_results(table: &Table, names: &[&str]) -> Vec<Vec<(String, u64)>> {
    assert_eq!(table.header, results_header(names), "results.csv header");
    let mut configs = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let what = |col: &str| {
            format!(
                "row {} column {col}: {:?} in {row:?}",
                i + 1,
                table.cell(i, col)
            )
        };
        let mut pairs = Vec::new();
        for f in names {
            let cols = function_columns(f);
            let cells: Vec<&str> = cols.iter().map(|c| table.cell(i, c)).collect();
            if cells.iter().all(|c| c.is_empty()) {
                continue;
            }
            assert_eq!(cells[0], *f, "{}", what(&cols[0]));
            assert!(is_int(cells[1]), "{}", what(&cols[1]));
            assert!(is_fixed3(cells[2]), "{}", what(&cols[2]));
            let success: f64 = cells[2].parse().unwrap();
            assert!((0.0..=1.0).contains(&success), "{}", what(&cols[2]));
            for c in 3..=5 {
                assert!(is_measure(cells[c]), "{}", what(&cols[c]));
            }
            assert!(is_int(cells[6]), "{}", what(&cols[6]));
            assert!(is_flag(cells[7]), "{}", what(&cols[7]));
            assert!(is_fixed3(cells[8]), "{}", what(&cols[8]));
            pairs.push((f.to_string(), cells[1].parse().unwrap()));
        }
        assert!(
            !pairs.is_empty(),
            "row {} names no function: {row:?}",
            i + 1
        );
        for col in &NODE_COLUMNS[..8] {
            assert!(is_measure(table.cell(i, col)), "{}", what(col));
        }
        assert!(
            is_int(table.cell(i, "rest_seconds")),
            "{}",
            what("rest_seconds")
        );
        assert!(
            is_flag(table.cell(i, "overloaded_node")),
            "{}",
            what("overloaded_node")
        );
        configs.push(pairs);
    }
    configs
}

/// The protocol's `dfaas_results` must be results.csv's rows, cell for cell.
pub fn assert_rows_match_protocol(table: &Table, rows: &Value) {
    let rows = rows.as_array().expect("dfaas_results is a list");
    assert_eq!(
        rows.len(),
        table.rows.len(),
        "dfaas_results vs results.csv rows"
    );
    for (i, row) in rows.iter().enumerate() {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            table.header.iter().collect::<Vec<_>>(),
            "row {} keys",
            i + 1
        );
        for (col, cell) in table.header.iter().zip(&table.rows[i]) {
            let text = match &row[col] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(&text, cell, "row {} column {col}", i + 1);
        }
    }
}

/// The config id of SPEC §4: the first 12 hex digits of SHA-256 of
/// `name:rate|name:rate` with the pairs sorted by name.
pub fn config_id(pairs: &[(&str, u64)]) -> String {
    let mut pairs = pairs.to_vec();
    pairs.sort();
    let text = pairs
        .iter()
        .map(|(f, r)| format!("{f}:{r}"))
        .collect::<Vec<_>>()
        .join("|");
    hex::encode(Sha256::digest(text.as_bytes()))[..12].to_string()
}

/// An index.csv line: `['a', 'b'];[0, 5];results.csv`.
pub fn index_line(pairs: &[(&str, u64)]) -> String {
    let names: Vec<String> = pairs.iter().map(|(f, _)| format!("'{f}'")).collect();
    let rates: Vec<String> = pairs.iter().map(|(_, r)| r.to_string()).collect();
    format!("[{}];[{}];results.csv", names.join(", "), rates.join(", "))
}

/// Owned pairs, for comparing with [`check_results`].
pub fn owned(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(f, r)| (f.to_string(), *r)).collect()
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// --- the k6 host -----------------------------------------------------------

/// Command lines of k6 processes in the k6 host's namespace: the k6
/// binary itself, or the shell that waits for it (its command line holds
/// the k6 command).
pub fn k6_processes(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip netns pids {netns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).ok()?;
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let argv0 = args.first()?;
            let is_k6 = Path::new(argv0).file_name().is_some_and(|n| n == "k6")
                || args.iter().any(|a| a.contains("--summary-export"));
            is_k6.then(|| format!("{}: {}", pid.trim(), args.join(" ")))
        })
        .collect()
}

/// Polls `f` every 100 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SSH master processes (`ssh -M`) connected to `tb`'s k6 host (found by
/// the instance's own known_hosts file on their command line).
pub fn ssh_masters(tb: &Testbed) -> Vec<(u32, Vec<String>)> {
    let marker = format!("UserKnownHostsFile={}", tb.k6_known_hosts.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ssh = args
            .first()
            .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "ssh"));
        if is_ssh && args.iter().any(|a| a == "-M") && args.iter().any(|a| a == &marker) {
            found.push((pid, args));
        }
    }
    found
}

/// Ends SSH masters a SIGKILLed `lb-dfaas` left behind (by pid) and
/// removes their control directories.
pub fn end_leaked_ssh_masters(tb: &Testbed) -> usize {
    let masters = ssh_masters(tb);
    for (pid, args) in &masters {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        if let Some(socket) = args
            .iter()
            .position(|a| a == "-S")
            .and_then(|i| args.get(i + 1))
        {
            // <tmp>/lbd-sshXXXX/.ssh-connectionYYYY/master
            if let Some(dir) = Path::new(socket).parent().and_then(Path::parent) {
                if dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("lbd-ssh"))
                {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
    masters.len()
}

/// Ends, when dropped (before the testbed it borrows), the SSH masters a
/// killed `lb-dfaas` left connected to the testbed — also when the test
/// failed half-way.
pub struct SshMasterSweep<'a>(pub &'a Testbed);

impl Drop for SshMasterSweep<'_> {
    fn drop(&mut self) {
        end_leaked_ssh_masters(self.0);
    }
}

/// The pid a testbed service recorded (`services/<name>.pid`), checked
/// against its command line.
pub fn service_pid(tb: &Testbed, name: &str) -> u32 {
    let path = tb.state_dir.join("services").join(format!("{name}.pid"));
    let pid: u32 = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains(name),
        "pid {pid} from {} is not {name}",
        path.display()
    );
    pid
}
