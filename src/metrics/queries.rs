//! The Prometheus query set (`queries.yml`) and PromQL rendering — pure.
//!
//! The file format is lb's: a `queries:` list of `{name, query, range,
//! step, enabled_if}`. The bundled default is lb's own file. Templates hold
//! the placeholders `{time_span}`, `{function_name}` and `{pid_regex}`;
//! only values that cannot break out of their PromQL context are put in:
//! a [`TimeSpan`] is a checked PromQL duration, a function name is a
//! validated [`FunctionName`], and a PID regex (free user text) is escaped
//! for a double-quoted PromQL string. This module never touches the network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::FunctionName;

/// lb's default query file, bundled.
pub(crate) const BUNDLED_QUERIES: &str = include_str!("queries.yml");

/// Name under which the bundled file appears in error messages.
const BUNDLED_SOURCE: &str = "<bundled queries.yml>";

/// Step used when an entry gives none (lb's default).
const DEFAULT_STEP: &str = "10s";

/// Queries every campaign needs.
pub(crate) const REQUIRED: [&str; 5] = [
    "cpu_usage_node",
    "ram_usage_node",
    "ram_usage_node_pct",
    "cpu_usage_function",
    "ram_usage_function",
];

/// Queries needed on top of [`REQUIRED`] when Scaphandre is enabled.
pub(crate) const REQUIRED_SCAPHANDRE: [&str; 2] = ["power_usage_node", "power_usage_function"];

/// The value of `enabled_if` that ties a query to Scaphandre.
const SCAPHANDRE: &str = "scaphandre";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot read queries file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("queries file {source_name} is not valid YAML with a 'queries' list: {reason}")]
    Parse { source_name: String, reason: String },
    #[error("queries file {source_name}, entry {index} ({name}): {reason}")]
    Entry {
        source_name: String,
        index: usize,
        name: String,
        reason: String,
    },
    #[error("queries file {source_name} lacks required queries: {}", names.join(", "))]
    Missing {
        source_name: String,
        names: Vec<String>,
    },
}

/// A PromQL duration such as `30s`, `1500ms` or `1h30m`, checked so that it
/// can be placed into a range selector `[...]` as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSpan(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a PromQL duration (like 30s, 500ms, 1m, 1h30m)")]
pub struct TimeSpanError(String);

impl TimeSpan {
    /// Accepts one or more `<digits><unit>` groups, unit one of
    /// `ms s m h d w y`, with a non-zero total.
    pub fn parse(text: &str) -> Result<Self, TimeSpanError> {
        if is_promql_duration(text) {
            Ok(TimeSpan(text.to_string()))
        } else {
            Err(TimeSpanError(text.to_string()))
        }
    }

    /// The shortest exact PromQL form of a duration (milliseconds
    /// precision; at least `1ms`).
    pub(crate) fn from_duration(duration: Duration) -> Self {
        let total_ms = duration.as_millis().max(1);
        if total_ms % 1000 == 0 {
            TimeSpan(format!("{}s", total_ms / 1000))
        } else {
            TimeSpan(format!("{total_ms}ms"))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Prometheus's duration grammar: `[<n>y][<n>w][<n>d][<n>h][<n>m][<n>s][<n>ms]`,
/// units in that order, each at most once, at least one, total non-zero.
fn is_promql_duration(text: &str) -> bool {
    const UNITS: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    let mut rest = text;
    let mut next_unit = 0;
    let mut any_non_zero = false;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        if rest[..digits].bytes().any(|b| b != b'0') {
            any_non_zero = true;
        }
        rest = &rest[digits..];
        // Longest unit first so that "ms" is not read as "m".
        let found = UNITS[next_unit..]
            .iter()
            .enumerate()
            .filter(|(_, unit)| rest.starts_with(**unit))
            .max_by_key(|(_, unit)| unit.len());
        match found {
            Some((offset, unit)) => {
                rest = &rest[unit.len()..];
                next_unit += offset + 1;
            }
            None => return false,
        }
    }
    any_non_zero
}

/// One entry of the query file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryDefinition {
    pub name: String,
    /// The PromQL template with placeholders.
    pub query: String,
    /// Query over the iteration window (true) or at its end (false).
    pub range: bool,
    /// Range step, a PromQL duration or a number of seconds.
    pub step: String,
    pub enabled_if: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    #[serde(default)]
    queries: Option<Vec<serde_norway::Value>>,
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    name: Option<String>,
    query: Option<String>,
    range: Option<bool>,
    step: Option<serde_norway::Value>,
    enabled_if: Option<String>,
}

/// The active queries by name: entries whose `enabled_if` is not met are
/// left out, and every query the campaign needs is present.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySet {
    queries: BTreeMap<String, QueryDefinition>,
}

