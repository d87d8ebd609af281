//! The `ghostbridge-ovs` command line: apply, status (exit 1 on drift, readable
//! output) and error messages, against a private Open vSwitch.

mod ovs_support;

use std::process::{Command, Output};

use ovs_support::{Ovs, require_root};
use serde_json::json;

fn cli(ovs: &Ovs, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghostbridge-ovs")).args(args).env("OVS_RUNDIR", ovs.dir.path()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
#[ignore = "needs root: ghostbridge-ovs CLI"]
fn apply_status_and_errors_from_the_command_line() {
    require_root();
    let ovs = Ovs::start("cli");
    ovs.veth("gbclu", "gbclu-p");
    let metrics = ovs.dir.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let config = json!({
        "db": format!("unix:{}", ovs.sock().display()),
        "metrics_dir": metrics,
        "bridges": [
            {"name": "gbcl0", "datapath_type": "netdev", "uplink": "gbclu", "ports": [], "internal_ports": ["gbcl0-m"],
             "drop_uplink_broadcast": true, "extra_flows": []},
            {"name": "gbcl1", "datapath_type": "netdev", "uplink": null, "ports": [], "internal_ports": [],
             "drop_uplink_broadcast": false, "extra_flows": []}
        ]
    });
    let path = ovs.dir.path().join("ovs.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let p = path.to_str().unwrap();

    // Before: status shows what apply would do, exit 1.
    let o = cli(&ovs, &["status", "--config", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("bridge gbcl0  MISSING"), "{}", text(&o));
    assert!(text(&o).contains("+ bridge gbcl0 (datapath netdev) with ports gbcl0, gbcl0-m, gbclu"), "{}", text(&o));

    let o = cli(&ovs, &["apply", "--config", p]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("+ bridge gbcl1"), "{}", text(&o));
    let prom = std::fs::read_to_string(metrics.join("ghostbridge_ovs.prom")).unwrap();
    assert!(prom.contains("ghostbridge_ovs_changes_total 2"), "{prom}");
    assert!(prom.contains("ghostbridge_ovs_last_apply_success 1"), "{prom}");

    let o = cli(&ovs, &["apply", "--config", p]);
    assert!(o.status.success() && text(&o).contains("in sync: nothing written"), "{}", text(&o));

    let o = cli(&ovs, &["status", "--config", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("bridge gbcl0  managed  datapath netdev"), "{t}");
    assert!(t.contains("uplink"), "{t}");
    assert!(t.contains("flows: 5 in place"), "{t}");
    assert!(t.contains("offload on gbclu: off"), "{t}");
    assert!(t.contains("in sync with the config"), "{t}");

    // Drift made by someone else: a port deleted, a flow removed, an offload turned back on.
    ovs.vsctl(&["del-port", "gbcl0", "gbcl0-m"]);
    ovs.ofctl_out(&["del-flows", "gbcl0", "dl_dst=ff:ff:ff:ff:ff:ff"]);
    ovs_support::ok(Command::new("ethtool").args(["-K", "gbclu", "tso", "on"]));
    let o = cli(&ovs, &["status", "--config", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("+ port gbcl0-m (internal) on bridge gbcl0"), "{t}");
    assert!(
        t.contains("flow missing on gbcl0: dl_dst=ff:ff:ff:ff:ff:ff,in_port=gbclu,priority=1001 actions=drop"),
        "{t}"
    );
    assert!(t.contains("offloads still on on uplink gbclu: tx-tcp"), "{t}");
    let o = cli(&ovs, &["apply", "--config", p]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(cli(&ovs, &["status", "--config", p]).status.code(), Some(0));

    // Errors say what and what to do: a database that is not there is a
    // runtime failure (1), a config the reconciler refuses is invalid (2).
    let o = cli(&ovs, &["apply", "--config", p, "--ovsdb", "unix:/nonexistent/db.sock"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("Is ovsdb-server running"), "{}", text(&o));
    std::fs::write(&path, r#"{"bridges":[{"name":"gbcl0","uplink":"gbclu","prots":[]}]}"#).unwrap();
    let o = cli(&ovs, &["apply", "--config", p]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown field `prots`"), "{}", text(&o));
}

#[test]
#[ignore = "needs root: ghostbridge-ovs non-canonical extra flows"]
fn extra_flows_written_unlike_the_dump_are_not_rewritten() {
    require_root();
    let ovs = Ovs::start("cnf");
    ovs.veth("gbcnu", "gbcnu-p");
    // Written the way a person might: raw dl_type, lower-case action, fields in any order,
    // spaces after commas; ovs-ofctl prints them as "ip,in_port=... actions=NORMAL,output:...".
    let config = json!({
        "db": format!("unix:{}", ovs.sock().display()),
        "bridges": [
            {"name": "gbcn0", "datapath_type": "netdev", "uplink": "gbcnu", "ports": [],
             "internal_ports": ["gbcn0-a"], "drop_uplink_broadcast": true,
             "extra_flows": [
                 "dl_type=0x0800, in_port=gbcnu, actions=normal,output:gbcn0-a",
                 "priority=5,dl_type=0x0806,nw_dst=10.0.0.1,actions=mod_vlan_vid:7,normal",
                 "table=0,priority=7,dl_type=0x86dd,actions=drop"
             ]}
        ]
    });
    let path = ovs.dir.path().join("ovs.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let p = path.to_str().unwrap();

    let o = cli(&ovs, &["apply", "--config", p]);
    assert!(o.status.success(), "{}", text(&o));
    let dump = ovs.ofctl_out(&["dump-flows", "--names", "--no-stats", "gbcn0"]);
    assert!(dump.contains("ip,in_port=gbcnu actions=NORMAL,output:"), "{dump}");
    assert!(dump.contains("priority=7,ipv6 actions=drop"), "{dump}");

    // The second apply sees the flows as equal: nothing written, no flows replaced.
    let o = cli(&ovs, &["apply", "--config", p]);
    assert!(o.status.success() && text(&o).contains("in sync: nothing written"), "{}", text(&o));
    let r = ghostbridge::ovs::apply(
        &ovs.addr(),
        &ghostbridge::ovs::Config::parse(&config.to_string(), "t").unwrap(),
        &ovs.options(),
    )
    .unwrap();
    assert!(r.flows_replaced.is_empty() && r.transactions == 0, "{r:?}");
    let o = cli(&ovs, &["status", "--config", p]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("flows: 8 in place"), "{}", text(&o));

    // A real difference is still seen.
    ovs.ofctl_out(&["del-flows", "--strict", "gbcn0", "priority=7,ipv6"]);
    let o = cli(&ovs, &["status", "--config", p]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("flows: DIFFER"), "{}", text(&o));
}

#[test]
#[ignore = "needs root: ghostbridge-doctor against a private Open vSwitch"]
fn the_doctor_names_ovs_drift_and_an_offload_turned_back_on() {
    require_root();
    let ovs = Ovs::start("doc");
    ovs.veth("gbdcu", "gbdcu-p");
    let config = json!({
        "db": format!("unix:{}", ovs.sock().display()),
        "bridges": [{"name": "gbdc0", "datapath_type": "netdev", "uplink": "gbdcu", "internal_ports": ["gbdc0-m"]}]
    });
    let path = ovs.dir.path().join("ovs.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let doctor_cfg = ovs.dir.path().join("doctor.json");
    std::fs::write(&doctor_cfg, json!({"ovs": path}).to_string()).unwrap();
    let doctor = || {
        let o = Command::new(env!("CARGO_BIN_EXE_ghostbridge-doctor"))
            .arg("--config")
            .arg(&doctor_cfg)
            .env("OVS_RUNDIR", ovs.dir.path())
            .output()
            .unwrap();
        (o.status.code(), text(&o))
    };
    // Not applied yet: the bridge is missing.
    let (code, t) = doctor();
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("FAIL  open vswitch") && t.contains("drift:"), "{t}");

    assert!(cli(&ovs, &["apply", "--config", path.to_str().unwrap()]).status.success());
    let (code, t) = doctor();
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("1 bridge(s) as configured"), "{t}");

    // An offload turned back on by someone else: named, with the way back.
    ovs_support::ok(Command::new("ethtool").args(["-K", "gbdcu", "tso", "on"]));
    let (code, t) = doctor();
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("offloads still on on uplink gbdcu: tx-tcp"), "{t}");
    assert!(t.contains("`ghostbridge-ovs apply` converges it"), "{t}");

    // A port deleted: named too.
    assert!(cli(&ovs, &["apply", "--config", path.to_str().unwrap()]).status.success());
    ovs.vsctl(&["del-port", "gbdc0", "gbdc0-m"]);
    let (code, t) = doctor();
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("port gbdc0-m (internal) on bridge gbdc0"), "{t}");
}
