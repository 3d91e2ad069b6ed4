//! `decode` on hand-built frames of every link type and family, and on arbitrary bytes.

mod common;

use common::*;
use knock_capture::{Ignored, IgnoredCounts, LinkType, decode};
use knock_core::{Instant, PacketEvent, Protocol, TcpFlags};
use proptest::prelude::*;

const T: Instant = Instant::from_micros(1_234_567);

fn run(link: LinkType, frame: &[u8]) -> Result<PacketEvent, Ignored> {
    decode(link, T, frame, u32::try_from(frame.len()).unwrap() + 10)
}

fn assert_tcp_syn(event: PacketEvent, v6: bool) {
    let (src, dst) = if v6 {
        (v6_src(), v6_dst())
    } else {
        (v4_src(), v4_dst())
    };
    assert_eq!(event.timestamp, T);
    assert_eq!(event.source, src);
    assert_eq!(event.destination, dst);
    assert_eq!(event.protocol, Protocol::Tcp);
    assert_eq!(event.source_port, 40000);
    assert_eq!(event.destination_port, 7000);
    assert_eq!(event.tcp_flags, TcpFlags::SYN);
}

#[test]
fn tcp_and_udp_on_every_link_type_and_family() {
    for link in LinkType::ALL {
        let v4_syn = ipv4(TCP, &tcp_header(40000, 7000, SYN, 0), (false, 0));
        let v6_syn = ipv6(TCP, &tcp_header(40000, 7000, SYN, 0), &[]);
        assert_tcp_syn(run(link, &frame(link, &v4_syn)).unwrap(), false);
        assert_tcp_syn(run(link, &frame(link, &v6_syn)).unwrap(), true);

        for (ip, src) in [
            (
                ipv4(UDP, &udp_datagram(5, 8000, &[0]), (false, 0)),
                v4_src(),
            ),
            (ipv6(UDP, &udp_datagram(5, 8000, &[0]), &[]), v6_src()),
        ] {
            let frame = frame(link, &ip);
            let event = run(link, &frame).unwrap();
            assert_eq!(event.source, src, "{link}");
            assert_eq!(event.protocol, Protocol::Udp);
            assert_eq!((event.source_port, event.destination_port), (5, 8000));
            assert_eq!(event.tcp_flags, TcpFlags::EMPTY);
            assert_eq!(event.wire_len, u32::try_from(frame.len()).unwrap() + 10);
        }
    }
}