impl QuerySet {
    /// lb's default queries.
    pub fn bundled(scaphandre_enabled: bool) -> Result<Self, QueryError> {
        Self::parse(BUNDLED_QUERIES, BUNDLED_SOURCE, scaphandre_enabled)
    }

    /// The queries at `path`, or the bundled ones when `path` is `None`.
    pub fn load(path: Option<&Path>, scaphandre_enabled: bool) -> Result<Self, QueryError> {
        match path {
            None => Self::bundled(scaphandre_enabled),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| QueryError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::parse(&text, &path.display().to_string(), scaphandre_enabled)
            }
        }
    }

    /// Parses a query file's text; `source_name` names it in errors.
    pub(crate) fn parse(
        text: &str,
        source_name: &str,
        scaphandre_enabled: bool,
    ) -> Result<Self, QueryError> {
        let parse_error = |reason: String| QueryError::Parse {
            source_name: source_name.to_string(),
            reason,
        };
        let raw: RawFile = serde_norway::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        let entries = raw
            .queries
            .ok_or_else(|| parse_error("no 'queries' list".to_string()))?;

        let mut queries = BTreeMap::new();
        for (index, value) in entries.into_iter().enumerate() {
            let definition = parse_entry(value).map_err(|(name, reason)| QueryError::Entry {
                source_name: source_name.to_string(),
                index,
                name,
                reason,
            })?;
            let disabled =
                definition.enabled_if.as_deref() == Some(SCAPHANDRE) && !scaphandre_enabled;
            if !disabled {
                queries.insert(definition.name.clone(), definition);
            }
        }

        let mut required: Vec<&str> = REQUIRED.to_vec();
        if scaphandre_enabled {
            required.extend(REQUIRED_SCAPHANDRE);
        }
        let missing: Vec<String> = required
            .into_iter()
            .filter(|name| !queries.contains_key(*name))
            .map(str::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(QueryError::Missing {
                source_name: source_name.to_string(),
                names: missing,
            });
        }
        Ok(QuerySet { queries })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&QueryDefinition> {
        self.queries.get(name)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }
}

/// One entry, or (name for the message, reason).
fn parse_entry(value: serde_norway::Value) -> Result<QueryDefinition, (String, String)> {
    let raw: RawEntry =
        serde_norway::from_value(value).map_err(|e| ("?".to_string(), e.to_string()))?;
    let name = raw
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ("?".to_string(), "'name' is required".to_string()))?;
    let query = raw
        .query
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| (name.clone(), "'query' is required".to_string()))?;
    let step = match raw.step {
        None => DEFAULT_STEP.to_string(),
        Some(serde_norway::Value::String(s)) => s,
        Some(serde_norway::Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err((name, format!("'step' must be a duration, got {other:?}")));
        }
    };
    if !is_valid_step(&step) {
        return Err((
            name,
            format!("'step' {step:?} is not a PromQL duration or a positive number of seconds"),
        ));
    }
    Ok(QueryDefinition {
        name,
        query,
        range: raw.range.unwrap_or(true),
        step,
        enabled_if: raw.enabled_if,
    })
}

fn is_valid_step(step: &str) -> bool {
    is_promql_duration(step) || step.parse::<f64>().is_ok_and(|s| s.is_finite() && s > 0.0)
}

/// Values for a template's placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Placeholders<'a> {
    pub time_span: &'a TimeSpan,
    pub function_name: Option<&'a FunctionName>,
    /// Free user text; escaped for a double-quoted PromQL string.
    pub pid_regex: Option<&'a str>,
}

/// Fills a template. Placeholders without a value are left as they are
/// (Prometheus then rejects the query, which names the problem).
pub fn render(template: &str, values: Placeholders<'_>) -> String {
    let mut rendered = template.replace("{time_span}", values.time_span.as_str());
    if let Some(name) = values.function_name {
        rendered = rendered.replace("{function_name}", name.as_str());
    }
    if let Some(regex) = values.pid_regex {
        rendered = rendered.replace("{pid_regex}", &escape_promql_string(regex));
    }
    rendered
}

