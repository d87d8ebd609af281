//! D-Bus interfaces served by the GhostBridge daemons.
//!
//! - [`snapshotter`]: `org.ghostbridge.Snapshotter1` at `/org/ghostbridge/Snapshotter`.
//!
//! The bus policy installed next to the daemon lives in this folder:
//! `org.ghostbridge.Snapshotter.conf` (only root may own the name; anyone may
//! call methods and read properties).

pub mod snapshotter;
