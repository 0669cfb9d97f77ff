//! The `plan` document: the campaign's configurations in order, streamed
//! as JSON so a plan of millions of entries never sits in memory.
//!
//! Counts are exact and computed before the listing (from the plan's
//! closed-form count and the index), so they can lead the document. What
//! dominance will skip depends on measurements and cannot be predicted:
//! only `already_indexed` skips are shown.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::{
    estimated_runtime_s, runtime_upper_bound_s, IndexedConfigs, Plan, PlanError, SkipReason,
};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum PlanDocumentError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot write the plan document: {0}")]
    Write(#[from] io::Error),
}

/// The numbers at the head of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanCounts {
    /// Configurations in the plan.
    pub count: u128,
    /// Configurations that index.csv already records.
    pub already_indexed: u128,
    /// `count - already_indexed`: what a run would execute at most.
    pub to_run: u128,
    /// [`estimated_runtime_s`] of `to_run` configurations.
    pub estimated_runtime_s: u128,
    /// [`runtime_upper_bound_s`] of `to_run` configurations.
    pub runtime_upper_bound_s: u128,
}

impl PlanCounts {
    /// Exact counts without enumerating the plan: each index entry is looked
    /// up in the plan instead.
    pub(crate) fn new(
        config: &Config,
        plan: &Plan,
        indexed: &IndexedConfigs,
    ) -> Result<Self, PlanError> {
        let count = plan.count()?;
        let already_indexed = indexed.iter().filter(|k| plan.contains_key(k)).count() as u128;
        let to_run = count - already_indexed;
        Ok(PlanCounts {
            count,
            already_indexed,
            to_run,
            estimated_runtime_s: estimated_runtime_s(to_run, config.duration, config.iterations),
            runtime_upper_bound_s: runtime_upper_bound_s(to_run, config),
        })
    }
}

#[derive(Serialize)]
struct Head<'a> {
    functions: Vec<&'a str>,
    rates: &'a [u64],
    combinations: CombinationsJson,
    iterations: u32,
    duration: &'a str,
    count: u128,
    to_run: u128,
    already_indexed: u128,
    estimated_runtime_seconds: u128,
    runtime_upper_bound_seconds: u128,
}

#[derive(Serialize)]
struct CombinationsJson {
    min_functions: usize,
    max_functions: usize,
}

#[derive(Serialize)]
struct Entry<'a> {
    index: u64,
    config_id: &'a str,
    pairs: Vec<Pair<'a>>,
    skip: Option<SkipReason>,
}

#[derive(Serialize)]
struct Pair<'a> {
    function: &'a str,
    rate: u64,
}

/// Writes the plan document (one JSON object, newline-terminated):
///
/// `{"functions":[..],"rates":[..],"combinations":{..},"iterations":N,
/// "duration":"30s","count":N,"to_run":N,"already_indexed":N,
/// "estimated_runtime_seconds":N,"runtime_upper_bound_seconds":N,
/// "configurations":[{"index":0,
/// "config_id":"…","pairs":[{"function":"env","rate":0}],"skip":null}, …],
/// "truncated":false}`
///
/// `limit` caps how many configurations are listed (counts stay exact);
/// `truncated` says whether entries were left out. One configuration per
/// line inside the array, so the output can be followed with a pager.
pub fn write_plan_json<W: Write>(
    out: W,
    config: &Config,
    plan: &Plan,
    indexed: &IndexedConfigs,
    limit: Option<u64>,
) -> Result<PlanCounts, PlanDocumentError> {
    let counts = PlanCounts::new(config, plan, indexed)?;
    let mut out = BufWriter::new(out);
    let head = Head {
        functions: config.functions.iter().map(|f| f.name.as_str()).collect(),
        rates: &config.rates,
        combinations: CombinationsJson {
            min_functions: config.combinations.min_functions,
            max_functions: config.combinations.max_functions,
        },
        iterations: config.iterations,
        duration: &config.duration_text,
        count: counts.count,
        to_run: counts.to_run,
        already_indexed: counts.already_indexed,
        estimated_runtime_seconds: counts.estimated_runtime_s,
        runtime_upper_bound_seconds: counts.runtime_upper_bound_s,
    };
    let head = serde_json::to_string(&head).map_err(io::Error::from)?;
    // Reopen the object to append the streamed array.
    let head = head.strip_suffix('}').unwrap_or(&head);
    out.write_all(head.as_bytes())?;
    out.write_all(b",\"configurations\":[")?;

    let limit = limit.map_or(u128::MAX, u128::from);
    let mut listed: u128 = 0;
    for (index, configuration) in plan.iter().enumerate() {
        if listed == limit {
            break;
        }
        let id = configuration.config_id();
        let entry = Entry {
            index: index as u64,
            config_id: id.as_str(),
            pairs: configuration
                .pairs()
                .map(|(f, rate)| Pair {
                    function: f.as_str(),
                    rate,
                })
                .collect(),
            skip: indexed
                .contains(&configuration)
                .then_some(SkipReason::AlreadyIndexed),
        };
        out.write_all(if listed == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut out, &entry).map_err(io::Error::from)?;
        listed += 1;
    }
    let truncated = listed < counts.count;
    if listed > 0 {
        out.write_all(b"\n")?;
    }
    writeln!(out, "],\"truncated\":{truncated}}}")?;
    out.flush()?;
    Ok(counts)
}
