//! The plan for a person at a terminal (`plan --format table`): what the
//! campaign covers, counts per combination size, what index.csv already
//! holds, the estimated runtime in hours and minutes, and the first
//! configurations as a table.
//!
//! Pure text over the same numbers as the JSON document ([`PlanCounts`]);
//! the JSON stays the protocol's format. Like the JSON, it never holds the
//! whole plan: per-size counts are closed-form, only `limit` entries are
//! listed.

use std::io::{self, Write};

use super::combination::sum_of_subset_products;
use super::{
    estimated_runtime_s, IndexedConfigs, Plan, PlanCounts, PlanDocumentError, PlanError,
    ITERATION_OVERHEAD, RUN_OVERHEAD,
};
use crate::config::Config;

/// How many configurations the table lists when no `--limit` is given.
pub const DEFAULT_TABLE_LIMIT: u64 = 20;

/// One row of the per-size table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeCounts {
    /// Functions per configuration.
    pub size: usize,
    /// Function combinations of this size.
    pub combinations: u128,
    pub configurations: u128,
    pub already_indexed: u128,
}

impl Plan {
    /// Combinations and configurations per combination size, ascending,
    /// sizes without any configuration left out.
    pub(crate) fn counts_by_size(&self) -> Result<Vec<(usize, u128, u128)>, PlanError> {
        let rates: Vec<u128> = self
            .active
            .iter()
            .map(|&i| self.functions[i].rates.len() as u128)
            .collect();
        let ones = vec![1u128; rates.len()];
        let mut out = Vec::new();
        for size in self.min_size..self.max_size.min(rates.len() + 1) {
            let configurations =
                sum_of_subset_products(&rates, size, size + 1).ok_or(PlanError::CountOverflow)?;
            let combinations =
                sum_of_subset_products(&ones, size, size + 1).ok_or(PlanError::CountOverflow)?;
            if configurations > 0 {
                out.push((size, combinations, configurations));
            }
        }
        Ok(out)
    }
}

/// Per-size counts with the index entries of each size.
pub fn size_counts(plan: &Plan, indexed: &IndexedConfigs) -> Result<Vec<SizeCounts>, PlanError> {
    let mut rows: Vec<SizeCounts> = plan
        .counts_by_size()?
        .into_iter()
        .map(|(size, combinations, configurations)| SizeCounts {
            size,
            combinations,
            configurations,
            already_indexed: 0,
        })
        .collect();
    for key in indexed.iter().filter(|k| plan.contains_key(k)) {
        if let Some(row) = rows.iter_mut().find(|r| r.size == key.functions().len()) {
            row.already_indexed += 1;
        }
    }
    Ok(rows)
}

