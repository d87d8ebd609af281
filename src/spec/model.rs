//! The typed spec model. Field names are the TOML keys; serde decodes it and
//! schemars derives the JSON Schema that `ghostgen schema` prints and that the
//! structural validation uses, so the two can never disagree.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ovs::config::{
    BridgeSpec, Config as OvsConfig, DatapathType, default_drop_uplink_broadcast, default_mac_guard,
};
pub use crate::runtime::duration::DURATION_PATTERN;
use crate::snapshot::config::Config as SnapshotterConfig;
use crate::vectors::config::SyncConfig as QdrantSyncConfig;

/// Patterns of the string-encoded values, and what each means (for error messages).
pub const SIZE_PATTERN: &str = r"^[1-9][0-9]*(KiB|MiB|GiB|TiB)$";
pub const COMPRESS_PATTERN: &str = r"^(zstd|zlib|lzo)(:[0-9]+)?$";
pub const STATE_VERSION_PATTERN: &str = r"^[0-9]{2}\.[0-9]{2}$";
pub const DAYS_PATTERN: &str = r"^[1-9][0-9]*d$";

/// A human description of each pattern, with an example.
pub const PATTERN_HELP: &[(&str, &str)] = &[
    (DURATION_PATTERN, "a duration: a whole number and a unit (ms, s, m, h, d), e.g. \"1s\" or \"500ms\""),
    (SIZE_PATTERN, "a size: a whole number and a binary unit (KiB, MiB, GiB, TiB), e.g. \"512MiB\""),
    (COMPRESS_PATTERN, "a compression: \"zstd\", \"zstd:3\", \"zlib:6\" or \"lzo\""),
    (STATE_VERSION_PATTERN, "a NixOS release like \"25.11\""),
    (DAYS_PATTERN, "a number of days like \"14d\""),
];

/// A whole spec file, after `[defaults]` has been merged into every host.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub flake: FlakeInputs,
    pub hosts: Vec<HostSpec>,
}

/// `[flake]`: where the generated flake takes its inputs from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlakeInputs {
    /// Flake reference for nixpkgs.
    #[serde(default = "defaults::nixpkgs")]
    pub nixpkgs: String,
    /// Flake reference for disko, which partitions and mounts the disk layout.
    #[serde(default = "defaults::disko")]
    pub disko: String,
    /// Flake reference for GhostBridge itself (its modules and daemons). A local
    /// checkout works: `"path:/home/me/ghostbridge"` or `"git+file:///home/me/ghostbridge"`.
    #[serde(default = "defaults::ghostbridge")]
    pub ghostbridge: String,
    /// Where the netboot installers (`nix build .#netboot-HOST`) are served over
    /// HTTP, one folder per host; used by `netboot/menu.ipxe`.
    #[serde(default)]
    pub netboot_url: Option<String>,
}

impl Default for FlakeInputs {
    fn default() -> Self {
        FlakeInputs {
            nixpkgs: defaults::nixpkgs(),
            disko: defaults::disko(),
            ghostbridge: defaults::ghostbridge(),
            netboot_url: None,
        }
    }
}

/// One server. In a single-host spec the first five keys live in `[host]` and the
/// sections at the top level; in a fleet each `[[hosts]]` entry holds all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name: an RFC 1123 label (letters, digits, hyphens; at most 63 bytes).
    pub name: String,
    /// Nix system double.
    #[serde(default)]
    pub system: System,
    /// NixOS state version of the first install, e.g. "25.11". Never change it later.
    #[schemars(regex(pattern = STATE_VERSION_PATTERN))]
    pub state_version: String,
    /// IANA time zone.
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    /// Default locale.
    #[serde(default = "defaults::locale")]
    pub locale: String,
    #[serde(default)]
    pub nix: NixSettings,
    #[serde(default)]
    pub boot: Boot,
    /// The BTRFS disk layout; without it the host keeps its existing file systems.
    #[serde(default)]
    pub disk: Option<Disk>,
    #[serde(default)]
    pub network: Network,
    /// The snapshotter (`ghostbridge-snapshotter`): its settings, verbatim; absent = off.
    #[serde(default)]
    pub snapshotter: Option<SnapshotterConfig>,
    /// The Qdrant sync (`ghostbridge-qdrant-sync`): its settings, verbatim; absent = off.
    #[serde(default)]
    pub qdrant_sync: Option<QdrantSyncConfig>,
    /// op-dbus and its companions; absent = off.
    #[serde(default)]
    pub dbus: Option<Dbus>,
    #[serde(default)]
    pub virtualization: Virtualization,
    /// Prometheus, node exporter and Grafana; absent = off.
    #[serde(default)]
    pub monitoring: Option<Monitoring>,
    #[serde(default)]
    pub ssh: Ssh,
    /// Login accounts. At least one admin with an Ed25519 key is required.
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub firewall: Firewall,
    /// The local Qdrant server (when `[qdrant_sync] url` is a loopback URL).
    #[serde(default)]
    pub qdrant: Option<LocalQdrant>,
    /// Defaults for a server nobody sits in front of; absent = all on.
    #[serde(default)]
    pub remote_server: Option<RemoteServer>,
    /// How `ghostgen deploy` reaches this host.
    #[serde(default)]
    pub deploy: Deploy,
}

