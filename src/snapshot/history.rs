//! What changed and when, answered from the change index: the queries behind
//! `changes`, `diff`, `log` and `restore`, the time and path arguments they
//! take, and their text output.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::chain::Block;
use super::changes::{Change, compose};
use super::clock;
use super::report::utc;
use super::store::{BlockChanges, ChangeRow, Store, StoreError};
use crate::runtime::exit::terminal_safe;

/// Why a history question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{input:?} is not a time: write a duration ago (\"2h\", \"10 minutes ago\"), a UTC time \
         (\"2026-12-03T10:00:00Z\") or \"@\" and Unix seconds"
    )]
    BadTime { input: String },
    #[error("{input:?} is not a height or a time ({why})")]
    BadPoint { input: String, why: String },
    #[error("path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("{0}")]
    NoBlock(String),
    #[error(
        "blocks {heights} have no change list ({why}), so what changed between {from} and {to} is not known in full"
    )]
    Incomplete { from: u64, to: u64, heights: String, why: String },
    #[error(
        "the content at that time (block {height}) has been pruned, and no snapshot at or before it is left{after}"
    )]
    Pruned { height: u64, after: String },
    #[error("{path} is not in snapshot {snapshot} (block {height}): it did not exist then")]
    NotInSnapshot { path: String, snapshot: String, height: u64 },
    #[error("{0}")]
    Target(String),
    #[error("copying {from} to {to}: {why}")]
    Copy { from: String, to: String, why: String },
}

impl HistoryError {
    /// Whether the question itself was malformed (exit 2) rather than unanswerable (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, HistoryError::BadTime { .. } | HistoryError::BadPoint { .. } | HistoryError::BadPath { .. })
    }
}

/// A time argument as CLOCK_REALTIME ns: a duration ago (`2h`, `10 minutes
/// ago`), an RFC 3339 UTC time, or `@` and Unix seconds.
pub fn parse_when(input: &str, now_ns: i64) -> Result<i64, HistoryError> {
    let bad = || HistoryError::BadTime { input: input.to_string() };
    let text = input.trim();
    if let Some(secs) = text.strip_prefix('@') {
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        return secs.checked_mul(1_000_000_000).ok_or_else(bad);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?;
        return i64::try_from(d.as_nanos()).map_err(|_| bad());
    }
    let ago = text.strip_suffix("ago").unwrap_or(text).trim();
    let d = humantime::parse_duration(ago).map_err(|_| bad())?;
    let d = i64::try_from(d.as_nanos()).map_err(|_| bad())?;
    Ok(now_ns.saturating_sub(d))
}

/// A path inside the snapshotted subvolume, as the index writes it: a
/// leading `/`, no `.`, `..` or empty components, no trailing `/`. A path
/// that starts with `source` (the subvolume's mount point) is taken relative to it.
pub fn parse_path(input: &OsStr, source: Option<&Path>) -> Result<Vec<u8>, HistoryError> {
    let shown = input.to_string_lossy().into_owned();
    let bad = |why| HistoryError::BadPath { path: shown.clone(), why };
    let mut p = Path::new(input);
    if let Some(rest) = source.and_then(|s| p.strip_prefix(s).ok()) {
        p = rest;
    }
    let bytes = p.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err(bad("it contains a NUL byte"));
    }
    let mut out = Vec::with_capacity(bytes.len() + 1);
    for part in bytes.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if part == b"." || part == b".." {
            return Err(bad("write it without . or .. components"));
        }
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// A path for people: lossy UTF-8 with control characters replaced.
pub fn show(path: &[u8]) -> String {
    terminal_safe(&String::from_utf8_lossy(path))
}

/// A height (digits) or a time: the newest block at or before that time.
pub fn resolve_point(store: &Store, input: &str, now_ns: i64) -> Result<u64, HistoryError> {
    if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
        return input.parse().map_err(|_| HistoryError::BadPoint { input: input.into(), why: "too large".into() });
    }
    let t = parse_when(input, now_ns)
        .map_err(|_| HistoryError::BadPoint { input: input.into(), why: "neither digits nor a time".into() })?;
    at_or_before(store, t)
}

