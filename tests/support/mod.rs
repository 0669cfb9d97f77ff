//! Test support for end-to-end tests: brings up a local testbed instance
//! (k6 host = sshd + real k6 in a network namespace, the test gateway,
//! node-exporter and Prometheus) through `testbed/testbed.sh`, exposes its
//! addresses, and tears it down in `Drop` — on success, failure or panic.
//!
//! Use from `tests/*.rs` with `mod support;`. Each test takes its own
//! instance: [`Testbed::start`] picks a free instance id with a lease file,
//! so tests running in parallel threads (or processes) never share one.
//!
//! A small blocking HTTP/1.0 client ([`http_get`], [`http_post`]) is
//! included so sync and async tests alike can talk to the gateway and
//! Prometheus without extra dependencies; it only ever targets the
//! testbed's own loopback and namespace addresses.
#![allow(dead_code)]

pub mod tls_prometheus;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Instance ids handed out to tests: 100..=199 (ids below 100 are left for
/// people running the scripts by hand).
const TEST_ID_FIRST: u32 = 100;
const TEST_ID_COUNT: u32 = 100;

/// What to run on the gateway; `None`/empty keeps the script's defaults.
#[derive(Debug, Clone, Default)]
pub struct TestbedOptions {
    /// `name=work_ms[:workers[:queue]],...`
    pub functions: Option<String>,
    /// Extra gateway flags, e.g. `["--queue-capacity", "4"]`.
    pub gateway_args: Vec<String>,
    /// Basic auth `(user, password)` for the gateway's `/system/*`.
    pub basic_auth: Option<(String, String)>,
}

/// A running testbed instance. Dropping it runs `testbed.sh down`.
#[derive(Debug)]
pub struct Testbed {
    pub id: u32,
    /// k6 host (the namespace's address), SSH port, user, private key and a
    /// known_hosts file holding its host key.
    pub k6_host: String,
    pub k6_port: u16,
    pub k6_user: String,
    pub k6_ssh_key: PathBuf,
    pub k6_known_hosts: PathBuf,
    pub netns: String,
    /// Gateway base URL as k6 in the namespace reaches it (also reachable
    /// from the host), e.g. `http://10.211.<id>.1:<port>`.
    pub gateway_url: String,
    /// Gateway URL for the test's own calls (`/truth`, `/metrics`).
    pub gateway_admin_url: String,
    pub prometheus_url: String,
    pub node_exporter_url: String,
    pub state_dir: PathBuf,
    /// Every variable `testbed.sh env` printed.
    pub env: BTreeMap<String, String>,
    lease: Lease,
}

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("cannot run {script}: {source}")]
    Spawn {
        script: String,
        source: std::io::Error,
    },
    #[error("`testbed.sh {action} {id}` failed ({status}): {stderr}")]
    Script {
        action: &'static str,
        id: u32,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("`testbed.sh env {id}` did not print {name}")]
    MissingVar { id: u32, name: &'static str },
    #[error("`testbed.sh env {id}`: {name}={value} is not a valid value")]
    BadVar {
        id: u32,
        name: &'static str,
        value: String,
    },
    #[error("no free testbed instance id in {first}..{last}")]
    NoFreeId { first: u32, last: u32 },
    #[error("lease file {path}: {source}")]
    Lease {
        path: String,
        source: std::io::Error,
    },
}

