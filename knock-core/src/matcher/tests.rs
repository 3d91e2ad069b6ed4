//! Table tests of the matching rules (reference §5.3 and EXP 4–8, with B1 fixed), driven by a
//! virtual clock: packets at synthetic instants, time jumps straight to `poll_timeout()`.
//! Nothing sleeps.

use std::net::IpAddr;

use super::*;
use crate::config::FlagRule;
use crate::packet::TcpFlags;
use crate::time::Duration;

/// `10.0.0.n`.
fn v4(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

/// `fd00::n`.
fn v6(n: u16) -> IpAddr {
    IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, n])
}

/// The server address every test packet goes to unless it says otherwise.
fn server() -> IpAddr {
    IpAddr::from([10, 0, 0, 254])
}

fn ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

/// Parses a step like `7000`, `7000:udp` or `7000:tcp`.
fn step(text: &str) -> Knock {
    match text.split_once(':') {
        Some((port, "udp")) => Knock::udp(port.parse().unwrap()),
        Some((port, "tcp")) => Knock::tcp(port.parse().unwrap()),
        None => Knock::tcp(text.parse().unwrap()),
        Some(_) => panic!("bad step {text}"),
    }
}

fn door(name: &str, sequence: &str) -> Door {
    Door::new(name, sequence.split(',').map(step).collect())
}

fn syn_only(mut d: Door) -> Door {
    d.tcp_flags = FlagRule {
        must_set: TcpFlags::SYN,
        must_clear: TcpFlags::ACK,
    };
    d
}

fn with_timeout(mut d: Door, timeout: Duration) -> Door {
    d.seq_timeout = timeout;
    d
}

fn with_commands(mut d: Door, cmd_timeout: Duration) -> Door {
    d.start_command = Some("open %IP%".into());
    d.stop_command = Some("close %IP%".into());
    d.cmd_timeout = cmd_timeout;
    d
}

fn config(doors: Vec<Door>) -> Config {
    Config {
        doors,
        ..Config::default()
    }
}

/// Renders an action as `kind door source [stage]`, e.g. `stage a 10.0.0.1 2`.
fn render(action: &Action) -> String {
    match action {
        Action::Stage {
            door,
            source,
            stage,
        } => format!("stage {} {source} {stage}", door.name),
        Action::Open {
            door,
            source,
            code_step: None,
        } => format!("open {} {source}", door.name),
        Action::Open {
            door,
            source,
            code_step: Some(step),
        } => format!("open {} {source} code {step}", door.name),
        Action::CodeUsed {
            door,
            source,
            code_step,
        } => format!("used {} {source} code {code_step}", door.name),
        Action::Close { door, source } => format!("close {} {source}", door.name),
        Action::Timeout {
            door,
            source,
            stage,
        } => format!("timeout {} {source} {stage}", door.name),
        Action::Invalidated {
            door,
            source,
            stage,
        } => format!("invalid {} {source} {stage}", door.name),
    }
}

/// The virtual-clock driver.
struct Driver {
    matcher: Matcher,
    now: Instant,
    /// Every action so far with the instant it came out, rendered.
    log: Vec<(Instant, String)>,
}

impl Driver {
    fn new(doors: Vec<Door>) -> Self {
        Self::with_limits(doors, Limits::default())
    }

    fn with_limits(doors: Vec<Door>, limits: Limits) -> Self {
        Self {
            matcher: Matcher::with_limits(&config(doors), limits),
            now: Instant::ZERO,
            log: Vec::new(),
        }
    }

    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(action) = self.matcher.poll_action() {
            let line = render(&action);
            self.log.push((self.now, line.clone()));
            out.push(line);
        }
        out
    }

    /// Runs every deadline up to `until` (jumping to each `poll_timeout()`), then sets the
    /// clock to `until`. Returns the actions with the instant they came out.
    fn run_until(&mut self, until: Instant) -> Vec<(Instant, String)> {
        let mut out = Vec::new();
        while let Some(deadline) = self.matcher.poll_timeout() {
            if deadline > until {
                break;
            }
            assert!(deadline >= self.now, "deadline in the past: {deadline:?}");
            self.now = deadline;
            self.matcher.handle_timeout(deadline);
            for line in self.drain() {
                out.push((deadline, line));
            }
        }
        self.now = until;
        out
    }

    fn packet(&mut self, at: Instant, packet: PacketEvent) -> Vec<String> {
        let early = self.run_until(at);
        self.matcher.handle_packet(&packet);
        let mut out: Vec<String> = early
            .into_iter()
            .map(|(t, line)| format!("{line} @{t:?}"))
            .collect();
        out.extend(self.drain());
        out
    }

    /// A TCP SYN from `source` to `server()`.
    fn syn(&mut self, at: Instant, source: IpAddr, port: u16) -> Vec<String> {
        self.tcp(at, source, port, TcpFlags::SYN)
    }

    fn tcp(&mut self, at: Instant, source: IpAddr, port: u16, flags: TcpFlags) -> Vec<String> {
        self.packet(at, PacketEvent::tcp(at, source, server(), port, flags))
    }

    fn udp(&mut self, at: Instant, source: IpAddr, port: u16) -> Vec<String> {
        self.packet(at, PacketEvent::udp(at, source, server(), port))
    }

    /// SYNs to `ports` from `source`, 100 ms apart starting at `start`; all actions.
    fn knock(&mut self, start: Instant, source: IpAddr, ports: &[u16]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            out.extend(self.syn(start + Duration::from_millis(100 * i as u64), source, *port));
        }
        out
    }

    fn opened(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|(_, l)| l.starts_with("open"))
            .map(|(_, l)| l.clone())
            .collect()
    }

    fn counters(&self) -> Counters {
        *self.matcher.counters()
    }
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_clean_knock_opens_with_stage_lines() {
    let mut d = Driver::new(vec![door("ssh", "7000,8000,9000")]);
    let out = d.knock(ms(0), v4(1), &[7000, 8000, 9000]);
    assert_eq!(
        out,
        strings(&[
            "stage ssh 10.0.0.1 1",
            "stage ssh 10.0.0.1 2",
            "stage ssh 10.0.0.1 3",
            "open ssh 10.0.0.1",
        ])
    );
    let c = d.counters();
    assert_eq!(
        (
            c.admitted,
            c.attempts_started,
            c.attempts_advanced,
            c.opened
        ),
        (3, 1, 2, 1)
    );
    assert_eq!(
        d.matcher.tracked_sources(),
        0,
        "a finished attempt is not tracked"
    );
    assert_eq!(
        d.matcher.poll_timeout(),
        None,
        "nothing left to wake up for"
    );
}

/// EXP 4, first line: `7000,9000,8000,9000` does not open; the 8000 packet after the
/// invalidation starts door F (whose first port is 8000).
#[test]
fn exp4_wrong_port_invalidates_and_the_next_packet_starts_fresh() {
    let mut d = Driver::new(vec![door("a", "7000,8000,9000"), door("f", "8000,7500")]);
    assert_eq!(d.syn(ms(0), v4(1), 7000), strings(&["stage a 10.0.0.1 1"]));
    assert_eq!(
        d.syn(ms(100), v4(1), 9000),
        strings(&["invalid a 10.0.0.1 1"])
    );
    assert_eq!(
        d.syn(ms(200), v4(1), 8000),
        strings(&["stage f 10.0.0.1 1"])
    );
    assert_eq!(
        d.syn(ms(300), v4(1), 9000),
        strings(&["invalid f 10.0.0.1 1"])
    );
    assert!(d.opened().is_empty());
}

/// EXP 4: a repeated first knock invalidates (`7000,7000,8000,9000` fails), and
/// `7000,9000,7000,8000,9000` succeeds because the third packet starts afresh.
#[test]
fn exp4_repeated_hit_invalidates_unless_the_sequence_repeats_it() {
    let mut d = Driver::new(vec![door("a", "7000,8000,9000")]);
    d.knock(ms(0), v4(1), &[7000, 7000, 8000, 9000]);
    assert!(d.opened().is_empty());

    let mut d = Driver::new(vec![door("a", "7000,8000,9000")]);
    d.knock(ms(0), v4(1), &[7000, 9000, 7000, 8000, 9000]);
    assert_eq!(d.opened(), strings(&["open a 10.0.0.1"]));

    let mut d = Driver::new(vec![door("r", "7000,7000,8000")]);
    d.knock(ms(0), v4(1), &[7000, 7000, 8000]);
    assert_eq!(d.opened(), strings(&["open r 10.0.0.1"]));
}

