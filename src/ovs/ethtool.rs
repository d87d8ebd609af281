//! Turns hardware offloads off on an interface through the kernel's ethtool
//! ioctl (SIOCETHTOOL): feature names from ETHTOOL_GSSET_INFO/ETHTOOL_GSTRINGS,
//! state from ETHTOOL_GFEATURES, changes with ETHTOOL_SFEATURES.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::error::{OvsError, Result};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// One netdev feature as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub changeable: bool,
    /// What was asked for (by us or anyone); the driver may keep a feature on regardless.
    pub requested: bool,
    pub active: bool,
}

/// What [`disable_offloads`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffloadReport {
    pub iface: String,
    /// Offloads that were on and are now off.
    pub turned_off: Vec<String>,
    /// Offloads the driver kept on although asked to turn them off.
    pub refused: Vec<String>,
}

/// Whether a feature is a hardware/stack offload this program turns off.
/// Filters (rx-vlan-filter, ntuple), diagnostic modes (rx-fcs, rx-all, loopback)
/// and non-offload knobs (tx-nocache-copy, highdma) are left alone.
pub fn is_offload(name: &str) -> bool {
    const KEEP: &[&str] = &[
        "tx-nocache-copy",
        "tx-lockless",
        "rx-vlan-filter",
        "rx-vlan-stag-filter",
        "rx-ntuple-filter",
        "rx-fcs",
        "rx-all",
        "rx-hashing",
    ];
    if KEEP.contains(&name) {
        return false;
    }
    name.starts_with("tx-") || name.starts_with("rx-") || name.contains("offload")
}

struct Ethtool {
    fd: OwnedFd,
    ifname: CString,
    iface: String,
}

impl Ethtool {
    fn open(iface: &str) -> Result<Ethtool> {
        let err = |msg: String| OvsError::Ethtool { iface: iface.to_string(), msg };
        if iface.is_empty() || iface.len() >= libc::IFNAMSIZ {
            return Err(err("interface name length must be 1..15".into()));
        }
        let ifname = CString::new(iface).map_err(|_| err("interface name contains a NUL byte".into()))?;
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| err(format!("cannot open a control socket: {e}")))?;
        Ok(Ethtool { fd, ifname, iface: iface.to_string() })
    }

    /// The interface's hardware address (SIOCGIFHWADDR: answered in the
    /// caller's network namespace, unlike sysfs, which shows the mounter's).
    fn hwaddr(&self) -> Result<[u8; 6]> {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(self.ifname.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        // SAFETY: the fd is a valid socket and ifr a live ifreq the kernel fills in.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut ifr as *mut libc::ifreq) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return Err(OvsError::Ethtool { iface: self.iface.clone(), msg: format!("SIOCGIFHWADDR failed: {e}") });
        }
        // SAFETY: SIOCGIFHWADDR filled the sockaddr member of the union.
        let data = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
        let mut mac = [0u8; 6];
        for (m, d) in mac.iter_mut().zip(data.iter()) {
            *m = *d as u8;
        }
        Ok(mac)
    }

    /// Runs one SIOCETHTOOL request on `buf` (a u32/u64-aligned command buffer).
    fn ioctl(&self, buf: &mut [u64], what: &str) -> Result<()> {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(self.ifname.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = buf.as_mut_ptr().cast::<libc::c_char>();
        // SAFETY: the fd is a valid socket, ifr points at a live ifreq whose data pointer
        // refers to `buf`, which is sized by the caller for the command's reply.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr as *mut libc::ifreq) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::ENODEV) { " (no such interface)" } else { "" };
            return Err(OvsError::Ethtool { iface: self.iface.clone(), msg: format!("{what} failed: {e}{hint}") });
        }
        Ok(())
    }

    fn feature_count(&self) -> Result<usize> {
        // struct ethtool_sset_info { u32 cmd; u32 reserved; u64 sset_mask; u32 data[1]; }
        let mut buf = [0u64; 3];
        write_u32(&mut buf, 0, ETHTOOL_GSSET_INFO);
        buf[1] = 1u64 << ETH_SS_FEATURES;
        self.ioctl(&mut buf, "ETHTOOL_GSSET_INFO")?;
        if buf[1] & (1u64 << ETH_SS_FEATURES) == 0 {
            return Ok(0);
        }
        Ok(read_u32(&buf, 4) as usize)
    }

    fn names(&self, count: usize) -> Result<Vec<String>> {
        // struct ethtool_gstrings { u32 cmd; u32 string_set; u32 len; u8 data[]; }
        let bytes = 12 + count * ETH_GSTRING_LEN;
        let mut buf = vec![0u64; bytes.div_ceil(8)];
        write_u32(&mut buf, 0, ETHTOOL_GSTRINGS);
        write_u32(&mut buf, 1, ETH_SS_FEATURES);
        write_u32(&mut buf, 2, count as u32);
        self.ioctl(&mut buf, "ETHTOOL_GSTRINGS")?;
        let raw = as_bytes(&buf);
        Ok((0..count)
            .map(|i| {
                let s = &raw[12 + i * ETH_GSTRING_LEN..12 + (i + 1) * ETH_GSTRING_LEN];
                let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                String::from_utf8_lossy(&s[..end]).into_owned()
            })
            .collect())
    }

    /// (available, requested, active, never_changed) bit words.
    fn get(&self, count: usize) -> Result<Vec<[u32; 4]>> {
        // struct ethtool_gfeatures { u32 cmd; u32 size; struct { u32 available, requested, active, never_changed; } features[]; }
        let blocks = count.div_ceil(32);
        let mut buf = vec![0u64; (8 + blocks * 16).div_ceil(8)];
        write_u32(&mut buf, 0, ETHTOOL_GFEATURES);
        write_u32(&mut buf, 1, blocks as u32);
        self.ioctl(&mut buf, "ETHTOOL_GFEATURES")?;
        Ok((0..blocks).map(|b| std::array::from_fn(|k| read_u32(&buf, 2 + b * 4 + k))).collect())
    }

    fn set_off(&self, count: usize, bits: &[usize]) -> Result<()> {
        // struct ethtool_sfeatures { u32 cmd; u32 size; struct { u32 valid, requested; } features[]; }
        let blocks = count.div_ceil(32);
        let mut buf = vec![0u64; (8 + blocks * 8).div_ceil(8)];
        write_u32(&mut buf, 0, ETHTOOL_SFEATURES);
        write_u32(&mut buf, 1, blocks as u32);
        for &bit in bits {
            let idx = 2 + (bit / 32) * 2;
            let valid = read_u32(&buf, idx) | (1 << (bit % 32));
            write_u32(&mut buf, idx, valid); // requested stays 0 = off
        }
        self.ioctl(&mut buf, "ETHTOOL_SFEATURES")
    }
}

