//! Matching with real packets: TCP and UDP, IPv4 and IPv6, flags, wrong ports, timeouts,
//! stop commands, `Target` doors and one-time sequences.

use crate::fixture::{
    Hit, Net, SRV_IF, assert_log_shape, count, is_json_event, json_events, lines, read,
    wait_contains, wait_json_event, wait_lines,
};

#[test]
#[ignore = "needs root"]
fn tcp_sequence_over_ipv4_opens_logs_and_reports_json() {
    let net = Net::new();
    let dir = net.dir_str();
    let events = net.path("events.json");
    let config = format!(
        "[openSSH]\n\
         \tsequence      = 7000,8000,9000\n\
         \tseq_timeout   = 5\n\
         \ttcpflags      = syn\n\
         \tstart_command = echo %IP% %IP% >> {dir}/opened\n"
    );
    let mut d = net.start_knockd(&config, &["--json-log", events.to_str().unwrap()]);

    net.knock(&net.srv4, "7000,8000,9000");
    let opened = wait_lines(&net.path("opened"), 1, "3-step TCP knock");
    // Every %IP% is substituted.
    assert_eq!(opened, [format!("{0} {0}", net.cli4)]);

    // Back to back: a fresh knock right after a success opens again.
    net.knock(&net.srv4, "7000,8000,9000");
    wait_lines(&net.path("opened"), 2, "second knock");

    // The log file, in 0.8's shapes.
    let log = net.path("log");
    wait_contains(&log, "openSSH: running command: echo");
    let text = read(&log);
    for needle in [
        format!("starting up, listening on {SRV_IF}"),
        format!("{}: openSSH: Stage 1", net.cli4),
        format!("{}: openSSH: Stage 2", net.cli4),
        format!("{}: openSSH: OPEN SESAME", net.cli4),
        format!(
            "openSSH: running command: echo {0} {0} >> {dir}/opened",
            net.cli4
        ),
    ] {
        assert!(text.contains(&needle), "log lacks {needle:?}:\n{text}");
    }
    assert_eq!(count(&log, "openSSH: OPEN SESAME"), 2, "{text}");
    assert_log_shape(&text);

    // -v prints the same events on stdout, without timestamps.
    let out = d.stdout();
    for needle in [
        format!("listening on {SRV_IF}"),
        format!("{}: openSSH: Stage 1", net.cli4),
        format!("{}: openSSH: OPEN SESAME", net.cli4),
        "openSSH: running command: echo".to_owned(),
    ] {
        assert!(out.contains(&needle), "stdout lacks {needle:?}:\n{out}");
    }

    // JSON lines: one object per event, each with source, door, time and event.
    wait_json_event(&events, &net.cli4, "openSSH", "open");
    let opens = json_events(&events)
        .iter()
        .filter(|v| is_json_event(v, &net.cli4, "openSSH", "open"))
        .count();
    assert_eq!(opens, 2, "expected 2 open events:\n{}", read(&events));

    // SIGTERM: exit status 15 (0.8's), `shutting down` logged.
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(15));
    wait_contains(&log, "shutting down");
    assert_log_shape(&read(&log));
}

#[test]
#[ignore = "needs root"]
fn udp_and_mixed_sequences_over_ipv4_and_ipv6() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[udp]\n\
         sequence = 7100:udp,7200:udp,7300:udp\n\
         command = echo udp %IP% >> {dir}/opened\n\
         [mix]\n\
         sequence = 7400,7500:udp,7600\n\
         command = echo mix %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &[]);
    let opened = net.path("opened");

    net.knock(&net.srv4, "7100:udp,7200:udp,7300:udp");
    wait_lines(&opened, 1, "UDP over IPv4");
    net.knock(&net.srv4, "7400,7500:udp,7600");
    wait_lines(&opened, 2, "TCP/UDP mix over IPv4");
    net.knock(&net.srv6, "7100:udp,7200:udp,7300:udp");
    wait_lines(&opened, 3, "UDP over IPv6");
    net.knock(&net.srv6, "7400,7500:udp,7600");
    let got = wait_lines(&opened, 4, "TCP/UDP mix over IPv6");
    assert_eq!(
        got,
        [
            format!("udp {}", net.cli4),
            format!("mix {}", net.cli4),
            format!("udp {}", net.cli6),
            format!("mix {}", net.cli6),
        ]
    );
}