/// §5.3: the invalidating packet is not reused as a first knock.
#[test]
fn the_invalidating_packet_starts_nothing() {
    let mut d = Driver::new(vec![door("a", "7000,8000"), door("b", "9000,8000")]);
    d.syn(ms(0), v4(1), 7000);
    assert_eq!(
        d.syn(ms(10), v4(1), 9000),
        strings(&["invalid a 10.0.0.1 1"])
    );
    assert_eq!(d.matcher.tracked_sources(), 0);
    // The next 9000 is a first knock again.
    assert_eq!(d.syn(ms(20), v4(1), 9000), strings(&["stage b 10.0.0.1 1"]));
}

/// §5.3: traffic to ports of no door never resets an attempt.
#[test]
fn ports_of_no_door_are_not_admitted_and_change_nothing() {
    let mut d = Driver::new(vec![door("a", "7000,8000,9000")]);
    d.syn(ms(0), v4(1), 7000);
    assert!(d.syn(ms(10), v4(1), 22).is_empty());
    assert!(d.udp(ms(20), v4(1), 8000).is_empty(), "8000/udp is no step");
    d.knock(ms(30), v4(1), &[8000, 9000]);
    assert_eq!(d.opened(), strings(&["open a 10.0.0.1"]));
    let c = d.counters();
    assert_eq!(c.ignored_unknown_port, 2);
    assert_eq!(c.admitted, 3);
}

/// §5.3: UDP is never ignored by flags; a UDP knock to another door's UDP port during a
/// TCP step invalidates, and a flag-matching TCP packet during a UDP step invalidates.
#[test]
fn protocol_mismatch_invalidates_both_ways() {
    let mut d = Driver::new(vec![
        syn_only(door("tcp", "7000,8000,9000")),
        door("udp", "7100:udp,7200:udp"),
    ]);
    d.syn(ms(0), v4(1), 7000);
    assert_eq!(
        d.udp(ms(10), v4(1), 7100),
        strings(&["invalid tcp 10.0.0.1 1"])
    );

    assert_eq!(
        d.udp(ms(20), v4(1), 7100),
        strings(&["stage udp 10.0.0.1 1"])
    );
    assert_eq!(
        d.syn(ms(30), v4(1), 8000),
        strings(&["invalid udp 10.0.0.1 1"])
    );
    // 8000 is not a first step, so nothing started.
    assert_eq!(d.matcher.tracked_sources(), 0);
    assert_eq!(
        d.counters().ignored_not_first_step,
        0,
        "invalidating is not ignoring"
    );
}

/// EXP 5: flags. An ACK admitted thanks to a no-flags door is ignored by the SYN door's
/// attempt (which then completes); an RST to another door's port is ignored too; a door
/// without flags accepts ACK/RST knocks; being in progress on N and hitting A's first port
/// kills N and does not start A.
#[test]
fn exp5_flag_mismatch_is_ignored_not_invalidating() {
    let mut d = Driver::new(vec![
        syn_only(door("syn", "7000,8000,9000")),
        door("any", "8000,8500"),
        syn_only(door("a", "6000,6100")),
    ]);
    d.syn(ms(0), v4(1), 7000);
    assert!(d.tcp(ms(10), v4(1), 8000, TcpFlags::ACK).is_empty());
    assert_eq!(d.counters().ignored_flags_mismatch, 1);
    assert!(d.tcp(ms(20), v4(1), 8500, TcpFlags::RST).is_empty());
    d.knock(ms(30), v4(1), &[8000, 9000]);
    assert_eq!(d.opened(), strings(&["open syn 10.0.0.1"]));

    // A no-flags door accepts ACK and RST knocks.
    let out = [
        d.tcp(ms(500), v4(2), 8000, TcpFlags::ACK),
        d.tcp(ms(600), v4(2), 8500, TcpFlags::RST),
    ]
    .concat();
    assert_eq!(
        out,
        strings(&[
            "stage any 10.0.0.2 1",
            "stage any 10.0.0.2 2",
            "open any 10.0.0.2"
        ])
    );

    // An ACK to a SYN-only door's port is not admitted at all.
    assert!(d.tcp(ms(700), v4(3), 6000, TcpFlags::ACK).is_empty());
    assert_eq!(d.counters().ignored_not_admitted, 1);

    // In progress for `syn`, hitting `a`'s first port: `syn` dies, `a` does not start.
    d.syn(ms(800), v4(4), 7000);
    assert_eq!(
        d.syn(ms(900), v4(4), 6000),
        strings(&["invalid syn 10.0.0.4 1"])
    );
    assert_eq!(d.syn(ms(1000), v4(4), 6100), Vec::<String>::new());
}

/// EXP 7: doors with a common prefix advance in lock-step; the shorter opens first and the
/// longer still opens, in either config order (B1 fixed).
#[test]
fn exp7_prefix_doors_all_open_in_either_order() {
    let p1 = || door("p1", "1000,2000,3000");
    let p2 = || door("p2", "1000,2000,4000");
    let p3 = || door("p3", "1000,2000");
    let mut d = Driver::new(vec![p1(), p2(), p3()]);
    d.knock(ms(0), v4(1), &[1000, 2000, 4000]);
    assert_eq!(
        d.opened(),
        strings(&["open p3 10.0.0.1", "open p2 10.0.0.1"])
    );
    assert!(d.log.iter().any(|(_, l)| l == "invalid p1 10.0.0.1 2"));

    let mut d = Driver::new(vec![p1(), p2(), p3()]);
    d.knock(ms(0), v4(1), &[1000, 2000, 3000]);
    assert_eq!(
        d.opened(),
        strings(&["open p3 10.0.0.1", "open p1 10.0.0.1"])
    );
    // Repeating the prefix immediately re-opens p3.
    d.knock(ms(1000), v4(1), &[1000, 2000]);
    assert_eq!(d.opened().len(), 3);

    for doors in [
        vec![door("short", "1000,2000"), door("long", "1000,2000,3000")],
        vec![door("long", "1000,2000,3000"), door("short", "1000,2000")],
    ] {
        let mut d = Driver::new(doors);
        d.knock(ms(0), v4(1), &[1000, 2000, 3000]);
        let mut opened = d.opened();
        opened.sort();
        assert_eq!(
            opened,
            strings(&["open long 10.0.0.1", "open short 10.0.0.1"])
        );
    }
}

/// EXP 6b (B1 fixed): one source completing, failing or expiring never touches another
/// source's attempt, whichever started first.
#[test]
fn exp6b_other_sources_survive_completion_failure_and_expiry() {
    let seq = [7000, 8000, 9000];
    for (first, second) in [(1, 3), (3, 1)] {
        let mut d = Driver::new(vec![door("a", "7000,8000,9000")]);
        d.syn(ms(0), v4(first), 7000);
        d.syn(ms(10), v4(second), 7000);
        d.knock(ms(100), v4(first), &seq[1..]);
        d.knock(ms(500), v4(second), &seq[1..]);
        assert_eq!(d.opened().len(), 2, "both open ({first} first)");
    }

    // The oldest attempt failing.
    let mut d = Driver::new(vec![door("a", "7000,8000,9000")]);
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(10), v4(3), 7000);
    assert_eq!(
        d.syn(ms(20), v4(1), 9000),
        strings(&["invalid a 10.0.0.1 1"])
    );
    d.knock(ms(30), v4(3), &seq[1..]);
    assert_eq!(d.opened(), strings(&["open a 10.0.0.3"]));

    // The oldest attempt expiring.
    let mut d = Driver::new(vec![with_timeout(
        door("a", "7000,8000,9000"),
        Duration::from_secs(3),
    )]);
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(2500), v4(3), 7000);
    let out = d.knock(ms(3500), v4(3), &seq[1..]);
    assert_eq!(
        out,
        strings(&[
            "timeout a 10.0.0.1 1 @3.000000s",
            "stage a 10.0.0.3 2",
            "stage a 10.0.0.3 3",
            "open a 10.0.0.3",
        ])
    );
}

/// EXP 6: seq_timeout runs from the first knock; knocks at 0, 2 and 4 s with a 3 s timeout
/// time out (stage 2) exactly at 3 s, not at the third knock.
#[test]
fn exp6_timeout_runs_from_the_first_knock_and_fires_on_time() {
    let mut d = Driver::new(vec![with_timeout(
        door("a", "7000,8000,9000"),
        Duration::from_secs(3),
    )]);
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(2000), v4(1), 8000);
    assert_eq!(d.matcher.poll_timeout(), Some(ms(3000)));
    let fired = d.run_until(ms(4000));
    assert_eq!(fired, vec![(ms(3000), "timeout a 10.0.0.1 2".to_owned())]);
    assert!(
        d.syn(ms(4000), v4(1), 9000).is_empty(),
        "9000 is no first step"
    );
    assert_eq!(d.counters().ignored_not_first_step, 1);
    assert_eq!(d.counters().attempts_expired, 1);
}

