//! How often Prometheus samples the series the queries read, so that no
//! `rate(...)` or `*_over_time(...)` window is shorter than two samples
//! and an empty answer is retried only while a scrape can still fill it.
//!
//! [`discover`] asks Prometheus itself, once at start: the jobs whose
//! series the queries name (`count by (job) ({__name__=~"..."})`), then
//! those jobs' `scrapeInterval` and `scrapeTimeout` from
//! `/api/v1/targets`, or from the loaded configuration
//! (`/api/v1/status/config`) on a Prometheus whose targets API lacks them.
//! The slowest job counts. Everything but the HTTP calls is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::prometheus::{Deadlines, Measured, PrometheusClient, PrometheusError};

/// Assumed when Prometheus does not say (the interval of Prometheus's
/// example configuration and of most installations).
pub(crate) const ASSUMED_INTERVAL: Duration = Duration::from_secs(15);

/// Prometheus's default `scrape_timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time for a scraped sample to become queryable after its scrape ended.
const INGEST_SLACK: Duration = Duration::from_millis(500);

/// Where a [`Sampling`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingSource {
    /// `/api/v1/targets` (`scrapeInterval` of the active targets).
    Targets,
    /// `/api/v1/status/config` (the loaded `scrape_configs`).
    Config,
    /// Prometheus did not say: [`ASSUMED_INTERVAL`].
    Assumed,
}

impl SamplingSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SamplingSource::Targets => "targets",
            SamplingSource::Config => "config",
            SamplingSource::Assumed => "assumed",
        }
    }
}

/// The scrape interval and timeout of the slowest job the queries read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampling {
    pub interval: Duration,
    pub timeout: Duration,
    /// The jobs these values are the maximum over (empty: all targets, or
    /// assumed).
    pub jobs: Vec<String>,
    pub source: SamplingSource,
}

impl Sampling {
    pub(crate) fn assumed() -> Self {
        Sampling {
            interval: ASSUMED_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            jobs: Vec::new(),
            source: SamplingSource::Assumed,
        }
    }

    /// The shortest window that holds two samples of every series: two
    /// scrape intervals (rounded up to whole seconds). A window of one
    /// interval holds a single sample, and `rate` of one sample is nothing.
    pub fn min_window(&self) -> Duration {
        round_up_to_seconds(self.interval * 2)
    }

    /// How long after an instant a sample timestamped before it may still
    /// arrive: a scrape started just before it ends within the scrape
    /// timeout (at most the interval), plus ingestion. Past that, the data
    /// of a window ending at that instant cannot change.
    pub(crate) fn settle(&self) -> Duration {
        self.interval + self.timeout.min(self.interval) + INGEST_SLACK
    }
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scrape interval {} s (timeout {} s, from {}",
            self.interval.as_secs_f64(),
            self.timeout.as_secs_f64(),
            self.source.as_str()
        )?;
        if !self.jobs.is_empty() {
            write!(f, ", jobs {}", self.jobs.join(", "))?;
        }
        write!(
            f,
            "): query windows at least {} s",
            self.min_window().as_secs_f64()
        )
    }
}

fn round_up_to_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// A Prometheus duration (`15s`, `1m30s`, `500ms`, `1d`) as a [`Duration`].
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 7] = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // `ms` before `m`: the longest unit that matches.
        let (unit, ms) = UNITS
            .iter()
            .filter(|(unit, _)| rest.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())?;
        total_ms = total_ms.checked_add(value.checked_mul(*ms)?)?;
        rest = &rest[unit.len()..];
    }
    Some(Duration::from_millis(total_ms))
}

/// Words that are followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Other PromQL words that are never metric names.
const KEYWORDS: [&str; 6] = ["and", "or", "unless", "bool", "offset", "atan2"];

