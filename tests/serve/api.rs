//! The API's refusals and its configuration, without a testbed: no job
//! here reaches a k6 host.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::serial;
use crate::server::{block_on, Serve, ServeDirs, TOKEN};

/// The error document's type and the fields it names.
fn error_of(body: &Value) -> (String, Vec<String>) {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error says what is wrong: {body}"
    );
    let fields = error["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("fields is a list: {body}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    (error["type"].as_str().unwrap().to_string(), fields)
}

/// A WebSocket handshake's HTTP refusal: status and JSON body.
async fn ws_refusal(url: &str, headers: &[(&'static str, String)]) -> (u16, Value) {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => panic!("the WebSocket opened with {headers:?}"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| serde_json::from_slice(b).unwrap())
                .unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("unexpected WebSocket error: {other}"),
    }
}

#[test]
fn bad_input_gets_its_4xx_as_json_and_the_server_keeps_serving() {
    let _serial = serial();
    block_on(async {
        let dirs = ServeDirs::new();
        dirs.script("ok.js", "export default function () {}\n");
        std::fs::write(
            dirs.path().join("outside.js"),
            "export default function () {}\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(
            dirs.path().join("outside.js"),
            dirs.scripts().join("escape.js"),
        )
        .unwrap();
        let serve = Serve::start(&dirs);
        let http = &serve.http;

        // No token, a wrong one, another scheme: 401, on every endpoint.
        for request in [
            http.get(serve.api("/status")),
            http.get(serve.api("/status"))
                .bearer_auth("wrong-token-0123456789"),
            http.get(serve.api("/config"))
                .header("authorization", format!("Basic {TOKEN}")),
            http.post(serve.api("/start")),
            http.put(serve.api("/config"))
                .json(&json!({"kind": "suite", "suite": {}})),
        ] {
            let (code, body) = Serve::send(request).await;
            assert_eq!(code, 401, "{body}");
            assert_eq!(error_of(&body).0, "unauthorized");
            assert!(!body.to_string().contains(TOKEN));
        }

        // The WebSocket wants the token too, in the header or the subprotocol.
        let ws_url = serve.url.replacen("http://", "ws://", 1) + "/api/k6/ws";
        let (code, body) = ws_refusal(&ws_url, &[]).await;
        assert_eq!((code, error_of(&body).0.as_str()), (401, "unauthorized"));
        let (code, _) = ws_refusal(
            &ws_url,
            &[(
                "sec-websocket-protocol",
                "lb-dfaas, lb-dfaas.bearer.wrong-token-0123456789".into(),
            )],
        )
        .await;
        assert_eq!(code, 401);
        let mut request = ws_url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&format!("lb-dfaas, lb-dfaas.bearer.{TOKEN}")).unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "lb-dfaas",
            "the server selects the plain protocol, never echoes the token"
        );
        drop(socket);
        let mut live = serve.live().await;
        let first = live.wait_for(Duration::from_secs(10), |_| true).await;
        assert_eq!(first["type"], "status");
        assert_eq!(first["status"]["state"], "idle");

        // A page of another origin may not call the API.
        let (code, body) = Serve::send(
            serve
                .request(Method::GET, "/status")
                .header("origin", "http://evil.example"),
        )
        .await;
        assert_eq!((code, error_of(&body).0.as_str()), (403, "forbidden"));

        let put_raw = |body: Vec<u8>, content_type: &str| {
            serve
                .request(Method::PUT, "/config")
                .header("content-type", content_type.to_string())
                .body(body)
        };
        // Malformed JSON.
        let (code, body) = Serve::send(put_raw(b"{\"kind\": ".to_vec(), "application/json")).await;
        assert_eq!((code, error_of(&body).0.as_str()), (400, "malformed_json"));
        // Not declared as JSON.
        let (code, body) = Serve::send(put_raw(b"{}".to_vec(), "text/plain")).await;
        assert_eq!(
            (code, error_of(&body).0.as_str()),
            (415, "unsupported_media_type")
        );
        // Oversized.
        let big = format!(
            "{{\"kind\": \"campaign\", \"campaign\": {{\"x\": \"{}\"}}}}",
            "a".repeat(2 << 20)
        );
        let (code, body) = Serve::send(put_raw(big.into_bytes(), "application/json")).await;
        assert_eq!(
            (code, error_of(&body).0.as_str()),
            (413, "payload_too_large")
        );

        // Wrong types and values, every field named.
        for (body, fields) in [
            (json!([1, 2]), vec![""]),
            (json!({"suite": {}}), vec!["kind"]),
            (json!({"kind": 3, "suite": {}}), vec!["kind"]),
            (
                json!({"kind": "suite", "suite": {}, "extra": 1}),
                vec!["extra"],
            ),
            (json!({"kind": "suite"}), vec!["suite"]),
            (
                json!({"kind": "suite", "suite": {"globalUserCount": "ten"}}),
                vec!["suite.globalUserCount"],
            ),
            (
                json!({"kind": "suite", "suite": {"globalUserCount": 0, "testDuration": "soon", "maxDuration": 5}}),
                vec!["suite.maxDuration"],
            ),
            (
                json!({"kind": "suite", "suite": {"globalUserCount": 0, "testDuration": "soon"}}),
                vec!["suite.globalUserCount", "suite.testDuration"],
            ),
            (
                json!({"kind": "suite", "suite": {"enabledScripts": ["../outside.js", "/etc/passwd", "escape.js", "ok.js", "missing.js"]}}),
                vec![
                    "suite.enabledScripts[0]",
                    "suite.enabledScripts[1]",
                    "suite.enabledScripts[2]",
                    "suite.enabledScripts[4]",
                ],
            ),
            (
                json!({"kind": "suite", "suite": {"k6": {"k6_host": "a host; rm -rf /", "k6_port": 0}}}),
                vec!["suite.k6.k6_host", "suite.k6.k6_port"],
            ),
            (
                json!({"kind": "campaign", "campaign": {"iterations": 0, "functions": [{"name": "Bad Name"}]}}),
                vec!["campaign.iterations", "campaign.functions[0].name"],
            ),
            (
                json!({"kind": "campaign", "campaign": {"iterations": "three"}}),
                vec!["campaign.iterations"],
            ),
            (
                json!({"kind": "campaign", "campaign": []}),
                vec!["campaign"],
            ),
        ] {
            let (code, answer) = serve.put_json("/config", &body).await;
            assert_eq!(code, 400, "{body}: {answer}");
            let (kind, named) = error_of(&answer);
            assert_eq!(kind, "invalid_input", "{answer}");
            for field in &fields {
                assert!(
                    named.iter().any(|n| n == field),
                    "{body}: {field} not named in {answer}"
                );
            }
            assert_eq!(named.len(), fields.len(), "{body}: {answer}");
        }

        // Queries, routes, methods.
        let (code, body) = serve.get("/logs?since=soon").await;
        assert_eq!((code, error_of(&body).0.as_str()), (400, "invalid_input"));
        let (code, body) = serve.get("/logs?cursor=1").await;
        assert_eq!(code, 400, "{body}");
        let (code, body) = serve.get("/results?job=../../etc").await;
        assert_eq!((code, error_of(&body).0.as_str()), (404, "not_found"));
        let (code, body) = serve.get("/results/summary?script=../x.js").await;
        assert_eq!(code, 404, "no job yet: {body}");
        let (code, body) = serve.get("/nope").await;
        assert_eq!((code, error_of(&body).0.as_str()), (404, "not_found"));
        let (code, body) = Serve::send(serve.request(Method::DELETE, "/config")).await;
        assert_eq!(
            (code, error_of(&body).0.as_str()),
            (405, "method_not_allowed")
        );
        let (code, body) = serve.post("/stop").await;
        assert_eq!((code, error_of(&body).0.as_str()), (409, "conflict"));
        // A start whose configuration does not validate names its fields.
        let (code, body) = serve
            .put_json(
                "/config",
                &json!({"kind": "suite", "suite": {"enabledScripts": []}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, body) = serve.post("/start").await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(error_of(&body).1, ["suite.enabledScripts"]);

        // It keeps serving, and nothing refused was stored.
        assert_eq!(serve.status().await["state"], "idle");
        let (code, config) = serve.get("/config").await;
        assert_eq!(code, 200);
        assert_eq!(config["suite"]["globalUserCount"], 10);
        assert_eq!(config["suite"]["enabledScripts"], json!([]));
        let page = serve
            .http
            .get(format!("{}/", serve.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            page.status().as_u16(),
            200,
            "the dashboard is served without a token"
        );
        assert!(page.text().await.unwrap().contains("/assets/app.js"));
        // The token is in no log.
        let log_dir = dirs.state().join("logs");
        for entry in std::fs::read_dir(&log_dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains(TOKEN));
        }
        assert!(!serve.stderr().contains(TOKEN));
    });
}

#[test]
fn the_configuration_survives_a_restart_and_resets() {
    let _serial = serial();
    block_on(async {
        let dirs = ServeDirs::new();
        dirs.script("a.js", "export default function () {}\n");
        let suite = json!({
            "globalUserCount": 3,
            "testDuration": "4s",
            "rampUpDuration": "1s",
            "maxDuration": "1m",
            "enabledScripts": ["a.js"],
            "intervalBetweenTests": "2s",
            "k6": {"k6_host": "10.211.170.2", "k6_port": 2222, "k6_user": "root"},
        });
        let campaign = json!({
            "functions": [{"name": "figlet"}],
            "openfaas_user": "admin",
            "openfaas_password": "s3cret-password",
            "iterations": 2,
        });
        {
            let serve = Serve::start(&dirs);
            let (code, body) = serve
                .put_json(
                    "/config",
                    &json!({"kind": "campaign", "campaign": campaign}),
                )
                .await;
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["campaign"]["openfaas_password"], "(redacted)");
            let (code, body) = serve
                .put_json("/config", &json!({"kind": "suite", "suite": suite}))
                .await;
            assert_eq!(code, 200, "{body}");
            // A client sending back what it was shown keeps the password.
            let (_, shown) = serve.get("/config").await;
            let (code, body) = serve.put_json("/config", &shown).await;
            assert_eq!(code, 200, "{body}");
        }
        let on_disk = std::fs::read_to_string(dirs.state().join("config.json")).unwrap();
        assert!(
            on_disk.contains("s3cret-password"),
            "the file keeps the password"
        );
        let serve = Serve::start(&dirs);
        let (code, config) = serve.get("/config").await;
        assert_eq!(code, 200);
        assert_eq!(config["kind"], "suite");
        assert_eq!(config["suite"], suite);
        assert_eq!(config["campaign"]["iterations"], 2);
        assert_eq!(config["campaign"]["openfaas_password"], "(redacted)");
        assert!(!config.to_string().contains("s3cret-password"));

        let (code, config) = serve.post("/config/reset").await;
        assert_eq!(code, 200, "{config}");
        assert_eq!(config["kind"], "campaign");
        assert_eq!(config["campaign"], json!({}));
        assert_eq!(config["suite"]["globalUserCount"], 10);
        assert_eq!(serve.get("/config").await.1, config);
    });
}

