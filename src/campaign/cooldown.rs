//! Waiting for the node to be idle again before an iteration.
//!
//! Polls node readings and replicas, sleeping `sleep_step` between polls,
//! until [`verdict::is_idle`] holds or `max_wait` has passed. The time
//! waited becomes the row's `rest_seconds`; the snapshot that ended the
//! wait becomes its `*_idle_*` values.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Cooldown, FunctionName};

use super::services::Measurements;
use super::verdict::{self, NodeReading};
use crate::stop::Stop;

/// How a cooldown ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CooldownEnd {
    Idle {
        snapshot: NodeReading,
        /// Whole seconds slept before the idle snapshot.
        rest_seconds: u64,
    },
    TimedOut {
        waited_seconds: u64,
        last: NodeReading,
        replicas: BTreeMap<String, u64>,
    },
    Interrupted,
}

/// Waits until the node is idle relative to `baseline`. Warnings from the
/// readings go to `warn`.
pub(crate) async fn wait_for_idle<M: Measurements>(
    meter: &M,
    baseline: &NodeReading,
    functions: &[FunctionName],
    cooldown: &Cooldown,
    stop: &Stop,
    warn: &mut dyn FnMut(String),
) -> CooldownEnd {
    let mut waited = Duration::ZERO;
    loop {
        if stop.is_stopped() {
            return CooldownEnd::Interrupted;
        }
        let reading = meter.node_snapshot().await;
        if stop.is_stopped() {
            return CooldownEnd::Interrupted;
        }
        reading.warnings.into_iter().for_each(&mut *warn);
        // Only counts the gateway gave: an unknown one (gateway down, a
        // function it does not list) does not hold the cooldown, like a
        // NaN reading.
        let replicas = match meter.replicas().await {
            Ok(all) => functions
                .iter()
                .filter_map(|f| all.get(f.as_str()).map(|r| (f.to_string(), *r)))
                .collect(),
            Err(_) if stop.is_stopped() => return CooldownEnd::Interrupted,
            Err(reason) => {
                warn(format!("replicas unknown during cooldown: {reason}"));
                BTreeMap::new()
            }
        };
        if verdict::is_idle(
            &reading.value,
            baseline,
            cooldown.idle_threshold_pct,
            replicas.values(),
        ) {
            return CooldownEnd::Idle {
                snapshot: reading.value,
                rest_seconds: waited.as_secs(),
            };
        }
        let remaining = cooldown.max_wait.saturating_sub(waited);
        if remaining.is_zero() {
            return CooldownEnd::TimedOut {
                waited_seconds: waited.as_secs(),
                last: reading.value,
                replicas,
            };
        }
        let nap = cooldown.sleep_step.min(remaining);
        if !stop.sleep(nap).await {
            return CooldownEnd::Interrupted;
        }
        waited += nap;
    }
}
