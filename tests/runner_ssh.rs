//! The k6 runner against real sshd in a network namespace with real k6
//! (`testbed/k6host.sh`, instances 8 and 9). The namespace shares this
//! machine's file system and pid space, so workspaces live in a local
//! temp dir and k6's pid can be checked in /proc.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lb_dfaas::config::K6Host;
use lb_dfaas::k6::runner::{HostKeyCheck, K6Job, K6Runner, RunnerError, RunnerOptions};
use lb_dfaas::stop::Stop;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A testbed instance, brought up by the first test that needs it and torn
/// down when the last one using it is done.
struct Testbed {
    id: u32,
    env: HashMap<String, String>,
}

fn users() -> &'static Mutex<HashMap<u32, usize>> {
    static USERS: OnceLock<Mutex<HashMap<u32, usize>>> = OnceLock::new();
    USERS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn k6host(command: &str, id: u32) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/k6host.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(command)
        .arg(id.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "k6host.sh {command} {id} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

impl Testbed {
    /// k6 host `id`, shifted by `LBD_RUNNER_SSH_TESTBED_OFFSET` (default 0)
    /// so that a second checkout can run these tests beside CI.
    fn acquire(id: u32) -> Testbed {
        let offset: u32 = std::env::var("LBD_RUNNER_SSH_TESTBED_OFFSET")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let id = id + offset;
        let mut users = users().lock().unwrap_or_else(|p| p.into_inner());
        let count = users.entry(id).or_insert(0);
        if *count == 0 {
            k6host("up", id);
        }
        *count += 1;
        let env = k6host("env", id)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Testbed { id, env }
    }

    fn var(&self, name: &str) -> &str {
        &self.env[name]
    }

    fn k6_host(&self, workspace_root: &Path) -> K6Host {
        K6Host {
            host: self.var("K6_HOST").to_string(),
            user: self.var("K6_USER").to_string(),
            ssh_key: PathBuf::from(self.var("K6_SSH_KEY")),
            port: self.var("K6_PORT").parse().unwrap(),
            workspace_root: workspace_root.display().to_string(),
            known_hosts_file: None,
            outputs: Vec::new(),
            tags: BTreeMap::new(),
            log_stream: true,
            reconnect_within: Duration::from_secs(60),
        }
    }

    fn options(&self) -> RunnerOptions {
        RunnerOptions {
            host_key_check: HostKeyCheck::Strict,
            known_hosts_file: Some(PathBuf::from(self.var("K6_KNOWN_HOSTS"))),
            connect_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(300),
            ..RunnerOptions::default()
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let mut users = users().lock().unwrap_or_else(|p| p.into_inner());
        let count = users.entry(self.id).or_insert(1);
        *count -= 1;
        if *count == 0 {
            let _ = Command::new("bash")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/k6host.sh"))
                .arg("down")
                .arg(self.id.to_string())
                .status();
        }
    }
}

fn idle_script(duration: &str) -> String {
    format!(
        r#"import {{ sleep }} from "k6";
export const options = {{ scenarios: {{ idle: {{ executor: "constant-vus", vus: 1, duration: "{duration}" }} }} }};
export default function () {{ sleep(0.2); }}
"#
    )
}

fn job<'a>(
    run_id: &'a str,
    config_id: &'a str,
    script: &'a str,
    tags: &'a BTreeMap<String, String>,
) -> K6Job<'a> {
    K6Job {
        host: "node1",
        run_id,
        config_id,
        script,
        outputs: &[],
        tags,
        args: &[],
        max_runtime: Duration::from_secs(60),
    }
}

/// A process with this pid exists (a zombie counts).
fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Running, not a zombie waiting to be reaped.
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

fn read_pid(workspace: &Path) -> u32 {
    k6_pid(workspace).expect("a k6.pid")
}

