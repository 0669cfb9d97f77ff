//! `lb-dfaas serve` through real clients: the built binary as a child
//! process, reqwest for HTTP, tokio-tungstenite for the WebSocket, and
//! Debian's headless Chromium driven over the DevTools protocol for the
//! dashboard; campaigns and suites run against the real testbed (k6 over
//! SSH in a network namespace, the test gateway, Prometheus).
//!
//! - `api`: bad input of every kind gets its 4xx as JSON and the server
//!   goes on serving; the token, the loopback rule, the browser guard and
//!   CORS; the configuration survives a restart and resets; jobs whose
//!   k6 host is unreachable fail and say why;
//! - `suite`: a script suite to completion (a passing and a failing
//!   script), a second start refused, a suite stopped midway (the remote
//!   k6 gone, the status `stopped`), and SIGTERM to the server stopping a
//!   running suite first;
//! - `campaign`: a campaign to completion with the same outputs as
//!   `lb-dfaas run`, and a campaign stopped midway;
//! - `dashboard`: the page in Chromium — field errors, start, progress
//!   arriving over the WebSocket, stop, stopped — with a screenshot kept
//!   in `target/serve-dashboard.png`.
//!
//! The tests run one at a time (they share two cores with the testbed)
//! on the fixed testbed ids 170-173. Needs root (network namespaces) and
//! what scripts/setup.sh installs.

mod support;

#[path = "e2e/harness.rs"]
mod harness;

#[path = "serve/cdp.rs"]
mod cdp;
#[path = "serve/server.rs"]
mod server;

#[path = "serve/api.rs"]
mod api;
#[path = "serve/campaign.rs"]
mod campaign;
#[path = "serve/dashboard.rs"]
mod dashboard;
#[path = "serve/suite.rs"]
mod suite;
