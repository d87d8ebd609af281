//! The D-Bus side of the daemon: `org.ghostbridge.Snapshotter1` is served
//! when `dbus` is on, a signal goes out for each block, and a lost connection
//! is retried every [`BUS_RETRY`] without holding up the ticks.

use std::time::{Duration, Instant};

use super::PROGRAM;
use super::tick::Daemon;
use crate::bus::snapshotter::Publisher;
use crate::snapshot::chain::Block;

/// How often a lost D-Bus connection is retried.
const BUS_RETRY: Duration = Duration::from_secs(10);

impl Daemon {
    pub(super) fn publish(&mut self, block: &Block) {
        if !self.s.dbus {
            return;
        }
        if self.bus.is_none() && self.bus_retry_at.is_none_or(|t| Instant::now() >= t) {
            self.connect_bus();
        }
        if let Some(bus) = &self.bus
            && let Err(e) = bus.block_added(block.height, &block.hash, block.time_ns)
        {
            crate::log!(Warning, PROGRAM, "{e}; reconnecting later");
            *self.m.errors.entry("dbus").or_default() += 1;
            self.bus = None;
            self.bus_retry_at = Some(Instant::now() + BUS_RETRY);
        }
    }

    pub(super) fn connect_bus(&mut self) {
        if !self.s.dbus {
            return;
        }
        let head = self.store.as_ref().and_then(|s| s.head().ok().flatten()).map(|b| (b.height, b.hash, b.time_ns));
        match Publisher::connect(self.s.database.clone(), head) {
            Ok(p) => {
                crate::log!(Info, PROGRAM, "serving {} on D-Bus", crate::bus::snapshotter::BUS_NAME);
                self.bus = Some(p);
            }
            Err(e) => {
                crate::log!(Warning, PROGRAM, "{e}; retrying in {}s", BUS_RETRY.as_secs());
                *self.m.errors.entry("dbus").or_default() += 1;
                self.bus_retry_at = Some(Instant::now() + BUS_RETRY);
            }
        }
    }
}
