//! The generated `flake.nix` evaluated with stand-ins for its inputs: every
//! host becomes a `nixosConfigurations` entry built from disko's module,
//! GhostBridge's module and the host folder; every host has a VM check under
//! its system and a netboot installer package; the inputs are the ones the
//! spec names. (Building the systems needs nixpkgs and runs in `nix flake check`.)

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn generate(example: &str, dir: &Path) {
    let text = std::fs::read_to_string(format!("examples/{example}.toml")).unwrap();
    let spec = ghostbridge::spec::load(&text).unwrap().spec;
    let files = ghostbridge::generate::plan(&spec, "spec.toml").unwrap();
    ghostbridge::generate::write::write(dir, &files, "spec.toml", &text, false).unwrap();
}

fn eval_outputs(dir: &Path) -> Value {
    let expr = format!(
        r#"
let
  flake = import {dir}/flake.nix;
  perSystem = f: builtins.listToAttrs (map (s: {{ name = s; value = f s; }}) [ "x86_64-linux" "aarch64-linux" ]);
  nixpkgs = {{
    outPath = "/stand-in/nixpkgs";
    lib.nixosSystem = args: {{
      inherit args;
      config.system.build = {{ kernel = "kernel"; netbootRamdisk = "initrd"; netbootIpxeScript = "ipxe"; }};
    }};
    legacyPackages = perSystem (system: {{
      symlinkJoin = args: args // {{ inherit system; }};
      testers.runNixOSTest = test: {{ inherit system; testName = test.name; script = test.testScript; }};
    }});
  }};
  inputs = {{
    self = {{ }};
    inherit nixpkgs;
    disko = {{ nixosModules.disko = "disko-module"; }};
    ghostbridge = {{ nixosModules.default = "ghostbridge-module"; }};
  }};
  out = flake.outputs inputs;
in {{
  inputs = builtins.mapAttrs (n: i: i.url or i) flake.inputs;
  hosts = builtins.mapAttrs (n: c: {{
    modules = map toString c.args.modules;
    inputsPassed = c.args.specialArgs.inputs == inputs;
  }}) out.nixosConfigurations;
  checks = builtins.mapAttrs (s: cs: builtins.mapAttrs (n: c: {{ inherit (c) system testName; }}) cs) out.checks;
  packages = builtins.mapAttrs (s: ps: builtins.mapAttrs (n: p: {{ inherit (p) name paths system; }}) ps) out.packages;
}}
"#,
        dir = dir.display()
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", &expr])
        .output()
        .expect("nix-instantiate not found: run `bash .ci/deps` (Debian package nix-bin)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn reference_flake_outputs() {
    let dir = tempfile::tempdir().unwrap();
    generate("ghostbridge", dir.path());
    let v = eval_outputs(dir.path());
    let d = dir.path().display();
    assert_eq!(
        v["inputs"],
        json!({"nixpkgs": "github:NixOS/nixpkgs/nixos-25.11", "disko": "github:nix-community/disko", "ghostbridge": "github:ghostbridge/ghostbridge"})
    );
    assert_eq!(
        v["hosts"],
        json!({"ghostbridge": {"modules": ["disko-module", "ghostbridge-module", format!("{d}/hosts/ghostbridge")], "inputsPassed": true}})
    );
    assert_eq!(
        v["checks"],
        json!({"x86_64-linux": {"ghostbridge": {"system": "x86_64-linux", "testName": "ghostbridge-host-ghostbridge"}}})
    );
    assert_eq!(
        v["packages"],
        json!({"x86_64-linux": {"netboot-ghostbridge": {"name": "netboot-ghostbridge", "paths": ["kernel", "initrd", "ipxe"], "system": "x86_64-linux"}}})
    );
}

#[test]
fn fleet_flake_outputs_group_hosts_by_system() {
    let dir = tempfile::tempdir().unwrap();
    generate("fleet", dir.path());
    let v = eval_outputs(dir.path());
    assert_eq!(v["inputs"]["ghostbridge"], json!("path:/srv/ghostbridge"));
    let hosts: Vec<&String> = v["hosts"].as_object().unwrap().keys().collect();
    assert_eq!(hosts, ["edge1", "edge2", "store1"]);
    assert_eq!(v["checks"]["aarch64-linux"]["edge2"]["system"], json!("aarch64-linux"));
    let x86: Vec<&String> = v["checks"]["x86_64-linux"].as_object().unwrap().keys().collect();
    assert_eq!(x86, ["edge1", "store1"]);
    assert_eq!(v["packages"]["aarch64-linux"]["netboot-edge2"]["system"], json!("aarch64-linux"));
}
