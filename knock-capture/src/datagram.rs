//! [`Datagram`]: a UDP packet with its data, for the ports whose data matters (SPA).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use knock_core::PacketEvent;

/// The most data bytes a [`Datagram`] keeps (an Ethernet MTU); longer data is cut, which
/// no SPA packet is (fwknop's largest is about 1 500 bytes of base64 at most, and the
/// receiver refuses data that long).
pub const MAX_DATAGRAM_PAYLOAD: usize = 1500;

/// A UDP datagram to one of the capture's payload ports
/// (`CaptureConfig::payload_ports`): the packet event and the data it carried (at most
/// [`MAX_DATAGRAM_PAYLOAD`] bytes).
///
/// Datagrams are the only events that allocate (one buffer each); knocks to other ports
/// stay allocation-free. The live capture bounds how many exist at once
/// (`CaptureConfig::max_datagrams_in_flight`): each holds a slot that is given back when it
/// is dropped, and a datagram that finds no slot is dropped and counted as a channel drop.
#[derive(Debug)]
pub struct Datagram {
    /// The packet (source, destination, ports, time).
    pub packet: PacketEvent,
    payload: Box<[u8]>,
    slot: Option<Slot>,
}

impl Datagram {
    /// A datagram holding `packet` and (up to [`MAX_DATAGRAM_PAYLOAD`] bytes of) `payload`,
    /// outside any in-flight bound (for tests, replays and embedders).
    #[must_use]
    pub fn new(packet: PacketEvent, payload: &[u8]) -> Self {
        let kept = &payload[..payload.len().min(MAX_DATAGRAM_PAYLOAD)];
        Self {
            packet,
            payload: kept.into(),
            slot: None,
        }
    }

    /// A datagram taking one of the `limit` slots counted by `in_flight`, or `None` when
    /// they are all taken (checked before anything is allocated).
    #[cfg(any(feature = "libpcap", test))]
    pub(crate) fn bounded(
        packet: PacketEvent,
        payload: &[u8],
        in_flight: &Arc<AtomicUsize>,
        limit: usize,
    ) -> Option<Self> {
        in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        let slot = Slot(Arc::clone(in_flight));
        let mut datagram = Self::new(packet, payload);
        datagram.slot = Some(slot);
        Some(datagram)
    }

    /// The data (after the UDP header).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

impl Clone for Datagram {
    /// A copy; it takes a slot of its own (possibly beyond the bound: copies are the
    /// caller's doing).
    fn clone(&self) -> Self {
        Self {
            packet: self.packet,
            payload: self.payload.clone(),
            slot: self.slot.as_ref().map(|s| {
                s.0.fetch_add(1, Ordering::AcqRel);
                Slot(Arc::clone(&s.0))
            }),
        }
    }
}

impl PartialEq for Datagram {
    /// Equal packets and data (the slot does not count).
    fn eq(&self, other: &Self) -> bool {
        self.packet == other.packet && self.payload == other.payload
    }
}

impl Eq for Datagram {}

/// One taken in-flight slot, given back on drop.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_core::Instant;

    #[test]
    fn slots_bound_datagrams_in_flight_and_come_back_on_drop() {
        let packet = PacketEvent::udp(
            Instant::from_secs(1),
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            62201,
        );
        let in_flight = Arc::new(AtomicUsize::new(0));
        let a = Datagram::bounded(packet, b"abc", &in_flight, 2).unwrap();
        let b = Datagram::bounded(packet, &[7; 2000], &in_flight, 2).unwrap();
        assert!(Datagram::bounded(packet, b"x", &in_flight, 2).is_none());
        assert_eq!(a.payload(), b"abc");
        assert_eq!(b.payload().len(), MAX_DATAGRAM_PAYLOAD);
        drop(a);
        assert_eq!(in_flight.load(Ordering::Acquire), 1);
        let c = b.clone();
        assert_eq!(c, b);
        drop((b, c));
        assert_eq!(in_flight.load(Ordering::Acquire), 0);
        assert!(Datagram::bounded(packet, b"x", &in_flight, 2).is_some());
    }
}
