//! What the report says about a dataset, before any drawing: statistics
//! per configuration, why each skipped configuration was skipped, the
//! pair grids, the campaign's facts. Pure functions over [`Dataset`].
//!
//! Skip reasons are derived, not read: skipped.csv has no reason column.
//! A skipped configuration that dominates (same functions, every rate >=,
//! one >) a measured configuration overloaded in more than half its
//! iterations — the campaign's own rule — is `dominated`; one that a later
//! run completed (it is also in index.csv) is `completed later`; any other
//! is `failed or skipped otherwise` (an operational failure: cooldown
//! timeout, k6 or SSH error; or a skip by another writer's rule, such as
//! the legacy sampler's comparison of summed rates).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::charts::CellState;
use super::dataset::Dataset;
use crate::output::records::ResultRecord;
use crate::plan::{key_dominates, key_predicts_overload, ConfigKey};

/// The iterations of one measured configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConfigStats {
    /// Indices into [`Dataset::rows`].
    pub rows: Vec<usize>,
    pub overloaded_rows: usize,
}

impl ConfigStats {
    /// Overloaded in more than half its iterations (the campaign's rule).
    pub(crate) fn overloaded(&self) -> bool {
        self.overloaded_rows * 2 > self.rows.len()
    }

    /// Mean of `value` over the rows where it is finite; NaN when none is.
    pub(crate) fn mean(&self, rows: &[ResultRecord], value: impl Fn(&ResultRecord) -> f64) -> f64 {
        let finite: Vec<f64> = self
            .rows
            .iter()
            .filter_map(|&i| rows.get(i))
            .map(value)
            .filter(|v| v.is_finite())
            .collect();
        if finite.is_empty() {
            f64::NAN
        } else {
            finite.iter().sum::<f64>() / finite.len() as f64
        }
    }
}

/// Rows grouped by configuration.
pub(crate) fn config_stats(rows: &[ResultRecord]) -> BTreeMap<ConfigKey, ConfigStats> {
    let mut stats: BTreeMap<ConfigKey, ConfigStats> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let entry = stats.entry(row.key.clone()).or_insert(ConfigStats {
            rows: Vec::new(),
            overloaded_rows: 0,
        });
        entry.rows.push(i);
        entry.overloaded_rows += usize::from(row.node.overloaded);
    }
    stats
}

/// Why a configuration is in skipped.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// It dominates this overloaded configuration.
    Dominated { by: ConfigKey },
    /// It loads every function of this overloaded configuration of fewer
    /// functions at an equal or higher rate (`predicted_overload`).
    Predicted { by: ConfigKey },
    /// A later run measured it (it is in index.csv).
    CompletedLater,
    /// An operational failure, or another writer's skip rule.
    FailedOrOther,
}

impl SkipReason {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            SkipReason::Dominated { .. } => "dominated",
            SkipReason::Predicted { .. } => "predicted overload",
            SkipReason::CompletedLater => "completed later",
            SkipReason::FailedOrOther => "failed or skipped otherwise",
        }
    }
}

/// One distinct skipped configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkippedEntry {
    pub key: ConfigKey,
    pub reason: SkipReason,
    /// How many times skipped.csv lists it.
    pub times: usize,
}

/// The skipped configurations, first-seen order, each with its reason.
pub(crate) fn classify_skipped(
    skipped: &[ConfigKey],
    overloaded: &[&ConfigKey],
    indexed: &HashSet<&ConfigKey>,
) -> Vec<SkippedEntry> {
    let mut out: Vec<SkippedEntry> = Vec::new();
    for key in skipped {
        if let Some(seen) = out.iter_mut().find(|e| &e.key == key) {
            seen.times += 1;
            continue;
        }
        let reason = if indexed.contains(key) {
            SkipReason::CompletedLater
        } else if let Some(by) = overloaded.iter().find(|o| key_dominates(key, o)) {
            SkipReason::Dominated { by: (*by).clone() }
        } else if let Some(by) = overloaded.iter().find(|o| key_predicts_overload(key, o)) {
            SkipReason::Predicted { by: (*by).clone() }
        } else {
            SkipReason::FailedOrOther
        };
        out.push(SkippedEntry {
            key: key.clone(),
            reason,
            times: 1,
        });
    }
    out
}

/// One function-pair grid, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PairGrid {
    pub x_function: String,
    pub y_function: String,
    pub x_rates: Vec<u64>,
    pub y_rates: Vec<u64>,
    pub cells: Vec<(usize, usize, CellState)>,
    /// Counts by state, for the caption.
    pub measured: usize,
    pub overloaded: usize,
    pub dominated: usize,
    pub failed: usize,
    pub predicted: usize,
}

