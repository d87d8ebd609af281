//! The daemons' own rules, applied to the spec: each daemon section is that
//! daemon's config (or converts to it), so `ghostgen check` calls the same
//! `validate()` as the daemon's `check-config`, and maps every finding from
//! the config key back to the spec key that set it.

use super::Ctx;
use crate::ovs::config::Config as OvsConfig;
use crate::runtime::config::{DaemonConfig, Finding, PathSeg};
use crate::snapshot::config::Config as SnapshotterConfig;
use crate::spec::model::{Bridge, HostSpec};
use crate::vectors::config::SyncConfig;

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    sections(host.snapshotter.as_ref(), host.qdrant_sync.as_ref(), Some(&host.ovs_config()), ctx);
}

/// A host that did not decode as a whole (its errors are already reported):
/// each daemon section that decodes by itself is still checked, so that one
/// run reports every problem.
pub fn check_undecoded(ctx: &mut Ctx) {
    let json = |path: &[&str]| {
        let path: Vec<PathSeg> = path.iter().map(|k| PathSeg::from(*k)).collect();
        ctx.node.at(&path).map(|(n, _)| n.to_json())
    };
    let snapshotter: Option<SnapshotterConfig> = json(&["snapshotter"]).and_then(|j| serde_json::from_value(j).ok());
    let qdrant_sync: Option<SyncConfig> = json(&["qdrant_sync"]).and_then(|j| serde_json::from_value(j).ok());
    let bridges: Option<Vec<Bridge>> = json(&["network", "bridges"]).and_then(|j| serde_json::from_value(j).ok());
    let ovs = bridges.map(|b| OvsConfig { bridges: b.iter().map(Bridge::ovs).collect(), ..OvsConfig::default() });
    sections(snapshotter.as_ref(), qdrant_sync.as_ref(), ovs.as_ref(), ctx);
}

fn sections(
    snapshotter: Option<&SnapshotterConfig>,
    qdrant_sync: Option<&SyncConfig>,
    ovs: Option<&OvsConfig>,
    ctx: &mut Ctx,
) {
    if let Some(c) = snapshotter {
        report(ctx, &["snapshotter"], c.validate());
    }
    if let Some(c) = qdrant_sync {
        report(ctx, &["qdrant_sync"], c.validate());
    }
    let Some(ovs) = ovs else { return };
    // `bridges[i]...` of the OVS config is `network.bridges[i]...` of the spec.
    let ovs = ovs.validate().into_iter().map(|mut f| {
        if f.path.first() == Some(&PathSeg::from("bridges")) {
            f.path.insert(0, PathSeg::from("network"));
            // A help that points at another bridge key points into the spec too.
            f.help = f.help.replace(" at bridges[", " at network.bridges[");
        }
        f
    });
    report(ctx, &[], ovs.collect());
}

fn report(ctx: &mut Ctx, prefix: &[&str], findings: Vec<Finding>) {
    for f in findings {
        let mut path: Vec<PathSeg> = prefix.iter().map(|k| PathSeg::from(*k)).collect();
        path.extend(f.path);
        ctx.error(path, f.message, f.help);
    }
}
