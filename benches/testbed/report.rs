//! Statistics over samples and the verdict on each target (pure).
//!
//! The benchmark asserts nothing: a target is a measured value, a goal and
//! a sentence saying "met" or by how much it was missed.

use std::fmt;

/// The `q`-quantile (0..=1) of `values`, linearly interpolated between
/// closest ranks (the usual "type 7" definition). NaN for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}

pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

pub fn p95(values: &[f64]) -> f64 {
    quantile(values, 0.95)
}

/// What a measured value must satisfy.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

/// One target, judged.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub measured: f64,
    pub goal: Goal,
    /// Unit appended to numbers (`ms`, `×`, ...).
    pub unit: &'static str,
}

impl Target {
    pub fn new(name: impl Into<String>, measured: f64, goal: Goal, unit: &'static str) -> Self {
        Target {
            name: name.into(),
            measured,
            goal,
            unit,
        }
    }

    pub fn met(&self) -> bool {
        match self.goal {
            Goal::AtMost(limit) => self.measured <= limit,
            Goal::AtLeast(limit) => self.measured >= limit,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.unit;
        let shown = number(self.measured);
        if self.measured.is_nan() {
            return write!(f, "{}: NOT MEASURED", self.name);
        }
        let (sign, limit) = match self.goal {
            Goal::AtMost(limit) => ("≤", limit),
            Goal::AtLeast(limit) => ("≥", limit),
        };
        let limit_shown = number(limit);
        if self.met() {
            write!(
                f,
                "{}: met ({shown}{unit} {sign} {limit_shown}{unit})",
                self.name
            )
        } else {
            let gap = number((self.measured - limit).abs());
            write!(
                f,
                "{}: MISSED by {gap}{unit} ({shown}{unit}, goal {sign} {limit_shown}{unit})",
                self.name
            )
        }
    }
}

/// A number with about four significant digits.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs();
    if magnitude >= 1000.0 || value == value.trunc() && magnitude >= 1.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 10.0 {
        format!("{value:.2}")
    } else if magnitude >= 1.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.4}")
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A section heading, with the machine's load average (other work on the
/// same cores shows up in every timing).
pub fn heading(title: &str) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string());
    println!();
    println!("== {title}   [load average {load}]");
}
