//! Decoder throughput: frames decoded per second, per link type and family.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use knock_capture::{LinkType, decode};
use knock_core::Instant;

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];
const SRC6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// A TCP SYN to port 7000 as a bare IP packet.
fn syn(v6: bool) -> Vec<u8> {
    let builder = if v6 {
        etherparse::PacketBuilder::ipv6(SRC6, DST6, 64)
    } else {
        etherparse::PacketBuilder::ipv4(SRC4, DST4, 64)
    };
    let mut out = Vec::new();
    builder
        .tcp(40000, 7000, 1, 1024)
        .syn()
        .write(&mut out, &[])
        .expect("building a SYN");
    out
}

/// `ip` behind the link-layer header of `link`.
fn frame(link: LinkType, ip: &[u8]) -> Vec<u8> {
    let v6 = ip[0] >> 4 == 6;
    let ether_type: u16 = if v6 { 0x86dd } else { 0x0800 };
    let mut f = match link {
        LinkType::Ethernet => {
            let mut h = vec![0; 12];
            h.extend_from_slice(&ether_type.to_be_bytes());
            h
        }
        LinkType::LinuxSll => {
            let mut h = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
            h.extend_from_slice(&ether_type.to_be_bytes());
            h
        }
        LinkType::LinuxSll2 => {
            let mut h = ether_type.to_be_bytes().to_vec();
            h.extend_from_slice(&[0, 0, 0, 0, 0, 7, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            h
        }
        LinkType::RawIp => Vec::new(),
        LinkType::Null => (if v6 { 30u32 } else { 2 }).to_le_bytes().to_vec(),
        LinkType::Loop => (if v6 { 24u32 } else { 2 }).to_be_bytes().to_vec(),
        _ => unreachable!("every link type is listed"),
    };
    f.extend_from_slice(ip);
    f
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for link in LinkType::ALL {
        for v6 in [false, true] {
            let frame = frame(link, &syn(v6));
            let wire_len = u32::try_from(frame.len()).expect("small frame");
            assert!(decode(link, Instant::ZERO, &frame, wire_len).is_ok());
            let name = format!("{link}/{}", if v6 { "ipv6" } else { "ipv4" });
            group.bench_function(name, |b| {
                b.iter(|| decode(link, Instant::ZERO, black_box(&frame), wire_len));
            });
        }
    }
    // The cheapest rejection, as in a flood of non-IP frames.
    let arp = {
        let mut f = vec![0; 12];
        f.extend_from_slice(&0x0806u16.to_be_bytes());
        f.extend_from_slice(&[0; 28]);
        f
    };
    group.bench_function("ethernet/arp-ignored", |b| {
        b.iter(|| decode(LinkType::Ethernet, Instant::ZERO, black_box(&arp), 42));
    });
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
