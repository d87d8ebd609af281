//! Computes the difference between the desired bridges and a [`Snapshot`], as
//! human-readable [`Change`]s plus the OVSDB operations of ONE transaction
//! (guarded by the snapshot's `wait`s). An empty plan means nothing to write.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Value, json};

use super::atom;
use super::config::{BridgeSpec, Config, PortKind, PortSpec};
use super::error::{OvsError, Result};
use super::state::{MANAGED_KEY, MANAGED_VALUE, Snapshot, is_managed};

/// One difference between the database and the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddBridge { bridge: String, datapath: String, ports: Vec<String> },
    RemoveBridge { bridge: String },
    SetDatapath { bridge: String, from: String, to: String },
    AddPort { bridge: String, port: String, kind: String },
    RemovePort { bridge: String, port: String },
    MovePort { from: String, to: String, port: String },
    ReplacePort { bridge: String, port: String },
    SetType { bridge: String, port: String, from: String, to: String },
    AdoptPort { bridge: String, port: String },
    SetHwaddr { bridge: String, from: Option<String>, to: String },
}

fn kind_name(t: &str) -> &str {
    if t.is_empty() { "system" } else { t }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::SetHwaddr { bridge, from, to } => {
                write!(f, "~ bridge {bridge}: MAC {} -> {to} (its uplink's)", from.as_deref().unwrap_or("(own)"))
            }
            Change::AddBridge { bridge, datapath, ports } => {
                write!(f, "+ bridge {bridge} (datapath {datapath}) with ports {}", ports.join(", "))
            }
            Change::RemoveBridge { bridge } => {
                write!(f, "- bridge {bridge} (managed, no longer in the config)")
            }
            Change::SetDatapath { bridge, from, to } => {
                write!(f, "~ bridge {bridge}: datapath_type {} -> {to}", kind_name(from))
            }
            Change::AddPort { bridge, port, kind } => {
                write!(f, "+ port {port} ({}) on bridge {bridge}", kind_name(kind))
            }
            Change::RemovePort { bridge, port } => {
                write!(f, "- port {port} from bridge {bridge} (managed, no longer in the config)")
            }
            Change::MovePort { from, to, port } => {
                write!(f, "~ port {port}: move from bridge {from} to bridge {to}")
            }
            Change::ReplacePort { bridge, port } => {
                write!(f, "~ port {port} on bridge {bridge}: interfaces differ, recreate it with one interface {port}")
            }
            Change::SetType { bridge, port, from, to } => {
                write!(f, "~ port {port} on bridge {bridge}: interface type {} -> {}", kind_name(from), kind_name(to))
            }
            Change::AdoptPort { bridge, port } => {
                write!(f, "~ port {port} on bridge {bridge}: mark as managed")
            }
        }
    }
}

/// The changes and the transaction that makes them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Write operations (without guards, cfg bump and comment); empty when in sync.
    pub ops: Vec<Value>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// `next_cfg` of an `Open_vSwitch` row this program creates.
pub const FIRST_CFG: i64 = 1;

fn mark() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_KEY.to_string(), MANAGED_VALUE.to_string())])
}

fn where_uuid(u: &str) -> Value {
    json!([["_uuid", "==", atom::uuid(u)]])
}

struct Builder {
    ops: Vec<Value>,
    changes: Vec<Change>,
    counter: usize,
}

impl Builder {
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// Inserts a Port with one Interface of the same name; returns the port's named-uuid.
    fn insert_port(&mut self, p: &PortSpec) -> Value {
        let iface = self.fresh("gbiface");
        let port = self.fresh("gbport");
        self.ops.push(json!({"op": "insert", "table": "Interface", "uuid-name": iface,
            "row": {"name": p.name, "type": p.kind.ovs_type()}}));
        self.ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port,
            "row": {"name": p.name, "interfaces": atom::named_uuid(&iface), "external_ids": atom::string_map(&mark())}}));
        atom::named_uuid(&port)
    }
}

/// Computes what to change so the database matches `config`.
/// Fails, before anything is written, on a bridge or port owned by someone else.
/// The Bridge `other_config` key that sets the bridge interface's MAC.
const HWADDR: &str = "hwaddr";

/// The MAC the bridge should take: its uplink's, when it has one with a MAC.
fn uplink_mac(spec: &BridgeSpec) -> Option<String> {
    spec.uplink.as_deref().and_then(super::mac::of_interface)
}

