//! The reconciler against a real ovsdb-server + ovs-vswitchd (userspace datapath):
//! converge, idempotence checked on the database side, changes, ownership, errors.

mod ovs_support;

use ghostbridge::ovs::{self, OvsError};
use ovs_support::{Ovs, require_root};
use serde_json::json;

#[test]
#[ignore = "needs root: OVS converge and idempotent re-apply"]
fn converges_from_empty_and_reapply_writes_nothing() {
    require_root();
    let ovs = Ovs::start("conv");
    ovs.veth("gbup0", "gbup0-p");
    ovs.veth("gbvm0", "gbvm0-p");
    let config = ovs.config(json!([
        {"name": "gbbr0", "datapath_type": "netdev", "uplink": "gbup0", "ports": ["gbvm0"],
         "internal_ports": ["gbbr0-mgmt"], "drop_uplink_broadcast": true, "extra_flows": ["priority=10,arp,actions=NORMAL"]},
        {"name": "gbbr1", "datapath_type": "netdev", "uplink": null, "ports": [], "internal_ports": [],
         "drop_uplink_broadcast": false, "extra_flows": []}
    ]));
    let first = ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();
    assert_eq!(first.transactions, 1, "everything in one transaction: {:?}", first.changes);
    assert_eq!(first.changes.len(), 2);
    // New bridges start in fail_mode=secure with no flows: both get theirs installed.
    assert_eq!(first.flows_replaced, vec!["gbbr0", "gbbr1"]);
    assert_eq!(ovs.vsctl(&["get-fail-mode", "gbbr1"]).trim(), "secure");

    let mut brs = ovs.bridges();
    brs.sort();
    assert_eq!(brs, vec!["gbbr0", "gbbr1"]);
    assert_eq!(ovs.ports("gbbr0"), vec!["gbbr0-mgmt", "gbup0", "gbvm0"]);
    assert_eq!(ovs.vsctl(&["get", "Interface", "gbbr0-mgmt", "type"]).trim(), "internal");
    assert_eq!(ovs.vsctl(&["get", "Bridge", "gbbr0", "datapath_type"]).trim(), "netdev");
    assert_eq!(ovs.vsctl(&["br-get-external-id", "gbbr0", "ghostbridge-managed"]).trim(), "true");
    let flows = ovs.ofctl_out(&["dump-flows", "--names", "--no-stats", "gbbr0"]);
    assert!(flows.contains("priority=1001,in_port=gbup0,dl_dst=ff:ff:ff:ff:ff:ff actions=drop"), "{flows}");
    assert!(flows.contains("in_port=gbup0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=drop"), "{flows}");
    assert!(flows.contains("priority=10,arp actions=NORMAL"), "{flows}");
    // Offloads on the uplink are off, as ethtool sees them.
    let k = ovs_support::ok(std::process::Command::new("ethtool").args(["-k", "gbup0"]));
    for feature in [
        "tcp-segmentation-offload: off",
        "generic-segmentation-offload: off",
        "generic-receive-offload: off",
        "rx-vlan-offload: off",
        "tx-vlan-offload: off",
    ] {
        assert!(k.contains(feature), "{feature} in\n{k}");
    }
    assert!(first.offload[0].turned_off.iter().any(|f| f == "tx-tcp-segmentation"), "{:?}", first.offload);

    // Re-apply: nothing is written, as the database itself records.
    let commits = ovs.reconciler_commits();
    assert_eq!(commits, 1);
    let next_cfg = ovs.next_cfg();
    let versions = (ovs.row_versions("Bridge"), ovs.row_versions("Port"));
    assert_eq!(versions.1.len(), 5);
    let again = ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();
    assert_eq!(again.transactions, 0);
    assert!(again.flows_via_control_socket, "flows read in one round trip through ovs-vswitchd's control socket");
    assert!(again.changes.is_empty() && again.flows_replaced.is_empty(), "{again:?}");
    assert!(again.offload[0].turned_off.is_empty());
    assert_eq!(ovs.reconciler_commits(), commits, "the database file records no new transaction");
    assert_eq!(ovs.next_cfg(), next_cfg);
    assert_eq!((ovs.row_versions("Bridge"), ovs.row_versions("Port")), versions, "no Bridge or Port row was rewritten");

    let status = ovs::status::status(&ovs.addr(), &config, &ovs.options()).unwrap();
    assert!(status.drift.is_empty(), "{}", status.text);

    // A flow changed in place (same match and priority, other actions) is noticed and put back.
    ovs.ofctl_out(&["mod-flows", "gbbr0", "priority=1001,in_port=gbup0,dl_dst=ff:ff:ff:ff:ff:ff,actions=NORMAL"]);
    let r = ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();
    assert_eq!(r.flows_replaced, vec!["gbbr0"]);
    let flows = ovs.ofctl_out(&["dump-flows", "--names", "--no-stats", "gbbr0"]);
    assert!(flows.contains("priority=1001,in_port=gbup0,dl_dst=ff:ff:ff:ff:ff:ff actions=drop"), "{flows}");
}