#[test]
fn a_network_address_needs_a_token_and_loopback_needs_loopback_names() {
    let _serial = serial();
    block_on(async {
        let dirs = ServeDirs::new();
        let refused = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
            .args(["serve", "--listen", "0.0.0.0:0", "--state-dir"])
            .arg(dirs.state())
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2));
        let document: Value = serde_json::from_slice(&refused.stdout).unwrap();
        assert_eq!(document["ok"], false);
        assert_eq!(
            document["error"]["context"]["errors"][0]["field"],
            "--listen"
        );
        std::fs::write(dirs.token_file(), "short\n").unwrap();
        let refused = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"))
            .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
            .arg(dirs.token_file())
            .arg("--state-dir")
            .arg(dirs.state())
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2));
        let document: Value = serde_json::from_slice(&refused.stdout).unwrap();
        assert_eq!(
            document["error"]["context"]["errors"][0]["field"],
            "--token-file"
        );

        // Without a token: open on loopback, for loopback names only.
        let serve = Serve::start_with(&dirs, &["--cors-origin", "http://dash.example:8080"]);
        assert!(serve.token.is_empty());
        let (code, status) = Serve::send(serve.http.get(serve.api("/status"))).await;
        assert_eq!((code, status["state"].as_str()), (200, Some("idle")));
        let (code, body) = Serve::send(
            serve
                .http
                .get(serve.api("/status"))
                .header("host", "rebound.example:7070"),
        )
        .await;
        assert_eq!((code, error_of(&body).0.as_str()), (403, "forbidden"));
        // CORS only for the configured origin.
        let preflight = serve
            .http
            .request(Method::OPTIONS, serve.api("/config"))
            .header("origin", "http://dash.example:8080")
            .header("access-control-request-method", "PUT")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status().as_u16(), 204);
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "http://dash.example:8080"
        );
        let allowed = serve
            .http
            .get(serve.api("/status"))
            .header("origin", "http://dash.example:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status().as_u16(), 200);
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "http://dash.example:8080"
        );
        let (code, _) = Serve::send(
            serve
                .http
                .get(serve.api("/status"))
                .header("origin", "http://other.example"),
        )
        .await;
        assert_eq!(code, 403);
    });
}

