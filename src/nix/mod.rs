//! A small typed Nix expression builder and printer. Every string that comes
//! from a spec is escaped here ([`escape::string`]), and nowhere else; every
//! printed file is parsed back with rnix ([`parse_check`]) before it is written.

pub mod escape;
pub mod expr;
pub mod print;

pub use expr::{Expr, Key, NotNixData, attrs};
pub use print::print_file;

/// A Nix text that rnix could not parse (a bug in the printer, never user input).
#[derive(Debug, thiserror::Error)]
#[error("generated Nix does not parse: {errors}")]
pub struct ParseError {
    pub errors: String,
}

/// Parses `text` with rnix; any error is returned.
pub fn parse_check(text: &str) -> Result<(), ParseError> {
    let parsed = rnix::Root::parse(text);
    if parsed.errors().is_empty() {
        Ok(())
    } else {
        let errors: Vec<String> = parsed.errors().iter().map(|e| e.to_string()).collect();
        Err(ParseError { errors: errors.join("; ") })
    }
}
