//! The k6 script for one configuration, as text (pure).
//!
//! Owns the shape of the generated JavaScript: one `constant-arrival-rate`
//! scenario per function with a rate above 0, per-function custom metrics,
//! the options that make k6 report those metrics (and per-scenario dropped
//! iterations) even when they got no sample, and VU sizing. It must not do
//! I/O: the runner uploads the text, the summary parser reads k6's answer.
//!
//! Injection safety: every value that comes from the configuration (URL,
//! method, body, headers, duration, function name) reaches the script only
//! inside a JSON string literal produced by `serde_json`, with `<`, `>`,
//! `&`, U+2028 and U+2029 additionally escaped. JavaScript identifiers
//! (metric, scenario and exported function names) are derived from
//! validated [`FunctionName`]s only, through [`metric_names`].

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{Config, FunctionName, FunctionSpec, HttpMethod};

/// How long k6 waits for one response before counting the request as
/// failed (k6's own default is 60 s; 30 s is k6's default gracefulStop, so
/// a run lasts as long as it would with k6's defaults).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound on the VUs of one scenario. k6 needs about 130 kB per VU for
/// this script (measured with k6 1.1: 1000 VUs ≈ 130 MB more than 10 VUs),
/// so one scenario at the ceiling costs ≈ 650 MB on the k6 host. Iterations
/// k6 drops because the ceiling is reached count as failures, which is what
/// an overloaded function deserves anyway.
pub(crate) const MAX_VUS: u64 = 5000;

/// Iteration time the pre-allocated VU pool covers at the full rate.
///
/// Little's law: VUs busy = rate × iteration time, and an iteration lasts
/// as long as its request. k6 starts at most one extra VU at a time
/// mid-test and drops the arrival that found none free, so every VU added
/// mid-test costs about one dropped iteration (seen with k6 1.1: 10/s
/// against 2 s responses with 10 VUs pre-allocated dropped 6 of 21
/// arrivals while growing to 20). Pre-allocating for 5 s of latency keeps
/// a slow-but-healthy function (DFaaS functions taking a second or more)
/// from being charged k6's own drops, at ≈ 130 kB and ≈ 0.5 ms of start-up
/// per VU (1000 VUs at 200/s). Never more than the request timeout: no
/// iteration outlasts it.
pub(crate) const PREALLOCATED_WINDOW: Duration = Duration::from_secs(5);

/// The statistics k6 reports for every Trend. `count` is there so that
/// means of several runs can be merged exactly (weighted by count).
pub(crate) const SUMMARY_TREND_STATS: [&str; 7] =
    ["avg", "min", "med", "max", "p(90)", "p(95)", "count"];

/// How much longer than the request timeout k6 lets iterations in flight
/// at the end of a scenario finish (`gracefulStop`), so that a request
/// started at the very end still records its response or its timeout
/// (with exactly the timeout, k6 cut such iterations off: seen with 1 s).
pub(crate) const GRACEFUL_STOP_MARGIN: Duration = Duration::from_secs(1);

/// Name of the scenario (and exported function) of an all-idle script.
const IDLE_SCENARIO: &str = "idle";

/// Everything one script depends on.
#[derive(Debug, Clone, Copy)]
pub struct ScriptInput<'a> {
    /// Gateway base URL without trailing slash; requests go to
    /// `<gateway_url>/function/<name>`.
    pub gateway_url: &'a str,
    /// The scenario duration as the user wrote it (`"30s"`), passed to k6.
    pub duration_text: &'a str,
    /// The same duration, parsed.
    pub duration: Duration,
    /// Every configured function, sorted by name. Each function named in
    /// `pairs` is looked up here for its method, body and headers; one
    /// missing from here is loaded with the configuration defaults (GET, no
    /// body, no headers).
    pub functions: &'a [FunctionSpec],
    /// The configuration: (function, requests per second), sorted by name,
    /// names unique (a repeated name is ignored after its first pair).
    pub pairs: &'a [(FunctionName, u64)],
    /// Per-request timeout (see [`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
}

