//! Benchmark of `ghostgen build`: the reference spec and generated fleets of
//! 10, 100 and 1000 hosts. For each: the library's load + plan + write time
//! (median of several runs, in-process) and the whole command's wall time and
//! peak resident memory (a child process measured with wait4).
//!
//! Run: `cargo bench --bench ghostgen`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q ops@desk";

/// A fleet of `n` hosts, each with a disk layout, two bridges, snapshots and monitoring.
fn fleet(n: usize) -> String {
    let mut s = format!(
        "[defaults]\nstate_version = \"25.11\"\n[[defaults.users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n\
         [defaults.monitoring]\n[defaults.disk]\ndevice = \"/dev/nvme0n1\"\n\
         [[defaults.disk.subvolumes]]\nname = \"@\"\nmount = \"/\"\ncompress = \"zstd:3\"\n\
         [[defaults.disk.subvolumes]]\nname = \"@data\"\nmount = \"/srv/data\"\ncompress = \"zstd:9\"\n\
         [[defaults.disk.subvolumes]]\nname = \"@chain\"\nmount = \"/var/lib/chain\"\n\
         [defaults.snapshotter]\nsource = \"/srv/data\"\nsnapshot_dir = \"/var/lib/chain/snapshots\"\ndatabase = \"/var/lib/chain/chain.db\"\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "[[hosts]]\nname = \"node{i}\"\n[[hosts.network.bridges]]\nname = \"ovsbr0\"\nuplink = \"enp1s0\"\n\
             addresses = [\"10.{}.{}.2/24\"]\ngateway = \"10.{}.{}.1\"\n[[hosts.network.bridges]]\nname = \"ovsbr1\"\naddresses = [\"172.16.0.1/24\"]\n",
            i / 256, i % 256, i / 256, i % 256
        ));
    }
    s
}

/// (total, load, plan, write) of one in-process build.
fn library_build(text: &str, out: &Path) -> [Duration; 4] {
    let start = Instant::now();
    let loaded = ghostbridge::spec::load(text).expect("bench spec is valid");
    let t_load = start.elapsed();
    let files = ghostbridge::generate::plan(&loaded.spec, "spec.toml").expect("plan");
    let t_plan = start.elapsed();
    ghostbridge::generate::write::write(out, &files, "spec.toml", text, true).expect("write");
    let total = start.elapsed();
    [total, t_load, t_plan - t_load, total - t_plan]
}

/// Wall time and peak RSS (KiB) of one `ghostgen build` process.
#[expect(clippy::zombie_processes, reason = "the child is reaped by wait4, which also reads its rusage")]
fn command_build(spec: &Path, out: &Path) -> (Duration, i64) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ghostgen"))
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .arg("--force")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn ghostgen");
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel; the pid is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0 && status == 0, "ghostgen failed");
    (start.elapsed(), usage.ru_maxrss)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ghostbridge.toml"))
        .expect("reference spec");
    let cases: Vec<(String, String, usize)> = vec![
        ("reference".into(), reference, 1),
        ("fleet-10".into(), fleet(10), 10),
        ("fleet-100".into(), fleet(100), 100),
        ("fleet-1000".into(), fleet(1000), 1000),
    ];
    println!(
        "| spec | hosts | files | library build (median) | load / plan / write | per host | `ghostgen build` wall | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, text, hosts) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let runs = if hosts >= 1000 { 5 } else { 15 };
        let runs: Vec<[Duration; 4]> = (0..runs)
            .map(|i| {
                let out = dir.path().join(format!("lib{i}"));
                library_build(&text, &out)
            })
            .collect();
        let phase = |k: usize| median(runs.iter().map(|r| r[k]).collect());
        let times: Vec<Duration> = runs.iter().map(|r| r[0]).collect();
        let spec_path = dir.path().join("spec.toml");
        std::fs::write(&spec_path, &text).expect("write spec");
        let (wall, rss) =
            (0..3).map(|i| command_build(&spec_path, &dir.path().join(format!("cmd{i}")))).min().expect("runs");
        let files = std::fs::read_to_string(dir.path().join("cmd0/.ghostgen-manifest.json"))
            .map(|m| m.matches(".nix\"").count())
            .unwrap_or(0);
        let med = median(times);
        println!(
            "| {name} | {hosts} | {files} | {:.1} ms | {:.1} / {:.1} / {:.1} ms | {:.2} ms | {:.1} ms | {:.1} MiB |",
            med.as_secs_f64() * 1e3,
            phase(1).as_secs_f64() * 1e3,
            phase(2).as_secs_f64() * 1e3,
            phase(3).as_secs_f64() * 1e3,
            med.as_secs_f64() * 1e3 / hosts as f64,
            wall.as_secs_f64() * 1e3,
            rss as f64 / 1024.0
        );
    }
}
