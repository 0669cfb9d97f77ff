//! Dominance: a configuration that loads the same functions at least as
//! hard as one that overloaded the node is skipped without running.
//!
//! Pure: [`OverloadMemory`] only remembers rate vectors.

use std::collections::HashMap;

use super::{ConfigKey, Configuration};
use crate::config::FunctionName;

/// `true` when `candidate` dominates `base`: same function set, every rate
/// `>=`, at least one `>`. A configuration never dominates itself.
pub fn dominates(candidate: &Configuration, base: &Configuration) -> bool {
    candidate.functions() == base.functions() && rates_dominate(candidate.rates(), base.rates())
}

/// [`dominates`] for keys read from files (names as written there).
pub fn key_dominates(candidate: &ConfigKey, base: &ConfigKey) -> bool {
    candidate.functions() == base.functions() && rates_dominate(candidate.rates(), base.rates())
}

/// Strict Pareto dominance of rate vectors of equal length.
fn rates_dominate(candidate: &[u64], base: &[u64]) -> bool {
    let mut greater = false;
    for (&c, &b) in candidate.iter().zip(base) {
        if c < b {
            return false;
        }
        greater |= c > b;
    }
    greater
}

/// `a <= b` in every component.
fn rates_at_most(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y)
}

/// The configurations found overloaded so far, kept so that
/// [`OverloadMemory::dominates_any`] is fast with thousands of them.
///
/// Entries are bucketed by function set (dominance needs equal sets), and a
/// bucket keeps only its minimal rate vectors. Dropping a remembered entry
/// `m` because a newer `c <= m` (componentwise, `c != m`) changes no answer:
/// anything that strictly dominates `m` also strictly dominates `c`. An
/// entry `c` that is `>=` an existing one is not stored for the same
/// reason. So each bucket is an antichain and answers equal those of a
/// memory that kept every entry.
#[derive(Debug, Clone, Default)]
pub struct OverloadMemory {
    buckets: HashMap<Vec<FunctionName>, Vec<Vec<u64>>>,
}

impl OverloadMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers an overloaded configuration.
    pub fn remember(&mut self, overloaded: &Configuration) {
        let rates = overloaded.rates();
        let bucket = match self.buckets.get_mut(overloaded.functions()) {
            Some(bucket) => bucket,
            None => self
                .buckets
                .entry(overloaded.functions().to_vec())
                .or_default(),
        };
        if bucket.iter().any(|kept| rates_at_most(kept, rates)) {
            return;
        }
        bucket.retain(|kept| !rates_at_most(rates, kept));
        bucket.push(rates.to_vec());
    }

    /// `true` when `config` dominates some remembered overloaded
    /// configuration (SPEC §4, `dominated_by_overload`).
    pub fn dominates_any(&self, config: &Configuration) -> bool {
        self.buckets.get(config.functions()).is_some_and(|bucket| {
            bucket
                .iter()
                .any(|kept| rates_dominate(config.rates(), kept))
        })
    }

    /// Number of rate vectors kept after pruning (not the number remembered).
    pub fn kept_len(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, u64)]) -> Configuration {
        Configuration::from_pairs(
            pairs
                .iter()
                .map(|&(n, r)| (FunctionName::parse(n).unwrap(), r)),
        )
        .unwrap()
    }

    #[test]
    fn dominance_table() {
        type Pairs = &'static [(&'static str, u64)];
        // (candidate, base, dominates)
        let cases: &[(Pairs, Pairs, bool)] = &[
            (&[("figlet", 20)], &[("figlet", 10)], true),
            (&[("figlet", 10)], &[("figlet", 10)], false),
            (&[("figlet", 0)], &[("figlet", 10)], false),
            (&[("env", 20)], &[("figlet", 10)], false),
            (
                &[("env", 10), ("figlet", 10)],
                &[("env", 10), ("figlet", 0)],
                true,
            ),
            (
                &[("env", 10), ("figlet", 0)],
                &[("env", 0), ("figlet", 10)],
                false,
            ),
            (
                &[("env", 10), ("figlet", 10)],
                &[("env", 10), ("figlet", 10)],
                false,
            ),
            (&[("env", 20), ("figlet", 20)], &[("figlet", 10)], false),
            (&[("figlet", 20)], &[("env", 0), ("figlet", 10)], false),
        ];
        for (cand, base, want) in cases {
            assert_eq!(
                dominates(&config(cand), &config(base)),
                *want,
                "{cand:?} vs {base:?}"
            );
        }
    }

    #[test]
    fn memory_prunes_and_still_answers() {
        let mut m = OverloadMemory::new();
        assert!(m.is_empty());
        m.remember(&config(&[("env", 50), ("figlet", 50)]));
        m.remember(&config(&[("env", 60), ("figlet", 60)])); // dominated by kept: not stored
        assert_eq!(m.kept_len(), 1);
        m.remember(&config(&[("env", 10), ("figlet", 90)])); // incomparable: stored
        assert_eq!(m.kept_len(), 2);
        m.remember(&config(&[("env", 10), ("figlet", 50)])); // prunes both
        assert_eq!(m.kept_len(), 1);
        // Strictly above the pruned (60,60) entry.
        assert!(m.dominates_any(&config(&[("env", 70), ("figlet", 60)])));
        // Equal to the newest entry: not dominated.
        assert!(!m.dominates_any(&config(&[("env", 10), ("figlet", 50)])));
        // Equal to a pruned entry that is strictly above a kept one.
        assert!(m.dominates_any(&config(&[("env", 50), ("figlet", 50)])));
        assert!(!m.dominates_any(&config(&[("env", 9), ("figlet", 100)])));
        assert!(!m.dominates_any(&config(&[("env", 100)])));
    }

    #[test]
    fn remembering_twice_keeps_one() {
        let mut m = OverloadMemory::new();
        m.remember(&config(&[("env", 50)]));
        m.remember(&config(&[("env", 50)]));
        assert_eq!(m.kept_len(), 1);
        assert!(!m.dominates_any(&config(&[("env", 50)])));
        assert!(m.dominates_any(&config(&[("env", 51)])));
    }
}
