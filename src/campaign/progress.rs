//! What a campaign reports while it runs, as typed values sent to
//! observers.
//!
//! The loop does not know who listens: the `LB_EVENT` lines lb reads
//! ([`crate::events`]), the live view on a terminal
//! ([`crate::terminal_progress`]), a test's recorder, a memory store, a
//! control API's WebSocket each implement [`Observer`] and get every
//! [`Progress`] value as it happens. Observers must be quick (they run on the campaign's
//! task) and must not fail the campaign: an observer that cannot do its
//! work reports that itself.
//!
//! This module formats nothing; turning a value into text is an
//! observer's business.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::metrics::readings::IterationMetrics;
use crate::output::ResultRow;
use crate::plan::{ConfigId, Configuration, SkipReason};

use crate::metrics::readings::NodeReading;

/// The run's settings, once at the start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunStarted<'a> {
    pub run_id: &'a str,
    pub host: &'a str,
    /// `user@host:port` of the k6 host, or `local` (k6 on this machine).
    pub k6_target: String,
    pub gateway_url: &'a str,
    pub prometheus_url: &'a str,
    pub output_dir: &'a std::path::Path,
}

/// The campaign's totals, once at the end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RunTotals<'a> {
    pub rows: usize,
    pub skipped: usize,
    pub indexed: usize,
    pub output_dir: &'a std::path::Path,
    /// The run's exit code (0: every executed configuration succeeded).
    pub exit_code: u8,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress<'a> {
    RunStarted(RunStarted<'a>),
    /// The idle node every cooldown compares against.
    Baseline {
        reading: &'a NodeReading,
        cores: f64,
    },
    /// The plan, once before its first configuration: how many
    /// configurations it holds (`None`: more than 2^128) and how many of
    /// them index.csv already records (they will be skipped).
    PlanCounted {
        configurations: Option<u128>,
        already_indexed: u128,
        iterations: u32,
        /// k6's time per iteration.
        duration: std::time::Duration,
    },
    /// A configuration begins; `resumed_after` iterations were already in
    /// results.csv (a rerun after a kill).
    ConfigStarted {
        id: &'a ConfigId,
        configuration: &'a Configuration,
        resumed_after: u32,
    },
    ConfigSkipped {
        id: &'a ConfigId,
        configuration: &'a Configuration,
        reason: SkipReason,
    },
    /// An operational failure; the run goes on.
    ConfigFailed {
        id: &'a ConfigId,
        configuration: &'a Configuration,
        iteration: u32,
        reason: &'a str,
    },
    /// Overloaded in most of its iterations: configurations dominating it
    /// will be skipped.
    ConfigOverloaded {
        id: &'a ConfigId,
        overloaded: u32,
        iterations: u32,
    },
    ConfigFinished {
        id: &'a ConfigId,
    },
    /// An iteration begins: the cooldown that waits for an idle node.
    CooldownStarted {
        id: &'a ConfigId,
        iteration: u32,
    },
    /// k6 is about to start, after `rest_seconds` of cooldown.
    IterationStarted {
        id: &'a ConfigId,
        iteration: u32,
        iterations: u32,
        rest_seconds: u64,
    },
    /// k6 finished; the replicas and metrics of the iteration are read
    /// next.
    LoadFinished {
        id: &'a ConfigId,
        iteration: u32,
    },
    /// The iteration's row is on disk.
    IterationFinished {
        id: &'a ConfigId,
        configuration: &'a Configuration,
        iteration: u32,
        row: &'a ResultRow,
        metrics: &'a IterationMetrics,
        summary: &'a Value,
        /// k6's start and end (the window the metrics were read over).
        started_at: SystemTime,
        ended_at: SystemTime,
    },
    IterationOverloaded {
        id: &'a ConfigId,
        iteration: u32,
    },
    /// The k6 host stopped answering beyond its reconnect bound; the run
    /// stops.
    GeneratorLost {
        id: &'a ConfigId,
        iteration: u32,
        reason: &'a str,
    },
    /// Something the user should know (a torn line repaired, a metric not
    /// measured, k6 thresholds failed).
    /// A load generator could not keep up with its share of the load: the
    /// iteration is discarded (retried when `retrying`, else its
    /// configuration fails as `generator_saturated`); never a node
    /// overload.
    GeneratorSaturated {
        id: &'a ConfigId,
        iteration: u32,
        generator: &'a str,
        reason: &'a str,
        retrying: bool,
    },
    Warning(&'a str),
    /// Something worth recording that is not a problem (how Prometheus
    /// samples).
    Note(&'a str),
    /// An output failure (a full disk) stops the campaign; what finished
    /// is on disk.
    OutputFailed(&'a str),
    /// One line of k6's own output.
    K6Line(&'a str),
    RunFinished(RunTotals<'a>),
}

/// Receives every progress value of a campaign.
pub(crate) trait Observer: Send + Sync {
    fn observe(&self, progress: &Progress<'_>);
}

/// Several observers as one, in order.
#[derive(Clone, Default)]
pub(crate) struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    pub(crate) fn new(observers: Vec<Arc<dyn Observer>>) -> Self {
        Observers(observers)
    }

    pub(crate) fn push(&mut self, observer: Arc<dyn Observer>) {
        self.0.push(observer);
    }
}

impl Observer for Observers {
    fn observe(&self, progress: &Progress<'_>) {
        for observer in &self.0 {
            observer.observe(progress);
        }
    }
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}
