//! Cross-check with fwknop itself: the SPA packet the `knock` binary sends for an SPA door
//! is accepted by Debian's fwknopd 2.6 (package `fwknop-server`).
//!
//! No firewall is touched and no traffic leaves loopback: the packet is received on a UDP
//! socket bound to 127.0.0.1, written into a pcap savefile, and fwknopd reads that file in
//! `--test` mode (`--pcap-file`, foreground), where it authenticates, decrypts and checks
//! the packet against access.conf and then logs "--test mode enabled, skipping firewall
//! manipulation" instead of opening anything. fwknopd wants root, hence the ignore.

use std::io::Read as _;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Test keys only (made with `fwknop --key-gen`).
const KEY: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";
const HMAC: &str =
    "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";
const OTHER_HMAC: &str =
    "AAAAfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";
const ACCEPTED: &str = "--test mode enabled, skipping firewall manipulation";

/// Runs `knock --door ssh ... 127.0.0.1 EXTRA` and returns the datagram it sent.
fn knock_payload(dir: &Path, extra: &[&str]) -> Vec<u8> {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let conf = dir.join("knockd.conf");
    std::fs::write(
        &conf,
        format!(
            "[ssh]\nspa_key_base64 = {KEY}\nspa_hmac_key_base64 = {HMAC}\nspa_port = {port}\n\
             spa_access = tcp/22\nstart_command = true\n"
        ),
    )
    .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_knock"))
        .args(["--door", "ssh", "-c", conf.to_str().unwrap()])
        .args(extra)
        .arg("127.0.0.1")
        .status()
        .unwrap();
    assert!(status.success());
    let mut buf = [0u8; 2048];
    let (len, _) = server.recv_from(&mut buf).unwrap();
    buf[..len].to_vec()
}

/// A pcap savefile (Ethernet) holding one IPv4/UDP datagram 10.0.0.1 -> 10.0.0.2:62201.
fn pcap_with(payload: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(8 + payload.len()).unwrap();
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&62201u16.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    udp.extend_from_slice(payload);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !u16::try_from((folded & 0xffff) + (folded >> 16)).unwrap();
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let mut frame = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&udp);
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65535, 1] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    let frame_len = u32::try_from(frame.len()).unwrap();
    for word in [1u32, 0, frame_len, frame_len] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    file.extend_from_slice(&frame);
    file
}

/// Runs fwknopd in test mode over a savefile holding `payload`; returns its output.
fn fwknopd_output(dir: &Path, payload: &[u8], hmac_key: &str) -> String {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let write_private = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let conf = write_private(
        "fwknopd.conf",
        "PCAP_INTF lo;\nENABLE_SPA_PACKET_AGING Y;\nMAX_SPA_PACKET_AGE 120;\n".to_owned(),
    );
    let access = write_private(
        "access.conf",
        format!("SOURCE ANY\nKEY_BASE64 {KEY}\nHMAC_KEY_BASE64 {hmac_key}\nOPEN_PORTS tcp/22\n"),
    );
    let pcap = dir.join("spa.pcap");
    std::fs::write(&pcap, pcap_with(payload)).unwrap();
    let mut child = Command::new("fwknopd")
        .arg("-c")
        .arg(&conf)
        .arg("-a")
        .arg(&access)
        .args(["-f", "-t", "-v", "-v", "--packet-limit", "1"])
        .arg("--pcap-file")
        .arg(&pcap)
        .arg("-r")
        .arg(&run)
        .arg("-d")
        .arg(run.join("digest.cache"))
        .arg("-p")
        .arg(run.join("fwknopd.pid"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fwknopd (Debian package fwknop-server) must be installed");
    // It exits at the end of the savefile; give up (and fail) after 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fwknopd did not finish reading the savefile");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    output
}

#[test]
#[ignore = "needs root"]
fn fwknopd_accepts_the_packet_knock_sends() {
    let dir = tempfile::tempdir().unwrap();
    let payload = knock_payload(dir.path(), &["--allow", "10.0.0.1"]);
    let output = fwknopd_output(dir.path(), &payload, HMAC);
    assert!(output.contains(ACCEPTED), "{output}");
    assert!(
        output.contains("Message String: 10.0.0.1,tcp/22"),
        "{output}"
    );

    // The source-address form (0.0.0.0) is accepted too.
    let dir = tempfile::tempdir().unwrap();
    let payload = knock_payload(dir.path(), &[]);
    let output = fwknopd_output(dir.path(), &payload, HMAC);
    assert!(output.contains(ACCEPTED), "{output}");
    assert!(
        output.contains("Message String: 0.0.0.0,tcp/22"),
        "{output}"
    );
}

#[test]
#[ignore = "needs root"]
fn fwknopd_refuses_it_with_another_hmac_key() {
    let dir = tempfile::tempdir().unwrap();
    let payload = knock_payload(dir.path(), &["--allow", "10.0.0.1"]);
    let output = fwknopd_output(dir.path(), &payload, OTHER_HMAC);
    assert!(!output.contains(ACCEPTED), "{output}");
    assert!(output.contains("HMAC_COMPAREFAIL"), "{output}");
}

/// The other direction, live: what Debian's fwknop client sends now passes our verifier.
#[test]
#[ignore = "needs fwknop-client (scripts/test.sh installs it and runs ignored tests)"]
fn our_verifier_accepts_what_the_fwknop_client_sends() {
    use knock_core::spa::{AccessPort, Refusal, ReplayCache, SecretKey, SpaDoor, SpaKeys};

    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("fwknoprc");
    std::fs::write(&rc, "").unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let keys = SpaKeys::new(
        SecretKey::from_base64(KEY).unwrap(),
        SecretKey::from_base64(HMAC).unwrap(),
    )
    .unwrap();
    let door = SpaDoor::new(keys, vec![AccessPort::tcp(22), AccessPort::udp(1194)]);
    let mut cache = ReplayCache::default();
    for (extra, timeout) in [(&[][..], None), (&["--fw-timeout", "30"][..], Some(30))] {
        let status = Command::new("fwknop")
            .arg("--rc-file")
            .arg(&rc)
            .args([
                "-A",
                "tcp/22,udp/1194",
                "--use-hmac",
                "--key-base64-rijndael",
                KEY,
            ])
            .args([
                "--key-base64-hmac",
                HMAC,
                "-a",
                "10.0.0.1",
                "-D",
                "127.0.0.1",
            ])
            .args(["--server-port", &port])
            .args(extra)
            .stdout(Stdio::null())
            .status()
            .expect("fwknop (Debian package fwknop-client) must be installed");
        assert!(status.success());
        let mut buf = [0u8; 2048];
        let (len, from) = server.recv_from(&mut buf).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let grant = door
            .verify(now, from.ip(), &buf[..len], &mut cache)
            .unwrap();
        assert_eq!(grant.address.to_string(), "10.0.0.1");
        assert_eq!(grant.ports, door.access);
        assert_eq!(grant.client_timeout, timeout);
        assert_eq!(
            door.verify(now, from.ip(), &buf[..len], &mut cache),
            Err(Refusal::Replay)
        );
    }
}
