//! [`PacketBatch`]: packets read in one go, handed over as one event, in buffers recycled
//! through a bounded pool.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use knock_core::PacketEvent;

/// Packets the live capture read one after the other, in arrival order (see
/// `CaptureConfig::packet_batch`): one channel send and one consumer wake-up for all of them.
///
/// Dereferences to `[PacketEvent]`. The live capture's batches live in buffers of a bounded
/// pool (`CaptureConfig::max_batches_in_flight`): dropping the batch gives its buffer back,
/// so a consumer that drops each batch once it is handled keeps the capture allocation-free.
#[derive(Debug)]
pub struct PacketBatch {
    packets: Vec<PacketEvent>,
    pool: Option<Arc<BatchPool>>,
}

impl PacketBatch {
    /// A batch of these packets, outside any pool (for tests, replays and embedders).
    #[must_use]
    pub fn new(packets: Vec<PacketEvent>) -> Self {
        Self {
            packets,
            pool: None,
        }
    }

    /// The packets, in arrival order.
    #[must_use]
    pub fn as_slice(&self) -> &[PacketEvent] {
        &self.packets
    }
}

impl Deref for PacketBatch {
    type Target = [PacketEvent];

    fn deref(&self) -> &[PacketEvent] {
        &self.packets
    }
}

impl Clone for PacketBatch {
    /// A copy outside the pool (copies are the caller's doing).
    fn clone(&self) -> Self {
        Self::new(self.packets.clone())
    }
}

impl PartialEq for PacketBatch {
    /// Same packets in the same order (wherever their buffers come from).
    fn eq(&self, other: &Self) -> bool {
        self.packets == other.packets
    }
}

impl Eq for PacketBatch {}

impl Drop for PacketBatch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.packets));
        }
    }
}

/// At most `limit` buffers of `capacity` packets exist at once (filled, in the channel, held
/// by the consumer, or spare): the memory bound of batched delivery is
/// `limit × capacity × size_of::<PacketEvent>()`.
#[derive(Debug)]
#[cfg_attr(not(feature = "libpcap"), allow(dead_code))]
pub(crate) struct BatchPool {
    spare: Mutex<Vec<Vec<PacketEvent>>>,
    /// Buffers allocated and not freed (spare ones included).
    alive: AtomicUsize,
    limit: usize,
    capacity: usize,
}

#[cfg_attr(not(feature = "libpcap"), allow(dead_code))]
impl BatchPool {
    /// A pool of at most `limit` buffers of `capacity` packets each (both at least 1).
    pub(crate) fn new(limit: usize, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            spare: Mutex::new(Vec::new()),
            alive: AtomicUsize::new(0),
            limit: limit.max(1),
            capacity: capacity.max(1),
        })
    }

    /// The packets each buffer holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// An empty buffer: a spare one, or a new one while fewer than `limit` exist; `None`
    /// when all are taken (the consumer is behind).
    pub(crate) fn take(&self) -> Option<Vec<PacketEvent>> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if spare.is_some() {
            return spare;
        }
        self.alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()?;
        Some(Vec::with_capacity(self.capacity))
    }

    /// A batch of `packets` (a buffer from [`take`](Self::take)) that returns its buffer here
    /// when dropped.
    pub(crate) fn batch(self: &Arc<Self>, packets: Vec<PacketEvent>) -> PacketBatch {
        PacketBatch {
            packets,
            pool: Some(Arc::clone(self)),
        }
    }

    /// Takes a buffer back (emptied); one that grew beyond `capacity` is freed instead.
    pub(crate) fn give_back(&self, mut buffer: Vec<PacketEvent>) {
        if buffer.capacity() == self.capacity {
            buffer.clear();
            self.spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buffer);
        } else {
            drop(buffer);
            self.alive.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_core::{Instant, TcpFlags};

    fn packet(i: u64) -> PacketEvent {
        PacketEvent::tcp(
            Instant::from_micros(i),
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            7000,
            TcpFlags::SYN,
        )
    }

    #[test]
    fn the_pool_bounds_the_buffers_and_recycles_them() {
        let pool = BatchPool::new(2, 4);
        let mut first = pool.take().unwrap();
        let second = pool.take().unwrap();
        assert!(pool.take().is_none(), "a third buffer beyond the limit");
        first.extend((0..3).map(packet));
        let batch = pool.batch(first);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[2], packet(2));
        assert_eq!(batch.clone(), batch);
        drop(batch);
        // Given back emptied, with its capacity: no new allocation.
        let again = pool.take().unwrap();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), 4);
        assert!(pool.take().is_none());
        // A buffer that grew is freed, which makes room for a new one.
        let mut grown = again;
        grown.extend((0..5).map(packet));
        drop(pool.batch(grown));
        assert_eq!(pool.take().unwrap().capacity(), 4);
        drop(second);
    }

    #[test]
    fn unpooled_batches_compare_by_packets() {
        let a = PacketBatch::new(vec![packet(1), packet(2)]);
        let pool = BatchPool::new(1, 2);
        let mut buffer = pool.take().unwrap();
        buffer.extend([packet(1), packet(2)]);
        let b = pool.batch(buffer);
        assert_eq!(a, b);
        assert_eq!(a.as_slice(), &[packet(1), packet(2)]);
        assert_ne!(a, PacketBatch::new(vec![packet(1)]));
    }
}
