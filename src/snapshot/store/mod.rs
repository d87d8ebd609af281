//! The chain's SQLite store: append a block with its change list (and mark
//! expired blocks pruned) in one transaction, read the head, recent blocks and
//! the whole chain. The snapshotter is the only writer of `blocks`.
//! [`changes`] holds the change index's writes and queries.

mod changes;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub(crate) use changes::lists_in;
pub use changes::{BlockChanges, ChangeRow, TimelineEntry};

use super::chain::{Block, Verdict, Verifier};
use super::changes::{ChangeDigest, ChangeIndex};
use super::retention::Policy;
use super::schema::{self, SchemaError};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chain database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("chain database: {0}")]
    Schema(#[from] SchemaError),
    #[error("chain database: {0}{hint}", hint = sqlite_hint(.0))]
    Sqlite(#[from] rusqlite::Error),
    #[error("chain database {path} is on a read-only filesystem: remount it read-write (retrying meanwhile)")]
    ReadOnlyFs { path: String },
    #[error("chain database holds an unreadable block at height {height}: {why}")]
    Corrupt { height: u64, why: String },
}

fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy) | Some(DatabaseLocked) => {
            " (another process holds a write lock on the database; it will be retried)"
        }
        Some(ReadOnly) => " (the database or its directory is read-only: fix the permissions or the mount)",
        Some(DiskFull) => " (the filesystem of the database is full: free space)",
        Some(CannotOpen) => " (check that the directory exists and is writable)",
        _ => "",
    }
}

impl StoreError {
    /// A short, stable label for the error metric.
    pub fn kind(&self) -> &'static str {
        use rusqlite::ErrorCode::*;
        let code = match self {
            StoreError::Sqlite(e) | StoreError::Open { source: e, .. } => e.sqlite_error_code(),
            StoreError::Schema(SchemaError::Sqlite(e)) => e.sqlite_error_code(),
            StoreError::Schema(_) => return "db_schema",
            StoreError::Corrupt { .. } => return "db_corrupt",
            StoreError::ReadOnlyFs { .. } => return "db_readonly",
        };
        match code {
            Some(DatabaseBusy) | Some(DatabaseLocked) => "db_locked",
            Some(ReadOnly) => "db_readonly",
            Some(DiskFull) => "db_full",
            _ => "db",
        }
    }
}

/// A connection to the chain database.
pub struct Store {
    conn: Connection,
}

/// Every column of `blocks`, in the order [`row_to_block`] reads them.
pub(crate) const COLUMNS: &str = "height, time_ns, snapshot, subvol_uuid, generation, prev_hash, hash, pruned_ns, changes_indexed, change_count, change_digest, mac";

