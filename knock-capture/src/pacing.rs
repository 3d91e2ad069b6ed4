//! When a capture thread reads again after emptying the ring: at once on the next packet
//! (idle, the default), or after a short pause while packets pour in (a flood), so that one
//! wake-up reads many packets.

use std::time::{Duration, Instant};

/// Packets that, arriving in one read or in quick succession, mean a flood rather than a
/// knock sequence (knock sequences are a handful of packets).
pub(crate) const BURST_PACKETS: usize = 16;

/// Reads closer together than this count as quick succession (packets faster than about
/// 1 000 per second).
pub(crate) const QUICK_GAP: Duration = Duration::from_millis(1);

/// How many packets a paused read aims at: the pause is shortened as the rate grows so that
/// a read stays well within the kernel ring (2 048 packets by default: a quarter of it). Not
/// fewer, because each wake-up of the capture thread and of its consumer has a fixed cost
/// (caches cold after sleeping): at 100 000 packets/s, 512 packets per wake-up cost the
/// whole daemon 1.16-1.19 µs of CPU per packet where 128 cost 1.39, and at the generator's
/// top speed 0.84 against 1.12 (`scripts/flood.sh`, alternated runs on a 2-core VM).
pub(crate) const TARGET_READ: u32 = 512;

/// A read this large (2 × [`TARGET_READ`], half the default ring) says the ring may have
/// overflowed: the next pause is the shortest.
pub(crate) const LATE_READ: usize = 2 * TARGET_READ as usize;

/// The shortest pause (at rates beyond `TARGET_READ` per 50 µs, 2.5 M packets/s).
pub(crate) const MIN_PAUSE: Duration = Duration::from_micros(50);

/// The first pause of a busy spell (or the configured pause, if shorter): from there the pause
/// follows the rate, but grows by at most half of itself per read.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(4);

/// The adaptive policy of one capture thread, a pure function of the times it is given.
///
/// *Idle* (at start): after the ring is emptied the thread sleeps until the next packet,
/// which it reads at once: an isolated knock is delivered with no added delay.
///
/// *Busy*: entered when one read drains at least [`BURST_PACKETS`] packets, or when that
/// many arrived in reads each less than [`QUICK_GAP`] after the previous one. After each
/// read the thread pauses and lets the ring fill, so a flood costs one wake-up (and one
/// channel send) per pause rather than per packet. The pause is what [`TARGET_READ`]
/// packets take at the rate the last read saw, within [[`MIN_PAUSE`], `pause`]: a packet
/// arriving during a flood waits at most `pause`. The first pause is [`FIRST_PAUSE`], and a
/// pause is at most 1.5 times the one before: a read that finds few packets in a fast but
/// bursty flood (the sender paused) must not make the thread sleep through more packets
/// than the kernel ring holds. Left as soon as a read finds no packet.
#[derive(Debug)]
pub(crate) struct Pacer {
    pause: Duration,
    busy: bool,
    /// Packets read in quick succession so far (idle only).
    streak: usize,
    /// When the last read that found packets began.
    last_read: Option<Instant>,
    /// The pause given after the last read (while busy).
    last_pause: Duration,
}

impl Pacer {
    /// A pacer that pauses `pause` between reads when busy (`Duration::ZERO`: never busy).
    pub(crate) fn new(pause: Duration) -> Self {
        Self {
            pause,
            busy: false,
            streak: 0,
            last_read: None,
            last_pause: Duration::ZERO,
        }
    }

