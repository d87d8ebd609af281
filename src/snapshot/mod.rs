//! The snapshot chain: BTRFS snapshots, the SHA-256 block chain and its SQLite store.

pub mod schema;
