//! Prints an [`Expr`] as formatted Nix: two-space indentation, one binding per
//! line, short lists of scalars on one line. Output is deterministic.

use super::escape::{attr_name, indented_body, is_identifier, string};
use super::expr::{Expr, Key};

const INLINE_WIDTH: usize = 72;

/// A complete file: comment header lines, then the expression, then a newline.
pub fn print_file(header: &[String], expr: &Expr) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(&super::escape::comment_line(line));
        out.push('\n');
    }
    print(expr, 0, &mut out);
    out.push('\n');
    out
}

fn indent(level: usize, out: &mut String) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn key_path(keys: &[Key], out: &mut String) {
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match k {
            Key::Name(n) => out.push_str(&attr_name(n)),
            Key::Dynamic(e) => {
                out.push_str("${");
                print(e, 0, out);
                out.push('}');
            }
        }
    }
}

fn is_scalar(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Str(_) | Expr::Path(_) | Expr::Var(_) | Expr::Select(..)
    )
}

/// Whether `e` needs parentheses as a list element or function argument.
fn needs_parens(e: &Expr) -> bool {
    matches!(e, Expr::Apply(..) | Expr::Lambda { .. } | Expr::Let(..) | Expr::Concat(..) | Expr::Add(..))
}

fn print_atom(e: &Expr, level: usize, out: &mut String) {
    if needs_parens(e) {
        out.push('(');
        print(e, level, out);
        out.push(')');
    } else {
        print(e, level, out);
    }
}

pub fn print(e: &Expr, level: usize, out: &mut String) {
    match e {
        Expr::Null => out.push_str("null"),
        Expr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Expr::Int(i) => {
            if *i < 0 {
                // `-1` parses as negation; parenthesise so it stays one list element.
                out.push_str(&format!("({i})"));
            } else {
                out.push_str(&i.to_string());
            }
        }
        Expr::Str(s) => out.push_str(&string(s)),
        Expr::Lines(s) => {
            out.push_str("''\n");
            for line in s.split_inclusive('\n') {
                if line != "\n" {
                    indent(level + 1, out);
                }
                out.push_str(&indented_body(line));
            }
            if !s.ends_with('\n') {
                out.push('\n');
            }
            indent(level + 1, out);
            out.push_str("''");
        }
        Expr::Path(segs) => {
            for (i, s) in segs.iter().enumerate() {
                if i == 0 && s == ".." {
                    out.push_str("..");
                    continue;
                }
                out.push_str(if i == 0 { "./" } else { "/" });
                let safe =
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
                if safe {
                    out.push_str(s);
                } else {
                    // Not representable as a path literal: fall back to string interpolation.
                    out.push_str("${");
                    out.push_str(&string(s));
                    out.push('}');
                }
            }
        }
        Expr::Var(v) => out.push_str(if is_identifier(v) { v } else { "__invalid_identifier" }),
        Expr::Select(base, keys) => {
            print_atom(base, level, out);
            out.push('.');
            key_path(keys, out);
        }
        Expr::Apply(f, x) => {
            // Application is left-associative: `f a b` needs no parentheses around `f a`.
            if matches!(**f, Expr::Apply(..)) {
                print(f, level, out);
            } else {
                print_atom(f, level, out);
            }
            out.push(' ');
            print_atom(x, level, out);
        }
        Expr::Lambda { formals, ellipsis, at, body } => {
            out.push_str("{ ");
            let mut names: Vec<String> = formals.iter().map(|f| attr_name(f)).collect();
            if *ellipsis {
                names.push("...".into());
            }
            out.push_str(&names.join(", "));
            out.push_str(" }");
            if let Some(at) = at {
                out.push('@');
                out.push_str(at);
            }
            out.push_str(":\n");
            indent(level, out);
            print(body, level, out);
        }
        Expr::Let(bindings, body) => {
            out.push_str("let\n");
            for (name, value) in bindings {
                indent(level + 1, out);
                out.push_str(&attr_name(name));
                out.push_str(" = ");
                print(value, level + 1, out);
                out.push_str(";\n");
            }
            indent(level, out);
            out.push_str("in\n");
            indent(level, out);
            print(body, level, out);
        }
        Expr::Concat(a, b) => {
            print_atom(a, level, out);
            out.push_str(" ++ ");
            print_atom(b, level, out);
        }
        Expr::Add(a, b) => {
            print_atom(a, level, out);
            out.push_str(" + ");
            print_atom(b, level, out);
        }
        Expr::List(items) => {
            if items.is_empty() {
                out.push_str("[ ]");
                return;
            }
            if items.iter().all(is_scalar) {
                let mut inline = String::from("[");
                for item in items {
                    inline.push(' ');
                    print(item, level, &mut inline);
                }
                inline.push_str(" ]");
                if inline.len() + level * 2 <= INLINE_WIDTH && !inline.contains('\n') {
                    out.push_str(&inline);
                    return;
                }
            }
            out.push_str("[\n");
            for item in items {
                indent(level + 1, out);
                print_atom(item, level + 1, out);
                out.push('\n');
            }
            indent(level, out);
            out.push(']');
        }
        Expr::Attrs(entries) => {
            if entries.is_empty() {
                out.push_str("{ }");
                return;
            }
            out.push_str("{\n");
            for (keys, value) in entries {
                indent(level + 1, out);
                key_path(keys, out);
                out.push_str(" = ");
                print(value, level + 1, out);
                out.push_str(";\n");
            }
            indent(level, out);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::expr::attrs;

    #[test]
    fn prints_nested_attrs_and_lists() {
        let e = attrs([
            ("networking.hostName", Expr::str("a\"b")),
            ("boot.kernelParams", Expr::strs(["quiet", "iommu=pt"])),
            ("x", Expr::List(vec![Expr::Int(-1), Expr::var("pkgs").apply(Expr::Null)])),
            ("empty", Expr::List(vec![])),
        ]);
        let text = print_file(&["header".into()], &e);
        assert_eq!(
            text,
            "# header\n{\n  networking.hostName = \"a\\\"b\";\n  boot.kernelParams = [ \"quiet\" \"iommu=pt\" ];\n  x = [\n    (-1)\n    (pkgs null)\n  ];\n  empty = [ ];\n}\n"
        );
        crate::nix::parse_check(&text).unwrap();
    }

    #[test]
    fn indented_strings_keep_their_text() {
        let e = Expr::Lines("machine.succeed('a ${b}')\nx = ''y''\n".into());
        let mut out = String::new();
        print(&e, 0, &mut out);
        assert_eq!(out, "''\n  machine.succeed('a ''${b}')\n  x = '''y'''\n  ''");
        crate::nix::parse_check(&out).unwrap();
    }
}
