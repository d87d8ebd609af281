# A daemon's `settings` rendered as JSON and, when `check` is set, validated
# at build time by the daemon itself (`<daemon> check-config FILE`), as
# nixpkgs does for Prometheus (promtool) and nginx: an invalid value fails the
# system build with the daemon's own message instead of failing the unit.
# check-config reads only the file, never the paths named in it, so it runs
# in the build sandbox. Not a NixOS module: modules/default.nix does not
# import lib/.
#   import ./lib/checked-config.nix { inherit lib pkgs; } {
#     name = "ghostbridge-snapshotter";   # the program, and the file's name
#     package = snap.package;
#     option = "services.ghostbridge.snapshotter.settings";  # for the error
#     settings = { ... };
#     check = snap.checkConfig;
#   }
{ lib, pkgs }:
{
  name,
  package,
  option,
  settings,
  check,
}:
let
  rendered = (pkgs.formats.json { }).generate "${name}.json" settings;
in
if !check then
  rendered
else
  pkgs.runCommand "${name}-checked.json"
    {
      preferLocalBuild = true;
      # The file before the check, for `nix eval` and the tests.
      passthru.unchecked = rendered;
    }
    ''
      status=0
      ${lib.escapeShellArgs [ "${package}/bin/${name}" "check-config" "${rendered}" ]} || status=$?
      if [ "$status" -ne 0 ]; then
        echo ${lib.escapeShellArg "error: ${option} is invalid: ${name} check-config rejected it (above; the keys are those of ${option})."} >&2
        exit "$status"
      fi
      cp ${lib.escapeShellArg "${rendered}"} "$out"
    ''
