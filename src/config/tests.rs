//! Loading end to end: request envelopes, files, warnings, and garbage.

use super::*;
use serde_json::{json, Value};

fn request(config: Value) -> Request {
    Request {
        config,
        context: Context::default(),
        plugin: Default::default(),
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn request_with_config_path_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "dfaas.yml",
        "common:\n  timeout_buffer: 5\n  iterations: 1\n\
         plugins:\n  dfaas:\n    k6_host: 10.0.0.50\n    functions:\n      - name: figlet\n        method: POST\n      - name: env\n\
         \x20   rate_strategy: {type: linear, min_rate: 0, max_rate: 20, step: 10}\n",
    );
    let loaded = load_request(&request(json!({
        "config_path": file.to_str().unwrap(),
        "rate_strategy": {"type": "linear", "max_rate": 50},
        "k6_user": "root",
    })))
    .unwrap();
    let c = loaded.config;
    assert_eq!(c.k6.host, "10.0.0.50");
    assert_eq!(c.k6.workspace_root, "/root/.dfaas-k6");
    assert_eq!(c.iterations, 1);
    assert_eq!(c.rates, [0, 10, 20, 30, 40, 50]);
    let names: Vec<&str> = c.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["env", "figlet"]);
    // `timeout_buffer` is lb's common field: accepted silently.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn errors_from_a_config_path_file_name_the_merged_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "dfaas.yml",
        "plugins:\n  dfaas:\n    functions:\n      - name: Bad\n",
    );
    let error = load_request(&request(json!({"config_path": file.to_str().unwrap()}))).unwrap_err();
    assert_eq!(error.field_errors()[0].field, "functions[0].name");

    let missing = dir.path().join("nope.yml");
    let error =
        load_request(&request(json!({"config_path": missing.to_str().unwrap()}))).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("nope.yml") && message.contains("file not found"),
        "{message}"
    );
    assert_eq!(error.field_errors()[0].field, "config_path");
}

#[test]
fn load_file_forms_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let sections = write(
        &dir,
        "a.yaml",
        "common:\n  gateway_url: 'http://{host.address}:31112'\nplugins:\n  dfaas:\n    iterations: 2\n    bogus: 1\n",
    );
    let context = Context {
        host_address: Some("10.0.0.9".into()),
        ..Context::default()
    };
    let loaded = load_file(&sections, &context).unwrap();
    assert_eq!(loaded.config.iterations, 2);
    assert_eq!(loaded.config.gateway_url, "http://10.0.0.9:31112");
    assert_eq!(loaded.warnings, ["unknown field `bogus` ignored"]);

    let envelope = write(
        &dir,
        "b.json",
        r#"{"config": {"iterations": 7}, "context": {"host_address": "10.0.0.1"}}"#,
    );
    let read = read_request_file(&envelope).unwrap();
    assert_eq!(read.context.host_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(load_request(&read).unwrap().config.iterations, 7);

    let error = load_file(&dir.path().join("missing.yaml"), &context).unwrap_err();
    assert!(
        matches!(&error, ConfigError::File { origin, .. } if origin == "--config"),
        "{error:?}"
    );
}

#[test]
fn display_lists_every_error() {
    let error = load_request(&request(json!({"k6_port": 0, "iterations": 0}))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid configuration: k6_port: 0 is not in 1..=65535; iterations: must be >= 1"
    );
}

#[test]
fn schema_describes_the_raw_config() {
    let schema = json_schema();
    let properties = schema["properties"].as_object().unwrap();
    for field in [
        "functions",
        "rate_strategy",
        "rates",
        "combinations",
        "k6_host",
        "k6_workspace_root",
        "gateway_url",
        "openfaas_password_file",
        "cooldown",
        "overload",
        "grafana",
    ] {
        assert!(properties.contains_key(field), "{field} missing");
    }
    assert_eq!(properties["k6_port"]["default"], json!(22));
    assert_eq!(properties["k6_port"]["maximum"], json!(65535));
    assert_eq!(properties["duration"]["default"], json!("30s"));
    let text = schema.to_string();
    for kind in ["linear", "random", "exponential", "custom"] {
        assert!(
            text.contains(&format!("\"{kind}\"")),
            "{kind} missing from schema"
        );
    }
}

/// A small deterministic generator for garbage inputs.
struct Garbage(u64);

