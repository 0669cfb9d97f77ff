//! Where a config comes from: config files, `config_path`, and lb's deep
//! merge of `common` with `plugins.dfaas` (`plugins.peva_faas` for a
//! peva_faas request) and of request fields over a file.
//!
//! Reads files, nothing else. Produces plain JSON for `raw` to parse.
//!
//! A config file is YAML (JSON is read as YAML, or as JSON when the name
//! ends in `.json`). Its top level is one of:
//! - `common:` and/or `plugins: {dfaas: ...}` — lb's layout; the two are
//!   deep-merged, the plugin section winning; other keys are ignored. As
//!   `--config`, a file whose `plugins` has `peva_faas` and no `dfaas` is
//!   a peva_faas config;
//! - a request envelope, i.e. only `config:` and optionally `context:` and
//!   `plugin:` (what lb writes on stdin) — only for `--config`;
//! - anything else: the whole mapping is the dfaas config.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::raw::json_type;
use super::{expand_home, home_dir, ConfigError};
use crate::protocol::{Plugin, Request};

/// Config files larger than this are refused rather than read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest `[`/`{` nesting accepted before parsing. The YAML parser takes
/// time quadratic in the depth of flow collections, and refuses more than
/// 128 levels anyway; checking first keeps a hostile file from hanging us.
const MAX_FLOW_DEPTH: usize = 200;

/// lb's `_deep_merge`: mappings merge key by key, anything else in
/// `overrides` replaces the value in `base` (including `null`).
pub(crate) fn deep_merge(base: &mut Map<String, Value>, overrides: Map<String, Value>) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                deep_merge(existing, incoming)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// What a `--config` file holds.
#[derive(Debug)]
pub(crate) enum FileContents {
    /// A request envelope (`config` + `context`), used as if read on stdin.
    Request(Request),
    /// A config (already merged from `common` + `plugins.<plugin>`) and
    /// the plugin it is for.
    Config(Value, Plugin),
}

/// Reads a `--config` file. `origin` names the input in errors.
pub(crate) fn read_config_file(path: &Path, origin: &str) -> Result<FileContents, ConfigError> {
    let document = read_document(path, origin)?;
    let map = match document {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(file_error(
                origin,
                path,
                format!("the top level must be a mapping, got {}", json_type(&other)),
            ))
        }
    };
    if is_request_envelope(&map) {
        if let Some(context) = map.get("context").filter(|c| !c.is_object()) {
            return Err(file_error(
                origin,
                path,
                format!("context must be a mapping, got {}", json_type(context)),
            ));
        }
        let request = serde_path_to_error::deserialize::<_, Request>(Value::Object(map)).map_err(
            |error| file_error(origin, path, format!("{}: {}", error.path(), error.inner())),
        )?;
        return Ok(FileContents::Request(request));
    }
    if map.contains_key("common") || map.contains_key("plugins") {
        let plugin = sections_plugin(&map);
        return Ok(FileContents::Config(
            Value::Object(sections(map, path, origin, plugin)?),
            plugin,
        ));
    }
    Ok(FileContents::Config(Value::Object(map), Plugin::Dfaas))
}

/// A request envelope has `config` and nothing besides `context` and
/// `plugin`. No config field is named `config`, so this cannot swallow a
/// config.
fn is_request_envelope(map: &Map<String, Value>) -> bool {
    map.contains_key("config")
        && map
            .keys()
            .all(|k| k == "config" || k == "context" || k == "plugin")
}

/// The plugin of an lb-layout file: peva_faas when `plugins` has a
/// `peva_faas` section and no `dfaas` one, else dfaas.
fn sections_plugin(map: &Map<String, Value>) -> Plugin {
    match map.get("plugins") {
        Some(Value::Object(plugins))
            if plugins.contains_key(Plugin::PevaFaas.name())
                && !plugins.contains_key(Plugin::Dfaas.name()) =>
        {
            Plugin::PevaFaas
        }
        _ => Plugin::Dfaas,
    }
}

/// Applies `config_path` if the config has one: the file's `common` +
/// `plugins.<plugin>`, then the config's own fields on top. One level
/// only, as in lb: a `config_path` inside the file is not followed.
pub(crate) fn apply_config_path(config: Value, plugin: Plugin) -> Result<Value, ConfigError> {
    let Value::Object(mut overrides) = config else {
        return Ok(config);
    };
    let path = match overrides.remove("config_path") {
        None | Some(Value::Null) => return Ok(Value::Object(overrides)),
        Some(Value::String(path)) if path.is_empty() => return Ok(Value::Object(overrides)),
        Some(Value::String(path)) => path,
        Some(other) => {
            return Err(ConfigError::invalid(
                "config_path",
                format!("must be a string, got {}", json_type(&other)),
            ))
        }
    };
    let path = expand_home(&path, home_dir().as_deref())
        .map_err(|reason| ConfigError::invalid("config_path", reason))?;
    let document = read_document(&path, "config_path")?;
    let map = match document {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(file_error(
                "config_path",
                &path,
                format!("the top level must be a mapping, got {}", json_type(&other)),
            ))
        }
    };
    let mut merged = sections(map, &path, "config_path", plugin)?;
    merged.remove("config_path");
    deep_merge(&mut merged, overrides);
    Ok(Value::Object(merged))
}