/// A loopback port nothing listens on (connections are refused at once).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn jobs_that_cannot_reach_their_k6_host_fail_and_say_why() {
    let _serial = serial();
    block_on(async {
        let dirs = ServeDirs::new();
        dirs.script("a.js", "export default function () {}\n");
        let serve = Serve::start(&dirs);
        let mut live = serve.live().await;
        let k6 = json!({
            "k6_host": "127.0.0.1",
            "k6_port": closed_port(),
            "k6_user": "root",
            "k6_ssh_key": dirs.path().join("no-key"),
            "k6_known_hosts_file": dirs.path().join("known_hosts"),
        });
        let (code, body) = serve
            .put_json(
                "/config",
                &json!({"kind": "suite", "suite": {"enabledScripts": ["a.js"], "k6": k6}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, started) = serve.post("/start").await;
        assert_eq!(code, 202, "{started}");
        let job = started["jobId"].as_str().unwrap().to_string();
        let status = live.wait_state(Duration::from_secs(60), "failed").await;
        let error = status["lastError"].as_str().unwrap();
        assert!(error.contains("unreachable"), "{error}");
        assert_eq!(status["progress"]["done"], 0);
        let (_, results) = serve.get(&format!("/results?job={job}")).await;
        assert_eq!(results["state"], "failed");
        assert_eq!(results["scripts"], json!([]));

        // A campaign whose start-up checks fail: exit 3 in its result.
        let mut campaign = k6.clone();
        campaign["gateway_url"] = json!(format!("http://127.0.0.1:{}", closed_port()));
        campaign["prometheus_url"] = json!(format!("http://127.0.0.1:{}", closed_port()));
        let (code, body) = serve
            .put_json(
                "/config",
                &json!({"kind": "campaign", "campaign": campaign}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, started) = serve.post("/start").await;
        assert_eq!(code, 202, "{started}");
        let job = started["jobId"].as_str().unwrap().to_string();
        let status = live
            .wait_for(Duration::from_secs(60), |m| {
                m["type"] == "status"
                    && m["status"]["jobId"] == job.as_str()
                    && m["status"]["state"] == "failed"
            })
            .await;
        assert!(status["status"]["lastError"].as_str().is_some());
        let result: Value = serde_json::from_str(
            &std::fs::read_to_string(dirs.state().join("jobs").join(&job).join("result.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(result["returncode"], 3, "{result}");
        assert_eq!(result["error"]["type"], "environment");
        assert_eq!(
            result["error"]["message"], status["status"]["lastError"],
            "the status says what run would have said"
        );
    });
}
