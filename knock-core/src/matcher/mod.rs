//! The knock-sequence matcher: a sans-IO state machine that turns packets and the passing of
//! time into [`Action`]s.
//!
//! See [`Matcher`] for the calling contract, the matching rules and the memory bound.

use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::config::{Config, Door, FlagRule, Knock};
use crate::packet::{PacketEvent, Protocol, TcpFlags};
use crate::time::{Duration, Instant};

mod attempts;
#[cfg(test)]
mod tests;

use attempts::{Attempt, AttemptList};

/// Default for [`Limits::max_sources`]: 65 536 sources with a knock in progress.
pub const DEFAULT_MAX_SOURCES: usize = 65_536;
/// Default for [`Limits::max_pending_closes`]: 65 536 stop commands waiting for their time.
pub const DEFAULT_MAX_PENDING_CLOSES: usize = 65_536;

/// Bookkeeping queues are compacted once they hold more than twice their live entries plus
/// this many (so small tables never compact at all).
const COMPACTION_SLACK: usize = 64;
/// Initial room in the source table and its queues; they grow geometrically up to the limit.
const INITIAL_SOURCE_CAPACITY: usize = 1024;

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

/// Which destinations count as local for doors without `Target`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalAddresses {
    /// Every destination is accepted (the default; right for pcap replays from elsewhere).
    Any,
    /// Only these addresses (the host's own, as the daemon discovers them). Looked up
    /// linearly: meant for the handful of addresses a host has.
    List(Vec<IpAddr>),
}

impl LocalAddresses {
    fn contains(&self, address: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.contains(&address),
        }
    }
}

/// Index of a door in the configuration the matcher currently runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DoorId(pub u32);

/// A door named by an action: its index and a shared handle on its settings (still valid
/// after a reload replaced the configuration).
///
/// After [`Matcher::set_door_sequence`] the handle carries the door's new active sequence.
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

/// The knock-sequence matcher: knockd's state machine without any I/O.
///
/// # Calling contract
///
/// The matcher never reads a clock, never sleeps and never does I/O; the caller owns all of
/// that (quinn-proto style). Methods come in four groups:
///
/// * inputs: [`handle_packet`](Self::handle_packet) (a packet arrived),
///   [`handle_packets`](Self::handle_packets) (a burst arrived) and
///   [`handle_timeout`](Self::handle_timeout) (time passed);
/// * commands: [`replace_config`](Self::replace_config),
///   [`set_door_sequence`](Self::set_door_sequence),
///   [`set_local_addresses`](Self::set_local_addresses),
///   [`schedule_close`](Self::schedule_close),
///   [`take_pending_closes`](Self::take_pending_closes);
/// * outputs: [`poll_action`](Self::poll_action) (or its borrowed twin
///   [`poll_action_ref`](Self::poll_action_ref)) and [`poll_timeout`](Self::poll_timeout);
/// * getters: [`counters`](Self::counters), [`tracked_sources`](Self::tracked_sources), ….
///
/// After any input or command, drain [`poll_action`](Self::poll_action) until it returns
/// `None`, then read [`poll_timeout`](Self::poll_timeout) and call
/// [`handle_timeout`](Self::handle_timeout) when that instant is reached. The deadline is
/// soft: calling early is a harmless no-op, calling late delays the actions due (a
/// `seq_timeout` that expired is still enforced by the next packet, which first processes
/// every deadline up to its own instant). `poll_timeout` may name an instant at which
/// nothing turns out to be due (an attempt that ended meanwhile); that costs one cheap call.
///
/// Instants must not decrease from call to call. An earlier instant than one already seen
/// is treated as that one, so a clock step backwards can delay deadlines but never corrupt
/// state. A packet is taken to arrive at the `now` passed with it (its
/// [`PacketEvent::timestamp`] is not read: pass it as `now` when replaying a capture).
///
/// Queued actions refer to the running configuration: actions still queued when
/// [`replace_config`](Self::replace_config) or [`set_door_sequence`](Self::set_door_sequence)
/// is called keep naming the door as it was when they were emitted.
///
/// # Matching rules
///
/// knockd 0.8's rules (reference §5), with its bug B1 fixed:
///
/// * A packet is *admitted* when some door has its (protocol, port) as a step, accepts its
///   destination (the door's `Target` if set, else a [`LocalAddresses`] address) and, for
///   TCP, accepts its flags. Anything else changes nothing (counted in `ignored_*`).
/// * Per source address (IPv4 and IPv6 addresses are separate identities), the attempts
///   whose door accepts the destination decide: a TCP packet whose flags that door rejects
///   is ignored by that attempt; the next step advances it ([`Action::Stage`], then
///   [`Action::Open`] when complete); any other admitted packet invalidates it
///   ([`Action::Invalidated`]). Such a packet starts nothing.
/// * A source with no such attempt starts one for every door (config order) whose first
///   step the packet is, if that door accepts destination and flags; a one-step door opens
///   at once, on every matching packet.
/// * `seq_timeout` runs from the first knock with microsecond precision: the last knock must
///   arrive strictly before first knock + `seq_timeout`. At that instant the attempt expires
///   ([`Action::Timeout`]). `seq_timeout = 0` means only one-step doors can open.
/// * After an open whose door has a stop command for the source's family, an
///   [`Action::Close`] comes due `cmd_timeout` later.
/// * One source's attempt ending never touches another source's (B1), so a door that is a
///   prefix of another never blocks the longer one: both open.
///
/// # Cost and memory bound (DoS)
///
/// Per packet: two hash look-ups (the (protocol, port) index and the source table) and work
/// proportional to the doors sharing that port, whatever the number of sources; no
/// allocation once the tables have grown to their working size. Hash maps use hashbrown's
/// default hasher (foldhash, seeded per process), so spoofed addresses cannot be chosen to
/// collide.
///
/// State is bounded by [`Limits`]: at most `max_sources` sources are tracked (a source is
/// tracked while it has an attempt in progress); a new source beyond that evicts the one
/// tracked longest among those at their first step (the others only when there are none
/// of those), and at most `max_pending_closes` stop commands wait. The memory is about
/// [`Matcher::BYTES_PER_SOURCE`] per tracked source (hash-table entry with up to two
/// attempts inline, eviction-queue and deadline-queue entries, with the queues' 2× slack)
/// plus about 100 bytes per pending close: at most about 17 MB for the default 65 536
/// sources (typically about 8 MB: 64-byte table entries at up to 7/8 load plus one 24-byte
/// and one 32-byte queue entry). A
/// source with attempts for more than two doors at once (only possible when more than two
/// doors share a first step) stores the extra ones on the heap.
///
/// A flood of spoofed first knocks therefore cannot evict a legitimate knocker who is past
/// the first step of a sequence (spoofed sources only ever hit first steps; an attacker who
/// knows a second step knows the secret). Between its first and second knock a knocker can
/// be evicted, after `max_sources` newer sources: at 200 000 spoofed packets/s and the
/// default cap, a third of a second. Raise the limit if the link can carry more.
///
/// # Performance
///
/// Measured on one core of the (shared, virtualised) development machine with criterion
/// (`benches/benches/matcher.rs`, figures vary ±30 % with the machine's load):
///
/// | tracked sources      | single | burst  | single, owned |
/// |----------------------|--------|--------|---------------|
/// | 1 – 1 000            | 35–41 M/s | 36–42 M/s | 21–26 M/s |
/// | 65 536 (default cap) | 16 M/s | 23–28 M/s | 13–15 M/s |
/// | 1 000 000            | 3–4 M/s | 14–18 M/s | 3–4 M/s |
///
/// (packets per second; *single*: [`handle_packet`](Self::handle_packet) per packet and
/// actions drained with [`poll_action_ref`](Self::poll_action_ref); *burst*: 1 000 packets
/// per [`handle_packets`](Self::handle_packets) call; *owned*: drained with
/// [`poll_action`](Self::poll_action) instead),
/// and 3–8 M/s for a spoofed-source flood that creates (and evicts) a source with every
/// packet. [`poll_action`](Self::poll_action) clones the door's `Arc` for every action (two
/// atomic operations per packet); [`poll_action_ref`](Self::poll_action_ref) does not. Beyond
/// the CPU caches each packet waits for its source's entry in main memory (one 64-byte line;
/// 128 MB of table for a million sources): [`handle_packets`](Self::handle_packets) overlaps
/// those waits for a burst, so a daemon should feed bursts that way.
#[derive(Debug)]
pub struct Matcher {
    doors: DoorTable,
    sources: SourceTable,
    deadlines: Deadlines,
    closes: Closes,
    out: Output,
    limits: Limits,
    now: Instant,
}

