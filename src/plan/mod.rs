//! The campaign plan: which configurations run, in which order, under which
//! id, and which ones a campaign may skip.
//!
//! Owns: per-function rate lists (the rate ladder cut at `max_rate`),
//! combinations of functions, the lazy enumeration of configurations, the
//! exact count, config ids, the index key, dominance by overload (and
//! overload predicted from subsets), and the `plan` document (JSON, and a
//! summary table for people). Pure: it reads nothing from disk or network
//! (index.csv is parsed by `output`) and never materialises the whole
//! plan — a plan of millions of configurations is counted in microseconds
//! and iterated with memory proportional to the number of functions.
//!
//! Order (SPEC §4, same as lb): combination sizes ascending; within a size,
//! combinations of the sorted names in lexicographic order; within a
//! combination, the Cartesian product of the rate lists with the first
//! function varying slowest.

mod combination;
mod configuration;
mod document;
mod dominance;
mod summary;

pub use configuration::{ConfigId, ConfigKey, Configuration, IndexedConfigs};
pub use document::{write_plan_json, PlanCounts, PlanDocumentError};
pub use dominance::{
    dominates, key_dominates, key_predicts_overload, predicts_overload, OverloadMemory,
};
pub use summary::{
    format_hours_minutes, size_counts, write_plan_table, SizeCounts, DEFAULT_TABLE_LIMIT,
};

use std::fmt;
use std::iter::FusedIterator;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Combinations, Config, FunctionName};
use combination::{sum_of_subset_products, KSubsets};

/// Why a planned configuration was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// It dominates a configuration that overloaded the node.
    DominatedByOverload,
    /// index.csv already records it (a previous run finished it).
    AlreadyIndexed,
    /// The campaign memory holds all its iterations, measured with the
    /// same duration and queries (`memory.skip_known`).
    AlreadyInMemory,
    /// It loads every function of an overloaded configuration of a subset
    /// of its functions at an equal or higher rate
    /// (`overload.skip_predicted`).
    PredictedOverload,
}

impl SkipReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SkipReason::DominatedByOverload => "dominated_by_overload",
            SkipReason::AlreadyIndexed => "already_indexed",
            SkipReason::AlreadyInMemory => "already_in_memory",
            SkipReason::PredictedOverload => "predicted_overload",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan has more configurations than fit in 128 bits")]
    CountOverflow,
    #[error("a configuration needs at least one function")]
    EmptyConfiguration,
    #[error("function {0:?} appears more than once in a configuration")]
    DuplicateFunction(String),
    #[error("configuration lists {functions} functions but {rates} rates")]
    KeyLengthMismatch { functions: usize, rates: usize },
    #[error("config id {0:?} is not 12 lowercase hex digits")]
    InvalidConfigId(String),
}

/// One function of the plan with the rates it is loaded at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFunction {
    pub name: FunctionName,
    /// Requests per second, ascending, deduplicated; the campaign ladder cut
    /// at the function's `max_rate`. May be empty, in which case no
    /// configuration contains the function.
    pub rates: Vec<u64>,
}

/// The ordered, lazily enumerated set of configurations of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Sorted by name, names unique.
    functions: Vec<PlanFunction>,
    /// Indices into `functions` of those with at least one rate. Leaving
    /// out a function without rates removes exactly the combinations whose
    /// product is empty and keeps the order of the others.
    active: Vec<usize>,
    /// Combination sizes `min_size..max_size`; `min_size >= 1`.
    min_size: usize,
    max_size: usize,
}

impl Plan {
    /// The plan of a validated config.
    pub fn new(config: &Config) -> Plan {
        let functions = config
            .functions
            .iter()
            .map(|f| PlanFunction {
                name: f.name.clone(),
                rates: config
                    .rates
                    .iter()
                    .copied()
                    .filter(|&r| f.max_rate.map_or(true, |max| r <= max))
                    .collect(),
            })
            .collect();
        Self::from_functions(functions, config.combinations)
            .unwrap_or_else(|_| unreachable!("Config guarantees unique function names"))
    }

