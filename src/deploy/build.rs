//! Building a host's system and copying it to the host with the operator's
//! own `nix`: `nix build` of the flake's toplevel (here, or on the host
//! through its store), then `nix copy` over SSH.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process;
use super::target::Target;
use crate::spec::model::BuildOn;

/// How long a build or a copy may take before it counts as hung.
pub const LIMIT: Duration = Duration::from_secs(4 * 3600);

/// Characters a `path:` flake reference cannot carry literally.
const FLAKE_REF_SPECIAL: [char; 4] = ['#', '?', '%', '"'];

/// The flake attribute of `host`'s system: `path:/abs/dir#nixosConfigurations.HOST.config.system.build.toplevel`.
pub fn toplevel(flake_dir: &Path, host: &str) -> Result<String, String> {
    let dir = flake_dir.to_str().ok_or_else(|| format!("{} is not UTF-8", flake_dir.display()))?;
    if let Some(c) = dir.chars().find(|c| FLAKE_REF_SPECIAL.contains(c) || c.is_control()) {
        return Err(format!(
            "the flake folder {dir:?} holds {c:?}, which a flake reference cannot carry; move the folder"
        ));
    }
    Ok(format!("path:{dir}#nixosConfigurations.{host}.config.system.build.toplevel"))
}

/// A store path as `nix build --print-out-paths` prints it.
fn store_path(stdout: &str) -> Result<String, String> {
    let path = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("nix build printed no store path (got {:?})", crate::runtime::exit::terminal_safe(path)));
    }
    Ok(path.to_string())
}

fn nix(args: &[String], sshopts: Option<String>) -> Result<process::Finished, String> {
    let mut cmd = Command::new("nix");
    cmd.args(["--extra-experimental-features", "nix-command flakes"]).args(args);
    if let Some(opts) = sshopts {
        cmd.env("NIX_SSHOPTS", opts);
    }
    let out = process::run(&mut cmd, LIMIT).map_err(|e| format!("cannot run nix: {e}"))?;
    if out.code == Some(0) {
        Ok(out)
    } else {
        Err(format!("nix {} failed: {}", args.first().map(String::as_str).unwrap_or(""), out.last_error_line()))
    }
}

/// The arguments of `nix build` for the host's system, and whether they use the host's store.
pub fn build_args(target: &Target, attr: &str, build_on: BuildOn) -> Vec<String> {
    let mut args = vec!["build".to_string(), "--no-link".into(), "--print-out-paths".into()];
    if build_on == BuildOn::Remote {
        args.extend(["--eval-store".into(), "auto".into(), "--store".into(), target.store_url()]);
    }
    args.push(attr.to_string());
    args
}

/// Builds the system; returns its store path (on the host when built there).
pub fn build(target: &Target, attr: &str, build_on: BuildOn, user_opts: &[String]) -> Result<String, String> {
    let sshopts = (build_on == BuildOn::Remote).then(|| target.nix_sshopts(user_opts));
    let out = nix(&build_args(target, attr, build_on), sshopts)?;
    store_path(&out.stdout)
}

/// Copies a locally built system to the host's store.
pub fn copy(target: &Target, system: &str, user_opts: &[String]) -> Result<(), String> {
    let args = ["copy".to_string(), "--to".into(), target.store_url(), system.to_string()];
    nix(&args, Some(target.nix_sshopts(user_opts))).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flake_folders_that_a_reference_cannot_carry_are_refused() {
        assert_eq!(
            toplevel(Path::new("/srv/fleet"), "web1").unwrap(),
            "path:/srv/fleet#nixosConfigurations.web1.config.system.build.toplevel"
        );
        for bad in ["/srv/a#b", "/srv/a?b", "/srv/100%", "/srv/a\nb"] {
            assert!(toplevel(Path::new(bad), "web1").is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_store_path_is_taken_from_nix_build() {
        assert_eq!(store_path("/nix/store/abc-nixos-system-web1\n").unwrap(), "/nix/store/abc-nixos-system-web1");
        assert!(store_path("").is_err());
        assert!(store_path("warning: x\nerror").is_err());
        assert!(store_path("/nix/store/a b").is_err());
    }
}
