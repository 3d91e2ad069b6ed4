//! What the matcher consumes: one decoded TCP or UDP packet.

use core::fmt;
use std::net::IpAddr;

use crate::config::Knock;
use crate::time::Instant;

/// The transport protocol of a knock.
///
/// Deliberately exhaustive: knockd.conf knows only TCP and UDP knocks, and a new protocol
/// would change the config format, not just this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP: the knock is a segment (normally a SYN) to the port.
    Tcp,
    /// UDP: the knock is a datagram to the port.
    Udp,
}

impl Protocol {
    /// The lower-case name used in knockd.conf and log lines (`tcp`, `udp`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The flag bits of a TCP header (byte 13), as a small bit set.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No flag set.
    pub const EMPTY: Self = Self(0);
    /// FIN.
    pub const FIN: Self = Self(0x01);
    /// SYN.
    pub const SYN: Self = Self(0x02);
    /// RST.
    pub const RST: Self = Self(0x04);
    /// PSH.
    pub const PSH: Self = Self(0x08);
    /// ACK.
    pub const ACK: Self = Self(0x10);
    /// URG.
    pub const URG: Self = Self(0x20);
    /// ECE.
    pub const ECE: Self = Self(0x40);
    /// CWR.
    pub const CWR: Self = Self(0x80);

    /// The six flags knockd.conf can name, in knockd's order, with their config names.
    pub const NAMED: [(Self, &'static str); 6] = [
        (Self::FIN, "fin"),
        (Self::SYN, "syn"),
        (Self::RST, "rst"),
        (Self::PSH, "psh"),
        (Self::ACK, "ack"),
        (Self::URG, "urg"),
    ];

    /// Flags from the raw header byte.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// The raw header byte.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags of both.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` without the flags of `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALL: [(TcpFlags, &str); 8] = [
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
        ];
        let mut first = true;
        for (flag, name) in ALL {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// One TCP or UDP packet as the matcher sees it: a small owned value, copied out of the
/// captured frame (no borrowed bytes), so it can cross a channel.
///
/// Producers: `knock-capture`'s decoder, or anything else that sees packets (an eBPF program,
/// a firewall log, a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketEvent {
    /// When the packet was captured, in the caller's [`Instant`] epoch: the only time the
    /// matcher takes for it (instants must not decrease from packet to packet).
    pub timestamp: Instant,
    /// The sender: the knocker.
    pub source: IpAddr,
    /// The address the packet was sent to.
    pub destination: IpAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The sender's port (informational; knocks are identified by the destination port).
    pub source_port: u16,
    /// The knocked port.
    pub destination_port: u16,
    /// TCP flags; always empty for UDP.
    pub tcp_flags: TcpFlags,
    /// The packet's length on the wire (informational, for debug output).
    pub wire_len: u32,
}

impl PacketEvent {
    /// A TCP packet with the given flags (source port 0, wire length 0).
    #[must_use]
    pub const fn tcp(
        timestamp: Instant,
        source: IpAddr,
        destination: IpAddr,
        destination_port: u16,
        tcp_flags: TcpFlags,
    ) -> Self {
        Self {
            timestamp,
            source,
            destination,
            protocol: Protocol::Tcp,
            source_port: 0,
            destination_port,
            tcp_flags,
            wire_len: 0,
        }
    }

    /// A UDP datagram (source port 0, wire length 0).
    #[must_use]
    pub const fn udp(
        timestamp: Instant,
        source: IpAddr,
        destination: IpAddr,
        destination_port: u16,
    ) -> Self {
        Self {
            timestamp,
            source,
            destination,
            protocol: Protocol::Udp,
            source_port: 0,
            destination_port,
            tcp_flags: TcpFlags::EMPTY,
            wire_len: 0,
        }
    }

    /// The packet a knock client sends for one step of a sequence: a TCP SYN to the step's
    /// port, or a UDP datagram.
    #[must_use]
    pub const fn knock(
        timestamp: Instant,
        source: IpAddr,
        destination: IpAddr,
        knock: Knock,
    ) -> Self {
        match knock.protocol {
            Protocol::Tcp => Self::tcp(timestamp, source, destination, knock.port, TcpFlags::SYN),
            Protocol::Udp => Self::udp(timestamp, source, destination, knock.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knock_steps_become_packets() {
        let (s, d) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t = Instant::from_secs(1);
        let tcp = PacketEvent::knock(t, s, d, Knock::tcp(7000));
        assert_eq!(tcp, PacketEvent::tcp(t, s, d, 7000, TcpFlags::SYN));
        let udp = PacketEvent::knock(t, s, d, Knock::udp(8000));
        assert_eq!(udp, PacketEvent::udp(t, s, d, 8000));
    }

    #[test]
    fn flag_set_operations() {
        let sa = TcpFlags::SYN.union(TcpFlags::ACK);
        assert!(sa.contains(TcpFlags::SYN));
        assert!(!sa.contains(TcpFlags::SYN.union(TcpFlags::FIN)));
        assert!(sa.intersects(TcpFlags::ACK.union(TcpFlags::FIN)));
        assert_eq!(sa.difference(TcpFlags::ACK), TcpFlags::SYN);
        assert_eq!(format!("{sa:?}"), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::EMPTY), "-");
        assert_eq!(sa.bits(), 0x12);
    }
}
