//! Benchmark of the OVS reconciler against a shell script that issues one
//! `ovs-vsctl` call per object, on a private ovsdb-server + ovs-vswitchd
//! (userspace datapath). Needs root. Run: `cargo bench --bench ovs`.

#[path = "../tests/ovs_support/mod.rs"]
mod ovs_support;

use std::process::Command;
use std::time::{Duration, Instant};

use ghostbridge::ovs::{self, Config};
use ovs_support::{Ovs, ok};
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The reference shape: one bridge with an uplink, a system port and an internal port, one internal-only bridge.
fn two_bridges(ovs: &Ovs) -> Config {
    ovs.config(json!([
        {"name": "gbb0", "datapath_type": "netdev", "uplink": "gbbu", "ports": ["gbbv"], "internal_ports": ["gbb0-m"],
         "drop_uplink_broadcast": true, "extra_flows": []},
        {"name": "gbb1", "datapath_type": "netdev", "uplink": null, "ports": [], "internal_ports": [],
         "drop_uplink_broadcast": false, "extra_flows": []}
    ]))
}

fn many_bridges(ovs: &Ovs, bridges: usize, ports: usize) -> Config {
    let list: Vec<serde_json::Value> = (0..bridges)
        .map(|b| {
            let internal: Vec<String> = (0..ports).map(|p| format!("gbm{b}p{p}")).collect();
            json!({"name": format!("gbm{b}"), "datapath_type": "netdev", "internal_ports": internal})
        })
        .collect();
    ovs.config(json!(list))
}

/// The same state built the way a shell script would: one ovs-vsctl (or ovs-ofctl/ethtool) call per object.
fn script_for(ovs: &Ovs, config: &Config) -> String {
    let db = format!("--db=unix:{}", ovs.sock().display());
    let mut s = String::from("set -e\n");
    for b in &config.bridges {
        s += &format!(
            "ovs-vsctl {db} add-br {0} -- set bridge {0} datapath_type={1} fail_mode=secure external_ids:ghostbridge-managed=true \
             -- set port {0} external_ids:ghostbridge-managed=true\n",
            b.name,
            b.datapath_type.as_str()
        );
        for p in &b.internal_ports {
            s += &format!(
                "ovs-vsctl {db} add-port {} {p} -- set interface {p} type=internal -- set port {p} external_ids:ghostbridge-managed=true\n",
                b.name
            );
        }
        for p in b.uplink.iter().chain(&b.ports) {
            s += &format!(
                "ovs-vsctl {db} add-port {} {p} -- set port {p} external_ids:ghostbridge-managed=true\n",
                b.name
            );
        }
        // Secure fail mode: no flow until one is added, as the reconciler builds it.
        s += &format!("ovs-ofctl add-flow {} 'priority=0,actions=NORMAL'\n", b.name);
        if let (true, Some(up)) = (b.drop_uplink_broadcast, &b.uplink) {
            s += &format!(
                "ovs-ofctl add-flow {} 'priority=1001,in_port={up},dl_dst=ff:ff:ff:ff:ff:ff,actions=drop'\n",
                b.name
            );
            s += &format!(
                "ovs-ofctl add-flow {} 'priority=1000,in_port={up},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop'\n",
                b.name
            );
            s += &format!(
                "ethtool -K {up} tso off gso off gro off lro off rxvlan off txvlan off sg off tx off rx off 2>/dev/null || true\n"
            );
        }
    }
    s
}

fn reset(ovs: &Ovs, config: &Config) {
    ovs::apply(&ovs.addr(), &ovs.config(json!([])), &ovs.options()).unwrap();
    assert!(ovs.bridges().is_empty());
    for b in &config.bridges {
        if let Some(up) = &b.uplink {
            let _ = Command::new("ethtool")
                .args(["-K", up, "tx", "on", "sg", "on", "tso", "on", "gso", "on", "gro", "on"])
                .output();
        }
    }
}

struct Row {
    case: String,
    ours: Duration,
    script: Option<Duration>,
}

fn converge(ovs: &Ovs, name: &str, config: &Config, runs: usize) -> Row {
    let mut ours = Vec::new();
    let mut script = Vec::new();
    let text = script_for(ovs, config);
    for _ in 0..runs {
        reset(ovs, config);
        let t = Instant::now();
        let r = ovs::apply(&ovs.addr(), config, &ovs.options()).unwrap();
        ours.push(t.elapsed());
        assert_eq!(r.transactions, 1);

        reset(ovs, config);
        let t = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(&text).env("OVS_RUNDIR", ovs.dir.path());
        ok(&mut cmd);
        script.push(t.elapsed());
        // The script's result is what apply would have built: nothing left to change.
        let again = ovs::apply(&ovs.addr(), config, &ovs.options()).unwrap();
        assert_eq!(again.transactions, 0, "script result differs: {:?}", again.changes);
    }
    Row { case: name.to_string(), ours: median(ours), script: Some(median(script)) }
}

fn noop(ovs: &Ovs, name: &str, config: &Config, runs: usize) -> Row {
    ovs::apply(&ovs.addr(), config, &ovs.options()).unwrap();
    let mut ours = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let r = ovs::apply(&ovs.addr(), config, &ovs.options()).unwrap();
        ours.push(t.elapsed());
        assert!(r.transactions == 0 && r.flows_replaced.is_empty());
    }
    Row { case: name.to_string(), ours: median(ours), script: None }
}

fn main() {
    ovs_support::require_root();
    let mut ovs = Ovs::start("bench");
    ovs.veth("gbbu", "gbbu-p");
    ovs.veth("gbbv", "gbbv-p");
    let _ = &mut ovs;
    let two = two_bridges(&ovs);
    let big = many_bridges(&ovs, 50, 8);
    let mut rows = vec![converge(&ovs, "converge 2 bridges from empty", &two, 10)];
    rows.push(noop(&ovs, "no-op re-apply, 2 bridges", &two, 50));
    // extra_flows are compared by `ovs-ofctl diff-flows` (parsed), one process per such bridge.
    let mut extra = two.clone();
    extra.bridges[0].extra_flows = vec!["dl_type=0x0800, in_port=gbbv, actions=normal".into()];
    rows.push(noop(&ovs, "no-op re-apply, 2 bridges, one with extra_flows", &extra, 50));
    reset(&ovs, &two);
    rows.push(converge(&ovs, "converge 50 bridges x 8 ports from empty", &big, 3));
    rows.push(noop(&ovs, "no-op re-apply, 50 bridges x 8 ports", &big, 10));
    reset(&ovs, &big);

    println!("| case | ghostbridge-ovs (median) | one ovs-vsctl per object (median) | speed-up |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        match r.script {
            Some(s) => {
                println!("| {} | {} | {} | {:.1}x |", r.case, ms(r.ours), ms(s), s.as_secs_f64() / r.ours.as_secs_f64())
            }
            None => println!("| {} | {} | - | - |", r.case, ms(r.ours)),
        }
    }
}