    /// A plan from explicit per-function rate lists (tests, benches, tools).
    /// Sorts functions by name and each rate list; rejects a repeated name.
    /// Sizes below 1 are raised to 1: a configuration has a function.
    pub fn from_functions(
        mut functions: Vec<PlanFunction>,
        combinations: Combinations,
    ) -> Result<Plan, PlanError> {
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = functions.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(PlanError::DuplicateFunction(w[0].name.to_string()));
        }
        for f in &mut functions {
            f.rates.sort_unstable();
            f.rates.dedup();
        }
        let active = (0..functions.len())
            .filter(|&i| !functions[i].rates.is_empty())
            .collect();
        Ok(Plan {
            functions,
            active,
            min_size: combinations.min_functions.max(1),
            max_size: combinations.max_functions,
        })
    }

    /// The configurations in plan order, built one at a time.
    pub fn iter(&self) -> PlanIter<'_> {
        PlanIter::new(self)
    }

    /// The exact number of configurations, without enumerating them.
    pub fn count(&self) -> Result<u128, PlanError> {
        let sizes: Vec<u128> = self
            .active
            .iter()
            .map(|&i| self.functions[i].rates.len() as u128)
            .collect();
        sum_of_subset_products(&sizes, self.min_size, self.max_size).ok_or(PlanError::CountOverflow)
    }

    /// Whether the plan contains the configuration `key` names. Cost:
    /// `O(k log n)`; used to count index entries that belong to the plan.
    pub(crate) fn contains_key(&self, key: &ConfigKey) -> bool {
        let k = key.functions().len();
        if k < self.min_size || k >= self.max_size {
            return false;
        }
        key.functions().iter().zip(key.rates()).all(|(name, rate)| {
            self.functions
                .binary_search_by(|f| f.name.as_str().cmp(name))
                .is_ok_and(|i| self.functions[i].rates.binary_search(rate).is_ok())
        })
    }

    /// The configuration with this id among the first `limit` of the plan,
    /// with its position.
    ///
    /// Ids are truncated SHA-256 hashes and cannot be inverted, so finding
    /// one means hashing configurations in plan order; `limit` bounds that
    /// work whatever the plan's size: each configuration's id text is
    /// written into one reused buffer and its hash compared in binary,
    /// about 0.14 µs per configuration (`cargo bench --bench plan -- find`:
    /// 14 ms for 100 000 configurations of 40 functions).
    pub fn find(&self, id: &ConfigId, limit: u64) -> IdSearch {
        let wanted = id.digest_prefix();
        let mut text = String::with_capacity(64);
        let mut searched: u64 = 0;
        let mut cursor = self.iter();
        while searched < limit && cursor.write_current(&mut text) {
            if configuration::digest_starts_with(&text, &wanted) {
                if let Some(configuration) = cursor.next() {
                    return IdSearch::Found {
                        position: u128::from(searched),
                        configuration,
                    };
                }
            }
            cursor.advance();
            searched += 1;
        }
        IdSearch::NotFound { searched }
    }
}

/// What [`Plan::find`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSearch {
    Found {
        /// 0-based position in plan order.
        position: u128,
        configuration: Configuration,
    },
    /// Not among the first `searched` configurations (the whole plan when
    /// `searched` equals its count).
    NotFound { searched: u64 },
}

impl<'a> IntoIterator for &'a Plan {
    type Item = Configuration;
    type IntoIter = PlanIter<'a>;

    fn into_iter(self) -> PlanIter<'a> {
        self.iter()
    }
}

/// The number of configurations of a plan whose functions have
/// `rate_counts` rates each (functions without rates count 0), over the
/// combination sizes of `combinations`; `None` when it does not fit in
/// 128 bits. What [`Plan::count`] computes, before a plan exists.
pub(crate) fn count_configurations(
    rate_counts: &[u128],
    combinations: Combinations,
) -> Option<u128> {
    let active: Vec<u128> = rate_counts.iter().copied().filter(|&n| n > 0).collect();
    sum_of_subset_products(
        &active,
        combinations.min_functions.max(1),
        combinations.max_functions,
    )
}

/// Lower bound of the wall time `configurations` take, in whole seconds
/// rounded up: `duration × iterations × configurations`, as lb estimates.
/// Cooldown, setup and transfer time are not included (cooldown alone can
/// add up to `max_wait` per iteration). Saturates instead of overflowing.
pub(crate) fn estimated_runtime_s(
    configurations: u128,
    duration: Duration,
    iterations: u32,
) -> u128 {
    duration
        .as_millis()
        .saturating_mul(u128::from(iterations))
        .saturating_mul(configurations)
        .div_ceil(1000)
}

/// What an iteration may spend besides k6 and the cooldown wait: SSH round
/// trips, the summary transfer, Prometheus queries, the gateway.
pub(crate) const ITERATION_OVERHEAD: Duration = Duration::from_secs(30);

