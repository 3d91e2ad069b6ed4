//! knock-capture: packets from libpcap into [`knock_core::PacketEvent`]s.
//!
//! `knockd` sees knocks only through this crate; other programs can embed it to get knock
//! events from an interface or a pcap savefile.
//!
//! * [`decode`](fn@decode): one captured frame → a
//!   [`PacketEvent`](knock_core::PacketEvent) (source, destination, protocol, ports, TCP
//!   flags, the caller's timestamp) or the [`Ignored`] reason. Pure, allocation-free,
//!   never panics; Ethernet (with 802.1Q/QinQ tags), Linux cooked SLL/SLL2 (`-i any`,
//!   PPP), raw IP (tun, WireGuard), BSD NULL/LOOP; IPv4 and IPv6 (extension headers walked)
//!   on all of them; lax about frames cut by the snap length. Needs no libpcap.
//! * [`filter_expression`]: the kernel (BPF) filter text for a set of doors: a superset of
//!   what knock-core admits (protocols, destination ports, destination hosts). Needs no
//!   libpcap either. [`Destinations`] keeps the local addresses (IPv4 only with `-4`) and
//!   gives the matcher's destinations (any while none is known) and the filter to install
//!   when the addresses or the doors change.
//! * [`local_addresses`]: the addresses of the chosen interfaces, including labelled
//!   aliases (`eth0:1`).
//! * [`LiveCapture`] (feature `libpcap`, on by default): one thread per interface, asleep in
//!   `poll` until a packet arrives (libpcap immediate mode: ~60 µs from the wire to the
//!   event at idle) or a wake pipe signals stop, reload or a stats request (not
//!   `pcap_breakloop`, which can swallow the packet being read); interfaces that are missing, down or that
//!   disappear are waited for and reopened; address changes are seen through netlink on
//!   Linux (no periodic wakeup), polled elsewhere, and reported; events flow into a bounded
//!   crossbeam channel. Under a flood a capture thread paces itself (it sleeps up to
//!   [`CaptureConfig::burst_pause`] between reads, so one wake-up reads many packets) and,
//!   with [`CaptureConfig::packet_batch`], sends what one read found as one
//!   [`PacketBatch`] event. Packets are stamped with the [`Clock`] when read: the first of
//!   each read afresh, the others of a long read sharing one reading per 16 packets.
//! * [`OfflineCapture`] (feature `libpcap`): a savefile through the same decoder, stamped
//!   with each packet's own time (the basis of `knockd --replay`).
//!
//! # Platforms
//!
//! Linux, and (untested here) macOS and the BSDs with libpcap. Everything platform-specific
//! is in one private module, `platform`: the netlink socket that announces address and link
//! changes (Linux only; elsewhere addresses are polled every
//! [`CaptureConfig::address_poll_interval`]) and close-on-exec pipes (`pipe2` where it
//! exists, `pipe` + `fcntl` on macOS).
//!
//! # Example
//!
//! ```
//! use knock_capture::{LinkType, decode};
//! use knock_core::{Instant, Protocol, TcpFlags};
//!
//! // A TCP SYN to port 7000, as an Ethernet frame.
//! let mut frame = Vec::new();
//! etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
//!     .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
//!     .tcp(40000, 7000, 1, 1024)
//!     .syn()
//!     .write(&mut frame, &[])
//!     .unwrap();
//!
//! let event = decode(LinkType::Ethernet, Instant::from_secs(1), &frame, frame.len() as u32).unwrap();
//! assert_eq!(event.source.to_string(), "10.0.0.1");
//! assert_eq!((event.protocol, event.destination_port), (Protocol::Tcp, 7000));
//! assert_eq!(event.tcp_flags, TcpFlags::SYN);
//! ```
//!
//! Reading a savefile (here one written on the spot with libpcap):
//!
//! ```
//! # #[cfg(feature = "libpcap")] {
//! use knock_capture::OfflineCapture;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("knocks.pcap");
//! # let mut frame = Vec::new();
//! # etherparse::PacketBuilder::ipv6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 64)
//! #     .udp(40000, 8000).write(&mut frame, &[0]).unwrap();
//! # let dead = pcap::Capture::dead(pcap::Linktype(12)).unwrap();
//! # let mut file = dead.savefile(&path).unwrap();
//! # let header = pcap::PacketHeader { ts: libc::timeval { tv_sec: 1_700_000_000, tv_usec: 5 }, caplen: frame.len() as u32, len: frame.len() as u32 };
//! # file.write(&pcap::Packet::new(&header, &frame));
//! # drop(file);
//! let mut capture = OfflineCapture::open(&path)?;
//! for result in &mut capture {
//!     match result {
//!         Ok(event) => println!("{:?} {} -> {}:{}", event.timestamp, event.source, event.protocol, event.destination_port),
//!         Err(reason) => println!("ignored: {reason}"),
//!     }
//! }
//! assert!(capture.take_error().is_none());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate does not do
//!
//! * No matching: whether a packet is a knock for a door (destination, port, TCP flags,
//!   sequence state) is decided by `knock_core::Matcher`. The kernel filter is only an
//!   optimisation and deliberately has no TCP flag tests.
//! * No promiscuous mode: only packets addressed to this host (and broadcast/multicast)
//!   are seen; outgoing packets are dropped.
//! * No reassembly of IP fragments (first fragments are decoded, others ignored), no
//!   logging, no async runtime.
//!
//! # Denial of service
//!
//! A spoofed flood must not grow memory or stall the daemon: live capture sends packet
//! events with `try_send` into the caller's **bounded** channel and drops (and counts, per
//! interface, in [`InterfaceStats::channel_dropped`]) what does not fit; the kernel ring buffer
//! ([`CaptureConfig::buffer_size`]) drops the rest, counted in [`InterfaceStats::dropped`].
//! Batched delivery is bounded by [`CaptureConfig::max_batches_in_flight`] buffers of
//! [`CaptureConfig::packet_batch`] packets, recycled when the consumer drops a batch.
//! Decoding is O(1) per frame with no allocation; the IPv6 extension walk and the VLAN tag walk
//! are bounded.

#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]

mod addresses;
mod batch;
mod clock;
mod datagram;
mod decode;
mod filter;
mod link;

#[cfg(feature = "libpcap")]
mod error;
#[cfg(feature = "libpcap")]
mod live;
#[cfg(feature = "libpcap")]
mod offline;
#[cfg(feature = "libpcap")]
mod pacing;
#[cfg(feature = "libpcap")]
mod platform;

pub use addresses::{ANY_INTERFACE, local_addresses};
pub use batch::PacketBatch;
pub use clock::{Clock, instant_from_timeval};
pub use datagram::{Datagram, MAX_DATAGRAM_PAYLOAD};
pub use decode::{AtomicIgnoredCounts, Ignored, IgnoredCounts, decode, decode_with_payload};
pub use filter::{
    Destinations, MATCH_NOTHING, MAX_HOST_TERMS, MAX_PORT_TERMS, filter_expression, payload_ports,
};
pub use link::LinkType;

#[cfg(feature = "libpcap")]
pub use error::CaptureError;
#[cfg(feature = "libpcap")]
pub use live::{CaptureConfig, CaptureEvent, InterfaceStats, LiveCapture};
#[cfg(feature = "libpcap")]
pub use offline::{OfflineCapture, OfflineFrame};
