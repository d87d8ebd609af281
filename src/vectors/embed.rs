//! Embedders turn a block (or a search text) into a vector. The default,
//! [`FeatureHashEmbedder`], is a deterministic feature-hashing embedding of the
//! block's metadata: the same block gives the same vector on any machine.
//! A vector depends only on the fields a block never changes (not on `pruned`,
//! which the snapshotter sets later), so a replay rewrites the same vector.
//!
//! Algorithm (version 3; version 2 had no change tokens, version 1 also had a
//! `pruned:<bool>` token):
//! 1. Tokens. For a block, in this order:
//!    `snapshot:<name>`, `word:<w>` for every word of the name (maximal runs of
//!    ASCII letters and digits, lower-cased), `height/60:<h div 60>`,
//!    `height/3600:<h div 3600>`, `date:<YYYY-MM-DD>`, `hour:<HH>`,
//!    `weekday:<0..6, 0 = Monday>`, `minute:<YYYY-MM-DDtHH:MM>` (all UTC, from
//!    `time_ns`), `hash:<first byte, 2 hex digits>`,
//!    `hash:<first two bytes, 4 hex digits>`; then for each of the block's
//!    first [`CHANGE_TOKENS_MAX`] changes (in the change list's order):
//!    `change:<kind>`, `path:<path>`, `word:<w>` for every word of the path
//!    (and of the old path of a rename). The snapshot name and paths are lower-cased.
//!    For a search text, each whitespace-separated term, lower-cased: a term that
//!    contains `:` is a token as written (so `hour:05` matches exactly); a term
//!    starting with `/` gives `path:<term>` and `word:<w>` for its words; any
//!    other term gives `snapshot:<term>` and `word:<w>` for each of
//!    its words.
//! 2. Hashing. Each token's UTF-8 bytes go through SHA-256; the first 8 bytes,
//!    big-endian, modulo the dimension pick the bucket; the lowest bit of byte 8
//!    picks the sign (1 = minus). Each token adds ±1.0 to its bucket.
//! 3. The vector is divided by its L2 norm. A zero vector (no tokens, or tokens
//!    that cancel out) becomes the unit vector on bucket 0.

use sha2::{Digest, Sha256};

use super::chain::Block;
use super::civil::civil_from_ns;
use crate::snapshot::changes::Change;

/// How many of a block's changes give tokens (and go into its payload).
pub const CHANGE_TOKENS_MAX: usize = 64;

/// Turns blocks and search texts into vectors of one fixed dimension.
pub trait Embedder {
    /// The vector size; the collection must have the same.
    fn dimension(&self) -> usize;
    /// The algorithm's version: a collection embedded with another one is
    /// re-embedded from the start.
    fn version(&self) -> i64;
    /// The vector of a block with its change list (empty when it has none).
    fn embed_block(&self, block: &Block, changes: &[Change]) -> Vec<f32>;
    /// The vector of a search text; `None` when the text has nothing to search for.
    fn embed_text(&self, text: &str) -> Option<Vec<f32>>;
}

/// The default embedder: feature hashing of the block's metadata (see the module docs).
#[derive(Debug, Clone)]
pub struct FeatureHashEmbedder {
    dimension: usize,
}

impl FeatureHashEmbedder {
    /// `dimension` must be at least 1 (the config guarantees it); 0 is treated as 1.
    pub fn new(dimension: usize) -> Self {
        FeatureHashEmbedder { dimension: dimension.max(1) }
    }

    /// The version of the algorithm in the module docs.
    pub const VERSION: i64 = 3;