#[test]
#[ignore = "needs root"]
fn ipv6_knockers_get_the_6_commands_with_0_8_fallbacks() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[six]\n\
         sequence = 7000,7010\n\
         start_command = echo six4 %IP% >> {dir}/opened\n\
         start_command_6 = echo six6 %IP% >> {dir}/opened\n\
         [fallback]\n\
         sequence = 7100,7110\n\
         command = echo fallback %IP% >> {dir}/opened\n\
         [none6]\n\
         sequence = 7200,7210\n\
         command = echo none6 %IP% >> {dir}/opened\n\
         command_6 =\n\
         [sentinel]\n\
         sequence = 7300,7310\n\
         command = echo sentinel %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &[]);
    let opened = net.path("opened");
    let log = net.path("log");

    net.knock(&net.srv6, "7000,7010");
    wait_lines(&opened, 1, "six over IPv6");
    net.knock(&net.srv6, "7100,7110");
    wait_lines(&opened, 2, "fallback over IPv6");
    net.knock(&net.srv6, "7200,7210");
    // The door opens (logged) but an empty command_6 runs nothing for IPv6.
    wait_contains(&log, &format!("{}: none6: OPEN SESAME", net.cli6));
    net.knock(&net.srv6, "7300,7310");
    wait_lines(&opened, 3, "sentinel over IPv6");
    net.knock(&net.srv4, "7000,7010");
    let got = wait_lines(&opened, 4, "six over IPv4");
    assert_eq!(
        got,
        [
            format!("six6 {}", net.cli6),
            format!("fallback {}", net.cli6),
            format!("sentinel {}", net.cli6),
            format!("six4 {}", net.cli4),
        ]
    );
    assert!(
        !read(&log).contains("none6: running command"),
        "{}",
        read(&log)
    );
}

#[test]
#[ignore = "needs root"]
fn a_syn_door_ignores_other_flags_between_steps() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[synonly]\n\
         sequence = 7000,8000,9000\n\
         tcpflags = syn,!ack\n\
         command = echo synonly %IP% >> {dir}/opened\n\
         [sentinel]\n\
         sequence = 7100:udp,7200:udp\n\
         command = echo sentinel %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &[]);
    let opened = net.path("opened");

    // A whole sequence of ACKs does not count at all.
    for port in [7000, 8000, 9000] {
        net.hping(&net.srv4, "-A", port);
    }
    net.knock(&net.srv4, "7100:udp,7200:udp");
    let got = wait_lines(&opened, 1, "sentinel after ACK-only knocks");
    assert_eq!(
        got,
        [format!("sentinel {}", net.cli4)],
        "ACKs opened the SYN door"
    );

    // ACK, RST and FIN packets to door ports between the steps neither advance nor
    // invalidate.
    net.knock(&net.srv4, "7000");
    net.hping(&net.srv4, "-A", 8000);
    net.hping(&net.srv4, "-R", 9000);
    net.hping(&net.srv4, "-F", 8000);
    net.knock(&net.srv4, "8000");
    net.hping(&net.srv4, "-A", 7000);
    net.knock(&net.srv4, "9000");
    let got = wait_lines(&opened, 2, "SYN knock with other flags in between");
    assert_eq!(got[1], format!("synonly {}", net.cli4));
}

