//! The knock-sequence matcher. PLACEHOLDER bodies: the matcher work replaces them, keeping
//! this public API (it may add to it).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Config, Door, Knock};
use crate::packet::PacketEvent;
use crate::time::Instant;

/// Default for [`Limits::max_sources`].
pub const DEFAULT_MAX_SOURCES: usize = 65_536;
/// Default for [`Limits::max_pending_closes`].
pub const DEFAULT_MAX_PENDING_CLOSES: usize = 65_536;

/// Bounds on attacker-driven state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most sources tracked at once; the oldest is evicted beyond it.
    pub max_sources: usize,
    /// Most pending stop commands; beyond it the oldest is closed early.
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

/// Which destinations count as local for doors without `Target`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalAddresses {
    /// Every destination is accepted (the default; right for pcap replays from elsewhere).
    Any,
    /// Only these addresses (the host's own, as the daemon discovers them).
    List(Vec<IpAddr>),
}

/// Index of a door in the configuration the matcher currently runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DoorId(pub u32);

/// A door named by an action: its index and a shared handle on its settings (still valid
/// after a reload replaced the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorRef {
    /// Index in the configuration that produced the action.
    pub id: DoorId,
    /// The door's settings.
    pub door: Arc<Door>,
}

/// Something the caller should log or do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// `source` completed step `stage` (1-based) of `door`.
    Stage {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// The step just completed, 1-based.
        stage: usize,
    },
    /// `source` completed the whole sequence: run the start command.
    Open {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
    },
    /// `cmd_timeout` after an open: run the stop command.
    Close {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
    },
    /// The sequence was not completed within `seq_timeout`.
    Timeout {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// Steps completed when it expired.
        stage: usize,
    },
    /// A wrong knock ended the attempt.
    Invalidated {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// Steps completed before the wrong knock.
        stage: usize,
    },
}

/// Running totals (placeholder shape).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Packets that counted as a knock for at least one door.
    pub admitted: u64,
    /// Doors opened.
    pub opened: u64,
}

/// The knock-sequence matcher.
#[derive(Debug)]
pub struct Matcher {
    counters: Counters,
}

impl Matcher {
    /// A matcher for `config` with default [`Limits`].
    #[must_use]
    pub fn new(config: &Config) -> Self {
        Self::with_limits(config, Limits::default())
    }

    /// A matcher for `config` with explicit limits.
    #[must_use]
    pub fn with_limits(config: &Config, limits: Limits) -> Self {
        let _ = (config, limits);
        Self {
            counters: Counters::default(),
        }
    }

    /// Sets which destinations count as local.
    pub fn set_local_addresses(&mut self, addresses: LocalAddresses) {
        let _ = addresses;
    }

    /// Replaces the configuration (reload); pending stop deadlines are kept.
    pub fn replace_config(&mut self, now: Instant, config: &Config) {
        let _ = (now, config);
    }

    /// Sets the active sequence of a door (one-time sequences); an empty one disables it.
    pub fn set_door_sequence(&mut self, door: DoorId, sequence: Vec<Knock>) {
        let _ = (door, sequence);
    }

    /// Feeds one packet.
    pub fn handle_packet(&mut self, now: Instant, packet: &PacketEvent) {
        let _ = (now, packet);
    }

    /// Tells the matcher that time has reached `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// The next action, or `None` when drained.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Arms a stop deadline (e.g. one restored from a state file after a restart).
    pub fn schedule_close(&mut self, door: DoorRef, source: IpAddr, at: Instant) {
        let _ = (door, source, at);
    }

    /// Removes every pending stop and returns them as [`Action::Close`]s (for shutdown).
    pub fn take_pending_closes(&mut self) -> Vec<Action> {
        Vec::new()
    }

    /// The running totals.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