/// The pid in a workspace's k6.pid, if there is one.
fn k6_pid(workspace: &Path) -> Option<u32> {
    std::fs::read_to_string(workspace.join("k6.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Answers every HTTP request with 200 and counts them.
async fn counting_server(bind: &str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(format!("{bind}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn runs_a_script_streams_its_log_and_returns_the_summary() {
    let testbed = Testbed::acquire(8);
    let root = tempfile::tempdir().unwrap();
    let (url, served) = counting_server(testbed.var("GATEWAY_BIND")).await;
    let script = format!(
        r#"import http from "k6/http";
import {{ sleep }} from "k6";
export const options = {{ scenarios: {{ load: {{ executor: "constant-vus", vus: 1, duration: "2s" }} }} }};
export function setup() {{ console.log("hello-from-k6"); }}
export default function () {{ http.get("{url}/function/figlet"); sleep(0.1); }}
"#
    );
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    assert!(runner.k6_version().await.unwrap().starts_with("k6 v"));

    let tags = BTreeMap::from([("run_id".to_string(), "run-a".to_string())]);
    let mut lines = Vec::new();
    let mut on_line = |line: &str| lines.push(line.to_string());
    let run = runner
        .run(
            &job("run-a", "0123456789ab", &script, &tags),
            &mut on_line,
            &Stop::never(),
        )
        .await
        .unwrap();

    assert_eq!(run.exit_code, 0);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert!(run.started_at < run.ended_at);
    let workspace = root.path().join("node1/run-a/0123456789ab");
    assert_eq!(run.workspace, workspace.display().to_string());
    assert_eq!(
        std::fs::read_to_string(workspace.join("script.js")).unwrap(),
        script
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("exit_code"))
            .unwrap()
            .trim(),
        "0"
    );

    // The summary is k6's own, and counts exactly the requests served.
    let requests = run.summary["metrics"]["http_reqs"]["count"]
        .as_u64()
        .unwrap();
    assert!(requests > 0);
    assert_eq!(requests as usize, served.load(Ordering::SeqCst));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(run.summary, on_disk);

    // k6's output came through line by line, and it is all of k6.log.
    assert!(
        lines.iter().any(|l| l.contains("hello-from-k6")),
        "{lines:?}"
    );
    let log = std::fs::read_to_string(workspace.join("k6.log")).unwrap();
    let log_lines: Vec<&str> = log
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines, log_lines);
    assert!(run.log_tail.ends_with(log_lines[log_lines.len() - 1]));

    runner.close().await.unwrap();
}

#[tokio::test]
async fn reconnects_when_the_master_is_gone() {
    let testbed = Testbed::acquire(8);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let socket = runner.control_socket().unwrap().to_path_buf();
    let exit = Command::new("ssh")
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "k6host"])
        .output()
        .unwrap();
    assert!(
        exit.status.success(),
        "{}",
        String::from_utf8_lossy(&exit.stderr)
    );

    let script = idle_script("1s");
    let tags = BTreeMap::new();
    let run = runner
        .run(
            &job("run-r", "cfg", &script, &tags),
            &mut |_| {},
            &Stop::never(),
        )
        .await
        .unwrap();
    assert_eq!(run.exit_code, 0);
    assert_ne!(runner.control_socket().unwrap(), socket.as_path());
    runner.close().await.unwrap();
}

#[tokio::test]
async fn workspace_values_are_quoted_not_run() {
    let testbed = Testbed::acquire(8);
    let root = tempfile::tempdir().unwrap();
    // Unique per run: the temp dir's random name.
    let marker = format!(
        "pwned-{}",
        root.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    );
    let odd_run_id = format!("$(touch {marker})`touch {marker}`;touch {marker};'\"");
    let odd_config_id = format!("c&&touch {marker}|x>y");
    let script = idle_script("1s");
    let tags = BTreeMap::from([("note".to_string(), format!("$(touch {marker})"))]);
    // Shell syntax reaches the remote programs through the workspace root
    // and the tags; the path segments below the root are plain names.
    let odd_root = root.path().join(&odd_run_id).join(&odd_config_id);

    let mut runner = K6Runner::connect(&testbed.k6_host(&odd_root), testbed.options())
        .await
        .unwrap();
    for (run_id, config_id) in [(odd_run_id.as_str(), "cfg"), ("run-q", &odd_config_id)] {
        let refused = runner
            .run(
                &job(run_id, config_id, &script, &tags),
                &mut |_| {},
                &Stop::never(),
            )
            .await;
        assert!(
            matches!(refused, Err(RunnerError::InvalidWorkspace { .. })),
            "{refused:?}"
        );
    }
    let run = runner
        .run(
            &job("run-q", "cfg", &script, &tags),
            &mut |_| {},
            &Stop::never(),
        )
        .await
        .unwrap();
    runner.close().await.unwrap();
    assert_eq!(run.exit_code, 0);

    // The workspace carries the names literally ...
    let workspace = odd_root.join("node1/run-q/cfg");
    assert!(workspace.join("script.js").is_file());
    assert!(workspace.join("summary.json").is_file());
    // ... and nothing ran: no marker file in the remote home (the remote
    // shells' first working directory), the workspace tree or /tmp.
    let home = Command::new("ssh")
        .args([
            "-i",
            testbed.var("K6_SSH_KEY"),
            "-p",
            testbed.var("K6_PORT"),
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("UserKnownHostsFile={}", testbed.var("K6_KNOWN_HOSTS")),
        ])
        .arg(format!(
            "{}@{}",
            testbed.var("K6_USER"),
            testbed.var("K6_HOST")
        ))
        .arg("pwd")
        .output()
        .unwrap();
    let home = String::from_utf8(home.stdout).unwrap().trim().to_string();
    assert!(!home.is_empty());
    for dir in [
        PathBuf::from(&home),
        PathBuf::from("/tmp"),
        workspace.clone(),
    ] {
        assert!(
            !dir.join(&marker).exists(),
            "{} exists",
            dir.join(&marker).display()
        );
    }
    let mut stack = vec![root.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            assert_ne!(
                entry.file_name().to_string_lossy(),
                marker.as_str(),
                "in {}",
                dir.display()
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

#[tokio::test]
async fn cancel_stops_k6_within_seconds() {
    let testbed = Testbed::acquire(9);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = idle_script("60s");
    let tags = BTreeMap::new();
    let (handle, stop) = Stop::new();
    let cancelled_at = Arc::new(Mutex::new(None));
    let mark = cancelled_at.clone();
    let mut progress = 0;
    let mut on_line = |line: &str| {
        // Once k6 is reporting progress (its banner came while it waited,
        // paused), ask it to stop.
        if line.contains("running (") {
            progress += 1;
            if progress == 2 {
                *mark.lock().unwrap() = Some(Instant::now());
                handle.stop();
            }
        }
    };
    let result = tokio::time::timeout(
        Duration::from_secs(40),
        runner.run(&job("run-c", "cfg", &script, &tags), &mut on_line, &stop),
    )
    .await
    .expect("a cancelled run must end");
    let since_cancel = cancelled_at
        .lock()
        .unwrap()
        .expect("k6 produced output")
        .elapsed();
    let workspace = root.path().join("node1/run-c/cfg");
    let pid = read_pid(&workspace);
    assert!(!pid_exists(pid), "k6 (pid {pid}) is still there");
    assert!(
        since_cancel < Duration::from_secs(5),
        "stopping took {since_cancel:?}"
    );
    match result {
        Err(RunnerError::Interrupted { summary, .. }) => {
            // SIGINT is a graceful stop: k6 still wrote its summary.
            assert!(
                summary.unwrap()["metrics"]["iterations"]["count"]
                    .as_u64()
                    .unwrap()
                    > 0
            );
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(workspace.join("exit_code"))
            .unwrap()
            .trim(),
        "105"
    );
    runner.close().await.unwrap();
}

#[tokio::test]
async fn overlong_run_is_stopped_and_reported() {
    let testbed = Testbed::acquire(9);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = idle_script("60s");
    let tags = BTreeMap::new();
    let mut long = job("run-t", "cfg", &script, &tags);
    long.max_runtime = Duration::from_secs(3);
    let result = tokio::time::timeout(
        Duration::from_secs(40),
        runner.run(&long, &mut |_| {}, &Stop::never()),
    )
    .await
    .expect("an overlong run must end");
    assert!(
        matches!(result, Err(RunnerError::Timeout { .. })),
        "{result:?}"
    );
    assert!(!pid_exists(read_pid(&root.path().join("node1/run-t/cfg"))));
    runner.close().await.unwrap();
}

#[tokio::test]
async fn failing_script_reports_exit_code_and_log() {
    let testbed = Testbed::acquire(9);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = "export default function () {}\nthrow new Error(\"broken-on-purpose\");\n";
    let tags = BTreeMap::new();
    let result = runner
        .run(
            &job("run-f", "cfg", script, &tags),
            &mut |_| {},
            &Stop::never(),
        )
        .await;
    match result {
        Err(RunnerError::K6Failed { code, log_tail }) => {
            assert_eq!(code, Some(107), "script exception");
            assert!(log_tail.contains("broken-on-purpose"), "{log_tail}");
        }
        other => panic!("expected K6Failed, got {other:?}"),
    }
    runner.close().await.unwrap();
}

#[tokio::test]
async fn unreachable_hosts_fail_fast_naming_the_host() {
    let testbed = Testbed::acquire(9);
    let root = tempfile::tempdir().unwrap();
    let mut options = testbed.options();
    options.connect_timeout = Duration::from_secs(3);

    // Nobody has this address on instance 9's link.
    let mut nobody = testbed.k6_host(root.path());
    nobody.host = "10.211.9.3".to_string();
    let err = tokio::time::timeout(
        Duration::from_secs(15),
        K6Runner::connect(&nobody, options.clone()),
    )
    .await
    .expect("connecting must give up within its timeout")
    .unwrap_err();
    assert!(matches!(err, RunnerError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("10.211.9.3:2222"), "{err}");

    // A port that accepts and never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut mute = testbed.k6_host(root.path());
    mute.host = "127.0.0.1".to_string();
    mute.port = silent.local_addr().unwrap().port();
    let err = tokio::time::timeout(Duration::from_secs(15), K6Runner::connect(&mute, options))
        .await
        .expect("connecting must give up within its timeout")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", mute.port)),
        "{err}"
    );
    drop(silent);
}

#[tokio::test]
async fn stop_asked_before_start_starts_nothing() {
    let testbed = Testbed::acquire(9);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = idle_script("60s");
    let tags = BTreeMap::new();
    let (handle, stop) = Stop::new();
    handle.stop();
    let result = runner
        .run(&job("run-s", "cfg", &script, &tags), &mut |_| {}, &stop)
        .await;
    assert!(
        matches!(result, Err(RunnerError::Interrupted { summary: None, .. })),
        "{result:?}"
    );
    let workspace = root.path().join("node1/run-s/cfg");
    assert!(workspace.join("script.js").is_file());
    // k6 may have been started paused; it never ran and is gone.
    if let Some(pid) = k6_pid(&workspace) {
        wait_gone(pid).await;
    }
    assert!(!workspace.join("summary.json").exists(), "k6 ran");
    runner.close().await.unwrap();
}

#[tokio::test]
async fn close_stops_a_k6_whose_run_was_dropped() {
    let testbed = Testbed::acquire(8);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = idle_script("60s");
    let tags = BTreeMap::new();
    let dropped = tokio::time::timeout(
        Duration::from_secs(4),
        runner.run(
            &job("run-d", "cfg", &script, &tags),
            &mut |_| {},
            &Stop::never(),
        ),
    )
    .await;
    assert!(dropped.is_err(), "the 60 s run cannot have finished");
    let pid = read_pid(&root.path().join("node1/run-d/cfg"));
    assert!(pid_exists(pid), "k6 is detached and keeps running");
    runner.close().await.unwrap();
    assert!(!pid_exists(pid), "close() must stop k6 (pid {pid})");
}

/// The instance of the tests about what reaches ssh's command line.
const SSH_ARGS_TESTBED: u32 = 10;

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A known_hosts file and a key whose paths hold spaces, `;` and quotes
/// (and `%`, for the known_hosts file) reach ssh whole: with strict host key checking the connection works
/// only if ssh reads exactly that known_hosts file, and no file is created
/// from a path ssh split (`kh;touch x` used to create `kh;touch`).
#[tokio::test]
async fn ssh_paths_with_spaces_and_shell_characters_reach_ssh_whole() {
    use std::os::unix::fs::PermissionsExt;
    let testbed = Testbed::acquire(SSH_ARGS_TESTBED);
    let root = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let odd = base.path().join("a b;touch x \"q\" 'r' %d");
    std::fs::create_dir(&odd).unwrap();
    let known_hosts = odd.join("known hosts;touch y");
    std::fs::copy(testbed.var("K6_KNOWN_HOSTS"), &known_hosts).unwrap();
    // ssh expands `%` in key paths whatever the quoting: none here.
    let key_dir = base.path().join("keys;touch z \"k\"");
    std::fs::create_dir(&key_dir).unwrap();
    let key = key_dir.join("id key;x 'k'");
    std::fs::copy(testbed.var("K6_SSH_KEY"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut host = testbed.k6_host(root.path());
    host.ssh_key = key.clone();
    let options = RunnerOptions {
        known_hosts_file: Some(known_hosts.clone()),
        ..testbed.options()
    };
    assert_eq!(options.host_key_check, HostKeyCheck::Strict);
    let mut runner = K6Runner::connect(&host, options).await.unwrap();
    let version = runner.k6_version().await.unwrap();
    assert!(version.contains("k6"), "{version}");
    runner.close().await.unwrap();

    assert_eq!(
        names_in(base.path()),
        ["a b;touch x \"q\" 'r' %d", "keys;touch z \"k\""],
        "a file was made from a split path"
    );
    assert_eq!(names_in(&odd), ["known hosts;touch y"]);
    assert_eq!(names_in(&key_dir), ["id key;x 'k'"]);
}

/// The pid of the ControlMaster behind `socket` (`ssh -O check`).
fn master_pid(socket: &Path) -> Option<u32> {
    let out = Command::new("ssh")
        .arg("-S")
        .arg(socket)
        .args(["-O", "check", "k6host"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let start = text.find("pid=")? + 4;
    text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// A run killed with SIGKILL leaves its ControlMaster (alive for its idle
/// bound) and its control directory (for ever). The next runner to start
/// stops that master through its socket and removes the directory — and
/// leaves alone the directory of a run that is still alive.
#[tokio::test]
async fn the_next_start_cleans_up_what_a_killed_run_left() {
    let testbed = Testbed::acquire(SSH_ARGS_TESTBED);
    let root = tempfile::tempdir().unwrap();
    let host = testbed.k6_host(root.path());

    let alive = K6Runner::connect(&host, testbed.options()).await.unwrap();
    let killed = K6Runner::connect(&host, testbed.options()).await.unwrap();
    let killed_dir = killed.control_directory().to_path_buf();
    let socket = killed.control_socket().unwrap().to_path_buf();
    let pid = master_pid(&socket).expect("the master answers");
    // What SIGKILL does: no destructor runs, the master keeps running.
    std::mem::forget(killed);
    // ...and its process is gone: the owner file names a finished process.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(killed_dir.join("owner"), format!("lb-dfaas {gone_pid} 1\n")).unwrap();

    let next = K6Runner::connect(&host, testbed.options()).await.unwrap();
    assert!(
        next.leftovers_removed().contains(&killed_dir),
        "{:?}",
        next.leftovers_removed()
    );
    assert!(!killed_dir.exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_exists(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pid_exists(pid), "the killed run's master {pid} still runs");
    // A live run's directory and master are not touched.
    assert!(alive.control_directory().exists());
    assert!(!next
        .leftovers_removed()
        .contains(&alive.control_directory().to_path_buf()));
    let alive_dir = alive.control_directory().to_path_buf();
    alive.close().await.unwrap();
    next.close().await.unwrap();
    assert!(!alive_dir.exists());
}

/// A script that prints one numbered line every 50 ms for `duration`.
/// Waits (up to 5 s) for `pid` to be gone; panics if it is not.
async fn wait_gone(pid: u32) {
    for _ in 0..50 {
        if !is_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("k6 {pid} still runs");
}

fn counting_script(duration: &str) -> String {
    format!(
        r#"import {{ sleep }} from "k6";
export const options = {{ scenarios: {{ idle: {{ executor: "constant-vus", vus: 1, duration: "{duration}" }} }} }};
let n = 0;
export default function () {{ console.log("line-" + n); n += 1; sleep(0.05); }}
"#
    )
}

#[tokio::test]
async fn a_prepared_run_costs_no_command_launch_and_reports_the_generator_cpu() {
    let testbed = Testbed::acquire(8);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = idle_script("1s");
    let tags = BTreeMap::new();
    let job = job("run-p", "cfg", &script, &tags);
    let before_prepare = runner.remote_commands();
    runner.prepare(&job, &Stop::never()).await.unwrap();
    let prepared = runner.remote_commands();
    assert_eq!(prepared - before_prepare, 1, "preparing is one command");
    // k6 waits, paused, with its script: started, no iteration run.
    let workspace = root.path().join("node1/run-p/cfg");
    assert_eq!(
        std::fs::read_to_string(workspace.join("script.js")).unwrap(),
        script
    );
    let pid = k6_pid(&workspace).expect("k6 started paused");
    assert!(is_alive(pid), "paused k6 {pid} runs");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!workspace.join("summary.json").exists());

    let run = runner.run(&job, &mut |_| {}, &Stop::never()).await.unwrap();
    assert_eq!(run.exit_code, 0);
    assert!(
        run.resumed_through_api,
        "resumed over the forwarded REST API"
    );
    assert_eq!(
        runner.remote_commands(),
        prepared,
        "the prepared run launched no further command"
    );
    let cpu = run.generator_cpu.expect("the generator's CPU use");
    assert!((0.0..=1.0).contains(&cpu.busy), "{cpu:?}");
    assert!(cpu.cores >= 1, "{cpu:?}");
    // k6's own share, from its CPU times: some, and no more than the host's.
    let k6_busy = cpu.k6_busy.expect("k6's own CPU use");
    assert!(k6_busy > 0.0 && k6_busy <= cpu.busy + 0.05, "{cpu:?}");

    // Unprepared, the run launches its one command itself.
    let job = crate::job("run-p", "cfg2", &script, &tags);
    let before = runner.remote_commands();
    runner.run(&job, &mut |_| {}, &Stop::never()).await.unwrap();
    assert_eq!(runner.remote_commands() - before, 1);

    // A prepared job that is not the one run is dropped: its paused k6
    // is killed without having run.
    let other = crate::job("run-p", "cfg3", &script, &tags);
    runner.prepare(&other, &Stop::never()).await.unwrap();
    let dropped = root.path().join("node1/run-p/cfg3");
    let paused = k6_pid(&dropped).expect("k6 started paused");
    runner.run(&job, &mut |_| {}, &Stop::never()).await.unwrap();
    wait_gone(paused).await;
    assert!(!dropped.join("summary.json").exists());
    runner.close().await.unwrap();
}

#[tokio::test]
async fn without_the_forward_the_remote_program_resumes_k6_after_its_init() {
    let testbed = Testbed::acquire(9);
    let root = tempfile::tempdir().unwrap();
    let options = RunnerOptions {
        forward_api: false,
        ..testbed.options()
    };
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), options)
        .await
        .unwrap();
    let script = counting_script("1s");
    let tags = BTreeMap::new();
    let job = job("run-r", "cfg", &script, &tags);
    runner.prepare(&job, &Stop::never()).await.unwrap();
    let prepared = runner.remote_commands();
    let mut lines = Vec::new();
    let run = runner
        .run(&job, &mut |l| lines.push(l.to_string()), &Stop::never())
        .await
        .unwrap();
    assert_eq!(run.exit_code, 0);
    assert!(!run.resumed_through_api);
    assert_eq!(
        runner.remote_commands(),
        prepared,
        "still no further command"
    );
    // It ran its second of iterations once resumed.
    assert!(
        run.summary["metrics"]["iterations"]["count"]
            .as_u64()
            .unwrap()
            > 5,
        "{}",
        run.summary
    );
    assert!(lines.iter().any(|l| l.contains("line-")), "{lines:?}");
    runner.close().await.unwrap();
}

#[tokio::test]
async fn a_connection_dropped_mid_run_is_picked_up_with_the_whole_log() {
    let testbed = Testbed::acquire(8);
    let root = tempfile::tempdir().unwrap();
    let mut runner = K6Runner::connect(&testbed.k6_host(root.path()), testbed.options())
        .await
        .unwrap();
    let script = counting_script("3s");
    let tags = BTreeMap::new();
    let job = job("run-d", "cfg", &script, &tags);
    let socket = runner.control_socket().unwrap().to_path_buf();
    let workspace = root.path().join("node1/run-d/cfg");
    let killer = {
        let workspace = workspace.clone();
        tokio::spawn(async move {
            // Once k6 runs and logs, the master goes away under the stream.
            while !std::fs::read_to_string(workspace.join("k6.log"))
                .unwrap_or_default()
                .contains("line-5")
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let exit = Command::new("ssh")
                .arg("-S")
                .arg(&socket)
                .args(["-O", "exit", "k6host"])
                .output()
                .unwrap();
            assert!(exit.status.success());
        })
    };
    let mut lines = Vec::new();
    let run = runner
        .run(
            &job,
            &mut |line: &str| lines.push(line.to_string()),
            &Stop::never(),
        )
        .await
        .unwrap();
    killer.await.unwrap();
    assert_eq!(run.exit_code, 0);
    assert!(
        run.summary["metrics"]["iterations"]["count"]
            .as_u64()
            .unwrap()
            > 10
    );
    // Every log line came through once, in order, across the reconnect.
    let log = std::fs::read_to_string(workspace.join("k6.log")).unwrap();
    let log_lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines, log_lines);
    assert!(lines.iter().any(|l| l.contains("line-20")), "{lines:?}");
    runner.close().await.unwrap();
}
