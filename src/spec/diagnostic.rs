//! Diagnostics: what is wrong, where (file:line:col with the line and a caret),
//! and what to do about it. Rendered in file order, all of them at once.

use std::fmt::Write as _;

use super::source::{Span, line_col, line_text};

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
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, span, message: message.into(), help: None }
    }
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, span, message: message.into(), help: None }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `FILE:LINE:COL: error: MESSAGE`, the source line, a caret under the span, and the help.
    pub fn render(&self, file: &str, text: &str) -> String {
        let (line, col) = line_col(text, self.span.start);
        let source = line_text(text, line);
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        let _ = writeln!(out, "{file}:{line}:{col}: {label}: {}", self.message);
        let gutter = line.to_string().len();
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line} | {source}");
        let (end_line, end_col) = line_col(text, self.span.end.max(self.span.start));
        let width = if end_line == line && end_col > col { end_col - col } else { 1 };
        let width = width.min(source.chars().count().saturating_sub(col - 1).max(1));
        let _ = writeln!(out, "{:gutter$} | {}{}", "", " ".repeat(col - 1), "^".repeat(width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{:gutter$} = help: {help}", "");
        }
        out
    }
}

/// Renders all diagnostics in file order.
pub fn render_all(diags: &[Diagnostic], file: &str, text: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| (d.span.start, d.span.end));
    sorted.iter().map(|d| d.render(file, text)).collect::<Vec<_>>().join("\n")
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
    fn suggests_close_names_only() {
        assert_eq!(closest("compres", ["compress", "mount", "name"]), Some("compress"));
        assert_eq!(closest("zzzzzz", ["compress", "mount"]), None);
    }
}
