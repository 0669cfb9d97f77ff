//! Measurements: Prometheus queries and the gateway's replica counts.
