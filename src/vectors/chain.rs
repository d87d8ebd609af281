//! The sync's view of the chain database: reads blocks (never writes them) and
//! keeps its own durable cursors in the `cursors` table. A cursor holds the
//! highest height the consumer has fully processed; no row means -1 (nothing,
//! not even genesis). The pruned-flag cursor is a [`PrunedKey`] kept in two
//! rows (its `pruned_ns` and its height).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use crate::snapshot::chain::Block;
use crate::snapshot::changes::Change;
use crate::snapshot::schema;
use crate::snapshot::store::{COLUMNS, StoreError, lists_in, row_to_block};

/// Where a block stands in the order of pruning: when it was pruned, then its height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrunedKey {
    pub pruned_ns: i64,
    pub height: i64,
}

impl PrunedKey {
    /// Before every pruned block.
    pub const NONE: PrunedKey = PrunedKey { pruned_ns: i64::MIN, height: i64::MIN };
}

/// A pruned block as the pruned flags need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedBlock {
    pub key: PrunedKey,
    pub hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("chain database {path} does not exist yet; start the snapshotter first (it creates it), or fix `database`")]
    Missing { path: PathBuf },
    #[error("cannot open chain database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("chain database {path}: {source}")]
    Schema { path: PathBuf, source: schema::SchemaError },
    #[error("chain database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "chain database: block {height} has a {column} of {len} bytes, expected 32; run `ghostbridge-snapshotter verify`"
    )]
    BadHash { height: i64, column: &'static str, len: usize },
    #[error("chain database: block {height}: {why}; run `ghostbridge-snapshotter verify`")]
    BadRow { height: u64, why: String },
    #[error(transparent)]
    ChangeIndex(#[from] StoreError),
}

/// How long a statement waits for the snapshotter's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ChainDb {
    conn: Connection,
}

impl ChainDb {
    /// Opens an existing database for syncing: read-write (for the cursors only),
    /// WAL, busy timeout; refuses a schema version other than the current one.
    pub fn open(path: &Path) -> Result<Self, ChainError> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Opens an existing database read-only (for `status` and `search`).
    pub fn open_read_only(path: &Path) -> Result<Self, ChainError> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn open_with(path: &Path, mode: OpenFlags) -> Result<Self, ChainError> {
        if !path.exists() {
            return Err(ChainError::Missing { path: path.to_path_buf() });
        }
        let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let open_err = |source| ChainError::Open { path: path.to_path_buf(), source };
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        if mode.contains(OpenFlags::SQLITE_OPEN_READ_WRITE) {
            schema::configure(&conn).map_err(|source| ChainError::Schema { path: path.to_path_buf(), source })?;
        } else {
            conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        }
        schema::require_current(&conn).map_err(|source| ChainError::Schema { path: path.to_path_buf(), source })?;
        Ok(ChainDb { conn })
    }

    /// The consumer's cursor, -1 when it has none.
    pub fn cursor(&self, consumer: &str) -> Result<i64, ChainError> {
        let h: Option<i64> = self
            .conn
            .query_row("SELECT height FROM cursors WHERE consumer = ?1", [consumer], |r| r.get(0))
            .optional()?;
        Ok(h.unwrap_or(-1))
    }

    /// A cursor in the order of pruning, kept in two rows (`pruned_ns` and
    /// `height`); [`PrunedKey::NONE`] when either is missing.
    pub fn pruned_cursor(&self, ns_consumer: &str, height_consumer: &str) -> Result<PrunedKey, ChainError> {
        let get = |c: &str| -> Result<Option<i64>, ChainError> {
            Ok(self.conn.query_row("SELECT height FROM cursors WHERE consumer = ?1", [c], |r| r.get(0)).optional()?)
        };
        Ok(match (get(ns_consumer)?, get(height_consumer)?) {
            (Some(pruned_ns), Some(height)) => PrunedKey { pruned_ns, height },
            _ => PrunedKey::NONE,
        })
    }

