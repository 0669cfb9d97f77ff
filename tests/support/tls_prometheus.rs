//! A Prometheus behind its own TLS and basic auth (`--web.config.file`
//! with `tls_server_config` and `basic_auth_users`), started by a test on a
//! free loopback port and stopped (by its pid) in `Drop`.
//!
//! The certificates are made with `openssl` in the test's own directory: a
//! CA, and a server certificate it signs for `127.0.0.1` / `localhost`.
//! The password hash is bcrypt from `htpasswd -B` (apache2-utils).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TlsPrometheus {
    child: Child,
    /// `https://127.0.0.1:<port>`
    pub url: String,
    /// The CA that signed the server's certificate (PEM).
    pub ca_file: PathBuf,
    pub user: String,
    pub password: String,
    pub dir: tempfile::TempDir,
}

fn run(program: &str, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TlsPrometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, plain http) every
    /// second, serving https with basic auth for `user`/`password`; waits
    /// (bounded) until it answers with them.
    pub fn start(user: &str, password: &str, targets: &[String]) -> TlsPrometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=lb-dfaas test CA",
        ]);
        run("openssl", &ca, d);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run("openssl", &csr, d);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            d,
        );
        let line = run("htpasswd", &["-nbBC", "5", user, password], d);
        let hash = line
            .trim()
            .split_once(':')
            .map(|(_, h)| h.to_string())
            .expect("htpasswd prints user:hash");
        std::fs::write(
            d.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {user}: '{hash}'\n",
                d.join("server.pem").display(),
                d.join("server.key").display()
            ),
        )
        .expect("write web.yml");
        let port = free_port();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            d.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: lab\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(d.join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--web.config.file={}", d.join("web.yml").display()))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus must be installed");
        let tls = TlsPrometheus {
            child,
            url: format!("https://127.0.0.1:{port}"),
            ca_file: d.join("ca.pem"),
            user: user.to_string(),
            password: password.to_string(),
            dir,
        };
        tls.wait_until_scraping(targets.len());
        tls
    }

    /// `curl` with the CA and credentials: the instant query's first value.
    pub fn value(&self, query: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "3", "--cacert"])
            .arg(&self.ca_file)
            .arg("-u")
            .arg(format!("{}:{}", self.user, self.password))
            .arg("-G")
            .arg(format!("{}/api/v1/query", self.url))
            .arg("--data-urlencode")
            .arg(format!("query={query}"))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    fn wait_until_scraping(&self, targets: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.value("count(up == 1)") == Some(targets as f64) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "TLS Prometheus at {} not scraping {targets} target(s) within 60 s; log:\n{}",
                self.url,
                std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for TlsPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