impl HostSpec {
    /// The user `ghostgen deploy` logs in as unless `[deploy] user` says
    /// otherwise: the first admin with an SSH key (root login is disabled).
    pub fn default_deploy_user(&self) -> Option<&str> {
        self.users.iter().find(|u| u.admin && !u.ssh_keys.is_empty()).map(|u| u.name.as_str())
    }

    /// The user `ghostgen deploy` logs in as.
    pub fn deploy_user(&self) -> Option<&str> {
        self.deploy.user.as_deref().or_else(|| self.default_deploy_user())
    }
}

/// `[deploy]`: how `ghostgen deploy` reaches the host over SSH. Nothing
/// secret lives here: keys and agent stay the operator's own `ssh` setup.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// A DNS name or an IP address. Default: the host's name.
    #[serde(default)]
    pub address: Option<String>,
    /// The SSH user, an admin from `[[users]]` (commands run through `sudo`;
    /// root login is disabled). Default: the first admin with an SSH key.
    #[serde(default)]
    pub user: Option<String>,
    /// The SSH port. Default: `[ssh] port`.
    #[serde(default)]
    pub port: Option<u16>,
    /// A jump host, `[user@]host[:port]` (`ssh -J`).
    #[serde(default)]
    pub jump: Option<String>,
    /// Where the system is built: on this machine, then copied (`local`), or on the host itself (`remote`).
    #[serde(default)]
    pub build_on: BuildOn,
    /// Names that `ghostgen deploy --tag` selects the host by.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Where `ghostgen deploy` builds a host's system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BuildOn {
    #[default]
    Local,
    Remote,
}

/// `[qdrant]`: where the Qdrant this host runs keeps its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalQdrant {
    /// Folder for Qdrant's storage and snapshots, normally a `[[disk.subvolumes]]` mount point.
    pub data_dir: String,
}

/// `[remote_server]`: what a headless server needs (as nix-community/srvos sets
/// it); each key left out keeps the module's default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteServer {
    /// All of the below (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// systemd drives the hardware watchdog (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<bool>,
    /// No emergency shell waiting on a console nobody sees (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_emergency_mode: Option<bool>,
    /// networkd and resolved are not stopped on `switch` (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_network_on_switch: Option<bool>,
    /// Serial console beside the VGA one (`ttyS0,115200`; `""` = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_console: Option<String>,
    /// Boot entries kept (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_entries: Option<u32>,
}

impl HostSpec {
    /// The OVS reconciler's config for this host: its bridges, the rest default.
    pub fn ovs_config(&self) -> OvsConfig {
        OvsConfig { bridges: self.network.bridges.iter().map(Bridge::ovs).collect(), ..OvsConfig::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum System {
    #[default]
    #[serde(rename = "x86_64-linux")]
    X86_64Linux,
    #[serde(rename = "aarch64-linux")]
    Aarch64Linux,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::X86_64Linux => "x86_64-linux",
            System::Aarch64Linux => "aarch64-linux",
        }
    }
}

/// `[nix]`: Nix daemon settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NixSettings {
    /// Enable the `nix-command` and `flakes` experimental features.
    #[serde(default = "defaults::yes")]
    pub flakes: bool,
    /// Hard-link identical files in the store.
    #[serde(default = "defaults::yes")]
    pub auto_optimise: bool,
    /// Automatic garbage collection; absent = off.
    #[serde(default = "defaults::gc")]
    pub gc: Option<GarbageCollection>,
}

