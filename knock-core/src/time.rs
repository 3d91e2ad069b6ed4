//! Crate-owned time: the caller supplies every instant.
//!
//! The core never reads a clock. Live capture, pcap savefiles and tests all drive the same code
//! by passing an [`Instant`] into each `handle_*` call.

use core::fmt;
use core::ops::{Add, Sub};

pub use core::time::Duration;

/// A point in time, in microseconds since an arbitrary epoch chosen by the caller.
///
/// A daemon usually takes a monotonic origin at start-up; a pcap replay uses the packet
/// timestamps (microseconds since the Unix epoch). Only differences between instants matter,
/// so both work as long as one matcher is fed instants from one epoch, never decreasing.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch itself.
    pub const ZERO: Self = Self { micros: 0 };
    /// The largest representable instant; arithmetic saturates here.
    pub const MAX: Self = Self { micros: u64::MAX };

    /// An instant `micros` microseconds after the epoch.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        Self { micros }
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// An instant `secs` seconds after the epoch (saturating).
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// Microseconds since the epoch.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// `self + duration`, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        let add = u64::try_from(duration.as_micros()).ok()?;
        self.micros.checked_add(add).map(Self::from_micros)
    }

    /// `self + duration`, saturating at [`Instant::MAX`].
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        self.checked_add(duration).unwrap_or(Self::MAX)
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;

    /// Saturating addition: an instant never wraps.
    fn add(self, rhs: Duration) -> Self {
        self.saturating_add(rhs)
    }
}

impl Sub for Instant {
    type Output = Duration;

    /// Saturating difference: zero when `rhs` is later than `self`.
    fn sub(self, rhs: Self) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Instant {
    /// Seconds since the epoch with six decimals: `1.000042s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(5);
        assert_eq!(
            t + Duration::from_millis(1500),
            Instant::from_micros(6_500_000)
        );
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            Instant::from_secs(1) - Instant::from_secs(3),
            Duration::ZERO
        );
        assert_eq!(
            Instant::from_secs(3) - Instant::from_secs(1),
            Duration::from_secs(2)
        );
        assert_eq!(Instant::ZERO.checked_add(Duration::MAX), None);
        assert_eq!(
            format!("{:?}", Instant::from_micros(1_000_042)),
            "1.000042s"
        );
        assert_eq!(Instant::from_micros(1_000_042).to_string(), "1.000042s");
    }
}
