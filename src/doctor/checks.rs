//! The checks, each independent: one that cannot run says so (`Unknown`) and
//! the others still run.

use std::path::Path;
use std::process::Command;

use super::{Check, DoctorConfig, State};
use crate::runtime::config;
use crate::snapshot::recover::parse_snapshot_name;
use crate::snapshot::store::Store;

/// Blocks recomputed from the head back: an hour at 1 Hz (`verify` checks them all).
const VERIFY_BLOCKS: u64 = 3_600;

/// `systemctl is-active UNIT` says `active`.
pub fn unit(name: &str) -> Check {
    let what = format!("unit {name}");
    match Command::new("systemctl").args(["is-active", "--", name]).output() {
        Ok(out) => {
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "active" {
                Check::new(what, State::Ok, "active")
            } else {
                Check::new(what, State::Fail, format!("{state}: see `systemctl status {name}` and its journal"))
            }
        }
        Err(e) => Check::new(what, State::Unknown, format!("cannot run systemctl: {e}")),
    }
}

/// Open vSwitch matches the reconciler's config: bridges, ports, flows, offloads.
pub fn ovs(path: &Path) -> Check {
    let what = "open vswitch";
    let cfg = match config::load::<crate::ovs::Config>(path) {
        Ok(c) => c,
        Err(e) => return Check::new(what, State::Unknown, e.to_string()),
    };
    let addr = match crate::ovs::DbAddr::parse(&cfg.ovsdb) {
        Ok(a) => a,
        Err(e) => return Check::new(what, State::Unknown, e.to_string()),
    };
    match crate::ovs::status::status(&addr, &cfg, &crate::ovs::Options::default()) {
        Ok(s) if s.drift.is_empty() => {
            Check::new(what, State::Ok, format!("{} bridge(s) as configured", cfg.bridges.len()))
        }
        Ok(s) => Check::new(
            what,
            State::Fail,
            format!("drift: {}; `ghostbridge-ovs apply` converges it", s.drift.join("; ")),
        ),
        Err(e) => Check::new(what, State::Fail, e.to_string()),
    }
}

/// The chain verifies over its newest blocks, the newest snapshot is on time,
/// and the snapshot file system has room and not too many snapshots.
pub fn snapshotter(path: &Path, doctor: &DoctorConfig) -> Vec<Check> {
    let cfg = match config::load::<crate::snapshot::config::Config>(path) {
        Ok(c) => c,
        Err(e) => return vec![Check::new("snapshot chain", State::Unknown, e.to_string())],
    };
    let mut out = Vec::new();
    match Store::open_reader(&cfg.database) {
        Err(e) => out.push(Check::new("snapshot chain", State::Fail, e.to_string())),
        Ok(store) => {
            match store.verify_tail(Some(VERIFY_BLOCKS)) {
                Ok(v) if v.ok() => {
                    out.push(Check::new("snapshot chain", State::Ok, format!("newest {} blocks verify", v.checked)))
                }
                Ok(v) => out.push(Check::new("snapshot chain", State::Fail, v.message())),
                Err(e) => out.push(Check::new("snapshot chain", State::Fail, e.to_string())),
            }
            let interval = cfg.interval.as_duration();
            // Late when three ticks were missed (and at least 10 s: a restart takes a few).
            let bound = (interval * 3).max(std::time::Duration::from_secs(10));
            match store.head() {
                Ok(Some(head)) => {
                    let age_ns = crate::snapshot::clock::realtime_ns().saturating_sub(head.time_ns);
                    let age = std::time::Duration::from_nanos(age_ns.max(0) as u64);
                    let state = if age <= bound { State::Ok } else { State::Fail };
                    out.push(Check::new(
                        "newest snapshot",
                        state,
                        format!(
                            "block {} taken {:.1} s ago (bound {:.0} s)",
                            head.height,
                            age.as_secs_f64(),
                            bound.as_secs_f64()
                        ),
                    ));
                }
                Ok(None) => out.push(Check::new("newest snapshot", State::Fail, "the chain is empty")),
                Err(e) => out.push(Check::new("newest snapshot", State::Fail, e.to_string())),
            }
        }
    }
    out.push(space(&cfg.snapshot_dir, doctor.min_free_bytes));
    out.push(live_snapshots(&cfg.snapshot_dir, doctor.max_live_snapshots));
    out
}

fn space(dir: &Path, min_free: u64) -> Check {
    let what = "free space";
    match nix::sys::statvfs::statvfs(dir) {
        Ok(st) => {
            let free = st.blocks_available().saturating_mul(st.fragment_size());
            let state = if free >= min_free { State::Ok } else { State::Fail };
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            Check::new(
                what,
                state,
                format!("{:.2} GiB free on {} (bound {:.2} GiB)", gib(free), dir.display(), gib(min_free)),
            )
        }
        Err(e) => Check::new(what, State::Unknown, format!("{}: {e}", dir.display())),
    }
}

fn live_snapshots(dir: &Path, max: u64) -> Check {
    let what = "live snapshots";
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let n = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().and_then(parse_snapshot_name).is_some())
                .count() as u64;
            let state = if n <= max { State::Ok } else { State::Fail };
            Check::new(what, state, format!("{n} in {} (bound {max})", dir.display()))
        }
        Err(e) => Check::new(what, State::Unknown, format!("{}: {e}", dir.display())),
    }
}

/// The Qdrant sync's cursor is at most `max_lag` blocks behind the chain's head.
pub fn qdrant_sync(path: &Path, max_lag: u64) -> Check {
    let what = "qdrant sync lag";
    let cfg = match config::load::<crate::vectors::SyncConfig>(path) {
        Ok(c) => c,
        Err(e) => return Check::new(what, State::Unknown, e.to_string()),
    };
    let consumer = crate::vectors::sync::consumer_names(&cfg.collection).blocks;
    let read = crate::vectors::chain::ChainDb::open_read_only(&cfg.database)
        .and_then(|db| Ok((db.head()?.unwrap_or(-1), db.cursor(&consumer)?)));
    match read {
        Ok((head, cursor)) => {
            let lag = (head - cursor).max(0) as u64;
            let state = if lag <= max_lag { State::Ok } else { State::Fail };
            Check::new(what, state, format!("{lag} block(s) behind the head {head} (bound {max_lag})"))
        }
        Err(e) => Check::new(what, State::Fail, e.to_string()),
    }
}

/// Something listens on TCP `port` (IPv4 or IPv6), from /proc/net/tcp{,6}.
pub fn listening(service: &str, port: u16) -> Check {
    let what = format!("{service} on port {port}");
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        readable = true;
        if listens(&text, port) {
            return Check::new(what, State::Ok, "listening");
        }
    }
    if readable {
        Check::new(what, State::Fail, format!("nothing listens on TCP port {port}: is {service} running?"))
    } else {
        Check::new(what, State::Unknown, "cannot read /proc/net/tcp")
    }
}

/// Whether a /proc/net/tcp table has a socket in state LISTEN (0A) on `port`.
fn listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port =
            fields.get(1).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && fields.get(3) == Some(&"0A")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_in_the_proc_table() {
        let table = "  sl  local_address rem_address   st\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000\n   1: 0100007F:1F90 0100007F:C350 01 0\n";
        assert!(listens(table, 22));
        assert!(!listens(table, 8080), "an established connection is not a listener");
        assert!(!listens(table, 2222));
    }
}