/// `common` deep-merged with `plugins.<plugin>`; `null` sections are empty.
fn sections(
    mut map: Map<String, Value>,
    path: &Path,
    origin: &str,
    plugin: Plugin,
) -> Result<Map<String, Value>, ConfigError> {
    let section = |value: Option<Value>, name: &str| match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(file_error(
            origin,
            path,
            format!(
                "section {name} must be a mapping, got {}",
                json_type(&other)
            ),
        )),
    };
    let mut common = section(map.remove("common"), "common")?;
    let mut plugins = section(map.remove("plugins"), "plugins")?;
    let name = plugin.name();
    let own = section(plugins.remove(name), &format!("plugins.{name}"))?;
    deep_merge(&mut common, own);
    Ok(common)
}

/// Reads and parses a YAML or JSON file.
fn read_document(path: &Path, origin: &str) -> Result<Value, ConfigError> {
    let metadata = std::fs::metadata(path).map_err(|e| file_error(origin, path, io_reason(&e)))?;
    if !metadata.is_file() {
        return Err(file_error(origin, path, "not a regular file".to_string()));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(file_error(
            origin,
            path,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(origin, path, io_reason(&e)))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if flow_depth_exceeds(&text, MAX_FLOW_DEPTH) {
        return Err(file_error(
            origin,
            path,
            format!("nested deeper than {MAX_FLOW_DEPTH} levels"),
        ));
    }
    let parsed = if is_json {
        serde_json::from_str::<Value>(&text).map_err(|e| format!("malformed JSON: {e}"))
    } else if text.trim().is_empty() {
        Ok(Value::Null)
    } else {
        yaml_to_json(&text)
    };
    parsed.map_err(|reason| file_error(origin, path, reason))
}

/// YAML as the JSON the config stages read: `<<` merge keys applied (what
/// PyYAML, and so lb, does), and `.nan`/`.inf` refused by path — JSON has
/// no such numbers, and letting them through would report "invalid type:
/// null" against a number field.
fn yaml_to_json(text: &str) -> Result<Value, String> {
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("malformed YAML: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("malformed YAML: merge key `<<`: {e}"))?;
    let mut non_finite = Vec::new();
    find_non_finite(&yaml, String::new(), &mut non_finite);
    if !non_finite.is_empty() {
        return Err(non_finite.join("; "));
    }
    serde_norway::from_value(yaml).map_err(|e| format!("malformed YAML: {e}"))
}

/// Describes every `.nan`, `.inf` and `-.inf` under `value` at `path`.
fn find_non_finite(value: &serde_norway::Value, path: String, found: &mut Vec<String>) {
    use serde_norway::Value as Yaml;
    match value {
        Yaml::Number(number) => {
            if let Some(float) = number.as_f64().filter(|f| !f.is_finite()) {
                let written = if float.is_nan() {
                    ".nan"
                } else if float > 0.0 {
                    ".inf"
                } else {
                    "-.inf"
                };
                let at = if path.is_empty() {
                    "the document"
                } else {
                    &path
                };
                found.push(format!(
                    "{at}: {written} is not a finite number; numbers in a config must be finite"
                ));
            }
        }
        Yaml::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                find_non_finite(item, format!("{path}[{index}]"), found);
            }
        }
        Yaml::Mapping(map) => {
            for (key, item) in map {
                let key = match key {
                    Yaml::String(key) => key.clone(),
                    other => serde_norway::to_string(other)
                        .map(|k| k.trim_end().to_string())
                        .unwrap_or_else(|_| "?".to_string()),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                find_non_finite(item, child, found);
            }
        }
        Yaml::Tagged(tagged) => find_non_finite(&tagged.value, path, found),
        Yaml::Null | Yaml::Bool(_) | Yaml::String(_) => {}
    }
}

/// Whether `[`/`{` outside quotes and comments nest deeper than `limit`.
/// A rough lexer: quotes and comments are recognised well enough for
/// this check, which only has to catch absurd nesting.
fn flow_depth_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut previous = '\n';
    for c in text.chars() {
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                // A quote only opens a string where a value can start, so
                // that `don't` in a plain scalar is not taken for one.
                '"' | '\'' if previous.is_whitespace() || "[{,:".contains(previous) => {
                    quote = Some(c)
                }
                '#' if previous.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        previous = c;
    }
    false
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => error.to_string(),
    }
}