/// What a run spends once: start-up checks, the baseline, the result.
pub(crate) const RUN_OVERHEAD: Duration = Duration::from_secs(120);

/// Upper bound of the wall time of a run executing `configurations`, in
/// whole seconds: the k6 time ([`estimated_runtime_s`]), plus per
/// iteration the longest cooldown wait (`cooldown.max_wait`) and
/// [`ITERATION_OVERHEAD`], plus [`RUN_OVERHEAD`]. lb force-stops a
/// workload that outlives the runtime its plugin announces: this is the
/// figure announced. Saturates instead of overflowing.
pub(crate) fn runtime_upper_bound_s(configurations: u128, config: &Config) -> u128 {
    let per_iteration = config.cooldown.max_wait.saturating_add(ITERATION_OVERHEAD);
    estimated_runtime_s(configurations, config.duration, config.iterations)
        .saturating_add(estimated_runtime_s(
            configurations,
            per_iteration,
            config.iterations,
        ))
        .saturating_add(u128::from(RUN_OVERHEAD.as_secs()))
}

/// Iterator over a plan's configurations. Holds the current combination
/// (indices into the active functions) and an odometer of rate positions.
#[derive(Debug, Clone)]
pub struct PlanIter<'a> {
    plan: &'a Plan,
    size: usize,
    subsets: KSubsets,
    /// `odometer[i]` indexes the rate list of the i-th function of the
    /// current combination; the last position turns fastest.
    odometer: Vec<usize>,
}

impl<'a> PlanIter<'a> {
    fn new(plan: &'a Plan) -> Self {
        let size = plan.min_size;
        let n = plan.active.len();
        // An empty size range leaves the cursor exhausted from the start.
        let k = if size < plan.max_size { size } else { n + 1 };
        PlanIter {
            plan,
            size,
            subsets: KSubsets::new(n, k),
            odometer: vec![0; size],
        }
    }

    /// Writes the current configuration's id text (`name:rate|name:rate`,
    /// as [`Configuration`]'s `Display`) into `text`, replacing what it
    /// held, without building the configuration; `false` when exhausted.
    fn write_current(&self, text: &mut String) -> bool {
        use fmt::Write;
        text.clear();
        let Some(subset) = self.subsets.current() else {
            return false;
        };
        for (i, &pos) in self.odometer.iter().enumerate() {
            let f = &self.plan.functions[self.plan.active[subset[i]]];
            if i > 0 {
                text.push('|');
            }
            // Writing to a String cannot fail.
            let _ = write!(text, "{}:{}", f.name, f.rates[pos]);
        }
        true
    }

    fn advance(&mut self) {
        let Some(subset) = self.subsets.current() else {
            return;
        };
        let plan = self.plan;
        for i in (0..self.odometer.len()).rev() {
            self.odometer[i] += 1;
            if self.odometer[i] < plan.functions[plan.active[subset[i]]].rates.len() {
                return;
            }
            self.odometer[i] = 0;
        }
        // Every wheel wrapped: next combination, or next size.
        if self.subsets.advance() {
            return;
        }
        self.size += 1;
        if self.size < self.plan.max_size {
            self.subsets = KSubsets::new(self.plan.active.len(), self.size);
            self.odometer = vec![0; self.size];
        }
    }
}

impl Iterator for PlanIter<'_> {
    type Item = Configuration;

    fn next(&mut self) -> Option<Configuration> {
        let subset = self.subsets.current()?;
        let mut functions = Vec::with_capacity(subset.len());
        let mut rates = Vec::with_capacity(subset.len());
        for (i, &pos) in self.odometer.iter().enumerate() {
            let f = &self.plan.functions[self.plan.active[subset[i]]];
            functions.push(f.name.clone());
            rates.push(f.rates[pos]);
        }
        self.advance();
        Some(Configuration::from_sorted(functions, rates))
    }
}