    /// The ring was just emptied by a read that began at `began` and found `read` packets:
    /// how long to pause before reading again (`None`: sleep until a packet arrives).
    pub(crate) fn after_read(&mut self, began: Instant, read: usize) -> Option<Duration> {
        if self.pause.is_zero() {
            return None;
        }
        if read == 0 {
            // Woken for a control request, or a pause that saw nothing: the flood is over.
            self.busy = false;
            self.streak = 0;
            return None;
        }
        let since_last = self
            .last_read
            .map(|last| began.saturating_duration_since(last));
        self.last_read = Some(began);
        // The longest pause now: the spell's first, or half as long again as the last one.
        let most = if self.busy {
            self.last_pause.saturating_add(self.last_pause / 2)
        } else {
            let quick = since_last.is_some_and(|gap| gap < QUICK_GAP);
            self.streak = if quick { self.streak + read } else { read };
            self.busy = read >= BURST_PACKETS || self.streak >= BURST_PACKETS;
            if !self.busy {
                return None;
            }
            FIRST_PAUSE
        };
        let shortest = MIN_PAUSE.min(self.pause);
        let pause = if read >= LATE_READ {
            // The ring filled far beyond the aim (a burst, or this thread ran late): the rate
            // is unknown (the ring may have overflowed), read again soon.
            shortest
        } else {
            // `read` packets arrived in about `since_last` (the last pause and read).
            let count = u32::try_from(read).unwrap_or(u32::MAX);
            let aim = since_last.map_or(self.pause, |gap| gap.saturating_mul(TARGET_READ) / count);
            aim.min(most).clamp(shortest, self.pause)
        };
        self.last_pause = pause;
        Some(pause)
    }

    /// Whether the thread currently pauses between reads.
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSE: Duration = Duration::from_micros(500);