/// The metric names a PromQL template reads: identifiers outside label
/// matchers (`{...}`), ranges (`[...]`) and strings that are not
/// functions, aggregations or keywords. Placeholders (`{time_span}`) sit
/// inside brackets or braces and are skipped with them.
pub(crate) fn metric_names(template: &str) -> Vec<String> {
    let chars: Vec<char> = template.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_group(&chars, i, '{', '}'),
            '[' => i = skip_group(&chars, i, '[', ']'),
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations (`5m`, `1e3`).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let followed_by = chars.get(next).copied();
                // `sum by (job) (...)`: an aggregation before its grouping.
                let next_word: String = chars[next..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                let grouped = matches!(next_word.as_str(), "by" | "without");
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    if followed_by == Some('(') {
                        i = skip_group(&chars, next, '(', ')');
                    }
                } else if followed_by == Some('(') || grouped || KEYWORDS.contains(&word.as_str()) {
                    // A function or aggregation, or an operator word.
                } else if !names.contains(&word) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Index after the string starting at `start` (escapes honoured).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Index after the group opened at `start` (nesting and strings honoured).
fn skip_group(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// Interval and timeout per job.
pub(crate) type JobSampling = BTreeMap<String, (Duration, Duration)>;

/// Per-job values from a `/api/v1/targets` `data` object (the slowest
/// target of each job). Targets without `scrapeInterval` (Prometheus
/// before 2.3x) are left out.
pub(crate) fn from_targets(data: &Value) -> JobSampling {
    let mut jobs = JobSampling::new();
    let targets = data
        .get("activeTargets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for target in targets {
        let text = |key: &str| target.get(key).and_then(Value::as_str);
        let job = target
            .get("labels")
            .and_then(|l| l.get("job"))
            .and_then(Value::as_str)
            .or_else(|| text("scrapePool"));
        let (Some(job), Some(interval)) = (job, text("scrapeInterval").and_then(parse_duration))
        else {
            continue;
        };
        let timeout = text("scrapeTimeout")
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_TIMEOUT);
        let entry = jobs.entry(job.to_string()).or_insert((interval, timeout));
        entry.0 = entry.0.max(interval);
        entry.1 = entry.1.max(timeout);
    }
    jobs
}

#[derive(Debug, Default, Deserialize)]
struct PromConfig {
    #[serde(default)]
    global: GlobalConfig,
    #[serde(default)]
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct GlobalConfig {
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ScrapeConfig {
    job_name: String,
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
}

/// Per-job values from the YAML of `/api/v1/status/config` (a job's own
/// values, else the global ones, else Prometheus's defaults of 1m / 10s).
pub(crate) fn from_config(yaml: &str) -> Result<JobSampling, String> {
    let config: PromConfig = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
    let parse = |text: &Option<String>, what: &str| -> Result<Option<Duration>, String> {
        text.as_deref()
            .map(|t| parse_duration(t).ok_or_else(|| format!("{what} {t:?} is not a duration")))
            .transpose()
    };
    let global_interval = parse(&config.global.scrape_interval, "scrape_interval")?
        .unwrap_or(Duration::from_secs(60));
    let global_timeout =
        parse(&config.global.scrape_timeout, "scrape_timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    let mut jobs = JobSampling::new();
    for job in &config.scrape_configs {
        let interval = parse(&job.scrape_interval, "scrape_interval")?.unwrap_or(global_interval);
        let timeout = parse(&job.scrape_timeout, "scrape_timeout")?.unwrap_or(global_timeout);
        jobs.insert(job.job_name.clone(), (interval, timeout));
    }
    Ok(jobs)
}

/// The slowest of the `queried` jobs; of every job when none of them is
/// known. `None` when `known` is empty.
pub(crate) fn choose(
    queried: &BTreeSet<String>,
    known: &JobSampling,
    source: SamplingSource,
) -> Option<Sampling> {
    let matching: Vec<_> = known
        .iter()
        .filter(|(job, _)| queried.contains(*job))
        .collect();
    let (jobs, chosen): (Vec<String>, Vec<_>) = if matching.is_empty() {
        (Vec::new(), known.iter().collect())
    } else {
        (
            matching.iter().map(|(j, _)| j.to_string()).collect(),
            matching,
        )
    };
    let interval = chosen.iter().map(|(_, (i, _))| *i).max()?;
    let timeout = chosen.iter().map(|(_, (_, t))| *t).max()?;
    Some(Sampling {
        interval,
        timeout,
        jobs,
        source,
    })
}

/// The `job` labels of a `count by (job) (...)` answer.
fn jobs_of(data: &Value) -> BTreeSet<String> {
    data.get("result")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|series| series.get("metric")?.get("job")?.as_str())
        .map(str::to_string)
        .collect()
}

/// Asks Prometheus for the sampling of the series named in `templates`.
/// Never fails: what cannot be learnt is assumed, with a warning. Only a
/// stop ends it early (`Err(Interrupted)`).
pub async fn discover(
    client: &PrometheusClient,
    templates: &[&str],
    deadlines: Deadlines,
) -> Result<Measured<Sampling>, PrometheusError> {
    let mut warnings = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for template in templates {
        for name in metric_names(template) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut queried = BTreeSet::new();
    if !names.is_empty() {
        let query = format!("count by (job) ({{__name__=~\"{}\"}})", names.join("|"));
        let params = [("query", query)];
        match client
            .retry(deadlines, || client.try_api("/api/v1/query", &params))
            .await
        {
            Ok(data) => queried = jobs_of(&data),
            Err(PrometheusError::Interrupted) => return Err(PrometheusError::Interrupted),
            Err(e) => warnings.push(format!(
                "cannot tell which scrape jobs the queries read ({e}); using every target's scrape interval"
            )),
        }
    }
    let active = [("state", "active".to_string())];
    let from_api = match client
        .retry(deadlines, || client.try_api("/api/v1/targets", &active))
        .await
    {
        Ok(data) => Some(from_targets(&data)).filter(|jobs| !jobs.is_empty()),
        Err(PrometheusError::Interrupted) => return Err(PrometheusError::Interrupted),
        Err(e) => {
            warnings.push(format!("cannot read Prometheus's targets: {e}"));
            None
        }
    };
    let sampling = match from_api.and_then(|jobs| choose(&queried, &jobs, SamplingSource::Targets))
    {
        Some(sampling) => Some(sampling),
        None => match client
            .retry(deadlines, || client.try_api("/api/v1/status/config", &[]))
            .await
        {
            Ok(data) => match data.get("yaml").and_then(Value::as_str).map(from_config) {
                Some(Ok(jobs)) => choose(&queried, &jobs, SamplingSource::Config),
                Some(Err(reason)) => {
                    warnings.push(format!("cannot read Prometheus's configuration: {reason}"));
                    None
                }
                None => {
                    warnings.push("Prometheus's configuration has no yaml".to_string());
                    None
                }
            },
            Err(PrometheusError::Interrupted) => return Err(PrometheusError::Interrupted),
            Err(e) => {
                warnings.push(format!("cannot read Prometheus's configuration: {e}"));
                None
            }
        },
    };
    let sampling = sampling.unwrap_or_else(|| {
        let assumed = Sampling::assumed();
        warnings.push(format!(
            "Prometheus did not tell its scrape interval: assuming {} s, so query windows are at least {} s",
            assumed.interval.as_secs(),
            assumed.min_window().as_secs()
        ));
        assumed
    });
    Ok(Measured {
        value: sampling,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_in_prometheus_syntax() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration("1s"), Some(s(1)));
        assert_eq!(parse_duration("15s"), Some(s(15)));
        assert_eq!(parse_duration("1m30s"), Some(s(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Some(s(3600)));
        assert_eq!(parse_duration("1d"), Some(s(86_400)));
        for bad in ["", "s", "1", "1x", "-1s", "1.5s", "ms"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn metric_names_of_the_bundled_queries() {
        let set = crate::metrics::queries::QuerySet::bundled(true).unwrap();
        let mut all = Vec::new();
        for name in set.names() {
            all.extend(metric_names(&set.get(name).unwrap().query));
        }
        all.sort();
        all.dedup();
        assert_eq!(
            all,
            [
                "container_cpu_usage_seconds_total",
                "container_memory_usage_bytes",
                "node_cpu_seconds_total",
                "node_memory_Buffers_bytes",
                "node_memory_Cached_bytes",
                "node_memory_MemAvailable_bytes",
                "node_memory_MemFree_bytes",
                "node_memory_MemTotal_bytes",
                "scaph_host_power_microwatts",
                "scaph_process_power_consumption_microwatts",
            ]
        );
    }

    #[test]
    fn metric_names_skip_functions_labels_and_keywords() {
        assert_eq!(
            metric_names(
                r#"sum by (job, instance) (rate(http_total{code=~"5.."}[5m])) / ignoring(code) group_left sum(up offset 1m) and on() vector(1)"#
            ),
            ["http_total", "up"]
        );
        assert_eq!(
            metric_names("instance:node_cpu:rate5m > bool 0.5 * 1e3"),
            ["instance:node_cpu:rate5m"]
        );
        assert_eq!(
            metric_names(r#"x{a="}{[", b='"'} + y [1m:] - 'z'"#),
            ["x", "y"]
        );
        assert!(metric_names("time() - 3").is_empty());
    }

    #[test]
    fn targets_give_the_slowest_per_job() {
        let data = json!({"activeTargets": [
            {"labels": {"job": "node"}, "scrapePool": "node", "scrapeInterval": "1s", "scrapeTimeout": "1s"},
            {"labels": {"job": "gateway"}, "scrapeInterval": "15s", "scrapeTimeout": "10s"},
            {"labels": {"job": "gateway"}, "scrapeInterval": "30s"},
            {"labels": {"job": "old"}},
            {"scrapePool": "pool", "scrapeInterval": "5s", "scrapeTimeout": "2s"}
        ]});
        let jobs = from_targets(&data);
        let s = Duration::from_secs;
        assert_eq!(
            jobs,
            JobSampling::from([
                ("gateway".into(), (s(30), s(10))),
                ("node".into(), (s(1), s(1))),
                ("pool".into(), (s(5), s(2))),
            ])
        );
        assert!(from_targets(&json!({})).is_empty());
    }

    #[test]
    fn config_gives_job_or_global_values() {
        let yaml = "global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n  evaluation_interval: 15s\n\
                    scrape_configs:\n- job_name: node\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                    - job_name: cadvisor\n  honor_labels: true\n";
        let s = Duration::from_secs;
        assert_eq!(
            from_config(yaml).unwrap(),
            JobSampling::from([
                ("cadvisor".into(), (s(15), s(10))),
                ("node".into(), (s(1), s(1))),
            ])
        );
        let bare = from_config("scrape_configs:\n- job_name: a\n").unwrap();
        assert_eq!(bare["a"], (s(60), s(10)));
        assert!(from_config("global:\n  scrape_interval: soon\n").is_err());
    }

    #[test]
    fn the_slowest_queried_job_counts() {
        let s = Duration::from_secs;
        let known = JobSampling::from([
            ("node".into(), (s(1), s(1))),
            ("gateway".into(), (s(2), s(1))),
            ("slow".into(), (s(60), s(10))),
        ]);
        let queried = BTreeSet::from(["node".to_string(), "gateway".to_string()]);
        let chosen = choose(&queried, &known, SamplingSource::Targets).unwrap();
        assert_eq!((chosen.interval, chosen.timeout), (s(2), s(1)));
        assert_eq!(chosen.jobs, ["gateway", "node"]);
        assert_eq!(chosen.min_window(), s(4));
        // Unknown jobs: every target counts.
        let chosen = choose(&BTreeSet::new(), &known, SamplingSource::Config).unwrap();
        assert_eq!(chosen.interval, s(60));
        assert!(chosen.jobs.is_empty());
        assert_eq!(
            choose(&queried, &JobSampling::new(), SamplingSource::Targets),
            None
        );
    }

    #[test]
    fn windows_and_settling() {
        let sampling = |ms: u64, timeout_ms: u64| Sampling {
            interval: Duration::from_millis(ms),
            timeout: Duration::from_millis(timeout_ms),
            jobs: vec![],
            source: SamplingSource::Targets,
        };
        assert_eq!(sampling(1000, 1000).min_window(), Duration::from_secs(2));
        assert_eq!(
            sampling(15_000, 10_000).min_window(),
            Duration::from_secs(30)
        );
        assert_eq!(sampling(1500, 1000).min_window(), Duration::from_secs(3));
        assert_eq!(sampling(1000, 1000).settle(), Duration::from_millis(2500));
        assert_eq!(
            sampling(15_000, 10_000).settle(),
            Duration::from_millis(25_500)
        );
        let text = sampling(1000, 1000).to_string();
        assert_eq!(
            text,
            "scrape interval 1 s (timeout 1 s, from targets): query windows at least 2 s"
        );
    }
}
