//! What every GhostBridge daemon shares: the config contract (`check-config`),
//! exit codes and error reports, stop signals, back-off, logging with journald
//! severities, durations, the Prometheus textfile writer and systemd
//! readiness/watchdog notification.

pub mod backoff;
pub mod config;
pub mod duration;
pub mod exit;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod signals;
