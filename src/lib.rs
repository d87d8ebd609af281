//! GhostBridge: one typed spec file compiled into a NixOS flake, plus the
//! runtime daemons (snapshotter, OVS reconciler, Qdrant sync) its modules start.
//!
//! Layout, one folder per concern:
//! - [`spec`]: the spec model, parsing with spans, validation, diagnostics
//! - [`nix`]: the typed Nix expression builder and printer (all escaping lives here)
//! - [`generate`]: spec -> files of the generated flake, written atomically
//! - [`runtime`]: what every daemon shares: durations, metrics textfile, systemd notification
//! - [`snapshot`]: BTRFS snapshots, the SHA-256 chain and its SQLite store
//! - [`ovs`]: OVSDB JSON-RPC client and the bridge reconciler
//! - [`vectors`]: the embedder and the Qdrant sync
//! - [`bus`]: D-Bus interfaces
//! - [`doctor`]: the host's health report (`ghostbridge-doctor`)
//! - [`deploy`]: safe deployments with a health gate and rollback (`ghostgen deploy`)

pub mod bus;
pub mod deploy;
pub mod doctor;
pub mod generate;
pub mod nix;
pub mod ovs;
pub mod runtime;
pub mod snapshot;
pub mod spec;
pub mod vectors;
