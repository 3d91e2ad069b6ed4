//! SPA doors (issue 13): Debian's fwknop client 2.6 and our `knock --door` open a door of
//! our knockd; replays, wrong keys, stale packets and ports outside `SPA_Access` do not.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{Net, count, lines, read, run, wait_contains, wait_lines, wait_until};

const FWKNOP: &str = "/usr/bin/fwknop";
const KEY: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";
const HMAC: &str =
    "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";
const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_HMAC: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

/// An SPA door whose commands append `open`/`close` lines to `<dir>/opened`; the key files
/// are written owner-only.
fn config(net: &Net) -> String {
    let dir = net.dir_str();
    let key = net.write("spa.key", &format!("{KEY}\n"));
    let hmac = net.write("spa.hmac", &format!("{HMAC}\n"));
    for file in [&key, &hmac] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    format!(
        "[spa]\n\
         spa_key_file = {}\n\
         spa_hmac_key_file = {}\n\
         spa_access = tcp/22,udp/1194\n\
         cmd_timeout = 60\n\
         start_command = echo open %IP% %PROTO% %PORT% >> {dir}/opened\n\
         stop_command = echo close %IP% %PROTO% %PORT% >> {dir}/opened\n",
        key.display(),
        hmac.display()
    )
}

/// Runs Debian's fwknop client in the client namespace (no rc file, nothing saved in a
/// home directory), saving the packet's data in `<dir>/<save>`.
fn fwknop(net: &Net, args: &[&str], save: &str) -> PathBuf {
    let rc = net.write("fwknoprc", "");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let saved = net.path(save);
    run(net.cmd_in(&net.cli, FWKNOP).args(args).args([
        "--use-hmac",
        "--rc-file",
        rc.to_str().unwrap(),
        "--no-save-args",
        "-B",
        saved.to_str().unwrap(),
    ]));
    saved
}

fn keys<'a>(key: &'a str, hmac: &'a str) -> [&'a str; 4] {
    ["--key-base64-rijndael", key, "--key-base64-hmac", hmac]
}

/// Sends the text in `file` as one UDP datagram from the client namespace to `dst` 62201.
fn resend(net: &Net, file: &Path, dst: &str) {
    let script = "import socket,sys\n\
                  data=open(sys.argv[1]).read().strip().encode()\n\
                  fam=socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET\n\
                  s=socket.socket(fam,socket.SOCK_DGRAM)\n\
                  s.sendto(data,(sys.argv[2],62201))\n";
    run(net.cmd_in(&net.cli, crate::fixture::python()).args([
        "-c",
        script,
        file.to_str().unwrap(),
        dst,
    ]));
}