/// EXP 6, second part: a lone first knock, then an unrelated UDP knock 4 s later: the timeout
/// came out on time, and the UDP packet starts its own door.
#[test]
fn exp6_lone_first_knock_expires_on_time_and_later_knock_starts_its_door() {
    let mut d = Driver::new(vec![
        with_timeout(door("a", "7000,8000"), Duration::from_secs(3)),
        door("u", "7100:udp,7200:udp"),
    ]);
    d.syn(ms(0), v4(1), 7000);
    assert_eq!(
        d.udp(ms(4000), v4(1), 7100),
        strings(&["timeout a 10.0.0.1 1 @3.000000s", "stage u 10.0.0.1 1"])
    );
}

/// Sub-second precision: the last knock must arrive strictly before first + seq_timeout.
#[test]
fn timeout_has_microsecond_precision() {
    let make = || {
        Driver::new(vec![with_timeout(
            door("a", "7000,8000"),
            Duration::from_millis(1500),
        )])
    };
    let mut d = make();
    d.syn(Instant::from_micros(0), v4(1), 7000);
    d.syn(Instant::from_micros(1_499_999), v4(1), 8000);
    assert_eq!(d.opened(), strings(&["open a 10.0.0.1"]));

    let mut d = make();
    d.syn(Instant::from_micros(250_000), v4(1), 7000);
    let out = d.syn(Instant::from_micros(1_750_000), v4(1), 8000);
    assert_eq!(out, strings(&["timeout a 10.0.0.1 1 @1.750000s"]));
    assert!(d.opened().is_empty());
}

/// EXP 8: seq_timeout = 0: a two-step door expires at once (its second knock, even at the
/// same instant, finds nothing), a one-step door opens on every packet.
#[test]
fn exp8_zero_seq_timeout_allows_only_one_step_doors() {
    let mut d = Driver::new(vec![
        with_timeout(door("two", "7000,8000"), Duration::ZERO),
        with_timeout(door("one", "9000"), Duration::ZERO),
    ]);
    assert_eq!(
        d.syn(ms(0), v4(1), 7000),
        strings(&["stage two 10.0.0.1 1"])
    );
    assert_eq!(d.matcher.poll_timeout(), Some(ms(0)));
    assert_eq!(
        d.syn(ms(0), v4(1), 8000),
        strings(&["timeout two 10.0.0.1 1 @0.000000s"])
    );
    for i in 0..3 {
        d.syn(ms(10 * i), v4(1), 9000);
    }
    assert_eq!(d.opened().len(), 3);
    assert!(d.opened().iter().all(|l| l == "open one 10.0.0.1"));
}

/// §5.3 (B13 kept as 0.8): after success the next packet starts fresh, so back-to-back
/// knocks work and a one-step door fires on every matching packet.
#[test]
fn after_success_the_next_packet_starts_fresh() {
    let mut d = Driver::new(vec![door("a", "7000,8000"), door("one", "5000:udp")]);
    d.knock(ms(0), v4(1), &[7000, 8000, 7000, 8000]);
    assert_eq!(d.opened().len(), 2);
    for i in 0..5 {
        assert_eq!(
            d.udp(ms(1000 + i), v4(1), 5000),
            strings(&["stage one 10.0.0.1 1", "open one 10.0.0.1"])
        );
    }
}

/// Target doors accept only their target; local addresses then don't count for them. Doors
/// without Target accept the local addresses only, once they are known.
#[test]
fn target_doors_and_local_addresses() {
    let router: IpAddr = "192.168.1.10".parse().unwrap();
    let mut target = door("fwd", "7000,8000");
    target.target = Some(router);
    let mut d = Driver::new(vec![target, door("local", "7000,9000")]);
    d.matcher
        .set_local_addresses(LocalAddresses::List(vec![server()]));

    // To the server: only `local` starts.
    assert_eq!(
        d.syn(ms(0), v4(1), 7000),
        strings(&["stage local 10.0.0.1 1"])
    );
    // To the router: `fwd` starts; `local`'s attempt (for the server) is unaffected.
    let to_router = |at, port| PacketEvent::tcp(at, v4(1), router, port, TcpFlags::SYN);
    assert_eq!(
        d.packet(ms(10), to_router(ms(10), 7000)),
        strings(&["stage fwd 10.0.0.1 1"])
    );
    assert_eq!(
        d.packet(ms(20), to_router(ms(20), 8000)),
        strings(&["stage fwd 10.0.0.1 2", "open fwd 10.0.0.1"])
    );
    d.syn(ms(30), v4(1), 9000);
    assert_eq!(
        d.opened(),
        strings(&["open fwd 10.0.0.1", "open local 10.0.0.1"])
    );

    // To an address that is neither local nor a target: not admitted.
    let elsewhere: IpAddr = "10.0.0.99".parse().unwrap();
    let stray = PacketEvent::tcp(ms(40), v4(2), elsewhere, 7000, TcpFlags::SYN);
    assert!(d.packet(ms(40), stray).is_empty());
    assert_eq!(d.counters().ignored_not_admitted, 1);

    // A target written in non-canonical IPv6 form still matches (addresses, not text).
    let mut v6door = door("v6", "7000");
    v6door.target = Some("fd99:0:0::2".parse().unwrap());
    let mut d = Driver::new(vec![v6door]);
    let to = "fd99::2".parse().unwrap();
    let out = d.packet(
        ms(0),
        PacketEvent::tcp(ms(0), v6(1), to, 7000, TcpFlags::SYN),
    );
    assert_eq!(out, strings(&["stage v6 fd00::1 1", "open v6 fd00::1"]));
}

/// IPv4 and IPv6 sources are separate identities.
#[test]
fn ipv6_sources_are_separate_identities() {
    let mut d = Driver::new(vec![door("a", "7000,8000,9000")]);
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(10), v6(1), 7000);
    d.syn(ms(20), v6(1), 8000);
    // The v4 attempt is not affected by the v6 knocks.
    d.knock(ms(30), v4(1), &[8000, 9000]);
    d.syn(ms(300), v6(1), 9000);
    assert_eq!(d.opened(), strings(&["open a 10.0.0.1", "open a fd00::1"]));
}

/// A stop command comes due exactly cmd_timeout after the open; only when the door has one
/// for the source's family.
#[test]
fn close_comes_due_cmd_timeout_after_the_open() {
    let mut with_stop = with_commands(door("a", "7000,8000"), Duration::from_millis(10_500));
    with_stop.start_command_6 = Some(String::new());
    let mut d = Driver::new(vec![with_stop, door("plain", "6000")]);
    d.knock(ms(1000), v4(1), &[7000, 8000]);
    assert_eq!(d.matcher.pending_closes(), 1);
    assert_eq!(d.matcher.poll_timeout(), Some(ms(1100 + 10_500)));
    assert!(d.run_until(ms(11_599)).is_empty());
    assert_eq!(
        d.run_until(ms(20_000)),
        vec![(ms(11_600), "close a 10.0.0.1".to_owned())]
    );
    assert_eq!(d.counters().closes_fired, 1);

    // No stop command for IPv6 (empty start_command_6), none for a door without commands.
    d.knock(ms(30_000), v6(1), &[7000, 8000]);
    d.syn(ms(31_000), v4(1), 6000);
    assert_eq!(d.opened().len(), 3);
    assert_eq!(d.matcher.pending_closes(), 0);
    assert_eq!(d.matcher.poll_timeout(), None);
}

/// Reload discards attempts but keeps pending stop commands, which still close on time and
/// name the old door.
#[test]
fn reload_keeps_pending_closes_and_discards_attempts() {
    let mut d = Driver::new(vec![with_commands(
        door("a", "7000,8000"),
        Duration::from_secs(10),
    )]);
    d.knock(ms(0), v4(1), &[7000, 8000]);
    d.syn(ms(500), v4(2), 7000);
    assert_eq!(d.matcher.attempts_in_progress(), 1);

    d.matcher
        .replace_config(ms(1000), &config(vec![door("b", "7000,8000")]));
    assert!(d.drain().is_empty());
    assert_eq!(d.matcher.attempts_in_progress(), 0);
    assert_eq!(d.counters().attempts_discarded, 1);
    // The discarded attempt does not continue.
    assert_eq!(d.syn(ms(1100), v4(2), 8000), Vec::<String>::new());
    assert_eq!(
        d.run_until(ms(60_000)),
        vec![(ms(10_100), "close a 10.0.0.1".to_owned())]
    );
    // The new config is live.
    d.knock(ms(61_000), v4(3), &[7000, 8000]);
    assert!(d.opened().contains(&"open b 10.0.0.3".to_owned()));
}