/// The doors of the running configuration, indexed by step.
#[derive(Debug)]
struct DoorTable {
    slots: Vec<DoorSlot>,
    /// For each (protocol, port) that is a step of an enabled door: the doors having it as
    /// any step and the doors starting with it, as ranges of `lists`.
    by_knock: KnockIndex,
    lists: Vec<u32>,
    local: LocalAddresses,
}

/// (protocol, port) → doors. A short list scanned linearly for the usual handful of
/// distinct steps (faster than hashing), a hash map beyond.
#[derive(Debug, Default)]
struct KnockIndex {
    few: Vec<(u32, KnockDoors)>,
    many: HashMap<Knock, KnockDoors>,
}

/// Steps up to which [`KnockIndex`] scans a list.
const FEW_KNOCKS: usize = 16;

fn knock_key(knock: Knock) -> u32 {
    u32::from(knock.port) | (u32::from(knock.protocol == Protocol::Udp) << 16)
}

impl KnockIndex {
    fn get(&self, knock: Knock) -> Option<KnockDoors> {
        if self.many.is_empty() {
            let key = knock_key(knock);
            self.few.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
        } else {
            self.many.get(&knock).copied()
        }
    }
}

#[derive(Debug)]
struct DoorSlot {
    door: DoorRef,
    /// Index of the door's `seq_timeout` in [`Deadlines::classes`].
    class: usize,
    // Copies of the settings read for every packet, one indirection closer than `door`.
    target: Option<IpAddr>,
    flags: FlagRule,
    sequence: Box<[Knock]>,
}

