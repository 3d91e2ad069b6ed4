//! Native nftables doors, end to end (root): the example ruleset
//! (`examples/configs/nft-native.nft`) loaded in the server namespace, knockd adding the
//! knocker's address to its sets, the kernel expiring the elements. The sets are read back
//! with `knockd::nft::NftSets::elements` (timeouts to the millisecond) from a thread that
//! joined the server namespace; reachability is a TCP connect from the client namespace to
//! a listener on port 22 in the server namespace.

use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use knock_core::{NftFamily, NftSetRef};
use knockd::nft::{NftSets, SetElement};
use nix::sched::{CloneFlags, setns};

use crate::fixture::{DEADLINE, Net, read, signal, wait_contains, wait_json_event, wait_until};

/// A dropped SYN is never answered: this long without a connection means "closed".
const DROPPED: Duration = Duration::from_millis(300);

/// The knock sequence of the test configurations.
const SEQUENCE: &str = "7113,9245:udp,8472";

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/configs")
        .join(name)
}

/// A door on the example's sets with `cmd_timeout` seconds, plus `extra` lines.
fn config(cmd_timeout: u32, set4: &str, extra: &str) -> String {
    format!(
        "[openSSH]\n    sequence = {SEQUENCE}\n    \
         seq_timeout = 10\n    cmd_timeout = {cmd_timeout}\n    nft_set = inet knockd {set4}\n    \
         nft_set_6 = inet knockd ssh6\n{extra}"
    )
}

fn set(name: &str) -> NftSetRef {
    NftSetRef::new(NftFamily::Inet, "knockd", name)
}

/// Runs `f` on a thread that joined network namespace `ns` (sockets it opens stay there).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// The pair of namespaces with the example ruleset in the server one, a listener on port 22
/// (IPv4 and IPv6) there, and a netlink socket to read the sets.
struct NftNet {
    net: Net,
    sets: NftSets,
    _listeners: (TcpListener, TcpListener),
}

impl NftNet {
    fn new() -> Self {
        let net = Net::new();
        let ruleset = example("nft-native.nft");
        crate::fixture::run(net.cmd_in(&net.srv, "nft").arg("-f").arg(&ruleset));
        let (srv4, srv6) = (net.srv4.clone(), net.srv6.clone());
        let (listeners, sets) = in_netns(&net.srv, move || {
            let v4 = TcpListener::bind((srv4.as_str(), 22)).expect("bind port 22 (IPv4)");
            let v6 = TcpListener::bind(format!("[{srv6}]:22")).expect("bind port 22 (IPv6)");
            ((v4, v6), NftSets::open().expect("netlink socket"))
        });
        Self {
            net,
            sets,
            _listeners: listeners,
        }
    }

    /// The element of `address` in set `name`, if there.
    fn element(&mut self, name: &str, address: &str) -> Option<SetElement> {
        let address: IpAddr = address.parse().unwrap();
        self.sets
            .elements(&set(name))
            .expect("list the set")
            .into_iter()
            .find(|e| e.addr == Some(address))
    }

    /// Waits (bounded) until the kernel has removed the element of `address` from `name`.
    fn wait_gone(&mut self, name: &str, address: &str) {
        assert!(
            wait_until(DEADLINE, || self
                .element(name, address)
                .is_none()
                .then_some(()))
            .is_some(),
            "{address} never expired from {name}"
        );
    }

    /// Whether the client reaches port 22 of `dst` within `wait`.
    fn connects(&self, dst: &str, wait: Duration) -> bool {
        let addr = SocketAddr::new(dst.parse().unwrap(), 22);
        in_netns(&self.net.cli, move || {
            TcpStream::connect_timeout(&addr, wait).is_ok()
        })
    }

    /// Knocks on `dst` until the element of `address` is in `name` (a knock sent while
    /// knockd opens its capture may be missed).
    fn knock_in(&mut self, dst: &str, name: &str, address: &str) -> SetElement {
        let dst = dst.to_owned();
        let found = wait_until(DEADLINE, || {
            self.net.knock_fast(&dst, SEQUENCE);
            wait_until(Duration::from_millis(700), || self.element(name, address))
        });
        found.unwrap_or_else(|| {
            panic!(
                "{address} never appeared in {name}; log:\n{}",
                read(&self.net.path("log"))
            )
        })
    }
}

