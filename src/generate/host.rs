//! `hosts/<host>/default.nix`: plain NixOS settings (identity, Nix, users, SSH
//! port, firewall) and `services.ghostbridge.*`, which the GhostBridge modules
//! turn into the rest. Pure data: no logic lives in generated files.

use crate::nix::{Expr, Key, attrs};
use crate::spec::model::{HostSpec, Iommu, SysctlValue};

use super::flake::input_name;
use super::{GenerateError, settings};

fn keyed<'a>(entries: impl IntoIterator<Item = (&'a String, Expr)>) -> Expr {
    Expr::Attrs(entries.into_iter().map(|(k, v)| (vec![Key::from(k)], v)).collect())
}

/// `inputs.<name>.packages.${pkgs.stdenv.hostPlatform.system}.<package>`
fn flake_package(flake: &str, package: &str) -> Expr {
    Expr::Select(
        Box::new(Expr::var("inputs")),
        vec![
            Key::Name(input_name(flake)),
            Key::from("packages"),
            Key::Dynamic(Expr::var("pkgs").select("stdenv.hostPlatform.system")),
            Key::from(package),
        ],
    )
}

pub fn host(h: &HostSpec) -> Result<Expr, GenerateError> {
    let mut imports = Vec::new();
    if h.disk.is_some() {
        imports.push(Expr::path("disko.nix"));
    }
    imports.push(Expr::path("hardware.nix"));

    let mut e: Vec<(&str, Expr)> = vec![
        ("imports", Expr::List(imports)),
        ("nixpkgs.hostPlatform", Expr::str(h.system.as_str())),
        ("networking.hostName", Expr::str(&h.name)),
        ("system.stateVersion", Expr::str(&h.state_version)),
        ("time.timeZone", Expr::str(&h.time_zone)),
        ("i18n.defaultLocale", Expr::str(&h.locale)),
    ];

    // Nix daemon.
    if h.nix.flakes {
        e.push(("nix.settings.experimental-features", Expr::strs(["nix-command", "flakes"])));
    }
    e.push(("nix.settings.auto-optimise-store", Expr::Bool(h.nix.auto_optimise)));
    match &h.nix.gc {
        Some(gc) => e.push((
            "nix.gc",
            attrs([
                ("automatic", Expr::Bool(true)),
                ("dates", Expr::str(&gc.dates)),
                ("options", Expr::str(format!("--delete-older-than {}", gc.older_than))),
            ]),
        )),
        None => e.push(("nix.gc.automatic", Expr::Bool(false))),
    }

    // Users: keys only, declared here and nowhere else.
    e.push(("users.mutableUsers", Expr::Bool(false)));
    let users: Vec<(&String, Expr)> = h
        .users
        .iter()
        .map(|u| {
            let groups: Vec<&str> = if u.admin { vec!["wheel"] } else { vec![] };
            (
                &u.name,
                attrs([
                    ("isNormalUser", Expr::Bool(true)),
                    ("extraGroups", Expr::strs(groups)),
                    ("openssh.authorizedKeys.keys", Expr::strs(&u.ssh_keys)),
                ]),
            )
        })
        .collect();
    e.push(("users.users", keyed(users)));
    e.push(("security.sudo.wheelNeedsPassword", Expr::Bool(false)));

    // SSH port and the firewall: only what is declared (the SSH port always).
    e.push(("services.openssh.ports", Expr::List(vec![Expr::int(h.ssh.port)])));
    let mut tcp: Vec<u16> = vec![h.ssh.port];
    for p in &h.firewall.allowed_tcp_ports {
        if !tcp.contains(p) {
            tcp.push(*p);
        }
    }
    e.push(("networking.firewall.allowedTCPPorts", Expr::List(tcp.into_iter().map(Expr::int).collect())));
    e.push((
        "networking.firewall.allowedUDPPorts",
        Expr::List(h.firewall.allowed_udp_ports.iter().map(|p| Expr::int(*p)).collect()),
    ));

    // nodatacow must also be a file attribute: BTRFS applies most mount options
    // file-system wide, so `chattr +C` on the (empty) subvolume root is what
    // actually makes new files in it no-copy-on-write.
    if let Some(disk) = &h.disk {
        let rules: Vec<String> =
            disk.subvolumes.iter().filter(|s| s.nodatacow).map(|s| format!("h {} - - - - +C", s.mount)).collect();
        if !rules.is_empty() {
            e.push(("systemd.tmpfiles.rules", Expr::strs(rules)));
        }
    }

    // A Qdrant on this host, where the sync's URL says it listens (gRPC on the next port).
    if let Some((ip, port)) = h.qdrant_sync.as_ref().and_then(|q| q.local_qdrant()) {
        e.push((
            "services.qdrant.settings.service",
            attrs([
                ("host", Expr::str(ip.to_string())),
                ("http_port", Expr::int(port)),
                ("grpc_port", Expr::Int(i64::from(port) + 1)),
            ]),
        ));
    }

    e.push(("services.ghostbridge", ghostbridge(h)?));
    Ok(attrs_lambda(attrs(e)))
}

