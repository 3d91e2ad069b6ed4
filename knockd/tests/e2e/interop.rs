//! Interoperability with knock/knockd 0.8 (Debian package `knockd`): the stock client opens
//! our server, and both servers, fed the same packets, run the same commands — except where
//! 0.8's bugs make it wrong.

use crate::fixture::{Daemon, Hit, Net, SRV_IF, lines, run, wait_contains, wait_lines};

const KNOCK_0_8: &str = "/usr/bin/knock";
const KNOCKD_0_8: &str = "/usr/sbin/knockd";

/// Starts knockd 0.8 in the server namespace with `config` and waits until it listens.
fn start_knockd_0_8(net: &Net, config: &str) -> Daemon {
    let conf08 = net.write("knockd-0.8.conf", config);
    let log08 = net.path("log08");
    let mut cmd = net.cmd_in(&net.srv, KNOCKD_0_8);
    cmd.args(["-i", SRV_IF, "-c", conf08.to_str().unwrap()])
        .args(["-g", log08.to_str().unwrap()]);
    let old = Daemon::spawn(cmd);
    wait_contains(&log08, "listening on");
    old
}

/// The config used by both servers; `file` is the marker file its commands append to.
fn shared_config(dir: &str, file: &str) -> String {
    format!(
        "[tcp]\n\
         sequence = 7000,8000,9000\n\
         command = echo tcp %IP% >> {dir}/{file}\n\
         [mix]\n\
         sequence = 7100:udp,7200,7300:udp\n\
         command = echo mix %IP% >> {dir}/{file}\n"
    )
}

#[test]
#[ignore = "needs root"]
fn the_0_8_knock_client_opens_our_knockd() {
    let net = Net::new();
    let dir = net.dir_str();
    let _d = net.start_knockd(&shared_config(&dir, "opened"), &[]);
    let opened = net.path("opened");

    run(net
        .cmd_in(&net.cli, KNOCK_0_8)
        .args([&net.srv4, "7000", "8000", "9000"]));
    wait_lines(&opened, 1, "knock 0.8, TCP");
    run(net
        .cmd_in(&net.cli, KNOCK_0_8)
        .args([&net.srv4, "7100:udp", "7200", "7300:udp"]));
    wait_lines(&opened, 2, "knock 0.8, UDP/TCP mix");
    run(net
        .cmd_in(&net.cli, KNOCK_0_8)
        .args(["-6", &net.srv6, "7000", "8000", "9000"]));
    let got = wait_lines(&opened, 3, "knock 0.8 -6");
    assert_eq!(
        got,
        [
            format!("tcp {}", net.cli4),
            format!("mix {}", net.cli4),
            format!("tcp {}", net.cli6),
        ]
    );
}

#[test]
#[ignore = "needs root"]
fn same_packets_same_commands_as_knockd_0_8() {
    let net = Net::new();
    let dir = net.dir_str();
    let _old = start_knockd_0_8(&net, &shared_config(&dir, "opened08"));
    let _ours = net.start_knockd(&shared_config(&dir, "opened"), &[]);
    let ours = net.path("opened");
    let theirs = net.path("opened08");
    let both = |n: usize, what: &str| {
        wait_lines(&ours, n, &format!("{what} (ours)"));
        wait_lines(&theirs, n, &format!("{what} (0.8)"));
    };

    // Two clean knocks in a row.
    net.knock(&net.srv4, "7000,8000,9000");
    both(1, "first clean knock");
    net.knock(&net.srv4, "7000,8000,9000");
    both(2, "second clean knock");
    // A wrong knock (opens nothing in either), then the UDP/TCP mix.
    net.knock(&net.srv4, "7000,9000,8000");
    net.knock(&net.srv4, "7100:udp,7200,7300:udp");
    both(3, "UDP/TCP mix");
    // IPv6.
    net.knock(&net.srv6, "7000,8000,9000");
    both(4, "IPv6 knock");

    assert_eq!(
        lines(&ours),
        lines(&theirs),
        "ours and 0.8 ran different commands"
    );
    assert_eq!(
        lines(&ours),
        [
            format!("tcp {}", net.cli4),
            format!("tcp {}", net.cli4),
            format!("mix {}", net.cli4),
            format!("tcp {}", net.cli6),
        ]
    );
}

