//! dfaas-test-gateway: a small gateway in OpenFaaS's HTTP shape for
//! lb-dfaas's testbed, where no container runtime (and so no OpenFaaS) can
//! run. Each function burns a configurable amount of real CPU per call
//! behind a bounded worker pool, reports replicas that follow its load,
//! exports cAdvisor-style series for Prometheus, and keeps a resettable
//! ground truth of what it received and answered.

pub mod cli;
pub mod exposition;
pub mod functions;
pub mod pool;
pub mod scaling;
pub mod server;
pub mod state;
pub mod work;
