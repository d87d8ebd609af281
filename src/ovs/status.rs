//! `status`: a readable account of the bridges, their ports, flows and uplink
//! offloads, and every difference from the config (drift).

use std::fmt::Write as _;

use super::apply::{self, Options};
use super::config::Config;
use super::ethtool;
use super::flows;
use super::jsonrpc::DbAddr;
use super::plan;
use super::state::{self, is_managed};

/// The report; `drift` is empty when OVS matches the config.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub text: String,
    pub drift: Vec<String>,
}

/// Inspects without writing anything.
pub fn status(addr: &DbAddr, config: &Config, opts: &Options) -> super::error::Result<Status> {
    let mut conn = apply::connect(addr)?;
    let snap = state::read(&mut conn)?;
    let mut out = String::new();
    let mut drift = Vec::new();

    let version = snap.ovs_version.as_deref().map(|v| format!("Open vSwitch {v}, ")).unwrap_or_default();
    let _ = writeln!(
        out,
        "database  {addr}  ({version}config generation {} applied / {} requested)",
        snap.cur_cfg, snap.next_cfg
    );
    if snap.cur_cfg < snap.next_cfg {
        let _ = writeln!(out, "          ovs-vswitchd has not caught up with the database yet");
    }

    let mut names: Vec<&str> = snap.bridges.iter().map(|b| b.name.as_str()).collect();
    for b in &config.bridges {
        if !names.contains(&b.name.as_str()) {
            names.push(&b.name);
        }
    }
    names.sort();
    for name in names {
        let spec = config.bridges.iter().find(|b| b.name == name);
        let Some(row) = snap.bridge(name) else {
            let _ = writeln!(out, "bridge {name}  MISSING (in the config, not in OVS)");
            continue;
        };
        let managed = is_managed(&row.external_ids);
        let role = match (managed, spec.is_some()) {
            (true, true) => "managed",
            (true, false) => "managed, NOT in the config (apply removes it)",
            (false, true) => "NOT managed but named in the config (apply refuses to touch it)",
            (false, false) => "not managed, left alone",
        };
        let dp = if row.datapath_type.is_empty() { "system" } else { row.datapath_type.as_str() };
        let _ = writeln!(out, "bridge {name}  {role}  datapath {dp}");
        if !managed {
            continue;
        }
        let mut ports: Vec<&state::PortRow> = row.ports.iter().filter_map(|u| snap.ports.get(u)).collect();
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        for p in ports {
            let ifaces: Vec<&state::InterfaceRow> =
                p.interfaces.iter().filter_map(|u| snap.interfaces.get(u)).collect();
            let kind =
                ifaces.first().map(|i| if i.kind.is_empty() { "system" } else { i.kind.as_str() }).unwrap_or("?");
            let ofport = ifaces.first().and_then(|i| i.ofport).map(|o| o.to_string()).unwrap_or_else(|| "-".into());
            let mut notes = Vec::new();
            if spec.and_then(|s| s.uplink.as_deref()) == Some(p.name.as_str()) {
                notes.push("uplink".to_string());
            }
            if !is_managed(&p.external_ids) {
                notes.push("not managed, left alone".to_string());
            }
            if let Some(e) = ifaces.iter().find_map(|i| i.error.as_deref()) {
                notes.push(format!("ERROR: {e}"));
            }
            let line = format!("  port {:<15} {:<9} ofport {:<6} {}", p.name, kind, ofport, notes.join("; "));
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if let Some(spec) = spec {
            match opts.ofctl.dump(name) {
                Ok(have) => {
                    let desired = flows::desired(spec);
                    let want = flows::normalized(&desired);
                    // extra_flows may be written differently from the dump: let ovs-ofctl parse both.
                    let same = have == want
                        || (!spec.extra_flows.is_empty() && matches!(opts.ofctl.differs(name, &desired), Ok(false)));
                    if same {
                        let _ = writeln!(out, "  flows: {} in place", have.len());
                    } else {
                        let _ = writeln!(out, "  flows: DIFFER from the config");
                        for f in have.iter().filter(|f| !want.contains(f)) {
                            drift.push(format!("flow on {name} not in the config: {f}"));
                        }
                        for f in want.iter().filter(|f| !have.contains(f)) {
                            drift.push(format!("flow missing on {name}: {f}"));
                        }
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "  flows: cannot read ({e})");
                    drift.push(format!("flows of {name} cannot be read"));
                }
            }
            if let Some(up) = &spec.uplink {
                match ethtool::pending(up) {
                    Ok(on) if on.is_empty() => {
                        let _ = writeln!(out, "  offload on {up}: off");
                    }
                    Ok(on) => {
                        let _ = writeln!(out, "  offload on {up}: STILL ON: {}", on.join(", "));
                        drift.push(format!("offloads still on on uplink {up}: {}", on.join(", ")));
                    }
                    Err(e) => {
                        let _ = writeln!(out, "  offload on {up}: cannot read ({e})");
                    }
                }
                if let Ok(kept) = ethtool::kept_on(up)
                    && !kept.is_empty()
                {
                    let _ = writeln!(out, "  offload on {up}: the driver keeps on: {}", kept.join(", "));
                }
            }
        }
    }

    if let Err(e) = apply::check_nics(config) {
        drift.push(e.to_string());
    }
    match plan::plan(config, &snap) {
        Ok(p) => drift.splice(0..0, p.changes.iter().map(|c| c.to_string())).for_each(drop),
        Err(e) => drift.insert(0, e.to_string()),
    }
    if drift.is_empty() {
        let _ = writeln!(out, "\nin sync with the config: nothing to do");
    } else {
        let _ = writeln!(out, "\ndrift ({}): `ghostbridge-ovs apply` would change:", drift.len());
        for d in &drift {
            let _ = writeln!(out, "  {d}");
        }
    }
    Ok(Status { text: out, drift })
}