fn file_error(origin: &str, path: &Path, reason: String) -> ConfigError {
    ConfigError::File {
        origin: origin.to_string(),
        path: PathBuf::from(path),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn deep_merge_follows_lb() {
        let mut base = object(json!({
            "a": 1,
            "nested": {"x": 1, "y": {"deep": 1, "keep": 2}},
            "list": [1, 2],
            "replaced_by_scalar": {"x": 1},
            "nulled": 5,
        }));
        deep_merge(
            &mut base,
            object(json!({
                "b": 2,
                "nested": {"y": {"deep": 9}, "z": 3},
                "list": [3],
                "replaced_by_scalar": 7,
                "nulled": null,
            })),
        );
        assert_eq!(
            Value::Object(base),
            json!({
                "a": 1,
                "nested": {"x": 1, "y": {"deep": 9, "keep": 2}, "z": 3},
                "list": [3],
                "replaced_by_scalar": 7,
                "nulled": null,
                "b": 2,
            })
        );
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn config_path_merges_common_plugin_and_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "dfaas.yml",
            "common:\n  timeout_buffer: 5\n  k6_host: common-host\n  iterations: 1\n\
             plugins:\n  dfaas:\n    k6_host: 10.0.0.50\n    rate_strategy:\n      type: linear\n      min_rate: 0\n      max_rate: 20\n      step: 10\n\
             \x20 other_plugin:\n    x: 1\n",
        );
        let request = json!({
            "config_path": path.to_str().unwrap(),
            "rate_strategy": {"type": "linear", "max_rate": 50},
            "iterations": 2,
        });
        let merged = apply_config_path(request, Plugin::Dfaas).unwrap();
        assert_eq!(
            merged,
            json!({
                "timeout_buffer": 5,
                "k6_host": "10.0.0.50",
                "iterations": 2,
                "rate_strategy": {"type": "linear", "min_rate": 0, "max_rate": 50, "step": 10},
            })
        );
    }

    /// peva_faas's config_path reads `plugins.peva_faas`, as peva_faas
    /// does; a dfaas request reads `plugins.dfaas` of the same file.
    #[test]
    fn config_path_reads_the_requests_plugin_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "both.yml",
            "common:\n  iterations: 1\nplugins:\n  dfaas:\n    duration: 10s\n  peva_faas:\n    duration: 20s\n",
        );
        let request = json!({"config_path": path.to_str().unwrap()});
        assert_eq!(
            apply_config_path(request.clone(), Plugin::PevaFaas).unwrap(),
            json!({"iterations": 1, "duration": "20s"})
        );
        assert_eq!(
            apply_config_path(request, Plugin::Dfaas).unwrap(),
            json!({"iterations": 1, "duration": "10s"})
        );
    }

    #[test]
    fn config_without_config_path_is_unchanged() {
        let config = json!({"k6_host": "x", "config_path": null});
        assert_eq!(
            apply_config_path(config, Plugin::Dfaas).unwrap(),
            json!({"k6_host": "x"})
        );
    }

    #[test]
    fn file_errors_name_the_file_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yml");
        let cases: Vec<(PathBuf, &str)> = vec![
            (missing, "file not found"),
            (write(&dir, "bad.yml", "a: [1, 2\n"), "malformed YAML"),
            (write(&dir, "bad.json", "{\"a\": }"), "malformed JSON"),
            (
                write(&dir, "list.yml", "- 1\n- 2\n"),
                "top level must be a mapping",
            ),
            (
                write(&dir, "common.yml", "common: 3\n"),
                "section common must be a mapping",
            ),
            (
                write(&dir, "plugin.yml", "plugins:\n  dfaas: [1]\n"),
                "section plugins.dfaas must be a mapping",
            ),
            (dir.path().to_path_buf(), "not a regular file"),
        ];
        for (path, expected) in cases {
            let config = json!({ "config_path": path.to_str().unwrap() });
            let error = apply_config_path(config, Plugin::Dfaas).unwrap_err();
            let ConfigError::File {
                origin,
                path: reported,
                reason,
            } = &error
            else {
                panic!("{error:?}");
            };
            assert_eq!(origin, "config_path");
            assert_eq!(reported, &path);
            assert!(reason.contains(expected), "{}: {reason}", path.display());
        }
        let error = apply_config_path(json!({"config_path": 3}), Plugin::Dfaas).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "config_path");
    }

    /// `<<` merge keys (as PyYAML reads them, so as lb does) apply; keys
    /// written next to them win.
    #[test]
    fn yaml_merge_keys_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "merge.yml",
            "defaults: &defaults\n  iterations: 2\n  duration: 10s\n  cooldown: &cool\n    max_wait_seconds: 30\n\
             plugins:\n  dfaas:\n    <<: *defaults\n    duration: 5s\n    cooldown:\n      <<: [*cool, {sleep_step_seconds: 1}]\n",
        );
        let FileContents::Config(config, _) = read_config_file(&path, "--config").unwrap() else {
            panic!("not a config");
        };
        assert_eq!(
            config,
            json!({
                "duration": "5s",
                "iterations": 2,
                "cooldown": {"max_wait_seconds": 30, "sleep_step_seconds": 1},
            })
        );
        let bad = write(&dir, "bad-merge.yml", "a:\n  <<: 5\n");
        let error = read_config_file(&bad, "--config").unwrap_err();
        assert!(error.to_string().contains("merge key"), "{error}");
    }

    /// `.nan` and `.inf` used to reach the config as JSON null ("invalid
    /// type: null, expected f64"); they are named where they are written.
    #[test]
    fn yaml_nan_and_inf_are_named_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "nan.yml",
            "plugins:\n  dfaas:\n    cooldown:\n      idle_threshold_pct: .nan\n    overload:\n      ram_overload_pct: -.inf\n    rate_strategy: {type: custom, rates: [1, .inf]}\n",
        );
        let error = read_config_file(&path, "--config").unwrap_err().to_string();
        for expected in [
            "plugins.dfaas.cooldown.idle_threshold_pct: .nan is not a finite number",
            "plugins.dfaas.overload.ram_overload_pct: -.inf is not a finite number",
            "plugins.dfaas.rate_strategy.rates[1]: .inf is not a finite number",
        ] {
            assert!(error.contains(expected), "{error}");
        }
        assert!(!error.contains("null"), "{error}");
    }

    #[test]
    fn flow_depth_scan() {
        assert!(!flow_depth_exceeds("{a: [1, {b: 2}]}", 3));
        assert!(flow_depth_exceeds("{a: [1, {b: [2]}]}", 3));
        assert!(!flow_depth_exceeds(
            "a: '[[[[['\nb: \"{{{{\\\"{{\"\n# [[[[[\n",
            3
        ));
        assert!(flow_depth_exceeds(&"[".repeat(5), 4));
        assert!(flow_depth_exceeds("a: don't\nb: [[[[[1]]]]]", 4));
    }

    #[test]
    fn config_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        let sections = write(
            &dir,
            "a.yaml",
            "common:\n  iterations: 1\nplugins:\n  dfaas:\n    iterations: 2\n",
        );
        let plain = write(&dir, "b.yaml", "iterations: 4\nk6_host: h\n");
        let envelope = write(
            &dir,
            "c.json",
            r#"{"config": {"iterations": 5}, "context": {"host": "node1", "repetition": 2}}"#,
        );
        let empty = write(&dir, "d.yml", "");
        let read = |path: &Path| read_config_file(path, "--config").unwrap();
        assert!(
            matches!(read(&sections), FileContents::Config(v, Plugin::Dfaas) if v == json!({"iterations": 2}))
        );
        assert!(
            matches!(read(&plain), FileContents::Config(v, Plugin::Dfaas) if v == json!({"iterations": 4, "k6_host": "h"}))
        );
        assert!(matches!(read(&empty), FileContents::Config(v, Plugin::Dfaas) if v == json!({})));
        let peva = write(
            &dir,
            "p.yaml",
            "common:\n  iterations: 1\nplugins:\n  peva_faas:\n    iterations: 3\n",
        );
        assert!(
            matches!(read(&peva), FileContents::Config(v, Plugin::PevaFaas) if v == json!({"iterations": 3}))
        );
        let peva_envelope = write(
            &dir,
            "q.json",
            r#"{"config": {"iterations": 6}, "plugin": "peva_faas"}"#,
        );
        let FileContents::Request(request) = read(&peva_envelope) else {
            panic!("not read as a request");
        };
        assert_eq!(request.plugin, Plugin::PevaFaas);
        let FileContents::Request(request) = read(&envelope) else {
            panic!("not read as a request");
        };
        assert_eq!(request.plugin, Plugin::Dfaas);
        assert_eq!(request.config, json!({"iterations": 5}));
        assert_eq!(request.context.host.as_deref(), Some("node1"));
        assert_eq!(request.context.repetition, Some(2));

        let bad_context = write(
            &dir,
            "e.json",
            r#"{"config": {}, "context": {"repetition": "x"}}"#,
        );
        let error = read_config_file(&bad_context, "--config").unwrap_err();
        assert!(error.to_string().contains("context.repetition"), "{error}");
    }
}
