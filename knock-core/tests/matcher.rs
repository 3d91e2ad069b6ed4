//! Property tests of the matcher through its public API.
//!
//! * Against a reference model: a deliberately naive transcription of knockd 0.8's algorithm
//!   (reference §5.2, one flat list of attempts, B1 fixed), the matcher emits the same actions
//!   for every call, for arbitrary configs and packet streams (IPv4 and IPv6 sources,
//!   Target doors, flags, timeouts, stop commands, batched and single packets).
//! * Soundness without any model: a door only opens for a source that knocked its sequence in
//!   order (as a subsequence of that source's packets the door accepts) within `seq_timeout`.
//! * A clean knock opens whatever other sources send meanwhile.

use std::collections::HashMap;
use std::net::IpAddr;

use knock_core::{
    Action, Config, Door, Duration, FlagRule, Instant, Knock, Limits, Matcher, PacketEvent,
    Protocol, TcpFlags,
};
use proptest::prelude::*;

const SERVER: [u8; 4] = [192, 0, 2, 1];
const OTHER_TARGET: [u8; 4] = [192, 0, 2, 2];

fn server() -> IpAddr {
    IpAddr::from(SERVER)
}

/// A source from a small pool, so that sources collide and interact: 0–3 IPv4, 4–5 IPv6.
fn source(n: u8) -> IpAddr {
    if n < 4 {
        IpAddr::from([10, 0, 0, n])
    } else {
        IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)])
    }
}

/// Ports come from a small pool so that random streams hit sequences; 9 is in no door.
fn knock_strategy() -> impl Strategy<Value = Knock> {
    (1_u16..=4, any::<bool>()).prop_map(|(port, udp)| {
        if udp {
            Knock::udp(port)
        } else {
            Knock::tcp(port)
        }
    })
}

fn flag_rule_strategy() -> impl Strategy<Value = FlagRule> {
    prop_oneof![
        3 => Just(FlagRule::ANY),
        1 => Just(FlagRule { must_set: TcpFlags::SYN, must_clear: TcpFlags::ACK }),
        1 => Just(FlagRule { must_set: TcpFlags::ACK, must_clear: TcpFlags::EMPTY }),
    ]
}

fn door_strategy() -> impl Strategy<Value = Door> {
    (
        prop::collection::vec(knock_strategy(), 1..=4),
        0_u64..=4_000,
        flag_rule_strategy(),
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => Just(Some(OTHER_TARGET))],
    )
        .prop_map(|(sequence, timeout_ms, flags, stop, target)| {
            let mut door = Door::new("d", sequence);
            door.seq_timeout = Duration::from_millis(timeout_ms);
            door.tcp_flags = flags;
            door.target = target.map(IpAddr::from);
            if stop {
                door.start_command = Some("open".into());
                door.stop_command = Some("close".into());
                door.cmd_timeout = Duration::from_millis(timeout_ms / 2);
            }
            door
        })
}

fn config_strategy() -> impl Strategy<Value = Config> {
    prop::collection::vec(door_strategy(), 1..=4).prop_map(|doors| {
        let mut config = Config::default();
        for (i, mut door) in doors.into_iter().enumerate() {
            door.name = format!("d{i}");
            config.doors.push(door);
        }
        config
    })
}

#[derive(Clone, Debug)]
enum Event {
    /// A packet after `gap_ms`.
    Packet { gap_ms: u64, packet: PacketEvent },
    /// Several packets at one instant, fed with `handle_packets`.
    Burst {
        gap_ms: u64,
        packets: Vec<PacketEvent>,
    },
    /// `handle_timeout` after `gap_ms`.
    Tick { gap_ms: u64 },
}

fn packet_strategy() -> impl Strategy<Value = PacketEvent> {
    (
        0_u8..6,
        prop_oneof![9 => Just(None), 1 => Just(Some(OTHER_TARGET))],
        prop_oneof![9 => knock_strategy(), 1 => Just(Knock::tcp(9))],
        prop_oneof![
            4 => Just(TcpFlags::SYN),
            1 => Just(TcpFlags::ACK),
            1 => Just(TcpFlags::SYN.union(TcpFlags::ACK)),
            1 => Just(TcpFlags::RST),
        ],
    )
        .prop_map(|(src, dst, knock, flags)| {
            let source = source(src);
            // Keep the families consistent (an IPv6 source to an IPv4 server is fine for the
            // matcher, but it is not what capture produces).
            let destination = match (source, dst) {
                (IpAddr::V6(_), _) => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 0xfe]),
                (IpAddr::V4(_), Some(t)) => IpAddr::from(t),
                (IpAddr::V4(_), None) => server(),
            };
            match knock.protocol {
                Protocol::Tcp => {
                    PacketEvent::tcp(Instant::ZERO, source, destination, knock.port, flags)
                }
                Protocol::Udp => PacketEvent::udp(Instant::ZERO, source, destination, knock.port),
            }
        })
}

