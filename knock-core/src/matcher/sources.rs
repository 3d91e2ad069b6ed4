//! Sources, FIFOs and eviction: the table of tracked sources (one cache line each) and the
//! two queues that decide which source is evicted at the cap.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::DefaultHashBuilder;

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

/// The source table: open addressing with linear probing over the [`SourceState`]s
/// themselves (one 64-byte slot each, `None` when free), at most half full, keyed by the
/// address hashed with hashbrown's default hasher (foldhash, seeded per process).
///
/// Why not a `hashbrown` table: a look-up there reads a control-byte group, then the entry
/// (two memory accesses, the second depending on the first); here the entry's home slot
/// follows from the hash alone, so a look-up usually reads one cache line, and
/// [`prefetch`](Self::prefetch) can start loading the home slots of a whole burst at once.
/// Removal shifts the following entries of the run back (no tombstones), so probe runs stay
/// as short as the load factor makes them.
///
/// DoS: the slot is chosen by a keyed hash (a per-process random seed), so spoofed
/// addresses cannot be picked to pile up in one run; an unkeyed hash (such as FxHash) would
/// let an attacker make every look-up walk a long run. The table is never more than half
/// full (expected probe run about 1.5 slots for a hit, 2.5 for a miss).
#[derive(Debug)]
pub(super) struct SourceMap {
    slots: Vec<Option<SourceState>>,
    /// `slots.len() - 1` (the length is a power of two).
    mask: usize,
    len: usize,
    hasher: DefaultHashBuilder,
}

