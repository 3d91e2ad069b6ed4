//! Time-based (TOTP) doors served by knockd, knocked with `oathtool` and knockd 0.8's stock
//! `knock` client (no client of ours), and with our `knock --door`; and `AllowDuplicates`
//! with knock 0.8.
//!
//! knockd runs on the real clock here, so the codes are computed for the real time: with a
//! one-hour `TOTP_Step`, "the previous step" is `now − 3600 s` and a test only waits (at
//! most 30 s) when it starts in the last seconds of a step. Negative outcomes are bounded by
//! a knock on a fixed `sync` door whose marker proves knockd handled what came before.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fixture::{
    DEADLINE, Net, SRV_IF, count, lines, run, wait_contains, wait_lines, wait_until,
};

const KNOCK_0_8: &str = "/usr/bin/knock";
const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const STEP: u64 = 3600;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits (at most 30 s) out the end of the current step, so that a test never straddles a
/// step boundary.
fn away_from_a_boundary() {
    let left = STEP - unix_now() % STEP;
    if left < 30 {
        std::thread::sleep(std::time::Duration::from_secs(left + 1));
    }
}

/// `oathtool`'s 6-digit code for Unix time `unix`, with the door's step.
fn oathtool(unix: u64) -> String {
    let out = run(Command::new("oathtool").args([
        "--totp",
        "-b",
        "-s",
        &format!("{STEP}s"),
        "-N",
        &format!("@{unix}"),
        SECRET,
    ]));
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 6, "oathtool: {code:?}");
    code
}

/// The ports of `code` on bases 40000 and 50000 (three digits each, leading zeros kept).
fn ports(code: &str) -> [String; 2] {
    let group = |g: &str| g.parse::<u16>().unwrap();
    [
        (40000 + group(&code[..3])).to_string(),
        (50000 + group(&code[3..])).to_string(),
    ]
}

fn config(dir: &str) -> String {
    format!(
        "[t]\n\
         sequence = 40000,50000\n\
         totp_secret = {SECRET}\n\
         totp_step = {STEP}\n\
         command = echo t %IP% >> {dir}/opened\n\
         [sync]\n\
         sequence = 7500\n\
         command = echo sync >> {dir}/sync\n"
    )
}

/// Knocks `code` with knock 0.8 from the client namespace.
fn knock_0_8(net: &Net, code: &str) {
    let [a, b] = ports(code);
    run(net.cmd_in(&net.cli, KNOCK_0_8).args([&net.srv4, &a, &b]));
}

/// Knocks the `sync` door and waits until it opened `n` times in all: everything sent
/// before was handled.
fn sync(net: &Net, n: usize) {
    run(net.cmd_in(&net.cli, KNOCK_0_8).args([&net.srv4, "7500"]));
    wait_lines(&net.path("sync"), n, "sync door");
}

