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

/// A bucket index no table has: the key was not found.
pub(super) const NOT_FOUND: usize = usize::MAX;

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
/// hashed with hashbrown's default hasher (foldhash, seeded per process).
///
/// DoS: the source address is chosen by whoever sends the packet (spoofed at will), so the
/// hash is keyed (a per-process random seed): addresses cannot be picked to collide and
/// make every look-up walk a long probe sequence, as an unkeyed hash (such as FxHash) would
/// allow.
///
/// Each packet's source is hashed once: the `*_hashed` methods take the hash, and
/// [`prefetch`](Self::prefetch) hashes a whole burst and looks it up ahead.
#[derive(Debug)]
pub(super) struct SourceMap {
    table: HashTable<SourceState>,
    hasher: DefaultHashBuilder,
}

impl SourceMap {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            table: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The key's hash.
    #[inline]
    pub(super) fn hash(&self, key: IpAddr) -> u64 {
        self.hasher.hash_one(SourceKey(key))
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes of the table's allocation.
    pub(super) fn allocation_size(&self) -> usize {
        self.table.allocation_size()
    }

    pub(super) fn get(&self, key: IpAddr) -> Option<&SourceState> {
        self.find(self.hash(key), key)
    }

    /// [`get`](Self::get) with the hash already computed.
    #[inline]
    pub(super) fn find(&self, hash: u64, key: IpAddr) -> Option<&SourceState> {
        self.table.find(hash, |s| s.key == key)
    }

    /// Hashes the first `N` of `keys` into `hashes`, then looks each up (read-only),
    /// noting in `buckets` where it was found ([`NOT_FOUND`] if not): a tight loop of
    /// independent loads keeps many misses in flight at once, so that the packets' own
    /// look-ups ([`find_mut_at`](Self::find_mut_at) with these hashes and buckets) then
    /// hit the cache. Returns how many keys there were.
    #[inline]
    pub(super) fn prefetch<const N: usize>(
        &self,
        keys: impl Iterator<Item = IpAddr> + Clone,
        hashes: &mut [u64; N],
        buckets: &mut [usize; N],
    ) -> usize {
        let mut count = 0;
        for (hash, key) in hashes.iter_mut().zip(keys.clone()) {
            *hash = self.hash(key);
            count += 1;
        }
        // First each key's home bucket (where its probe starts, and where most keys sit at
        // the table's load): its control byte and, the branch on it being predicted, its
        // entry are loaded at once, so those two misses overlap instead of the entry's
        // waiting for the control byte as in a search (measured at 1 M sources: best runs
        // about 36-40 ns per batched event instead of 45). Keys found there need no search
        // (their bucket is noted without a branch on it); the others are searched after.
        // (hashbrown starts a probe at `hash & mask`; were that to change, the guess would
        // only miss and cost the loads: a bucket is checked against the key where used.)
        let mask = self.table.num_buckets().wrapping_sub(1);
        for ((bucket, hash), key) in buckets.iter_mut().zip(hashes.iter()).zip(keys.clone()) {
            let home = *hash as usize & mask;
            let at_home = self.table.get_bucket(home).is_some_and(|s| s.key == key);
            *bucket = if at_home { home } else { NOT_FOUND };
        }
        for ((bucket, hash), key) in buckets.iter_mut().zip(hashes.iter()).zip(keys) {
            if *bucket == NOT_FOUND {
                *bucket = self
                    .table
                    .find_bucket_index(*hash, |s| s.key == key)
                    .unwrap_or(NOT_FOUND);
            }
        }
        count
    }

    /// [`find_mut`](Self::find_mut), given the bucket where [`prefetch`](Self::prefetch)
    /// found the key (or [`NOT_FOUND`]): checked there first (the table may have changed
    /// since: then, or when it was not found, searched as usual).
    #[inline]
    pub(super) fn find_mut_at(
        &mut self,
        hash: u64,
        bucket: usize,
        key: IpAddr,
    ) -> Option<&mut SourceState> {
        if self.table.get_bucket(bucket).is_some_and(|s| s.key == key) {
            self.table.get_bucket_mut(bucket)
        } else {
            self.find_mut(hash, key)
        }
    }

    /// The entry of `key`, whose hash is `hash`, for changes.
    #[inline]
    pub(super) fn find_mut(&mut self, hash: u64, key: IpAddr) -> Option<&mut SourceState> {
        self.table.find_mut(hash, |s| s.key == key)
    }

    /// Removes the entry of `key`, whose hash is `hash`.
    pub(super) fn remove_hashed(&mut self, hash: u64, key: IpAddr) -> Option<SourceState> {
        match self.table.find_entry(hash, |s| s.key == key) {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        }
    }

    /// Removes the entry of `key` if `evict` holds for it (one search).
    pub(super) fn remove_if(
        &mut self,
        key: IpAddr,
        evict: impl FnOnce(&SourceState) -> bool,
    ) -> Option<SourceState> {
        match self.table.find_entry(self.hash(key), |s| s.key == key) {
            Ok(entry) if evict(entry.get()) => Some(entry.remove().0),
            _ => None,
        }
    }

    /// The entry of `key` (whose hash is `hash`), created by `make` if there is none.
    pub(super) fn get_or_insert_hashed(
        &mut self,
        hash: u64,
        key: IpAddr,
        make: impl FnOnce() -> SourceState,
    ) -> &mut SourceState {
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

impl FifoEntry {
    /// Whether this entry stands for `state` (of the entry's source) as it is now: the same
    /// generation, and in the FIFO that matches its stage.
    pub(super) fn is_entry_of(&self, state: &SourceState) -> bool {
        state.generation == self.generation && state.advanced == self.advanced
    }
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
        self.map.allocation_size()
            + (self.fifo.capacity() + self.fifo_advanced.capacity()) * size_of::<FifoEntry>()
    }

    pub(super) fn token(&mut self) -> u32 {
        let token = self.next_token;
        self.next_token = token.wrapping_add(1);
        token
    }

    /// Looks up ahead (see [`SourceMap::prefetch`]) the sources of the first `count` (at most
    /// `N`) entries of the first-step FIFO: the sources that the next `count` new sources
    /// evict at the cap (entries gone stale are skipped at eviction, so this is a guess).
    pub(super) fn prefetch_oldest<const N: usize>(&self, count: usize) {
        let mut hashes = [0; N];
        let mut buckets = [NOT_FOUND; N];
        self.map.prefetch(
            self.fifo.iter().take(count).map(|e| e.source),
            &mut hashes,
            &mut buckets,
        );
    }

    /// Removes `key` (whose hash is `hash`) from the table, and its FIFO entries too where
    /// they are at the front of their FIFO. In a flood of spoofed sources that time out,
    /// sources leave in the order they came, so their entries leave the FIFOs as they do
    /// instead of piling up for a compaction pass (a look-up per entry).
    pub(super) fn remove_source(&mut self, hash: u64, key: IpAddr) {
        let Some(removed) = self.map.remove_hashed(hash, key) else {
            return;
        };
        // A promoted source has an entry in each FIFO (its first-step one is stale).
        let fifos = [
            Some(&mut self.fifo),
            removed.advanced.then_some(&mut self.fifo_advanced),
        ];
        for fifo in fifos.into_iter().flatten() {
            if fifo
                .front()
                .is_some_and(|e| e.source == key && e.generation == removed.generation)
            {
                fifo.pop_front();
            }
        }
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
        let mut hashes = [0; BLOCK];
        let mut buckets = [NOT_FOUND; BLOCK];
        map.prefetch(
            (start..end).map(|index| source_of(&queue[index])),
            &mut hashes,
            &mut buckets,
        );
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
    map.get(entry.source).is_some_and(|s| entry.is_entry_of(s))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use super::*;

    fn state(key: IpAddr, generation: u32) -> SourceState {
        SourceState {
            key,
            generation,
            advanced: false,
            attempts: AttemptList::default(),
        }
    }

    /// The map with hashes passed in (computed once per key) agrees with a `HashMap` after
    /// any mix of inserts, removals, growth (which rehashes with the map's own hasher: it
    /// must give the same hashes as [`SourceMap::hash`]), `retain` and batched look-ups.
    #[test]
    fn the_table_agrees_with_a_hash_map() {
        let mut map = SourceMap::with_capacity(1);
        let mut model: HashMap<IpAddr, u32> = HashMap::new();
        // A small deterministic generator (xorshift).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..40_000_u32 {
            let r = next();
            let key = IpAddr::V4(Ipv4Addr::from((r % 300) as u32));
            match (r >> 32) % 8 {
                0..=3 => {
                    let hash = map.hash(key);
                    let generation = map
                        .get_or_insert_hashed(hash, key, || state(key, step))
                        .generation;
                    assert_eq!(generation, *model.entry(key).or_insert(step));
                }
                4 => {
                    // A refused removal leaves the entry as it was.
                    assert!(map.remove_if(key, |_| false).is_none());
                    assert_eq!(map.get(key).map(|s| s.generation), model.get(&key).copied());
                    let removed = map.remove_if(key, |s| s.key == key);
                    assert_eq!(removed.map(|s| s.generation), model.remove(&key));
                }
                5 => {
                    let removed = map.remove_hashed(map.hash(key), key);
                    assert_eq!(removed.map(|s| s.generation), model.remove(&key));
                }
                6 if step % 97 == 0 => {
                    map.retain(|s| s.generation % 3 != 0);
                    model.retain(|_, g| *g % 3 != 0);
                }
                _ => {
                    assert_eq!(map.get(key).map(|s| s.generation), model.get(&key).copied());
                    let hash = map.hash(key);
                    assert_eq!(
                        map.find_mut(hash, key).map(|s| s.generation),
                        model.get(&key).copied()
                    );
                    let keys = [key, IpAddr::V4(Ipv4Addr::from(step % 300))];
                    let mut hashes = [0; 4];
                    let mut buckets = [0; 4];
                    assert_eq!(
                        map.prefetch(keys.iter().copied(), &mut hashes, &mut buckets),
                        2
                    );
                    assert_eq!(hashes[..2], [hash, map.hash(keys[1])]);
                    for (index, key) in keys.iter().enumerate() {
                        let expected = model.get(key).copied();
                        assert_eq!(buckets[index] == NOT_FOUND, expected.is_none());
                        let found = map.find_mut_at(hashes[index], buckets[index], *key);
                        assert_eq!(found.map(|s| s.generation), expected);
                        // A stale bucket (another key's, or none) falls back to a search.
                        let found = map.find_mut_at(hashes[index], (step as usize) % 512, *key);
                        assert_eq!(found.map(|s| s.generation), expected);
                    }
                }
            }
            assert_eq!(map.len(), model.len());
        }
        for (key, generation) in &model {
            assert_eq!(map.get(*key).map(|s| s.generation), Some(*generation));
        }
        assert_eq!(map.table.iter().count(), model.len());
        map.clear();
        assert_eq!(map.len(), 0);
        assert!(model.keys().all(|key| map.get(*key).is_none()));
    }
}
