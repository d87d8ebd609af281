//! The block format of the snapshot chain and its hash: SHA-256 over a
//! versioned byte layout (documented byte by byte in the README), and the
//! verification that recomputes a whole chain. Layout 1 covers the snapshot;
//! layout 2 adds the digest of the block's change list ([`super::changes`]).
//! Blocks keep the layout they were written with and verify under it.

use sha2::{Digest, Sha256};

use super::changes::ChangeDigest;

/// The first bytes of every hashed block: `"GBCHAIN"` then the layout version.
pub const MAGIC: &[u8; 7] = b"GBCHAIN";
/// The layout new blocks are written with.
pub const LAYOUT_VERSION: u8 = 2;
/// The previous hash of the genesis block (height 0).
pub const GENESIS_PREV: [u8; 32] = [0; 32];

/// One block of the chain, as stored in the `blocks` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub height: u64,
    /// CLOCK_REALTIME when the snapshot was taken, ns since the epoch.
    pub time_ns: i64,
    /// The snapshot's name inside the snapshot directory.
    pub snapshot: String,
    pub subvol_uuid: [u8; 16],
    pub generation: u64,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    /// When the snapshot was deleted by retention (not part of the hash).
    pub pruned_ns: Option<i64>,
    /// Layout 2: what the hash covers of the change list; `None` is layout 1.
    pub changes: Option<ChangeDigest>,
    /// HMAC-SHA256 of `hash` under the operator's key ([`seal`]); not hashed.
    pub mac: Option<[u8; 32]>,
}

/// HMAC-SHA256 of a block's hash under `key`: what a block carries when the
/// snapshotter has a key, so that the chain cannot be rewritten without it.
pub fn seal(key: &[u8], hash: &[u8; 32]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(hash);
    mac.finalize().into_bytes().into()
}

/// Whether `mac` is [`seal`] of `hash` under `key`, compared in constant time.
pub fn sealed_by(key: &[u8], hash: &[u8; 32], mac: &[u8; 32]) -> bool {
    use hmac::{KeyInit, Mac};
    let Ok(mut m) = hmac::Hmac::<Sha256>::new_from_slice(key) else { return false };
    m.update(hash);
    m.verify_slice(mac).is_ok()
}

/// The exact bytes that are hashed for a block. Layout version 1:
///
/// | bytes | field |
/// |-------|-------|
/// | 7 | ASCII `GBCHAIN` |
/// | 1 | layout version, `0x01` |
/// | 8 | height, u64 big-endian |
/// | 32 | previous hash |
/// | 8 | time_ns, i64 big-endian (two's complement) |
/// | 4 | snapshot name length in bytes, u32 big-endian |
/// | n | snapshot name, UTF-8 |
/// | 16 | subvolume UUID, raw bytes |
/// | 8 | generation, u64 big-endian |
///
/// Layout version 2 is the same with version byte `0x02`, followed by:
///
/// | bytes | field |
/// |-------|-------|
/// | 1 | `0x01` when the block has a change list, `0x00` when not |
/// | 8 | number of changes, u64 big-endian |
/// | 32 | SHA-256 of the sorted change list ([`super::changes::digest`]) |
pub fn preimage(
    height: u64,
    prev_hash: &[u8; 32],
    time_ns: i64,
    snapshot: &str,
    uuid: &[u8; 16],
    generation: u64,
    changes: Option<&ChangeDigest>,
) -> Vec<u8> {
    let name = snapshot.as_bytes();
    let mut out = Vec::with_capacity(7 + 1 + 8 + 32 + 8 + 4 + name.len() + 16 + 8 + 41);
    out.extend_from_slice(MAGIC);
    out.push(if changes.is_some() { 2 } else { 1 });
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&time_ns.to_be_bytes());
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(uuid);
    out.extend_from_slice(&generation.to_be_bytes());
    if let Some(c) = changes {
        out.push(u8::from(c.indexed));
        out.extend_from_slice(&c.count.to_be_bytes());
        out.extend_from_slice(&c.digest);
    }
    out
}

impl Block {
    /// A new layout-1 block (no change list) on top of `prev_hash`, with its hash computed.
    pub fn new(
        height: u64,
        prev_hash: [u8; 32],
        time_ns: i64,
        snapshot: String,
        subvol_uuid: [u8; 16],
        generation: u64,
    ) -> Block {
        let mut b = Block {
            height,
            time_ns,
            snapshot,
            subvol_uuid,
            generation,
            prev_hash,
            hash: [0; 32],
            pruned_ns: None,
            changes: None,
            mac: None,
        };
        b.hash = b.computed_hash();
        b
    }