#[test]
#[ignore = "needs root"]
fn v4_and_v6_knocks_add_elements_that_open_port_22_until_the_kernel_expires_them() {
    let mut t = NftNet::new();
    let net_dir = t.net.dir_str();
    // The start command runs after the element is in: what it lists shows it.
    let conf = config(
        2,
        "ssh4",
        &format!("    start_command = nft list set inet knockd ssh4 > {net_dir}/seen.%IP%\n"),
    );
    let json = t.net.path("events.json");
    let json_arg = json.display().to_string();
    let _knockd = t.net.start_knockd(&conf, &["--json-log", &json_arg]);
    let (srv4, srv6, cli4, cli6) = (
        t.net.srv4.clone(),
        t.net.srv6.clone(),
        t.net.cli4.clone(),
        t.net.cli6.clone(),
    );
    assert!(!t.connects(&srv4, DROPPED), "port 22 closed before a knock");
    assert!(!t.connects(&srv6, DROPPED), "port 22 closed before a knock");

    let e4 = t.knock_in(&srv4, "ssh4", &cli4);
    assert_eq!(e4.timeout, Some(Duration::from_secs(2)), "Cmd_Timeout");
    assert!(
        e4.expiration
            .is_some_and(|left| left <= Duration::from_secs(2))
    );
    assert!(
        t.connects(&srv4, DEADLINE),
        "port 22 open for the IPv4 knocker"
    );
    let log = t.net.path("log");
    wait_contains(
        &log,
        &format!("{cli4}: openSSH: added to nftables set inet knockd ssh4 for 2s"),
    );
    let text = read(&log);
    let open = text.find(&format!("{cli4}: openSSH: OPEN SESAME")).unwrap();
    let added = text.find("added to nftables set inet knockd ssh4").unwrap();
    assert!(open < added, "OPEN SESAME first:\n{text}");
    wait_json_event(&json, &cli4, "openSSH", "nft");
    let seen = t.net.path(&format!("seen.{cli4}"));
    wait_contains(&seen, &cli4);

    let e6 = t.knock_in(&srv6, "ssh6", &cli6);
    assert_eq!(e6.timeout, Some(Duration::from_secs(2)), "Cmd_Timeout");
    assert!(
        t.connects(&srv6, DEADLINE),
        "port 22 open for the IPv6 knocker"
    );
    wait_contains(
        &log,
        &format!("{cli6}: openSSH: added to nftables set inet knockd ssh6 for 2s"),
    );
    let events = crate::fixture::json_events(&json);
    let nft = events
        .iter()
        .find(|v| v["event"] == "nft" && v["source"] == cli4.as_str())
        .expect("nft event");
    assert_eq!(nft["success"], true);
    assert_eq!(nft["set"], "ssh4");
    assert_eq!(nft["timeout_ms"], 2000);
    // Issue 14: the element's write time follows the open's capture and decision times.
    let us = |key: &str| {
        nft[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key:?} in {nft}"))
    };
    assert!(
        us("captured_us") <= us("decided_us") && us("decided_us") <= us("written_us"),
        "stages out of order: {nft}"
    );
    assert_eq!(
        us("capture_to_write_us"),
        us("written_us") - us("captured_us")
    );

    // Nothing runs at Cmd_Timeout: the kernel removes the elements, and the port closes.
    t.wait_gone("ssh4", &cli4);
    t.wait_gone("ssh6", &cli6);
    assert!(!t.connects(&srv4, DROPPED), "port 22 closed again (IPv4)");
    assert!(!t.connects(&srv6, DROPPED), "port 22 closed again (IPv6)");
    assert!(!read(&log).contains("error"), "{}", read(&log));
}

#[test]
#[ignore = "needs root"]
fn after_kill_9_the_element_still_expires() {
    let mut t = NftNet::new();
    let mut knockd = t.net.start_knockd(&config(2, "ssh4", ""), &[]);
    let (srv4, cli4) = (t.net.srv4.clone(), t.net.cli4.clone());
    let element = t.knock_in(&srv4, "ssh4", &cli4);
    signal(knockd.pid, "KILL");
    knockd.wait_exit();
    assert_eq!(element.timeout, Some(Duration::from_secs(2)));
    assert!(t.connects(&srv4, DEADLINE), "open with knockd gone");
    // The kernel's own timer: the element has at most its timeout left and goes.
    let left = t.element("ssh4", &cli4).and_then(|e| e.expiration);
    assert!(
        left.is_none_or(|left| left <= Duration::from_secs(2)),
        "{left:?}"
    );
    t.wait_gone("ssh4", &cli4);
    assert!(
        !t.connects(&srv4, DROPPED),
        "closed after the element expired"
    );
}