    /// The tokens of a block, in the documented order.
    pub fn block_tokens(block: &Block, changes: &[Change]) -> Vec<String> {
        let name = block.snapshot.to_lowercase();
        let mut tokens = vec![format!("snapshot:{name}")];
        tokens.extend(words(&name).map(|w| format!("word:{w}")));
        let c = civil_from_ns(block.time_ns);
        tokens.push(format!("height/60:{}", block.height.div_euclid(60)));
        tokens.push(format!("height/3600:{}", block.height.div_euclid(3600)));
        tokens.push(format!("date:{}", c.date()));
        tokens.push(format!("hour:{:02}", c.hour));
        tokens.push(format!("weekday:{}", c.weekday));
        tokens.push(format!("minute:{}t{:02}:{:02}", c.date(), c.hour, c.minute));
        tokens.push(format!("hash:{}", hex::encode(&block.hash[..1])));
        tokens.push(format!("hash:{}", hex::encode(&block.hash[..2])));
        for c in changes.iter().take(CHANGE_TOKENS_MAX) {
            let path = String::from_utf8_lossy(&c.path).to_lowercase();
            tokens.push(format!("change:{}", c.kind.name()));
            tokens.extend(words(&path).map(|w| format!("word:{w}")));
            if let Some(from) = &c.from {
                let from = String::from_utf8_lossy(from).to_lowercase();
                tokens.extend(words(&from).map(|w| format!("word:{w}")));
            }
            tokens.push(format!("path:{path}"));
        }
        tokens
    }

    /// The tokens of a search text.
    pub fn text_tokens(text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        for term in text.split_whitespace().map(str::to_lowercase) {
            if term.contains(':') {
                tokens.push(term);
            } else if term.starts_with('/') {
                tokens.extend(words(&term).map(|w| format!("word:{w}")));
                tokens.push(format!("path:{term}"));
            } else {
                tokens.push(format!("snapshot:{term}"));
                tokens.extend(words(&term).map(|w| format!("word:{w}")));
            }
        }
        tokens
    }