    /// The same block sealed with `key` (nothing changes without one).
    pub fn sealed(mut self, key: Option<&[u8]>) -> Block {
        self.mac = key.map(|k| seal(k, &self.hash));
        self
    }

    /// The same block in layout 2, covering `changes`, with its hash recomputed.
    pub fn with_changes(mut self, changes: ChangeDigest) -> Block {
        self.changes = Some(changes);
        self.hash = self.computed_hash();
        self.mac = None;
        self
    }

    /// The layout version the block is hashed with.
    pub fn layout(&self) -> u8 {
        if self.changes.is_some() { 2 } else { 1 }
    }

    /// The exact bytes hashed for this block.
    pub fn preimage(&self) -> Vec<u8> {
        preimage(
            self.height,
            &self.prev_hash,
            self.time_ns,
            &self.snapshot,
            &self.subvol_uuid,
            self.generation,
            self.changes.as_ref(),
        )
    }

    /// Recomputes the hash from the fields.
    pub fn computed_hash(&self) -> [u8; 32] {
        Sha256::digest(self.preimage()).into()
    }
}

/// The outcome of recomputing a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Blocks checked and found valid before the first bad one.
    pub checked: u64,
    /// The first bad height and why, or `None` when the chain is valid.
    pub first_bad: Option<(u64, String)>,
    /// Blocks whose recorded time is earlier than their predecessor's: the
    /// wall clock was stepped back while snapshots were taken. Not damage
    /// (each hash still covers its time), but a reader of the times must know.
    pub time_backwards: Option<TimeBackwards>,
    /// With a key: blocks before the first sealed one (written before the key
    /// was set), and that first sealed height.
    pub unsealed_before: Option<(u64, u64)>,
}

/// Where the recorded time goes backwards along the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBackwards {
    pub count: u64,
    pub first_height: u64,
    /// How much earlier the first such block is than its predecessor, ns.
    pub first_by_ns: i64,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
    /// One line for people: "chain valid: N blocks" or "height H: why".
    pub fn message(&self) -> String {
        let mut out = match &self.first_bad {
            None => format!("chain valid: {} blocks", self.checked),
            Some((h, why)) => format!("chain broken at height {h}: {why}"),
        };
        if let Some((n, first)) = self.unsealed_before.filter(|(n, _)| *n > 0) {
            out.push_str(&format!(
                "; {n} block(s) before height {first} carry no MAC (written before the key was set)"
            ));
        }
        if let Some(t) = &self.time_backwards {
            out.push_str(&format!(
                "; the recorded time goes backwards at {} block(s), first at height {} ({:.3} s before its predecessor): the wall clock was stepped back",
                t.count,
                t.first_height,
                t.first_by_ns as f64 / 1e9
            ));
        }
        out
    }
}

/// Walks blocks in height order and stops at the first inconsistency.
#[derive(Debug, Default)]
pub struct Verifier {
    next_height: u64,
    prev_hash: Option<[u8; 32]>,
    checked: u64,
    first_bad: Option<(u64, String)>,
    prev_time_ns: Option<i64>,
    time_backwards: Option<TimeBackwards>,
    /// The key blocks must be sealed with, from the first sealed one on.
    key: Option<Vec<u8>>,
    /// Blocks checked before the first sealed one, and its height.
    unsealed: u64,
    first_sealed: Option<u64>,
    /// Height of the newest block checked, and whether it was sealed.
    last: Option<(u64, bool)>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also checks each block's MAC under `key`: from the first sealed block
    /// on, every block must be sealed with it, and so must the newest.
    pub fn with_key(mut self, key: Option<&[u8]>) -> Self {
        self.key = key.map(<[u8]>::to_vec);
        self
    }

    /// A verifier for a tail of the chain: `height` is expected first, linked to `prev_hash`.
    pub fn starting_at(height: u64, prev_hash: [u8; 32]) -> Self {
        Verifier { next_height: height, prev_hash: Some(prev_hash), ..Verifier::default() }
    }

