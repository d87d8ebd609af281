# What the modules compute, checked without nixpkgs (mini-eval.nix):
# the daemons' JSON configs equal the contract for the reference server, the
# units carry the required ordering and hardening, and every assertion fires
# on the mistake it is written for (and none fires on the reference server).
#   nix-instantiate --eval --strict --json tests/nix/module-behaviour.nix
let
  b = builtins;
  pkgs = import ./stub-pkgs.nix;
  eval = import ./mini-eval.nix { inherit pkgs; };
  has = sub: str: b.match ".*${sub}.*" str != null;

  # The reference server, as the generated host sets it.
  reference = import ./reference-host.nix;
  ref = eval { services.ghostbridge = reference; };
  units = ref.result.systemd.services;
  configOf =
    unit:
    b.fromJSON (b.head (b.match ".* --config json:(.*)" units.${unit}.serviceConfig.ExecStart));

  # The contract's examples (shared/design and the brief), verbatim.
  expected = {
    snapshotter = {
      source = "/var/lib/overlay";
      snapshot_dir = "/var/lib/blockchain-timing/snapshots";
      database = "/var/lib/blockchain-timing/chain.db";
      interval = "1s";
      retention = "1m";
      metrics_dir = "/var/lib/prometheus-node-exporter-text";
      dbus = true;
    };
    ovs = {
      db = "unix:/run/openvswitch/db.sock";
      metrics_dir = "/var/lib/prometheus-node-exporter-text";
      bridges = [
        {
          name = "ovsbr0";
          datapath_type = "system";
          uplink = "enp1s0";
          ports = [ "vnet0" ];
          internal_ports = [ "ovsbr0-mgmt" ];
          drop_uplink_broadcast = true;
          extra_flows = [ ];
        }
        {
          name = "ovsbr1";
          datapath_type = "system";
          uplink = null;
          ports = [ ];
          internal_ports = [ ];
          drop_uplink_broadcast = false;
          extra_flows = [ ];
        }
      ];
    };
    qdrantSync = {
      database = "/var/lib/blockchain-timing/chain.db";
      url = "http://127.0.0.1:6333";
      collection = "ghostbridge-blocks";
      dimension = 384;
      distance = "Cosine";
      batch = 100;
      interval = "1s";
      api_key_file = null;
      metrics_dir = "/var/lib/prometheus-node-exporter-text";
    };
  };

  snapUnit = units.ghostbridge-snapshotter;
  ovsUnit = units.ghostbridge-ovs;
  syncUnit = units.ghostbridge-qdrant-sync;
  nets = ref.result.systemd.network.networks;
  snapPolicy = b.head (
    b.filter (p: (p.path or "") == "share/dbus-1/system.d/org.ghostbridge.Snapshotter.conf") ref.result.services.dbus.packages
  );

  checks = {
    "reference: no assertion fails" = ref.failedAssertions == [ ];
    "snapshotter JSON is the contract's" = configOf "ghostbridge-snapshotter" == expected.snapshotter;
    "OVS JSON is the contract's" = configOf "ghostbridge-ovs" == expected.ovs;
    "Qdrant sync JSON is the contract's" = configOf "ghostbridge-qdrant-sync" == expected.qdrantSync;

    "OVS reconciler: after and requiring ovsdb and ovs-vswitchd" =
      b.all (u: b.elem u ovsUnit.after && b.elem u ovsUnit.requires) [
        "ovsdb.service"
        "ovs-vswitchd.service"
      ];
    "OVS reconciler: before systemd-networkd, wanted by network.target" =
      b.elem "systemd-networkd.service" ovsUnit.before && b.elem "network.target" ovsUnit.wantedBy;
    "OVS reconciler: a oneshot that stays active" =
      ovsUnit.serviceConfig.Type == "oneshot" && ovsUnit.serviceConfig.RemainAfterExit;
    "OVS: Open vSwitch is on" = ref.result.virtualisation.vswitch.enable;

    "snapshotter: notify, watchdog, restart always" =
      snapUnit.serviceConfig.Type == "notify"
      && snapUnit.serviceConfig ? WatchdogSec
      && snapUnit.serviceConfig.Restart == "always";
    "snapshotter: strict file system, writable only where it writes" =
      snapUnit.serviceConfig.ProtectSystem == "strict"
      && snapUnit.serviceConfig.ReadWritePaths == [
        "/var/lib/blockchain-timing/snapshots"
        "/var/lib/blockchain-timing"
        "/var/lib/prometheus-node-exporter-text"
      ];
    "snapshotter: minimal capabilities" =
      b.elem "CAP_SYS_ADMIN" snapUnit.serviceConfig.CapabilityBoundingSet
      && !(b.elem "CAP_NET_ADMIN" snapUnit.serviceConfig.CapabilityBoundingSet);
    "snapshotter: D-Bus policy, root owns the name, anyone calls" =
      has ''<policy user="root">[[:space:]]*<allow own="org.ghostbridge.Snapshotter"/>'' snapPolicy.text
      && has ''<deny own="org.ghostbridge.Snapshotter"/>'' snapPolicy.text
      && has ''<allow send_destination="org.ghostbridge.Snapshotter"[[:space:]]+send_interface="org.ghostbridge.Snapshotter1"/>'' snapPolicy.text;
    "snapshotter: real-time priority 1 for on-time ticks" =
      snapUnit.serviceConfig.CPUSchedulingPolicy == "fifo"
      && snapUnit.serviceConfig.CPUSchedulingPriority == 1
      && !snapUnit.serviceConfig.RestrictRealtime;

    "Qdrant sync: after Qdrant and the snapshotter" =
      b.elem "qdrant.service" syncUnit.after && b.elem "ghostbridge-snapshotter.service" syncUnit.after;
    "Qdrant sync: dynamic user with the database folder writable" =
      syncUnit.serviceConfig.DynamicUser
      && syncUnit.serviceConfig.SupplementaryGroups == [ "ghostbridge" ]
      && b.elem "/var/lib/blockchain-timing" syncUnit.serviceConfig.ReadWritePaths;
    "Qdrant on loopback, port from the URL" =
      ref.result.services.qdrant.enable
      && ref.result.services.qdrant.settings.service.host == "127.0.0.1"
      && ref.result.services.qdrant.settings.service.http_port == 6333;
    "Qdrant sync: the API key goes through LoadCredential" =
      let
        r = eval {
          services.ghostbridge = reference // {
            vectorSync = {
              enable = true;
              apiKeyFile = "/run/secrets/qdrant";
            };
          };
        };
        unit = r.result.systemd.services.ghostbridge-qdrant-sync;
      in
      unit.serviceConfig.LoadCredential == [ "qdrant-api-key:/run/secrets/qdrant" ]
      && has "/run/credentials/ghostbridge-qdrant-sync.service/qdrant-api-key" unit.serviceConfig.ExecStart;

    "op-dbus: its units and a root-only policy when the package is given" =
      let
        opPkg = pkgs.ghostgen // {
          name = "op-dbus";
        };
        r = eval {
          services.ghostbridge = reference // {
            opDbus = {
              enable = true;
              package = opPkg;
              mcp.enable = true;
              web.enable = true;
            };
          };
        };
        u = r.result.systemd.services;
        policy = b.head (b.filter (p: (p.path or "") == "share/dbus-1/system.d/ghostbridge-op-dbus.conf") r.result.services.dbus.packages);
      in
      r.failedAssertions == [ ]
      && u.op-dbus.serviceConfig.ExecStart == "${opPkg}/bin/op-dbus run --state-file /etc/op-dbus/state.json"
      && has "serve --bind 0.0.0.0 --port 9573" u.op-dbus-mcp.serviceConfig.ExecStart
      && has "web --bind 0.0.0.0 --port 8080" u.op-dbus-web.serviceConfig.ExecStart
      && has ''<deny send_destination="org.opdbus"/>'' policy.text;
    "op-dbus: nothing without the switch" = !(units ? op-dbus);

    "networkd only, NetworkManager off" =
      ref.result.networking.useNetworkd && !ref.result.networking.networkmanager.enable;
    "networkd: DHCP on the bridge's own interface" =
      nets."30-ghostbridge-ovsbr0".networkConfig.DHCP == "yes"
      && nets."30-ghostbridge-ovsbr0".matchConfig.Name == "ovsbr0";
    "networkd: static address on ovsbr1" =
      nets."30-ghostbridge-ovsbr1".address == [ "10.10.0.1/24" ]
      && nets."30-ghostbridge-ovsbr1".networkConfig.DHCP == "no";
    "networkd: uplink and ports without IP" = b.all (
      i:
      let
        n = nets."20-ghostbridge-port-${i}";
      in
      n.networkConfig.DHCP == "no" && n.networkConfig.LinkLocalAddressing == "no" && !(n ? address)
    ) [ "enp1s0" "vnet0" "ovsbr0-mgmt" ];

    "boot: systemd-boot on EFI" = ref.result.boot.loader.systemd-boot.enable && ref.result.boot.loader.efi.canTouchEfiVariables;
    "boot: IOMMU and vfio-pci ids" =
      b.all (p: b.elem p ref.result.boot.kernelParams) [
        "intel_iommu=on"
        "iommu=pt"
        "vfio-pci.ids=10de:2204"
        "kvm.ignore_msrs=1"
      ]
      && b.elem "vfio_pci" ref.result.boot.initrd.kernelModules;

    "monitoring: node exporter reads the textfile folder" =
      b.elem "--collector.textfile.directory=/var/lib/prometheus-node-exporter-text" ref.result.services.prometheus.exporters.node.extraFlags
      && b.elem "d /var/lib/prometheus-node-exporter-text 2775 root ghostbridge -" ref.result.systemd.tmpfiles.rules;
    "monitoring: Prometheus scrapes node exporter" =
      (b.head ref.result.services.prometheus.scrapeConfigs).static_configs == [
        { targets = [ "127.0.0.1:9100" ]; }
      ];
    "monitoring: Grafana with the Prometheus data source" =
      (b.head ref.result.services.grafana.provision.datasources.settings.datasources).url == "http://127.0.0.1:9090";

    "virtualization: libvirt network on OVS, after libvirtd and the reconciler" =
      let
        unit = units.ghostbridge-libvirt-networks;
      in
      has "virsh net-define .*libvirt-network-public.xml" unit.script
      && b.elem "libvirtd.service" unit.requires
      && b.elem "ghostbridge-ovs.service" unit.after;
    "virtualization: Docker auto-prune" = ref.result.virtualisation.docker.autoPrune.enable;

    "SSH: keys only, no root, Ed25519 only" =
      let
        s = ref.result.services.openssh.settings;
      in
      !s.PasswordAuthentication
      && !s.KbdInteractiveAuthentication
      && s.PermitRootLogin == "no"
      && s.HostKeyAlgorithms == "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com"
      && ref.result.services.openssh.hostKeys == [
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ]
      && ref.result.networking.firewall.enable;
  };

  # Each mistake, and a piece of the message that must tell the user what to change.
  mistakes = {
    "uplink also in ports" = {
      defs = reference // {
        network.bridges.ovsbr0 = {
          uplink = "enp1s0";
          ports = [ "enp1s0" ];
        };
      };
      says = "is also listed in ports; remove it from ports";
    };
    "an interface in two bridges" = {
      defs = reference // {
        network.bridges = {
          ovsbr0.uplink = "enp1s0";
          ovsbr1.ports = [ "enp1s0" ];
        };
      };
      says = "enp1s0 used more than once";
    };
    "an interface name over 15 bytes" = {
      defs = reference // {
        network.bridges.ovsbr0.uplink = "enp1s0-much-too-long";
      };
      says = "longer than 15 bytes";
    };
    "an address without prefix length" = {
      defs = reference // {
        network.bridges.ovsbr1.addresses = [ "10.10.0.1" ];
      };
      says = "must be in CIDR form";
    };
    "a gateway on a bridge without address" = {
      defs = reference // {
        network.bridges.ovsbr1.gateway = "10.10.0.254";
      };
      says = "gateway is set but the bridge has no address";
    };
    "vectorSync without the snapshotter" = {
      defs = reference // {
        snapshotter.enable = false;
      };
      says = "set services.ghostbridge.snapshotter.enable = true";
    };
    "local Qdrant with a remote URL" = {
      defs = reference // {
        vectorSync = {
          enable = true;
          url = "http://qdrant.example.org:6333";
        };
      };
      says = "or set localQdrant = false";
    };
    "retention shorter than the interval" = {
      defs = reference // {
        snapshotter = {
          enable = true;
          interval = "2m";
          retention = "1m";
        };
      };
      says = "raise retention to at least the interval";
    };
    "database inside the snapshotted source" = {
      defs = reference // {
        snapshotter = {
          enable = true;
          database = "/var/lib/overlay/chain.db";
        };
      };
      says = "must not live inside the snapshotted source";
    };
    "vfio ids without IOMMU" = {
      defs = reference // {
        boot.vfioIds = [ "10de:2204" ];
      };
      says = "set services.ghostbridge.boot.iommu";
    };
    "a malformed vfio id" = {
      defs = reference // {
        boot = {
          iommu = "amd";
          vfioIds = [ "10de-2204" ];
        };
      };
      says = "must hold PCI ids written vendor:device";
    };
    "op-dbus without its package" = {
      defs = reference // {
        opDbus.enable = true;
      };
      says = "set it to your op-dbus package";
    };
    "a libvirt network on an undeclared bridge" = {
      defs = reference // {
        virtualization.libvirt = {
          enable = true;
          ovsNetworks.lab = "ovsbr9";
        };
      };
      says = "add it to services.ghostbridge.network.bridges";
    };
    "ovs enabled without bridges" = {
      defs = reference // {
        network.bridges = { };
        ovs.enable = true;
        virtualization.libvirt.enable = false;
      };
      says = "declare at least one bridge";
    };
    "Grafana on the Prometheus port" = {
      defs = reference // {
        monitoring = {
          enable = true;
          grafana = {
            enable = true;
            port = 9090;
          };
        };
      };
      says = "collides with the Prometheus or node exporter port";
    };
  };

  mistakeResults = b.mapAttrs (
    _: m:
    let
      failed = (eval { services.ghostbridge = m.defs; }).failedAssertions;
    in
    {
      ok = b.any (has m.says) failed;
      inherit failed;
    }
  ) mistakes;

  failures =
    b.filter (n: !checks.${n}) (b.attrNames checks)
    ++ map (n: "mistake not caught: ${n} (failed assertions: ${b.toJSON mistakeResults.${n}.failed})") (
      b.filter (n: !mistakeResults.${n}.ok) (b.attrNames mistakeResults)
    );
in
if failures != [ ] then
  throw "module behaviour checks failed:\n  ${b.concatStringsSep "\n  " failures}\nreference failed assertions: ${b.toJSON ref.failedAssertions}"
else
  {
    passed = b.attrNames checks ++ map (n: "assertion: ${n}") (b.attrNames mistakes);
  }
