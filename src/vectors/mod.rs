//! Qdrant sync: every block of the snapshot chain as a point in a Qdrant
//! collection, once, shortly after it is written. The chain database is read,
//! never written (only the sync's own cursors and one index on `pruned_ns`);
//! the embedder is a trait with a deterministic feature-hashing default.

pub mod chain;
pub mod civil;
pub mod config;
pub mod embed;
pub mod qdrant;
pub mod stats;
pub mod status;
pub mod sync;
pub mod wake;
pub mod witness;

pub use config::{Distance, SyncConfig};
pub use embed::{Embedder, FeatureHashEmbedder};
pub use qdrant::QdrantClient;
pub use sync::{Ensured, PassReport, SyncError, Syncer};
