//! The change index: which paths a block changed since the block before it,
//! and how. Built from the kernel's send stream between the two read-only
//! snapshots ([`super::send`]): the stream's operations are replayed over
//! path names (temporary orphan names, directory moves and all) and reduced to
//! one list per block, sorted, with a SHA-256 digest that the block's hash
//! covers (chain layout version 2).
//!
//! What counts as a change of a path (paths are relative to the snapshotted
//! subvolume, written with a leading `/`):
//! - `created`: a new file, directory, link, device or hard link;
//! - `deleted`: a name that existed before is gone (its old path);
//! - `renamed`: a name moved (its new path, and the old one as `from`); the
//!   entries below a moved directory are not listed one by one;
//! - `modified`: a file's contents changed;
//! - `metadata`: mode, owner, extended attributes or inode flags changed;
//! - `times`: nothing but the modification or change time of a
//!   non-directory changed (`touch`, a new hard link to it). Directory times
//!   are not a change (they follow their entries), nor is a new access time.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::btrfs::{self, Subvolume};
use super::send::{self, Op};

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Created,
    Modified,
    Metadata,
    Renamed,
    Deleted,
    Times,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::Created,
        ChangeKind::Modified,
        ChangeKind::Metadata,
        ChangeKind::Renamed,
        ChangeKind::Deleted,
        ChangeKind::Times,
    ];

    /// The byte stored in the `changes` table and hashed into the digest.
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Created => 1,
            ChangeKind::Modified => 2,
            ChangeKind::Metadata => 3,
            ChangeKind::Renamed => 4,
            ChangeKind::Deleted => 5,
            ChangeKind::Times => 6,
        }
    }

    pub fn from_code(code: i64) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| i64::from(k.code()) == code)
    }

    /// The word used in output and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Modified => "modified",
            ChangeKind::Metadata => "metadata",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Times => "times",
        }
    }
}

/// One changed path of a block. The derived order (path bytes, kind, from)
/// is the canonical order the digest is computed in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// The path after the change (before it, for `deleted`), with a leading `/`.
    pub path: Vec<u8>,
    pub kind: ChangeKind,
    /// The old path of a `renamed` entry.
    pub from: Option<Vec<u8>>,
}

impl Change {
    pub fn new(path: &[u8], kind: ChangeKind) -> Change {
        Change { path: path.to_vec(), kind, from: None }
    }
}

/// A block's change list, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeIndex {
    /// The complete list, sorted.
    Indexed(Vec<Change>),
    /// Not indexed (first block, previous snapshot gone, send refused): why.
    Unavailable(String),
}

/// What the block's hash covers of its change list (layout version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeDigest {
    /// Whether the block has a change list at all.
    pub indexed: bool,
    /// Number of changes (0 when not indexed).
    pub count: u64,
    /// [`digest`] of the sorted list (of the empty list when not indexed).
    pub digest: [u8; 32],
}

impl ChangeIndex {
    pub fn summary(&self) -> ChangeDigest {
        match self {
            ChangeIndex::Indexed(list) => {
                ChangeDigest { indexed: true, count: list.len() as u64, digest: digest(list) }
            }
            ChangeIndex::Unavailable(_) => ChangeDigest { indexed: false, count: 0, digest: digest(&[]) },
        }
    }
}

/// SHA-256 over the changes in canonical order, each as: kind (1 byte), path
/// length (u32 big-endian), path, `from` length (u32 big-endian, 0 when
/// absent), `from`. The list is sorted here, so any order may be passed.
pub fn digest(changes: &[Change]) -> [u8; 32] {
    let mut sorted: Vec<&Change> = changes.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for c in sorted {
        let from = c.from.as_deref().unwrap_or(&[]);
        h.update([c.kind.code()]);
        h.update((c.path.len() as u32).to_be_bytes());
        h.update(&c.path);
        h.update((from.len() as u32).to_be_bytes());
        h.update(from);
    }
    h.finalize().into()
}

/// How many stream operations a change may take at most (a new file is a
/// create, a rename, an owner, a mode, times and its extents).
const OPS_PER_CHANGE: usize = 8;

/// The snapshot before the new one: its block, and its tree id when the
/// caller already knows it (the daemon keeps the one it took last tick).
pub struct Parent<'a> {
    pub block: &'a super::chain::Block,
    pub tree_id: Option<u64>,
}

