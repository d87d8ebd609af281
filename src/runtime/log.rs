//! Logging for the daemons: one line per event on stderr, with the sd-daemon
//! severity prefix (`<3>` error, `<4>` warning, `<5>` notice, `<6>` info) when
//! stderr goes to the journal (systemd sets `JOURNAL_STREAM`), so that
//! `journalctl -p warning` shows what matters; plain lines on a terminal.

use std::io::Write;
use std::sync::OnceLock;

/// syslog severities, as journald reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

fn to_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

/// The line written for `message` (without the newline).
pub fn line(severity: Severity, program: &str, message: &str, journal: bool) -> String {
    // One event, one line: a message never forges a second journal entry.
    let message = message.replace(['\n', '\r'], " ");
    if journal { format!("<{}>{program}: {message}", severity as u8) } else { format!("{program}: {message}") }
}

/// Writes one log line to stderr.
pub fn emit(severity: Severity, program: &str, message: &str) {
    let text = line(severity, program, message, to_journal());
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// `log!(Warning, "snapshotter", "...{}", x)`
#[macro_export]
macro_rules! log {
    ($severity:ident, $program:expr, $($arg:tt)*) => {
        $crate::runtime::log::emit($crate::runtime::log::Severity::$severity, $program, &format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_only_for_the_journal_and_keeps_one_line() {
        assert_eq!(line(Severity::Error, "x", "disk full", true), "<3>x: disk full");
        assert_eq!(line(Severity::Info, "x", "started", false), "x: started");
        assert_eq!(line(Severity::Warning, "x", "a\nb", true), "<4>x: a b");
    }
}
