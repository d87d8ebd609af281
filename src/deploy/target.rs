//! How the deployer reaches one host: the spec's `[deploy]` settings turned
//! into `ssh` arguments, the store URL and `NIX_SSHOPTS` for `nix`, and the
//! commands run there (every value quoted for the remote shell).

use std::time::Duration;

use crate::generate::shell::quote;
use crate::spec::model::{BuildOn, HostSpec};

/// One host as `ghostgen deploy` reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host's name in the spec (and in `nixosConfigurations`).
    pub host: String,
    pub address: String,
    pub user: String,
    pub port: u16,
    pub jump: Option<String>,
    pub build_on: BuildOn,
}

impl Target {
    /// The target of a validated spec host. Defaults: the host's name as the
    /// address, its first admin with an SSH key as the user, its SSH port.
    pub fn of(host: &HostSpec) -> Target {
        let d = &host.deploy;
        Target {
            host: host.name.clone(),
            address: d.address.clone().unwrap_or_else(|| host.name.clone()),
            user: host.deploy_user().unwrap_or_default().to_string(),
            port: d.port.unwrap_or(host.ssh.port),
            jump: d.jump.clone(),
            build_on: d.build_on,
        }
    }

    /// `ssh`'s options for this host: the user's own (`NIX_SSHOPTS`, as
    /// nixos-rebuild reads it) first, then port and jump host.
    fn options(&self, user_opts: &[String]) -> Vec<String> {
        let mut args: Vec<String> = user_opts.to_vec();
        args.extend(["-p".to_string(), self.port.to_string()]);
        if let Some(jump) = &self.jump {
            args.extend(["-J".to_string(), jump.clone()]);
        }
        args
    }

    /// The arguments of `ssh` running `remote` on the host over a new
    /// connection, never asking for a password or a host key.
    /// Connection sharing is off (ssh takes the first value it reads), so
    /// that each call is a new connection: the proof that the network still
    /// lets the deployer in.
    pub fn ssh_args(&self, user_opts: &[String], remote: &str, connect_timeout: Duration) -> Vec<String> {
        let mut args: Vec<String> =
            ["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "BatchMode=yes"].map(String::from).to_vec();
        args.extend(self.options(user_opts));
        args.extend([
            "-o".into(),
            format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)),
            "-o".into(),
            "ServerAliveInterval=5".into(),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            "-l".into(),
            self.user.clone(),
            "--".into(),
            self.address.clone(),
            remote.into(),
        ]);
        args
    }

    /// `NIX_SSHOPTS` for `nix copy` / `nix build --store`: the user's own plus port and jump host.
    pub fn nix_sshopts(&self, user_opts: &[String]) -> String {
        self.options(user_opts).join(" ")
    }

    /// The host's Nix store over SSH.
    pub fn store_url(&self) -> String {
        let host = if self.address.contains(':') { format!("[{}]", self.address) } else { self.address.clone() };
        format!("ssh-ng://{}@{host}", self.user)
    }

    /// Commands run through `sudo -n` unless the user is root.
    fn privileged(&self, command: String) -> String {
        if self.user == "root" { command } else { format!("sudo -n {command}") }
    }
}

/// The words of `NIX_SSHOPTS` (split on whitespace, as Nix splits it).
pub fn user_ssh_options(nix_sshopts: Option<&str>) -> Vec<String> {
    nix_sshopts.map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

/// The commands `ghostgen deploy` runs on a host for one deployment of `system`.
pub struct Remote<'a> {
    pub target: &'a Target,
    pub id: &'a str,
    pub system: &'a str,
}