impl FusedIterator for PlanIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(functions: &[(&str, &[u64])], min: usize, max: usize) -> Plan {
        Plan::from_functions(
            functions
                .iter()
                .map(|(n, r)| PlanFunction {
                    name: FunctionName::parse(n).unwrap(),
                    rates: r.to_vec(),
                })
                .collect(),
            Combinations {
                min_functions: min,
                max_functions: max,
            },
        )
        .unwrap()
    }

    fn listed(p: &Plan) -> Vec<String> {
        p.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn order_is_sizes_then_combinations_then_first_function_slowest() {
        let p = plan(&[("figlet", &[0, 10]), ("env", &[0, 10])], 1, 3);
        assert_eq!(
            listed(&p),
            [
                "env:0",
                "env:10",
                "figlet:0",
                "figlet:10",
                "env:0|figlet:0",
                "env:0|figlet:10",
                "env:10|figlet:0",
                "env:10|figlet:10"
            ]
        );
        assert_eq!(p.count(), Ok(8));
    }

    #[test]
    fn functions_without_rates_drop_out_of_combinations() {
        let p = plan(&[("a", &[1]), ("b", &[]), ("c", &[2])], 1, 3);
        assert_eq!(listed(&p), ["a:1", "c:2", "a:1|c:2"]);
        assert_eq!(p.count(), Ok(3));
    }

    #[test]
    fn empty_size_ranges_yield_nothing() {
        for (min, max) in [(1, 1), (2, 1), (3, 4), (0, 1)] {
            let p = plan(&[("a", &[1]), ("b", &[2])], min, max);
            assert_eq!(listed(&p), Vec::<String>::new(), "{min}..{max}");
            assert_eq!(p.count(), Ok(0), "{min}..{max}");
        }
    }

    #[test]
    fn size_zero_is_raised_to_one() {
        let p = plan(&[("a", &[1])], 0, 2);
        assert_eq!(listed(&p), ["a:1"]);
    }

    #[test]
    fn iterator_is_fused() {
        let p = plan(&[("a", &[1])], 1, 2);
        let mut it = p.iter();
        assert!(it.next().is_some());
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    }

    #[test]
    fn contains_key_agrees_with_enumeration() {
        let p = plan(&[("a", &[1, 2]), ("b", &[5]), ("c", &[7, 8])], 2, 3);
        let keys: Vec<ConfigKey> = p.iter().map(|c| c.key()).collect();
        for k in &keys {
            assert!(p.contains_key(k), "{k:?}");
        }
        let outside = [
            ConfigKey::new(vec!["a".into()], vec![1]).unwrap(),
            ConfigKey::new(vec!["a".into(), "b".into()], vec![3, 5]).unwrap(),
            ConfigKey::new(vec!["a".into(), "z".into()], vec![1, 5]).unwrap(),
            ConfigKey::new(vec!["a".into(), "b".into(), "c".into()], vec![1, 5, 7]).unwrap(),
        ];
        for k in &outside {
            assert!(!p.contains_key(k), "{k:?}");
        }
    }

    #[test]
    fn find_returns_position_within_the_limit() {
        let p = plan(&[("env", &[0, 10]), ("figlet", &[0, 10])], 1, 3);
        let id = ConfigId::parse("a6836d82b30b").unwrap();
        let IdSearch::Found {
            position,
            configuration,
        } = p.find(&id, 100)
        else {
            panic!("not found");
        };
        assert_eq!(
            (position, configuration.to_string().as_str()),
            (5, "env:0|figlet:10")
        );
        assert_eq!(p.find(&id, 5), IdSearch::NotFound { searched: 5 });
        assert_eq!(
            p.find(&ConfigId::parse("000000000000").unwrap(), 100),
            IdSearch::NotFound { searched: 8 }
        );
        // Every id of the plan is found where the plan lists it.
        for (i, c) in p.iter().enumerate() {
            assert!(
                matches!(p.find(&c.config_id(), 8), IdSearch::Found { position, .. } if position == i as u128)
            );
        }
    }

    #[test]
    fn runtime_estimate_rounds_up_and_saturates() {
        assert_eq!(estimated_runtime_s(483, Duration::from_secs(30), 3), 43_470);
        assert_eq!(estimated_runtime_s(1, Duration::from_millis(1500), 1), 2);
        assert_eq!(estimated_runtime_s(0, Duration::from_secs(30), 3), 0);
        assert_eq!(
            estimated_runtime_s(u128::MAX, Duration::from_secs(30), 3),
            u128::MAX.div_ceil(1000)
        );
    }

    #[test]
    fn skip_reason_strings() {
        assert_eq!(
            SkipReason::DominatedByOverload.to_string(),
            "dominated_by_overload"
        );
        assert_eq!(
            serde_json::to_value(SkipReason::AlreadyIndexed).unwrap(),
            serde_json::json!("already_indexed")
        );
        for reason in [SkipReason::AlreadyInMemory, SkipReason::PredictedOverload] {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.as_str())
            );
        }
    }
}