fn event_strategy() -> impl Strategy<Value = Event> {
    let gap = prop_oneof![3 => Just(0_u64), 6 => 0_u64..1_500, 1 => 0_u64..8_000];
    prop_oneof![
        8 => (gap.clone(), packet_strategy())
            .prop_map(|(gap_ms, packet)| Event::Packet { gap_ms, packet }),
        1 => (gap.clone(), prop::collection::vec(packet_strategy(), 0..6))
            .prop_map(|(gap_ms, packets)| Event::Burst { gap_ms, packets }),
        1 => gap.prop_map(|gap_ms| Event::Tick { gap_ms }),
    ]
}

/// Renders an action as `kind door-index source [stage]`.
fn render(action: &Action) -> String {
    match action {
        Action::Stage {
            door,
            source,
            stage,
        } => format!("stage {} {source} {stage}", door.id().index()),
        Action::Open { door, source, .. } => format!("open {} {source}", door.id().index()),
        Action::Close { door, source } => format!("close {} {source}", door.id().index()),
        Action::Timeout {
            door,
            source,
            stage,
        } => {
            format!("timeout {} {source} {stage}", door.id().index())
        }
        Action::Invalidated {
            door,
            source,
            stage,
        } => {
            format!("invalid {} {source} {stage}", door.id().index())
        }
        other => format!("{other:?}"),
    }
}

/// Drains the actions, alternating between the owned and the borrowed form (they must give
/// the same sequence).
fn drain(matcher: &mut Matcher) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let action = if out.len() % 2 == 0 {
            matcher.poll_action()
        } else {
            matcher.poll_action_ref().map(|view| view.to_action())
        };
        match action {
            Some(action) => out.push(render(&action)),
            None => return out,
        }
    }
}

/// The reference model: knockd 0.8's per-packet algorithm over one flat list, without B1.
struct Model {
    doors: Vec<Door>,
    /// (source, door, stage, deadline), oldest first.
    attempts: Vec<(IpAddr, usize, usize, Instant)>,
    /// (due, door, source).
    closes: Vec<(Instant, usize, IpAddr)>,
    out: Vec<String>,
}

impl Model {
    fn accepts_destination(door: &Door, destination: IpAddr) -> bool {
        door.target.is_none_or(|t| t == destination)
    }

    fn flags_ok(door: &Door, packet: &PacketEvent) -> bool {
        packet.protocol == Protocol::Udp || door.tcp_flags.accepts(packet.tcp_flags)
    }

    fn open(&mut self, now: Instant, door: usize, source: IpAddr) {
        self.out.push(format!("open {door} {source}"));
        let d = &self.doors[door];
        if d.stop_command_for(source).is_some() {
            self.closes.push((now + d.cmd_timeout, door, source));
        }
    }

    fn advance(&mut self, now: Instant) {
        let mut kept = Vec::new();
        for (source, door, stage, deadline) in std::mem::take(&mut self.attempts) {
            if deadline <= now {
                self.out.push(format!("timeout {door} {source} {stage}"));
            } else {
                kept.push((source, door, stage, deadline));
            }
        }
        self.attempts = kept;
        let (due, pending): (Vec<_>, Vec<_>) =
            self.closes.drain(..).partition(|(at, _, _)| *at <= now);
        self.closes = pending;
        for (_, door, source) in due {
            self.out.push(format!("close {door} {source}"));
        }
    }

