//! OVSDB value encoding (RFC 7047 section 5.1): atoms, `["set",[...]]`,
//! `["map",[[k,v],...]]`, `["uuid",...]` and `["named-uuid",...]`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `["uuid", u]`.
pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

/// `["named-uuid", name]`: refers to a row inserted earlier in the same transaction.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// A set; OVSDB accepts a one-element set as the bare atom but `["set",[..]]` is always valid.
pub fn set(items: Vec<Value>) -> Value {
    json!(["set", items])
}

/// A string-to-string map.
pub fn string_map(map: &BTreeMap<String, String>) -> Value {
    let pairs: Vec<Value> = map.iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// The elements of a set-typed value: a bare atom counts as a one-element set.
pub fn set_items(v: &Value) -> Vec<&Value> {
    match v.as_array() {
        Some(a) if a.len() == 2 && a[0] == "set" => a[1].as_array().map(|x| x.iter().collect()).unwrap_or_default(),
        _ if v.is_null() => vec![],
        _ => vec![v],
    }
}

/// The UUID string of a `["uuid", u]` atom.
pub fn as_uuid(v: &Value) -> Option<&str> {
    match v.as_array() {
        Some(a) if a.len() == 2 && a[0] == "uuid" => a[1].as_str(),
        _ => None,
    }
}

/// The UUIDs of a set of references.
pub fn uuid_set(v: &Value) -> Vec<String> {
    set_items(v).into_iter().filter_map(as_uuid).map(str::to_string).collect()
}

/// A string-to-string map value.
pub fn as_string_map(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(a) = v.as_array()
        && a.len() == 2
        && a[0] == "map"
        && let Some(pairs) = a[1].as_array()
    {
        for p in pairs {
            if let (Some(k), Some(v)) = (p.get(0).and_then(Value::as_str), p.get(1).and_then(Value::as_str)) {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// An optional integer column (`min 0, max 1`): the integer, or `None` for the empty set.
pub fn optional_int(v: &Value) -> Option<i64> {
    set_items(v).first().and_then(|x| x.as_i64())
}

/// An optional string column.
pub fn optional_str(v: &Value) -> Option<String> {
    set_items(v).first().and_then(|x| x.as_str()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_sets_maps_and_optionals() {
        assert_eq!(uuid_set(&json!(["uuid", "a"])), vec!["a"]);
        assert_eq!(uuid_set(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])), vec!["a", "b"]);
        assert!(uuid_set(&json!(["set", []])).is_empty());
        let m = as_string_map(&json!(["map", [["k", "v"]]]));
        assert_eq!(m.get("k").map(String::as_str), Some("v"));
        assert_eq!(optional_int(&json!(3)), Some(3));
        assert_eq!(optional_int(&json!(["set", []])), None);
        assert_eq!(optional_str(&json!("x")), Some("x".into()));
        assert_eq!(string_map(&m), json!(["map", [["k", "v"]]]));
    }
}