impl Default for NixSettings {
    fn default() -> Self {
        NixSettings { flakes: true, auto_optimise: true, gc: defaults::gc() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GarbageCollection {
    /// systemd calendar expression.
    #[serde(default = "defaults::gc_dates")]
    pub dates: String,
    /// Delete generations older than this many days, e.g. "14d".
    #[serde(default = "defaults::gc_older_than")]
    #[schemars(regex(pattern = DAYS_PATTERN))]
    pub older_than: String,
}

/// `[boot]`: systemd-boot on EFI, kernel parameters, IOMMU and VFIO.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// The boot loader. Only systemd-boot is supported.
    #[serde(default)]
    pub loader: BootLoader,
    #[serde(default)]
    pub kernel_params: Vec<String>,
    #[serde(default)]
    pub kernel_modules: Vec<String>,
    /// Turn the IOMMU on for this CPU vendor (needed for GPU passthrough).
    #[serde(default)]
    pub iommu: Option<Iommu>,
    /// PCI vendor:device ids bound to vfio-pci at boot, e.g. "10de:2204".
    #[serde(default)]
    pub vfio_ids: Vec<String>,
    /// Kernel sysctl settings, e.g. `"vm.swappiness" = 10`.
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum BootLoader {
    #[default]
    #[serde(rename = "systemd-boot")]
    SystemdBoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Iommu {
    Intel,
    Amd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    Int(i64),
    Str(String),
}

/// `[disk]`: one disk, GPT with an EFI system partition and one BTRFS file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The whole-disk device, preferably a stable /dev/disk/by-id/ path.
    pub device: String,
    /// Size of the EFI system partition, e.g. "512MiB".
    #[serde(default = "defaults::esp_size")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub esp_size: String,
    /// BTRFS subvolumes (`[[disk.subvolumes]]`).
    #[serde(default)]
    pub subvolumes: Vec<Subvolume>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subvolume {
    /// Subvolume name, conventionally starting with `@`.
    pub name: String,
    /// Absolute mount point.
    pub mount: String,
    /// Compression as "algorithm" or "algorithm:level": zstd (1-15), zlib (1-9), lzo (no level).
    #[serde(default)]
    #[schemars(regex(pattern = COMPRESS_PATTERN))]
    pub compress: Option<String>,
    #[serde(default = "defaults::yes")]
    pub noatime: bool,
    #[serde(default)]
    pub ssd: bool,
    #[serde(default)]
    pub discard: Option<Discard>,
    /// Disable copy-on-write (databases, VM images). Excludes compression.
    #[serde(default)]
    pub nodatacow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    Async,
    Sync,
}

/// `[network]`: systemd-networkd and Open vSwitch bridges.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// OVS bridges (`[[network.bridges]]`).
    #[serde(default)]
    pub bridges: Vec<Bridge>,
    /// Plain interfaces, NICs outside Open vSwitch (`[[network.interfaces]]`).
    #[serde(default)]
    pub interfaces: Vec<Interface>,
}

/// `[[network.interfaces]]`: a NIC systemd-networkd addresses directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// The interface's name, e.g. "enp1s0".
    pub name: String,
    /// Configure it by DHCP (IPv4, and IPv6 router advertisements).
    #[serde(default)]
    pub dhcp: bool,
    /// Static addresses in CIDR form, e.g. "203.0.113.10/32".
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Default gateway: one address, or one IPv4 and one IPv6 address.
    #[serde(default)]
    pub gateway: Option<Gateways>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// The IP configuration of one link, a bridge's own interface or a plain
/// interface: what systemd-networkd gets, and what `ghostgen check` checks alike.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// `"bridges"` or `"interfaces"`: the `[[network.*]]` list it is in.
    pub list: &'static str,
    pub index: usize,
    pub name: &'a str,
    pub dhcp: bool,
    pub addresses: &'a [String],
    pub gateway: Option<&'a Gateways>,
    pub dns: &'a [String],
}

impl Link<'_> {
    /// "bridge" or "interface", for messages.
    pub fn what(&self) -> &'static str {
        if self.list == "bridges" { "bridge" } else { "interface" }
    }
    /// The gateways, in the order written.
    pub fn gateways(&self) -> Vec<&String> {
        self.gateway.map(|g| g.each().into_iter().map(|(_, g)| g).collect()).unwrap_or_default()
    }
}

