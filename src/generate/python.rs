//! Python source for the nixosTest driver: values never become code. A VM
//! check's script is fixed text; what it checks arrives as one JSON document
//! inside one Python string literal, written by [`string`].

/// A Python string literal that reads back as exactly `s`: printable ASCII
/// kept, quotes and backslashes escaped, everything else as `\uXXXX` /
/// `\UXXXXXXXX`, so the literal is one line of plain ASCII.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_one_ascii_line() {
        let s = string("a\"b\\c\nd\re\u{0}f${g}''h\u{2028}i\u{1F600}");
        assert!(s.is_ascii() && !s.contains('\n') && !s.contains('\r'), "{s}");
        assert_eq!(s, r#""a\"b\\c\u000ad\u000de\u0000f${g}''h\u2028i\U0001f600""#);
    }
}