#[test]
#[ignore = "needs root: OVS changes and ownership"]
fn changes_ports_removes_bridges_and_leaves_hand_made_ones_alone() {
    require_root();
    let ovs = Ovs::start("chg");
    ovs.veth("gbca", "gbca-p");
    ovs.veth("gbcb", "gbcb-p");
    // A bridge made by hand, with a port of its own.
    ovs.vsctl(&[
        "add-br",
        "gbhand",
        "--",
        "set",
        "bridge",
        "gbhand",
        "datapath_type=netdev",
        "--",
        "add-port",
        "gbhand",
        "gbhand-i",
        "--",
        "set",
        "interface",
        "gbhand-i",
        "type=internal",
    ]);
    let hand_before = ovs.vsctl(&["--columns=_uuid,name,ports,external_ids", "list", "Bridge", "gbhand"]);

    let v1 = ovs.config(json!([
        {"name": "gbc0", "datapath_type": "netdev", "ports": ["gbca"], "internal_ports": ["gbc0-x"]},
        {"name": "gbc1", "datapath_type": "netdev"}
    ]));
    ovs::apply(&ovs.addr(), &v1, &ovs.options()).unwrap();
    assert_eq!(ovs.ports("gbc0"), vec!["gbc0-x", "gbca"]);

    // Someone adds a port by hand to a managed bridge: it is left alone.
    ovs.vsctl(&["add-port", "gbc0", "gbc0-own", "--", "set", "interface", "gbc0-own", "type=internal"]);

    // Change: swap the system port, make the internal port a system one... and drop gbc1.
    let v2 = ovs.config(json!([
        {"name": "gbc0", "datapath_type": "netdev", "ports": ["gbcb"], "internal_ports": []}
    ]));
    let r = ovs::apply(&ovs.addr(), &v2, &ovs.options()).unwrap();
    assert_eq!(r.transactions, 1);
    let text: Vec<String> = r.changes.iter().map(|c| c.to_string()).collect();
    assert!(text.iter().any(|c| c.contains("- bridge gbc1")), "{text:?}");
    assert!(text.iter().any(|c| c.contains("+ port gbcb")), "{text:?}");
    assert!(text.iter().any(|c| c.contains("- port gbca")), "{text:?}");
    assert!(text.iter().any(|c| c.contains("- port gbc0-x")), "{text:?}");
    assert_eq!(ovs.ports("gbc0"), vec!["gbc0-own", "gbcb"]);
    let mut brs = ovs.bridges();
    brs.sort();
    assert_eq!(brs, vec!["gbc0", "gbhand"]);
    assert_eq!(ovs.vsctl(&["--columns=_uuid,name,ports,external_ids", "list", "Bridge", "gbhand"]), hand_before);

    // Datapath change is an update of the same bridge.
    let v3 = ovs.config(json!([{"name": "gbc0", "datapath_type": "system", "ports": ["gbcb"]}]));
    let r = ovs::status::status(&ovs.addr(), &v3, &ovs.options()).unwrap();
    assert!(r.drift.iter().any(|d| d.contains("datapath_type netdev -> system")), "{:?}", r.drift);

    // Naming the hand-made bridge in the config is refused, and nothing is written.
    let commits = ovs.reconciler_commits();
    let v4 = ovs.config(json!([
        {"name": "gbc0", "datapath_type": "netdev", "ports": ["gbcb"]},
        {"name": "gbhand", "datapath_type": "netdev"}
    ]));
    let e = ovs::apply(&ovs.addr(), &v4, &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::Unowned(ref b) if b == "gbhand"), "{e}");
    assert!(e.to_string().contains("br-set-external-id gbhand ghostbridge-managed true"), "{e}");
    // A port held by the hand-made bridge cannot be taken either.
    let v5 = ovs.config(
        json!([{"name": "gbc0", "datapath_type": "netdev", "ports": ["gbcb"], "internal_ports": ["gbhand-i"]}]),
    );
    let e = ovs::apply(&ovs.addr(), &v5, &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::PortElsewhere { .. }), "{e}");
    assert_eq!(ovs.reconciler_commits(), commits);
    assert_eq!(ovs.vsctl(&["--columns=_uuid,name,ports,external_ids", "list", "Bridge", "gbhand"]), hand_before);
}