/// Escapes text for the inside of a double-quoted PromQL string literal.
pub(crate) fn escape_promql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str) -> TimeSpan {
        TimeSpan::parse(s).unwrap()
    }

    #[test]
    fn time_spans() {
        for ok in [
            "30s", "500ms", "1m", "2h", "1h30m", "1d", "1w", "1y", "0s5ms",
        ] {
            assert!(TimeSpan::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "30", "s", "0s", "0ms", "1.5s", "30 s", "30s]", "1mm", "-1s", "30S", "3s)", "1m1h",
            "1s1s", "5ms1s",
        ] {
            assert!(TimeSpan::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TimeSpan::from_duration(Duration::from_secs(30)).as_str(),
            "30s"
        );
        assert_eq!(
            TimeSpan::from_duration(Duration::from_millis(1500)).as_str(),
            "1500ms"
        );
        assert_eq!(TimeSpan::from_duration(Duration::ZERO).as_str(), "1ms");
    }

    #[test]
    fn bundled_set_has_what_the_campaign_needs() {
        let without = QuerySet::bundled(false).unwrap();
        assert!(without.get("power_usage_node").is_none());
        assert!(without.get("power_usage_function").is_none());
        for name in REQUIRED {
            let q = without.get(name).unwrap();
            assert!(q.range);
            assert_eq!(q.step, "10s");
        }
        let with = QuerySet::bundled(true).unwrap();
        assert_eq!(
            with.get("power_usage_node").unwrap().enabled_if.as_deref(),
            Some("scaphandre")
        );
        assert_eq!(with.names().count(), 7);
    }

    #[test]
    fn renders_node_and_function_queries() {
        let set = QuerySet::bundled(true).unwrap();
        let ts = span("30s");
        let cpu = render(
            &set.get("cpu_usage_node").unwrap().query,
            Placeholders {
                time_span: &ts,
                function_name: None,
                pid_regex: None,
            },
        );
        assert_eq!(
            cpu,
            r#"100 * sum(1 - rate(node_cpu_seconds_total{mode="idle"}[30s]))"#
        );
        let figlet = FunctionName::parse("figlet").unwrap();
        let ram = render(
            &set.get("ram_usage_function").unwrap().query,
            Placeholders {
                time_span: &ts,
                function_name: Some(&figlet),
                pid_regex: None,
            },
        );
        assert_eq!(
            ram,
            r#"sum(avg_over_time(container_memory_usage_bytes{id=~"^/kubepods.*", container_label_io_kubernetes_container_name="figlet"}[30s]))"#
        );
    }

    #[test]
    fn pid_regex_cannot_leave_its_string() {
        let set = QuerySet::bundled(true).unwrap();
        let ts = span("10s");
        let hostile = r#"a"}) or vector(1) #\"#;
        let q = render(
            &set.get("power_usage_function").unwrap().query,
            Placeholders {
                time_span: &ts,
                function_name: None,
                pid_regex: Some(hostile),
            },
        );
        assert_eq!(
            q,
            r#"sum(avg_over_time(scaph_process_power_consumption_microwatts{pid=~"a\"}) or vector(1) #\\"}[10s]))"#
        );
        assert_eq!(escape_promql_string("a\nb\tc"), r"a\nb\tc");
    }

    #[test]
    fn custom_file_errors_name_file_and_entry() {
        let missing = QuerySet::parse("queries: []\n", "my.yml", false).unwrap_err();
        let msg = missing.to_string();
        assert!(msg.contains("my.yml"), "{msg}");
        assert!(msg.contains("cpu_usage_node"), "{msg}");

        let no_query =
            QuerySet::parse("queries:\n  - name: cpu_usage_node\n", "q.yml", false).unwrap_err();
        let msg = no_query.to_string();
        assert!(
            msg.contains("q.yml") && msg.contains("cpu_usage_node") && msg.contains("'query'"),
            "{msg}"
        );

        let bad_step = QuerySet::parse(
            "queries:\n  - name: x\n    query: up\n    step: soon\n",
            "s.yml",
            false,
        )
        .unwrap_err();
        assert!(bad_step.to_string().contains("'step'"), "{bad_step}");

        let not_yaml = QuerySet::parse("queries: [", "b.yml", false).unwrap_err();
        assert!(matches!(not_yaml, QueryError::Parse { .. }));
        let no_list = QuerySet::parse("other: 1\n", "c.yml", false).unwrap_err();
        assert!(no_list.to_string().contains("'queries'"), "{no_list}");
    }

    #[test]
    fn custom_file_defaults_and_numeric_step() {
        let mut text = String::from("queries:\n");
        for name in REQUIRED {
            text.push_str(&format!("  - name: {name}\n    query: up\n    step: 5\n"));
        }
        text.push_str("  - name: extra\n    query: up\n    range: false\n");
        let set = QuerySet::parse(&text, "ok.yml", false).unwrap();
        assert_eq!(set.get("cpu_usage_node").unwrap().step, "5");
        let extra = set.get("extra").unwrap();
        assert!(!extra.range);
        assert_eq!(extra.step, "10s");
    }

    #[test]
    fn load_reads_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.yml");
        std::fs::write(&path, BUNDLED_QUERIES).unwrap();
        assert_eq!(
            QuerySet::load(Some(&path), false).unwrap(),
            QuerySet::bundled(false).unwrap()
        );
        let absent = dir.path().join("absent.yml");
        let err = QuerySet::load(Some(&absent), false).unwrap_err();
        assert!(err.to_string().contains("absent.yml"), "{err}");
    }
}
