//! The contract from spec to daemon: a spec `ghostgen check` accepts gives
//! daemon configs that each daemon's own `check-config` accepts, VM-check
//! scripts that compile, and `.nix` files whose data evaluates to exactly the
//! daemon configs; and a daemon config a daemon refuses is refused by
//! `ghostgen check`, at the spec key that set it.
//!
//! Specs are generated over every daemon section with unusual but legal values
//! (IPv6 literals, URLs without ports, extreme batch and dimension, names with
//! every allowed character) and with values just past each rule.

use std::path::Path;
use std::process::Command;

use ghostbridge::spec::{self, Severity};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

const SNAPSHOTTER: &str = env!("CARGO_BIN_EXE_ghostbridge-snapshotter");
const OVS: &str = env!("CARGO_BIN_EXE_ghostbridge-ovs");
const QDRANT_SYNC: &str = env!("CARGO_BIN_EXE_ghostbridge-qdrant-sync");
const DOCTOR: &str = env!("CARGO_BIN_EXE_ghostbridge-doctor");

/// The daemon sections of one generated spec, as the daemons' own JSON.
#[derive(Debug, Clone)]
struct Case {
    snapshotter: Value,
    qdrant_sync: Option<Value>,
    bridges: Vec<Value>,
}

fn toml_value(v: &Value) -> String {
    match v {
        // A JSON string is a TOML basic string with the same meaning.
        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => panic!("no TOML for {other}"),
    }
}

fn table(header: &str, v: &Value) -> String {
    let mut out = format!("{header}\n");
    for (k, val) in v.as_object().unwrap() {
        if !val.is_null() {
            out.push_str(&format!("{k} = {}\n", toml_value(val)));
        }
    }
    out
}

impl Case {
    fn spec_text(&self) -> String {
        let mut s = String::from(
            "[host]\nname = \"c1\"\nstate_version = \"25.11\"\n[[users]]\nname = \"ops\"\nadmin = true\n\
             ssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q a@b\"]\n",
        );
        s.push_str(&table("[snapshotter]", &self.snapshotter));
        if let Some(q) = &self.qdrant_sync {
            let mut q = q.clone();
            q.as_object_mut().unwrap().remove("database");
            s.push_str(&table("[qdrant_sync]", &q));
        }
        for b in &self.bridges {
            s.push_str(&table("[[network.bridges]]", b));
        }
        s
    }

    fn qdrant_sync_json(&self) -> Option<Value> {
        let mut q = self.qdrant_sync.clone()?;
        q["database"] = self.snapshotter["database"].clone();
        Some(q)
    }
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1ms".to_string()),
        Just("1s".to_string()),
        Just("59s".to_string()),
        Just("1m".to_string()),
        Just("366d".to_string()),
        Just("367d".to_string()),
        (1u64..100_000).prop_map(|n| format!("{n}ms")),
        (1u64..200).prop_map(|n| format!("{n}h")),
    ]
}

fn abs_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("/var/lib/ghost".to_string()),
        1 => Just("/var/lib/a b".to_string()),
        1 => Just("relative/path".to_string()),
        8 => "/[a-zA-Z0-9@_+-][a-zA-Z0-9@._+-]{0,11}(/[a-zA-Z0-9@_+-][a-zA-Z0-9@._+-]{0,11}){0,2}",
    ]
}

fn snapshotter() -> impl Strategy<Value = Value> {
    (abs_path(), abs_path(), duration(), duration()).prop_map(|(dir, db_dir, a, b)| {
        // Mostly in the legal order; the rule itself is covered by the swapped ones.
        let ms =
            |d: &String| d.parse::<ghostbridge::runtime::duration::HumanDuration>().map_or(u64::MAX, |d| d.as_millis());
        let (interval, retention) = if a.len() % 4 == 0 || ms(&a) <= ms(&b) { (a, b) } else { (b, a) };
        json!({
            "source": "/srv/source",
            "snapshot_dir": format!("{dir}/snapshots"),
            "database": format!("{db_dir}/chain.db"),
            "interval": interval,
            "retention": retention,
        })
    })
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just("http://127.0.0.1:6333".to_string()),
        2 => Just("http://127.0.0.1".to_string()),
        2 => Just("http://[::1]:6333".to_string()),
        2 => Just("http://[::1]".to_string()),
        2 => Just("http://localhost:7000/qdrant".to_string()),
        2 => Just("http://10.0.0.5:6333".to_string()),
        2 => Just("http://qdrant.internal".to_string()),
        1 => Just("http://127.0.0.1:65535".to_string()),
        1 => Just("http://127.0.0.1:0".to_string()),
        1 => Just("https://qdrant.example:6333".to_string()),
        1 => Just("http://[::1:6333".to_string()),
        1 => Just("127.0.0.1:6333".to_string()),
        4 => (1024u16..=65534).prop_map(|p| format!("http://127.0.0.1:{p}")),
    ]
}

