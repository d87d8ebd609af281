//! A rollout over several hosts: the first `canary` hosts alone, then the
//! rest, at most `parallel` at a time; the first failure stops every host
//! not yet started. Ends with a summary table.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::host::{self, Health, HostReport, Outcome, Progress, Settings};
use super::target::Target;
use crate::runtime::exit::terminal_safe;

/// How hosts are rolled out.
#[derive(Debug, Clone, Copy)]
pub struct Rollout {
    pub parallel: usize,
    pub canary: usize,
}

/// One host to deploy: where it is and the flake attribute of its system.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Target,
    pub attr: String,
}

/// Deploys `jobs` in order; returns one report per job, in the same order.
pub fn deploy(jobs: &[Job], rollout: Rollout, settings: &Settings, progress: Progress) -> Vec<HostReport> {
    let stop = AtomicBool::new(false);
    let mut reports: Vec<Option<HostReport>> = vec![None; jobs.len()];
    let canary = rollout.canary.min(jobs.len());
    for range in [0..canary, canary..jobs.len()] {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let queue = Mutex::new(range.clone().collect::<VecDeque<usize>>());
        let done = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..rollout.parallel.max(1).min(range.len()) {
                scope.spawn(|| {
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else { return };
                        let report = host::deploy(&jobs[i].target, &jobs[i].attr, settings, progress);
                        if report.outcome != Outcome::Committed {
                            stop.store(true, Ordering::SeqCst);
                        }
                        if let Ok(mut d) = done.lock() {
                            d.push((i, report));
                        }
                    }
                });
            }
        });
        for (i, report) in done.into_inner().unwrap_or_default() {
            reports[i] = Some(report);
        }
    }
    reports
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| HostReport {
                host: job.target.host.clone(),
                generation_before: None,
                generation_after: None,
                health: Health::Unchecked,
                outcome: Outcome::NotStarted,
                duration: Duration::ZERO,
            })
        })
        .collect()
}

/// The summary: a table, then each host's reason.
pub fn summary(reports: &[HostReport]) -> String {
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|r| {
            [
                r.host.clone(),
                host::shown(r.generation_before),
                host::shown(r.generation_after),
                r.health.label().to_string(),
                r.outcome.label().to_string(),
                format!("{:.1}s", r.duration.as_secs_f64()),
            ]
        })
        .collect();
    let head = ["HOST", "BEFORE", "AFTER", "HEALTH", "OUTCOME", "TIME"].map(String::from);
    let mut widths = head.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 6]| {
        let parts: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&head);
    for row in &rows {
        out.push_str(&line(row));
    }
    for r in reports {
        if let Some(reason) = r.outcome.reason() {
            out.push_str(&format!("{}: {}: {}\n", r.host, r.outcome.label(), terminal_safe(reason)));
        }
        // Unless the reason already says it (a rejection carries the failed checks).
        if let Health::Unhealthy(why) = &r.health
            && !r.outcome.reason().is_some_and(|reason| reason.contains(why.as_str()))
        {
            out.push_str(&format!("{}: unhealthy: {}\n", r.host, terminal_safe(why)));
        }
    }
    out
}

/// Whether every host ended on the new generation.
pub fn all_committed(reports: &[HostReport]) -> bool {
    reports.iter().all(|r| r.outcome == Outcome::Committed)
}

/// The hosts named on the command line (all when none), narrowed to those
/// carrying every `--tag`; a name the spec does not hold is an error that
/// suggests the closest one.
pub fn select<'a>(
    hosts: &'a [crate::spec::HostSpec],
    names: &[String],
    tags: &[String],
) -> Result<Vec<&'a crate::spec::HostSpec>, String> {
    for name in names {
        if !hosts.iter().any(|h| &h.name == name) {
            let hint = match crate::spec::diagnostic::closest(name, hosts.iter().map(|h| h.name.as_str())) {
                Some(best) => format!("; did you mean {best:?}?"),
                None => String::new(),
            };
            return Err(format!("the spec has no host {:?}{hint}", terminal_safe(name)));
        }
    }
    let chosen: Vec<_> = hosts
        .iter()
        .filter(|h| names.is_empty() || names.contains(&h.name))
        .filter(|h| tags.iter().all(|t| h.deploy.tags.contains(t)))
        .collect();
    if chosen.is_empty() {
        return Err(format!("no host carries the tag{} {}", if tags.len() == 1 { "" } else { "s" }, tags.join(", ")));
    }
    Ok(chosen)
}
