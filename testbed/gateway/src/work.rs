//! The CPU work one call does: a busy loop that runs until the calling
//! thread has consumed the requested amount of CPU time. Measuring thread
//! CPU time (not wall time) means that under contention a call takes longer
//! in wall time, as a real function on a saturated node would, and that the
//! CPU seconds reported to Prometheus are the ones actually burned.
//!
//! Call it only from a blocking thread.

use std::hint::black_box;
use std::time::Duration;

/// CPU time consumed so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is
    // supported on every Linux this runs on.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spins until this thread has used `cpu` of CPU time; returns the CPU time
/// actually used (slightly more than asked).
pub fn burn_cpu(cpu: Duration) -> Duration {
    let start = thread_cpu_time();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        for _ in 0..2_000 {
            // xorshift: cheap, not optimisable away.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        black_box(x);
        let used = thread_cpu_time().saturating_sub(start);
        if used >= cpu {
            return used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_at_least_what_was_asked() {
        let asked = Duration::from_millis(30);
        let used = burn_cpu(asked);
        assert!(used >= asked, "used {used:?} < asked {asked:?}");
        assert!(thread_cpu_time() >= used);
    }

    #[test]
    fn zero_work_returns_quickly() {
        assert!(burn_cpu(Duration::ZERO) < Duration::from_millis(50));
    }
}
