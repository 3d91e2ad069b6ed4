//! The built `knock` binary: exit statuses, messages, and real hits on loopback.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn knock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knock"))
        .args(args)
        .output()
        .expect("run knock")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_status(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// A UDP socket on loopback that collects datagrams.
struct UdpSink(UdpSocket);

impl UdpSink {
    fn new() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self(socket)
    }

    fn port(&self) -> String {
        self.0.local_addr().unwrap().port().to_string()
    }

    /// The next datagram's payload (waits at most 10 s).
    fn receive(&self) -> Vec<u8> {
        let mut buffer = [0xff_u8; 64];
        let (length, _) = self
            .0
            .recv_from(&mut buffer)
            .expect("a datagram within 10 s");
        buffer[..length].to_vec()
    }

    /// Asserts `output` is a successful `knock -v` of two UDP hits on this sink, and that
    /// both arrived as one NUL byte each.
    #[track_caller]
    fn assert_two_verbose_hits(&self, output: &Output) {
        let port = self.port();
        assert_status(output, 0);
        assert_eq!(
            stdout(output),
            format!("hitting udp 127.0.0.1:{port}\nhitting udp 127.0.0.1:{port}\n")
        );
        assert_eq!(self.receive(), [0]);
        assert_eq!(self.receive(), [0]);
    }
}

#[test]
fn help_exits_zero_and_lists_exit_statuses() {
    for flag in ["-h", "--help"] {
        let output = knock(&[flag]);
        assert_status(&output, 0);
        let text = stdout(&output);
        assert!(text.contains("Usage: knock [OPTIONS] <HOST>"), "{text}");
        for line in [
            "Exit status:",
            "  2  invalid command line",
            "--udp",
            "--delay",
        ] {
            assert!(text.contains(line), "missing {line:?} in {text}");
        }
    }
}

#[test]
fn version() {
    let output = knock(&["-V"]);
    assert_status(&output, 0);
    assert_eq!(
        stdout(&output),
        format!("knock {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let sink = UdpSink::new();
    let port = sink.port();
    let udp_port = format!("{port}:udp");
    for (args, message) in [
        (vec![], "required arguments were not provided"),
        (vec!["127.0.0.1"], "<PORT[:PROTO]>"),
        (
            vec!["127.0.0.1", &udp_port, "0"],
            "port 0 is not a valid port",
        ),
        (
            vec!["127.0.0.1", &udp_port, "70000"],
            "port 70000 is out of range",
        ),
        (
            vec!["127.0.0.1", &udp_port, "ssh"],
            "port 'ssh' is not a number",
        ),
        (
            vec!["127.0.0.1", &udp_port, "9:sctp"],
            "unknown protocol 'sctp'",
        ),
        (
            vec!["-d", "-5", "127.0.0.1", &udp_port],
            "delay cannot be negative",
        ),
        (
            vec!["-d", "x", "127.0.0.1", &udp_port],
            "not a whole number",
        ),
        (
            vec!["-4", "-6", "127.0.0.1", &udp_port],
            "cannot be used with",
        ),
        (
            vec!["--door", "d", "127.0.0.1", &udp_port],
            "cannot be used with",
        ),
        (
            vec!["--bogus", "127.0.0.1", &udp_port],
            "unexpected argument",
        ),
    ] {
        let output = knock(&args);
        assert_status(&output, 2);
        let text = stderr(&output);
        assert!(text.contains(message), "{args:?}: {text}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
    // The first port was valid in every case above, yet nothing may have been sent for it.
    // Loopback delivers a datagram into the receiver's queue before `sendto` returns, so
    // anything sent by the finished processes would be waiting already.
    sink.0.set_nonblocking(true).unwrap();
    let mut buffer = [0_u8; 8];
    let error = sink.0.recv_from(&mut buffer).expect_err("nothing was sent");
    assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);
}

#[test]
fn udp_hits_on_loopback_are_one_nul_byte_each() {
    let sink = UdpSink::new();
    let port = sink.port();
    let output = knock(&[
        "-v",
        "-d",
        "1",
        "127.0.0.1",
        &format!("{port}:udp"),
        &format!("{port}:UDP"),
    ]);
    sink.assert_two_verbose_hits(&output);
    assert!(stderr(&output).is_empty());
}

#[test]
fn host_name_is_resolved_once_for_all_hits() {
    let sink = UdpSink::new();
    let port = sink.port();
    let output = knock(&["-v", "-4", "-u", "localhost", &port, &port]);
    sink.assert_two_verbose_hits(&output);
}

#[test]
fn tcp_hit_reaches_a_listener_on_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let output = knock(&["-v", "127.0.0.1", &port]);
    assert_status(&output, 0);
    assert_eq!(stdout(&output), format!("hitting tcp 127.0.0.1:{port}\n"));
    // The SYN arrived: on loopback the kernel answers it at once and queues the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok(_) => break,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection within 10 s");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
}

#[test]
fn knock_failures_exit_1_with_a_clear_message() {
    for (args, message) in [
        (
            vec!["-6", "127.0.0.1", "9"],
            "knock: hostname '127.0.0.1' has no IPv6 address\n",
        ),
        (
            vec!["no-such-host.invalid", "9"],
            "knock: failed to resolve hostname 'no-such-host.invalid': ",
        ),
        (
            // TEST-NET-1 is never local: binding fails before anything is sent.
            vec!["--source-address", "192.0.2.1", "127.0.0.1", "9:udp"],
            "knock: cannot send from 192.0.2.1: ",
        ),
        (
            vec!["--source-address", "::1", "127.0.0.1", "9:udp"],
            "knock: source address ::1 cannot reach 127.0.0.1: different address families\n",
        ),
        (
            vec!["--interface", "nosuchif0", "127.0.0.1", "9"],
            "knock: cannot send through interface 'nosuchif0': ",
        ),
    ] {
        let output = knock(&args);
        assert_status(&output, 1);
        let text = stderr(&output);
        assert!(text.starts_with(message), "{args:?}: {text}");
    }
}

#[test]
fn door_errors_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.conf");
    let output = knock(&["--door", "d", "-c", path(&missing), "127.0.0.1"]);
    assert_status(&output, 3);
    assert!(
        stderr(&output).starts_with(&format!("knock: cannot read {}: ", missing.display())),
        "{}",
        stderr(&output)
    );

    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "[door]\n  sequence = 7000,70000\n").unwrap();
    let output = knock(&["--door", "door", "-c", path(&bad), "127.0.0.1"]);
    assert_status(&output, 3);
    assert!(
        stderr(&output).starts_with(&format!("knock: {}:2:", bad.display())),
        "names file and line: {}",
        stderr(&output)
    );
}