const KEYS: &[&str] = &[
    "config_path",
    "output_dir",
    "run_id",
    "k6_host",
    "k6_user",
    "k6_ssh_key",
    "k6_port",
    "k6_workspace_root",
    "k6_known_hosts_file",
    "k6_reconnect_timeout",
    "k6_log_stream",
    "k6_outputs",
    "k6_tags",
    "gateway_url",
    "prometheus_url",
    "openfaas_user",
    "openfaas_password",
    "openfaas_password_file",
    "functions",
    "rate_strategy",
    "rates",
    "combinations",
    "duration",
    "iterations",
    "cooldown",
    "overload",
    "queries_path",
    "scaphandre_enabled",
    "function_pid_regexes",
    "provision_targets",
    "k6_install_method",
    "k6_version",
    "k6_python_interpreter",
    "k6_bin_dir",
    "k6_install_prefix",
    "k6_binary_src",
    "k6_tarball_src",
    "k6_tarball_url",
    "k6_tarball_checksum",
    "k6_pip_extra_args",
    "k6_python",
    "k6_become",
    "k6_ssh_common_args",
    "grafana",
    "loki",
    "name",
    "method",
    "body",
    "headers",
    "max_rate",
    "type",
    "min_rate",
    "step",
    "count",
    "seed",
    "base",
    "min_power",
    "max_power",
    "min_functions",
    "max_functions",
    "max_wait_seconds",
    "sleep_step_seconds",
    "idle_threshold_pct",
    "cpu_overload_pct_of_capacity",
    "ram_overload_pct",
    "success_rate_node_min",
    "success_rate_function_min",
    "replicas_overload_threshold",
    "figlet",
    "common",
    "plugins",
    "dfaas",
];

impl Garbage {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn string(&mut self) -> String {
        let choices = [
            String::new(),
            "figlet".into(),
            "a;rm -rf ~".into(),
            "../x".into(),
            "{host.address}".into(),
            "http://{host.address}:1".into(),
            "https://x".into(),
            "~".into(),
            "~/x".into(),
            "/".into(),
            "linear".into(),
            "random".into(),
            "exponential".into(),
            "custom".into(),
            "30s".into(),
            "0ms".into(),
            "\u{0}\r\n\t".into(),
            "ä😀".into(),
            "x".repeat(10_000),
            "18446744073709551616h".into(),
        ];
        choices[self.below(choices.len() as u64) as usize].clone()
    }

    fn number(&mut self) -> Value {
        let choices = [
            json!(0),
            json!(1),
            json!(-1),
            json!(2),
            json!(64),
            json!(65536),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1e308),
            json!(-1e308),
            json!(0.5),
            json!(-0.0),
            json!(4294967296u64),
        ];
        choices[self.below(choices.len() as u64) as usize].clone()
    }

    fn value(&mut self, depth: u32) -> Value {
        let kinds = if depth == 0 { 4 } else { 6 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 1),
            2 => self.number(),
            3 => Value::String(self.string()),
            4 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(6))
                    .map(|_| {
                        let key = KEYS[self.below(KEYS.len() as u64) as usize].to_string();
                        (key, self.value(depth - 1))
                    })
                    .collect(),
            ),
        }
    }
}

/// Nothing a user can send makes loading panic.
#[test]
fn garbage_never_panics() {
    let mut garbage = Garbage(0x9e37_79b9_7f4a_7c15);
    let context = Context {
        host: Some("node1".into()),
        ..Context::default()
    };
    // Every field with every kind of wrong value.
    for key in KEYS {
        for _ in 0..40 {
            let value = garbage.value(3);
            let config = json!({ (*key): value });
            let _ = load_request(&Request {
                config,
                context: context.clone(),
                plugin: Default::default(),
            });
        }
    }
    // Whole random documents.
    for _ in 0..3000 {
        let config = garbage.value(5);
        let _ = load_request(&Request {
            config,
            context: context.clone(),
            plugin: Default::default(),
        });
    }
    // Random strategies and functions, where the arithmetic lives.
    for _ in 0..3000 {
        let mut strategy = serde_json::Map::new();
        for key in [
            "type",
            "min_rate",
            "max_rate",
            "step",
            "count",
            "seed",
            "base",
            "min_power",
            "max_power",
            "rates",
        ] {
            if garbage.below(2) == 0 {
                continue;
            }
            let value = match key {
                "type" => {
                    let kinds = ["linear", "random", "exponential", "custom"];
                    Value::String(kinds[garbage.below(4) as usize].into())
                }
                "rates" => Value::Array((0..garbage.below(5)).map(|_| garbage.number()).collect()),
                _ => garbage.number(),
            };
            strategy.insert(key.to_string(), value);
        }
        let config = json!({
            "rate_strategy": strategy,
            "functions": [{"name": "a", "max_rate": garbage.number()}],
        });
        let _ = load_request(&Request {
            config,
            context: context.clone(),
            plugin: Default::default(),
        });
    }
}

