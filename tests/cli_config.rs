//! The built binary's `describe` and `validate`, and the input edge every
//! command shares: exit codes, stdout documents, stdin vs `--config`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    /// Stdout must be exactly one JSON document.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    fn first_error(&self) -> (String, String) {
        let value = self.json();
        let error = &value["error"]["context"]["errors"][0];
        (
            error["field"].as_str().unwrap_or_default().to_string(),
            error["reason"].as_str().unwrap_or_default().to_string(),
        )
    }
}

fn lb_dfaas(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lb-dfaas"));
    command
        .args(args)
        .env_remove("LB_DFAAS_HOME")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn lb-dfaas");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // The binary may exit before reading everything; that is fine.
        let _ = pipe.write_all(bytes);
    }
    let output = child.wait_with_output().expect("wait for lb-dfaas");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn validate_stdin(request: &str) -> Output {
    lb_dfaas(&["validate"], Some(request.as_bytes()), &[])
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn describe_manifest() {
    let out = lb_dfaas(&["describe"], None, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut manifest = out.json();
    assert_eq!(manifest["name"], json!("dfaas"));
    assert_eq!(manifest["version"], json!(env!("CARGO_PKG_VERSION")));

    // Without LB_DFAAS_HOME the root is where ansible/ is found from the
    // binary, else the source tree; either way absolute.
    let playbooks = manifest["playbooks"].as_object().unwrap().clone();
    for (name, suffix) in [
        ("setup_global", "ansible/setup_global.yml"),
        ("setup_k6", "ansible/setup_k6.yml"),
        ("collect_pre", "ansible/collect/pre.yml"),
        ("collect_post", "ansible/collect/post.yml"),
        ("teardown", "ansible/teardown_k6.yml"),
    ] {
        let path = playbooks[name].as_str().unwrap();
        assert!(Path::new(path).is_absolute(), "{name}: {path}");
        assert!(path.ends_with(suffix), "{name}: {path}");
    }
    // Here the binary is cargo's: its root is the source tree, found either
    // through target/<profile>/../../ansible or as the build-time fallback.
    let setup_k6 = playbooks["setup_k6"].as_str().unwrap();
    let root = setup_k6.strip_suffix("/ansible/setup_k6.yml").unwrap();
    assert_eq!(
        Path::new(root).canonicalize().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .canonicalize()
            .unwrap()
    );

    manifest["version"] = json!("[version]");
    for (_, path) in manifest["playbooks"].as_object_mut().unwrap() {
        let text = path.as_str().unwrap();
        let relative = &text[text.find("ansible/").unwrap()..];
        *path = json!(format!("[root]/{relative}"));
    }
    insta::assert_json_snapshot!("describe", manifest);
}

#[test]
fn describe_honours_lb_dfaas_home() {
    let out = lb_dfaas(&["describe"], None, &[("LB_DFAAS_HOME", "/opt/lb-dfaas")]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.json()["playbooks"]["collect_post"],
        json!("/opt/lb-dfaas/ansible/collect/post.yml")
    );
}

#[test]
fn validate_accepts_a_good_request() {
    let out = validate_stdin(
        r#"{"config": {"functions": [{"name": "figlet"}, {"name": "env"}]}, "context": {"host": "node1"}}"#,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json(), json!({"ok": true, "warnings": []}));
}

#[test]
fn validate_reports_warnings_on_stdout_and_stderr() {
    let out = validate_stdin(
        r#"{"config": {"k6_prt": 22, "rates": {"min_rate": 0, "max_rate": 20, "step": 10}}}"#,
    );
    assert_eq!(out.code, 0);
    let warnings = out.json()["warnings"].clone();
    assert_eq!(warnings[0], json!("unknown field `k6_prt` ignored"));
    assert!(warnings[1].as_str().unwrap().contains("deprecated"));
    assert!(
        out.stderr.contains("unknown field `k6_prt` ignored"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_rejects_with_field_paths() {
    let out = validate_stdin(r#"{"config": {"functions": [{"name": "a"}, {"name": 5}]}}"#);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.json(),
        json!({
            "ok": false,
            "error": {
                "type": "invalid_input",
                "message": "invalid configuration: functions[1].name: invalid type: integer `5`, expected a string",
                "context": {"errors": [
                    {"field": "functions[1].name", "reason": "invalid type: integer `5`, expected a string"}
                ]},
            },
        })
    );

    let out = validate_stdin(
        r#"{"config": {"functions": [{"name": "a;rm -rf ~"}, {"name": "Figlet"}, {"name": "../x"}], "k6_port": 0}}"#,
    );
    assert_eq!(out.code, 2);
    let fields: Vec<String> = out.json()["error"]["context"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "k6_port",
            "functions[0].name",
            "functions[1].name",
            "functions[2].name"
        ]
    );
}

#[test]
fn malformed_stdin_names_stdin_and_position() {
    let out = validate_stdin("{\"config\": {\"k6_port\": 22,}}");
    assert_eq!(out.code, 2);
    let (field, reason) = out.first_error();
    assert_eq!(field, "stdin");
    assert!(reason.contains("line 1 column"), "{reason}");

    let out = lb_dfaas(&["validate"], None, &[]);
    assert_eq!(out.code, 2);
    assert_eq!(out.first_error().0, "stdin");
}

#[test]
fn config_file_with_common_and_plugin_sections() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "dfaas.yaml",
        "common:\n  iterations: 0\n  k6_user: bob\nplugins:\n  dfaas:\n    iterations: 2\n    functions:\n      - name: env\n",
    );
    let out = lb_dfaas(&["validate", "--config", file.to_str().unwrap()], None, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json(), json!({"ok": true, "warnings": []}));

    // The plugin section wins, so the common section's bad value is fine;
    // a bad plugin value is reported by its merged field path.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "common:\n  iterations: 2\nplugins:\n  dfaas:\n    iterations: 0\n    combinations: {min_functions: 2, max_functions: 2}\n",
    );
    let out = lb_dfaas(&["validate", "--config", bad.to_str().unwrap()], None, &[]);
    assert_eq!(out.code, 2);
    let errors = out.json()["error"]["context"]["errors"].clone();
    assert_eq!(errors[0]["field"], json!("combinations.max_functions"));
    assert_eq!(errors[1]["field"], json!("iterations"));
}

#[test]
fn config_file_as_request_envelope_and_stdin_config_path() {
    let dir = tempfile::tempdir().unwrap();
    let envelope = write(
        dir.path(),
        "request.json",
        r#"{"config": {"gateway_url": "http://{host.address}:31112"}, "context": {"host_address": "bad address"}}"#,
    );
    let out = lb_dfaas(
        &["validate", "--config", envelope.to_str().unwrap()],
        None,
        &[],
    );
    assert_eq!(out.code, 2);
    let (field, reason) = out.first_error();
    assert_eq!(field, "gateway_url");
    assert!(reason.contains("context.host_address"), "{reason}");

    let file = write(
        dir.path(),
        "base.yml",
        "plugins:\n  dfaas:\n    iterations: 0\n",
    );
    let request = json!({"config": {"config_path": file, "iterations": 4}}).to_string();
    assert_eq!(validate_stdin(&request).code, 0);
    let request = json!({"config": {"config_path": file}}).to_string();
    let out = validate_stdin(&request);
    assert_eq!(out.code, 2);
    assert_eq!(out.first_error().0, "iterations");
}

#[test]
fn config_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = write(dir.path(), "bad.yaml", "plugins: [\n");
    let cases = [
        (dir.path().join("missing.yaml"), "file not found"),
        (malformed, "malformed YAML"),
    ];
    for (path, expected) in cases {
        let out = lb_dfaas(&["validate", "--config", path.to_str().unwrap()], None, &[]);
        assert_eq!(out.code, 2);
        let (field, reason) = out.first_error();
        assert_eq!(field, "--config");
        assert!(
            reason.contains(expected) && reason.contains(path.to_str().unwrap()),
            "{reason}"
        );
    }
}

#[test]
fn examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for example in ["examples/dfaas.yaml", "examples/request.json"] {
        let path = root.join(example);
        let out = lb_dfaas(&["validate", "--config", path.to_str().unwrap()], None, &[]);
        assert_eq!(out.code, 0, "{example}: {}", out.stdout);
        assert_eq!(out.json(), json!({"ok": true, "warnings": []}), "{example}");
    }
    let request = std::fs::read(root.join("examples/request.json")).unwrap();
    assert_eq!(lb_dfaas(&["validate"], Some(&request), &[]).code, 0);
}

