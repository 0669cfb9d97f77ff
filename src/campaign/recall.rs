//! What the campaign memory already holds, folded into the resume logic
//! (`memory.skip_known`).
//!
//! A configuration whose iterations are all in memory is skipped as
//! `already_in_memory`, and counts as overloaded for dominance when most
//! of its iterations were; one known in part runs only its missing
//! iterations. The output directory's own files win: a configuration
//! indexed there, or with rows in its results.csv, resumes from them as
//! before, so the CSVs of a directory always stay whole. Pure: the memory
//! was read before ([`crate::memory::MemoryStore::known_all`]).

use std::collections::{HashMap, HashSet};

use crate::memory::Known;
use crate::output::resume::CompletedIterations;
use crate::plan::{ConfigKey, OverloadMemory};

use super::{configuration_of, verdict};

/// The memory's configurations that this output directory knows nothing of.
#[derive(Debug, Default)]
pub(super) struct Recalled {
    /// Every iteration known: skipped.
    complete: HashSet<ConfigKey>,
    /// Some iterations known: the rest run.
    partial: HashMap<ConfigKey, Known>,
}

impl Recalled {
    /// Sorts `known` (the memory's configurations for this campaign's
    /// duration and queries) into complete and partial ones, leaving out
    /// those `indexed` or `in_results` already have, and remembers the
    /// complete ones overloaded in most of their `iterations` in
    /// `overloads`.
    pub(super) fn fold(
        known: HashMap<ConfigKey, Known>,
        indexed: &HashSet<ConfigKey>,
        in_results: &HashMap<ConfigKey, CompletedIterations>,
        iterations: u32,
        overloads: &mut OverloadMemory,
    ) -> Recalled {
        let mut recalled = Recalled::default();
        for (key, known) in known {
            if indexed.contains(&key) || in_results.contains_key(&key) {
                continue;
            }
            if known.is_complete(iterations) {
                if verdict::config_overloaded(known.overloaded_iterations(iterations), iterations) {
                    if let Some(config) = configuration_of(&key) {
                        overloads.remember(&config);
                    }
                }
                recalled.complete.insert(key);
            } else if !known.iterations.is_empty() {
                recalled.partial.insert(key, known);
            }
        }
        recalled
    }

    pub(super) fn is_complete(&self, key: &ConfigKey) -> bool {
        self.complete.contains(key)
    }

    /// How many configurations the memory answers in full and in part.
    pub(super) fn counts(&self) -> (usize, usize) {
        (self.complete.len(), self.partial.len())
    }

    /// The memory's part of `key`, taken (a configuration runs once).
    pub(super) fn take_partial(&mut self, key: &ConfigKey) -> Option<Known> {
        self.partial.remove(key)
    }
}

/// Where a configuration starts: what is done and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resume {
    /// Iterations already measured (by results.csv or the memory).
    pub done: u32,
    /// Of those, iterations that overloaded the node.
    pub overloaded: u32,
    /// The iterations to run, in order.
    pub to_run: Vec<u32>,
}

impl Resume {
    /// From results.csv's rows when there are any (its iterations are
    /// `1..=rows`), else from the memory's known iterations.
    pub(super) fn of(
        csv: Option<CompletedIterations>,
        memory: Option<Known>,
        iterations: u32,
    ) -> Resume {
        match (csv, memory) {
            (Some(done), _) => Resume {
                done: done.rows,
                overloaded: done.overloaded,
                to_run: ((done.rows + 1)..=iterations).collect(),
            },
            (None, Some(known)) => {
                let to_run = known.missing(iterations);
                let total = u32::try_from(to_run.len()).unwrap_or(u32::MAX);
                Resume {
                    done: iterations.saturating_sub(total),
                    overloaded: known.overloaded_iterations(iterations),
                    to_run,
                }
            }
            (None, None) => Resume {
                done: 0,
                overloaded: 0,
                to_run: (1..=iterations).collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn key(functions: &[&str], rates: &[u64]) -> ConfigKey {
        ConfigKey::new(
            functions.iter().map(|f| f.to_string()).collect(),
            rates.to_vec(),
        )
        .unwrap()
    }

    fn known(iterations: &[(u32, bool)]) -> Known {
        Known {
            iterations: iterations.iter().copied().collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn the_output_directory_wins_and_complete_overloads_count_for_dominance() {
        let memory = HashMap::from([
            (
                key(&["a"], &[10]),
                known(&[(1, true), (2, true), (3, false)]),
            ),
            (
                key(&["a"], &[5]),
                known(&[(1, false), (2, false), (3, false)]),
            ),
            (key(&["a"], &[7]), known(&[(1, false)])),
            (key(&["a"], &[8]), known(&[(1, true), (2, true), (3, true)])),
            (key(&["a"], &[9]), known(&[(1, true), (2, true), (3, true)])),
        ]);
        let indexed = HashSet::from([key(&["a"], &[8])]);
        let in_results = HashMap::from([(
            key(&["a"], &[9]),
            CompletedIterations {
                rows: 1,
                overloaded: 1,
            },
        )]);
        let mut overloads = OverloadMemory::new();
        let mut recalled = Recalled::fold(memory, &indexed, &in_results, 3, &mut overloads);
        assert_eq!(recalled.counts(), (2, 1));
        assert!(recalled.is_complete(&key(&["a"], &[10])));
        assert!(recalled.is_complete(&key(&["a"], &[5])));
        assert!(!recalled.is_complete(&key(&["a"], &[8])));
        assert!(recalled.take_partial(&key(&["a"], &[9])).is_none());
        assert!(recalled.take_partial(&key(&["a"], &[7])).is_some());
        assert!(recalled.take_partial(&key(&["a"], &[7])).is_none());
        // a=10 overloaded in 2 of 3: remembered; a=8 is the index's business.
        assert_eq!(overloads.kept_len(), 1);
        let a = |rate| {
            crate::plan::Configuration::from_pairs([(
                crate::config::FunctionName::parse("a").unwrap(),
                rate,
            )])
            .unwrap()
        };
        assert!(overloads.dominates_any(&a(11)));
        assert!(!overloads.dominates_any(&a(10)));
    }

    #[test]
    fn more_iterations_than_known_makes_a_complete_configuration_partial() {
        let memory = HashMap::from([(key(&["a"], &[1]), known(&[(1, false), (2, false)]))]);
        let mut overloads = OverloadMemory::new();
        let mut recalled =
            Recalled::fold(memory, &HashSet::new(), &HashMap::new(), 3, &mut overloads);
        assert_eq!(recalled.counts(), (0, 1));
        let part = recalled.take_partial(&key(&["a"], &[1]));
        assert_eq!(
            Resume::of(None, part, 3),
            Resume {
                done: 2,
                overloaded: 0,
                to_run: vec![3]
            }
        );
    }

    #[test]
    fn resume_from_results_from_memory_or_from_scratch() {
        let csv = CompletedIterations {
            rows: 1,
            overloaded: 1,
        };
        let memory = known(&[(1, true), (3, true)]);
        assert_eq!(
            Resume::of(Some(csv), Some(memory.clone()), 3),
            Resume {
                done: 1,
                overloaded: 1,
                to_run: vec![2, 3]
            }
        );
        assert_eq!(
            Resume::of(None, Some(memory), 3),
            Resume {
                done: 2,
                overloaded: 2,
                to_run: vec![2]
            }
        );
        assert_eq!(
            Resume::of(None, None, 2),
            Resume {
                done: 0,
                overloaded: 0,
                to_run: vec![1, 2]
            }
        );
    }
}
