//! Per-source attempt storage: a small list kept inline in the source's hash-map entry, so
//! that tracking a new source allocates nothing.

use crate::time::Instant;

/// Attempts stored inline per source. One source has at most one attempt per door, and
/// several attempts only when several doors share a first step; beyond this many the list
/// spills into a heap vector (an allocation, only for such configurations).
pub(crate) const INLINE_ATTEMPTS: usize = 2;

/// One source's progress through one door's sequence (16 bytes, so that a source's
/// hash-table entry stays small: the table is the matcher's only cache-miss-bound part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// First knock + the door's `seq_timeout`: the attempt has expired once `now` reaches it.
    pub(crate) deadline: Instant,
    /// Identifies the attempt to its deadline-queue entry.
    pub(crate) token: u32,
    /// Index of the door in the matcher's door table (doors beyond `u16::MAX` are never
    /// matched).
    pub(crate) door: u16,
    /// Steps completed so far (≥ 1 while the attempt is tracked; sequences longer than
    /// `u16::MAX` are never matched).
    pub(crate) stage: u16,
}

/// An unused inline slot: stage 0 never occurs in a tracked attempt (stages start at 1).
const EMPTY: Attempt = Attempt {
    deadline: Instant::ZERO,
    token: 0,
    door: 0,
    stage: 0,
};

/// An ordered list of attempts (config order of their doors): `INLINE_ATTEMPTS` in place,
/// the rest in `spill`. The inline slots in use come first; the others are [`EMPTY`], so no
/// length field is needed (keeping a source's table entry within 64 bytes).
#[derive(Clone, Debug)]
pub(crate) struct AttemptList {
    inline: [Attempt; INLINE_ATTEMPTS],
    // A thin 8-byte pointer instead of a 24-byte `Vec`: this struct lives in every
    // hash-table entry, and the spill is almost never used.
    #[allow(clippy::box_collection)]
    spill: Option<Box<Vec<Attempt>>>,
}

impl Default for AttemptList {
    fn default() -> Self {
        Self {
            inline: [EMPTY; INLINE_ATTEMPTS],
            spill: None,
        }
    }
}

impl AttemptList {
    fn spilled(&self) -> &[Attempt] {
        self.spill.as_deref().map_or(&[], Vec::as_slice)
    }

    fn inline_len(&self) -> usize {
        self.inline
            .iter()
            .position(|a| a.stage == 0)
            .unwrap_or(INLINE_ATTEMPTS)
    }

    pub(crate) fn len(&self) -> usize {
        self.inline_len() + self.spilled().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.inline[0].stage == 0
    }

    /// The attempt, if there is exactly one.
    #[inline]
    pub(crate) fn only_mut(&mut self) -> Option<&mut Attempt> {
        // The spill is used only once the inline slots are full: with the second slot
        // empty there is none.
        let [first, rest @ ..] = &mut self.inline;
        (first.stage != 0 && rest.iter().all(|a| a.stage == 0)).then_some(first)
    }

    /// The attempts in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Attempt> + '_ {
        self.inline[..self.inline_len()]
            .iter()
            .chain(self.spilled())
    }

    /// Appends `attempt` (whose stage must be at least 1).
    pub(crate) fn push(&mut self, attempt: Attempt) {
        debug_assert!(attempt.stage >= 1);
        let len = self.inline_len();
        if len < INLINE_ATTEMPTS {
            self.inline[len] = attempt;
        } else {
            self.spill.get_or_insert_default().push(attempt);
        }
    }

    /// The attempt at `index` in list order (inline slots first, then the spill).
    #[inline]
    fn get_mut(&mut self, index: usize) -> Option<&mut Attempt> {
        match index.checked_sub(INLINE_ATTEMPTS) {
            None => self.inline.get_mut(index),
            Some(spilled) => self.spill.as_deref_mut()?.get_mut(spilled),
        }
    }

    /// Keeps the attempts for which `keep` returns true (it may modify them, but not set
    /// their stage to 0), preserving order. Returns how many were removed.
    ///
    /// `keep` is called from one loop over the inline slots and the spill (which is used
    /// only once the inline slots are full), so that it is inlined once and its captured
    /// state stays in registers.
    #[inline]
    pub(crate) fn retain_mut(&mut self, mut keep: impl FnMut(&mut Attempt) -> bool) -> usize {
        let len = self.len();
        let mut kept = 0;
        for index in 0..len {
            let Some(attempt) = self.get_mut(index) else {
                break;
            };
            if keep(attempt) {
                if kept != index {
                    let attempt = *attempt;
                    if let Some(slot) = self.get_mut(kept) {
                        *slot = attempt;
                    }
                }
                kept += 1;
            }
        }
        if kept < len {
            if kept <= INLINE_ATTEMPTS {
                self.spill = None;
                // Slots from `len` on are empty already: only those vacated are cleared. A
                // loop over all the slots (at most two stores) rather than over the vacated
                // range, which compiled to a `memset` call on every expiry.
                for (index, slot) in self.inline.iter_mut().enumerate() {
                    if (kept..len).contains(&index) {
                        *slot = EMPTY;
                    }
                }
            } else if let Some(spill) = self.spill.as_deref_mut() {
                spill.truncate(kept - INLINE_ATTEMPTS);
            }
        }
        len - kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(door: u16) -> Attempt {
        Attempt {
            door,
            stage: 1,
            token: u32::from(door),
            deadline: Instant::from_secs(u64::from(door)),
        }
    }

    #[test]
    fn only_mut_is_the_single_attempt() {
        let mut list = AttemptList::default();
        assert!(list.only_mut().is_none());
        list.push(attempt(3));
        assert_eq!(list.only_mut().map(|a| a.door), Some(3));
        list.push(attempt(4));
        assert!(list.only_mut().is_none());
        list.push(attempt(5)); // spilled
        assert!(list.only_mut().is_none());
        assert_eq!(list.retain_mut(|a| a.door == 5), 2);
        assert_eq!(list.only_mut().map(|a| a.door), Some(5));
        assert_eq!(list.retain_mut(|_| false), 1);
        assert!(list.only_mut().is_none());
    }

    #[test]
    fn retain_keeps_order_across_the_spill() {
        let mut list = AttemptList::default();
        for door in 0..7 {
            list.push(attempt(door));
        }
        assert_eq!(list.len(), 7);
        let removed = list.retain_mut(|a| {
            a.stage += 1;
            a.door % 2 == 0
        });
        assert_eq!(removed, 3);
        let doors: Vec<u16> = list.iter().map(|a| a.door).collect();
        assert_eq!(doors, [0, 2, 4, 6]);
        assert!(list.iter().all(|a| a.stage == 2));
        assert_eq!(list.retain_mut(|_| false), 4);
        assert!(list.is_empty());
        assert_eq!(list.len(), 0);
    }
}
