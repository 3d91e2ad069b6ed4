//! The monotonic clock that stamps live packets.

use knock_core::Instant;

/// A monotonic clock producing [`knock_core::Instant`]s: microseconds since the moment the
/// clock was created.
///
/// Live captures stamp each packet with `clock.now()` when it is read, instead of libpcap's
/// wall-clock timestamp, so a wall-clock jump (NTP step, manual `date`) cannot expire or
/// extend knock sequences. Copy it freely: every copy shares the same origin, so the capture
/// threads and the daemon's timers agree.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    /// A clock whose epoch ([`Instant::ZERO`]) is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    /// The current instant.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.instant_at(std::time::Instant::now())
    }

    /// The [`Instant`] of a `std` instant (saturating at [`Instant::ZERO`] before the origin
    /// and at [`Instant::MAX`]).
    #[must_use]
    pub fn instant_at(&self, at: std::time::Instant) -> Instant {
        let micros = at.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The `std` instant of a clock [`Instant`] (for sleeping until a matcher deadline).
    /// `None` if it is too far away to represent.
    #[must_use]
    pub fn to_std(&self, at: Instant) -> Option<std::time::Instant> {
        self.origin
            .checked_add(core::time::Duration::from_micros(at.as_micros()))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The [`Instant`] of a pcap timestamp (seconds and microseconds since the Unix epoch), as
/// used for savefiles; negative or out-of-range parts are clamped.
#[must_use]
pub fn instant_from_timeval(seconds: i64, micros: i64) -> Instant {
    let seconds = u64::try_from(seconds).unwrap_or(0);
    let micros = u64::try_from(micros).unwrap_or(0).min(999_999);
    Instant::from_micros(seconds.saturating_mul(1_000_000).saturating_add(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_round_trips() {
        let clock = Clock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        let later = Instant::from_secs(3);
        let std_later = clock.to_std(later).unwrap();
        assert_eq!(clock.instant_at(std_later), later);
        assert_eq!(
            clock.instant_at(std_later - core::time::Duration::from_secs(10)),
            Instant::ZERO
        );
    }

    #[test]
    fn timeval_conversion_clamps() {
        assert_eq!(instant_from_timeval(2, 5), Instant::from_micros(2_000_005));
        assert_eq!(instant_from_timeval(-1, -1), Instant::ZERO);
        assert_eq!(instant_from_timeval(i64::MAX, 0), Instant::MAX);
    }
}
