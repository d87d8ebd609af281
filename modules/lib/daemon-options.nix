# The `checkConfig` and `configFile` options every daemon with JSON `settings`
# declares next to them: the file the unit hands the daemon, checked at build
# time by the daemon itself when `checkConfig` is set (lib/checked-config.nix).
# Not a NixOS module: modules/default.nix does not import lib/.
#   options.services.ghostbridge.ovs = {
#     inherit
#       (import ./lib/daemon-options.nix { inherit lib pkgs; } {
#         name = "ghostbridge-ovs";        # the program, and the file's name
#         path = "services.ghostbridge.ovs"; # where the options stand
#         cfg = config.services.ghostbridge.ovs;  # package, settings, checkConfig
#         verb = "apply";                  # the unit runs `ghostbridge-ovs apply --config FILE`
#         catches = "a malformed flow";    # optional: what the check rejects, for the description
#         tools = [ "status" ];            # optional: other subcommands that read the file
#         # optional, when the file is not `cfg.settings` as it stands:
#         # settings = cfg.settings // { ... };
#         # settingsChange = "with ... naming ...";  # what differs, for the defaultText
#       })
#       checkConfig
#       configFile
#       ;
#   };
{ lib, pkgs }:
{
  name,
  path,
  cfg,
  verb,
  catches ? null,
  tools ? [ ],
  settings ? cfg.settings,
  settingsChange ? null,
}:
let
  inherit (lib)
    mkOption
    types
    literalExpression
    literalMD
    optionalString
    concatMapStringsSep
    ;
  parenthesised = text: optionalString (text != null) " (${text})";
  command = subcommand: "`${name} ${subcommand} --config`";
in
{
  checkConfig = mkOption {
    type = types.bool;
    default = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
    defaultText = literalExpression "pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform";
    description = ''
      Whether to validate {option}`${path}.settings` at build time with
      `${name} check-config`, so that an invalid value${parenthesised catches} fails
      the system build with the daemon's message. Off by default where the build
      machine cannot run the host's programs (cross builds).
    '';
  };

  configFile = mkOption {
    type = types.path;
    readOnly = true;
    default = import ./checked-config.nix { inherit lib pkgs; } {
      inherit name settings;
      inherit (cfg) package;
      option = "${path}.settings";
      check = cfg.checkConfig;
    };
    defaultText = literalMD "{option}`${path}.settings` as JSON${parenthesised settingsChange}, checked by `${name} check-config` when {option}`${path}.checkConfig` is set";
    description =
      "The config file the unit hands to ${command verb}; read-only, for checks and tools"
      + optionalString (tools != [ ]) " (${concatMapStringsSep ", " command tools})"
      + ".";
  };
}