#[test]
#[ignore = "needs root"]
fn oathtool_and_knock_0_8_open_a_totp_door_once_per_code() {
    away_from_a_boundary();
    let net = Net::new();
    let dir = net.dir_str();
    let _d = net.start_knockd(
        &config(&dir),
        &["--json-log", &format!("{dir}/events.json")],
    );
    let opened = net.path("opened");
    let log = net.path("log");
    let now = unix_now();

    // The current code opens.
    knock_0_8(&net, &oathtool(now));
    wait_lines(&opened, 1, "current code");
    // The same code again opens nothing, and says so.
    knock_0_8(&net, &oathtool(now));
    wait_contains(&log, &format!("{}: t: code already used", net.cli4));
    // Spent for every source: from the client's IPv6 address too.
    let [a, b] = ports(&oathtool(now));
    run(net
        .cmd_in(&net.cli, KNOCK_0_8)
        .args(["-6", &net.srv6, &a, &b]));
    wait_contains(&log, &format!("{}: t: code already used", net.cli6));
    // The previous step's code opens (TOTP_Window 1).
    knock_0_8(&net, &oathtool(now - STEP));
    wait_lines(&opened, 2, "previous step's code");
    // Two steps back does not.
    knock_0_8(&net, &oathtool(now - 2 * STEP));
    sync(&net, 1);
    assert_eq!(
        lines(&opened).len(),
        2,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(count(&log, "code already used"), 2);
    // The JSON event names the spent code's step.
    let events = std::fs::read_to_string(net.path("events.json")).unwrap();
    let step = now / STEP;
    assert!(
        events.contains("\"code_used\"") && events.contains(&format!("\"code_step\":{step}")),
        "{events}"
    );
    // The spent codes are in the state file, the secret is not.
    let state = std::fs::read_to_string(net.path("state")).unwrap();
    assert!(
        state.contains(&format!("{{\"door\":\"t\",\"step\":{step}}}")),
        "{state}"
    );
    assert!(!state.contains(SECRET) && !std::fs::read_to_string(&log).unwrap().contains(SECRET));
}

#[test]
#[ignore = "needs root"]
fn spent_codes_survive_a_restart() {
    away_from_a_boundary();
    let net = Net::new();
    let dir = net.dir_str();
    let opened = net.path("opened");
    let log = net.path("log");
    let code = oathtool(unix_now());
    {
        let mut d = net.start_knockd(&config(&dir), &[]);
        knock_0_8(&net, &code);
        wait_lines(&opened, 1, "before the restart");
        d.signal("TERM");
        d.wait_exit();
    }
    let _d = net.start_knockd(&config(&dir), &[]);
    knock_0_8(&net, &code);
    wait_contains(&log, &format!("{}: t: code already used", net.cli4));
    sync(&net, 1);
    assert_eq!(lines(&opened).len(), 1);
}

/// Our client, built next to knockd (built here if this package's tests were run alone).
fn our_knock() -> String {
    let dir = std::path::Path::new(crate::fixture::KNOCKD)
        .parent()
        .unwrap();
    let knock = dir.join("knock");
    if !knock.exists() {
        run(Command::new(env!("CARGO")).args(["build", "-p", "knock-client", "--bin", "knock"]));
    }
    assert!(knock.exists(), "{} not built", knock.display());
    knock.display().to_string()
}

#[test]
#[ignore = "needs root"]
fn our_knock_door_opens_a_totp_door() {
    away_from_a_boundary();
    let knock = our_knock();
    let net = Net::new();
    let dir = net.dir_str();
    let conf = net.write("client.conf", &config(&dir));
    let _d = net.start_knockd(&config(&dir), &[]);
    run(net.cmd_in(&net.cli, &knock).args([
        "--door",
        "t",
        "-c",
        conf.to_str().unwrap(),
        &net.srv4,
    ]));
    assert_eq!(
        wait_lines(&net.path("opened"), 1, "knock --door"),
        [format!("t {}", net.cli4)]
    );
}

#[test]
#[ignore = "needs root"]
fn allow_duplicates_tolerates_a_repeated_step_from_knock_0_8() {
    let net = Net::new();
    let dir = net.dir_str();
    let _d = net.start_knockd(
        &format!(
            "[dup]\nsequence = 7000,8000,9000\nallowduplicates\n\
             command = echo dup %IP% >> {dir}/opened\n\
             [strict]\nsequence = 7100,8100,9100\n\
             command = echo strict %IP% >> {dir}/opened\n\
             [sync]\nsequence = 7500\ncommand = echo sync >> {dir}/sync\n"
        ),
        &[],
    );
    let opened = net.path("opened");
    run(net
        .cmd_in(&net.cli, KNOCK_0_8)
        .args([&net.srv4, "7000", "7000", "8000", "9000"]));
    wait_lines(&opened, 1, "AllowDuplicates door");
    run(net
        .cmd_in(&net.cli, KNOCK_0_8)
        .args([&net.srv4, "7100", "7100", "8100", "9100"]));
    sync(&net, 1);
    assert_eq!(lines(&opened), [format!("dup {}", net.cli4)]);
}

/// The `code_refused` JSON events of `path`.
fn refused_events(path: &std::path::Path) -> Vec<serde_json::Value> {
    crate::fixture::json_events(path)
        .into_iter()
        .filter(|v| v["event"] == "code_refused")
        .collect()
}

#[test]
#[ignore = "needs root"]
fn stale_future_and_wrong_codes_are_logged_as_such() {
    away_from_a_boundary();
    let knock = our_knock();
    let net = Net::new();
    let dir = net.dir_str();
    let conf = net.write("client.conf", &config(&dir));
    let events = net.path("events.json");
    let _d = net.start_knockd(&config(&dir), &["--json-log", events.to_str().unwrap()]);
    let log = net.path("log");
    let now = unix_now();
    let step = now / STEP;

    // Three steps back (window 1), with oathtool and knock 0.8: stale.
    knock_0_8(&net, &oathtool(now - 3 * STEP));
    wait_contains(&log, &format!("{}: t: stale code (3 steps old)", net.cli4));
    // Two steps ahead, with our client's --totp-time: future.
    run(net.cmd_in(&net.cli, &knock).args([
        "--door",
        "t",
        "-c",
        conf.to_str().unwrap(),
        "--totp-time",
        &(now + 2 * STEP).to_string(),
        &net.srv4,
    ]));
    wait_contains(
        &log,
        &format!("{}: t: future code (2 steps ahead)", net.cli4),
    );
    // A code no step within 11 of now has (oathtool -w lists steps T−11 … T+11): wrong.
    let out = run(Command::new("oathtool").args([
        "--totp",
        "-b",
        "-s",
        &format!("{STEP}s"),
        "-N",
        &format!("@{}", now - 11 * STEP),
        "-w",
        "22",
        SECRET,
    ]));
    let nearby = String::from_utf8(out.stdout).unwrap();
    assert_eq!(nearby.lines().count(), 23, "{nearby}");
    let wrong = (0..1_000_000)
        .map(|v| format!("{v:06}"))
        .find(|c| !nearby.lines().any(|l| l.trim() == c))
        .unwrap();
    knock_0_8(&net, &wrong);
    wait_contains(&log, &format!("{}: t: wrong code", net.cli4));
    sync(&net, 1);

    // Nothing opened; each knock logged once, as what it was.
    assert!(
        !net.path("opened").exists(),
        "{}",
        crate::fixture::read(&log)
    );
    let text = crate::fixture::read(&log);
    for line in ["stale code", "future code", "wrong code"] {
        assert_eq!(count(&log, line), 1, "{line}: {text}");
    }
    assert_eq!(count(&log, "code already used"), 0, "{text}");
    // The JSON events say which, with the offset where known.
    let refused = refused_events(&events);
    let summary: Vec<(String, Option<i64>, Option<u64>)> = refused
        .iter()
        .map(|v| {
            assert_eq!(v["source"], net.cli4.as_str());
            assert_eq!(v["door"], "t");
            (
                v["reason"].as_str().unwrap().to_owned(),
                v["offset"].as_i64(),
                v["code_step"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("stale".to_owned(), Some(-3), Some(step - 3)),
            ("future".to_owned(), Some(2), Some(step + 2)),
            ("wrong".to_owned(), None, None),
        ]
    );
    // The code that would open is written nowhere.
    let current = oathtool(now);
    let json = crate::fixture::read(&events);
    assert!(
        !text.contains(&current) && !json.contains(&current),
        "{text}\n{json}"
    );
}

#[test]
#[ignore = "needs root"]
fn two_sources_racing_the_same_code_open_once() {
    away_from_a_boundary();
    let net = Net::new();
    let other = net.add_client(1);
    let dir = net.dir_str();
    let _d = net.start_knockd(&config(&dir), &["-i", &other.srv_if]);
    let opened = net.path("opened");
    let log = net.path("log");
    // Both interfaces captured (the second may come up after the startup line).
    let listening = format!("listening on {SRV_IF}, {}", other.srv_if);
    let later = format!("listening on {}", other.srv_if);
    assert!(
        wait_until(DEADLINE, || {
            let text = crate::fixture::read(&log);
            (text.contains(&listening) || text.contains(&later)).then_some(())
        })
        .is_some(),
        "{}",
        crate::fixture::read(&log)
    );
    let [a, b] = ports(&oathtool(unix_now()));

    // Both namespaces knock the same code at the same time.
    let mut racers: Vec<std::process::Child> = [(&net.cli, &net.srv4), (&other.ns, &other.srv4)]
        .into_iter()
        .map(|(ns, srv)| {
            net.cmd_in(ns, KNOCK_0_8)
                .args([srv.as_str(), &a, &b])
                .spawn()
                .expect("spawn knock 0.8")
        })
        .collect();
    for racer in &mut racers {
        assert!(racer.wait().unwrap().success());
    }
    let winner = wait_lines(&opened, 1, "one of the racers");
    wait_contains(&log, "t: code already used");
    sync(&net, 1);

    // Exactly one opened, and the other was told the code was used.
    assert_eq!(lines(&opened).len(), 1, "{}", crate::fixture::read(&log));
    let loser = if winner[0] == format!("t {}", net.cli4) {
        &other.cli4
    } else {
        assert_eq!(winner[0], format!("t {}", other.cli4));
        &net.cli4
    };
    assert_eq!(count(&log, "code already used"), 1);
    wait_contains(&log, &format!("{loser}: t: code already used"));
}