impl Network {
    /// Every addressed link: the bridges' own interfaces, then the plain interfaces.
    pub fn links(&self) -> Vec<Link<'_>> {
        let bridges = self.bridges.iter().enumerate().map(|(index, b)| Link {
            list: "bridges",
            index,
            name: &b.name,
            dhcp: b.dhcp,
            addresses: &b.addresses,
            gateway: b.gateway.as_ref(),
            dns: &b.dns,
        });
        let plain = self.interfaces.iter().enumerate().map(|(index, i)| Link {
            list: "interfaces",
            index,
            name: &i.name,
            dhcp: i.dhcp,
            addresses: &i.addresses,
            gateway: i.gateway.as_ref(),
            dns: &i.dns,
        });
        bridges.chain(plain).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    /// Bridge name (at most 15 bytes); also the name of its own internal interface.
    pub name: String,
    /// `system` (kernel datapath) or `netdev` (userspace, where there is no kernel module).
    #[serde(default)]
    pub datapath_type: DatapathType,
    /// The physical NIC attached to this bridge. Its hardware offloads are turned off.
    #[serde(default)]
    pub uplink: Option<String>,
    /// More system interfaces attached to the bridge.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Extra internal ports of the bridge.
    #[serde(default)]
    pub internal_ports: Vec<String>,
    /// Configure the bridge interface by DHCP.
    #[serde(default)]
    pub dhcp: bool,
    /// Static addresses of the bridge interface in CIDR form, e.g. "10.0.0.1/24".
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Default gateway: one address, or one IPv4 and one IPv6 address, each
    /// inside one of `addresses` (an IPv6 link-local one such as "fe80::1" anywhere).
    #[serde(default)]
    pub gateway: Option<Gateways>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Drop Ethernet broadcast and multicast arriving on the uplink.
    #[serde(default = "default_drop_uplink_broadcast")]
    pub drop_uplink_broadcast: bool,
    /// Only the uplink's MAC (the bridge takes it) and `allowed_macs` leave through the uplink.
    #[serde(default = "default_mac_guard")]
    pub mac_guard: bool,
    /// More source MACs that may leave through the uplink (a hoster's MACs for additional IPs).
    #[serde(default)]
    pub allowed_macs: Vec<String>,
    /// More OpenFlow rules in ovs-ofctl syntax, added after the generated ones.
    #[serde(default)]
    pub extra_flows: Vec<String>,
}

/// `gateway = "203.0.113.1"` or `gateway = ["203.0.113.1", "fe80::1"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Gateways {
    One(String),
    Each(Vec<String>),
}

impl Gateways {
    /// Each gateway with its place under the `gateway` key (`None`: the key itself).
    pub fn each(&self) -> Vec<(Option<usize>, &String)> {
        match self {
            Gateways::One(g) => vec![(None, g)],
            Gateways::Each(list) => list.iter().enumerate().map(|(i, g)| (Some(i), g)).collect(),
        }
    }
}

impl Bridge {
    /// The OVS reconciler's view of this bridge: the same keys, converted losslessly.
    pub fn ovs(&self) -> BridgeSpec {
        BridgeSpec {
            name: self.name.clone(),
            datapath_type: self.datapath_type,
            uplink: self.uplink.clone(),
            ports: self.ports.clone(),
            internal_ports: self.internal_ports.clone(),
            drop_uplink_broadcast: self.drop_uplink_broadcast,
            mac_guard: self.mac_guard,
            allowed_macs: self.allowed_macs.clone(),
            extra_flows: self.extra_flows.clone(),
        }
    }
}

/// `[dbus]`: op-dbus, its MCP server and web UI, from the user's own flakes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dbus {
    /// The op-dbus package; without it no op-dbus units are declared.
    #[serde(default)]
    pub op_dbus: Option<FlakePackage>,
    /// op-dbus state file.
    #[serde(default = "defaults::state_file")]
    pub state_file: String,
    #[serde(default)]
    pub mcp: Option<McpServer>,
    #[serde(default)]
    pub web: Option<WebUi>,
}