#[test]
#[ignore = "needs root"]
fn a_wrong_port_invalidates_the_attempt() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[d]\n\
         sequence = 7000,8000,9000\n\
         command = echo d %IP% >> {dir}/opened\n"
    );
    let events = net.path("events.json");
    let _d = net.start_knockd(&config, &["--json-log", events.to_str().unwrap()]);
    let opened = net.path("opened");
    let log = net.path("log");

    // 0.8's semantics ([EXP 4]): a wrong admitted port kills the attempt, and so does a
    // repeated one; the packet after an invalidation counts as a possible first knock.
    net.knock(&net.srv4, "7000,9000,8000,9000");
    net.knock(&net.srv4, "7000,7000,8000,9000");
    net.knock(&net.srv4, "7000,9000,7000,8000,9000");
    let got = wait_lines(&opened, 1, "knock after an invalidated one");
    assert_eq!(got, [format!("d {}", net.cli4)]);
    // The successful knock was the last one sent: any other open would be logged before it.
    wait_contains(&log, "d: running command");
    assert_eq!(count(&log, "d: OPEN SESAME"), 1, "{}", read(&log));
    // Invalidations are not in 0.8's log, but they are in the JSON events.
    wait_json_event(&events, &net.cli4, "d", "invalid");
}

#[test]
#[ignore = "needs root"]
fn a_slow_sequence_times_out() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[slow]\n\
         sequence = 7000,8000,9000\n\
         seq_timeout = 1\n\
         command = echo slow %IP% >> {dir}/opened\n"
    );
    let events = net.path("events.json");
    let _d = net.start_knockd(&config, &["--json-log", events.to_str().unwrap()]);
    let opened = net.path("opened");
    let log = net.path("log");

    net.send(&[
        Hit::to(&net.srv4, "7000"),
        Hit::pause(2.5),
        Hit::to(&net.srv4, "8000"),
        Hit::to(&net.srv4, "9000"),
    ]);
    wait_contains(
        &log,
        &format!("{}: slow: sequence timeout (stage 1)", net.cli4),
    );
    // A quick knock afterwards opens: the timed-out attempt is gone.
    net.knock(&net.srv4, "7000,8000,9000");
    let got = wait_lines(&opened, 1, "quick knock after a timeout");
    assert_eq!(got, [format!("slow {}", net.cli4)]);
    assert_eq!(count(&log, "slow: OPEN SESAME"), 1, "{}", read(&log));
    wait_json_event(&events, &net.cli4, "slow", "timeout");
}

#[test]
#[ignore = "needs root"]
fn the_stop_command_runs_after_cmd_timeout() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[door]\n\
         sequence = 7000:udp,8000\n\
         cmd_timeout = 1\n\
         start_command = echo open %IP% >> {dir}/opened\n\
         stop_command = echo close %IP% >> {dir}/closed\n"
    );
    let events = net.path("events.json");
    let _d = net.start_knockd(&config, &["--json-log", events.to_str().unwrap()]);
    net.knock(&net.srv4, "7000:udp,8000");
    wait_lines(&net.path("opened"), 1, "open");
    let closed = wait_lines(&net.path("closed"), 1, "stop command after cmd_timeout");
    assert_eq!(closed, [format!("close {}", net.cli4)]);
    let log = net.path("log");
    wait_contains(&log, &format!("{}: door: command timeout", net.cli4));
    wait_contains(
        &log,
        &format!(
            "door: running command: echo close {} >> {dir}/closed",
            net.cli4
        ),
    );
    wait_json_event(&events, &net.cli4, "door", "close");
}

