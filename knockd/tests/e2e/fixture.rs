//! The test fixture: a pair of network namespaces joined by a veth pair, a knockd process
//! running in the server namespace, knock senders in the client namespace, and bounded
//! polling helpers.
//!
//! Everything a test creates is torn down by `Drop` (also when the test panics): processes
//! spawned into the namespaces are killed, then the namespaces are deleted.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use knock_core::Knock;
use knock_core::parse_sequence;

/// The knockd binary under test.
pub(crate) const KNOCKD: &str = env!("CARGO_BIN_EXE_knockd");

/// How long any single expected outcome may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// The server-side veth name (names are per namespace, so every pair can use the same ones).
pub(crate) const SRV_IF: &str = "kvs0";
/// The client-side veth name.
pub(crate) const CLI_IF: &str = "kvc0";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Polls `probe` every 20 ms until it returns `Some`, or `timeout` passes (then `None`).
pub(crate) fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The text of `path`, or "" if it does not exist (yet).
pub(crate) fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The non-empty lines of `path`.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    read(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has at least `n` non-empty lines; panics with `what` otherwise.
pub(crate) fn wait_lines(path: &Path, n: usize, what: &str) -> Vec<String> {
    wait_until(DEADLINE, || {
        let l = lines(path);
        (l.len() >= n).then_some(l)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: expected {n} line(s) in {}, got {:?}",
            path.display(),
            lines(path)
        )
    })
}

/// Waits until `path` contains `needle`; panics with the file's text otherwise.
pub(crate) fn wait_contains(path: &Path, needle: &str) {
    if wait_until(DEADLINE, || read(path).contains(needle).then_some(())).is_none() {
        panic!(
            "expected {needle:?} in {}; it holds:\n{}",
            path.display(),
            read(path)
        );
    }
}

/// How many times `needle` occurs in the text of `path`.
pub(crate) fn count(path: &Path, needle: &str) -> usize {
    read(path).matches(needle).count()
}

/// Runs `cmd`, panicking with its output if it fails.
pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// Sends `signal` (e.g. "TERM") to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Whether a process with this id exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// The peak resident set size (`VmHWM`) of `pid`, in KiB.
pub(crate) fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// The Python knock sender run in the client namespace. Each argument is
/// `SRC|DST|PORT|PROTO` (empty SRC: let the kernel choose), `sleep=SECONDS`, or `gap=SECONDS`
/// (the pause after each knock from then on; 20 ms by default). A TCP knock is
/// one SYN (non-blocking connect, then close: as the 0.8 `knock` client), a UDP knock one
/// datagram holding a NUL byte.
const KNOCK_PY: &str = r#"
import socket, sys, time
gap = 0.02
for spec in sys.argv[1:]:
    if spec.startswith('gap='):
        gap = float(spec[4:])
        continue
    if spec.startswith('sleep='):
        time.sleep(float(spec[6:]))
        continue
    src, dst, port, proto = spec.split('|')
    fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == 'udp' else socket.SOCK_STREAM
    s = socket.socket(fam, kind)
    if src:
        s.bind((src, 0))
    if proto == 'udp':
        s.sendto(b'\0', (dst, int(port)))
    else:
        s.setblocking(False)
        try:
            s.connect((dst, int(port)))
        except BlockingIOError:
            pass
    s.close()
    time.sleep(gap)
"#;

/// The Python interpreter for the knock scripts (Debian's, when installed).
pub(crate) fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// One knock of a scripted sequence: from `src` (None: the client's own address) to `dst`,
/// `port_spec` as in knockd.conf (`7000`, `7000:udp`).
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    src: Option<String>,
    dst: String,
    knock: Knock,
    pause: Option<f64>,
}

impl Hit {
    /// A knock from the client's default address; `port_spec` is one knockd.conf sequence
    /// item (`7000`, `8000:udp`).
    pub(crate) fn to(dst: &str, port_spec: &str) -> Self {
        let mut hits = Self::sequence(dst, port_spec);
        assert_eq!(hits.len(), 1, "{port_spec:?} is not a single knock");
        hits.remove(0)
    }

