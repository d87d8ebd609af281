//! The snapshot chain: BTRFS snapshots, the SHA-256 block chain and its SQLite store.
//!
//! - [`btrfs`]: snapshot create/delete and subvolume identity through ioctls
//! - [`chain`]: the block byte layout, its hash, chain verification
//! - [`send`]: the kernel's send stream between two snapshots, parsed
//! - [`changes`]: the change index: what each block changed, its digest
//! - [`store`]: the SQLite store of blocks and their change rows
//! - [`recover`]: reconciling the snapshot directory with the chain
//! - [`clock`]: absolute monotonic deadlines and wall time
//! - [`config`]: the daemon's JSON config
//! - [`daemon`]: the tick loop
//! - [`report`]: verify, list and status output for the command line
//! - [`history`]: changes, diff, log and restore, answered from the change index

pub mod btrfs;
pub mod chain;
pub mod changes;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod history;
pub mod recover;
pub mod report;
pub mod retention;
pub mod schema;
pub mod send;
pub mod store;