pub fn plan(config: &Config, snap: &Snapshot) -> Result<Plan> {
    let mut b = Builder { ops: Vec::new(), changes: Vec::new(), counter: 0 };

    // Which bridge holds each port (by port uuid), and each port by name.
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for br in &snap.bridges {
        for p in &br.ports {
            owner.insert(p.as_str(), br.name.as_str());
        }
    }
    let port_by_name: HashMap<&str, &str> = snap
        .bridges
        .iter()
        .flat_map(|br| br.ports.iter())
        .filter_map(|u| snap.ports.get(u))
        .map(|p| (p.name.as_str(), p.uuid.as_str()))
        .collect();
    // Which bridge each desired port name should be on.
    let wanted_on: HashMap<String, &str> = config
        .bridges
        .iter()
        .flat_map(|s| s.desired_ports().into_iter().map(move |p| (p.name, s.name.as_str())))
        .collect();

    let mut bridge_set: Vec<Value> = Vec::new();
    let mut bridges_changed = false;

    for spec in &config.bridges {
        match snap.bridge(&spec.name) {
            Some(row) if !is_managed(&row.external_ids) => {
                return Err(OvsError::Unowned(spec.name.clone()));
            }
            Some(row) => {
                plan_existing(&mut b, spec, row, snap, &owner, &port_by_name, &wanted_on)?;
                bridge_set.push(atom::uuid(&row.uuid));
            }
            None => {
                let mut ports = Vec::new();
                for p in spec.desired_ports() {
                    if let Some(pu) = port_by_name.get(p.name.as_str()) {
                        let holder = owner.get(pu).copied().unwrap_or("?");
                        let held_by_managed = snap.bridge(holder).is_some_and(|h| is_managed(&h.external_ids));
                        if !held_by_managed {
                            return Err(OvsError::PortElsewhere {
                                port: p.name,
                                wanted: spec.name.clone(),
                                actual: holder.to_string(),
                            });
                        }
                    }
                    ports.push(b.insert_port(&p));
                }
                let name = b.fresh("gbbridge");
                let other_config: BTreeMap<String, String> =
                    uplink_mac(spec).map(|mac| BTreeMap::from([(HWADDR.to_string(), mac)])).unwrap_or_default();
                b.ops.push(json!({"op": "insert", "table": "Bridge", "uuid-name": name, "row": {
                    "name": spec.name, "datapath_type": spec.datapath_type.as_str(),
                    // Forward nothing until the flows are installed (no default NORMAL flow).
                    "fail_mode": "secure",
                    "other_config": atom::string_map(&other_config),
                    "external_ids": atom::string_map(&mark()), "ports": atom::set(ports)}}));
                b.changes.push(Change::AddBridge {
                    bridge: spec.name.clone(),
                    datapath: spec.datapath_type.as_str().to_string(),
                    ports: spec.desired_ports().into_iter().map(|p| p.name).collect(),
                });
                bridge_set.push(atom::named_uuid(&name));
                bridges_changed = true;
            }
        }
    }
    for row in &snap.bridges {
        if config.bridges.iter().any(|s| s.name == row.name) {
            continue;
        }
        if is_managed(&row.external_ids) {
            b.changes.push(Change::RemoveBridge { bridge: row.name.clone() });
            bridges_changed = true;
        } else {
            bridge_set.push(atom::uuid(&row.uuid));
        }
    }
    // Rows the Open_vSwitch row references but that no select returned cannot exist (referential integrity).
    if bridges_changed {
        match &snap.ovs_uuid {
            Some(u) => b.ops.push(json!({"op": "update", "table": "Open_vSwitch", "where": where_uuid(u),
                "row": {"bridges": atom::set(bridge_set)}})),
            // A database nobody initialised (`ovs-vsctl init`): create its root row.
            None => b.ops.push(json!({"op": "insert", "table": "Open_vSwitch",
                "row": {"bridges": atom::set(bridge_set), "next_cfg": FIRST_CFG}})),
        }
    }
    Ok(Plan { changes: b.changes, ops: b.ops })
}