#[test]
fn garbage_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut garbage = Garbage(42);
    let path = dir.path().join("garbage.yaml");
    for round in 0..300 {
        let length = garbage.below(300) as usize;
        let bytes: Vec<u8> = if round % 2 == 0 {
            (0..length).map(|_| garbage.below(256) as u8).collect()
        } else {
            // YAML-ish noise: structure characters and keys.
            let alphabet = b"{}[]:,-'\"\n  #&*!|>%@`abc123";
            (0..length)
                .map(|_| alphabet[garbage.below(alphabet.len() as u64) as usize])
                .collect()
        };
        std::fs::write(&path, bytes).unwrap();
        let _ = load_file(&path, &Context::default());
    }
    // Deep nesting is refused by the parsers, not by a stack overflow.
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(&path, &deep).unwrap();
    assert!(load_file(&path, &Context::default()).is_err());
    let json_path = dir.path().join("deep.json");
    std::fs::write(&json_path, &deep).unwrap();
    assert!(load_file(&json_path, &Context::default()).is_err());
    let deep_map = format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
    std::fs::write(&path, &deep_map).unwrap();
    assert!(load_file(&path, &Context::default()).is_err());
}

// ---------------------------------------------------------------- peva_faas

fn peva(config: Value) -> Request {
    Request {
        plugin: Plugin::PevaFaas,
        ..request(config)
    }
}

fn peva_in(config: Value, context: Context) -> Request {
    Request {
        context,
        ..peva(config)
    }
}

fn field_errors(request: &Request) -> Vec<(String, String)> {
    load_request(request)
        .unwrap_err()
        .field_errors()
        .into_iter()
        .map(|e| (e.field, e.reason))
        .collect()
}

/// lb's peva_faas defaults: dfaas's, but k6 on this machine and its own
/// function body; nothing to warn about.
#[test]
fn peva_faas_defaults() {
    let loaded = load_request(&peva(json!({}))).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.plugin, Plugin::PevaFaas);
    assert!(c.k6.is_local());
    assert_eq!(c.k6.host, "local");
    assert_eq!(c.k6.workspace_root, "/home/ubuntu/.peva_faas-k6");
    assert_eq!(c.gateway_url, "http://127.0.0.1:31112");
    assert_eq!(c.prometheus_url, "http://127.0.0.1:30411");
    assert_eq!(c.functions.len(), 1);
    let f = &c.functions[0];
    assert_eq!(
        (f.name.as_str(), f.method, f.body.as_str()),
        ("figlet", HttpMethod::Post, "Hello PEVA-faas!")
    );
    assert_eq!(c.rates, (0..=200).step_by(10).collect::<Vec<u64>>());
    assert_eq!((c.duration_text.as_str(), c.iterations), ("30s", 3));
    // The same request as dfaas keeps dfaas's defaults.
    let dfaas = load_request(&request(json!({}))).unwrap().config;
    assert_eq!(dfaas.plugin, Plugin::Dfaas);
    assert_eq!(dfaas.k6.host, "127.0.0.1");
    assert!(!dfaas.k6.is_local());
    assert_eq!(dfaas.functions[0].body, "Hello DFaaS!");
}

/// Functions given replace the default list, as in lb.
#[test]
fn peva_faas_functions_replace_the_default() {
    let c = load_request(&peva(json!({"functions": [{"name": "env"}]})))
        .unwrap()
        .config;
    let names: Vec<&str> = c.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["env"]);
    assert_eq!(c.functions[0].method, HttpMethod::Get);
}

/// peva_faas's own fields, written as lb's model dumps them, are accepted
/// without a warning; in a dfaas config they are unknown fields.
#[test]
fn peva_faas_fields_are_known_to_peva_faas_only() {
    let fields = json!({
        "k3s_host": "127.0.0.1",
        "k3s_user": "ubuntu",
        "k3s_ssh_key": "~/.ssh/id_rsa",
        "k3s_port": 22,
        "selection_mode": "micro_batch",
        "micro_batch_size": 8,
        "micro_batch_window_s": 30,
        "algorithm_entrypoint": null,
    });
    let loaded = load_request(&peva(fields.clone())).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let loaded = load_request(&request(fields)).unwrap();
    let mut warned: Vec<&str> = loaded
        .warnings
        .iter()
        .filter_map(|w| w.strip_prefix("unknown field `"))
        .filter_map(|w| w.strip_suffix("` ignored (a peva_faas field)"))
        .collect();
    warned.sort_unstable();
    let mut expected = plugin::PEVA_FAAS_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(warned, expected, "{:?}", loaded.warnings);
}

