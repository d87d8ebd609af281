//! Which snapshots stay: every snapshot younger than `retention`, and past
//! that, per tier, one snapshot per `every` for as long as `keep` (every
//! second for a minute, every minute for an hour, ...). The one kept in a
//! bucket is the first at or after the bucket's boundary; boundaries are
//! multiples of `every` on the steady clock, so what is kept is a pure
//! function of the snapshots' times: restarts, downtime and how often the
//! policy runs never change it. That holds because each tier's `every` is a
//! multiple of the one before and its `keep` longer (checked by `validate`):
//! the first snapshot of a coarse bucket is the first of a fine one, so the
//! fine tier still holds it until the coarse one takes over.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::runtime::config::{Finding, PathSeg};
use crate::runtime::duration::HumanDuration;

/// One tier of a retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Keep one snapshot per this long ("1m": the first of each minute).
    pub every: HumanDuration,
    /// For this long after it was taken ("1h").
    pub keep: HumanDuration,
}

/// A retention policy: `retention` (keep everything) and the tiers after it.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub retention_ns: i64,
    pub tiers: &'a [Tier],
}

fn ns(d: &HumanDuration) -> i64 {
    i64::try_from(d.as_duration().as_nanos()).unwrap_or(i64::MAX).max(1)
}

impl<'a> Policy<'a> {
    /// The policy of a `retention` and its tiers.
    pub fn new(retention: std::time::Duration, tiers: &'a [Tier]) -> Policy<'a> {
        Policy { retention_ns: i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX), tiers }
    }

    /// The heights among `live` (height, steady time in ns; any order) that
    /// the policy no longer keeps at steady time `now_ns`.
    pub fn expired(&self, now_ns: i64, live: &[(u64, i64)]) -> Vec<u64> {
        let mut by_time: Vec<(u64, i64)> = live.to_vec();
        by_time.sort_by_key(|(h, t)| (*t, *h));
        let mut out = Vec::new();
        for (i, (height, t)) in by_time.iter().enumerate() {
            let age = now_ns.saturating_sub(*t);
            if age < self.retention_ns {
                continue;
            }
            let previous = i.checked_sub(1).map(|p| by_time[p].1);
            let kept = self.tiers.iter().any(|tier| {
                let every = ns(&tier.every);
                age < ns(&tier.keep) && previous.is_none_or(|p| p.div_euclid(every) != t.div_euclid(every))
            });
            if !kept {
                out.push(*height);
            }
        }
        out.sort_unstable();
        out
    }

    /// The most snapshots the policy keeps at once, with one every
    /// `interval`: the sum of [`Policy::max_live_per_tier`].
    pub fn max_live(&self, interval_ns: i64) -> u64 {
        self.max_live_per_tier(interval_ns).into_iter().fold(0, u64::saturating_add)
    }

    /// The most snapshots kept at once by the retention, then by each tier:
    /// a tier holds those older than the keep before it (the retention's
    /// for the first), at most one per bucket, plus one for the bucket a
    /// tick's jitter can split. Coarser tiers keep first-of-bucket snapshots
    /// that are also the finer tiers' (the nesting `validate` requires), so
    /// no snapshot is counted twice.
    pub fn max_live_per_tier(&self, interval_ns: i64) -> Vec<u64> {
        let interval = interval_ns.max(1);
        let mut out = vec![(self.retention_ns / interval) as u64 + 1];
        let mut before = self.retention_ns;
        for tier in self.tiers {
            let span = ns(&tier.keep).saturating_sub(before).max(0);
            out.push((span / ns(&tier.every).max(interval)) as u64 + 1);
            before = before.max(ns(&tier.keep));
        }
        out
    }
}

