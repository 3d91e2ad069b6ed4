//! Frame decoding: link layer → IP → TCP/UDP header → [`PacketEvent`].
//!
//! Pure and allocation-free: the frame is only borrowed, every read is bounds-checked, and
//! the result is a small `Copy` value or a reason the frame was ignored.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use etherparse::{IpNumber, Ipv6ExtensionSlice, LaxIpSlice, LaxIpv4Slice, LaxIpv6Slice};
use knock_core::{Instant, PacketEvent, Protocol, TcpFlags};

use crate::link::LinkType;

/// Why a frame produced no [`PacketEvent`].
///
/// None of these is an error of the capture: they are counted (see [`IgnoredCounts`]) and
/// otherwise dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ignored {
    /// Not IPv4 or IPv6 (ARP, LLDP, a non-IP link protocol, an unknown address family).
    NotIp,
    /// IP, but neither TCP nor UDP (ICMP, ESP, GRE, an unknown IPv6 extension chain…).
    NotTcpOrUdp,
    /// A non-first IP fragment: it carries no ports. (First fragments that hold the whole
    /// TCP/UDP header are decoded.)
    Fragment,
    /// The frame ends before the TCP/UDP header does (short snap length, or a runt).
    Truncated,
    /// A header is internally inconsistent (bad IP header length, TCP data offset < 5, IP
    /// version not matching the link's protocol field, …).
    Malformed,
    /// A packet this host sent (Linux cooked captures mark them); never a knock.
    Outgoing,
}

impl Ignored {
    /// Every reason, in [`Ignored::index`] order.
    pub const ALL: [Self; 6] = [
        Self::NotIp,
        Self::NotTcpOrUdp,
        Self::Fragment,
        Self::Truncated,
        Self::Malformed,
        Self::Outgoing,
    ];

    /// The number of reasons (the length of [`Ignored::ALL`]).
    pub const COUNT: usize = Self::ALL.len();

    /// A short snake_case name for logs and statistics (`not_ip`, `truncated`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotIp => "not_ip",
            Self::NotTcpOrUdp => "not_tcp_or_udp",
            Self::Fragment => "fragment",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::Outgoing => "outgoing",
        }
    }

    /// The position of this reason in [`Ignored::ALL`] (a dense index for counters).
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Self::NotIp => 0,
            Self::NotTcpOrUdp => 1,
            Self::Fragment => 2,
            Self::Truncated => 3,
            Self::Malformed => 4,
            Self::Outgoing => 5,
        }
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotIp => "not an IP packet",
            Self::NotTcpOrUdp => "neither TCP nor UDP",
            Self::Fragment => "non-first IP fragment",
            Self::Truncated => "truncated before the end of the TCP/UDP header",
            Self::Malformed => "malformed header",
            Self::Outgoing => "outgoing packet",
        })
    }
}

impl std::error::Error for Ignored {}

/// Counters of ignored frames, one per [`Ignored`] reason (plain integers, for one thread).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct IgnoredCounts {
    counts: [u64; Ignored::COUNT],
}

impl fmt::Debug for IgnoredCounts {
    /// `{not_ip: 0, not_tcp_or_udp: 3, …}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(reason, count)| (reason.as_str(), count)))
            .finish()
    }
}

impl IgnoredCounts {
    /// Counts one ignored frame.
    pub fn record(&mut self, reason: Ignored) {
        let slot = &mut self.counts[reason.index()];
        *slot = slot.saturating_add(1);
    }

    /// How many frames were ignored for `reason`.
    #[must_use]
    pub const fn get(&self, reason: Ignored) -> u64 {
        self.counts[reason.index()]
    }

