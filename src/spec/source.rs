//! The spec's TOML as an owned tree that keeps the byte span of every key and
//! value, so that any later error (schema, semantic) can point at file:line:col.
//! Also merges `[defaults]` into fleet hosts and converts to JSON for serde.

use serde_json::{Map, Value as Json};

/// A byte range in the spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl From<toml_span::Span> for Span {
    fn from(s: toml_span::Span) -> Self {
        Span { start: s.start, end: s.end }
    }
}

/// A TOML value with its span.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    /// Entries in file order.
    Table(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Node {
    /// Converts a parsed toml-span value, consuming it. `text` is the source,
    /// used to widen string spans over their quotes.
    pub fn from_toml(value: &mut toml_span::Value<'_>, text: &str) -> Node {
        let mut span = Span::from(value.span);
        let kind = match value.take() {
            toml_span::value::ValueInner::String(s) => {
                let bytes = text.as_bytes();
                let quote = |i: usize| bytes.get(i).is_some_and(|b| *b == b'"' || *b == b'\'');
                if span.start > 0 && quote(span.start - 1) && quote(span.end) {
                    span = Span { start: span.start - 1, end: span.end + 1 };
                }
                Kind::Str(s.into_owned())
            }
            toml_span::value::ValueInner::Integer(i) => Kind::Int(i),
            toml_span::value::ValueInner::Float(f) => Kind::Float(f),
            toml_span::value::ValueInner::Boolean(b) => Kind::Bool(b),
            toml_span::value::ValueInner::Array(mut items) => {
                Kind::Array(items.iter_mut().map(|v| Node::from_toml(v, text)).collect())
            }
            toml_span::value::ValueInner::Table(table) => {
                let mut entries: Vec<Entry> = table
                    .into_iter()
                    .map(|(key, mut value)| Entry {
                        key: key.name.into_owned(),
                        key_span: key.span.into(),
                        value: Node::from_toml(&mut value, text),
                    })
                    .collect();
                entries.sort_by_key(|e| e.key_span.start);
                Kind::Table(entries)
            }
        };
        Node { span, kind }
    }

    pub fn table(span: Span, entries: Vec<Entry>) -> Node {
        Node { span, kind: Kind::Table(entries) }
    }

    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Table(e) => Some(e),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// The TOML type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }

    /// Deep-merges `over` onto `base`: tables merge key by key, anything else is replaced.
    pub fn merged(base: &Node, over: &Node) -> Node {
        match (&base.kind, &over.kind) {
            (Kind::Table(b), Kind::Table(o)) => {
                let mut entries: Vec<Entry> = b.clone();
                for oe in o {
                    match entries.iter_mut().find(|e| e.key == oe.key) {
                        Some(be) => {
                            be.value = Node::merged(&be.value, &oe.value);
                            be.key_span = oe.key_span;
                        }
                        None => entries.push(oe.clone()),
                    }
                }
                Node { span: over.span, kind: Kind::Table(entries) }
            }
            _ => over.clone(),
        }
    }

    /// The JSON value serde decodes and the JSON Schema validates.
    pub fn to_json(&self) -> Json {
        match &self.kind {
            Kind::Str(s) => Json::String(s.clone()),
            Kind::Int(i) => Json::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
            Kind::Bool(b) => Json::Bool(*b),
            Kind::Array(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Kind::Table(entries) => {
                let map: Map<String, Json> = entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect();
                Json::Object(map)
            }
        }
    }

    /// Follows a path of keys and indices; returns the node and, for a table
    /// entry, the span of its key.
    pub fn at(&self, path: &[PathSeg]) -> Option<(&Node, Option<Span>)> {
        let mut node = self;
        let mut key_span = None;
        for seg in path {
            match (seg, &node.kind) {
                (PathSeg::Key(k), Kind::Table(entries)) => {
                    let e = entries.iter().find(|e| &e.key == k)?;
                    key_span = Some(e.key_span);
                    node = &e.value;
                }
                (PathSeg::Index(i), Kind::Array(items)) => {
                    node = items.get(*i)?;
                    key_span = None;
                }
                _ => return None,
            }
        }
        Some((node, key_span))
    }

    /// Removes the value at `path` (a table entry or an array item); false when
    /// there is nothing there or the path is empty.
    pub fn remove(&mut self, path: &[PathSeg]) -> bool {
        let Some((last, parent)) = path.split_last() else { return false };
        let mut node = self;
        for seg in parent {
            node = match (seg, &mut node.kind) {
                (PathSeg::Key(k), Kind::Table(entries)) => match entries.iter_mut().find(|e| &e.key == k) {
                    Some(e) => &mut e.value,
                    None => return false,
                },
                (PathSeg::Index(i), Kind::Array(items)) => match items.get_mut(*i) {
                    Some(n) => n,
                    None => return false,
                },
                _ => return false,
            };
        }
        match (last, &mut node.kind) {
            (PathSeg::Key(k), Kind::Table(entries)) => {
                let before = entries.len();
                entries.retain(|e| &e.key != k);
                entries.len() != before
            }
            (PathSeg::Index(i), Kind::Array(items)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            _ => false,
        }
    }

    /// The best span for a path: the value's span, or the deepest existing ancestor's.
    pub fn span_of(&self, path: &[PathSeg]) -> Span {
        for len in (0..=path.len()).rev() {
            if let Some((node, _)) = self.at(&path[..len]) {
                return node.span;
            }
        }
        self.span
    }

    /// The span of the key that names the value at `path` (or the value's span).
    pub fn key_span_of(&self, path: &[PathSeg]) -> Span {
        match self.at(path) {
            Some((_, Some(k))) => k,
            Some((node, None)) => node.span,
            None => self.span_of(path),
        }
    }

    /// Calls `f` with the path and value of every string in the tree.
    pub fn visit_strings(&self, path: &mut Vec<PathSeg>, f: &mut dyn FnMut(&[PathSeg], &str, Span)) {
        match &self.kind {
            Kind::Str(s) => f(path, s, self.span),
            Kind::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    item.visit_strings(path, f);
                    path.pop();
                }
            }
            Kind::Table(entries) => {
                for e in entries {
                    path.push(PathSeg::Key(e.key.clone()));
                    f(path, &e.key, e.key_span);
                    e.value.visit_strings(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// One step of a path into the tree (the same type daemon configs locate findings with).
pub use crate::runtime::config::PathSeg;

/// Builds a path from `"a"`, `0`, ... conveniently.
#[macro_export]
macro_rules! spec_path {
    ($($seg:expr),* $(,)?) => {
        vec![$($crate::spec::source::PathSeg::from($seg)),*]
    };
}

/// Line and column (both 1-based; the column counts characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The text of the 1-based line `line`, without its newline.
pub fn line_text(text: &str, line: usize) -> &str {
    text.split('\n').nth(line.saturating_sub(1)).unwrap_or("").trim_end_matches('\r')
}
