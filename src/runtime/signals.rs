//! SIGTERM and SIGINT as a stop flag that every daemon loop polls, registered
//! with `signal-hook` (the handler only stores to an atomic). Sleeps in the
//! loops are short or interruptible, so a stop is honoured within one wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Set once SIGTERM or SIGINT arrived.
#[derive(Debug, Clone)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Registers SIGTERM and SIGINT. A second signal of either kind while
    /// stopping ends the process at once (exit 1), as an operator expects
    /// from a second Ctrl-C.
    pub fn install() -> std::io::Result<Stop> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&flag))?;
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
        }
        Ok(Stop(flag))
    }

    /// A flag no signal sets (tests, one-shot commands).
    pub fn never() -> Stop {
        Stop(Arc::new(AtomicBool::new(false)))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Requests a stop from inside the program.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// The flag itself, for loops that take an `&AtomicBool`.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigterm_sets_the_flag_and_a_second_one_would_exit() {
        let stop = Stop::install().unwrap();
        assert!(!stop.requested());
        signal_hook::low_level::raise(SIGTERM).unwrap();
        assert!(stop.requested());
    }
}