#[test]
#[ignore = "needs root: OVS port move"]
fn moves_a_port_between_managed_bridges_in_one_transaction() {
    require_root();
    let ovs = Ovs::start("mv");
    let v1 = ovs.config(json!([
        {"name": "gbm0", "datapath_type": "netdev", "internal_ports": ["gbm-p"]},
        {"name": "gbm1", "datapath_type": "netdev"}
    ]));
    ovs::apply(&ovs.addr(), &v1, &ovs.options()).unwrap();
    let v2 = ovs.config(json!([
        {"name": "gbm0", "datapath_type": "netdev"},
        {"name": "gbm1", "datapath_type": "netdev", "internal_ports": ["gbm-p"]}
    ]));
    let r = ovs::apply(&ovs.addr(), &v2, &ovs.options()).unwrap();
    assert_eq!(r.transactions, 1);
    assert_eq!(ovs.ports("gbm0"), Vec::<String>::new());
    assert_eq!(ovs.ports("gbm1"), vec!["gbm-p"]);
    assert_eq!(ovs::apply(&ovs.addr(), &v2, &ovs.options()).unwrap().transactions, 0);
}

#[test]
#[ignore = "needs root: OVS missing NIC"]
fn missing_nic_is_an_error_before_anything_is_written() {
    require_root();
    let ovs = Ovs::start("nic");
    ovs.veth("gbnic0", "gbnic0-p");
    let config = ovs.config(json!([
        {"name": "gbn0", "datapath_type": "netdev", "uplink": "gbnic0", "ports": ["gbnic-gone"]},
        {"name": "gbn1", "datapath_type": "netdev"}
    ]));
    let before = ovs.vsctl(&["show"]);
    let e = ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::MissingNic { ref port, .. } if port == "gbnic-gone"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(ovs.reconciler_commits(), 0);
    assert!(ovs.bridges().is_empty());
    assert_eq!(ovs.vsctl(&["show"]), before);
    // The uplink's offloads were not touched either.
    let k = ovs_support::ok(std::process::Command::new("ethtool").args(["-k", "gbnic0"]));
    assert!(k.contains("tcp-segmentation-offload: on"), "{k}");
}

