//! Root tests: what the client really puts on the wire, captured in network namespaces, and
//! interoperability with Debian's knockd/knock 0.8.
//!
//! Every test builds its own pair of namespaces joined by a veth pair (unique names from the
//! process id and a counter; 10.77.0.0/24 and fd00:77::/64 exist only inside them) and
//! removes them in `Drop`, also when the test fails. `tcpdump -w` in the server namespace
//! records what arrives; the savefile is read back with libpcap and etherparse.

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

const CLIENT_V4: &str = "10.77.0.1";
const CLIENT_V4_EXTRA: &str = "10.77.0.11";
const SERVER_V4: &str = "10.77.0.2";
const CLIENT_V6: &str = "fd00:77::1";
const CLIENT_V6_EXTRA: &str = "fd00:77::11";
const SERVER_V6: &str = "fd00:77::2";

/// How long any awaited event may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

const KNOCK: &str = env!("CARGO_BIN_EXE_knock");
const KNOCK_0_8: &str = "/usr/bin/knock";
const KNOCKD_0_8: &str = "/usr/sbin/knockd";

/// Runs a command to completion and panics, with its output, if it fails.
#[track_caller]
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two network namespaces, `client` and `server`, joined by a veth pair.
struct Lab {
    client_ns: String,
    server_ns: String,
    client_if: String,
    server_if: String,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // Built first so that Drop cleans up whatever part of the setup succeeded.
        let lab = Self {
            client_ns: format!("knock-test-c{id}"),
            server_ns: format!("knock-test-s{id}"),
            client_if: format!("kc{id}"),
            server_if: format!("ks{id}"),
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        assert!(
            lab.client_if.len() <= 15,
            "interface names are 15 bytes at most"
        );
        run("ip", &["netns", "add", &lab.client_ns]);
        run("ip", &["netns", "add", &lab.server_ns]);
        run(
            "ip",
            &[
                "link",
                "add",
                &lab.client_if,
                "netns",
                &lab.client_ns,
                "type",
                "veth",
                "peer",
                "name",
                &lab.server_if,
                "netns",
                &lab.server_ns,
            ],
        );
        for (ns, interface, addresses) in [
            (
                &lab.client_ns,
                &lab.client_if,
                [CLIENT_V4, CLIENT_V4_EXTRA, CLIENT_V6, CLIENT_V6_EXTRA].as_slice(),
            ),
            (
                &lab.server_ns,
                &lab.server_if,
                [SERVER_V4, SERVER_V6].as_slice(),
            ),
        ] {
            for address in addresses {
                let (prefix, family) = if address.contains(':') {
                    ("64", "-6")
                } else {
                    ("24", "-4")
                };
                // `nodad`: usable at once instead of after duplicate address detection.
                // The extra addresses are deprecated (`preferred_lft 0`) so that the kernel
                // never picks them as the source unless a test binds to them.
                let lifetime: &[&str] = if [CLIENT_V4_EXTRA, CLIENT_V6_EXTRA].contains(address) {
                    &["preferred_lft", "0"]
                } else {
                    &[]
                };
                run(
                    "ip",
                    &[
                        "-n",
                        ns,
                        family,
                        "addr",
                        "add",
                        &format!("{address}/{prefix}"),
                        "dev",
                        interface,
                        "nodad",
                    ]
                    .iter()
                    .chain(lifetime)
                    .copied()
                    .collect::<Vec<_>>(),
                );
            }
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", interface, "up"]);
        }
        lab
    }

    fn in_namespace(namespace: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace, program]);
        command
    }

    /// Runs a knock client (ours or 0.8's) in the client namespace.
    fn knock_with(&self, program: &str, args: &[&str]) -> Output {
        Self::in_namespace(&self.client_ns, program)
            .args(args)
            .output()
            .expect("run knock client")
    }

    /// Runs our client in the client namespace and asserts it succeeded.
    #[track_caller]
    fn knock(&self, args: &[&str]) -> Output {
        let output = self.knock_with(KNOCK, args);
        assert!(
            output.status.success(),
            "knock {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace also deletes the veth end inside it (and so the pair).
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child process killed and reaped on drop.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Forwards every line `reader` produces to a channel (a thread per stream, ending at EOF).
fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            // Keep draining after the receiver is gone: closing the pipe would kill the
            // writer (knockd 0.8) with SIGPIPE at its next log line.
            let _ = sender.send(line);
        }
    });
    receiver
}

