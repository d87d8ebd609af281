//! BTRFS through the kernel's ioctl interface: read-only snapshot creation,
//! snapshot deletion and subvolume identity (UUID, generation). No `btrfs`
//! process is ever started. Struct layouts follow `include/uapi/linux/btrfs.h`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;
const BTRFS_PATH_NAME_MAX: usize = 4087;
const BTRFS_VOL_NAME_MAX: usize = 255;
/// `BTRFS_SUBVOL_RDONLY`: the flag of `btrfs_ioctl_vol_args_v2` asking for a read-only snapshot.
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_ROOT_SUBVOL_RDONLY`: the root item flag of a read-only subvolume.
const BTRFS_ROOT_SUBVOL_RDONLY: u64 = 1 << 0;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
pub const SUBVOLUME_ROOT_INODE: u64 = 256;

/// `struct btrfs_ioctl_vol_args_v2` (the union of `size`/`qgroup_inherit` is `unused[4]`).
#[repr(C)]
pub struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
pub struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_timespec`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IoctlTimespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args`.
#[repr(C)]
pub struct GetSubvolInfoArgs {
    treeid: u64,
    name: [u8; BTRFS_VOL_NAME_MAX + 1],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    ctime: IoctlTimespec,
    otime: IoctlTimespec,
    stime: IoctlTimespec,
    rtime: IoctlTimespec,
    reserved: [u64; 8],
}

// The ioctl numbers encode these sizes; the kernel header asserts the same.
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<GetSubvolInfoArgs>() == 504);

nix::ioctl_write_ptr!(ioc_snap_create_v2, BTRFS_IOCTL_MAGIC, 23, VolArgsV2);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_read!(ioc_get_subvol_info, BTRFS_IOCTL_MAGIC, 60, GetSubvolInfoArgs);
nix::ioctl_none!(ioc_sync, BTRFS_IOCTL_MAGIC, 8);

/// Why a BTRFS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BtrfsError {
    #[error("cannot open {path}: {source}{hint}", hint = errno_hint(*.source))]
    Open { path: PathBuf, source: Errno },
    #[error("{path} is not on a BTRFS filesystem (filesystem type {fs_type:#x}); point it at a directory on BTRFS")]
    NotBtrfs { path: PathBuf, fs_type: u64 },
    #[error(
        "{path} is not the root of a BTRFS subvolume (inode {inode}, expected 256); create it with `btrfs subvolume create {path}`"
    )]
    NotSubvolume { path: PathBuf, inode: u64 },
    #[error("snapshot name {name:?} is not usable (empty, too long, or contains '/' or NUL)")]
    BadName { name: String },
    #[error("creating snapshot {name} in {dir}: {source}{hint}", hint = errno_hint(*.source))]
    Create { dir: PathBuf, name: String, source: Errno },
    #[error("deleting snapshot {name} in {dir}: {source}{hint}", hint = errno_hint(*.source))]
    Destroy { dir: PathBuf, name: String, source: Errno },
    #[error("reading subvolume information of {path}: {source}{hint}", hint = errno_hint(*.source))]
    Info { path: PathBuf, source: Errno },
    #[error(
        "the filesystem of {path} is full ({available} bytes free, at least {needed} needed): free space; no block is written until then"
    )]
    LowSpace { path: PathBuf, available: u64, needed: u64 },
}

impl BtrfsError {
    /// The errno behind the failure, if any (ENOSPC, EROFS, ENOENT, ...).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            BtrfsError::Open { source, .. }
            | BtrfsError::Create { source, .. }
            | BtrfsError::Destroy { source, .. }
            | BtrfsError::Info { source, .. } => Some(*source),
            BtrfsError::LowSpace { .. } => Some(Errno::ENOSPC),
            _ => None,
        }
    }
}

fn errno_hint(e: Errno) -> &'static str {
    match e {
        Errno::ENOSPC => " (the filesystem is full: free space or raise the quota)",
        Errno::EROFS => " (the filesystem is mounted read-only)",
        Errno::ENOENT => " (it does not exist: check the path, or create the subvolume)",
        Errno::EPERM | Errno::EACCES => {
            " (permission denied: the snapshotter runs as root with CAP_SYS_ADMIN, and the folder must not be \
             immutable or append-only: check `lsattr -d`)"
        }
        Errno::ENOTTY | Errno::EINVAL => " (not a BTRFS subvolume or an unsupported kernel)",
        _ => "",
    }
}

/// Identity of a subvolume as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubvolInfo {
    /// The subvolume's tree id (what `BTRFS_IOC_SEND` takes as its parent).
    pub tree_id: u64,
    pub uuid: [u8; 16],
    pub parent_uuid: [u8; 16],
    pub generation: u64,
    pub read_only: bool,
}

/// Opens a directory (O_RDONLY | O_DIRECTORY | O_CLOEXEC).
pub fn open_dir(path: &Path) -> Result<File, BtrfsError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| BtrfsError::Open { path: path.to_path_buf(), source: io_errno(&e) })
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Checks that `dir` lives on BTRFS (statfs `f_type == BTRFS_SUPER_MAGIC`).
pub fn require_btrfs(dir: &File, path: &Path) -> Result<(), BtrfsError> {
    let st = nix::sys::statfs::fstatfs(dir).map_err(|source| BtrfsError::Open { path: path.to_path_buf(), source })?;
    if st.filesystem_type() != nix::sys::statfs::BTRFS_SUPER_MAGIC {
        return Err(BtrfsError::NotBtrfs { path: path.to_path_buf(), fs_type: st.filesystem_type().0 as u64 });
    }
    Ok(())
}

/// Fails with [`BtrfsError::LowSpace`] when the filesystem of `dir` has less than
/// `needed` bytes available. The snapshotter checks this before touching the chain
/// database: SQLite's WAL index is a memory-mapped file, and a write fault on it
/// when a copy-on-write filesystem is full kills the process with SIGBUS.
pub fn require_space(dir: &File, path: &Path, needed: u64) -> Result<(), BtrfsError> {
    let st =
        nix::sys::statvfs::fstatvfs(dir).map_err(|source| BtrfsError::Open { path: path.to_path_buf(), source })?;
    let available = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    if available < needed {
        return Err(BtrfsError::LowSpace { path: path.to_path_buf(), available, needed });
    }
    Ok(())
}

/// Commits the file system's transaction and wakes its cleaner
/// (`BTRFS_IOC_SYNC`, what `btrfs filesystem sync` does): space freed by
/// deleted files and snapshots is counted as free only after that, which
/// otherwise waits for the next periodic commit (30 s by default).
pub fn sync(dir: &File, path: &Path) -> Result<(), BtrfsError> {
    // SAFETY: BTRFS_IOC_SYNC takes no argument; `dir` is an open file on the file system.
    unsafe { ioc_sync(dir.as_raw_fd()) }
        .map(|_| ())
        .map_err(|source| BtrfsError::Open { path: path.to_path_buf(), source })
}

/// Checks that `dir` is on BTRFS and is the root directory of a subvolume.
pub fn require_subvolume(dir: &File, path: &Path) -> Result<(), BtrfsError> {
    require_btrfs(dir, path)?;
    let meta = dir.metadata().map_err(|e| BtrfsError::Open { path: path.to_path_buf(), source: io_errno(&e) })?;
    if meta.ino() != SUBVOLUME_ROOT_INODE {
        return Err(BtrfsError::NotSubvolume { path: path.to_path_buf(), inode: meta.ino() });
    }
    Ok(())
}

fn copy_name(dst: &mut [u8], name: &str) -> Result<(), BtrfsError> {
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || bytes.len() >= dst.len()
        || bytes.contains(&b'/')
        || bytes.contains(&0)
        || name == "."
        || name == ".."
    {
        return Err(BtrfsError::BadName { name: name.to_string() });
    }
    dst[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// Creates the read-only snapshot `dest_dir/name` of the subvolume open as `source`
/// (`BTRFS_IOC_SNAP_CREATE_V2` with `BTRFS_SUBVOL_RDONLY`). The kernel commits the
/// transaction before returning, so the snapshot is durable when this returns.
pub fn create_snapshot(source: &File, dest_dir: &File, dest_path: &Path, name: &str) -> Result<(), BtrfsError> {
    let mut args = VolArgsV2 {
        fd: source.as_raw_fd() as i64,
        transid: 0,
        flags: BTRFS_SUBVOL_RDONLY,
        unused: [0; 4],
        name: [0; BTRFS_SUBVOL_NAME_MAX + 1],
    };
    copy_name(&mut args.name, name)?;
    // SAFETY: `args` is a correctly laid out, fully initialised btrfs_ioctl_vol_args_v2.
    unsafe { ioc_snap_create_v2(dest_dir.as_raw_fd(), &args) }.map(|_| ()).map_err(|source| BtrfsError::Create {
        dir: dest_path.to_path_buf(),
        name: name.to_string(),
        source,
    })
}

/// Deletes the snapshot `dir/name` (`BTRFS_IOC_SNAP_DESTROY`). The directory entry
/// disappears at once; the kernel reclaims the space in the background.
pub fn destroy_snapshot(dir: &File, dir_path: &Path, name: &str) -> Result<(), BtrfsError> {
    let mut args = VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    copy_name(&mut args.name, name)?;
    // SAFETY: `args` is a correctly laid out, fully initialised btrfs_ioctl_vol_args.
    unsafe { ioc_snap_destroy(dir.as_raw_fd(), &args) }.map(|_| ()).map_err(|source| BtrfsError::Destroy {
        dir: dir_path.to_path_buf(),
        name: name.to_string(),
        source,
    })
}

/// UUID, parent UUID, generation and read-only flag of the subvolume open as `subvol`.
pub fn subvol_info(subvol: &File, path: &Path) -> Result<SubvolInfo, BtrfsError> {
    // SAFETY: the struct is plain old data; all-zero is a valid value.
    let mut args: GetSubvolInfoArgs = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel fills exactly size_of::<GetSubvolInfoArgs>() bytes.
    unsafe { ioc_get_subvol_info(subvol.as_raw_fd(), &mut args) }
        .map_err(|source| BtrfsError::Info { path: path.to_path_buf(), source })?;
    Ok(SubvolInfo {
        tree_id: args.treeid,
        uuid: args.uuid,
        parent_uuid: args.parent_uuid,
        generation: args.generation,
        read_only: args.flags & BTRFS_ROOT_SUBVOL_RDONLY != 0,
    })
}

/// A subvolume root opened by name in a folder, with its information.
#[derive(Debug)]
pub struct Subvolume {
    pub file: File,
    pub path: PathBuf,
    pub info: SubvolInfo,
}

/// Opens `name` in the folder open as `dir` (at `dir_path`, for messages),
/// relative to it (no walk from the root), and reads its subvolume
/// information, checking that it is a subvolume root.
pub fn open_subvolume(dir: &File, dir_path: &Path, name: &str) -> Result<Subvolume, BtrfsError> {
    let path = dir_path.join(name);
    let mut checked = [0u8; BTRFS_PATH_NAME_MAX + 1];
    copy_name(&mut checked, name)?;
    let flags = nix::fcntl::OFlag::O_RDONLY
        | nix::fcntl::OFlag::O_DIRECTORY
        | nix::fcntl::OFlag::O_CLOEXEC
        | nix::fcntl::OFlag::O_NOFOLLOW;
    let file = nix::fcntl::openat(dir, name, flags, nix::sys::stat::Mode::empty())
        .map(File::from)
        .map_err(|source| BtrfsError::Open { path: path.clone(), source })?;
    let meta = file.metadata().map_err(|e| BtrfsError::Open { path: path.clone(), source: io_errno(&e) })?;
    if meta.ino() != SUBVOLUME_ROOT_INODE {
        return Err(BtrfsError::NotSubvolume { path, inode: meta.ino() });
    }
    let info = subvol_info(&file, &path)?;
    Ok(Subvolume { file, path, info })
}
