//! What the gateway knows about each function: its pool, the load it
//! carries, replicas, CPU burned, and two sets of counters — the monotonic
//! ones exported to Prometheus and the resettable "truth" that tests
//! compare datasets against.
//!
//! Owns no HTTP: the server calls [`Registry`] and renders its snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::functions::FunctionSpec;
use crate::pool::Pool;
use crate::scaling::{LoadWindow, ScalingRule};

/// Memory a function reports per replica, in bytes.
pub const MEMORY_PER_REPLICA_BYTES: u64 = 24 * 1024 * 1024;
/// Extra memory per call in the system (queued or running), in bytes.
pub const MEMORY_PER_CALL_BYTES: u64 = 2 * 1024 * 1024;

/// Per-function counters a test can reset. Only calls that *started*
/// after the last reset are counted, so a reset during load never yields
/// more answers than requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    /// Calls received.
    pub requests: u64,
    /// Calls answered 2xx.
    pub ok: u64,
    /// Calls answered with any other status.
    pub failed: u64,
    /// Calls whose client went away before the answer.
    pub abandoned: u64,
    /// Answers by status code.
    pub codes: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
struct Counters {
    requests_total: u64,
    responses_total: BTreeMap<u16, u64>,
    truth: Truth,
}

#[derive(Debug)]
pub struct Function {
    pub spec: FunctionSpec,
    pub pool: Pool,
    in_system: AtomicU32,
    peak_since_tick: AtomicU32,
    replicas: AtomicU32,
    cpu_ns_total: AtomicU64,
    window: Mutex<LoadWindow>,
    counters: Mutex<Counters>,
}

/// A function's state at one instant, for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub name: String,
    pub replicas: u32,
    pub in_system: u32,
    pub cpu_seconds_total: f64,
    pub memory_bytes: u64,
    pub requests_total: u64,
    pub responses_total: BTreeMap<u16, u64>,
}

/// Marks one call as present in the system (queued or running) until dropped.
pub struct InSystem(Arc<Function>);

