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
fn command_build(spec: &Path, out: &Path) -> (Duration, i64) {
    let out = out.display().to_string();
    let (wall, rss, code) = command(&["build", &spec.display().to_string(), "-o", &out, "--force"]);
    assert_eq!(code, 0, "ghostgen build failed");
    (wall, rss)
}

/// Wall time, peak RSS (KiB) and exit status of one `ghostgen` process.
#[expect(clippy::zombie_processes, reason = "the child is reaped by wait4, which also reads its rusage")]
fn command(args: &[&str]) -> (Duration, i64, i32) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ghostgen"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ghostgen");
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel; the pid is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    (start.elapsed(), usage.ru_maxrss, libc::WEXITSTATUS(status))
}

/// A spec of about `bytes` full of mistakes: one line with an array of wrongly
/// typed items (the shape that once printed gigabytes), then unknown keys.
fn erroneous(bytes: usize) -> String {
    let mut s = format!(
        "[host]\nname = \"web1\"\nstate_version = \"25.11\"\n[[users]]\nname = \"ops\"\nadmin = true\nssh_keys = [\"{KEY}\"]\n[boot]\nkernel_params = ["
    );
    let items = bytes / 4;
    for i in 0..items {
        s.push_str(if i == 0 { "1" } else { ", 1" });
    }
    s.push_str("]\n[ssh]\n");
    let mut i = 0;
    while s.len() < bytes * 2 {
        s.push_str(&format!("prot{i} = 22\n"));
        i += 1;
    }
    s
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

    // Durability with unrelated dirty data on the same file system: the build
    // flushes only what it wrote; the old way (one `syncfs`) waited for all of it.
    println!();
    println!(
        "| reference build, 512 MiB of another program's data not yet written back | `ghostgen build` wall | one `syncfs` (the old flush) |"
    );
    println!("|---|---:|---:|");
    for _ in 0..2 {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let spec_path = dir.path().join("spec.toml");
        std::fs::write(&spec_path, fleet(1)).expect("write spec");
        let dirty = dir.path().join("dirty.bin");
        let _ = std::process::Command::new("sync").status();
        std::fs::write(&dirty, vec![7u8; 512 << 20]).expect("dirty data");
        let (ours, _) = command_build(&spec_path, &dir.path().join("ours"));
        let start = Instant::now();
        let d = std::fs::File::open(dir.path()).expect("open");
        nix::unistd::syncfs(&d).expect("syncfs");
        let old = start.elapsed();
        println!("| run | {:.1} ms | {:.1} ms |", ours.as_secs_f64() * 1e3, old.as_secs_f64() * 1e3);
    }

    // `ghostgen check` on specs full of mistakes: time and memory linear in size.
    println!();
    println!("| spec full of mistakes | size | `ghostgen check` wall (best of 3) | peak RSS | exit |");
    println!("|---|---:|---:|---:|---:|");
    for kib in [2usize, 20, 200, 2000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = erroneous(kib * 1024 / 2);
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &text).expect("write spec");
        let runs: Vec<(Duration, i64, i32)> =
            (0..3).map(|_| command(&["check", &path.display().to_string()])).collect();
        let (wall, rss, code) = runs.iter().min().copied().expect("runs");
        println!(
            "| {kib} KiB | {} bytes | {:.1} ms | {:.1} MiB | {code} |",
            text.len(),
            wall.as_secs_f64() * 1e3,
            rss as f64 / 1024.0
        );
    }
}
