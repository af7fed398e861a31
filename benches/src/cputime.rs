//! Run time measured as the calling thread's CPU time, for the code-speed
//! comparisons. On a shared, loaded machine a call of a few milliseconds
//! is rarely left alone for a whole time slice: wall-clock time then
//! includes other processes' slices, and even the fastest of many samples
//! keeps some of it. Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) counts
//! only the time the calling thread ran. The engines compared take turns
//! call by call ([`fastest_interleaved`]), so a slow phase of the machine
//! (cache or memory-bandwidth pressure from neighbours, which CPU time
//! does not remove) falls on all of them alike.

use crate::measure::Budget;
use std::time::{Duration, Instant};

/// CPU time the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, and
    // `CLOCK_THREAD_CPUTIME_ID` is a clock Linux always provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The thread CPU time `f` takes.
pub fn cpu_time_of<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    let t = thread_cpu_time();
    let r = f();
    (thread_cpu_time() - t, r)
}

/// The fastest thread-CPU time of `call(k)` for each of `n` engines
/// (`k` in `0..n`), the engines taking turns round by round until the
/// budget's time and round counts are met (its wall-clock `min_time`
/// bounds the whole measurement).
pub fn fastest_interleaved(
    budget: Budget,
    n: usize,
    mut call: impl FnMut(usize) -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    let mut best = vec![Duration::MAX; n];
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < budget.max_iters
        && (rounds < budget.min_iters || started.elapsed() < budget.min_time)
    {
        for (k, b) in best.iter_mut().enumerate() {
            let (d, r) = cpu_time_of(|| call(k));
            r?;
            *b = (*b).min(d);
        }
        rounds += 1;
    }
    if rounds == 0 {
        return Err("no sample taken".into());
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_work_and_not_sleep() {
        let (slept, _) = cpu_time_of(|| std::thread::sleep(Duration::from_millis(50)));
        assert!(slept < Duration::from_millis(25), "sleeping used {slept:?}");
        let wall = Instant::now();
        let (worked, x) = cpu_time_of(|| {
            (0..20_000_000u64).fold(0u64, |x, i| std::hint::black_box(x.wrapping_add(i)))
        });
        let wall = wall.elapsed();
        assert!(x > 0);
        assert!(worked > Duration::ZERO, "a busy loop used no CPU time");
        assert!(
            worked <= wall,
            "CPU time {worked:?} above wall time {wall:?}"
        );
    }

    #[test]
    fn every_engine_gets_its_own_minimum() {
        let budget = Budget {
            min_time: Duration::ZERO,
            min_iters: 3,
            max_iters: 3,
        };
        let mut calls = [0; 2];
        let best = fastest_interleaved(budget, 2, |k| {
            calls[k] += 1;
            if k == 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, [3, 3]);
        assert_eq!(best.len(), 2);
        assert!(fastest_interleaved(budget, 1, |_| Err("boom".into())).is_err());
    }
}
