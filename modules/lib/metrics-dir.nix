# The `metrics_dir` option every daemon's `settings` declares: node exporter's
# textfile collector folder when GhostBridge monitoring is on, else null (no
# metrics file). An integration default: the daemons themselves default to
# null. Not a NixOS module: modules/default.nix does not import lib/.
#   settings.options.metrics_dir = import ./lib/metrics-dir.nix { inherit lib config; } "ghostbridge-snapshotter";
{ lib, config }:
daemon:
let
  mon = config.services.ghostbridge.monitoring;
in
lib.mkOption {
  type = lib.types.nullOr lib.types.str;
  default = if mon.enable then mon.textfileDir else null;
  defaultText = lib.literalExpression ''
    if config.services.ghostbridge.monitoring.enable
    then config.services.ghostbridge.monitoring.textfileDir
    else null
  '';
  example = "/var/lib/prometheus-node-exporter-text";
  description = ''
    Folder where ${daemon} writes its Prometheus metrics file (node exporter's
    textfile collector); `null`: no metrics file. The unit may write there.
  '';
}