    /// The knocks of `seq` (knockd.conf sequence syntax) to `dst`, from the default address.
    pub(crate) fn sequence(dst: &str, seq: &str) -> Vec<Self> {
        parse_sequence(seq)
            .unwrap_or_else(|e| panic!("bad test sequence {seq:?}: {e}"))
            .into_iter()
            .map(|knock| Self {
                src: None,
                dst: dst.to_owned(),
                knock,
                pause: None,
            })
            .collect()
    }

    /// The same knock sent from `src`.
    pub(crate) fn from(mut self, src: &str) -> Self {
        self.src = Some(src.to_owned());
        self
    }

    /// A pause of `secs` seconds in the script.
    pub(crate) fn pause(secs: f64) -> Self {
        Self {
            src: None,
            dst: String::new(),
            knock: Knock::tcp(0),
            pause: Some(secs),
        }
    }

    fn arg(&self) -> String {
        match self.pause {
            Some(secs) => format!("sleep={secs}"),
            None => format!(
                "{}|{}|{}|{}",
                self.src.as_deref().unwrap_or(""),
                self.dst,
                self.knock.port,
                self.knock.protocol
            ),
        }
    }
}

/// Two namespaces joined by a veth pair, with a scratch directory for configs, logs and
/// marker files.
pub(crate) struct Net {
    /// The server namespace (knockd runs here).
    pub(crate) srv: String,
    /// The client namespace (knocks come from here).
    pub(crate) cli: String,
    /// "10.A.B": the IPv4 /24 of this pair.
    pub(crate) net4: String,
    /// The server's IPv4 address (`.2`).
    pub(crate) srv4: String,
    /// The client's IPv4 address (`.1`).
    pub(crate) cli4: String,
    /// The server's IPv6 address (`::2`).
    pub(crate) srv6: String,
    /// The client's IPv6 address (`::1`).
    pub(crate) cli6: String,
    /// Scratch directory, removed on drop.
    pub(crate) dir: tempfile::TempDir,
}

