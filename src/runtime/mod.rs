//! What every GhostBridge daemon shares: the config contract (`check-config`),
//! exit codes and error reports, durations, the Prometheus textfile writer and
//! systemd readiness/watchdog notification.

pub mod config;
pub mod duration;
pub mod exit;
pub mod metrics;
pub mod notify;