/// One row of `blocks` (selected as [`COLUMNS`]) as a [`Block`]; a malformed
/// row (a value of the wrong SQLite type included: the table's columns are
/// not strict) gives its height and what is wrong with it.
pub(crate) fn row_to_block(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Block, (u64, String)>> {
    use rusqlite::types::Value;
    let height: i64 = row.get(0)?;
    let height = height as u64;
    let kind = |v: &Value| match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a BLOB",
    };
    let wrong =
        |column: &str, want: &str, v: &Value| (height, format!("{column} is stored as {}, not {want}", kind(v)));
    let int = |i: usize, column: &str| -> rusqlite::Result<Result<i64, (u64, String)>> {
        Ok(match row.get::<_, Value>(i)? {
            Value::Integer(n) => Ok(n),
            v => Err(wrong(column, "an integer", &v)),
        })
    };
    let text = |i: usize, column: &str| -> rusqlite::Result<Result<String, (u64, String)>> {
        Ok(match row.get::<_, Value>(i)? {
            Value::Text(t) => Ok(t),
            v => Err(wrong(column, "text", &v)),
        })
    };
    let hash32 = |i: usize, column: &str| -> rusqlite::Result<Result<[u8; 32], (u64, String)>> {
        Ok(match row.get::<_, Value>(i)? {
            Value::Blob(b) => {
                <[u8; 32]>::try_from(b.as_slice()).map_err(|_| (height, format!("{column} is not 32 bytes")))
            }
            v => Err(wrong(column, "a 32-byte BLOB", &v)),
        })
    };
    let (time_ns, snapshot, uuid_text, generation, prev_hash, hash) = match (
        int(1, "time_ns")?,
        text(2, "snapshot")?,
        text(3, "subvol_uuid")?,
        int(4, "generation")?,
        hash32(5, "prev_hash")?,
        hash32(6, "hash")?,
    ) {
        (Ok(t), Ok(s), Ok(u), Ok(g), Ok(p), Ok(h)) => (t, s, u, g, p, h),
        (t, s, u, g, p, h) => {
            let first = [t.err(), s.err(), u.err(), g.err(), p.err(), h.err()].into_iter().flatten().next();
            return Ok(Err(first.unwrap_or((height, "malformed row".to_string()))));
        }
    };
    let uuid = match uuid::Uuid::parse_str(&uuid_text) {
        Ok(u) => *u.as_bytes(),
        Err(_) => return Ok(Err((height, format!("subvol_uuid {uuid_text:?} is not a UUID")))),
    };
    // Layout 2 has all three change columns, layout 1 none.
    let changes = match (row.get::<_, Value>(8)?, row.get::<_, Value>(9)?, row.get::<_, Value>(10)?) {
        (Value::Null, Value::Null, Value::Null) => None,
        (Value::Integer(indexed @ (0 | 1)), Value::Integer(count), Value::Blob(digest)) if count >= 0 => {
            match <[u8; 32]>::try_from(digest.as_slice()) {
                Ok(digest) => Some(ChangeDigest { indexed: indexed == 1, count: count as u64, digest }),
                Err(_) => return Ok(Err((height, "change_digest is not 32 bytes".to_string()))),
            }
        }
        _ => {
            return Ok(Err((
                height,
                "changes_indexed, change_count and change_digest are not all NULL (layout 1) nor 0/1, a count and a \
                 32-byte BLOB (layout 2)"
                    .to_string(),
            )));
        }
    };
    let mac = match row.get::<_, Value>(11)? {
        Value::Null => None,
        Value::Blob(b) => match <[u8; 32]>::try_from(b.as_slice()) {
            Ok(m) => Some(m),
            Err(_) => return Ok(Err((height, "mac is not 32 bytes".to_string()))),
        },
        v => return Ok(Err(wrong("mac", "a 32-byte BLOB", &v))),
    };
    Ok(Ok(Block {
        height,
        time_ns,
        snapshot,
        subvol_uuid: uuid,
        generation: generation as u64,
        prev_hash,
        hash,
        pruned_ns: row.get(7)?,
        changes,
        mac,
    }))
}