/// Polls `probe` every 20 ms until it returns `Ok`; after [`PATIENCE`], panics with the
/// last `Err` (which describes what was seen instead).
#[track_caller]
fn wait_until<T>(mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(message) => assert!(Instant::now() < deadline, "{message}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most [`PATIENCE`]) for a line containing `needle`; returns the lines seen.
#[track_caller]
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, what: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(error) => panic!("{what}: no line with {needle:?} ({error}); saw {seen:?}"),
        }
    }
}

/// A packet as captured in the server namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Captured {
    time: Duration,
    source: IpAddr,
    destination: IpAddr,
    /// IPv4 total length, or IPv6 payload length + 40.
    ip_length: u16,
    transport: Transport,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Transport {
    Tcp {
        source_port: u16,
        destination_port: u16,
        /// The flag byte (CWR ECE URG ACK PSH RST SYN FIN).
        flags: u8,
        /// TCP option kinds in order (NOP = 1 included).
        option_kinds: Vec<u8>,
        payload: Vec<u8>,
    },
    Udp {
        source_port: u16,
        destination_port: u16,
        payload: Vec<u8>,
    },
}

const SYN: u8 = 0x02;

impl Captured {
    fn destination_port(&self) -> u16 {
        match &self.transport {
            Transport::Tcp {
                destination_port, ..
            }
            | Transport::Udp {
                destination_port, ..
            } => *destination_port,
        }
    }

    fn is_udp(&self) -> bool {
        matches!(self.transport, Transport::Udp { .. })
    }

    /// Asserts this is a lone SYN without payload to `port`.
    #[track_caller]
    fn assert_syn(&self, port: u16) {
        match &self.transport {
            Transport::Tcp {
                destination_port,
                flags,
                payload,
                ..
            } => {
                assert_eq!(*destination_port, port, "{self:?}");
                assert_eq!(*flags, SYN, "only SYN set: {self:?}");
                assert!(payload.is_empty(), "{self:?}");
            }
            Transport::Udp { .. } => panic!("expected a TCP SYN to {port}, got {self:?}"),
        }
    }

    /// Asserts this is a UDP datagram to `port` whose payload is one NUL byte.
    #[track_caller]
    fn assert_udp_nul(&self, port: u16) {
        match &self.transport {
            Transport::Udp {
                destination_port,
                payload,
                ..
            } => {
                assert_eq!(*destination_port, port, "{self:?}");
                assert_eq!(payload.as_slice(), [0], "{self:?}");
            }
            Transport::Tcp { .. } => panic!("expected UDP to {port}, got {self:?}"),
        }
    }

    /// What must be equal between two clients' hits: everything but addresses, ports and time.
    fn shape(&self) -> (u16, bool, u8, Vec<u8>, usize) {
        match &self.transport {
            Transport::Tcp {
                flags,
                option_kinds,
                payload,
                ..
            } => (
                self.ip_length,
                false,
                *flags,
                option_kinds.clone(),
                payload.len(),
            ),
            Transport::Udp { payload, .. } => (self.ip_length, true, 0, Vec::new(), payload.len()),
        }
    }
}

fn tcp_option_kinds(options: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    let mut rest = options;
    while let Some(&kind) = rest.first() {
        kinds.push(kind);
        match kind {
            0 => break,
            1 => rest = &rest[1..],
            _ => {
                let length = usize::from(*rest.get(1).unwrap_or(&2)).max(2);
                rest = rest.get(length..).unwrap_or(&[]);
            }
        }
    }
    kinds
}

fn decode(time: Duration, frame: &[u8]) -> Option<Captured> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let (source, destination, ip_length) = match packet.net? {
        NetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.header().total_len(),
        ),
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.header().payload_length() + 40,
        ),
        NetSlice::Arp(_) => return None,
    };
    let transport = match packet.transport? {
        TransportSlice::Tcp(tcp) => Transport::Tcp {
            source_port: tcp.source_port(),
            destination_port: tcp.destination_port(),
            flags: [
                tcp.fin(),
                tcp.syn(),
                tcp.rst(),
                tcp.psh(),
                tcp.ack(),
                tcp.urg(),
                tcp.ece(),
                tcp.cwr(),
            ]
            .iter()
            .enumerate()
            .fold(0, |byte, (bit, set)| byte | (u8::from(*set) << bit)),
            option_kinds: tcp_option_kinds(tcp.options()),
            payload: tcp.payload().to_vec(),
        },
        TransportSlice::Udp(udp) => Transport::Udp {
            source_port: udp.source_port(),
            destination_port: udp.destination_port(),
            payload: udp.payload().to_vec(),
        },
        _ => return None,
    };
    Some(Captured {
        time,
        source,
        destination,
        ip_length,
        transport,
    })
}

