//! Packets through a reconciled netdev bridge: two network namespaces joined by
//! veth pairs; broadcast and multicast sent into the uplink are dropped (the
//! drop rules count them, the far side captures nothing), unicast passes.

mod ovs_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ghostbridge::ovs;
use ovs_support::{Ovs, ok, require_root};
use serde_json::json;

fn in_ns(ns: &str, args: &[&str]) -> String {
    ok(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

/// ICMP to the subnet broadcast and to 224.0.0.1 sent from `outside`; returns
/// how many of them a capture on `host_if` in `host` saw.
fn broadcasts_seen(outside: &str, host: &str, host_if: &str) -> usize {
    let mut tcpdump = Command::new("ip")
        .args(["netns", "exec", host, "timeout", "4", "tcpdump", "-i", host_if, "-n", "-l", "-p"])
        .arg("icmp and (dst host 10.77.0.255 or dst net 224.0.0.0/4)")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = tcpdump.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains("listening on") {
            break;
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "exec", outside, "ping", "-b", "-c", "3", "-i", "0.2", "-W", "1", "10.77.0.255"])
        .output();
    let _ = Command::new("ip")
        .args(["netns", "exec", outside, "ping", "-c", "3", "-i", "0.2", "-W", "1", "224.0.0.1"])
        .output();
    let out = tcpdump.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("ICMP echo request")).count()
}

fn n_packets(ovs: &Ovs, bridge: &str, priority: u16) -> u64 {
    let dump = ovs.ofctl_out(&["dump-flows", bridge]);
    let line = dump
        .lines()
        .find(|l| l.contains(&format!("priority={priority},")) || l.contains(&format!("priority={priority} ")))
        .unwrap_or_else(|| panic!("no priority {priority} flow in {dump}"));
    let n = line.split("n_packets=").nth(1).unwrap().split(',').next().unwrap();
    n.parse().unwrap()
}

