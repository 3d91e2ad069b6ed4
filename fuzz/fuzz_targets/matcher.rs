//! Fuzz the matcher with arbitrary configurations and event streams decoded from the bytes:
//! packets (single and batched), timeouts, sequence changes, reloads, local-address changes,
//! restored and taken stop commands. It must never panic, and its bounds must hold after
//! every call: tracked sources and pending closes within their limits, deadlines never in
//! the past once processed, every action naming a door of a configuration it was given.
#![no_main]

use std::net::IpAddr;

use knock_core::{
    Action, Config, Door, DoorId, Duration, FlagRule, Instant, Knock, Limits, LocalAddresses,
    Matcher, PacketEvent, TcpFlags,
};
use libfuzzer_sys::fuzz_target;

/// Reads the input byte by byte; zeros once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Small pools so that random bytes collide into real matches.
fn address(n: u8) -> IpAddr {
    match n % 8 {
        0..=4 => IpAddr::from([10, 0, 0, n % 8]),
        5 => IpAddr::from([192, 0, 2, 1]),
        _ => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n % 8)]),
    }
}

fn knock(b: &mut Bytes<'_>) -> Knock {
    let n = b.u8();
    let port = u16::from(n % 6);
    if n & 0x80 != 0 {
        Knock::udp(port)
    } else {
        Knock::tcp(port)
    }
}

fn sequence(b: &mut Bytes<'_>) -> Vec<Knock> {
    let len = usize::from(b.u8() % 6);
    (0..len).map(|_| knock(b)).collect()
}

fn config(b: &mut Bytes<'_>) -> Config {
    let mut config = Config::default();
    for i in 0..(b.u8() % 5) {
        let mut door = Door::new(format!("d{i}"), sequence(b));
        door.seq_timeout = Duration::from_millis(u64::from(b.u16()));
        door.cmd_timeout = Duration::from_millis(u64::from(b.u16()));
        let flags = b.u8();
        door.tcp_flags = FlagRule {
            must_set: TcpFlags::from_bits(flags & 0x0f),
            must_clear: TcpFlags::from_bits(flags >> 4),
        };
        let extras = b.u8();
        if extras & 1 != 0 {
            door.target = Some(address(b.u8()));
        }
        if extras & 2 != 0 {
            door.start_command = Some("start %IP%".into());
            door.stop_command = Some("stop %IP%".into());
        }
        if extras & 4 != 0 {
            door.start_command_6 = Some(String::new());
        }
        config.doors.push(door);
    }
    config
}

fn packet(b: &mut Bytes<'_>, now: Instant) -> PacketEvent {
    let source = address(b.u8());
    let destination = address(b.u8());
    let step = knock(b);
    let flags = TcpFlags::from_bits(b.u8());
    match step.protocol {
        knock_core::Protocol::Tcp => PacketEvent::tcp(now, source, destination, step.port, flags),
        knock_core::Protocol::Udp => PacketEvent::udp(now, source, destination, step.port),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let limits = Limits::default()
        .with_max_sources(usize::from(b.u8() % 8))
        .with_max_pending_closes(usize::from(b.u8() % 4));
    let mut configs = vec![config(&mut b)];
    let mut matcher = Matcher::with_limits(&configs[0], limits);
    let mut now = Instant::ZERO;
    let mut last_timeout_call = Instant::ZERO;
    let mut steps = 0;
    while !b.is_empty() && steps < 4_096 {
        steps += 1;
        let op = b.u8();
        // Time moves forward by 0–255 ms, sometimes not at all; rarely backwards (which the
        // matcher must tolerate).
        let gap = Duration::from_millis(u64::from(b.u8()));
        now = if op & 0x80 != 0 && op & 0x40 != 0 {
            Instant::from_micros(now.as_micros().saturating_sub(1_000))
        } else {
            now + gap
        };
        match op % 12 {
            0..=4 => {
                let p = packet(&mut b, now);
                matcher.handle_packet(&p);
            }
            5 => {
                let count = b.u8() % 40;
                let packets: Vec<PacketEvent> = (0..count).map(|_| packet(&mut b, now)).collect();
                matcher.handle_packets(&packets);
            }
            6 | 7 => {
                // The run loop: jump to the next deadline if it is due.
                let at = match matcher.poll_timeout() {
                    Some(deadline) => {
                        let at = deadline.max(last_timeout_call);
                        last_timeout_call = at;
                        now = now.max(at);
                        at
                    }
                    None => now,
                };
                matcher.handle_timeout(at);
                // Everything due by `at` was processed.
                assert!(
                    matcher.poll_timeout().is_none_or(|d| d > at),
                    "due at {at:?}"
                );
            }
            8 => {
                let id = DoorId::from_index(usize::from(b.u8() % 6));
                let seq = sequence(&mut b);
                matcher.set_door_sequence(id, seq);
            }
            9 => {
                let next = config(&mut b);
                matcher.replace_config(now, &next);
                configs.push(next);
            }
            10 => {
                let list = (0..b.u8() % 3).map(|_| address(b.u8())).collect();
                matcher.set_local_addresses(if b.u8() & 1 == 0 {
                    LocalAddresses::Any
                } else {
                    LocalAddresses::List(list)
                });
            }
            _ => {
                if b.u8() & 1 == 0 {
                    if let Some(door) = matcher
                        .door(DoorId::from_index(usize::from(b.u8() % 6)))
                        .cloned()
                    {
                        let at = now + Duration::from_millis(u64::from(b.u16()));
                        matcher.schedule_close(door, address(b.u8()), at);
                    }
                } else {
                    for action in matcher.take_pending_closes() {
                        assert!(matches!(action, Action::Close { .. }));
                    }
                }
            }
        }
        // Drain alternating the owned and the borrowed form (one sequence either way).
        let mut drained = 0_usize;
        while let Some(action) = if drained % 2 == 0 {
            matcher.poll_action()
        } else {
            matcher.poll_action_ref().map(|view| view.to_action())
        } {
            drained += 1;
            let (door, stage) = match &action {
                Action::Stage { door, stage, .. } => (door, Some(*stage)),
                Action::Timeout { door, stage, .. } | Action::Invalidated { door, stage, .. } => {
                    (door, Some(*stage))
                }
                Action::Open { door, .. } | Action::Close { door, .. } => (door, None),
                _ => continue,
            };
            assert!(
                configs
                    .iter()
                    .any(|c| c.doors.iter().any(|d| d.name == door.name)),
                "{action:?} names an unknown door"
            );
            if let Some(stage) = stage {
                assert!(stage <= door.sequence.len().max(1), "{action:?}");
            }
        }
        assert!(matcher.tracked_sources() <= limits.max_sources.max(1));
        assert!(matcher.pending_closes() <= limits.max_pending_closes);
        assert!(matcher.attempts_in_progress() >= matcher.tracked_sources());
    }
});