impl DoorSlot {
    fn new(door: DoorRef, class: usize) -> Self {
        Self {
            target: door.door.target,
            flags: door.door.tcp_flags,
            sequence: door.door.sequence.clone().into_boxed_slice(),
            door,
            class,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct KnockDoors {
    with_step: (u32, u32),
    starting: (u32, u32),
}

/// What a packet is, as the door rules see it.
#[derive(Clone, Copy)]
struct Probe<'a> {
    /// Read in place: copying its 17-byte, byte-aligned addresses into a local (stored and
    /// reloaded with different widths) stalls store-to-load forwarding for ~15 cycles.
    packet: &'a PacketEvent,
    knock: Knock,
    /// `None` for UDP: door flag rules constrain TCP only.
    tcp_flags: Option<TcpFlags>,
}

impl DoorTable {
    fn build(config: &Config, local: LocalAddresses) -> (Self, Vec<Duration>) {
        let mut timeouts: Vec<Duration> = Vec::new();
        let mut slots = Vec::with_capacity(config.doors.len());
        for (index, door) in config.doors.iter().enumerate() {
            let class = match timeouts.iter().position(|t| *t == door.seq_timeout) {
                Some(class) => class,
                None => {
                    timeouts.push(door.seq_timeout);
                    timeouts.len() - 1
                }
            };
            let door = DoorRef {
                id: DoorId(u32::try_from(index).unwrap_or(u32::MAX)),
                door: Arc::new(door.clone()),
            };
            slots.push(DoorSlot::new(door, class));
        }
        let mut table = Self {
            slots,
            by_knock: KnockIndex::default(),
            lists: Vec::new(),
            local,
        };
        table.reindex();
        (table, timeouts)
    }

    /// Rebuilds the step index from the doors' current sequences.
    fn reindex(&mut self) {
        let mut with_step: HashMap<Knock, Vec<u32>> = HashMap::new();
        let mut starting: HashMap<Knock, Vec<u32>> = HashMap::new();
        // Attempts store door numbers and stages in 16 bits: doors beyond that never match.
        for (index, slot) in self.slots.iter().enumerate().take(usize::from(u16::MAX)) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let sequence = &slot.sequence;
            if sequence.len() > usize::from(u16::MAX) {
                continue;
            }
            if let Some(first) = sequence.first() {
                starting.entry(*first).or_default().push(index);
            }
            for knock in sequence {
                let doors = with_step.entry(*knock).or_default();
                if doors.last() != Some(&index) {
                    doors.push(index);
                }
            }
        }
        self.by_knock = KnockIndex::default();
        self.lists.clear();
        let few = with_step.len() <= FEW_KNOCKS;
        for (knock, doors) in with_step {
            let with_step = push_range(&mut self.lists, &doors);
            let starting = push_range(
                &mut self.lists,
                starting.get(&knock).map_or(&[][..], Vec::as_slice),
            );
            let doors = KnockDoors {
                with_step,
                starting,
            };
            if few {
                self.by_knock.few.push((knock_key(knock), doors));
            } else {
                self.by_knock.many.insert(knock, doors);
            }
        }
    }

    fn range(&self, (start, len): (u32, u32)) -> &[u32] {
        let start = start as usize;
        &self.lists[start..start + len as usize]
    }

    fn accepts_destination(&self, slot: &DoorSlot, destination: IpAddr) -> bool {
        match slot.target {
            Some(target) => target == destination,
            None => self.local.contains(destination),
        }
    }

    /// Whether door `index` would take part in handling the probe: destination, and flags
    /// for TCP (its steps are checked by the caller through the index).
    fn accepts(&self, index: u32, probe: &Probe<'_>) -> bool {
        let slot = &self.slots[index as usize];
        self.accepts_destination(slot, probe.packet.destination)
            && probe.tcp_flags.is_none_or(|f| slot.flags.accepts(f))
    }
}

fn push_range(lists: &mut Vec<u32>, doors: &[u32]) -> (u32, u32) {
    let start = u32::try_from(lists.len()).unwrap_or(u32::MAX);
    lists.extend_from_slice(doors);
    (start, u32::try_from(doors.len()).unwrap_or(u32::MAX))
}

/// The tracked sources and the FIFOs that decide which is evicted first.
#[derive(Debug)]
struct SourceTable {
    map: SourceMap,
    /// Sources at their first step, in creation order: evicted first. Entries whose source
    /// was removed, re-created since (another generation) or promoted are stale and
    /// skipped; both FIFOs are compacted when together over 2× live.
    fifo: VecDeque<FifoEntry>,
    /// Sources that got past a first step, in promotion order: evicted only when no source
    /// at its first step is left. A spoofed-source flood only ever hits first steps, so it
    /// cannot push out a knocker who is already past one.
    fifo_advanced: VecDeque<FifoEntry>,
    /// Generation of the next source created and token of the next attempt started.
    next_token: u32,
    /// Attempts in progress over all sources.
    live_attempts: usize,
}

/// A source address as a hash key: hashed as one integer (a `u32` for IPv4, a `u128` for
/// IPv6) rather than through `IpAddr`'s derived, field-by-field `Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SourceKey(IpAddr);

impl core::hash::Hash for SourceKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        match self.0 {
            IpAddr::V4(v4) => state.write_u32(v4.to_bits()),
            IpAddr::V6(v6) => state.write_u128(v6.to_bits()),
        }
    }
}

/// One tracked source, stored directly in the hash table: 64 bytes and 64-byte aligned,
/// so that a look-up touches exactly one cache line of the table's entries (with a million
/// sources each of those is a main-memory access).
#[derive(Debug)]
#[repr(align(64))]
struct SourceState {
    key: IpAddr,
    generation: u32,
    /// Some attempt got past its first step (the source is in `fifo_advanced`).
    advanced: bool,
    attempts: AttemptList,
}

/// The source table: a hashbrown `HashTable` of [`SourceState`]s keyed by their address,
/// hashed with hashbrown's default (per-process seeded foldhash) hasher.
#[derive(Debug)]
struct SourceMap {
    table: HashTable<SourceState>,
    hasher: DefaultHashBuilder,
}

impl SourceMap {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            table: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn hash(&self, key: IpAddr) -> u64 {
        self.hasher.hash_one(SourceKey(key))
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn get(&self, key: IpAddr) -> Option<&SourceState> {
        self.find(self.hash(key), key)
    }

    /// [`get`](Self::get) with the hash already computed.
    fn find(&self, hash: u64, key: IpAddr) -> Option<&SourceState> {
        self.table.find(hash, |s| s.key == key)
    }

    /// Looks up the first `N` of `keys` for their side effect of pulling the entries into
    /// the cache: hashes first, then the look-ups from them, so that a tight loop of
    /// independent loads keeps many of the misses in flight at once.
    #[inline]
    fn prefetch<const N: usize>(&self, keys: impl Iterator<Item = IpAddr> + Clone) {
        let mut hashes = [0_u64; N];
        for (hash, key) in hashes.iter_mut().zip(keys.clone()) {
            *hash = self.hash(key);
        }
        let mut found = 0_usize;
        for (hash, key) in hashes.iter().zip(keys) {
            found += usize::from(self.find(*hash, key).is_some());
        }
        // Keeps the look-ups (whose point is to pull the entries into the cache).
        core::hint::black_box(found);
    }

    fn get_mut(&mut self, key: IpAddr) -> Option<&mut SourceState> {
        let hash = self.hash(key);
        self.table.find_mut(hash, |s| s.key == key)
    }

    fn contains_key(&self, key: IpAddr) -> bool {
        self.get(key).is_some()
    }

