//! The HTML page: facts, charts (inline SVG), tables and the list of what
//! could not be plotted, in one self-contained document — inline CSS, no
//! script, no external reference, so it opens offline and can be mailed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use plotters::chart::SeriesLabelPosition;

use super::charts::{
    bar_chart, grid_chart, heat, xy_chart, BarChart, CellState, GridChart, NotDrawn, Point, Series,
    Threshold, XyChart, DOMINATED_FILL, FAILED_FILL, PREDICTED_FILL,
};
use super::dataset::{Dataset, Layout};
use super::model::{
    classify_skipped, config_stats, format_utc, iterations_range, pair_grids, rates_seen,
    ConfigStats, SkipReason, SkippedEntry,
};
use super::{ReportSettings, ThresholdSource};
use crate::output::records::{FunctionValues, ResultRecord};
use crate::plan::ConfigKey;

/// The rendered page and what it could not plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub html: String,
    /// One line per chart or section left out, with the reason.
    pub not_plotted: Vec<String>,
    /// How many charts were drawn.
    pub charts: usize,
}

/// `<`, `>`, `&`, `"` and `'` escaped for text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn css_rgb(c: plotters::style::RGBColor) -> String {
    format!("rgb({},{},{})", c.0, c.1, c.2)
}

const STYLE: &str = "
body{font-family:sans-serif;margin:24px auto;max-width:1340px;color:#222;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
.sub{color:#555;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{width:200px;background:#f7f7f7;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;border:1px solid #e4e4e4;padding:4px}
figcaption{font-size:12px;color:#555;max-width:640px;padding:2px 4px}
.notes li{margin:2px 0}.warn{background:#fff6e0;border:1px solid #f0d48a;padding:8px 14px}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;align-items:center;margin:6px 0}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #999;vertical-align:middle;margin-right:4px}
.ramp{display:inline-block;width:160px;height:12px;vertical-align:middle;border:1px solid #999}
.x{color:#d50000;font-weight:bold}
";

struct Builder<'a> {
    html: String,
    not_plotted: Vec<String>,
    charts: usize,
    dataset: &'a Dataset,
    settings: &'a ReportSettings,
}

impl Builder<'_> {
    fn h2(&mut self, text: &str) {
        let _ = writeln!(self.html, "<h2>{}</h2>", escape(text));
    }

    fn p(&mut self, text: &str) {
        let _ = writeln!(self.html, "<p>{}</p>", escape(text));
    }

    /// A drawn chart, or a line in "could not plot".
    fn figure(&mut self, what: &str, drawn: Result<String, NotDrawn>, caption: &str) {
        match drawn {
            Ok(svg) => {
                self.charts += 1;
                let _ = writeln!(
                    self.html,
                    "<figure>{svg}<figcaption>{}</figcaption></figure>",
                    escape(caption)
                );
            }
            Err(NotDrawn(reason)) => self.not_plotted.push(format!("{what}: {reason}")),
        }
    }

    fn table(&mut self, class: &str, header: &[&str], rows: &[Vec<(String, bool)>]) {
        let _ = write!(self.html, "<table class=\"{class}\">");
        if header.iter().any(|h| !h.is_empty()) {
            self.html.push_str("<tr>");
            for h in header {
                let _ = write!(self.html, "<th>{}</th>", escape(h));
            }
            self.html.push_str("</tr>\n");
        }
        for row in rows {
            self.html.push_str("<tr>");
            for (cell, numeric) in row {
                let class = if *numeric { " class=\"num\"" } else { "" };
                let _ = write!(self.html, "<td{class}>{}</td>", escape(cell));
            }
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</table>\n");
    }
}

fn text(s: impl Into<String>) -> (String, bool) {
    (s.into(), false)
}

fn num(s: impl ToString) -> (String, bool) {
    (s.to_string(), true)
}

/// Renders the report of `dataset`.
pub fn render(dataset: &Dataset, settings: &ReportSettings) -> Page {
    let mut b = Builder {
        html: String::new(),
        not_plotted: Vec::new(),
        charts: 0,
        dataset,
        settings,
    };
    let stats = config_stats(&dataset.rows);
    let overloaded: Vec<&ConfigKey> = stats
        .iter()
        .filter(|(_, s)| s.overloaded())
        .map(|(k, _)| k)
        .collect();
    let indexed: HashSet<&ConfigKey> = dataset.index.iter().map(|r| &r.key).collect();
    let skipped = classify_skipped(&dataset.skipped, &overloaded, &indexed);

    let title = format!("DFaaS campaign report: {}", dataset.dir.display());
    let _ = write!(
        b.html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(
        b.html,
        "<h1>DFaaS campaign report</h1><p class=\"sub\">{}</p>",
        escape(&dataset.dir.display().to_string())
    );
    facts(&mut b, &stats, &skipped);
    // Placeholder for the notes, filled once every section has run.
    let notes_at = b.html.len();

    pairs(&mut b, &stats, &skipped);
    node(&mut b);
    per_function(&mut b, &stats);
    cooldown(&mut b);
    skipped_table(&mut b, &skipped);
    method(&mut b);
    b.html.push_str("</body></html>\n");

    let notes = notes_html(&b);
    b.html.insert_str(notes_at, &notes);
    Page {
        html: b.html,
        not_plotted: b.not_plotted,
        charts: b.charts,
    }
}

fn facts(b: &mut Builder<'_>, stats: &BTreeMap<ConfigKey, ConfigStats>, skipped: &[SkippedEntry]) {
    let d = b.dataset;
    let s = b.settings;
    b.h2("Campaign");
    let mut rows: Vec<Vec<(String, bool)>> = Vec::new();
    let mut fact = |name: &str, value: String| rows.push(vec![text(name), text(value)]);
    fact(
        "functions",
        if d.functions.is_empty() {
            "none".to_string()
        } else {
            d.functions.join(", ")
        },
    );
    let seen = rates_seen(d);
    let rates = match &s.config {
        Some(config) => format!(
            "{} req/s (from the config)",
            join(config.rates.iter().map(u64::to_string))
        ),
        None => {
            let all: BTreeSet<u64> = seen.values().flatten().copied().collect();
            format!(
                "{} req/s (seen in the dataset)",
                join(all.iter().map(u64::to_string))
            )
        }
    };
    fact("rates", rates);
    let overloaded = stats.values().filter(|s| s.overloaded()).count();
    let dominated = skipped
        .iter()
        .filter(|e| matches!(e.reason, SkipReason::Dominated { .. }))
        .count();
    let predicted = skipped
        .iter()
        .filter(|e| matches!(e.reason, SkipReason::Predicted { .. }))
        .count();
    let predicted = if predicted > 0 {
        format!("{predicted} predicted overloaded, ")
    } else {
        String::new()
    };
    fact(
        "configurations",
        format!(
            "{} measured in {} rows ({} overloaded), {} skipped ({} dominated, {predicted}{} failed or skipped otherwise), {} in index.csv",
            stats.len(),
            d.rows.len(),
            overloaded,
            skipped.len(),
            dominated,
            skipped
                .iter()
                .filter(|e| matches!(e.reason, SkipReason::FailedOrOther | SkipReason::CompletedLater))
                .count(),
            d.index.len()
        ),
    );
    let by_size = {
        let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
        for key in stats.keys() {
            *sizes.entry(key.functions().len()).or_default() += 1;
        }
        join(
            sizes
                .iter()
                .map(|(k, n)| format!("{n} of {k} function{}", if *k == 1 { "" } else { "s" })),
        )
    };
    if !by_size.is_empty() {
        fact("measured by size", by_size);
    }
    let iterations = match (iterations_range(stats), &s.config) {
        (Some((lo, hi)), config) => {
            let rows = if lo == hi {
                format!(
                    "{lo} row{} per configuration",
                    if lo == 1 { "" } else { "s" }
                )
            } else {
                format!("{lo} to {hi} rows per configuration")
            };
            match config {
                Some(c) => format!("{} per configuration (config); {rows}", c.iterations),
                None => rows,
            }
        }
        (None, Some(c)) => format!("{} per configuration (config); no rows", c.iterations),
        (None, None) => "no rows".to_string(),
    };
    fact("iterations", iterations);
    let reps: BTreeSet<Option<u32>> = d
        .artifacts
        .metrics
        .iter()
        .chain(&d.artifacts.summaries)
        .map(|a| a.repetition)
        .collect();
    if !reps.is_empty() {
        fact(
            "repetitions",
            join(
                reps.iter()
                    .map(|r| r.map_or("none".to_string(), |r| r.to_string())),
            ) + " (from the artifact names)",
        );
    }
    let duration = if let Some(c) = &s.config {
        format!("{} (from the config)", c.duration_text)
    } else if !d.artifacts.script_durations.is_empty() {
        format!(
            "{} (from k6_scripts/)",
            join(d.artifacts.script_durations.iter().cloned())
        )
    } else if let Some(first) = d.legacy_names.first() {
        format!("{} (from the results file names)", first.duration)
    } else {
        "unknown: no config given, no k6 script in the directory".to_string()
    };
    fact("k6 duration per iteration", duration);
    let (start, end) = campaign_times(d);
    fact("start", start);
    fact("end", end);
    let files = join(
        d.results_files
            .iter()
            .map(|f| format!("{} ({} rows)", f.name, f.rows)),
    );
    fact(
        "files read",
        format!(
            "{}{}{}",
            if files.is_empty() {
                "no results file".to_string()
            } else {
                files
            },
            if d.skipped_files.is_empty() {
                String::new()
            } else {
                format!("; {}", d.skipped_files.join(", "))
            },
            if d.has_index { "; index.csv" } else { "" }
        ),
    );
    fact(
        "layout",
        match d.layout {
            Layout::Campaign => "campaign (results.csv, skipped.csv, index.csv)".to_string(),
            Layout::Legacy => {
                "legacy sampler (one results file per function combination)".to_string()
            }
        },
    );
    fact(
        "artifacts",
        format!(
            "{} metrics files, {} k6 summaries, {} k6 scripts",
            d.artifacts.metrics.len(),
            d.artifacts.summaries.len(),
            d.artifacts.scripts
        ),
    );
    fact(
        "report by",
        format!(
            "lb-dfaas {} (the dataset does not record which version wrote it)",
            env!("CARGO_PKG_VERSION")
        ),
    );
    b.table("facts", &["", ""], &rows);
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn unix_s(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// `2025-11-03_09-14-52` (a legacy file name's start) as `2025-11-03 09:14:52`.
fn legacy_time(started: &str) -> String {
    match started.split_once('_') {
        Some((date, time)) => format!("{date} {}", time.replace('-', ":")),
        None => started.to_string(),
    }
}

/// Start and end with where they come from: the legacy file names carry
/// the start; otherwise the artifacts' modification times.
fn campaign_times(d: &Dataset) -> (String, String) {
    let artifact = |t: Option<SystemTime>| t.and_then(unix_s).map(format_utc);
    let first = artifact(d.artifacts.first_modified);
    let last = artifact(d.artifacts.last_modified);
    let start = match (d.legacy_names.first(), &first) {
        (Some(l), _) => format!(
            "{} (local time of the sampler, from the first results file name)",
            legacy_time(&l.started)
        ),
        (None, Some(t)) => format!("{t} (first per-iteration artifact written)"),
        (None, None) => "unknown: the CSVs hold no time and there is no artifact".to_string(),
    };
    let end = match &last {
        Some(t) => format!("{t} (last per-iteration artifact written)"),
        None => match d.legacy_names.last() {
            Some(l) => format!(
                "after {} (start of the last results file; the CSVs hold no end time)",
                legacy_time(&l.started)
            ),
            None => "unknown: the CSVs hold no time and there is no artifact".to_string(),
        },
    };
    (start, end)
}

/// The configurations of `function` alone, one point per row.
fn alone_points(
    d: &Dataset,
    stats: &BTreeMap<ConfigKey, ConfigStats>,
    function: &str,
    value: impl Fn(&FunctionValues) -> f64,
) -> Vec<Point> {
    stats
        .iter()
        .filter(|(k, _)| k.functions().len() == 1 && k.functions()[0] == function)
        .flat_map(|(_, s)| s.rows.iter().filter_map(|&i| d.rows.get(i)))
        .filter_map(|row| {
            row.function(function).map(|f| Point {
                x: f.rate as f64,
                y: value(f),
                overloaded: row.node.overloaded,
            })
        })
        .collect()
}

fn non_finite_note(points: &[Point]) -> String {
    let left_out = points.iter().filter(|p| !p.y.is_finite()).count();
    if left_out == 0 {
        String::new()
    } else {
        format!(" {left_out} non-finite values (nan/inf: not measured) left out.")
    }
}

fn per_function(b: &mut Builder<'_>, stats: &BTreeMap<ConfigKey, ConfigStats>) {
    let d = b.dataset;
    let o = b.settings.overload;
    b.h2("Each function alone");
    b.p("One point per iteration of a configuration that loads only this function, the line joins the means per rate; red crosses mark iterations that overloaded the node.");
    for function in &d.functions {
        let _ = writeln!(b.html, "<h3>{}</h3>", escape(function));
        let has_alone = stats
            .keys()
            .any(|k| k.functions().len() == 1 && k.functions()[0] == *function);
        if !has_alone {
            b.not_plotted.push(format!(
                "{function} alone: the dataset has no configuration loading {function} alone"
            ));
            b.p("No configuration loads this function alone.");
            continue;
        }
        b.html.push_str("<div class=\"charts\">");
        let series = |label: &str, points: Vec<Point>| Series {
            label: label.to_string(),
            points,
            mean_line: true,
        };
        let success = alone_points(d, stats, function, |f| f.success_rate);
        let note = non_finite_note(&success);
        let chart = XyChart {
            title: format!("{function}: success rate"),
            x_label: "request rate (req/s)".into(),
            y_label: "success rate".into(),
            series: vec![series(function, success)],
            thresholds: vec![
                Threshold {
                    y: o.success_rate_function_min,
                    label: format!("function minimum {}", o.success_rate_function_min),
                },
                Threshold {
                    y: o.success_rate_node_min,
                    label: format!("node minimum {}", o.success_rate_node_min),
                },
            ],
            y_from_zero: true,
            legend: SeriesLabelPosition::LowerLeft,
        };
        b.figure(
            &format!("{function} success rate"),
            xy_chart(&chart),
            &format!("2xx responses over the requests due at the configured rate. Below the function minimum the function is overloaded; the node minimum applies to the mean over a configuration's functions.{note}"),
        );
        let latency = alone_points(d, stats, function, |f| f.mean_latency);
        let note = non_finite_note(&latency);
        let unit = match d.layout {
            Layout::Campaign => "mean latency (ms)",
            Layout::Legacy => "mean latency (as recorded)",
        };
        let chart = XyChart {
            title: format!("{function}: mean latency"),
            x_label: "request rate (req/s)".into(),
            y_label: unit.into(),
            series: vec![series(function, latency)],
            thresholds: vec![],
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
        };
        b.figure(
            &format!("{function} mean latency"),
            xy_chart(&chart),
            &format!("medium_latency_function_{function}; no overload threshold applies to latency.{note}"),
        );
        let cpu = alone_points(d, stats, function, |f| f.cpu_usage);
        let note = non_finite_note(&cpu);
        let chart = XyChart {
            title: format!("{function}: function CPU"),
            x_label: "request rate (req/s)".into(),
            y_label: "CPU (% of one core)".into(),
            series: vec![series(function, cpu)],
            thresholds: vec![],
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
        };
        b.figure(
            &format!("{function} function CPU"),
            xy_chart(&chart),
            &format!("cpu_usage_function_{function}, summed over replicas. The CPU threshold is the node's (see Node).{note}"),
        );
        let replicas = alone_points(d, stats, function, |f| f.replicas);
        let note = non_finite_note(&replicas);
        let chart = XyChart {
            title: format!("{function}: replicas"),
            x_label: "request rate (req/s)".into(),
            y_label: "replicas".into(),
            series: vec![series(function, replicas)],
            thresholds: vec![Threshold {
                y: o.replicas_overload_threshold as f64,
                label: format!("overload at {} replicas", o.replicas_overload_threshold),
            }],
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
        };
        b.figure(
            &format!("{function} replicas"),
            xy_chart(&chart),
            &format!("Replicas at the end of the iteration; at the threshold or above the function is overloaded.{note}"),
        );
        b.html.push_str("</div>\n");
    }
}

fn pairs(b: &mut Builder<'_>, stats: &BTreeMap<ConfigKey, ConfigStats>, skipped: &[SkippedEntry]) {
    let d = b.dataset;
    b.h2("Pairs of functions: the overload frontier");
    let seen = rates_seen(d);
    let config = b.settings.config.as_ref();
    let rates_of = |function: &str| -> Vec<u64> {
        let planned = config.and_then(|c| {
            c.functions
                .iter()
                .find(|f| f.name.as_str() == function)
                .map(|f| {
                    c.rates
                        .iter()
                        .copied()
                        .filter(|&r| f.max_rate.map_or(true, |m| r <= m))
                        .collect::<Vec<u64>>()
                })
        });
        let mut rates: BTreeSet<u64> = planned.unwrap_or_default().into_iter().collect();
        rates.extend(seen.get(function).into_iter().flatten());
        rates.into_iter().collect()
    };
    let grids = pair_grids(d, stats, skipped, &rates_of);
    if grids.is_empty() {
        b.not_plotted.push(
            "pair grids: the dataset has no configuration of exactly two functions".to_string(),
        );
        b.p("No configuration of exactly two functions.");
        return;
    }
    let cores = b.settings.cores;
    let scale_max = match cores {
        Some(c) => f64::from(c) * 100.0,
        None => grids
            .iter()
            .flat_map(|g| &g.cells)
            .filter_map(|(_, _, s)| match s {
                CellState::Measured { node_cpu, .. } if node_cpu.is_finite() => Some(*node_cpu),
                _ => None,
            })
            .fold(0.0, f64::max),
    };
    let _ = writeln!(
        b.html,
        "<p>Each cell is a configuration of the pair (one rate per axis), coloured by the mean node CPU over its iterations{}. \
         Rates on the axes: {}.</p>",
        if cores.is_some() { " (scale: the node's capacity)" } else { "" },
        if config.is_some() {
            "the config's rate ladder (with each function's max_rate) and any rate in the dataset"
        } else {
            "those seen in the dataset (pass --config for the whole planned grid)"
        }
    );
    let _ = writeln!(
        b.html,
        "<div class=\"legend\"><span><span class=\"ramp\" style=\"background:linear-gradient(90deg,{},{},{},{})\"></span> node CPU 0 to {} %</span>\
         <span><span class=\"x\">&#10005;</span> overloaded (more than half its iterations)</span>\
         <span><span class=\"sw\" style=\"background:{}\"></span>D: skipped, dominated</span>\
         <span><span class=\"sw\" style=\"background:{}\"></span>F: skipped: failed, or skipped otherwise</span>\
         <span><span class=\"sw\" style=\"background:{}\"></span>P: not measured, predicted overloaded (dominates an overloaded cell, or skipped as predicted_overload)</span>\
         <span><span class=\"sw\" style=\"background:#fff\"></span>empty: not in the dataset</span></div>",
        css_rgb(heat(0.0)),
        css_rgb(heat(0.4)),
        css_rgb(heat(0.7)),
        css_rgb(heat(1.0)),
        scale_max.round(),
        css_rgb(DOMINATED_FILL),
        css_rgb(FAILED_FILL),
        css_rgb(PREDICTED_FILL),
    );
    b.html.push_str("<div class=\"charts\">");
    for grid in &grids {
        let chart = GridChart {
            title: format!("{} x {}", grid.x_function, grid.y_function),
            x_function: grid.x_function.clone(),
            y_function: grid.y_function.clone(),
            x_rates: grid.x_rates.clone(),
            y_rates: grid.y_rates.clone(),
            cells: grid.cells.clone(),
            cpu_scale_max: scale_max,
        };
        b.figure(
            &format!("{} x {} grid", grid.x_function, grid.y_function),
            grid_chart(&chart),
            &format!(
                "{} measured ({} overloaded), {} dominated, {} failed or skipped otherwise, {} predicted.",
                grid.measured, grid.overloaded, grid.dominated, grid.failed, grid.predicted
            ),
        );
    }
    b.html.push_str("</div>\n");
    let larger: usize = stats
        .iter()
        .filter(|(k, _)| k.functions().len() > 2)
        .map(|(_, s)| s.rows.len())
        .sum();
    if larger > 0 {
        b.not_plotted.push(format!(
            "grids of three or more functions: not drawn ({larger} rows); they appear in the node charts"
        ));
    }
}

/// Points of every row against the total request rate, one series per
/// combination size.
fn node_series(d: &Dataset, value: impl Fn(&ResultRecord) -> f64) -> Vec<Series> {
    let mut by_size: BTreeMap<usize, Vec<Point>> = BTreeMap::new();
    for row in &d.rows {
        by_size
            .entry(row.key.functions().len())
            .or_default()
            .push(Point {
                x: row.total_rate() as f64,
                y: value(row),
                overloaded: row.node.overloaded,
            });
    }
    by_size
        .into_iter()
        .map(|(size, points)| Series {
            label: format!("{size} function{}", if size == 1 { "" } else { "s" }),
            points,
            mean_line: false,
        })
        .collect()
}

fn node(b: &mut Builder<'_>) {
    let d = b.dataset;
    let o = b.settings.overload;
    b.h2("Node");
    b.html.push_str("<div class=\"charts\">");
    let cpu = node_series(d, |r| r.node.cpu_usage);
    let all: Vec<Point> = cpu.iter().flat_map(|s| s.points.clone()).collect();
    let note = non_finite_note(&all);
    let (thresholds, cpu_note) = match b.settings.cores {
        Some(cores) => (
            vec![Threshold {
                y: o.cpu_overload_pct_of_capacity * f64::from(cores),
                label: format!(
                    "overload: {} % of {cores} cores",
                    o.cpu_overload_pct_of_capacity
                ),
            }],
            String::new(),
        ),
        None => (
            vec![],
            format!(
                " The CPU threshold is {} % of the node's capacity (cores x 100); the dataset does not record the core count, so no line is drawn (pass --cores N).",
                o.cpu_overload_pct_of_capacity
            ),
        ),
    };
    let chart = XyChart {
        title: "node CPU against the total request rate".into(),
        x_label: "total request rate (req/s)".into(),
        y_label: "node CPU (% of one core)".into(),
        series: cpu,
        thresholds,
        y_from_zero: true,
        legend: SeriesLabelPosition::UpperLeft,
    };
    b.figure(
        "node CPU",
        xy_chart(&chart),
        &format!(
            "cpu_usage_node, averaged over the k6 window; one point per iteration.{cpu_note}{note}"
        ),
    );
    if b.settings.cores.is_none() {
        b.not_plotted.push(format!(
            "node CPU threshold line: {} % of capacity needs the core count, which the dataset does not record (--cores N)",
            o.cpu_overload_pct_of_capacity
        ));
    }
    let ram = node_series(d, |r| r.node.ram_usage_pct);
    let all: Vec<Point> = ram.iter().flat_map(|s| s.points.clone()).collect();
    let note = non_finite_note(&all);
    let chart = XyChart {
        title: "node RAM against the total request rate".into(),
        x_label: "total request rate (req/s)".into(),
        y_label: "node RAM (%)".into(),
        series: ram,
        thresholds: vec![Threshold {
            y: o.ram_overload_pct,
            label: format!("overload above {} %", o.ram_overload_pct),
        }],
        y_from_zero: true,
        legend: SeriesLabelPosition::UpperLeft,
    };
    b.figure(
        "node RAM",
        xy_chart(&chart),
        &format!("ram_usage_node_percentage; one point per iteration.{note}"),
    );
    b.html.push_str("</div>\n");
}

fn cooldown(b: &mut Builder<'_>) {
    let d = b.dataset;
    b.h2("Cooldown");
    let bars: Vec<(u64, f64)> = d
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u64 + 1, r.node.rest_seconds))
        .collect();
    let max_wait = b.settings.cooldown_max_wait_s;
    let chart = BarChart {
        title: "cooldown before each iteration".into(),
        x_label: "iteration, in the order of the results files".into(),
        y_label: "rest (s)".into(),
        bars,
        thresholds: vec![Threshold {
            y: max_wait,
            label: format!("max_wait_seconds {max_wait}"),
        }],
    };
    b.html.push_str("<div class=\"charts\">");
    b.figure(
        "cooldown",
        bar_chart(&chart),
        "rest_seconds: the time waited for the node to return near its idle baseline before the iteration's load started.",
    );
    b.html.push_str("</div>\n");
}

fn skipped_table(b: &mut Builder<'_>, skipped: &[SkippedEntry]) {
    b.h2("Skipped configurations");
    if skipped.is_empty() {
        b.p("None.");
        return;
    }
    let rows: Vec<Vec<(String, bool)>> = skipped
        .iter()
        .map(|e| {
            let detail = match &e.reason {
                SkipReason::Dominated { by } => format!("dominates the overloaded {by}"),
                SkipReason::Predicted { by } => {
                    format!("loads the overloaded {by} at equal or higher rates, and more")
                }
                SkipReason::CompletedLater => "also in index.csv: a later run measured it".into(),
                SkipReason::FailedOrOther => {
                    "dominates no overloaded configuration of the dataset".into()
                }
            };
            vec![
                text(e.key.to_string()),
                num(e.key.rates().iter().sum::<u64>()),
                text(e.reason.label()),
                text(detail),
                num(e.times),
            ]
        })
        .collect();
    b.table(
        "skipped",
        &[
            "configuration (function:rate)",
            "total req/s",
            "reason",
            "why",
            "rows in skipped files",
        ],
        &rows,
    );
}

fn method(b: &mut Builder<'_>) {
    b.h2("How this page was derived");
    let _ = writeln!(
        b.html,
        "<ul class=\"notes\">\
         <li>Skip reasons are not in skipped.csv (it lists configurations only). A skipped configuration that dominates \
         (same functions, every rate at least as high, one higher) a measured configuration overloaded in more than half \
         of its iterations is <b>dominated</b>; one that index.csv also lists was <b>completed later</b>; any other \
         <b>failed or was skipped otherwise</b> (an operational failure such as a cooldown timeout or a k6/SSH error, \
         or another writer's skip rule).</li>\
         <li>A configuration counts as overloaded when more than half of its rows have overloaded_node = 1, as the \
         campaign decides; single points are marked by their own row's flag.</li>\
         <li>Values are those written in the CSV files; nan/inf cells (not measured) are left out of the charts.</li>\
         </ul>"
    );
}

fn notes_html(b: &Builder<'_>) -> String {
    let mut html = String::new();
    let s = b.settings;
    let thresholds = match &s.source {
        ThresholdSource::Config(path) => format!("Overload thresholds from {}.", path.display()),
        ThresholdSource::Defaults => {
            let o = &s.overload;
            format!(
                "Overload thresholds: the defaults (cpu_overload_pct_of_capacity {}, ram_overload_pct {}, \
                 success_rate_node_min {}, success_rate_function_min {}, replicas_overload_threshold {}; \
                 cooldown max_wait_seconds {}). An output directory does not record its config: \
                 pass --config FILE for the campaign's own.",
                o.cpu_overload_pct_of_capacity,
                o.ram_overload_pct,
                o.success_rate_node_min,
                o.success_rate_function_min,
                o.replicas_overload_threshold,
                s.cooldown_max_wait_s
            )
        }
    };
    let _ = write!(html, "<div class=\"warn\"><p>{}</p>", escape(&thresholds));
    if !b.not_plotted.is_empty() {
        html.push_str("<p>Not plotted:</p><ul class=\"notes\">");
        for line in &b.not_plotted {
            let _ = write!(html, "<li>{}</li>", escape(line));
        }
        html.push_str("</ul>");
    }
    if !b.dataset.notes.is_empty() {
        html.push_str("<p>Reading the dataset:</p><ul class=\"notes\">");
        for line in &b.dataset.notes {
            let _ = write!(html, "<li>{}</li>", escape(line));
        }
        html.push_str("</ul>");
    }
    html.push_str("</div>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