/// The script of one configuration of `config`'s campaign, the
/// (function, rate) `pairs` sorted by name: what `run` sends to k6 and
/// `script` prints.
pub(crate) fn for_campaign(config: &Config, pairs: &[(FunctionName, u64)]) -> String {
    render(&ScriptInput {
        gateway_url: &config.gateway_url,
        duration_text: &config.duration_text,
        duration: config.duration,
        functions: &config.functions,
        pairs,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
    })
}

/// The k6 identifiers of one function, derived from its name alone.
///
/// The name's `-` becomes `_` and its `.` becomes `_D`: function names never
/// contain `_` or upper-case letters, so the mapping is injective (two
/// functions never share an identifier) and the longest metric name stays
/// within k6's 128-character limit. For a name without `.` the metric names
/// are the legacy sampler's (`success_rate_figlet`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricNames {
    /// Counter: iterations that sent a request, answered or not (added
    /// before the request goes out).
    pub requests: String,
    /// Rate: responses with a 2xx status.
    pub success: String,
    /// Trend (ms): `res.timings.duration` of every answered or timed-out
    /// request.
    pub latency: String,
    /// The scenario that loads the function.
    pub scenario: String,
    /// The summary key of the scenario's dropped iterations:
    /// `dropped_iterations{scenario:<scenario>}`.
    pub dropped: String,
    /// The exported function each iteration runs.
    exec: String,
    /// The `const` holding the request's method, URL, body and params.
    target: String,
}

/// The k6 identifiers for `name` (see [`MetricNames`]).
pub fn metric_names(name: &FunctionName) -> MetricNames {
    let mut id = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            '-' => id.push('_'),
            '.' => id.push_str("_D"),
            other => id.push(other),
        }
    }
    let scenario = format!("fn_{id}");
    MetricNames {
        requests: format!("request_count_{id}"),
        success: format!("success_rate_{id}"),
        latency: format!("latency_{id}"),
        dropped: format!("dropped_iterations{{scenario:{scenario}}}"),
        scenario,
        exec: format!("exec_{id}"),
        target: format!("target_{id}"),
    }
}

/// VUs k6 allocates before the scenario starts:
/// `clamp(ceil(rate × min(PREALLOCATED_WINDOW, request_timeout)), 1,
/// MAX_VUS)`.
pub(crate) fn preallocated_vus(rate: u64, request_timeout: Duration) -> u64 {
    vus_for(rate, PREALLOCATED_WINDOW.min(request_timeout))
}

/// The most VUs k6 may use: `clamp(ceil(rate × request_timeout), 1,
/// MAX_VUS)`, never fewer than [`preallocated_vus`]. An iteration lasts no
/// longer than its request (plus the instant it takes to record the
/// answer), so about rate × timeout iterations are in flight at most:
/// below the ceiling, iterations are dropped for lack of VUs only while k6
/// grows the pool beyond the pre-allocated VUs, or, for a function whose
/// every request times out, when an iteration outlasts the timeout by that
/// instant — failures either way.
pub(crate) fn max_vus(rate: u64, request_timeout: Duration) -> u64 {
    vus_for(rate, request_timeout).max(preallocated_vus(rate, request_timeout))
}

fn vus_for(rate: u64, window: Duration) -> u64 {
    let nanos = u128::from(rate).saturating_mul(window.as_nanos());
    let vus = nanos.div_ceil(1_000_000_000);
    u64::try_from(vus).unwrap_or(MAX_VUS).clamp(1, MAX_VUS)
}