#[test]
#[ignore = "needs root"]
fn a_repeated_knock_restarts_the_timeout() {
    let mut t = NftNet::new();
    let _knockd = t.net.start_knockd(&config(3, "ssh4", ""), &[]);
    let (srv4, cli4) = (t.net.srv4.clone(), t.net.cli4.clone());
    t.knock_in(&srv4, "ssh4", &cli4);
    // Let the countdown run below 2.5 s, then knock again: the time left jumps back up.
    let low = Duration::from_millis(2_500);
    let before = wait_until(DEADLINE, || {
        t.element("ssh4", &cli4)
            .and_then(|e| e.expiration)
            .filter(|left| *left < low)
    })
    .expect("the countdown runs");
    t.net.knock_fast(&srv4, SEQUENCE);
    let after = wait_until(DEADLINE, || {
        t.element("ssh4", &cli4)
            .and_then(|e| e.expiration)
            .filter(|left| *left > low)
    })
    .unwrap_or_else(|| panic!("the timeout was not restarted (left {before:?})"));
    assert!(after <= Duration::from_secs(3), "{after:?}");
    let element = t.element("ssh4", &cli4).expect("still there");
    assert_eq!(element.timeout, Some(Duration::from_secs(3)));
    let log = t.net.path("log");
    let wanted = format!("{cli4}: openSSH: added to nftables set inet knockd ssh4 for 3s");
    assert!(
        wait_until(DEADLINE, || (crate::fixture::count(&log, &wanted) >= 2)
            .then_some(()))
        .is_some(),
        "two adds logged:\n{}",
        read(&log)
    );
}

#[test]
#[ignore = "needs root"]
fn a_missing_set_fails_start_and_a_reload_keeps_the_old_config() {
    let mut t = NftNet::new();
    // Start: exit 1, the set named on stderr.
    t.net.write("knockd.conf", &config(2, "nosuch", ""));
    let mut failed = t.net.spawn_knockd(&t.net.knockd_args(&[]));
    let status = failed.wait_exit();
    assert_eq!(status.code(), Some(1), "stderr: {}", failed.stderr());
    let stderr = wait_until(DEADLINE, || {
        let text = failed.stderr();
        text.contains("inet knockd nosuch").then_some(text)
    })
    .unwrap_or_else(|| panic!("the set is not named: {}", failed.stderr()));
    assert!(stderr.contains("openSSH"), "the door is named: {stderr}");

    // Reload: the old configuration stays.
    let knockd = t.net.start_knockd(&config(2, "ssh4", ""), &[]);
    t.net.write("knockd.conf", &config(2, "nosuch", ""));
    knockd.signal("HUP");
    let log = t.net.path("log");
    wait_contains(&log, "reload failed, keeping the old configuration");
    assert!(read(&log).contains("inet knockd nosuch"), "{}", read(&log));
    let (srv4, cli4) = (t.net.srv4.clone(), t.net.cli4.clone());
    let element = t.knock_in(&srv4, "ssh4", &cli4);
    assert_eq!(element.timeout, Some(Duration::from_secs(2)));
}

#[test]
#[ignore = "needs root"]
fn a_reload_can_bring_the_first_set_door() {
    let mut t = NftNet::new();
    // No set at start: no netlink socket yet; the reload opens one and validates the sets.
    let plain =
        format!("[openSSH]\n    sequence = {SEQUENCE}\n    seq_timeout = 10\n    command = true\n");
    let knockd = t.net.start_knockd(&plain, &[]);
    let log = t.net.path("log");
    let before = crate::fixture::count(&log, "re-reading config file");
    t.net.write("knockd.conf", &config(2, "ssh4", ""));
    knockd.signal("HUP");
    assert!(
        wait_until(DEADLINE, || {
            (crate::fixture::count(&log, "re-reading config file") > before).then_some(())
        })
        .is_some(),
        "no reload: {}",
        read(&log)
    );
    let (srv4, cli4) = (t.net.srv4.clone(), t.net.cli4.clone());
    let element = t.knock_in(&srv4, "ssh4", &cli4);
    assert_eq!(element.timeout, Some(Duration::from_secs(2)));
    assert!(!read(&log).contains("error"), "{}", read(&log));
}

/// A thread living in network namespace `ns` that runs the jobs sent to it.
struct NsThread {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl NsThread {
    fn new(ns: &str) -> Self {
        let path = format!("/run/netns/{ns}");
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            for job in rx {
                job();
            }
        });
        Self { jobs }
    }

    /// Starts `f` on the thread; the receiver gets its result.
    fn start<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::sync::mpsc::Receiver<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("namespace thread alive");
        rx
    }
}

/// Sends the knocks of [`SEQUENCE`] to `dst` from the calling thread (its namespace) and
/// returns the instant just before the last one was sent. TCP knocks are a connect to a
/// closed port (one SYN, answered by a reset), UDP knocks one datagram.
fn send_sequence(dst: IpAddr) -> std::time::Instant {
    let knocks: Vec<(u16, bool)> = SEQUENCE
        .split(',')
        .map(|k| match k.strip_suffix(":udp") {
            Some(port) => (port.parse().unwrap(), true),
            None => (k.parse().unwrap(), false),
        })
        .collect();
    let mut last = std::time::Instant::now();
    for (port, udp) in knocks {
        let to = SocketAddr::new(dst, port);
        last = std::time::Instant::now();
        if udp {
            let bind: SocketAddr = if dst.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let socket = std::net::UdpSocket::bind(bind).expect("udp socket");
            socket.send_to(&[0], to).expect("send the UDP knock");
        } else {
            // Refused (a reset comes back) or, if dropped, given up quickly: one SYN is enough.
            let _ = TcpStream::connect_timeout(&to, Duration::from_millis(200));
        }
    }
    last
}

