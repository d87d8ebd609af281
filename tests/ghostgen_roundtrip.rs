//! Round trip: what the spec says is what Nix evaluates. The generated host file
//! is evaluated with `nix-instantiate --eval --strict --json` and compared with
//! the spec, over arbitrary strings (quotes, backslashes, `${`, `''`, newlines,
//! non-ASCII) and lists.

use std::collections::BTreeMap;
use std::process::Command;

use ghostbridge::generate;
use ghostbridge::spec::model::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Evaluates the generated host with stand-ins for the module arguments.
fn eval_host(spec: &Spec) -> Value {
    let files = generate::plan(spec, "spec.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for f in &files {
        let p = dir.path().join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &f.contents).unwrap();
    }
    let host = dir.path().join("hosts").join(&spec.hosts[0].name).join("default.nix");
    let expr = format!(
        "let h = import {} {{ config = {{}}; lib = {{}}; pkgs = {{ stdenv.hostPlatform.system = \"x86_64-linux\"; }}; \
         inputs = {{}}; }}; in {{ inherit (h) networking time i18n system users nix; services = h.services; }}",
        host.display()
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", &expr])
        .output()
        .expect("nix-instantiate not found: run `bash .ci/deps` (Debian package nix-bin)");
    assert!(out.status.success(), "eval failed:\n{}\n{}", String::from_utf8_lossy(&out.stderr), files[1].contents);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn base_host(name: &str) -> HostSpec {
    let text = format!(
        "[host]\nname = \"{name}\"\nstate_version = \"25.11\"\n[[users]]\nname = \"ops\"\nadmin = true\n\
         ssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q a@b\"]\n"
    );
    ghostbridge::spec::load(&text).unwrap().spec.hosts.remove(0)
}

/// Strings that stress the escaping: quotes, backslashes, `${`, `''`, newlines, tabs, non-ASCII.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z\"\\\\$'{}\n\t é☃🦀-]{0,16}",
        any::<String>().prop_map(|s| s.replace('\0', "")),
        Just("${builtins.abort \"x\"}".to_string()),
        Just("''${x}''".to_string()),
        Just("$${x} \\${y} '''".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn spec_values_survive_generation_and_evaluation(
        tz in nasty(),
        locale in nasty(),
        params in prop::collection::vec(nasty(), 0..4),
        flows in prop::collection::vec(nasty(), 0..3),
        sysctl in prop::collection::btree_map(nasty(), nasty(), 0..3),
        net_name in nasty(),
        keys in prop::collection::vec(nasty(), 1..3),
    ) {
        let mut host = base_host("rt");
        host.time_zone = tz.clone();
        host.locale = locale.clone();
        host.boot.kernel_params = params.clone();
        host.boot.sysctl = sysctl.iter().map(|(k, v)| (k.clone(), SysctlValue::Str(v.clone()))).collect();
        host.network.bridges = vec![Bridge {
            name: "br0".into(), datapath_type: ghostbridge::ovs::config::DatapathType::Netdev, uplink: Some("eth0".into()), ports: vec![], internal_ports: vec![],
            dhcp: false, addresses: vec!["10.0.0.1/24".into()], gateway: None, dns: vec![], drop_uplink_broadcast: true, mac_guard: true, allowed_macs: vec![],
            extra_flows: flows.clone(),
        }];
        host.virtualization.ovs_networks = BTreeMap::from([(net_name.clone(), "br0".to_string())]);
        host.users[0].ssh_keys = keys.clone();
        let spec = Spec { flake: FlakeInputs::default(), hosts: vec![host] };
        let v = eval_host(&spec);

        prop_assert_eq!(&v["time"]["timeZone"], &json!(tz));
        prop_assert_eq!(&v["i18n"]["defaultLocale"], &json!(locale));
        let gb = &v["services"]["ghostbridge"];
        prop_assert_eq!(&gb["boot"]["kernelParams"], &json!(params));
        prop_assert_eq!(&gb["boot"]["sysctl"], &json!(sysctl));
        prop_assert_eq!(&gb["ovs"]["settings"]["bridges"][0]["extra_flows"], &json!(flows));
        prop_assert_eq!(&gb["ovs"]["settings"]["bridges"][0]["datapath_type"], &json!("netdev"));
        prop_assert_eq!(&gb["virtualization"]["libvirt"]["ovsNetworks"], &json!({ net_name: "br0" }));
        prop_assert_eq!(&v["users"]["users"]["ops"]["openssh"]["authorizedKeys"]["keys"], &json!(keys));
    }
}

#[test]
fn reference_host_evaluates_to_what_the_spec_says() {
    let text = std::fs::read_to_string("examples/ghostbridge.toml").unwrap();
    let spec = ghostbridge::spec::load(&text).unwrap().spec;
    let h = &spec.hosts[0];
    let v = eval_host(&spec);
    assert_eq!(v["networking"]["hostName"], json!(h.name));
    assert_eq!(v["system"]["stateVersion"], json!(h.state_version));
    assert_eq!(v["networking"]["firewall"]["allowedTCPPorts"], json!([22]), "noVNC stays on loopback");
    assert_eq!(v["nix"]["settings"]["experimental-features"], json!(["nix-command", "flakes"]));
    let gb = &v["services"]["ghostbridge"];
    // Each daemon's settings are its config, verbatim.
    let s = h.snapshotter.as_ref().unwrap();
    assert_eq!(gb["snapshotter"]["settings"], serde_json::to_value(s).unwrap());
    assert_eq!(gb["snapshotter"]["settings"]["interval"], json!("1s"));
    assert_eq!(gb["snapshotter"]["settings"]["retention"], json!("1m"));
    let q = h.qdrant_sync.as_ref().unwrap();
    assert_eq!(gb["qdrant_sync"]["settings"], serde_json::to_value(q).unwrap());
    assert_eq!(gb["qdrant_sync"]["settings"]["dimension"], json!(384));
    assert_eq!(gb["qdrant_sync"]["settings"]["database"], json!(s.database));
    assert_eq!(gb["qdrant_sync"]["localQdrant"], json!(true));
    assert_eq!(
        v["services"]["qdrant"]["settings"]["service"],
        json!({"host": "127.0.0.1", "http_port": 6333, "grpc_port": 6334})
    );
    assert_eq!(gb["ovs"]["settings"]["bridges"], serde_json::to_value(&h.ovs_config().bridges).unwrap());
    assert_eq!(gb["ovs"]["settings"]["bridges"][0]["uplink"], json!("enp1s0"));
    assert_eq!(gb["boot"]["sysctl"]["vm.swappiness"], json!(10));
    let br0 = &gb["network"]["bridges"]["ovsbr0"];
    assert_eq!(br0["addresses"], json!(["203.0.113.10/24"]));
    assert_eq!(br0["gateway"], json!(["203.0.113.1"]));
    assert_eq!(gb["network"]["bridges"]["ovsbr1"]["gateway"], json!([]));
    assert_eq!(gb["monitoring"]["grafana"]["port"], json!(3000));
}

#[test]
fn op_dbus_packages_come_from_the_users_flakes() {
    let text = "[host]\nname = \"bus\"\nstate_version = \"25.11\"\n[[users]]\nname = \"ops\"\nadmin = true\n\
        ssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q a@b\"]\n\
        [dbus]\nop_dbus = { flake = \"github:example/op-dbus\" }\nstate_file = \"/etc/op-dbus/state.json\"\n\
        mcp = { package = { flake = \"github:example/op-dbus\", package = \"mcp\" }, port = 3001 }\nweb = { port = 8080 }\n\
        [firewall]\nallowed_tcp_ports = [3001, 8080]\n";
    let spec = ghostbridge::spec::load(text).unwrap().spec;
    let files = generate::plan(&spec, "spec.toml").unwrap();
    let flake = &files[0].contents;
    let input = flake
        .lines()
        .find_map(|l| l.trim().strip_suffix(".url = \"github:example/op-dbus\";"))
        .unwrap_or_else(|| panic!("no input for the op-dbus flake:\n{flake}"))
        .to_string();
    assert_eq!(flake.matches("github:example/op-dbus").count(), 1, "one input per flake reference");

    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("default.nix");
    std::fs::write(&host, &files[1].contents).unwrap();
    let expr = format!(
        "let pkg = name: {{ type = \"derivation\"; inherit name; }}; \
         inputs = {{ {input:?} = {{ packages.x86_64-linux = {{ default = pkg \"op-dbus\"; mcp = pkg \"op-dbus-mcp\"; }}; }}; }}; \
         h = import {} {{ config = {{}}; lib = {{}}; pkgs = {{ stdenv.hostPlatform.system = \"x86_64-linux\"; }}; inherit inputs; }}; \
         in h.services.ghostbridge.opDbus",
        host.display()
    );
    let out = Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "--expr", &expr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["package"]["name"], json!("op-dbus"));
    assert_eq!(v["mcp"]["package"]["name"], json!("op-dbus-mcp"));
    assert_eq!(v["mcp"]["port"], json!(3001));
    assert_eq!(v["web"]["port"], json!(8080));
    assert_eq!(v["stateFile"], json!("/etc/op-dbus/state.json"));
}
