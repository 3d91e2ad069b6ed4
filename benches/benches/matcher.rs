//! Matcher throughput: packet events per second with 1, 1 000, 65 536 (the default cap) and
//! 1 000 000 tracked sources, plus a spoofed-source flood at the source cap (every event a
//! new source, evicting the oldest) and one below it (every event a new source, the oldest
//! expiring).
//!
//! Steady state: one door of 32 identical steps and a one-day `seq_timeout`. Every source is
//! first brought to stage 1, then events cycle through the sources in order, so each event
//! advances one source by a step (one `Stage` action) and every 32nd round each source opens
//! and restarts (its entry leaves the table and comes back). The actions are drained and
//! consumed inside the measured loop, as a daemon would, in three ways:
//!
//! * `steady/…`: `handle_packet` per event, actions drained with `poll_action_ref` (borrowed,
//!   the fast path);
//! * `steady_owned/…`: the same with `poll_action` (each action clones the door's `Arc`: two
//!   atomic operations per action);
//! * `steady_batched/…`: 1 000 events per `handle_packets` call (source look-ups overlapped).
//!
//! The flood is fed one event at a time (`flood/…`) and, as knockd feeds it, in bursts of
//! 256 events (`flood_batched/…`). `expiry_flood_batched/…` is the same flood below the cap:
//! a `seq_timeout` of 50 000 events' time keeps 50 000 sources, and every event adds one
//! and expires the oldest (knockd's 10 000 packets/s flood with a 5 s `seq_timeout`).
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use knock_core::{
    Action, Config, Door, Duration, Instant, Knock, Limits, Matcher, PacketEvent, TcpFlags,
};

/// Events per measured iteration.
const BATCH: u64 = 1_000;
/// Packets per `handle_packets` call in knockd (its `PACKET_BATCH`).
const DAEMON_BURST: usize = 256;
const PORT: u16 = 7_000;

fn config() -> Config {
    config_timing_out_after(Duration::from_secs(86_400))
}

fn config_timing_out_after(seq_timeout: Duration) -> Config {
    let mut door = Door::new("bench", vec![Knock::tcp(PORT); 32]);
    door.seq_timeout = seq_timeout;
    let mut config = Config::default();
    config.doors.push(door);
    config
}

fn source(index: u32) -> IpAddr {
    // Spread over 10.0.0.0/8 as consecutive addresses; the hash map does not care.
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | index))
}

fn packet(now: Instant, index: u32) -> PacketEvent {
    PacketEvent::tcp(
        now,
        source(index),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        PORT,
        TcpFlags::SYN,
    )
}

/// Drains the actions (borrowed), folding them into a number so the work cannot be
/// optimised away.
fn drain(matcher: &mut Matcher) -> u64 {
    let mut sum = 0;
    while let Some(action) = matcher.poll_action_ref() {
        sum += action.stage as u64 + action.source.is_ipv4() as u64;
    }
    sum
}

/// Drains the actions as owned [`Action`]s.
fn drain_owned(matcher: &mut Matcher) -> u64 {
    let mut sum = 0;
    while let Some(action) = matcher.poll_action() {
        sum += match action {
            Action::Stage { stage, .. } => stage as u64,
            _ => 1,
        };
    }
    sum
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Borrowed,
    Owned,
    Batched,
}

struct Steady {
    matcher: Matcher,
    sources: u32,
    next: u32,
    now: u64,
    batch: Vec<PacketEvent>,
}

impl Steady {
    fn new(sources: u32) -> Self {
        let limits = Limits::default().with_max_sources(sources as usize);
        let mut matcher = Matcher::with_limits(&config(), limits);
        for index in 0..sources {
            matcher.handle_packet(&packet(Instant::ZERO, index));
            drain(&mut matcher);
        }
        assert_eq!(matcher.tracked_sources(), sources as usize);
        Self {
            matcher,
            sources,
            next: 0,
            now: 1,
            batch: Vec::with_capacity(BATCH as usize),
        }
    }

    /// [`new`](Self::new), with the tables warmed up to their working size (a full
    /// open/restart cycle).
    fn warmed(sources: u32) -> Self {
        let mut bench = Self::new(sources);
        for _ in 0..u64::from(sources).saturating_mul(33).min(40_000_000) {
            bench.step();
        }
        bench
    }

    fn next_packet(&mut self) -> PacketEvent {
        let now = Instant::from_micros(self.now);
        self.now += 1;
        let index = self.next;
        self.next = if index + 1 == self.sources {
            0
        } else {
            index + 1
        };
        packet(now, index)
    }

    fn step(&mut self) -> u64 {
        let packet = self.next_packet();
        self.matcher.handle_packet(&packet);
        drain(&mut self.matcher)
    }

    /// `BATCH` events the chosen way.
    fn run_batch(&mut self, mode: Mode) -> u64 {
        let mut sum = 0;
        match mode {
            Mode::Borrowed => {
                for _ in 0..BATCH {
                    sum += self.step();
                }
            }
            Mode::Owned => {
                for _ in 0..BATCH {
                    let packet = self.next_packet();
                    self.matcher.handle_packet(&packet);
                    sum += drain_owned(&mut self.matcher);
                }
            }
            Mode::Batched => {
                let mut batch = std::mem::take(&mut self.batch);
                batch.clear();
                for _ in 0..BATCH {
                    batch.push(self.next_packet());
                }
                self.matcher.handle_packets(&batch);
                sum += drain(&mut self.matcher);
                self.batch = batch;
            }
        }
        sum
    }
}

