//! Runs `examples/mini_knockd.rs` (capture + matcher, nothing else): on a capture file always,
//! and live on the loopback interface as root.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const CONFIG: &str = "[door]\nsequence = 7000,8000:udp\nseq_timeout = 5\n\
                      start_command = open %IP%\ncmd_timeout = 3\nstop_command = close %IP%\n";

fn example() -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.args([
        "run",
        "-q",
        "-p",
        "knock-examples",
        "--example",
        "mini_knockd",
        "--",
    ]);
    command
}

/// A classic pcap savefile (Ethernet) of IPv4 packets: (time in µs, destination port, UDP?).
fn write_pcap(path: &Path, packets: &[(u64, u16, bool)]) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65_535, 1] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for &(micros, port, udp) in packets {
        let mut frame = Vec::new();
        let builder = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            64,
        );
        if udp {
            builder.udp(40_000, port).write(&mut frame, &[0]).unwrap();
        } else {
            builder
                .tcp(40_000, port, 1, 1024)
                .syn()
                .write(&mut frame, &[])
                .unwrap();
        }
        let len = u32::try_from(frame.len()).unwrap();
        for word in [
            u32::try_from(micros / 1_000_000).unwrap(),
            u32::try_from(micros % 1_000_000).unwrap(),
            len,
            len,
        ] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&frame);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn mini_knockd_replays_a_capture_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("knockd.conf");
    std::fs::write(&conf, CONFIG).unwrap();
    let pcap = dir.path().join("knocks.pcap");
    const T0: u64 = 1_795_000_000_000_000;
    write_pcap(&pcap, &[(T0, 7000, false), (T0 + 200_000, 8000, true)]);
    let output = example()
        .args([
            "-c".as_ref(),
            conf.as_os_str(),
            "-r".as_ref(),
            pcap.as_os_str(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        "10.0.0.1: door: Stage 1\n10.0.0.1: door: Stage 2\n10.0.0.1: door: OPEN SESAME\n\
         would run: open 10.0.0.1\n10.0.0.1: door: command timeout\nwould run: close 10.0.0.1\n"
    );
}

#[test]
#[ignore = "needs root"]
fn mini_knockd_opens_live_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("knockd.conf");
    // Ports unlikely to be used by the other tests running at the same time.
    std::fs::write(
        &conf,
        CONFIG.replace("7000", "47123").replace("8000", "48123"),
    )
    .unwrap();
    let mut child = example()
        .args(["-c".as_ref(), conf.as_os_str()])
        .args(["-i", "lo", "--seconds", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut opened = false;
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("listening on lo") {
            // Capture is up: knock (one TCP SYN, then one UDP datagram).
            let _ = std::net::TcpStream::connect_timeout(
                &"127.0.0.1:47123".parse().unwrap(),
                std::time::Duration::from_millis(200),
            );
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            udp.send_to(&[0], "127.0.0.1:48123").unwrap();
        }
        opened |= line == "would run: open 127.0.0.1";
        seen.push(line);
        if opened {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(opened, "{seen:?}");
    assert!(
        seen.contains(&"127.0.0.1: door: OPEN SESAME".to_owned()),
        "{seen:?}"
    );
}