/// The grids of every pair of functions that has a two-function
/// configuration in the dataset. `rates_of` gives a function's rate axis.
pub(crate) fn pair_grids(
    dataset: &Dataset,
    stats: &BTreeMap<ConfigKey, ConfigStats>,
    skipped: &[SkippedEntry],
    rates_of: &dyn Fn(&str) -> Vec<u64>,
) -> Vec<PairGrid> {
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    let two = |key: &ConfigKey| {
        (key.functions().len() == 2)
            .then(|| (key.functions()[0].clone(), key.functions()[1].clone()))
    };
    pairs.extend(stats.keys().filter_map(two));
    pairs.extend(skipped.iter().filter_map(|e| two(&e.key)));
    let overloaded: Vec<&ConfigKey> = stats
        .iter()
        .filter(|(_, s)| s.overloaded())
        .map(|(k, _)| k)
        .collect();
    let mut grids = Vec::new();
    for (x_function, y_function) in pairs {
        let x_rates = rates_of(&x_function);
        let y_rates = rates_of(&y_function);
        let mut grid = PairGrid {
            x_function: x_function.clone(),
            y_function: y_function.clone(),
            x_rates: x_rates.clone(),
            y_rates: y_rates.clone(),
            cells: Vec::new(),
            measured: 0,
            overloaded: 0,
            dominated: 0,
            failed: 0,
            predicted: 0,
        };
        for (i, &x) in x_rates.iter().enumerate() {
            for (j, &y) in y_rates.iter().enumerate() {
                let Ok(key) =
                    ConfigKey::new(vec![x_function.clone(), y_function.clone()], vec![x, y])
                else {
                    continue;
                };
                let state = if let Some(s) = stats.get(&key) {
                    grid.measured += 1;
                    grid.overloaded += usize::from(s.overloaded());
                    Some(CellState::Measured {
                        node_cpu: s.mean(&dataset.rows, |r| r.node.cpu_usage),
                        overloaded: s.overloaded(),
                    })
                } else if let Some(entry) = skipped.iter().find(|e| e.key == key) {
                    match entry.reason {
                        SkipReason::Dominated { .. } => {
                            grid.dominated += 1;
                            Some(CellState::Dominated)
                        }
                        SkipReason::Predicted { .. } => {
                            grid.predicted += 1;
                            Some(CellState::Predicted)
                        }
                        SkipReason::FailedOrOther | SkipReason::CompletedLater => {
                            grid.failed += 1;
                            Some(CellState::Failed)
                        }
                    }
                } else if overloaded.iter().any(|o| key_dominates(&key, o)) {
                    grid.predicted += 1;
                    Some(CellState::Predicted)
                } else {
                    None
                };
                if let Some(state) = state {
                    grid.cells.push((i, j, state));
                }
            }
        }
        grids.push(grid);
    }
    grids
}

/// Distinct rates each function is loaded at anywhere in the dataset
/// (results, skipped, index), ascending.
pub(crate) fn rates_seen(dataset: &Dataset) -> BTreeMap<String, BTreeSet<u64>> {
    let mut rates: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let keys = dataset
        .rows
        .iter()
        .map(|r| &r.key)
        .chain(&dataset.skipped)
        .chain(dataset.index.iter().map(|r| &r.key));
    for key in keys {
        for (f, &r) in key.functions().iter().zip(key.rates()) {
            rates.entry(f.clone()).or_default().insert(r);
        }
    }
    rates
}

/// `min..=max` of the rows per configuration, `None` without rows.
pub(crate) fn iterations_range(stats: &BTreeMap<ConfigKey, ConfigStats>) -> Option<(usize, usize)> {
    let min = stats.values().map(|s| s.rows.len()).min()?;
    let max = stats.values().map(|s| s.rows.len()).max()?;
    Some((min, max))
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub(crate) fn format_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, u64)]) -> ConfigKey {
        ConfigKey::new(
            pairs.iter().map(|p| p.0.to_string()).collect(),
            pairs.iter().map(|p| p.1).collect(),
        )
        .unwrap()
    }

    #[test]
    fn skip_reasons_are_derived_from_dominance() {
        let overloaded = key(&[("env", 50), ("figlet", 100)]);
        let completed = key(&[("env", 0), ("figlet", 200)]);
        let skipped = vec![
            key(&[("env", 50), ("figlet", 150)]),
            key(&[("env", 0), ("figlet", 50)]),
            key(&[("env", 50), ("figlet", 150)]),
            completed.clone(),
            // Same rates, not strictly greater: not dominated.
            overloaded.clone(),
        ];
        let indexed: HashSet<&ConfigKey> = [&completed].into_iter().collect();
        let entries = classify_skipped(&skipped, &[&overloaded], &indexed);
        let reasons: Vec<(&str, usize)> = entries
            .iter()
            .map(|e| (e.reason.label(), e.times))
            .collect();
        assert_eq!(
            reasons,
            [
                ("dominated", 2),
                ("failed or skipped otherwise", 1),
                ("completed later", 1),
                ("failed or skipped otherwise", 1)
            ]
        );
        assert_eq!(
            entries[0].reason,
            SkipReason::Dominated {
                by: overloaded.clone()
            }
        );
    }

    #[test]
    fn a_superset_of_an_overloaded_configuration_is_a_predicted_skip() {
        let overloaded = key(&[("figlet", 100)]);
        let skipped = vec![
            key(&[("env", 0), ("figlet", 100)]),
            key(&[("env", 0), ("figlet", 50)]),
        ];
        let entries = classify_skipped(&skipped, &[&overloaded], &HashSet::new());
        assert_eq!(
            entries[0].reason,
            SkipReason::Predicted {
                by: overloaded.clone()
            }
        );
        assert_eq!(entries[0].reason.label(), "predicted overload");
        assert_eq!(entries[1].reason, SkipReason::FailedOrOther);
    }

    #[test]
    fn majority_rule() {
        let s = |rows: usize, overloaded_rows: usize| ConfigStats {
            rows: (0..rows).collect(),
            overloaded_rows,
        };
        assert!(s(3, 2).overloaded());
        assert!(!s(4, 2).overloaded());
        assert!(s(1, 1).overloaded());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_766_422_534), "2025-12-22 16:55:34 UTC");
    }
}