/// Where the scripts keep their state (same default as the scripts).
pub fn testbed_dir() -> PathBuf {
    std::env::var_os("TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/lbd-testbed"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/testbed.sh")
}

impl Testbed {
    /// Brings up a fresh instance with default options on a free id;
    /// panics with the script's error if that fails.
    pub fn start() -> Self {
        Self::start_with(&TestbedOptions::default())
    }

    /// As [`Testbed::start`], with gateway options.
    pub fn start_with(options: &TestbedOptions) -> Self {
        match Self::up_any(options) {
            Ok(tb) => tb,
            Err(e) => panic!("testbed did not come up: {e}"),
        }
    }

    /// Leases a free id and brings the instance up on it.
    pub fn up_any(options: &TestbedOptions) -> Result<Self, TestbedError> {
        let lease = Lease::acquire()?;
        Self::up_leased(lease, options)
    }

    /// Brings up instance `id` (taking its lease; fails if another test
    /// holds it).
    pub fn up(id: u32, options: &TestbedOptions) -> Result<Self, TestbedError> {
        let lease = Lease::try_take(id)?.ok_or(TestbedError::NoFreeId {
            first: id,
            last: id,
        })?;
        Self::up_leased(lease, options)
    }

    fn up_leased(lease: Lease, options: &TestbedOptions) -> Result<Self, TestbedError> {
        let id = lease.id;
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("up").arg(id.to_string());
        if let Some(f) = &options.functions {
            cmd.env("TESTBED_FUNCTIONS", f);
        }
        if !options.gateway_args.is_empty() {
            cmd.env("TESTBED_GATEWAY_ARGS", options.gateway_args.join(" "));
        }
        if let Some((user, password)) = &options.basic_auth {
            cmd.env("TESTBED_BASIC_AUTH", format!("{user}:{password}"));
        }
        // From here on, whatever happens, the instance is torn down: a
        // half-built Testbed still owns the lease and runs `down` on drop.
        let mut tb = Testbed {
            id,
            k6_host: String::new(),
            k6_port: 0,
            k6_user: String::new(),
            k6_ssh_key: PathBuf::new(),
            k6_known_hosts: PathBuf::new(),
            netns: String::new(),
            gateway_url: String::new(),
            gateway_admin_url: String::new(),
            prometheus_url: String::new(),
            node_exporter_url: String::new(),
            state_dir: PathBuf::new(),
            env: BTreeMap::new(),
            lease,
        };
        run_script(cmd, "up", id)?;
        let env = read_env(id)?;
        let var = |name: &'static str| -> Result<String, TestbedError> {
            env.get(name)
                .cloned()
                .ok_or(TestbedError::MissingVar { id, name })
        };
        tb.k6_host = var("K6_HOST")?;
        let port = var("K6_PORT")?;
        tb.k6_port = port.parse().map_err(|_| TestbedError::BadVar {
            id,
            name: "K6_PORT",
            value: port,
        })?;
        tb.k6_user = var("K6_USER")?;
        tb.k6_ssh_key = PathBuf::from(var("K6_SSH_KEY")?);
        tb.k6_known_hosts = PathBuf::from(var("K6_KNOWN_HOSTS")?);
        tb.netns = var("K6_NETNS")?;
        tb.gateway_url = var("GATEWAY_URL")?;
        tb.gateway_admin_url = var("GATEWAY_ADMIN_URL")?;
        tb.prometheus_url = var("PROMETHEUS_URL")?;
        tb.node_exporter_url = var("NODE_EXPORTER_URL")?;
        tb.state_dir = PathBuf::from(var("TESTBED_STATE_DIR")?);
        tb.env = env;
        Ok(tb)
    }

    /// Arguments for `ssh` that reach the k6 host non-interactively with
    /// strict host key checking against the instance's known_hosts.
    pub fn ssh_args(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.k6_ssh_key.display().to_string(),
            "-p".into(),
            self.k6_port.to_string(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.k6_known_hosts.display()),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            format!("{}@{}", self.k6_user, self.k6_host),
        ]
    }

    /// Runs `remote` (a shell command line) on the k6 host.
    pub fn ssh(&self, remote: &str) -> std::io::Result<Output> {
        Command::new("ssh")
            .args(self.ssh_args())
            .arg(remote)
            .stdin(Stdio::null())
            .output()
    }

    /// The gateway's `/truth` JSON.
    pub fn truth(&self) -> Result<serde_json::Value, String> {
        let body = http_get(&format!("{}/truth", self.gateway_admin_url))?;
        serde_json::from_str(&body).map_err(|e| format!("/truth is not JSON: {e}: {body}"))
    }

    /// Zeroes the gateway's truth counters.
    pub fn reset_truth(&self) -> Result<(), String> {
        http_post(&format!("{}/truth/reset", self.gateway_admin_url), "").map(|_| ())
    }

    /// First sample of a Prometheus instant query, if it has one.
    pub fn prometheus_value(&self, query: &str) -> Result<Option<f64>, String> {
        prometheus_value(&self.prometheus_url, query)
    }
}

