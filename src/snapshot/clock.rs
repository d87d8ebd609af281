//! Clocks of the tick loop: absolute monotonic deadlines slept with
//! `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` (no drift), and
//! CLOCK_REALTIME nanoseconds for the time recorded in a block.

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> i64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map(ts_ns).unwrap_or(0)
}

/// CLOCK_REALTIME in ns since the epoch.
pub fn realtime_ns() -> i64 {
    clock_gettime(ClockId::CLOCK_REALTIME).map(ts_ns).unwrap_or(0)
}

fn ts_ns(ts: TimeSpec) -> i64 {
    ts.tv_sec().saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec())
}

/// Sleeps until the monotonic instant `deadline_ns`. Returns early (false) when
/// a signal interrupts the sleep, so the caller can look at its stop flag.
pub fn sleep_until(deadline_ns: i64) -> bool {
    let ts = TimeSpec::new(deadline_ns / 1_000_000_000, deadline_ns % 1_000_000_000);
    clock_nanosleep(ClockId::CLOCK_MONOTONIC, ClockNanosleepFlags::TIMER_ABSTIME, &ts).is_ok()
}

/// The deadline schedule: deadline k is `start + k * interval`. After a tick, the next
/// deadline is the first one still in the future; the ones already past are missed.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: i64,
    interval_ns: i64,
    k: i64,
}

impl Schedule {
    pub fn new(start_ns: i64, interval_ns: i64) -> Self {
        Schedule { start_ns, interval_ns: interval_ns.max(1), k: 0 }
    }
    /// The current deadline.
    pub fn deadline(&self) -> i64 {
        self.start_ns + self.k * self.interval_ns
    }
    /// Moves to the next deadline not before `now_ns + min_gap_ns`; returns how many
    /// deadlines were skipped because they were already past (`now_ns`).
    pub fn advance(&mut self, now_ns: i64, min_gap_ns: i64) -> u64 {
        self.k += 1;
        let mut missed = 0;
        if self.deadline() < now_ns {
            let behind = (now_ns - self.deadline()) / self.interval_ns + 1;
            self.k += behind;
            missed = behind as u64;
        }
        let earliest = now_ns + min_gap_ns;
        if self.deadline() < earliest {
            self.k += (earliest - self.deadline() + self.interval_ns - 1) / self.interval_ns;
        }
        missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_missed_deadlines_without_bursting() {
        let mut s = Schedule::new(1000, 100);
        assert_eq!(s.deadline(), 1000);
        assert_eq!(s.advance(1010, 0), 0);
        assert_eq!(s.deadline(), 1100);
        // the tick ran until 1350: 1200 and 1300 are past, the next is 1400
        assert_eq!(s.advance(1350, 0), 2);
        assert_eq!(s.deadline(), 1400);
        // exactly on a deadline counts that deadline as due, not missed
        assert_eq!(s.advance(1500, 0), 0);
        assert_eq!(s.deadline(), 1500);
        // a back-off of 250 from 1510: the next deadline at or after 1760 is 1800
        assert_eq!(s.advance(1510, 250), 0);
        assert_eq!(s.deadline(), 1800);
    }
}
