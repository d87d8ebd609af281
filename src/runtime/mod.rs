//! What every GhostBridge daemon shares: durations, the Prometheus textfile
//! writer and systemd readiness/watchdog notification.

pub mod duration;
pub mod metrics;
pub mod notify;
