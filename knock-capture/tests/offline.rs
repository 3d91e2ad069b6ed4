//! Savefiles written at test time with libpcap, read back through `OfflineCapture`.

#![cfg(feature = "libpcap")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use knock_capture::{CaptureError, Ignored, LinkType, OfflineCapture, filter_expression};
use knock_core::{Door, Instant, Knock, Protocol};

/// Writes `frames` (seconds, microseconds, captured bytes, original length) to a savefile.
fn write_savefile(
    dir: &Path,
    name: &str,
    dlt: i32,
    frames: &[(i64, i64, Vec<u8>, u32)],
) -> PathBuf {
    let path = dir.join(name);
    let dead = pcap::Capture::dead(pcap::Linktype(dlt)).unwrap();
    let mut file = dead.savefile(&path).unwrap();
    for (sec, usec, data, len) in frames {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: *sec,
                tv_usec: *usec,
            },
            caplen: u32::try_from(data.len()).unwrap(),
            len: *len,
        };
        file.write(&pcap::Packet::new(&header, data));
    }
    file.flush().unwrap();
    path
}

fn whole(sec: i64, usec: i64, data: Vec<u8>) -> (i64, i64, Vec<u8>, u32) {
    let len = u32::try_from(data.len()).unwrap();
    (sec, usec, data, len)
}

#[test]
fn every_link_type_round_trips_with_packet_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    for link in LinkType::ALL {
        let syn4 = frame(
            link,
            &ipv4(TCP, &tcp_header(40000, 7000, SYN, 0), (false, 0)),
        );
        let udp6 = frame(link, &ipv6(UDP, &udp_datagram(1, 8000, &[0]), &[ext8(0)]));
        let icmp = frame(link, &ipv4(1, &[8, 0, 0, 0, 0, 0, 0, 0], (false, 0)));
        let frames = [
            whole(1_700_000_000, 1, syn4),
            whole(1_700_000_001, 500_000, udp6),
            whole(1_700_000_002, 0, icmp),
        ];
        let path = write_savefile(dir.path(), &format!("{link}.pcap"), link.dlt(), &frames);
        let mut capture = OfflineCapture::open(&path).unwrap();
        assert_eq!(capture.link_type(), link);
        let results: Vec<_> = capture.by_ref().collect();
        assert_eq!(results.len(), 3, "{link}");
        let first = results[0].unwrap();
        assert_eq!(first.timestamp, Instant::from_micros(1_700_000_000_000_001));
        assert_eq!(
            (first.protocol, first.destination_port),
            (Protocol::Tcp, 7000)
        );
        assert_eq!(first.source, v4_src());
        let second = results[1].unwrap();
        assert_eq!(
            second.timestamp,
            Instant::from_micros(1_700_000_001_500_000)
        );
        assert_eq!(
            (second.protocol, second.destination_port),
            (Protocol::Udp, 8000)
        );
        assert_eq!(second.source, v6_src());
        assert_eq!(results[2], Err(Ignored::NotTcpOrUdp));
        assert_eq!(capture.ignored().get(Ignored::NotTcpOrUdp), 1);
        assert_eq!(capture.ignored().total(), 1);
        assert!(capture.take_error().is_none());
    }
}

#[test]
fn snap_length_truncation_keeps_ports_and_wire_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut payload = tcp_header(40000, 7000, SYN, 2);
    payload.extend_from_slice(&[0x55; 500]);
    let full = ethernet(&ipv6(TCP, &payload, &[]), &[0x8100]);
    let wire = u32::try_from(full.len()).unwrap();
    let frames = [
        (10, 0, full[..96].to_vec(), wire),
        (11, 0, full[..60].to_vec(), wire),
    ];
    let path = write_savefile(dir.path(), "cut.pcap", 1, &frames);
    let results: Vec<_> = OfflineCapture::open(&path).unwrap().collect();
    let event = results[0].unwrap();
    assert_eq!(event.destination_port, 7000);
    assert_eq!(event.wire_len, wire);
    assert_eq!(results[1], Err(Ignored::Truncated));
}

#[test]
fn a_filter_selects_knocks_like_live_capture() {
    let dir = tempfile::tempdir().unwrap();
    let frames = [
        whole(
            1,
            0,
            ethernet(&ipv4(TCP, &tcp_header(1, 22, SYN, 0), (false, 0)), &[]),
        ),
        whole(
            2,
            0,
            ethernet(&ipv4(TCP, &tcp_header(1, 7000, SYN, 0), (false, 0)), &[]),
        ),
        whole(
            3,
            0,
            ethernet(&ipv6(UDP, &udp_datagram(1, 8000, &[]), &[]), &[]),
        ),
    ];
    let path = write_savefile(dir.path(), "mixed.pcap", 1, &frames);
    let mut capture = OfflineCapture::open(&path).unwrap();
    let doors = [Door::new("d", vec![Knock::tcp(7000), Knock::udp(8000)])];
    capture.set_filter(&filter_expression(&doors, &[])).unwrap();
    let ports: Vec<u16> = capture.map(|r| r.unwrap().destination_port).collect();
    assert_eq!(ports, [7000, 8000]);

    let mut capture = OfflineCapture::open(&path).unwrap();
    assert!(matches!(
        capture.set_filter("tcp dst port nonsense"),
        Err(CaptureError::Filter { .. })
    ));
}

#[test]
fn unusable_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    let error = OfflineCapture::open(&missing).unwrap_err();
    assert!(matches!(error, CaptureError::File { .. }), "{error}");
    assert!(error.to_string().contains("missing.pcap"), "{error}");

    let text = dir.path().join("text.pcap");
    std::fs::write(&text, "this is not a capture file\n").unwrap();
    assert!(matches!(
        OfflineCapture::open(&text),
        Err(CaptureError::File { .. })
    ));

    // 802.11 radiotap: not decoded.
    let wifi = write_savefile(dir.path(), "wifi.pcap", 127, &[whole(1, 0, vec![0; 30])]);
    let error = OfflineCapture::open(&wifi).unwrap_err();
    assert!(
        matches!(error, CaptureError::UnsupportedLinkType { dlt: 127, .. }),
        "{error}"
    );

    // A file cut in the middle of a record: the packets before it, then a read error.
    let good = write_savefile(
        dir.path(),
        "good.pcap",
        12,
        &[
            whole(1, 0, ipv4(UDP, &udp_datagram(1, 8000, &[]), (false, 0))),
            whole(2, 0, ipv4(UDP, &udp_datagram(1, 8001, &[]), (false, 0))),
        ],
    );
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut-file.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let mut capture = OfflineCapture::open(&cut).unwrap();
    assert_eq!(
        capture.next_event().unwrap().unwrap().destination_port,
        8000
    );
    assert!(capture.next_event().is_none());
    assert!(capture.take_error().is_some(), "a cut record is reported");
}
