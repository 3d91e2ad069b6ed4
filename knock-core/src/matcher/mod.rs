//! The knock-sequence matcher: a sans-IO state machine that turns packets and the passing of
//! time into [`Action`]s.
//!
//! See [`Matcher`] for the calling contract, the matching rules and the memory bound.
//!
//! The state is split along its data structures, one module each:
//!
//! * `output`: the actions and the queue they wait in (and the counters every part
//!   writes);
//! * `doors`: the running configuration's doors and the (protocol, port) → doors index;
//! * `sources`: the tracked sources, their attempts (`attempts`) and the FIFOs that pick
//!   the source evicted at the cap;
//! * `deadlines`: `seq_timeout` expiries and pending stop commands;
//! * `limits`: the bounds and the counters' type.
//!
//! [`Matcher`] owns the per-source state (`sources` and `deadlines`) and a
//! `MatcherInner` holding everything a packet reads or writes besides its own source
//! (doors, output, pending closes, limits): borrowing the source's entry and the inner part
//! at once is then a plain split borrow of two fields (smoltcp's `Interface` /
//! `InterfaceInner`).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Config, Door, Knock};
use crate::packet::{PacketEvent, Protocol};
use crate::time::Instant;

mod attempts;
mod deadlines;
mod doors;
mod limits;
mod output;
mod sources;
#[cfg(test)]
mod tests;

use attempts::{Attempt, AttemptList};
use deadlines::{Closes, DeadlineEntry, Deadlines, is_live};

pub use doors::{DoorId, DoorRef, LocalAddresses};
use doors::{DoorSlot, DoorTable, Probe};
use limits::COMPACTION_SLACK;
pub use limits::{Counters, DEFAULT_MAX_PENDING_CLOSES, DEFAULT_MAX_SOURCES, Limits};
use output::Output;
pub use output::{Action, ActionKind, ActionView};
use sources::{FifoEntry, NOT_FOUND, SourceState, SourceTable, compact};

/// Expiries looked up ahead together (see `Matcher::expire_chunk`): enough to keep many
/// cache misses in flight, small enough for the hashes to stay on the stack.
const EXPIRY_CHUNK: usize = 32;

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
/// state. A packet's time is its [`PacketEvent::timestamp`] (the capture's time, or the
/// caller's clock when the packet was received), given nowhere else.
///
/// A door whose `sequence` is empty, such as a `One_Time_Sequences` door before the caller
/// has read its file, matches nothing until [`set_door_sequence`](Self::set_door_sequence)
/// gives it one.
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
/// * With the door's `AllowDuplicates`, a repeat of the step the attempt matched last (a
///   retransmitted SYN) is ignored by that attempt instead of invalidating it
///   (counted in [`Counters::ignored_duplicates`]); off by default, as in knockd 0.8.
/// * A time-based (TOTP) door matches the sequences its caller gives with
///   [`set_door_sequences`](Self::set_door_sequences) (one per code of the window), never
///   its base ports. Each is matched as above (an attempt per consistent candidate,
///   reported once per door); the [`Action::Open`] names the code's counter, and a code
///   that opened once gives [`Action::CodeUsed`] instead for every source. Per packet this
///   adds only the candidates' entries in the step index (no allocation); memory: one door
///   slot per candidate.
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
/// of those), and at most `max_pending_closes` stop commands wait. The per-source state
/// (table, eviction FIFOs, deadline queue) takes at most
/// [`Matcher::BYTES_PER_SOURCE`] (666) bytes per source of the cap plus
/// [`Matcher::TRACKING_OVERHEAD`]: at most about 44 MB for the default 65 536 sources
/// (typically 200–300 bytes per source, 13–20 MB), checked by
/// [`tracking_memory`](Self::tracking_memory) in the tests; about 100 bytes more per
/// pending close. A source with attempts for more than two doors at once (only possible
/// when more than two doors share a first step) stores the extra ones on the heap.
///
/// A flood of spoofed first knocks therefore cannot evict a legitimate knocker who is past
/// the first step of a sequence (spoofed sources only ever hit first steps; an attacker who
/// knows a second step knows the secret). Between its first and second knock a knocker can
/// be evicted, after `max_sources` newer sources: at 200 000 spoofed packets/s and the
/// default cap, a third of a second. Raise the limit if the link can carry more.
///
/// # Performance
///
/// [`poll_action`](Self::poll_action) clones the door's `Arc` for every action (two atomic
/// operations per packet); [`poll_action_ref`](Self::poll_action_ref) does not, so a hot
/// loop should drain with it. Beyond the CPU caches each packet waits for its source's entry
/// in main memory (one 64-byte line): [`handle_packets`](Self::handle_packets) overlaps those
/// waits for a burst (and handles the common packet on a shorter path, whatever the number
/// of sources), so a daemon should feed bursts that way. Measured throughput (packets
/// per second by number of tracked sources, for each of these ways of calling) is in the
/// workspace's `BENCHMARKS.md` (`cargo bench -p knock-benches --bench matcher`).
#[derive(Debug)]
pub struct Matcher {
    /// Everything but the per-source state, borrowed apart from a source's entry.
    inner: MatcherInner,
    sources: SourceTable,
    deadlines: Deadlines,
    now: Instant,
}

