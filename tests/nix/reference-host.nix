# `services.ghostbridge` of the reference server, as the generated host sets it
# (used by the static checks in this folder).
{
  enable = true;
  boot = {
    iommu = "intel";
    vfioIds = [ "10de:2204" ];
    kernelParams = [ "kvm.ignore_msrs=1" ];
  };
  network.bridges = {
    ovsbr0 = {
      uplink = "enp1s0";
      ports = [ "vnet0" ];
      internalPorts = [ "ovsbr0-mgmt" ];
      dhcp = true;
    };
    ovsbr1 = {
      addresses = [ "10.10.0.1/24" ];
      dropUplinkBroadcast = false;
    };
  };
  snapshotter.enable = true;
  vectorSync.enable = true;
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