fn qdrant_sync() -> impl Strategy<Value = Value> {
    (
        url(),
        prop_oneof![
            8 => "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,19}",
            1 => Just("a/b".to_string()),
            1 => Just("..".to_string()),
            1 => Just(String::new()),
        ],
        prop_oneof![1 => Just(0u64), 2 => Just(1), 4 => Just(384), 1 => Just(65_536), 1 => Just(65_537), 6 => 1u64..5000],
        prop_oneof![
            1 => Just(0u64),
            2 => Just(1),
            4 => Just(100),
            1 => Just(4681),
            1 => Just(4682),
            1 => Just(10_000),
            1 => Just(10_001),
            4 => 1u64..2000,
        ],
        prop_oneof![Just("Cosine"), Just("Euclid"), Just("Dot"), Just("Manhattan")],
        prop_oneof![Just(None), Just(Some("/run/keys/qdrant")), Just(Some("keys/qdrant"))],
    )
        .prop_map(|(url, collection, dimension, batch, distance, key)| {
            json!({
                "url": url, "collection": collection, "dimension": dimension, "batch": batch,
                "distance": distance, "api_key_file": key,
            })
        })
}

fn ifname() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-zA-Z0-9_@-][a-zA-Z0-9._@-]{0,14}",
        1 => Just("a-very-long-name0".to_string()),
        1 => Just("br\"0".to_string()),
        1 => Just("en*".to_string()),
        1 => Just("!lo".to_string()),
        1 => Just("br 0".to_string()),
    ]
}

fn flow() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("priority=100,ip,nw_dst=10.0.0.0/24,actions=normal".to_string()),
        6 => Just("priority=5,actions=drop".to_string()),
        1 => Just("priority=5,ip".to_string()),
        1 => Just("actions=".to_string()),
        1 => Just("#priority=5,actions=drop".to_string()),
        1 => Just("priority=5,actions=drop\npriority=6,actions=drop".to_string()),
    ]
}

fn bridges() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(
        (ifname(), prop::option::of(ifname()), prop::collection::vec(flow(), 0..2), any::<bool>()).prop_map(
            |(name, uplink, flows, drop)| {
                json!({ "name": name, "uplink": uplink, "extra_flows": flows, "drop_uplink_broadcast": drop })
            },
        ),
        0..3,
    )
}

fn case() -> impl Strategy<Value = Case> {
    (snapshotter(), prop::option::of(qdrant_sync()), bridges()).prop_map(|(snapshotter, qdrant_sync, bridges)| Case {
        snapshotter,
        qdrant_sync,
        bridges,
    })
}

/// `BIN check-config` on `config`: (accepted, stderr).
fn check_config(bin: &str, config: &Value, dir: &Path) -> (bool, String) {
    let file = dir.join("config.json");
    std::fs::write(&file, serde_json::to_vec(config).unwrap()).unwrap();
    let out = Command::new(bin).arg("check-config").arg(&file).output().unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 2)),
        "{bin} check-config exited {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code == Some(0), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn nix_eval(expr: &str) -> Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", expr])
        .output()
        .expect("nix-instantiate not found: run `bash .ci/deps` (Debian package nix-bin)");
    assert!(out.status.success(), "nix eval failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the accepted spec generates: each daemon's settings (evaluated from
/// the host file) and the VM check's test script.
fn generated(text: &str, dir: &Path) -> (Value, String) {
    let loaded = spec::load(text).unwrap();
    let files = ghostbridge::generate::plan(&loaded.spec, "spec.toml").unwrap();
    for f in &files {
        let p = dir.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &f.contents).unwrap();
    }
    let host = dir.join("hosts/c1/default.nix");
    let check = dir.join("checks/c1.nix");
    let v = nix_eval(&format!(
        "let h = import {} {{ config = {{}}; lib = {{}}; pkgs = {{}}; inputs = {{}}; }}; \
         t = import {} {{ inputs = {{}}; pkgs.testers.runNixOSTest = t: t; }}; \
         in {{ gb = h.services.ghostbridge; script = t.testScript; }}",
        host.display(),
        check.display()
    ));
    let script = v["script"].as_str().unwrap().to_string();
    (v["gb"].clone(), script)
}

fn py_compile(script: &str, dir: &Path) {
    let file = dir.join("test_script.py");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("python3").args(["-m", "py_compile"]).arg(&file).output().expect("python3");
    assert!(out.status.success(), "test script does not compile: {}\n{script}", String::from_utf8_lossy(&out.stderr));
    // The data line reads back as the facts ghostgen meant (the name, here).
    let head: String = script.lines().take(2).collect::<Vec<_>>().join("\n");
    let out = Command::new("python3").arg("-c").arg(format!("{head}\nprint(spec['name'])")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "c1");
}

