//! Link-layer types the decoder understands.

use core::fmt;

/// The link-layer framing of captured frames (libpcap's "data link type").
///
/// Obtain it from a live or offline capture with [`LinkType::from_dlt`]; every variant is
/// decoded for both IPv4 and IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkType {
    /// Ethernet II (`DLT_EN10MB`, 1), with up to three 802.1Q / 802.1ad (QinQ) tags.
    /// Linux `lo` uses it too (with zero MAC addresses).
    Ethernet,
    /// Linux "cooked" capture v1 (`DLT_LINUX_SLL`, 113): `-i any`, PPP and unknown hardware.
    LinuxSll,
    /// Linux "cooked" capture v2 (`DLT_LINUX_SLL2`, 276).
    LinuxSll2,
    /// Bare IPv4 or IPv6, chosen by the version nibble (`DLT_RAW` 12/14, `LINKTYPE_RAW` 101,
    /// `LINKTYPE_IPV4` 228, `LINKTYPE_IPV6` 229): tun devices, WireGuard, IP tunnels.
    RawIp,
    /// BSD loopback (`DLT_NULL`, 0): a 4-byte address family in the capturing host's byte
    /// order (both orders are accepted).
    Null,
    /// OpenBSD loopback (`DLT_LOOP`, 108): a 4-byte address family in network byte order.
    Loop,
}

impl LinkType {
    /// Every link type, for tests, benchmarks and fuzzing.
    pub const ALL: [Self; 6] = [
        Self::Ethernet,
        Self::LinuxSll,
        Self::LinuxSll2,
        Self::RawIp,
        Self::Null,
        Self::Loop,
    ];

    /// The link type for a libpcap data-link value, as returned by `pcap_datalink` on a live
    /// or offline capture (DLT values) or stored in a savefile header (LINKTYPE values).
    ///
    /// `None` for framings the decoder does not handle (802.11, PPP with HDLC framing, …).
    #[must_use]
    pub const fn from_dlt(dlt: i32) -> Option<Self> {
        Some(match dlt {
            1 => Self::Ethernet,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            // 12 is DLT_RAW on most systems (and DLT_LOOP only on OpenBSD, which this crate
            // does not target); 14 is DLT_RAW on OpenBSD; 101 is the savefile LINKTYPE_RAW.
            12 | 14 | 101 | 228 | 229 => Self::RawIp,
            0 => Self::Null,
            108 => Self::Loop,
            _ => return None,
        })
    }

    /// The DLT value libpcap uses for this link type on Linux (what a dead capture needs to
    /// compile filters or write savefiles of this type).
    #[must_use]
    pub const fn dlt(self) -> i32 {
        match self {
            Self::Ethernet => 1,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
            Self::RawIp => 12,
            Self::Null => 0,
            Self::Loop => 108,
        }
    }

    /// A short lower-case name (`ethernet`, `linux-sll`, …) for logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ethernet => "ethernet",
            Self::LinuxSll => "linux-sll",
            Self::LinuxSll2 => "linux-sll2",
            Self::RawIp => "raw-ip",
            Self::Null => "null",
            Self::Loop => "loop",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlt_round_trip() {
        for link in LinkType::ALL {
            assert_eq!(LinkType::from_dlt(link.dlt()), Some(link));
        }
        assert_eq!(LinkType::from_dlt(101), Some(LinkType::RawIp));
        assert_eq!(LinkType::from_dlt(14), Some(LinkType::RawIp));
        assert_eq!(LinkType::from_dlt(105), None, "802.11 is not decoded");
        assert_eq!(LinkType::from_dlt(-1), None);
    }
}