/// The change list of the new snapshot `new` (in the snapshot folder open
/// as `dir`, at `dir_path`) against the block before it, of at most `limit`
/// changes (`None`: the index is off): unavailable when off, for the first
/// block, when that block's snapshot is gone, and when the change is larger
/// than the limit (a tick stays short and its memory bounded whatever
/// happened in the source).
pub fn for_block(
    limit: Option<usize>,
    dir: &File,
    dir_path: &Path,
    previous: Option<Parent<'_>>,
    new: &Subvolume,
) -> ChangeIndex {
    let Some(limit) = limit else { return ChangeIndex::Unavailable("index_changes is off".into()) };
    match previous {
        None => ChangeIndex::Unavailable("the first block has no earlier snapshot to compare with".into()),
        Some(p) if p.block.pruned_ns.is_some() => ChangeIndex::Unavailable(format!(
            "the previous block's snapshot {} was pruned before this one was taken",
            p.block.snapshot
        )),
        Some(p) => {
            let tree_id = match p.tree_id {
                Some(id) => id,
                None => match btrfs::open_subvolume(dir, dir_path, &p.block.snapshot) {
                    Ok(parent) => parent.info.tree_id,
                    Err(e) => return ChangeIndex::Unavailable(e.to_string()),
                },
            };
            index(dir_path, &p.block.snapshot, tree_id, new, limit)
        }
    }
}

/// The change list of the snapshot `new` against the snapshot `dir/parent`
/// (whose tree is `parent_tree`), if it has at most `limit` changes.
pub fn index(dir: &Path, parent: &str, parent_tree: u64, new: &Subvolume, limit: usize) -> ChangeIndex {
    match send::changed_ops(&new.file, &new.path, parent_tree, limit.saturating_mul(OPS_PER_CHANGE)) {
        Ok(ops) => {
            use std::os::unix::ffi::OsStrExt;
            use std::os::unix::fs::MetadataExt;
            let stat =
                |root: &Path, rel: &[u8]| std::fs::symlink_metadata(root.join(std::ffi::OsStr::from_bytes(rel))).ok();
            let parent_path = dir.join(parent);
            // The stream sends times for every inode whose item changed, an
            // access time included: compare what `times` means.
            let times_changed = |was: &[u8], now: &[u8]| match (stat(&parent_path, was), stat(&new.path, now)) {
                (_, Some(n)) if n.is_dir() => false,
                (Some(o), Some(n)) => {
                    (o.mtime(), o.mtime_nsec(), o.ctime(), o.ctime_nsec())
                        != (n.mtime(), n.mtime_nsec(), n.ctime(), n.ctime_nsec())
                }
                _ => true,
            };
            let list = from_ops(&ops, &times_changed);
            if list.len() > limit {
                return ChangeIndex::Unavailable(format!(
                    "{} changes between the two snapshots, more than max_changes_per_block ({limit}): too many to index",
                    list.len()
                ));
            }
            ChangeIndex::Indexed(list)
        }
        Err(e) => ChangeIndex::Unavailable(e.to_string()),
    }
}

/// Where a name came from.
#[derive(Debug, Clone)]
enum Origin {
    /// A new inode created by the stream.
    New,
    /// Existed at this path (relative, no leading `/`).
    Old(Vec<u8>),
    /// A new name (hard link) of the inode of another entry.
    Link,
}

/// One name of an inode, followed through the stream.
#[derive(Debug)]
struct Entry {
    origin: Origin,
    /// Entries with the same number are names of one inode (as far as the
    /// stream shows: links and renames keep it).
    inode: usize,
    /// Where it is now; `None` once removed.
    current: Option<Vec<u8>>,
    /// Renamed itself (not only carried along by a moved folder).
    moved: bool,
    modified: bool,
    metadata: bool,
    times: bool,
}

/// Replays the stream over path names. Paths the stream has not touched are
/// where they were, below whatever their touched ancestor became.
#[derive(Default)]
struct Replay {
    entries: Vec<Entry>,
    /// Current path -> entry.
    by_path: BTreeMap<Vec<u8>, usize>,
}

fn join(parent: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if !rest.is_empty() {
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(rest);
    }
    p
}

impl Replay {
    /// The entry at `path`, made on first touch: an untouched path keeps its
    /// place under its nearest touched ancestor.
    fn resolve(&mut self, path: &[u8]) -> usize {
        if let Some(&i) = self.by_path.get(path) {
            return i;
        }
        let mut origin = path.to_vec();
        let mut cut = path.len();
        while let Some(slash) = path[..cut].iter().rposition(|&b| b == b'/') {
            cut = slash;
            if let Some(&a) = self.by_path.get(&path[..cut])
                && let Origin::Old(old) = &self.entries[a].origin
            {
                origin = join(old, &path[cut + 1..]);
                break;
            }
        }
        self.insert(path, Origin::Old(origin), None)
    }

