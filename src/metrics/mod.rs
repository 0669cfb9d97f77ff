//! Measurements: Prometheus queries and the gateway's replica counts.
//!
//! - [`queries`]: the query file (lb's `queries.yml` format, bundled
//!   default) and PromQL rendering — pure;
//! - [`prometheus`]: the HTTP client and the reduction of answers to one
//!   number (series summed per timestamp, averaged over time);
//! - [`scrape`]: the scrape interval of the series queried, which bounds
//!   query windows and empty-answer retries;
//! - [`readings`]: the vocabulary every layer uses for what was measured
//!   (node readings, function metrics, an iteration's metrics and window);
//! - [`meter`]: node snapshots, per-iteration metrics and the core count,
//!   with failures turned into NaN plus warnings;
//! - [`gateway`]: replicas from the OpenFaaS gateway.
//!
//! Nothing here prints; warnings are returned as data for the caller to
//! report.

pub mod gateway;
mod http;
pub mod meter;
pub mod prometheus;
pub mod queries;
pub mod readings;
pub mod scrape;