/// `2 h 05 min`, `21 min`, `45 s`; rounded up to whole minutes from one
/// minute on, so an estimate is never shown shorter than it is.
pub fn format_hours_minutes(seconds: u128) -> String {
    if seconds < 60 {
        return format!("{seconds} s");
    }
    let minutes = seconds.div_ceil(60);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

/// Writes the plan summary; returns the same counts as the JSON document.
pub fn write_plan_table<W: Write>(
    mut out: W,
    config: &Config,
    plan: &Plan,
    indexed: &IndexedConfigs,
    limit: Option<u64>,
) -> Result<PlanCounts, PlanDocumentError> {
    let counts = PlanCounts::new(config, plan, indexed)?;
    let sizes = size_counts(plan, indexed)?;
    let names: Vec<&str> = config.functions.iter().map(|f| f.name.as_str()).collect();
    let rates: Vec<String> = config.rates.iter().map(u64::to_string).collect();
    let combos = &config.combinations;
    writeln!(out, "Campaign plan")?;
    writeln!(
        out,
        "  functions     {} ({})",
        names.join(", "),
        names.len()
    )?;
    writeln!(out, "  rates         {} req/s", elide(&rates, 12))?;
    let capped: Vec<String> = config
        .functions
        .iter()
        .filter_map(|f| f.max_rate.map(|m| format!("{} <= {m}", f.name)))
        .collect();
    if !capped.is_empty() {
        writeln!(out, "  max_rate      {}", capped.join(", "))?;
    }
    writeln!(
        out,
        "  combinations  {} to {} functions per configuration",
        combos.min_functions.max(1),
        combos.max_functions.saturating_sub(1)
    )?;
    writeln!(
        out,
        "  iterations    {} x {} per configuration",
        config.iterations, config.duration_text
    )?;
    writeln!(out)?;

    let mut table = vec![[
        "functions".to_string(),
        "combinations".to_string(),
        "configurations".to_string(),
        "already indexed".to_string(),
        "to run".to_string(),
    ]];
    for row in &sizes {
        table.push([
            row.size.to_string(),
            row.combinations.to_string(),
            row.configurations.to_string(),
            row.already_indexed.to_string(),
            (row.configurations - row.already_indexed).to_string(),
        ]);
    }
    table.push([
        "total".to_string(),
        sizes
            .iter()
            .map(|r| r.combinations)
            .sum::<u128>()
            .to_string(),
        counts.count.to_string(),
        counts.already_indexed.to_string(),
        counts.to_run.to_string(),
    ]);
    write_columns(&mut out, &table, &[false, true, true, true, true])?;
    writeln!(out)?;

    writeln!(
        out,
        "Estimated runtime: {} of load ({} configurations x {} iterations x {}).",
        format_hours_minutes(counts.estimated_runtime_s),
        counts.to_run,
        config.iterations,
        config.duration_text
    )?;
    let cooldown_max_s =
        estimated_runtime_s(counts.to_run, config.cooldown.max_wait, config.iterations);
    writeln!(
        out,
        "  Cooldown before each iteration comes on top: up to {} each, {} at most in all.",
        format_hours_minutes(config.cooldown.max_wait.as_secs().into()),
        format_hours_minutes(cooldown_max_s)
    )?;
    writeln!(
        out,
        "  At most {} in all, counting {} s per iteration and {} per run for SSH and Prometheus \
         (lb stops the workload after that).",
        format_hours_minutes(counts.runtime_upper_bound_s),
        ITERATION_OVERHEAD.as_secs(),
        format_hours_minutes(RUN_OVERHEAD.as_secs().into())
    )?;
    writeln!(
        out,
        "  Configurations dominated by an overloaded one are skipped: the run can be shorter."
    )?;
    writeln!(out)?;

    write_listing(&mut out, plan, indexed, limit, counts.count)?;
    out.flush()?;
    Ok(counts)
}

/// The first `limit` configurations as a table.
fn write_listing<W: Write>(
    out: &mut W,
    plan: &Plan,
    indexed: &IndexedConfigs,
    limit: Option<u64>,
    count: u128,
) -> io::Result<()> {
    let limit = limit.unwrap_or(DEFAULT_TABLE_LIMIT);
    if count == 0 {
        return writeln!(out, "The plan has no configuration.");
    }
    let listed = u128::from(limit).min(count);
    if listed == 0 {
        return Ok(());
    }
    if listed < count {
        writeln!(
            out,
            "First {listed} of {count} configurations (--limit N lists more):"
        )?;
    } else {
        writeln!(out, "All {count} configurations:")?;
    }
    let mut table = vec![[
        "#".to_string(),
        "config id".to_string(),
        "configuration (req/s)".to_string(),
        "skip".to_string(),
    ]];
    for (index, configuration) in plan.iter().take(limit as usize).enumerate() {
        let pairs: Vec<String> = configuration
            .pairs()
            .map(|(f, rate)| format!("{f}={rate}"))
            .collect();
        table.push([
            index.to_string(),
            configuration.config_id().to_string(),
            pairs.join(", "),
            if indexed.contains(&configuration) {
                "already indexed".to_string()
            } else {
                String::new()
            },
        ]);
    }
    write_columns(out, &table, &[true, false, false, false])
}

/// Rows of cells as aligned columns, two spaces apart, indented by two;
/// `right[i]` right-aligns column `i`. Trailing spaces are trimmed.
fn write_columns<W: Write, const N: usize>(
    out: &mut W,
    rows: &[[String; N]],
    right: &[bool; N],
) -> io::Result<()> {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::from("  ");
        for (i, ((cell, width), right)) in row.iter().zip(widths).zip(right).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if *right {
                line.push_str(&format!("{cell:>width$}"));
            } else {
                line.push_str(&format!("{cell:<width$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `a, b, c, ... (n in all)` beyond `keep` items.
fn elide(items: &[String], keep: usize) -> String {
    if items.len() <= keep {
        return items.join(", ");
    }
    let head = &items[..keep - 2];
    let tail = &items[items.len() - 1];
    format!("{}, ..., {tail} ({} in all)", head.join(", "), items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ConfigKey;
    use crate::protocol::{Context, Request};

    fn config(value: serde_json::Value) -> Config {
        crate::config::load_request(&Request {
            config: value,
            context: Context::default(),
            plugin: Default::default(),
        })
        .unwrap()
        .config
    }

    #[test]
    fn hours_and_minutes() {
        assert_eq!(format_hours_minutes(0), "0 s");
        assert_eq!(format_hours_minutes(59), "59 s");
        assert_eq!(format_hours_minutes(60), "1 min");
        assert_eq!(format_hours_minutes(61), "2 min");
        assert_eq!(format_hours_minutes(3600), "1 h 00 min");
        assert_eq!(format_hours_minutes(43_470), "12 h 05 min");
    }

    #[test]
    fn sizes_add_up_to_the_count() {
        let config = config(serde_json::json!({
            "functions": [{"name": "figlet"}, {"name": "env"}, {"name": "shasum", "max_rate": 10}],
            "rate_strategy": {"type": "custom", "rates": [0, 10, 200]},
            "combinations": {"min_functions": 1, "max_functions": 4}
        }));
        let plan = Plan::new(&config);
        let indexed: IndexedConfigs = [
            ConfigKey::new(vec!["env".into()], vec![0]).unwrap(),
            ConfigKey::new(vec!["env".into(), "figlet".into()], vec![0, 10]).unwrap(),
            // Not in the plan (rate above max_rate): not counted.
            ConfigKey::new(vec!["shasum".into()], vec![200]).unwrap(),
        ]
        .into_iter()
        .collect();
        let sizes = size_counts(&plan, &indexed).unwrap();
        assert_eq!(
            sizes,
            [
                SizeCounts {
                    size: 1,
                    combinations: 3,
                    configurations: 8,
                    already_indexed: 1
                },
                SizeCounts {
                    size: 2,
                    combinations: 3,
                    configurations: 21,
                    already_indexed: 1
                },
                SizeCounts {
                    size: 3,
                    combinations: 1,
                    configurations: 18,
                    already_indexed: 0
                },
            ]
        );
        let total: u128 = sizes.iter().map(|s| s.configurations).sum();
        assert_eq!(Ok(total), plan.count());
    }

    #[test]
    fn table_snapshot() {
        let config = config(serde_json::json!({
            "functions": [{"name": "figlet"}, {"name": "env"}],
            "rate_strategy": {"type": "custom", "rates": [0, 10, 200]},
            "combinations": {"min_functions": 1, "max_functions": 3},
            "duration": "30s",
            "iterations": 3
        }));
        let plan = Plan::new(&config);
        let indexed: IndexedConfigs = [ConfigKey::new(vec!["env".into()], vec![10]).unwrap()]
            .into_iter()
            .collect();
        let mut out = Vec::new();
        let counts = write_plan_table(&mut out, &config, &plan, &indexed, Some(4)).unwrap();
        assert_eq!((counts.count, counts.to_run), (15, 14));
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[test]
    fn long_rate_ladders_are_elided() {
        let rates: Vec<String> = (0..=20).map(|r| (r * 10).to_string()).collect();
        assert_eq!(
            elide(&rates, 12),
            "0, 10, 20, 30, 40, 50, 60, 70, 80, 90, ..., 200 (21 in all)"
        );
    }
}
