//! Diagnostics: what is wrong, where (file:line:col with the line and a caret),
//! and what to do about it. Rendered in file order, all of them at once.

use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

use super::source::Span;
use crate::runtime::exit::terminal_safe;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
    /// The fleet hosts the finding is about (empty for a single-host spec).
    pub hosts: Vec<HostRef>,
}

/// A `[[hosts]]` entry a finding is about: its position in the file and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostRef {
    /// 1-based, as a reader counts the entries.
    pub entry: usize,
    pub name: Option<String>,
}

impl std::fmt::Display for HostRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The name is the user's text: Debug quoting keeps control characters out of the terminal.
        match &self.name {
            Some(name) => write!(f, "{} ({name:?})", self.entry),
            None => write!(f, "{}", self.entry),
        }
    }
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, span, message: message.into(), help: None, hosts: Vec::new() }
    }
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, span, message: message.into(), help: None, hosts: Vec::new() }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Notes that the finding is about the fleet host `host`.
    pub fn add_host(&mut self, host: HostRef) {
        if !self.hosts.contains(&host) {
            self.hosts.push(host);
            self.hosts.sort();
        }
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `FILE:LINE:COL: error: MESSAGE`, the source line, a caret under the span, and the help.
    pub fn render(&self, file: &str, text: &str) -> String {
        terminal_safe(&self.render_with(file, text, &LineIndex::new(text)))
    }

    /// [`render`](Self::render) before control characters are replaced (the callers do that once).
    fn render_with(&self, file: &str, text: &str, lines: &LineIndex) -> String {
        let (line, col) = lines.line_col(text, self.span.start);
        let source = lines.line(text, line);
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        let _ = writeln!(out, "{file}:{line}:{col}: {label}: {}", self.message);
        let gutter = line.to_string().len();
        let _ = writeln!(out, "{:gutter$} |", "");
        let (end_line, end_col) = lines.line_col(text, self.span.end.max(self.span.start));
        let chars: Vec<char> = source.chars().collect();
        let width = if end_line == line && end_col > col { end_col - col } else { 1 };
        let width = width.min(chars.len().saturating_sub(col - 1).max(1));
        // A long line is shown as a window around the span.
        let first = (col - 1).saturating_sub(WINDOW / 2);
        let last = (col - 1 + width.min(WINDOW) + WINDOW / 2).min(chars.len());
        let shown: String = chars[first.min(last)..last].iter().collect();
        let (head, tail) = (if first > 0 { "…" } else { "" }, if last < chars.len() { "…" } else { "" });
        let _ = writeln!(out, "{line} | {head}{shown}{tail}");
        // The caret lines up under tabs and wide characters: tabs are copied,
        // every other character is blanked by as many columns as it takes.
        let pad: String = chars[first.min(col - 1)..col - 1]
            .iter()
            .map(|c| if *c == '\t' { "\t".to_string() } else { " ".repeat(display_width(*c)) })
            .collect();
        let carets: usize = chars[(col - 1).min(chars.len())..(col - 1 + width.min(WINDOW)).min(chars.len())]
            .iter()
            .map(|c| display_width(*c))
            .sum();
        let lead = if first > 0 { " " } else { "" };
        let _ = writeln!(out, "{:gutter$} | {lead}{pad}{}", "", "^".repeat(carets.max(1)));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{:gutter$} = help: {help}", "");
        }
        if let [one] = self.hosts.as_slice() {
            let _ = writeln!(out, "{:gutter$} = note: in [[hosts]] entry {one}", "");
        } else if !self.hosts.is_empty() {
            let list: Vec<String> = self.hosts.iter().map(HostRef::to_string).collect();
            let _ = writeln!(out, "{:gutter$} = note: in [[hosts]] entries {}", "", list.join(", "));
        }
        out
    }
}

/// How many terminal columns `c` takes (control characters are shown as one).
fn display_width(c: char) -> usize {
    c.width().unwrap_or(1)
}

/// At most this many characters of a source line are shown around a span.
const WINDOW: usize = 120;
/// At most this many diagnostics are rendered; the rest are counted.
pub const MAX_SHOWN: usize = 50;