/// Knock-to-element latency of a door: for each of `rounds` knocks, the time from just
/// before the client sends the last knock to the element being visible to a netlink dump
/// polled in a loop; the set is flushed between rounds. Returns the latencies, sorted.
fn knock_to_element(t: &NftNet, rounds: usize) -> Vec<Duration> {
    let client = NsThread::new(&t.net.cli);
    let server = NsThread::new(&t.net.srv);
    let dst: IpAddr = t.net.srv4.parse().unwrap();
    let cli4: IpAddr = t.net.cli4.parse().unwrap();
    let mut latencies = Vec::with_capacity(rounds);
    let mut misses = 0;
    while latencies.len() < rounds {
        assert!(misses < rounds, "too many knocks never opened");
        crate::fixture::run(
            t.net
                .cmd_in(&t.net.srv, "nft")
                .args(["flush", "set", "inet", "knockd", "ssh4"]),
        );
        let seen = server.start(move || {
            let mut sets = NftSets::open().expect("netlink socket");
            let end = std::time::Instant::now() + Duration::from_secs(2);
            while std::time::Instant::now() < end {
                let elements = sets.elements(&set("ssh4")).expect("list the set");
                if elements.iter().any(|e| e.addr == Some(cli4)) {
                    return Some(std::time::Instant::now());
                }
            }
            None
        });
        // The poller is running (its socket is open) once this round trip is done.
        thread::sleep(Duration::from_millis(20));
        let sent = client
            .start(move || send_sequence(dst))
            .recv()
            .expect("client thread");
        match seen.recv().expect("poller thread") {
            Some(at) => latencies.push(at.saturating_duration_since(sent)),
            None => misses += 1,
        }
        // Lets the door's attempt for this source end before the next round.
        thread::sleep(Duration::from_millis(50));
    }
    latencies.sort_unstable();
    latencies
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

/// The figures of BENCHMARKS.md's "knock to element" table (run with `KNOCKD_BENCH_ROUNDS=200
/// cargo test --release … nft::knock_to_element_latency -- --include-ignored --nocapture`;
/// 20 rounds by default). As a test: every knock of every door puts the element in.
#[test]
#[ignore = "needs root"]
fn knock_to_element_latency() {
    let rounds: usize = std::env::var("KNOCKD_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let shell_door = format!(
        "[openSSH]\n    sequence = {SEQUENCE}\n    seq_timeout = 10\n    cmd_timeout = 5\n    \
         start_command = nft add element inet knockd ssh4 {{ %IP% timeout 5s }}\n"
    );
    let doors = [
        (
            "knockd (ours), Nft_Set (netlink)",
            config(5, "ssh4", ""),
            false,
        ),
        (
            "knockd (ours), Start_Command (/bin/sh + nft)",
            shell_door.clone(),
            false,
        ),
        (
            "knockd 0.8, Start_Command (/bin/sh + nft)",
            shell_door,
            true,
        ),
    ];
    for (label, conf, old) in doors {
        if old && !std::path::Path::new("/usr/sbin/knockd").exists() {
            println!("knock→element {label}: skipped (/usr/sbin/knockd not installed)");
            continue;
        }
        let mut t = NftNet::new();
        let _knockd = if old {
            let conf = t.net.write("knockd-0.8.conf", &conf);
            let log = t.net.path("log");
            let mut cmd = t.net.cmd_in(&t.net.srv, "/usr/sbin/knockd");
            cmd.args(["-i", crate::fixture::SRV_IF, "-c", conf.to_str().unwrap()])
                .args(["-g", log.to_str().unwrap()]);
            let daemon = crate::fixture::Daemon::spawn(cmd);
            wait_contains(&log, "listening on");
            daemon
        } else {
            t.net.start_knockd(&conf, &[])
        };
        let (srv4, cli4) = (t.net.srv4.clone(), t.net.cli4.clone());
        // Warm up (and make sure the capture is running).
        t.knock_in(&srv4, "ssh4", &cli4);
        let latencies = knock_to_element(&t, rounds);
        assert_eq!(latencies.len(), rounds);
        println!(
            "knock→element {label}: {rounds} knocks, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            percentile(&latencies, 50).as_secs_f64() * 1e3,
            percentile(&latencies, 90).as_secs_f64() * 1e3,
            percentile(&latencies, 99).as_secs_f64() * 1e3,
            latencies[rounds - 1].as_secs_f64() * 1e3,
        );
    }
}