/// The newest block recorded at or before `time_ns`.
fn at_or_before(store: &Store, time_ns: i64) -> Result<u64, HistoryError> {
    match store.first_at_or_after(time_ns.saturating_add(1))? {
        0 => Err(HistoryError::NoBlock(format!(
            "no block was recorded at or before {}: the chain starts later",
            utc(time_ns)
        ))),
        h => Ok(h - 1),
    }
}

/// Every change to `path` or below it since `since_ns` (all recorded when `None`).
pub fn changes(store: &Store, path: &[u8], since_ns: Option<i64>) -> Result<Vec<ChangeRow>, HistoryError> {
    let from = match since_ns {
        Some(t) => store.first_at_or_after(t)?,
        None => 0,
    };
    Ok(store.changes_under(path, from)?)
}

fn describe(c: &Change) -> String {
    match &c.from {
        Some(from) => format!("{:<8}  {}  (from {})", c.kind.name(), show(&c.path), show(from)),
        None => format!("{:<8}  {}", c.kind.name(), show(&c.path)),
    }
}

/// `changes` as text: one line per change, with its block and time.
pub fn changes_text(rows: &[ChangeRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(out, "{:>8}  {}  {}", r.height, utc(r.time_ns), describe(&r.change));
    }
    out
}

/// What changed from block `from` to block `to` (`from < to`): the blocks in
/// between composed into one net change list.
pub fn diff(store: &Store, from: u64, to: u64) -> Result<Vec<Change>, HistoryError> {
    let (from, to) = (from.min(to), from.max(to));
    if from == to {
        return Ok(Vec::new());
    }
    let head = store.head()?.map(|b| b.height);
    if head.is_none_or(|h| to > h) {
        return Err(HistoryError::NoBlock(format!(
            "block {to} does not exist (the head is {})",
            head.map(|h| h.to_string()).unwrap_or_else(|| "none: the chain is empty".into())
        )));
    }
    let mut lists = Vec::new();
    let mut missing: Vec<(u64, String)> = Vec::new();
    for block in store.range(from + 1, to)? {
        match store.block_changes(&block)? {
            Ok(list) => lists.push(list),
            Err(BlockChanges::Expired(_)) => missing.push((block.height, "removed by change retention".into())),
            Err(BlockChanges::Unavailable(why)) => missing.push((block.height, why)),
            Err(BlockChanges::Indexed(_)) => {}
        }
    }
    if let Some((_, why)) = missing.first() {
        return Err(HistoryError::Incomplete { from, to, heights: ranges(&missing), why: why.clone() });
    }
    Ok(compose(lists.iter().map(Vec::as_slice)))
}

/// `1-3, 7` for heights 1, 2, 3, 7.
fn ranges(heights: &[(u64, String)]) -> String {
    let mut parts: Vec<(u64, u64)> = Vec::new();
    for &(h, _) in heights {
        match parts.last_mut() {
            Some((_, end)) if *end + 1 == h => *end = h,
            _ => parts.push((h, h)),
        }
    }
    let text: Vec<String> =
        parts.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    text.join(", ")
}

/// `diff` as text: one line per change.
pub fn diff_text(list: &[Change]) -> String {
    list.iter().map(|c| describe(c) + "\n").collect()
}

/// The timeline: every block since `since_ns` (the newest `n` when `None`),
/// with what the index holds for it.
pub fn timeline(store: &Store, since_ns: Option<i64>, n: u32) -> Result<Vec<(Block, BlockChanges)>, HistoryError> {
    let Some(head) = store.head()? else { return Ok(Vec::new()) };
    let from = match since_ns {
        Some(t) => store.first_at_or_after(t)?,
        None => (head.height + 1).saturating_sub(u64::from(n)),
    };
    let mut out = Vec::new();
    for block in store.range(from, head.height)? {
        let state = store.index_state(&block)?;
        out.push((block, state));
    }
    Ok(out)
}

