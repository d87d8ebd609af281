# The OVS reconciler in a VM with two NICs: both bridges with their ports and
# flows, addresses from systemd-networkd, offloads off on the uplink, no drift
# after apply, and, seen from a second VM on the uplink's network, unicast
# passes while broadcast arriving on the uplink is dropped.
{
  pkgs,
  common,
  ...
}:
let
  bridgeAddress = "192.168.1.10";
in
pkgs.testers.runNixOSTest {
  name = "ghostbridge-ovs";
  node.pkgsReadOnly = false;

  nodes.server =
    { pkgs, ... }:
    {
      imports = [ common ];
      # eth1: the uplink, on the peer's network; eth2: a port of the internal bridge.
      virtualisation.interfaces = {
        eth1 = {
          vlan = 1;
          assignIP = false;
        };
        eth2 = {
          vlan = 2;
          assignIP = false;
        };
      };
      environment.systemPackages = [ pkgs.ethtool ];
      services.ghostbridge = {
        enable = true;
        ovs.settings.bridges = [
          {
            name = "ovsbr0";
            uplink = "eth1";
            internal_ports = [ "ovsbr0-mgmt" ];
          }
          {
            name = "ovsbr1";
            ports = [ "eth2" ];
            drop_uplink_broadcast = false;
          }
        ];
        network.bridges = {
          ovsbr0.addresses = [ "${bridgeAddress}/24" ];
          ovsbr1.addresses = [ "10.10.0.1/24" ];
        };
      };
    };

  nodes.peer =
    { pkgs, ... }:
    {
      virtualisation.vlans = [ 1 ];
      environment.systemPackages = [ pkgs.iputils ];
    };

  testScript =
    { nodes, ... }:
    let
      # The file the unit applies (checked by `ghostbridge-ovs check-config` at build time).
      configFile = nodes.server.services.ghostbridge.ovs.configFile;
    in
    ''
      import re

      start_all()
      server.wait_for_unit("ghostbridge-ovs.service")
      server.wait_for_unit("systemd-networkd.service")
      peer.wait_for_unit("network.target")

      with subtest("both bridges with their ports"):
          bridges = server.succeed("ovs-vsctl list-br").split()
          assert "ovsbr0" in bridges and "ovsbr1" in bridges, bridges
          ports0 = server.succeed("ovs-vsctl list-ports ovsbr0").split()
          assert "eth1" in ports0 and "ovsbr0-mgmt" in ports0, ports0
          ports1 = server.succeed("ovs-vsctl list-ports ovsbr1").split()
          assert "eth2" in ports1, ports1
          assert server.succeed("ovs-vsctl get Interface ovsbr0-mgmt type").strip() == "internal"

      with subtest("systemd-networkd addresses the bridges' own interfaces only"):
          server.wait_until_succeeds("ip -4 addr show dev ovsbr0 | grep -q '${bridgeAddress}/24'")
          server.wait_until_succeeds("ip -4 addr show dev ovsbr1 | grep -q '10.10.0.1/24'")
          server.fail("ip -4 addr show dev eth1 | grep -q inet")
          server.fail("ip -4 addr show dev eth2 | grep -q inet")

      with subtest("flows: broadcast and multicast from the uplink dropped"):
          flows = server.succeed("ovs-ofctl --names dump-flows ovsbr0")
          print(flows)
          assert re.search(r"in_port=\"?eth1\"?.*actions=drop", flows), flows
          assert "actions=NORMAL" in flows, flows

      with subtest("offloads off on the uplink"):
          features = server.succeed("ethtool -k eth1")
          for feature in ["generic-segmentation-offload", "generic-receive-offload"]:
              assert re.search(rf"^{feature}: off", features, re.M), features

      with subtest("no drift after apply"):
          server.succeed("ghostbridge-ovs status --config ${configFile}")

      with subtest("unicast into the uplink passes"):
          mac = server.succeed("cat /sys/class/net/ovsbr0/address").strip()
          # A static neighbour: the peer's ARP requests are broadcasts, which the bridge drops.
          peer.succeed(f"ip neigh replace ${bridgeAddress} lladdr {mac} dev eth1 nud permanent")
          peer.wait_until_succeeds("ping -c 1 -W 2 ${bridgeAddress}", timeout=60)
          peer.succeed("ping -c 3 -W 2 ${bridgeAddress}")

      with subtest("broadcast into the uplink is dropped"):
          def dropped():
              total = 0
              for line in server.succeed("ovs-ofctl --names dump-flows ovsbr0").splitlines():
                  if "actions=drop" in line and "eth1" in line:
                      m = re.search(r"n_packets=(\d+)", line)
                      total += int(m.group(1)) if m else 0
              return total
          before = dropped()
          # ARP requests are Ethernet broadcasts: no reply may come back.
          peer.fail("arping -c 3 -w 5 -I eth1 ${bridgeAddress}")
          assert dropped() >= before + 3, f"drop counter went from {before} to {dropped()}"

      with subtest("a restart of the reconciler changes nothing"):
          server.succeed("systemctl restart ghostbridge-ovs.service")
          server.succeed("ghostbridge-ovs status --config ${configFile}")
          peer.succeed("ping -c 1 -W 2 ${bridgeAddress}")
    '';
}
