//! The campaign loop: baseline, skips, cooldown, k6, metrics, verdicts, rows.

pub mod verdict;