/// `tcpdump -w` on the server's veth end, incoming TCP and UDP only.
struct Capture {
    file: PathBuf,
    _tcpdump: Spawned,
}

impl Capture {
    fn start(lab: &Lab, name: &str) -> Self {
        let file = lab.path(name);
        let mut child = Lab::in_namespace(&lab.server_ns, "tcpdump")
            .args(["-i", &lab.server_if, "-Q", "in", "-n", "-U", "-s", "512"])
            // `-Z root`: keep the privileges needed to write into the test's private directory.
            .args(["-Z", "root", "-w"])
            .arg(&file)
            .arg("tcp or udp")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tcpdump");
        let stderr = child.stderr.take().expect("piped stderr");
        let tcpdump = Spawned(child);
        // tcpdump announces itself once the capture and its filter are active.
        wait_for_line(&lines_of(stderr), "listening on", "tcpdump");
        Self {
            file,
            _tcpdump: tcpdump,
        }
    }

    fn read(&self) -> Vec<Captured> {
        let Ok(mut savefile) = pcap::Capture::from_file(&self.file) else {
            return Vec::new();
        };
        let mut packets = Vec::new();
        // A record still being written reads as an error: stop there, poll again later.
        while let Ok(packet) = savefile.next_packet() {
            let time = Duration::from_secs(u64::try_from(packet.header.ts.tv_sec).unwrap())
                + Duration::from_micros(u64::try_from(packet.header.ts.tv_usec).unwrap());
            packets.extend(decode(time, packet.data));
        }
        packets
    }

    /// Polls the savefile until it holds at least `count` packets (at most [`PATIENCE`]).
    #[track_caller]
    fn wait_for(&self, count: usize) -> Vec<Captured> {
        wait_until(|| {
            let packets = self.read();
            if packets.len() >= count {
                Ok(packets)
            } else {
                Err(format!(
                    "captured {} of {count} packets: {packets:#?}",
                    packets.len()
                ))
            }
        })
    }
}

/// Knocks with our client, then sends a UDP marker to port 1, and returns what arrived
/// before the marker. Packets arrive in order over the veth, so anything the client sent
/// (an extra SYN, a stray datagram) shows up before the marker.
#[track_caller]
fn capture_knock(lab: &Lab, args: &[&str], server: &str) -> Vec<Captured> {
    let capture = Capture::start(lab, "knock.pcap");
    lab.knock(args);
    lab.knock(&[server, "1:udp"]);
    wait_until(|| {
        let mut packets = capture.read();
        match packets
            .iter()
            .position(|p| p.is_udp() && p.destination_port() == 1)
        {
            Some(marker) => {
                packets.truncate(marker);
                Ok(packets)
            }
            None => Err(format!("no marker: {packets:#?}")),
        }
    })
}

#[track_caller]
fn assert_sequence_7000_8000udp_9000(packets: &[Captured], source: &str, server: &str) {
    assert_eq!(packets.len(), 3, "exactly one packet per hit: {packets:#?}");
    packets[0].assert_syn(7000);
    packets[1].assert_udp_nul(8000);
    packets[2].assert_syn(9000);
    for packet in packets {
        assert_eq!(
            packet.source,
            source.parse::<IpAddr>().unwrap(),
            "{packet:?}"
        );
        assert_eq!(
            packet.destination,
            server.parse::<IpAddr>().unwrap(),
            "{packet:?}"
        );
    }
    // IPv4 20 + UDP 8 + 1 byte (0.8: total length 29); IPv6 40 + 8 + 1.
    let udp_length = if server.contains(':') { 49 } else { 29 };
    assert_eq!(packets[1].ip_length, udp_length);
}

#[test]
#[ignore = "needs root"]
fn ipv4_one_syn_per_tcp_hit_and_one_nul_byte_per_udp_hit() {
    let lab = Lab::new();
    let packets = capture_knock(&lab, &[SERVER_V4, "7000", "8000:udp", "9000"], SERVER_V4);
    assert_sequence_7000_8000udp_9000(&packets, CLIENT_V4, SERVER_V4);
    let Transport::Tcp { source_port: a, .. } = packets[0].transport else {
        unreachable!()
    };
    let Transport::Tcp { source_port: b, .. } = packets[2].transport else {
        unreachable!()
    };
    assert_ne!(a, b, "a fresh socket, so a fresh source port, per TCP hit");
}

