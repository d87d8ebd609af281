//! The Nix expression tree the generator builds. Only what the generated files
//! need: literals, lists, attribute sets, references, application and lambdas.

/// A Nix expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    /// A string; printed through [`super::escape::string`].
    Str(String),
    /// A multi-line string printed as an indented string (`'' ... ''`).
    Lines(String),
    /// A relative path literal such as `./hosts/web`; segments are checked.
    Path(Vec<String>),
    List(Vec<Expr>),
    /// Attribute set; each entry's key may be a dotted path.
    Attrs(Vec<(Vec<Key>, Expr)>),
    /// A variable reference such as `pkgs` (must be an identifier).
    Var(String),
    /// `expr.a.b.${c}`.
    Select(Box<Expr>, Vec<Key>),
    /// `f x`.
    Apply(Box<Expr>, Box<Expr>),
    /// `{ a, b, ... }@name: body`.
    Lambda {
        formals: Vec<String>,
        ellipsis: bool,
        at: Option<String>,
        body: Box<Expr>,
    },
    /// `let a = x; in body`.
    Let(Vec<(String, Expr)>, Box<Expr>),
    /// `[ a ] ++ b`.
    Concat(Box<Expr>, Box<Expr>),
    /// `a + b` (string or path concatenation).
    Add(Box<Expr>, Box<Expr>),
}

/// One attribute-path component.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Name(String),
    /// `${expr}`
    Dynamic(Expr),
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::Name(s.to_string())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key::Name(s)
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Self {
        Key::Name(s.clone())
    }
}

impl Expr {
    pub fn str(s: impl Into<String>) -> Expr {
        Expr::Str(s.into())
    }
    pub fn int(i: impl Into<i64>) -> Expr {
        Expr::Int(i.into())
    }
    pub fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Expr {
        Expr::List(items.into_iter().map(|s| Expr::Str(s.as_ref().to_string())).collect())
    }
    pub fn var(name: &str) -> Expr {
        Expr::Var(name.to_string())
    }
    /// `self.a.b` for a dotted path of plain names.
    pub fn select(self, path: &str) -> Expr {
        Expr::Select(Box::new(self), path.split('.').map(Key::from).collect())
    }
    pub fn apply(self, arg: Expr) -> Expr {
        Expr::Apply(Box::new(self), Box::new(arg))
    }
    /// `./a/b` from "a/b".
    pub fn path(rel: &str) -> Expr {
        Expr::Path(rel.split('/').map(str::to_string).collect())
    }
    /// An optional string: `null` when absent.
    pub fn opt_str(s: Option<&str>) -> Expr {
        s.map(Expr::str).unwrap_or(Expr::Null)
    }
}

/// Builds an attribute set from `(dotted.path, value)` pairs; a dotted path is
/// split on '.', so keys containing dots must use [`Key`]s directly.
pub fn attrs<'a>(entries: impl IntoIterator<Item = (&'a str, Expr)>) -> Expr {
    Expr::Attrs(entries.into_iter().map(|(k, v)| (k.split('.').map(Key::from).collect(), v)).collect())
}

/// Nix cannot hold this JSON value exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the number {0} is not a 64-bit integer; the generated settings hold only integers")]
pub struct NotNixData(pub String);

impl Expr {
    /// JSON data as the Nix value `builtins.fromJSON` would give: the way a
    /// daemon's settings (its JSON keys verbatim) enter a generated file.
    pub fn from_json(value: &serde_json::Value) -> Result<Expr, NotNixData> {
        use serde_json::Value;
        Ok(match value {
            Value::Null => Expr::Null,
            Value::Bool(b) => Expr::Bool(*b),
            Value::Number(n) => Expr::Int(n.as_i64().ok_or_else(|| NotNixData(n.to_string()))?),
            Value::String(s) => Expr::Str(s.clone()),
            Value::Array(items) => Expr::List(items.iter().map(Expr::from_json).collect::<Result<_, _>>()?),
            Value::Object(map) => Expr::Attrs(
                map.iter()
                    .map(|(k, v)| Ok((vec![Key::Name(k.clone())], Expr::from_json(v)?)))
                    .collect::<Result<_, NotNixData>>()?,
            ),
        })
    }
}
