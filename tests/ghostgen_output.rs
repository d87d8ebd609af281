//! The generated tree: insta snapshots for every example, determinism, every
//! `.nix` file parsed by Nix itself, and the JSON Schema accepting the examples.

use std::path::{Path, PathBuf};
use std::process::Command;

use ghostbridge::generate;
use ghostbridge::spec;

fn examples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    assert!(out.len() >= 3, "examples missing");
    out
}

fn plan_for(path: &Path) -> Vec<generate::File> {
    let text = std::fs::read_to_string(path).unwrap();
    let loaded = spec::load(&text).unwrap_or_else(|r| panic!("{}: {:#?}", path.display(), r.diagnostics));
    generate::plan(&loaded.spec, path.file_name().unwrap().to_str().unwrap()).unwrap()
}

#[test]
fn generated_trees_match_snapshots() {
    for path in examples() {
        let files = plan_for(&path);
        let mut tree = String::new();
        for f in &files {
            tree.push_str(&format!("==> {} ({:?})\n{}\n", f.path, f.policy, f.contents));
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        insta::assert_snapshot!(name, tree);
    }
}

#[test]
fn generation_is_deterministic() {
    for path in examples() {
        assert_eq!(plan_for(&path), plan_for(&path), "{}", path.display());
    }
}

/// `nix-instantiate --parse` on one file; the test command installs nix-bin.
fn nix_parse(file: &Path) {
    let out = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(file)
        .output()
        .expect("nix-instantiate not found: run `bash .ci/deps` (Debian package nix-bin)");
    assert!(out.status.success(), "{} does not parse:\n{}", file.display(), String::from_utf8_lossy(&out.stderr));
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git") {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_generated_nix_file_parses_with_nix_and_rnix() {
    for path in examples() {
        let dir = tempfile::tempdir().unwrap();
        for f in plan_for(&path).into_iter().filter(|f| f.path.ends_with(".nix")) {
            ghostbridge::nix::parse_check(&f.contents).unwrap();
            let target = dir.path().join(&f.path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, &f.contents).unwrap();
            nix_parse(&target);
        }
    }
}

#[test]
fn every_nix_file_in_the_repository_parses_with_nix_and_rnix() {
    let mut files = Vec::new();
    nix_files(Path::new("."), &mut files);
    assert!(files.iter().any(|f| f.ends_with("flake.nix")), "no flake.nix found");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        ghostbridge::nix::parse_check(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        nix_parse(&f);
    }
}

#[test]
fn json_schema_accepts_every_example_and_rejects_typos() {
    let schema = spec::schema::file_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = toml_to_json(&text);
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    let bad = toml_to_json("[host]\nname = \"a\"\nstate_version = \"25.11\"\n[netwrok]\n");
    assert!(!validator.is_valid(&bad));
}

fn toml_to_json(text: &str) -> serde_json::Value {
    let mut v = toml_span::parse(text).unwrap();
    spec::source::Node::from_toml(&mut v, text).to_json()
}

#[test]
fn committed_example_output_is_fresh() {
    // examples/generated/ holds `ghostgen build` of each example; the repository's
    // own VM check boots the reference host from there.
    for path in examples() {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let out = Path::new("examples/generated").join(name);
        let files = plan_for(&path);
        let stale = generate::write::staleness(&out, &files).unwrap();
        assert!(
            stale.is_fresh(),
            "{} is stale: {stale:?}; run `ghostgen build {} -o {}`",
            out.display(),
            path.display(),
            out.display()
        );
    }
}

/// The generated VM check of the reference host, as a real test driver and
/// qemu-vm.nix would run it (each line is a finding the check once failed on).
#[test]
fn the_generated_vm_check_can_pass_as_written() {
    let files = plan_for(Path::new("examples/ghostbridge.toml"));
    let check = files.iter().find(|f| f.path == "checks/ghostbridge.nix").expect("checks/ghostbridge.nix");
    let text = &check.contents;
    // qemu-vm.nix replaces disko's file systems: BTRFS must be declared for btrfs-progs.
    assert!(text.contains("boot.supportedFilesystems = [ \"btrfs\" ];"), "{text}");
    // kvm-intel from the spec would fail module loading on AMD or non-nested runners.
    assert!(text.contains("boot.blacklistedKernelModules = [ \"kvm_intel\" \"kvm_amd\" ];"), "{text}");
    // Test NICs without the address `virtualisation.vlans` would give them.
    assert!(!text.contains("virtualisation.vlans"), "{text}");
    assert!(text.contains("assignIP = false;"), "{text}");
    // Socket-activated libvirtd exits when idle: wait for its socket.
    assert!(text.contains("libvirtd.socket") && !text.contains("wait_for_unit(\"libvirtd.service\")"), "{text}");
    // Daemons that hit the start limit before their disk existed are reset, then started.
    let reset = text.find("systemctl reset-failed").expect("a reset-failed");
    let start = text.find("\"systemctl start \"").expect("a start");
    assert!(reset < start, "reset-failed must come before the start");
    // `set -o pipefail` in the driver: no `| grep -q` that can fail on SIGPIPE.
    assert!(!text.contains("| grep -q"), "{text}");
}