/// One-time sequences: after a use the daemon installs the next sequence; other sources'
/// attempts on the door start afresh; an empty sequence disables the door.
#[test]
fn one_time_sequence_replacement() {
    let mut d = Driver::new(vec![door("ots", "1000,2000,3000")]);
    d.syn(ms(0), v4(2), 1000); // .2 at stage 1
    d.knock(ms(100), v4(1), &[1000, 2000, 3000]);
    assert_eq!(d.opened(), strings(&["open ots 10.0.0.1"]));

    d.matcher.set_door_sequence(
        DoorId::from_index(0),
        vec![Knock::udp(4000), Knock::tcp(5000), Knock::tcp(6000)],
    );
    assert_eq!(
        d.matcher.door(DoorId::from_index(0)).unwrap().sequence[0],
        Knock::udp(4000)
    );
    // .2 starts afresh: the rest of the new sequence alone does not open.
    d.syn(ms(1000), v4(2), 5000);
    d.syn(ms(1100), v4(2), 6000);
    assert_eq!(d.opened(), strings(&["open ots 10.0.0.1"]));
    d.udp(ms(1200), v4(2), 4000);
    d.syn(ms(1300), v4(2), 5000);
    d.syn(ms(1400), v4(2), 6000);
    assert_eq!(
        d.opened(),
        strings(&["open ots 10.0.0.1", "open ots 10.0.0.2"])
    );
    // The old sequence no longer works.
    d.knock(ms(2000), v4(3), &[1000, 2000, 3000]);
    assert_eq!(d.opened().len(), 2);
    assert_eq!(d.counters().ignored_unknown_port, 3);

    // A shorter sequence drops attempts already past it; empty disables the door.
    d.udp(ms(3000), v4(4), 4000);
    d.syn(ms(3100), v4(4), 5000);
    d.matcher.set_door_sequence(
        DoorId::from_index(0),
        vec![Knock::tcp(7000), Knock::tcp(7001)],
    );
    assert_eq!(d.matcher.attempts_in_progress(), 0);
    d.syn(ms(4000), v4(5), 7000);
    d.matcher
        .set_door_sequence(DoorId::from_index(0), Vec::new());
    assert_eq!(d.matcher.attempts_in_progress(), 0);
    assert_eq!(d.counters().attempts_discarded, 3);
    assert!(d.syn(ms(4100), v4(5), 7001).is_empty());
    assert!(d.syn(ms(4200), v4(6), 7000).is_empty());
    // An unknown door is ignored.
    d.matcher
        .set_door_sequence(DoorId::from_index(9), vec![Knock::tcp(1)]);
}

/// Issue 10 item 1 (one-time sequences partly replayable): source B knocks the first two
/// steps beside A; A completes and the door's sequence advances; B then sends only the last
/// step of the new sequence (or sprays ports). B must not open: a sequence change starts
/// every attempt on that door afresh.
#[test]
fn issue10_1_sequence_change_restarts_every_attempt_on_the_door() {
    let mut d = Driver::new(vec![
        door("ots", "1000,2000,3000"),
        door("other", "1000,2500"),
    ]);
    d.syn(ms(0), v4(2), 1000);
    d.syn(ms(10), v4(2), 2000); // B at stage 2 of "ots"
    d.knock(ms(100), v4(1), &[1000, 2000, 3000]); // A opens
    assert_eq!(d.opened(), strings(&["open ots 10.0.0.1"]));
    d.syn(ms(400), v4(3), 1000); // C at stage 1 of "other" (and of "ots")

    d.matcher.set_door_sequence(
        DoorId::from_index(0),
        vec![Knock::tcp(4000), Knock::tcp(5000), Knock::tcp(6000)],
    );
    assert!(d.syn(ms(1000), v4(2), 6000).is_empty(), "last step alone");
    for port in 5500..=6500 {
        d.syn(ms(1001), v4(2), port); // a spray around the last step
    }
    assert_eq!(d.opened(), strings(&["open ots 10.0.0.1"]));
    // B's attempt on "ots" was dropped (and C's), counted as discarded.
    assert_eq!(d.counters().attempts_discarded, 2);
    // Other doors' attempts are untouched: C continues "other".
    d.syn(ms(1100), v4(3), 2500);
    assert_eq!(
        d.opened(),
        strings(&["open ots 10.0.0.1", "open other 10.0.0.3"])
    );
    // The new sequence opens when knocked from the start.
    d.knock(ms(2000), v4(2), &[4000, 5000, 6000]);
    assert_eq!(d.opened().len(), 3);
}

/// Issue 11, duplicate-tolerant doors: with `AllowDuplicates`, `7000 7000 8000 9000` opens a
/// 7000,8000,9000 door (the repeat of the step just matched is ignored); without it, the
/// repeat invalidates the attempt as in knockd 0.8. Only the step just matched is forgiven.
#[test]
fn allow_duplicates_ignores_a_repeat_of_the_step_just_matched() {
    let mut tolerant = door("d", "7000,8000,9000");
    tolerant.allow_duplicates = true;
    let mut d = Driver::new(vec![tolerant.clone()]);
    d.knock(ms(0), v4(1), &[7000, 7000, 8000, 8000, 8000, 9000]);
    assert_eq!(d.opened(), strings(&["open d 10.0.0.1"]));
    assert_eq!(d.counters().ignored_duplicates, 3);
    assert_eq!(d.counters().attempts_invalidated, 0);
    // An older step is still a wrong knock.
    let out = d.knock(ms(5000), v4(2), &[7000, 8000, 7000]);
    assert_eq!(out.last().unwrap(), "invalid d 10.0.0.2 2");

    let mut strict = Driver::new(vec![door("d", "7000,8000,9000")]);
    let out = strict.knock(ms(0), v4(1), &[7000, 7000, 8000, 9000]);
    assert!(strict.opened().is_empty(), "{out:?}");
    assert_eq!(strict.counters().attempts_invalidated, 1);
    assert_eq!(strict.counters().ignored_duplicates, 0);

    // A sequence that repeats a step itself advances first, then tolerates further repeats.
    let mut repeat = door("r", "7000,7000,8000");
    repeat.allow_duplicates = true;
    let mut d = Driver::new(vec![repeat]);
    d.knock(ms(0), v4(3), &[7000, 7000, 7000, 8000]);
    assert_eq!(d.opened(), strings(&["open r 10.0.0.3"]));
}

/// The source cap evicts the oldest tracked source (among those at their first step)
/// first, counting it.
#[test]
fn source_cap_evicts_the_oldest_first() {
    let mut d = Driver::with_limits(
        vec![door("a", "7000,8000,9000"), door("b", "7000,7500,9500")],
        Limits::default().with_max_sources(2),
    );
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(10), v4(2), 7000);
    d.syn(ms(20), v4(1), 9999); // activity does not refresh: order is creation order
    d.syn(ms(30), v4(3), 7000); // evicts .1 (two attempts: a and b)
    assert_eq!(d.matcher.tracked_sources(), 2);
    let c = d.counters();
    assert_eq!((c.sources_evicted, c.attempts_evicted), (1, 2));
    // .1's progress is gone: 8000 is not a first step.
    assert!(d.syn(ms(40), v4(1), 8000).is_empty());
    d.knock(ms(50), v4(2), &[8000, 9000]);
    d.knock(ms(60), v4(3), &[7500, 9500]);
    assert_eq!(d.opened(), strings(&["open a 10.0.0.2", "open b 10.0.0.3"]));

    // A source whose attempt ended and restarted is re-queued as the newest.
    let mut d = Driver::with_limits(
        vec![door("a", "7000,8000")],
        Limits::default().with_max_sources(2),
    );
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(10), v4(2), 7000);
    d.syn(ms(20), v4(1), 9999); // no door: ignored
    d.syn(ms(30), v4(1), 8000); // .1 opens, untracked
    d.syn(ms(40), v4(1), 7000); // .1 tracked again, newest
    d.syn(ms(50), v4(3), 7000); // evicts .2
    d.syn(ms(60), v4(1), 8000);
    assert!(d.syn(ms(70), v4(2), 8000).is_empty());
    assert_eq!(d.opened(), strings(&["open a 10.0.0.1", "open a 10.0.0.1"]));
    assert_eq!(d.counters().sources_evicted, 1);
}