/// The rules that make the policy a pure function of times (see the module doc).
pub fn validate(tiers: &[Tier], interval: &HumanDuration, retention: &HumanDuration) -> Vec<Finding> {
    let mut out = Vec::new();
    let at = |i: usize, key: &str| vec![PathSeg::from("tiers"), PathSeg::Index(i), PathSeg::from(key)];
    for (i, tier) in tiers.iter().enumerate() {
        if ns(&tier.every) < ns(interval) {
            out.push(Finding::new(
                at(i, "every"),
                format!("every {} is shorter than interval {}: it would keep every snapshot", tier.every, interval),
                format!("keep at most one per interval: every = \"{interval}\" or longer"),
            ));
        }
        if ns(&tier.keep) <= ns(retention) {
            out.push(Finding::new(
                at(i, "keep"),
                format!(
                    "keep {} is not longer than retention {}, which keeps everything that long",
                    tier.keep, retention
                ),
                "a tier keeps snapshots past the retention: make keep longer than retention",
            ));
        }
        if let Some(before) = i.checked_sub(1).map(|b| &tiers[b]) {
            if ns(&tier.every) <= ns(&before.every) || ns(&tier.every) % ns(&before.every) != 0 {
                out.push(Finding::new(
                    at(i, "every"),
                    format!("every {} is not a multiple of the tier before's {}", tier.every, before.every),
                    "each tier keeps coarser buckets than the one before, a whole number of them: e.g. \"1s\", \"1m\", \"1h\", \"1d\"",
                ));
            }
            if ns(&tier.keep) <= ns(&before.keep) {
                out.push(Finding::new(
                    at(i, "keep"),
                    format!("keep {} is not longer than the tier before's {}", tier.keep, before.keep),
                    "coarser tiers keep longer: e.g. 1s for 1m, 1m for 1h, 1h for 1d",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    fn tier(every: &str, keep: &str) -> Tier {
        Tier { every: every.parse().unwrap(), keep: keep.parse().unwrap() }
    }

    #[test]
    fn keeps_everything_young_then_the_first_of_each_bucket() {
        let tiers = [tier("10s", "1m")];
        let p = Policy { retention_ns: 5 * S, tiers: &tiers };
        // One snapshot a second for 100 s; now = 100 s.
        let live: Vec<(u64, i64)> = (0..100).map(|i| (i as u64, i * S)).collect();
        let gone = p.expired(100 * S, &live);
        let kept: Vec<u64> = (0..100).filter(|h| !gone.contains(h)).collect();
        // Younger than 5 s: 96..99; older but younger than 1 m: the first of each 10 s bucket.
        assert_eq!(kept, vec![50, 60, 70, 80, 90, 96, 97, 98, 99]);
        assert_eq!(p.max_live_per_tier(S), [5 + 1, 5 + 1]);
        assert_eq!(p.max_live(S), 12);
        // Without tiers it is the single retention: age >= retention goes.
        let single = Policy { retention_ns: 5 * S, tiers: &[] };
        assert_eq!(single.expired(100 * S, &live).len(), 96);
    }

    #[test]
    fn tiers_must_nest() {
        let (i, r) = ("1s".parse().unwrap(), "1m".parse().unwrap());
        assert!(validate(&[tier("1s", "2m"), tier("1m", "1h"), tier("1h", "1d")], &i, &r).is_empty());
        let f = validate(&[tier("1m", "1h"), tier("90s", "2h")], &i, &r);
        assert!(f.iter().any(|f| f.message.contains("not a multiple")), "{f:?}");
        let f = validate(&[tier("1m", "1h"), tier("1h", "30m")], &i, &r);
        assert!(f.iter().any(|f| f.message.contains("not longer than the tier before")), "{f:?}");
        let f = validate(&[tier("1m", "30s")], &i, &r);
        assert!(f.iter().any(|f| f.message.contains("not longer than retention")), "{f:?}");
    }

    /// What `ghostgen check` prints (`max_live`) against a simulated day of the
    /// daemon: a snapshot a second, pruned at every tick as the daemon does.
    /// The bound is never exceeded and is tight: each tier (and the retention)
    /// counts at most one boundary snapshot more than is ever live.
    #[test]
    fn the_preview_bounds_a_simulated_day_tightly() {
        let tiers = [tier("1m", "1h"), tier("1h", "1d")];
        let p = Policy { retention_ns: 60 * S, tiers: &tiers };
        let bound = p.max_live(S);
        assert_eq!(p.max_live_per_tier(S), [61, 60, 24]);
        let mut live: Vec<(u64, i64)> = Vec::new();
        let mut most = 0;
        for h in 0..86_400u64 + 3_600 {
            let now = h as i64 * S;
            live.push((h, now));
            let gone = p.expired(now, &live);
            live.retain(|(x, _)| gone.binary_search(x).is_err());
            most = most.max(live.len() as u64);
        }
        assert!(most <= bound, "{most} live at once, more than the preview's {bound}");
        assert!(bound - most <= tiers.len() as u64 + 1, "{most} live at most: the preview's {bound} is loose");
    }

    proptest! {
        /// Pruning at any sequence of moments keeps exactly what pruning once,
        /// at the last moment, keeps: restarts and downtime change nothing.
        #[test]
        fn what_is_kept_does_not_depend_on_when_the_policy_ran(
            gaps in prop::collection::vec(1i64..4, 50..400),
            runs in prop::collection::vec(0usize..400, 0..30),
        ) {
            let tiers = [tier("4s", "40s"), tier("20s", "200s"), tier("60s", "600s")];
            let p = Policy { retention_ns: 3 * S, tiers: &tiers };
            let mut t = 0;
            let all: Vec<(u64, i64)> = gaps.iter().enumerate().map(|(h, g)| { t += g * S; (h as u64, t) }).collect();
            let end = t + 30 * S;
            let mut live: Vec<(u64, i64)> = Vec::new();
            let mut runs = runs.clone();
            runs.sort_unstable();
            let mut next_run = runs.into_iter().peekable();
            for (i, block) in all.iter().enumerate() {
                live.push(*block);
                while next_run.peek().is_some_and(|r| *r <= i) {
                    next_run.next();
                    let gone = p.expired(block.1, &live);
                    live.retain(|(h, _)| !gone.contains(h));
                }
            }
            let gone = p.expired(end, &live);
            live.retain(|(h, _)| !gone.contains(h));
            let once_gone = p.expired(end, &all);
            let once: Vec<(u64, i64)> = all.iter().copied().filter(|(h, _)| !once_gone.contains(h)).collect();
            prop_assert_eq!(live, once);
        }
    }
}
