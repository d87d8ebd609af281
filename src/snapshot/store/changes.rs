//! The change index in SQLite: interned paths, one compact row per change,
//! the check of each block's rows against its digest, change retention, and
//! the queries behind `changes`, `diff`, `log` and `restore`.

use rusqlite::{Connection, OptionalExtension, params};

use super::{COLUMNS, Store, StoreError, flatten, row_to_block};
use crate::snapshot::chain::Block;
use crate::snapshot::changes::{Change, ChangeKind, digest};

/// One change with the block it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub height: u64,
    pub time_ns: i64,
    pub change: Change,
}

/// One block of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub block: Block,
    /// The block's change list, or why there is none.
    pub changes: BlockChanges,
}

/// What the index holds for one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockChanges {
    /// The number of changes; the rows are in the index.
    Indexed(u64),
    /// Indexed, but the rows were removed by change retention.
    Expired(u64),
    /// Not indexed, and why.
    Unavailable(String),
}

/// Inserts a block's change rows, interning their paths.
pub(super) fn insert(conn: &Connection, height: u64, list: &[Change]) -> Result<(), StoreError> {
    let mut add = conn.prepare_cached("INSERT INTO paths (path) VALUES (?1) ON CONFLICT (path) DO NOTHING")?;
    let mut id = conn.prepare_cached("SELECT id FROM paths WHERE path = ?1")?;
    let mut row =
        conn.prepare_cached("INSERT INTO changes (height, path_id, kind, from_id) VALUES (?1, ?2, ?3, ?4)")?;
    let mut intern = |path: &[u8]| -> Result<i64, StoreError> {
        add.execute([path])?;
        Ok(id.query_row([path], |r| r.get(0))?)
    };
    for c in list {
        let path_id = intern(&c.path)?;
        let from_id = c.from.as_deref().map(&mut intern).transpose()?;
        row.execute(params![height as i64, path_id, c.kind.code(), from_id])?;
    }
    Ok(())
}

/// The lowest height whose change rows are kept (0 until change retention ran).
pub(super) fn horizon(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .query_row("SELECT height FROM change_horizon WHERE id = 0", [], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64)
}

const LIST_ROWS: &str = "SELECT c.height, c.kind, p.path, f.path FROM changes c
     JOIN paths p ON p.id = c.path_id LEFT JOIN paths f ON f.id = c.from_id";

fn to_change(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<(u64, Change), (u64, String)>> {
    let height = row.get::<_, i64>(0)? as u64;
    let code: i64 = row.get(1)?;
    let Some(kind) = ChangeKind::from_code(code) else {
        return Ok(Err((height, format!("a change row has kind {code}, not 1 to 6"))));
    };
    let path: Vec<u8> = row.get(2)?;
    let from: Option<Vec<u8>> = row.get(3)?;
    Ok(Ok((height, Change { path, kind, from })))
}

/// The change lists of blocks `from..=to` that have rows, by height, each sorted.
pub(crate) fn lists_in(
    conn: &Connection,
    from: u64,
    to: u64,
) -> Result<std::collections::BTreeMap<u64, Vec<Change>>, StoreError> {
    let mut st = conn.prepare_cached(&format!("{LIST_ROWS} WHERE c.height BETWEEN ?1 AND ?2"))?;
    let mut rows = st.query([from as i64, to as i64])?;
    let mut out: std::collections::BTreeMap<u64, Vec<Change>> = std::collections::BTreeMap::new();
    while let Some(row) = rows.next()? {
        match to_change(row)? {
            Ok((height, c)) => out.entry(height).or_default().push(c),
            Err((height, why)) => return Err(StoreError::Corrupt { height, why }),
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    Ok(out)
}

/// Walks the change rows alongside the blocks during verification.
pub(super) struct ListCheck<'s> {
    rows: rusqlite::Rows<'s>,
    pending: Option<(u64, Change)>,
}

impl<'s> ListCheck<'s> {
    pub(super) fn statement(conn: &Connection) -> Result<rusqlite::Statement<'_>, StoreError> {
        Ok(conn.prepare(&format!("{LIST_ROWS} WHERE c.height >= ?1 ORDER BY c.height"))?)
    }

    pub(super) fn new(st: &'s mut rusqlite::Statement<'_>, from: u64) -> Result<ListCheck<'s>, StoreError> {
        Ok(ListCheck { rows: st.query([from as i64])?, pending: None })
    }

    fn next(&mut self) -> Result<Option<(u64, Change)>, StoreError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        match self.rows.next()? {
            None => Ok(None),
            Some(row) => match to_change(row)? {
                Ok(c) => Ok(Some(c)),
                Err((height, why)) => Err(StoreError::Corrupt { height, why }),
            },
        }
    }

    /// Why `block`'s rows do not match what its hash covers, if they do not.
    /// Rows of earlier heights not claimed by a block, and unreadable rows,
    /// are reported too.
    pub(super) fn check(&mut self, block: &Block) -> Result<Option<(u64, String)>, StoreError> {
        match self.compare(block) {
            Err(StoreError::Corrupt { height, why }) => Ok(Some((height, why))),
            r => r,
        }
    }

    fn compare(&mut self, block: &Block) -> Result<Option<(u64, String)>, StoreError> {
        let mut list = Vec::new();
        while let Some((height, change)) = self.next()? {
            if height < block.height {
                return Ok(Some((height, "change rows exist for a block without a change list".into())));
            }
            if height > block.height {
                self.pending = Some((height, change));
                break;
            }
            list.push(change);
        }
        let why = match block.changes {
            Some(c) if c.indexed => {
                if list.len() as u64 != c.count {
                    Some(format!("{} change rows, but the block records {} changes", list.len(), c.count))
                } else if digest(&list) != c.digest {
                    Some("the change rows do not match the block's change digest (a change was edited)".into())
                } else {
                    None
                }
            }
            _ if !list.is_empty() => Some("change rows exist for a block without a change list".into()),
            _ => None,
        };
        Ok(why.map(|w| (block.height, w)))
    }

    /// Rows left after the last block: they belong to no block.
    pub(super) fn leftover(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        match self.next() {
            Ok(next) => {
                Ok(next.map(|(h, _)| (h, "change rows exist for a block that is not in the chain".to_string())))
            }
            Err(StoreError::Corrupt { height, why }) => Ok(Some((height, why))),
            Err(e) => Err(e),
        }
    }
}

