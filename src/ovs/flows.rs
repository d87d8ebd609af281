//! OpenFlow rules per bridge: the generated rules (drop broadcast and multicast
//! arriving on the uplink, NORMAL forwarding otherwise) plus `extra_flows`,
//! compared with `ovs-ofctl dump-flows` and replaced atomically with
//! `ovs-ofctl --bundle replace-flows` only when they differ. Bridges with
//! `extra_flows` are compared by `ovs-ofctl diff-flows`, which parses both sides,
//! so a flow written differently from how the switch prints it is still equal.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::process::{Command, Output};

use super::config::BridgeSpec;
use super::error::{OvsError, Result};
use super::jsonrpc::{Connection, DbAddr};
use serde_json::json;

/// Priority of the rules that drop broadcast / multicast from the uplink.
pub const DROP_BROADCAST_PRIORITY: u16 = 1001;
pub const DROP_MULTICAST_PRIORITY: u16 = 1000;
/// Priority of the MAC guard's pass rules (below the uplink drops).
pub const MAC_GUARD_PRIORITY: u16 = 100;

/// How to run `ovs-ofctl`.
#[derive(Debug, Clone)]
pub struct Ofctl {
    pub program: PathBuf,
    /// `OVS_RUNDIR` for the child (where `<bridge>.mgmt` sockets live); `None` = inherit.
    pub rundir: Option<PathBuf>,
}

impl Default for Ofctl {
    fn default() -> Self {
        Ofctl { program: PathBuf::from("ovs-ofctl"), rundir: None }
    }
}