    fn hash_tokens(&self, tokens: &[String]) -> Vec<f32> {
        let mut v = vec![0f32; self.dimension];
        for token in tokens {
            let digest = Sha256::digest(token.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            let bucket = (u64::from_be_bytes(first) % self.dimension as u64) as usize;
            let sign = if digest[8] & 1 == 1 { -1.0 } else { 1.0 };
            v[bucket] += sign;
        }
        normalise(&mut v);
        v
    }
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty())
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm == 0.0 {
        if let Some(first) = v.first_mut() {
            *first = 1.0;
        }
        return;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
}

impl Embedder for FeatureHashEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }
    fn version(&self) -> i64 {
        Self::VERSION
    }
    fn embed_block(&self, block: &Block, changes: &[Change]) -> Vec<f32> {
        self.hash_tokens(&Self::block_tokens(block, changes))
    }
    fn embed_text(&self, text: &str) -> Option<Vec<f32>> {
        let tokens = Self::text_tokens(text);
        if tokens.is_empty() {
            return None;
        }
        Some(self.hash_tokens(&tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block {
            height: 7_200,
            // 2026-11-24T05:19:54.250Z
            time_ns: 1_795_497_594_250_000_000,
            snapshot: "Overlay-2026-11-24T05-19-54".to_string(),
            subvol_uuid: [7; 16],
            generation: 42,
            prev_hash: [1; 32],
            hash: [0xab; 32],
            pruned_ns: None,
            changes: None,
            mac: None,
        }
    }

    #[test]
    fn changed_paths_are_tokens_and_a_path_query_finds_them() {
        use crate::snapshot::changes::ChangeKind;
        let changes = vec![
            Change::new(b"/etc/nginx/nginx.conf", ChangeKind::Modified),
            Change { path: b"/srv/New".to_vec(), kind: ChangeKind::Renamed, from: Some(b"/srv/old".to_vec()) },
        ];
        let tokens = FeatureHashEmbedder::block_tokens(&block(), &changes);
        let tail: Vec<&str> = tokens[15..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "change:modified",
                "word:etc",
                "word:nginx",
                "word:nginx",
                "word:conf",
                "path:/etc/nginx/nginx.conf",
                "change:renamed",
                "word:srv",
                "word:new",
                "word:srv",
                "word:old",
                "path:/srv/new",
            ]
        );
        assert_eq!(FeatureHashEmbedder::text_tokens("/etc/nginx"), ["word:etc", "word:nginx", "path:/etc/nginx"]);
        let e = FeatureHashEmbedder::new(384);
        let q = e.embed_text("nginx config").unwrap();
        let dot = |v: &[f32]| v.iter().zip(&q).map(|(x, y)| x * y).sum::<f32>();
        assert!(dot(&e.embed_block(&block(), &changes)) > dot(&e.embed_block(&block(), &[])));
    }

    #[test]
    fn tokens_follow_the_documented_order() {
        assert_eq!(
            FeatureHashEmbedder::block_tokens(&block(), &[]),
            [
                "snapshot:overlay-2026-11-24t05-19-54",
                "word:overlay",
                "word:2026",
                "word:11",
                "word:24t05",
                "word:19",
                "word:54",
                "height/60:120",
                "height/3600:2",
                "date:2026-11-24",
                "hour:05",
                "weekday:1",
                "minute:2026-11-24t05:19",
                "hash:ab",
                "hash:abab",
            ]
        );
        assert_eq!(
            FeatureHashEmbedder::text_tokens("Overlay hour:05"),
            ["snapshot:overlay", "word:overlay", "hour:05"]
        );
    }

    #[test]
    fn same_block_same_vector_on_any_machine() {
        let e = FeatureHashEmbedder::new(384);
        let v = e.embed_block(&block(), &[]);
        assert_eq!(v.len(), 384);
        assert_eq!(v, e.embed_block(&block(), &[]));
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "{norm}");
        // 15 tokens, each ±1 in one bucket, divided by the norm: pinned so that
        // any change of the algorithm shows up here.
        let nonzero: Vec<(usize, f32)> = v.iter().copied().enumerate().filter(|(_, x)| *x != 0.0).collect();
        assert_eq!(format!("{nonzero:?}"), EXPECTED_BLOCK_VECTOR);
    }

    // The same numbers come out of the documented algorithm written independently
    // with Python's hashlib (README.md, "Embedding").
    const EXPECTED_BLOCK_VECTOR: &str = "[(9, 0.2581989), (12, 0.2581989), (25, -0.2581989), (36, -0.2581989), (108, 0.2581989), (159, -0.2581989), (168, -0.2581989), (195, -0.2581989), (290, 0.2581989), (322, -0.2581989), (327, 0.2581989), (329, -0.2581989), (354, 0.2581989), (361, 0.2581989), (368, -0.2581989)]";

    #[test]
    fn changes_move_the_vector_and_text_finds_its_block() {
        let e = FeatureHashEmbedder::new(64);
        let a = e.embed_block(&block(), &[]);
        let mut pruned = block();
        pruned.pruned_ns = Some(1);
        assert_eq!(a, e.embed_block(&pruned, &[]), "pruning does not move the vector");
        let mut other = block();
        other.hash[0] = 0xac;
        assert_ne!(a, e.embed_block(&other, &[]));
        let q = e.embed_text("overlay-2026-11-24t05-19-54").unwrap();
        let dot: f32 = a.iter().zip(&q).map(|(x, y)| x * y).sum();
        assert!(dot > 0.3, "{dot}");
        // Feature terms match whatever their case: 1/sqrt(15) = one of the 15
        // tokens (at 384 dimensions they all have buckets of their own).
        let e = FeatureHashEmbedder::new(384);
        let q = e.embed_text("MINUTE:2026-11-24T05:19").unwrap();
        let dot: f32 = e.embed_block(&block(), &[]).iter().zip(&q).map(|(x, y)| x * y).sum();
        assert!((dot - 1.0 / 15f32.sqrt()).abs() < 1e-6, "{dot}");
        assert!(e.embed_text("   ").is_none());
        assert_eq!(FeatureHashEmbedder::new(1).embed_block(&block(), &[]).len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn any_block_gives_a_unit_vector(
            height in 0u64..i64::MAX as u64,
            time_ns in proptest::num::i64::ANY,
            snapshot in ".{0,40}",
            hash in proptest::array::uniform32(proptest::num::u8::ANY),
            pruned in proptest::option::of(proptest::num::i64::ANY),
            dimension in 1usize..600,
            text in ".{0,40}",
        ) {
            let e = FeatureHashEmbedder::new(dimension);
            let b = Block {
                height, time_ns, snapshot, subvol_uuid: [0; 16], generation: 1, prev_hash: [0; 32], hash, pruned_ns: pruned, changes: None, mac: None,
            };
            let v = e.embed_block(&b, &[]);
            proptest::prop_assert_eq!(v.len(), dimension);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            proptest::prop_assert!((norm - 1.0).abs() < 1e-5, "norm {}", norm);
            proptest::prop_assert_eq!(&v, &e.embed_block(&b, &[]));
            if let Some(q) = e.embed_text(&text) {
                proptest::prop_assert!(q.iter().all(|x| x.is_finite()));
            }
        }
    }
}