/// The part of the matcher a packet uses besides its source's entry: the doors, the output
/// queue, the pending stop commands and the limits.
#[derive(Debug)]
struct MatcherInner {
    doors: DoorTable,
    closes: Closes,
    out: Output,
    limits: Limits,
}

/// What a packet did to a source's attempts.
struct Progress {
    /// Some attempt's door accepts the destination (so the packet starts nothing).
    relevant: bool,
    /// Some attempt advanced, was invalidated or ignored a duplicate step.
    changed: bool,
    /// Some attempt still in progress completed its second step.
    past_first_step: bool,
}

impl Matcher {
    /// Upper bound of the heap memory per tracked source, in bytes, for large
    /// [`Limits::max_sources`] `N`, with one attempt per source and one `seq_timeout` value
    /// (see [`tracking_memory`](Self::tracking_memory) for what it covers and
    /// [`TRACKING_OVERHEAD`](Self::TRACKING_OVERHEAD) for the constant part):
    ///
    /// * the source table: 65 bytes per bucket (a 64-byte entry and a control byte); at most
    ///   7/8 of the buckets are used and their number is a power of two, so `N` sources may
    ///   need up to `2 × 8N/7` buckets; and when deletions have left tombstones while more
    ///   than half of that capacity is in use, hashbrown grows the table once more instead of
    ///   cleaning it in place: at most `4 × 8N/7` buckets, about 297 bytes per source;
    /// * the eviction FIFOs (24-byte entries): compacted once they hold more than `2N + 64`
    ///   entries, the advanced one can gain up to `N` more between compactions, and a
    ///   buffer's capacity is up to twice the most it held: `2 × (2N + 3N)` entries, 240
    ///   bytes per source;
    /// * the deadline queue (32-byte entries): compacted beyond twice the live attempts
    ///   plus 64, buffer up to twice that: `4N` entries, 128 bytes per source.
    ///
    /// A worst case, not the usual one: typically a table at 44–88 % load and queues about
    /// half as large (about 170–300 bytes per source in the tests and benches). Growing the
    /// table also briefly holds the old and the new table at once (at most half as much
    /// again). More than one seq_timeout value adds a deadline queue per value, and more
    /// than two attempts at once per source (more than two doors sharing a first step) add
    /// 16 bytes per extra attempt on the heap.
    pub const BYTES_PER_SOURCE: usize = {
        let bucket = size_of::<SourceState>() + 1;
        let table = (4 * 8 * bucket).div_ceil(7);
        let fifos = 10 * size_of::<FifoEntry>();
        let deadlines = 4 * size_of::<DeadlineEntry>();
        table + fifos + deadlines
    };

    /// The constant part of the bound on [`tracking_memory`](Self::tracking_memory) that
    /// [`BYTES_PER_SOURCE`](Self::BYTES_PER_SOURCE) leaves out: the compaction slack (64
    /// stale entries per queue, with room to double), the table's trailing control bytes
    /// and the small initial sizes, in bytes.
    pub const TRACKING_OVERHEAD: usize = 64 * 1024;

    /// Heap bytes the per-source state holds now, by capacity: the source table, the
    /// eviction FIFOs and the deadline queues. At most
    /// `max_sources × BYTES_PER_SOURCE + TRACKING_OVERHEAD` (with one seq_timeout value and at
    /// most two attempts per source). Pending stop commands, the queued actions and the
    /// doors are not included.
    #[must_use]
    pub fn tracking_memory(&self) -> usize {
        self.sources.heap_bytes() + self.deadlines.heap_bytes()
    }