    fn packet(&mut self, now: Instant, p: &PacketEvent) {
        self.advance(now);
        let knock = Knock {
            port: p.destination_port,
            protocol: p.protocol,
        };
        let admitted = self.doors.iter().any(|d| {
            d.sequence.contains(&knock)
                && Self::accepts_destination(d, p.destination)
                && Self::flags_ok(d, p)
        });
        if !admitted {
            return;
        }
        let relevant: Vec<usize> = (0..self.attempts.len())
            .filter(|&i| {
                let (source, door, _, _) = self.attempts[i];
                source == p.source && Self::accepts_destination(&self.doors[door], p.destination)
            })
            .collect();
        if !relevant.is_empty() {
            let mut remove = Vec::new();
            for i in relevant {
                let (source, door, stage, _) = self.attempts[i];
                let d = &self.doors[door];
                if !Self::flags_ok(d, p) {
                    continue;
                }
                if d.sequence[stage] == knock {
                    self.attempts[i].2 += 1;
                    self.out
                        .push(format!("stage {door} {source} {}", stage + 1));
                    if stage + 1 == d.sequence.len() {
                        self.open(now, door, source);
                        remove.push(i);
                    }
                } else {
                    self.out.push(format!("invalid {door} {source} {stage}"));
                    remove.push(i);
                }
            }
            for i in remove.into_iter().rev() {
                self.attempts.remove(i);
            }
            return;
        }
        for door in 0..self.doors.len() {
            let d = &self.doors[door];
            if d.sequence[0] == knock
                && Self::accepts_destination(d, p.destination)
                && Self::flags_ok(d, p)
            {
                self.out.push(format!("stage {door} {} 1", p.source));
                if d.sequence.len() == 1 {
                    self.open(now, door, p.source);
                } else {
                    let deadline = now + d.seq_timeout;
                    self.attempts.push((p.source, door, 1, deadline));
                }
            }
        }
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.out)
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Feeds the events to a matcher, calling `check(now, packet, actions)` after each packet
/// (actions of timeouts run by the driver are checked with `packet = None`).
fn drive(
    config: &Config,
    events: &[Event],
    mut check: impl FnMut(&mut Matcher, Instant, Option<&PacketEvent>, Vec<String>),
) {
    let mut matcher = Matcher::with_limits(config, Limits::default());
    let mut now = Instant::ZERO;
    for event in events {
        let gap = match event {
            Event::Packet { gap_ms, .. } | Event::Burst { gap_ms, .. } | Event::Tick { gap_ms } => {
                *gap_ms
            }
        };
        now = now + Duration::from_millis(gap);
        match event {
            Event::Packet { packet, .. } => {
                let packet = PacketEvent {
                    timestamp: now,
                    ..*packet
                };
                matcher.handle_packet(&packet);
                let actions = drain(&mut matcher);
                check(&mut matcher, now, Some(&packet), actions);
            }
            Event::Burst { packets, .. } => {
                let packets: Vec<PacketEvent> = packets
                    .iter()
                    .map(|p| PacketEvent {
                        timestamp: now,
                        ..*p
                    })
                    .collect();
                matcher.handle_packets(&packets);
                let actions = drain(&mut matcher);
                check(&mut matcher, now, None, actions);
            }
            Event::Tick { .. } => {
                matcher.handle_timeout(now);
                let actions = drain(&mut matcher);
                check(&mut matcher, now, None, actions);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The matcher and the naive reference model agree on every call.
    #[test]
    fn matcher_agrees_with_the_reference_model(
        config in config_strategy(),
        events in prop::collection::vec(event_strategy(), 0..60),
    ) {
        let mut model = Model { doors: config.doors.clone(), attempts: Vec::new(), closes: Vec::new(), out: Vec::new() };
        let mut step = 0;
        let mut packets_fed = 0_u64;
        let mut failure = None;
        drive(&config, &events, |matcher, now, _, actions| {
            match &events[step] {
                Event::Packet { packet, .. } => {
                    model.packet(now, &PacketEvent { timestamp: now, ..*packet });
                }
                Event::Burst { packets, .. } => {
                    // Each packet carries its time: an empty burst says nothing about it.
                    if !packets.is_empty() {
                        model.advance(now);
                    }
                    for p in packets {
                        model.packet(now, &PacketEvent { timestamp: now, ..*p });
                    }
                }
                Event::Tick { .. } => model.advance(now),
            }
            packets_fed += match &events[step] {
                Event::Packet { .. } => 1,
                Event::Burst { packets, .. } => packets.len() as u64,
                Event::Tick { .. } => 0,
            };
            let c = matcher.counters();
            if failure.is_none()
                && c.admitted + c.ignored_unknown_port + c.ignored_not_admitted != packets_fed
            {
                failure = Some(format!("step {step}: {c:?} does not count {packets_fed} packets"));
            }
            let expected = model.take();
            if failure.is_none() && sorted(actions.clone()) != sorted(expected.clone()) {
                failure = Some(format!("step {step} at {now:?}: matcher {actions:?} model {expected:?}"));
            }
            if failure.is_none() && matcher.attempts_in_progress() != model.attempts.len() {
                failure = Some(format!("step {step}: {} attempts, model {}", matcher.attempts_in_progress(), model.attempts.len()));
            }
            step += 1;
        });
        prop_assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    }

    /// A door opens only for a source that knocked its sequence in order (as a subsequence
    /// of that source's packets the door takes) within `seq_timeout` of the first knock, the
    /// last step being the packet that opened it.
    #[test]
    fn opens_only_after_the_sequence_in_order_within_the_timeout(
        config in config_strategy(),
        events in prop::collection::vec(event_strategy(), 0..80),
    ) {
        // Single packets only, so that every open is attributed to its packet.
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| !matches!(e, Event::Burst { .. }))
            .collect();
        let mut history: HashMap<IpAddr, Vec<(Instant, PacketEvent)>> = HashMap::new();
        let mut violation = None;
        drive(&config, &events, |_, now, packet, actions| {
            let Some(packet) = packet else { return };
            history.entry(packet.source).or_default().push((now, *packet));
            for action in &actions {
                let Some(rest) = action.strip_prefix("open ") else { continue };
                let (door, source) = rest.split_once(' ').unwrap();
                let door = &config.doors[door.parse::<usize>().unwrap()];
                let source: IpAddr = source.parse().unwrap();
                if source != packet.source || !knocked_in_order(door, &history[&source], now) {
                    violation = Some(format!("{action} at {now:?} without a valid knock"));
                }
            }
        });
        prop_assert!(violation.is_none(), "{}", violation.unwrap_or_default());
    }

    /// A clean knock opens its door whatever other sources send at the same time.
    #[test]
    fn a_clean_knock_opens_despite_other_sources_noise(
        config in config_strategy(),
        which in any::<prop::sample::Index>(),
        noise in prop::collection::vec((packet_strategy(), 0_u64..200), 0..80),
        knocker in 0_u8..6,
    ) {
        let door_index = which.index(config.doors.len());
        let door = config.doors[door_index].clone();
        let source = source(knocker);
        let destination = match (door.target, source) {
            (Some(t), _) => t,
            (None, IpAddr::V4(_)) => server(),
            (None, IpAddr::V6(_)) => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 0xfe]),
        };
        // A knock that fits: the door's own flags, steps spread evenly within the timeout.
        let flags = door.tcp_flags.must_set;
        let window = door.seq_timeout.as_micros() as u64;
        prop_assume!(door.sequence.len() == 1 || window >= 2 * door.sequence.len() as u64);
        let spacing = if door.sequence.len() > 1 { (window - 1) / door.sequence.len() as u64 } else { 0 };
        let mut timeline: Vec<(u64, PacketEvent)> = door
            .sequence
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let at = 1_000 + i as u64 * spacing;
                let p = match k.protocol {
                    Protocol::Tcp => PacketEvent::tcp(Instant::ZERO, source, destination, k.port, flags),
                    Protocol::Udp => PacketEvent::udp(Instant::ZERO, source, destination, k.port),
                };
                (at, p)
            })
            .collect();
        let mut at = 0;
        for (p, gap) in noise {
            at += gap * 1_000;
            if p.source != source {
                timeline.push((at, p));
            }
        }
        // Stable sort: the clean knock keeps its order, noise lands around and between it.
        timeline.sort_by_key(|(t, _)| *t);
        let mut matcher = Matcher::new(&config);
        let mut opened = false;
        for (t, p) in timeline {
            let now = Instant::from_micros(t);
            while let Some(due) = matcher.poll_timeout().filter(|d| *d <= now) {
                matcher.handle_timeout(due);
                while matcher.poll_action().is_some() {}
            }
            matcher.handle_packet(&PacketEvent { timestamp: now, ..p });
            while let Some(action) = matcher.poll_action() {
                if let Action::Open { door, source: s, .. } = &action {
                    opened |= door.id().index() == door_index && *s == source;
                }
            }
        }
        prop_assert!(opened, "the clean knock of door {door_index} by {source} did not open");
    }
}

/// Greedy backward subsequence match: the latest possible positions give the latest first
/// knock, so if any in-order subsequence fits the window, this one does.
fn knocked_in_order(door: &Door, packets: &[(Instant, PacketEvent)], now: Instant) -> bool {
    let takes = |p: &PacketEvent| {
        door.target.is_none_or(|t| t == p.destination)
            && (p.protocol == Protocol::Udp || door.tcp_flags.accepts(p.tcp_flags))
    };
    let Some(((last_at, last), earlier)) = packets.split_last() else {
        return false;
    };
    let steps = &door.sequence;
    let knock_of = |p: &PacketEvent| Knock {
        port: p.destination_port,
        protocol: p.protocol,
    };
    if *last_at != now || !takes(last) || knock_of(last) != steps[steps.len() - 1] {
        return false;
    }
    let mut first_at = *last_at;
    let mut remaining = steps.len() - 1;
    for (at, p) in earlier.iter().rev() {
        if remaining == 0 {
            break;
        }
        if takes(p) && knock_of(p) == steps[remaining - 1] {
            remaining -= 1;
            first_at = *at;
        }
    }
    remaining == 0 && (steps.len() == 1 || now - first_at < door.seq_timeout)
}