/// The k6 script for `input`.
///
/// Every function in `pairs` gets its three metrics declared and listed in
/// `thresholds` with an empty list (which fails nothing but makes k6 report
/// the metric even without samples); each one with a rate above 0 also gets
/// a scenario whose dropped iterations are reported the same way. When all
/// rates are 0 the script idles one VU for the duration instead.
pub fn render(input: &ScriptInput<'_>) -> String {
    let loads = loads(input);
    let active: Vec<&Load<'_>> = loads.iter().filter(|load| load.rate > 0).collect();
    let request_timeout = input.request_timeout.max(Duration::from_millis(1));
    let timeout = k6_duration(request_timeout);
    let graceful_stop = k6_duration(request_timeout.saturating_add(GRACEFUL_STOP_MARGIN));
    let mut js = Js::default();

    js.line(
        0,
        "// k6 script generated by lb-dfaas for one DFaaS configuration:",
    );
    for load in &loads {
        let what = if load.rate > 0 {
            format!("{} requests/s", load.rate)
        } else {
            "idle (rate 0)".to_string()
        };
        js.line(0, format!("//   {}: {what}", load.name));
    }
    if active.is_empty() {
        js.line(0, "import { sleep } from \"k6\";");
    } else {
        js.line(0, "import http from \"k6/http\";");
    }
    js.line(0, "import { Counter, Rate, Trend } from \"k6/metrics\";");

    for load in &loads {
        js.blank();
        render_metrics(&mut js, load);
        if load.rate > 0 {
            js.blank();
            render_exec(&mut js, load, input.gateway_url, &timeout);
        }
    }
    if active.is_empty() {
        js.blank();
        js.line(0, format!("export function {IDLE_SCENARIO}() {{"));
        let step_s = input.duration.min(Duration::from_secs(1)).as_secs_f64();
        js.line(1, format!("sleep({step_s});"));
        js.line(0, "}");
    }

    js.blank();
    js.line(0, "export const options = {");
    js.line(1, "discardResponseBodies: true,");
    js.line(1, "noConnectionReuse: false,");
    let stats: Vec<String> = SUMMARY_TREND_STATS.iter().map(|s| js_string(s)).collect();
    js.line(1, format!("summaryTrendStats: [{}],", stats.join(", ")));
    js.line(
        1,
        "// Empty lists fail nothing: they make k6 report these metrics even without samples.",
    );
    js.line(1, "thresholds: {");
    for load in &loads {
        for metric in [&load.ids.requests, &load.ids.success, &load.ids.latency] {
            js.line(2, format!("{}: [],", js_string(metric)));
        }
        if load.rate > 0 {
            js.line(2, format!("{}: [],", js_string(&load.ids.dropped)));
        }
    }
    js.line(1, "},");
    js.line(1, "scenarios: {");
    let duration = js_string(input.duration_text);
    for load in &active {
        js.line(2, format!("{}: {{", load.ids.scenario));
        js.line(3, "executor: \"constant-arrival-rate\",");
        js.line(3, format!("rate: {},", load.rate));
        js.line(3, "timeUnit: \"1s\",");
        js.line(3, format!("duration: {duration},"));
        js.line(
            3,
            format!(
                "preAllocatedVUs: {},",
                preallocated_vus(load.rate, input.request_timeout)
            ),
        );
        js.line(
            3,
            format!("maxVUs: {},", max_vus(load.rate, input.request_timeout)),
        );
        js.line(3, format!("gracefulStop: {},", js_string(&graceful_stop)));
        js.line(3, format!("exec: {},", js_string(&load.ids.exec)));
        js.line(
            3,
            format!("tags: {{ function: {} }},", js_string(load.name.as_str())),
        );
        js.line(2, "},");
    }
    if active.is_empty() {
        js.line(2, format!("{IDLE_SCENARIO}: {{"));
        js.line(3, "executor: \"constant-vus\",");
        js.line(3, "vus: 1,");
        js.line(3, format!("duration: {duration},"));
        js.line(3, "gracefulStop: \"0s\",");
        js.line(3, format!("exec: {},", js_string(IDLE_SCENARIO)));
        js.line(2, "},");
    }
    js.line(1, "},");
    js.line(0, "};");
    js.out
}

