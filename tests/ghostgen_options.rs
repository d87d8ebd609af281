//! Static check: every `services.ghostbridge.*` value the generator sets is an
//! option declared in `modules/`, and the value fits the declared type. The
//! declared types come from evaluating the modules themselves
//! (`tests/nix/option-types.nix`); the values from evaluating each example's
//! generated host file.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn nix_eval_json(args: &[&str]) -> Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .args(args)
        .output()
        .expect("nix-instantiate not found: run `bash .ci/deps` (Debian package nix-bin)");
    assert!(out.status.success(), "nix-instantiate {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn declared() -> BTreeMap<String, String> {
    let v = nix_eval_json(&["tests/nix/option-types.nix"]);
    v.as_object().unwrap().iter().map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string())).collect()
}

/// Whether `value` fits the nixpkgs type described by `ty`.
fn fits(ty: &str, value: &Value) -> bool {
    let ty = ty.trim();
    if let Some(inner) = ty.strip_prefix("nullOr ") {
        return value.is_null() || fits(unparen(inner), value);
    }
    if let Some(inner) = ty.strip_prefix("listOf ") {
        return value.as_array().is_some_and(|a| a.iter().all(|x| fits(unparen(inner), x)));
    }
    if let Some(inner) = ty.strip_prefix("attrsOf ") {
        return value.as_object().is_some_and(|o| o.values().all(|x| fits(unparen(inner), x)));
    }
    if let Some(rest) = ty.strip_prefix("either ") {
        let (a, b) = split_two(rest);
        return fits(a, value) || fits(b, value);
    }
    if let Some(list) = ty.strip_prefix("enum ") {
        let options: Vec<Value> = serde_json::from_str(list).unwrap_or_default();
        return options.contains(value);
    }
    if let Some(pattern) = ty.strip_prefix("strMatching ") {
        let pattern: String = serde_json::from_str(pattern).unwrap();
        return value.as_str().is_some_and(|s| full_match(&pattern, s));
    }
    match ty {
        "bool" => value.is_boolean(),
        "str" => value.is_string(),
        "path" => value.as_str().is_some_and(|s| s.starts_with('/')),
        "int" | "signedInt" => value.is_i64(),
        "positiveInt" => value.as_i64().is_some_and(|i| i > 0),
        "unsignedInt" => value.as_u64().is_some(),
        "unsignedInt16" => value.as_u64().is_some_and(|i| i <= 65535),
        "package" => value.get("type").and_then(Value::as_str) == Some("derivation"),
        // A daemon's `settings`: freeform JSON (its daemon's check-config is the validator).
        "open submodule of JSON value" => value.is_object(),
        _ => panic!("type {ty:?} is not understood by this check; teach `fits` about it"),
    }
}

/// The strMatching patterns the modules use, checked without a regex engine.
fn full_match(pattern: &str, s: &str) -> bool {
    match pattern {
        "[1-9][0-9]*(ms|s|m|h|d)" => s.parse::<ghostbridge::runtime::duration::HumanDuration>().is_ok(),
        "/.+" => s.len() > 1 && s.starts_with('/'),
        _ => panic!("unexpected strMatching pattern {pattern:?}"),
    }
}

fn unparen(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('(').and_then(|x| x.strip_suffix(')')).unwrap_or(s)
}

/// Splits `a b` where a and b may be parenthesised.
fn split_two(s: &str) -> (&str, &str) {
    let s = s.trim();
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ' ' if depth == 0 => return (unparen(&s[..i]), unparen(&s[i + 1..])),
            _ => {}
        }
    }
    panic!("cannot split {s:?}")
}

/// Checks every leaf under `value` (at option path `path`) against `types`.
fn check(path: &str, value: &Value, types: &BTreeMap<String, String>, problems: &mut Vec<String>, seen: &mut usize) {
    if let Some(ty) = types.get(path) {
        *seen += 1;
        if ty == "attrsOf submodule" {
            for (name, sub) in value.as_object().into_iter().flatten() {
                let _ = name;
                for (k, v) in sub.as_object().into_iter().flatten() {
                    check(&format!("{path}.<name>.{k}"), v, types, problems, seen);
                }
            }
        } else if ty == "open submodule of JSON value" || ty == "listOf (open submodule of JSON value)" {
            // Freeform settings: the typed keys among them are checked, the rest is the daemon's.
            let (items, prefix) = match value.as_array() {
                Some(items) => (items.iter().collect::<Vec<_>>(), format!("{path}.*")),
                None => (vec![value], path.to_string()),
            };
            for item in items {
                if !item.is_object() {
                    problems.push(format!("{path} = {item} is not an attribute set"));
                }
                for (k, v) in item.as_object().into_iter().flatten() {
                    let key = format!("{prefix}.{k}");
                    if types.contains_key(&key) {
                        check(&key, v, types, problems, seen);
                    }
                }
            }
        } else if !fits(ty, value) {
            problems.push(format!("{path} = {value} does not fit the declared type {ty}"));
        }
        return;
    }
    match value.as_object() {
        Some(o) if !o.is_empty() && !o.contains_key("type") => {
            for (k, v) in o {
                check(&format!("{path}.{k}"), v, types, problems, seen);
            }
        }
        _ => problems.push(format!("{path} is set by the generator but not declared in modules/")),
    }
}

#[test]
fn generated_ghostbridge_options_are_declared_with_compatible_types() {
    let types = declared();
    assert!(types.len() > 40, "suspiciously few options: {types:?}");
    let mut total = 0;
    for example in ["ghostbridge", "minimal", "fleet", "hetzner"] {
        let hosts_dir = format!("examples/generated/{example}/hosts");
        for entry in std::fs::read_dir(&hosts_dir).unwrap() {
            let host = entry.unwrap().path().join("default.nix");
            let expr = format!(
                "let h = import {} {{ config = {{}}; lib = {{}}; pkgs = {{ stdenv.hostPlatform.system = \"x86_64-linux\"; }}; \
                 inputs = {{}}; }}; in h.services.ghostbridge",
                std::fs::canonicalize(&host).unwrap().display()
            );
            let value = nix_eval_json(&["--expr", &expr]);
            let mut problems = Vec::new();
            let mut seen = 0;
            check("services.ghostbridge", &value, &types, &mut problems, &mut seen);
            assert!(problems.is_empty(), "{}:\n{}", host.display(), problems.join("\n"));
            total += seen;
        }
    }
    assert!(total > 50, "only {total} options were checked");
}

#[test]
fn the_type_check_itself_rejects_mismatches() {
    assert!(fits("nullOr str", &Value::Null));
    assert!(!fits("listOf str", &serde_json::json!([1])));
    assert!(fits("attrsOf (either int str)", &serde_json::json!({"a": 1, "b": "x"})));
    assert!(!fits("attrsOf (either int str)", &serde_json::json!({"a": true})));
    assert!(!fits("enum [\"system\",\"netdev\"]", &serde_json::json!("kernel")));
    assert!(!fits("strMatching \"[1-9][0-9]*(ms|s|m|h|d)\"", &serde_json::json!("1 s")));
    assert!(!fits("unsignedInt16", &serde_json::json!(70000)));
    assert!(!fits("positiveInt", &serde_json::json!(0)));
    let types = BTreeMap::from([("x.a".to_string(), "bool".to_string())]);
    let mut problems = Vec::new();
    check("x", &serde_json::json!({"a": true, "b": 1}), &types, &mut problems, &mut 0);
    assert_eq!(problems, vec!["x.b is set by the generator but not declared in modules/"]);
}
