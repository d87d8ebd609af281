//! Spellings a spec may still use for one release, each accepted with a warning
//! that names the new one, and the one cross-section default of the contract:
//! `[qdrant_sync] database` is `[snapshotter] database` unless written.
//! Works on the located tree, before schema validation, so that every later
//! finding still points at what the user wrote.

use super::diagnostic::Diagnostic;
use super::source::{Entry, Kind, Node};

/// Old section or key name, new name, and where it lives ("" = a host's top level).
const RENAMED: &[(&str, &str, &str)] =
    &[("", "snapshots", "snapshotter"), ("", "vectors", "qdrant_sync"), ("bridge", "datapath", "datapath_type")];

/// Applies the renames and the derived default to one host tree.
pub fn host(node: &mut Node, diags: &mut Vec<Diagnostic>) {
    rename_in(node, "", diags);
    if let Some(bridges) = table_get_mut(node, "network").and_then(|n| table_get_mut(n, "bridges"))
        && let Kind::Array(items) = &mut bridges.kind
    {
        for item in items {
            rename_in(item, "bridge", diags);
        }
    }
    derive_sync_database(node);
}

fn rename_in(node: &mut Node, scope: &str, diags: &mut Vec<Diagnostic>) {
    let Kind::Table(entries) = &mut node.kind else { return };
    for (s, old, new) in RENAMED {
        if *s != scope {
            continue;
        }
        let has_new = entries.iter().any(|e| e.key == *new);
        let Some(e) = entries.iter_mut().find(|e| e.key == *old) else { continue };
        let what = if scope.is_empty() { format!("[{old}]") } else { format!("`{old}`") };
        let now = if scope.is_empty() { format!("[{new}]") } else { format!("`{new}`") };
        if has_new {
            diags.push(
                Diagnostic::error(e.key_span, format!("{what} and {now} are the same setting, written twice"))
                    .help(format!("keep only {now}")),
            );
        } else {
            diags.push(
                Diagnostic::warning(e.key_span, format!("{what} is now called {now}"))
                    .help(format!("rename it to {now}; the old name is accepted until the next release")),
            );
            e.key = (*new).to_string();
        }
    }
}

/// `[qdrant_sync]` without `database` reads the chain `[snapshotter]` writes.
fn derive_sync_database(node: &mut Node) {
    let from = node.get("snapshotter").and_then(|s| s.value.get("database")).map(|e| Entry {
        key: "database".into(),
        key_span: e.key_span,
        value: e.value.clone(),
    });
    let (Some(from), Some(sync)) = (from, table_get_mut(node, "qdrant_sync")) else { return };
    if let Kind::Table(entries) = &mut sync.kind
        && !entries.iter().any(|e| e.key == "database")
    {
        entries.push(from);
    }
}

/// The file schema (for editors) describes what the user writes, before
/// [`host`] derives `[qdrant_sync] database`: there it is optional.
pub fn relax_derived(defs: &mut serde_json::Value) {
    if let Some(serde_json::Value::Array(required)) = defs.pointer_mut("/SyncConfig/required") {
        required.retain(|k| k != "database");
    }
}

fn table_get_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.kind {
        Kind::Table(entries) => entries.iter_mut().find(|e| e.key == key).map(|e| &mut e.value),
        _ => None,
    }
}
