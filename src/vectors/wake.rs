//! Waking the sync when the chain grows: an inotify watch on the chain
//! database's folder reports every write to the database or its WAL (each
//! block the snapshotter appends is one), so the sync starts a pass at once
//! instead of at its next timer tick, whose phase alone used to decide
//! whether a block reached Qdrant after 0.1 s or 1.2 s. The timer stays as
//! the fallback (a watch that cannot be set, events lost in an overflow).

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Watches the files of one SQLite database (`FILE`, `FILE-wal`).
pub struct ChainWatch {
    inotify: Inotify,
    names: [std::ffi::OsString; 2],
}

impl ChainWatch {
    /// A watch on `database`'s folder; `None` (the timer alone) when it cannot be set.
    pub fn new(database: &Path) -> Option<ChainWatch> {
        let dir = match database.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = database.file_name()?.to_os_string();
        let mut wal = name.clone();
        wal.push("-wal");
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        let flags = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE;
        inotify.add_watch(dir, flags).ok()?;
        Some(ChainWatch { inotify, names: [name, wal] })
    }

    /// Forgets what happened so far (a pass about to start covers it).
    pub fn drain(&self) {
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }

    /// Waits until the database is written to or `deadline` passes, at most
    /// `slice` at a time (so the caller can look at its stop flag). Returns
    /// whether the database was written to.
    pub fn wait(&self, deadline: Instant, slice: Duration) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let timeout = (deadline - now).min(slice);
        let millis = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(millis)), Ok(n) if n > 0) {
            return false;
        }
        let mut written = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            written |= events.iter().any(|e| {
                e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                    || e.name.as_deref().is_some_and(|n| self.names.iter().any(|w| w.as_os_str() == n))
            });
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_the_database_or_its_wal_wakes_and_other_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("chain.db");
        let watch = ChainWatch::new(&db).unwrap();
        let soon = || Instant::now() + Duration::from_millis(200);
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        assert!(!watch.wait(soon(), Duration::from_millis(200)), "another file must not wake");
        std::fs::write(dir.path().join("chain.db-wal"), "x").unwrap();
        let t = Instant::now();
        assert!(watch.wait(t + Duration::from_secs(5), Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_millis(100), "woke after {:?}", t.elapsed());
        std::fs::write(&db, "x").unwrap();
        watch.drain();
        assert!(!watch.wait(soon(), Duration::from_millis(200)), "drained events must not wake");
    }
}