#[test]
fn door_sequence_from_config() {
    let sink = UdpSink::new();
    let port = sink.port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("knockd.conf");
    std::fs::write(
        &config,
        format!(
            "[options]\n  logfile = /dev/null\n\n[other]\n  sequence = 1,2,3\n  command = true\n\n\
             [mydoor]\n  sequence = {port}:udp,{port}:udp\n  command = true\n"
        ),
    )
    .unwrap();
    let output = knock(&["-v", "--door", "mydoor", "-c", path(&config), "127.0.0.1"]);
    sink.assert_two_verbose_hits(&output);

    let output = knock(&["--door", "nope", "-c", path(&config), "127.0.0.1"]);
    assert_status(&output, 3);
    assert_eq!(
        stderr(&output),
        format!(
            "knock: no door named 'nope' in {} (doors: other, mydoor)\n",
            config.display()
        )
    );
}

#[test]
fn one_time_sequence_door_knocks_the_active_line_without_marking_it() {
    let sink = UdpSink::new();
    let port: u16 = sink.port().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sequences = dir.path().join("ots");
    // The first line is used (knockd marks a used line by writing '#' over its first
    // character); the second is active.
    let ots_text = format!("#1111:udp,2222:udp\n {port}:udp,{port}:udp,{port}:udp\n {port}:udp\n",);
    std::fs::write(&sequences, &ots_text).unwrap();
    let config = dir.path().join("knockd.conf");
    std::fs::write(
        &config,
        format!(
            "[otsdoor]\n  one_time_sequences = {}\n  command = true\n",
            sequences.display()
        ),
    )
    .unwrap();
    let output = knock(&["-v", "--door", "otsdoor", "-c", path(&config), "127.0.0.1"]);
    assert_status(&output, 0);
    assert_eq!(stdout(&output).lines().count(), 3, "{}", stdout(&output));
    for _ in 0..3 {
        assert_eq!(sink.receive(), [0]);
    }
    assert_eq!(
        std::fs::read_to_string(&sequences).unwrap(),
        ots_text,
        "the client never marks a sequence used"
    );

    // All used: a clear error, nothing sent.
    std::fs::write(&sequences, format!("#{port}:udp\n#{port}:udp\n")).unwrap();
    let output = knock(&["--door", "otsdoor", "-c", path(&config), "127.0.0.1"]);
    assert_status(&output, 3);
    assert!(
        stderr(&output).contains("no unused one-time sequence left for door 'otsdoor'"),
        "{}",
        stderr(&output)
    );
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
