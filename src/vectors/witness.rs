//! The mirror as a witness: a hash chain alone cannot see its newest blocks
//! deleted or the whole chain rewritten, but the Qdrant collection keeps
//! every block the sync sent (height and hash in the payload). Comparing the
//! local chain with it finds a local chain shorter than what was mirrored and
//! a block whose hash differs from the mirrored one.

use std::collections::BTreeMap;

use super::qdrant::{QdrantClient, QdrantError};
use crate::snapshot::store::{Store, StoreError};

/// Points read per scroll request.
const PAGE: usize = 1_000;

/// Why the comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the mirror {collection:?}: {source}")]
    Qdrant { collection: String, source: QdrantError },
    #[error("the mirror {collection:?} does not exist at {url}: nothing to compare with")]
    NoCollection { collection: String, url: String },
    #[error("the mirror {collection:?} holds a point without a valid height and hash: {payload}")]
    BadPoint { collection: String, payload: String },
}

/// What the mirror says about the local chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Testimony {
    /// Points read from the mirror.
    pub mirrored: u64,
    /// The highest height in the mirror.
    pub mirror_head: Option<u64>,
    /// The local head.
    pub local_head: Option<u64>,
    /// The lowest height where the two disagree, and how.
    pub first_disagreement: Option<(u64, String)>,
}

impl Testimony {
    pub fn ok(&self) -> bool {
        self.first_disagreement.is_none()
    }

    pub fn message(&self) -> String {
        match &self.first_disagreement {
            None => format!(
                "the mirror agrees: {} mirrored blocks match the local chain (local head {}, mirror head {})",
                self.mirrored,
                self.local_head.map(|h| h.to_string()).unwrap_or_else(|| "none".into()),
                self.mirror_head.map(|h| h.to_string()).unwrap_or_else(|| "none".into())
            ),
            Some((h, why)) => format!("the mirror disagrees at height {h}: {why}"),
        }
    }
}

/// Reads every point of `collection` (its height and hash) and compares
/// them with the chain in `store`.
pub fn compare(store: &Store, client: &QdrantClient, collection: &str) -> Result<Testimony, WitnessError> {
    let qerr = |source| WitnessError::Qdrant { collection: collection.to_string(), source };
    if client.collection(collection, &mut |_| {}).map_err(qerr)?.is_none() {
        return Err(WitnessError::NoCollection { collection: collection.to_string(), url: client.url().to_string() });
    }
    let mut mirror: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut offset = None;
    let mut mirrored = 0;
    loop {
        let (points, next) = client.scroll(collection, offset, PAGE, &["height", "hash"], &mut |_| {}).map_err(qerr)?;
        for p in points {
            let height = p.get("height").and_then(|v| v.as_u64());
            let hash = p.get("hash").and_then(|v| v.as_str()).filter(|h| h.len() == 64);
            let (Some(height), Some(hash)) = (height, hash) else {
                return Err(WitnessError::BadPoint { collection: collection.to_string(), payload: p.to_string() });
            };
            mirror.entry(height).or_default().push(hash.to_string());
            mirrored += 1;
        }
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    let local_head = store.head()?.map(|b| b.height);
    let mirror_head = mirror.keys().next_back().copied();
    let mut first_disagreement = None;
    // Blocks are read in ranges, as many as the mirror holds.
    let heights: Vec<u64> = mirror.keys().copied().collect();
    for chunk in heights.chunks(PAGE) {
        let (Some(&lo), Some(&hi)) = (chunk.first(), chunk.last()) else { continue };
        let local: BTreeMap<u64, String> =
            store.range(lo, hi)?.into_iter().map(|b| (b.height, hex::encode(b.hash))).collect();
        for h in chunk {
            let seen = &mirror[h];
            let why = match local.get(h) {
                None if local_head.is_none_or(|l| *h > l) => Some(format!(
                    "the mirror holds block {h}, beyond the local head ({}): the newest local blocks were deleted",
                    local_head.map(|l| l.to_string()).unwrap_or_else(|| "none: the local chain is empty".into())
                )),
                None => Some(format!("the mirror holds block {h}, which the local chain no longer has")),
                Some(_) if seen.len() > 1 => Some(format!(
                    "the mirror holds {} different blocks at this height ({}): the chain was rewritten after they were mirrored",
                    seen.len(),
                    seen.join(", ")
                )),
                Some(hash) if &seen[0] != hash => Some(format!(
                    "the local block's hash {hash} differs from the mirrored {}: the chain was rewritten",
                    seen[0]
                )),
                Some(_) => None,
            };
            if let Some(why) = why {
                first_disagreement = Some((*h, why));
                break;
            }
        }
        if first_disagreement.is_some() {
            break;
        }
    }
    Ok(Testimony { mirrored, mirror_head, local_head, first_disagreement })
}
