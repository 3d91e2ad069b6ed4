//! Root tests of `knockd::nft` against the kernel's nf_tables, each in a network namespace
//! of its own (named after the process id and a counter, deleted in `Drop`). The netlink
//! socket is opened by a thread that first joins the namespace with `setns`; the socket
//! stays in that namespace when the thread ends. `nft` (the command) loads the rulesets and
//! is the independent witness of what the sets hold.

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use knock_core::{NftFamily, NftSetRef};
use knockd::nft::{AddressFamily, NftError, NftSets, Refresh};
use nix::sched::{CloneFlags, setns};

/// The upper bound on any wait for the kernel (expiry polling).
const PATIENCE: Duration = Duration::from_secs(10);

const RULESET: &str = "
table inet knockd {
    set ssh4 { type ipv4_addr; flags timeout; }
    set ssh6 { type ipv6_addr; flags timeout; }
    set plain4 { type ipv4_addr; }
    set marks { type mark; flags timeout; }
    set ranges { type ipv4_addr; flags interval,timeout; }
    map marked { type ipv4_addr : mark; flags timeout; }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr @ssh4 tcp dport 22 accept
        ip6 saddr @ssh6 tcp dport 22 accept
        tcp dport 22 drop
    }
}
table ip only4 {
    set s { type ipv4_addr; flags timeout; }
}
table ip6 only6 {
    set s { type ipv6_addr; flags timeout; }
}
";

