//! Operations: systemd notifications over a fake `NOTIFY_SOCKET`, `--status` and
//! `--metrics-file` after a knock.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::fixture::{DEADLINE, Daemon, KNOCKD, Net, knockd_once, wait_lines, wait_until};

/// A door that stays open for 600 s (its stop command is pending until shutdown).
fn config(dir: &str) -> String {
    format!(
        "[openSSH]\n\
         sequence = 7000,8000\n\
         cmd_timeout = 600\n\
         start_command = echo open %IP% >> {dir}/opened\n\
         stop_command = echo close %IP% >> {dir}/closed\n"
    )
}

/// The next datagram on `socket` (the test fails after `DEADLINE`).
fn next_message(socket: &UnixDatagram, what: &str) -> String {
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification ({what}): {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn start_notified(net: &Net, socket_path: &std::path::Path, watchdog_usec: Option<&str>) -> Daemon {
    net.write("knockd.conf", &config(&net.dir_str()));
    let mut cmd = net.cmd_in(&net.srv, KNOCKD);
    cmd.args(net.knockd_args(&[]))
        .env("NOTIFY_SOCKET", socket_path)
        .env_remove("WATCHDOG_PID")
        .env_remove("WATCHDOG_USEC");
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec);
    }
    Daemon::spawn(cmd)
}

/// READY once listening, RELOADING (with MONOTONIC_USEC) then READY around a reload,
/// STOPPING at SIGTERM; no WATCHDOG without WATCHDOG_USEC.
#[test]
#[ignore = "needs root"]
fn systemd_notifications_ready_reload_stopping() {
    let net = Net::new();
    let socket_path = net.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut d = start_notified(&net, &socket_path, None);
    let ready = next_message(&socket, "READY");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // READY means the capture is up: a knock right away opens the door.
    net.knock(&net.srv4, "7000,8000");
    wait_lines(&net.path("opened"), 1, "open after READY");

    d.signal("HUP");
    let reloading = next_message(&socket, "RELOADING");
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    let ready = next_message(&socket, "READY after reload");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    d.signal("TERM");
    let stopping = next_message(&socket, "STOPPING");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert_eq!(d.wait_exit().code(), Some(15));
    // Nothing else (no keep-alives without a watchdog).
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    assert!(socket.recv(&mut buf).is_err(), "unexpected notification");
}

/// With WATCHDOG_USEC, WATCHDOG=1 keep-alives come from the event loop while it is idle.
#[test]
#[ignore = "needs root"]
fn systemd_watchdog_keep_alives() {
    let net = Net::new();
    let socket_path = net.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    // 400 ms: a keep-alive at least every 200 ms.
    let _d = start_notified(&net, &socket_path, Some("400000"));
    let ready = next_message(&socket, "READY");
    assert!(ready.contains("READY=1"), "{ready:?}");
    let mut pings = 0;
    let start = Instant::now();
    while pings < 3 && start.elapsed() < DEADLINE {
        let message = next_message(&socket, "WATCHDOG");
        if message.lines().any(|l| l == "WATCHDOG=1") {
            pings += 1;
        }
    }
    assert_eq!(pings, 3, "three keep-alives");
}

/// After a knock, the metrics file counts it and `--status` shows the open door.
#[test]
#[ignore = "needs root"]
fn status_and_metrics_after_a_knock() {
    let net = Net::new();
    let dir = net.dir_str();
    let metrics = net.path("knockd.prom");
    let metrics_arg = metrics.display().to_string();
    let _d = net.start_knockd(&config(&dir), &["--metrics-file", &metrics_arg]);
    net.knock(&net.srv4, "7000,8000");
    wait_lines(&net.path("opened"), 1, "open");

    // Parsed as the textfile collector does: `name{labels} value` samples.
    let samples = wait_until(DEADLINE + Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&metrics).ok()?;
        let samples: Vec<(String, f64)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').expect("sample line");
                (name.to_owned(), value.parse::<f64>().expect("number"))
            })
            .collect();
        let get = |n: &str| samples.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        (get("knockd_opens_total") == Some(1.0)).then_some(samples)
    })
    .expect("knockd_opens_total 1 in the metrics file");
    let get = |n: &str| samples.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    assert_eq!(get("knockd_knocks_total"), Some(2.0), "{samples:?}");
    assert_eq!(get("knockd_stops_pending"), Some(1.0), "{samples:?}");
    assert!(
        get("knockd_packets_seen_total").unwrap() >= 2.0,
        "{samples:?}"
    );
    assert_eq!(
        get(&format!(
            "knockd_interface_up{{interface=\"{}\"}}",
            crate::fixture::SRV_IF
        )),
        Some(1.0),
        "{samples:?}"
    );

    let state = net.path("state").display().to_string();
    let (status, out, err) = knockd_once(&["--status", "--state-file", &state]);
    assert!(status.success(), "{err}");
    assert!(out.contains(") running;"), "{out}");
    assert!(out.contains("doors: openSSH\n"), "{out}");
    assert!(
        out.contains(&format!("  openSSH: {}: closes in ", net.cli4)),
        "{out}"
    );
    assert!(out.contains("1 opens"), "{out}");
    assert!(
        out.contains(&format!("interface {}: up;", crate::fixture::SRV_IF)),
        "{out}"
    );
    let (status, out, err) = knockd_once(&["--status", "--json", "--state-file", &state]);
    assert!(status.success(), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["open"][0]["source"], net.cli4.as_str());
    assert_eq!(doc["counters"]["opens"], 1);
    assert!(doc["spent_codes"].as_array().unwrap().is_empty());
}