    /// How many frames were ignored in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Every reason with its count (zeros included), in [`Ignored::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Ignored, u64)> + '_ {
        Ignored::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

/// Counters of ignored frames shared between threads (relaxed atomics): a capture thread
/// records, anyone reads a [`snapshot`](Self::snapshot).
#[derive(Debug, Default)]
pub struct AtomicIgnoredCounts {
    counts: [AtomicU64; Ignored::COUNT],
}

impl AtomicIgnoredCounts {
    /// Counts one ignored frame.
    pub fn record(&self, reason: Ignored) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The current counts.
    #[must_use]
    pub fn snapshot(&self) -> IgnoredCounts {
        let mut out = IgnoredCounts::default();
        for (slot, counter) in out.counts.iter_mut().zip(&self.counts) {
            *slot = counter.load(Ordering::Relaxed);
        }
        out
    }
}

/// EtherType of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still emitted by some switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// The most VLAN tags walked before giving up: QinQ needs two, three covers odd stacks, and
/// the bound keeps a frame of nothing but tags from costing more than a few reads.
pub(crate) const MAX_VLAN_TAGS: usize = 3;
/// `PACKET_OUTGOING`: the packet type of frames this host sent, in SLL/SLL2 headers.
const PACKET_OUTGOING: u16 = 4;
/// Length of a Linux cooked v1 header.
const SLL_LEN: usize = 16;
/// Length of a Linux cooked v2 header.
const SLL2_LEN: usize = 20;

/// The IP version a link header announced, to check against the version nibble.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Decodes one captured frame into a [`PacketEvent`].
///
/// `timestamp` becomes the event's timestamp and `wire_len` (the packet's original length,
/// which may exceed `frame.len()` when the snap length cut it) its `wire_len`.
///
/// * Every [`LinkType`] carries IPv4 and IPv6; Ethernet may carry up to three VLAN tags
///   (802.1Q, 802.1ad QinQ).
/// * IPv6 extension headers (hop-by-hop, routing, destination options, fragment,
///   authentication) are walked by etherparse; each is at least 8 bytes, so the walk is
///   bounded by the captured length (the live capture keeps whole packets, so a chain of
///   any length is walked). Hop-by-hop anywhere but first is [`Ignored::Malformed`]; an unknown header
///   ends the walk ([`Ignored::NotTcpOrUdp`]).
/// * Fragments: a first fragment (offset 0) that holds the whole fixed TCP/UDP header is
///   decoded, as libpcap's `dst port` filters and knockd 0.8 do; later fragments have no
///   ports and give [`Ignored::Fragment`].
/// * Truncated frames are decoded laxly: if the fixed TCP (20 bytes) or UDP (8 bytes) header
///   is there, the event is produced even when options or payload are cut.
/// * Linux cooked frames marked outgoing give [`Ignored::Outgoing`].
///
/// Never panics and never reads outside `frame`; it does not allocate.
///
/// # Errors
///
/// The reason the frame is not a TCP/UDP packet this crate can report (see [`Ignored`]).
pub fn decode(
    link: LinkType,
    timestamp: Instant,
    frame: &[u8],
    wire_len: u32,
) -> Result<PacketEvent, Ignored> {
    decode_with_payload(link, timestamp, frame, wire_len).map(|(event, _)| event)
}

/// [`decode`], also giving the data a UDP datagram carries (for SPA receivers): the bytes
/// after the UDP header, limited by the UDP length field and by what was captured. Empty for
/// TCP segments. The payload borrows `frame`: pure and allocation-free like [`decode`].
///
/// # Errors
///
/// As [`decode`].
pub fn decode_with_payload(
    link: LinkType,
    timestamp: Instant,
    frame: &[u8],
    wire_len: u32,
) -> Result<(PacketEvent, &[u8]), Ignored> {
    let (family, ip) = match link {
        LinkType::Ethernet => {
            let ether_type = read_u16(frame, 12).ok_or(Ignored::Truncated)?;
            ether_payload(ether_type, frame.get(14..).ok_or(Ignored::Truncated)?)?
        }
        LinkType::LinuxSll => {
            if frame.len() < SLL_LEN {
                return Err(Ignored::Truncated);
            }
            if read_u16(frame, 0) == Some(PACKET_OUTGOING) {
                return Err(Ignored::Outgoing);
            }
            let proto = read_u16(frame, 14).ok_or(Ignored::Truncated)?;
            ether_payload(proto, &frame[SLL_LEN..])?
        }
        LinkType::LinuxSll2 => {
            if frame.len() < SLL2_LEN {
                return Err(Ignored::Truncated);
            }
            if frame.get(10).copied().map(u16::from) == Some(PACKET_OUTGOING) {
                return Err(Ignored::Outgoing);
            }
            let proto = read_u16(frame, 0).ok_or(Ignored::Truncated)?;
            ether_payload(proto, &frame[SLL2_LEN..])?
        }
        LinkType::RawIp => (None, frame),
        LinkType::Null | LinkType::Loop => {
            let header: [u8; 4] = frame
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(Ignored::Truncated)?;
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(header)
            } else {
                // DLT_NULL is in the capturing host's byte order, which may not be ours when
                // reading a savefile: address families are small, so whichever reading fits
                // in 16 bits is the right one.
                let le = u32::from_le_bytes(header);
                if le > 0xffff {
                    u32::from_be_bytes(header)
                } else {
                    le
                }
            };
            let family = match family {
                2 => Family::V4,
                // AF_INET6 is 24 on NetBSD/OpenBSD, 28 on FreeBSD/DragonFly, 30 on macOS.
                24 | 28 | 30 => Family::V6,
                _ => return Err(Ignored::NotIp),
            };
            (Some(family), &frame[4..])
        }
    };
    decode_ip(family, timestamp, ip, wire_len)
}

/// Big-endian u16 at `offset`, if the slice is long enough.
fn read_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    let pair = bytes.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