/// One function of the configuration with what the script needs of it.
struct Load<'a> {
    name: &'a FunctionName,
    rate: u64,
    method: HttpMethod,
    body: &'a str,
    headers: Map<String, Value>,
    ids: MetricNames,
}

fn loads<'a>(input: &ScriptInput<'a>) -> Vec<Load<'a>> {
    let mut loads: Vec<Load<'a>> = Vec::with_capacity(input.pairs.len());
    for (name, rate) in input.pairs {
        if loads.iter().any(|load| load.name == name) {
            continue;
        }
        let spec = input.functions.iter().find(|spec| &spec.name == name);
        let headers = spec
            .map(|spec| {
                spec.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        loads.push(Load {
            name,
            rate: *rate,
            method: spec.map_or(HttpMethod::Get, |spec| spec.method),
            body: spec.map_or("", |spec| spec.body.as_str()),
            headers,
            ids: metric_names(name),
        });
    }
    loads
}

fn render_metrics(js: &mut Js, load: &Load<'_>) {
    let ids = &load.ids;
    js.line(
        0,
        format!(
            "const {} = new Counter({});",
            ids.requests,
            js_string(&ids.requests)
        ),
    );
    js.line(
        0,
        format!(
            "const {} = new Rate({});",
            ids.success,
            js_string(&ids.success)
        ),
    );
    js.line(
        0,
        format!(
            "const {} = new Trend({}, true);",
            ids.latency,
            js_string(&ids.latency)
        ),
    );
}

fn render_exec(js: &mut Js, load: &Load<'_>, gateway_url: &str, timeout: &str) {
    let ids = &load.ids;
    let url = format!("{gateway_url}/function/{}", load.name);
    let body = if load.body.is_empty() {
        "null".to_string()
    } else {
        js_string(load.body)
    };
    js.line(0, format!("const {} = {{", ids.target));
    js.line(1, format!("method: {},", js_string(load.method.as_str())));
    js.line(1, format!("url: {},", js_string(&url)));
    js.line(1, format!("body: {body},"));
    js.line(1, "params: {");
    js.line(
        2,
        format!(
            "headers: {},",
            js_json(&Value::Object(load.headers.clone()))
        ),
    );
    js.line(2, format!("timeout: {},", js_string(timeout)));
    js.line(1, "},");
    js.line(0, "};");
    js.blank();
    js.line(0, format!("export function {}() {{", ids.exec));
    js.line(1, format!("{}.add(1);", ids.requests));
    let t = &ids.target;
    js.line(
        1,
        format!("const res = http.request({t}.method, {t}.url, {t}.body, {t}.params);"),
    );
    js.line(
        1,
        format!(
            "{}.add(res.status >= 200 && res.status < 300);",
            ids.success
        ),
    );
    js.line(1, format!("{}.add(res.timings.duration);", ids.latency));
    js.line(0, "}");
}

/// A duration as k6 reads it: whole seconds as `"30s"`, anything finer in
/// milliseconds.
fn k6_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis().max(1))
    }
}

/// `value` as a JavaScript string literal (see [`js_json`]).
fn js_string(value: &str) -> String {
    js_json(&Value::String(value.to_string()))
}

/// `value` as JSON that is also a safe JavaScript expression inside any
/// script text: on top of JSON's own escaping, `<`, `>`, `&`, U+2028 and
/// U+2029 become `\uXXXX` escapes, so neither `</script>`-like text nor a
/// line separator can end a literal early. Those characters only ever
/// occur inside JSON strings, where `\uXXXX` means the same character.
fn js_json(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out
}

/// Script text under construction, two spaces per indent level.
#[derive(Default)]
struct Js {
    out: String,
}

impl Js {
    fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn name(raw: &str) -> FunctionName {
        FunctionName::parse(raw).unwrap()
    }

    fn get(raw: &str) -> FunctionSpec {
        FunctionSpec {
            name: name(raw),
            method: HttpMethod::Get,
            body: String::new(),
            headers: BTreeMap::new(),
            max_rate: None,
        }
    }