/// The pending-close cap fires the one due first early (never leaves a hole open).
#[test]
fn pending_close_cap_fires_the_first_due_early() {
    let mut d = Driver::with_limits(
        vec![with_commands(door("a", "7000"), Duration::from_secs(10))],
        Limits::default().with_max_pending_closes(2),
    );
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(10), v4(2), 7000);
    assert_eq!(
        d.syn(ms(20), v4(3), 7000),
        strings(&["stage a 10.0.0.3 1", "open a 10.0.0.3", "close a 10.0.0.1"])
    );
    assert_eq!(d.counters().closes_fired_early, 1);
    assert_eq!(d.matcher.pending_closes(), 2);
    assert_eq!(
        d.run_until(ms(60_000)),
        vec![
            (ms(10_010), "close a 10.0.0.2".to_owned()),
            (ms(10_020), "close a 10.0.0.3".to_owned()),
        ]
    );

    // A limit of 0 closes at once.
    let mut d = Driver::with_limits(
        vec![with_commands(door("a", "7000"), Duration::from_secs(10))],
        Limits::default().with_max_pending_closes(0),
    );
    assert_eq!(
        d.syn(ms(0), v4(1), 7000),
        strings(&["stage a 10.0.0.1 1", "open a 10.0.0.1", "close a 10.0.0.1"])
    );
}

/// `schedule_close` re-arms a stop (restart); `take_pending_closes` hands all out (shutdown).
#[test]
fn schedule_and_take_pending_closes() {
    let mut d = Driver::new(vec![with_commands(
        door("a", "7000"),
        Duration::from_secs(10),
    )]);
    let door_ref = d.matcher.door(DoorId::from_index(0)).unwrap().clone();
    d.matcher.schedule_close(door_ref.clone(), v4(9), ms(5_000));
    d.matcher.schedule_close(door_ref.clone(), v4(8), ms(500));
    assert_eq!(d.matcher.poll_timeout(), Some(ms(500)));
    d.syn(ms(1000), v4(1), 7000); // the driver fires .8 first, on time
    assert_eq!(d.log[0], (ms(500), "close a 10.0.0.8".to_owned()));
    let taken: Vec<String> = d.matcher.take_pending_closes().iter().map(render).collect();
    assert_eq!(taken, strings(&["close a 10.0.0.9", "close a 10.0.0.1"]));
    assert_eq!(d.matcher.poll_timeout(), None);
    let c = d.counters();
    assert_eq!(
        (c.closes_scheduled, c.closes_fired, c.closes_taken),
        (3, 1, 2)
    );
}

/// An early `handle_timeout` is a no-op; an instant earlier than one already seen counts as
/// the latest one.
#[test]
fn early_timeouts_are_no_ops_and_time_never_goes_back() {
    let mut d = Driver::new(vec![with_timeout(
        door("a", "7000,8000"),
        Duration::from_secs(3),
    )]);
    d.syn(ms(1000), v4(1), 7000);
    d.matcher.handle_timeout(ms(3999));
    assert!(d.drain().is_empty());
    d.matcher.handle_timeout(ms(500)); // backwards: treated as 3.999 s
    assert!(d.drain().is_empty());
    assert_eq!(d.matcher.attempts_in_progress(), 1);
    // A packet stamped in the past is taken at the latest instant: still in time.
    d.matcher.handle_packet(&PacketEvent::tcp(
        ms(2000),
        v4(1),
        server(),
        8000,
        TcpFlags::SYN,
    ));
    assert_eq!(
        d.drain(),
        strings(&["stage a 10.0.0.1 2", "open a 10.0.0.1"])
    );
}

/// Deadline and eviction queues stay within 2× their live entries under churn at one
/// instant (a replayed flood with identical timestamps), so memory is bounded.
/// A flood of spoofed sources that time out (below the source cap): each source leaves the
/// FIFOs when it times out, as it leaves the table, so they hold exactly the live sources
/// and are never compacted (which looks every entry up).
#[test]
fn sources_that_time_out_leave_the_fifo_at_once() {
    let mut d = Driver::new(vec![with_timeout(
        door("a", "7000,8000"),
        Duration::from_millis(100),
    )]);
    for n in 0..2_000_u16 {
        let source = IpAddr::from([10, 2, (n >> 8) as u8, n as u8]);
        d.matcher.handle_packet(&PacketEvent::tcp(
            ms(u64::from(n)),
            source,
            server(),
            7000,
            TcpFlags::SYN,
        ));
        while d.matcher.poll_action().is_some() {}
        let sources = d.matcher.tracked_sources();
        assert_eq!(d.matcher.sources.fifo.len(), sources, "after packet {n}");
        assert_eq!(d.matcher.deadlines.entries, sources, "after packet {n}");
    }
    assert_eq!(d.counters().attempts_expired, 1_900);

    // Sources past a first step (promoted: an entry in each FIFO) leave both.
    let mut d = Driver::new(vec![with_timeout(
        door("a", "7000,8000,9000"),
        Duration::from_millis(100),
    )]);
    for n in 0..2_000_u16 {
        let source = IpAddr::from([10, 3, (n >> 8) as u8, n as u8]);
        for port in [7000, 8000] {
            d.matcher.handle_packet(&PacketEvent::tcp(
                ms(u64::from(n)),
                source,
                server(),
                port,
                TcpFlags::SYN,
            ));
        }
        while d.matcher.poll_action().is_some() {}
        let sources = d.matcher.tracked_sources();
        assert_eq!(d.matcher.sources.fifo.len(), sources, "after source {n}");
        assert_eq!(d.matcher.sources.fifo_advanced.len(), sources);
    }
    assert_eq!(d.counters().attempts_expired, 1_900);
}

#[test]
fn bookkeeping_queues_stay_bounded_under_churn() {
    let mut d = Driver::with_limits(
        vec![door("a", "7000,8000"), door("b", "7000,9000")],
        Limits::default().with_max_sources(100),
    );
    for round in 0..50_u16 {
        for n in 0..200_u16 {
            let source = IpAddr::from([10, 1, (n >> 8) as u8, n as u8]);
            d.matcher.handle_packet(&PacketEvent::tcp(
                ms(0),
                source,
                server(),
                7000,
                TcpFlags::SYN,
            ));
            if (n + round) % 3 == 0 {
                d.matcher.handle_packet(&PacketEvent::tcp(
                    ms(0),
                    source,
                    server(),
                    6999 + 1000 * (n % 2),
                    TcpFlags::SYN,
                ));
            }
            while d.matcher.poll_action().is_some() {}
            let live = d.matcher.attempts_in_progress();
            assert!(d.matcher.deadlines.entries <= 2 * live + COMPACTION_SLACK + 2);
            let sources = d.matcher.tracked_sources();
            assert!(
                d.matcher.sources.fifo.len() + d.matcher.sources.fifo_advanced.len()
                    <= 2 * sources + COMPACTION_SLACK + 1
            );
            assert!(sources <= 100);
        }
    }
    assert!(d.counters().sources_evicted > 0);
    // Compaction kept every live entry: all attempts still expire, every source leaves.
    let live = d.matcher.attempts_in_progress() as u64;
    assert!(live > 0);
    let expired_before = d.counters().attempts_expired;
    d.matcher.handle_timeout(Instant::from_secs(3600));
    while d.matcher.poll_action().is_some() {}
    assert_eq!(d.counters().attempts_expired - expired_before, live);
    assert_eq!(
        (
            d.matcher.attempts_in_progress(),
            d.matcher.tracked_sources()
        ),
        (0, 0)
    );
    assert_eq!(d.matcher.deadlines.entries, 0);
    assert_eq!(d.matcher.poll_timeout(), None);
}

/// Several doors sharing a first step: more attempts than fit inline spill and still work.
#[test]
fn many_doors_sharing_a_first_step() {
    let doors: Vec<Door> = (0..6)
        .map(|i| door(&format!("d{i}"), &format!("1000,{}", 2000 + i)))
        .collect();
    let mut d = Driver::new(doors);
    assert_eq!(d.syn(ms(0), v4(1), 1000).len(), 6);
    assert_eq!(d.matcher.attempts_in_progress(), 6);
    let out = d.syn(ms(10), v4(1), 2005);
    assert_eq!(out.len(), 7);
    assert_eq!(d.opened(), strings(&["open d5 10.0.0.1"]));
    assert_eq!(d.matcher.attempts_in_progress(), 0);
}

