//! Dominance: a configuration that loads the same functions at least as
//! hard as one that overloaded the node is skipped without running.
//!
//! Prediction (`overload.skip_predicted`) goes one step further: a
//! configuration that adds functions to an overloaded one, loading every
//! function they share at an equal or higher rate, is predicted to
//! overload too ([`predicts_overload`]). It is a separate question so that
//! the same-set rule (lb's) stays exactly what it was.
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

/// `true` when `candidate` loads every function of `base`, whose functions
/// are a strict subset of its own, at an equal or higher rate: the extra
/// functions only add load to a node `base` already overloaded.
pub fn predicts_overload(candidate: &Configuration, base: &Configuration) -> bool {
    base.functions().len() < candidate.functions().len()
        && subset_positions(base.functions(), candidate.functions())
            .is_some_and(|positions| rates_at_least(candidate.rates(), &positions, base.rates()))
}

/// [`predicts_overload`] for keys read from files (names as written there).
pub fn key_predicts_overload(candidate: &ConfigKey, base: &ConfigKey) -> bool {
    base.functions().len() < candidate.functions().len()
        && subset_positions(base.functions(), candidate.functions())
            .is_some_and(|positions| rates_at_least(candidate.rates(), &positions, base.rates()))
}

/// Where each name of `subset` sits in `set` (both sorted), or `None` when
/// one is missing.
fn subset_positions<T: PartialEq>(subset: &[T], set: &[T]) -> Option<Vec<usize>> {
    let mut positions = Vec::with_capacity(subset.len());
    let mut from = 0;
    for name in subset {
        let at = from + set[from..].iter().position(|n| n == name)?;
        positions.push(at);
        from = at + 1;
    }
    Some(positions)
}

/// `rates[positions[i]] >= base[i]` for every `i`.
fn rates_at_least(rates: &[u64], positions: &[usize], base: &[u64]) -> bool {
    positions.iter().zip(base).all(|(&at, &b)| rates[at] >= b)
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

    /// `true` when `config` [`predicts_overload`] from some remembered
    /// overloaded configuration of a strict subset of its functions.
    /// Answers equal those of a memory that kept every entry: a bucket
    /// keeps the minimal rate vectors, and `>=` one of those is what
    /// `>=` any entry it replaced implies.
    pub fn predicts_overload(&self, config: &Configuration) -> bool {
        let functions = config.functions();
        let n = functions.len();
        if n < 2 || self.buckets.is_empty() {
            return false;
        }
        let kept_covers = |bucket: &Vec<Vec<u64>>, positions: &[usize]| {
            bucket
                .iter()
                .any(|kept| rates_at_least(config.rates(), positions, kept))
        };
        // Walk the remembered function sets or the strict subsets of the
        // configuration's, whichever are fewer.
        let subsets = u32::try_from(n)
            .ok()
            .and_then(|n| 1u64.checked_shl(n))
            .map_or(u64::MAX, |all| all - 2);
        if u64::try_from(self.buckets.len()).unwrap_or(u64::MAX) <= subsets {
            return self.buckets.iter().any(|(set, bucket)| {
                set.len() < n
                    && subset_positions(set, functions)
                        .is_some_and(|positions| kept_covers(bucket, &positions))
            });
        }
        // Fewer subsets than buckets: n < 64 here.
        (1..(1u64 << n) - 1).any(|mask| {
            let positions: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            let set: Vec<FunctionName> = positions.iter().map(|&i| functions[i].clone()).collect();
            self.buckets
                .get(&set)
                .is_some_and(|bucket| kept_covers(bucket, &positions))
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
    fn prediction_table() {
        type Pairs = &'static [(&'static str, u64)];
        // (candidate, overloaded base, predicted)
        let cases: &[(Pairs, Pairs, bool)] = &[
            (&[("env", 0), ("figlet", 10)], &[("figlet", 10)], true),
            (&[("env", 5), ("figlet", 20)], &[("figlet", 10)], true),
            (&[("env", 5), ("figlet", 9)], &[("figlet", 10)], false),
            // The same set is the dominance rule's business, not this one.
            (&[("figlet", 20)], &[("figlet", 10)], false),
            (
                &[("env", 5), ("figlet", 20)],
                &[("env", 5), ("figlet", 10)],
                false,
            ),
            // Not a subset.
            (&[("env", 50), ("figlet", 50)], &[("ascii", 10)], false),
            (
                &[("a", 1), ("env", 50), ("figlet", 50)],
                &[("a", 1), ("figlet", 50)],
                true,
            ),
            (
                &[("a", 1), ("env", 50), ("figlet", 50)],
                &[("a", 2), ("figlet", 50)],
                false,
            ),
            // Fewer functions never predict from more.
            (&[("figlet", 50)], &[("env", 0), ("figlet", 10)], false),
        ];
        for (cand, base, want) in cases {
            assert_eq!(
                predicts_overload(&config(cand), &config(base)),
                *want,
                "{cand:?} from {base:?}"
            );
            let mut m = OverloadMemory::new();
            m.remember(&config(base));
            assert_eq!(
                m.predicts_overload(&config(cand)),
                *want,
                "{cand:?} from {base:?}"
            );
        }
    }

    #[test]
    fn memory_predicts_through_either_walk() {
        let mut m = OverloadMemory::new();
        m.remember(&config(&[("figlet", 30)]));
        m.remember(&config(&[("figlet", 20)])); // prunes 30
        m.remember(&config(&[("env", 40), ("ascii", 5)]));
        for other in ["b", "c", "d", "e", "f", "g"] {
            m.remember(&config(&[(other, 1)]));
        }
        // 3 functions: 6 strict subsets, fewer than the 8 buckets.
        let three = config(&[("ascii", 5), ("env", 40), ("figlet", 1)]);
        assert!(m.predicts_overload(&three));
        let three = config(&[("ascii", 5), ("env", 39), ("figlet", 19)]);
        assert!(!m.predicts_overload(&three));
        // Equal to the pruned entry: still predicted (20 <= 30).
        assert!(m.predicts_overload(&config(&[("env", 0), ("figlet", 30)])));
        assert!(m.predicts_overload(&config(&[("env", 0), ("figlet", 20)])));
        assert!(!m.predicts_overload(&config(&[("env", 0), ("figlet", 19)])));
        assert!(!m.predicts_overload(&config(&[("figlet", 99)])));
        // Many functions: the buckets are walked.
        let wide: Vec<(&str, u64)> = ["a", "ascii", "env", "h", "i", "j", "k", "l"]
            .iter()
            .map(|&f| (f, 0))
            .collect();
        assert!(!m.predicts_overload(&config(&wide)));
        let mut wide = wide;
        wide.push(("figlet", 20));
        assert!(m.predicts_overload(&config(&wide)));
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
