//! The `ghostgen` command: exit codes, init, build into a folder, `--check`,
//! refusing to overwrite edits, hardware.nix kept, obsolete files removed, and
//! recovery after a build that was killed half-way.

use std::path::Path;
use std::process::{Command, Output};

fn ghostgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghostgen")).args(args).current_dir(cwd).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn reference() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ghostbridge.toml")).unwrap()
}

/// Every file under `dir` (relative path -> bytes), for before/after comparisons;
/// the build lock holds the last builder's PID and is left out.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.file_name().is_some_and(|n| n != ghostbridge::generate::write::LOCK) {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = Default::default();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn init_writes_the_reference_spec_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let o = ghostgen(&["init"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("spec.toml")).unwrap(), reference());
    std::fs::write(dir.path().join("spec.toml"), "mine").unwrap();
    let o = ghostgen(&["init"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("spec.toml")).unwrap(), "mine");
    let o = ghostgen(&["init", "sub/dir"], dir.path());
    assert_eq!(code(&o), 0);
    assert!(dir.path().join("sub/dir/spec.toml").exists());
}

#[test]
fn check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.toml"), reference()).unwrap();
    let o = ghostgen(&["check", "ok.toml"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid (1 host: ghostbridge)"));

    std::fs::write(
        dir.path().join("bad.toml"),
        reference().replacen("compress = \"zstd:3\"", "compress = \"zstd:99\"", 1),
    )
    .unwrap();
    let o = ghostgen(&["check", "bad.toml"], dir.path());
    assert_eq!(code(&o), 2, "an invalid spec is invalid input");
    let err = stderr(&o);
    assert!(err.contains("bad.toml:"), "{err}");
    assert!(err.contains("zstd compression level 99 is out of range"), "{err}");
    assert!(err.contains("^^^^"), "{err}");
    assert!(err.contains("1 error found; nothing was written"), "{err}");

    assert_eq!(code(&ghostgen(&["check", "missing.toml"], dir.path())), 2);
    assert_eq!(code(&ghostgen(&["check"], dir.path())), 2);
    assert_eq!(code(&ghostgen(&["frobnicate"], dir.path())), 2);
}

#[test]
fn build_writes_the_tree_next_to_the_spec_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for f in [
        "flake.nix",
        "hosts/ghostbridge/default.nix",
        "hosts/ghostbridge/disko.nix",
        "hosts/ghostbridge/hardware.nix",
        "checks/ghostbridge.nix",
        ".ghostgen-manifest.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let before = snapshot(dir.path());
    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 written"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(before, snapshot(dir.path()));
    assert_eq!(code(&ghostgen(&["build", "spec.toml", "--check"], dir.path())), 0);
}

#[test]
fn invalid_spec_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        reference().replace("name = \"ghostbridge\"", "name = \"ghost_bridge\""),
    )
    .unwrap();
    let o = ghostgen(&["build", "spec.toml", "-o", "out"], dir.path());
    assert_eq!(code(&o), 2);
    assert!(!dir.path().join("out").exists());
}

#[test]
fn check_flag_detects_stale_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    let o = ghostgen(&["build", "spec.toml", "--check"], dir.path());
    assert_eq!(code(&o), 1, "missing output must be stale");
    assert!(stderr(&o).contains("missing:"), "{}", stderr(&o));
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    std::fs::write(
        dir.path().join("spec.toml"),
        reference().replace("time_zone = \"UTC\"", "time_zone = \"Europe/Berlin\""),
    )
    .unwrap();
    let before = snapshot(dir.path());
    let o = ghostgen(&["build", "spec.toml", "--check"], dir.path());
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("out of date:") && stderr(&o).contains("hosts/ghostbridge/default.nix"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before, snapshot(dir.path()), "--check must not write");
}

#[test]
fn edited_files_are_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    let host = dir.path().join("hosts/ghostbridge/default.nix");
    let edited = std::fs::read_to_string(&host).unwrap().replace("\"UTC\"", "\"Asia/Tokyo\"");
    std::fs::write(&host, &edited).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        reference().replace("locale = \"en_US.UTF-8\"", "locale = \"de_DE.UTF-8\""),
    )
    .unwrap();

    let before = snapshot(dir.path());
    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("refusing to overwrite")
            && err.contains("hosts/ghostbridge/default.nix")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(before, snapshot(dir.path()), "a refused build must write nothing");

    let o = ghostgen(&["build", "spec.toml", "--force"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(&host).unwrap();
    assert!(text.contains("de_DE.UTF-8") && !text.contains("Asia/Tokyo"));
}

#[test]
fn hardware_stub_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    let hw = dir.path().join("hosts/ghostbridge/hardware.nix");
    std::fs::write(&hw, "{ ... }: { boot.initrd.availableKernelModules = [ \"nvme\" ]; }\n").unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference().replace("\"UTC\"", "\"Europe/Paris\"")).unwrap();
    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(std::fs::read_to_string(&hw).unwrap().starts_with("{ ... }:"));
    assert_eq!(code(&ghostgen(&["build", "spec.toml", "--check"], dir.path())), 0);
}