    fn remove(&mut self, key: IpAddr) -> Option<SourceState> {
        let hash = self.hash(key);
        match self.table.find_entry(hash, |s| s.key == key) {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        }
    }

    fn get_or_insert_with(
        &mut self,
        key: IpAddr,
        make: impl FnOnce() -> SourceState,
    ) -> &mut SourceState {
        let hash = self.hash(key);
        let hasher = &self.hasher;
        self.table
            .entry(
                hash,
                |s| s.key == key,
                |s| hasher.hash_one(SourceKey(s.key)),
            )
            .or_insert_with(make)
            .into_mut()
    }

    fn retain(&mut self, keep: impl FnMut(&mut SourceState) -> bool) {
        self.table.retain(keep);
    }

    fn clear(&mut self) {
        self.table.clear();
    }
}

#[derive(Clone, Copy, Debug)]
struct FifoEntry {
    source: IpAddr,
    generation: u32,
    /// Which FIFO the entry is in.
    advanced: bool,
}

impl SourceTable {
    fn new(max_sources: usize) -> Self {
        let capacity = max_sources.min(INITIAL_SOURCE_CAPACITY);
        Self {
            map: SourceMap::with_capacity(capacity),
            fifo: VecDeque::with_capacity(capacity),
            fifo_advanced: VecDeque::new(),
            next_token: 0,
            live_attempts: 0,
        }
    }

    fn token(&mut self) -> u32 {
        let token = self.next_token;
        self.next_token = token.wrapping_add(1);
        token
    }

    fn compact_fifo_if_needed(&mut self) {
        if self.fifo.len() + self.fifo_advanced.len() > 2 * self.map.len() + COMPACTION_SLACK {
            let map = &self.map;
            compact(&mut self.fifo, map, |e| e.source, |e| is_current(map, e));
            compact(
                &mut self.fifo_advanced,
                map,
                |e| e.source,
                |e| is_current(map, e),
            );
        }
    }

    /// Moves `state` (of `source`), which has an attempt in progress past its first step, to
    /// the advanced FIFO unless it is there already.
    fn promote(fifo_advanced: &mut VecDeque<FifoEntry>, state: &mut SourceState, source: IpAddr) {
        if !state.advanced {
            state.advanced = true;
            fifo_advanced.push_back(FifoEntry {
                source,
                generation: state.generation,
                advanced: true,
            });
        }
    }

    fn clear(&mut self) -> usize {
        let dropped = self.live_attempts;
        self.map.clear();
        self.fifo.clear();
        self.fifo_advanced.clear();
        self.live_attempts = 0;
        dropped
    }
}

/// `seq_timeout` deadlines: one FIFO per distinct timeout value. Attempts of one class are
/// started at non-decreasing instants with the same timeout, so each FIFO is sorted by
/// deadline and the earliest deadline overall is the least of the fronts. Entries of
/// attempts that ended otherwise are stale: skipped when they reach the front and dropped
/// by compaction once they outnumber the live ones.
#[derive(Debug)]
struct Deadlines {
    /// One deadline FIFO per class.
    classes: Vec<VecDeque<DeadlineEntry>>,
    entries: usize,
    /// At most the earliest front deadline (exact after each `advance_to`), so that a packet
    /// with nothing due skips the scan of the classes.
    wake_at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct DeadlineEntry {
    deadline: Instant,
    source: IpAddr,
    /// The attempt's token: the entry is live while the source has an attempt with it.
    token: u32,
}

impl Deadlines {
    fn new(classes: usize) -> Self {
        Self {
            classes: (0..classes).map(|_| VecDeque::new()).collect(),
            entries: 0,
            wake_at: Instant::MAX,
        }
    }

    /// The earliest front entry: (deadline, class).
    fn earliest(&self) -> Option<(Instant, usize)> {
        let mut best: Option<(Instant, usize)> = None;
        for (class, c) in self.classes.iter().enumerate() {
            if let Some(front) = c.front()
                && best.is_none_or(|(at, _)| front.deadline < at)
            {
                best = Some((front.deadline, class));
            }
        }
        best
    }

    fn push(&mut self, class: usize, entry: DeadlineEntry) {
        self.wake_at = self.wake_at.min(entry.deadline);
        self.classes[class].push_back(entry);
        self.entries += 1;
    }
}

/// Keeps the entries of `queue` for which `keep` holds, in order, in place. `keep` looks the
/// entry's source up: done for a block of entries ahead first (as in
/// [`Matcher::handle_packets`]), so that with a large table the misses overlap instead of
/// costing a main-memory round trip each.
fn compact<T: Copy>(
    queue: &mut VecDeque<T>,
    map: &SourceMap,
    source_of: impl Fn(&T) -> IpAddr,
    keep: impl Fn(&T) -> bool,
) {
    const BLOCK: usize = 64;
    let len = queue.len();
    let mut kept = 0;
    let mut start = 0;
    while start < len {
        let end = (start + BLOCK).min(len);
        map.prefetch::<BLOCK>((start..end).map(|index| source_of(&queue[index])));
        for index in start..end {
            let entry = queue[index];
            if keep(&entry) {
                queue[kept] = entry;
                kept += 1;
            }
        }
        start = end;
    }
    queue.truncate(kept);
}

fn is_current(map: &SourceMap, entry: &FifoEntry) -> bool {
    map.get(entry.source)
        .is_some_and(|s| s.generation == entry.generation && s.advanced == entry.advanced)
}

fn is_live(sources: &SourceMap, entry: &DeadlineEntry) -> bool {
    sources
        .get(entry.source)
        .is_some_and(|s| s.attempts.iter().any(|a| a.token == entry.token))
}

/// Pending stop commands, earliest first.
#[derive(Debug)]
struct Closes {
    heap: BinaryHeap<PendingClose>,
    next_sequence: u64,
}

#[derive(Debug)]
struct PendingClose {
    at: Instant,
    /// Scheduling order, to keep equal deadlines first-in first-out.
    sequence: u64,
    door: DoorRef,
    source: IpAddr,
}

impl PartialEq for PendingClose {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for PendingClose {}

impl PartialOrd for PendingClose {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PendingClose {
    /// Reversed, so that the max-heap yields the earliest deadline first.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (other.at, other.sequence).cmp(&(self.at, self.sequence))
    }
}

/// What an [`Action`] is, without its data (see [`ActionView`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActionKind {
    /// [`Action::Stage`].
    Stage,
    /// [`Action::Open`].
    Open,
    /// [`Action::Close`].
    Close,
    /// [`Action::Timeout`].
    Timeout,
    /// [`Action::Invalidated`].
    Invalidated,
}

/// A borrowed view of the next action, from [`Matcher::poll_action_ref`]: the same
/// information as an [`Action`] without cloning the door's `Arc` (an atomic operation per
/// action, which dominates the cost of a packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActionView<'a> {
    /// Which action.
    pub kind: ActionKind,
    /// The door.
    pub door: &'a DoorRef,
    /// The knocker.
    pub source: IpAddr,
    /// For `Stage`, the step just completed (1-based); for `Timeout` and `Invalidated`, the
    /// steps completed before; 0 for `Open` and `Close`.
    pub stage: usize,
}

impl ActionView<'_> {
    /// The owned [`Action`] (clones the door's `Arc`).
    #[must_use]
    pub fn to_action(&self) -> Action {
        let door = self.door.clone();
        let source = self.source;
        let stage = self.stage;
        match self.kind {
            ActionKind::Stage => Action::Stage {
                door,
                source,
                stage,
            },
            ActionKind::Open => Action::Open { door, source },
            ActionKind::Close => Action::Close { door, source },
            ActionKind::Timeout => Action::Timeout {
                door,
                source,
                stage,
            },
            ActionKind::Invalidated => Action::Invalidated {
                door,
                source,
                stage,
            },
        }
    }
}

