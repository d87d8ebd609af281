# Boots the host that `ghostgen build` generated from examples/ghostbridge.toml
# and asserts that every unit its spec turns on is active. Only what a VM
# cannot have is changed: the disk layout is not applied (the VM has its own
# disks; a scratch BTRFS disk carries the snapshotter's subvolumes), and the
# op-dbus units need a package the reference spec does not ship. The host's
# settings stay as generated: each bridge's uplink is a VM NIC of that name.
{
  pkgs,
  self,
  disko,
  nixpkgs,
  common,
  btrfsDisk,
  hostModule,
  ...
}:
let
  lib = pkgs.lib;
in
pkgs.testers.runNixOSTest {
  name = "ghostbridge-host";
  node.pkgsReadOnly = false;
  node.specialArgs.inputs = {
    inherit self disko nixpkgs;
    ghostbridge = self;
  };

  nodes.ghostbridge =
    {
      config,
      lib,
      pkgs,
      ...
    }:
    let
      gb = config.services.ghostbridge;
    in
    {
      environment.systemPackages = [ pkgs.curl ];
      imports = [
        common
        disko.nixosModules.disko
        hostModule
        btrfsDisk
      ];
      # The VM's disks come from the test driver, not from the disk layout.
      disko.enableConfig = lib.mkForce false;
      virtualisation.memorySize = 4096;
      virtualisation.diskSize = 8192;
      # One NIC per uplink, named like it (enp1s0 for the reference spec), each on
      # its own test network, so that ovs.settings.bridges need not change.
      virtualisation.interfaces = lib.listToAttrs (
        lib.imap1 (
          i: uplink:
          lib.nameValuePair uplink {
            vlan = i;
            assignIP = false;
          }
        ) (lib.filter (u: u != null) (map (b: b.uplink or null) gb.ovs.settings.bridges))
      );
      services.ghostbridge.opDbus.enable = lib.mkIf (gb.opDbus.package == null) (lib.mkForce false);
    };

  testScript =
    { nodes, ... }:
    let
      cfg = nodes.ghostbridge;
      gb = cfg.services.ghostbridge;
      units =
        lib.optionals gb.ovs.enable [
          "ovsdb.service"
          "ovs-vswitchd.service"
          "ghostbridge-ovs.service"
        ]
        ++ [ "systemd-networkd.service" ]
        ++ lib.optional cfg.services.openssh.enable "sshd.service"
        ++ lib.optional gb.snapshotter.enable "ghostbridge-snapshotter.service"
        ++ lib.optionals gb.qdrant_sync.enable (
          [ "ghostbridge-qdrant-sync.service" ] ++ lib.optional gb.qdrant_sync.localQdrant "qdrant.service"
        )
        ++ lib.optionals gb.monitoring.enable [
          "prometheus.service"
          "prometheus-node-exporter.service"
        ]
        ++ lib.optional (gb.monitoring.enable && gb.monitoring.grafana.enable) "grafana.service"
        # nixpkgs socket-activates libvirtd (`--timeout 120`: idle, the service
        # exits and only the socket stays active); virsh below wakes it.
        ++ lib.optional gb.virtualization.libvirt.enable "libvirtd.socket"
        ++ lib.optional (
          gb.virtualization.libvirt.enable && gb.virtualization.libvirt.ovsNetworks != { }
        ) "ghostbridge-libvirt-networks.service"
        ++ lib.optional gb.virtualization.docker.enable "docker.service"
        ++ lib.optional gb.virtualization.novnc.enable "ghostbridge-novnc.service"
        ++ lib.optional gb.opDbus.enable "op-dbus.service";
    in
    ''
      import shlex

      units = ${builtins.toJSON units}

      ghostbridge.start()
      ghostbridge.wait_for_unit("multi-user.target")

      for unit in units:
          with subtest(f"{unit} is active"):
              ghostbridge.wait_for_unit(unit)

      ${lib.optionalString gb.ovs.enable ''
        with subtest("the spec's bridges exist"):
            for bridge in ${builtins.toJSON (map (b: b.name) gb.ovs.settings.bridges)}:
                ghostbridge.succeed(f"ovs-vsctl br-exists {shlex.quote(bridge)}")
      ''}
      ${lib.optionalString gb.virtualization.libvirt.enable ''
        with subtest("libvirt answers on its socket, the OVS networks are active"):
            ghostbridge.succeed("virsh -c qemu:///system list --all")
            for net in ${builtins.toJSON (lib.attrNames gb.virtualization.libvirt.ovsNetworks)}:
                ghostbridge.succeed(f"virsh -c qemu:///system net-info --network {shlex.quote(net)} | grep -q '^Active: *yes'")
      ''}
      ${lib.optionalString (gb.monitoring.enable && gb.snapshotter.enable) ''
        with subtest("the snapshotter's metrics reach node exporter"):
            # grep without -q reads to the end: `grep -q` exiting at the first match
            # would make curl fail on the closed pipe (commands run with pipefail).
            ghostbridge.wait_until_succeeds("curl -sf http://127.0.0.1:${toString gb.monitoring.nodeExporter.port}/metrics | grep '^ghostbridge_snapshotter_height' >/dev/null", timeout=60)
      ''}
      ${lib.optionalString (gb.monitoring.enable && gb.monitoring.grafana.enable) ''
        with subtest("Grafana has the GhostBridge dashboard"):
            ghostbridge.wait_until_succeeds("curl -sf http://127.0.0.1:${toString gb.monitoring.grafana.port}/api/health", timeout=120)
            ghostbridge.succeed("curl -sf -u admin:admin http://127.0.0.1:${toString gb.monitoring.grafana.port}/api/dashboards/uid/ghostbridge")
      ''}
      with subtest("SSH: public keys only, no root login"):
          sshd = ghostbridge.succeed("sshd -T")
          for line in ["passwordauthentication no", "kbdinteractiveauthentication no", "permitrootlogin no"]:
              assert line in sshd, line
          ghostbridge.succeed("test -e /etc/ssh/ssh_host_ed25519_key && ! test -e /etc/ssh/ssh_host_rsa_key")
    '';
}