#[test]
fn removed_hosts_lose_their_generated_files_but_not_hardware() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet.toml")).unwrap();
    std::fs::write(dir.path().join("spec.toml"), &fleet).unwrap();
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    let without_store = fleet.split("[[hosts]]\nname = \"store1\"").next().unwrap().to_string();
    std::fs::write(dir.path().join("spec.toml"), without_store).unwrap();
    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!dir.path().join("hosts/store1/default.nix").exists());
    assert!(!dir.path().join("checks/store1.nix").exists());
    assert!(dir.path().join("hosts/store1/hardware.nix").exists(), "user-owned file must stay");
    assert!(!std::fs::read_to_string(dir.path().join("flake.nix")).unwrap().contains("store1"));
}

#[test]
fn a_build_killed_before_its_manifest_is_recognised_next_time() {
    // Simulate the state a kill leaves between moving files into place and
    // replacing the manifest: new files on disk, the pending manifest, the old manifest.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    let old_manifest = std::fs::read(dir.path().join(".ghostgen-manifest.json")).unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference().replace("\"UTC\"", "\"Europe/Oslo\"")).unwrap();
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    let new_manifest = std::fs::read(dir.path().join(".ghostgen-manifest.json")).unwrap();
    std::fs::write(dir.path().join(".ghostgen-manifest.json"), old_manifest).unwrap();
    std::fs::write(dir.path().join(".ghostgen-manifest.pending.json"), new_manifest).unwrap();
    std::fs::create_dir(dir.path().join(".ghostgen-staging-leftover")).unwrap();
    std::fs::write(dir.path().join(".ghostgen-staging-leftover/flake.nix"), "half").unwrap();

    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert_eq!(code(&o), 0, "the files written by the killed build are ours: {}", stderr(&o));
    assert!(!dir.path().join(".ghostgen-manifest.pending.json").exists());
    assert!(!dir.path().join(".ghostgen-staging-leftover").exists());
    assert_eq!(code(&ghostgen(&["build", "spec.toml", "--check"], dir.path())), 0);
}

#[test]
fn corrupt_manifest_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    std::fs::write(dir.path().join(".ghostgen-manifest.json"), "{ not json").unwrap();
    let o = ghostgen(&["build", "spec.toml"], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is not a ghostgen manifest"), "{}", stderr(&o));
    assert!(!dir.path().join("flake.nix").exists());
}

#[test]
fn schema_is_json_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let o = ghostgen(&["schema"], dir.path());
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["oneOf"].as_array().unwrap().len(), 2);
    assert!(v["oneOf"][0]["properties"]["disk"].is_object());
}

#[test]
fn check_says_what_a_host_keeps_and_how_it_reaches_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let minimal = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.toml")).unwrap();
    std::fs::write(dir.path().join("minimal.toml"), minimal).unwrap();
    let o = ghostgen(&["check", "minimal.toml"], dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0);
    assert!(
        out.contains(
            "tiny: warning: no OVS bridge or plain interface is declared; the host takes DHCP on every physical NIC"
        ),
        "{out}"
    );
    // Without [disk], nixos-anywhere's disko phase has nothing to apply: the
    // check and the generated files name the install paths that work, and the
    // hardware file is not told to drop its file systems.
    assert!(
        out.contains("tiny: note: This host has no [disk] layout") && out.contains("--phases install,reboot"),
        "{out}"
    );
    assert_eq!(code(&ghostgen(&["build", "minimal.toml", "-o", "out"], dir.path())), 0);
    let hw = std::fs::read_to_string(dir.path().join("out/hosts/tiny/hardware.nix")).unwrap();
    assert!(!hw.contains("--no-filesystems") && hw.contains("file systems included"), "{hw}");
    assert!(hw.contains("nixos-anywhere --phases install,reboot"), "{hw}");
    let netboot = std::fs::read_to_string(dir.path().join("out/netboot/tiny.nix")).unwrap();
    assert!(netboot.contains("No [disk] layout"), "{netboot}");
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    let o = ghostgen(&["check", "spec.toml"], dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ghostbridge: keeps at most 61 live snapshots: 61 every 1s for 1m"), "{out}");
}

#[test]
fn deploy_refuses_a_stale_tree_unknown_hosts_and_bad_usage_before_touching_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet.toml")).unwrap();
    std::fs::write(dir.path().join("spec.toml"), fleet).unwrap();
    // Nothing built yet: the tree is not what the spec generates (exit 1).
    let o = ghostgen(&["deploy", "spec.toml", "--dry-run"], dir.path());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("run `ghostgen build`"), "{}", stderr(&o));
    assert_eq!(code(&ghostgen(&["build", "spec.toml"], dir.path())), 0);
    // A host the spec lacks, a tag no host carries, --parallel 0: usage (exit 2).
    let o = ghostgen(&["deploy", "spec.toml", "edge3x"], dir.path());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("the spec has no host \"edge3x\"; did you mean \"edge1\"?"), "{}", stderr(&o));
    let o = ghostgen(&["deploy", "spec.toml", "--tag", "core"], dir.path());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no host carries the tag core"), "{}", stderr(&o));
    let o = ghostgen(&["deploy", "spec.toml", "--parallel", "0"], dir.path());
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // The plan: who is reached how, and nothing run.
    let o = ghostgen(&["deploy", "spec.toml", "--tag", "edge", "--dry-run", "--canary", "1"], dir.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("edge1: ops@edge1.example.com port 2222 via ops@bastion.example.com; built here, then copied"),
        "{out}"
    );
    assert!(out.contains("edge2: ops@192.0.2.20 port 2222 via ops@bastion.example.com; built on the host"), "{out}");
    assert!(!out.contains("store1"), "{out}");
    assert!(out.contains("2 hosts, 1 at a time, 1 canary first"), "{out}");
}
