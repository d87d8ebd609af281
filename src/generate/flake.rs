//! `flake.nix`: inputs (nixpkgs, disko, GhostBridge and any flake supplying
//! op-dbus packages), one `nixosConfigurations` entry and one VM check per host.

use std::collections::BTreeMap;

use crate::nix::{Expr, Key, attrs};
use crate::spec::{HostSpec, Spec};

/// Flake inputs named after the packages they supply, deduplicated by
/// reference. Two references never share a name: a 128-bit hash makes a
/// collision infeasible to find, and one would be an error, not an overwrite.
pub fn extra_inputs(spec: &Spec) -> Result<BTreeMap<String, String>, super::GenerateError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for host in &spec.hosts {
        for (name, flake) in package_inputs(host) {
            if let Some(other) = out.get(&name).filter(|other| **other != flake) {
                return Err(super::GenerateError::InputCollision { name, first: other.clone(), second: flake });
            }
            out.insert(name, flake);
        }
    }
    Ok(out)
}

/// `(input name, flake ref)` for each flake package a host uses.
pub fn package_inputs(host: &HostSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(d) = &host.dbus {
        if let Some(p) = &d.op_dbus {
            out.push((input_name(&p.flake), p.flake.clone()));
        }
        if let Some(m) = &d.mcp {
            out.push((input_name(&m.package.flake), m.package.flake.clone()));
        }
    }
    out
}

/// A stable input name for a flake reference: its last path segment, sanitised,
/// plus 128 bits of its SHA-256, so two references never share a name.
pub fn input_name(flake: &str) -> String {
    use sha2::Digest;
    let last = flake.trim_end_matches('/').rsplit(['/', ':']).next().unwrap_or("input");
    let clean: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let clean = clean.trim_matches('-');
    let hash = hex::encode(&sha2::Sha256::digest(flake.as_bytes())[..16]);
    format!("pkg-{}-{hash}", if clean.is_empty() { "input" } else { clean })
}

pub fn flake(spec: &Spec) -> Result<Expr, super::GenerateError> {
    let follows = |url: &str| attrs([("url", Expr::str(url)), ("inputs.nixpkgs.follows", Expr::str("nixpkgs"))]);
    let mut inputs = vec![
        (vec![Key::from("nixpkgs"), Key::from("url")], Expr::str(&spec.flake.nixpkgs)),
        (vec![Key::from("disko")], follows(&spec.flake.disko)),
        (vec![Key::from("ghostbridge")], follows(&spec.flake.ghostbridge)),
    ];
    for (name, url) in extra_inputs(spec)? {
        inputs.push((vec![Key::Name(name), Key::from("url")], Expr::str(url)));
    }

    let configurations: Vec<(Vec<Key>, Expr)> = spec
        .hosts
        .iter()
        .map(|h| {
            let system = Expr::var("nixpkgs").select("lib.nixosSystem").apply(attrs([
                ("specialArgs", attrs([("inputs", Expr::var("inputs"))])),
                (
                    "modules",
                    Expr::List(vec![
                        Expr::var("disko").select("nixosModules.disko"),
                        Expr::var("ghostbridge").select("nixosModules.default"),
                        Expr::path(&format!("hosts/{}", h.name)),
                    ]),
                ),
            ]));
            (vec![Key::from(&h.name)], system)
        })
        .collect();

    let mut systems: BTreeMap<&str, Vec<&HostSpec>> = BTreeMap::new();
    for h in &spec.hosts {
        systems.entry(h.system.as_str()).or_default().push(h);
    }
    let packages: Vec<(Vec<Key>, Expr)> = systems
        .iter()
        .map(|(system, hosts)| {
            let entries = hosts
                .iter()
                .map(|h| (vec![Key::Name(format!("netboot-{}", h.name))], super::netboot::package(h)))
                .collect();
            (vec![Key::from(*system)], Expr::Attrs(entries))
        })
        .collect();
    let checks: Vec<(Vec<Key>, Expr)> = systems
        .into_iter()
        .map(|(system, hosts)| {
            let entries = hosts
                .into_iter()
                .map(|h| {
                    let args = attrs([
                        ("inputs", Expr::var("inputs")),
                        (
                            "pkgs",
                            Expr::Select(
                                Box::new(Expr::var("nixpkgs")),
                                vec![Key::from("legacyPackages"), Key::from(system)],
                            ),
                        ),
                    ]);
                    let check = Expr::var("import").apply(Expr::path(&format!("checks/{}.nix", h.name))).apply(args);
                    (vec![Key::from(&h.name)], check)
                })
                .collect();
            (vec![Key::from(system)], Expr::Attrs(entries))
        })
        .collect();

    let outputs = Expr::Lambda {
        formals: vec!["self".into(), "nixpkgs".into(), "disko".into(), "ghostbridge".into()],
        ellipsis: true,
        at: Some("inputs".into()),
        body: Box::new(attrs([
            ("nixosConfigurations", Expr::Attrs(configurations)),
            ("packages", Expr::Attrs(packages)),
            ("checks", Expr::Attrs(checks)),
        ])),
    };
    Ok(attrs([("description", Expr::str("GhostBridge hosts")), ("inputs", Expr::Attrs(inputs)), ("outputs", outputs)]))
}