/// Issue 10 item 16: the memory per tracked source stays within the documented bound,
/// whatever the cap (just below and above the table's power-of-two thresholds) and under
/// churn (eviction leaves tombstones; promotions fill the advanced FIFO; attempts expire).
#[test]
fn issue10_16_tracking_memory_stays_within_the_documented_bound() {
    // The per-source parts the bound is made of.
    assert_eq!(size_of::<SourceState>(), 64);
    assert_eq!(size_of::<FifoEntry>(), 24);
    assert_eq!(size_of::<DeadlineEntry>(), 32);
    assert_eq!(Matcher::BYTES_PER_SOURCE, 298 + 240 + 128);
    for cap in [1, 100, 1000, 1792, 1793, 3584, 3585, 8192] {
        let mut d = Driver::with_limits(
            vec![with_timeout(
                door("a", "7000,8000,9000"),
                Duration::from_millis(50),
            )],
            Limits::default().with_max_sources(cap),
        );
        let bound = cap * Matcher::BYTES_PER_SOURCE + Matcher::TRACKING_OVERHEAD;
        let mut worst = 0;
        for n in 0..(6 * cap as u32).max(2000) {
            let at = Instant::from_micros(u64::from(n) * 10);
            let source = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            d.matcher.handle_timeout(at);
            d.matcher
                .handle_packet(&PacketEvent::tcp(at, source, server(), 7000, TcpFlags::SYN));
            if n % 3 == 0 {
                // A third of the sources get past their first step (the advanced FIFO).
                d.matcher.handle_packet(&PacketEvent::tcp(
                    at,
                    source,
                    server(),
                    8000,
                    TcpFlags::SYN,
                ));
            }
            while d.matcher.poll_action_ref().is_some() {}
            worst = worst.max(d.matcher.tracking_memory());
            assert!(
                d.matcher.tracking_memory() <= bound,
                "cap {cap}: {} bytes > bound {bound}",
                d.matcher.tracking_memory()
            );
        }
        assert!(d.matcher.counters().sources_evicted > 0 || cap >= 2000);
        println!(
            "cap {cap}: at most {worst} bytes, {} per source (bound {})",
            worst / cap,
            Matcher::BYTES_PER_SOURCE
        );
    }
}

/// `poll_action_ref` gives the same actions as `poll_action`, and actions still queued when
/// the doors change keep naming the door as it was when they were emitted.
#[test]
fn borrowed_views_and_actions_queued_across_door_changes() {
    let mut d = Driver::new(vec![door("a", "7000,8000")]);
    d.matcher.handle_packet(&PacketEvent::tcp(
        ms(0),
        v4(1),
        server(),
        7000,
        TcpFlags::SYN,
    ));
    let view = d.matcher.poll_action_ref().expect("a stage");
    assert_eq!(view.kind, ActionKind::Stage);
    assert_eq!((view.source, view.stage), (v4(1), 1));
    assert_eq!(render(&view.to_action()), "stage a 10.0.0.1 1");
    assert!(d.matcher.poll_action_ref().is_none());

    // Queued, then the sequence changes: the action carries the old sequence.
    d.matcher.handle_packet(&PacketEvent::tcp(
        ms(10),
        v4(2),
        server(),
        7000,
        TcpFlags::SYN,
    ));
    d.matcher
        .set_door_sequence(DoorId::from_index(0), vec![Knock::tcp(1), Knock::tcp(2)]);
    // Queued, then a reload: the action names the door of the old configuration.
    d.matcher
        .handle_packet(&PacketEvent::tcp(ms(20), v4(3), server(), 1, TcpFlags::SYN));
    d.matcher
        .replace_config(ms(30), &config(vec![door("b", "7000,8000")]));
    let Some(Action::Stage { door: first, .. }) = d.matcher.poll_action() else {
        panic!("a stage");
    };
    assert_eq!(first.sequence, vec![Knock::tcp(7000), Knock::tcp(8000)]);
    let second = d.matcher.poll_action_ref().expect("a stage");
    assert_eq!(second.door.name, "a");
    assert_eq!(second.door.sequence, vec![Knock::tcp(1), Knock::tcp(2)]);
    assert!(d.matcher.poll_action().is_none());
}

/// More distinct steps than the linear index holds: the hash-map index gives the same
/// results.
#[test]
fn large_configs_use_the_hashed_step_index() {
    let doors: Vec<Door> = (0..40_u16)
        .map(|i| door(&format!("d{i}"), &format!("{},{}:udp", 1000 + i, 2000 + i)))
        .collect();
    let mut d = Driver::new(doors);
    assert!(!d.matcher.inner.doors.by_knock.many.is_empty());
    assert!(d.matcher.inner.doors.by_knock.few.is_empty());
    d.syn(ms(0), v4(1), 1033);
    d.udp(ms(10), v4(1), 2033);
    d.syn(ms(20), v4(2), 1039);
    d.udp(ms(30), v4(2), 2038); // wrong door's second step
    assert!(d.syn(ms(40), v4(3), 3000).is_empty());
    assert_eq!(d.opened(), strings(&["open d33 10.0.0.1"]));
    assert_eq!(d.counters().attempts_invalidated, 1);
    assert_eq!(d.counters().ignored_unknown_port, 1);
}

/// `handle_packets` (with its look-ahead, active beyond 64 tracked sources) emits exactly
/// what `handle_packet` per packet does.
#[test]
fn batched_packets_match_single_packets() {
    let doors = || {
        vec![
            with_timeout(door("a", "7000,8000,9000"), Duration::from_secs(2)),
            door("b", "7000,8000"),
        ]
    };
    let mut single = Matcher::new(&config(doors()));
    let mut batched = Matcher::new(&config(doors()));
    let ports = [7000, 8000, 9000, 7000, 6000, 8000];
    let mut batch = Vec::new();
    for round in 0..40_u64 {
        let now = ms(round * 150);
        batch.clear();
        for n in 0..200_u32 {
            let source = IpAddr::from([10, 2, (n >> 8) as u8, n as u8]);
            let port = ports[((n as u64 + round) % ports.len() as u64) as usize];
            batch.push(PacketEvent::tcp(now, source, server(), port, TcpFlags::SYN));
        }
        single.handle_timeout(now);
        let actions = feed_both(&mut single, &mut batched, &batch, &format!("round {round}"));
        assert!(!actions.is_empty());
    }
    assert!(batched.tracked_sources() > 64);
    assert_eq!(single.counters(), batched.counters());
}

/// Feeds `batch` to `single` one packet at a time and to `batched` with `handle_packets`;
/// both must emit the same actions, which are returned (rendered).
fn feed_both(
    single: &mut Matcher,
    batched: &mut Matcher,
    batch: &[PacketEvent],
    context: &str,
) -> Vec<String> {
    for packet in batch {
        single.handle_packet(packet);
    }
    batched.handle_packets(batch);
    let one_by_one: Vec<String> = std::iter::from_fn(|| single.poll_action())
        .map(|x| render(&x))
        .collect();
    let in_batch: Vec<String> = std::iter::from_fn(|| batched.poll_action())
        .map(|x| render(&x))
        .collect();
    assert_eq!(one_by_one, in_batch, "{context}");
    one_by_one
}

/// `handle_packets` looks a chunk's sources up before processing it; packets of the chunk
/// that create sources can grow the table (moving every entry) or evict sources at the cap,
/// so the buckets noted for the later packets are stale by then. They must still be
/// handled exactly as one at a time: same actions, same counters.
#[test]
fn batched_packets_match_single_packets_across_growth_and_eviction() {
    for max_sources in [300, 100_000] {
        let doors = || vec![door("a", "7000,8000,9000,6000")];
        let limits = Limits::default().with_max_sources(max_sources);
        let mut single = Matcher::with_limits(&config(doors()), limits);
        let mut batched = Matcher::with_limits(&config(doors()), limits);
        let ports = [7000, 8000, 9000, 6000];
        let mut batch = Vec::new();
        let mut fresh = 0_u32;
        for round in 0..30_u64 {
            let now = ms(round);
            batch.clear();
            for n in 0..400_u32 {
                // Old sources (knocking on) interleaved with new ones (first knocks).
                let (source, port) = if n % 2 == 0 {
                    let old = (n / 2 + 37 * round as u32) % 2_000;
                    let port = ports[((old as u64 + round) % ports.len() as u64) as usize];
                    (IpAddr::from([10, 3, (old >> 8) as u8, old as u8]), port)
                } else {
                    fresh += 1;
                    (IpAddr::from([10, 4, (fresh >> 8) as u8, fresh as u8]), 7000)
                };
                batch.push(PacketEvent::tcp(now, source, server(), port, TcpFlags::SYN));
            }
            let context = format!("round {round}, cap {max_sources}");
            feed_both(&mut single, &mut batched, &batch, &context);
        }
        assert_eq!(single.counters(), batched.counters());
        assert_eq!(single.tracked_sources(), batched.tracked_sources());
        if max_sources == 300 {
            assert!(batched.counters().sources_evicted > 1_000);
        } else {
            // Grown past the initial capacity (1 024) while batches were in flight.
            assert!(batched.tracked_sources() > 4 * sources::INITIAL_SOURCE_CAPACITY);
        }
    }
}