/// `--status` without a daemon says where it looked.
#[test]
fn status_without_a_daemon_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let (status, _out, err) = knockd_once(&["--status", "--state-file", &state]);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("status: No such file or directory"), "{err}");
}

/// Under systemd with no LogFile/UseSyslog (stderr is the stream JOURNAL_STREAM names), the
/// events reach stderr once each, with `<N>` priority prefixes, without `-v`.
#[test]
#[ignore = "needs root"]
fn journal_gets_events_with_priorities_once() {
    use std::os::unix::fs::MetadataExt as _;
    let net = Net::new();
    let dir = net.dir_str();
    net.write("knockd.conf", &config(&dir));
    let err_path = net.path("journal");
    let err = std::fs::File::create(&err_path).unwrap();
    let meta = err.metadata().unwrap();
    let mut cmd = net.cmd_in(&net.srv, KNOCKD);
    cmd.args([
        "-i",
        crate::fixture::SRV_IF,
        "-c",
        &net.path("knockd.conf").display().to_string(),
        "--state-file",
        &net.path("state").display().to_string(),
    ])
    .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(err);
    let mut child = cmd.spawn().unwrap();
    crate::fixture::wait_contains(&err_path, "<5>starting up, listening on");
    net.knock(&net.srv4, "7000,8000");
    wait_lines(&net.path("opened"), 1, "open");
    crate::fixture::signal(child.id(), "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(15));
    let text = crate::fixture::read(&err_path);
    let open = format!("<5>{}: openSSH: OPEN SESAME", net.cli4);
    assert_eq!(text.matches(&open).count(), 1, "{text}");
    assert_eq!(
        text.matches(&format!("<5>{}: openSSH: Stage 1", net.cli4))
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("<5>openSSH: running command: echo open"),
        "{text}"
    );
    assert!(text.ends_with("<5>shutting down\n"), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("<3>") || line.starts_with("<4>") || line.starts_with("<5>"),
            "a line without its priority: {line:?}\n{text}"
        );
    }
}

/// The start-up line names the interfaces captured; a missing one is a warning at once, in
/// the log file and on stderr (without `-v`); knocks on the other still work.
#[test]
#[ignore = "needs root"]
fn a_missing_interface_is_reported_at_once() {
    let net = Net::new();
    let dir = net.dir_str();
    net.write("knockd.conf", &config(&dir));
    let log = net.path("log");
    let mut cmd = net.cmd_in(&net.srv, KNOCKD);
    cmd.args([
        "-i",
        &format!("{},kmiss0", crate::fixture::SRV_IF),
        "-c",
        &net.path("knockd.conf").display().to_string(),
        "-g",
        &log.display().to_string(),
        "--state-file",
        &net.path("state").display().to_string(),
    ]);
    let d = Daemon::spawn(cmd);
    crate::fixture::wait_contains(&log, "starting up");
    net.knock(&net.srv4, "7000,8000");
    wait_lines(&net.path("opened"), 1, "open on the interface that exists");
    let text = crate::fixture::read(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(&format!(
            "] starting up, listening on {}; waiting for kmiss0",
            crate::fixture::SRV_IF
        )),
        "{text}"
    );
    assert!(
        lines[1].contains("] warning: interface kmiss0 is not available yet ("),
        "{text}"
    );
    assert_eq!(text.matches("kmiss0 is not available").count(), 1, "{text}");
    let err = d.stderr();
    assert!(
        err.contains("warning: interface kmiss0 is not available yet ("),
        "stderr: {err}"
    );
    assert!(d.stdout().is_empty(), "stdout without -v: {}", d.stdout());
}