#[test]
fn run_with_invalid_input_prints_a_full_result() {
    let out = lb_dfaas(&["run"], Some(br#"{"config": {"duration": "soon"}}"#), &[]);
    assert_eq!(out.code, 2);
    let result = out.json();
    for key in [
        "returncode",
        "success",
        "interrupted",
        "dfaas_functions",
        "dfaas_results",
        "dfaas_skipped",
        "dfaas_index",
        "dfaas_summaries",
        "dfaas_metrics",
        "dfaas_scripts",
        "artifacts",
        "error",
    ] {
        assert!(result.get(key).is_some(), "{key} missing");
    }
    assert_eq!(result["returncode"], json!(2));
    assert_eq!(result["success"], json!(false));
    assert_eq!(
        result["error"]["context"]["errors"][0]["field"],
        json!("duration")
    );
}

#[test]
fn usage_errors_are_invalid_input() {
    let out = lb_dfaas(&["validate", "--bogus"], Some(b"{}"), &[]);
    assert_eq!(out.code, 2);
    assert_eq!(out.first_error().0, "arguments");
    let out = lb_dfaas(&["script"], Some(b"{}"), &[]);
    assert_eq!(out.code, 2, "--config-id or --pairs is required");
    let out = lb_dfaas(
        &[
            "script",
            "--config-id",
            "0123456789ab",
            "--pairs",
            "figlet=1",
        ],
        Some(b"{}"),
        &[],
    );
    assert_eq!(out.code, 2);
}

#[test]
fn json_logs_on_stderr() {
    let out = lb_dfaas(
        &["--log-format", "json", "validate"],
        Some(br#"{"config": {"typo": 1}}"#),
        &[],
    );
    assert_eq!(out.code, 0);
    let line = out.stderr.lines().next().expect("a log line");
    let log: Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(log["level"], json!("WARN"));
    assert_eq!(
        log["fields"]["message"],
        json!("unknown field `typo` ignored")
    );
}

#[test]
fn garbage_on_stdin_is_invalid_input() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut inputs: Vec<Vec<u8>> = (0..12)
        .map(|_| {
            let len = (next() % 400) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect();
    inputs.push("[".repeat(100_000).into_bytes());
    inputs.push(format!("{{\"config\": {}1{}}}", "[".repeat(1000), "]".repeat(1000)).into_bytes());
    inputs.push(br#"{"config": {"k6_port": 1e400}}"#.to_vec());
    inputs.push(br#"{"config": {"iterations": 99999999999999999999999999}}"#.to_vec());
    inputs.push(br#"{"config": "functions"}"#.to_vec());
    inputs.push(br#"{"context": [], "config": {}}"#.to_vec());
    for input in inputs {
        let out = lb_dfaas(&["validate"], Some(&input), &[]);
        assert_eq!(out.code, 2, "input {:?}", String::from_utf8_lossy(&input));
        assert_eq!(out.json()["error"]["type"], json!("invalid_input"));
    }
}

/// A stand-in lb whose registry hands out a plugin of its own for `dfaas`,
/// whatever is in its user plugin directory: what a target with a broken
/// or shadowed install looks like. `python3` runs it (the stand-in needs
/// nothing but the standard library).
fn lb_that_keeps_its_builtin_dfaas(root: &Path) {
    let package = root.join("lb_plugins");
    std::fs::create_dir_all(package.join("plugins")).unwrap();
    write(&package, "__init__.py", "");
    write(
        &package,
        "api.py",
        "class BuiltinDfaas:\n    pass\n\n\nclass Registry:\n    def get(self, name):\n        \
         return BuiltinDfaas()\n\n\ndef create_registry():\n    return Registry()\n",
    );
}

#[test]
fn lb_install_refuses_an_lb_that_does_not_resolve_dfaas_to_the_installed_plugin() {
    let dir = tempfile::tempdir().unwrap();
    lb_that_keeps_its_builtin_dfaas(dir.path());
    let root = dir.path().display().to_string();
    let out = lb_dfaas(&["lb-install", "--lb-root", &root], None, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let message = out.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("resolves `dfaas` to") && message.contains("lb_plugins/api.py"),
        "{message}"
    );
    // The files are in place all the same (the check is what failed).
    let plugin = dir.path().join("lb_plugins/plugins/_user/lb_dfaas_plugin");
    assert!(plugin.join("lb_dfaas_plugin/plugin.py").is_file());
    assert!(plugin.join("bin/lb-dfaas").is_file());
    assert!(plugin.join("bin/libduckdb.so").is_file());
    assert!(plugin.join("ansible/setup_global.yml").is_file());
}

/// A stand-in lb whose registry is built as lb builds it: its built-in
/// `dfaas` and `peva_faas`, then the user plugins of `plugins/_user/<dir>/`
/// (the package's `plugin.py` imported as `<package>.plugin`, its `PLUGINS`
/// registered by name, the last registration winning). With
/// `keeps_peva_faas`, its built-in `peva_faas` is registered after the user
/// plugins: an lb that shadows ours. `python3` runs it (with pydantic,
/// which the plugin package needs).
fn lb_with_a_registry(root: &Path, keeps_peva_faas: bool) {
    let package = root.join("lb_plugins");
    std::fs::create_dir_all(package.join("plugins")).unwrap();
    write(&package, "__init__.py", "");
    let api = format!(
        r#"import importlib, sys
from pathlib import Path


class BuiltinDfaas:
    name = "dfaas"


class BuiltinPevaFaas:
    name = "peva_faas"


class Registry:
    def __init__(self, keeps_peva_faas):
        self._plugins = {{"dfaas": BuiltinDfaas()}}
        if not keeps_peva_faas:
            self._plugins["peva_faas"] = BuiltinPevaFaas()
        user = Path(__file__).resolve().parent / "plugins" / "_user"
        for directory in sorted(user.iterdir()) if user.is_dir() else []:
            if directory.name.startswith("_"):
                continue
            for sub in sorted(directory.iterdir()):
                if (sub / "plugin.py").is_file():
                    sys.path.insert(0, str(directory))
                    module = importlib.import_module(sub.name + ".plugin")
                    for plugin in getattr(module, "PLUGINS", None) or [module.PLUGIN]:
                        self._plugins[plugin.name] = plugin
        if keeps_peva_faas:
            self._plugins["peva_faas"] = BuiltinPevaFaas()

    def get(self, name):
        return self._plugins[name]


def create_registry():
    return Registry({})
"#,
        if keeps_peva_faas { "True" } else { "False" }
    );
    write(&package, "api.py", &api);
}

/// lb-install checks every name the package registers: `dfaas` and
/// `peva_faas` both resolve to the installed package in an lb that loads
/// user plugins after its built-ins, as lb does.
#[test]
fn lb_install_resolves_dfaas_and_peva_faas_to_the_installed_package() {
    let dir = tempfile::tempdir().unwrap();
    lb_with_a_registry(dir.path(), false);
    let root = dir.path().display().to_string();
    let out = lb_dfaas(&["lb-install", "--lb-root", &root], None, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    let plugin_py = dir
        .path()
        .join("lb_plugins/plugins/_user/lb_dfaas_plugin/lb_dfaas_plugin/plugin.py")
        .canonicalize()
        .unwrap();
    for name in ["dfaas", "peva_faas"] {
        let resolved = report["resolves_to"][name].as_str().unwrap_or_default();
        assert_eq!(
            Path::new(resolved).canonicalize().ok().as_deref(),
            Some(plugin_py.as_path()),
            "{name}: {report}"
        );
    }
}

/// An lb that keeps its own `peva_faas` is refused, naming that name.
#[test]
fn lb_install_refuses_an_lb_that_keeps_its_own_peva_faas() {
    let dir = tempfile::tempdir().unwrap();
    lb_with_a_registry(dir.path(), true);
    let root = dir.path().display().to_string();
    let out = lb_dfaas(&["lb-install", "--lb-root", &root], None, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let message = out.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("resolves `peva_faas` to"), "{message}");
    assert!(message.contains("lb_plugins/api.py"), "{message}");
}

#[test]
fn lb_install_without_lb_names_the_python_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = lb_dfaas(
        &["lb-install", "--python", "python3"],
        None,
        &[("PYTHONPATH", &dir.path().display().to_string())],
    );
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let message = out.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("cannot import lb_plugins") && message.contains("--lb-root"),
        "{message}"
    );
    let out = lb_dfaas(&["lb-install", "--lb-root", "/nonexistent"], None, &[]);
    assert_eq!(out.code, 2);
    assert_eq!(out.first_error().0, "--lb-root");
}

/// `validate` refuses every request context `run` would refuse, naming the
/// field, without touching the network.
#[test]
fn validate_refuses_the_contexts_run_refuses() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"run_id": "../../etc"}),
            "context.run_id",
            "[A-Za-z0-9._-]",
        ),
        (json!({"run_id": "a b"}), "context.run_id", "[A-Za-z0-9._-]"),
        (json!({"run_id": ""}), "context.run_id", "1-128 characters"),
        (
            json!({"run_id": "run\u{7}1"}),
            "context.run_id",
            "[A-Za-z0-9._-]",
        ),
        (
            json!({"host": "../../etc"}),
            "context.host",
            "names directories",
        ),
        (json!({"host": ""}), "context.host", "1-128 characters"),
        (
            json!({"host": "node\u{200b}1"}),
            "context.host",
            "[A-Za-z0-9._-]",
        ),
        (
            json!({"host": "n".repeat(129)}),
            "context.host",
            "1-128 characters",
        ),
        (json!({"repetition": 0}), "context.repetition", "at least 1"),
        (
            json!({"output_dir": ""}),
            "context.output_dir",
            "must not be empty",
        ),
        (
            json!({"output_dir": "/dev/null"}),
            "context.output_dir",
            "not a directory",
        ),
        (
            json!({"lb_workdir": "relative/dir"}),
            "context.lb_workdir",
            "must be an absolute path",
        ),
    ];
    for (context, field, reason) in cases {
        let mut context = context;
        context
            .as_object_mut()
            .unwrap()
            .entry("host")
            .or_insert(json!("node1"));
        let request = json!({"config": {}, "context": context}).to_string();
        for command in ["validate", "run"] {
            let out = lb_dfaas(&[command], Some(request.as_bytes()), &[]);
            assert_eq!(out.code, 2, "{command} {context}: {}", out.stdout);
            let (got_field, got_reason) = out.first_error();
            assert_eq!(got_field, field, "{command} {context}");
            assert!(
                got_reason.contains(reason),
                "{command} {context}: {got_reason}"
            );
        }
    }
}

/// Values k6 would reject, and plans too large to count, are invalid input
/// for `validate` and `plan` alike (a plan used to exit 1 "internal").
#[test]
fn values_k6_rejects_and_uncountable_plans_are_invalid_input() {
    let functions: Vec<Value> = (0..64).map(|i| json!({"name": format!("f{i}")})).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"duration": "1ms"}), "duration", "shorter than 1s"),
        (
            json!({"duration": "18446744073709551615ms"}),
            "duration",
            "too large",
        ),
        (
            json!({"rate_strategy": {"type": "custom", "rates": [9007199254740992u64]}}),
            "rate_strategy.rates[0]",
            "above 9007199254740991",
        ),
        (
            json!({"functions": functions, "combinations": {"min_functions": 1, "max_functions": 65}}),
            "combinations.max_functions",
            "128 bits",
        ),
    ];
    for (config, field, reason) in cases {
        let request = json!({"config": config, "context": {"host": "node1"}}).to_string();
        for command in ["validate", "plan"] {
            let out = lb_dfaas(&[command], Some(request.as_bytes()), &[]);
            assert_eq!(out.code, 2, "{command} {field}: {}", out.stdout);
            let (got_field, got_reason) = out.first_error();
            assert_eq!(got_field, field, "{command}: {}", out.stdout);
            assert!(got_reason.contains(reason), "{command}: {got_reason}");
        }
    }
}

