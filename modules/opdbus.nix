# op-dbus (declarative system state over D-Bus), its MCP server and its web UI,
# wired as units with a D-Bus policy when the user supplies the package.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    types
    ;
  cfg = config.services.ghostbridge;
  op = cfg.opDbus;

  # Only root owns org.opdbus and talks to it (it changes system state); the MCP
  # server and the web UI run as root without any capability for that reason.
  dbusPolicy = pkgs.writeTextDir "share/dbus-1/system.d/ghostbridge-op-dbus.conf" ''
    <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
     "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
    <busconfig>
      <policy user="root">
        <allow own="org.opdbus"/>
        <allow send_destination="org.opdbus"/>
        <allow receive_sender="org.opdbus"/>
      </policy>
      <policy context="default">
        <deny own="org.opdbus"/>
        <deny send_destination="org.opdbus"/>
      </policy>
    </busconfig>
  '';

  hardening = import ./lib/hardening.nix;
in
{
  options.services.ghostbridge.opDbus = {
    enable = mkEnableOption "op-dbus, declarative system state managed over D-Bus (needs opDbus.package)";

    package = mkOption {
      type = types.nullOr types.package;
      default = null;
      example = lib.literalExpression "inputs.op-dbus.packages.\${pkgs.system}.default";
      description = ''
        The op-dbus package, supplied by the user (it is not part of nixpkgs). Its
        `bin/op-dbus` is started as `op-dbus run --state-file STATEFILE`, and
        (with `web.enable`) `op-dbus web --bind 0.0.0.0 --port PORT`.
      '';
    };

    stateFile = mkOption {
      type = types.str;
      default = "/etc/op-dbus/state.json";
      description = "The declarative state file op-dbus applies.";
    };

    mcp = {
      enable = mkEnableOption "the op-dbus MCP server";

      package = mkOption {
        type = types.nullOr types.package;
        default = null;
        description = ''
          Package of the MCP server. Its main program is started as
          `PROGRAM serve --bind 0.0.0.0 --port PORT`; `null` uses `op-dbus serve` from
          {option}`services.ghostbridge.opDbus.package`.
        '';
      };

      port = mkOption {
        type = types.port;
        default = 9573;
        description = "TCP port of the MCP server (the firewall stays closed unless the port is declared).";
      };
    };

    web = {
      enable = mkEnableOption "the op-dbus web UI";

      port = mkOption {
        type = types.port;
        default = 8080;
        description = "TCP port of the op-dbus web UI (the firewall stays closed unless the port is declared).";
      };
    };
  };

  config = mkIf (cfg.enable && op.enable) (mkMerge [
    {
      assertions = [
        {
          assertion = op.package != null;
          message = "services.ghostbridge.opDbus.enable is true but services.ghostbridge.opDbus.package is null: set it to your op-dbus package (for example inputs.op-dbus.packages.\${system}.default), or set opDbus.enable = false.";
        }
        {
          assertion = !(op.mcp.enable && op.web.enable && op.mcp.port == op.web.port);
          message = "services.ghostbridge.opDbus.mcp.port and opDbus.web.port are both ${toString op.web.port}: give them different ports.";
        }
      ];
    }

    (mkIf (op.package != null) {
      environment.systemPackages = [ op.package ];
      # The package's own D-Bus files (if it ships any), plus the policy above.
      services.dbus.packages = [
        op.package
        dbusPolicy
      ];

      systemd.services.op-dbus = {
        description = "op-dbus declarative system state";
        wantedBy = [ "multi-user.target" ];
        after = [
          "dbus.service"
          "network.target"
        ] ++ lib.optional cfg.ovs.enable "ghostbridge-ovs.service";
        requires = [ "dbus.service" ];
        serviceConfig = hardening // {
          ExecStart = utils.escapeSystemdExecArgs [
            "${op.package}/bin/op-dbus"
            "run"
            "--state-file"
            op.stateFile
          ];
          Restart = "on-failure";
          RestartSec = "5s";
          StateDirectory = "op-dbus";
          RuntimeDirectory = "op-dbus";
          # It changes system state through D-Bus and OVSDB: /etc and /usr stay read-only,
          # the rest of the file system stays writable.
          ProtectSystem = "full";
          CapabilityBoundingSet = [
            "CAP_NET_ADMIN"
            "CAP_NET_RAW"
          ];
        };
      };

      systemd.services.op-dbus-mcp = mkIf op.mcp.enable {
        description = "op-dbus MCP server";
        wantedBy = [ "multi-user.target" ];
        after = [ "op-dbus.service" ];
        wants = [ "op-dbus.service" ];
        serviceConfig = hardening // {
          ExecStart = utils.escapeSystemdExecArgs [
            (if op.mcp.package != null then lib.getExe op.mcp.package else "${op.package}/bin/op-dbus")
            "serve"
            "--bind"
            "0.0.0.0"
            "--port"
            op.mcp.port
          ];
          Restart = "on-failure";
          RestartSec = "5s";
          User = "root";
          CapabilityBoundingSet = [ "" ];
        };
      };

      systemd.services.op-dbus-web = mkIf op.web.enable {
        description = "op-dbus web UI";
        wantedBy = [ "multi-user.target" ];
        after = [ "op-dbus.service" ];
        wants = [ "op-dbus.service" ];
        serviceConfig = hardening // {
          ExecStart = utils.escapeSystemdExecArgs [
            "${op.package}/bin/op-dbus"
            "web"
            "--bind"
            "0.0.0.0"
            "--port"
            op.web.port
          ];
          Restart = "on-failure";
          RestartSec = "5s";
          User = "root";
          CapabilityBoundingSet = [ "" ];
        };
      };
    })
  ]);
}