impl SourceMap {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let slots = Self::slots_for(capacity);
        Self {
            mask: slots.len() - 1,
            slots,
            len: 0,
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Free slots for `capacity` entries at most half full (a power of two, at least 2).
    fn slots_for(capacity: usize) -> Vec<Option<SourceState>> {
        let count = capacity.saturating_mul(2).max(2).next_power_of_two();
        let mut slots = Vec::with_capacity(count);
        slots.resize_with(count, || None);
        slots
    }

    /// The key's hash.
    #[inline]
    pub(super) fn hash(&self, key: IpAddr) -> u64 {
        self.hasher.hash_one(SourceKey(key))
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the slot array.
    pub(super) fn allocation_size(&self) -> usize {
        self.slots.capacity() * size_of::<Option<SourceState>>()
    }

    /// The slot holding `key` (whose hash is `hash`), if any.
    #[inline]
    fn index_of(&self, hash: u64, key: IpAddr) -> Option<usize> {
        let mut index = self.home(hash);
        loop {
            match &self.slots[index] {
                None => return None,
                Some(state) if state.key == key => return Some(index),
                Some(_) => index = (index + 1) & self.mask,
            }
        }
    }

    pub(super) fn get(&self, key: IpAddr) -> Option<&SourceState> {
        self.find(self.hash(key), key)
    }

    /// [`get`](Self::get) with the hash already computed.
    pub(super) fn find(&self, hash: u64, key: IpAddr) -> Option<&SourceState> {
        self.index_of(hash, key)
            .and_then(|index| self.slots[index].as_ref())
    }

    /// Looks up the first `N` of `keys` ahead of their packets: first their hashes, each
    /// with a software prefetch of its home slot and the next one (where a displaced
    /// entry usually is; a prefetch neither waits for memory nor can fault), then the
    /// look-ups proper, which find those slots in the cache or on their way. Gives back,
    /// per key, its hash and the slot it was found in (`usize::MAX` when absent) as hints
    /// for [`get_mut_hinted`](Self::get_mut_hinted). Returns how many keys there were.
    ///
    /// The prefetch is `prefetch_index`'s (a safe wrapper of the SSE `prefetcht0`; a no-op
    /// where there is none): this crate forbids unsafe code.
    #[inline]
    pub(super) fn prefetch<const N: usize>(
        &self,
        keys: impl Iterator<Item = IpAddr> + Clone,
        hints: &mut [(u64, usize); N],
    ) -> usize {
        let mut count = 0;
        for (hint, key) in hints.iter_mut().zip(keys.clone()) {
            hint.0 = self.hash(key);
            let home = self.home(hint.0);
            prefetch_index::prefetch_index(&self.slots, home);
            prefetch_index::prefetch_index(&self.slots, (home + 1) & self.mask);
            count += 1;
        }
        for (hint, key) in hints.iter_mut().zip(keys) {
            hint.1 = self.index_of(hint.0, key).unwrap_or(usize::MAX);
        }
        count
    }

    /// The entry of `key` (whose hash is `hash`), looked for first in slot `hint` (from
    /// [`prefetch`](Self::prefetch); entries may have moved since).
    #[inline]
    pub(super) fn get_mut_hinted(
        &mut self,
        (hash, hint): (u64, usize),
        key: IpAddr,
    ) -> Option<&mut SourceState> {
        let index = match self.slots.get(hint) {
            Some(Some(state)) if state.key == key => hint,
            _ => self.index_of(hash, key)?,
        };
        self.slots[index].as_mut()
    }

    pub(super) fn get_mut(&mut self, key: IpAddr) -> Option<&mut SourceState> {
        self.get_mut_hashed(self.hash(key), key)
    }

    /// [`get_mut`](Self::get_mut) with the hash already computed.
    #[inline]
    pub(super) fn get_mut_hashed(&mut self, hash: u64, key: IpAddr) -> Option<&mut SourceState> {
        let index = self.index_of(hash, key)?;
        self.slots[index].as_mut()
    }

    pub(super) fn remove(&mut self, key: IpAddr) -> Option<SourceState> {
        self.remove_hashed(self.hash(key), key)
    }

    /// [`remove`](Self::remove) with the hash already computed.
    pub(super) fn remove_hashed(&mut self, hash: u64, key: IpAddr) -> Option<SourceState> {
        let index = self.index_of(hash, key)?;
        Some(self.remove_at(index))
    }

    /// Empties slot `hole` and shifts back the entries after it in its run that would
    /// otherwise no longer be found from their home slot (backward-shift deletion).
    fn remove_at(&mut self, mut hole: usize) -> SourceState {
        let removed = self.slots[hole].take();
        self.len -= 1;
        let mut index = hole;
        loop {
            index = (index + 1) & self.mask;
            let Some(state) = &self.slots[index] else {
                break;
            };
            let home = self.home(self.hash(state.key));
            // The entry may move to the hole unless its home lies cyclically in
            // (hole, index]: then the hole is not on its probe path.
            let stays = if hole <= index {
                hole < home && home <= index
            } else {
                hole < home || home <= index
            };
            if !stays {
                self.slots[hole] = self.slots[index].take();
                hole = index;
            }
        }
        removed.unwrap_or_else(|| unreachable!("remove_at is called on an occupied slot"))
    }

    /// The entry of `key` (whose hash is `hash`), created by `make` if there is none.
    pub(super) fn get_or_insert_hashed(
        &mut self,
        hash: u64,
        key: IpAddr,
        make: impl FnOnce() -> SourceState,
    ) -> &mut SourceState {
        let index = match self.index_of(hash, key) {
            Some(index) => index,
            None => {
                if 2 * (self.len + 1) > self.slots.len() {
                    self.grow();
                }
                let index = self.free_slot(hash);
                self.slots[index] = Some(make());
                self.len += 1;
                index
            }
        };
        self.slots[index]
            .as_mut()
            .unwrap_or_else(|| unreachable!("the slot was just found or filled"))
    }

    /// The first free slot of the run starting at `hash`'s home.
    fn free_slot(&self, hash: u64) -> usize {
        let mut index = self.home(hash);
        while self.slots[index].is_some() {
            index = (index + 1) & self.mask;
        }
        index
    }

    /// Doubles the slots and moves every entry over (allocates; only while the table grows
    /// to its working size, at most `max_sources`).
    fn grow(&mut self) {
        let doubled = Self::slots_for(self.slots.len());
        let old = core::mem::replace(&mut self.slots, doubled);
        self.mask = self.slots.len() - 1;
        for state in old.into_iter().flatten() {
            let index = self.free_slot(self.hash(state.key));
            self.slots[index] = Some(state);
        }
    }

    /// Keeps the entries for which `keep` returns true (it may modify them). Not for the
    /// packet path: one pass, then the entries left are re-placed so that every one is
    /// found again from its home slot.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut SourceState) -> bool) {
        // A slot free before the pass: runs never wrap past it (the table is at most half
        // full, so there is one).
        let Some(start) = self.slots.iter().position(Option::is_none) else {
            return;
        };
        let mut removed = 0;
        for slot in &mut self.slots {
            if let Some(state) = slot
                && !keep(state)
            {
                *slot = None;
                removed += 1;
            }
        }
        if removed == 0 {
            return;
        }
        self.len -= removed;
        // Re-place the entries in run order from that free slot: each lands at the first
        // free slot from its home, which is at or before where it was.
        for offset in 1..self.slots.len() {
            let index = (start + offset) & self.mask;
            if let Some(state) = self.slots[index].take() {
                let target = self.free_slot(self.hash(state.key));
                self.slots[target] = Some(state);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.slots.fill_with(|| None);
        self.len = 0;
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
        self.map.allocation_size()
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
        let mut hints = [(0, 0); BLOCK];
        map.prefetch(
            (start..end).map(|index| source_of(&queue[index])),
            &mut hints,
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
    map.get(entry.source)
        .is_some_and(|s| s.generation == entry.generation && s.advanced == entry.advanced)
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

    /// Every entry is found again from its home slot after any mix of inserts, removals
    /// (backward shifts), growth and `retain`, checked against a `HashMap` on a small key
    /// space (long probe runs, wrap-around at the end of the slots).
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
                4..=5 => {
                    assert_eq!(map.remove(key).map(|s| s.generation), model.remove(&key));
                }
                6 if step % 97 == 0 => {
                    map.retain(|s| s.generation % 3 != 0);
                    model.retain(|_, g| *g % 3 != 0);
                }
                _ => {
                    assert_eq!(map.get(key).map(|s| s.generation), model.get(&key).copied());
                    let hint = (map.hash(key), (r >> 40) as usize % 1024);
                    assert_eq!(
                        map.get_mut_hinted(hint, key).map(|s| s.generation),
                        model.get(&key).copied()
                    );
                }
            }
            assert_eq!(map.len(), model.len());
            assert!(2 * map.len() <= map.slots.len());
        }
        for (key, generation) in &model {
            assert_eq!(map.get(*key).map(|s| s.generation), Some(*generation));
        }
        let occupied = map.slots.iter().filter(|s| s.is_some()).count();
        assert_eq!(occupied, model.len());
        map.clear();
        assert_eq!(map.len(), 0);
        assert!(model.keys().all(|key| map.get(*key).is_none()));
    }
}
