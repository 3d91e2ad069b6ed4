//! Frame builders shared by the test binaries: IP packets by hand (so that every byte is
//! under the test's control) and link-layer wrappers for every `LinkType`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::IpAddr;

use knock_capture::LinkType;

pub const V4_SRC: [u8; 4] = [10, 9, 0, 1];
pub const V4_DST: [u8; 4] = [10, 9, 0, 2];
pub const V6_SRC: [u8; 16] = [0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6_DST: [u8; 16] = [0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SYN: u8 = 0x02;

/// A TCP header (20 bytes, or more with `options` 4-byte words of NOPs).
pub fn tcp_header(sport: u16, dport: u16, flags: u8, option_words: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&1u32.to_be_bytes()); // seq
    h.extend_from_slice(&0u32.to_be_bytes()); // ack
    h.push((5 + option_words) << 4);
    h.push(flags);
    h.extend_from_slice(&1024u16.to_be_bytes()); // window
    h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    h.extend(std::iter::repeat_n(1u8, usize::from(option_words) * 4));
    h
}

/// A UDP header followed by `payload`.
pub fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An IPv4 packet; `fragment` = (more fragments, offset in 8-byte units).
pub fn ipv4(protocol: u8, transport: &[u8], fragment: (bool, u16)) -> Vec<u8> {
    let total = u16::try_from(20 + transport.len()).unwrap();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]); // id
    let frag = (u16::from(fragment.0) << 13) | fragment.1;
    p.extend_from_slice(&frag.to_be_bytes());
    p.push(64);
    p.push(protocol);
    p.extend_from_slice(&[0, 0]); // checksum (not checked)
    p.extend_from_slice(&V4_SRC);
    p.extend_from_slice(&V4_DST);
    p.extend_from_slice(transport);
    p
}

/// An IPv6 packet; `extensions` = (next-header value of each extension, its bytes) in order.
pub fn ipv6(protocol: u8, transport: &[u8], extensions: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (_, bytes)) in extensions.iter().enumerate() {
        let mut bytes = bytes.clone();
        bytes[0] = extensions.get(i + 1).map_or(protocol, |e| e.0);
        chain.extend_from_slice(&bytes);
    }
    let first = extensions.first().map_or(protocol, |e| e.0);
    let payload_len = u16::try_from(chain.len() + transport.len()).unwrap();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&payload_len.to_be_bytes());
    p.push(first);
    p.push(64);
    p.extend_from_slice(&V6_SRC);
    p.extend_from_slice(&V6_DST);
    p.extend_from_slice(&chain);
    p.extend_from_slice(transport);
    p
}

/// Hop-by-hop (0), destination options (60) or routing (43) header of 8 bytes.
pub fn ext8(kind: u8) -> (u8, Vec<u8>) {
    let bytes = match kind {
        // next header (patched), length 0, PadN option of 4 bytes
        0 | 60 => vec![0, 0, 1, 4, 0, 0, 0, 0],
        // next header, length 0, routing type 4 (segment routing) … segments left 0
        43 => vec![0, 0, 4, 0, 0, 0, 0, 0],
        _ => panic!("not an 8-byte extension"),
    };
    (kind, bytes)
}

/// A fragment header (44) with this offset (in 8-byte units) and more-fragments flag.
pub fn fragment_ext(offset: u16, more: bool) -> (u8, Vec<u8>) {
    let field = (offset << 3) | u16::from(more);
    let mut bytes = vec![0, 0];
    bytes.extend_from_slice(&field.to_be_bytes());
    bytes.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    (44, bytes)
}

/// The EtherType of an IP packet (by version nibble).
pub fn ether_type(ip: &[u8]) -> u16 {
    if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 }
}

/// An Ethernet frame with the given VLAN tag protocol identifiers (outermost first).
pub fn ethernet(ip: &[u8], tags: &[u16]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + u16::try_from(i).unwrap()).to_be_bytes());
    }
    f.extend_from_slice(&ether_type(ip).to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A Linux cooked (SLL) frame with this packet type (0 = to us, 4 = outgoing) and ARPHRD.
pub fn sll(ip: &[u8], packet_type: u16, arphrd: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&packet_type.to_be_bytes());
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.extend_from_slice(&6u16.to_be_bytes());
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(&ether_type(ip).to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A Linux cooked v2 (SLL2) frame.
pub fn sll2(ip: &[u8], packet_type: u8, arphrd: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&ether_type(ip).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&7u32.to_be_bytes()); // ifindex
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.push(packet_type);
    f.push(6);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(ip);
    f
}

/// A BSD loopback frame: NULL in little-endian (the capturing host's order on x86) or
/// big-endian, LOOP always big-endian. IPv6 uses `af6`.
pub fn null_loop(ip: &[u8], big_endian: bool, af6: u32) -> Vec<u8> {
    let af: u32 = if ip[0] >> 4 == 6 { af6 } else { 2 };
    let mut f = if big_endian {
        af.to_be_bytes().to_vec()
    } else {
        af.to_le_bytes().to_vec()
    };
    f.extend_from_slice(ip);
    f
}

/// `ip` wrapped for `link` in its most ordinary form.
pub fn frame(link: LinkType, ip: &[u8]) -> Vec<u8> {
    match link {
        LinkType::Ethernet => ethernet(ip, &[]),
        LinkType::LinuxSll => sll(ip, 0, 772),
        LinkType::LinuxSll2 => sll2(ip, 0, 65534),
        LinkType::RawIp => ip.to_vec(),
        LinkType::Null => null_loop(ip, false, 30),
        LinkType::Loop => null_loop(ip, true, 24),
        other => panic!("no builder for {other:?}"),
    }
}

pub fn v4_src() -> IpAddr {
    IpAddr::from(V4_SRC)
}
pub fn v4_dst() -> IpAddr {
    IpAddr::from(V4_DST)
}
pub fn v6_src() -> IpAddr {
    IpAddr::from(V6_SRC)
}
pub fn v6_dst() -> IpAddr {
    IpAddr::from(V6_DST)
}
