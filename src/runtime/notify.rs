//! systemd readiness and watchdog notification (sd_notify). Outside systemd
//! (no `NOTIFY_SOCKET`) every call is a no-op, so daemons run the same by hand.

use std::time::Duration;

/// Tells systemd the daemon finished start-up (after recovery).
pub fn ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// A one-line status shown by `systemctl status`.
pub fn status(text: &str) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(text)]);
}

/// Pings the watchdog.
pub fn watchdog() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
}

/// How often to ping: half of `WatchdogSec`, or `None` when no watchdog is set.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero()).map(|d| d / 2)
}
