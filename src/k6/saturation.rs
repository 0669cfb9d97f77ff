//! Whether a load generator kept up with the load it was asked for (pure).
//!
//! A generator that runs out of CPU schedules fewer arrivals than the rate
//! asks for. Counted as failures, those arrivals would make the *node* look
//! overloaded, and every configuration dominating it would be skipped. So
//! each iteration also asks of every generator: how busy were its CPUs
//! over the k6 window (`/proc/stat` read at start and end through the same
//! SSH connection), and did k6 schedule every arrival of its share? A
//! generator above the threshold or short of arrivals marks the iteration
//! as saturated — never as a node overload.

use std::fmt;

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks not idle (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    /// All ticks (busy + idle + iowait).
    pub total: u64,
    /// `cpuN` lines: the generator's cores.
    pub cores: u32,
}

/// Reads `/proc/stat` text. `None` when it has no well-formed `cpu` line.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let mut times = None;
    let mut cores = 0;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let values: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
                if values.len() < 4 {
                    return None;
                }
                // user nice system idle iowait irq softirq steal (guest
                // time is already inside user/nice).
                let idle = values[3] + values.get(4).copied().unwrap_or(0);
                let total: u64 = values.iter().take(8).sum();
                times = Some((total.saturating_sub(idle), total));
            }
            Some(name) if name.starts_with("cpu") => cores += 1,
            _ => {}
        }
    }
    let (busy, total) = times?;
    Some(CpuTimes {
        busy,
        total,
        cores: cores.max(1),
    })
}

/// Share of the generator's CPU capacity in use between two readings, in
/// `[0, 1]`; `None` when no time passed or the counters went backwards.
pub fn busy_fraction(start: CpuTimes, end: CpuTimes) -> Option<f64> {
    let total = end.total.checked_sub(start.total)?;
    let busy = end.busy.checked_sub(start.busy)?;
    if total == 0 {
        return None;
    }
    Some((busy as f64 / total as f64).clamp(0.0, 1.0))
}

/// k6's own CPU ticks when it was resumed: the `k6-ticks N` line the
/// runner writes beside `/proc/stat`'s (utime + stime of its
/// `/proc/<pid>/stat`, in clock ticks).
pub fn parse_k6_ticks(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("k6-ticks "))
        .and_then(|n| n.trim().parse().ok())
}

/// Seconds of user + system CPU from a line of the shell's `times`
/// (`0m1.230s 0m0.450s`: the waited-for children, i.e. k6).
pub fn parse_times(line: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut fields = 0;
    for field in line.split_ascii_whitespace() {
        let (minutes, seconds) = field.strip_suffix('s')?.split_once('m')?;
        let minutes: f64 = minutes.parse().ok()?;
        let seconds: f64 = seconds.parse().ok()?;
        if !(minutes.is_finite() && seconds.is_finite()) || minutes < 0.0 || seconds < 0.0 {
            return None;
        }
        total += minutes * 60.0 + seconds;
        fields += 1;
    }
    (fields == 2).then_some(total)
}

/// Clock ticks per second of `/proc` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Share of the generator's CPU capacity that k6 itself used between two
/// `/proc/stat` readings: its CPU seconds at the end (`k6_seconds`, from
/// [`parse_times`]) less its ticks at the start ([`parse_k6_ticks`]),
/// over all cores' ticks in between. `None` when unknown or inconsistent.
pub fn k6_busy_fraction(
    k6_ticks_start: u64,
    k6_seconds: f64,
    start: CpuTimes,
    end: CpuTimes,
) -> Option<f64> {
    let total = end.total.checked_sub(start.total)?;
    if total == 0 {
        return None;
    }
    let used = k6_seconds * USER_HZ - k6_ticks_start as f64;
    // `times` rounds; a few ticks below the start reading is rounding.
    if used < -2.0 {
        return None;
    }
    Some((used.max(0.0) / total as f64).clamp(0.0, 1.0))
}

/// Why a generator is considered saturated.
#[derive(Debug, Clone, PartialEq)]
pub enum Saturation {
    /// Its CPUs were busier than the threshold over the k6 window.
    Cpu { busy_pct: f64, threshold_pct: f64 },
    /// k6 scheduled fewer arrivals than its share of the rate asks for.
    ShortOfArrivals { scheduled: u64, asked: u64 },
}

impl fmt::Display for Saturation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Saturation::Cpu {
                busy_pct,
                threshold_pct,
            } => write!(
                f,
                "its CPUs were {busy_pct:.1} % busy (threshold {threshold_pct:.1} %)"
            ),
            Saturation::ShortOfArrivals { scheduled, asked } => write!(
                f,
                "k6 scheduled {scheduled} of the {asked} arrivals its share asks for"
            ),
        }
    }
}