    /// A new entry at `path`; a new inode unless `inode` is given.
    fn insert(&mut self, path: &[u8], origin: Origin, inode: Option<usize>) -> usize {
        let i = self.entries.len();
        self.entries.push(Entry {
            origin,
            inode: inode.unwrap_or(i),
            current: Some(path.to_vec()),
            moved: false,
            modified: false,
            metadata: false,
            times: false,
        });
        if let Some(old) = self.by_path.insert(path.to_vec(), i) {
            self.entries[old].current = None;
        }
        i
    }

    fn remove(&mut self, path: &[u8]) {
        let i = self.resolve(path);
        self.by_path.remove(path);
        self.entries[i].current = None;
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) {
        let i = self.resolve(from);
        // Touched entries below a moved directory move with it.
        let mut prefix = from.to_vec();
        prefix.push(b'/');
        let below: Vec<(Vec<u8>, usize)> = self
            .by_path
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, &e)| (p.clone(), e))
            .collect();
        self.by_path.remove(from);
        for (p, _) in &below {
            self.by_path.remove(p);
        }
        if let Some(old) = self.by_path.insert(to.to_vec(), i) {
            self.entries[old].current = None;
        }
        self.entries[i].current = Some(to.to_vec());
        self.entries[i].moved = true;
        for (p, e) in below {
            let moved = join(to, &p[prefix.len()..]);
            self.entries[e].current = Some(moved.clone());
            self.by_path.insert(moved, e);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { path, .. } => {
                self.insert(path, Origin::New, None);
            }
            Op::Link { path, target } => {
                let t = self.resolve(target);
                let inode = self.entries[t].inode;
                self.insert(path, Origin::Link, Some(inode));
            }
            Op::Rename { path, to } => self.rename(path, to),
            Op::Remove { path } => self.remove(path),
            Op::Write { path } => {
                let i = self.resolve(path);
                self.entries[i].modified = true;
            }
            Op::Meta { path } => {
                let i = self.resolve(path);
                self.entries[i].metadata = true;
            }
            Op::Times { path } => {
                let i = self.resolve(path);
                self.entries[i].times = true;
            }
        }
    }
}

fn absolute(rel: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1);
    p.push(b'/');
    p.extend_from_slice(rel);
    p
}