/// `script --config-id` with an id that is not in the plan used to hash the
/// whole plan (48 s on 10^8 configurations, unbounded on 10^12). It now
/// looks through at most the first 100 000 and then points at `--pairs`;
/// an id from the plan's head is still found.
#[test]
fn script_config_id_search_is_bounded_on_a_huge_plan() {
    let functions: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("f{i:02}")}))
        .collect();
    // 10 rates, all 12 functions together: 10^12 configurations.
    let request = json!({"config": {
        "functions": functions,
        "rate_strategy": {"type": "custom", "rates": (0..10).collect::<Vec<u64>>()},
        "combinations": {"min_functions": 12, "max_functions": 13},
    }, "context": {"host": "node1"}})
    .to_string();
    let plan = lb_dfaas(&["plan", "--limit", "2"], Some(request.as_bytes()), &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan = plan.json();
    assert_eq!(plan["count"], json!(1_000_000_000_000u64));
    let known = plan["configurations"][1]["config_id"].as_str().unwrap();

    let out = lb_dfaas(
        &["script", "--config-id", known],
        Some(request.as_bytes()),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("f11: 1 requests/s"), "{}", out.stdout);

    let out = lb_dfaas(
        &["script", "--config-id", "000000000000"],
        Some(request.as_bytes()),
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stdout);
    let (field, reason) = out.first_error();
    assert_eq!(field, "--config-id");
    assert!(reason.contains("not among the first 100000"), "{reason}");
    assert!(reason.contains("1000000000000 configurations"), "{reason}");
    assert!(reason.contains("--pairs"), "{reason}");

    // A plan within the bound is searched whole: the plain answer.
    let small = json!({"config": {"functions": [{"name": "figlet"}]}}).to_string();
    let out = lb_dfaas(
        &["script", "--config-id", "000000000000"],
        Some(small.as_bytes()),
        &[],
    );
    assert_eq!(out.code, 2);
    assert!(out
        .first_error()
        .1
        .ends_with("is not a configuration of this plan"));
}