fn write_u32(buf: &mut [u64], index: usize, v: u32) {
    let bytes = as_bytes_mut(buf);
    bytes[index * 4..index * 4 + 4].copy_from_slice(&v.to_ne_bytes());
}

fn read_u32(buf: &[u64], index: usize) -> u32 {
    let bytes = as_bytes(buf);
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[index * 4..index * 4 + 4]);
    u32::from_ne_bytes(b)
}

fn as_bytes(buf: &[u64]) -> &[u8] {
    // SAFETY: u64 slices are valid as bytes of 8x the length.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) }
}

fn as_bytes_mut(buf: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; exclusive borrow carried over.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) }
}

fn bit(words: &[[u32; 4]], i: usize, field: usize) -> bool {
    words.get(i / 32).is_some_and(|w| w[field] & (1 << (i % 32)) != 0)
}

/// All features of `iface` with whether each can be changed and is active.
/// The hardware address of `iface`, as `aa:bb:cc:dd:ee:ff`.
pub fn hwaddr(iface: &str) -> Result<String> {
    let mac = Ethtool::open(iface)?.hwaddr()?;
    Ok(mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

pub fn features(iface: &str) -> Result<Vec<Feature>> {
    let e = Ethtool::open(iface)?;
    let count = e.feature_count()?;
    let names = e.names(count)?;
    let words = e.get(count)?;
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Feature {
            changeable: bit(&words, i, 0) && !bit(&words, i, 3),
            requested: bit(&words, i, 1),
            active: bit(&words, i, 2),
            name,
        })
        .collect())
}

/// Offloads that are on and requested on: what [`disable_offloads`] would turn off.
pub fn pending(iface: &str) -> Result<Vec<String>> {
    Ok(features(iface)?
        .into_iter()
        .filter(|f| f.changeable && f.active && f.requested && is_offload(&f.name))
        .map(|f| f.name)
        .collect())
}

/// Offloads requested off that the driver keeps on (refused earlier; not drift).
pub fn kept_on(iface: &str) -> Result<Vec<String>> {
    Ok(features(iface)?
        .into_iter()
        .filter(|f| f.changeable && f.active && !f.requested && is_offload(&f.name))
        .map(|f| f.name)
        .collect())
}

/// Turns every changeable offload of `iface` off; what the driver refuses is reported, not an error.
pub fn disable_offloads(iface: &str) -> Result<OffloadReport> {
    let e = Ethtool::open(iface)?;
    let count = e.feature_count()?;
    let names = e.names(count)?;
    let before = e.get(count)?;
    let targets: Vec<usize> = (0..count)
        .filter(|&i| {
            let (changeable, requested, active) =
                (bit(&before, i, 0) && !bit(&before, i, 3), bit(&before, i, 1), bit(&before, i, 2));
            changeable && requested && active && is_offload(&names[i])
        })
        .collect();
    let mut report = OffloadReport { iface: iface.to_string(), ..Default::default() };
    if targets.is_empty() {
        return Ok(report);
    }
    e.set_off(count, &targets)?;
    let after = e.get(count)?;
    for i in targets {
        if bit(&after, i, 2) {
            report.refused.push(names[i].clone());
        } else {
            report.turned_off.push(names[i].clone());
        }
    }
    Ok(report)
}

/// Whether a network interface with this name exists (in this network namespace).
pub fn interface_exists(iface: &str) -> bool {
    nix::net::if_::if_nametoindex(iface).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offload_selection() {
        for n in [
            "tx-tcp-segmentation",
            "tx-generic-segmentation",
            "rx-gro",
            "rx-lro",
            "rx-vlan-hw-parse",
            "tx-vlan-hw-insert",
            "hw-tc-offload",
        ] {
            assert!(is_offload(n), "{n}");
        }
        for n in ["rx-vlan-filter", "tx-nocache-copy", "highdma", "loopback", "rx-fcs"] {
            assert!(!is_offload(n), "{n}");
        }
    }

    #[test]
    fn loopback_features_are_readable() {
        let f = features("lo").unwrap();
        assert!(f.iter().any(|f| f.name == "tx-generic-segmentation"), "{f:?}");
        assert!(!interface_exists("gb-no-such-if"));
        assert!(interface_exists("lo"));
    }
}