    /// Checks the next block; returns false once the chain is known broken.
    pub fn push(&mut self, b: &Block) -> bool {
        if self.first_bad.is_some() {
            return false;
        }
        let expected_prev = self.prev_hash.unwrap_or(GENESIS_PREV);
        let why = if b.height != self.next_height {
            if b.height > self.next_height {
                Some((self.next_height, format!("block missing (the next stored block is height {})", b.height)))
            } else {
                Some((b.height, format!("height out of order (expected {})", self.next_height)))
            }
        } else if b.prev_hash != expected_prev {
            Some((
                b.height,
                format!(
                    "previous hash {} does not match the hash of height {} ({})",
                    hex::encode(b.prev_hash),
                    b.height.wrapping_sub(1),
                    hex::encode(expected_prev)
                ),
            ))
        } else if b.computed_hash() != b.hash {
            Some((
                b.height,
                format!(
                    "stored hash {} differs from the recomputed {} (a field of the block was changed)",
                    hex::encode(b.hash),
                    hex::encode(b.computed_hash())
                ),
            ))
        } else {
            self.check_seal(b).map(|why| (b.height, why))
        };
        match why {
            Some(bad) => {
                self.first_bad = Some(bad);
                false
            }
            None => {
                if let Some(prev) = self.prev_time_ns
                    && b.time_ns < prev
                {
                    match &mut self.time_backwards {
                        Some(t) => t.count += 1,
                        None => {
                            self.time_backwards =
                                Some(TimeBackwards { count: 1, first_height: b.height, first_by_ns: prev - b.time_ns })
                        }
                    }
                }
                self.prev_time_ns = Some(b.time_ns);
                self.checked += 1;
                self.next_height += 1;
                self.prev_hash = Some(b.hash);
                true
            }
        }
    }

    /// Why `b`'s MAC is wrong under the key, if there is a key and it is.
    fn check_seal(&mut self, b: &Block) -> Option<String> {
        let key = self.key.as_deref()?;
        self.last = Some((b.height, b.mac.is_some()));
        match (&b.mac, self.first_sealed) {
            (Some(mac), _) if !sealed_by(key, &b.hash, mac) => {
                Some("its MAC does not match its hash under the key (rewritten without the key, or another key)".into())
            }
            (Some(_), None) => {
                self.first_sealed = Some(b.height);
                None
            }
            (Some(_), Some(_)) => None,
            (None, Some(first)) => Some(format!("it carries no MAC, but blocks from height {first} on are sealed")),
            (None, None) => {
                self.unsealed += 1;
                None
            }
        }
    }

    /// Records a block found bad outside its hash: a row that could not be read
    /// (bad UUID text, wrong blob size), or a change list its digest does not match.
    pub fn fail(&mut self, height: u64, why: String) {
        if self.first_bad.is_none() {
            self.first_bad = Some((height, why));
        }
    }

    pub fn finish(mut self) -> Verdict {
        if self.key.is_some()
            && self.first_bad.is_none()
            && let Some((height, false)) = self.last
        {
            self.first_bad = Some((
                height,
                "the newest block carries no MAC: the key was never used, or the sealed blocks were removed".into(),
            ));
        }
        let unsealed_before = match (self.key.is_some(), self.first_sealed) {
            (true, Some(first)) => Some((self.unsealed, first)),
            _ => None,
        };
        Verdict {
            checked: self.checked,
            first_bad: self.first_bad,
            time_backwards: self.time_backwards,
            unsealed_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Block> {
        let mut prev = GENESIS_PREV;
        (0..n)
            .map(|h| {
                let b = Block::new(
                    h,
                    prev,
                    1_700_000_000_000_000_000 + h as i64,
                    format!("{h:012}-x"),
                    [h as u8; 16],
                    7 + h,
                );
                prev = b.hash;
                b
            })
            .collect()
    }

    fn verify(blocks: &[Block]) -> Verdict {
        let mut v = Verifier::new();
        for b in blocks {
            if !v.push(b) {
                break;
            }
        }
        v.finish()
    }

    #[test]
    fn preimage_layout_is_fixed() {
        let p = preimage(1, &[0xAA; 32], -2, "é", &[0x11; 16], 3, None);
        let mut want = b"GBCHAIN\x01".to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0xAA; 32]);
        want.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        want.extend_from_slice(&[0, 0, 0, 2, 0xC3, 0xA9]);
        want.extend_from_slice(&[0x11; 16]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(p, want);
        let c = ChangeDigest { indexed: true, count: 258, digest: [0x5A; 32] };
        let p2 = preimage(1, &[0xAA; 32], -2, "é", &[0x11; 16], 3, Some(&c));
        want[7] = 2;
        want.push(1);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&[0x5A; 32]);
        assert_eq!(p2, want);
    }