/// A complete peva_faas section as lb's own model writes it out (every
/// field at its default) runs here unchanged.
#[test]
fn lbs_peva_faas_dump_is_accepted() {
    let dump: Value = serde_json::from_str(
        r#"{
        "max_retries": 0, "timeout_buffer": 10, "tags": [],
        "config_path": null, "output_dir": null, "run_id": null,
        "k3s_host": "127.0.0.1", "k3s_user": "ubuntu", "k3s_ssh_key": "~/.ssh/id_rsa", "k3s_port": 22,
        "k6_host": "127.0.0.1", "k6_user": "ubuntu", "k6_ssh_key": "~/.ssh/id_rsa", "k6_port": 22,
        "k6_workspace_root": "/home/ubuntu/.peva_faas-k6", "k6_log_stream": true,
        "k6_outputs": [], "k6_tags": {},
        "openfaas_port": 31112, "prometheus_port": 30411,
        "gateway_url": "http://127.0.0.1:31112", "prometheus_url": "http://127.0.0.1:30411",
        "functions": [{"name": "figlet", "method": "POST", "body": "Hello PEVA-faas!",
                       "headers": {"Content-Type": "text/plain"}, "max_rate": null}],
        "rate_strategy": {"type": "linear", "min_rate": 0, "max_rate": 200, "step": 10},
        "rates": null,
        "combinations": {"min_functions": 1, "max_functions": 2},
        "duration": "30s", "iterations": 3,
        "selection_mode": "online", "micro_batch_size": 8, "micro_batch_window_s": 30,
        "algorithm_entrypoint": null,
        "cooldown": {"max_wait_seconds": 180, "sleep_step_seconds": 5, "idle_threshold_pct": 15.0},
        "overload": {"cpu_overload_pct_of_capacity": 80.0, "ram_overload_pct": 90.0,
                     "success_rate_node_min": 0.95, "success_rate_function_min": 0.9,
                     "replicas_overload_threshold": 15},
        "queries_path": "/elsewhere/lb_plugins/plugins/peva_faas/queries.yml",
        "deploy_functions": true, "scaphandre_enabled": false, "function_pid_regexes": {},
        "grafana": {"enabled": false, "url": "http://localhost:3000", "api_key": null, "org_id": 1},
        "loki": {"enabled": false, "endpoint": "http://localhost:3100", "labels": {}}
    }"#,
    )
    .unwrap();
    let loaded = load_request(&peva(dump)).unwrap();
    assert_eq!(
        loaded.warnings,
        ["queries_path /elsewhere/lb_plugins/plugins/peva_faas/queries.yml does not exist here; using the bundled queries"]
    );
    let c = loaded.config;
    // peva_faas's loopback k6_host is its local runner.
    assert!(c.k6.is_local());
    assert_eq!(c.queries_path, None);
    assert_eq!(c.k6.workspace_root, "/home/ubuntu/.peva_faas-k6");
}

/// A loopback or empty `k6_host` is k6 on this machine for peva_faas (its
/// runner never leaves the runner host); a real address is reached over
/// SSH; `local` means local for both plugins.
#[test]
fn k6_host_local_and_loopback() {
    let k6 = |request: Request| load_request(&request).unwrap().config.k6;
    for host in ["127.0.0.1", "localhost", "::1", "", "local"] {
        assert!(k6(peva(json!({"k6_host": host}))).is_local(), "{host:?}");
    }
    let remote = k6(peva(json!({"k6_host": "10.0.0.9", "k6_user": "alice"})));
    assert!(!remote.is_local());
    assert_eq!(
        (remote.host.as_str(), remote.workspace_root.as_str()),
        ("10.0.0.9", "/home/alice/.peva_faas-k6")
    );
    let lbs_root = k6(peva(json!({
        "k6_host": "10.0.0.9", "k6_user": "root",
        "k6_workspace_root": "/home/ubuntu/.peva_faas-k6",
    })));
    assert_eq!(lbs_root.workspace_root, "/root/.peva_faas-k6");

    assert!(k6(request(json!({"k6_host": "local"}))).is_local());
    for host in ["127.0.0.1", "localhost"] {
        let dfaas = k6(request(json!({"k6_host": host})));
        assert!(!dfaas.is_local(), "{host}");
        assert_eq!(dfaas.host, host);
    }
    let errors = field_errors(&request(json!({"k6_host": ""})));
    assert_eq!(errors[0].0, "k6_host");
}