/// `log` as text: one line per block with its change count or why it has none.
pub fn log_text(entries: &[(Block, BlockChanges)]) -> String {
    let mut out = String::new();
    for (block, state) in entries {
        let kept = if block.pruned_ns.is_some() { "pruned" } else { "kept" };
        let changes = match state {
            BlockChanges::Indexed(n) => format!("{n} changes"),
            BlockChanges::Expired(n) => format!("{n} changes (rows removed by change retention)"),
            BlockChanges::Unavailable(why) => format!("no change list: {}", terminal_safe(why)),
        };
        let _ = writeln!(out, "{:>8}  {}  {:<6}  {changes}", block.height, utc(block.time_ns), kept);
    }
    out
}

/// Where `restore` puts the copy.
pub enum Target<'a> {
    /// Back into the source, replacing what is there now.
    InPlace { source: &'a Path },
    /// Into this existing folder, under the path's own name.
    Folder(&'a Path),
}

/// What `restore` did.
#[derive(Debug)]
pub struct Restored {
    pub from_block: Block,
    pub to: PathBuf,
    /// Said before the copy: the state asked for was pruned, and what that means.
    pub notices: Vec<String>,
    /// What was at the target before an in-place restore of a folder, kept aside.
    pub replaced: Option<PathBuf>,
}

/// Copies `path` as it was at `at_ns` from the newest retained snapshot at or
/// before that time. When the block of that time was pruned, says so, and
/// whether the index shows the path changing in between.
pub fn restore(
    store: &Store,
    snapshot_dir: &Path,
    path: &[u8],
    at_ns: i64,
    target: Target<'_>,
) -> Result<Restored, HistoryError> {
    let wanted = at_or_before(store, at_ns)?;
    let Some(block) = store.newest_live_at_or_below(wanted)? else {
        let after = match store.oldest_live_above(wanted)? {
            Some(b) => format!("; the nearest retained snapshot is block {} at {}", b.height, utc(b.time_ns)),
            None => "; no snapshot is retained at all".to_string(),
        };
        return Err(HistoryError::Pruned { height: wanted, after });
    };
    let mut notices = Vec::new();
    if block.height != wanted {
        let asked = store.block(wanted)?.map(|b| b.time_ns).unwrap_or(at_ns);
        notices.push(format!(
            "the snapshot of block {wanted} ({}) has been pruned; the nearest retained one at or before it is block {} ({}, {:.1} s earlier)",
            utc(asked),
            block.height,
            utc(block.time_ns),
            (asked - block.time_ns) as f64 / 1e9
        ));
        let between: Vec<u64> =
            store.changes_under(path, block.height + 1)?.iter().map(|r| r.height).filter(|&h| h <= wanted).collect();
        let mut unknown = Vec::new();
        for b in store.range(block.height + 1, wanted)? {
            if !matches!(store.index_state(&b)?, BlockChanges::Indexed(_)) {
                unknown.push(b.height);
            }
        }
        notices.push(if let Some(first) = between.first() {
            format!(
                "{} changed in between (first in block {first}): the copy is the content of block {}, not of block {wanted}",
                show(path),
                block.height
            )
        } else if unknown.is_empty() {
            format!("the change index shows no change to {} in between: the content is the same", show(path))
        } else {
            format!(
                "{} blocks in between have no change list: whether {} changed is not known",
                unknown.len(),
                show(path)
            )
        });
    }
    let rel = OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path));
    let from = snapshot_dir.join(&block.snapshot).join(rel);
    if std::fs::symlink_metadata(&from).is_err() {
        return Err(HistoryError::NotInSnapshot {
            path: show(path),
            snapshot: block.snapshot.clone(),
            height: block.height,
        });
    }
    let name = Path::new(rel)
        .file_name()
        .ok_or_else(|| HistoryError::Target("restore a path below /, not / itself".into()))?;
    let (to, replaced) = match target {
        Target::Folder(dir) => {
            let to = dir.join(name);
            if std::fs::symlink_metadata(&to).is_ok() {
                return Err(HistoryError::Target(format!(
                    "{} already exists: remove it or choose another folder",
                    to.display()
                )));
            }
            copy(&from, &to)?;
            (to, None)
        }
        Target::InPlace { source } => restore_in_place(&from, source, rel, name, block.height)?,
    };
    Ok(Restored { from_block: block, to, notices, replaced })
}

