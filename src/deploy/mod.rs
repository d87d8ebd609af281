//! Safe deployments (`ghostgen deploy`): a new generation is activated live,
//! checked by the host's own doctor over a new SSH connection, and made the
//! boot default only once confirmed; otherwise the host switches back by
//! itself. The deployer side ([`fleet`], [`host`], [`build`], [`target`])
//! runs the operator's own `ssh` and `nix`; the target side ([`agent`]) is
//! `ghostbridge-deploy-agent` in a transient systemd unit. [`state`] is what
//! the two sides share.

pub mod agent;
pub mod build;
pub mod fleet;
pub mod host;
pub mod process;
pub mod state;
pub mod target;