/// `k3s_host` fills `{host.address}` before the context, and takes the
/// place of a loopback host in the URLs (peva_faas's generator); empty, it
/// leaves both to the context's address.
#[test]
fn k3s_host_fills_host_address() {
    let context = Context {
        host_address: Some("10.0.0.9".into()),
        ..Context::default()
    };
    let urls = |config: Value| {
        let c = load_request(&peva_in(config, context.clone()))
            .unwrap()
            .config;
        (c.gateway_url, c.prometheus_url)
    };
    let templated = json!({
        "gateway_url": "http://{host.address}:31112",
        "prometheus_url": "http://localhost:30411/prom",
    });
    assert_eq!(
        urls(with_field(&templated, "k3s_host", json!("10.0.0.5"))),
        (
            "http://10.0.0.5:31112".to_string(),
            "http://10.0.0.5:30411/prom".to_string()
        )
    );
    // peva_faas's default k3s_host is 127.0.0.1, not the target's address.
    assert_eq!(
        urls(templated.clone()),
        (
            "http://127.0.0.1:31112".to_string(),
            "http://127.0.0.1:30411/prom".to_string()
        )
    );
    assert_eq!(
        urls(with_field(&templated, "k3s_host", json!(""))),
        (
            "http://10.0.0.9:31112".to_string(),
            "http://10.0.0.9:30411/prom".to_string()
        )
    );
    // Neither k3s_host nor an address: this machine's, as peva_faas (the
    // context's host name is no address).
    let named = Context {
        host: Some("node1".into()),
        ..Context::default()
    };
    let c = load_request(&peva_in(
        with_field(&templated, "k3s_host", json!("")),
        named,
    ))
    .unwrap()
    .config;
    assert!(!c.gateway_url.contains("node1"), "{}", c.gateway_url);
    assert!(
        !c.prometheus_url.contains("localhost"),
        "{}",
        c.prometheus_url
    );
    // A host that is not loopback stays.
    assert_eq!(
        urls(json!({"k3s_host": "10.0.0.5", "gateway_url": "http://gw.example:8080"})).0,
        "http://gw.example:8080"
    );
    // dfaas: no k3s_host, no loopback rewrite.
    let dfaas = load_request(&Request {
        context: context.clone(),
        ..request(templated)
    })
    .unwrap()
    .config;
    assert_eq!(dfaas.gateway_url, "http://10.0.0.9:31112");
    assert_eq!(dfaas.prometheus_url, "http://localhost:30411/prom");
}

fn with_field(config: &Value, field: &str, value: Value) -> Value {
    let mut config = config.clone();
    config[field] = value;
    config
}

/// A policy other than the default is refused naming the field; the other
/// peva_faas fields are checked as lb's peva_faas checks them.
#[test]
fn peva_faas_fields_are_checked() {
    let errors = field_errors(&peva(json!({"algorithm_entrypoint": "my_policies:Greedy"})));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (field, reason) = &errors[0];
    assert_eq!(field, "algorithm_entrypoint");
    assert!(
        reason.contains("\"my_policies:Greedy\"")
            && reason.contains("cannot load")
            && reason.contains("leave algorithm_entrypoint out"),
        "{reason}"
    );
    // The default, written out, is no policy.
    for default in [json!(null), json!("")] {
        load_request(&peva(json!({"algorithm_entrypoint": default}))).unwrap();
    }
    let errors = field_errors(&peva(json!({
        "selection_mode": "batch",
        "micro_batch_size": 0,
        "micro_batch_window_s": 0,
        "k3s_port": 70000,
        "k3s_host": "bad host",
    })));
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "selection_mode",
            "micro_batch_size",
            "micro_batch_window_s",
            "k3s_port",
            "k3s_host"
        ],
        "{errors:?}"
    );
    assert!(errors[0].1.contains("online, micro_batch"), "{errors:?}");
    let errors = field_errors(&peva(json!({"micro_batch_size": -1})));
    assert_eq!(errors[0].0, "micro_batch_size");
}