/// Skips VLAN tags and maps the final EtherType to an IP family.
fn ether_payload(
    mut ether_type: u16,
    mut payload: &[u8],
) -> Result<(Option<Family>, &[u8]), Ignored> {
    let mut tags = 0;
    while matches!(
        ether_type,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        if tags == MAX_VLAN_TAGS {
            return Err(Ignored::NotIp);
        }
        tags += 1;
        // A tag: 2 bytes of priority/VLAN id, then the next EtherType.
        ether_type = read_u16(payload, 2).ok_or(Ignored::Truncated)?;
        payload = &payload[4..];
    }
    match ether_type {
        ETHERTYPE_IPV4 => Ok((Some(Family::V4), payload)),
        ETHERTYPE_IPV6 => Ok((Some(Family::V6), payload)),
        _ => Err(Ignored::NotIp),
    }
}

/// Decodes an IP packet (with the family the link announced, if any), with the UDP payload.
fn decode_ip(
    announced: Option<Family>,
    timestamp: Instant,
    ip: &[u8],
    wire_len: u32,
) -> Result<(PacketEvent, &[u8]), Ignored> {
    let version = match ip.first().map(|b| b >> 4) {
        None => return Err(Ignored::Truncated),
        Some(4) => Family::V4,
        Some(6) => Family::V6,
        // A link that said "IP" but carries another version is broken; a raw link with an
        // unknown version is just not IP.
        Some(_) if announced.is_some() => return Err(Ignored::Malformed),
        Some(_) => return Err(Ignored::NotIp),
    };
    if announced.is_some_and(|a| a != version) {
        return Err(Ignored::Malformed);
    }
    let (sliced, ext_error) = LaxIpSlice::from_slice(ip).map_err(|e| match e {
        etherparse::err::ip::LaxHeaderSliceError::Len(_) => Ignored::Truncated,
        etherparse::err::ip::LaxHeaderSliceError::Content(_) => Ignored::Malformed,
    })?;
    // An extension header (IPv6 chain, or an IPv4/IPv6 authentication header) that could not
    // be read: the transport header cannot be located.
    if let Some((error, _layer)) = ext_error {
        return Err(match error {
            etherparse::err::ipv6_exts::HeaderSliceError::Len(_) => Ignored::Truncated,
            etherparse::err::ipv6_exts::HeaderSliceError::Content(_) => Ignored::Malformed,
        });
    }
    let (source, destination, payload) = match &sliced {
        LaxIpSlice::Ipv4(v4) => {
            let header = v4.header();
            (
                header.source_addr().into(),
                header.destination_addr().into(),
                v4.payload(),
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let header = v6.header();
            (
                header.source_addr().into(),
                header.destination_addr().into(),
                v6.payload(),
            )
        }
    };
    if payload.fragmented && !is_first_fragment(&sliced) {
        return Err(Ignored::Fragment);
    }
    let transport = payload.payload;
    let (protocol, source_port, destination_port, tcp_flags, data) = match payload.ip_number {
        IpNumber::TCP => {
            if transport.len() < 20 {
                return Err(Ignored::Truncated);
            }
            // Data offset below 5 words cannot be a TCP header. Options beyond the fixed 20
            // bytes are not needed (and may be cut by the snap length).
            if transport[12] >> 4 < 5 {
                return Err(Ignored::Malformed);
            }
            (
                Protocol::Tcp,
                u16::from_be_bytes([transport[0], transport[1]]),
                u16::from_be_bytes([transport[2], transport[3]]),
                TcpFlags::from_bits(transport[13]),
                &transport[..0],
            )
        }
        IpNumber::UDP => {
            if transport.len() < 8 {
                return Err(Ignored::Truncated);
            }
            // The UDP length field bounds the data (Ethernet padding is not data); a length
            // below the header's own 8 bytes, or beyond the capture, is taken laxly.
            let length = usize::from(u16::from_be_bytes([transport[4], transport[5]]));
            let end = length.clamp(8, transport.len());
            (
                Protocol::Udp,
                u16::from_be_bytes([transport[0], transport[1]]),
                u16::from_be_bytes([transport[2], transport[3]]),
                TcpFlags::EMPTY,
                &transport[8..end],
            )
        }
        _ => return Err(Ignored::NotTcpOrUdp),
    };
    Ok((
        PacketEvent {
            timestamp,
            source,
            destination,
            protocol,
            source_port,
            destination_port,
            tcp_flags,
            wire_len,
        },
        data,
    ))
}

/// Whether a fragmented packet is the first fragment (offset 0), which starts with the
/// transport header.
fn is_first_fragment(ip: &LaxIpSlice<'_>) -> bool {
    match ip {
        LaxIpSlice::Ipv4(v4) => first_fragment_v4(v4),
        LaxIpSlice::Ipv6(v6) => first_fragment_v6(v6),
    }
}

fn first_fragment_v4(v4: &LaxIpv4Slice<'_>) -> bool {
    v4.header().fragments_offset().value() == 0
}

fn first_fragment_v6(v6: &LaxIpv6Slice<'_>) -> bool {
    v6.extensions().clone().into_iter().all(|ext| match ext {
        Ipv6ExtensionSlice::Fragment(fragment) => fragment.fragment_offset().value() == 0,
        _ => true,
    })
}