#[test]
fn built_with_etherparse_packet_builder() {
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6(V6_SRC, V6_DST, 64)
        .tcp(40000, 7000, 99, 512)
        .syn()
        .ack(5)
        .write(&mut frame, b"hello")
        .unwrap();
    let event = run(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(event.tcp_flags, TcpFlags::SYN.union(TcpFlags::ACK));
    assert_eq!(event.destination_port, 7000);

    let mut frame = Vec::new();
    etherparse::PacketBuilder::linux_sll(
        etherparse::LinuxSllPacketType::HOST,
        6,
        [1, 2, 3, 4, 5, 6, 0, 0],
    )
    .ipv4(V4_SRC, V4_DST, 64)
    .udp(1, 9000)
    .write(&mut frame, &[0])
    .unwrap();
    let event = run(LinkType::LinuxSll, &frame).unwrap();
    assert_eq!(
        (event.protocol, event.destination_port),
        (Protocol::Udp, 9000)
    );
}

#[test]
fn vlan_and_qinq_tags() {
    let ip = ipv4(TCP, &tcp_header(40000, 7000, SYN, 0), (false, 0));
    for tags in [
        &[0x8100][..],
        &[0x88a8, 0x8100],
        &[0x9100, 0x8100],
        &[0x8100, 0x8100, 0x8100],
    ] {
        assert_tcp_syn(
            run(LinkType::Ethernet, &ethernet(&ip, tags)).unwrap(),
            false,
        );
    }
    let ip6 = ipv6(TCP, &tcp_header(40000, 7000, SYN, 0), &[]);
    assert_tcp_syn(
        run(LinkType::Ethernet, &ethernet(&ip6, &[0x88a8, 0x8100])).unwrap(),
        true,
    );
    // More tags than the bound: refused, not walked forever.
    assert_eq!(
        run(LinkType::Ethernet, &ethernet(&ip, &[0x8100; 4])),
        Err(Ignored::NotIp)
    );
    // A tag cut short.
    let mut cut = ethernet(&ip, &[0x8100]);
    cut.truncate(16);
    assert_eq!(run(LinkType::Ethernet, &cut), Err(Ignored::Truncated));
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let syn = tcp_header(40000, 7000, SYN, 0);
    let chains = [
        vec![ext8(0)],
        vec![ext8(0), ext8(43), ext8(60)],
        vec![ext8(60)],
        vec![ext8(0), ext8(60), ext8(43), ext8(60)],
    ];
    for chain in &chains {
        for link in LinkType::ALL {
            let ip = ipv6(TCP, &syn, chain);
            assert_tcp_syn(run(link, &frame(link, &ip)).unwrap(), true);
        }
    }
    let udp = ipv6(UDP, &udp_datagram(1, 8000, &[]), &[ext8(0), ext8(60)]);
    assert_eq!(run(LinkType::RawIp, &udp).unwrap().destination_port, 8000);
    // An extension header cut in the middle.
    let mut cut = ipv6(TCP, &syn, &[ext8(0), ext8(43)]);
    cut.truncate(40 + 8 + 4);
    assert_eq!(run(LinkType::RawIp, &cut), Err(Ignored::Truncated));
    // A chain ending in something else.
    let esp = ipv6(50, &[0; 16], &[ext8(0)]);
    assert_eq!(run(LinkType::RawIp, &esp), Err(Ignored::NotTcpOrUdp));
}

#[test]
fn fragments() {
    let udp = udp_datagram(1, 8000, &[0; 32]);
    // First fragment, full header present: decoded (like libpcap's `dst port`).
    let first = ipv4(UDP, &udp, (true, 0));
    assert_eq!(run(LinkType::RawIp, &first).unwrap().destination_port, 8000);
    // Later fragments carry no ports.
    let later = ipv4(UDP, &udp[8..], (false, 3));
    assert_eq!(run(LinkType::RawIp, &later), Err(Ignored::Fragment));
    let middle = ipv4(TCP, &[0; 24], (true, 5));
    assert_eq!(
        run(LinkType::Ethernet, &ethernet(&middle, &[])),
        Err(Ignored::Fragment)
    );

    let first6 = ipv6(UDP, &udp, &[fragment_ext(0, true)]);
    assert_eq!(
        run(LinkType::RawIp, &first6).unwrap().destination_port,
        8000
    );
    let later6 = ipv6(UDP, &udp[8..], &[ext8(0), fragment_ext(4, false)]);
    assert_eq!(run(LinkType::RawIp, &later6), Err(Ignored::Fragment));
    // An "atomic" fragment (offset 0, no more fragments) is a whole packet.
    let atomic6 = ipv6(
        TCP,
        &tcp_header(40000, 7000, SYN, 0),
        &[fragment_ext(0, false)],
    );
    assert_tcp_syn(run(LinkType::RawIp, &atomic6).unwrap(), true);
}

#[test]
fn truncation_by_snap_length() {
    for v6 in [false, true] {
        let tcp = tcp_header(40000, 7000, SYN, 3);
        let mut payload = tcp.clone();
        payload.extend_from_slice(&[0xaa; 100]);
        let ip = if v6 {
            ipv6(TCP, &payload, &[ext8(0)])
        } else {
            ipv4(TCP, &payload, (false, 0))
        };
        let header_end = ip.len() - 100;
        for link in LinkType::ALL {
            let full = frame(link, &ip);
            let link_len = full.len() - ip.len();
            // Cut inside the payload, and inside the TCP options: still a knock.
            for cut in [header_end + 10, header_end, header_end - 6] {
                assert_tcp_syn(run(link, &full[..link_len + cut]).unwrap(), v6);
            }
            // Cut inside the fixed TCP header, or the IP header: truncated.
            for cut in [header_end - 12 - 15, header_end - 12 - 19, 10, 1] {
                assert_eq!(
                    run(link, &full[..link_len + cut]),
                    Err(Ignored::Truncated),
                    "{link} v6={v6} cut={cut}"
                );
            }
        }
    }
    // UDP header cut.
    let ip = ipv4(UDP, &udp_datagram(1, 8000, &[0]), (false, 0));
    assert!(run(LinkType::RawIp, &ip[..28]).is_ok());
    assert_eq!(run(LinkType::RawIp, &ip[..27]), Err(Ignored::Truncated));
}

#[test]
fn link_headers_too_short_or_not_ip() {
    for link in LinkType::ALL {
        assert_eq!(run(link, &[]), Err(Ignored::Truncated), "{link}");
        assert_eq!(run(link, &[0x45]), Err(Ignored::Truncated), "{link}");
    }
    let ip = ipv4(TCP, &tcp_header(40000, 7000, SYN, 0), (false, 0));
    // ARP on Ethernet, an unknown SLL protocol, an unknown address family.
    let mut arp = ethernet(&ip, &[]);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(run(LinkType::Ethernet, &arp), Err(Ignored::NotIp));
    let mut other = sll(&ip, 0, 1);
    other[14..16].copy_from_slice(&0x0004u16.to_be_bytes());
    assert_eq!(run(LinkType::LinuxSll, &other), Err(Ignored::NotIp));
    let mut af = null_loop(&ip, false, 30);
    af[0] = 17;
    assert_eq!(run(LinkType::Null, &af), Err(Ignored::NotIp));
    // NULL written by a big-endian host.
    assert!(run(LinkType::Null, &null_loop(&ip, true, 30)).is_ok());
    // Raw IP with an unknown version.
    let mut v5 = ip.clone();
    v5[0] = 0x55;
    assert_eq!(run(LinkType::RawIp, &v5), Err(Ignored::NotIp));
    // The link says IPv4 but the packet says 6: malformed.
    let mut lie = ethernet(&ipv6(TCP, &tcp_header(1, 2, SYN, 0), &[]), &[]);
    lie[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    assert_eq!(run(LinkType::Ethernet, &lie), Err(Ignored::Malformed));
}

#[test]
fn malformed_and_non_transport_packets() {
    // IHL below 5.
    let mut bad_ihl = ipv4(TCP, &tcp_header(1, 2, SYN, 0), (false, 0));
    bad_ihl[0] = 0x43;
    assert_eq!(run(LinkType::RawIp, &bad_ihl), Err(Ignored::Malformed));
    // TCP data offset below 5.
    let mut tcp = tcp_header(1, 2, SYN, 0);
    tcp[12] = 0x40;
    assert_eq!(
        run(LinkType::RawIp, &ipv4(TCP, &tcp, (false, 0))),
        Err(Ignored::Malformed)
    );
    // ICMP, ICMPv6, GRE.
    assert_eq!(
        run(
            LinkType::RawIp,
            &ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1], (false, 0))
        ),
        Err(Ignored::NotTcpOrUdp)
    );
    assert_eq!(
        run(LinkType::RawIp, &ipv6(58, &[128, 0, 0, 0, 0, 1, 0, 1], &[])),
        Err(Ignored::NotTcpOrUdp)
    );
    assert_eq!(
        run(LinkType::RawIp, &ipv4(47, &[0; 8], (false, 0))),
        Err(Ignored::NotTcpOrUdp)
    );
}

