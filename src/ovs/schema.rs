//! Checks that the server's `Open_vSwitch` schema has every table and column
//! the reconciler reads or writes, so a mismatch is one clear error up front.

use serde_json::{Value, json};

use super::error::{OvsError, Result};
use super::jsonrpc::Connection;

pub const DATABASE: &str = "Open_vSwitch";

/// Tables and the columns of each that the reconciler uses.
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("Open_vSwitch", &["bridges", "next_cfg", "cur_cfg", "ovs_version"]),
    ("Bridge", &["name", "ports", "datapath_type", "external_ids", "other_config", "fail_mode"]),
    ("Port", &["name", "interfaces", "external_ids"]),
    ("Interface", &["name", "type", "ofport", "error", "external_ids"]),
];

/// Fetches the schema with `get_schema` and checks it; returns the schema version.
pub fn check(conn: &mut Connection) -> Result<String> {
    let addr = conn.addr().to_string();
    let schema = match conn.call("get_schema", json!([DATABASE])) {
        Ok(s) => s,
        Err(OvsError::Rpc { error, .. }) => {
            return Err(OvsError::SchemaMismatch { addr, detail: format!("get_schema {DATABASE} failed: {error}") });
        }
        Err(e) => return Err(e),
    };
    let missing = missing_columns(&schema);
    if !missing.is_empty() {
        return Err(OvsError::SchemaMismatch { addr, detail: format!("missing {}", missing.join(", ")) });
    }
    Ok(schema.get("version").and_then(Value::as_str).unwrap_or("unknown").to_string())
}

/// Every `Table` or `Table.column` from [`REQUIRED`] that `schema` lacks.
pub fn missing_columns(schema: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (table, columns) in REQUIRED {
        match schema.get("tables").and_then(|t| t.get(*table)) {
            None => missing.push(format!("table {table}")),
            Some(t) => {
                for c in *columns {
                    if t.get("columns").and_then(|cs| cs.get(*c)).is_none() {
                        missing.push(format!("column {table}.{c}"));
                    }
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_schema_has_everything_and_a_stripped_one_does_not() {
        let text = std::fs::read_to_string("/usr/share/openvswitch/vswitch.ovsschema")
            .expect("needs openvswitch-switch installed: run `bash .ci/deps`");
        let mut schema: Value = serde_json::from_str(&text).unwrap();
        assert!(missing_columns(&schema).is_empty());
        schema["tables"]["Port"]["columns"].as_object_mut().unwrap().remove("interfaces");
        schema["tables"].as_object_mut().unwrap().remove("Interface");
        assert_eq!(missing_columns(&schema), vec!["column Port.interfaces", "table Interface"]);
    }
}