fn flatten(r: rusqlite::Result<Result<Block, (u64, String)>>) -> Result<Block, StoreError> {
    match r? {
        Ok(b) => Ok(b),
        Err((height, why)) => Err(StoreError::Corrupt { height, why }),
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database for writing.
    /// `busy` is how long a write waits for another writer's lock.
    pub fn open_writer(path: &Path, busy: Duration) -> Result<Store, StoreError> {
        Self::try_open_writer(path, busy).map_err(|e| {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            match nix::sys::statvfs::statvfs(dir) {
                Ok(st) if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => {
                    StoreError::ReadOnlyFs { path: path.display().to_string() }
                }
                _ => e,
            }
        })
    }

    fn try_open_writer(path: &Path, busy: Duration) -> Result<Store, StoreError> {
        let mut conn =
            Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        schema::configure(&conn)?;
        conn.busy_timeout(busy)?;
        schema::migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// Opens an existing database read-only (verify, list, status, D-Bus queries).
    pub fn open_reader(path: &Path) -> Result<Store, StoreError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        schema::require_current(&conn)?;
        Ok(Store { conn })
    }

    /// The highest block, if any.
    pub fn head(&self) -> Result<Option<Block>, StoreError> {
        // Cached: the daemon asks every tick, and parsing the statement cost more than running it.
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM blocks WHERE height = (SELECT max(height) FROM blocks)"))?;
        let r = st.query_row([], row_to_block).optional()?;
        r.map(|x| flatten(Ok(x))).transpose()
    }

    /// The last `n` blocks, newest first.
    pub fn recent(&self, n: u32) -> Result<Vec<Block>, StoreError> {
        let mut st =
            self.conn.prepare_cached(&format!("SELECT {COLUMNS} FROM blocks ORDER BY height DESC LIMIT ?1"))?;
        let rows = st.query_map([n], row_to_block)?;
        rows.map(flatten).collect()
    }

    /// Every block whose snapshot should still exist (not pruned), oldest first.
    pub fn unpruned(&self) -> Result<Vec<Block>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM blocks WHERE pruned_ns IS NULL ORDER BY height"))?;
        let rows = st.query_map([], row_to_block)?;
        rows.map(flatten).collect()
    }

    /// The block that names `snapshot`, if any.
    pub fn by_snapshot(&self, snapshot: &str) -> Result<Option<Block>, StoreError> {
        let r = self
            .conn
            .query_row(&format!("SELECT {COLUMNS} FROM blocks WHERE snapshot = ?1"), [snapshot], row_to_block)
            .optional()?;
        r.map(|x| flatten(Ok(x))).transpose()
    }

    /// Number of blocks and of pruned blocks.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.conn.query_row("SELECT count(*), count(pruned_ns) FROM blocks", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?)
    }

    /// In one transaction: inserts `block` (which must be the next height),
    /// taken at `steady_ns` on the steady clock, with its change list (for a
    /// layout-2 block: `changes` must be what its digest covers), and marks every unpruned block
    /// that `policy` no longer keeps at that moment as pruned at
    /// `block.time_ns`. Returns the marked blocks (height, snapshot): their
    /// snapshots are deleted after the commit.
    pub fn append(
        &mut self,
        block: &Block,
        steady_ns: i64,
        policy: Option<&Policy<'_>>,
        changes: Option<&ChangeIndex>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let tx = self.conn.transaction()?;
        let c = block.changes.as_ref();
        let note = match changes {
            Some(ChangeIndex::Unavailable(why)) => Some(why.as_str()),
            _ => None,
        };
        tx.prepare_cached(
            "INSERT INTO blocks (height, time_ns, snapshot, subvol_uuid, generation, prev_hash, hash, pruned_ns, steady_ns,
                                 changes_indexed, change_count, change_digest, changes_note, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
                block.height as i64,
                block.time_ns,
                block.snapshot,
                uuid::Uuid::from_bytes(block.subvol_uuid).hyphenated().to_string(),
                block.generation as i64,
                &block.prev_hash[..],
                &block.hash[..],
                steady_ns,
                c.map(|c| i64::from(c.indexed)),
                c.map(|c| c.count as i64),
                c.map(|c| c.digest.to_vec()),
                note,
                block.mac.map(|m| m.to_vec()),
            ])?;
        if let Some(ChangeIndex::Indexed(list)) = changes {
            changes::insert(&tx, block.height, list)?;
        }
        let marked = match policy {
            Some(policy) => mark_expired(&tx, policy, steady_ns, block.time_ns)?,
            None => Vec::new(),
        };
        tx.commit()?;
        Ok(marked)
    }

    /// Marks every unpruned block that `policy` no longer keeps at steady time
    /// `now_steady_ns` as pruned at `now_wall_ns`.
    pub fn mark_expired(
        &mut self,
        policy: &Policy<'_>,
        now_steady_ns: i64,
        now_wall_ns: i64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let tx = self.conn.transaction()?;
        let marked = mark_expired(&tx, policy, now_steady_ns, now_wall_ns)?;
        tx.commit()?;
        Ok(marked)
    }

    /// The head's (steady, wall) times: where the steady clock continues from.
    pub fn head_times(&self) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT coalesce(steady_ns, time_ns), time_ns FROM blocks WHERE height = (SELECT max(height) FROM blocks)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The steady clock's stored (boot id, offset).
    pub fn steady_anchor(&self) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT boot_id, offset_ns FROM steady_clock WHERE id = 0", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Stores the steady clock's offset for this boot.
    pub fn set_steady_anchor(&mut self, boot_id: &str, offset_ns: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO steady_clock (id, boot_id, offset_ns) VALUES (0, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET boot_id = excluded.boot_id, offset_ns = excluded.offset_ns",
            params![boot_id, offset_ns],
        )?;
        Ok(())
    }

    /// Marks one block pruned (its snapshot vanished or was removed).
    pub fn mark_pruned(&mut self, height: u64, now_ns: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE blocks SET pruned_ns = ?2 WHERE height = ?1 AND pruned_ns IS NULL",
            params![height as i64, now_ns],
        )?;
        Ok(())
    }

    /// Recomputes the whole chain in height order.
    pub fn verify(&self) -> Result<Verdict, StoreError> {
        self.verify_tail(None)
    }

    /// [`Store::verify`], also checking each block's MAC under `key`.
    pub fn verify_sealed(&self, key: &[u8]) -> Result<Verdict, StoreError> {
        self.verify_range(None, Some(key))
    }

    /// Recomputes the newest `last` blocks (all when `None`), trusting the link
    /// into the first of them. The daemon checks the tail at start-up; `verify`
    /// checks everything.
    pub fn verify_tail(&self, last: Option<u64>) -> Result<Verdict, StoreError> {
        self.verify_range(last, None)
    }

    fn verify_range(&self, last: Option<u64>, key: Option<&[u8]>) -> Result<Verdict, StoreError> {
        let from = match (last, self.head()?) {
            (Some(n), Some(head)) => (head.height + 1).saturating_sub(n),
            _ => 0,
        };
        let mut st = self.conn.prepare(&format!("SELECT {COLUMNS} FROM blocks WHERE height >= ?1 ORDER BY height"))?;
        let mut rows = st.query([from as i64])?;
        // Change rows are checked against their block's digest, except below
        // the horizon of change retention, where only the digests remain.
        let horizon = changes::horizon(&self.conn)?;
        let mut list_st = changes::ListCheck::statement(&self.conn)?;
        let mut lists = changes::ListCheck::new(&mut list_st, from.max(horizon))?;
        let mut v: Option<Verifier> = None;
        let mut whole = true;
        while let Some(row) = rows.next()? {
            let block = row_to_block(row)?;
            let verifier = v.get_or_insert_with(|| {
                match (&block, from) {
                    (Ok(b), f) if f > 0 => Verifier::starting_at(f, b.prev_hash),
                    _ => Verifier::new(),
                }
                .with_key(key)
            });
            match block {
                Ok(b) => {
                    if !verifier.push(&b) {
                        whole = false;
                        break;
                    }
                    if b.height >= horizon
                        && let Some((h, why)) = lists.check(&b)?
                    {
                        verifier.fail(h, why);
                        whole = false;
                        break;
                    }
                }
                Err((h, why)) => {
                    verifier.fail(h, why);
                    whole = false;
                    break;
                }
            }
        }
        if whole && let Some((h, why)) = lists.leftover()? {
            v.get_or_insert_with(Verifier::new).fail(h, why);
        }
        Ok(v.unwrap_or_default().finish())
    }
}

