//! Sources, FIFOs and eviction: the table of tracked sources (one cache line each) and the
//! two queues that decide which source is evicted at the cap.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::attempts::AttemptList;
use super::limits::COMPACTION_SLACK;

#[cfg(doc)]
use super::Matcher;

/// Initial room in the source table and its queues; they grow geometrically up to the limit.
pub(super) const INITIAL_SOURCE_CAPACITY: usize = 1024;

/// The tracked sources and the FIFOs that decide which is evicted first.
#[derive(Debug)]
pub(super) struct SourceTable {
    pub(super) map: SourceMap,
    /// Sources at their first step, in creation order: evicted first. Entries whose source
    /// was removed, re-created since (another generation) or promoted are stale and
    /// skipped; both FIFOs are compacted when together over 2× live.
    pub(super) fifo: VecDeque<FifoEntry>,
    /// Sources that got past a first step, in promotion order: evicted only when no source
    /// at its first step is left. A spoofed-source flood only ever hits first steps, so it
    /// cannot push out a knocker who is already past one.
    pub(super) fifo_advanced: VecDeque<FifoEntry>,
    /// Generation of the next source created and token of the next attempt started.
    pub(super) next_token: u32,
    /// Attempts in progress over all sources.
    pub(super) live_attempts: usize,
}

/// A source address as a hash key: hashed as one integer (a `u32` for IPv4, a `u128` for
/// IPv6) rather than through `IpAddr`'s derived, field-by-field `Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SourceKey(IpAddr);

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
pub(super) struct SourceState {
    pub(super) key: IpAddr,
    pub(super) generation: u32,
    /// Some attempt got past its first step (the source is in `fifo_advanced`).
    pub(super) advanced: bool,
    pub(super) attempts: AttemptList,
}

/// The source table: a hashbrown `HashTable` of [`SourceState`]s keyed by their address,
/// hashed with hashbrown's default (per-process seeded foldhash) hasher.
#[derive(Debug)]
pub(super) struct SourceMap {
    pub(super) table: HashTable<SourceState>,
    pub(super) hasher: DefaultHashBuilder,
}

impl SourceMap {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            table: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn hash(&self, key: IpAddr) -> u64 {
        self.hasher.hash_one(SourceKey(key))
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn get(&self, key: IpAddr) -> Option<&SourceState> {
        self.find(self.hash(key), key)
    }

    /// [`get`](Self::get) with the hash already computed.
    pub(super) fn find(&self, hash: u64, key: IpAddr) -> Option<&SourceState> {
        self.table.find(hash, |s| s.key == key)
    }

    /// Looks up the first `N` of `keys` for their side effect of pulling the entries into
    /// the cache: hashes first, then the look-ups from them, so that a tight loop of
    /// independent loads keeps many of the misses in flight at once.
    #[inline]
    pub(super) fn prefetch<const N: usize>(&self, keys: impl Iterator<Item = IpAddr> + Clone) {
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

    pub(super) fn get_mut(&mut self, key: IpAddr) -> Option<&mut SourceState> {
        let hash = self.hash(key);
        self.table.find_mut(hash, |s| s.key == key)
    }

    pub(super) fn contains_key(&self, key: IpAddr) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn remove(&mut self, key: IpAddr) -> Option<SourceState> {
        let hash = self.hash(key);
        match self.table.find_entry(hash, |s| s.key == key) {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        }
    }

    pub(super) fn get_or_insert_with(
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

    pub(super) fn retain(&mut self, keep: impl FnMut(&mut SourceState) -> bool) {
        self.table.retain(keep);
    }

    pub(super) fn clear(&mut self) {
        self.table.clear();
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct FifoEntry {
    pub(super) source: IpAddr,
    pub(super) generation: u32,
    /// Which FIFO the entry is in.
    pub(super) advanced: bool,
}

impl SourceTable {
    pub(super) fn new(max_sources: usize) -> Self {
        let capacity = max_sources.min(INITIAL_SOURCE_CAPACITY);
        Self {
            map: SourceMap::with_capacity(capacity),
            fifo: VecDeque::with_capacity(capacity),
            fifo_advanced: VecDeque::new(),
            next_token: 0,
            live_attempts: 0,
        }
    }

    /// Heap bytes held now (by capacity): the table's allocation and both FIFOs' buffers.
    /// Spilled attempt lists (more than two per source) are not counted.
    pub(super) fn heap_bytes(&self) -> usize {
        self.map.table.allocation_size()
            + (self.fifo.capacity() + self.fifo_advanced.capacity()) * size_of::<FifoEntry>()
    }

    pub(super) fn token(&mut self) -> u32 {
        let token = self.next_token;
        self.next_token = token.wrapping_add(1);
        token
    }

    pub(super) fn compact_fifo_if_needed(&mut self) {
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
    pub(super) fn promote(
        fifo_advanced: &mut VecDeque<FifoEntry>,
        state: &mut SourceState,
        source: IpAddr,
    ) {
        if !state.advanced {
            state.advanced = true;
            fifo_advanced.push_back(FifoEntry {
                source,
                generation: state.generation,
                advanced: true,
            });
        }
    }

    pub(super) fn clear(&mut self) -> usize {
        let dropped = self.live_attempts;
        self.map.clear();
        self.fifo.clear();
        self.fifo_advanced.clear();
        self.live_attempts = 0;
        dropped
    }
}

/// Keeps the entries of `queue` for which `keep` holds, in order, in place. `keep` looks the
/// entry's source up: done for a block of entries ahead first (as in
/// [`Matcher::handle_packets`]), so that with a large table the misses overlap instead of
/// costing a main-memory round trip each.
pub(super) fn compact<T: Copy>(
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

pub(super) fn is_current(map: &SourceMap, entry: &FifoEntry) -> bool {
    map.get(entry.source)
        .is_some_and(|s| s.generation == entry.generation && s.advanced == entry.advanced)
}
