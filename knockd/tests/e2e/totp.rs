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

use crate::fixture::{Net, count, lines, run, wait_contains, wait_lines};

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
