# What the modules compute, checked without nixpkgs (mini-eval.nix):
# each daemon's JSON is the reference server's `settings` (plus what the
# modules add), checked at build time by the daemon's own check-config before
# the unit gets it; the modules assert no daemon rule; the units carry the
# required ordering and hardening; and every (integration) assertion fires on
# the mistake it is written for (and none fires on the reference server).
#   nix-instantiate --eval --strict --json tests/nix/module-behaviour.nix
let
  b = builtins;
  lib = import ./stub-lib.nix;
  pkgs = import ./stub-pkgs.nix;
  eval = import ./mini-eval.nix { inherit pkgs; };
  has = sub: str: b.match ".*${sub}.*" str != null;

  # The reference server, as the generated host sets it.
  reference = import ./reference-host.nix;
  ref = eval { services.ghostbridge = reference; };
  # The reference server plus more definitions (merged as the module system
  # merges two modules: lists concatenate, mkForce replaces).
  refWith = extra: eval [
    { services.ghostbridge = reference; }
    { services.ghostbridge = extra; }
  ];
  units = ref.result.systemd.services;

  daemons = {
    snapshotter = {
      unit = "ghostbridge-snapshotter";
      package = pkgs.ghostbridge-snapshotter;
    };
    ovs = {
      unit = "ghostbridge-ovs";
      package = pkgs.ghostbridge-ovs;
    };
    qdrant_sync = {
      unit = "ghostbridge-qdrant-sync";
      package = pkgs.ghostbridge-qdrant-sync;
    };
  };
  # The file a daemon's unit runs with: ExecStart's `--config` (each argument
  # quoted for systemd), which must be the module's configFile.
  configFileOf =
    r: daemon:
    let
      file = r.config.services.ghostbridge.${daemon}.configFile;
      unit = r.result.systemd.services.${daemons.${daemon}.unit};
      named = b.head (b.match ''.* "--config" "([^"]+)"'' unit.serviceConfig.ExecStart);
    in
    if named != "${file}" then throw "${daemons.${daemon}.unit} runs with ${named}, not with configFile ${file}" else file;
  # The daemon's JSON as the unit gets it: the rendered file the check
  # validated and copied (or, without the check, the rendered file itself).
  configOf = r: daemon: b.fromJSON ((configFileOf r daemon).unchecked or (configFileOf r daemon)).value;
  # The build-time check: `<package>/bin/<program> check-config <rendered file>`,
  # then the file is copied to $out.
  checkedBy =
    r: daemon:
    let
      file = configFileOf r daemon;
      d = daemons.${daemon};
    in
    file ? buildCommand
    && has "${d.package}/bin/${d.unit} check-config ${file.unchecked}[[:space:]]" file.buildCommand
    && has "cp ${file.unchecked} \"[$]out\"" file.buildCommand;

  textfileDir = "/var/lib/prometheus-node-exporter-text";
  # The daemons' JSON for the reference server: its settings verbatim (keys it
  # leaves out are the daemons' defaults, not rendered), plus what the modules
  # add: metrics_dir (monitoring is on) and the sync's api_key_file (none).
  expected = {
    snapshotter = reference.snapshotter.settings // {
      metrics_dir = textfileDir;
    };
    ovs = {
      metrics_dir = textfileDir;
      inherit (reference.ovs.settings) bridges;
    };
    qdrant_sync = reference.qdrant_sync.settings // {
      api_key_file = null;
      metrics_dir = textfileDir;
    };
  };

  # Whether `needle` occurs in `hay`, character for character (no regex).
  infix =
    needle: hay:
    let
      n = b.stringLength needle;
    in
    b.any (i: b.substring i n hay == needle) (b.genList (i: i) (b.stringLength hay - n + 1));
  # Whether computing `v` in full fails (an escaping function refusing a value).
  refused = v: !(b.tryEval (b.deepSeq v v)).success;
  # One argument of an Exec*= line read back as systemd reads it: the quoted
  # JSON string with `%%` and `$$` undone.
  execArg = quoted: b.fromJSON (b.replaceStrings [ "%%" "$$" ] [ "%" "$" ] quoted);
  # Hostile characters: white space, both quotes, `%`, `$`, backslash, `<`, `&`,
  # tab and a line break.
  hostile = "/srv/op dbus/\"it's\" 100%$HOME\\<&>\n\tx.json";

  # The doctor: its JSON (the file before the check) and what the host installs.
  doctorFile = r: r.config.services.ghostbridge.doctor.configFile;
  doctorOf = r: b.fromJSON ((doctorFile r).unchecked or (doctorFile r)).value;
  etcOf = r: (r.result.environment or { }).etc or { };
  onPath = r: pkg: b.elem pkg ((r.result.environment or { }).systemPackages or [ ]);
  # The units every GhostBridge host runs, whatever else it enables.
  hostUnits = [
    "systemd-networkd.service"
    "sshd.service"
  ];

  snapUnit = units.ghostbridge-snapshotter;
  ovsUnit = units.ghostbridge-ovs;
  syncUnit = units.ghostbridge-qdrant-sync;
  nets = ref.result.systemd.network.networks;
  snapPolicy = b.head (
    b.filter (p: (p.path or "") == "share/dbus-1/system.d/org.ghostbridge.Snapshotter.conf") ref.result.services.dbus.packages
  );

  checks = {
    "reference: no assertion fails" = ref.failedAssertions == [ ];
    "snapshotter JSON is the reference's settings" = configOf ref "snapshotter" == expected.snapshotter;
    "OVS JSON is the reference's settings" = configOf ref "ovs" == expected.ovs;
    "Qdrant sync JSON is the reference's settings" = configOf ref "qdrant_sync" == expected.qdrant_sync;

    "build time: each daemon checks its own rendered file before the unit gets it" = b.all (checkedBy ref) (
      b.attrNames daemons
    );
    "build time: checkConfig = false hands the rendered file over unchecked" =
      let
        r = refWith {
          snapshotter.checkConfig = false;
        };
        file = configFileOf r "snapshotter";
      in
      !(file ? buildCommand) && configOf r "snapshotter" == expected.snapshotter;
    "build time: checkConfig is on where the build machine runs the host's programs" =
      ref.config.services.ghostbridge.snapshotter.checkConfig;
    "configFile is read-only" =
      !(b.tryEval (refWith { snapshotter.configFile = "/etc/snapshotter.json"; }).config.services.ghostbridge.snapshotter.configFile).success;
    "no daemon rule in Nix: a retention shorter than the interval is left to check-config" =
      let
        r = refWith {
          snapshotter.settings = lib.mkForce (
            reference.snapshotter.settings
            // {
              interval = "2m";
              retention = "1m";
            }
          );
        };
      in
      r.failedAssertions == [ ] && checkedBy r "snapshotter" && (configOf r "snapshotter").retention == "1m";
    "no daemon rule in Nix: interface names are left to check-config" =
      let
        r = refWith {
          ovs.settings.bridges = lib.mkForce [
            {
              name = "ovsbr0";
              uplink = "enp1s0-much-too-long";
              ports = [ "enp1s0-much-too-long" ];
            }
          ];
          network.bridges = lib.mkForce { };
        };
      in
      r.failedAssertions == [ ] && checkedBy r "ovs";
    "settings: a key left out is not rendered (the daemon's default)" =
      let
        r = refWith {
          snapshotter.settings = lib.mkForce {
            inherit (reference.snapshotter.settings) source snapshot_dir database;
          };
          monitoring.enable = lib.mkForce false;
        };
      in
      configOf r "snapshotter" == {
        inherit (reference.snapshotter.settings) source snapshot_dir database;
        metrics_dir = null;
      };

    "doctor: the reference host's JSON lists its units, the three daemons' config files and the SSH port, and no bound" =
      doctorOf ref == {
        units = [
          "ovsdb.service"
          "ovs-vswitchd.service"
          "ghostbridge-ovs.service"
        ]
        ++ hostUnits
        ++ [
          "ghostbridge-snapshotter.service"
          "ghostbridge-qdrant-sync.service"
          "qdrant.service"
          "prometheus.service"
          "prometheus-node-exporter.service"
          "grafana.service"
          "libvirtd.socket"
          "ghostbridge-libvirt-networks.service"
          "docker.service"
          "ghostbridge-novnc.service"
        ];
        # The files the daemons' units run with.
        snapshotter = "${configFileOf ref "snapshotter"}";
        ovs = "${configFileOf ref "ovs"}";
        qdrant_sync = "${configFileOf ref "qdrant_sync"}";
        ssh_port = 22;
        tcp_ports = [ ];
      };
    "doctor: a host with only services.ghostbridge.enable gets no daemon unit and no daemon key" =
      let
        r = eval { services.ghostbridge.enable = true; };
      in
      r.failedAssertions == [ ]
      && r.config.services.ghostbridge.doctor.enable
      && doctorOf r == {
        units = hostUnits;
        ssh_port = 22;
        tcp_ports = [ ];
      };
    "doctor: tcp_ports is exactly what the firewall opens; none without a firewall" =
      let
        withFirewall = fw: doctorOf (eval [
          { services.ghostbridge.enable = true; }
          { networking.firewall = fw; }
        ]);
      in
      (withFirewall { allowedTCPPorts = [ 22 443 22 ]; }).tcp_ports == [ 22 443 ]
      && !((withFirewall { enable = lib.mkForce false; }) ? tcp_ports);
    "doctor: on every GhostBridge host, off without services.ghostbridge.enable" =
      ref.config.services.ghostbridge.doctor.enable
      && !(eval { }).config.services.ghostbridge.doctor.enable
      && !(etcOf (eval { }) ? "ghostbridge/doctor.json");
    "doctor: /etc/ghostbridge/doctor.json is the file ghostbridge-doctor check-config validated at build time" =
      let
        file = (etcOf ref)."ghostbridge/doctor.json".source;
      in
      file == doctorFile ref
      && has "${pkgs.ghostbridge-doctor}/bin/ghostbridge-doctor check-config ${file.unchecked}[[:space:]]" file.buildCommand
      && has "cp ${file.unchecked} \"[$]out\"" file.buildCommand
      && !((doctorFile (refWith { doctor.checkConfig = false; })) ? buildCommand);
    "doctor: ghostbridge-doctor is on PATH" = onPath ref pkgs.ghostbridge-doctor;
    "deploy: the agent is on PATH and the deploying account is trusted by Nix, root kept" =
      onPath ref pkgs.ghostbridge-deploy-agent
      && ref.result.nix.settings.trusted-users == [
        "root"
        "admin"
      ];
    "deploy: without a deploy user nixpkgs' trusted-users stay; disabled, no agent" =
      !((refWith { deploy.user = lib.mkForce null; }).result.nix.settings ? trusted-users)
      && !(onPath (refWith { deploy.enable = false; }) pkgs.ghostbridge-deploy-agent);
    "doctor: disabled, no /etc/ghostbridge/doctor.json and no ghostbridge-doctor on PATH" =
      let
        r = refWith { doctor.enable = false; };
      in
      !(etcOf r ? "ghostbridge/doctor.json") && !(onPath r pkgs.ghostbridge-doctor);
    "doctor: the module's keys are mkDefault (a host's plain definition wins), bounds are the host's to add" =
      (doctorOf (refWith {
        doctor.settings = {
          units = [ "sshd.service" ];
          ovs = "/etc/ovs.json";
          max_sync_lag = 100;
        };
      })) == {
        units = [ "sshd.service" ];
        ovs = "/etc/ovs.json";
        snapshotter = "${configFileOf ref "snapshotter"}";
        qdrant_sync = "${configFileOf ref "qdrant_sync"}";
        ssh_port = 22;
        tcp_ports = [ ];
        max_sync_lag = 100;
      };
    "doctor: the SSH port is the first of services.openssh.ports; without sshd, neither unit nor port" =
      let
        withSsh = ssh: doctorOf (eval [
          { services.ghostbridge.enable = true; }
          { services.openssh = ssh; }
        ]);
      in
      (withSsh { ports = [ 2222 22 ]; }).ssh_port == 2222
      && withSsh { enable = false; } == {
        units = [ "systemd-networkd.service" ];
        tcp_ports = [ ];
      };
    "doctor: a daemon's key only while the daemon runs" =
      let
        d = doctorOf (refWith {
          qdrant_sync.enable = lib.mkForce false;
          virtualization.libvirt.enable = lib.mkForce false;
          virtualization.novnc.enable = lib.mkForce false;
        });
      in
      !(d ? qdrant_sync)
      && d ? snapshotter
      && !(b.elem "ghostbridge-qdrant-sync.service" d.units)
      && !(b.elem "qdrant.service" d.units)
      && !(b.elem "libvirtd.socket" d.units);

    "OVS: on exactly when bridges are declared" =
      ref.config.services.ghostbridge.ovs.enable
      && !(eval {
        services.ghostbridge = reference // {
          ovs.settings.bridges = [ ];
          network.bridges = { };
          virtualization = { };
        };
      }).config.services.ghostbridge.ovs.enable;
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
        ''"/var/lib/blockchain-timing/snapshots"''
        ''"/var/lib/blockchain-timing"''
        ''"/var/lib/prometheus-node-exporter-text"''
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
      && b.elem ''"/var/lib/blockchain-timing"'' syncUnit.serviceConfig.ReadWritePaths;
    "Qdrant sync: nixpkgs' Qdrant runs for the local sync" = ref.result.services.qdrant.enable;
    "Qdrant sync: without a url, the local Qdrant's REST port" =
      let
        withoutUrl = b.removeAttrs reference.qdrant_sync.settings [ "url" ];
        urlWith =
          qdrant:
          (configOf (eval [
            {
              services.ghostbridge = reference // {
                qdrant_sync = reference.qdrant_sync // {
                  settings = withoutUrl;
                };
              };
            }
            qdrant
          ]) "qdrant_sync").url;
      in
      urlWith { } == "http://127.0.0.1:6333"
      && urlWith { services.qdrant.settings.service.http_port = 7333; } == "http://127.0.0.1:7333";
    "Qdrant sync: a url that is set wins over the local Qdrant's (a plain definition, no mkForce)" =
      (configOf (eval [
        {
          services.ghostbridge = reference // {
            qdrant_sync = reference.qdrant_sync // {
              settings = b.removeAttrs reference.qdrant_sync.settings [ "url" ];
            };
          };
        }
        { services.ghostbridge.qdrant_sync.settings.url = "http://127.0.0.1:7000/qdrant"; }
      ]) "qdrant_sync").url == "http://127.0.0.1:7000/qdrant";
    "Qdrant sync: a remote Qdrant, no local one, no url assertion" =
      let
        r = refWith {
          qdrant_sync = {
            localQdrant = lib.mkForce false;
            settings.url = lib.mkForce "http://qdrant.example.org:6333";
          };
        };
      in
      r.failedAssertions == [ ]
      && !(r.result.services ? qdrant)
      && (configOf r "qdrant_sync").url == "http://qdrant.example.org:6333"
      && !(b.elem "qdrant.service" r.result.systemd.services.ghostbridge-qdrant-sync.after);
    "Qdrant sync: without localQdrant and url, the daemon's default url" =
      let
        r = eval {
          services.ghostbridge = reference // {
            qdrant_sync = {
              enable = true;
              localQdrant = false;
            };
          };
        };
      in
      !((configOf r "qdrant_sync") ? url);
    "Qdrant sync: database defaults to the snapshotter's" =
      (configOf (eval {
        services.ghostbridge = reference // {
          qdrant_sync.enable = true;
        };
      }) "qdrant_sync").database == reference.snapshotter.settings.database;
    "Qdrant sync: the API key goes through LoadCredential" =
      let
        r = refWith {
          qdrant_sync.settings.api_key_file = "/run/secrets/qdrant";
        };
        unit = r.result.systemd.services.ghostbridge-qdrant-sync;
      in
      unit.serviceConfig.LoadCredential == [ "qdrant-api-key:/run/secrets/qdrant" ]
      && (configOf r "qdrant_sync").api_key_file == "/run/credentials/ghostbridge-qdrant-sync.service/qdrant-api-key";
    "snapshotter: the chain's key goes through LoadCredential, and no key renders nothing" =
      let
        r = refWith {
          snapshotter.settings.hmac_key_file = "/run/keys/chain key";
        };
        unit = r.result.systemd.services.ghostbridge-snapshotter;
      in
      unit.serviceConfig.LoadCredential == [ "chain-hmac-key:/run/keys/chain key" ]
      && (configOf r "snapshotter").hmac_key_file
        == "/run/credentials/ghostbridge-snapshotter.service/chain-hmac-key"
      && !((configOf ref "snapshotter") ? hmac_key_file)
      && ref.result.systemd.services.ghostbridge-snapshotter.serviceConfig.LoadCredential == [ ];
    "Qdrant: storage and snapshots stay nixpkgs' (/var/lib/qdrant) without localQdrantDataDir" =
      ref.config.services.qdrant.settings.storage == {
        storage_path = "/var/lib/qdrant/storage";
        snapshots_path = "/var/lib/qdrant/snapshots";
      }
      && !(units ? qdrant)
      && !(ref.result.users.users or { } ? qdrant);
    "Qdrant: localQdrantDataDir holds storage and snapshots, written by a static user in a strict sandbox" =
      let
        withDir = dir: refWith { qdrant_sync.localQdrantDataDir = dir; };
        r = withDir "/var/lib/blockchain-vectors";
        unit = r.result.systemd.services.qdrant;
        hostile = (withDir "/srv/vec tors/\"100%\"").result;
      in
      r.failedAssertions == [ ]
      # Over nixpkgs' mkDefault (the stand-in in mini-eval.nix sets the same).
      && r.config.services.qdrant.settings.storage == {
        storage_path = "/var/lib/blockchain-vectors/storage";
        snapshots_path = "/var/lib/blockchain-vectors/snapshots";
      }
      && !unit.serviceConfig.DynamicUser
      && unit.serviceConfig.User == "qdrant"
      && unit.serviceConfig.Group == "qdrant"
      && unit.serviceConfig.ProtectSystem == "strict"
      && unit.serviceConfig.ReadWritePaths == [ ''"/var/lib/blockchain-vectors"'' ]
      && unit.unitConfig.RequiresMountsFor == [ ''"/var/lib/blockchain-vectors"'' ]
      && r.result.users.users.qdrant.isSystemUser
      && r.result.users.users.qdrant.group == "qdrant"
      && r.result.users.groups ? qdrant
      && b.all (rule: b.elem rule r.result.systemd.tmpfiles.rules) [
        ''d "/var/lib/blockchain-vectors" 0750 qdrant qdrant -''
        ''d "/var/lib/blockchain-vectors/storage" 0750 qdrant qdrant -''
        ''d "/var/lib/blockchain-vectors/snapshots" 0750 qdrant qdrant -''
      ]
      && b.elem ''d "/srv/vec tors/\"100%%\"/storage" 0750 qdrant qdrant -'' hostile.systemd.tmpfiles.rules
      && hostile.systemd.services.qdrant.serviceConfig.ReadWritePaths == [ ''"/srv/vec tors/\"100%%\""'' ];
    "Qdrant: a plain storage_path wins over localQdrantDataDir's" =
      (eval [
        { services.ghostbridge = reference; }
        { services.ghostbridge.qdrant_sync.localQdrantDataDir = "/var/lib/blockchain-vectors"; }
        { services.qdrant.settings.storage.storage_path = "/srv/qdrant"; }
      ]).config.services.qdrant.settings.storage.storage_path == "/srv/qdrant";
    "Qdrant: localQdrantDataDir does nothing without a local Qdrant" =
      let
        r = refWith {
          qdrant_sync = {
            localQdrant = lib.mkForce false;
            localQdrantDataDir = "/var/lib/blockchain-vectors";
            settings.url = lib.mkForce "http://qdrant.example.org:6333";
          };
        };
      in
      !(r.result.systemd.services ? qdrant) && !(r.result.users.users or { } ? qdrant);

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
      && u.op-dbus.serviceConfig.ExecStart == ''"${opPkg}/bin/op-dbus" "run" "--state-file" "/etc/op-dbus/state.json"''
      && has ''"serve" "--bind" "0.0.0.0" "--port" "9573"'' u.op-dbus-mcp.serviceConfig.ExecStart
      && has ''"web" "--bind" "0.0.0.0" "--port" "8080"'' u.op-dbus-web.serviceConfig.ExecStart
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
    "networkd: an OVS bridge without network.bridges entry is up without address" =
      let
        r = eval {
          services.ghostbridge = reference // {
            network.bridges = { };
          };
        };
        n = r.result.systemd.network.networks."30-ghostbridge-ovsbr1";
      in
      r.failedAssertions == [ ]
      && n.address == [ ]
      && n.networkConfig.DHCP == "no"
      && n.linkConfig.RequiredForOnline == "no";
    "networkd: a bridge key left out means no such port" =
      let
        r = eval {
          services.ghostbridge = reference // {
            ovs.settings.bridges = [
              {
                name = "ovsbr0";
                uplink = "enp1s0";
              }
              { name = "ovsbr1"; }
            ];
          };
        };
      in
      b.sort b.lessThan (b.attrNames r.result.systemd.network.networks) == [
        "20-ghostbridge-port-enp1s0"
        "30-ghostbridge-ovsbr0"
        "30-ghostbridge-ovsbr1"
      ];
    "networkd: uplink and ports without IP" = b.all (
      i:
      let
        n = nets."20-ghostbridge-port-${i}";
      in
      n.networkConfig.DHCP == "no" && n.networkConfig.LinkLocalAddressing == "no" && !(n ? address)
    ) [ "enp1s0" "vnet0" "ovsbr0-mgmt" ];

    "network: DHCP on the NICs only without OVS bridges, at a priority over hardware.nix's mkDefault" =
      let
        def = r: (import ../../modules/base.nix { config = r.config; inherit lib; }).config.content.networking.useDHCP;
        none = eval { services.ghostbridge = { enable = true; }; };
      in
      (def ref).priority == 900 && (def ref).priority < 1000 && !ref.result.networking.useDHCP && none.result.networking.useDHCP;

    "networkd: gateways are on-link routes (a /32 address reaches its gateway)" =
      let
        r = refWith {
          network.bridges.ovsbr0 = {
            dhcp = lib.mkForce false;
            addresses = [ "203.0.113.10/32" ];
            gateway = [
              "203.0.113.1"
              "fe80::1"
            ];
          };
        };
      in
      r.result.systemd.network.networks."30-ghostbridge-ovsbr0".routes == [
        {
          Gateway = "203.0.113.1";
          GatewayOnLink = true;
        }
        {
          Gateway = "fe80::1";
          GatewayOnLink = true;
        }
      ];
    "network: a plain interface gets its own networkd unit, and no DHCP on every NIC" =
      let
        r = eval {
          services.ghostbridge = {
            enable = true;
            network.interfaces.enp2s0 = {
              addresses = [ "192.0.2.10/24" ];
              gateway = [ "192.0.2.1" ];
            };
          };
        };
        n = r.result.systemd.network.networks."40-ghostbridge-if-enp2s0";
      in
      r.failedAssertions == [ ]
      && n.matchConfig.Name == "enp2s0"
      && n.address == [ "192.0.2.10/24" ]
      && n.networkConfig.DHCP == "no"
      && n.linkConfig.RequiredForOnline == "routable"
      && !r.result.networking.useDHCP;
    "network: a plain interface that Open vSwitch holds is refused" =
      let
        r = refWith { network.interfaces.enp1s0.dhcp = true; };
      in
      b.any (has "network.interfaces.enp1s0 addresses an interface that Open vSwitch holds") r.failedAssertions;

    "boot: systemd-boot on EFI" = ref.result.boot.loader.systemd-boot.enable && ref.result.boot.loader.efi.canTouchEfiVariables;
    "remote server: hardware watchdog, no emergency mode, networkd and resolved restarted in place, serial console, 10 boot entries" =
      let
        r = ref.result;
        params = r.boot.kernelParams;
      in
      r.systemd.settings.Manager == {
        RuntimeWatchdogSec = "15s";
        RebootWatchdogSec = "30s";
        KExecWatchdogSec = "1m";
      }
      && r.systemd.enableEmergencyMode == false
      && r.systemd.services.systemd-networkd.stopIfChanged == false
      && r.systemd.services.systemd-resolved.stopIfChanged == false
      # srvos' order: the screen last, so that it is /dev/console.
      && b.filter (lib.hasPrefix "console=") params == [
        "console=ttyS0,115200"
        "console=tty0"
      ]
      && b.elem "intel_iommu=on" params
      && r.boot.loader.systemd-boot.configurationLimit == 10;
    "remote server: every default is mkDefault (a host's plain definition wins)" =
      let
        c = (import ../../modules/base.nix { config = ref.config; inherit lib; }).config.content;
      in
      b.all (d: d.priority == 1000) [
        c.systemd.settings.Manager.content.RuntimeWatchdogSec
        c.systemd.settings.Manager.content.RebootWatchdogSec
        c.systemd.settings.Manager.content.KExecWatchdogSec
        c.systemd.enableEmergencyMode.content
        c.systemd.services.content.systemd-networkd.stopIfChanged
        c.systemd.services.content.systemd-resolved.stopIfChanged
        c.boot.loader.systemd-boot.configurationLimit.content
      ];
    "remote server: each default has its own switch, and enable = false turns them all off" =
      let
        unset =
          r:
          (r.systemd.settings.Manager or { }) == { }
          && (r.systemd.enableEmergencyMode or { }) == { }
          && !(r.systemd.services ? systemd-networkd)
          && !(r.systemd.services ? systemd-resolved)
          && !(b.any (lib.hasPrefix "console=") r.boot.kernelParams)
          && (r.boot.loader.systemd-boot.configurationLimit or { }) == { };
        each = (refWith {
          remoteServer = {
            watchdog = false;
            disableEmergencyMode = false;
            keepNetworkOnSwitch = false;
            serialConsole = null;
            bootEntries = null;
          };
        }).result;
        all = (refWith { remoteServer.enable = false; }).result;
        other = refWith {
          remoteServer = {
            serialConsole = "ttyS1,57600";
            bootEntries = 3;
          };
        };
      in
      unset each
      && unset all
      && b.filter (lib.hasPrefix "console=") other.result.boot.kernelParams == [
        "console=ttyS1,57600"
        "console=tty0"
      ]
      && other.result.boot.loader.systemd-boot.configurationLimit == 3
      && refused (refWith { remoteServer.serialConsole = "ttyS0\ninitrd /tmp/evil"; }).result.boot.kernelParams;
    "boot: IOMMU and vfio-pci ids" =
      b.all (p: b.elem p ref.result.boot.kernelParams) [
        "intel_iommu=on"
        "iommu=pt"
        "vfio-pci.ids=10de:2204"
        "kvm.ignore_msrs=1"
      ]
      && b.elem "vfio_pci" ref.result.boot.initrd.kernelModules;

    "monitoring: node exporter reads the textfile folder" =
      b.elem ''"--collector.textfile.directory=/var/lib/prometheus-node-exporter-text"'' ref.result.services.prometheus.exporters.node.extraFlags
      && b.elem ''d "/var/lib/prometheus-node-exporter-text" 2775 root ghostbridge -'' ref.result.systemd.tmpfiles.rules;
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
      has "virsh net-define --file [^ ]*-ghostbridge-libvirt-network.xml" unit.script
      && has "virsh net-autostart --network public\n" unit.script
      && b.elem "libvirtd.service" unit.requires
      && b.elem "ghostbridge-ovs.service" unit.after;
    "virtualization: Docker auto-prune" = ref.result.virtualisation.docker.autoPrune.enable;
    "noVNC: on 127.0.0.1 by default, its port closed, libvirt's qemu.conf untouched" =
      has ''.* "127[.]0[.]0[.]1:6080" "localhost:5900"'' units.ghostbridge-novnc.serviceConfig.ExecStart
      && !(b.elem 6080 (ref.result.networking.firewall.allowedTCPPorts or [ ]))
      && !(units ? libvirtd-config);
    "noVNC: exposed where told, its port opened, the VNC password read from the host at libvirtd's start" =
      let
        r = refWith {
          virtualization.novnc = {
            listenAddress = "0.0.0.0";
            openFirewall = true;
            passwordFile = "/run/secrets/vnc pass 100%";
          };
        };
        config = r.result.systemd.services.libvirtd-config;
        # The password goes in after nixpkgs' `cp -f qemu.conf`, into a file only root reads.
        appended = b.match "(.*)chmod 0600 /var/lib/libvirt/qemu[.]conf\n(.*)" config.script;
      in
      r.failedAssertions == [ ]
      && has ''.* "0[.]0[.]0[.]0:6080" "localhost:5900"'' r.result.systemd.services.ghostbridge-novnc.serviceConfig.ExecStart
      && b.elem 6080 r.result.networking.firewall.allowedTCPPorts
      && config.serviceConfig.LoadCredential == [ "ghostbridge-vnc-password:/run/secrets/vnc pass 100%%" ]
      && appended != null
      && infix ''vnc_password=$(cat "$CREDENTIALS_DIRECTORY/ghostbridge-vnc-password")'' (b.elemAt appended 0)
      && infix ''printf 'vnc_password = "%s"\n' "$vnc_password" >> /var/lib/libvirt/qemu.conf'' (b.elemAt appended 1)
      && !(infix "/run/secrets" config.script);
    "noVNC: an IPv6 listen address in brackets" =
      has ''.* "\[::]:6080" "localhost:5900"'' (refWith {
        virtualization.novnc = {
          listenAddress = "::";
          passwordFile = "/run/secrets/vnc";
        };
      }).result.systemd.services.ghostbridge-novnc.serviceConfig.ExecStart;

    "escaping: opDbus.stateFile is one quoted argument of ExecStart=" =
      let
        opPkg = pkgs.ghostgen // {
          name = "op-dbus";
        };
        exec =
          (refWith {
            opDbus = {
              enable = true;
              package = opPkg;
              stateFile = hostile;
            };
          }).result.systemd.services.op-dbus.serviceConfig.ExecStart;
        quoted = b.elemAt (b.match ''"[^"]*" "run" "--state-file" (.*)'' exec) 0;
      in
      exec == ''"${opPkg}/bin/op-dbus" "run" "--state-file" "/srv/op dbus/\"it's\" 100%%$$HOME\\<&>\n\tx.json"''
      && execArg quoted == hostile
      && b.match "[^\n\r]*" exec != null;

    "escaping: libvirt network names and bridges, in the XML (escapeXML) and the script (escapeShellArg)" =
      let
        name = "lab <&>\"' $(reboot)\n\tx";
        bridge = "br\"<&>'";
        r = refWith {
          ovs.settings.bridges = [ { name = bridge; } ];
          virtualization.libvirt.ovsNetworks.${name} = bridge;
        };
        script = r.result.systemd.services.ghostbridge-libvirt-networks.script;
        xml = pkgs.writeText "ghostbridge-libvirt-network.xml" ''
          <network>
            <name>lab &lt;&amp;&gt;&quot;&apos; $(reboot)&#10;&#9;x</name>
            <forward mode="bridge"/>
            <bridge name="br&quot;&lt;&amp;&gt;&apos;"/>
            <virtualport type="openvswitch"/>
          </network>
        '';
        shellName = "'lab <&>\"'\\'' $(reboot)\n\tx'";
      in
      r.failedAssertions == [ ]
      && infix "virsh net-define --file ${xml}\n" script
      && infix "virsh net-autostart --network ${shellName}\n" script
      && infix "virsh net-info --network ${shellName} |" script
      && infix "virsh net-start --network ${shellName}\n" script;
    "escaping: XML cannot hold control characters: refused" = refused (refWith {
      virtualization.libvirt.ovsNetworks.${b.fromJSON ''"lab\u0001"''} = "ovsbr0";
    }).result.systemd.services.ghostbridge-libvirt-networks.script;

    "escaping: snapshotter paths in RequiresMountsFor=, ReadWritePaths= (quoted) and ExecStartPre= (Exec quoting)" =
      let
        paths = {
          source = "/srv/over lay";
          snapshot_dir = "/srv/snap \"shots\"/50%\\x";
          database = "/srv/chain $db/chain.db";
        };
        unit =
          (refWith {
            snapshotter.settings = lib.mkForce (reference.snapshotter.settings // paths);
          }).result.systemd.services.ghostbridge-snapshotter;
      in
      unit.unitConfig.RequiresMountsFor == [
        ''"/srv/over lay"''
        ''"/srv/snap \"shots\"/50%%\\x"''
        ''"/srv/chain $db"''
      ]
      && unit.serviceConfig.ReadWritePaths == [
        ''"/srv/snap \"shots\"/50%%\\x"''
        ''"/srv/chain $db"''
        ''"/var/lib/prometheus-node-exporter-text"''
      ]
      && unit.serviceConfig.ExecStartPre == [
        ''+"${pkgs.coreutils}/bin/install" "-d" "-m" "2770" "-o" "root" "-g" "ghostbridge" "--" "/srv/chain $$db"''
        ''+"${pkgs.coreutils}/bin/install" "-d" "-m" "0750" "-o" "root" "-g" "root" "--" "/srv/snap \"shots\"/50%%\\x"''
      ];
    "escaping: a line break in a path list (ReadWritePaths=, RequiresMountsFor=) is refused" =
      let
        unit =
          (refWith {
            snapshotter.settings = lib.mkForce (
              reference.snapshotter.settings // { snapshot_dir = "/srv/snap\n[Service]\nUser=nobody"; }
            );
          }).result.systemd.services.ghostbridge-snapshotter;
      in
      refused unit.serviceConfig.ReadWritePaths && refused unit.unitConfig.RequiresMountsFor;

    "escaping: LoadCredential= keeps spaces, doubles %, refuses what systemd would strip or join" =
      let
        credential =
          file:
          (refWith {
            qdrant_sync.settings.api_key_file = file;
          }).result.systemd.services.ghostbridge-qdrant-sync.serviceConfig.LoadCredential;
      in
      credential "/run/secrets/qdrant key 100%" == [ "qdrant-api-key:/run/secrets/qdrant key 100%%" ]
      && refused (credential "/run/secrets/k\nExecStartPre=/bin/sh")
      && refused (credential "/run/secrets/k ")
      && refused (credential "/run/secrets/k\\");

    "escaping: textfileDir in tmpfiles.d (C-quoted) and node exporter's ExecStart= flags" =
      let
        r = refWith {
          monitoring.textfileDir = lib.mkForce "/var/lib/node text/\"%\"\n$x";
        };
      in
      r.result.systemd.tmpfiles.rules == [ ''d "/var/lib/node text/\"%%\"\n$x" 2775 root ghostbridge -'' ]
      && r.result.services.prometheus.exporters.node.extraFlags == [
        ''"--collector.textfile.directory=/var/lib/node text/\"%%\"\n$$x"''
      ];

    "escaping: Grafana's secret key path is shell-quoted in preStart" =
      let
        preStart =
          (eval [
            { services.ghostbridge = reference; }
            { services.grafana.dataDir = "/var/lib/graf ana'x"; }
          ]).result.systemd.services.grafana.preStart;
        quoted = "'/var/lib/graf ana'\\''x/ghostbridge-secret-key'";
      in
      infix "if [ ! -s ${quoted} ]; then" preStart && infix "> ${quoted})" preStart;

    "escaping: a line break in sysctl.d, modules-load.d, the kernel command line or networkd is refused" =
      let
        boot = (refWith { }).result.boot;
      in
      refused (refWith { boot.sysctl."vm.swappiness" = "10\nkernel.modprobe = /tmp/x"; }).result.boot.kernel.sysctl
      && refused (refWith { boot.sysctl."vm.swappiness\nkernel.modprobe" = 1; }).result.boot.kernel.sysctl
      && refused (refWith { boot.kernelParams = [ "quiet\ninitrd /tmp/evil" ]; }).result.boot.kernelParams
      && refused (refWith { boot.kernelModules = [ "kvm\nevil" ]; }).result.boot.kernelModules
      && refused (refWith { network.bridges.ovsbr1.dns = [ "9.9.9.9\n[Network]" ]; }).result.systemd.network.networks
      && !(refused boot.kernelParams)
      && (refWith { boot.sysctl."vm.swappiness" = 10; }).result.boot.kernel.sysctl == { "vm.swappiness" = 10; };

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

  # Each mistake (the reference server plus these definitions), and a piece of
  # the message that must tell the user what to change. Only NixOS integration
  # is asserted here; what a daemon's config may hold is its check-config's.
  mistakes = {
    "an address without prefix length" = {
      defs = {
        network.bridges.ovsbr1.addresses = lib.mkForce [ "10.10.0.1" ];
      };
      says = "must be in CIDR form";
    };
    "network.bridges for a bridge that OVS does not have" = {
      defs = {
        network.bridges.ovsbr9.dhcp = true;
      };
      says = "configures the interface of Open vSwitch bridge \"ovsbr9\", which services.ghostbridge.ovs.settings.bridges does not declare";
    };
    "qdrant_sync without the snapshotter" = {
      defs = {
        snapshotter.enable = lib.mkForce false;
      };
      says = "set services.ghostbridge.snapshotter.enable = true";
    };
    "vfio ids without IOMMU" = {
      defs = {
        boot.iommu = lib.mkForce null;
      };
      says = "set services.ghostbridge.boot.iommu";
    };
    "a malformed vfio id" = {
      defs = {
        boot.vfioIds = lib.mkForce [ "10de-2204" ];
      };
      says = "must hold PCI ids written vendor:device";
    };
    "op-dbus without its package" = {
      defs = {
        opDbus.enable = true;
      };
      says = "set it to your op-dbus package";
    };
    "a libvirt network on an undeclared bridge" = {
      defs = {
        virtualization.libvirt.ovsNetworks.lab = "ovsbr9";
      };
      says = "add [{] name = \"ovsbr9\"; [}] to services.ghostbridge.ovs.settings.bridges";
    };
    "ovs enabled without bridges" = {
      defs = {
        network.bridges = lib.mkForce { };
        ovs = {
          enable = true;
          settings.bridges = lib.mkForce [ ];
        };
        virtualization.libvirt.enable = lib.mkForce false;
      };
      says = "declare at least one bridge";
    };
    "noVNC exposed without a VNC password" = {
      defs = {
        virtualization.novnc.listenAddress = "0.0.0.0";
      };
      says = "without a VNC password: set services.ghostbridge.virtualization.novnc.passwordFile";
    };
    "noVNC's port opened in the firewall without a VNC password" = {
      defs = {
        virtualization.novnc = {
          listenAddress = "0.0.0.0";
          openFirewall = true;
        };
      };
      says = "set services.ghostbridge.virtualization.novnc.passwordFile";
    };
    "noVNC's port opened while it listens on loopback" = {
      defs = {
        virtualization.novnc = {
          openFirewall = true;
          passwordFile = "/run/secrets/vnc";
        };
      };
      says = "websockify listens on loopback [(]127.0.0.1[)]: set services.ghostbridge.virtualization.novnc.listenAddress";
    };
    "noVNC without libvirt" = {
      defs = {
        virtualization.libvirt.enable = lib.mkForce false;
      };
      says = "set services.ghostbridge.virtualization.libvirt.enable = true";
    };
    "deploy without the doctor" = {
      defs = {
        doctor.enable = false;
      };
      says = "services.ghostbridge.deploy needs services.ghostbridge.doctor.enable";
    };
    "Grafana on the Prometheus port" = {
      defs = {
        monitoring.grafana.port = 9090;
      };
      says = "collides with the Prometheus or node exporter port";
    };
  };

  mistakeResults = b.mapAttrs (
    _: m:
    let
      failed = (refWith m.defs).failedAssertions;
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