    fn pairs(list: &[(&str, u64)]) -> Vec<(FunctionName, u64)> {
        list.iter().map(|(n, r)| (name(n), *r)).collect()
    }

    fn script(functions: &[FunctionSpec], pairs: &[(FunctionName, u64)]) -> String {
        render(&ScriptInput {
            gateway_url: "http://10.0.0.5:31112",
            duration_text: "30s",
            duration: Duration::from_secs(30),
            functions,
            pairs,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    #[test]
    fn snapshot_one_function() {
        let functions = [get("figlet")];
        insta::assert_snapshot!(script(&functions, &pairs(&[("figlet", 10)])));
    }

    #[test]
    fn snapshot_two_functions() {
        let functions = [get("env"), get("figlet")];
        insta::assert_snapshot!(script(&functions, &pairs(&[("env", 50), ("figlet", 200)])));
    }

    #[test]
    fn snapshot_rate_zero_beside_nonzero() {
        let functions = [get("cows-2"), get("env"), get("figlet")];
        insta::assert_snapshot!(script(&functions, &pairs(&[("env", 0), ("figlet", 20)])));
    }

    #[test]
    fn snapshot_all_rates_zero() {
        let functions = [get("env"), get("figlet")];
        insta::assert_snapshot!(script(&functions, &pairs(&[("env", 0), ("figlet", 0)])));
    }

    #[test]
    fn snapshot_post_with_headers_and_tricky_body() {
        let mut echo = get("echo.openfaas-fn");
        echo.method = HttpMethod::Post;
        echo.body = TRICKY_BODY.to_string();
        echo.headers = BTreeMap::from([
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                "X-Note".to_string(),
                "a \"quoted\" </script> & more".to_string(),
            ),
        ]);
        let functions = [echo];
        insta::assert_snapshot!(script(&functions, &pairs(&[("echo.openfaas-fn", 5)])));
    }

    /// Quotes, backslashes, newlines, a closing script tag, template text,
    /// line/paragraph separators and non-ASCII text.
    const TRICKY_BODY: &str = "{\"q\": \"it's \\\"x\\\"\", \"path\": \"C:\\\\tmp\"}\n</script><script>alert(1)</script>\r\n${globalThis.x} `tick` \u{2028}\u{2029} ünïcödé ☃ 𝄞 \u{0}";

    #[test]
    fn js_json_escapes_what_could_end_a_literal() {
        let cases = [
            ("plain", "\"plain\""),
            ("a\"b", "\"a\\\"b\""),
            ("a\\b", "\"a\\\\b\""),
            ("a\nb", "\"a\\nb\""),
            ("</script>", "\"\\u003c/script\\u003e\""),
            ("a&b", "\"a\\u0026b\""),
            ("\u{2028}\u{2029}", "\"\\u2028\\u2029\""),
            ("${x}", "\"${x}\""),
            ("ü", "\"ü\""),
        ];
        for (raw, want) in cases {
            assert_eq!(js_string(raw), want, "{raw:?}");
        }
        // Whatever the escaping, the literal still means the original text.
        let literal = js_string(TRICKY_BODY);
        let back: String = serde_json::from_str(&literal).unwrap();
        assert_eq!(back, TRICKY_BODY);
        for bad in ['<', '>', '&', '\n', '\r', '\u{2028}', '\u{2029}'] {
            assert!(!literal.contains(bad), "{bad:?} left raw in {literal}");
        }
    }

    #[test]
    fn tricky_body_and_headers_reach_the_script_only_escaped() {
        let mut echo = get("echo");
        echo.method = HttpMethod::Post;
        echo.body = TRICKY_BODY.to_string();
        echo.headers = BTreeMap::from([("X-Evil".to_string(), "</script>\u{2028}".to_string())]);
        let text = script(&[echo], &pairs(&[("echo", 1)]));
        assert!(!text.contains("</script>"));
        assert!(!text.contains('\u{2028}'));
        assert!(!text.contains('\u{2029}'));
        assert!(text.contains(&js_string(TRICKY_BODY)));
    }

    #[test]
    fn metric_names_are_injective_and_within_k6_limits() {
        let names = [
            "a-b", "a.b", "a--b", "a-.b", "a.-b", "a..b", "a-d-b", "a-db", "adb", "ad-b", "9lives",
        ];
        let mut seen = BTreeMap::new();
        for raw in names {
            let ids = metric_names(&name(raw));
            if let Some(other) = seen.insert(ids.requests.clone(), raw) {
                panic!("{raw} and {other} share {}", ids.requests);
            }
        }
        // The longest possible identifier: 63 characters, 31 of them dots.
        let worst = name(&"a.".repeat(31).chars().chain(['a']).collect::<String>());
        let ids = metric_names(&worst);
        for metric in [
            &ids.requests,
            &ids.success,
            &ids.latency,
            &ids.scenario,
            &ids.exec,
        ] {
            assert!(metric.len() <= 128, "{metric} is {} long", metric.len());
            assert!(metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
            assert!(metric.starts_with(|c: char| c.is_ascii_alphabetic()));
        }
    }

    #[test]
    fn metric_names_keep_the_legacy_names() {
        let ids = metric_names(&name("cows-2"));
        assert_eq!(ids.requests, "request_count_cows_2");
        assert_eq!(ids.success, "success_rate_cows_2");
        assert_eq!(ids.latency, "latency_cows_2");
        assert_eq!(ids.scenario, "fn_cows_2");
        assert_eq!(ids.dropped, "dropped_iterations{scenario:fn_cows_2}");
        assert_eq!(metric_names(&name("fn.ns")).scenario, "fn_fn_Dns");
    }

    #[test]
    fn vu_sizing() {
        let t30 = Duration::from_secs(30);
        // (rate, timeout, preAllocatedVUs, maxVUs)
        let cases = [
            (1, t30, 5, 30),
            (10, t30, 50, 300),
            (200, t30, 1000, 5000),
            (1500, t30, 5000, 5000),
            (20, Duration::from_millis(500), 10, 10),
            (3, Duration::from_millis(1500), 5, 5),
            (10, Duration::from_secs(2), 20, 20),
            (1, Duration::from_millis(1), 1, 1),
            (u64::MAX, t30, MAX_VUS, MAX_VUS),
            (u64::MAX, Duration::MAX, MAX_VUS, MAX_VUS),
        ];
        for (rate, timeout, pre, max) in cases {
            assert_eq!(
                preallocated_vus(rate, timeout),
                pre,
                "pre for {rate}/s, {timeout:?}"
            );
            assert_eq!(max_vus(rate, timeout), max, "max for {rate}/s, {timeout:?}");
        }
    }

    #[test]
    fn durations_in_k6_syntax() {
        assert_eq!(k6_duration(Duration::from_secs(30)), "30s");
        assert_eq!(k6_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(k6_duration(Duration::from_micros(10)), "1ms");
    }

    #[test]
    fn pair_without_spec_uses_defaults_and_repeats_are_ignored() {
        let text = script(&[], &pairs(&[("ghost", 3), ("ghost", 9)]));
        assert!(text.contains("method: \"GET\","));
        assert!(text.contains("body: null,"));
        assert!(text.contains("rate: 3,"));
        assert!(!text.contains("rate: 9,"));
        assert_eq!(text.matches("const request_count_ghost =").count(), 1);
    }

    #[test]
    fn only_functions_in_the_configuration_appear() {
        let functions = [get("env"), get("figlet")];
        let text = script(&functions, &pairs(&[("figlet", 5)]));
        assert!(!text.contains("request_count_env"));
        assert!(!text.contains("fn_env"));
        assert!(!text.contains("/function/env"));
    }
}
