//! Converging: read, plan, write the plan in one guarded transaction (re-read
//! and retry on conflict or a lost connection, bounded), wait until
//! ovs-vswitchd has applied it, then sync flows and turn uplink offloads off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::Config;
use super::error::{OvsError, Result};
use super::ethtool::{self, OffloadReport};
use super::flows::{self, Ofctl};
use super::jsonrpc::{Connection, DbAddr};
use super::plan::{self, Change};
use super::schema::{self, DATABASE};
use super::state;

/// Tunables of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub ofctl: Ofctl,
    /// Attempts of the read-plan-write cycle before giving up on conflicts.
    pub max_attempts: u32,
    /// How long to wait for ovs-vswitchd to apply a committed change.
    pub vswitchd_timeout: Duration,
    /// How long to keep reconnecting when the database goes away mid-run.
    pub reconnect_for: Duration,
    /// How long one database request may take before the run fails (a hung ovsdb-server).
    pub io_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ofctl: Ofctl::default(),
            max_attempts: 5,
            vswitchd_timeout: Duration::from_secs(15),
            reconnect_for: Duration::from_secs(5),
            io_timeout: super::jsonrpc::CALL_TIMEOUT,
        }
    }
}

/// What one run changed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub changes: Vec<Change>,
    /// Write transactions committed (0 when already in sync).
    pub transactions: u32,
    /// Bridges whose flows were replaced.
    pub flows_replaced: Vec<String>,
    /// Whether flows were read through ovs-vswitchd's control socket (else `ovs-ofctl` only).
    pub flows_via_control_socket: bool,
    pub offload: Vec<OffloadReport>,
    /// Problems ovs-vswitchd reported for our interfaces (Interface.error), and offloads refused.
    pub warnings: Vec<String>,
    /// How often the connection to the database was re-established during the run.
    pub reconnects: u32,
}

/// Connects and checks the schema.
pub fn connect(addr: &DbAddr) -> Result<Connection> {
    connect_with(addr, super::jsonrpc::CALL_TIMEOUT)
}

/// Connects with a request timeout and checks the schema.
pub fn connect_with(addr: &DbAddr, timeout: Duration) -> Result<Connection> {
    let mut conn = Connection::connect_with(addr, timeout)?;
    schema::check(&mut conn)?;
    Ok(conn)
}

/// Every system port (uplink included) must exist before anything is written.
pub fn check_nics(config: &Config) -> Result<()> {
    for b in &config.bridges {
        for p in b.desired_ports() {
            if p.kind == super::config::PortKind::System && !ethtool::interface_exists(&p.name) {
                return Err(OvsError::MissingNic { bridge: b.name.clone(), port: p.name });
            }
        }
    }
    Ok(())
}

fn is_transient(e: &OvsError) -> bool {
    matches!(e, OvsError::Closed { .. } | OvsError::Io { .. } | OvsError::Connect { .. } | OvsError::NotReady { .. })
}