/// A second load generator: the k6 host of `testbed/k6host.sh` alone (sshd
/// and k6 in its own network namespace) on a leased id. It reaches every
/// testbed's gateway through the host. Dropping it runs `k6host.sh down`.
#[derive(Debug)]
pub struct K6Host {
    pub id: u32,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub ssh_key: PathBuf,
    pub known_hosts: PathBuf,
    lease: Lease,
}

fn k6host_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/k6host.sh")
}

impl K6Host {
    /// Leases a free id and brings the k6 host up; panics on failure.
    pub fn start() -> K6Host {
        let lease = Lease::acquire().unwrap_or_else(|e| panic!("no id for a k6 host: {e}"));
        let id = lease.id;
        let run = |action: &'static str| {
            let mut cmd = Command::new("bash");
            cmd.arg(k6host_script()).arg(action).arg(id.to_string());
            cmd.env("TESTBED_SKIP_SHELL_RC", "1");
            run_script(cmd, action, id).unwrap_or_else(|e| panic!("k6host.sh {action} {id}: {e}"))
        };
        let mut host = K6Host {
            id,
            host: String::new(),
            port: 0,
            user: String::new(),
            ssh_key: PathBuf::new(),
            known_hosts: PathBuf::new(),
            lease,
        };
        run("up");
        let env = parse_env(&run("env"));
        let var = |name: &str| {
            env.get(name)
                .cloned()
                .unwrap_or_else(|| panic!("k6host.sh env {id} has no {name}"))
        };
        host.host = var("K6_HOST");
        host.port = var("K6_PORT").parse().expect("a port");
        host.user = var("K6_USER");
        host.ssh_key = PathBuf::from(var("K6_SSH_KEY"));
        host.known_hosts = PathBuf::from(var("K6_KNOWN_HOSTS"));
        host
    }
}

impl Drop for K6Host {
    fn drop(&mut self) {
        let mut cmd = Command::new("bash");
        cmd.arg(k6host_script())
            .arg("down")
            .arg(self.id.to_string());
        if let Err(e) = run_script(cmd, "down", self.id) {
            eprintln!("k6 host teardown of {}: {e}", self.id);
        }
        let _ = &self.lease;
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("down").arg(self.id.to_string());
        if let Err(e) = run_script(cmd, "down", self.id) {
            eprintln!("testbed teardown of instance {}: {e}", self.id);
        }
        // The lease is released after `down` (field drop order).
    }
}

