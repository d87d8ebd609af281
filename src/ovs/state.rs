//! Reads the current `Open_vSwitch`, `Bridge`, `Port` and `Interface` rows in
//! one read-only transaction, and builds the `wait` guards that make a later
//! write fail if any of what was read has changed in the meantime.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::atom;
use super::error::{OvsError, Result};
use super::jsonrpc::Connection;
use super::schema::DATABASE;

/// The external_ids key that marks bridges and ports this program owns.
pub const MANAGED_KEY: &str = "ghostbridge-managed";
pub const MANAGED_VALUE: &str = "true";

/// Columns read per table; the first list is also what the write guards compare.
const OVS_GUARD: &[&str] = &["_uuid", "bridges"];
const OVS_EXTRA: &[&str] = &["next_cfg", "cur_cfg", "ovs_version"];
const BRIDGE_GUARD: &[&str] = &["_uuid", "name", "ports", "datapath_type", "external_ids", "other_config"];
const PORT_GUARD: &[&str] = &["_uuid", "name", "interfaces", "external_ids"];
const IFACE_GUARD: &[&str] = &["_uuid", "name", "type"];
const IFACE_EXTRA: &[&str] = &["ofport", "error"];

#[derive(Debug, Clone)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub ports: Vec<String>,
    pub datapath_type: String,
    pub external_ids: BTreeMap<String, String>,
    pub other_config: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub interfaces: Vec<String>,
    pub external_ids: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct InterfaceRow {
    pub uuid: String,
    pub name: String,
    pub kind: String,
    pub ofport: Option<i64>,
    pub error: Option<String>,
}

/// Whether external_ids carry the ownership mark.
pub fn is_managed(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(MANAGED_KEY).map(String::as_str) == Some(MANAGED_VALUE)
}

/// What the database held at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The single `Open_vSwitch` row; `None` in a freshly created database.
    pub ovs_uuid: Option<String>,
    pub bridge_refs: Vec<String>,
    pub next_cfg: i64,
    pub cur_cfg: i64,
    pub ovs_version: Option<String>,
    pub bridges: Vec<BridgeRow>,
    pub ports: HashMap<String, PortRow>,
    pub interfaces: HashMap<String, InterfaceRow>,
    /// `wait` operations asserting that the guarded columns still hold what was read.
    pub guards: Vec<Value>,
}

impl Snapshot {
    pub fn bridge(&self, name: &str) -> Option<&BridgeRow> {
        self.bridges.iter().find(|b| b.name == name)
    }
}

fn select(table: &str, guard: &[&str], extra: &[&str]) -> Value {
    let columns: Vec<&str> = guard.iter().chain(extra).copied().collect();
    json!({"op": "select", "table": table, "where": [], "columns": columns})
}

fn guard(table: &str, columns: &[&str], rows: &[Value]) -> Value {
    let projected: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for c in columns {
                m.insert((*c).to_string(), r.get(*c).cloned().unwrap_or(Value::Null));
            }
            Value::Object(m)
        })
        .collect();
    json!({"op": "wait", "timeout": 0, "table": table, "where": [], "columns": columns, "until": "==", "rows": projected})
}

fn rows_of(result: &Value, i: usize) -> Result<Vec<Value>> {
    let r = result.get(i).ok_or_else(|| OvsError::Protocol(format!("transact answer lacks result {i}")))?;
    if let Some(e) = r.get("error") {
        return Err(OvsError::Rpc {
            method: "transact (select)".into(),
            error: format!("{e} {}", r.get("details").unwrap_or(&Value::Null)),
        });
    }
    Ok(r.get("rows").and_then(Value::as_array).cloned().unwrap_or_default())
}

fn string(row: &Value, col: &str) -> String {
    row.get(col).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn row_uuid(row: &Value) -> Result<String> {
    row.get("_uuid")
        .and_then(atom::as_uuid)
        .map(str::to_string)
        .ok_or_else(|| OvsError::Protocol(format!("row without _uuid: {row}")))
}

/// Reads the current state in one transaction.
pub fn read(conn: &mut Connection) -> Result<Snapshot> {
    let ops = json!([
        DATABASE,
        select("Open_vSwitch", OVS_GUARD, OVS_EXTRA),
        select("Bridge", BRIDGE_GUARD, &[]),
        select("Port", PORT_GUARD, &[]),
        select("Interface", IFACE_GUARD, IFACE_EXTRA),
    ]);
    let result = conn.call("transact", ops)?;
    let ovs_rows = rows_of(&result, 0)?;
    let bridge_rows = rows_of(&result, 1)?;
    let port_rows = rows_of(&result, 2)?;
    let iface_rows = rows_of(&result, 3)?;

    let ovs = ovs_rows.first();
    let mut snap = Snapshot {
        ovs_uuid: ovs.map(row_uuid).transpose()?,
        bridge_refs: ovs.map(|r| atom::uuid_set(&r["bridges"])).unwrap_or_default(),
        next_cfg: ovs.and_then(|r| r.get("next_cfg")).and_then(Value::as_i64).unwrap_or(0),
        cur_cfg: ovs.and_then(|r| r.get("cur_cfg")).and_then(Value::as_i64).unwrap_or(0),
        ovs_version: ovs.and_then(|r| atom::optional_str(&r["ovs_version"])),
        bridges: Vec::new(),
        ports: HashMap::new(),
        interfaces: HashMap::new(),
        guards: vec![
            guard("Open_vSwitch", OVS_GUARD, &ovs_rows),
            guard("Bridge", BRIDGE_GUARD, &bridge_rows),
            guard("Port", PORT_GUARD, &port_rows),
            guard("Interface", IFACE_GUARD, &iface_rows),
        ],
    };
    for r in &bridge_rows {
        snap.bridges.push(BridgeRow {
            uuid: row_uuid(r)?,
            name: string(r, "name"),
            ports: atom::uuid_set(&r["ports"]),
            datapath_type: string(r, "datapath_type"),
            external_ids: atom::as_string_map(&r["external_ids"]),
            other_config: atom::as_string_map(&r["other_config"]),
        });
    }
    snap.bridges.sort_by(|a, b| a.name.cmp(&b.name));
    for r in &port_rows {
        let uuid = row_uuid(r)?;
        snap.ports.insert(
            uuid.clone(),
            PortRow {
                uuid,
                name: string(r, "name"),
                interfaces: atom::uuid_set(&r["interfaces"]),
                external_ids: atom::as_string_map(&r["external_ids"]),
            },
        );
    }
    for r in &iface_rows {
        let uuid = row_uuid(r)?;
        snap.interfaces.insert(
            uuid.clone(),
            InterfaceRow {
                uuid,
                name: string(r, "name"),
                kind: string(r, "type"),
                ofport: atom::optional_int(&r["ofport"]),
                error: atom::optional_str(&r["error"]),
            },
        );
    }
    Ok(snap)
}

/// Reads only `cur_cfg` (what ovs-vswitchd has applied).
pub fn read_cur_cfg(conn: &mut Connection) -> Result<i64> {
    let result = conn.call("transact", json!([DATABASE, select("Open_vSwitch", &["cur_cfg"], &[])]))?;
    let rows = rows_of(&result, 0)?;
    Ok(rows.first().and_then(|r| r.get("cur_cfg")).and_then(Value::as_i64).unwrap_or(0))
}
