//! systemd readiness and watchdog notification (the sd_notify protocol).
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op, so daemons run
//! the same by hand.
//!
//! Messages are sent without blocking: a notification socket whose queue is
//! full (a supervisor that does not read it) loses a status line, never
//! stalls the daemon. (The `sd-notify` crate blocks in that case, which is
//! why the protocol, one datagram of `KEY=VALUE` lines, is spoken here.)

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// Tells systemd the daemon finished start-up (after recovery).
pub fn ready() {
    notify("READY=1");
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    notify("STOPPING=1");
}

/// A one-line status shown by `systemctl status`.
pub fn status(text: &str) {
    notify(&format!("STATUS={}", one_line(text)));
}

/// Pings the watchdog.
pub fn watchdog() {
    notify("WATCHDOG=1");
}

/// How often to ping: half of `WatchdogSec`, or `None` when no watchdog is set
/// (or it is set for another process: `WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec)).filter(|d| !d.is_zero()).map(|d| d / 2)
}

/// A value for one `KEY=VALUE` line: line breaks would start new assignments.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect()
}

fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        let _ = send(Path::new(&socket), state);
    }
}

/// Sends one datagram to the notification socket at `socket` (a path, or an
/// abstract name written `@name`) without blocking.
fn send(socket: &Path, state: &str) -> std::io::Result<()> {
    let bytes = socket.as_os_str().as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_notification_socket_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // Fill the receiver's queue: nobody reads it.
        while send(&path, "STATUS=filling").is_ok() {}
        let started = std::time::Instant::now();
        for _ in 0..100 {
            let _ = send(&path, "WATCHDOG=1");
        }
        assert!(started.elapsed() < Duration::from_millis(500), "sending to a full socket blocked");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=filling");
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(one_line("a\nREADY=1\r"), "a READY=1 ");
    }
}