/// The bounds of a path and everything below it, as BLOB ranges: the path
/// itself, and `[path/, path0)` (`0` is the byte after `/`).
fn below(prefix: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let exact = if prefix.len() > 1 { prefix.strip_suffix(b"/").unwrap_or(prefix) } else { prefix };
    let base = if exact == b"/" { Vec::new() } else { exact.to_vec() };
    let mut lo = base.clone();
    lo.push(b'/');
    let mut hi = base;
    hi.push(b'0');
    (exact.to_vec(), lo, hi)
}

impl Store {
    /// Every change to `path` or below it (as the new or the old path of a
    /// rename) in blocks at `from_height` or later, oldest first.
    pub fn changes_under(&self, path: &[u8], from_height: u64) -> Result<Vec<ChangeRow>, StoreError> {
        let (exact, lo, hi) = below(path);
        let sql = "SELECT height, kind, path, from_path, time_ns FROM (
                 SELECT c.height, c.kind, p.path, f.path AS from_path FROM paths p JOIN changes c ON c.path_id = p.id
                   LEFT JOIN paths f ON f.id = c.from_id
                   WHERE (p.path = ?1 OR (p.path >= ?2 AND p.path < ?3)) AND c.height >= ?4
                 UNION
                 SELECT c.height, c.kind, p.path, f.path FROM paths f JOIN changes c ON c.from_id = f.id
                   JOIN paths p ON p.id = c.path_id
                   WHERE (f.path = ?1 OR (f.path >= ?2 AND f.path < ?3)) AND c.height >= ?4
             ) JOIN blocks USING (height) ORDER BY height, path, kind";
        let mut st = self.conn.prepare(sql)?;
        let mut rows = st.query(params![exact, lo, hi, from_height as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let time_ns: i64 = row.get(4)?;
            match to_change(row)? {
                Ok((height, change)) => out.push(ChangeRow { height, time_ns, change }),
                Err((height, why)) => return Err(StoreError::Corrupt { height, why }),
            }
        }
        Ok(out)
    }

