//! Pure verdicts: is the node idle again (cooldown), is a function or the
//! node overloaded. No I/O, no clock: plain numbers in, booleans out.

use crate::config::Overload;
pub use crate::metrics::readings::NodeReading;

/// `current <= baseline * (1 + threshold_pct / 100)`; a NaN on either side
/// passes, as in the legacy sampler (an unknown reading must not block the
/// campaign forever; the NaN is reported where it was measured).
pub(crate) fn within_threshold(current: f64, baseline: f64, threshold_pct: f64) -> bool {
    if current.is_nan() || baseline.is_nan() {
        return true;
    }
    current <= baseline * (1.0 + threshold_pct / 100.0)
}

/// The node is idle when CPU, RAM and power are back within the threshold
/// of the baseline and every function has fewer than 2 replicas.
pub(crate) fn is_idle<'a>(
    current: &NodeReading,
    baseline: &NodeReading,
    threshold_pct: f64,
    replicas: impl IntoIterator<Item = &'a u64>,
) -> bool {
    within_threshold(current.cpu_pct, baseline.cpu_pct, threshold_pct)
        && within_threshold(current.ram_bytes, baseline.ram_bytes, threshold_pct)
        && within_threshold(current.power_uw, baseline.power_uw, threshold_pct)
        && replicas.into_iter().all(|&r| r < 2)
}

/// A function is overloaded when its success rate is below the minimum or
/// its replica count reached the threshold. Unknown replicas (`None`)
/// cannot trip the replica rule; the row says `nan` and a warning why.
pub(crate) fn function_overloaded(
    success_rate: f64,
    replicas: Option<u64>,
    overload: &Overload,
) -> bool {
    success_rate < overload.success_rate_function_min
        || replicas.is_some_and(|r| r >= overload.replicas_overload_threshold)
}

/// Inputs of the node verdict for one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NodeVerdictInput {
    /// Mean success rate over the configuration's functions (rate-0
    /// functions count with success 1, as in the legacy sampler).
    pub mean_success_rate: f64,
    pub cpu_pct: f64,
    pub ram_pct: f64,
    /// Cores of the target node; CPU capacity is `cores * 100` percent.
    pub cores: f64,
    pub any_function_overloaded: bool,
}

/// The node is overloaded when the mean success rate is too low, CPU use is
/// above `cpu_overload_pct_of_capacity` percent of the node's capacity
/// (cores x 100, since `cpu_usage_node` runs 0..cores x 100), RAM percent is
/// above its threshold, or any function is overloaded. NaN readings never
/// trigger a verdict by themselves. Unknown cores count as one core, the
/// legacy (strictest) reading of the threshold.
pub(crate) fn node_overloaded(input: &NodeVerdictInput, overload: &Overload) -> bool {
    let cores = if input.cores.is_finite() && input.cores >= 1.0 {
        input.cores
    } else {
        1.0
    };
    let cpu_limit_pct = overload.cpu_overload_pct_of_capacity * cores;
    input.mean_success_rate < overload.success_rate_node_min
        || input.cpu_pct > cpu_limit_pct
        || input.ram_pct > overload.ram_overload_pct
        || input.any_function_overloaded
}

/// Mean of the success rates; 1.0 for an empty configuration.
pub(crate) fn mean_success_rate(rates: &[f64]) -> f64 {
    if rates.is_empty() {
        return 1.0;
    }
    rates.iter().sum::<f64>() / rates.len() as f64
}