#[test]
fn outgoing_cooked_frames_are_ignored() {
    let ip = ipv4(TCP, &tcp_header(40000, 7000, SYN, 0), (false, 0));
    assert_eq!(
        run(LinkType::LinuxSll, &sll(&ip, 4, 1)),
        Err(Ignored::Outgoing)
    );
    assert_eq!(
        run(LinkType::LinuxSll2, &sll2(&ip, 4, 1)),
        Err(Ignored::Outgoing)
    );
    // Broadcast, multicast, "other host" are still decoded (the core decides).
    for packet_type in [1, 2, 3] {
        assert!(run(LinkType::LinuxSll, &sll(&ip, packet_type, 1)).is_ok());
        assert!(
            run(
                LinkType::LinuxSll2,
                &sll2(&ip, u8::try_from(packet_type).unwrap(), 1)
            )
            .is_ok()
        );
    }
}

#[test]
fn ethernet_padding_is_harmless() {
    let mut frame = ethernet(&ipv4(UDP, &udp_datagram(1, 8000, &[]), (false, 0)), &[]);
    frame.resize(60, 0);
    assert_eq!(
        run(LinkType::Ethernet, &frame).unwrap().destination_port,
        8000
    );
}

#[test]
fn ignored_reasons_have_names_and_counters() {
    let mut counts = IgnoredCounts::default();
    for reason in Ignored::ALL {
        assert!(!reason.as_str().is_empty());
        assert!(!reason.to_string().is_empty());
        assert_eq!(Ignored::ALL[reason.index()], reason);
        counts.record(reason);
    }
    counts.record(Ignored::Truncated);
    assert_eq!(counts.get(Ignored::Truncated), 2);
    assert_eq!(counts.total(), u64::try_from(Ignored::COUNT).unwrap() + 1);
    let atomic = knock_capture::AtomicIgnoredCounts::default();
    atomic.record(Ignored::Fragment);
    assert_eq!(atomic.snapshot().get(Ignored::Fragment), 1);
    assert_eq!(atomic.snapshot().total(), 1);
}

