//! `knockd --replay FILE.pcap`: a capture file written at test time is run through the
//! configuration; knockd prints what would have happened and runs no command. No root needed.

use std::path::Path;

use etherparse::PacketBuilder;

use crate::fixture::knockd_once;

/// One frame of the capture: seconds since the start, and the frame bytes.
struct Frame {
    at_ms: u64,
    bytes: Vec<u8>,
}

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn tcp4(at_ms: u64, src: [u8; 4], dst: [u8; 4], port: u16, syn: bool) -> Frame {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4(src, dst, 64)
        .tcp(40000, port, 1, 64240);
    let builder = if syn { builder.syn() } else { builder.ack(1) };
    let mut bytes = Vec::with_capacity(builder.size(0));
    builder.write(&mut bytes, &[]).unwrap();
    Frame { at_ms, bytes }
}

fn udp4(at_ms: u64, src: [u8; 4], dst: [u8; 4], port: u16) -> Frame {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4(src, dst, 64)
        .udp(40001, port);
    let mut bytes = Vec::with_capacity(builder.size(1));
    builder.write(&mut bytes, &[0]).unwrap();
    Frame { at_ms, bytes }
}

fn tcp6(at_ms: u64, src: [u8; 16], dst: [u8; 16], port: u16) -> Frame {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv6(src, dst, 64)
        .tcp(40002, port, 1, 64240)
        .syn();
    let mut bytes = Vec::with_capacity(builder.size(0));
    builder.write(&mut bytes, &[]).unwrap();
    Frame { at_ms, bytes }
}

fn write_pcap(path: &Path, frames: &[Frame]) {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut file = dead.savefile(path).unwrap();
    // An arbitrary fixed epoch: replay must use the packets' times, not the clock.
    let base_secs: i64 = 1_700_000_000;
    for frame in frames {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: base_secs + (frame.at_ms / 1000) as i64,
                tv_usec: ((frame.at_ms % 1000) * 1000) as libc::suseconds_t,
            },
            caplen: frame.bytes.len() as u32,
            len: frame.bytes.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, &frame.bytes));
    }
    file.flush().unwrap();
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = last;
    a
}

#[test]
fn replay_prints_stages_and_opens_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let config = dir.path().join("knockd.conf");
    std::fs::write(
        &config,
        format!(
            "[tcpdoor]\n\
             sequence = 7000,8000,9000\n\
             seq_timeout = 5\n\
             tcpflags = syn\n\
             start_command = echo tcpdoor %IP% >> {ran}\n\
             cmd_timeout = 1\n\
             stop_command = echo stop %IP% >> {ran}\n\
             [mixdoor]\n\
             sequence = 7100:udp,7200,7300:udp\n\
             seq_timeout = 5\n\
             command = echo mixdoor %IP% >> {ran}\n",
            ran = ran.display()
        ),
    )
    .unwrap();

    let client = [10, 0, 0, 1];
    let late = [10, 0, 0, 3];
    let wrong = [10, 0, 0, 4];
    let server = [10, 0, 0, 2];
    let frames = vec![
        // 10.0.0.1 opens tcpdoor; an ACK on the way is ignored (tcpflags = syn).
        tcp4(0, client, server, 7000, true),
        tcp4(100, client, server, 8000, false),
        tcp4(200, client, server, 8000, true),
        tcp4(300, client, server, 9000, true),
        // 10.0.0.4 knocks a wrong (admitted) port in the middle: no open.
        tcp4(400, wrong, server, 7000, true),
        tcp4(500, wrong, server, 9000, true),
        tcp4(600, wrong, server, 8000, true),
        tcp4(700, wrong, server, 9000, true),
        // 10.0.0.1 opens the UDP/TCP mix door.
        udp4(1000, client, server, 7100),
        tcp4(1100, client, server, 7200, true),
        udp4(1200, client, server, 7300),
        // fd00::1 opens tcpdoor over IPv6.
        tcp6(2000, v6(1), v6(2), 7000),
        tcp6(2100, v6(1), v6(2), 8000),
        tcp6(2200, v6(1), v6(2), 9000),
        // 10.0.0.3 starts, then waits longer than seq_timeout (packet time, not clock).
        tcp4(3000, late, server, 7000, true),
        tcp4(20_000, late, server, 8000, true),
        tcp4(20_100, late, server, 9000, true),
    ];
    let pcap_file = dir.path().join("knocks.pcap");
    write_pcap(&pcap_file, &frames);

    let (status, out, err) = knockd_once(&[
        "--replay",
        pcap_file.to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
        "--state-file",
        dir.path().join("state").to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(0), "stdout {out}\nstderr {err}");
    for needle in [
        "10.0.0.1: tcpdoor: Stage 1",
        "10.0.0.1: tcpdoor: Stage 2",
        "10.0.0.1: tcpdoor: OPEN SESAME",
        "10.0.0.1: mixdoor: Stage 1",
        "10.0.0.1: mixdoor: OPEN SESAME",
        "fd00::1: tcpdoor: OPEN SESAME",
        "10.0.0.3: tcpdoor: Stage 1",
        "10.0.0.4: tcpdoor: Stage 1",
    ] {
        assert!(
            out.contains(needle),
            "replay output lacks {needle:?}:\n{out}"
        );
    }
    assert_eq!(
        out.matches("10.0.0.1: tcpdoor: OPEN SESAME").count(),
        1,
        "{out}"
    );
    assert!(
        !out.contains("10.0.0.4: tcpdoor: OPEN SESAME"),
        "wrong port opened:\n{out}"
    );
    assert!(
        !out.contains("10.0.0.3: tcpdoor: OPEN SESAME"),
        "late knock opened:\n{out}"
    );
    assert!(
        out.contains("10.0.0.3: tcpdoor: sequence timeout"),
        "no sequence timeout for the late knocker:\n{out}"
    );
    assert!(
        !ran.exists(),
        "--replay ran a command: {:?}",
        std::fs::read_to_string(&ran)
    );
}

#[test]
fn replay_of_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("knockd.conf");
    std::fs::write(&config, "[d]\nsequence = 1,2\n").unwrap();
    let (status, _, err) = knockd_once(&[
        "--replay",
        dir.path().join("none.pcap").to_str().unwrap(),
        "-c",
        config.to_str().unwrap(),
        "--state-file",
        dir.path().join("state").to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(
        err.contains("none.pcap"),
        "stderr does not name the file: {err}"
    );
}
