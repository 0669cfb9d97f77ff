//! The dashboard in a real headless Chromium: the token asked for, a
//! config error shown by field, a campaign started, its progress arriving
//! over the WebSocket (status, log, results and plots), stopped, shown
//! stopped. The screenshot is kept in `target/test-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::cdp::Browser;
use crate::harness::{base_config, eventually, k6_processes, serial, with, Workdir};
use crate::server::{block_on, Serve, ServeDirs, TOKEN};
use crate::support::{Testbed, TestbedOptions};

const LIMIT: Duration = Duration::from_secs(240);

fn artifacts_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sets a text field's value as typing would (an `input` event follows).
fn set_value(id: &str, value: &str) -> String {
    format!(
        "(() => {{ const el = document.getElementById('{id}'); el.value = {}; el.dispatchEvent(new Event('input')); return true; }})()",
        serde_json::to_string(value).unwrap()
    )
}

fn text_of(id: &str) -> String {
    format!("document.getElementById('{id}').textContent")
}

#[test]
fn the_dashboard_starts_watches_and_stops_a_campaign() {
    let _serial = serial();
    block_on(async {
        let tb = Testbed::up(
            175,
            &TestbedOptions {
                // busy: 50 ms of CPU per call, one worker, a queue of one:
                // 60 requests per second overload it.
                functions: Some("fast=2:4,busy=50:1:1".into()),
                ..TestbedOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("testbed 175: {e}"));
        let work = Workdir::new();
        let dirs = ServeDirs::new();
        let serve = Serve::start(&dirs);
        let browser = Browser::launch();
        let mut page = browser.page().await;
        page.navigate(&format!("{}/", serve.url)).await;

        // The page finds out it needs the token, and takes it.
        page.wait_for(
            "the token form",
            "!document.getElementById('token-form').hidden",
            LIMIT,
        )
        .await;
        page.eval(&set_value("token", TOKEN)).await;
        page.eval("document.getElementById('token-form').requestSubmit(), true")
            .await;
        page.wait_for(
            "the WebSocket to connect",
            &format!("{} === 'live'", text_of("connection")),
            LIMIT,
        )
        .await;
        page.wait_for(
            "the status",
            &format!("{} === 'idle'", text_of("state")),
            LIMIT,
        )
        .await;

        // A config the server refuses: the error is shown by field.
        page.eval(&set_value(
            "campaign-json",
            &json!({"iterations": 0, "functions": [{"name": "fast"}]}).to_string(),
        ))
        .await;
        page.click("save").await;
        page.wait_for(
        "the field error",
        "document.querySelector('#config-errors li[data-error-field=\"campaign.iterations\"]') !== null \
         && document.getElementById('campaign-json').classList.contains('invalid')",
        LIMIT,
    )
    .await;

        // The suite form marks its own fields.
        page.eval("document.querySelector('input[name=kind][value=suite]').click(), true")
            .await;
        page.eval(&set_value("globalUserCount", "0")).await;
        page.eval(&set_value("testDuration", "soon")).await;
        page.click("save").await;
        page.wait_for(
            "the suite's field errors",
            "document.getElementById('globalUserCount').classList.contains('invalid') \
         && document.getElementById('testDuration').classList.contains('invalid')",
            LIMIT,
        )
        .await;
        page.eval("document.querySelector('input[name=kind][value=campaign]').click(), true")
            .await;

        // A good one: two functions at two rates of a few seconds each; busy
        // (first in plan order) overloads at 60 req/s.
        let config = with(
            base_config(&tb, &work),
            json!({
                "functions": [{"name": "fast"}, {"name": "busy"}],
                "rate_strategy": {"type": "custom", "rates": [5, 60]},
                "duration": "3s",
                "iterations": 1,
            }),
        );
        page.eval(&set_value("campaign-json", &config.to_string()))
            .await;
        page.click("save").await;
        page.wait_for(
            "the config to be saved",
            "document.getElementById('notice').textContent === 'configuration saved' \
         && document.querySelectorAll('#config-errors li').length === 0",
            LIMIT,
        )
        .await;

        // Start; progress arrives: the status, k6's lines in the log, a
        // finished configuration in the results table and the plots.
        page.click("start").await;
        page.wait_for(
            "the job to run",
            &format!("{} === 'running'", text_of("state")),
            LIMIT,
        )
        .await;
        page.wait_for(
            "k6 output in the log",
            "document.querySelector('#log li[data-event=\"k6\"]') !== null",
            LIMIT,
        )
        .await;
        page.wait_for(
            "two configurations done",
            &format!("Number({}) >= 2", text_of("progress-done")),
            LIMIT,
        )
        .await;
        page.wait_for(
            "plotted results, the overloaded ones marked",
            "document.querySelectorAll('#plots svg circle.point').length >= 3 \
         && document.querySelectorAll('#plots svg circle.point.overloaded').length >= 1 \
         && document.querySelectorAll('#results-table tbody tr.overloaded').length >= 1",
            LIMIT,
        )
        .await;
        assert_eq!(
            page.eval(&text_of("progress-total")).await,
            json!("4"),
            "the plan's size"
        );

        // Stop; the page says stopped.
        page.click("stop").await;
        page.wait_for(
            "the job to stop",
            &format!("{} === 'stopped'", text_of("state")),
            LIMIT,
        )
        .await;
        assert!(
            eventually(Duration::from_secs(5), || k6_processes(&tb.netns)
                .is_empty()),
            "k6 still runs after the stop"
        );
        assert_eq!(serve.status().await["state"], "stopped");
        assert_eq!(
            page.eval("document.getElementById('start').disabled").await,
            json!(false),
            "a new job may start"
        );
        // Let the results refresh after the stop, then keep the picture.
        page.wait_for(
            "the results of the stopped job",
            "document.getElementById('results-job').textContent.includes('stopped')",
            LIMIT,
        )
        .await;

        let png = artifacts_dir().join("serve-dashboard.png");
        page.screenshot(&png).await;
        let check = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/report_check.py"))
            .arg("png")
            .arg(&png)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "the screenshot {}: {}",
            png.display(),
            String::from_utf8_lossy(&check.stderr)
        );
        eprintln!(
            "dashboard screenshot {}: {}",
            png.display(),
            String::from_utf8_lossy(&check.stdout).trim()
        );
        assert!(
            page.console
                .iter()
                .all(|line| !line.starts_with("exception")),
            "the page threw: {:#?}",
            page.console
        );
    });
}