#[test]
fn ipv4_options_are_skipped() {
    let tcp = tcp_header(40000, 7000, SYN, 0);
    let mut ip = ipv4(TCP, &tcp, (false, 0));
    // IHL 6: one word of options (NOP NOP NOP EOL) between the header and TCP.
    ip[0] = 0x46;
    let total = u16::try_from(ip.len() + 4).unwrap();
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.splice(20..20, [1, 1, 1, 0]);
    for link in LinkType::ALL {
        assert_tcp_syn(run(link, &frame(link, &ip)).unwrap(), false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever the addresses, ports, flags, link type and VLAN tags, decoding a frame built
    /// with etherparse gives back exactly what was put in.
    #[test]
    fn built_packets_round_trip(
        link_index in 0..LinkType::ALL.len(),
        v6 in any::<bool>(),
        tcp in any::<bool>(),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        ports in any::<(u16, u16)>(),
        flags in any::<u8>(),
        tags in 0..3usize,
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let link = LinkType::ALL[link_index];
        let builder = if v6 {
            etherparse::PacketBuilder::ipv6(src, dst, 64)
        } else {
            etherparse::PacketBuilder::ipv4([src[0], src[1], src[2], src[3]], [dst[0], dst[1], dst[2], dst[3]], 64)
        };
        let mut ip = Vec::new();
        if tcp {
            let mut header = etherparse::TcpHeader::new(ports.0, ports.1, 7, 1024);
            header.fin = flags & 0x01 != 0;
            header.syn = flags & 0x02 != 0;
            header.rst = flags & 0x04 != 0;
            header.psh = flags & 0x08 != 0;
            header.ack = flags & 0x10 != 0;
            header.urg = flags & 0x20 != 0;
            header.ece = flags & 0x40 != 0;
            header.cwr = flags & 0x80 != 0;
            builder.tcp_header(header).write(&mut ip, &payload).unwrap();
        } else {
            builder.udp(ports.0, ports.1).write(&mut ip, &payload).unwrap();
        }
        let frame = if link == LinkType::Ethernet {
            ethernet(&ip, &[0x8100; 2][..tags])
        } else {
            frame(link, &ip)
        };
        let event = decode(link, T, &frame, 1500).unwrap();
        let (want_src, want_dst): (std::net::IpAddr, std::net::IpAddr) = if v6 {
            (src.into(), dst.into())
        } else {
            ([src[0], src[1], src[2], src[3]].into(), [dst[0], dst[1], dst[2], dst[3]].into())
        };
        prop_assert_eq!(event.source, want_src);
        prop_assert_eq!(event.destination, want_dst);
        prop_assert_eq!(event.protocol, if tcp { Protocol::Tcp } else { Protocol::Udp });
        prop_assert_eq!((event.source_port, event.destination_port), ports);
        prop_assert_eq!(event.tcp_flags, if tcp { TcpFlags::from_bits(flags) } else { TcpFlags::EMPTY });
        prop_assert_eq!(event.wire_len, 1500);
        prop_assert_eq!(event.timestamp, T);
        // The SPA path: the same event, and exactly the UDP data (none for TCP).
        let (same, data) = knock_capture::decode_with_payload(link, T, &frame, 1500).unwrap();
        prop_assert_eq!(same, event);
        prop_assert_eq!(data, if tcp { &[][..] } else { &payload[..] });
    }

    #[test]
    fn arbitrary_bytes_never_panic(link_index in 0..LinkType::ALL.len(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(LinkType::ALL[link_index], T, &bytes, 0);
    }

    #[test]
    fn arbitrary_ip_behind_valid_link_headers_never_panics(
        link_index in 0..LinkType::ALL.len(),
        v6 in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let link = LinkType::ALL[link_index];
        // A valid start of an IP header followed by arbitrary bytes reaches deep code paths.
        let mut ip = if v6 { vec![0x60, 0, 0, 0, 0, 40, 0, 64] } else { vec![0x45, 0, 0, 60, 0, 0, 0x20, 0, 64, 6, 0, 0] };
        ip.extend_from_slice(&tail);
        let frame = frame(link, &ip);
        for cut in 0..=frame.len() {
            let _ = decode(link, T, &frame[..cut], 0);
            if let Ok((_, data)) = knock_capture::decode_with_payload(link, T, &frame[..cut], 0) {
                prop_assert!(data.len() <= cut);
            }
        }
    }
}

#[test]
fn ignored_counts_debug_names_the_reasons() {
    let mut counts = IgnoredCounts::default();
    counts.record(Ignored::Fragment);
    let text = format!("{counts:?}");
    assert!(text.contains("\"fragment\": 1"), "{text}");
    assert!(text.contains("\"not_ip\": 0"), "{text}");
}

#[test]
fn unusual_ipv6_extension_chains() {
    let syn = tcp_header(40000, 7000, SYN, 0);
    // Repeated headers are walked (receivers process them; RFC 8200 only recommends
    // against them), as is a long chain: the walk is bounded by the frame's length, each
    // header being at least 8 bytes.
    let twice = ipv6(TCP, &syn, &[ext8(43), ext8(43)]);
    assert_tcp_syn(run(LinkType::RawIp, &twice).unwrap(), true);
    let long: Vec<_> = (0..40).map(|_| ext8(60)).collect();
    assert_tcp_syn(run(LinkType::RawIp, &ipv6(TCP, &syn, &long)).unwrap(), true);
    // Hop-by-hop anywhere but first is invalid.
    let late_hop = ipv6(TCP, &syn, &[ext8(60), ext8(0)]);
    assert_eq!(run(LinkType::RawIp, &late_hop), Err(Ignored::Malformed));
    // A chain cut by the snap length.
    let mut cut = ipv6(TCP, &syn, &long);
    cut.truncate(40 + 8 * 20 + 3);
    assert_eq!(run(LinkType::RawIp, &cut), Err(Ignored::Truncated));
}

#[test]
fn udp_payload_is_bounded_by_the_udp_length_and_tcp_has_none() {
    for link in LinkType::ALL {
        let ip = ipv4(UDP, &udp_datagram(5, 62201, b"spa data"), (false, 0));
        let mut frame = frame(link, &ip);
        // Trailing padding after the IP packet is not data.
        frame.extend_from_slice(&[0; 6]);
        let (event, data) = knock_capture::decode_with_payload(link, T, &frame, 99).unwrap();
        assert_eq!(event.destination_port, 62201, "{link}");
        assert_eq!(data, b"spa data", "{link}");
        let v6 = ipv6(UDP, &udp_datagram(5, 62201, b"six"), &[]);
        let v6_frame = frame_of(link, &v6);
        let (_, data) = knock_capture::decode_with_payload(link, T, &v6_frame, 99).unwrap();
        assert_eq!(data, b"six", "{link}");
        let syn = ipv4(TCP, &tcp_header(40000, 7000, SYN, 0), (false, 0));
        let syn_frame = frame_of(link, &syn);
        let (_, data) = knock_capture::decode_with_payload(link, T, &syn_frame, 99).unwrap();
        assert!(data.is_empty());
    }
}

fn frame_of(link: LinkType, ip: &[u8]) -> Vec<u8> {
    frame(link, ip)
}
