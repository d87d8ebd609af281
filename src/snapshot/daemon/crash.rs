//! Surviving SIGBUS: SQLite's memory-mapped WAL index raises it when the file
//! system is full. The handler re-executes the program in place (same PID,
//! same arguments) and recovery takes over; every crash point is recoverable.

use super::PROGRAM;

/// What the SIGBUS handler executes: this program with the same arguments.
struct Reexec {
    path: std::ffi::CString,
    /// Owns the strings `argv` points into.
    _args: Vec<std::ffi::CString>,
    argv: Vec<*const libc::c_char>,
}
// SAFETY: built once before the handler is installed and never changed after.
unsafe impl Send for Reexec {}
unsafe impl Sync for Reexec {}

static REEXEC: std::sync::OnceLock<Reexec> = std::sync::OnceLock::new();

extern "C" fn on_sigbus(_: libc::c_int) {
    const MSG: &[u8] = b"snapshotter: SIGBUS (a write to SQLite's memory-mapped WAL index failed: the filesystem is full); restarting in place, recovery follows\n";
    // SAFETY: write(2) and execve(2) are async-signal-safe; REEXEC is immutable once set.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        if let Some(r) = REEXEC.get() {
            unsafe extern "C" {
                static environ: *const *const libc::c_char;
            }
            libc::execve(r.path.as_ptr(), r.argv.as_ptr(), environ);
        }
        libc::_exit(75);
    }
}

/// A SIGBUS from SQLite's memory-mapped WAL index on a full filesystem would kill
/// the process. Instead it re-executes itself (same PID, same arguments); since
/// every crash point is recoverable, the new image reconciles and carries on.
pub fn install_sigbus_restart() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};
    let args: Vec<std::ffi::CString> = std::env::args_os()
        .filter_map(|a| std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).ok())
        .collect();
    let Ok(path) = std::ffi::CString::new("/proc/self/exe") else { return };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let _ = REEXEC.set(Reexec { path, _args: args, argv });
    // A previous image may have exec'd from inside its handler: unblock SIGBUS.
    let mut set = SigSet::empty();
    set.add(Signal::SIGBUS);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let action = SigAction::new(SigHandler::Handler(on_sigbus), SaFlags::SA_NODEFER, SigSet::empty());
    // SAFETY: the handler only calls async-signal-safe functions.
    if let Err(e) = unsafe { sigaction(Signal::SIGBUS, &action) } {
        crate::log!(Warning, PROGRAM, "cannot install the SIGBUS handler: {e}");
    }
}