/// A package taken from another flake: `packages.<system>.<package>` of `flake`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlakePackage {
    /// Flake reference, e.g. "github:owner/op-dbus" or "path:/src/op-dbus".
    pub flake: String,
    /// Attribute under `packages.<system>`.
    #[serde(default = "defaults::package")]
    pub package: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    pub package: FlakePackage,
    #[serde(default = "defaults::mcp_port")]
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebUi {
    #[serde(default = "defaults::web_port")]
    pub port: u16,
}

/// `[virtualization]`: libvirt/KVM, LXC, Docker and a noVNC console.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Virtualization {
    #[serde(default)]
    pub libvirt: bool,
    /// libvirt networks backed by OVS bridges: network name = bridge name.
    #[serde(default)]
    pub ovs_networks: BTreeMap<String, String>,
    #[serde(default)]
    pub lxc: bool,
    #[serde(default)]
    pub docker: bool,
    /// Prune unused Docker data weekly.
    #[serde(default = "defaults::yes")]
    pub docker_auto_prune: bool,
    /// Port of the noVNC web console; absent = no console. It listens on
    /// loopback (reach it through an SSH tunnel) unless `novnc_expose` is set.
    #[serde(default)]
    pub novnc_port: Option<u16>,
    /// Serve the console on a public address, behind a VNC password.
    #[serde(default)]
    pub novnc_expose: Option<NovncExpose>,
}

/// `novnc_expose`: the console on `address`, with libvirt's VNC password read
/// from `password_file` on the host at service start (never in the Nix store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NovncExpose {
    pub address: std::net::IpAddr,
    pub password_file: String,
}

/// `[monitoring]`: Prometheus, node exporter (with the textfile collector) and Grafana.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    #[serde(default = "defaults::prometheus_port")]
    pub prometheus_port: u16,
    #[serde(default = "defaults::node_exporter_port")]
    pub node_exporter_port: u16,
    #[serde(default = "defaults::yes")]
    pub grafana: bool,
    #[serde(default = "defaults::grafana_port")]
    pub grafana_port: u16,
}

/// `[ssh]`: OpenSSH, Ed25519 keys only, no passwords, no root login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    #[serde(default = "defaults::ssh_port")]
    pub port: u16,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh { port: defaults::ssh_port() }
    }
}

/// `[[users]]`: a login account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Member of `wheel` (sudo without password, since there are no passwords).
    #[serde(default)]
    pub admin: bool,
    /// OpenSSH public keys, Ed25519 only.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
}

/// `[firewall]`: on, with only the declared ports open (the SSH port is always open).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub allowed_tcp_ports: Vec<u16>,
    #[serde(default)]
    pub allowed_udp_ports: Vec<u16>,
}

/// Default values, documented in the README and in `ghostgen schema`.
pub mod defaults {
    use super::*;
    pub fn nixpkgs() -> String {
        "github:NixOS/nixpkgs/nixos-25.11".into()
    }
    pub fn disko() -> String {
        "github:nix-community/disko".into()
    }
    pub fn ghostbridge() -> String {
        "github:ghostbridge/ghostbridge".into()
    }
    pub fn time_zone() -> String {
        "UTC".into()
    }
    pub fn locale() -> String {
        "en_US.UTF-8".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn gc() -> Option<GarbageCollection> {
        Some(GarbageCollection { dates: gc_dates(), older_than: gc_older_than() })
    }
    pub fn gc_dates() -> String {
        "weekly".into()
    }
    pub fn gc_older_than() -> String {
        "14d".into()
    }
    pub fn esp_size() -> String {
        "512MiB".into()
    }
    pub fn state_file() -> String {
        "/var/lib/op-dbus/state.json".into()
    }
    pub fn package() -> String {
        "default".into()
    }
    pub fn mcp_port() -> u16 {
        3001
    }
    pub fn web_port() -> u16 {
        8080
    }
    pub fn prometheus_port() -> u16 {
        9090
    }
    pub fn node_exporter_port() -> u16 {
        9100
    }
    pub fn grafana_port() -> u16 {
        3000
    }
    pub fn ssh_port() -> u16 {
        22
    }
}
