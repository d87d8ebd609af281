//! What changed between two read-only snapshots, as the kernel tells it: the
//! BTRFS send stream (`BTRFS_IOC_SEND`) of the newer snapshot relative to the
//! older one, with `BTRFS_SEND_FLAG_NO_FILE_DATA`, so the stream carries the
//! path operations and extent ranges but no file contents. The kernel computes
//! it by comparing the two trees, so its cost follows the amount of change, not
//! the size of the subvolume. The kernel writes the stream into a pipe from a
//! sending thread (one per process, kept between sends) while the caller
//! parses it into [`Op`]s as it arrives, so
//! memory stays bounded; past a limit of operations the pipe is closed, which
//! ends the kernel's work at once (`EPIPE`). Format: btrfs-progs
//! `Documentation/dev/dev-send-stream.rst` and the kernel's `fs/btrfs/send.h`
//! (version 1).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Mutex, PoisonError, mpsc};

use nix::errno::Errno;

/// `struct btrfs_ioctl_send_args` (`version` and `reserved[28]` were once `reserved[32]`: same size).
#[repr(C)]
struct SendArgs {
    send_fd: i64,
    clone_sources_count: u64,
    clone_sources: *mut u64,
    parent_root: u64,
    flags: u64,
    version: u32,
    reserved: [u8; 28],
}
const _: () = assert!(std::mem::size_of::<SendArgs>() == 72);

nix::ioctl_write_ptr!(ioc_send, 0x94, 38, SendArgs);

/// `BTRFS_SEND_FLAG_NO_FILE_DATA`: extents as `UPDATE_EXTENT` ranges, no contents.
const SEND_FLAG_NO_FILE_DATA: u64 = 0x1;
/// The stream's first bytes, before the little-endian u32 version.
const STREAM_MAGIC: &[u8; 13] = b"btrfs-stream\0";

/// One path operation of the stream. Paths are relative to the subvolume
/// root (the root itself is the empty path), as bytes: BTRFS names need not be UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A new inode at `path` (mkfile, mkdir, mknod, mkfifo, mksock, symlink).
    Create { path: Vec<u8>, dir: bool },
    /// `path` moved to `to`.
    Rename { path: Vec<u8>, to: Vec<u8> },
    /// A new hard link `path` to the existing `target`.
    Link { path: Vec<u8>, target: Vec<u8> },
    /// A name removed (unlink, rmdir).
    Remove { path: Vec<u8> },
    /// The file's contents changed (write, clone, truncate, update_extent, fallocate).
    Write { path: Vec<u8> },
    /// Mode, owner, extended attributes or inode flags changed.
    Meta { path: Vec<u8> },
    /// The inode's times were set (sent for every inode whose item changed).
    Times { path: Vec<u8> },
}

/// Why a send stream could not be produced or read.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot duplicate the descriptor of {path} for the sending thread: {source}")]
    Dup { path: String, source: std::io::Error },
    #[error("cannot create the pipe for the send stream: {0}")]
    Pipe(Errno),
    #[error(
        "more than {limit} path operations between the two snapshots (max_changes_per_block × 8): too many to index"
    )]
    TooMany { limit: usize },
    #[error("the kernel refused to send {path} relative to its parent: {source}{hint}", hint = send_hint(*.source))]
    Send { path: String, source: Errno },
    #[error("reading the send stream back: {0}")]
    Read(std::io::Error),
    #[error("malformed send stream at byte {offset}: {why}")]
    Malformed { offset: usize, why: String },
}

fn send_hint(e: Errno) -> &'static str {
    match e {
        Errno::EPERM => " (both snapshots must be read-only, and sending needs CAP_SYS_ADMIN)",
        Errno::EAGAIN => " (a deduplication or balance ran at the same time)",
        _ => "",
    }
}

