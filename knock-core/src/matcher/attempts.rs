//! Per-source attempt storage: a small list kept inline in the source's hash-map entry, so
//! that tracking a new source allocates nothing.

use crate::time::Instant;

/// Attempts stored inline per source. One source has at most one attempt per door, and
/// several attempts only when several doors share a first step; beyond this many the list
/// spills into a heap vector (an allocation, only for such configurations).
pub(crate) const INLINE_ATTEMPTS: usize = 4;

/// One source's progress through one door's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// Index of the door in the matcher's door table.
    pub(crate) door: u32,
    /// Steps completed so far (≥ 1 while the attempt is tracked).
    pub(crate) stage: u32,
    /// Identifies the attempt to its deadline-queue entry.
    pub(crate) token: u32,
    /// First knock + the door's `seq_timeout`: the attempt has expired once `now` reaches it.
    pub(crate) deadline: Instant,
}

const EMPTY: Attempt = Attempt {
    door: 0,
    stage: 0,
    token: 0,
    deadline: Instant::ZERO,
};

/// An ordered list of attempts (config order of their doors): `INLINE_ATTEMPTS` in place,
/// the rest in `spill`.
#[derive(Clone, Debug)]
pub(crate) struct AttemptList {
    inline: [Attempt; INLINE_ATTEMPTS],
    inline_len: u8,
    spill: Vec<Attempt>,
}

impl Default for AttemptList {
    fn default() -> Self {
        Self {
            inline: [EMPTY; INLINE_ATTEMPTS],
            inline_len: 0,
            spill: Vec::new(),
        }
    }
}

impl AttemptList {
    pub(crate) fn len(&self) -> usize {
        usize::from(self.inline_len) + self.spill.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.inline_len == 0
    }

    fn get(&self, index: usize) -> Attempt {
        if index < INLINE_ATTEMPTS {
            self.inline[index]
        } else {
            self.spill[index - INLINE_ATTEMPTS]
        }
    }

    fn set(&mut self, index: usize, attempt: Attempt) {
        if index < INLINE_ATTEMPTS {
            self.inline[index] = attempt;
        } else {
            self.spill[index - INLINE_ATTEMPTS] = attempt;
        }
    }

    pub(crate) fn push(&mut self, attempt: Attempt) {
        let len = usize::from(self.inline_len);
        if len < INLINE_ATTEMPTS {
            self.inline[len] = attempt;
            self.inline_len += 1;
        } else {
            self.spill.push(attempt);
        }
    }

    /// The attempts in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Attempt> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Keeps the attempts for which `keep` returns true (it may modify them), preserving
    /// order. Returns how many were removed.
    pub(crate) fn retain_mut(&mut self, mut keep: impl FnMut(&mut Attempt) -> bool) -> usize {
        let len = self.len();
        let mut kept = 0;
        for index in 0..len {
            let mut attempt = self.get(index);
            if keep(&mut attempt) {
                self.set(kept, attempt);
                kept += 1;
            }
        }
        self.spill.truncate(kept.saturating_sub(INLINE_ATTEMPTS));
        // kept ≤ INLINE_ATTEMPTS here or the inline part is full: both fit in a u8.
        self.inline_len = u8::try_from(kept.min(INLINE_ATTEMPTS)).unwrap_or(u8::MAX);
        len - kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(door: u32) -> Attempt {
        Attempt {
            door,
            stage: 1,
            token: door,
            deadline: Instant::from_secs(u64::from(door)),
        }
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
        let doors: Vec<u32> = list.iter().map(|a| a.door).collect();
        assert_eq!(doors, [0, 2, 4, 6]);
        assert!(list.iter().all(|a| a.stage == 2));
        assert_eq!(list.retain_mut(|_| false), 4);
        assert!(list.is_empty());
        assert_eq!(list.len(), 0);
    }
}