impl Net {
    /// Creates the namespaces, the veth pair and the addresses.
    pub(crate) fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let a = 100 + pid % 100;
        let b = n % 250 + 1;
        let net = Self {
            srv: format!("kne{pid}-{n}s"),
            cli: format!("kne{pid}-{n}c"),
            net4: format!("10.{a}.{b}"),
            srv4: format!("10.{a}.{b}.2"),
            cli4: format!("10.{a}.{b}.1"),
            srv6: format!("fd00:{a}:{b}::2"),
            cli6: format!("fd00:{a}:{b}::1"),
            dir: tempfile::Builder::new()
                .prefix("knockd-e2e")
                .tempdir()
                .expect("tempdir"),
        };
        ip(&["netns", "add", &net.srv]);
        // From here on Drop cleans up, even if a later step panics.
        ip(&["netns", "add", &net.cli]);
        for ns in [&net.srv, &net.cli] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net.add_veth();
        net
    }

    /// (Re-)creates the veth pair with its addresses and brings it up.
    pub(crate) fn add_veth(&self) {
        ip(&[
            "-n", &self.srv, "link", "add", SRV_IF, "type", "veth", "peer", "name", CLI_IF,
            "netns", &self.cli,
        ]);
        for (ns, ifname, v4, v6) in [
            (&self.srv, SRV_IF, &self.srv4, &self.srv6),
            (&self.cli, CLI_IF, &self.cli4, &self.cli6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
    }

    /// Writes `/etc/netns/<server namespace>/NAME`, which `ip netns exec` mounts over
    /// `/etc/NAME` for programs started in the server namespace (removed on drop).
    pub(crate) fn netns_etc_file(&self, name: &str, text: &str) {
        let dir = PathBuf::from(format!("/etc/netns/{}", self.srv));
        fs::create_dir_all(&dir).expect("create /etc/netns dir");
        fs::write(dir.join(name), text).expect("write /etc/netns file");
    }

    /// Deletes the veth pair (both ends).
    pub(crate) fn del_veth(&self) {
        ip(&["-n", &self.srv, "link", "del", SRV_IF]);
    }

    /// Runs `ip ARGS` inside namespace `ns`.
    pub(crate) fn ip_in(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A path in the scratch directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The scratch directory as text (for configs).
    pub(crate) fn dir_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Writes `text` to `name` in the scratch directory and returns the path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, text).expect("write file");
        p
    }

    /// A command that runs `program` inside namespace `ns`.
    pub(crate) fn cmd_in(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Sends the knocks `seq` (knockd.conf syntax, e.g. "7000,8000:udp,9000") from the
    /// client to `dst`, in order.
    pub(crate) fn knock(&self, dst: &str, seq: &str) {
        self.send(&Hit::sequence(dst, seq));
    }

    /// Sends the knocks `seq` to `dst` back to back, with no pause between them.
    pub(crate) fn knock_fast(&self, dst: &str, seq: &str) {
        self.send_with(&["gap=0"], &Hit::sequence(dst, seq));
    }

    /// Sends scripted knocks from the client namespace, in order.
    pub(crate) fn send(&self, hits: &[Hit]) {
        self.send_with(&[], hits);
    }

    fn send_with(&self, options: &[&str], hits: &[Hit]) {
        let mut c = self.cmd_in(&self.cli, python());
        c.arg("-c").arg(KNOCK_PY).args(options);
        c.args(hits.iter().map(Hit::arg));
        run(&mut c);
    }

    /// Knocks `seq` on `dst` again and again, giving each attempt 700 ms to make `done` true,
    /// for at most `timeout`; whether `done` became true. For knocks that may be lost while
    /// knockd (re)opens its capture.
    pub(crate) fn knock_until(
        &self,
        dst: &str,
        seq: &str,
        timeout: Duration,
        mut done: impl FnMut() -> bool,
    ) -> bool {
        wait_until(timeout, || {
            self.knock(dst, seq);
            wait_until(Duration::from_millis(700), || done().then_some(()))
        })
        .is_some()
    }

    /// One crafted TCP packet from the client with hping3 `flag` (e.g. "-A", "-R", "-S").
    pub(crate) fn hping(&self, dst: &str, flag: &str, port: u16) {
        let mut c = self.cmd_in(&self.cli, "hping3");
        c.args(["-q", flag, "-p", &port.to_string(), "-c", "1", dst]);
        // hping3 exits 1 when no reply came back; only a failure to start matters.
        let out = c.output().expect("run hping3");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("can't"),
            "hping3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The standard knockd command line for this pair: `-i SRV_IF -c <dir>/knockd.conf
    /// -g <dir>/log --state-file <dir>/state -v`, plus `extra`.
    pub(crate) fn knockd_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-i".into(),
            SRV_IF.into(),
            "-c".into(),
            self.path("knockd.conf").display().to_string(),
            "-g".into(),
            self.path("log").display().to_string(),
            "--state-file".into(),
            self.path("state").display().to_string(),
            "-v".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Writes `config` to `<dir>/knockd.conf`, starts knockd in the server namespace with the
    /// standard arguments plus `extra`, and waits until it listens.
    pub(crate) fn start_knockd(&self, config: &str, extra: &[&str]) -> Daemon {
        self.write("knockd.conf", config);
        let log = self.path("log");
        let earlier = count(&log, "listening on");
        let d = self.spawn_knockd(&self.knockd_args(extra));
        d.wait_listening(&log, earlier);
        d
    }

    /// [`start_knockd`](Self::start_knockd) without extra arguments, with knockd run by
    /// `wrapper` (a program and its arguments, such as `strace -o FILE`, that runs the rest of
    /// its command line).
    pub(crate) fn start_knockd_under(&self, config: &str, wrapper: &[&str]) -> Daemon {
        self.write("knockd.conf", config);
        let log = self.path("log");
        let earlier = count(&log, "listening on");
        let (program, wrapper_args) = wrapper.split_first().expect("a wrapper program");
        let mut c = self.cmd_in(&self.srv, program);
        c.args(wrapper_args).arg(KNOCKD).args(self.knockd_args(&[]));
        let d = Daemon::spawn(c);
        d.wait_listening(&log, earlier);
        d
    }

    /// Starts knockd in the server namespace with exactly `args` (does not wait).
    pub(crate) fn spawn_knockd(&self, args: &[String]) -> Daemon {
        let mut c = self.cmd_in(&self.srv, KNOCKD);
        c.args(args);
        Daemon::spawn(c)
    }

    /// Kills every process left in the namespaces (they were all started by this test).
    fn kill_all(&self) {
        for ns in [&self.srv, &self.cli] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<u32>() {
                        signal(pid, "KILL");
                    }
                }
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.kill_all();
        // Files given to `ip netns exec` for this namespace (see `netns_etc_file`).
        let _ = fs::remove_dir_all(format!("/etc/netns/{}", self.srv));
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A further client namespace, joined to the server namespace by its own veth pair
/// (`kvs<index>` on the server's side; knockd must be told to listen on it with `-i`), with
/// its own /24. Its processes are killed and the namespace deleted on drop (declare it after
/// its [`Net`], so that it is dropped first).
pub(crate) struct ExtraClient {
    /// The namespace.
    pub(crate) ns: String,
    /// The server-side interface (`kvs<index>`).
    pub(crate) srv_if: String,
    /// The server's IPv4 address on this pair.
    pub(crate) srv4: String,
    /// This client's IPv4 address.
    pub(crate) cli4: String,
}

impl Net {
    /// Creates client namespace number `index` (1 to 5) next to the first one: see
    /// [`ExtraClient`].
    pub(crate) fn add_client(&self, index: u8) -> ExtraClient {
        assert!((1..=5).contains(&index), "client index {index}");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let a = self.net4.split('.').nth(1).expect("10.A.B");
        // The first pair's /24 is 10.A.(1..=250): 251..=255 are free in these namespaces.
        let net4 = format!("10.{a}.{}", 250 + u32::from(index));
        let client = ExtraClient {
            ns: format!("kne{}-{n}x", std::process::id()),
            srv_if: format!("kvs{index}"),
            srv4: format!("{net4}.2"),
            cli4: format!("{net4}.1"),
        };
        ip(&["netns", "add", &client.ns]);
        ip(&["-n", &client.ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &self.srv,
            "link",
            "add",
            &client.srv_if,
            "type",
            "veth",
            "peer",
            "name",
            CLI_IF,
            "netns",
            &client.ns,
        ]);
        for (ns, ifname, v4) in [
            (&self.srv, client.srv_if.as_str(), &client.srv4),
            (&client.ns, CLI_IF, &client.cli4),
        ] {
            // No IPv6 link-local address (none is needed): its duplicate address detection
            // would end a second or two later, a change of the server's addresses while the
            // test knocks.
            ip(&["-n", ns, "link", "set", ifname, "addrgenmode", "none"]);
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
        client
    }
}

impl Drop for ExtraClient {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<u32>() {
                    signal(pid, "KILL");
                }
            }
        }
        // Deleting the namespace deletes its end of the veth pair, hence the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// A process whose stdout and stderr are collected in the background.
pub(crate) struct Daemon {
    child: Child,
    /// Its process id (`ip netns exec` execs, so this is the program itself).
    pub(crate) pid: u32,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn collect(mut from: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let reader = thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let mut b = sink.lock().unwrap();
            // Keep memory bounded if a command floods knockd's stdout: the tail is enough.
            if b.len() > 8 << 20 {
                b.drain(..4 << 20);
            }
            b.extend_from_slice(&chunk[..n]);
        }
    });
    (buf, reader)
}

impl Daemon {
    /// Spawns `cmd` with piped stdout/stderr.
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let pid = child.id();
        let (stdout, out_reader) = collect(child.stdout.take().unwrap());
        let (stderr, err_reader) = collect(child.stderr.take().unwrap());
        Self {
            child,
            pid,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    /// Everything it printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Everything it printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until it reports that it listens: verbose `listening on` on stdout, or a
    /// `starting up, listening on` line in `log` beyond the `earlier` ones (from processes
    /// before this one).
    pub(crate) fn wait_listening(&self, log: &Path, earlier: usize) {
        let ok = wait_until(DEADLINE, || {
            (self.stdout().contains("listening on") || count(log, "listening on") > earlier)
                .then_some(())
        });
        if ok.is_none() {
            panic!(
                "knockd did not start listening.\nstdout:\n{}\nstderr:\n{}\nlog:\n{}",
                self.stdout(),
                self.stderr(),
                read(log)
            );
        }
    }

    /// Whether it is still running.
    pub(crate) fn alive(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            _ => true,
        }
    }

    /// Sends `sig` (e.g. "TERM", "HUP").
    pub(crate) fn signal(&self, sig: &str) {
        signal(self.pid, sig);
    }

    /// Waits (bounded) for it to exit and returns its status.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_until(DEADLINE, || (!self.alive()).then_some(()));
        match (status, self.status) {
            (Some(()), Some(s)) => s,
            _ => panic!(
                "process {} did not exit.\nstdout:\n{}\nstderr:\n{}",
                self.pid,
                self.stdout(),
                self.stderr()
            ),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs knockd (outside any namespace) with `args`, bounded by `DEADLINE`; returns
/// (status, stdout, stderr). A knockd that keeps running is killed and the test fails.
pub(crate) fn knockd_once(args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(KNOCKD);
    cmd.args(args);
    let mut d = Daemon::spawn(cmd);
    let status = d.wait_exit();
    // The process is gone, so its pipes reach end of file: collect everything.
    for reader in d.readers.drain(..) {
        let _ = reader.join();
    }
    (status, d.stdout(), d.stderr())
}

/// Asserts that every line of a knockd log file is `[YYYY-MM-DD HH:MM] message`, with no
/// blank lines (0.8 wrote stray ones).
pub(crate) fn assert_log_shape(log: &str) {
    for line in log.lines() {
        let b = line.as_bytes();
        let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
        let ok = b.len() > 19
            && b[0] == b'['
            && digits(1..5)
            && b[5] == b'-'
            && digits(6..8)
            && b[8] == b'-'
            && digits(9..11)
            && b[11] == b' '
            && digits(12..14)
            && b[14] == b':'
            && digits(15..17)
            && b[17] == b']'
            && b[18] == b' '
            && !line[19..].trim().is_empty();
        assert!(
            ok,
            "log line not in 0.8's shape: {line:?}\nwhole log:\n{log}"
        );
    }
}

/// The events of the JSON-lines file `path`; panics unless every line is a JSON object with
/// `source`, `door`, `time` and `event`.
pub(crate) fn json_events(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("JSON log line {line:?} is not JSON: {e}"));
            for key in ["source", "door", "time", "event"] {
                assert!(v.get(key).is_some(), "JSON event without {key:?}: {line}");
            }
            v
        })
        .collect()
}

/// Whether the JSON event `v` is from `source` about `door` and its `event` contains `kind`
/// (case-insensitive; `kind` in lower case).
pub(crate) fn is_json_event(v: &serde_json::Value, source: &str, door: &str, kind: &str) -> bool {
    v["source"] == source
        && v["door"] == door
        && v["event"]
            .as_str()
            .is_some_and(|e| e.to_ascii_lowercase().contains(kind))
}

/// Waits until the JSON-lines file `path` holds an event from `source` about `door` whose
/// `event` contains `kind` (case-insensitive); panics with the file otherwise. Every line
/// must be a JSON object with `source`, `door`, `time` and `event`.
pub(crate) fn wait_json_event(path: &Path, source: &str, door: &str, kind: &str) {
    let found = wait_until(DEADLINE, || {
        json_events(path)
            .iter()
            .any(|v| is_json_event(v, source, door, kind))
            .then_some(())
    });
    assert!(
        found.is_some(),
        "no {kind:?} event from {source} for door {door:?} in {}:\n{}",
        path.display(),
        read(path)
    );
}
