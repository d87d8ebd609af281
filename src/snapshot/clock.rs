//! Clocks of the tick loop: absolute monotonic deadlines slept with
//! `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` (no drift),
//! CLOCK_REALTIME nanoseconds for the time recorded in a block, and the steady
//! clock retention measures ages on: CLOCK_BOOTTIME (it counts suspend and is
//! never stepped) plus an offset the chain keeps, so that a wall-clock step
//! can neither delete every snapshot at once nor keep "future" ones.

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

/// CLOCK_BOOTTIME in ns: monotonic, including time suspended.
pub fn boottime_ns() -> i64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME).map(ts_ns).unwrap_or(0)
}

/// The kernel's identifier of the current boot (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?.trim().to_string())
}

/// One instant on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// CLOCK_REALTIME, recorded in blocks.
    pub wall_ns: i64,
    /// The steady clock, which retention ages are measured on.
    pub steady_ns: i64,
}

/// The steady clock: CLOCK_BOOTTIME plus an offset. Within one boot the offset
/// stays fixed (the chain stores it with the boot's id); after a reboot it is
/// chosen so that the clock continues from the newest block, bridging the
/// downtime with the wall clock but never going backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteadyClock {
    offset_ns: i64,
}

impl SteadyClock {
    /// The clock for this boot. `anchor` is the (boot id, offset) the chain
    /// stored; `head` the newest block's (steady, wall) times.
    pub fn resume(
        boot_id: &str,
        anchor: Option<(String, i64)>,
        head: Option<(i64, i64)>,
        wall_ns: i64,
        boot_ns: i64,
    ) -> SteadyClock {
        if let Some((id, offset_ns)) = anchor
            && id == boot_id
        {
            return SteadyClock { offset_ns };
        }
        let start = match head {
            Some((steady, wall)) => steady.saturating_add(wall_ns.saturating_sub(wall).max(0)),
            None => wall_ns,
        };
        SteadyClock { offset_ns: start.saturating_sub(boot_ns) }
    }
    pub fn offset_ns(&self) -> i64 {
        self.offset_ns
    }
    /// The current instant on both clocks.
    pub fn now(&self) -> Now {
        Now { wall_ns: realtime_ns(), steady_ns: boottime_ns().saturating_add(self.offset_ns) }
    }
}

/// A wall-clock step larger than this between two instants is reported.
pub const STEP_THRESHOLD_NS: i64 = 1_000_000_000;

/// How far the wall clock moved against the steady clock from `before` to `after`
/// (0 when they advanced together within [`STEP_THRESHOLD_NS`]).
pub fn wall_step_ns(before: Now, after: Now) -> i64 {
    let step = (after.wall_ns - before.wall_ns) - (after.steady_ns - before.steady_ns);
    if step.abs() > STEP_THRESHOLD_NS { step } else { 0 }
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
    fn the_steady_clock_continues_within_a_boot_and_across_reboots() {
        // Same boot: the stored offset, whatever the wall clock says now.
        let c = SteadyClock::resume("b1", Some(("b1".into(), 500)), Some((9_000, 9_000)), 1, 100);
        assert_eq!(c.offset_ns(), 500);
        // A reboot: continue from the head, bridging the downtime by the wall clock...
        let c = SteadyClock::resume("b2", Some(("b1".into(), 500)), Some((9_000, 10_000)), 10_700, 100);
        assert_eq!(c.offset_ns(), 9_000 + 700 - 100);
        // ...but never backwards, even when the wall clock is now behind the head.
        let c = SteadyClock::resume("b2", None, Some((9_000, 10_000)), 4_000, 100);
        assert_eq!(c.offset_ns(), 9_000 - 100);
        // An empty chain starts at the wall clock.
        assert_eq!(SteadyClock::resume("b2", None, None, 4_000, 100).offset_ns(), 3_900);
    }

    #[test]
    fn wall_steps_are_told_from_drift() {
        let a = Now { wall_ns: 0, steady_ns: 0 };
        let hour = 3_600_000_000_000;
        assert_eq!(wall_step_ns(a, Now { wall_ns: 1_000_000_000 + hour, steady_ns: 1_000_000_000 }), hour);
        assert_eq!(wall_step_ns(a, Now { wall_ns: 1_000_000_000 - hour, steady_ns: 1_000_000_000 }), -hour);
        assert_eq!(wall_step_ns(a, Now { wall_ns: 1_000_500_000, steady_ns: 1_000_000_000 }), 0);
    }

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