#[test]
#[ignore = "needs root: OVS connection errors"]
fn missing_socket_and_wrong_schema_are_clear_errors() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("db.sock");
    let config = ghostbridge::ovs::Config::parse(r#"{"bridges":[]}"#, "t").unwrap();
    let addr = ovs::DbAddr::parse(&format!("unix:{}", sock.display())).unwrap();
    let e = ovs::apply(&addr, &config, &ovs::Options::default()).unwrap_err();
    assert!(matches!(e, OvsError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("Is ovsdb-server running"), "{e}");

    // A server with another database (OVS's own Local_Config schema) is a schema mismatch.
    let db = dir.path().join("local.db");
    ovs_support::ok(
        std::process::Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/local-config.ovsschema"),
    );
    let server = ovs_support::KillOnDrop(
        std::process::Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
            .arg("--log-file=/dev/null")
            .spawn()
            .unwrap(),
    );
    ovs_support::wait_for(|| sock.exists(), "ovsdb-server socket");
    let e = ovs::apply(&addr, &config, &ovs::Options::default()).unwrap_err();
    drop(server);
    assert!(matches!(e, OvsError::SchemaMismatch { .. }), "{e}");
    assert!(e.to_string().contains("Open_vSwitch schema"), "{e}");
}

#[test]
#[ignore = "needs root: OVS hung database"]
fn a_hung_database_is_a_timeout_error_not_a_hang() {
    require_root();
    let ovs = Ovs::start("hng");
    let config = ovs.config(json!([{"name": "gbh0", "datapath_type": "netdev"}]));
    ovs.pause_ovsdb(true);
    let opts = ovs::Options { io_timeout: std::time::Duration::from_millis(500), ..ovs.options() };
    let e = ovs::apply(&ovs.addr(), &config, &opts).unwrap_err();
    ovs.pause_ovsdb(false);
    assert!(matches!(e, OvsError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("not hung"), "{e}");
    // Once it answers again, the same run works.
    ovs::apply(&ovs.addr(), &config, &opts).unwrap();
    assert_eq!(ovs.bridges(), vec!["gbh0"]);
}

#[test]
#[ignore = "needs root: OVS transaction conflict"]
fn a_concurrent_writer_makes_the_transaction_fail_without_writing() {
    require_root();
    let ovs = Ovs::start("cfl");
    let config = ovs.config(json!([{"name": "gbk0", "datapath_type": "netdev", "internal_ports": ["gbk0-a"]}]));
    let mut conn = ovs::apply::connect(&ovs.addr()).unwrap();
    let snap = ovs::state::read(&mut conn).unwrap();
    let plan = ovs::plan::plan(&config, &snap).unwrap();
    assert!(!plan.is_empty());

    // Another client creates the same bridge (by hand) between our read and our write.
    ovs.vsctl(&["add-br", "gbk0", "--", "set", "bridge", "gbk0", "datapath_type=netdev"]);
    let e = ovs::apply::commit(&mut conn, &snap, &plan).unwrap_err();
    assert!(matches!(e, OvsError::Conflict { .. }), "{e}");
    assert_eq!(ovs.reconciler_commits(), 0, "nothing was written");
    assert_eq!(ovs.ports("gbk0"), Vec::<String>::new());
    assert_eq!(ovs.vsctl_out(&["br-get-external-id", "gbk0"]).trim(), "");

    // A fresh apply re-reads, sees the hand-made bridge and refuses to take it over.
    let e = ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::Unowned(_)), "{e}");

    // A writer touching an unrelated column of a row we read also trips the guard.
    ovs.vsctl(&["del-br", "gbk0"]);
    ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();
    let changed = ovs.config(json!([{"name": "gbk0", "datapath_type": "netdev", "internal_ports": []}]));
    let snap = ovs::state::read(&mut conn).unwrap();
    let plan = ovs::plan::plan(&changed, &snap).unwrap();
    ovs.vsctl(&["br-set-external-id", "gbk0", "owner", "someone"]);
    let e = ovs::apply::commit(&mut conn, &snap, &plan).unwrap_err();
    assert!(matches!(e, OvsError::Conflict { .. }), "{e}");
    assert_eq!(ovs.ports("gbk0"), vec!["gbk0-a"]);
    // apply retries on its own: re-read, re-plan, commit.
    let r = ovs::apply(&ovs.addr(), &changed, &ovs.options()).unwrap();
    assert_eq!(r.transactions, 1);
    assert_eq!(ovs.ports("gbk0"), Vec::<String>::new());
    assert_eq!(ovs.vsctl(&["br-get-external-id", "gbk0", "owner"]).trim(), "someone");
}

