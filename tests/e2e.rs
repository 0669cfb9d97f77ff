//! End-to-end tests of `lb-dfaas run` against the real testbed: the built
//! binary as a child process, k6 over SSH in a network namespace, the test
//! gateway, node-exporter and Prometheus (see testbed/README.md).
//!
//! Every test owns its testbed instance (torn down in `Drop`) and its
//! directories (tempfile). The tests run one at a time (a process-wide
//! lock): the machine has two cores, and the measurements they check would
//! suffer from each other's load. Iterations last a few seconds.
//!
//! - `campaign`: a campaign reaching overload, its datasets checked cell by
//!   cell and against the gateway's own counters; the rerun that skips
//!   everything;
//! - `interrupt`: the stop file and SIGTERM during a k6 run; SIGKILL
//!   mid-configuration and the rerun that resumes;
//! - `environment`: an unreachable k6 host at start, Prometheus dying
//!   mid-campaign;
//! - `injection`: hostile function names, bodies, headers and k6 tags;
//! - `endpoints`: a gateway refusing the credentials, Prometheus
//!   unreachable or failing at start, stops while Prometheus hangs, 1 s
//!   iterations on a 1 s scrape, Prometheus behind TLS and basic auth;
//! - `memory`: the campaign memory under lb's workdir: the stop file, then
//!   lb-dfaas's collect tasks bring the DuckDB file to the controller where
//!   Python's duckdb reads it; SIGKILL mid-iteration and the rerun that runs
//!   only what the memory lacks.
//! - `terminal`: piped, stderr is the protocol whatever `--progress` says;
//!   on a pseudo-terminal, the live progress view and its counts;
//! - `local_k6`: lb's peva_faas config with k6 on this machine
//!   (`k6_host: local`): streamed output, measured rows, the stop file.

mod support;

#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/campaign.rs"]
mod campaign;
#[path = "e2e/endpoints.rs"]
mod endpoints;
#[path = "e2e/environment.rs"]
mod environment;
#[path = "e2e/generators.rs"]
mod generators;
#[path = "e2e/injection.rs"]
mod injection;
#[path = "e2e/interrupt.rs"]
mod interrupt;
#[path = "e2e/local_k6.rs"]
mod local_k6;
#[path = "e2e/memory.rs"]
mod memory;
#[path = "e2e/terminal.rs"]
mod terminal;
