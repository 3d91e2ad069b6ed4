//! Zero allocations per event in steady state, counted by an instrumented global allocator.
//!
//! Its own test binary (a global allocator is per binary) with a single test, so no other
//! test thread allocates while the region is measured.

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};

use knock_core::{
    Action, Config, Door, Duration, Instant, Knock, Limits, Matcher, PacketEvent, TcpFlags,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SOURCES: u32 = 10_000;

fn packet(now: Instant, index: u32, port: u16) -> PacketEvent {
    PacketEvent::tcp(
        now,
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | index)),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        port,
        TcpFlags::SYN,
    )
}

/// One round of traffic exercising every per-packet path: advancing, opening (with a stop
/// command scheduled and fired), invalidating, restarting, expiring, ignoring, evicting.
fn round(matcher: &mut Matcher, now: &mut u64, round: u32) -> u64 {
    let mut seen = 0;
    for index in 0..SOURCES {
        let t = Instant::from_micros(*now);
        *now += 10;
        // Mostly the next step of the long door from a regular source; some wrong knocks,
        // unknown ports, and first knocks from one-shot sources that never come back (they
        // expire or get evicted).
        let (source, port) = match (index + round) % 7 {
            0 => (index, 7001),
            1 => (index, 9999),
            2 => (0x0010_0000 + (round % 64) * SOURCES + index, 7000),
            3 => (0x0010_0000 + (round % 64) * SOURCES + index, 7001),
            _ => (index, 7000),
        };
        matcher.handle_packet(&packet(t, source, port));
        while let Some(action) = matcher.poll_action() {
            seen += match action {
                Action::Stage { stage, .. } => stage as u64,
                _ => 1,
            };
        }
        if let Some(due) = matcher.poll_timeout().filter(|d| *d <= t) {
            matcher.handle_timeout(due);
            while matcher.poll_action().is_some() {
                seen += 1;
            }
        }
    }
    seen
}

#[test]
fn steady_state_events_do_not_allocate() {
    let mut long = Door::new("long", vec![Knock::tcp(7000); 3]);
    long.seq_timeout = Duration::from_millis(1_500);
    long.start_command = Some("open %IP%".into());
    long.stop_command = Some("close %IP%".into());
    long.cmd_timeout = Duration::from_millis(700);
    let mut other = Door::new("other", vec![Knock::tcp(7001), Knock::tcp(7000)]);
    other.seq_timeout = Duration::from_millis(500);
    let mut config = Config::default();
    config.doors.push(long);
    config.doors.push(other);

    // The cap is below the addresses in play, so eviction is exercised too.
    let limits = Limits::default().with_max_sources(2 * SOURCES as usize);
    let whole = Region::new(GLOBAL);
    let mut matcher = Matcher::with_limits(&config, limits);
    let mut now = 0;
    // Warm-up: the tables, queues and heap grow to their working size.
    for r in 0..60 {
        round(&mut matcher, &mut now, r);
    }

    // Issue 10 item 16: the matcher's own accounting of its per-source state agrees with
    // what the allocator handed out, and stays within the documented bound.
    let held = whole.change();
    // (Growth by `realloc` is already in `bytes_allocated`.)
    let net = held.bytes_allocated - held.bytes_deallocated;
    let tracking = matcher.tracking_memory();
    assert!(
        tracking <= net && net - tracking < 1 << 20,
        "tracking_memory {tracking} B, allocator {net} B"
    );
    assert!(
        tracking <= limits.max_sources * Matcher::BYTES_PER_SOURCE + Matcher::TRACKING_OVERHEAD,
        "{tracking} B for {} sources",
        limits.max_sources
    );

    let region = Region::new(GLOBAL);
    let mut seen = 0;
    let mut events = 0;
    for r in 60..120 {
        seen += round(&mut matcher, &mut now, r);
        events += u64::from(SOURCES);
    }
    let stats = region.change();
    assert!(seen > 0);
    let c = *matcher.counters();
    assert!(
        c.opened > 0 && c.attempts_invalidated > 0 && c.attempts_expired > 0,
        "{c:?}"
    );
    assert!(
        c.sources_evicted > 0 && c.closes_fired > 0 && c.ignored_unknown_port > 0,
        "{c:?}"
    );
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "allocations during {events} steady-state events: {stats:?}"
    );
}