/// One `BTRFS_IOC_SEND` for the sending thread: the stream of `snapshot`
/// relative to the tree `parent_root`, written into `write_end` (closed when
/// the ioctl returns, which ends the reader's stream), the result sent back.
struct SendJob {
    snapshot: File,
    write_end: OwnedFd,
    parent_root: u64,
    done: mpsc::SyncSender<Result<(), Errno>>,
}

/// The kernel writes the stream into a pipe while the caller reads it, so the
/// ioctl runs on another thread: one thread for the whole process, started at
/// the first send and kept (a thread started per send cost more CPU than the
/// send of an unchanged tree). Jobs from several callers queue; each one ends
/// because its caller reads its pipe to the end or closes it.
fn sending_thread() -> &'static Mutex<Option<mpsc::Sender<SendJob>>> {
    static SENDER: Mutex<Option<mpsc::Sender<SendJob>>> = Mutex::new(None);
    &SENDER
}

fn run_send(job: SendJob) {
    let args = SendArgs {
        send_fd: job.write_end.as_raw_fd() as i64,
        clone_sources_count: 0,
        clone_sources: std::ptr::null_mut(),
        parent_root: job.parent_root,
        flags: SEND_FLAG_NO_FILE_DATA,
        version: 0,
        reserved: [0; 28],
    };
    // SAFETY: `args` is a correctly laid out btrfs_ioctl_send_args with no
    // clone sources; `send_fd` and `snapshot` stay open for the call.
    let result = unsafe { ioc_send(job.snapshot.as_raw_fd(), &args) }.map(|_| ());
    drop(job.write_end);
    // The caller may have given up waiting (it never does before the end of its stream).
    let _ = job.done.send(result);
}

/// Hands `job` to the sending thread, starting it if it is not running.
fn submit(job: SendJob) -> Result<(), Errno> {
    let mut sender = sending_thread().lock().unwrap_or_else(PoisonError::into_inner);
    let job = match sender.as_ref() {
        Some(running) => match running.send(job) {
            Ok(()) => return Ok(()),
            // The thread is gone (it never exits by itself): start another.
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (tx, rx) = mpsc::channel::<SendJob>();
    std::thread::Builder::new()
        .name("btrfs-send".into())
        .spawn(move || {
            for job in rx {
                run_send(job);
            }
        })
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)))?;
    tx.send(job).map_err(|_| Errno::EIO)?;
    *sender = Some(tx);
    Ok(())
}

/// The stream of the read-only snapshot open as `snapshot` (at `path`, for
/// messages) relative to the read-only snapshot whose tree is `parent_root`,
/// parsed; at most `max_ops` operations, or [`SendError::TooMany`] without
/// reading (or the kernel writing) the rest.
pub fn changed_ops(snapshot: &File, path: &Path, parent_root: u64, max_ops: usize) -> Result<Vec<Op>, SendError> {
    let snapshot = snapshot.try_clone().map_err(|e| SendError::Dup { path: path.display().to_string(), source: e })?;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SendError::Pipe)?;
    let (done, result) = mpsc::sync_channel(1);
    submit(SendJob { snapshot, write_end, parent_root, done })
        .map_err(|source| SendError::Send { path: path.display().to_string(), source })?;
    let mut parser = StreamParser::new(max_ops);
    let mut stream = File::from(read_end);
    let mut chunk = vec![0u8; 64 * 1024];
    let read = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = parser.feed(&chunk[..n]) {
                    break Err(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(SendError::Read(e)),
        }
    };
    // Closing the reading end makes a kernel still writing stop (EPIPE).
    drop(stream);
    let sent = result.recv().unwrap_or(Err(Errno::EIO));
    read?;
    sent.map_err(|source| SendError::Send { path: path.display().to_string(), source })?;
    parser.finish()
}