#[test]
#[ignore = "needs root: OVS uninitialised database"]
fn an_uninitialised_database_gets_its_root_row() {
    require_root();
    let ovs = Ovs::start_with("noinit", false);
    assert_eq!(ovs.row_versions("Open_vSwitch").len(), 0);
    let config = ovs.config(json!([{"name": "gbi0", "datapath_type": "netdev", "internal_ports": ["gbi0-a"]}]));
    let r = ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();
    assert_eq!(r.transactions, 1);
    assert_eq!(ovs.row_versions("Open_vSwitch").len(), 1);
    assert_eq!(ovs.ports("gbi0"), vec!["gbi0-a"]);
    // ovs-vswitchd picked it up: the bridge answers OpenFlow.
    assert!(ovs.ofctl_out(&["dump-flows", "gbi0"]).contains("actions=NORMAL"));
    assert_eq!(ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap().transactions, 0);
}

#[test]
#[ignore = "needs root: OVS over TCP"]
fn works_over_tcp_too() {
    require_root();
    let ovs = Ovs::start("tcp");
    let config = ovs.config(json!([{"name": "gbt0", "datapath_type": "netdev", "internal_ports": ["gbt0-a"]}]));
    let addr = ovs::DbAddr::parse("tcp:127.0.0.1:6640").unwrap();
    ovs_support::wait_for(|| std::net::TcpStream::connect("127.0.0.1:6640").is_ok(), "ovsdb-server TCP remote");
    assert_eq!(ovs::apply(&addr, &config, &ovs.options()).unwrap().transactions, 1);
    assert_eq!(ovs.ports("gbt0"), vec!["gbt0-a"]);
    assert_eq!(ovs::apply(&addr, &config, &ovs.options()).unwrap().transactions, 0);
}

#[test]
#[ignore = "needs root: OVS bad extra flow"]
fn a_bad_extra_flow_keeps_the_old_flows() {
    require_root();
    let ovs = Ovs::start("flw");
    let good = ovs.config(json!([{"name": "gbf0", "datapath_type": "netdev",
        "extra_flows": ["priority=10,arp,actions=NORMAL"]}]));
    ovs::apply(&ovs.addr(), &good, &ovs.options()).unwrap();
    let before = ovs.ofctl_out(&["dump-flows", "--no-stats", "gbf0"]);
    let bad = ovs.config(json!([{"name": "gbf0", "datapath_type": "netdev",
        "extra_flows": ["priority=10,arp,actions=NORMAL", "priority=20,no_such_field=1,actions=drop"]}]));
    let e = ovs::apply(&ovs.addr(), &bad, &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::Flows { .. }), "{e}");
    assert!(e.to_string().contains("no_such_field") && e.to_string().contains("extra_flows"), "{e}");
    assert_eq!(ovs.ofctl_out(&["dump-flows", "--no-stats", "gbf0"]), before);
}