    /// The change list of one block, or what the index says instead.
    pub fn block_changes(&self, block: &Block) -> Result<Result<Vec<Change>, BlockChanges>, StoreError> {
        match self.index_state(block)? {
            BlockChanges::Indexed(_) => {}
            other => return Ok(Err(other)),
        }
        let mut st = self.conn.prepare_cached(&format!("{LIST_ROWS} WHERE c.height = ?1"))?;
        let mut rows = st.query([block.height as i64])?;
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            match to_change(row)? {
                Ok((_, c)) => list.push(c),
                Err((height, why)) => return Err(StoreError::Corrupt { height, why }),
            }
        }
        list.sort();
        Ok(Ok(list))
    }

    /// What the index holds for `block`.
    pub fn index_state(&self, block: &Block) -> Result<BlockChanges, StoreError> {
        Ok(match block.changes {
            None => BlockChanges::Unavailable("written before the change index (chain layout 1)".into()),
            Some(c) if !c.indexed => {
                let note: Option<String> = self
                    .conn
                    .query_row("SELECT changes_note FROM blocks WHERE height = ?1", [block.height as i64], |r| r.get(0))
                    .optional()?
                    .flatten();
                BlockChanges::Unavailable(note.unwrap_or_else(|| "not indexed".into()))
            }
            Some(c) if block.height < horizon(&self.conn)? => BlockChanges::Expired(c.count),
            Some(c) => BlockChanges::Indexed(c.count),
        })
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let r = self
            .conn
            .query_row(&format!("SELECT {COLUMNS} FROM blocks WHERE height = ?1"), [height as i64], row_to_block)
            .optional()?;
        r.map(|x| flatten(Ok(x))).transpose()
    }

    /// Blocks `from..=to`, oldest first.
    pub fn range(&self, from: u64, to: u64) -> Result<Vec<Block>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM blocks WHERE height BETWEEN ?1 AND ?2 ORDER BY height"))?;
        let rows = st.query_map([from as i64, to as i64], row_to_block)?;
        rows.map(flatten).collect()
    }

    /// The lowest height whose recorded time is at or after `time_ns`
    /// (head + 1 when none is). Heights are found by bisection on the
    /// recorded wall time, which follows the height unless the clock was
    /// stepped back (then the answer is near, not exact).
    pub fn first_at_or_after(&self, time_ns: i64) -> Result<u64, StoreError> {
        let Some(head) = self.head()? else { return Ok(0) };
        let mut st = self.conn.prepare_cached("SELECT time_ns FROM blocks WHERE height = ?1")?;
        let (mut lo, mut hi) = (0u64, head.height + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let t: Option<i64> = st.query_row([mid as i64], |r| r.get(0)).optional()?;
            match t {
                Some(t) if t < time_ns => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// The newest block whose snapshot still exists at or below `height`.
    pub fn newest_live_at_or_below(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let r = self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM blocks WHERE pruned_ns IS NULL AND height <= ?1 ORDER BY pruned_ns, height DESC LIMIT 1"
                ),
                [height as i64],
                row_to_block,
            )
            .optional()?;
        r.map(|x| flatten(Ok(x))).transpose()
    }

    /// The oldest block whose snapshot still exists above `height`.
    pub fn oldest_live_above(&self, height: u64) -> Result<Option<Block>, StoreError> {
        let r = self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM blocks WHERE pruned_ns IS NULL AND height > ?1 ORDER BY pruned_ns, height LIMIT 1"
                ),
                [height as i64],
                row_to_block,
            )
            .optional()?;
        r.map(|x| flatten(Ok(x))).transpose()
    }

    /// Change retention: removes the change rows of blocks recorded before
    /// `cutoff_ns` (their digests stay in the blocks), and the paths only they
    /// used. The work follows the rows removed, not the index's size. Returns
    /// how many rows went.
    pub fn expire_changes(&mut self, cutoff_ns: i64) -> Result<u64, StoreError> {
        let new_horizon = self.first_at_or_after(cutoff_ns)?;
        let tx = self.conn.transaction()?;
        let old = horizon(&tx)?;
        if new_horizon <= old {
            return Ok(0);
        }
        let ids: Vec<i64> = {
            let mut st = tx.prepare(
                "SELECT path_id FROM changes WHERE height >= ?1 AND height < ?2
                 UNION SELECT from_id FROM changes WHERE height >= ?1 AND height < ?2 AND from_id IS NOT NULL",
            )?;
            let rows = st.query_map([old as i64, new_horizon as i64], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let removed =
            tx.execute("DELETE FROM changes WHERE height >= ?1 AND height < ?2", [old as i64, new_horizon as i64])?;
        {
            let mut unused = tx.prepare(
                "DELETE FROM paths WHERE id = ?1
                   AND NOT EXISTS (SELECT 1 FROM changes WHERE path_id = ?1)
                   AND NOT EXISTS (SELECT 1 FROM changes WHERE from_id = ?1)",
            )?;
            for id in ids {
                unused.execute([id])?;
            }
        }
        tx.execute(
            "INSERT INTO change_horizon (id, height) VALUES (0, ?1) ON CONFLICT (id) DO UPDATE SET height = excluded.height",
            [new_horizon as i64],
        )?;
        tx.commit()?;
        Ok(removed as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds_cover_the_path_and_below_only() {
        assert_eq!(below(b"/etc/nginx"), (b"/etc/nginx".to_vec(), b"/etc/nginx/".to_vec(), b"/etc/nginx0".to_vec()));
        assert_eq!(below(b"/etc/nginx/"), below(b"/etc/nginx"));
        assert_eq!(below(b"/"), (b"/".to_vec(), b"/".to_vec(), b"0".to_vec()));
    }
}
