//! `ghostgen` under hostile and careless input around the spec: its file name,
//! the manifest, the output folder shared by two builds, and any sequence of
//! interrupted builds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use ghostbridge::generate::{self, write};
use proptest::prelude::*;

fn ghostgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghostgen")).args(args).current_dir(cwd).output().unwrap()
}

fn reference() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ghostbridge.toml")).unwrap()
}

fn fleet() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet.toml")).unwrap()
}

/// Every file under `dir` but the lock (relative path -> bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                if p.file_name().is_some_and(|n| n != write::LOCK) {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_spec_file_name_with_line_breaks_stays_inside_the_comments() {
    let dir = tempfile::tempdir().unwrap();
    let name = "spec\n{ x = builtins.abort \"pwned\"; }\r#!ipxe\nshell\n.toml";
    std::fs::write(dir.path().join(name), reference()).unwrap();
    let o = ghostgen(&["build", name, "-o", "out"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    for (path, bytes) in tree(&dir.path().join("out")) {
        let text = String::from_utf8(bytes).unwrap();
        if path.ends_with(".json") {
            // The manifest holds the name as JSON data.
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(m["spec"], serde_json::json!(name));
            continue;
        }
        assert!(!text.contains("builtins.abort \"pwned\"; }\n"), "{path} lets the name out of its comment");
        for line in text.lines().filter(|l| l.contains("pwned")) {
            assert!(line.trim_start().starts_with('#'), "{path}: {line:?} is not a comment");
        }
        if path.ends_with(".ipxe") {
            assert!(!text.lines().any(|l| l.trim() == "shell"), "{path} runs an iPXE command from the name");
        }
    }
}

#[test]
fn a_manifest_naming_files_outside_the_tree_deletes_nothing() {
    for entry in
        ["../victim.txt", "/tmp/ghostgen-victim", "hosts/../../victim.txt", "spec.toml", "hosts/a b/default.nix"]
    {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
        assert_eq!(ghostgen(&["build", "spec.toml", "-o", "out"], dir.path()).status.code(), Some(0));
        std::fs::write(dir.path().join("victim.txt"), "keep me").unwrap();
        let manifest_path = out.join(".ghostgen-manifest.json");
        let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        let hash = generate::manifest::sha256_hex(b"keep me");
        m["files"][entry] = serde_json::Value::String(hash);
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
        let before = tree(dir.path());
        for force in [false, true] {
            let mut args = vec!["build", "spec.toml", "-o", "out"];
            if force {
                args.push("--force");
            }
            let o = ghostgen(&args, dir.path());
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{entry}: {err}");
            assert!(err.contains("is not a file ghostgen generates"), "{entry}: {err}");
            assert_eq!(tree(dir.path()), before, "{entry}: something was written or deleted");
        }
    }
}

#[test]
fn a_second_build_into_the_same_folder_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join("out").join(write::LOCK))
        .unwrap();
    let mut held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    std::io::Write::write_all(&mut *held, b"pid 4242\n").unwrap();
    let o = ghostgen(&["build", "spec.toml", "-o", "out"], dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("another ghostgen build (pid 4242) is writing into"), "{err}");
    assert!(!dir.path().join("out/flake.nix").exists());
    drop(held);
    assert_eq!(ghostgen(&["build", "spec.toml", "-o", "out"], dir.path()).status.code(), Some(0));
}

/// The planned files of one of the two specs.
fn plan(which: bool) -> (Vec<generate::File>, String) {
    let text = if which { reference() } else { fleet() };
    let loaded = ghostbridge::spec::load(&text).unwrap();
    (generate::plan(&loaded.spec, "spec.toml").unwrap(), text)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Any sequence of builds of two specs, each killed at a random step,
    /// then one normal build: the tree equals a clean build of the last spec,
    /// and no file is reported as edited.
    #[test]
    fn any_run_of_interrupted_builds_is_recovered_by_the_next(
        runs in prop::collection::vec((any::<bool>(), 0usize..30), 1..5),
        last in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        for (which, steps) in &runs {
            let (files, text) = plan(*which);
            write::write_interrupted(&out, &files, "spec.toml", &text, false, *steps).unwrap();
        }
        let (files, text) = plan(last);
        let outcome = write::write(&out, &files, "spec.toml", &text, false);
        prop_assert!(outcome.is_ok(), "after {:?}: {}", runs, outcome.unwrap_err());

        let clean = tempfile::tempdir().unwrap();
        write::write(clean.path(), &files, "spec.toml", &text, false).unwrap();
        // A hardware.nix, once created, is the user's and is never deleted,
        // also for a host the last spec no longer has.
        let mut got = tree(&out);
        got.retain(|path, _| !path.ends_with("hardware.nix") || files.iter().any(|f| &f.path == path));
        let want = tree(clean.path());
        prop_assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "after {:?}", runs);
        prop_assert_eq!(got, want, "after {:?}", runs);
    }
}

/// A spec mutated at random: bytes replaced, removed or inserted.
fn mutated() -> impl Strategy<Value = String> {
    let base = reference();
    (prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12)).prop_map(move |edits| {
        let mut bytes = base.clone().into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i.min(bytes.len()), byte),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The loader never panics, and every rejection points inside the file.
    #[test]
    fn any_input_is_loaded_or_refused_with_a_location(text in prop_oneof![mutated(), ".{0,400}"]) {
        match ghostbridge::spec::load(&text) {
            Ok(_) => {}
            Err(rejected) => {
                prop_assert!(!rejected.diagnostics.is_empty());
                for d in &rejected.diagnostics {
                    prop_assert!(d.span.start <= text.len() && d.span.end <= text.len().max(d.span.start), "{d:?}");
                }
                let shown = ghostbridge::spec::render_all(&rejected.diagnostics, "spec.toml", &text);
                prop_assert!(shown.contains("spec.toml:"));
            }
        }
    }
}

#[test]
fn symbolic_links_inside_the_output_folder_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), reference()).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out/hosts")).unwrap();
    let o = ghostgen(&["build", "spec.toml", "-o", "out"], dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("out/hosts is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "something was written through the link");
}

/// Every file and folder under `dir` with its permission bits.
fn modes(dir: &Path) -> BTreeMap<String, u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), m.permissions().mode() & 0o7777);
            if m.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

#[test]
fn the_environment_changes_nothing_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), fleet()).unwrap();
    assert_eq!(ghostgen(&["build", "spec.toml", "-o", "plain"], dir.path()).status.code(), Some(0));
    // A hostile caller's environment: no PATH or HOME, a missing TMPDIR, odd
    // locale and Nix variables, and a umask that would make every file writable by all.
    let o = Command::new("/bin/sh")
        .args(["-c", "umask 000; exec \"$0\" build spec.toml -o hostile", env!("CARGO_BIN_EXE_ghostgen")])
        .current_dir(dir.path())
        .env_clear()
        .env("TMPDIR", "/nonexistent/tmp")
        .env("LANG", "xx_XX.GARBAGE")
        .env("LC_ALL", "\u{1b}[31m")
        .env("NIX_PATH", "nixpkgs=/nonexistent")
        .env("GIT_DIR", "/nonexistent")
        .env("JOURNAL_STREAM", "8:8")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tree(&dir.path().join("hostile")), tree(&dir.path().join("plain")));
    for (path, mode) in modes(&dir.path().join("hostile")) {
        let is_dir = dir.path().join("hostile").join(&path).is_dir();
        assert_eq!(mode, if is_dir { 0o755 } else { 0o644 }, "{path} has mode {mode:o}");
    }
}