impl Ofctl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let spawn_err = |source| OvsError::Spawn { program: self.program.display().to_string(), source };
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = &self.rundir {
            cmd.env("OVS_RUNDIR", d);
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error (ovs-ofctl exited early) shows up in its exit status and stderr.
            let _ = pipe.write_all(text.as_bytes());
        }
        child.wait_with_output().map_err(spawn_err)
    }

    /// The bridge's flows, normalized and sorted.
    pub fn dump(&self, bridge: &str) -> Result<Vec<String>> {
        let out = self.run(&["dump-flows", "--names", "--no-stats", bridge], None)?;
        if !out.status.success() {
            return Err(OvsError::Flows {
                bridge: bridge.to_string(),
                msg: format!(
                    "ovs-ofctl dump-flows failed: {}. Is ovs-vswitchd running and does the bridge exist?",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let mut flows: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().filter_map(normalize).collect();
        flows.sort();
        Ok(flows)
    }

    /// Replaces all flows of `bridge` with `flows` in one OpenFlow 1.4 bundle.
    pub fn replace(&self, bridge: &str, flows: &[String]) -> Result<()> {
        let err = |msg: String| OvsError::Flows { bridge: bridge.to_string(), msg };
        // The flows go in on stdin ("-"): no temporary file.
        let out = self.run(&["--bundle", "replace-flows", bridge, "-"], Some(&lines(flows)))?;
        if !out.status.success() {
            return Err(err(format!(
                "ovs-ofctl --bundle replace-flows failed, the old flows stay in place: {}. Check extra_flows for syntax errors",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Makes the bridge's flows equal `desired`; returns whether anything was written.
    /// `parsed` compares through `ovs-ofctl diff-flows` instead of as text (for flows
    /// given by the user, which may be written differently from the dump).
    pub fn sync(&self, bridge: &str, desired: &[String], parsed: bool) -> Result<bool> {
        let same = if parsed { !self.differs(bridge, desired)? } else { self.dump(bridge)? == normalized(desired) };
        if same {
            return Ok(false);
        }
        self.replace(bridge, desired)?;
        Ok(true)
    }

    /// Whether the bridge's flows differ from `desired`, both sides parsed by
    /// `ovs-ofctl diff-flows` (port names resolved by the switch).
    pub fn differs(&self, bridge: &str, desired: &[String]) -> Result<bool> {
        let out = self.run(&["diff-flows", "--names", bridge, "/dev/stdin"], Some(&lines(desired)))?;
        match out.status.code() {
            Some(0) => Ok(false),
            Some(2) => Ok(true),
            _ => Err(OvsError::Flows {
                bridge: bridge.to_string(),
                msg: format!(
                    "ovs-ofctl diff-flows failed: {}. Is ovs-vswitchd running, and are extra_flows valid?",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }),
        }
    }

    /// Checks the syntax of `flows` without a switch (`ovs-ofctl parse-flows`), so a bad
    /// flow is found before anything is written. Port names (`ports`, and `bridge` itself
    /// as LOCAL) stand in as port numbers, since no switch is asked to resolve them.
    pub fn validate(&self, bridge: &str, ports: &[String], flows: &[String]) -> Result<()> {
        if flows.is_empty() {
            return Ok(());
        }
        let text: Vec<String> = flows.iter().map(|f| with_port_numbers(f, bridge, ports)).collect();
        let out = self.run(&["parse-flows", "-"], Some(&lines(&text)))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        // "ovs-ofctl: -:LINE: what is wrong"
        let (flow, detail) = stderr
            .split_once("-:")
            .and_then(|(_, rest)| rest.split_once(':'))
            .and_then(|(n, detail)| {
                let i = n.trim().parse::<usize>().ok()?.checked_sub(1)?;
                Some((flows.get(i)?.clone(), detail.trim().to_string()))
            })
            .unwrap_or_else(|| (flows.join(" | "), stderr.to_string()));
        Err(OvsError::BadFlow { bridge: bridge.to_string(), flow, detail })
    }
}

fn lines(flows: &[String]) -> String {
    let mut text = String::new();
    for f in flows {
        text.push_str(f);
        text.push('\n');
    }
    text
}

/// `flow` with every token that is one of `ports` replaced by a port number (1, 2, ...)
/// and the bridge's own name by `LOCAL`, for parsing without a switch.
pub fn with_port_numbers(flow: &str, bridge: &str, ports: &[String]) -> String {
    let mut out = String::with_capacity(flow.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token == bridge {
            out.push_str("LOCAL");
        } else if let Some(i) = ports.iter().position(|p| p == token) {
            out.push_str(&(i + 1).to_string());
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in flow.chars() {
        if matches!(c, '=' | ',' | ':' | '(' | ')' | ' ' | '\t' | '[' | ']' | '/') {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Where ovs-vswitchd's control socket is: `<rundir>/ovs-vswitchd.<pid>.ctl`, the
/// pid read from `<rundir>/ovs-vswitchd.pid` (as `ovs-appctl` finds it).
pub fn vswitchd_ctl(rundir: Option<&Path>) -> Option<PathBuf> {
    let rundir = match rundir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os("OVS_RUNDIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR)),
    };
    let pid: u32 = std::fs::read_to_string(rundir.join("ovs-vswitchd.pid")).ok()?.trim().parse().ok()?;
    Some(rundir.join(format!("ovs-vswitchd.{pid}.ctl")))
}

/// Open vSwitch's run directory when `OVS_RUNDIR` is not set.
pub const DEFAULT_RUNDIR: &str = "/run/openvswitch";

/// Reads the flows of many bridges at once through ovs-vswitchd's control socket
/// (`bridge/dump-flows`, pipelined on one connection): one round trip instead of one
/// OpenFlow connection per bridge. `ports[i]` maps OpenFlow port numbers of bridge i
/// to names. Returns `None` when the socket is not reachable; a bridge whose flows
/// cannot be read this way gets `None` (the caller falls back to `ovs-ofctl`).
pub fn quick_dump(ctl: &Path, bridges: &[(&str, &HashMap<i64, String>)]) -> Option<Vec<Option<Vec<String>>>> {
    let addr = DbAddr::Unix(ctl.to_string_lossy().into_owned());
    let mut conn = Connection::connect(&addr).ok()?;
    let params = bridges.iter().map(|(b, _)| json!([b])).collect();
    let answers = conn.call_many("bridge/dump-flows", params).ok()?;
    Some(
        answers
            .into_iter()
            .zip(bridges)
            .map(|(a, (_, ports))| {
                let text = a.ok()?;
                let mut flows: Vec<String> = text.as_str()?.lines().filter_map(|l| from_vswitchd(l, ports)).collect();
                flows.sort();
                Some(flows)
            })
            .collect(),
    )
}

/// A `bridge/dump-flows` line in [`normalize`]d form: statistics dropped, port numbers
/// named, OVS-internal flows (table 254, hidden priorities above 65535) skipped.
fn from_vswitchd(line: &str, ports: &HashMap<i64, String>) -> Option<String> {
    let at = line.find("actions=")?;
    let (matches, actions) = line.split_at(at);
    const STATS: &[&str] =
        &["duration=", "n_packets=", "n_bytes=", "idle_age=", "hard_age=", "n_offload_packets=", "n_offload_bytes="];
    let mut fields = Vec::new();
    for f in matches.split([',', ' ']).map(str::trim).filter(|f| !f.is_empty()) {
        if STATS.iter().any(|s| f.starts_with(s)) {
            continue;
        }
        if let Some(t) = f.strip_prefix("table_id=") {
            if t == "254" {
                return None;
            }
            fields.push(format!("table={t}"));
        } else if let Some(p) = f.strip_prefix("priority=") {
            if p.parse::<u32>().ok()? > 65535 {
                return None;
            }
            fields.push(f.to_string());
        } else if let Some(name) =
            f.strip_prefix("in_port=").and_then(|n| n.parse::<i64>().ok()).and_then(|n| ports.get(&n))
        {
            fields.push(format!("in_port={name}"));
        } else {
            fields.push(f.to_string());
        }
    }
    normalize(&format!("{} {actions}", fields.join(",")))
}

/// Why an `extra_flows` entry cannot go to ovs-ofctl as one flow line (stdin of
/// `add-flows`/`replace-flows`, one flow per line, `#` starts a comment).
/// The switch's own parser still has the last word at apply time.
pub fn check_extra_flow(flow: &str) -> std::result::Result<(), String> {
    if let Some(c) = flow.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(format!("holds {c:?}; a flow is one line of printable ASCII"));
    }
    if flow.trim_start().starts_with('#') {
        return Err("starts with '#', which ovs-ofctl reads as a comment".into());
    }
    let Some(at) = flow.find("actions=") else {
        return Err("has no actions=".into());
    };
    if flow[at + "actions=".len()..].trim().is_empty() {
        return Err("has an empty actions=".into());
    }
    Ok(())
}

/// The flows a bridge should have, in ovs-ofctl syntax (the uplink's MAC read from the system).
pub fn desired(spec: &BridgeSpec) -> Vec<String> {
    desired_with(spec, spec.uplink.as_deref().and_then(super::mac::of_interface).as_deref())
}

/// The flows a bridge should have when its uplink NIC has MAC `uplink_mac`.
///
/// With `mac_guard`, frames from every port but the uplink go on normally
/// (MAC learning, flooding, the uplink included) only when their source is
/// the uplink's MAC, which the bridge's own interface takes, or an allowed
/// one; any other frame is handed to the host only, so it never leaves
/// through the uplink. Frames arriving on the uplink are not affected.
pub fn desired_with(spec: &BridgeSpec, uplink_mac: Option<&str>) -> Vec<String> {
    let mut flows = Vec::new();
    if spec.drop_uplink_broadcast
        && let Some(up) = &spec.uplink
    {
        flows.push(format!("priority={DROP_BROADCAST_PRIORITY},in_port={up},dl_dst=ff:ff:ff:ff:ff:ff,actions=drop"));
        flows.push(format!(
            "priority={DROP_MULTICAST_PRIORITY},in_port={up},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop"
        ));
    }
    match &spec.uplink {
        Some(up) if spec.mac_guard => {
            flows.push(format!("priority={MAC_GUARD_PRIORITY},in_port={up},actions=NORMAL"));
            let allowed = uplink_mac
                .into_iter()
                .map(str::to_string)
                .chain(spec.allowed_macs.iter().filter_map(|m| super::mac::parse(m)));
            for mac in allowed {
                flows.push(format!("priority={MAC_GUARD_PRIORITY},dl_src={mac},actions=NORMAL"));
            }
            flows.push("priority=0,actions=LOCAL".to_string());
        }
        _ => flows.push("priority=0,actions=NORMAL".to_string()),
    }
    flows.extend(spec.extra_flows.iter().cloned());
    flows
}

/// Normalized, sorted form of flow strings, comparable with [`Ofctl::dump`].
pub fn normalized(flows: &[String]) -> Vec<String> {
    let mut v: Vec<String> = flows.iter().filter_map(|f| normalize(f)).collect();
    v.sort();
    v
}

/// One flow line in a canonical form: match fields sorted, defaults dropped,
/// `actions=` text kept as written. Header lines of a dump give `None`.
pub fn normalize(line: &str) -> Option<String> {
    let line = line.trim();
    let at = line.find("actions=")?;
    let (matches, actions) = line.split_at(at);
    let actions = actions.trim_start_matches("actions=").trim();
    let mut fields: Vec<String> = matches
        .split([',', ' '])
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "cookie=0x0" && *f != "cookie=0" && *f != "table=0")
        .map(str::to_string)
        .collect();
    if !fields.iter().any(|f| f.starts_with("priority=")) {
        fields.push("priority=32768".to_string());
    }
    fields.sort();
    Some(format!("{} actions={actions}", fields.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_and_written_forms_normalize_alike() {
        assert_eq!(
            normalize(" priority=1001,in_port=eth0,dl_dst=ff:ff:ff:ff:ff:ff actions=drop"),
            normalize("dl_dst=ff:ff:ff:ff:ff:ff,priority=1001,in_port=eth0,actions=drop"),
        );
        assert_eq!(normalize(" priority=0 actions=NORMAL"), normalize("priority=0,actions=NORMAL"));
        assert_eq!(normalize("table=0,ip,actions=drop"), normalize(" ip actions=drop"));
        assert_ne!(normalize("priority=1,actions=drop"), normalize("priority=2,actions=drop"));
        assert_eq!(normalize("NXST_FLOW reply (xid=0x4):"), None);
    }

    #[test]
    fn vswitchd_dump_lines_normalize_like_ofctl_ones() {
        let ports = HashMap::from([(9, "eth1".to_string())]);
        assert_eq!(
            from_vswitchd(
                "duration=0s, n_packets=3, n_bytes=180, priority=1001,in_port=9,dl_dst=ff:ff:ff:ff:ff:ff,actions=drop",
                &ports
            ),
            normalize(" priority=1001,in_port=eth1,dl_dst=ff:ff:ff:ff:ff:ff actions=drop"),
        );
        assert_eq!(
            from_vswitchd("duration=82s, n_packets=0, n_bytes=0, priority=0,actions=NORMAL", &ports),
            normalize("priority=0,actions=NORMAL")
        );
        assert_eq!(
            from_vswitchd(
                "table_id=254, duration=82s, n_packets=0, n_bytes=0, priority=2,recirc_id=0,actions=drop",
                &ports
            ),
            None
        );
        assert_eq!(
            from_vswitchd("duration=1s, n_packets=0, n_bytes=0, priority=180001,arp,actions=NORMAL", &ports),
            None
        );
        assert_eq!(
            from_vswitchd("table_id=1, duration=1s, n_packets=0, n_bytes=0, priority=5,ip,actions=drop", &ports),
            normalize(" table=1, priority=5,ip actions=drop"),
        );
    }

    #[test]
    fn port_names_become_numbers_for_parsing() {
        let ports = vec!["eth0".to_string(), "br0-mgmt".to_string()];
        assert_eq!(
            with_port_numbers("in_port=eth0,dl_dst=ff:ff:ff:ff:ff:ff,actions=output:br0-mgmt,br0", "br0", &ports),
            "in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,actions=output:2,LOCAL"
        );
        assert_eq!(with_port_numbers("ip,actions=eth00", "br0", &ports), "ip,actions=eth00");
    }

    #[test]
    fn generated_rules_drop_uplink_broadcast_only_when_asked() {
        let mut spec: BridgeSpec = serde_json::from_str(r#"{"name":"br0","uplink":"eth0","mac_guard":false}"#).unwrap();
        let f = desired_with(&spec, None);
        assert_eq!(f.len(), 3);
        assert!(f[0].contains("in_port=eth0,dl_dst=ff:ff:ff:ff:ff:ff,actions=drop"));
        assert!(f[1].contains("dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"));
        spec.drop_uplink_broadcast = false;
        spec.extra_flows = vec!["priority=10,arp,actions=NORMAL".into()];
        assert_eq!(desired_with(&spec, None), vec!["priority=0,actions=NORMAL", "priority=10,arp,actions=NORMAL"]);
    }

    #[test]
    fn the_mac_guard_passes_the_uplink_mac_and_allowed_ones_only() {
        let spec: BridgeSpec = serde_json::from_str(
            r#"{"name":"br0","uplink":"eth0","drop_uplink_broadcast":false,"allowed_macs":["00:50:56:AA:BB:CC"]}"#,
        )
        .unwrap();
        assert_eq!(
            desired_with(&spec, Some("0c:c4:7a:00:00:01")),
            vec![
                "priority=100,in_port=eth0,actions=NORMAL",
                "priority=100,dl_src=0c:c4:7a:00:00:01,actions=NORMAL",
                "priority=100,dl_src=00:50:56:aa:bb:cc,actions=NORMAL",
                "priority=0,actions=LOCAL",
            ]
        );
        // Without an uplink there is nothing to guard.
        let spec: BridgeSpec = serde_json::from_str(r#"{"name":"br1"}"#).unwrap();
        assert_eq!(desired_with(&spec, None), vec!["priority=0,actions=NORMAL"]);
    }
}