// Command numbers (`enum btrfs_send_cmd`).
const CMD_SUBVOL: u16 = 1;
const CMD_SNAPSHOT: u16 = 2;
const CMD_MKFILE: u16 = 3;
const CMD_MKDIR: u16 = 4;
const CMD_MKNOD: u16 = 5;
const CMD_MKFIFO: u16 = 6;
const CMD_MKSOCK: u16 = 7;
const CMD_SYMLINK: u16 = 8;
const CMD_RENAME: u16 = 9;
const CMD_LINK: u16 = 10;
const CMD_UNLINK: u16 = 11;
const CMD_RMDIR: u16 = 12;
const CMD_SET_XATTR: u16 = 13;
const CMD_REMOVE_XATTR: u16 = 14;
const CMD_WRITE: u16 = 15;
const CMD_CLONE: u16 = 16;
const CMD_TRUNCATE: u16 = 17;
const CMD_CHMOD: u16 = 18;
const CMD_CHOWN: u16 = 19;
const CMD_UTIMES: u16 = 20;
const CMD_END: u16 = 21;
const CMD_UPDATE_EXTENT: u16 = 22;
const CMD_FALLOCATE: u16 = 23;
const CMD_FILEATTR: u16 = 24;
const CMD_ENCODED_WRITE: u16 = 25;
const CMD_ENABLE_VERITY: u16 = 26;

// Attribute numbers (`enum btrfs_send_attr`).
const ATTR_PATH: u16 = 15;
const ATTR_PATH_TO: u16 = 16;
const ATTR_PATH_LINK: u16 = 17;

/// Parses a whole version-1 send stream into its path operations.
pub fn parse(bytes: &[u8]) -> Result<Vec<Op>, SendError> {
    let mut p = StreamParser::new(usize::MAX);
    p.feed(bytes)?;
    p.finish()
}

/// The longest command accepted (the kernel's are at most 64 KiB in version 1).
const MAX_COMMAND_BYTES: usize = 1 << 20;

/// A version-1 stream parsed as it arrives, in chunks of any size.
struct StreamParser {
    /// Bytes received and not yet parsed.
    pending: Vec<u8>,
    /// Bytes of the stream before `pending`.
    consumed: usize,
    header_read: bool,
    ended: bool,
    ops: Vec<Op>,
    max_ops: usize,
}

impl StreamParser {
    fn new(max_ops: usize) -> Self {
        StreamParser { pending: Vec::new(), consumed: 0, header_read: false, ended: false, ops: Vec::new(), max_ops }
    }

    fn bad(&self, at: usize, why: &str) -> SendError {
        SendError::Malformed { offset: self.consumed + at, why: why.to_string() }
    }

    /// Parses every complete command in what has arrived.
    fn feed(&mut self, data: &[u8]) -> Result<(), SendError> {
        if self.ended {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        let bytes = std::mem::take(&mut self.pending);
        let mut at = 0;
        let result = self.commands(&bytes, &mut at);
        self.pending = bytes[at..].to_vec();
        self.consumed += at;
        result
    }

    fn commands(&mut self, bytes: &[u8], at: &mut usize) -> Result<(), SendError> {
        if !self.header_read {
            if bytes.len() < 17 {
                if !STREAM_MAGIC.starts_with(&bytes[..bytes.len().min(13)]) {
                    return Err(self.bad(0, "no btrfs-stream header"));
                }
                return Ok(());
            }
            if &bytes[..13] != STREAM_MAGIC {
                return Err(self.bad(0, "no btrfs-stream header"));
            }
            let version = u32::from_le_bytes([bytes[13], bytes[14], bytes[15], bytes[16]]);
            if version != 1 {
                return Err(self.bad(13, &format!("stream version {version}, expected 1")));
            }
            self.header_read = true;
            *at = 17;
        }
        while let Some(header) = bytes.get(*at..*at + 10) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let cmd = u16::from_le_bytes([header[4], header[5]]);
            if len > MAX_COMMAND_BYTES {
                return Err(self.bad(*at, &format!("a command of {len} bytes")));
            }
            let body_at = *at + 10;
            let Some(body) = bytes.get(body_at..body_at + len) else { return Ok(()) };
            if cmd == CMD_END {
                self.ended = true;
                *at = body_at + len;
                return Ok(());
            }
            if let Some(op) = self.command(cmd, body, *at, self.consumed + body_at)? {
                if self.ops.len() >= self.max_ops {
                    return Err(SendError::TooMany { limit: self.max_ops });
                }
                self.ops.push(op);
            }
            *at = body_at + len;
        }
        Ok(())
    }