impl Drop for InSystem {
    fn drop(&mut self) {
        self.0.in_system.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Function {
    fn new(
        spec: FunctionSpec,
        queue_capacity: usize,
        queue_timeout: Duration,
        window_len: usize,
    ) -> Self {
        let queue = spec.queue.unwrap_or(queue_capacity);
        let pool = Pool::new(spec.workers, queue, queue_timeout);
        Self {
            spec,
            pool,
            in_system: AtomicU32::new(0),
            peak_since_tick: AtomicU32::new(0),
            replicas: AtomicU32::new(1),
            cpu_ns_total: AtomicU64::new(0),
            window: Mutex::new(LoadWindow::new(window_len)),
            counters: Mutex::new(Counters::default()),
        }
    }

    pub fn enter(self: &Arc<Self>) -> InSystem {
        let now = self.in_system.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak_since_tick.fetch_max(now, Ordering::AcqRel);
        InSystem(Arc::clone(self))
    }

    pub fn add_cpu(&self, used: Duration) {
        let ns = u64::try_from(used.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_ns_total.fetch_add(ns, Ordering::AcqRel);
    }

    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Acquire)
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding this lock cannot leave the counters torn
        // (every update is a few integer adds), so keep going.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One sampling tick of the replica rule.
    fn tick(&self, rule: &ScalingRule) {
        let current = self.in_system.load(Ordering::Acquire);
        let peak = self
            .peak_since_tick
            .swap(current, Ordering::AcqRel)
            .max(current);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.push(peak);
        self.replicas
            .store(rule.desired_replicas(window.samples()), Ordering::Release);
    }

    pub fn snapshot(&self) -> Snapshot {
        let counters = self.counters();
        let replicas = self.replicas();
        let in_system = self.in_system.load(Ordering::Acquire);
        Snapshot {
            name: self.spec.name.clone(),
            replicas,
            in_system,
            cpu_seconds_total: self.cpu_ns_total.load(Ordering::Acquire) as f64 / 1e9,
            memory_bytes: u64::from(replicas) * MEMORY_PER_REPLICA_BYTES
                + u64::from(in_system) * MEMORY_PER_CALL_BYTES,
            requests_total: counters.requests_total,
            responses_total: counters.responses_total.clone(),
        }
    }
}

/// All functions, plus the truth epoch.
#[derive(Debug)]
pub struct Registry {
    functions: BTreeMap<String, Arc<Function>>,
    rule: ScalingRule,
    truth_epoch: AtomicU64,
}

/// A call's ticket for the truth counters: which epoch it started in.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl Registry {
    pub fn new(
        specs: Vec<FunctionSpec>,
        rule: ScalingRule,
        queue_capacity: usize,
        queue_timeout: Duration,
        window_len: usize,
    ) -> Self {
        let functions = specs
            .into_iter()
            .map(|s| {
                let name = s.name.clone();
                (
                    name,
                    Arc::new(Function::new(s, queue_capacity, queue_timeout, window_len)),
                )
            })
            .collect();
        Self {
            functions,
            rule,
            truth_epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Function>> {
        self.functions.get(name)
    }

    pub fn functions(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.functions.values()
    }

    pub fn tick(&self) {
        for f in self.functions.values() {
            f.tick(&self.rule);
        }
    }

    /// Counts a received call.
    pub fn received(&self, f: &Function) -> Ticket {
        let mut c = f.counters();
        // Read the epoch under the lock so a concurrent reset cannot split it.
        let ticket = Ticket(self.truth_epoch.load(Ordering::Acquire));
        c.requests_total += 1;
        c.truth.requests += 1;
        ticket
    }

    /// Counts an answered call.
    pub fn answered(&self, f: &Function, ticket: Ticket, code: u16) {
        let mut c = f.counters();
        *c.responses_total.entry(code).or_default() += 1;
        if ticket.0 == self.truth_epoch.load(Ordering::Acquire) {
            if (200..300).contains(&code) {
                c.truth.ok += 1;
            } else {
                c.truth.failed += 1;
            }
            *c.truth.codes.entry(code).or_default() += 1;
        }
    }

    /// Counts a call whose client went away before it was answered.
    pub fn abandoned(&self, f: &Function, ticket: Ticket) {
        let mut c = f.counters();
        if ticket.0 == self.truth_epoch.load(Ordering::Acquire) {
            c.truth.abandoned += 1;
        }
    }

    pub fn truth(&self) -> BTreeMap<String, Truth> {
        self.functions
            .iter()
            .map(|(name, f)| (name.clone(), f.counters().truth.clone()))
            .collect()
    }

    pub fn reset_truth(&self) {
        // Take every lock first so no call is half counted across the reset.
        let mut guards: Vec<_> = self.functions.values().map(|f| f.counters()).collect();
        self.truth_epoch.fetch_add(1, Ordering::AcqRel);
        for g in &mut guards {
            g.truth = Truth::default();
        }
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.functions.values().map(|f| f.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let specs = crate::functions::parse_spec("a=1,b=1").unwrap();
        Registry::new(specs, ScalingRule::default(), 4, Duration::from_secs(1), 3)
    }

    #[test]
    fn truth_counts_and_reset_ignores_calls_from_before() {
        let reg = registry();
        let a = Arc::clone(reg.get("a").unwrap());
        let t1 = reg.received(&a);
        reg.answered(&a, t1, 200);
        let t2 = reg.received(&a);
        reg.answered(&a, t2, 503);
        let t3 = reg.received(&a);
        reg.abandoned(&a, t3);
        let early = reg.received(&a);
        let truth = reg.truth();
        assert_eq!(truth["a"].requests, 4);
        assert_eq!(
            (truth["a"].ok, truth["a"].failed, truth["a"].abandoned),
            (1, 1, 1)
        );
        assert_eq!(truth["a"].codes, BTreeMap::from([(200, 1), (503, 1)]));
        assert_eq!(truth["b"], Truth::default());

        reg.reset_truth();
        reg.answered(&a, early, 200);
        assert_eq!(reg.truth()["a"], Truth::default());
        // Monotonic counters are untouched by the reset.
        let snap = a.snapshot();
        assert_eq!(snap.requests_total, 4);
        assert_eq!(snap.responses_total, BTreeMap::from([(200, 2), (503, 1)]));
    }

    #[test]
    fn replicas_follow_peak_load_and_fall_back() {
        let reg = registry();
        let a = Arc::clone(reg.get("a").unwrap());
        let calls: Vec<_> = (0..7).map(|_| a.enter()).collect();
        reg.tick();
        assert_eq!(a.replicas(), 4);
        drop(calls);
        assert_eq!(a.snapshot().in_system, 0);
        // The calls were present during the next interval too, so its peak
        // is 7 as well; with a window of 3 ticks the load then stays visible
        // for two more ticks.
        for _ in 0..3 {
            reg.tick();
            assert_eq!(a.replicas(), 4);
        }
        reg.tick();
        assert_eq!(a.replicas(), 1);
        assert_eq!(reg.get("b").unwrap().replicas(), 1);
    }

    #[test]
    fn short_bursts_between_ticks_are_seen() {
        let reg = registry();
        let a = Arc::clone(reg.get("a").unwrap());
        drop((0..5).map(|_| a.enter()).collect::<Vec<_>>());
        reg.tick();
        assert_eq!(a.replicas(), 3);
    }

    #[test]
    fn memory_and_cpu_in_snapshot() {
        let reg = registry();
        let a = Arc::clone(reg.get("a").unwrap());
        a.add_cpu(Duration::from_millis(1500));
        let _call = a.enter();
        let snap = a.snapshot();
        assert_eq!(snap.cpu_seconds_total, 1.5);
        assert_eq!(
            snap.memory_bytes,
            MEMORY_PER_REPLICA_BYTES + MEMORY_PER_CALL_BYTES
        );
    }
}
