//! `lb-dfaas report` on the checked-in datasets of tests/fixtures/report/
//! (a campaign directory and a legacy sampler directory, see generate.py
//! there): the built binary writes the page, every inline SVG parses as
//! XML, the page refers to nothing outside itself, and a headless Chromium
//! screenshot of it is not blank. The screenshots are kept in
//! `target/test-artifacts/` for people to look at.
//!
//! Needs `python3` and Debian's `chromium` (scripts/setup.sh installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lb-dfaas");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/report")
        .join(name)
}

fn artifacts_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn report(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs tests/support/report_check.py; returns its stdout.
fn check(kind: &str, file: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/report_check.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(kind)
        .arg(file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "report_check {kind} {}: {}",
        file.display(),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// The page refers to nothing outside itself: no script, no link, no
/// image or style from elsewhere (the SVG namespace is a name, not a fetch).
fn assert_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for banned in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url(",
    ] {
        assert!(!lower.contains(banned), "the page contains {banned:?}");
    }
    let outside = lower
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .matches("http")
        .count();
    assert_eq!(outside, 0, "the page names an http(s) address");
}

/// A headless Chromium screenshot of `page`, written to `png`.
fn screenshot(page: &Path, png: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(png);
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,2400")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): run scripts/setup.sh"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish the screenshot within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium exited with {status}");
    assert!(png.is_file(), "chromium wrote no screenshot");
}

/// Renders `dataset` with `args`, checks the page and its screenshot;
/// returns the page.
fn render_and_check(name: &str, dataset: &Path, args: &[&str]) -> String {
    let dir = artifacts_dir();
    let page = dir.join(format!("report-{name}.html"));
    let mut all = vec![dataset.to_str().unwrap(), "--out", page.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = report(&all);
    assert!(
        out.status.success(),
        "report {name}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), format!("{}\n", page.display()));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_self_contained(&html);
    let svgs: usize = check("svg", &page).parse().unwrap();
    assert!(svgs >= 10, "{name}: only {svgs} charts");
    let png = dir.join(format!("report-{name}.png"));
    screenshot(&page, &png);
    let verdict = check("png", &png);
    eprintln!(
        "{name}: {svgs} charts; screenshot {}: {verdict}",
        png.display()
    );
    html
}

#[test]
fn campaign_fixture_renders_with_its_config() {
    let dataset = fixture("campaign");
    let config = dataset.join("campaign.yaml");
    let html = render_and_check(
        "campaign",
        &dataset,
        &["--config", config.to_str().unwrap(), "--cores", "4"],
    );
    for expected in [
        "Overload thresholds from",
        "env x figlet",
        "28 measured in 84 rows",
        "6 dominated, 1 failed or skipped otherwise",
        "30s (from the config)",
        "overload: 80 % of 4 cores",
        "overload at 15 replicas",
        "max_wait_seconds 120",
        "84 metrics files, 0 k6 summaries, 28 k6 scripts",
        "env:100|figlet:50",
    ] {
        assert!(html.contains(expected), "page lacks {expected:?}");
    }
    // The failed configuration dominates nothing overloaded.
    let row = html
        .split("<tr>")
        .find(|r| r.contains("env:100|figlet:50"))
        .unwrap();
    assert!(row.contains("failed or skipped otherwise"), "{row}");
}

#[test]
fn campaign_fixture_without_config_says_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    let out = report(&[
        fixture("campaign").to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for expected in [
        "Overload thresholds: the defaults",
        "pass --config FILE",
        "30s (from k6_scripts/)",
        "node CPU threshold line",
        "--cores N",
    ] {
        assert!(html.contains(expected), "page lacks {expected:?}");
    }
}

#[test]
fn legacy_fixture_renders() {
    let html = render_and_check("legacy", &fixture("legacy"), &[]);
    for expected in [
        "legacy sampler",
        "results-2025-11-03_09-14-52-2-30s.csv",
        "2025-11-03 09:14:52 (local time of the sampler",
        "30s (from the results file names)",
        "mean latency (as recorded)",
        "env x figlet",
    ] {
        assert!(html.contains(expected), "page lacks {expected:?}");
    }
}

#[test]
fn bad_output_directories_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = report(&[dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("not a directory"),
        "{}",
        text(&out.stdout)
    );

    let out = report(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("holds no dataset"));

    let header = std::fs::read_to_string(fixture("campaign").join("results.csv")).unwrap();
    let header = header.lines().next().unwrap();
    let row = "env,10,x,1,1,nan,1,0,1,,,,,,,,,,1,1,1,1,1,1,nan,nan,5,0";
    std::fs::write(dir.path().join("results.csv"), format!("{header}\n{row}\n")).unwrap();
    let out = report(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("results.csv line 2: success_rate_function_env: not a number"),
        "{stdout}"
    );
    assert!(
        !dir.path().join("report.html").exists(),
        "no page for a bad dataset"
    );
}