/// The verdict on one generator for one iteration. `busy` is
/// [`busy_fraction`] (unknown: no CPU verdict); `scheduled` the arrivals
/// k6 started or dropped over all functions, `asked` what its share of the
/// rate × duration asks for. k6 may schedule one arrival fewer per
/// function than asked when its ticker ends on a boundary, so
/// `functions` arrivals short is still keeping up.
pub fn saturation(
    busy: Option<f64>,
    threshold: f64,
    scheduled: u64,
    asked: u64,
    functions: u64,
) -> Option<Saturation> {
    if let Some(busy) = busy {
        if busy > threshold {
            return Some(Saturation::Cpu {
                busy_pct: busy * 100.0,
                threshold_pct: threshold * 100.0,
            });
        }
    }
    if scheduled.saturating_add(functions) < asked {
        return Some(Saturation::ShortOfArrivals { scheduled, asked });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_START: &str = "cpu  100 0 50 800 50 0 0 0 0 0\n\
        cpu0 50 0 25 400 25 0 0 0 0 0\n\
        cpu1 50 0 25 400 25 0 0 0 0 0\n\
        intr 1 2 3\nctxt 99\n";
    const STAT_END: &str = "cpu  280 0 110 840 70 0 0 0 0 0\n\
        cpu0 140 0 55 420 35 0 0 0 0 0\n\
        cpu1 140 0 55 420 35 0 0 0 0 0\n";

    #[test]
    fn proc_stat_gives_busy_and_total_ticks_and_the_cores() {
        let start = parse_proc_stat(STAT_START).unwrap();
        assert_eq!(
            start,
            CpuTimes {
                busy: 150,
                total: 1000,
                cores: 2
            }
        );
        let end = parse_proc_stat(STAT_END).unwrap();
        // 240 busy ticks of 300 elapsed.
        assert_eq!(busy_fraction(start, end), Some(0.8));
        assert_eq!(busy_fraction(end, start), None);
        assert_eq!(busy_fraction(start, start), None);
    }

    #[test]
    fn malformed_proc_stat_is_unknown() {
        for text in ["", "intr 1 2\n", "cpu  1 2\n", "cpu  a b c d\n"] {
            assert_eq!(parse_proc_stat(text), None, "{text:?}");
        }
    }

    #[test]
    fn k6_own_cpu_from_its_ticks_and_times() {
        assert_eq!(parse_k6_ticks("cpu  1 2 3 4\nk6-ticks 25\n"), Some(25));
        assert_eq!(parse_k6_ticks("cpu  1 2 3 4\n"), None);
        assert_eq!(parse_times("0m1.230000s 0m0.450000s"), Some(1.68));
        assert_eq!(parse_times("1m0.5s 0m0.5s"), Some(61.0));
        for bad in ["", "0m1s", "1.2 0.4", "0m1s 0mxs", "0m1s 0m2s 0m3s"] {
            assert_eq!(parse_times(bad), None, "{bad:?}");
        }
        let start = parse_proc_stat(STAT_START).unwrap();
        let end = parse_proc_stat(STAT_END).unwrap();
        // 300 ticks over both cores; k6 went from 20 ticks to 1.4 s = 140.
        let busy = k6_busy_fraction(20, 1.4, start, end).unwrap();
        assert!((busy - 0.4).abs() < 1e-12, "{busy}");
        assert_eq!(k6_busy_fraction(200, 1.4, start, end), None);
        assert_eq!(k6_busy_fraction(0, 1.0, start, start), None);
    }

    #[test]
    fn saturation_verdicts() {
        // (busy, scheduled, asked, functions, saturated?)
        let cases = [
            (Some(0.5), 1000, 1000, 1, None),
            (Some(0.95), 1000, 1000, 1, Some("cpu")),
            (None, 1000, 1000, 1, None),
            (Some(0.5), 999, 1000, 1, None),
            (Some(0.5), 998, 1000, 1, Some("short")),
            (Some(0.5), 1848, 2000, 2, Some("short")),
            (Some(0.5), 1998, 2000, 2, None),
        ];
        for (busy, scheduled, asked, functions, want) in cases {
            let got = saturation(busy, 0.9, scheduled, asked, functions);
            let kind = got.as_ref().map(|s| match s {
                Saturation::Cpu { .. } => "cpu",
                Saturation::ShortOfArrivals { .. } => "short",
            });
            assert_eq!(kind, want, "{busy:?} {scheduled}/{asked}: {got:?}");
        }
        let cpu = saturation(Some(0.95), 0.9, 10, 10, 1).unwrap();
        assert_eq!(
            cpu.to_string(),
            "its CPUs were 95.0 % busy (threshold 90.0 %)"
        );
    }
}
