//! The SQLite schema of the snapshot chain, shared by the snapshotter (the only
//! writer of `blocks`) and the Qdrant sync (a reader of `blocks`, writer of its
//! own cursor). Versioned with `PRAGMA user_version`; migrations run in order,
//! each in its own transaction, so an interrupted upgrade leaves the old version.

use rusqlite::Connection;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 4;

/// Migration `i` upgrades from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the chain.
    "CREATE TABLE blocks (
        height      INTEGER PRIMARY KEY,      -- 0 is genesis; no gaps
        time_ns     INTEGER NOT NULL,         -- CLOCK_REALTIME of the snapshot, ns since the epoch
        snapshot    TEXT    NOT NULL UNIQUE,  -- snapshot name inside the snapshot directory
        subvol_uuid TEXT    NOT NULL,         -- the snapshot subvolume's UUID, lower-case hyphenated
        generation  INTEGER NOT NULL,         -- the snapshot subvolume's generation
        prev_hash   BLOB    NOT NULL CHECK (length(prev_hash) = 32),
        hash        BLOB    NOT NULL CHECK (length(hash) = 32),
        pruned_ns   INTEGER                   -- when the snapshot was deleted; NULL while it exists
    );
    CREATE TABLE cursors (
        consumer TEXT PRIMARY KEY,            -- e.g. 'qdrant:<collection>'
        height   INTEGER NOT NULL             -- highest height the consumer has fully processed
    );",
    // 1 -> 2: blocks by pruning state: the live ones (`pruned_ns IS NULL`, what
    // every tick's retention query reads, so a tick costs the same at any chain
    // length) and newly pruned ones in order (the Qdrant sync's pruned flags).
    // Replaces the index the sync used to create itself.
    "DROP INDEX IF EXISTS qdrant_sync_blocks_pruned;
    CREATE INDEX blocks_pruned ON blocks (pruned_ns, height);",
    // 2 -> 3: retention measures ages on a steady clock (CLOCK_BOOTTIME plus an
    // offset), not on the wall clock a step can move. Not part of the hash:
    // it is local bookkeeping. Blocks written before have NULL; their time_ns
    // stands in. The offset is kept with the boot it belongs to.
    "ALTER TABLE blocks ADD COLUMN steady_ns INTEGER;
    CREATE TABLE steady_clock (
        id        INTEGER PRIMARY KEY CHECK (id = 0),  -- one row
        boot_id   TEXT    NOT NULL,                    -- /proc/sys/kernel/random/boot_id of that boot
        offset_ns INTEGER NOT NULL                     -- steady = CLOCK_BOOTTIME + offset during that boot
    );",
    // 3 -> 4: the change index (chain layout 2). A block with `changes_indexed`
    // NULL is layout 1; otherwise its hash covers (indexed, count, digest) and
    // its changes are rows of `changes`, with paths interned in `paths`.
    // `changes_note` (not hashed) says why a block has no change list; `mac`
    // authenticates the hash with the operator's key, when one is set.
    "ALTER TABLE blocks ADD COLUMN changes_indexed INTEGER;
    ALTER TABLE blocks ADD COLUMN change_count INTEGER;
    ALTER TABLE blocks ADD COLUMN change_digest BLOB;
    ALTER TABLE blocks ADD COLUMN changes_note TEXT;
    ALTER TABLE blocks ADD COLUMN mac BLOB;              -- HMAC-SHA256(key, hash) when a key is set; not hashed
    CREATE TABLE paths (
        id   INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE                      -- '/'-separated, leading '/', relative to the source
    );
    CREATE TABLE changes (
        height  INTEGER NOT NULL,                      -- the block
        path_id INTEGER NOT NULL,                      -- paths.id: the path after the change (before, for deleted)
        kind    INTEGER NOT NULL,                      -- 1 created, 2 modified, 3 metadata, 4 renamed, 5 deleted, 6 times
        from_id INTEGER,                               -- paths.id of the old path of a rename
        PRIMARY KEY (height, path_id, kind)
    ) WITHOUT ROWID;
    CREATE INDEX changes_by_path ON changes (path_id, height);
    CREATE INDEX changes_by_from ON changes (from_id, height) WHERE from_id IS NOT NULL;
    CREATE TABLE change_horizon (
        id     INTEGER PRIMARY KEY CHECK (id = 0),     -- one row
        height INTEGER NOT NULL                        -- change rows below this height were removed by change retention
    );",
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "database schema version {found} is newer than this program understands ({SCHEMA_VERSION}); upgrade ghostbridge"
    )]
    TooNew { found: i64 },
    #[error(
        "database schema is at version {found}, expected {SCHEMA_VERSION}; start the snapshotter once to migrate it"
    )]
    TooOld { found: i64 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Sets the connection options every GhostBridge process uses: WAL, a busy
/// timeout instead of instant `SQLITE_BUSY`, foreign keys, full sync in WAL.
pub fn configure(conn: &Connection) -> Result<(), SchemaError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The version stored in the database file.
pub fn version(conn: &Connection) -> Result<i64, SchemaError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Brings the database up to [`SCHEMA_VERSION`] (for the writer).
pub fn migrate(conn: &mut Connection) -> Result<(), SchemaError> {
    let mut current = version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(SchemaError::TooNew { found: current });
    }
    while current < SCHEMA_VERSION {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[current as usize])?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
        current += 1;
    }
    Ok(())
}

/// Checks that the database is exactly at [`SCHEMA_VERSION`] (for readers).
pub fn require_current(conn: &Connection) -> Result<(), SchemaError> {
    match version(conn)? {
        v if v == SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(SchemaError::TooNew { found: v }),
        v => Err(SchemaError::TooOld { found: v }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("chain.db")).unwrap();
        configure(&conn).unwrap();
        assert!(matches!(require_current(&conn), Err(SchemaError::TooOld { found: 0 })));
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        require_current(&conn).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM blocks", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn refuses_newer_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("chain.db")).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&mut conn), Err(SchemaError::TooNew { .. })));
    }
}