fn plan_existing(
    b: &mut Builder,
    spec: &BridgeSpec,
    row: &super::state::BridgeRow,
    snap: &Snapshot,
    owner: &HashMap<&str, &str>,
    port_by_name: &HashMap<&str, &str>,
    wanted_on: &HashMap<String, &str>,
) -> Result<()> {
    let desired = spec.desired_ports();
    let mut final_ports: Vec<Value> = Vec::new();
    let mut ports_changed = false;

    // The bridge's own interface takes the uplink's MAC: upstream sees one MAC for the host.
    if let Some(mac) = uplink_mac(spec)
        && row.other_config.get(HWADDR) != Some(&mac)
    {
        let mut other = row.other_config.clone();
        let from = other.insert(HWADDR.to_string(), mac.clone());
        b.ops.push(json!({"op": "update", "table": "Bridge", "where": where_uuid(&row.uuid),
            "row": {"other_config": atom::string_map(&other)}}));
        b.changes.push(Change::SetHwaddr { bridge: spec.name.clone(), from, to: mac });
    }

    // Ports on the bridge now that the config does not want here.
    for pu in &row.ports {
        let Some(p) = snap.ports.get(pu) else {
            continue;
        };
        if desired.iter().any(|d| d.name == p.name) {
            continue; // handled below
        }
        if is_managed(&p.external_ids) && !wanted_on.contains_key(&p.name) {
            b.changes.push(Change::RemovePort { bridge: spec.name.clone(), port: p.name.clone() });
            ports_changed = true;
        } else if wanted_on.contains_key(&p.name) {
            ports_changed = true; // moving to another bridge; that bridge reports the move
        } else {
            final_ports.push(atom::uuid(pu)); // not ours: left alone
        }
    }

    for d in &desired {
        match port_by_name.get(d.name.as_str()) {
            Some(pu) if owner.get(pu).copied() == Some(row.name.as_str()) => {
                let Some(p) = snap.ports.get(*pu) else {
                    continue;
                };
                let iface = match p.interfaces.as_slice() {
                    [only] => snap.interfaces.get(only).filter(|i| i.name == d.name),
                    _ => None,
                };
                match iface {
                    Some(i) => {
                        if i.kind != d.kind.ovs_type() && !(d.kind == PortKind::System && i.kind == "system") {
                            b.ops.push(json!({"op": "update", "table": "Interface", "where": where_uuid(&i.uuid),
                                "row": {"type": d.kind.ovs_type()}}));
                            b.changes.push(Change::SetType {
                                bridge: spec.name.clone(),
                                port: d.name.clone(),
                                from: i.kind.clone(),
                                to: d.kind.ovs_type().to_string(),
                            });
                        }
                        if !is_managed(&p.external_ids) {
                            let mut ids = p.external_ids.clone();
                            ids.extend(mark());
                            b.ops.push(json!({"op": "update", "table": "Port", "where": where_uuid(&p.uuid),
                                "row": {"external_ids": atom::string_map(&ids)}}));
                            b.changes.push(Change::AdoptPort { bridge: spec.name.clone(), port: d.name.clone() });
                        }
                        final_ports.push(atom::uuid(pu));
                    }
                    None => {
                        b.changes.push(Change::ReplacePort { bridge: spec.name.clone(), port: d.name.clone() });
                        final_ports.push(b.insert_port(d));
                        ports_changed = true;
                    }
                }
            }
            Some(pu) => {
                let holder = owner.get(pu).copied().unwrap_or("?");
                let held_by_managed = snap.bridge(holder).is_some_and(|h| is_managed(&h.external_ids));
                if !held_by_managed {
                    return Err(OvsError::PortElsewhere {
                        port: d.name.clone(),
                        wanted: spec.name.clone(),
                        actual: holder.to_string(),
                    });
                }
                b.changes.push(Change::MovePort {
                    from: holder.to_string(),
                    to: spec.name.clone(),
                    port: d.name.clone(),
                });
                final_ports.push(b.insert_port(d));
                ports_changed = true;
            }
            None => {
                b.changes.push(Change::AddPort {
                    bridge: spec.name.clone(),
                    port: d.name.clone(),
                    kind: d.kind.ovs_type().to_string(),
                });
                final_ports.push(b.insert_port(d));
                ports_changed = true;
            }
        }
    }

    if !spec.datapath_type.matches(&row.datapath_type) {
        b.ops.push(json!({"op": "update", "table": "Bridge", "where": where_uuid(&row.uuid),
            "row": {"datapath_type": spec.datapath_type.as_str()}}));
        b.changes.push(Change::SetDatapath {
            bridge: spec.name.clone(),
            from: row.datapath_type.clone(),
            to: spec.datapath_type.as_str().to_string(),
        });
    }
    if ports_changed {
        b.ops.push(json!({"op": "update", "table": "Bridge", "where": where_uuid(&row.uuid),
            "row": {"ports": atom::set(final_ports)}}));
    }
    Ok(())
}