/// A flood of first knocks from spoofed sources evicts sources at their first step, never a
/// knocker already past one; only when every tracked source is past its first step does the
/// one promoted longest ago go.
#[test]
fn eviction_spares_sources_past_their_first_step() {
    let mut d = Driver::with_limits(
        vec![door("a", "7000,8000,9000")],
        Limits::default().with_max_sources(3),
    );
    d.syn(ms(0), v4(1), 7000);
    d.syn(ms(10), v4(1), 8000); // .1 is past its first step
    for n in 0..50 {
        d.syn(ms(20 + n), IpAddr::from([192, 0, 2, n as u8]), 7000); // the flood
    }
    assert_eq!(d.counters().sources_evicted, 48);
    assert_eq!(d.matcher.tracked_sources(), 3);
    assert_eq!(
        d.syn(ms(100), v4(1), 9000),
        strings(&["stage a 10.0.0.1 3", "open a 10.0.0.1"])
    );

    // All tracked sources advanced: the one promoted first goes first.
    let mut d = Driver::with_limits(
        vec![door("a", "7000,8000,9000")],
        Limits::default().with_max_sources(2),
    );
    d.knock(ms(0), v4(1), &[7000]);
    d.knock(ms(10), v4(2), &[7000, 8000]);
    d.syn(ms(30), v4(1), 8000); // .1 promoted after .2
    d.syn(ms(40), v4(3), 7000); // evicts .2
    assert!(d.syn(ms(50), v4(2), 9000).is_empty());
    assert_eq!(d.syn(ms(60), v4(1), 9000).len(), 2);
    let c = d.counters();
    assert_eq!((c.sources_evicted, c.attempts_evicted), (1, 1));
}

/// `Display` of actions is knockd 0.8's log wording (knockd logs it byte for byte), the
/// borrowed view displays the same, and `DoorRef` reads the door without a stutter.
#[test]
fn actions_display_in_knockd_wording() {
    let mut d = Driver::new(vec![
        with_commands(door("ssh", "7000,8000"), Duration::from_secs(1)),
        door("web", "9000,9100"),
    ]);
    let mut lines = Vec::new();
    let mut feed = |d: &mut Driver, at: Instant, source: IpAddr, port: u16| {
        d.matcher
            .handle_packet(&PacketEvent::tcp(at, source, server(), port, TcpFlags::SYN));
        while let Some(view) = d.matcher.poll_action_ref() {
            let text = view.to_string();
            assert_eq!(view.to_action().to_string(), text);
            lines.push(text);
        }
    };
    feed(&mut d, ms(0), v4(1), 7000);
    feed(&mut d, ms(10), v4(1), 8000);
    feed(&mut d, ms(20), v4(2), 9000);
    feed(&mut d, ms(30), v4(2), 7000);
    feed(&mut d, ms(40), v4(3), 9000);
    d.matcher.handle_timeout(ms(30_000));
    while let Some(action) = d.matcher.poll_action() {
        lines.push(action.to_string());
    }
    assert_eq!(
        lines,
        strings(&[
            "10.0.0.1: ssh: Stage 1",
            "10.0.0.1: ssh: Stage 2",
            "10.0.0.1: ssh: OPEN SESAME",
            "10.0.0.2: web: Stage 1",
            "10.0.0.2: web: knock invalidated (stage 1)",
            "10.0.0.3: web: Stage 1",
            "10.0.0.1: ssh: command timeout",
            "10.0.0.3: web: sequence timeout (stage 1)",
        ])
    );
    let door = d.matcher.door(DoorId::from_index(1)).unwrap();
    assert_eq!((door.id().index(), door.name.as_str()), (1, "web"));
    assert_eq!(d.matcher.door(DoorId::from_index(2)), None);
    assert_eq!(DoorId::from_index(usize::MAX).index(), u32::MAX as usize);
}

/// Time-based (TOTP) doors: the caller feeds the window's candidates, as the daemon core
/// does at every step boundary; the clock here is virtual (Unix seconds chosen by the test).
mod totp {
    use super::*;
    use crate::config::{TotpConfig, TotpSecret};
    use crate::totp::{Secret, Totp};

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    /// A Unix time inside a 30-second step (step 33 333 333 starts at 999 999 990).
    const UNIX: u64 = 1_000_000_000;

    fn totp_door(name: &str) -> (Door, Totp) {
        let secret = Secret::from_base32(SECRET).unwrap();
        let mut d = with_commands(door(name, "40000,50000"), Duration::from_secs(10));
        let settings = TotpConfig::new(TotpSecret::Inline(secret.clone()));
        let calculator = Totp::new(secret, settings.params, &d.sequence).unwrap();
        d.totp = Some(settings);
        (d, calculator)
    }

    /// A driver with the TOTP door `t` (door 0) and a fixed door `f`, window set for `unix`.
    fn driver(unix: u64) -> (Driver, Totp) {
        let (t, totp) = totp_door("t");
        let mut driver = Driver::new(vec![t, door("f", "7000,8000")]);
        set_window(&mut driver, &totp, unix);
        (driver, totp)
    }

    fn set_window(driver: &mut Driver, totp: &Totp, unix: u64) {
        let candidates = totp
            .window(unix)
            .into_iter()
            .map(|c| (c.counter, c.sequence))
            .collect();
        driver
            .matcher
            .set_door_sequences(DoorId::from_index(0), candidates);
    }

    fn ports(totp: &Totp, counter: u64) -> Vec<u16> {
        totp.sequence_for_counter(counter)
            .iter()
            .map(|k| k.port)
            .collect()
    }

    #[test]
    fn the_bases_never_open_a_totp_door() {
        let (t, _) = totp_door("t");
        let mut driver = Driver::new(vec![t]);
        assert!(driver.knock(ms(0), v4(1), &[40000, 50000]).is_empty());
        assert_eq!(driver.counters().admitted, 0);
    }

    #[test]
    fn every_code_of_the_window_opens_and_none_beyond() {
        let (mut driver, totp) = driver(UNIX);
        let now = totp.counter_at(UNIX);
        for (n, counter) in [now - 1, now, now + 1].into_iter().enumerate() {
            let at = ms(1000 * n as u64);
            let out = driver.knock(at, v4(n as u8 + 1), &ports(&totp, counter));
            assert_eq!(
                out.last().unwrap(),
                &format!("open t 10.0.0.{} code {counter}", n + 1),
                "{out:?}"
            );
        }
        for (n, counter) in [now - 2, now + 2].into_iter().enumerate() {
            let at = ms(10_000 + 1000 * n as u64);
            let out = driver.knock(at, v4(n as u8 + 10), &ports(&totp, counter));
            assert!(out.iter().all(|l| !l.starts_with("open")), "{out:?}");
        }
        assert_eq!(driver.opened().len(), 3);
    }

    #[test]
    fn a_code_opens_once_for_every_source() {
        let (mut driver, totp) = driver(UNIX);
        let code = ports(&totp, totp.counter_at(UNIX));
        let now = totp.counter_at(UNIX);
        assert_eq!(
            driver.knock(ms(0), v4(1), &code),
            [
                "stage t 10.0.0.1 1",
                "stage t 10.0.0.1 2",
                &format!("open t 10.0.0.1 code {now}")
            ]
        );
        // Again, from the same source and from another: nothing opens.
        for (n, source) in [v4(1), v4(2)].into_iter().enumerate() {
            let out = driver.knock(ms(1000 * (n as u64 + 1)), source, &code);
            assert_eq!(out.last().unwrap(), &format!("used t {source} code {now}"));
        }
        assert_eq!(driver.opened().len(), 1);
        assert_eq!(driver.counters().codes_reused, 2);
        // Still spent after the window moved on by one step (the counter stays a candidate).
        set_window(&mut driver, &totp, UNIX + 30);
        let out = driver.knock(ms(5000), v4(3), &code);
        assert_eq!(out.last().unwrap(), &format!("used t 10.0.0.3 code {now}"));
    }

    #[test]
    fn two_sources_racing_the_same_code_open_once() {
        let (mut driver, totp) = driver(UNIX);
        let now = totp.counter_at(UNIX);
        let code = ports(&totp, now);
        driver.syn(ms(0), v4(1), code[0]);
        driver.syn(ms(1), v4(2), code[0]);
        let first = driver.syn(ms(2), v4(2), code[1]);
        let second = driver.syn(ms(3), v4(1), code[1]);
        assert_eq!(
            first.last().unwrap(),
            &format!("open t 10.0.0.2 code {now}")
        );
        assert_eq!(
            second.last().unwrap(),
            &format!("used t 10.0.0.1 code {now}")
        );
        assert_eq!(driver.opened().len(), 1);
        // The spent code's stop command only for the source it opened for.
        assert_eq!(driver.matcher.pending_closes(), 1);
    }