fn steady_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("matcher");
    group.throughput(Throughput::Elements(BATCH));
    // 65 536 is the default source cap (`Limits::max_sources`).
    for sources in [1_u32, 1_000, 65_536, 1_000_000] {
        // Built on the first call of the first benchmark of this size that the filter
        // selects (the warm-up takes seconds with a million sources), then shared by the
        // three (criterion calls each once per sample).
        let mut bench: Option<Steady> = None;
        for (name, mode) in [
            ("steady", Mode::Borrowed),
            ("steady_owned", Mode::Owned),
            ("steady_batched", Mode::Batched),
        ] {
            group.bench_function(format!("{name}/{sources}_sources"), |b| {
                let bench = bench.get_or_insert_with(|| Steady::warmed(sources));
                b.iter(|| black_box(bench.run_batch(mode)));
            });
        }
        if let Some(bench) = &bench {
            assert_eq!(bench.matcher.counters().sources_evicted, 0);
        }
    }
    group.finish();
}

/// Sources the expiry flood keeps: its `seq_timeout` in events (one per microsecond).
const EXPIRY_FLOOD_SOURCES: u64 = 50_000;

/// A spoofed-source flood: every event a new source, evicting the oldest at the source cap
/// or, below it, the oldest expiring.
struct Flood {
    matcher: Matcher,
    next: u32,
    now: u64,
    batch: Vec<PacketEvent>,
}

impl Flood {
    /// A matcher at the default cap (`seq_timeout` `None`: a day), or holding as many
    /// sources as the timeout lasts events, after three times the cap of flood events.
    fn warmed(batched: bool, seq_timeout: Option<Duration>) -> Self {
        let config = seq_timeout.map_or_else(config, config_timing_out_after);
        let mut flood = Self {
            matcher: Matcher::new(&config),
            next: 0,
            now: 0,
            batch: Vec::with_capacity(BATCH as usize),
        };
        for _ in 0..knock_core::DEFAULT_MAX_SOURCES * 3 / BATCH as usize {
            flood.run_batch(batched);
        }
        flood.check(seq_timeout.is_some());
        flood
    }

    /// The flood is the one named: at the cap, or below it with expiries and no eviction.
    fn check(&self, expiring: bool) {
        let counters = self.matcher.counters();
        if expiring {
            let sources = self.matcher.tracked_sources() as u64;
            assert!(sources.abs_diff(EXPIRY_FLOOD_SOURCES) <= 1, "{sources}");
            assert_eq!(counters.sources_evicted, 0);
            assert!(counters.attempts_expired > 0);
        } else {
            assert_eq!(
                self.matcher.tracked_sources(),
                knock_core::DEFAULT_MAX_SOURCES
            );
        }
    }

    fn next_packet(&mut self) -> PacketEvent {
        let t = Instant::from_micros(self.now);
        self.now += 1;
        self.next = self.next.wrapping_add(1) & 0x00ff_ffff;
        packet(t, self.next)
    }

    /// `BATCH` events one at a time, or as knockd feeds them: `handle_packets` on bursts
    /// of 256, the actions drained after each.
    fn run_batch(&mut self, batched: bool) -> u64 {
        let mut sum = 0;
        if batched {
            let mut batch = std::mem::take(&mut self.batch);
            batch.clear();
            for _ in 0..BATCH {
                batch.push(self.next_packet());
            }
            for chunk in batch.chunks(DAEMON_BURST) {
                self.matcher.handle_packets(chunk);
                sum += drain(&mut self.matcher);
            }
            self.batch = batch;
        } else {
            for _ in 0..BATCH {
                let packet = self.next_packet();
                self.matcher.handle_packet(&packet);
                sum += drain(&mut self.matcher);
            }
        }
        sum
    }
}

fn flood(c: &mut Criterion) {
    let mut group = c.benchmark_group("matcher");
    group.throughput(Throughput::Elements(BATCH));
    let cap = knock_core::DEFAULT_MAX_SOURCES;
    let timeout = Duration::from_micros(EXPIRY_FLOOD_SOURCES);
    for (name, batched, seq_timeout) in [
        ("flood", false, None),
        ("flood_batched", true, None),
        ("expiry_flood_batched", true, Some(timeout)),
    ] {
        let id = match seq_timeout {
            None => format!("{name}/new_source_each_event_cap_{cap}"),
            Some(_) => format!("{name}/new_source_each_event_{EXPIRY_FLOOD_SOURCES}_sources"),
        };
        // Built on the first call (criterion calls this once per sample).
        let mut flood: Option<Flood> = None;
        group.bench_function(id, |b| {
            let flood = flood.get_or_insert_with(|| Flood::warmed(batched, seq_timeout));
            b.iter(|| black_box(flood.run_batch(batched)));
            flood.check(seq_timeout.is_some());
        });
    }
    group.finish();
}

criterion_group!(benches, steady_state, flood);
criterion_main!(benches);