/// The door of a queued action: an index into the running configuration (no reference
/// count touched per action), or an index into [`Output::owned`], the handles of stop
/// commands (which can outlive the configuration that scheduled them) and of actions queued
/// across a configuration change. Plain indices keep [`Queued`] `Copy`, so the queue clears
/// in O(1).
#[derive(Clone, Copy, Debug)]
enum QueuedDoor {
    Current(u32),
    Owned(u32),
}

#[derive(Clone, Copy, Debug)]
struct Queued {
    kind: ActionKind,
    stage: u32,
    source: IpAddr,
    door: QueuedDoor,
}

/// The action queue and the counters: written by every part of the matcher.
#[derive(Debug, Default)]
struct Output {
    /// Queued actions; those before `next` were handed out. Cleared (keeping its capacity)
    /// when a poll finds it exhausted, which the calling contract makes happen after every
    /// call: a plain vector is cheaper than a ring buffer here, and the entry a view borrows
    /// stays in place until the next poll.
    actions: Vec<Queued>,
    next: usize,
    /// Door handles of queued actions that must not follow the running configuration.
    owned: Vec<DoorRef>,
    counters: Counters,
}

impl Output {
    /// The next queued action, or `None` (emptying the queue) when all were handed out.
    #[inline]
    fn next_entry(&mut self) -> Option<Queued> {
        let queued = self.actions.get(self.next).copied();
        match queued {
            Some(_) => self.next += 1,
            None => self.reset(),
        }
        queued
    }

    fn reset(&mut self) {
        self.actions.clear();
        self.owned.clear();
        self.next = 0;
    }

    fn own(&mut self, door: DoorRef) -> QueuedDoor {
        self.owned.push(door);
        QueuedDoor::Owned(u32::try_from(self.owned.len() - 1).unwrap_or(u32::MAX))
    }

    fn emit(&mut self, kind: ActionKind, door: u32, source: IpAddr, stage: usize) {
        self.actions.push(Queued {
            kind,
            stage: u32::try_from(stage).unwrap_or(u32::MAX),
            source,
            door: QueuedDoor::Current(door),
        });
    }

    fn emit_close(&mut self, door: DoorRef, source: IpAddr) {
        let door = self.own(door);
        self.actions.push(Queued {
            kind: ActionKind::Close,
            stage: 0,
            source,
            door,
        });
    }

    fn close_early(&mut self, close: PendingClose) {
        self.counters.closes_fired_early += 1;
        self.emit_close(close.door, close.source);
    }

    /// Turns queued door indices into owned handles, before the doors they index change.
    fn detach(&mut self, doors: &DoorTable) {
        for position in self.next..self.actions.len() {
            if let QueuedDoor::Current(index) = self.actions[position].door {
                let door = self.own(doors.slots[index as usize].door.clone());
                self.actions[position].door = door;
            }
        }
    }

    fn door<'a>(&'a self, doors: &'a DoorTable, door: QueuedDoor) -> &'a DoorRef {
        match door {
            QueuedDoor::Current(index) => &doors.slots[index as usize].door,
            QueuedDoor::Owned(index) => &self.owned[index as usize],
        }
    }
}

impl Closes {
    fn schedule(
        &mut self,
        out: &mut Output,
        limit: usize,
        door: DoorRef,
        source: IpAddr,
        at: Instant,
    ) {
        out.counters.closes_scheduled += 1;
        let close = PendingClose {
            at,
            sequence: self.next_sequence,
            door,
            source,
        };
        self.next_sequence += 1;
        if limit == 0 {
            out.close_early(close);
            return;
        }
        while self.heap.len() >= limit {
            match self.heap.pop() {
                Some(first_due) => out.close_early(first_due),
                None => break,
            }
        }
        self.heap.push(close);
    }
}

/// Emits the open of `door` and schedules its stop command if there is one for `source`.
fn open(
    out: &mut Output,
    closes: &mut Closes,
    limits: Limits,
    (index, door): (u32, &DoorRef),
    source: IpAddr,
    now: Instant,
) {
    out.counters.opened += 1;
    out.emit(ActionKind::Open, index, source, 0);
    if door.door.stop_command_for(source).is_some() {
        let at = now + door.door.cmd_timeout;
        closes.schedule(out, limits.max_pending_closes, door.clone(), source, at);
    }
}

