//! Embedding knock-core: parse a knockd.conf, feed packet events, print the actions.
//!
//! No capture and no commands: the packets are made up and time is simulated, which is the
//! point — the matcher is a pure state machine, so a program (or a test) drives it with any
//! packets and any clock.
//!
//! ```text
//! cargo run -p knock-examples --example embed_core [knockd.conf]
//! ```
//!
//! Without an argument it uses a built-in configuration with two doors.

use std::net::IpAddr;
use std::process::ExitCode;

use knock_core::{Action, Config, Instant, Matcher, PacketEvent};

const BUILT_IN: &str = "\
[options]
    logfile = /var/log/knockd.log

[openSSH]
    sequence      = 7000,8000,9000
    seq_timeout   = 5
    tcpflags      = syn
    start_command = /sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    cmd_timeout   = 10
    stop_command  = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT

[openHTTPS]
    sequence      = 12345,54321:udp,24680
    seq_timeout   = 5
    command       = /usr/local/sbin/open-https %IP%
";

fn main() -> ExitCode {
    let (name, text) = match std::env::args().nth(1) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => (path, text),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => ("built-in config".to_owned(), BUILT_IN.to_owned()),
    };
    let parsed = match Config::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{}", e.with_file(name));
            return ExitCode::FAILURE;
        }
    };
    for warning in &parsed.warnings {
        eprintln!("{warning}");
    }
    let config = parsed.config;
    println!("{name}: {} door(s)", config.doors.len());

    let mut matcher = Matcher::new(&config);
    let server: IpAddr = [192, 0, 2, 1].into();
    let alice: IpAddr = [198, 51, 100, 7].into();
    let mallory: IpAddr = [203, 0, 113, 66].into();

    // Alice knocks the first door's sequence; Mallory, guessing, knocks the same ports in
    // reverse order in between. State is per source: Mallory's knocks never disturb Alice's,
    // and Mallory's attempt times out.
    let mut events = Vec::new();
    if let Some(door) = config.doors.first() {
        for (i, step) in door.sequence.iter().enumerate() {
            let at = 1_000 + 400 * i as u64;
            events.push((at, alice, *step));
        }
        for (i, step) in door.sequence.iter().rev().enumerate() {
            let at = 1_050 + 400 * i as u64;
            events.push((at, mallory, *step));
        }
    }
    events.sort_by_key(|(at, _, _)| *at);

    for (millis, source, step) in events {
        let now = Instant::from_millis(millis);
        run_timers(&mut matcher, now);
        matcher.handle_packet(&PacketEvent::knock(now, source, server, step));
        print_actions(&mut matcher, now);
    }
    // Nothing else arrives: jump from deadline to deadline until none is left.
    run_timers(&mut matcher, Instant::MAX);
    println!("{:#?}", matcher.counters());
    ExitCode::SUCCESS
}

/// Runs every deadline that came before `now` (a daemon would have slept until each).
fn run_timers(matcher: &mut Matcher, now: Instant) {
    while let Some(deadline) = matcher.poll_timeout().filter(|d| *d <= now) {
        matcher.handle_timeout(deadline);
        print_actions(matcher, deadline);
    }
}

fn print_actions(matcher: &mut Matcher, now: Instant) {
    while let Some(action) = matcher.poll_action() {
        // `Display` is knockd's log wording; a daemon runs the command lines (%IP%
        // substituted) with /bin/sh -c.
        let command = match &action {
            Action::Open { door, source, .. } => door.start_command_line(*source),
            Action::Close { door, source } => door.stop_command_line(*source),
            _ => None,
        };
        match command {
            Some(command) => println!("[{now}] {action} -> run {command}"),
            None => println!("[{now}] {action}"),
        }
    }
}