/// A request names the lb plugin whose config it holds: peva_faas's needs
/// no k6 host (k6 runs here), an unknown plugin is invalid input naming
/// the field, and `--config` takes a file with only a peva_faas section as
/// a peva_faas config.
#[test]
fn peva_faas_requests() {
    let out = validate_stdin(r#"{"plugin": "peva_faas", "config": {"k3s_host": "10.0.0.5"}}"#);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json(), json!({"ok": true, "warnings": []}));

    let out = validate_stdin(
        r#"{"plugin": "peva_faas", "config": {"algorithm_entrypoint": "pkg.mod:Policy"}}"#,
    );
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert_eq!(out.first_error().0, "algorithm_entrypoint");

    let out = validate_stdin(r#"{"plugin": "pevafaas", "config": {}}"#);
    assert_eq!(out.code, 2, "{}", out.stdout);
    let (field, reason) = out.first_error();
    assert_eq!(field, "plugin");
    assert!(
        reason.contains("dfaas") && reason.contains("peva_faas"),
        "{reason}"
    );

    // The same fields in a dfaas request are unknown fields.
    let out = validate_stdin(r#"{"config": {"k3s_host": "10.0.0.5"}}"#);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.json()["warnings"],
        json!(["unknown field `k3s_host` ignored (a peva_faas field)"])
    );

    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "peva.yml",
        "plugins:\n  peva_faas:\n    selection_mode: micro_batch\n    functions: [{name: env}]\n",
    );
    let out = lb_dfaas(
        &["plan", "--limit", "1", "--config", file.to_str().unwrap()],
        None,
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("unknown field"), "{}", out.stderr);
    assert_eq!(out.json()["functions"], json!(["env"]));
}
