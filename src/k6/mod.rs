//! k6: script generation (pure), summary parsing (pure), runners (over SSH,
//! or on this machine with `k6_host: local`).
//!
//! [`script`] turns one configuration (functions × rates) into the k6
//! JavaScript that loads it; [`summary`] reads back what k6 reported about
//! that script. Both derive every k6 identifier from the function name
//! through [`metric_names`], so the two always agree without passing a
//! side table between them.
//!
//! [`runner`] runs a script on the k6 host over SSH, or as a child process
//! here (`k6_host: local`, lb's peva_faas way); inside it, the SSH session,
//! the remote shell programs (pure), the local runner and the framing of
//! k6's log are separate modules. [`merge`] and [`saturation`] (pure) are the
//! pieces for splitting one configuration's load over several generators
//! (SPEC, "Several generators").

pub mod merge;
pub mod runner;
pub mod saturation;
pub mod script;
pub mod summary;

pub use script::{metric_names, MetricNames};
