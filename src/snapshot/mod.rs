//! The snapshot chain: BTRFS snapshots, the SHA-256 block chain and its SQLite store.
//!
//! - [`btrfs`]: snapshot create/delete and subvolume identity through ioctls
//! - [`chain`]: the block byte layout, its hash, chain verification
//! - [`store`]: the SQLite store of blocks
//! - [`recover`]: reconciling the snapshot directory with the chain
//! - [`clock`]: absolute monotonic deadlines and wall time
//! - [`config`]: the daemon's JSON config
//! - [`daemon`]: the tick loop
//! - [`report`]: verify, list and status output for the command line

pub mod btrfs;
pub mod chain;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod recover;
pub mod report;
pub mod retention;
pub mod schema;
pub mod store;
