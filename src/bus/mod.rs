//! D-Bus interfaces served by the GhostBridge daemons.