/// Whether the refusal names a location inside one of `sections` (e.g.
/// "snapshotter"): from its header to the next different section.
fn refused_in(rejected: &spec::Rejected, text: &str, sections: &[&str]) -> bool {
    sections.iter().any(|section| {
        let Some(start) = text.find(&format!("[{section}]")) else { return false };
        let end = text[start..]
            .match_indices("\n[")
            .map(|(i, _)| start + i)
            .find(|i| !text[i + 1..].trim_start_matches('[').starts_with(section))
            .unwrap_or(text.len());
        rejected.diagnostics.iter().any(|d| d.severity == Severity::Error && (start..end).contains(&d.span.start))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn accepted_specs_run_and_refused_configs_are_refused_by_check(case in case()) {
        let dir = tempfile::tempdir().unwrap();
        let text = case.spec_text();
        let snap_ok = check_config(SNAPSHOTTER, &case.snapshotter, dir.path());
        let sync_ok = case.qdrant_sync_json().map(|q| check_config(QDRANT_SYNC, &q, dir.path()));
        let ovs_ok = check_config(OVS, &json!({ "bridges": case.bridges }), dir.path());

        match spec::load(&text) {
            Ok(_) => {
                // Accepted: the daemons accept what the host file renders.
                prop_assert!(snap_ok.0, "ghostgen accepted, the snapshotter refuses: {}\n{text}", snap_ok.1);
                if let Some(s) = &sync_ok {
                    prop_assert!(s.0, "ghostgen accepted, the Qdrant sync refuses: {}\n{text}", s.1);
                }
                prop_assert!(ovs_ok.0, "ghostgen accepted, the OVS reconciler refuses: {}\n{text}", ovs_ok.1);
                let (gb, script) = generated(&text, dir.path());
                let snap = &gb["snapshotter"]["settings"];
                prop_assert!(check_config(SNAPSHOTTER, snap, dir.path()).0);
                for (k, v) in case.snapshotter.as_object().unwrap() {
                    prop_assert_eq!(&snap[k], v, "snapshotter.{} changed on the way", k);
                }
                if let Some(q) = case.qdrant_sync_json() {
                    let rendered = &gb["qdrant_sync"]["settings"];
                    prop_assert!(check_config(QDRANT_SYNC, rendered, dir.path()).0);
                    for (k, v) in q.as_object().unwrap().iter().filter(|(_, v)| !v.is_null()) {
                        prop_assert_eq!(&rendered[k], v, "qdrant_sync.{} changed on the way", k);
                    }
                }
                if !case.bridges.is_empty() {
                    let rendered = json!({ "bridges": gb["ovs"]["settings"]["bridges"] });
                    prop_assert!(check_config(OVS, &rendered, dir.path()).0);
                    for (b, want) in case.bridges.iter().enumerate() {
                        prop_assert_eq!(&rendered["bridges"][b]["name"], &want["name"]);
                        prop_assert_eq!(&rendered["bridges"][b]["extra_flows"], &want["extra_flows"]);
                    }
                }
                py_compile(&script, dir.path());
            }
            Err(rejected) => {
                // The converse: a config a daemon refuses is refused at its section.
                if !snap_ok.0 {
                    prop_assert!(refused_in(&rejected, &text, &["snapshotter"]), "{}", snap_ok.1);
                }
                if let Some((false, why)) = &sync_ok {
                    prop_assert!(refused_in(&rejected, &text, &["qdrant_sync", "snapshotter"]), "{why}");
                }
                if !ovs_ok.0 {
                    prop_assert!(refused_in(&rejected, &text, &["network.bridges"]), "{}", ovs_ok.1);
                }
            }
        }
    }
}

#[test]
fn the_generator_reaches_both_branches() {
    // The same generator, deterministically: the property above sees plenty of both.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..200 {
        let case = case().new_tree(&mut runner).unwrap().current();
        match spec::load(&case.spec_text()) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(accepted >= 20 && refused >= 40, "accepted {accepted}, refused {refused}");
}

/// For every example host, each daemon's JSON as its NixOS module renders it
/// (evaluated with the repository's Nix harness) passes the daemon's
/// `check-config`, and no module assertion fires.
#[test]
fn every_example_hosts_rendered_configs_pass_check_config() {
    let mut checked = 0;
    for example in ["ghostbridge", "fleet", "minimal", "hetzner"] {
        let hosts = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/generated").join(example).join("hosts");
        for entry in std::fs::read_dir(&hosts).unwrap() {
            let host = entry.unwrap().path().join("default.nix");
            let out = Command::new("nix-instantiate")
                .args(["--eval", "--strict", "--json", "tests/nix/rendered-configs.nix", "--arg", "host"])
                .arg(&host)
                .output()
                .expect("nix-instantiate not found: run `bash .ci/deps` (Debian package nix-bin)");
            assert!(out.status.success(), "{}: {}", host.display(), String::from_utf8_lossy(&out.stderr));
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["failedAssertions"], json!([]), "{}", host.display());
            let dir = tempfile::tempdir().unwrap();
            for (daemon, bin) in
                [("snapshotter", SNAPSHOTTER), ("ovs", OVS), ("qdrant_sync", QDRANT_SYNC), ("doctor", DOCTOR)]
            {
                if v[daemon].is_null() {
                    continue;
                }
                let (ok, why) = check_config(bin, &v[daemon], dir.path());
                assert!(ok, "{}: {daemon}: {why}", host.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} rendered configs were checked");
}
