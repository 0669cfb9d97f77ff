//! The output location through the built binary: every problem with the
//! output directory is found before anything is sent, with its exit code
//! (2: a bad location, 3: the system refuses), the path and the reason —
//! and nothing blocks on a special file.
//!
//! The requests point the k6 host and Prometheus at a closed local port:
//! a `run` that got past the output checks would fail there with exit 3
//! ("unreachable"), so exit 2 proves the check came first.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/small_fs.rs"]
mod small_fs;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cli::{closed_port_request, lb_dfaas, Output};
use serde_json::json;

/// Far more than any of these commands needs: a command still running
/// then is blocked.
const LIMIT: Duration = Duration::from_secs(30);

fn request(output_dir: &Path) -> String {
    closed_port_request(output_dir, json!({}))
}

fn command(name: &str, output_dir: &Path) -> Output {
    lb_dfaas(&[name], &request(output_dir), LIMIT)
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `validate`, `plan` and `run` all refuse `dir` as a bad output location:
/// exit 2, `context.output_dir` named, the reason containing `expected`.
fn assert_bad_location(dir: &Path, expected: &str) {
    for name in ["validate", "plan", "run"] {
        let out = command(name, dir);
        assert_eq!(
            out.code,
            2,
            "{name} {}: {}{}",
            dir.display(),
            out.stdout,
            out.stderr
        );
        let (field, reason) = out.first_error();
        assert_eq!(field, "context.output_dir", "{name}: {}", out.stdout);
        assert!(reason.contains(expected), "{name}: {reason}");
        assert_eq!(out.json()["error"]["type"], json!("invalid_input"));
    }
}

#[test]
fn results_csv_that_is_a_directory_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("results.csv")).unwrap();
    assert_bad_location(dir.path(), "results.csv: is a directory");
}

#[test]
fn a_fifo_where_a_table_belongs_is_refused_without_blocking() {
    for name in ["results.csv", "skipped.csv", "index.csv"] {
        let dir = tempfile::tempdir().unwrap();
        mkfifo(&dir.path().join(name));
        assert_bad_location(dir.path(), "is a FIFO (named pipe), not a regular file");
    }
}

#[test]
fn output_dir_that_is_a_file_under_a_file_or_dev_null_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "keep\n").unwrap();
    assert_bad_location(&file, "is a regular file, not a directory");
    assert_bad_location(&file.join("out"), "is not a directory");
    assert_bad_location(Path::new("/dev/null"), "is a device, not a directory");
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep\n");
}

/// `summaries` as a file used to be found only when the first summary was
/// written, after k6 had loaded the gateway.
#[test]
fn summaries_that_is_a_file_is_refused_before_any_load() {
    for name in ["summaries", "metrics", "k6_scripts"] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(name), "").unwrap();
        assert_bad_location(dir.path(), "is a file, not a directory");
    }
}

/// A table that is a symbolic link is refused, never followed: nothing is
/// appended to the file it points at, and nothing of it is quoted.
#[test]
fn tables_that_are_symbolic_links_are_refused_and_never_read() {
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("passwd");
    fs::write(&secret, "root:x:0:0:secret-first-line:/root:/bin/sh\n").unwrap();
    for name in ["results.csv", "skipped.csv", "index.csv"] {
        let dir = tempfile::tempdir().unwrap();
        symlink(&secret, dir.path().join(name)).unwrap();
        assert_bad_location(dir.path(), "is a symbolic link");
        for command_name in ["plan", "run"] {
            let out = command(command_name, dir.path());
            assert!(
                !out.stdout.contains("secret-first-line")
                    && !out.stderr.contains("secret-first-line"),
                "{command_name} quoted the linked file: {}{}",
                out.stdout,
                out.stderr
            );
        }
    }
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "root:x:0:0:secret-first-line:/root:/bin/sh\n"
    );
}

/// A read-only filesystem is the environment's fault: exit 3, with the
/// path and the OS error, before any connection is tried.
#[test]
fn a_read_only_output_filesystem_is_an_environment_error() {
    let Some(disk) = small_fs::SmallFs::mount(64, true) else {
        return;
    };
    let out = command("run", &disk.join("out"));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let value = out.json();
    assert_eq!(value["error"]["type"], json!("environment"));
    let message = value["error"]["message"].as_str().unwrap();
    assert!(message.contains("Read-only file system"), "{message}");
    assert!(
        !message.contains("unreachable"),
        "connected first: {message}"
    );
    let context = &value["error"]["context"];
    assert!(
        context["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(disk.path().to_str().unwrap())),
        "{context}"
    );
    assert!(
        context["os_error"]
            .as_str()
            .is_some_and(|e| e.contains("Read-only file system")),
        "{context}"
    );
    // validate only looks, and a read-only disk looks fine.
    let out = command("validate", &disk.join("out"));
    assert_eq!(out.code, 0, "{}", out.stdout);
}

/// With a usable output directory `run` gets as far as the network, and
/// the output tree is ready before that.
#[test]
fn a_good_output_directory_is_prepared_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("new/out");
    let out = command("run", &out_dir);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    for name in ["summaries", "metrics", "k6_scripts"] {
        assert!(out_dir.join(name).is_dir(), "{name}");
    }
    for name in ["results.csv", "skipped.csv", "index.csv"] {
        assert!(out_dir.join(name).is_file(), "{name}");
    }
}