    fn command(&self, cmd: u16, body: &[u8], at: usize, body_offset: usize) -> Result<Option<Op>, SendError> {
        let attrs = Attrs::parse(body, body_offset)?;
        let path = |attr: u16, name: &str| {
            attrs
                .get(attr)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| self.bad(at, &format!("command {cmd} without its {name}")))
        };
        Ok(match cmd {
            CMD_SUBVOL | CMD_SNAPSHOT => None,
            CMD_MKFILE | CMD_MKNOD | CMD_MKFIFO | CMD_MKSOCK | CMD_SYMLINK => {
                Some(Op::Create { path: path(ATTR_PATH, "path")?, dir: false })
            }
            CMD_MKDIR => Some(Op::Create { path: path(ATTR_PATH, "path")?, dir: true }),
            CMD_RENAME => Some(Op::Rename { path: path(ATTR_PATH, "path")?, to: path(ATTR_PATH_TO, "new path")? }),
            CMD_LINK => Some(Op::Link { path: path(ATTR_PATH, "path")?, target: path(ATTR_PATH_LINK, "link target")? }),
            CMD_UNLINK | CMD_RMDIR => Some(Op::Remove { path: path(ATTR_PATH, "path")? }),
            CMD_WRITE | CMD_CLONE | CMD_TRUNCATE | CMD_UPDATE_EXTENT | CMD_FALLOCATE | CMD_ENCODED_WRITE => {
                Some(Op::Write { path: path(ATTR_PATH, "path")? })
            }
            CMD_SET_XATTR | CMD_REMOVE_XATTR | CMD_CHMOD | CMD_CHOWN | CMD_FILEATTR | CMD_ENABLE_VERITY => {
                Some(Op::Meta { path: path(ATTR_PATH, "path")? })
            }
            CMD_UTIMES => Some(Op::Times { path: path(ATTR_PATH, "path")? }),
            other => return Err(self.bad(at, &format!("unknown command {other}"))),
        })
    }

    /// The operations, once the stream's END command has arrived.
    fn finish(self) -> Result<Vec<Op>, SendError> {
        if !self.ended {
            return Err(self.bad(self.pending.len(), "the stream ends without an END command"));
        }
        Ok(self.ops)
    }
}

/// The attributes of one command (type, value), in stream order.
struct Attrs<'a>(Vec<(u16, &'a [u8])>);