/// What a packet did to a source's attempts.
struct Progress {
    /// Some attempt's door accepts the destination (so the packet starts nothing).
    relevant: bool,
    /// Some attempt advanced or was invalidated.
    changed: bool,
    /// Some attempt still in progress completed its second step.
    past_first_step: bool,
}

impl Matcher {
    /// Upper bound of the memory per tracked source, in bytes (hash-table entry at worst-case
    /// load, eviction- and deadline-queue entries with their 2× slack; one attempt per source).
    pub const BYTES_PER_SOURCE: usize = 256;

    /// A matcher for `config` with default [`Limits`].
    #[must_use]
    pub fn new(config: &Config) -> Self {
        Self::with_limits(config, Limits::default())
    }

    /// A matcher for `config` with explicit limits (`max_sources` is raised to at least 1).
    #[must_use]
    pub fn with_limits(config: &Config, limits: Limits) -> Self {
        let limits = Limits {
            max_sources: limits.max_sources.max(1),
            ..limits
        };
        let (doors, timeouts) = DoorTable::build(config, LocalAddresses::Any);
        Self {
            doors,
            sources: SourceTable::new(limits.max_sources),
            deadlines: Deadlines::new(timeouts.len()),
            closes: Closes {
                heap: BinaryHeap::new(),
                next_sequence: 0,
            },
            out: Output::default(),
            limits,
            now: Instant::ZERO,
        }
    }

    /// Sets which destinations count as local for doors without `Target`. Attempts in
    /// progress are kept.
    pub fn set_local_addresses(&mut self, addresses: LocalAddresses) {
        self.doors.local = addresses;
    }

    /// Replaces the configuration (reload). Attempts in progress are discarded, as in
    /// knockd 0.8 (counted in [`Counters::attempts_discarded`]); pending stop commands are
    /// kept and still come due on time, naming the door of the old configuration. Counters
    /// and local addresses are kept.
    pub fn replace_config(&mut self, now: Instant, config: &Config) {
        self.now = self.now.max(now);
        self.out.detach(&self.doors);
        let local = core::mem::replace(&mut self.doors.local, LocalAddresses::Any);
        let (doors, timeouts) = DoorTable::build(config, local);
        self.doors = doors;
        self.out.counters.attempts_discarded += self.sources.clear() as u64;
        self.deadlines = Deadlines::new(timeouts.len());
    }

    /// Sets the active sequence of a door (one-time sequences). Other sources' attempts for
    /// that door keep their stage and continue against the new sequence (as in knockd 0.8);
    /// those already at or beyond its length, or all of them if `sequence` is empty (which
    /// disables the door), are discarded. Actions named after this carry the new sequence.
    /// An unknown `door` is ignored.
    pub fn set_door_sequence(&mut self, door: DoorId, sequence: Vec<Knock>) {
        if door.0 as usize >= self.doors.slots.len() {
            return;
        }
        self.out.detach(&self.doors);
        let slot = &mut self.doors.slots[door.0 as usize];
        let mut settings = Door::clone(&slot.door.door);
        settings.sequence = sequence;
        let new_len = settings.sequence.len();
        let handle = DoorRef {
            id: door,
            door: Arc::new(settings),
        };
        *slot = DoorSlot::new(handle, slot.class);
        self.doors.reindex();
        let mut discarded = 0;
        self.sources.map.retain(|state| {
            discarded += state
                .attempts
                .retain_mut(|a| u32::from(a.door) != door.0 || usize::from(a.stage) < new_len);
            !state.attempts.is_empty()
        });
        self.sources.live_attempts -= discarded;
        self.out.counters.attempts_discarded += discarded as u64;
    }

    /// Feeds one packet that arrived at `now` (see the calling contract on [`Matcher`]).
    pub fn handle_packet(&mut self, now: Instant, packet: &PacketEvent) {
        let now = self.advance_to(now);
        let probe = Probe {
            packet,
            knock: Knock {
                port: packet.destination_port,
                protocol: packet.protocol,
            },
            tcp_flags: match packet.protocol {
                Protocol::Tcp => Some(packet.tcp_flags),
                Protocol::Udp => None,
            },
        };
        let Some(knock_doors) = self.doors.by_knock.get(probe.knock) else {
            self.out.counters.ignored_unknown_port += 1;
            return;
        };
        let admitted = self
            .doors
            .range(knock_doors.with_step)
            .iter()
            .any(|&d| self.doors.accepts(d, &probe));
        if !admitted {
            self.out.counters.ignored_not_admitted += 1;
            return;
        }
        self.out.counters.admitted += 1;

        let source = packet.source;
        if let Some(state) = self.sources.map.get_mut(source) {
            let (progress, removed) = advance_attempts(
                &self.doors,
                &mut self.closes,
                &mut self.out,
                self.limits,
                state,
                source,
                &probe,
                now,
            );
            if progress.relevant {
                if !progress.changed {
                    self.out.counters.ignored_flags_mismatch += 1;
                }
                if progress.past_first_step {
                    SourceTable::promote(&mut self.sources.fifo_advanced, state, source);
                }
                if removed > 0 {
                    self.sources.live_attempts -= removed;
                    if state.attempts.is_empty() {
                        self.sources.map.remove(source);
                    }
                    self.drop_stale_fronts_of(source);
                }
                return;
            }
        }
        self.start_attempts(now, source, knock_doors.starting, &probe);
    }