#[test]
#[ignore = "needs root"]
fn a_target_door_accepts_only_its_target() {
    let net = Net::new();
    let dir = net.dir_str();
    let target = format!("{}.99", net.net4);
    // The client reaches the target through the server (a router): the frames carry the
    // server's MAC address, so the server's capture sees them.
    net.ip_in(
        &net.cli,
        &["route", "add", &format!("{target}/32"), "via", &net.srv4],
    );
    let config = format!(
        "[tgt]\n\
         sequence = 7000,8000\n\
         target = {target}\n\
         command = echo tgt %IP% >> {dir}/opened\n\
         [local]\n\
         sequence = 7100,7200\n\
         command = echo local %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &[]);
    let opened = net.path("opened");

    net.knock(&target, "7000,8000");
    wait_lines(&opened, 1, "knock to the target");
    // The target door's sequence sent to the server's own address does not open it …
    net.knock(&net.srv4, "7000,8000");
    net.knock(&net.srv4, "7100,7200");
    wait_lines(&opened, 2, "local door");
    // … and a plain door ignores knocks to the target address.
    net.knock(&target, "7100,7200");
    net.knock(&target, "7000,8000");
    let got = wait_lines(&opened, 3, "knock to the target again");
    assert_eq!(
        got,
        [
            format!("tgt {}", net.cli4),
            format!("local {}", net.cli4),
            format!("tgt {}", net.cli4),
        ]
    );
}

#[test]
#[ignore = "needs root"]
fn one_time_sequences_are_used_up_and_the_door_disabled() {
    let net = Net::new();
    let dir = net.dir_str();
    let ots = net.write(
        "ots",
        " 7000,8000\n 7100:udp,7200\n# a comment\n 7300,7400:udp\n",
    );
    let config = format!(
        "[ots]\n\
         one_time_sequences = {ots}\n\
         command = echo ots %IP% >> {dir}/opened\n\
         [other]\n\
         sequence = 7500,7600\n\
         command = echo other %IP% >> {dir}/opened\n",
        ots = ots.display()
    );
    let mut d = net.start_knockd(&config, &[]);
    let opened = net.path("opened");
    let log = net.path("log");

    net.knock(&net.srv4, "7000,8000");
    wait_lines(&opened, 1, "first one-time sequence");
    let file = read(&ots);
    let first = file.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('#') && first.contains("7000,8000"),
        "used line not marked with #:\n{file}"
    );
    assert!(
        !file
            .lines()
            .any(|l| l.starts_with('#') && l.contains("7100")),
        "{file}"
    );

    // A used sequence does not open again; the next line does.
    net.knock(&net.srv4, "7000,8000");
    net.knock(&net.srv4, "7100:udp,7200");
    let got = wait_lines(&opened, 2, "second one-time sequence");
    assert_eq!(
        got[1],
        format!("ots {}", net.cli4),
        "replayed sequence opened"
    );

    // The third one over IPv6 (0.8 bug B7: IPv6 kept the first sequence).
    net.knock(&net.srv6, "7300,7400:udp");
    let got = wait_lines(&opened, 3, "third one-time sequence over IPv6");
    assert_eq!(got[2], format!("ots {}", net.cli6));

    // Exhausted: every sequence line is marked, the door is disabled with a log line, and
    // the daemon keeps running (0.8 bug B6: it aborted).
    wait_contains(&log, "no more sequences left");
    let file = read(&ots);
    for seq in ["7000,8000", "7100:udp,7200", "7300,7400:udp"] {
        assert!(
            file.lines().any(|l| l.starts_with('#') && l.contains(seq)),
            "{seq} not marked:\n{file}"
        );
    }
    assert!(d.alive(), "knockd died after the last one-time sequence");
    net.knock(&net.srv4, "7300,7400:udp");
    net.knock(&net.srv4, "7500,7600");
    let got = wait_lines(&opened, 4, "other door after exhaustion");
    assert_eq!(
        got[3],
        format!("other {}", net.cli4),
        "exhausted door opened"
    );
    assert!(d.alive());
}

#[test]
#[ignore = "needs root"]
fn only_ipv4_ignores_ipv6_knocks() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[d]\n\
         sequence = 7000,8000:udp\n\
         command = echo d %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &["-4"]);
    let opened = net.path("opened");
    net.knock(&net.srv6, "7000,8000:udp");
    net.knock(&net.srv4, "7000,8000:udp");
    let got = wait_lines(&opened, 1, "IPv4 knock with -4");
    assert_eq!(
        got,
        [format!("d {}", net.cli4)],
        "an IPv6 knock counted with -4"
    );
    assert!(
        !read(&net.path("log")).contains(&net.cli6),
        "{}",
        read(&net.path("log"))
    );
}

