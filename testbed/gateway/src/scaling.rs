//! The replica rule: how many replicas a function "has", derived from the
//! load it carries, the way OpenFaaS's autoscaler would report them.
//!
//! Pure: the caller samples load and keeps the window; nothing here reads
//! a clock.
//!
//! # The rule
//!
//! Every sampling tick (250 ms in the server) records the **peak
//! concurrency** of the function since the previous tick — calls queued plus
//! calls being worked on. The replica count is
//!
//! ```text
//! desired = clamp(ceil(max(peaks in the window) / target_concurrency_per_replica),
//!                 min_replicas, max_replicas)
//! ```
//!
//! over a window of the last few seconds (3 s by default). Scaling up is
//! therefore immediate (one tick), and scaling down back to `min_replicas`
//! happens once a whole window has passed without load — an idle function
//! falls back to 1 replica within a few seconds, as cooldown expects.

use std::collections::VecDeque;

/// Parameters of the replica rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingRule {
    /// Concurrent calls one replica is taken to carry.
    pub target_concurrency_per_replica: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

impl Default for ScalingRule {
    fn default() -> Self {
        Self {
            target_concurrency_per_replica: 2,
            min_replicas: 1,
            max_replicas: 20,
        }
    }
}

impl ScalingRule {
    /// Replicas for a window of peak-concurrency samples (empty = idle).
    pub fn desired_replicas(&self, window_peaks: impl IntoIterator<Item = u32>) -> u32 {
        let peak = window_peaks.into_iter().max().unwrap_or(0);
        let per_replica = self.target_concurrency_per_replica.max(1);
        let wanted = peak.div_ceil(per_replica);
        let min = self.min_replicas.max(1);
        wanted.clamp(min, self.max_replicas.max(min))
    }
}

/// The last `len` samples, oldest dropped first.
#[derive(Debug, Clone)]
pub struct LoadWindow {
    samples: VecDeque<u32>,
    len: usize,
}

impl LoadWindow {
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        Self {
            samples: VecDeque::with_capacity(len),
            len,
        }
    }

    pub fn push(&mut self, peak_concurrency: u32) {
        if self.samples.len() == self.len {
            self.samples.pop_front();
        }
        self.samples.push_back(peak_concurrency);
    }

    pub fn samples(&self) -> impl Iterator<Item = u32> + '_ {
        self.samples.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let rule = ScalingRule {
            target_concurrency_per_replica: 2,
            min_replicas: 1,
            max_replicas: 20,
        };
        let cases: &[(&[u32], u32)] = &[
            (&[], 1),
            (&[0, 0, 0], 1),
            (&[1], 1),
            (&[2], 1),
            (&[3], 2),
            (&[0, 7, 1], 4),
            (&[40], 20),
            (&[1000], 20),
        ];
        for (window, want) in cases {
            assert_eq!(
                rule.desired_replicas(window.iter().copied()),
                *want,
                "window {window:?}"
            );
        }
    }

    #[test]
    fn degenerate_rules_stay_sane() {
        let rule = ScalingRule {
            target_concurrency_per_replica: 0,
            min_replicas: 0,
            max_replicas: 0,
        };
        assert_eq!(rule.desired_replicas([0]), 1);
        assert_eq!(rule.desired_replicas([9]), 1);
        let rule = ScalingRule {
            target_concurrency_per_replica: 1,
            min_replicas: 3,
            max_replicas: 5,
        };
        assert_eq!(rule.desired_replicas([0]), 3);
        assert_eq!(rule.desired_replicas([4]), 4);
        assert_eq!(rule.desired_replicas([9]), 5);
    }

    #[test]
    fn window_scales_up_at_once_and_down_after_it_drains() {
        let rule = ScalingRule::default();
        let mut window = LoadWindow::new(3);
        let mut seen = Vec::new();
        for peak in [0, 10, 0, 0, 0, 0] {
            window.push(peak);
            seen.push(rule.desired_replicas(window.samples()));
        }
        assert_eq!(seen, vec![1, 5, 5, 5, 1, 1]);
    }
}