    /// Stores cursors durably, all in one transaction.
    pub fn set_cursors(&mut self, cursors: &[(&str, i64)]) -> Result<(), ChainError> {
        let tx = self.conn.transaction()?;
        for (consumer, height) in cursors {
            tx.execute(
                "INSERT INTO cursors (consumer, height) VALUES (?1, ?2)
                 ON CONFLICT (consumer) DO UPDATE SET height = excluded.height",
                params![consumer, height],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` blocks with height > `after`, in order.
    pub fn blocks_after(&self, after: i64, limit: usize) -> Result<Vec<Block>, ChainError> {
        self.blocks_where("height > ?1 ORDER BY height LIMIT ?2", params![after, limit as i64])
    }

    /// Blocks in `(after, through]`, in order, at most `limit`.
    pub fn blocks_between(&self, after: i64, through: i64, limit: usize) -> Result<Vec<Block>, ChainError> {
        self.blocks_where(
            "height > ?1 AND height <= ?2 ORDER BY height LIMIT ?3",
            params![after, through, limit as i64],
        )
    }

    fn blocks_where(&self, clause: &str, args: impl rusqlite::Params) -> Result<Vec<Block>, ChainError> {
        let sql = format!("SELECT {COLUMNS} FROM blocks WHERE {clause}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(args, row_to_block)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.map_err(|(height, why)| ChainError::BadRow { height, why })?);
        }
        Ok(out)
    }

    /// The change list of each of `blocks` (consecutive, in order), empty for
    /// a block without one or whose rows change retention removed.
    pub fn changes_of(&self, blocks: &[Block]) -> Result<Vec<Vec<Change>>, ChainError> {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else { return Ok(Vec::new()) };
        let mut lists = lists_in(&self.conn, first.height, last.height)?;
        Ok(blocks.iter().map(|b| lists.remove(&b.height).unwrap_or_default()).collect())
    }

    /// Removes a consumer's cursor (e.g. one of an older layout).
    pub fn delete_cursor(&mut self, consumer: &str) -> Result<(), ChainError> {
        self.conn.execute("DELETE FROM cursors WHERE consumer = ?1", [consumer])?;
        Ok(())
    }

    /// Pruned blocks of height <= `through` whose key `(pruned_ns, height)` is
    /// after `after`, in key order, at most `limit`; and, read in the same
    /// snapshot, the highest key of any pruned block (`None` when none is).
    pub fn pruned_after(
        &mut self,
        after: PrunedKey,
        through: i64,
        limit: usize,
    ) -> Result<(Vec<PrunedBlock>, Option<PrunedKey>), ChainError> {
        let tx = self.conn.transaction()?;
        let mut blocks = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT pruned_ns, height, hash FROM blocks
                 WHERE pruned_ns IS NOT NULL AND height <= ?3 AND (pruned_ns, height) > (?1, ?2)
                 ORDER BY pruned_ns, height LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![after.pruned_ns, after.height, through, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
            })?;
            for row in rows {
                let (pruned_ns, height, hash) = row?;
                blocks.push(PrunedBlock { key: PrunedKey { pruned_ns, height }, hash: to_hash(height, "hash", hash)? });
            }
        }
        let last = tx
            .query_row(
                "SELECT pruned_ns, height FROM blocks WHERE pruned_ns IS NOT NULL
                 ORDER BY pruned_ns DESC, height DESC LIMIT 1",
                [],
                |r| Ok(PrunedKey { pruned_ns: r.get(0)?, height: r.get(1)? }),
            )
            .optional()?;
        tx.commit()?;
        Ok((blocks, last))
    }

    /// Number of blocks with height > `after`.
    pub fn count_after(&self, after: i64) -> Result<i64, ChainError> {
        Ok(self.conn.query_row("SELECT count(*) FROM blocks WHERE height > ?1", [after], |r| r.get(0))?)
    }

    /// The highest height, `None` for an empty chain.
    pub fn head(&self) -> Result<Option<i64>, ChainError> {
        Ok(self.conn.query_row("SELECT max(height) FROM blocks", [], |r| r.get(0))?)
    }

    /// `time_ns` of the first block after `after`, if any (for the lag).
    pub fn first_time_after(&self, after: i64) -> Result<Option<i64>, ChainError> {
        Ok(self
            .conn
            .query_row("SELECT time_ns FROM blocks WHERE height > ?1 ORDER BY height LIMIT 1", [after], |r| r.get(0))
            .optional()?)
    }
}

fn to_hash(height: i64, column: &'static str, bytes: Vec<u8>) -> Result<[u8; 32], ChainError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| ChainError::BadHash { height, column, len })
}