/// The statements every tick runs (head, append, retention): the plan test
/// below asserts that none of them scans `blocks`.
pub(crate) const TICK_QUERIES: &[&str] = &[
    "SELECT height FROM blocks WHERE height = (SELECT max(height) FROM blocks)",
    "SELECT height, snapshot, coalesce(steady_ns, time_ns) FROM blocks WHERE pruned_ns IS NULL ORDER BY height",
    "UPDATE blocks SET pruned_ns = ?2 WHERE height = ?1 AND pruned_ns IS NULL",
];

/// The live blocks (as many as the policy keeps, not the chain's length), the
/// policy's verdict on them, and the marks, in the caller's transaction.
fn mark_expired(
    tx: &rusqlite::Transaction<'_>,
    policy: &Policy<'_>,
    now_steady_ns: i64,
    now_wall_ns: i64,
) -> Result<Vec<(u64, String)>, StoreError> {
    let mut live: Vec<(u64, String, i64)> = Vec::new();
    {
        let mut st = tx.prepare_cached(TICK_QUERIES[1])?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        for r in rows {
            live.push(r?);
        }
    }
    let times: Vec<(u64, i64)> = live.iter().map(|(h, _, t)| (*h, *t)).collect();
    let expired = policy.expired(now_steady_ns, &times);
    let mut marked = Vec::new();
    if !expired.is_empty() {
        let mut st = tx.prepare_cached(TICK_QUERIES[2])?;
        for (height, snapshot, _) in live.into_iter().filter(|(h, _, _)| expired.binary_search(h).is_ok()) {
            st.execute(params![height as i64, now_wall_ns])?;
            marked.push((height, snapshot));
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    /// A tick costs the same at any chain length: no statement it runs scans `blocks`.
    #[test]
    fn tick_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_writer(&dir.path().join("chain.db"), Duration::from_secs(1)).unwrap();
        for sql in TICK_QUERIES {
            let mut st = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(std::iter::repeat_n(0i64, st.parameter_count())), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(!plan.iter().any(|step| step.starts_with("SCAN blocks")), "{sql}: {plan:?}");
            assert!(plan.iter().any(|step| step.contains("blocks")), "{sql}: {plan:?}");
        }
    }
}