#[test]
#[ignore = "needs root"]
fn lookup_shows_host_names_in_the_log_but_commands_get_the_address() {
    let net = Net::new();
    let dir = net.dir_str();
    net.netns_etc_file(
        "hosts",
        &format!("127.0.0.1 localhost\n{} knocker.test\n", net.cli4),
    );
    let config = format!(
        "[d]\n\
         sequence = 7000,8000\n\
         command = echo d %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &["-l"]);
    let opened = net.path("opened");
    let log = net.path("log");
    // The first lines may show the bare address (the lookup runs beside matching); the
    // name appears once it is known.
    let named = crate::fixture::wait_until(crate::fixture::DEADLINE, || {
        let n = lines(&opened).len();
        net.knock(&net.srv4, "7000,8000");
        wait_lines(&opened, n + 1, "knock with -l");
        read(&log)
            .contains(&format!("{} (knocker.test): d: OPEN SESAME", net.cli4))
            .then_some(())
    });
    assert!(named.is_some(), "no host name in the log:\n{}", read(&log));
    assert!(
        lines(&opened)
            .iter()
            .all(|l| *l == format!("d {}", net.cli4)),
        "%IP% must be the address: {:?}",
        lines(&opened)
    );
}

#[test]
#[ignore = "needs root"]
fn seq_timeout_counts_from_the_first_knock() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[d]\n\
         sequence = 7000,8000,9000\n\
         seq_timeout = 2\n\
         command = echo d %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &[]);
    let log = net.path("log");
    // Each gap is shorter than seq_timeout, the whole sequence longer.
    net.send(&[
        Hit::to(&net.srv4, "7000"),
        Hit::pause(1.4),
        Hit::to(&net.srv4, "8000"),
        Hit::pause(1.4),
        Hit::to(&net.srv4, "9000"),
    ]);
    wait_contains(
        &log,
        &format!("{}: d: sequence timeout (stage 2)", net.cli4),
    );
    net.knock(&net.srv4, "7000,8000,9000");
    let got = wait_lines(&net.path("opened"), 1, "quick knock");
    assert_eq!(got, [format!("d {}", net.cli4)]);
    assert_eq!(count(&log, "d: OPEN SESAME"), 1, "{}", read(&log));
}

#[test]
#[ignore = "needs root"]
fn a_dead_dns_server_does_not_delay_knocks_with_lookup() {
    let net = Net::new();
    let dir = net.dir_str();
    // Reverse lookups go to an address of this pair's subnet where nobody answers; 0.8 made
    // them in the packet path and stalled for tens of seconds (bug B10).
    net.netns_etc_file("hosts", "127.0.0.1 localhost\n");
    net.netns_etc_file(
        "resolv.conf",
        &format!(
            "nameserver {}.50\noptions timeout:5 attempts:3\n",
            net.srv4.rsplit_once('.').unwrap().0
        ),
    );
    let config = format!(
        "[d]\n\
         sequence = 7000,8000,9000\n\
         command = echo d %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &["-l"]);
    net.knock(&net.srv4, "7000,8000,9000");
    net.knock(&net.srv6, "7000,8000,9000");
    let got = wait_lines(&net.path("opened"), 2, "knocks while DNS hangs");
    assert_eq!(got, [format!("d {}", net.cli4), format!("d {}", net.cli6)]);
}

/// Issue 10 item 9: with `-i SRV_IF -i any` every packet was captured twice (once per
/// interface), so each step was seen again as a wrong step and every multi-step knock was
/// invalidated. `any` alone is now captured and the knock opens.
#[test]
#[ignore = "needs root"]
fn issue10_item9_any_beside_an_interface_opens_multi_step_knocks() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[d]\n\tsequence = 7000,8000:udp,9000\n\tseq_timeout = 10\n\
         \tstart_command = echo %IP% >> {dir}/opened\n"
    );
    let _d = net.start_knockd(&config, &["-i", "any"]);
    wait_contains(&net.path("log"), "listening on any");
    net.knock(&net.srv4, "7000,8000:udp,9000");
    let opened = wait_lines(&net.path("opened"), 1, "3-step knock with -i any");
    assert_eq!(opened, std::slice::from_ref(&net.cli4));
}