#[test]
#[ignore = "needs root"]
fn fwknop_opens_the_door_once_per_port_and_its_replay_is_refused() {
    let net = Net::new();
    let daemon = net.start_knockd(&config(&net), &[]);
    let opened = net.path("opened");
    let log = net.path("log");
    let mut args = vec!["-A", "tcp/22,udp/1194", "-a", "10.250.0.7", "-D", &net.srv4];
    args.extend(keys(KEY, HMAC));
    let saved = fwknop(&net, &args, "packet");
    let got = wait_lines(&opened, 2, "fwknop -A tcp/22,udp/1194");
    assert_eq!(got, ["open 10.250.0.7 tcp 22", "open 10.250.0.7 udp 1194"]);
    wait_contains(&log, "10.250.0.7: spa: OPEN SESAME");
    wait_contains(
        &log,
        &format!(
            "{}: spa: SPA packet verified: tcp/22,udp/1194 for 10.250.0.7",
            net.cli4
        ),
    );

    // The same packet again (captured with -B, re-sent): refused, logged, nothing runs.
    resend(&net, &saved, &net.srv4);
    wait_contains(&log, "spa: SPA packet refused (replay)");
    // ... also after a restart (the replay cache is in the state file).
    let mut daemon = daemon;
    daemon.signal("TERM");
    daemon.wait_exit();
    let daemon = net.start_knockd(&config(&net), &[]);
    resend(&net, &saved, &net.srv4);
    wait_until(crate::fixture::DEADLINE, || {
        (count(&log, "(replay)") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no second replay refusal:\n{}", read(&log)));
    let opens: Vec<String> = lines(&opened)
        .into_iter()
        .filter(|l| l.starts_with("open"))
        .collect();
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert!(read(&net.path("state")).contains("spa_replay_cache"));
    drop(daemon);
}

#[test]
#[ignore = "needs root"]
fn bad_packets_open_nothing_and_the_log_or_statistics_say_why() {
    let net = Net::new();
    let daemon = net.start_knockd(&config(&net), &[]);
    let log = net.path("log");
    let srv = net.srv4.clone();
    let base = |access: &'static str| vec!["-A", access, "-a", "10.250.0.8", "-D", srv.as_str()];

    // Right HMAC key, wrong encryption key: authentic, but it does not decrypt.
    let mut args = base("tcp/22");
    args.extend(keys(OTHER_KEY, HMAC));
    fwknop(&net, &args, "p1");
    wait_contains(&log, "SPA packet refused (decryption_failed)");

    // Ten minutes old.
    let mut args = base("tcp/22");
    args.extend(keys(KEY, HMAC));
    args.extend(["--time-offset-minus", "10min"]);
    fwknop(&net, &args, "p2");
    wait_contains(&log, "SPA packet refused (too_old)");

    // A port outside SPA_Access.
    let mut args = base("tcp/23");
    args.extend(keys(KEY, HMAC));
    fwknop(&net, &args, "p3");
    wait_contains(
        &log,
        "SPA packet refused (not_allowed): tcp/23 is not allowed",
    );

    // Wrong HMAC key: not logged per packet, counted in the statistics line.
    let mut args = base("tcp/22");
    args.extend(keys(KEY, OTHER_HMAC));
    fwknop(&net, &args, "p4");
    let before = count(&log, "statistics:");
    let found = wait_until(crate::fixture::DEADLINE, || {
        daemon.signal("USR1");
        std::thread::sleep(std::time::Duration::from_millis(100));
        read(&log)
            .contains("1 unauthenticated SPA packets dropped")
            .then_some(())
    });
    assert!(found.is_some(), "{}", read(&log));
    assert!(count(&log, "statistics:") > before);
    assert!(!read(&log).contains("bad_hmac"), "{}", read(&log));
    assert!(lines(&net.path("opened")).is_empty());
    assert!(!read(&log).contains("OPEN SESAME"), "{}", read(&log));
}

#[test]
#[ignore = "needs root"]
fn an_ipv6_client_opens_the_door_on_an_ipv6_server() {
    // fwknop 2.6's client sends over IPv4 only ("Address family for hostname not
    // supported"): it builds the packet (`-T -B`, `-s`: allow the source), and the data goes
    // over IPv6 in one datagram, as a patched client would send it.
    let net = Net::new();
    let _daemon = net.start_knockd(&config(&net), &[]);
    let mut args = vec!["-A", "tcp/22", "-s", "-T", "-D", &net.srv4];
    args.extend(keys(KEY, HMAC));
    let saved = fwknop(&net, &args, "packet6");
    resend(&net, &saved, &net.srv6);
    let got = wait_lines(&net.path("opened"), 1, "fwknop over IPv6");
    assert_eq!(got, [format!("open {} tcp 22", net.cli6)]);
}

/// Our client, built if needed (knock-server does not depend on knock-client).
fn knock_binary() -> PathBuf {
    let knockd = Path::new(env!("CARGO_BIN_EXE_knockd"));
    let knock = knockd.with_file_name("knock");
    if !knock.exists() {
        run(Command::new(env!("CARGO")).args(["build", "-p", "knock-client", "--bin", "knock"]));
    }
    knock
}

#[test]
#[ignore = "needs root"]
fn our_knock_client_opens_the_door() {
    let net = Net::new();
    let _daemon = net.start_knockd(&config(&net), &[]);
    let conf = net.path("knockd.conf");
    run(net
        .cmd_in(&net.cli, knock_binary().to_str().unwrap())
        .args([
            "--door",
            "spa",
            "-c",
            conf.to_str().unwrap(),
            "--access",
            "udp/1194",
            &net.srv4,
        ]));
    let got = wait_lines(&net.path("opened"), 1, "knock --door spa");
    assert_eq!(got, [format!("open {} udp 1194", net.cli4)]);
}

#[test]
#[ignore = "needs root"]
fn a_udp_flood_to_the_spa_port_neither_kills_nor_bloats_knockd_nor_fills_the_log() {
    use std::process::Stdio;
    use std::time::Duration;
    const PACKETS: &str = "200000";
    const MAX_GROWTH_KIB: u64 = 16 * 1024;
    let net = Net::new();
    let config = config(&net);
    net.write("knockd.conf", &config);
    let mut args = net.knockd_args(&[]);
    args.retain(|a| a != "-v");
    let daemon = net.spawn_knockd(&args);
    let log = net.path("log");
    daemon.wait_listening(&log, 0);
    let baseline_kib = crate::fixture::vm_hwm_kib(daemon.pid);
    let started = std::time::Instant::now();
    // 200-byte UDP datagrams from random sources to the SPA port, as fast as hping3 goes.
    let mut flood = net
        .cmd_in(&net.cli, "hping3")
        .args(["-q", "--rand-source", "-2", "-d", "200", "-p", "62201"])
        .args(["-c", PACKETS, "-i", "u10"])
        .arg(&net.srv4)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hping3");
    // A legitimate SPA packet while the flood runs.
    std::thread::sleep(Duration::from_millis(200));
    let mut spa = vec!["-A", "tcp/22", "-a", "10.250.0.9", "-D", &net.srv4];
    spa.extend(keys(KEY, HMAC));
    fwknop(&net, &spa, "legit");
    let during = flood.try_wait().ok().flatten().is_none();
    let status = wait_until(Duration::from_secs(120), || flood.try_wait().ok().flatten())
        .expect("hping3 flood did not finish");
    let elapsed = started.elapsed();
    assert!(status.code().is_some(), "hping3 was killed");
    let got = wait_lines(
        &net.path("opened"),
        1,
        "the SPA packet sent during the flood",
    );
    assert_eq!(got, ["open 10.250.0.9 tcp 22"]);
    assert!(
        during,
        "the flood was over before the legitimate packet was sent"
    );
    // Counted, not logged.
    let mut counted = 0u64;
    wait_until(crate::fixture::DEADLINE, || {
        daemon.signal("USR1");
        std::thread::sleep(Duration::from_millis(200));
        let text = read(&log);
        let line = text.lines().rev().find(|l| l.contains("statistics:"))?;
        let before = &line[..line.find(" unauthenticated SPA packets dropped")?];
        let n: u64 = before.rsplit(' ').next()?.parse().ok()?;
        counted = n;
        (n >= 10_000 && line.contains(", 1 SPA packets granted, ")).then_some(())
    })
    .unwrap_or_else(|| panic!("the flood was not counted:\n{}", read(&log)));
    let log_lines = lines(&log).len();
    assert!(log_lines < 50, "{log_lines} log lines after the flood");
    let hwm = crate::fixture::vm_hwm_kib(daemon.pid);
    eprintln!(
        "spa flood: {PACKETS} packets sent in {elapsed:?}, {counted} counted as unauthenticated, \
         {log_lines} log lines, knockd VmHWM {baseline_kib} KiB before, {hwm} KiB after; {}",
        read(&log)
            .lines()
            .rev()
            .find(|l| l.contains("statistics:"))
            .unwrap_or_default()
    );
    assert!(
        hwm.saturating_sub(baseline_kib) < MAX_GROWTH_KIB,
        "knockd's peak RSS grew by {} KiB",
        hwm.saturating_sub(baseline_kib)
    );
}