#[test]
#[ignore = "needs root"]
fn ipv6_one_syn_per_tcp_hit_and_one_nul_byte_per_udp_hit() {
    let lab = Lab::new();
    let packets = capture_knock(
        &lab,
        &[SERVER_V6, "7000", "8000:UDP", "9000:tcp"],
        SERVER_V6,
    );
    assert_sequence_7000_8000udp_9000(&packets, CLIENT_V6, SERVER_V6);
}

#[test]
#[ignore = "needs root"]
fn udp_flag_and_protocol_suffixes() {
    let lab = Lab::new();
    let packets = capture_knock(
        &lab,
        &["-u", SERVER_V4, "7000", "8000:tcp", "9000:Udp"],
        SERVER_V4,
    );
    assert_eq!(packets.len(), 3, "{packets:#?}");
    packets[0].assert_udp_nul(7000);
    packets[1].assert_syn(8000);
    packets[2].assert_udp_nul(9000);
}

#[test]
#[ignore = "needs root"]
fn source_address_and_interface_choose_where_knocks_leave_from() {
    let lab = Lab::new();
    let packets = capture_knock(
        &lab,
        &[
            "--source-address",
            CLIENT_V4_EXTRA,
            SERVER_V4,
            "7000",
            "8000:udp",
            "9000",
        ],
        SERVER_V4,
    );
    assert_sequence_7000_8000udp_9000(&packets, CLIENT_V4_EXTRA, SERVER_V4);

    let packets = capture_knock(
        &lab,
        &[
            "--source-address",
            CLIENT_V6_EXTRA,
            "--interface",
            &lab.client_if,
            SERVER_V6,
            "7000",
            "8000:udp",
            "9000",
        ],
        SERVER_V6,
    );
    assert_sequence_7000_8000udp_9000(&packets, CLIENT_V6_EXTRA, SERVER_V6);

    // Bound to another device (one end of a second veth pair whose both ends stay in the
    // client namespace), the knocks do not take the route to the server: nothing arrives
    // before the marker.
    let dummy = format!("kx{}", &lab.client_if[2..]);
    let dummy_peer = format!("ky{}", &lab.client_if[2..]);
    run(
        "ip",
        &[
            "-n",
            &lab.client_ns,
            "link",
            "add",
            &dummy,
            "type",
            "veth",
            "peer",
            "name",
            &dummy_peer,
        ],
    );
    for device in [&dummy, &dummy_peer] {
        run("ip", &["-n", &lab.client_ns, "link", "set", device, "up"]);
    }
    let packets = capture_knock(
        &lab,
        &["--interface", &dummy, SERVER_V4, "7000", "8000:udp"],
        SERVER_V4,
    );
    assert_eq!(packets, [], "--interface {dummy} was not applied");
}