    fn at(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn isolated_packets_and_knock_sequences_never_wait() {
        let t = Instant::now();
        let mut pacer = Pacer::new(PAUSE);
        // A knock sequence: a few packets 100 µs apart, one per read.
        for i in 0..(BURST_PACKETS as u64 - 1) {
            assert_eq!(pacer.after_read(at(t, i * 100), 1), None, "packet {i}");
        }
        // Then one packet a second, forever: each read at once.
        for i in 0..100 {
            assert_eq!(pacer.after_read(at(t, 10_000_000 + i * 1_000_000), 1), None);
        }
        assert!(!pacer.is_busy());
    }

    #[test]
    fn a_big_read_or_a_sustained_stream_pauses_until_it_stops() {
        let t = Instant::now();
        let mut pacer = Pacer::new(PAUSE);
        assert_eq!(pacer.after_read(t, BURST_PACKETS), Some(PAUSE));
        // Busy: pauses while reads find packets, however few (slow: the longest pause).
        assert_eq!(pacer.after_read(at(t, 600), 3), Some(PAUSE));
        assert_eq!(pacer.after_read(at(t, 1_200), 1), Some(PAUSE));
        // A read that finds nothing ends it: the next packet is read at once.
        assert_eq!(pacer.after_read(at(t, 1_800), 0), None);
        assert!(!pacer.is_busy());
        assert_eq!(pacer.after_read(at(t, 900_000), 1), None);

        // 10 000 packets/s, one per read: busy after BURST_PACKETS quick reads.
        let mut pacer = Pacer::new(PAUSE);
        let start = 5_000_000;
        for i in 0..(BURST_PACKETS as u64 - 1) {
            assert_eq!(
                pacer.after_read(at(t, start + i * 100), 1),
                None,
                "read {i}"
            );
        }
        let last = start + (BURST_PACKETS as u64 - 1) * 100;
        assert_eq!(pacer.after_read(at(t, last), 1), Some(PAUSE));
    }

    #[test]
    fn the_pause_shrinks_as_the_rate_grows() {
        let t = Instant::now();
        let mut pacer = Pacer::new(PAUSE);
        assert_eq!(pacer.after_read(t, 300), Some(PAUSE));
        // Far more than the aim: the shortest pause, whatever the time it took.
        assert_eq!(pacer.after_read(at(t, 300), LATE_READ), Some(MIN_PAUSE));
        // 1 000 packets in 50 µs (20 M/s): no shorter than MIN_PAUSE.
        assert_eq!(pacer.after_read(at(t, 350), 1_000), Some(MIN_PAUSE));
        // 300 packets in 300 µs (1 M/s): TARGET_READ packets take 512 µs, but a pause grows
        // by half of itself at most: 75 µs, then 112 µs, then 168 µs, …, capped at PAUSE.
        assert_eq!(
            pacer.after_read(at(t, 600), 300),
            Some(Duration::from_micros(75))
        );
        assert_eq!(
            pacer.after_read(at(t, 900), 300),
            Some(Duration::from_nanos(112_500))
        );
        assert_eq!(
            pacer.after_read(at(t, 1_200), 300),
            Some(Duration::from_nanos(168_750))
        );
        // 600 packets in 468 µs (1.28 M/s): TARGET_READ packets take 400 µs, more than the
        // growth allows (253 µs); then 400 packets in 253 µs: the aim (324 µs) is reached.
        assert_eq!(
            pacer.after_read(at(t, 1_668), 600),
            Some(Duration::from_nanos(253_125))
        );
        let aim = pacer.after_read(at(t, 1_921), 400).unwrap();
        assert_eq!(aim, Duration::from_micros(253) * TARGET_READ / 400);
        // 100 000/s: 5.12 ms, capped at the configured pause, reached by steps of 1.5.
        let mut read_at = 2_245;
        let mut pauses = Vec::new();
        for _ in 0..4 {
            pauses.push(pacer.after_read(at(t, read_at), 100).unwrap().as_micros());
            read_at += 1_000;
        }
        assert_eq!(pauses, [485, 500, 500, 500]);
        // A pause longer than the minimum is never cut below the configured one.
        let mut short = Pacer::new(Duration::from_micros(20));
        assert_eq!(short.after_read(t, 100), Some(Duration::from_micros(20)));
        assert_eq!(
            short.after_read(at(t, 100), 500),
            Some(Duration::from_micros(20))
        );
        assert_eq!(
            short.after_read(at(t, 200), LATE_READ),
            Some(Duration::from_micros(20))
        );
    }

    /// At half a million packets a second, a read that finds few packets (the sender paused)
    /// does not make the thread sleep through more than the ring holds: the pause grows by
    /// half of itself at most, and the first pause of a spell follows the rate too.
    #[test]
    fn a_sparse_read_in_a_fast_flood_does_not_overflow_the_ring() {
        let t = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(16));
        // 64 packets read at once: busy, the first pause at most FIRST_PAUSE.
        assert_eq!(pacer.after_read(t, 64), Some(FIRST_PAUSE));
        // 500 000/s: TARGET_READ packets every 1 024 µs.
        let mut read_at = 4_000;
        let mut pause = Duration::ZERO;
        for _ in 0..20 {
            let read = usize::try_from(pause.as_micros() / 2)
                .unwrap_or(0)
                .max(TARGET_READ as usize);
            pause = pacer.after_read(at(t, read_at), read).unwrap();
            read_at += u64::try_from(pause.as_micros()).unwrap();
        }
        assert!(pause <= Duration::from_micros(1_100), "{pause:?}");
        // The sender stops for 1 ms: the next read finds 8 packets in about 2 ms.
        let sparse = pacer.after_read(at(t, read_at + 1_000), 8).unwrap();
        assert!(sparse <= pause.mul_f32(1.5), "{sparse:?} after {pause:?}");
        // 500 000/s for the whole pause stays well within a 2 048-packet ring.
        assert!(
            sparse.as_micros() * 500_000 / 1_000_000 < 1_024,
            "{sparse:?}"
        );
    }

    #[test]
    fn a_slow_gap_restarts_the_streak() {
        let t = Instant::now();
        let mut pacer = Pacer::new(PAUSE);
        for i in 0..(BURST_PACKETS as u64 - 1) {
            assert_eq!(pacer.after_read(at(t, i * 100), 1), None);
        }
        // 2 ms later: a new streak of one.
        let later = (BURST_PACKETS as u64 - 2) * 100 + 2_000;
        assert_eq!(pacer.after_read(at(t, later), 1), None);
        assert_eq!(pacer.after_read(at(t, later + 100), 1), None);
        // A control wake-up (no packet) also restarts it.
        assert_eq!(pacer.after_read(at(t, later + 200), 0), None);
        for i in 0..(BURST_PACKETS as u64 - 1) {
            assert_eq!(pacer.after_read(at(t, later + 300 + i * 100), 1), None);
        }
        assert!(!pacer.is_busy());
    }

    #[test]
    fn a_zero_pause_never_pauses() {
        let t = Instant::now();
        let mut pacer = Pacer::new(Duration::ZERO);
        for i in 0..100 {
            assert_eq!(pacer.after_read(at(t, i), 1_000), None);
        }
    }
}
