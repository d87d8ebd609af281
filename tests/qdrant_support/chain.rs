//! A chain database filled directly with rows in `blocks`, as the snapshotter
//! would write them (realistic values; the sync does not verify hashes).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

/// 2026-11-24T00:00:00Z.
pub const GENESIS_NS: i64 = 1_795_478_400_000_000_000;

pub struct Chain {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    conn: Connection,
}

impl Chain {
    pub fn new() -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        let mut conn = Connection::open(&path).unwrap();
        ghostbridge::snapshot::schema::configure(&conn).unwrap();
        ghostbridge::snapshot::schema::migrate(&mut conn).unwrap();
        Chain { _dir: dir, path, conn }
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The next height (0 for an empty chain).
    pub fn len(&self) -> i64 {
        self.conn.query_row("SELECT coalesce(max(height) + 1, 0) FROM blocks", [], |r| r.get(0)).unwrap()
    }

    /// Appends `n` blocks one second apart, as the snapshotter would.
    pub fn append(&mut self, n: i64) {
        let start = self.len();
        self.append_at(n, |h| GENESIS_NS + h * 1_000_000_000 + 1_234_567 * (h % 7));
        assert_eq!(self.len(), start + n);
    }

    /// Appends `n` blocks, block `h` taken at `time_ns(h)`.
    pub fn append_at(&mut self, n: i64, time_ns: impl Fn(i64) -> i64) {
        let start = self.len();
        let mut prev: Vec<u8> = if start == 0 {
            vec![0; 32]
        } else {
            self.conn.query_row("SELECT hash FROM blocks WHERE height = ?1", [start - 1], |r| r.get(0)).unwrap()
        };
        let tx = self.conn.transaction().unwrap();
        for h in start..start + n {
            let t = time_ns(h);
            let secs = t.div_euclid(1_000_000_000);
            let name = format!("overlay-{secs}-{h:08}");
            let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
            let mut hasher = Sha256::new();
            hasher.update(b"ghostbridge-test-block");
            hasher.update(h.to_be_bytes());
            hasher.update(&prev);
            hasher.update(t.to_be_bytes());
            hasher.update(name.as_bytes());
            let hash = hasher.finalize().to_vec();
            tx.execute(
                "INSERT INTO blocks (height, time_ns, snapshot, subvol_uuid, generation, prev_hash, hash, pruned_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
                params![h, t, name, uuid, 4_000 + 3 * h, prev, hash],
            )
            .unwrap();
            prev = hash;
        }
        tx.commit().unwrap();
    }

    /// Appends one block per list through the snapshotter's own store, each
    /// with that change list (`None`: a block without one), one second apart.
    pub fn append_with_changes(&mut self, lists: &[Option<Vec<ghostbridge::snapshot::changes::Change>>]) {
        use ghostbridge::snapshot::changes::ChangeIndex;
        let mut store =
            ghostbridge::snapshot::store::Store::open_writer(&self.path, std::time::Duration::from_secs(5)).unwrap();
        for list in lists {
            let head = store.head().unwrap();
            let h = head.as_ref().map(|b| b.height + 1).unwrap_or(0);
            let prev = head.as_ref().map(|b| b.hash).unwrap_or([0; 32]);
            let t = GENESIS_NS + h as i64 * 1_000_000_000;
            let index = match list {
                Some(l) => ChangeIndex::Indexed(l.clone()),
                None => ChangeIndex::Unavailable("the first block has no earlier snapshot to compare with".into()),
            };
            let name = format!("overlay-{}-{h:08}", t / 1_000_000_000);
            let b = ghostbridge::snapshot::chain::Block::new(h, prev, t, name, [h as u8; 16], 4_000 + h)
                .with_changes(index.summary());
            store.append(&b, t, None, Some(&index)).unwrap();
        }
    }

    /// Marks blocks `..= height` pruned, as the snapshotter does after the retention.
    pub fn prune_through(&self, height: i64) {
        self.conn
            .execute(
                "UPDATE blocks SET pruned_ns = time_ns + 60000000000 WHERE height <= ?1 AND pruned_ns IS NULL",
                [height],
            )
            .unwrap();
    }

    /// Marks these blocks pruned at `pruned_ns`, in any order (the key of the
    /// pruned-flag cursor is `(pruned_ns, height)`).
    pub fn prune_at(&self, heights: &[i64], pruned_ns: i64) {
        for h in heights {
            let n = self.conn.execute("UPDATE blocks SET pruned_ns = ?2 WHERE height = ?1", [*h, pruned_ns]).unwrap();
            assert_eq!(n, 1, "block {h}");
        }
    }

    /// The blocks marked pruned, in height order.
    pub fn pruned(&self) -> Vec<i64> {
        let mut stmt =
            self.conn.prepare("SELECT height FROM blocks WHERE pruned_ns IS NOT NULL ORDER BY height").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    pub fn cursor(&self, consumer: &str) -> Option<i64> {
        self.conn.query_row("SELECT height FROM cursors WHERE consumer = ?1", [consumer], |r| r.get(0)).ok()
    }

    pub fn delete_cursor(&self, consumer: &str) {
        self.conn.execute("DELETE FROM cursors WHERE consumer = ?1", [consumer]).unwrap();
    }

    pub fn delete_cursors(&self) {
        self.conn.execute("DELETE FROM cursors", []).unwrap();
    }

    /// A digest of every row of `blocks`: the sync must never change it.
    pub fn blocks_digest(&self) -> String {
        let mut stmt = self
            .conn
            .prepare("SELECT height, time_ns, snapshot, subvol_uuid, generation, hex(prev_hash), hex(hash), pruned_ns FROM blocks ORDER BY height")
            .unwrap();
        let mut hasher = Sha256::new();
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{}|{}|{}|{}|{}|{:?}\n",
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<i64>>(7)?
                ))
            })
            .unwrap();
        for row in rows {
            hasher.update(row.unwrap().as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    pub fn hash_hex(&self, height: i64) -> String {
        self.conn.query_row("SELECT lower(hex(hash)) FROM blocks WHERE height = ?1", [height], |r| r.get(0)).unwrap()
    }
}