/// Where each line starts, computed once per file: locating a diagnostic is
/// then a binary search, so rendering stays linear in the file's size.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let col = text[self.starts[line - 1]..offset].chars().count() + 1;
        (line, col)
    }

    /// The text of the 1-based line, without its line break.
    pub fn line<'a>(&self, text: &'a str, line: usize) -> &'a str {
        let start = self.starts.get(line - 1).copied().unwrap_or(text.len());
        let end = self.starts.get(line).map(|e| e - 1).unwrap_or(text.len());
        text[start..end.max(start)].trim_end_matches('\r')
    }
}

/// Renders the diagnostics in file order: at most [`MAX_SHOWN`], then how many more.
pub fn render_all(diags: &[Diagnostic], file: &str, text: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| (d.span.start, d.span.end));
    let lines = LineIndex::new(text);
    let mut out: Vec<String> = sorted.iter().take(MAX_SHOWN).map(|d| d.render_with(file, text, &lines)).collect();
    if sorted.len() > MAX_SHOWN {
        let rest = &sorted[MAX_SHOWN..];
        let errors = rest.iter().filter(|d| d.is_error()).count();
        out.push(format!(
            "{file}: and {} more ({errors} errors, {} warnings) not shown; fix the ones above first\n",
            rest.len(),
            rest.len() - errors
        ));
    }
    terminal_safe(&out.join("\n"))
}

/// The known name closest to `unknown`, if it is close enough to be a likely typo.
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < k.len())
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_caret() {
        let text = "[host]\nname = 12\n";
        let d = Diagnostic::error(Span { start: 14, end: 16 }, "expected a string, found an integer").help("quote it");
        let out = d.render("spec.toml", text);
        assert_eq!(
            out,
            "spec.toml:2:8: error: expected a string, found an integer\n  |\n2 | name = 12\n  |        ^^\n  = help: quote it\n"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_span_and_carets_follow_tabs() {
        let text = format!("[host]\nx = [{}\"bad\"]\n", "1, ".repeat(2000));
        let start = text.find("\"bad\"").unwrap();
        let out = Diagnostic::error(Span { start, end: start + 5 }, "wrong").render("s.toml", &text);
        assert!(out.len() < 600, "{}", out.len());
        assert!(out.contains("…") && out.contains("\"bad\""), "{out}");
        let text = "a =\t\t\"x\"\n";
        let out = Diagnostic::error(Span { start: 5, end: 8 }, "wrong").render("s.toml", text);
        assert!(out.ends_with("1 | a =\t\t\"x\"\n  |    \t\t^^^\n"), "{out:?}");
    }

    #[test]
    fn carets_line_up_under_wide_characters() {
        let text = "x = \"日本\" + 1\n";
        let start = text.find('+').unwrap();
        let out = Diagnostic::error(Span { start, end: start + 1 }, "wrong").render("s.toml", text);
        assert!(out.contains("1:10: error"), "the column counts characters: {out}");
        assert!(out.ends_with("1 | x = \"日本\" + 1\n  |            ^\n"), "{out:?}");
        let start = text.find('日').unwrap();
        let out = Diagnostic::error(Span { start, end: start + "日本".len() }, "wrong").render("s.toml", text);
        assert!(out.ends_with("  |      ^^^^\n"), "two wide characters take four columns: {out:?}");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let text = "x = 1 # \u{1b}]0;owned\u{7}\n";
        let d = Diagnostic::error(Span { start: 0, end: 1 }, "bad key \u{1b}[2J").help("\u{9b}31m");
        let out = render_all(&[d], "spec\u{1b}[31m.toml", text);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(out.contains("spec\u{FFFD}[31m.toml:1:1"), "{out:?}");
    }

    #[test]
    fn many_diagnostics_are_capped() {
        let text = "x\n".repeat(200);
        let diags: Vec<Diagnostic> =
            (0..200).map(|i| Diagnostic::error(Span { start: i * 2, end: i * 2 + 1 }, "bad")).collect();
        let out = render_all(&diags, "s.toml", &text);
        assert_eq!(out.matches(": error: bad").count(), MAX_SHOWN);
        assert!(out.contains("and 150 more (150 errors, 0 warnings) not shown"), "{out}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("compres", ["compress", "mount", "name"]), Some("compress"));
        assert_eq!(closest("zzzzzz", ["compress", "mount"]), None);
    }
}
