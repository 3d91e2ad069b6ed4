//! Deadlines: `seq_timeout` expiries (one FIFO per distinct timeout) and pending stop
//! commands (a heap, earliest first).

use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;

use super::doors::DoorRef;
use super::output::Output;
use super::sources::SourceMap;
use crate::time::Instant;

/// `seq_timeout` deadlines: one FIFO per distinct timeout value. Attempts of one class are
/// started at non-decreasing instants with the same timeout, so each FIFO is sorted by
/// deadline and the earliest deadline overall is the least of the fronts. Entries of
/// attempts that ended otherwise are stale: skipped when they reach the front and dropped
/// by compaction once they outnumber the live ones.
#[derive(Debug)]
pub(super) struct Deadlines {
    /// One deadline FIFO per class.
    pub(super) classes: Vec<VecDeque<DeadlineEntry>>,
    pub(super) entries: usize,
    /// At most the earliest front deadline (exact after each `advance_to`), so that a packet
    /// with nothing due skips the scan of the classes.
    pub(super) wake_at: Instant,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct DeadlineEntry {
    pub(super) deadline: Instant,
    pub(super) source: IpAddr,
    /// The attempt's token: the entry is live while the source has an attempt with it.
    pub(super) token: u32,
}

impl Deadlines {
    pub(super) fn new(classes: usize) -> Self {
        Self {
            classes: (0..classes).map(|_| VecDeque::new()).collect(),
            entries: 0,
            wake_at: Instant::MAX,
        }
    }

    /// Heap bytes held now by the queues (by capacity).
    pub(super) fn heap_bytes(&self) -> usize {
        self.classes.iter().map(VecDeque::capacity).sum::<usize>() * size_of::<DeadlineEntry>()
            + self.classes.capacity() * size_of::<VecDeque<DeadlineEntry>>()
    }

    /// The earliest front entry: (deadline, class).
    pub(super) fn earliest(&self) -> Option<(Instant, usize)> {
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

    pub(super) fn push(&mut self, class: usize, entry: DeadlineEntry) {
        self.wake_at = self.wake_at.min(entry.deadline);
        self.classes[class].push_back(entry);
        self.entries += 1;
    }
}

pub(super) fn is_live(sources: &SourceMap, entry: &DeadlineEntry) -> bool {
    sources
        .get(entry.source)
        .is_some_and(|s| s.attempts.iter().any(|a| a.token == entry.token))
}

/// Pending stop commands, earliest first.
#[derive(Debug, Default)]
pub(super) struct Closes {
    pub(super) heap: BinaryHeap<PendingClose>,
    pub(super) next_sequence: u64,
}

#[derive(Debug)]
pub(super) struct PendingClose {
    pub(super) at: Instant,
    /// Scheduling order, to keep equal deadlines first-in first-out.
    pub(super) sequence: u64,
    pub(super) door: DoorRef,
    pub(super) source: IpAddr,
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
impl Closes {
    pub(super) fn schedule(
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