impl Remote<'_> {
    fn agent(&self) -> String {
        quote(&format!("{}/sw/bin/ghostbridge-deploy-agent", self.system))
    }

    /// Starts the agent in a transient unit that outlives the SSH session
    /// (`systemd-run` returns once the unit runs).
    pub fn start(&self, confirm_timeout: Duration) -> String {
        self.target.privileged(format!(
            "systemd-run --unit={} --collect --quiet -E PATH -- {} activate --id {} --system {} --confirm-timeout {}ms",
            quote(&format!("ghostbridge-deploy-{}", self.id)),
            self.agent(),
            quote(self.id),
            quote(self.system),
            confirm_timeout.as_millis(),
        ))
    }

    /// Waits until the agent waits for its confirmation (or has ended) and prints its state.
    pub fn activated(&self, activation_limit: Duration) -> String {
        self.target.privileged(format!(
            "{} status --id {} --wait {}s",
            self.agent(),
            quote(self.id),
            activation_limit.as_secs().max(1)
        ))
    }

    /// The deployment's state, then (only while it waits for its
    /// confirmation) the new generation's doctor report, as JSON.
    pub fn doctor(&self) -> String {
        let waiting =
            self.target.privileged(format!("{} status --id {} --expect-waiting", self.agent(), quote(self.id)));
        let doctor =
            self.target.privileged(format!("{} --json", quote(&format!("{}/sw/bin/ghostbridge-doctor", self.system))));
        format!("{waiting} && {doctor}")
    }

    pub fn confirm(&self) -> String {
        self.target.privileged(format!("{} confirm --id {}", self.agent(), quote(self.id)))
    }

    pub fn reject(&self, reason: &str) -> String {
        self.target.privileged(format!("{} reject --id {} --reason {}", self.agent(), quote(self.id), quote(reason)))
    }

    pub fn status(&self) -> String {
        self.target.privileged(format!("{} status --id {}", self.agent(), quote(self.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(user: &str) -> Target {
        Target {
            host: "web1".into(),
            address: "203.0.113.7".into(),
            user: user.into(),
            port: 2222,
            jump: Some("ops@bastion.example:22".into()),
            build_on: BuildOn::Local,
        }
    }

    #[test]
    fn ssh_gets_the_users_options_first_then_port_jump_and_the_command_last() {
        let t = target("admin");
        let args = t.ssh_args(&["-i".into(), "/k".into()], "true", Duration::from_secs(7));
        assert_eq!(&args[..6], ["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "BatchMode=yes"]);
        assert_eq!(&args[6..12], ["-i", "/k", "-p", "2222", "-J", "ops@bastion.example:22"]);
        assert!(args.contains(&"ConnectTimeout=7".to_string()));
        assert_eq!(&args[args.len() - 3..], ["--", "203.0.113.7", "true"]);
        assert_eq!(t.nix_sshopts(&[]), "-p 2222 -J ops@bastion.example:22");
        assert_eq!(t.store_url(), "ssh-ng://admin@203.0.113.7");
    }

    #[test]
    fn remote_commands_quote_every_value_and_use_sudo_unless_root() {
        let t = target("admin");
        let r = Remote { target: &t, id: "abc-1", system: "/nix/store/x-nixos system'$(reboot)" };
        let start = r.start(Duration::from_secs(60));
        assert!(start.starts_with("sudo -n systemd-run --unit='ghostbridge-deploy-abc-1'"), "{start}");
        assert!(start.contains("--system '/nix/store/x-nixos system'\\''$(reboot)'"), "{start}");
        assert!(start.ends_with("--confirm-timeout 60000ms"), "{start}");
        assert!(r.activated(Duration::from_secs(600)).ends_with("status --id 'abc-1' --wait 600s"));
        let reject = r.reject("doctor: unit x failed; it's down");
        assert!(reject.ends_with("--reason 'doctor: unit x failed; it'\\''s down'"), "{reject}");
        let root = target("root");
        let r = Remote { target: &root, id: "abc-1", system: "/nix/store/x" };
        assert_eq!(r.status(), "'/nix/store/x/sw/bin/ghostbridge-deploy-agent' status --id 'abc-1'");
    }
}