/// Reduces a stream's operations to the sorted change list. For an entry
/// whose times alone were sent, `times_changed(old, new)` (relative paths)
/// says whether that is a `times` change.
pub fn from_ops(ops: &[Op], times_changed: &dyn Fn(&[u8], &[u8]) -> bool) -> Vec<Change> {
    let mut r = Replay::default();
    for op in ops {
        r.apply(op);
    }
    let mut inodes: BTreeMap<usize, Vec<&Entry>> = BTreeMap::new();
    for e in &r.entries {
        inodes.entry(e.inode).or_default().push(e);
    }
    let mut out = Vec::new();
    for names in inodes.values() {
        if matches!(names[0].origin, Origin::New) {
            out.extend(
                names.iter().filter_map(|e| e.current.as_ref()).map(|p| Change::new(&absolute(p), ChangeKind::Created)),
            );
            continue;
        }
        // Names the inode lost and gained; one of each is a rename.
        let mut removed: Vec<&[u8]> = Vec::new();
        let mut added: Vec<&[u8]> = Vec::new();
        let mut kept: Vec<(&[u8], &[u8])> = Vec::new();
        for e in names {
            match (&e.origin, &e.current) {
                (Origin::Old(was), None) => removed.push(was),
                (Origin::Old(was), Some(now)) if e.moved && was != now => {
                    removed.push(was);
                    added.push(now);
                }
                (Origin::Old(was), Some(now)) => kept.push((was, now)),
                (_, Some(now)) => added.push(now),
                (_, None) => {}
            }
        }
        let renamed = removed.len() == 1 && added.len() == 1;
        if renamed {
            out.push(Change { path: absolute(added[0]), kind: ChangeKind::Renamed, from: Some(absolute(removed[0])) });
        } else {
            out.extend(added.iter().map(|p| Change::new(&absolute(p), ChangeKind::Created)));
            out.extend(removed.iter().map(|p| Change::new(&absolute(p), ChangeKind::Deleted)));
        }
        // Contents, metadata and times belong to the inode: reported at a
        // name it kept, else at the name it gained.
        kept.sort();
        let Some((was, now)) = kept.first().copied().or_else(|| {
            added.sort();
            added.first().map(|&a| (removed.first().copied().unwrap_or(a), a))
        }) else {
            continue;
        };
        let (modified, metadata, times) =
            names.iter().fold((false, false, false), |(m, d, t), e| (m || e.modified, d || e.metadata, t || e.times));
        if modified {
            out.push(Change::new(&absolute(now), ChangeKind::Modified));
        }
        if metadata {
            out.push(Change::new(&absolute(now), ChangeKind::Metadata));
        }
        if times && !renamed && !modified && !metadata && times_changed(was, now) {
            out.push(Change::new(&absolute(now), ChangeKind::Times));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The net change from the state before the first list to the state after
/// the last: consecutive blocks' lists replayed as one (a file created and
/// then modified is created; created and then deleted is nothing; renamed
/// twice is renamed once, from its first path).
pub fn compose<'a>(lists: impl IntoIterator<Item = &'a [Change]>) -> Vec<Change> {
    let rel = |p: &[u8]| p.strip_prefix(b"/").unwrap_or(p).to_vec();
    let mut ops = Vec::new();
    for (block, list) in lists.into_iter().enumerate() {
        // A block's list describes one step: old paths (deleted, renamed
        // from) refer to the state before it, new paths to the state after.
        // Deletions and moves away go first, deepest first, through
        // temporary names, so swaps and moves into moved folders replay.
        let depth = |p: &[u8]| p.iter().filter(|&&b| b == b'/').count();
        let mut leaving: Vec<&Change> =
            list.iter().filter(|c| matches!(c.kind, ChangeKind::Deleted | ChangeKind::Renamed)).collect();
        leaving.sort_by_key(|c| std::cmp::Reverse(depth(c.from.as_deref().unwrap_or(&c.path))));
        let mut arriving = Vec::new();
        for (i, c) in leaving.into_iter().enumerate() {
            match (&c.kind, &c.from) {
                (ChangeKind::Renamed, Some(from)) => {
                    let tmp = format!("\0compose-{block}-{i}").into_bytes();
                    ops.push(Op::Rename { path: rel(from), to: tmp.clone() });
                    arriving.push((tmp, rel(&c.path)));
                }
                _ => ops.push(Op::Remove { path: rel(&c.path) }),
            }
        }
        arriving.sort_by_key(|(_, to)| depth(to));
        for (tmp, to) in arriving {
            ops.push(Op::Rename { path: tmp, to });
        }
        let mut rest: Vec<&Change> = list
            .iter()
            .filter(|c| {
                matches!(c.kind, ChangeKind::Created | ChangeKind::Modified | ChangeKind::Metadata | ChangeKind::Times)
            })
            .collect();
        rest.sort_by_key(|c| depth(&c.path));
        for c in rest {
            let path = rel(&c.path);
            ops.push(match c.kind {
                ChangeKind::Created => Op::Create { path, dir: false },
                ChangeKind::Modified => Op::Write { path },
                ChangeKind::Times => Op::Times { path },
                _ => Op::Meta { path },
            });
        }
    }
    from_ops(&ops, &|_, _| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn c(path: &str, kind: ChangeKind) -> Change {
        Change::new(path.as_bytes(), kind)
    }
    fn renamed(path: &str, from: &str) -> Change {
        Change { path: p(path), kind: ChangeKind::Renamed, from: Some(p(from)) }
    }
    fn no_dirs(_: &[u8], _: &[u8]) -> bool {
        true
    }

    #[test]
    fn orphan_names_and_nested_creation_collapse_to_created() {
        let ops = vec![
            Op::Create { path: p("o257-9-0"), dir: true },
            Op::Create { path: p("o257-9-0/o258-9-0"), dir: false },
            Op::Rename { path: p("o257-9-0/o258-9-0"), to: p("o257-9-0/f") },
            Op::Rename { path: p("o257-9-0"), to: p("etc/nginx") },
            Op::Write { path: p("etc/nginx/f") },
            Op::Meta { path: p("etc/nginx/f") },
            Op::Times { path: p("etc") },
        ];
        let is_dir = |_: &[u8], rel: &[u8]| rel != b"etc";
        assert_eq!(
            from_ops(&ops, &is_dir),
            vec![c("/etc/nginx", ChangeKind::Created), c("/etc/nginx/f", ChangeKind::Created)]
        );
    }

    #[test]
    fn renames_under_moved_directories_resolve_to_old_paths() {
        let ops = vec![
            Op::Rename { path: p("a"), to: p("b") },
            Op::Write { path: p("b/x") },
            Op::Rename { path: p("b/y"), to: p("z") },
            Op::Remove { path: p("b/w") },
            Op::Times { path: p("b") },
        ];
        let is_dir = |_: &[u8], rel: &[u8]| rel != b"b";
        assert_eq!(
            from_ops(&ops, &is_dir),
            vec![
                c("/a/w", ChangeKind::Deleted),
                renamed("/b", "/a"),
                c("/b/x", ChangeKind::Modified),
                renamed("/z", "/a/y"),
            ]
        );
    }

    #[test]
    fn deletion_through_an_orphan_name_and_replacement() {
        let ops = vec![
            Op::Rename { path: p("d"), to: p("o300-4-0") },
            Op::Remove { path: p("o300-4-0/f") },
            Op::Remove { path: p("o300-4-0") },
            Op::Rename { path: p("b"), to: p("o301-4-0") },
            Op::Rename { path: p("a"), to: p("b") },
            Op::Remove { path: p("o301-4-0") },
        ];
        assert_eq!(
            from_ops(&ops, &no_dirs),
            vec![
                renamed("/b", "/a"),
                c("/b", ChangeKind::Deleted),
                c("/d", ChangeKind::Deleted),
                c("/d/f", ChangeKind::Deleted),
            ]
        );
    }

    #[test]
    fn times_alone_count_when_they_changed() {
        let ops = vec![
            Op::Times { path: p("touched") },
            Op::Times { path: p("dir") },
            Op::Times { path: Vec::new() },
            Op::Link { path: p("l"), target: p("touched") },
            Op::Write { path: p("w") },
            Op::Times { path: p("w") },
        ];
        let is_dir = |_: &[u8], rel: &[u8]| !(rel == b"dir" || rel.is_empty());
        assert_eq!(
            from_ops(&ops, &is_dir),
            vec![c("/l", ChangeKind::Created), c("/touched", ChangeKind::Times), c("/w", ChangeKind::Modified)]
        );
    }

    #[test]
    fn composing_blocks_gives_the_net_change() {
        let b1 = [c("/new", ChangeKind::Created), c("/gone", ChangeKind::Deleted), renamed("/b", "/a")];
        let b2 = [
            c("/new", ChangeKind::Modified),
            renamed("/c", "/b"),
            c("/tmp", ChangeKind::Created),
            c("/keep", ChangeKind::Metadata),
        ];
        let b3 = [c("/tmp", ChangeKind::Deleted), renamed("/x", "/y"), renamed("/y", "/x")];
        assert_eq!(
            compose([&b1[..], &b2[..], &b3[..]]),
            vec![
                renamed("/c", "/a"),
                c("/gone", ChangeKind::Deleted),
                c("/keep", ChangeKind::Metadata),
                c("/new", ChangeKind::Created),
                renamed("/x", "/y"),
                renamed("/y", "/x"),
            ]
        );
        // A single block composes to itself.
        let one = vec![c("/d", ChangeKind::Created), c("/d/f", ChangeKind::Created), renamed("/d/g", "/h")];
        assert_eq!(compose([&one[..]]), one);
    }

    #[test]
    fn digest_is_order_independent_and_covers_every_field() {
        let a = vec![c("/x", ChangeKind::Created), renamed("/y", "/z")];
        let b = vec![renamed("/y", "/z"), c("/x", ChangeKind::Created)];
        assert_eq!(digest(&a), digest(&b));
        let mut kind = a.clone();
        kind[0].kind = ChangeKind::Modified;
        let mut from = a.clone();
        from[1].from = Some(p("/w"));
        let mut path = a.clone();
        path[0].path = p("/x2");
        for other in [kind, from, path, a[..1].to_vec()] {
            assert_ne!(digest(&a), digest(&other));
        }
        // Field boundaries are part of the encoding.
        assert_ne!(
            digest(&[c("/ab", ChangeKind::Created)]),
            digest(&[Change { path: p("/a"), kind: ChangeKind::Created, from: Some(p("b")) }])
        );
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::from_code(i64::from(k.code())), Some(k));
        }
    }
}