    #[test]
    fn sealed_blocks_verify_only_under_their_key() {
        let key = b"operator key".as_slice();
        let mut blocks = chain(6);
        // Sealed from height 2 on (the key was set then).
        for b in &mut blocks[2..] {
            b.mac = Some(seal(key, &b.hash));
        }
        let run = |blocks: &[Block], key: Option<&[u8]>| {
            let mut v = Verifier::new().with_key(key);
            for b in blocks {
                if !v.push(b) {
                    break;
                }
            }
            v.finish()
        };
        let ok = run(&blocks, Some(key));
        assert!(ok.ok(), "{}", ok.message());
        assert_eq!(ok.unsealed_before, Some((2, 2)));
        assert!(ok.message().contains("2 block(s) before height 2 carry no MAC"), "{}", ok.message());
        assert!(run(&blocks, None).ok(), "without the key only the hashes count");
        assert_eq!(run(&blocks, Some(b"another key")).first_bad.unwrap().0, 2);
        // Rewritten from height 4 with valid hashes but no key: no MAC, or a made-up one.
        let mut rewritten = blocks.clone();
        rewritten[4].mac = None;
        assert!(run(&rewritten, Some(key)).first_bad.unwrap().1.contains("carries no MAC"));
        rewritten[4].mac = Some([7; 32]);
        assert!(run(&rewritten, Some(key)).first_bad.unwrap().1.contains("does not match"));
        // The sealed tail removed: the newest block is unsealed.
        let v = run(&blocks[..2], Some(key));
        assert_eq!(v.first_bad.as_ref().unwrap().0, 1, "{}", v.message());
        assert!(v.message().contains("the newest block carries no MAC"), "{}", v.message());
    }

    #[test]
    fn time_going_backwards_is_reported_not_failed() {
        let mut prev = GENESIS_PREV;
        let times = [10_000_000_000i64, 11_000_000_000, 7_000_000_000, 8_000_000_000, 5_000_000_000];
        let blocks: Vec<Block> = times
            .iter()
            .enumerate()
            .map(|(h, t)| {
                let b = Block::new(h as u64, prev, *t, format!("{h:012}-{t}"), [1; 16], 1);
                prev = b.hash;
                b
            })
            .collect();
        let v = verify(&blocks);
        assert!(v.ok());
        assert_eq!(v.time_backwards, Some(TimeBackwards { count: 2, first_height: 2, first_by_ns: 4_000_000_000 }));
        assert!(
            v.message().contains("goes backwards at 2 block(s), first at height 2 (4.000 s before"),
            "{}",
            v.message()
        );
    }

    #[test]
    fn valid_chain_and_each_kind_of_damage() {
        let good = chain(5);
        assert_eq!(verify(&good), Verdict { checked: 5, first_bad: None, time_backwards: None, unsealed_before: None });

        let mut tampered = good.clone();
        tampered[2].generation += 1;
        assert_eq!(verify(&tampered).first_bad.unwrap().0, 2);

        let mut gap = good.clone();
        gap.remove(3);
        let v = verify(&gap);
        assert_eq!(v.first_bad.as_ref().unwrap().0, 3, "{v:?}");
        assert_eq!(v.checked, 3);

        let mut relinked = good.clone();
        relinked[4].prev_hash = [1; 32];
        relinked[4].hash = relinked[4].computed_hash();
        assert_eq!(verify(&relinked).first_bad.unwrap().0, 4);

        let mut genesis = good.clone();
        genesis[0].prev_hash = [9; 32];
        assert_eq!(verify(&genesis).first_bad.unwrap().0, 0);

        // A tail check trusts the link into its first block only.
        let mut tail = Verifier::starting_at(2, good[2].prev_hash);
        assert!(good[2..].iter().all(|b| tail.push(b)));
        assert_eq!(tail.finish(), Verdict { checked: 3, first_bad: None, time_backwards: None, unsealed_before: None });
        let mut tail = Verifier::starting_at(2, good[2].prev_hash);
        assert!(!tail.push(&tampered[2]));
        assert_eq!(tail.finish().first_bad.unwrap().0, 2);
    }
}
