# The target half of `ghostgen deploy`: `ghostbridge-deploy-agent` on PATH, so
# that every generation carries the agent that activates it, waits for the
# deployer's confirmation and switches back without one. The deployer reads
# the new generation's `ghostbridge-doctor` report before it confirms, so the
# doctor must be on too. The deploying account is trusted by Nix so that
# `nix copy` can add the new system to the store (it has passwordless sudo
# anyway, so this grants nothing more).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkPackageOption
    mkIf
    types
    literalExpression
    ;
  cfg = config.services.ghostbridge;
  dep = cfg.deploy;
in
{
  options.services.ghostbridge.deploy = {
    enable = mkOption {
      type = types.bool;
      default = cfg.enable;
      defaultText = literalExpression "config.services.ghostbridge.enable";
      example = false;
      description = ''
        Whether `ghostgen deploy` can deploy this host safely: puts
        `ghostbridge-deploy-agent` on PATH (the deployer runs the new generation's
        own agent through `systemd-run`). Needs
        {option}`services.ghostbridge.doctor.enable`, whose report decides whether a
        generation is confirmed.
      '';
    };

    package = mkPackageOption pkgs "ghostbridge-deploy-agent" { };

    user = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "ops";
      description = ''
        The account `ghostgen deploy` logs in as (`[deploy] user` of the spec, else
        its first admin). Added to {option}`nix.settings.trusted-users` so that
        `nix copy` can add the new system to the store; its commands run through
        `sudo`. `null`: only root copies.
      '';
    };
  };

  config = mkIf (cfg.enable && dep.enable) {
    assertions = [
      {
        assertion = cfg.doctor.enable;
        message = "services.ghostbridge.deploy needs services.ghostbridge.doctor.enable: the doctor's report decides whether ghostgen deploy confirms a generation";
      }
    ];
    environment.systemPackages = [ dep.package ];
    # A definition replaces nixpkgs' default (`[ "root" ]`), so root is kept.
    nix.settings = mkIf (dep.user != null) {
      trusted-users = [
        "root"
        dep.user
      ];
    };
  };
}
