//! How every GhostBridge binary ends: exit 0 ok, 1 failure, 2 usage or invalid
//! config; and the one error report, which prints each cause once (every layer
//! prints only its own message; the report walks the chain).

use std::error::Error;
use std::process::ExitCode;

use super::config::ConfigError;

/// Success.
pub const OK: u8 = 0;
/// A runtime failure.
pub const FAILURE: u8 = 1;
/// Bad usage or an invalid config.
pub const INVALID: u8 = 2;

/// A usage mistake (a missing flag, conflicting options): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `outer: cause: root cause`, each message once.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The text with every control character but line breaks and tabs replaced:
/// a spec, its keys, a file name or a server's answer cannot send escape
/// sequences to the terminal that shows an error.
pub fn terminal_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '\u{FFFD}' } else { c }).collect()
}

/// The exit code an error means: 2 when any cause is a usage mistake or an
/// invalid config, 1 otherwise.
pub fn code_of(err: &anyhow::Error) -> u8 {
    let invalid = err.chain().any(|c| {
        c.downcast_ref::<UsageError>().is_some()
            || c.downcast_ref::<ConfigError>().is_some_and(|e| e.exit_code() == INVALID)
    });
    if invalid { INVALID } else { FAILURE }
}

/// Prints `program: error: ...` to stderr and returns the exit code.
pub fn report(program: &str, err: &anyhow::Error) -> ExitCode {
    eprintln!("{program}: error: {}", terminal_safe(&chain(err.as_ref())));
    ExitCode::from(code_of(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_config_and_usage_exit_2_everything_else_1() {
        let invalid = anyhow::Error::new(ConfigError::Invalid { path: "c.json".into(), findings: vec![] });
        assert_eq!(code_of(&invalid.context("cannot start")), INVALID);
        assert_eq!(code_of(&anyhow::Error::new(UsageError("give --config".into()))), INVALID);
        let unreadable =
            ConfigError::Read { path: "c.json".into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(code_of(&anyhow::Error::new(unreadable)), FAILURE);
        assert_eq!(code_of(&anyhow::anyhow!("the database is locked")), FAILURE);
    }

    #[test]
    fn each_cause_is_printed_once() {
        let unreadable = ConfigError::Read {
            path: "c.json".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(chain(&unreadable), "cannot read config c.json: no such file");
    }
}