#[test]
#[ignore = "needs root: OVS packet forwarding through network namespaces"]
fn broadcast_from_the_uplink_is_dropped_and_unicast_passes() {
    require_root();
    let mut ovs = Ovs::start("pkt");
    let outside = ovs.add_netns("out");
    let host = ovs.add_netns("host");
    ovs.veth("gbpu", "gbpu-o");
    ovs.veth("gbpp", "gbpp-h");
    ok(Command::new("ip").args(["link", "set", "gbpu-o", "netns", &outside]));
    ok(Command::new("ip").args(["link", "set", "gbpp-h", "netns", &host]));
    for (ns, dev, addr) in [(&outside, "gbpu-o", "10.77.0.1/24"), (&host, "gbpp-h", "10.77.0.2/24")] {
        in_ns(ns, &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
        in_ns(ns, &["ip", "addr", "add", addr, "dev", dev]);
        in_ns(ns, &["ip", "link", "set", dev, "up"]);
        in_ns(ns, &["ip", "link", "set", "lo", "up"]);
    }
    in_ns(&outside, &["ip", "route", "add", "224.0.0.0/4", "dev", "gbpu-o"]);
    // ARP requests are broadcasts too, and they come in through the uplink: use static neighbours.
    let mac = |ns: &str, dev: &str| in_ns(ns, &["cat", &format!("/sys/class/net/{dev}/address")]).trim().to_string();
    let (mac_out, mac_host) = (mac(&outside, "gbpu-o"), mac(&host, "gbpp-h"));
    in_ns(&outside, &["ip", "neigh", "replace", "10.77.0.2", "lladdr", &mac_host, "dev", "gbpu-o", "nud", "permanent"]);
    in_ns(&host, &["ip", "neigh", "replace", "10.77.0.1", "lladdr", &mac_out, "dev", "gbpp-h", "nud", "permanent"]);

    let bridge = |drop: bool| {
        json!([{"name": "gbpk", "datapath_type": "netdev", "uplink": "gbpu", "ports": ["gbpp"],
                "internal_ports": [], "drop_uplink_broadcast": drop, "mac_guard": false, "extra_flows": []}])
    };
    let config = ovs.config(bridge(true));
    ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();

    // Unicast passes, both ways.
    in_ns(&outside, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"]);
    in_ns(&host, &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.1"]);

    // Broadcast and multicast from the uplink side do not arrive; the drop rules counted them.
    let (b0, m0) = (n_packets(&ovs, "gbpk", 1001), n_packets(&ovs, "gbpk", 1000));
    assert_eq!(broadcasts_seen(&outside, &host, "gbpp-h"), 0);
    assert!(n_packets(&ovs, "gbpk", 1001) >= b0 + 3, "broadcast drop rule did not count the pings");
    assert!(n_packets(&ovs, "gbpk", 1000) >= m0 + 3, "multicast drop rule did not count the pings");

    // Control: without the drop rules the same broadcasts do arrive, so the capture above can see them.
    let open = ovs.config(bridge(false));
    let r = ovs::apply(&ovs.addr(), &open, &ovs.options()).unwrap();
    assert_eq!(r.flows_replaced, vec!["gbpk"]);
    assert!(!ovs.ofctl_out(&["dump-flows", "gbpk"]).contains("actions=drop"));
    assert!(broadcasts_seen(&outside, &host, "gbpp-h") >= 6);

    // And back: the drop rules return.
    ovs::apply(&ovs.addr(), &config, &ovs.options()).unwrap();
    assert_eq!(broadcasts_seen(&outside, &host, "gbpp-h"), 0);
}

/// Whether `ns` gets answers to pings to `addr`.
fn pings(ns: Option<&str>, addr: &str) -> bool {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ping"]);
            c
        }
        None => Command::new("ping"),
    };
    cmd.args(["-c", "2", "-i", "0.2", "-W", "1", addr]).output().unwrap().status.success()
}

#[test]
#[ignore = "needs root: OVS packet forwarding through network namespaces"]
fn only_the_uplinks_mac_and_allowed_ones_leave_through_the_uplink() {
    require_root();
    let mut ovs = Ovs::start("mac");
    let outside = ovs.add_netns("out");
    let vm = ovs.add_netns("vm");
    ovs.veth("gbmu", "gbmu-o");
    ovs.veth("gbmp", "gbmp-v");
    ok(Command::new("ip").args(["link", "set", "gbmu-o", "netns", &outside]));
    ok(Command::new("ip").args(["link", "set", "gbmp-v", "netns", &vm]));
    for (ns, dev, addr) in [(&outside, "gbmu-o", "10.78.0.1/24"), (&vm, "gbmp-v", "10.78.0.2/24")] {
        in_ns(ns, &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
        in_ns(ns, &["ip", "addr", "add", addr, "dev", dev]);
        in_ns(ns, &["ip", "link", "set", dev, "up"]);
    }
    let mac = |ns: &str, dev: &str| in_ns(ns, &["cat", &format!("/sys/class/net/{dev}/address")]).trim().to_string();
    let uplink_mac = ghostbridge::ovs::mac::of_interface("gbmu").unwrap();
    let mac_out = mac(&outside, "gbmu-o");
    // Static neighbours: the test is about which source MACs leave, not about ARP.
    let neigh = |ns: &str, ip: &str, lladdr: &str, dev: &str| {
        in_ns(ns, &["ip", "neigh", "replace", ip, "lladdr", lladdr, "dev", dev, "nud", "permanent"]);
    };
    neigh(&outside, "10.78.0.2", &mac(&vm, "gbmp-v"), "gbmu-o");
    neigh(&outside, "10.78.0.3", &uplink_mac, "gbmu-o");
    neigh(&vm, "10.78.0.1", &mac_out, "gbmp-v");

    let allowed = "00:50:56:00:12:34";
    let bridge = |allowed_macs: &[&str]| {
        json!([{"name": "gbmk", "datapath_type": "netdev", "uplink": "gbmu", "ports": ["gbmp"],
                "drop_uplink_broadcast": false, "allowed_macs": allowed_macs}])
    };
    let report = ovs::apply(&ovs.addr(), &ovs.config(bridge(&[])), &ovs.options()).unwrap();
    assert_eq!(report.transactions, 1);

    // The bridge took its uplink's MAC: upstream sees one MAC for the host.
    let hwaddr = ovs.vsctl_out(&["get", "Bridge", "gbmk", "other_config:hwaddr"]);
    assert_eq!(hwaddr.trim().trim_matches('"'), uplink_mac);
    ovs_support::wait_for(
        || ghostbridge::ovs::mac::of_interface("gbmk").as_deref() == Some(uplink_mac.as_str()),
        "the bridge interface to take the uplink's MAC",
    );

    // The host's own traffic leaves (source: the uplink's MAC).
    ok(Command::new("ip").args(["addr", "add", "10.78.0.3/24", "dev", "gbmk"]));
    ok(Command::new("ip").args(["link", "set", "gbmk", "up"]));
    ok(Command::new("ip").args([
        "neigh",
        "replace",
        "10.78.0.1",
        "lladdr",
        &mac_out,
        "dev",
        "gbmk",
        "nud",
        "permanent",
    ]));
    assert!(pings(None, "10.78.0.1"), "the host's own traffic must leave through the uplink");

    // A VM frame with a foreign source MAC never leaves; the catch-all hands it to the host.
    let local = || n_packets(&ovs, "gbmk", 0);
    let before = local();
    assert!(!pings(Some(&vm), "10.78.0.1"), "a foreign MAC left through the uplink");
    assert!(local() >= before + 2, "the guard's catch-all did not see the VM's frames");

    // The same VM with an allowed MAC gets through once the spec allows it.
    in_ns(&vm, &["ip", "link", "set", "gbmp-v", "address", allowed]);
    neigh(&outside, "10.78.0.2", allowed, "gbmu-o");
    assert!(!pings(Some(&vm), "10.78.0.1"), "not allowed yet");
    let r = ovs::apply(&ovs.addr(), &ovs.config(bridge(&[allowed])), &ovs.options()).unwrap();
    assert_eq!(r.flows_replaced, vec!["gbmk"]);
    assert!(pings(Some(&vm), "10.78.0.1"), "an allowed MAC must leave through the uplink");
}