fn run_script(mut cmd: Command, action: &'static str, id: u32) -> Result<String, TestbedError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| TestbedError::Spawn {
            script: script().display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(TestbedError::Script {
            action,
            id,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `testbed.sh env` output (NAME=value lines, values in bash's `%q`
/// quoting, which for our values is plain or backslash-escaped).
fn read_env(id: u32) -> Result<BTreeMap<String, String>, TestbedError> {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg("env").arg(id.to_string());
    let text = run_script(cmd, "env", id)?;
    Ok(parse_env(&text))
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), unquote(v.trim())))
        .collect()
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An exclusive claim on one instance id: a file created with
/// `create_new` holding the owner's pid. A lease whose pid is gone is
/// stale and is taken over (after tearing that instance down).
#[derive(Debug)]
struct Lease {
    id: u32,
    path: PathBuf,
}

static NEXT_OFFSET: AtomicU32 = AtomicU32::new(0);

impl Lease {
    fn acquire() -> Result<Self, TestbedError> {
        // Start at a pid-derived offset so concurrent test binaries spread
        // out, then walk the range.
        let start =
            std::process::id() % TEST_ID_COUNT + NEXT_OFFSET.fetch_add(1, Ordering::Relaxed);
        for step in 0..TEST_ID_COUNT {
            let id = TEST_ID_FIRST + (start + step) % TEST_ID_COUNT;
            if let Some(lease) = Self::try_take(id)? {
                return Ok(lease);
            }
        }
        Err(TestbedError::NoFreeId {
            first: TEST_ID_FIRST,
            last: TEST_ID_FIRST + TEST_ID_COUNT - 1,
        })
    }

    fn try_take(id: u32) -> Result<Option<Self>, TestbedError> {
        let dir = testbed_dir();
        let leases = dir.join("leases");
        std::fs::create_dir_all(&leases).map_err(|source| TestbedError::Lease {
            path: leases.display().to_string(),
            source,
        })?;
        let path = leases.join(id.to_string());
        let lease_err = |source| TestbedError::Lease {
            path: path.display().to_string(),
            source,
        };
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(std::process::id().to_string().as_bytes())
                    .map_err(lease_err)?;
                let lease = Lease { id, path };
                // An instance left here without a lease belongs to someone
                // running the scripts by hand: leave it alone.
                if dir.join(id.to_string()).exists() || netns_exists(id) {
                    drop(lease);
                    return Ok(None);
                }
                Ok(Some(lease))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let alive = holder
                    .trim()
                    .parse::<u32>()
                    .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
                    // Being written right now, or unreadable: treat as held.
                    .unwrap_or(true);
                if alive {
                    return Ok(None);
                }
                // Stale: its owner died without tearing down. Clean up, then
                // compete for the id again.
                let mut cmd = Command::new("bash");
                cmd.arg(script()).arg("down").arg(id.to_string());
                run_script(cmd, "down", id)?;
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(lease_err(e)),
                }
                match OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(mut f) => {
                        f.write_all(std::process::id().to_string().as_bytes())
                            .map_err(lease_err)?;
                        Ok(Some(Lease { id, path }))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(lease_err(e)),
                }
            }
            Err(e) => Err(lease_err(e)),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn netns_exists(id: u32) -> bool {
    Path::new(&format!("/run/netns/lbd-k6-{id}")).exists()
}

// --- a minimal blocking HTTP/1.0 client ----------------------------------

/// An HTTP response: status code and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// Sends one request and reads the whole answer (HTTP/1.0: no chunking,
/// the server closes the connection). `url` is `http://host:port/path?query`.
pub fn http_request(
    method: &str,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: bad address: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let timeout = Duration::from_secs(30);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("{url}: read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: malformed response: {text}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: no status in {head:?}"))?;
    Ok(HttpResponse {
        status,
        body: body.to_owned(),
    })
}

/// GET, expecting a 2xx; returns the body.
pub fn http_get(url: &str) -> Result<String, String> {
    let r = http_request("GET", url, "", &[])?;
    if (200..300).contains(&r.status) {
        Ok(r.body)
    } else {
        Err(format!("GET {url}: status {}: {}", r.status, r.body))
    }
}

/// POST, expecting a 2xx; returns the body.
pub fn http_post(url: &str, body: &str) -> Result<String, String> {
    let r = http_request("POST", url, body, &[])?;
    if (200..300).contains(&r.status) {
        Ok(r.body)
    } else {
        Err(format!("POST {url}: status {}: {}", r.status, r.body))
    }
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// First sample value of an instant query at `prometheus_url`, if any.
pub fn prometheus_value(prometheus_url: &str, query: &str) -> Result<Option<f64>, String> {
    let body = http_get(&format!(
        "{prometheus_url}/api/v1/query?query={}",
        url_encode(query)
    ))?;
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("query {query:?}: not JSON: {e}: {body}"))?;
    if json["status"] != "success" {
        return Err(format!("query {query:?}: {body}"));
    }
    Ok(json["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_lines() {
        let env = parse_env("K6_HOST=10.211.3.2\nK6_SSH_KEY=/tmp/a\\ b/key\nX='q w'\nnoise\n");
        assert_eq!(env["K6_HOST"], "10.211.3.2");
        assert_eq!(env["K6_SSH_KEY"], "/tmp/a b/key");
        assert_eq!(env["X"], "q w");
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn encodes_queries() {
        assert_eq!(
            url_encode(r#"count(x{mode="idle"})"#),
            "count%28x%7Bmode%3D%22idle%22%7D%29"
        );
    }
}
