//! The deploy's own overhead, build and copy excluded (the `nix` double
//! answers at once), against real sshd targets in network namespaces (see
//! `tests/deploy_support`): one host, and 50 hosts in parallel. The baseline,
//! measured in the same run, is what `nixos-rebuild switch --target-host`
//! does after its copy: `nix-env --set` and `switch-to-configuration switch`
//! over SSH, with no health check and no way back. Needs root.
//! Run: `cargo bench --bench deploy` (`GB_BENCH_RUNS=3` for fewer runs).

#[path = "../tests/deploy_support/mod.rs"]
mod deploy_support;

use std::time::{Duration, Instant};

use deploy_support::{Behaviour, Deployer, Target, require_root};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The unsafe deployment of every target at once, as nixos-rebuild does after the copy.
fn baseline(op: &Deployer, targets: &[Target]) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in targets {
            scope.spawn(move || {
                let system = t.new_system();
                let set = format!("sudo -n nix-env --profile /nix/var/nix/profiles/system --set {}", system.display());
                let switch = format!("sudo -n {}/bin/switch-to-configuration switch", system.display());
                for remote in [set, switch] {
                    let out = t.ssh(op, &remote).output().unwrap();
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                }
            });
        }
    });
    started.elapsed()
}

fn ours(op: &Deployer, spec: &std::path::Path, hosts: usize) -> Duration {
    let parallel = hosts.to_string();
    let started = Instant::now();
    let out = op.deploy(spec, &["--parallel", &parallel, "--confirm-timeout", "60s"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    took
}

fn main() {
    require_root();
    let runs: usize = std::env::var("GB_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    println!("deploy overhead (build and copy excluded), median of {runs} runs:");
    println!("{:<28} {:>12} {:>14} {:>8}", "", "ghostgen", "nixos-rebuild", "extra");
    for hosts in [1usize, 50] {
        let op = Deployer::new();
        let targets: Vec<Target> = (0..hosts).map(|i| Target::new(&format!("h{i}"), &op, Behaviour::Good)).collect();
        let spec = op.spec(&targets.iter().collect::<Vec<_>>());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            a.push(ours(&op, &spec, hosts));
            targets.iter().for_each(Target::reset);
            b.push(baseline(&op, &targets));
            targets.iter().for_each(Target::reset);
        }
        let (a, b) = (median(a), median(b));
        let label = if hosts == 1 { "1 host".to_string() } else { format!("{hosts} hosts, --parallel {hosts}") };
        println!("{label:<28} {:>12} {:>14} {:>8}", secs(a), secs(b), secs(a.saturating_sub(b)));
    }
}
