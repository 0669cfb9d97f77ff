//! k6: script generation (pure), summary parsing (pure), remote runner (SSH).
//!
//! [`script`] turns one configuration (functions × rates) into the k6
//! JavaScript that loads it; [`summary`] reads back what k6 reported about
//! that script. Both derive every k6 identifier from the function name
//! through [`metric_names`], so the two always agree without passing a
//! side table between them.

pub mod merge;
pub mod runner;
pub mod saturation;
pub mod script;
pub mod summary;

pub use script::{metric_names, MetricNames};