#[test]
#[ignore = "needs root: OVS bad extra flow on a new bridge"]
fn a_bad_extra_flow_on_a_new_bridge_writes_nothing() {
    require_root();
    let ovs = Ovs::start("nbf");
    ovs.veth("gbnbu", "gbnbu-p");
    let good_flow = "priority=10,in_port=gbnbu,dl_type=0x0806,actions=output:gbnb0-i";
    let bad_flow = "priority=20,in_port=gbnbu,no_such_field=1,actions=drop";
    let bridge = |flows: &[&str]| {
        ovs.config(json!([{"name": "gbnb0", "datapath_type": "netdev", "uplink": "gbnbu",
            "internal_ports": ["gbnb0-i"], "drop_uplink_broadcast": true, "extra_flows": flows}]))
    };
    let e = ovs::apply(&ovs.addr(), &bridge(&[good_flow, bad_flow]), &ovs.options()).unwrap_err();
    assert!(
        matches!(e, OvsError::BadFlow { ref flow, ref bridge, .. } if flow == bad_flow && bridge == "gbnb0"),
        "{e}"
    );
    assert!(e.to_string().contains("no_such_field"), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    // Nothing in the database: no bridge, no uplink attached, no commit.
    assert_eq!(ovs.reconciler_commits(), 0);
    assert!(ovs.bridges().is_empty());
    // The uplink's offloads were not touched either.
    let k = ovs_support::ok(std::process::Command::new("ethtool").args(["-k", "gbnbu"]));
    assert!(k.contains("tcp-segmentation-offload: on"), "{k}");

    // The valid flows (port names resolved by the switch) go in, on a bridge that
    // forwards nothing until they are there.
    let r = ovs::apply(&ovs.addr(), &bridge(&[good_flow]), &ovs.options()).unwrap();
    assert_eq!(r.flows_replaced, vec!["gbnb0"]);
    assert_eq!(ovs.vsctl(&["get-fail-mode", "gbnb0"]).trim(), "secure");
    let dump = ovs.ofctl_out(&["dump-flows", "--names", "--no-stats", "gbnb0"]);
    assert!(
        dump.contains("priority=10,arp,in_port=gbnbu actions=output:\"gbnb0-i\"")
            || dump.contains("priority=10,arp,in_port=gbnbu actions=output:gbnb0-i"),
        "{dump}"
    );
}

#[test]
#[ignore = "needs root: OVS flows the switch refuses"]
fn a_flow_the_switch_refuses_leaves_no_bridge_without_flows() {
    require_root();
    let ovs = Ovs::start("rfs");
    // Parses (ovs-ofctl parse-flows accepts it), but the switch refuses it: group 7 does not exist.
    let refused = "priority=30,ip,actions=group:7";
    let bridge = |name: &str, flows: &[&str]| json!({"name": name, "datapath_type": "netdev", "extra_flows": flows});
    let e = ovs::apply(&ovs.addr(), &ovs.config(json!([bridge("gbrf0", &[refused])])), &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::RolledBack { ref bridges, .. } if bridges == "gbrf0"), "{e}");
    assert!(e.to_string().contains("removed again"), "{e}");
    assert!(ovs.bridges().is_empty(), "a new bridge was left without its flows");

    // An existing bridge keeps its flows and stays.
    ovs::apply(&ovs.addr(), &ovs.config(json!([bridge("gbrf1", &[])])), &ovs.options()).unwrap();
    let before = ovs.ofctl_out(&["dump-flows", "--no-stats", "gbrf1"]);
    let e = ovs::apply(&ovs.addr(), &ovs.config(json!([bridge("gbrf1", &[refused])])), &ovs.options()).unwrap_err();
    assert!(matches!(e, OvsError::Flows { .. }), "{e}");
    assert_eq!(ovs.bridges(), vec!["gbrf1"]);
    assert_eq!(ovs.ofctl_out(&["dump-flows", "--no-stats", "gbrf1"]), before);
}

#[test]
#[ignore = "needs root: OVS port adoption"]
fn a_hand_made_port_named_in_the_config_is_adopted_not_recreated() {
    require_root();
    let ovs = Ovs::start("adopt");
    let v1 = ovs.config(json!([{"name": "gba0", "datapath_type": "netdev"}]));
    ovs::apply(&ovs.addr(), &v1, &ovs.options()).unwrap();
    ovs.vsctl(&["add-port", "gba0", "gba0-h", "--", "set", "interface", "gba0-h", "type=internal"]);
    let uuid = ovs.vsctl(&["get", "Port", "gba0-h", "_uuid"]);
    let v2 = ovs.config(json!([{"name": "gba0", "datapath_type": "netdev", "internal_ports": ["gba0-h"]}]));
    let r = ovs::apply(&ovs.addr(), &v2, &ovs.options()).unwrap();
    let text: Vec<String> = r.changes.iter().map(|c| c.to_string()).collect();
    assert_eq!(text, vec!["~ port gba0-h on bridge gba0: mark as managed"]);
    assert_eq!(ovs.vsctl(&["get", "Port", "gba0-h", "_uuid"]), uuid, "same row, not recreated");
    assert_eq!(ovs.vsctl(&["get", "Port", "gba0-h", "external_ids:ghostbridge-managed"]).trim(), "\"true\"");
    // Now that it is managed, dropping it from the config removes it.
    let r = ovs::apply(&ovs.addr(), &v1, &ovs.options()).unwrap();
    assert_eq!(r.changes.len(), 1);
    assert!(ovs.ports("gba0").is_empty());
}