#[test]
#[ignore = "needs root"]
fn two_interleaved_sources_both_open_unlike_0_8_bug_b1() {
    let net = Net::new();
    let dir = net.dir_str();
    let second = format!("{}.3", net.net4);
    net.ip_in(
        &net.cli,
        &[
            "addr",
            "add",
            &format!("{second}/24"),
            "dev",
            crate::fixture::CLI_IF,
        ],
    );
    let _d = net.start_knockd(&shared_config(&dir, "opened"), &[]);
    let opened = net.path("opened");

    // [EXP 6b]: both at stage 1; the first completes; 0.8 then loses the second's progress.
    let first = net.cli4.clone();
    let srv = net.srv4.clone();
    net.send(&[
        Hit::to(&srv, "7000").from(&first),
        Hit::to(&srv, "7000").from(&second),
        Hit::to(&srv, "8000").from(&first),
        Hit::to(&srv, "9000").from(&first),
        Hit::to(&srv, "8000").from(&second),
        Hit::to(&srv, "9000").from(&second),
    ]);
    let mut got = wait_lines(&opened, 2, "both interleaved sources");
    got.sort();
    let mut want = vec![format!("tcp {first}"), format!("tcp {second}")];
    want.sort();
    assert_eq!(got, want);
}

/// [EXP 7]: doors with a common prefix advance in parallel; the shorter one opens first.
fn overlapping_config(dir: &str, file: &str) -> String {
    format!(
        "[p1]\n\
         sequence = 1000,2000,3000\n\
         command = echo p1 %IP% >> {dir}/{file}\n\
         [p2]\n\
         sequence = 1000,2000,4000\n\
         command = echo p2 %IP% >> {dir}/{file}\n\
         [p3]\n\
         sequence = 1000,2000\n\
         command = echo p3 %IP% >> {dir}/{file}\n"
    )
}

#[test]
#[ignore = "needs root"]
fn overlapping_doors_open_as_in_knockd_0_8() {
    let net = Net::new();
    let dir = net.dir_str();
    let _old = start_knockd_0_8(&net, &overlapping_config(&dir, "opened08"));
    let _ours = net.start_knockd(&overlapping_config(&dir, "opened"), &[]);
    let ours = net.path("opened");
    let theirs = net.path("opened08");
    let sorted = |path: &std::path::Path| {
        let mut l = lines(path);
        l.sort();
        l
    };

    let mut expected = Vec::new();
    for (knocks, opens) in [
        ("1000,2000,4000", &["p3", "p2"][..]),
        ("1000,2000,3000", &["p3", "p1"]),
        ("1000,2000", &["p3"]),
    ] {
        net.knock(&net.srv4, knocks);
        expected.extend(opens.iter().map(|door| format!("{door} {}", net.cli4)));
        wait_lines(&ours, expected.len(), &format!("{knocks} (ours)"));
        wait_lines(&theirs, expected.len(), &format!("{knocks} (0.8)"));
    }
    expected.sort();
    assert_eq!(sorted(&ours), sorted(&theirs), "ours and 0.8 differ");
    assert_eq!(sorted(&ours), expected);
}

#[test]
#[ignore = "needs root"]
fn a_prefix_door_listed_first_does_not_kill_the_longer_one_unlike_0_8() {
    let net = Net::new();
    let dir = net.dir_str();
    // [EXP 7] / bug B1: with the short door first, 0.8 never opens the long one.
    let config = format!(
        "[short]\n\
         sequence = 1000,2000\n\
         command = echo short %IP% >> {dir}/opened\n\
         [long]\n\
         sequence = 1000,2000,3000\n\
         command = echo long %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &[]);
    net.knock(&net.srv4, "1000,2000,3000");
    let got = wait_lines(&net.path("opened"), 2, "short and long");
    assert_eq!(
        got,
        [format!("short {}", net.cli4), format!("long {}", net.cli4)]
    );
}
