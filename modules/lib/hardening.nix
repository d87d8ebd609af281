# The systemd sandboxing settings every GhostBridge daemon unit shares, for
# `serviceConfig = hardening // { ... };` (the unit's own settings, and any
# deliberate difference such as a looser ProtectSystem, go on the right).
# A plain attribute set, not a NixOS module: it lives in lib/ so that
# modules/default.nix need not (and must not) import it.
{
  NoNewPrivileges = true;
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  LockPersonality = true;
  SystemCallArchitectures = "native";
}