/// Brings OVS to the state `config` describes.
pub fn apply(addr: &DbAddr, config: &Config, opts: &Options) -> Result<Report> {
    check_nics(config)?;
    let mut report = Report::default();
    let mut down_since: Option<Instant> = None;
    // A socket that is not there fails at once; a connection that drops or is
    // refused by a socket with no server behind it (a restart) is retried.
    let mut conn = match connect_with(addr, opts.io_timeout) {
        Err(OvsError::Connect { ref source, .. }) if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            report.reconnects += 1;
            reconnect(addr, &mut down_since, opts)?
        }
        Err(OvsError::Io { .. } | OvsError::Closed { .. } | OvsError::NotReady { .. }) => {
            report.reconnects += 1;
            reconnect(addr, &mut down_since, opts)?
        }
        other => other?,
    };
    let snap = converge(addr, &mut conn, config, opts, &mut report)?;

    // Flows and offload need ovs-vswitchd to have the bridges; `converge` waited for that.
    // A failing bridge does not stop the others, nor the offload step: the first error is
    // returned once everything was attempted.
    let mut first_error: Option<OvsError> = None;
    let mut refused_new: Vec<String> = Vec::new();
    let (flow_results, quick) = sync_flows(&opts.ofctl, config, &snap);
    report.flows_via_control_socket = quick;
    for (b, replaced) in config.bridges.iter().zip(flow_results) {
        match replaced {
            Ok(true) => report.flows_replaced.push(b.name.clone()),
            Ok(false) => {}
            Err(e) => {
                if report.changes.iter().any(|c| matches!(c, Change::AddBridge { bridge, .. } if *bridge == b.name)) {
                    refused_new.push(b.name.clone());
                }
                first_error.get_or_insert(e);
            }
        }
    }
    // A new bridge is committed with its flows or not at all: one whose flows the
    // switch refused would stay in fail_mode=secure forwarding nothing.
    if !refused_new.is_empty() {
        let kept = Config {
            bridges: config.bridges.iter().filter(|b| !refused_new.contains(&b.name)).cloned().collect(),
            ..config.clone()
        };
        converge(addr, &mut conn, &kept, opts, &mut report)?;
        let cause = first_error.take().map(|e| e.to_string()).unwrap_or_default();
        return Err(OvsError::RolledBack { bridges: refused_new.join(", "), cause });
    }
    for b in &config.bridges {
        if let Some(up) = &b.uplink {
            let r = match ethtool::disable_offloads(up) {
                Ok(r) => r,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if !r.refused.is_empty() {
                report.warnings.push(format!("{up}: the driver kept these offloads on: {}", r.refused.join(", ")));
            }
            report.offload.push(r);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let errors: HashMap<&str, &str> =
        snap.interfaces.values().filter_map(|i| Some((i.name.as_str(), i.error.as_deref()?))).collect();
    for b in &config.bridges {
        for p in b.desired_ports() {
            if let Some(err) = errors.get(p.name.as_str()) {
                report.warnings.push(format!("interface {} on bridge {}: ovs-vswitchd reports: {err}", p.name, b.name));
            }
        }
    }
    Ok(report)
}

/// Read, plan, write and re-read until the database holds `config` and
/// ovs-vswitchd has applied it; returns that state. A dropped connection at
/// any step (a restart just after the commit included) reconnects and starts
/// over from a fresh read, so what was committed is never written twice.
fn converge(
    addr: &DbAddr,
    conn: &mut Connection,
    config: &Config,
    opts: &Options,
    report: &mut Report,
) -> Result<state::Snapshot> {
    let mut down_since: Option<Instant> = None;
    let mut attempt = 0;
    let mut flows_checked = false;
    loop {
        attempt += 1;
        match converge_once(conn, config, opts, report, &mut flows_checked) {
            Ok(snap) => return Ok(snap),
            Err(OvsError::Conflict { .. }) if attempt < opts.max_attempts => continue,
            Err(OvsError::Conflict { .. }) => return Err(OvsError::Conflict { attempts: attempt }),
            Err(e) if is_transient(&e) => {
                // The server went away; whatever it committed is re-read after reconnecting.
                down_since.get_or_insert_with(Instant::now);
                report.reconnects += 1;
                *conn = reconnect(addr, &mut down_since, opts)?;
                attempt = 0;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How many `ovs-ofctl` processes run at once when checking flows.
const FLOW_WORKERS: usize = 8;

/// OpenFlow port number -> interface name, per bridge.
fn port_numbers(snap: &state::Snapshot, bridge: &str) -> HashMap<i64, String> {
    let Some(b) = snap.bridge(bridge) else {
        return HashMap::new();
    };
    b.ports
        .iter()
        .filter_map(|p| snap.ports.get(p))
        .flat_map(|p| p.interfaces.iter().filter_map(|i| snap.interfaces.get(i)))
        .filter_map(|i| Some((i.ofport?, i.name.clone())))
        .collect()
}

/// Syncs every bridge's flows; results in config order. All bridges are first read
/// at once through ovs-vswitchd's control socket; bridges that are not in sync then (or
/// when that socket is unavailable) go through `ovs-ofctl`, several at a time.
fn sync_flows(ofctl: &Ofctl, config: &Config, snap: &state::Snapshot) -> (Vec<Result<bool>>, bool) {
    let maps: Vec<HashMap<i64, String>> = config.bridges.iter().map(|b| port_numbers(snap, &b.name)).collect();
    let quick = flows::vswitchd_ctl(ofctl.rundir.as_deref()).and_then(|ctl| {
        let list: Vec<(&str, &HashMap<i64, String>)> =
            config.bridges.iter().zip(&maps).map(|(b, m)| (b.name.as_str(), m)).collect();
        flows::quick_dump(&ctl, &list)
    });
    let in_sync: Vec<bool> = config
        .bridges
        .iter()
        .enumerate()
        .map(|(i, b)| {
            quick
                .as_ref()
                .and_then(|q| q.get(i))
                .and_then(|f| f.as_ref())
                .is_some_and(|have| *have == flows::normalized(&flows::desired(b)))
        })
        .collect();
    let slow: Vec<usize> = (0..config.bridges.len()).filter(|&i| !in_sync[i]).collect();
    let mut results: Vec<Result<bool>> = in_sync.iter().map(|_| Ok(false)).collect();
    for (i, r) in slow.iter().zip(sync_with_ofctl(ofctl, config, &slow)) {
        results[*i] = r;
    }
    (results, quick.is_some())
}

/// `ovs-ofctl` dump, compare and replace for the bridges at `which`, several at a time.
fn sync_with_ofctl(ofctl: &Ofctl, config: &Config, which: &[usize]) -> Vec<Result<bool>> {
    let n = which.len();
    let workers = FLOW_WORKERS.min(n.max(1));
    let mut results: Vec<Option<Result<bool>>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    (w..n)
                        .step_by(workers)
                        .map(|i| {
                            let b = &config.bridges[which[i]];
                            let parsed = !b.extra_flows.is_empty();
                            (i, ofctl.sync(&b.name, &flows::desired(b), parsed))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A panicking worker leaves its bridges as errors below.
        for done in handles.into_iter().filter_map(|h| h.join().ok()) {
            for (i, r) in done {
                results[i] = Some(r);
            }
        }
    });
    results
        .into_iter()
        .zip(which.iter().map(|&i| &config.bridges[i]))
        .map(|(r, b)| {
            r.unwrap_or_else(|| {
                Err(OvsError::Flows { bridge: b.name.clone(), msg: "flow check did not complete".into() })
            })
        })
        .collect()
}

/// Checks the syntax of every bridge's `extra_flows` (port names: the configured ports
/// and those already on the bridge).
fn validate_flows(ofctl: &Ofctl, config: &Config, snap: &state::Snapshot) -> Result<()> {
    for b in config.bridges.iter().filter(|b| !b.extra_flows.is_empty()) {
        let mut names: Vec<String> = b.desired_ports().into_iter().map(|p| p.name).collect();
        if let Some(row) = snap.bridge(&b.name) {
            names.extend(row.ports.iter().filter_map(|p| snap.ports.get(p)).map(|p| p.name.clone()));
        }
        ofctl.validate(&b.name, &names, &b.extra_flows)?;
    }
    Ok(())
}

/// Connects, retrying while the database is unreachable for less than `grace`
/// (counted from `down_since`, which a failed first attempt starts).
fn reconnect(addr: &DbAddr, down_since: &mut Option<Instant>, opts: &Options) -> Result<Connection> {
    let grace = opts.reconnect_for;
    loop {
        match connect_with(addr, opts.io_timeout) {
            Ok(c) => {
                *down_since = None;
                return Ok(c);
            }
            Err(e) if is_transient(&e) => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= grace {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One read-plan-write cycle. `Conflict` means the guards tripped and nothing was written.
/// Returns the state after it: read again (with ovs-vswitchd's ofport numbers) when something was written.
fn converge_once(
    conn: &mut Connection,
    config: &Config,
    opts: &Options,
    report: &mut Report,
    flows_checked: &mut bool,
) -> Result<state::Snapshot> {
    let snap = state::read(conn)?;
    let plan = plan::plan(config, &snap)?;
    if !plan.is_empty() && !*flows_checked {
        // A bad extra flow is an error before anything is written.
        validate_flows(&opts.ofctl, config, &snap)?;
        *flows_checked = true;
    }
    if plan.is_empty() {
        // Still make sure ovs-vswitchd caught up with earlier writes before touching flows.
        if snap.ovs_uuid.is_some() && snap.cur_cfg < snap.next_cfg {
            wait_for_vswitchd(conn, snap.next_cfg, opts.vswitchd_timeout)?;
            return state::read(conn);
        }
        return Ok(snap);
    }
    let want = commit(conn, &snap, &plan)?;
    report.transactions += 1;
    report.changes.extend(plan.changes);
    if let Some(want) = want {
        wait_for_vswitchd(conn, want, opts.vswitchd_timeout)?;
    }
    state::read(conn)
}

/// Writes `plan` in one transaction guarded by `snap`'s `wait`s, bumping
/// `next_cfg` so ovs-vswitchd reconfigures. Returns the `next_cfg` to wait for.
/// `Conflict` means another client changed what `snap` read: nothing was written.
pub fn commit(conn: &mut Connection, snap: &state::Snapshot, plan: &plan::Plan) -> Result<Option<i64>> {
    let mut ops: Vec<Value> = vec![json!(DATABASE)];
    ops.extend(snap.guards.iter().cloned());
    let n_guards = snap.guards.len();
    ops.extend(plan.ops.iter().cloned());
    let mut cfg_select = None;
    if let Some(u) = &snap.ovs_uuid {
        let w = json!([["_uuid", "==", ["uuid", u]]]);
        ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": w, "mutations": [["next_cfg", "+=", 1]]}));
        // Result i belongs to ops[i + 1] (ops[0] is the database name): this is the select's.
        cfg_select = Some(ops.len() - 1);
        ops.push(json!({"op": "select", "table": "Open_vSwitch", "where": w, "columns": ["next_cfg"]}));
    }
    ops.push(json!({"op": "comment", "comment": format!("ghostbridge-ovs: {} change(s)", plan.changes.len())}));

    let result = conn.call("transact", Value::Array(ops))?;
    let results =
        result.as_array().ok_or_else(|| OvsError::Protocol(format!("transact answer is not an array: {result}")))?;
    for (i, r) in results.iter().enumerate() {
        if let Some(err) = r.get("error").and_then(Value::as_str) {
            if i < n_guards && err == "timed out" {
                return Err(OvsError::Conflict { attempts: 1 });
            }
            let details = r.get("details").and_then(Value::as_str).unwrap_or("");
            return Err(OvsError::TransactFailed(format!("{err}: {details}")));
        }
    }
    if snap.ovs_uuid.is_none() {
        return Ok(Some(plan::FIRST_CFG)); // the plan created the row with this next_cfg
    }
    Ok(cfg_select.map(|i| {
        results
            .get(i)
            .and_then(|r| r.get("rows"))
            .and_then(|rows| rows.get(0))
            .and_then(|row| row.get("next_cfg"))
            .and_then(Value::as_i64)
            .unwrap_or(snap.next_cfg + 1)
    }))
}

/// Polls `cur_cfg` until ovs-vswitchd has applied configuration `want`.
pub fn wait_for_vswitchd(conn: &mut Connection, want: i64, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let cur = state::read_cur_cfg(conn)?;
        if cur >= want {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(OvsError::VswitchdTimeout { secs: timeout.as_secs(), cur, want });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