/// A configuration is remembered as overloaded when more than half of its
/// iterations were overloaded.
pub(crate) fn config_overloaded(overloaded_iterations: u32, iterations: u32) -> bool {
    u64::from(overloaded_iterations) * 2 > u64::from(iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overload() -> Overload {
        Overload {
            cpu_overload_pct_of_capacity: 80.0,
            ram_overload_pct: 90.0,
            success_rate_node_min: 0.95,
            success_rate_function_min: 0.90,
            replicas_overload_threshold: 15,
            skip_predicted: false,
        }
    }

    fn node(success: f64, cpu: f64, ram: f64, cores: f64, any: bool) -> NodeVerdictInput {
        NodeVerdictInput {
            mean_success_rate: success,
            cpu_pct: cpu,
            ram_pct: ram,
            cores,
            any_function_overloaded: any,
        }
    }

    #[test]
    fn threshold_table() {
        let cases = [
            (114.9, 100.0, 15.0, true),
            (115.1, 100.0, 15.0, false),
            (0.0, 0.0, 15.0, true),
            (0.1, 0.0, 15.0, false),
            (f64::NAN, 1.0, 15.0, true),
            (1.0, f64::NAN, 15.0, true),
        ];
        for (current, baseline, pct, want) in cases {
            assert_eq!(
                within_threshold(current, baseline, pct),
                want,
                "{current} vs {baseline}"
            );
        }
    }

    #[test]
    fn idle_needs_metrics_and_replicas() {
        let base = NodeReading {
            cpu_pct: 10.0,
            ram_bytes: 1e9,
            ram_pct: 20.0,
            power_uw: f64::NAN,
        };
        let calm = NodeReading {
            cpu_pct: 11.0,
            ram_bytes: 1.1e9,
            ram_pct: 21.0,
            power_uw: 5.0,
        };
        let busy = NodeReading {
            cpu_pct: 50.0,
            ..calm
        };
        assert!(is_idle(&calm, &base, 15.0, &[1, 1, 0]));
        assert!(!is_idle(&calm, &base, 15.0, &[1, 2]));
        assert!(!is_idle(&busy, &base, 15.0, &[1]));
        assert!(is_idle(&NodeReading::UNKNOWN, &base, 15.0, &[]));
    }

    #[test]
    fn function_verdict_table() {
        let o = overload();
        assert!(!function_overloaded(0.90, Some(14), &o));
        assert!(function_overloaded(0.899, Some(1), &o));
        assert!(function_overloaded(1.0, Some(15), &o));
        // Unknown replicas never trip the replica rule; success still does.
        assert!(!function_overloaded(1.0, None, &o));
        assert!(function_overloaded(0.5, None, &o));
    }

    #[test]
    fn cpu_threshold_is_relative_to_capacity() {
        let o = overload();
        // 2 cores: capacity 200 %, limit 160 %.
        assert!(!node_overloaded(&node(1.0, 150.0, 10.0, 2.0, false), &o));
        assert!(node_overloaded(&node(1.0, 160.5, 10.0, 2.0, false), &o));
        // Unknown cores: strict legacy reading (limit 80 %).
        assert!(node_overloaded(&node(1.0, 81.0, 10.0, f64::NAN, false), &o));
        assert!(!node_overloaded(
            &node(1.0, f64::NAN, f64::NAN, 2.0, false),
            &o
        ));
    }

    #[test]
    fn node_verdict_other_rules() {
        let o = overload();
        assert!(node_overloaded(&node(0.94, 1.0, 1.0, 2.0, false), &o));
        assert!(node_overloaded(&node(1.0, 1.0, 90.5, 2.0, false), &o));
        assert!(node_overloaded(&node(1.0, 1.0, 1.0, 2.0, true), &o));
        assert!(!node_overloaded(&node(0.95, 1.0, 90.0, 2.0, false), &o));
    }

    #[test]
    fn majority_rule() {
        assert!(!config_overloaded(1, 3));
        assert!(config_overloaded(2, 3));
        assert!(!config_overloaded(1, 2));
        assert!(config_overloaded(1, 1));
        assert!(!config_overloaded(0, 1));
    }

    #[test]
    fn mean_of_rates() {
        assert_eq!(mean_success_rate(&[]), 1.0);
        assert!((mean_success_rate(&[1.0, 0.5]) - 0.75).abs() < 1e-12);
    }
}