    #[test]
    fn only_a_complete_sequence_spends_a_code() {
        let (mut driver, totp) = driver(UNIX);
        let now = totp.counter_at(UNIX);
        let code = ports(&totp, now);
        // A scan hitting the first port twice (a step, but not the next one).
        driver.syn(ms(0), v4(9), code[0]);
        let out = driver.syn(ms(1), v4(9), code[0]);
        assert_eq!(out, ["invalid t 10.0.0.9 1"]);
        let out = driver.knock(ms(100), v4(1), &code);
        assert_eq!(out.last().unwrap(), &format!("open t 10.0.0.1 code {now}"));
    }

    #[test]
    fn at_a_step_boundary_attempts_on_kept_codes_go_on() {
        let (mut driver, totp) = driver(UNIX);
        let now = totp.counter_at(UNIX);
        let (old, current) = (ports(&totp, now - 1), ports(&totp, now));
        driver.syn(ms(0), v4(1), old[0]);
        driver.syn(ms(0), v4(2), current[0]);
        // The next step begins: step now−1 leaves the window, now stays.
        let boundary = totp.next_step_boundary(UNIX);
        set_window(&mut driver, &totp, boundary);
        assert_eq!(driver.matcher.attempts_in_progress(), 1);
        let out = driver.syn(ms(100), v4(2), current[1]);
        assert_eq!(out.last().unwrap(), &format!("open t 10.0.0.2 code {now}"));
        let out = driver.syn(ms(100), v4(1), old[1]);
        assert!(out.iter().all(|l| !l.starts_with("open")), "{out:?}");
        // The step after the boundary's own (now + 2) became a candidate.
        let out = driver.knock(ms(200), v4(3), &ports(&totp, now + 2));
        assert_eq!(
            out.last().unwrap(),
            &format!("open t 10.0.0.3 code {}", now + 2)
        );
    }

    #[test]
    fn spend_code_marks_a_restored_code() {
        let (mut driver, totp) = driver(UNIX);
        let now = totp.counter_at(UNIX);
        assert!(driver.matcher.spend_code(DoorId::from_index(0), now));
        assert!(!driver.matcher.spend_code(DoorId::from_index(0), now + 5));
        assert!(!driver.matcher.spend_code(DoorId::from_index(1), now));
        let out = driver.knock(ms(0), v4(1), &ports(&totp, now));
        assert_eq!(out.last().unwrap(), &format!("used t 10.0.0.1 code {now}"));
        // Fixed doors are untouched.
        let out = driver.knock(ms(0), v4(1), &[7000, 8000]);
        assert_eq!(out.last().unwrap(), "open f 10.0.0.1");
    }

    #[test]
    fn candidates_sharing_a_first_step_are_reported_once() {
        // Hand-made candidates (a window whose codes share their first group).
        let (t, _) = totp_door("t");
        let mut driver = Driver::new(vec![t]);
        let seq = |a: u16, b: u16| vec![Knock::tcp(a), Knock::tcp(b)];
        driver.matcher.set_door_sequences(
            DoorId::from_index(0),
            vec![
                (1, seq(40001, 50001)),
                (2, seq(40001, 50002)),
                ((5 << 32) + 7, seq(40009, 50009)),
            ],
        );
        // A counter beyond 32 bits comes back whole.
        assert_eq!(
            driver.knock(ms(0), v4(7), &[40009, 50009]).last().unwrap(),
            &format!("open t 10.0.0.7 code {}", (5u64 << 32) + 7)
        );
        assert_eq!(driver.syn(ms(0), v4(1), 40001), ["stage t 10.0.0.1 1"]);
        assert_eq!(driver.matcher.attempts_in_progress(), 2);
        assert_eq!(
            driver.syn(ms(1), v4(1), 50002),
            ["stage t 10.0.0.1 2", "open t 10.0.0.1 code 2"]
        );
        // A port that is no candidate's step is ignored, as for fixed doors.
        driver.syn(ms(2), v4(2), 40001);
        assert_eq!(driver.syn(ms(3), v4(2), 50003), Vec::<String>::new());
        // A knock that fits no candidate is one invalidation.
        driver.syn(ms(4), v4(3), 40001);
        assert_eq!(driver.syn(ms(5), v4(3), 40001), ["invalid t 10.0.0.3 1"]);
        // Both candidates expiring: one timeout per source.
        let out = driver.run_until(ms(60_000));
        let timeouts: Vec<&str> = out
            .iter()
            .map(|(_, l)| l.as_str())
            .filter(|l| l.starts_with("timeout"))
            .collect();
        assert_eq!(timeouts, ["timeout t 10.0.0.2 1"], "{out:?}");
    }
}

/// A late `handle_timeout` (a daemon that batches its expiries) expires a backlog of more
/// attempts than one look-ahead chunk holds, over two `seq_timeout` classes and a stop
/// command, in exactly the order of their deadlines (an attempt before a stop command due at
/// the same instant), as if it had been called at each deadline.
#[test]
fn a_late_timeout_expires_a_backlog_in_deadline_order() {
    let a = with_timeout(door("a", "7000,8000"), Duration::from_secs(5));
    let b = with_timeout(door("b", "6000,8000"), Duration::from_secs(3));
    let c = with_commands(door("c", "9000"), Duration::from_millis(4_050));
    let mut d = Driver::new(vec![a, b, c]);
    let us = Instant::from_micros;
    let mut expected = Vec::new();
    // Class a: deadlines 5 000 ms + i ms; class b: 0.5 ms after each of them.
    for i in 0..100_u8 {
        let source = IpAddr::from([10, 1, 0, i]);
        d.syn(ms(u64::from(i)), source, 7000);
        expected.push((
            us(5_000_000 + u64::from(i) * 1000),
            format!("timeout a {source} 1"),
        ));
    }
    // The stop command comes due at 5 050 ms, with a's 51st attempt: the attempt goes first.
    d.syn(ms(1000), v4(1), 9000);
    expected.push((ms(5_050), "close c 10.0.0.1".to_owned()));
    for i in 0..100_u8 {
        let source = IpAddr::from([10, 2, 0, i]);
        d.syn(us(2_000_500 + u64::from(i) * 1000), source, 6000);
        expected.push((
            us(5_000_500 + u64::from(i) * 1000),
            format!("timeout b {source} 1"),
        ));
    }
    expected.sort_by_key(|(at, line)| (*at, line.starts_with("close")));
    assert_eq!(d.matcher.poll_expiry_timeout(), Some(ms(5_000)));
    assert_eq!(d.matcher.poll_close_timeout(), Some(ms(5_050)));
    assert_eq!(d.matcher.poll_timeout(), Some(ms(5_000)));

    d.matcher.handle_timeout(ms(10_000));
    let lines = d.drain();
    let expected: Vec<String> = expected.into_iter().map(|(_, line)| line).collect();
    assert_eq!(lines, expected);
    assert_eq!(d.counters().attempts_expired, 200);
    assert_eq!(d.matcher.tracked_sources(), 0);
    assert_eq!(d.matcher.poll_timeout(), None);
}

/// A knock that opens in the middle of a spoofed-source flood at the source cap leaves a
/// stale deadline entry deep in the queue; when it reaches the front, the next eviction
/// drops it, so the queue keeps one entry per live attempt (no compaction pass, which
/// would look every entry up, is ever needed).
#[test]
fn a_stale_deadline_entry_does_not_hold_the_queue_back_in_a_flood() {
    let mut d = Driver::with_limits(
        vec![door("a", "7000,8000")],
        Limits::default().with_max_sources(1000),
    );
    let mut flood = 0_u32;
    let mut spoof = |d: &mut Driver, count: u32| {
        for _ in 0..count {
            let source = IpAddr::from((0x0a01_0000 + flood).to_be_bytes());
            flood += 1;
            d.syn(ms(0), source, 7000);
        }
    };
    spoof(&mut d, 1500);
    d.knock(ms(0), v4(1), &[7000]);
    spoof(&mut d, 10);
    d.knock(ms(0), v4(1), &[8000]);
    assert_eq!(d.opened(), ["open a 10.0.0.1"]);
    spoof(&mut d, 1200);
    for _ in 0..3000 {
        spoof(&mut d, 1);
        let live = d.matcher.attempts_in_progress();
        assert_eq!(live, 1000);
        assert!(
            d.matcher.deadlines.entries <= live + 1,
            "{}",
            d.matcher.deadlines.entries
        );
    }
}