fn attrs_lambda(body: Expr) -> Expr {
    Expr::Lambda {
        formals: vec!["config".into(), "lib".into(), "pkgs".into(), "inputs".into()],
        ellipsis: true,
        at: None,
        body: Box::new(body),
    }
}

fn ghostbridge(h: &HostSpec) -> Result<Expr, GenerateError> {
    let mut e: Vec<(&str, Expr)> = vec![("enable", Expr::Bool(true))];

    let sysctl: Vec<(&String, Expr)> = h
        .boot
        .sysctl
        .iter()
        .map(|(k, v)| {
            let value = match v {
                SysctlValue::Int(i) => Expr::Int(*i),
                SysctlValue::Str(s) => Expr::str(s),
            };
            (k, value)
        })
        .collect();
    e.push((
        "boot",
        attrs([
            ("kernelParams", Expr::strs(&h.boot.kernel_params)),
            ("kernelModules", Expr::strs(&h.boot.kernel_modules)),
            (
                "iommu",
                match h.boot.iommu {
                    Some(Iommu::Intel) => Expr::str("intel"),
                    Some(Iommu::Amd) => Expr::str("amd"),
                    None => Expr::Null,
                },
            ),
            ("vfioIds", Expr::strs(&h.boot.vfio_ids)),
            ("sysctl", keyed(sysctl)),
        ]),
    ));

    // What systemd-networkd does with each bridge's own interface; the bridges
    // themselves are the OVS reconciler's settings, its JSON keys verbatim.
    let addressing = |list: &str| -> Vec<(String, Expr)> {
        h.network
            .links()
            .into_iter()
            .filter(|l| l.list == list)
            .map(|l| {
                (
                    l.name.to_string(),
                    attrs([
                        ("dhcp", Expr::Bool(l.dhcp)),
                        ("addresses", Expr::strs(l.addresses)),
                        ("gateway", Expr::strs(l.gateways())),
                        ("dns", Expr::strs(l.dns)),
                    ]),
                )
            })
            .collect()
    };
    let bridges = addressing("bridges");
    e.push(("network.bridges", keyed(bridges.iter().map(|(k, v)| (k, v.clone())))));
    let interfaces = addressing("interfaces");
    if !interfaces.is_empty() {
        e.push(("network.interfaces", keyed(interfaces.iter().map(|(k, v)| (k, v.clone())))));
    }
    if !h.network.bridges.is_empty() {
        let ovs = h.ovs_config();
        e.push(("ovs.settings.bridges", settings(&ovs.bridges)?));
    }

    if let Some(s) = &h.snapshotter {
        e.push(("snapshotter", attrs([("enable", Expr::Bool(true)), ("settings", settings(s)?)])));
    }

    if let Some(q) = &h.qdrant_sync {
        e.push((
            "qdrant_sync",
            attrs([
                ("enable", Expr::Bool(true)),
                ("localQdrant", Expr::Bool(q.local_qdrant().is_some())),
                ("localQdrantDataDir", Expr::opt_str(h.qdrant.as_ref().map(|l| l.data_dir.as_str()))),
                ("settings", settings(q)?),
            ]),
        ));
    }

    // The account `ghostgen deploy` logs in as (trusted by Nix for `nix copy`).
    e.push(("deploy.user", Expr::opt_str(h.deploy_user())));

    if let Some(r) = &h.remote_server {
        let mut o = Vec::new();
        for (name, value) in [
            ("enable", r.enable),
            ("watchdog", r.watchdog),
            ("disableEmergencyMode", r.disable_emergency_mode),
            ("keepNetworkOnSwitch", r.keep_network_on_switch),
        ] {
            if let Some(v) = value {
                o.push((name, Expr::Bool(v)));
            }
        }
        if let Some(console) = &r.serial_console {
            o.push(("serialConsole", if console.is_empty() { Expr::Null } else { Expr::str(console) }));
        }
        if let Some(n) = r.boot_entries {
            o.push(("bootEntries", Expr::int(n)));
        }
        e.push(("remoteServer", attrs(o)));
    }

    if let Some(d) = &h.dbus
        && let Some(op) = &d.op_dbus
    {
        let mut o = vec![
            ("enable", Expr::Bool(true)),
            ("package", flake_package(&op.flake, &op.package)),
            ("stateFile", Expr::str(&d.state_file)),
        ];
        if let Some(mcp) = &d.mcp {
            o.push((
                "mcp",
                attrs([
                    ("enable", Expr::Bool(true)),
                    ("package", flake_package(&mcp.package.flake, &mcp.package.package)),
                    ("port", Expr::int(mcp.port)),
                ]),
            ));
        }
        if let Some(web) = &d.web {
            o.push(("web", attrs([("enable", Expr::Bool(true)), ("port", Expr::int(web.port))])));
        }
        e.push(("opDbus", attrs(o)));
    }

    let v = &h.virtualization;
    let networks: Vec<(&String, Expr)> = v.ovs_networks.iter().map(|(k, b)| (k, Expr::str(b))).collect();
    let mut virt = vec![
        ("libvirt", attrs([("enable", Expr::Bool(v.libvirt)), ("ovsNetworks", keyed(networks))])),
        ("lxc.enable", Expr::Bool(v.lxc)),
        ("docker", attrs([("enable", Expr::Bool(v.docker)), ("autoPrune", Expr::Bool(v.docker_auto_prune))])),
    ];
    match (v.novnc_port, &v.novnc_expose) {
        (Some(port), None) => virt.push(("novnc", attrs([("enable", Expr::Bool(true)), ("port", Expr::int(port))]))),
        (Some(port), Some(x)) => virt.push((
            "novnc",
            attrs([
                ("enable", Expr::Bool(true)),
                ("port", Expr::int(port)),
                ("listenAddress", Expr::str(x.address.to_string())),
                ("openFirewall", Expr::Bool(true)),
                ("passwordFile", Expr::str(&x.password_file)),
            ]),
        )),
        (None, _) => virt.push(("novnc.enable", Expr::Bool(false))),
    }
    e.push(("virtualization", attrs(virt)));

    if let Some(m) = &h.monitoring {
        e.push((
            "monitoring",
            attrs([
                ("enable", Expr::Bool(true)),
                ("prometheus.port", Expr::int(m.prometheus_port)),
                ("nodeExporter.port", Expr::int(m.node_exporter_port)),
                ("grafana", attrs([("enable", Expr::Bool(m.grafana)), ("port", Expr::int(m.grafana_port))])),
            ]),
        ));
    }
    Ok(attrs(e))
}