impl<'a> Attrs<'a> {
    fn parse(mut body: &'a [u8], mut offset: usize) -> Result<Attrs<'a>, SendError> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let (Some(t), Some(l)) = (body.get(0..2), body.get(2..4)) else {
                return Err(SendError::Malformed { offset, why: "truncated attribute header".into() });
            };
            let kind = u16::from_le_bytes([t[0], t[1]]);
            let len = u16::from_le_bytes([l[0], l[1]]) as usize;
            let Some(value) = body.get(4..4 + len) else {
                return Err(SendError::Malformed { offset, why: format!("attribute {kind} runs past its command") });
            };
            out.push((kind, value));
            body = &body[4 + len..];
            offset += 4 + len;
        }
        Ok(Attrs(out))
    }

    fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A command and its (attribute, value) pairs.
    type Command<'a> = (u16, Vec<(u16, &'a [u8])>);

    /// Builds a version-1 stream from commands.
    pub(crate) fn stream(cmds: &[Command<'_>]) -> Vec<u8> {
        let mut out = STREAM_MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        for (cmd, attrs) in cmds.iter().cloned().chain([(CMD_END, vec![])]) {
            let mut body = Vec::new();
            for (t, v) in attrs {
                body.extend_from_slice(&t.to_le_bytes());
                body.extend_from_slice(&(v.len() as u16).to_le_bytes());
                body.extend_from_slice(v);
            }
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&cmd.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    #[test]
    fn parses_each_kind_of_command() {
        let s = stream(&[
            (CMD_SNAPSHOT, vec![(ATTR_PATH, b"snap"), (1, &[0; 16])]),
            (CMD_MKFILE, vec![(ATTR_PATH, b"o257-8-0"), (3, &257u64.to_le_bytes())]),
            (CMD_RENAME, vec![(ATTR_PATH, b"o257-8-0"), (ATTR_PATH_TO, b"etc/a")]),
            (CMD_MKDIR, vec![(ATTR_PATH, b"d")]),
            (CMD_LINK, vec![(ATTR_PATH, b"d/l"), (ATTR_PATH_LINK, b"etc/a")]),
            (CMD_UPDATE_EXTENT, vec![(ATTR_PATH, b"etc/a"), (18, &0u64.to_le_bytes()), (4, &5u64.to_le_bytes())]),
            (CMD_CHMOD, vec![(ATTR_PATH, b"etc/a"), (5, &0o644u64.to_le_bytes())]),
            (CMD_UTIMES, vec![(ATTR_PATH, b"")]),
            (CMD_RMDIR, vec![(ATTR_PATH, b"old")]),
        ]);
        let ops = parse(&s).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Create { path: b"o257-8-0".to_vec(), dir: false },
                Op::Rename { path: b"o257-8-0".to_vec(), to: b"etc/a".to_vec() },
                Op::Create { path: b"d".to_vec(), dir: true },
                Op::Link { path: b"d/l".to_vec(), target: b"etc/a".to_vec() },
                Op::Write { path: b"etc/a".to_vec() },
                Op::Meta { path: b"etc/a".to_vec() },
                Op::Times { path: Vec::new() },
                Op::Remove { path: b"old".to_vec() },
            ]
        );
    }

    #[test]
    fn chunks_of_any_size_parse_alike_and_the_limit_stops_early() {
        let s = stream(&[
            (CMD_MKFILE, vec![(ATTR_PATH, b"a")]),
            (CMD_RENAME, vec![(ATTR_PATH, b"a"), (ATTR_PATH_TO, b"b")]),
            (CMD_UTIMES, vec![(ATTR_PATH, b"b")]),
        ]);
        let whole = parse(&s).unwrap();
        for size in [1, 2, 7, 16, 17, 18, 64] {
            let mut p = StreamParser::new(usize::MAX);
            for chunk in s.chunks(size) {
                p.feed(chunk).unwrap();
            }
            assert_eq!(p.finish().unwrap(), whole, "chunks of {size}");
        }
        let mut p = StreamParser::new(2);
        assert!(matches!(p.feed(&s), Err(SendError::TooMany { limit: 2 })));
    }

    #[test]
    fn refuses_damaged_streams_without_panicking() {
        let good = stream(&[(CMD_MKFILE, vec![(ATTR_PATH, b"a")])]);
        assert!(parse(&good[..good.len() - 1]).is_err(), "no END");
        assert!(parse(b"btrfs-stream\0\x02\0\0\0").is_err(), "version 2");
        assert!(parse(b"not a stream at all").is_err());
        let missing = stream(&[(CMD_RENAME, vec![(ATTR_PATH, b"a")])]);
        assert!(parse(&missing).unwrap_err().to_string().contains("without its new path"));
        // Every truncation fails cleanly.
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        // An attribute length past its command.
        let mut long = good.clone();
        let attr_len_at = 17 + 10 + 2;
        long[attr_len_at] = 200;
        assert!(parse(&long).is_err());
    }
}