/// A network namespace holding [`RULESET`].
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        Self::with_ruleset(RULESET)
    }

    /// A namespace holding `ruleset` (nft syntax).
    fn with_ruleset(ruleset: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "knockd-nft-{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name], None);
        let netns = Self { name };
        netns.nft(&["-f", "-"], Some(ruleset));
        netns
    }

    /// Runs `nft ARGS` in the namespace and returns its standard output.
    fn nft(&self, args: &[&str], input: Option<&str>) -> String {
        let mut full = vec!["netns", "exec", &self.name, "nft"];
        full.extend_from_slice(args);
        run("ip", &full, input)
    }

    /// Runs `f` on a thread that has joined the namespace (sockets it opens stay there).
    fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread")
    }

    /// Opens an [`NftSets`] inside the namespace.
    fn open(&self) -> NftSets {
        self.run_in(|| NftSets::open().expect("netlink socket"))
    }

    /// `(timeout, expires)` in seconds of element `addr` in `family table set`, from
    /// `nft -j list set`; `None` when the element is absent.
    fn nft_element(&self, set: &NftSetRef, addr: &str) -> Option<(u64, u64)> {
        let json = self.nft(
            &[
                "-j",
                "list",
                "set",
                set.family.as_str(),
                &set.table,
                &set.set,
            ],
            None,
        );
        let value: serde_json::Value = serde_json::from_str(&json).expect("nft -j output");
        let items = value["nftables"].as_array().expect("nftables array");
        let set_json = items
            .iter()
            .find_map(|item| item.get("set"))
            .expect("a set");
        set_json["elem"].as_array()?.iter().find_map(|elem| {
            let elem = &elem["elem"];
            (elem["val"].as_str()? == addr).then(|| {
                (
                    elem["timeout"].as_u64().unwrap(),
                    elem["expires"].as_u64().unwrap(),
                )
            })
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[track_caller]
fn run(program: &str, args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn set(family: NftFamily, table: &str, name: &str) -> NftSetRef {
    NftSetRef::new(family, table, name)
}

fn ssh4() -> NftSetRef {
    set(NftFamily::Inet, "knockd", "ssh4")
}

fn ssh6() -> NftSetRef {
    set(NftFamily::Inet, "knockd", "ssh6")
}

/// The element for `addr` as knockd reads it back.
fn element(sets: &mut NftSets, set: &NftSetRef, addr: IpAddr) -> Option<knockd::nft::SetElement> {
    sets.elements(set)
        .unwrap()
        .into_iter()
        .find(|element| element.addr == Some(addr))
}

#[test]
#[ignore = "needs root"]
fn adds_v4_and_v6_elements_with_their_timeouts() {
    let ns = Netns::new();
    let mut sets = ns.open();
    sets.validate(&ssh4(), AddressFamily::Ipv4).unwrap();
    sets.validate(&ssh6(), AddressFamily::Ipv6).unwrap();
    sets.validate(&set(NftFamily::Ip, "only4", "s"), AddressFamily::Ipv4)
        .unwrap();
    sets.validate(&set(NftFamily::Ip6, "only6", "s"), AddressFamily::Ipv6)
        .unwrap();

    let v4: IpAddr = "10.1.2.3".parse().unwrap();
    let v6: IpAddr = "fd00::1:2:3".parse().unwrap();
    sets.add_element(&ssh4(), v4, Duration::from_secs(30))
        .unwrap();
    sets.add_element(&ssh6(), v6, Duration::from_secs(90))
        .unwrap();
    sets.add_element(
        &set(NftFamily::Ip, "only4", "s"),
        v4,
        Duration::from_secs(45),
    )
    .unwrap();
    sets.add_element(
        &set(NftFamily::Ip6, "only6", "s"),
        v6,
        Duration::from_secs(60),
    )
    .unwrap();

    let (timeout, expires) = ns.nft_element(&ssh4(), "10.1.2.3").expect("v4 element");
    assert_eq!(timeout, 30);
    assert!(expires <= 30, "{expires}");
    let (timeout, _) = ns.nft_element(&ssh6(), "fd00::1:2:3").expect("v6 element");
    assert_eq!(timeout, 90);
    let only4 = set(NftFamily::Ip, "only4", "s");
    assert_eq!(ns.nft_element(&only4, "10.1.2.3").unwrap().0, 45);
    let only6 = set(NftFamily::Ip6, "only6", "s");
    assert_eq!(ns.nft_element(&only6, "fd00::1:2:3").unwrap().0, 60);
    assert_eq!(ns.nft_element(&ssh4(), "10.9.9.9"), None);

    // knockd reads the same back.
    let read = element(&mut sets, &ssh4(), v4).expect("element");
    assert_eq!(read.timeout, Some(Duration::from_secs(30)));
    assert!(read.expiration.unwrap() <= Duration::from_secs(30));
    let read = element(&mut sets, &ssh6(), v6).expect("element");
    assert_eq!(read.timeout, Some(Duration::from_secs(90)));
    assert_eq!(sets.elements(&ssh4()).unwrap().len(), 1);
}

#[test]
#[ignore = "needs root"]
fn adding_again_restarts_the_timeout_by_re_adding() {
    adding_again_restarts_the_timeout(Refresh::ReAdd);
}

#[test]
#[ignore = "needs root"]
fn adding_again_restarts_the_timeout_by_replacing() {
    adding_again_restarts_the_timeout(Refresh::Replace);
}

/// With `Refresh::ReAdd` this needs Linux 6.12 or later (`NftSets::open` only picks it
/// there); `Refresh::Replace` works on any kernel.
fn adding_again_restarts_the_timeout(refresh: Refresh) {
    let ns = Netns::new();
    let mut sets = ns.open();
    if refresh == Refresh::ReAdd && Refresh::for_running_kernel() != Refresh::ReAdd {
        eprintln!("skipped: the running kernel does not restart timeouts on re-add");
        return;
    }
    sets.set_refresh(refresh);
    let addr: IpAddr = "10.1.2.3".parse().unwrap();
    sets.add_element(&ssh4(), addr, Duration::from_secs(30))
        .unwrap();

    // Wait (bounded) until the countdown has visibly moved.
    let start = Instant::now();
    let before = loop {
        let left = element(&mut sets, &ssh4(), addr)
            .unwrap()
            .expiration
            .unwrap();
        if left <= Duration::from_millis(29_800) {
            break left;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the element's expiration does not move"
        );
        thread::sleep(Duration::from_millis(50));
    };

    // Same timeout again: the countdown restarts from 30 s.
    sets.add_element(&ssh4(), addr, Duration::from_secs(30))
        .unwrap();
    let after = element(&mut sets, &ssh4(), addr).unwrap();
    assert_eq!(after.timeout, Some(Duration::from_secs(30)));
    assert!(
        after.expiration.unwrap() > before,
        "{after:?} vs {before:?}"
    );

    // A longer timeout extends the door, a shorter one shortens it; one element throughout.
    sets.add_element(&ssh4(), addr, Duration::from_secs(300))
        .unwrap();
    let (timeout, expires) = ns.nft_element(&ssh4(), "10.1.2.3").unwrap();
    assert_eq!(timeout, 300);
    assert!(expires > 30, "{expires}");
    sets.add_element(&ssh4(), addr, Duration::from_secs(5))
        .unwrap();
    let (timeout, expires) = ns.nft_element(&ssh4(), "10.1.2.3").unwrap();
    assert_eq!(timeout, 5);
    assert!(expires <= 5, "{expires}");
    assert_eq!(sets.elements(&ssh4()).unwrap().len(), 1);
}

#[test]
#[ignore = "needs root"]
fn elements_expire_by_themselves() {
    let ns = Netns::new();
    let mut sets = ns.open();
    let addr: IpAddr = "fd00::7".parse().unwrap();
    sets.add_element(&ssh6(), addr, Duration::from_secs(1))
        .unwrap();
    assert!(ns.nft_element(&ssh6(), "fd00::7").is_some());
    let start = Instant::now();
    while element(&mut sets, &ssh6(), addr).is_some() {
        assert!(start.elapsed() < PATIENCE, "the element never expired");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ns.nft_element(&ssh6(), "fd00::7"), None);
    // A later knock adds it again.
    sets.add_element(&ssh6(), addr, Duration::from_secs(30))
        .unwrap();
    assert_eq!(ns.nft_element(&ssh6(), "fd00::7").unwrap().0, 30);
}

#[test]
#[ignore = "needs root"]
fn missing_sets_and_tables_are_named() {
    let ns = Netns::new();
    let mut sets = ns.open();
    let addr: IpAddr = "10.1.2.3".parse().unwrap();
    for missing in [
        set(NftFamily::Inet, "knockd", "nosuch"),
        set(NftFamily::Inet, "notable", "ssh4"),
        // Same names, other family: a different table.
        set(NftFamily::Ip, "knockd", "ssh4"),
    ] {
        let error = sets
            .add_element(&missing, addr, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(error, NftError::NoSuchSet { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("nftables set {missing} does not exist (no such table or set)")
        );
        let error = sets.validate(&missing, AddressFamily::Ipv4).unwrap_err();
        assert!(matches!(error, NftError::NoSuchSet { .. }), "{error:?}");
        assert!(error.to_string().contains(&missing.to_string()));
        assert!(matches!(
            sets.elements(&missing),
            Err(NftError::NoSuchSet { .. })
        ));
    }
    // The socket is still usable after errors.
    sets.add_element(&ssh4(), addr, Duration::from_secs(5))
        .unwrap();
    assert!(ns.nft_element(&ssh4(), "10.1.2.3").is_some());
}

#[test]
#[ignore = "needs root"]
fn validation_refuses_unsuitable_sets() {
    let ns = Netns::new();
    let mut sets = ns.open();
    let inet = |name| set(NftFamily::Inet, "knockd", name);

    let error = sets
        .validate(&inet("plain4"), AddressFamily::Ipv4)
        .unwrap_err();
    assert!(matches!(error, NftError::NoTimeoutFlag { .. }), "{error:?}");
    assert!(error.to_string().contains("inet knockd plain4"), "{error}");

    let error = sets.validate(&ssh6(), AddressFamily::Ipv4).unwrap_err();
    assert!(
        matches!(
            error,
            NftError::WrongType {
                expected: "ipv4_addr",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("inet knockd ssh6"), "{error}");
    let error = sets.validate(&ssh4(), AddressFamily::Ipv6).unwrap_err();
    assert!(
        matches!(
            error,
            NftError::WrongType {
                expected: "ipv6_addr",
                ..
            }
        ),
        "{error:?}"
    );
    // `type mark` has 4-byte keys like ipv4_addr: the type number tells them apart.
    let error = sets
        .validate(&inet("marks"), AddressFamily::Ipv4)
        .unwrap_err();
    assert!(
        matches!(error, NftError::WrongType { key_len: 4, .. }),
        "{error:?}"
    );

    let error = sets
        .validate(&inet("ranges"), AddressFamily::Ipv4)
        .unwrap_err();
    assert!(
        matches!(
            error,
            NftError::UnsupportedSet {
                kind: "interval",
                ..
            }
        ),
        "{error:?}"
    );
    let error = sets
        .validate(&inet("marked"), AddressFamily::Ipv4)
        .unwrap_err();
    assert!(
        matches!(error, NftError::UnsupportedSet { kind: "map", .. }),
        "{error:?}"
    );

    let error = sets
        .validate(&set(NftFamily::Ip6, "only6", "s"), AddressFamily::Ipv4)
        .unwrap_err();
    assert!(matches!(error, NftError::WrongFamily { .. }), "{error:?}");
    assert!(error.to_string().contains("ip6 only6 s"), "{error}");
    let error = sets
        .validate(&set(NftFamily::Ip, "only4", "s"), AddressFamily::Ipv6)
        .unwrap_err();
    assert!(matches!(error, NftError::WrongFamily { .. }), "{error:?}");

    // Adding to a set without the timeout flag is refused by the kernel, and nothing is
    // added; a zero timeout is refused before asking it.
    let addr: IpAddr = "10.1.2.3".parse().unwrap();
    let error = sets
        .add_element(&inet("plain4"), addr, Duration::from_secs(5))
        .unwrap_err();
    assert!(matches!(error, NftError::Kernel { .. }), "{error:?}");
    assert!(error.to_string().contains("inet knockd plain4"), "{error}");
    assert_eq!(ns.nft_element(&inet("plain4"), "10.1.2.3"), None);
    let error = sets
        .add_element(&ssh4(), addr, Duration::from_micros(999))
        .unwrap_err();
    assert!(matches!(error, NftError::ZeroTimeout { .. }), "{error:?}");
    assert_eq!(ns.nft_element(&ssh4(), "10.1.2.3"), None);
}

#[test]
#[ignore = "needs root"]
fn example_ruleset_and_config_fit_together() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs");
    let ruleset = std::fs::read_to_string(dir.join("nft-native.nft")).unwrap();
    let conf = std::fs::read_to_string(dir.join("nft-native.conf")).unwrap();
    let config = knock_core::Config::parse(&conf).unwrap().config;
    let ns = Netns::with_ruleset(&ruleset);
    let mut sets = ns.open();
    let mut checked = 0;
    for door in &config.doors {
        for (set, family, addr) in [
            (&door.nft_set, AddressFamily::Ipv4, "10.1.2.3"),
            (&door.nft_set_6, AddressFamily::Ipv6, "fd00::3"),
        ] {
            let Some(set) = set else { continue };
            sets.validate(set, family).unwrap_or_else(|e| panic!("{e}"));
            let timeout = door.cmd_timeout;
            sets.add_element(set, addr.parse().unwrap(), timeout)
                .unwrap();
            let (seconds, _) = ns.nft_element(set, addr).expect("element");
            assert_eq!(Duration::from_secs(seconds), timeout);
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "the example has an IPv4 and an IPv6 set");
}

#[test]
#[ignore = "needs root"]
fn validate_doors_and_check_name_the_door_and_the_set() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let check = |sets: &str| {
        let path = dir.path().join("knockd.conf");
        std::fs::write(&path, format!("[ssh]\nsequence = 7000,8000\n{sets}\n")).unwrap();
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                env!("CARGO_BIN_EXE_knockd"),
                "--check",
                "-c",
            ])
            .arg(&path)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = check("nft_set = inet knockd ssh4\nnft_set_6 = inet knockd ssh6");
    assert_eq!(status, Some(0), "{stderr}");
    let (status, stderr) = check("nft_set = inet knockd nosuch");
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("door \"ssh\": nftables set inet knockd nosuch does not exist"),
        "{stderr}"
    );
    let (status, stderr) = check("nft_set = inet knockd ssh4\nnft_set_6 = inet knockd plain4");
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("inet knockd plain4"), "{stderr}");

    let mut sets = ns.open();
    let config = knock_core::Config::parse(
        "[a]\nsequence = 1\nnft_set = inet knockd ssh4\n[b]\nsequence = 2\nnft_set_6 = inet knockd ssh6\n\
         [c]\nsequence = 3\nnft_set = ip only4 s\nnft_set_6 = ip6 only6 s\n[d]\nsequence = 4\n",
    )
    .unwrap()
    .config;
    assert_eq!(sets.validate_doors(&config.doors).unwrap(), 4);
    let config = knock_core::Config::parse(
        "[a]\nsequence = 1\nnft_set = inet knockd ssh4\n[b]\nsequence = 2\nnft_set_6 = inet knockd marks\n",
    )
    .unwrap()
    .config;
    let error = sets.validate_doors(&config.doors).unwrap_err();
    assert_eq!(error.door, "b");
    assert!(
        matches!(error.source, NftError::WrongType { .. }),
        "{error:?}"
    );
}

/// Whether a TCP connection to `addr` inside the namespace is accepted within `wait` (a
/// dropped SYN shows as a timeout; the listener accepts).
fn connects(ns: &Netns, addr: std::net::SocketAddr, wait: Duration) -> bool {
    ns.run_in(move || std::net::TcpStream::connect_timeout(&addr, wait).is_ok())
}

#[test]
#[ignore = "needs root"]
fn the_example_ruleset_opens_port_22_while_the_element_lives() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs");
    let ruleset = std::fs::read_to_string(dir.join("nft-native.nft")).unwrap();
    let ns = Netns::with_ruleset(&ruleset);
    run("ip", &["-n", &ns.name, "link", "set", "lo", "up"], None);
    // A listener on 127.0.0.1:22 and [::1]:22 inside the namespace, accepting forever.
    let listeners = ns.run_in(|| {
        (
            std::net::TcpListener::bind("127.0.0.1:22").expect("bind 127.0.0.1:22"),
            std::net::TcpListener::bind("[::1]:22").expect("bind [::1]:22"),
        )
    });
    let v4: std::net::SocketAddr = "127.0.0.1:22".parse().unwrap();
    let v6: std::net::SocketAddr = "[::1]:22".parse().unwrap();
    // Short waits only where the answer is "dropped": the SYN is never answered.
    let dropped = Duration::from_millis(300);
    assert!(
        !connects(&ns, v4, dropped),
        "port 22 must be closed before a knock"
    );
    assert!(
        !connects(&ns, v6, dropped),
        "port 22 must be closed before a knock"
    );

    let mut sets = ns.open();
    let set4 = set(NftFamily::Inet, "knockd", "ssh4");
    let set6 = set(NftFamily::Inet, "knockd", "ssh6");
    sets.add_element(&set4, v4.ip(), Duration::from_secs(1))
        .unwrap();
    sets.add_element(&set6, v6.ip(), Duration::from_secs(1))
        .unwrap();
    assert!(
        connects(&ns, v4, PATIENCE),
        "the element must open port 22 (IPv4)"
    );
    assert!(
        connects(&ns, v6, PATIENCE),
        "the element must open port 22 (IPv6)"
    );

    // The kernel removes the elements by itself; then the port is closed again.
    let start = Instant::now();
    while !sets.elements(&set4).unwrap().is_empty() || !sets.elements(&set6).unwrap().is_empty() {
        assert!(start.elapsed() < PATIENCE, "the elements never expired");
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !connects(&ns, v4, dropped),
        "port 22 must close when the element expires"
    );
    assert!(
        !connects(&ns, v6, dropped),
        "port 22 must close when the element expires"
    );
    drop(listeners);
}
