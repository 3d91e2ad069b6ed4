//! Limits and counters: the bounds on attacker-driven state and the running totals.

#[cfg(doc)]
use super::Matcher;

/// Default for [`Limits::max_sources`]: 65 536 sources with a knock in progress.
pub const DEFAULT_MAX_SOURCES: usize = 65_536;
/// Default for [`Limits::max_pending_closes`]: 65 536 stop commands waiting for their time.
pub const DEFAULT_MAX_PENDING_CLOSES: usize = 65_536;

/// Bookkeeping queues are compacted once they hold more than twice their live entries plus
/// this many (so small tables never compact at all).
pub(super) const COMPACTION_SLACK: usize = 64;

/// Bounds on attacker-driven state.
///
/// Every packet from a new address to a first-step port creates state, and source addresses
/// are trivially spoofed, so both tables are capped. See [`Matcher`] for what happens at the
/// cap and what it costs in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most sources with a knock in progress at once (at least 1); beyond it a tracked
    /// source is evicted (its attempts are dropped and counted): the oldest of those still
    /// at their first step, or if none is, the one that got past its first step longest
    /// ago. Default [`DEFAULT_MAX_SOURCES`].
    pub max_sources: usize,
    /// Most pending stop commands; beyond it the one due first is closed early (safe
    /// failure: a hole closes too soon rather than staying open). Default
    /// [`DEFAULT_MAX_PENDING_CLOSES`].
    pub max_pending_closes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sources: DEFAULT_MAX_SOURCES,
            max_pending_closes: DEFAULT_MAX_PENDING_CLOSES,
        }
    }
}

impl Limits {
    /// These limits with `max_sources` replaced.
    #[must_use]
    pub const fn with_max_sources(mut self, max_sources: usize) -> Self {
        self.max_sources = max_sources;
        self
    }

    /// These limits with `max_pending_closes` replaced.
    #[must_use]
    pub const fn with_max_pending_closes(mut self, max_pending_closes: usize) -> Self {
        self.max_pending_closes = max_pending_closes;
        self
    }
}

/// Running totals since the matcher was created (a reload keeps them).
///
/// Every packet given to [`Matcher::handle_packet`] is counted exactly once: as `admitted`
/// or in one of the `ignored_*` fields for packets no door admits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Packets that counted as a knock for at least one door.
    pub admitted: u64,
    /// Packets whose (protocol, port) is a step of no door.
    pub ignored_unknown_port: u64,
    /// Packets to a door's port that no such door admits (wrong destination or TCP flags).
    pub ignored_not_admitted: u64,
    /// Admitted packets that changed nothing because the source's attempts ignore their TCP
    /// flags (included in `admitted`).
    pub ignored_flags_mismatch: u64,
    /// Admitted packets from a source with nothing in progress that are not the first step
    /// of any door accepting them (included in `admitted`).
    pub ignored_not_first_step: u64,
    /// Admitted packets that repeated the step just matched of a door with
    /// `AllowDuplicates`, ignored by that attempt (included in `admitted`).
    pub ignored_duplicates: u64,
    /// Attempts started (a first step was knocked).
    pub attempts_started: u64,
    /// Later steps knocked in order.
    pub attempts_advanced: u64,
    /// Attempts that ran out of `seq_timeout`.
    pub attempts_expired: u64,
    /// Attempts ended by a wrong knock.
    pub attempts_invalidated: u64,
    /// Attempts dropped because their source was evicted at the [`Limits::max_sources`] cap.
    pub attempts_evicted: u64,
    /// Attempts dropped by a reload or a change of their door's sequence.
    pub attempts_discarded: u64,
    /// Sources evicted at the [`Limits::max_sources`] cap.
    pub sources_evicted: u64,
    /// Doors opened (sequences completed).
    pub opened: u64,
    /// Complete knocks of a TOTP code already spent ([`Action::CodeUsed`](crate::Action::CodeUsed)).
    pub codes_reused: u64,
    /// Stop commands scheduled (after an open with a stop command, or by
    /// [`Matcher::schedule_close`]).
    pub closes_scheduled: u64,
    /// Stop commands that came due and were emitted on time.
    pub closes_fired: u64,
    /// Stop commands emitted before their time because of the
    /// [`Limits::max_pending_closes`] cap.
    pub closes_fired_early: u64,
    /// Stop commands handed out by [`Matcher::take_pending_closes`].
    pub closes_taken: u64,
}
