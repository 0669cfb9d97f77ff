//! lb-dfaas: DFaaS sampling campaigns for linux-benchmark-lib.
//!
//! The binary reads a request (config + context) and either describes
//! itself, validates, plans, prints a k6 script, or runs a whole campaign:
//! k6 on a remote load generator over one multiplexed SSH connection,
//! node and function metrics from Prometheus, overload verdicts, and CSV
//! datasets compatible with the legacy DFaaS sampler.
//!
//! `serve` offers the same campaign, and suites of k6 scripts, behind a
//! control API with a live WebSocket and a browser dashboard.
//!
//! Pure logic (config validation, planning, script generation, summary
//! parsing, verdicts, CSV rows) lives apart from I/O (SSH, HTTP, files) so
//! that it can be tested on plain data.

pub mod campaign;
pub mod cli;
pub mod config;
pub mod context;
pub mod events;
pub mod html_report;
pub mod k6;
pub mod lb_install;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod serve;
pub mod session;
pub mod stop;
pub mod terminal_progress;