/// Copies into a temporary name beside the target, then renames it into
/// place: a file is replaced atomically; a folder that is there is first
/// moved aside (and reported), so nothing is lost.
fn restore_in_place(
    from: &Path,
    source: &Path,
    rel: &OsStr,
    name: &OsStr,
    height: u64,
) -> Result<(PathBuf, Option<PathBuf>), HistoryError> {
    let to = source.join(rel);
    let parent = to.parent().unwrap_or(source);
    let real_parent = parent.canonicalize().map_err(|e| {
        HistoryError::Target(format!("{} does not exist now ({e}): restore it first, or use --to", parent.display()))
    })?;
    let real_source = source
        .canonicalize()
        .map_err(|e| HistoryError::Target(format!("the source {} cannot be opened: {e}", source.display())))?;
    if !real_parent.starts_with(&real_source) {
        return Err(HistoryError::Target(format!(
            "{} leads outside the source through a symbolic link: use --to",
            parent.display()
        )));
    }
    let sibling = |what: &str| {
        let mut n = std::ffi::OsString::from(".");
        n.push(name);
        n.push(format!(".ghostbridge-{what}-{height}-{}", clock::realtime_ns()));
        real_parent.join(n)
    };
    let tmp = sibling("restore");
    copy(from, &tmp)?;
    let mut replaced = None;
    if std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
        let aside = sibling("replaced");
        if let Err(e) = std::fs::rename(&to, &aside) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(HistoryError::Target(format!("cannot move {} aside: {e}", to.display())));
        }
        replaced = Some(aside);
    }
    let final_path = real_parent.join(name);
    if let Err(e) = std::fs::rename(&tmp, &final_path) {
        let _ = std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp));
        return Err(HistoryError::Target(format!("cannot put the copy at {}: {e}", final_path.display())));
    }
    Ok((final_path, replaced))
}

/// `cp -a --reflink=auto`: contents shared with the snapshot where the file
/// system allows (BTRFS does), with modes, owners, times, links and extended
/// attributes kept. Arguments are passed as such, never through a shell.
fn copy(from: &Path, to: &Path) -> Result<(), HistoryError> {
    let err = |why: String| HistoryError::Copy { from: from.display().to_string(), to: to.display().to_string(), why };
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--no-target-directory", "--"])
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| err(format!("cannot run cp: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(to).or_else(|_| std::fs::remove_file(to));
        return Err(err(terminal_safe(String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(parse_when("2h", now).unwrap(), now - 7_200_000_000_000);
        assert_eq!(parse_when("10 minutes ago", now).unwrap(), now - 600_000_000_000);
        assert_eq!(parse_when("@1700000000", now).unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(parse_when("2023-11-14T22:13:20Z", now).unwrap(), 1_700_000_000_000_000_000);
        for bad in ["", "yesterday", "@x", "10 parsecs ago", "2023-13-01T00:00:00Z"] {
            assert!(parse_when(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        let p = |s: &str| parse_path(OsStr::new(s), Some(Path::new("/var/lib/overlay")));
        assert_eq!(p("/etc/nginx/").unwrap(), b"/etc/nginx");
        assert_eq!(p("etc//nginx").unwrap(), b"/etc/nginx");
        assert_eq!(p("/var/lib/overlay/etc/nginx").unwrap(), b"/etc/nginx");
        assert_eq!(p("/").unwrap(), b"/");
        assert!(p("/etc/../shadow").is_err());
        assert!(p("./etc").is_err());
    }

    #[test]
    fn height_ranges_read_well() {
        let h = |v: &[u64]| ranges(&v.iter().map(|&x| (x, String::new())).collect::<Vec<_>>());
        assert_eq!(h(&[1, 2, 3, 7]), "1-3, 7");
        assert_eq!(h(&[4]), "4");
    }
}
