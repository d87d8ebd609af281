//! The daemons' own rules, applied to the spec: each daemon section is that
//! daemon's config (or converts to it), so `ghostgen check` calls the same
//! `validate()` as the daemon's `check-config`, and maps every finding from
//! the config key back to the spec key that set it.

use super::Ctx;
use crate::runtime::config::{DaemonConfig, Finding, PathSeg};
use crate::spec::model::HostSpec;

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    if let Some(c) = &host.snapshotter {
        report(ctx, &["snapshotter"], c.validate());
    }
    if let Some(c) = &host.qdrant_sync {
        report(ctx, &["qdrant_sync"], c.validate());
    }
    // `bridges[i]...` of the OVS config is `network.bridges[i]...` of the spec.
    let ovs = host.ovs_config().validate().into_iter().map(|mut f| {
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
