//! The GhostBridge spec: the typed model, TOML parsing with spans, validation
//! and diagnostics that point at file, line and column.