    /// A matcher for `config` with default [`Limits`]. Doors with an empty `sequence`
    /// (one-time sequences not set yet) stay shut until
    /// [`set_door_sequence`](Self::set_door_sequence).
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
            inner: MatcherInner {
                doors,
                closes: Closes::default(),
                out: Output::default(),
                limits,
            },
            sources: SourceTable::new(limits.max_sources),
            deadlines: Deadlines::new(timeouts.len()),
            now: Instant::ZERO,
        }
    }

    /// Sets which destinations count as local for doors without `Target`. Attempts in
    /// progress are kept.
    pub fn set_local_addresses(&mut self, addresses: LocalAddresses) {
        self.inner.doors.local = addresses;
    }

    /// Replaces the configuration (reload). Attempts in progress are discarded, as in
    /// knockd 0.8 (counted in [`Counters::attempts_discarded`]); pending stop commands are
    /// kept and still come due on time, naming the door of the old configuration. Counters
    /// and local addresses are kept.
    pub fn replace_config(&mut self, now: Instant, config: &Config) {
        self.now = self.now.max(now);
        self.inner.out.detach(&self.inner.doors);
        let local = core::mem::replace(&mut self.inner.doors.local, LocalAddresses::Any);
        let (doors, timeouts) = DoorTable::build(config, local);
        self.inner.doors = doors;
        self.inner.out.counters.attempts_discarded += self.sources.clear() as u64;
        self.deadlines = Deadlines::new(timeouts.len());
    }

    /// Sets the active sequence of a door (one-time sequences: call it right after the open
    /// that used the previous one). Every attempt in progress on that door is discarded
    /// (counted in [`Counters::attempts_discarded`]), so the new sequence must be knocked
    /// from its first step: an attempt that kept its stage could otherwise complete the new
    /// sequence with only its last steps (a partial replay). Attempts on other doors are
    /// kept. An empty `sequence` disables the door. Actions named after this carry the new
    /// sequence. An unknown `door` is ignored.
    pub fn set_door_sequence(&mut self, door: DoorId, sequence: Vec<Knock>) {
        if door.index() >= self.inner.doors.slots.len() {
            return;
        }
        self.inner.out.detach(&self.inner.doors);
        let slot = &mut self.inner.doors.slots[door.index()];
        let mut settings = Door::clone(&slot.door);
        settings.sequence = sequence;
        let handle = DoorRef::new(door, Arc::new(settings));
        *slot = DoorSlot::new(handle, slot.class);
        self.inner.doors.reindex();
        let mut discarded = 0;
        self.sources.map.retain(|state| {
            discarded += state
                .attempts
                .retain_mut(|a| usize::from(a.door) != door.index());
            !state.attempts.is_empty()
        });
        self.sources.live_attempts -= discarded;
        self.inner.out.counters.attempts_discarded += discarded as u64;
    }

    /// Sets the accepted sequences of a time-based (TOTP) door: one (time-step counter,
    /// sequence) per code of its window `[T−W, T+W]`, as `Totp::window` gives them. The
    /// caller owns the clock: call it at start, after [`replace_config`](Self::replace_config)
    /// and at every step boundary (`Totp::next_step_boundary`).
    ///
    /// A source's attempt follows every candidate its knocks are consistent with (one attempt
    /// per candidate, reported once per door); only a complete sequence opens, and the
    /// [`Action::Open`] names the counter used. That code is then *spent* for every source:
    /// a later complete knock of it gives [`Action::CodeUsed`] and opens nothing.
    ///
    /// Candidates kept from the previous call keep their attempts in progress and whether
    /// they are spent; attempts on a candidate that left the window are discarded (counted in
    /// [`Counters::attempts_discarded`]). Ignored for an unknown door or one without
    /// `totp`. Memory: one slot per candidate (at most `2 × MAX_WINDOW + 1` per door); the
    /// step index is rebuilt (allocates; once per step, not per packet).
    pub fn set_door_sequences(&mut self, door: DoorId, candidates: Vec<(u64, Vec<Knock>)>) {
        let index = door.index();
        if index >= self.inner.doors.configured || self.inner.doors.slots[index].door.totp.is_none()
        {
            return;
        }
        self.inner.out.detach(&self.inner.doors);
        let changed = self.inner.doors.set_candidates(index, candidates);
        if changed.is_empty() {
            return;
        }
        let mut discarded = 0;
        self.sources.map.retain(|state| {
            discarded += state
                .attempts
                .retain_mut(|a| !changed.contains(&u32::from(a.door)));
            !state.attempts.is_empty()
        });
        self.sources.live_attempts -= discarded;
        self.inner.out.counters.attempts_discarded += discarded as u64;
    }

    /// Marks the code of step `code_step` of TOTP door `door` as spent (e.g. remembered in
    /// a state file across a restart): a complete knock of it opens nothing. Applies to the
    /// current candidates only (call it after
    /// [`set_door_sequences`](Self::set_door_sequences)); returns whether that code is one.
    pub fn spend_code(&mut self, door: DoorId, code_step: u64) -> bool {
        if door.index() >= self.inner.doors.configured {
            return false;
        }
        self.inner.doors.spend(door.index(), code_step)
    }

    /// Feeds one packet, which arrived at its [`PacketEvent::timestamp`] (see the calling
    /// contract on [`Matcher`]).
    pub fn handle_packet(&mut self, packet: &PacketEvent) {
        self.handle_packet_hashed(packet, None);
    }

    /// The packet's probe: its step and, for TCP, its flags.
    #[inline(always)]
    fn probe(packet: &PacketEvent) -> Probe<'_> {
        Probe {
            packet,
            knock: Knock {
                port: packet.destination_port,
                protocol: packet.protocol,
            },
            tcp_flags: match packet.protocol {
                Protocol::Tcp => Some(packet.tcp_flags),
                Protocol::Udp => None,
            },
        }
    }

    /// A packet of a batch, whose source was looked up already (hash, and the bucket where
    /// it was found or `NOT_FOUND`): the common case (see
    /// [`MatcherInner::advance_only_attempt`]) inline, anything else through
    /// [`handle_packet_hashed`](Self::handle_packet_hashed). Trying the common case
    /// before the door index and the admission scan costs no extra look-up here, and a knock
    /// that is the next step of a door accepting the packet is admitted by construction.
    #[inline(always)]
    fn handle_looked_up_packet(&mut self, packet: &PacketEvent, (hash, bucket): (u64, usize)) {
        self.advance_to(packet.timestamp);
        let probe = Self::probe(packet);
        let source = packet.source;
        if let Some(state) = self.sources.map.find_mut_at(hash, bucket, source)
            && self.inner.advance_only_attempt(
                &mut self.sources.fifo_advanced,
                state,
                source,
                &probe,
            )
        {
            self.inner.out.counters.admitted += 1;
            return;
        }
        self.handle_packet_hashed(packet, Some((hash, bucket)));
    }

    /// [`handle_packet`](Self::handle_packet), with the hash of the packet's source and the
    /// bucket where it was found (`NOT_FOUND` if not), if already looked up.
    #[inline(never)]
    fn handle_packet_hashed(&mut self, packet: &PacketEvent, lookup: Option<(u64, usize)>) {
        let now = self.advance_to(packet.timestamp);
        let probe = Self::probe(packet);
        let source = packet.source;
        let Some(knock_doors) = self.inner.doors.by_knock.get(probe.knock) else {
            self.inner.out.counters.ignored_unknown_port += 1;
            return;
        };
        let admitted = self
            .inner
            .doors
            .range(knock_doors.with_step)
            .iter()
            .any(|&d| self.inner.doors.accepts(d, &probe));
        if !admitted {
            self.inner.out.counters.ignored_not_admitted += 1;
            return;
        }
        self.inner.out.counters.admitted += 1;

        let (hash, bucket) = lookup.unwrap_or_else(|| (self.sources.map.hash(source), NOT_FOUND));
        if let Some(state) = self.sources.map.find_mut_at(hash, bucket, source) {
            if self.inner.advance_only_attempt(
                &mut self.sources.fifo_advanced,
                state,
                source,
                &probe,
            ) {
                return;
            }
            let (progress, removed) = self.inner.advance_attempts(state, source, &probe, now);
            if progress.relevant {
                if !progress.changed {
                    self.inner.out.counters.ignored_flags_mismatch += 1;
                }
                if progress.past_first_step {
                    SourceTable::promote(&mut self.sources.fifo_advanced, state, source);
                }
                if removed > 0 {
                    self.sources.live_attempts -= removed;
                    if state.attempts.is_empty() {
                        self.sources.remove_source(hash, source);
                    }
                    self.drop_stale_fronts(source, false);
                }
                return;
            }
        }
        self.start_attempts(now, (source, hash), knock_doors.starting, &probe);
    }

    /// Feeds several packets in order, each at its own [`PacketEvent::timestamp`]: the same
    /// as calling [`handle_packet`](Self::handle_packet) for each (same actions, same
    /// counters), only faster, most of all with many tracked sources.
    ///
    /// Why faster: with many sources the table outgrows the CPU caches and each packet waits
    /// for one source entry from main memory. This method first looks up the sources of a
    /// few packets ahead in a tight loop, so those memory accesses overlap instead of
    /// queueing behind the one before (with the sources whose attempts expire among those
    /// packets); the packets are then processed from the cache.
    /// With the source already at hand, the common packet (the next step, not the last, of
    /// the source's only attempt, on a door without TOTP candidates) is handled on a short
    /// path that skips the door index and the admission scan. A daemon that takes packets
    /// off a channel in bursts should feed them this way.
    pub fn handle_packets(&mut self, packets: &[PacketEvent]) {
        /// Packets looked up ahead: enough to cover main-memory latency, few enough that
        /// their entries are still cached when processed.
        const LOOKAHEAD: usize = 64;
        let mut hashes = [0; LOOKAHEAD];
        let mut buckets = [NOT_FOUND; LOOKAHEAD];
        for chunk in packets.chunks(LOOKAHEAD) {
            // A table this small is in the cache: nothing to look up ahead.
            let ahead = self.sources.map.len() > LOOKAHEAD;
            if ahead {
                self.sources.map.prefetch(
                    chunk.iter().map(|p| p.source),
                    &mut hashes,
                    &mut buckets,
                );
                // Each source not found is new and, beyond the room left under the cap,
                // evicts the oldest: look as many of those up ahead. Only as many: packets
                // of tracked sources at the cap evict nothing, and looking up the oldest for
                // them would double the misses per packet.
                let new = buckets[..chunk.len()]
                    .iter()
                    .filter(|&&bucket| bucket == NOT_FOUND)
                    .count();
                let cap = self.inner.limits.max_sources;
                let room = cap.saturating_sub(self.sources.map.len());
                if new > room {
                    self.sources.prefetch_oldest::<LOOKAHEAD>(new - room);
                }
                // The attempts whose `seq_timeout` falls within the chunk expire between its
                // packets, each looked up alone (one or two main-memory waits each) unless
                // looked up here with the others. A spoofed-source flood below the cap has one
                // expiry per packet.
                if let Some(until) = chunk.iter().map(|p| p.timestamp).max()
                    && until >= self.deadlines.wake_at
                {
                    self.prefetch_due::<LOOKAHEAD>(until);
                }
            }
            for (index, packet) in chunk.iter().enumerate() {
                // A small table is in the cache: its look-up is done here, so that the
                // packet still takes the batch's fast path.
                let lookup = if ahead {
                    (hashes[index], buckets[index])
                } else {
                    (self.sources.map.hash(packet.source), NOT_FOUND)
                };
                self.handle_looked_up_packet(packet, lookup);
            }
        }
    }

    /// Looks up ahead (see `SourceMap::prefetch`) the sources of the deadline entries due by
    /// `until` (at most `N`, class by class): a hint only, each expiry checks its entry.
    fn prefetch_due<const N: usize>(&self, until: Instant) {
        let due = self
            .deadlines
            .classes
            .iter()
            .flat_map(|class| class.iter().take_while(move |e| e.deadline <= until))
            .take(N)
            .map(|e| e.source);
        let mut hashes = [0; N];
        let mut buckets = [NOT_FOUND; N];
        self.sources.map.prefetch(due, &mut hashes, &mut buckets);
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
    #[inline]
    pub fn poll_action_ref(&mut self) -> Option<ActionView<'_>> {
        let queued = self.inner.out.next_entry()?;
        Some(ActionView {
            kind: queued.kind,
            door: self.inner.out.door(&self.inner.doors, queued.door),
            source: queued.source,
            stage: queued.stage(),
            code_step: queued.code_step(),
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the earliest
    /// `seq_timeout` expiry or stop-command deadline, `None` when nothing is pending. A soft
    /// deadline; read it after draining [`poll_action`](Self::poll_action).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.poll_expiry_timeout(), self.poll_close_timeout()) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    /// The earliest `seq_timeout` expiry alone (one part of
    /// [`poll_timeout`](Self::poll_timeout)). An expiry only emits [`ActionKind::Timeout`]
    /// and frees the attempt's memory: a packet arriving after it is refused whenever
    /// [`handle_timeout`](Self::handle_timeout) runs, so a caller may process expiries late
    /// and many at once (a daemon under a spoofed-source flood has one expiry per flood
    /// packet, and waking for each would cost a wake-up per packet).
    #[must_use]
    pub fn poll_expiry_timeout(&self) -> Option<Instant> {
        self.deadlines.earliest().map(|(at, _)| at)
    }

    /// The earliest stop-command deadline alone (the other part of
    /// [`poll_timeout`](Self::poll_timeout)): due on time, since it closes an open door.
    #[must_use]
    pub fn poll_close_timeout(&self) -> Option<Instant> {
        self.inner.closes.heap.peek().map(|c| c.at)
    }

    /// Arms a stop command for `source` on `door` at `at` (e.g. one restored from a state
    /// file after a restart; `at` may already be past, then it fires at the next
    /// [`handle_timeout`](Self::handle_timeout)). Subject to
    /// [`Limits::max_pending_closes`], so it may emit an early [`Action::Close`]: drain
    /// [`poll_action`](Self::poll_action) afterwards.
    pub fn schedule_close(&mut self, door: DoorRef, source: IpAddr, at: Instant) {
        self.inner.closes.schedule(
            &mut self.inner.out,
            self.inner.limits.max_pending_closes,
            door,
            source,
            at,
        );
    }

    /// Removes every pending stop command and returns them as [`Action::Close`]s, earliest
    /// deadline first (for shutdown: no hole is left open).
    pub fn take_pending_closes(&mut self) -> Vec<Action> {
        let mut pending = core::mem::take(&mut self.inner.closes.heap).into_sorted_vec();
        // `into_sorted_vec` is ascending in the reversed order: latest deadline first.
        pending.reverse();
        self.inner.out.counters.closes_taken += pending.len() as u64;
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
        &self.inner.out.counters
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
        self.inner.closes.heap.len()
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The door with index `id` in the running configuration, with its current sequence.
    #[must_use]
    pub fn door(&self, id: DoorId) -> Option<&DoorRef> {
        self.inner.doors.slots.get(id.index()).map(|s| &s.door)
    }

    /// Moves the clock to `now` (never backwards) and processes every deadline up to it.
    #[inline(always)]
    fn advance_to(&mut self, now: Instant) -> Instant {
        let now = now.max(self.now);
        self.now = now;
        if now >= self.deadlines.wake_at
            || self.inner.closes.heap.peek().is_some_and(|c| now >= c.at)
        {
            self.run_deadlines(now);
        }
        now
    }

    /// Processes every deadline up to `now`, earliest first.
    #[inline(never)]
    fn run_deadlines(&mut self, now: Instant) {
        loop {
            let attempt = self.deadlines.earliest().filter(|(at, _)| *at <= now);
            let close = self
                .inner
                .closes
                .heap
                .peek()
                .map(|c| c.at)
                .filter(|at| *at <= now);
            match (attempt, close) {
                (Some((at, class)), close) if close.is_none_or(|c| at <= c) => {
                    self.expire_chunk(class, now, close);
                }
                (_, Some(_)) => {
                    if let Some(due) = self.inner.closes.heap.pop() {
                        self.inner.out.counters.closes_fired += 1;
                        self.inner.out.emit_close(due.door, due.source);
                    }
                }
                _ => break,
            }
        }
        self.deadlines.wake_at = self.deadlines.earliest().map_or(Instant::MAX, |(at, _)| at);
    }

    /// Expires the front deadlines of `class` that are due (at most [`EXPIRY_CHUNK`]),
    /// exactly those that the one-at-a-time loop of [`run_deadlines`](Self::run_deadlines)
    /// would take next: due by `now` and before the earliest stop command (`close`) and the
    /// other classes' fronts (ties go to the lower class, as in
    /// [`Deadlines::earliest`]). Their sources are looked up ahead in one tight loop, so
    /// that the cache misses of a flood's expiries (each a source last touched
    /// `seq_timeout` ago) overlap instead of coming one after the other.
    fn expire_chunk(&mut self, class: usize, now: Instant, close: Option<Instant>) {
        let mut before = Instant::MAX; // exclusive bound
        let mut until = close.map_or(now, |c| c.min(now)); // inclusive bound
        for (other, queue) in self.deadlines.classes.iter().enumerate() {
            match queue.front() {
                Some(front) if other < class => before = before.min(front.deadline),
                Some(front) if other > class => until = until.min(front.deadline),
                _ => {}
            }
        }
        let queue = &self.deadlines.classes[class];
        let due = queue
            .iter()
            .take(EXPIRY_CHUNK)
            .take_while(|e| e.deadline <= until && e.deadline < before)
            .count();
        if due == 1
            && let Some(front) = queue.front()
        {
            // A flood of spoofed sources expires one per packet: nothing to overlap here
            // (`handle_packets` looked the entry up ahead with its chunk's).
            let hash = self.sources.map.hash(front.source);
            self.expire_front(class, now, (hash, NOT_FOUND));
            return;
        }
        let mut hashes = [0_u64; EXPIRY_CHUNK];
        let mut buckets = [NOT_FOUND; EXPIRY_CHUNK];
        self.sources.map.prefetch(
            queue.iter().take(due).map(|e| e.source),
            &mut hashes,
            &mut buckets,
        );
        for (&hash, &bucket) in hashes.iter().zip(&buckets).take(due) {
            self.expire_front(class, now, (hash, bucket));
        }
    }

    /// Pops the front deadline of `class` and expires its source's attempts that are due
    /// (`hash` and `bucket`: the entry's source's hash and where the look-ahead found it).
    fn expire_front(&mut self, class: usize, now: Instant, (hash, bucket): (u64, usize)) {
        let Some(entry) = self.deadlines.classes[class].pop_front() else {
            return;
        };
        self.deadlines.entries -= 1;
        let Some(state) = self.sources.map.find_mut_at(hash, bucket, entry.source) else {
            return;
        };
        let out = &mut self.inner.out;
        let slots = &self.inner.doors.slots;
        let candidates = self.inner.doors.has_candidates();
        let mut reported = None::<Parents>;
        let expired = state.attempts.retain_mut(|a| {
            if a.deadline > now {
                return true;
            }
            out.counters.attempts_expired += 1;
            let stage = usize::from(a.stage);
            let parent = slots[usize::from(a.door)].parent;
            if !candidates || reported.get_or_insert_default().insert(parent) {
                out.emit(ActionKind::Timeout, parent, entry.source, stage);
            }
            false
        });
        self.sources.live_attempts -= expired;
        if state.attempts.is_empty() {
            self.sources.remove_source(hash, entry.source);
        }
    }

    /// Drops the stale entries at the deadline queues' fronts, after attempts of `source`
    /// ended otherwise than by expiry.
    ///
    /// When the source is still tracked (`evicted` false): only its entries (no look-up
    /// unless a front is one of them), so that [`poll_timeout`](Self::poll_timeout) stays
    /// exact for the common case of a single knocker (no wake-up for an attempt that already
    /// ended). When it was just evicted: its entries with no look-up (none of them can be
    /// live), then, if any entry anywhere is stale, the other stale fronts (a look-up each,
    /// and one for the first live front). Every attempt in progress has exactly one entry,
    /// so there is a stale entry exactly when there are more entries than attempts: in a
    /// flood of new sources there is none, and an eviction costs no look-up here.
    fn drop_stale_fronts(&mut self, source: IpAddr, evicted: bool) {
        let Deadlines {
            classes, entries, ..
        } = &mut self.deadlines;
        debug_assert!(*entries >= self.sources.live_attempts);
        for class in classes {
            while let Some(front) = class.front() {
                let stale = if front.source == source {
                    evicted || !is_live(&self.sources.map, front)
                } else {
                    evicted
                        && *entries > self.sources.live_attempts
                        && !is_live(&self.sources.map, front)
                };
                if !stale {
                    break;
                }
                class.pop_front();
                *entries -= 1;
            }
        }
    }

    /// A source with nothing in progress for this destination knocked: starts an attempt
    /// for every door (config order) that begins with this knock and accepts the packet.
    fn start_attempts(
        &mut self,
        now: Instant,
        (source, hash): (IpAddr, u64),
        starting: (u32, u32),
        probe: &Probe<'_>,
    ) {
        let mut started = false;
        let candidates = self.inner.doors.has_candidates();
        let mut reported = None::<Parents>;
        let (first, count) = starting;
        for position in first..first + count {
            let index = self.inner.doors.lists[position as usize];
            if !self.inner.doors.accepts(index, probe) {
                continue;
            }
            // The index holds only doors whose number and length fit the attempt's fields.
            let Ok(door_index) = u16::try_from(index) else {
                continue;
            };
            started = true;
            self.inner.out.counters.attempts_started += 1;
            let slot = &self.inner.doors.slots[index as usize];
            let first_of_door = !candidates || reported.get_or_insert_default().insert(slot.parent);
            if first_of_door {
                self.inner
                    .out
                    .emit(ActionKind::Stage, slot.parent, source, 1);
            }
            if slot.sequence.len() == 1 {
                if first_of_door {
                    self.inner.open(index, source, now);
                }
                continue;
            }
            let class = slot.class;
            let deadline = now + slot.door.seq_timeout;
            let token = self.sources.token();
            self.track(source, hash).attempts.push(Attempt {
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
            self.inner.out.counters.ignored_not_first_step += 1;
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

    /// The state of `source` (whose hash is `hash`), created (evicting the oldest source at
    /// the cap) if needed.
    fn track(&mut self, source: IpAddr, hash: u64) -> &mut SourceState {
        if self.sources.map.len() >= self.inner.limits.max_sources
            && self.sources.map.find(hash, source).is_none()
        {
            self.evict_oldest();
        }
        let SourceTable {
            map,
            fifo,
            next_token,
            ..
        } = &mut self.sources;
        map.get_or_insert_hashed(hash, source, || {
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
            let Some(state) = self
                .sources
                .map
                .remove_if(entry.source, |s| entry.is_entry_of(s))
            else {
                continue; // a stale entry
            };
            let attempts = state.attempts.len();
            self.sources.live_attempts -= attempts;
            self.inner.out.counters.attempts_evicted += attempts as u64;
            self.inner.out.counters.sources_evicted += 1;
            // In a flood the evicted source is the oldest, so its deadline entries are
            // usually at the queue fronts: drop them now rather than by a compaction pass,
            // with any other stale entry that reached a front (an attempt that ended while
            // deep in its queue, such as a knock that opened during the flood). Left there,
            // one such entry would hold every later entry back, and the queue would be
            // compacted (a look-up per entry) every few tens of thousands of packets.
            self.drop_stale_fronts(entry.source, true);
            return;
        }
    }
}

impl MatcherInner {
    /// Emits the open of door slot `index` (or, for a spent TOTP code, `CodeUsed`) and
    /// schedules its stop command if there is one for `source`.
    fn open(&mut self, index: u32, source: IpAddr, now: Instant) {
        let Self {
            doors,
            closes,
            out,
            limits,
        } = self;
        let slot = &mut doors.slots[index as usize];
        let parent = slot.parent;
        if let Some(step) = slot.code_step {
            if slot.spent {
                out.counters.codes_reused += 1;
                out.emit_code(ActionKind::CodeUsed, parent, source, step);
                return;
            }
            slot.spent = true;
            out.emit_code(ActionKind::Open, parent, source, step);
        } else {
            out.emit(ActionKind::Open, parent, source, 0);
        }
        out.counters.opened += 1;
        let door = &slot.door;
        if door.stop_command_for(source).is_some() {
            let at = now + door.cmd_timeout;
            closes.schedule(out, limits.max_pending_closes, door.clone(), source, at);
        }
    }

    /// The common case of [`advance_attempts`](Self::advance_attempts), done with less work:
    /// `state` has a single attempt, on a door without TOTP candidates, whose door accepts
    /// the packet and whose next step (not the last) it is. Advances it, emits the `Stage`
    /// and, past the first step, promotes the source to `fifo_advanced`, exactly as the
    /// general path would, and returns `true`; in any other case changes nothing and returns
    /// `false` (the caller then takes the general path).
    #[inline(always)]
    fn advance_only_attempt(
        &mut self,
        fifo_advanced: &mut VecDeque<FifoEntry>,
        state: &mut SourceState,
        source: IpAddr,
        probe: &Probe<'_>,
    ) -> bool {
        if self.doors.has_candidates() {
            return false;
        }
        let Some(attempt) = state.attempts.only_mut() else {
            return false;
        };
        let Some(slot) = self.doors.slots.get(usize::from(attempt.door)) else {
            return false;
        };
        if !self
            .doors
            .accepts_destination(slot, probe.packet.destination)
            || probe.tcp_flags.is_some_and(|f| !slot.flags.accepts(f))
        {
            return false;
        }
        let stage = usize::from(attempt.stage);
        if stage + 1 >= slot.sequence.len() || slot.sequence.get(stage) != Some(&probe.knock) {
            return false;
        }
        attempt.stage += 1;
        self.out.counters.attempts_advanced += 1;
        self.out
            .emit(ActionKind::Stage, slot.parent, source, stage + 1);
        if stage + 1 == 2 {
            SourceTable::promote(fifo_advanced, state, source);
        }
        true
    }

    /// Applies a packet to the attempts of `state` (of `source`) whose door accepts its
    /// destination. Returns what happened and how many attempts ended.
    fn advance_attempts(
        &mut self,
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
        // A TOTP door has one attempt per candidate code: its actions are reported once
        // per door and packet, and a candidate that diverged is not reported as an
        // invalidation while a sibling goes on.
        // Only with TOTP candidates (`None` costs a fixed door nothing but a flag).
        let candidates = self.doors.has_candidates();
        let mut advanced = None::<Parents>;
        let mut invalidated = None::<Parents>;
        let removed = state.attempts.retain_mut(|attempt| {
            let slot = &self.doors.slots[attempt.door as usize];
            if !self
                .doors
                .accepts_destination(slot, probe.packet.destination)
            {
                return true;
            }
            progress.relevant = true;
            if probe.tcp_flags.is_some_and(|f| !slot.flags.accepts(f)) {
                return true;
            }
            progress.changed = true;
            let stage = usize::from(attempt.stage);
            let index = u32::from(attempt.door);
            let parent = slot.parent;
            let steps = slot.sequence.len();
            if slot.sequence.get(stage) == Some(&probe.knock) {
                attempt.stage += 1;
                self.out.counters.attempts_advanced += 1;
                if candidates && !advanced.get_or_insert_default().insert(parent) {
                    // A sibling candidate already advanced (and opened, if complete).
                    return stage + 1 < steps;
                }
                self.out.emit(ActionKind::Stage, parent, source, stage + 1);
                if stage + 1 < steps {
                    progress.past_first_step |= stage + 1 == 2;
                    return true;
                }
                self.open(index, source, now);
            } else if slot.allow_duplicates
                && stage_knock(&slot.sequence, stage) == Some(&probe.knock)
            {
                // A repeat of the step just matched (retransmission): ignored.
                self.out.counters.ignored_duplicates += 1;
                return true;
            } else {
                self.out.counters.attempts_invalidated += 1;
                if slot.code_step.is_none()
                    || !invalidated
                        .get_or_insert_default()
                        .insert_deferred(parent, stage)
                {
                    self.out
                        .emit(ActionKind::Invalidated, parent, source, stage);
                }
            }
            false
        });
        for (parent, stage) in invalidated.iter().flat_map(Parents::deferred) {
            let live = state
                .attempts
                .iter()
                .any(|a| self.doors.slots[usize::from(a.door)].parent == parent);
            if !live && !advanced.as_ref().is_some_and(|a| a.contains(parent)) {
                self.out
                    .emit(ActionKind::Invalidated, parent, source, usize::from(stage));
            }
        }
        (progress, removed)
    }
}

/// The doors a packet already reported for one source (a TOTP door's candidates are
/// reported once): a few inline, no allocation; beyond [`Parents::INLINE`] doors at once
/// (only with that many doors sharing a step) some actions may be reported twice.
#[derive(Default)]
struct Parents {
    doors: [(u32, u16); Self::INLINE],
    len: usize,
}

impl Parents {
    const INLINE: usize = 8;

    fn contains(&self, door: u32) -> bool {
        self.doors[..self.len].iter().any(|(d, _)| *d == door)
    }

    /// Adds `door`; whether to report it: it is new, or the set is full.
    fn insert(&mut self, door: u32) -> bool {
        if self.contains(door) {
            return false;
        }
        if self.len < Self::INLINE {
            self.doors[self.len] = (door, 0);
            self.len += 1;
        }
        true
    }

    /// Keeps `door` with `stage` to report later; false when the set is full (the caller
    /// then reports at once).
    fn insert_deferred(&mut self, door: u32, stage: usize) -> bool {
        if self.contains(door) {
            return true;
        }
        if self.len == Self::INLINE {
            return false;
        }
        self.doors[self.len] = (door, u16::try_from(stage).unwrap_or(u16::MAX));
        self.len += 1;
        true
    }

    fn deferred(&self) -> impl Iterator<Item = (u32, u16)> + '_ {
        self.doors[..self.len].iter().copied()
    }
}

/// The step completed last by an attempt at `stage` (1-based), if any.
fn stage_knock(sequence: &[Knock], stage: usize) -> Option<&Knock> {
    sequence.get(stage.checked_sub(1)?)
}
