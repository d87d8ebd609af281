//! What the target-side agent reports of one deployment: its phase, the
//! generations before and after, and why it ended as it did. The agent writes
//! it as JSON into its state folder; the deployer reads the same JSON over
//! SSH. One definition for both sides.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `switch-to-configuration test` of the new generation is running.
    Activating,
    /// The new generation is live; the boot default is still the old one.
    Waiting,
    /// Confirmed: the profile and the boot default are being set.
    Committing,
    /// The new generation is live and the boot default.
    Committed,
    /// Switching back to the remembered generation.
    RollingBack,
    /// Back on the remembered generation (boot default never changed).
    RolledBack,
    /// Something the agent could not undo: see `reason`; needs an operator.
    Failed,
    /// The agent was stopped (SIGTERM, shutdown) before it finished; the
    /// boot default is the old generation unless the phase was `committing`.
    Interrupted,
}

impl Phase {
    /// Whether the agent is done with this deployment.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Committed | Phase::RolledBack | Phase::Failed | Phase::Interrupted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Activating => "activating",
            Phase::Waiting => "waiting",
            Phase::Committing => "committing",
            Phase::Committed => "committed",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
            Phase::Failed => "failed",
            Phase::Interrupted => "interrupted",
        }
    }
}

/// One deployment as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployState {
    /// The deployment's id (also the transient unit's name suffix).
    pub id: String,
    pub phase: Phase,
    /// The process running the deployment, and when it started (clock ticks
    /// after boot), to tell a live agent from a dead one whose pid was reused.
    pub pid: u32,
    pub pid_started: Option<u64>,
    /// The system that was running when the deployment began (`/run/current-system`).
    pub system_before: String,
    /// The system being deployed.
    pub system_after: String,
    /// The system profile's generation number before, and after a commit.
    pub generation_before: Option<u32>,
    pub generation_after: Option<u32>,
    /// While waiting: milliseconds left until the agent rolls back by itself
    /// (computed when the state is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_within_ms: Option<u64>,
    /// While waiting: when the agent rolls back by itself, on the host's boot
    /// clock (milliseconds; `CLOCK_BOOTTIME` never steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_deadline_ms: Option<u64>,
    /// Why the deployment ended as it did (rolled back, failed, interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The generation number of a profile link's target, `system-42-link` -> 42.
pub fn generation_of(link_target: &Path) -> Option<u32> {
    let name = link_target.file_name()?.to_str()?;
    let rest = name.strip_suffix("-link")?;
    let (_, number) = rest.rsplit_once('-')?;
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_numbers_come_from_profile_links() {
        assert_eq!(generation_of(Path::new("system-42-link")), Some(42));
        assert_eq!(generation_of(Path::new("/nix/var/nix/profiles/system-7-link")), Some(7));
        assert_eq!(generation_of(Path::new("/nix/store/abc-nixos-system")), None);
        assert_eq!(generation_of(Path::new("system-x-link")), None);
    }

    #[test]
    fn phases_print_as_their_json_names() {
        for p in [Phase::Activating, Phase::RollingBack, Phase::RolledBack, Phase::Interrupted] {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.as_str()));
        }
    }
}
