//! The README's tables, `ghostgen schema` and the modules' options agree:
//! every spec section and key the schema has is in the README's spec table
//! (and the table names nothing the schema lacks), and the README's option
//! table lists exactly the options the modules declare, with their types
//! (`tests/nix/expected-option-types.json`, which `tests/nix/check.sh`
//! compares with what the modules evaluate to).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The rows of the Markdown table whose header line is `header`.
fn table(text: &str, header: &str) -> Vec<Vec<String>> {
    let start = text.find(header).unwrap_or_else(|| panic!("README has no table {header:?}"));
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| split_cells(l.trim().trim_matches('|')))
        .collect()
}

/// Cells split on `|` outside backticks (`\|` is a literal bar).
fn split_cells(row: &str) -> Vec<String> {
    let (mut cells, mut cur, mut code) = (Vec::new(), String::new(), false);
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '`' => {
                code = !code;
                cur.push(c);
            }
            '|' if !code => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    cells.push(cur.trim().to_string());
    cells
}

fn unquote(cell: &str) -> &str {
    cell.trim().trim_matches('`')
}

#[test]
fn the_option_table_lists_exactly_the_declared_options_and_types() {
    let declared: BTreeMap<String, String> = serde_json::from_str::<BTreeMap<String, String>>(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nix/expected-option-types.json")).unwrap(),
    )
    .unwrap()
    .into_iter()
    .map(|(k, v)| (k.trim_start_matches("services.ghostbridge.").to_string(), v))
    .collect();
    let documented: BTreeMap<String, String> = table(&readme(), "| option | type | default |")
        .into_iter()
        .map(|cells| (unquote(&cells[0]).to_string(), unquote(&cells[1]).to_string()))
        .collect();
    let missing: Vec<&String> = declared.keys().filter(|k| !documented.contains_key(*k)).collect();
    let extra: Vec<&String> = documented.keys().filter(|k| !declared.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README options table: missing {missing:?}, not declared {extra:?}"
    );
    for (name, ty) in &declared {
        assert_eq!(&documented[name], ty, "README gives option {name} another type");
    }
}

/// Follows `$ref` into `$defs`.
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(&root["$defs"][r.trim_start_matches("#/$defs/")], root),
        None => schema,
    }
}

/// Every property name at any depth below `schema` (arrays and nested tables too).
fn keys_below(schema: &Value, root: &Value, out: &mut BTreeSet<String>) {
    let schema = resolve(schema, root);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            out.insert(k.clone());
            keys_below(v, root, out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = schema.get(key).filter(|v| v.is_object()) {
            keys_below(v, root, out);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for v in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            keys_below(v, root, out);
        }
    }
}

/// The keys a spec-table row names: backticked names outside parentheses
/// (`op_dbus = { ... }` names `op_dbus`).
fn row_keys(cell: &str) -> BTreeSet<String> {
    let (mut out, mut depth, mut in_code, mut code) = (BTreeSet::new(), 0i32, false, String::new());
    for c in cell.chars() {
        match c {
            '`' if in_code => {
                in_code = false;
                // `[boot.sysctl]` names the table `sysctl`.
                let head = code.split([' ', '=']).next().unwrap_or_default();
                let name = head.trim_matches(['[', ']']).rsplit('.').next().unwrap_or_default().to_string();
                if depth == 0 && !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    out.insert(name);
                }
                code.clear();
            }
            '`' => in_code = true,
            _ if in_code => code.push(c),
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
    }
    out
}

#[test]
fn the_spec_table_and_the_schema_name_the_same_sections_and_keys() {
    let schema = ghostbridge::spec::schema::host_schema();
    let sections = schema["properties"].as_object().unwrap();
    let host_meta = ["name", "system", "state_version", "time_zone", "locale"];
    let rows = table(&readme(), "| section | keys (defaults) |");
    let mut seen = BTreeSet::new();
    for cells in &rows {
        let section = unquote(&cells[0]).trim_matches(['[', ']']).split('.').next().unwrap().to_string();
        let written = row_keys(&cells[1]);
        let mut known = BTreeSet::new();
        if section == "host" {
            known.extend(host_meta.iter().map(|s| s.to_string()));
        } else if section == "flake" {
            keys_below(
                &ghostbridge::spec::schema::flake_schema(),
                &ghostbridge::spec::schema::flake_schema(),
                &mut known,
            );
        } else {
            let s = sections
                .get(&section)
                .unwrap_or_else(|| panic!("README names section [{section}], the schema has none"));
            keys_below(s, &schema, &mut known);
        }
        let unknown: Vec<&String> = written.difference(&known).collect();
        assert!(unknown.is_empty(), "README [{section}] names keys the schema lacks: {unknown:?}");
        if section != "host" && section != "flake" {
            // The table the row describes: `[disk]`, or `[[network.bridges]]`'s items.
            let path: Vec<String> = unquote(&cells[0]).trim_matches(['[', ']']).split('.').map(String::from).collect();
            let mut target = resolve(&sections[&section], &schema);
            for seg in &path[1..] {
                let next = resolve(&target["properties"][seg.as_str()], &schema);
                target = resolve(next.get("items").unwrap_or(next), &schema);
            }
            for (k, v) in target["properties"].as_object().into_iter().flatten() {
                // A nested array of tables (`[[disk.subvolumes]]`) is named in its own header.
                let nested = resolve(v, &schema);
                if nested.get("items").is_some_and(|i| resolve(i, &schema).get("properties").is_some()) {
                    assert!(
                        cells[1].contains(&format!("{}.{k}", path.join(".")))
                            || rows.iter().any(|r| r[0].contains(&format!(".{k}"))),
                        "README misses table [[{}.{k}]]",
                        path.join(".")
                    );
                    continue;
                }
                assert!(written.contains(k), "README [{}] misses key `{k}`", path.join("."));
            }
        }
        seen.insert(section);
    }
    for s in sections.keys().filter(|s| !host_meta.contains(&s.as_str())) {
        assert!(seen.contains(s), "README spec table has no row for [{s}]");
    }
}