#[test]
#[ignore = "needs root"]
fn delay_is_honoured_between_hits() {
    const DELAY_MS: u64 = 150;
    let lab = Lab::new();
    let delay = DELAY_MS.to_string();
    let packets = capture_knock(
        &lab,
        &["-d", &delay, SERVER_V4, "7000", "7001:udp", "7002"],
        SERVER_V4,
    );
    let ports: Vec<u16> = packets.iter().map(Captured::destination_port).collect();
    assert_eq!(ports, [7000, 7001, 7002], "in order");
    for pair in packets.windows(2) {
        let gap = pair[1].time.saturating_sub(pair[0].time);
        // Capture timestamps are taken on arrival; allow 2 ms of arrival jitter. There is
        // deliberately no upper bound: a slow machine may pause longer.
        assert!(
            gap + Duration::from_millis(2) >= Duration::from_millis(DELAY_MS),
            "gap {gap:?} shorter than the {DELAY_MS} ms delay"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn unreachable_destinations_fail_with_a_clear_message() {
    let lab = Lab::new();
    // 10.201/16 has an explicit "unreachable" route (EHOSTUNREACH); 10.200/16 and fd00:200::
    // have no route at all (ENETUNREACH). Nothing leaves the namespace either way.
    run(
        "ip",
        &[
            "-n",
            &lab.client_ns,
            "route",
            "add",
            "unreachable",
            "10.201.0.0/16",
        ],
    );
    for (args, message) in [
        (
            ["10.200.0.1", "7000"],
            "knock: cannot knock tcp 10.200.0.1:7000: Network is unreachable",
        ),
        (
            ["10.200.0.1", "7000:udp"],
            "knock: cannot knock udp 10.200.0.1:7000: Network is unreachable",
        ),
        (
            ["10.201.0.1", "7000"],
            "knock: cannot knock tcp 10.201.0.1:7000: No route to host",
        ),
        (
            ["10.201.0.1", "7000:udp"],
            "knock: cannot knock udp 10.201.0.1:7000: No route to host",
        ),
        (
            ["fd00:200::1", "7000"],
            "knock: cannot knock tcp [fd00:200::1]:7000: Network is unreachable",
        ),
    ] {
        let output = lab.knock_with(KNOCK, &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
    }
    // knock 0.8 reports success for the same thing ([EXP 28]); documented, not copied.
    let output = lab.knock_with(KNOCK_0_8, &["10.200.0.1", "7000"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

/// Packets from our client and from 0.8's `knock` are the same in shape: IP length, TCP flags
/// and option kinds (kernel-made SYNs), UDP payload length.
#[test]
#[ignore = "needs root"]
fn packets_have_the_same_shape_as_knock_0_8() {
    let lab = Lab::new();
    for server in [SERVER_V4, SERVER_V6] {
        let capture = Capture::start(&lab, &format!("shape-{server}.pcap"));
        let args = [server, "7000", "8000:udp", "9000"];
        lab.knock(&args);
        let ours = capture.wait_for(3);
        let output = lab.knock_with(KNOCK_0_8, &args);
        assert!(output.status.success(), "knock 0.8: {output:?}");
        let all = capture.wait_for(6);
        let (ours, theirs) = (&ours[..3], &all[3..6]);
        assert_eq!(
            ours.iter()
                .map(Captured::destination_port)
                .collect::<Vec<_>>(),
            theirs
                .iter()
                .map(Captured::destination_port)
                .collect::<Vec<_>>()
        );
        for (our, their) in ours.iter().zip(theirs) {
            assert_eq!(our.shape(), their.shape(), "ours {our:#?}\n0.8 {their:#?}");
        }
        their_sequence_sanity(theirs);
    }
}

/// The reference itself sends what section 10 says (guards the comparison above).
fn their_sequence_sanity(theirs: &[Captured]) {
    theirs[0].assert_syn(7000);
    theirs[1].assert_udp_nul(8000);
    theirs[2].assert_syn(9000);
}

/// Runs knockd 0.8 in the server namespace with a door that touches a file.
struct Knockd08 {
    _process: Spawned,
}

impl Knockd08 {
    fn start(lab: &Lab, sequence: &str) -> Self {
        Self::start_with(lab, &format!("sequence = {sequence}"))
    }

    /// `sequence_line` is the door's `sequence = …` or `one_time_sequences = …` line.
    fn start_with(lab: &Lab, sequence_line: &str) -> Self {
        let config = lab.path("knockd-0.8.conf");
        std::fs::write(
            &config,
            format!(
                "[options]\n\tLogFile = {log}\n\n[opendoor]\n\t{sequence_line}\n\
                 \tseq_timeout = 10\n\ttcpflags = syn\n\tcommand = /usr/bin/touch {dir}/opened-%IP%\n",
                log = lab.path("knockd-0.8.log").display(),
                dir = lab.dir.path().display(),
            ),
        )
        .unwrap();
        let mut child = Lab::in_namespace(&lab.server_ns, KNOCKD_0_8)
            .args(["-i", &lab.server_if, "-v", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run knockd 0.8");
        let stdout = child.stdout.take().expect("piped stdout");
        let process = Spawned(child);
        wait_for_line(&lines_of(stdout), "listening on", "knockd 0.8");
        Self { _process: process }
    }
}

#[track_caller]
fn wait_for_file(path: &Path) {
    wait_until(|| {
        path.exists()
            .then_some(())
            .ok_or_else(|| format!("{} did not appear within {PATIENCE:?}", path.display()))
    });
}

#[test]
#[ignore = "needs root"]
fn knockd_0_8_opens_for_our_client() {
    let lab = Lab::new();
    let _knockd = Knockd08::start(&lab, "7000,8000:udp,9000");
    lab.knock(&["-d", "50", SERVER_V4, "7000", "8000:udp", "9000"]);
    wait_for_file(&lab.path(&format!("opened-{CLIENT_V4}")));
    lab.knock(&[SERVER_V6, "7000", "8000:udp", "9000"]);
    wait_for_file(&lab.path(&format!("opened-{CLIENT_V6}")));
}

#[test]
#[ignore = "needs root"]
fn knockd_0_8_opens_for_a_door_read_from_its_own_config() {
    let lab = Lab::new();
    let _knockd = Knockd08::start(&lab, "7100:udp,7200,7300:udp");
    let config = lab.path("knockd-0.8.conf");
    let output = lab.knock(&[
        "-v",
        "--door",
        "opendoor",
        "-c",
        config.to_str().unwrap(),
        SERVER_V4,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!(
            "hitting udp {SERVER_V4}:7100\nhitting tcp {SERVER_V4}:7200\nhitting udp {SERVER_V4}:7300\n"
        )
    );
    wait_for_file(&lab.path(&format!("opened-{CLIENT_V4}")));
}

#[test]
#[ignore = "needs root"]
fn knockd_0_8_opens_for_the_active_one_time_sequence() {
    let lab = Lab::new();
    let sequences = lab.path("ots");
    // Leading blanks, as knockd's man page recommends: 0.8 writes its '#' over them.
    std::fs::write(&sequences, " 7400,7500:udp\n 7600:udp,7700\n").unwrap();
    let _knockd = Knockd08::start_with(
        &lab,
        &format!("one_time_sequences = {}", sequences.display()),
    );
    let config = lab.path("knockd-0.8.conf");
    let door = [
        "--door",
        "opendoor",
        "-c",
        config.to_str().unwrap(),
        SERVER_V4,
    ];
    let opened = lab.path(&format!("opened-{CLIENT_V4}"));

    let output = lab.knock(&[&["-v"], door.as_slice()].concat());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hitting tcp {SERVER_V4}:7400\nhitting udp {SERVER_V4}:7500\n")
    );
    wait_for_file(&opened);

    // knockd 0.8 marks the used line; the client now knocks the next one, and it opens again.
    wait_until(|| {
        std::fs::read_to_string(&sequences)
            .unwrap()
            .starts_with('#')
            .then_some(())
            .ok_or_else(|| "knockd 0.8 did not mark the used line".to_owned())
    });
    std::fs::remove_file(&opened).unwrap();
    let output = lab.knock(&[&["-v"], door.as_slice()].concat());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("hitting udp {SERVER_V4}:7600\nhitting tcp {SERVER_V4}:7700\n")
    );
    wait_for_file(&opened);
}

/// Issue 10 item 17: `knock fe80::…%IF` failed with EINVAL (the scope was dropped, and a
/// link-local destination needs one). The scope, by name or by index, is kept.
#[test]
#[ignore = "needs root"]
fn issue10_item17_link_local_destination_with_scope() {
    let lab = Lab::new();
    for (ns, interface, address) in [
        (&lab.client_ns, &lab.client_if, "fe80::77:1/64"),
        (&lab.server_ns, &lab.server_if, "fe80::77:2/64"),
    ] {
        run(
            "ip",
            &[
                "-n", ns, "-6", "addr", "add", address, "dev", interface, "nodad",
            ],
        );
    }
    let server: IpAddr = "fe80::77:2".parse().unwrap();
    let by_name = format!("fe80::77:2%{}", lab.client_if);
    let index = String::from_utf8(
        Lab::in_namespace(&lab.client_ns, "cat")
            .arg(format!("/sys/class/net/{}/ifindex", lab.client_if))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let by_index = format!("fe80::77:2%{}", index.trim());
    for scoped in [&by_name, &by_index] {
        let packets = capture_knock(&lab, &[scoped, "7000", "8000:udp", "9000"], scoped);
        assert_eq!(packets.len(), 3, "{scoped}: {packets:#?}");
        packets[0].assert_syn(7000);
        packets[1].assert_udp_nul(8000);
        packets[2].assert_syn(9000);
        for packet in &packets {
            assert_eq!(packet.destination, server, "{packet:?}");
            let IpAddr::V6(source) = packet.source else {
                panic!("{packet:?}")
            };
            assert_eq!(source.segments()[0] & 0xffc0, 0xfe80, "{packet:?}");
        }
    }
    // Without a scope the kernel cannot tell which link: a clear failure, nothing sent.
    let output = lab.knock_with(KNOCK, &["fe80::77:2", "7000"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}
