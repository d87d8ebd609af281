//! The one place where text becomes Nix source: string literals, indented
//! strings, attribute names and comment text.

/// Text that stays inside one `#` comment line: every control character and
/// Unicode line or paragraph separator is written as `\u{XXXX}`, so that a
/// name holding a line break cannot end the comment and become code. (An
/// iPXE `#` comment is one line too and uses the same function.)
pub fn comment_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A double-quoted Nix string literal holding exactly `s`.
/// Escapes `\`, `"`, `${` (as `\${`), and the control characters Nix has escapes for.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lines of an indented string (`'' ... ''`) holding exactly `s` once Nix strips
/// the common indentation. `''` becomes `'''`, `${` becomes `''${`.
pub fn indented_body(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push_str("'''");
            }
            '$' if chars.peek() == Some(&'{') => out.push_str("''$"),
            '\r' => out.push_str("''\\r"),
            '\t' => out.push_str("''\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Nix keywords, which cannot be bare attribute names.
const KEYWORDS: &[&str] = &["if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"];

/// Whether `s` can be written as a bare identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-')) && !KEYWORDS.contains(&s)
}

/// An attribute name: bare when it is an identifier, quoted otherwise.
pub fn attr_name(s: &str) -> String {
    if is_identifier(s) { s.to_string() } else { string(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_text_stays_on_its_line() {
        let name = "spec.toml\n{ evil = builtins.abort \"x\"; }\rmore\u{2028}end";
        let line = comment_line(name);
        assert!(!line.contains(['\n', '\r', '\u{2028}']), "{line}");
        assert_eq!(line, "spec.toml\\u{000a}{ evil = builtins.abort \"x\"; }\\u{000d}more\\u{2028}end");
    }

    #[test]
    fn escapes_the_dangerous_characters() {
        assert_eq!(string(r#"a"b\c${d}$e''f"#), r#""a\"b\\c\${d}$e''f""#);
        assert_eq!(string("x\ny\tz"), r#""x\ny\tz""#);
        assert_eq!(string("$${x}"), r#""$\${x}""#);
        assert_eq!(string("grüße ☃"), "\"grüße ☃\"");
    }

    #[test]
    fn attribute_names() {
        assert_eq!(attr_name("ovsbr0"), "ovsbr0");
        assert_eq!(attr_name("auto-optimise-store"), "auto-optimise-store");
        assert_eq!(attr_name("@home"), "\"@home\"");
        assert_eq!(attr_name("in"), "\"in\"");
        assert_eq!(attr_name("vm.swappiness"), "\"vm.swappiness\"");
        assert_eq!(attr_name(""), "\"\"");
    }
}