    /// Feeds several packets that arrived at `now`, in order: the same as calling
    /// [`handle_timeout`](Self::handle_timeout) and then
    /// [`handle_packet`](Self::handle_packet) for each, only faster with many tracked
    /// sources.
    ///
    /// Why faster: with many sources the table outgrows the CPU caches and each packet waits
    /// for one source entry from main memory. This method first looks up the sources of a
    /// few packets ahead in a tight loop, so those memory accesses overlap instead of
    /// queueing behind the one before; the packets are then processed from the cache.
    /// A daemon that takes packets off a channel in bursts should feed them this way.
    pub fn handle_packets(&mut self, now: Instant, packets: &[PacketEvent]) {
        /// Packets looked up ahead: enough to cover main-memory latency, few enough that
        /// their entries are still cached when processed.
        const LOOKAHEAD: usize = 64;
        // Deadlines up to `now` are processed even when `packets` is empty.
        self.advance_to(now);
        for chunk in packets.chunks(LOOKAHEAD) {
            if self.sources.map.len() > LOOKAHEAD {
                self.sources
                    .map
                    .prefetch::<LOOKAHEAD>(chunk.iter().map(|p| p.source));
            }
            for packet in chunk {
                self.handle_packet(now, packet);
            }
        }
    }

    /// Tells the matcher that time has reached `now`: expires attempts and emits stop
    /// commands that are due. Calling it before [`poll_timeout`](Self::poll_timeout) is a
    /// no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_to(now);
    }

    /// The next action, or `None` when drained. Call until `None` after every input or
    /// command.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.poll_action_ref().map(|view| view.to_action())
    }

    /// The next action as a borrowed view, or `None` when drained: the same sequence as
    /// [`poll_action`](Self::poll_action) (the two can be mixed), without cloning the door's
    /// `Arc` for each action. Use it in a hot loop that only logs or counts most actions;
    /// [`ActionView::to_action`] gives the owned action when one must be kept.
    #[must_use]
    pub fn poll_action_ref(&mut self) -> Option<ActionView<'_>> {
        let queued = self.out.next_entry()?;
        Some(ActionView {
            kind: queued.kind,
            door: self.out.door(&self.doors, queued.door),
            source: queued.source,
            stage: queued.stage as usize,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the earliest
    /// `seq_timeout` expiry or stop-command deadline, `None` when nothing is pending. A soft
    /// deadline; read it after draining [`poll_action`](Self::poll_action).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let attempt = self.deadlines.earliest().map(|(at, _)| at);
        let close = self.closes.heap.peek().map(|c| c.at);
        match (attempt, close) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    /// Arms a stop command for `source` on `door` at `at` (e.g. one restored from a state
    /// file after a restart; `at` may already be past, then it fires at the next
    /// [`handle_timeout`](Self::handle_timeout)). Subject to
    /// [`Limits::max_pending_closes`], so it may emit an early [`Action::Close`]: drain
    /// [`poll_action`](Self::poll_action) afterwards.
    pub fn schedule_close(&mut self, door: DoorRef, source: IpAddr, at: Instant) {
        self.closes.schedule(
            &mut self.out,
            self.limits.max_pending_closes,
            door,
            source,
            at,
        );
    }

    /// Removes every pending stop command and returns them as [`Action::Close`]s, earliest
    /// deadline first (for shutdown: no hole is left open).
    pub fn take_pending_closes(&mut self) -> Vec<Action> {
        let mut pending = core::mem::take(&mut self.closes.heap).into_sorted_vec();
        // `into_sorted_vec` is ascending in the reversed order: latest deadline first.
        pending.reverse();
        self.out.counters.closes_taken += pending.len() as u64;
        pending
            .into_iter()
            .map(|c| Action::Close {
                door: c.door,
                source: c.source,
            })
            .collect()
    }

    /// The running totals.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.out.counters
    }

    /// Sources with an attempt in progress (at most [`Limits::max_sources`]).
    #[must_use]
    pub fn tracked_sources(&self) -> usize {
        self.sources.map.len()
    }

    /// Attempts in progress over all sources.
    #[must_use]
    pub fn attempts_in_progress(&self) -> usize {
        self.sources.live_attempts
    }

    /// Stop commands waiting for their deadline (at most [`Limits::max_pending_closes`]).
    #[must_use]
    pub fn pending_closes(&self) -> usize {
        self.closes.heap.len()
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The door with index `id` in the running configuration, with its current sequence.
    #[must_use]
    pub fn door(&self, id: DoorId) -> Option<&DoorRef> {
        self.doors.slots.get(id.0 as usize).map(|s| &s.door)
    }

    /// Moves the clock to `now` (never backwards) and processes every deadline up to it.
    #[inline]
    fn advance_to(&mut self, now: Instant) -> Instant {
        let now = now.max(self.now);
        self.now = now;
        if now >= self.deadlines.wake_at || self.closes.heap.peek().is_some_and(|c| now >= c.at) {
            self.run_deadlines(now);
        }
        now
    }

    /// Processes every deadline up to `now`, earliest first.
    fn run_deadlines(&mut self, now: Instant) {
        loop {
            let attempt = self.deadlines.earliest().filter(|(at, _)| *at <= now);
            let close = self
                .closes
                .heap
                .peek()
                .map(|c| c.at)
                .filter(|at| *at <= now);
            match (attempt, close) {
                (Some((at, class)), close) if close.is_none_or(|c| at <= c) => {
                    self.expire_front(class, now);
                }
                (_, Some(_)) => {
                    if let Some(due) = self.closes.heap.pop() {
                        self.out.counters.closes_fired += 1;
                        self.out.emit_close(due.door, due.source);
                    }
                }
                _ => break,
            }
        }
        self.deadlines.wake_at = self.deadlines.earliest().map_or(Instant::MAX, |(at, _)| at);
    }

    /// Pops the front deadline of `class` and expires its source's attempts that are due.
    fn expire_front(&mut self, class: usize, now: Instant) {
        let Some(entry) = self.deadlines.classes[class].pop_front() else {
            return;
        };
        self.deadlines.entries -= 1;
        let Some(state) = self.sources.map.get_mut(entry.source) else {
            return;
        };
        let out = &mut self.out;
        let expired = state.attempts.retain_mut(|a| {
            if a.deadline > now {
                return true;
            }
            out.counters.attempts_expired += 1;
            let stage = usize::from(a.stage);
            out.emit(ActionKind::Timeout, u32::from(a.door), entry.source, stage);
            false
        });
        self.sources.live_attempts -= expired;
        if state.attempts.is_empty() {
            self.sources.map.remove(entry.source);
        }
    }

    /// After `source`'s attempts ended otherwise than by expiry: drops the deadline entries
    /// of those attempts that sit at a queue front, so that [`poll_timeout`] stays exact for
    /// the common case of a single knocker (no wake-up for an attempt that already ended).
    fn drop_stale_fronts_of(&mut self, source: IpAddr) {
        for class in &mut self.deadlines.classes {
            while let Some(front) = class.front() {
                if front.source != source || is_live(&self.sources.map, front) {
                    break;
                }
                class.pop_front();
                self.deadlines.entries -= 1;
            }
        }
    }

    /// A source with nothing in progress for this destination knocked: starts an attempt
    /// for every door (config order) that begins with this knock and accepts the packet.
    fn start_attempts(
        &mut self,
        now: Instant,
        source: IpAddr,
        starting: (u32, u32),
        probe: &Probe<'_>,
    ) {
        let mut started = false;
        let (first, count) = starting;
        for position in first..first + count {
            let index = self.doors.lists[position as usize];
            if !self.doors.accepts(index, probe) {
                continue;
            }
            // The index holds only doors whose number and length fit the attempt's fields.
            let Ok(door_index) = u16::try_from(index) else {
                continue;
            };
            started = true;
            self.out.counters.attempts_started += 1;
            let slot = &self.doors.slots[index as usize];
            self.out.emit(ActionKind::Stage, index, source, 1);
            if slot.sequence.len() == 1 {
                open(
                    &mut self.out,
                    &mut self.closes,
                    self.limits,
                    (index, &slot.door),
                    source,
                    now,
                );
                continue;
            }
            let class = slot.class;
            let deadline = now + slot.door.door.seq_timeout;
            let token = self.sources.token();
            self.track(source).attempts.push(Attempt {
                door: door_index,
                stage: 1,
                token,
                deadline,
            });
            self.sources.live_attempts += 1;
            self.deadlines.push(
                class,
                DeadlineEntry {
                    deadline,
                    source,
                    token,
                },
            );
        }
        if !started {
            self.out.counters.ignored_not_first_step += 1;
            return;
        }
        self.sources.compact_fifo_if_needed();
        if self.deadlines.entries > 2 * self.sources.live_attempts + COMPACTION_SLACK {
            let map = &self.sources.map;
            let mut entries = 0;
            for class in &mut self.deadlines.classes {
                compact(class, map, |e| e.source, |e| is_live(map, e));
                entries += class.len();
            }
            self.deadlines.entries = entries;
        }
    }

    /// The state of `source`, created (evicting the oldest source at the cap) if needed.
    fn track(&mut self, source: IpAddr) -> &mut SourceState {
        if self.sources.map.len() >= self.limits.max_sources
            && !self.sources.map.contains_key(source)
        {
            self.evict_oldest();
        }
        let SourceTable {
            map,
            fifo,
            next_token,
            ..
        } = &mut self.sources;
        map.get_or_insert_with(source, || {
            let generation = *next_token;
            *next_token = generation.wrapping_add(1);
            fifo.push_back(FifoEntry {
                source,
                generation,
                advanced: false,
            });
            SourceState {
                key: source,
                generation,
                advanced: false,
                attempts: AttemptList::default(),
            }
        })
    }

    /// Evicts the source at its first step created longest ago, or if there is none, the
    /// source promoted longest ago.
    fn evict_oldest(&mut self) {
        while let Some(entry) = self
            .sources
            .fifo
            .pop_front()
            .or_else(|| self.sources.fifo_advanced.pop_front())
        {
            if !is_current(&self.sources.map, &entry) {
                continue;
            }
            if let Some(state) = self.sources.map.remove(entry.source) {
                let attempts = state.attempts.len();
                self.sources.live_attempts -= attempts;
                self.out.counters.attempts_evicted += attempts as u64;
                self.out.counters.sources_evicted += 1;
            }
            // In a flood the evicted source is the oldest, so its deadline entries are
            // usually at the queue fronts: drop them now rather than by a compaction pass.
            self.drop_stale_fronts_of(entry.source);
            return;
        }
    }
}

/// Applies a packet to the attempts of its source whose door accepts its destination.
/// Returns what happened and how many attempts ended.
#[allow(clippy::too_many_arguments)]
fn advance_attempts(
    doors: &DoorTable,
    closes: &mut Closes,
    out: &mut Output,
    limits: Limits,
    state: &mut SourceState,
    source: IpAddr,
    probe: &Probe<'_>,
    now: Instant,
) -> (Progress, usize) {
    let mut progress = Progress {
        relevant: false,
        changed: false,
        past_first_step: false,
    };
    let removed = state.attempts.retain_mut(|attempt| {
        let slot = &doors.slots[attempt.door as usize];
        if !doors.accepts_destination(slot, probe.packet.destination) {
            return true;
        }
        progress.relevant = true;
        if probe.tcp_flags.is_some_and(|f| !slot.flags.accepts(f)) {
            return true;
        }
        progress.changed = true;
        let stage = usize::from(attempt.stage);
        if slot.sequence.get(stage) == Some(&probe.knock) {
            attempt.stage += 1;
            out.counters.attempts_advanced += 1;
            let index = u32::from(attempt.door);
            out.emit(ActionKind::Stage, index, source, stage + 1);
            if stage + 1 < slot.sequence.len() {
                progress.past_first_step |= stage + 1 == 2;
                return true;
            }
            open(out, closes, limits, (index, &slot.door), source, now);
        } else {
            out.counters.attempts_invalidated += 1;
            out.emit(
                ActionKind::Invalidated,
                u32::from(attempt.door),
                source,
                stage,
            );
        }
        false
    });
    (progress, removed)
}
