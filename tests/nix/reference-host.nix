# `services.ghostbridge` of the reference server (examples/ghostbridge.toml),
# as the generated host sets it (used by the static checks in this folder).
# A key absent from a daemon's `settings` means the daemon's default;
# `metrics_dir` is left to the modules (monitoring).
{
  enable = true;
  deploy.user = "admin";
  boot = {
    iommu = "intel";
    vfioIds = [ "10de:2204" ];
    kernelParams = [ "kvm.ignore_msrs=1" ];
  };
  network.bridges = {
    ovsbr0 = {
      dhcp = true;
      addresses = [ ];
      gateway = [ ];
      dns = [ ];
    };
    ovsbr1 = {
      dhcp = false;
      addresses = [ "10.10.0.1/24" ];
      gateway = [ ];
      dns = [ ];
    };
  };
  ovs.settings.bridges = [
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
  snapshotter = {
    enable = true;
    settings = {
      source = "/var/lib/overlay";
      snapshot_dir = "/var/lib/blockchain-timing/snapshots";
      database = "/var/lib/blockchain-timing/chain.db";
      interval = "1s";
      retention = "1m";
      dbus = true;
    };
  };
  qdrant_sync = {
    enable = true;
    localQdrant = true;
    settings = {
      database = "/var/lib/blockchain-timing/chain.db";
      url = "http://127.0.0.1:6333";
      collection = "ghostbridge-blocks";
      dimension = 384;
      distance = "Cosine";
      batch = 100;
      interval = "1s";
      request_timeout = "10s";
      max_backoff = "30s";
    };
  };
  virtualization = {
    libvirt = {
      enable = true;
      ovsNetworks.public = "ovsbr0";
    };
    docker.enable = true;
    novnc.enable = true;
  };
  monitoring = {
    enable = true;
    grafana.enable = true;
  };
}
