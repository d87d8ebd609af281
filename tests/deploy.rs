//! `ghostgen deploy` against real OpenSSH servers in network namespaces
//! (see `deploy_support`): a healthy generation is confirmed and made the
//! boot default; an unhealthy one, one that cuts the network, one whose
//! deployer dies and one whose agent dies (a reboot) all leave the old
//! generation as the boot default; a failing canary stops the fleet.

mod deploy_support;

use std::path::PathBuf;
use std::time::Duration;

use deploy_support::{Behaviour, Deployer, Target, require_root};

/// A deployer, one host `web1` whose next generation behaves as `next`, and the spec.
fn one_host(next: Behaviour) -> (Deployer, Target, PathBuf) {
    require_root();
    let op = Deployer::new();
    let web1 = Target::new("web1", &op, next);
    let spec = op.spec(&[&web1]);
    (op, web1, spec)
}

/// Running and booting generation 1, as before the deployment.
fn assert_on_the_old_generation(t: &Target) {
    assert_eq!(t.current(), "gen1");
    assert_eq!(t.boot_default(), ("system-1-link".into(), "gen1".into()));
}

fn text(out: &std::process::Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_healthy_generation_is_confirmed_and_becomes_the_boot_default() {
    let (op, web1, spec) = one_host(Behaviour::Good);
    let out = op.deploy(&spec, &["--confirm-timeout", "20s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        web1.log(),
        [
            "gen2 test",
            &format!("nix-env --profile /nix/var/nix/profiles/system --set {}", web1.new_system().display()),
            "gen2 boot"
        ]
    );
    assert_eq!(web1.current(), "gen2");
    assert_eq!(web1.boot_default(), ("system-2-link".into(), "gen2".into()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.starts_with("web1 ")).unwrap_or_else(|| panic!("{}", text(&out)));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["web1", "1", "2", "healthy", "committed"], "{row}");
    // Built and copied with the operator's nix, to the host's store over SSH.
    let nix = op.nix_log();
    assert!(nix.contains("build --no-link --print-out-paths path:"), "{nix}");
    assert!(
        nix.contains(&format!("copy --to ssh-ng://admin@{} {}", web1.address, web1.new_system().display())),
        "{nix}"
    );
    assert!(nix.contains("NIX_SSHOPTS=-i ") && nix.contains(" -p 22"), "{nix}");
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_host_behind_a_jump_host_is_built_in_its_own_store_and_deployed() {
    require_root();
    let op = Deployer::new();
    let web1 = Target::new("web1", &op, Behaviour::Good);
    // Reached only through the jump host: its address is its own loopback,
    // where its sshd also listens (the jump host is the host itself).
    let spec = op.spec_with(&[&web1], "address = \"127.0.0.1\"\njump = \"admin@ADDRESS:22\"\nbuild_on = \"remote\"");
    let config = op.ssh_config();
    let out = op
        .command(&spec, &["--confirm-timeout", "20s"])
        .env("NIX_SSHOPTS", format!("-F {}", config.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(web1.boot_default(), ("system-2-link".into(), "gen2".into()));
    let nix = op.nix_log();
    let store = "--store ssh-ng://admin@127.0.0.1";
    assert!(nix.contains(&format!("build --no-link --print-out-paths --eval-store auto {store}")), "{nix}");
    assert!(nix.contains(&format!("NIX_SSHOPTS=-F {} -p 22 -J admin@{}:22", config.display(), web1.address)), "{nix}");
    assert!(!nix.contains(" copy "), "built in the host's store, nothing to copy: {nix}");
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn an_unhealthy_generation_is_rejected_and_rolled_back_at_once() {
    let (op, web1, spec) = one_host(Behaviour::Unhealthy);
    let started = std::time::Instant::now();
    let out = op.deploy(&spec, &["--confirm-timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(30), "the rollback waited for the timeout");
    assert_eq!(web1.log(), ["gen2 test", "gen1 test"]);
    assert_on_the_old_generation(&web1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unhealthy") && stdout.contains("rolled back"), "{}", text(&out));
    assert!(stdout.contains("unit ghostbridge-ovs.service: failed (exit 1)"), "{}", text(&out));
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_generation_that_cuts_the_network_is_rolled_back_by_the_host_itself() {
    let (op, web1, spec) = one_host(Behaviour::CutsNetwork);
    let deployer = op.spawn(&spec, &["--confirm-timeout", "5s"]);
    web1.wait_phase("waiting", Duration::from_secs(30));
    assert!(!web1.link_up(), "the new generation took the link down");
    let out = deployer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(web1.log(), ["gen2 test", "gen1 test"]);
    assert!(web1.link_up(), "the old generation brought the link back");
    assert_on_the_old_generation(&web1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rolled back: no confirmation within 5s"), "{}", text(&out));
    let row = stdout.lines().find(|l| l.starts_with("web1 ")).unwrap();
    assert_eq!(row.split_whitespace().nth(3), Some("-"), "no health was reported: {row}");
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_failed_activation_is_rolled_back_at_once() {
    let (op, web1, spec) = one_host(Behaviour::BrokenActivation);
    let out = op.deploy(&spec, &["--confirm-timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(web1.log(), ["gen2 test", "gen1 test"]);
    assert_eq!(web1.current(), "gen1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rolled back: activation failed: switch-to-configuration test"), "{}", text(&out));
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_boot_default_that_cannot_be_installed_is_put_back_and_the_host_rolled_back() {
    let (op, web1, spec) = one_host(Behaviour::BrokenBoot);
    let out = op.deploy(&spec, &["--confirm-timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let set = format!("nix-env --profile /nix/var/nix/profiles/system --set {}", web1.new_system().display());
    assert_eq!(
        web1.log(),
        [
            "gen2 test",
            &set,
            "gen2 boot",
            "nix-env --profile /nix/var/nix/profiles/system --switch-generation 1",
            "gen1 boot",
            "gen1 test"
        ]
    );
    assert_on_the_old_generation(&web1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rolled back: making it the boot default failed: switch-to-configuration boot"),
        "{}",
        text(&out)
    );
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn the_host_rolls_back_when_the_deployer_dies_mid_deployment() {
    let (op, web1, spec) = one_host(Behaviour::SlowDoctor);
    let mut deployer = op.spawn(&spec, &["--confirm-timeout", "4s"]);
    web1.wait_phase("waiting", Duration::from_secs(30));
    deployer.kill().unwrap();
    deployer.wait().unwrap();
    let state = web1.wait_phase("rolled-back", Duration::from_secs(30));
    assert_eq!(state["reason"], "no confirmation within 4s");
    assert_eq!(web1.log(), ["gen2 test", "gen1 test"]);
    assert_on_the_old_generation(&web1);
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_reboot_during_the_window_comes_back_on_the_old_generation() {
    let (op, web1, spec) = one_host(Behaviour::SlowDoctor);
    let deployer = op.spawn(&spec, &["--confirm-timeout", "8s"]);
    web1.wait_phase("waiting", Duration::from_secs(30));
    // The unit dies as in a reboot: nothing after activation ran.
    web1.kill_agent();
    assert_eq!(web1.boot_default(), ("system-1-link".into(), "gen1".into()));
    let out = deployer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(web1.log(), ["gen2 test"], "nothing made gen2 the boot default");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted: the agent stopped while waiting"), "{}", text(&out));
    assert!(stdout.contains("the boot default is unchanged"), "{}", text(&out));
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_failing_canary_stops_the_fleet_before_any_other_host_is_touched() {
    require_root();
    let op = Deployer::new();
    let web1 = Target::new("web1", &op, Behaviour::Unhealthy);
    let web2 = Target::new("web2", &op, Behaviour::Good);
    let web3 = Target::new("web3", &op, Behaviour::Good);
    let spec = op.spec(&[&web1, &web2, &web3]);
    let out = op.deploy(&spec, &["--canary", "1", "--parallel", "2", "--confirm-timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(web1.log(), ["gen2 test", "gen1 test"]);
    for t in [&web2, &web3] {
        assert!(t.log().is_empty(), "{} was touched: {:?}", t.host, t.log());
        assert!(t.states().is_empty());
    }
    assert!(!op.nix_log().contains("web2") && !op.nix_log().contains("web3"), "{}", op.nix_log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for host in ["web2", "web3"] {
        let row = stdout.lines().find(|l| l.starts_with(host)).unwrap_or_else(|| panic!("{}", text(&out)));
        assert!(row.contains("not started"), "{row}");
    }
}

#[test]
#[ignore = "needs root: network namespaces, sshd, bind mounts"]
fn a_fleet_deploys_in_parallel_and_every_host_ends_on_the_new_generation() {
    require_root();
    let op = Deployer::new();
    let hosts: Vec<Target> = (1..=3).map(|i| Target::new(&format!("web{i}"), &op, Behaviour::Good)).collect();
    let spec = op.spec(&hosts.iter().collect::<Vec<_>>());
    let out = op.deploy(&spec, &["--canary", "1", "--parallel", "2", "--confirm-timeout", "20s"]);
    assert!(out.status.success(), "{}", text(&out));
    for t in &hosts {
        assert_eq!(t.boot_default(), ("system-2-link".into(), "gen2".into()), "{}", t.host);
    }
}
