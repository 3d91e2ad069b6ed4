//! Live capture: one thread per interface plus an address watcher, feeding a bounded channel.

use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use knock_core::PacketEvent;
use pcap::{Active, Capture, Direction};

use crate::addresses::local_addresses;
use crate::batch::{BatchPool, PacketBatch};
use crate::clock::Clock;
use crate::datagram::Datagram;
use crate::decode::{AtomicIgnoredCounts, IgnoredCounts, decode_with_payload};
use crate::error::CaptureError;
use crate::link::LinkType;
use crate::pacing::Pacer;

/// How live capture is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureConfig {
    /// Interfaces to capture on (`any` captures on all of them). Default: `eth0`, like
    /// knockd 0.8.
    pub interfaces: Vec<String>,
    /// The BPF filter expression (usually [`filter_expression`](crate::filter_expression));
    /// empty: every packet.
    pub filter: String,
    /// Ignore IPv6 (knockd's `-4`): the filter is restricted to IPv4 and IPv6 addresses are
    /// not reported.
    pub ipv4_only: bool,
    /// libpcap immediate mode: each packet is handed over as soon as it arrives (default
    /// `true`). Without it packets are batched until a block fills or `block_timeout`
    /// passes, which adds up to `block_timeout` of latency to every knock.
    ///
    /// Measured on a veth pair (test `latency_immediate_vs_block_timeout`, 30 UDP knocks at
    /// idle): immediate mode p50 59 µs / max 243 µs from `sendto` to the event; a 10 ms
    /// block timeout p50 9.9 ms / max 15 ms. Hence immediate mode: under a flood it costs
    /// no more than batching, since libpcap drains every ready frame before waiting again.
    pub immediate: bool,
    /// The block timeout used when `immediate` is off.
    pub block_timeout: Duration,
    /// Bytes kept per packet (default 4 000): whole frames on links with an MTU up to about
    /// 3 900 bytes (Ethernet's 1 500 with VLAN tags, Wi-Fi's 2 304), so the decoder sees any
    /// IPv6 extension chain such a packet carries (a shorter snap length drops knocks behind a
    /// long chain: issue 10 item 10, 256 bytes missed them live) and SPA data up to
    /// [`MAX_DATAGRAM_PAYLOAD`](crate::MAX_DATAGRAM_PAYLOAD). Jumbo frames are cut (a knock
    /// behind a 3 900-byte extension chain would be missed).
    ///
    /// Not more, because the immediate-mode ring (TPACKET_V2) has one fixed-size slot per
    /// packet, as large as the snap length (up to 64 KiB on interfaces with receive
    /// offload): with libpcap's maximum, 262 144, the 4 MiB ring held 64 packets (seen on a
    /// veth pair: 8 MiB mapped for 64 slots of 128 KiB), 160 µs of a 400 000 packets/s
    /// flood, and most of a flood was dropped by the kernel, legitimate knocks included. At
    /// 4 000 a slot fits in a page: the default 8 MiB ring holds 2 048 packets.
    pub snaplen: i32,
    /// The kernel ring buffer size in bytes (default 8 MiB: 2 048 packets with the default
    /// `snaplen`, 5 ms of a 400 000 packets/s flood; the same memory libpcap mapped for a
    /// 4 MiB request with the former 262 144-byte snap length): what absorbs a burst before
    /// the kernel starts dropping (counted in [`InterfaceStats::dropped`]).
    pub buffer_size: i32,
    /// The capacity to give the event channel (used by [`CaptureConfig::channel`]; default
    /// 65 536 events, at most 64 bytes each: a 4 MiB bound). Packets that find it full are
    /// dropped and counted ([`InterfaceStats::channel_dropped`]).
    pub channel_capacity: usize,
    /// How often an interface that is missing or down is retried (default 1 s); with the
    /// netlink watch it is also retried at once on every link change.
    pub retry_interval: Duration,
    /// Watch address and link changes with a netlink socket (default `true`): a change is
    /// seen at once and an idle system causes no wakeup at all. If the socket cannot be
    /// opened, or with `false`, the addresses are re-read every `address_poll_interval`.
    pub address_netlink: bool,
    /// How often the local addresses are re-read when netlink is not used (default 1 s).
    pub address_poll_interval: Duration,
    /// UDP destination ports whose datagrams are reported with their data
    /// ([`CaptureEvent::Datagram`], e.g. SPA ports; see [`payload_ports`](crate::payload_ports))
    /// instead of as [`CaptureEvent::Packet`]. Default: none. Changed with
    /// [`LiveCapture::set_payload_ports`].
    pub payload_ports: Vec<u16>,
    /// The most [`Datagram`]s alive at once (sent and not yet dropped by the consumer;
    /// default 1 024, at most about 1.6 MB): beyond it datagrams are dropped and counted in
    /// [`InterfaceStats::channel_dropped`], so a flood to a payload port cannot grow memory
    /// by more than this times [`MAX_DATAGRAM_PAYLOAD`](crate::MAX_DATAGRAM_PAYLOAD).
    pub max_datagrams_in_flight: usize,
    /// Batched delivery: up to this many packets read one after the other go into one
    /// [`CaptureEvent::Packets`] (one channel send and one consumer wake-up for all of them).
    /// A batch is sent as soon as the ring is empty (never held back waiting for more) or
    /// when full. Default 0: each packet is its own [`CaptureEvent::Packet`].
    pub packet_batch: usize,
    /// With batched delivery, the most batches alive at once (filled, queued, or held by the
    /// consumer; default 256): the memory bound is this × `packet_batch` ×
    /// `size_of::<PacketEvent>()` (256 × 256 × 56 bytes = 3.5 MiB for knockd's 256-packet
    /// batches). Beyond it packets are dropped and counted in
    /// [`InterfaceStats::channel_dropped`]. Dropping a [`PacketBatch`] gives its buffer back.
    pub max_batches_in_flight: usize,
    /// Flood pacing: while packets pour in (at least 16 in one read, or 16 in reads less than
    /// 1 ms apart), the capture thread sleeps after emptying the ring instead of waking for
    /// every packet, so that one wake-up reads (and, batched, sends) many: as long as 512
    /// packets take at the current rate (a quarter of the default ring), at least 50 µs and
    /// at most this (starting from 4 ms and growing by half at most per read, so a lull in a
    /// fast flood cannot make the thread sleep through more than the ring holds). At idle the
    /// first packet is still read at once; a packet arriving during a flood waits at most this
    /// long; a read that finds nothing ends it. Stop, reload and stats requests are answered
    /// after the pause. Default 16 ms, at most 20 ms; `Duration::ZERO`: never pause (one
    /// wake-up per packet whatever the rate). Each wake-up of a capture thread and of its
    /// consumer has a fixed cost (on a 2-core VM about 100 µs for the two, caches cold after
    /// sleeping; the benches' `pause-cost` measures the bare wake-ups, about 63 µs there), so below 32 000 packets/s (512 packets per 16 ms) the longer pause is what
    /// amortises it: at 10 000 packets/s, 4 ms gave 3.25–3.6 µs of CPU per packet for the
    /// whole daemon and 16 ms 2.9 (with the log's timer kept off the flood's path, see knockd).
    pub burst_pause: Duration,
}

/// Packets of one read that share a clock reading (see `run`).
const CLOCK_EVERY: usize = 16;

/// The longest [`CaptureConfig::burst_pause`] honoured (control requests wait for it).
const MAX_BURST_PAUSE: Duration = Duration::from_millis(20);

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: vec!["eth0".to_owned()],
            filter: String::new(),
            ipv4_only: false,
            immediate: true,
            block_timeout: Duration::from_millis(10),
            snaplen: 4_000,
            buffer_size: 8 << 20,
            channel_capacity: 65_536,
            retry_interval: Duration::from_secs(1),
            address_netlink: true,
            address_poll_interval: Duration::from_secs(1),
            payload_ports: Vec::new(),
            max_datagrams_in_flight: 1024,
            packet_batch: 0,
            max_batches_in_flight: 256,
            burst_pause: Duration::from_millis(16),
        }
    }
}

impl CaptureConfig {
    /// The default configuration for these interfaces and this filter.
    #[must_use]
    pub fn new(interfaces: Vec<String>, filter: impl Into<String>) -> Self {
        Self {
            interfaces,
            filter: filter.into(),
            ..Self::default()
        }
    }

    /// A bounded channel of [`channel_capacity`](Self::channel_capacity) events.
    #[must_use]
    pub fn channel(&self) -> (Sender<CaptureEvent>, Receiver<CaptureEvent>) {
        crossbeam_channel::bounded(self.channel_capacity)
    }

    /// The expression actually installed: `filter`, restricted to IPv4 when `ipv4_only`.
    fn effective_filter(&self, filter: &str) -> String {
        match (self.ipv4_only, filter.is_empty()) {
            (false, _) => filter.to_owned(),
            (true, true) => "ip".to_owned(),
            (true, false) => format!("ip and ({filter})"),
        }
    }
}

/// What live capture reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureEvent {
    /// A decoded TCP or UDP packet, stamped with the [`Clock`] when it was read.
    Packet(PacketEvent),
    /// Packets read one after the other, in arrival order, each stamped as in
    /// [`Packet`](Self::Packet) (only with [`CaptureConfig::packet_batch`]; never empty).
    Packets(PacketBatch),
    /// A UDP datagram to one of [`CaptureConfig::payload_ports`], with its data (boxed: the
    /// event stays small; bounded by [`CaptureConfig::max_datagrams_in_flight`]).
    Datagram(Box<Datagram>),
    /// An interface was opened (at start, or again after it was lost).
    InterfaceUp {
        /// The interface.
        interface: String,
        /// Its link layer.
        link: LinkType,
    },
    /// An interface cannot be opened yet (missing, down…); it is retried every
    /// [`CaptureConfig::retry_interval`]. Reported once per waiting period.
    ///
    /// An interface that exists and is up but has no address yet is *not* waited for: it is
    /// captured at once (doors with a `Target` work), and
    /// [`AddressesChanged`](Self::AddressesChanged) reports the addresses when they appear.
    InterfaceWaiting {
        /// The interface.
        interface: String,
        /// libpcap's reason.
        reason: String,
    },
    /// An open interface failed (deleted, brought down); it is reopened when it is back,
    /// then [`InterfaceUp`](Self::InterfaceUp) is reported again.
    InterfaceLost {
        /// The interface.
        interface: String,
        /// libpcap's error.
        error: String,
    },
    /// The filter could not be installed on an interface (the previous one stays).
    FilterFailed {
        /// The interface.
        interface: String,
        /// libpcap's error.
        error: String,
    },
    /// The local addresses of the captured interfaces changed; reported once at start with
    /// the initial set, then on every change.
    AddressesChanged {
        /// All addresses of the chosen interfaces, sorted.
        addresses: Vec<IpAddr>,
    },
}

/// Counters of one interface (cumulative since [`LiveCapture::start`], across reopenings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterfaceStats {
    /// The interface.
    pub interface: String,
    /// Its link layer, once it has been opened.
    pub link: Option<LinkType>,
    /// Whether it is currently open.
    pub up: bool,
    /// Packets the kernel passed the filter (libpcap `ps_recv`).
    pub received: u64,
    /// Packets the kernel dropped because the ring buffer was full (`ps_drop`).
    pub dropped: u64,
    /// Packets the interface or driver dropped (`ps_ifdrop`).
    pub if_dropped: u64,
    /// Frames read from libpcap.
    pub read: u64,
    /// Packet events sent into the channel.
    pub sent: u64,
    /// Packet events dropped because the channel was full.
    pub channel_dropped: u64,
    /// Frames the decoder ignored, by reason.
    pub ignored: IgnoredCounts,
}

/// State shared between the handle and all threads.
struct Shared {
    config: CaptureConfig,
    clock: Clock,
    events: Sender<CaptureEvent>,
    stopping: AtomicBool,
    /// The current filter (as given, before `ipv4_only`) and its generation.
    filter: Mutex<String>,
    filter_generation: AtomicU64,
    /// The UDP ports reported with their data, and their generation.
    payload_ports: Mutex<Vec<u16>>,
    payload_generation: AtomicU64,
    /// Datagrams alive (see `CaptureConfig::max_datagrams_in_flight`).
    datagrams_in_flight: Arc<AtomicUsize>,
    /// The buffers of batched delivery (`None`: one event per packet).
    batch_pool: Option<Arc<BatchPool>>,
    addresses: Mutex<Vec<IpAddr>>,
    /// Closed (sender dropped) on stop: wakes every timed wait at once.
    stop_signal: Receiver<()>,
}

/// Per-interface state shared between its capture thread and the handle.
struct Interface {
    name: String,
    /// A byte written here wakes the capture thread's `poll` (stop, reload, stats).
    wake_write: OwnedFd,
    /// The read end, polled by the capture thread beside the packet socket.
    wake_read: OwnedFd,
    link: Mutex<Option<LinkType>>,
    up: AtomicBool,
    read: AtomicU64,
    sent: AtomicU64,
    channel_dropped: AtomicU64,
    ignored: AtomicIgnoredCounts,
    /// libpcap counters: those of earlier handles (`base`) and of the current one.
    pcap_stats: Mutex<PcapTotals>,
    /// Bumped when the capture thread refreshed `pcap_stats` after a request.
    stats_refreshed: Condvar,
    stats_requested: AtomicBool,
}

/// libpcap's counters (received, dropped, interface-dropped), widened to 64 bits.
///
/// libpcap reports 32-bit counters that wrap and restart with each handle, so the totals
/// accumulate the (wrapping) difference between successive readings.
#[derive(Default, Clone, Copy)]
struct PcapTotals {
    totals: [u64; 3],
    last_reading: [u32; 3],
    /// Bumped on every refresh, so that `stats()` can wait for a fresh reading.
    generation: u64,
}

impl PcapTotals {
    fn update(&mut self, reading: [u32; 3]) {
        for ((total, last), now) in self
            .totals
            .iter_mut()
            .zip(&mut self.last_reading)
            .zip(reading)
        {
            *total = total.saturating_add(u64::from(now.wrapping_sub(*last)));
            *last = now;
        }
    }

    /// The handle is closed: the next one counts from zero.
    fn retire(&mut self) {
        self.last_reading = [0; 3];
    }
}

/// Adds one to a counter that only its capture thread writes: a relaxed load and store, not
/// a locked read-modify-write, on the per-packet path.
fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Adds `n` to a counter that only its capture thread writes (see [`bump`]).
fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Interface {
    fn new(name: String) -> std::io::Result<Self> {
        let (wake_read, wake_write) = crate::platform::cloexec_pipe(true)?;
        Ok(Self {
            name,
            wake_read,
            wake_write,
            link: Mutex::new(None),
            up: AtomicBool::new(false),
            read: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            channel_dropped: AtomicU64::new(0),
            ignored: AtomicIgnoredCounts::default(),
            pcap_stats: Mutex::new(PcapTotals::default()),
            stats_refreshed: Condvar::new(),
            stats_requested: AtomicBool::new(false),
        })
    }

    /// Wakes the capture thread (a full pipe already holds a pending wakeup).
    fn wake(&self) {
        let _ = nix::unistd::write(&self.wake_write, &[1]);
    }

    /// Empties the wake pipe.
    fn drain_wakeups(&self) {
        let mut buffer = [0u8; 64];
        while matches!(nix::unistd::read(&self.wake_read, &mut buffer), Ok(n) if n > 0) {}
    }

    fn refresh_pcap_stats(&self, capture: &mut Capture<Active>) {
        let reading = capture.stats();
        let mut totals = lock(&self.pcap_stats);
        if let Ok(stat) = reading {
            totals.update([stat.received, stat.dropped, stat.if_dropped]);
        }
        totals.generation = totals.generation.wrapping_add(1);
        drop(totals);
        self.stats_refreshed.notify_all();
    }

    fn snapshot(&self) -> InterfaceStats {
        let totals = *lock(&self.pcap_stats);
        InterfaceStats {
            interface: self.name.clone(),
            link: *lock(&self.link),
            up: self.up.load(Ordering::Relaxed),
            received: totals.totals[0],
            dropped: totals.totals[1],
            if_dropped: totals.totals[2],
            read: self.read.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            channel_dropped: self.channel_dropped.load(Ordering::Relaxed),
            ignored: self.ignored.snapshot(),
        }
    }
}

/// Live capture on one or more interfaces.
///
/// Each interface gets a thread that sleeps until a packet arrives (no timer, no busy wakeup)
/// (non-blocking libpcap handle + `poll` on it and on a wake pipe) and is woken at once for
/// [`stop`](Self::stop), [`set_filter`](Self::set_filter)
/// and [`stats`](Self::stats). A further thread re-reads the local addresses whenever a
/// netlink message says they (or a link) changed, or every
/// [`CaptureConfig::address_poll_interval`] without netlink.
///
/// Packets go into the caller's bounded channel with `try_send`: when the consumer falls
/// behind (a flood), packets are dropped and counted ([`InterfaceStats::channel_dropped`]),
/// so memory stays bounded by the channel capacity plus the kernel ring buffer. Interface
/// and address events are never dropped (their sender waits for room).
///
/// Captures are non-promiscuous and incoming-only (`pcap_setdirection(IN)`), and the packet
/// socket is close-on-exec so commands the daemon runs do not inherit it. `any` is captured
/// as Linux cooked v1 ([`LinkType::LinuxSll`]): SLL2 would only add the incoming interface
/// index, which matching does not use.
pub struct LiveCapture {
    shared: Arc<Shared>,
    interfaces: Vec<Arc<Interface>>,
    threads: Vec<JoinHandle<()>>,
    /// Dropped on stop: wakes the capture threads' timed waits.
    stop_sender: Option<Sender<()>>,
    /// Closed on stop: wakes the address watcher's poll.
    stop_pipe: Option<OwnedFd>,
}

impl core::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("interfaces", &self.shared.config.interfaces)
            .finish_non_exhaustive()
    }
}

/// Whether an open error is worth waiting out (interface missing or down) rather than fatal
/// (no permission, bad configuration).
fn is_fatal_open_error(error: &pcap::Error) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    text.contains("permission") || text.contains("not permitted")
}

impl LiveCapture {
    /// Starts capturing on every interface of `config`, sending events into `events`.
    ///
    /// Interfaces that are missing or down are waited for (an
    /// [`InterfaceWaiting`](CaptureEvent::InterfaceWaiting) event), not an error.
    ///
    /// # Errors
    ///
    /// [`CaptureError::NoInterface`], [`CaptureError::Filter`] if the filter does not compile,
    /// [`CaptureError::Pcap`] if an interface cannot be opened for lack of permission,
    /// [`CaptureError::UnsupportedLinkType`], [`CaptureError::Thread`].
    pub fn start(
        config: CaptureConfig,
        clock: Clock,
        events: Sender<CaptureEvent>,
    ) -> Result<Self, CaptureError> {
        if config.interfaces.is_empty() {
            return Err(CaptureError::NoInterface);
        }
        validate_filter(&config.effective_filter(&config.filter), &[])?;
        let (stop_sender, stop_signal) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            filter: Mutex::new(config.filter.clone()),
            filter_generation: AtomicU64::new(0),
            payload_ports: Mutex::new(config.payload_ports.clone()),
            payload_generation: AtomicU64::new(0),
            datagrams_in_flight: Arc::new(AtomicUsize::new(0)),
            batch_pool: (config.packet_batch > 0)
                .then(|| BatchPool::new(config.max_batches_in_flight, config.packet_batch)),
            addresses: Mutex::new(discover_addresses(&config)),
            config,
            clock,
            events,
            stopping: AtomicBool::new(false),
            stop_signal,
        });
        let mut capture = Self {
            interfaces: Vec::new(),
            threads: Vec::new(),
            stop_sender: Some(stop_sender),
            stop_pipe: None,
            shared: Arc::clone(&shared),
        };
        for name in &shared.config.interfaces {
            let interface = Arc::new(Interface::new(name.clone()).map_err(CaptureError::Thread)?);
            // Open synchronously once, so that fatal errors are reported to the caller.
            let first = match open(&shared, &interface) {
                Ok(opened) => Some(opened),
                Err(OpenError::Fatal(error)) => return Err(error),
                Err(OpenError::Wait(_)) => None,
            };
            let thread_shared = Arc::clone(&shared);
            let thread_interface = Arc::clone(&interface);
            let thread = std::thread::Builder::new()
                .name(format!("capture {name}"))
                .spawn(move || capture_thread(&thread_shared, &thread_interface, first))
                .map_err(CaptureError::Thread)?;
            capture.interfaces.push(interface);
            capture.threads.push(thread);
        }
        let thread_shared = Arc::clone(&shared);
        let watched = capture.interfaces.clone();
        let (stop_pipe, stop_pipe_writer) =
            crate::platform::cloexec_pipe(false).map_err(|e| CaptureError::Thread(e.into()))?;
        capture.stop_pipe = Some(stop_pipe_writer);
        let watcher = std::thread::Builder::new()
            .name("address watch".to_owned())
            .spawn(move || address_thread(&thread_shared, &watched, &stop_pipe))
            .map_err(CaptureError::Thread)?;
        capture.threads.push(watcher);
        Ok(capture)
    }

    /// Replaces the filter on every interface (a reload). The expression is checked first;
    /// the capture threads install it as soon as they are woken, which is at once.
    ///
    /// # Errors
    ///
    /// [`CaptureError::Filter`] if it does not compile; the old filter stays.
    pub fn set_filter(&self, filter: String) -> Result<(), CaptureError> {
        let links: Vec<LinkType> = self
            .interfaces
            .iter()
            .filter_map(|i| *lock(&i.link))
            .collect();
        validate_filter(&self.shared.config.effective_filter(&filter), &links)?;
        *lock(&self.shared.filter) = filter;
        self.shared.filter_generation.fetch_add(1, Ordering::SeqCst);
        for interface in &self.interfaces {
            interface.wake();
        }
        Ok(())
    }

    /// Replaces the UDP ports reported with their data ([`CaptureConfig::payload_ports`]);
    /// the capture threads pick them up before their next packet.
    pub fn set_payload_ports(&self, ports: Vec<u16>) {
        *lock(&self.shared.payload_ports) = ports;
        self.shared
            .payload_generation
            .fetch_add(1, Ordering::SeqCst);
        for interface in &self.interfaces {
            interface.wake();
        }
    }

    /// The current local addresses of the captured interfaces (sorted).
    #[must_use]
    pub fn local_addresses(&self) -> Vec<IpAddr> {
        lock(&self.shared.addresses).clone()
    }

    /// Per-interface counters. The libpcap counters are refreshed first (each capture thread
    /// is woken to read them; an interface that does not answer within 100 ms reports its
    /// last known values).
    #[must_use]
    pub fn stats(&self) -> Vec<InterfaceStats> {
        let generations: Vec<u64> = self
            .interfaces
            .iter()
            .map(|i| {
                let generation = lock(&i.pcap_stats).generation;
                i.stats_requested.store(true, Ordering::SeqCst);
                i.wake();
                generation
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_millis(100);
        for (interface, generation) in self.interfaces.iter().zip(generations) {
            let mut totals = lock(&interface.pcap_stats);
            while totals.generation == generation && interface.up.load(Ordering::Relaxed) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                totals = interface
                    .stats_refreshed
                    .wait_timeout(totals, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        self.interfaces.iter().map(|i| i.snapshot()).collect()
    }

    /// Stops every thread and waits for them: each capture thread is woken through its wake
    /// pipe, so this returns promptly even on idle interfaces.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.stop_sender = None;
        self.stop_pipe = None;
        for interface in &self.interfaces {
            interface.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Checks that a filter compiles, for each given link type (Ethernet if none is known).
fn validate_filter(filter: &str, links: &[LinkType]) -> Result<(), CaptureError> {
    if filter.is_empty() {
        return Ok(());
    }
    let ethernet = [LinkType::Ethernet];
    let links = if links.is_empty() {
        &ethernet[..]
    } else {
        links
    };
    for link in links {
        let error = |source| CaptureError::Filter {
            filter: filter.to_owned(),
            source,
        };
        let dead = Capture::dead(pcap::Linktype(link.dlt())).map_err(error)?;
        dead.compile(&crate::filter::for_link(filter, *link), true)
            .map_err(error)?;
    }
    Ok(())
}

fn discover_addresses(config: &CaptureConfig) -> Vec<IpAddr> {
    let mut addresses = local_addresses(&config.interfaces);
    if config.ipv4_only {
        addresses.retain(IpAddr::is_ipv4);
    }
    addresses
}

enum OpenError {
    /// Missing, down…: retry later.
    Wait(String),
    Fatal(CaptureError),
}

struct Opened {
    capture: Capture<Active>,
    link: LinkType,
    filter_generation: u64,
    /// The interface index at opening (`None` for `any`): a different or missing index
    /// later means the interface was deleted (and perhaps re-created).
    ifindex: Option<u32>,
}

/// Opens and configures one interface (non-blocking: the thread waits in `poll`).
fn open(shared: &Shared, interface: &Interface) -> Result<Opened, OpenError> {
    let config = &shared.config;
    let pcap_error = |source: pcap::Error| {
        if is_fatal_open_error(&source) {
            OpenError::Fatal(CaptureError::Pcap {
                interface: interface.name.clone(),
                source,
            })
        } else {
            OpenError::Wait(source.to_string())
        }
    };
    let block_timeout_ms =
        i32::try_from(config.block_timeout.as_millis().max(1)).unwrap_or(i32::MAX);
    let mut capture = Capture::from_device(interface.name.as_str())
        .map_err(pcap_error)?
        .promisc(false)
        .snaplen(config.snaplen)
        .buffer_size(config.buffer_size)
        .immediate_mode(config.immediate)
        .timeout(block_timeout_ms)
        .open()
        .map_err(pcap_error)?;
    let dlt = capture.get_datalink().0;
    let link = LinkType::from_dlt(dlt).ok_or_else(|| {
        OpenError::Fatal(CaptureError::UnsupportedLinkType {
            source_name: interface.name.clone(),
            dlt,
        })
    })?;
    // Our own replies are never knocks; libpcap drops them before they are copied out.
    // Not every platform supports it: cooked captures mark them anyway.
    let _ = capture.direction(Direction::In);
    // Commands run by the daemon must not inherit the packet socket (knockd 0.8 bug B11).
    let _ = nix::fcntl::fcntl(
        capture.as_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let filter_generation = shared.filter_generation.load(Ordering::SeqCst);
    let filter = crate::filter::for_link(&config.effective_filter(&lock(&shared.filter)), link);
    if !filter.is_empty() {
        capture.filter(&filter, true).map_err(|source| {
            OpenError::Fatal(CaptureError::Filter {
                filter: filter.clone(),
                source,
            })
        })?;
    }
    // Non-blocking + poll rather than a blocking read woken by pcap_breakloop: libpcap
    // consumes the frame it is handling when a breakloop arrives and returns
    // PCAP_ERROR_BREAK instead of it, so every stats/reload wakeup could lose a knock
    // (seen in the full-channel test: kernel 50 received, 49 read).
    let capture = capture.setnonblock().map_err(pcap_error)?;
    *lock(&interface.link) = Some(link);
    let ifindex = if interface.name == crate::ANY_INTERFACE {
        None
    } else {
        nix::net::if_::if_nametoindex(interface.name.as_str()).ok()
    };
    Ok(Opened {
        capture,
        link,
        filter_generation,
        ifindex,
    })
}

/// Whether the captured interface is gone: missing, or re-created with another index.
///
/// libpcap alone does not always notice: on deletion the kernel flags the packet socket
/// with ENETDOWN while the device still exists, libpcap then takes it for "interface down,
/// keep waiting", and the socket never signals again. The address watcher wakes capture
/// threads on every link change so that this check runs.
fn interface_gone(name: &str, ifindex: Option<u32>) -> bool {
    ifindex.is_some_and(|index| nix::net::if_::if_nametoindex(name).ok() != Some(index))
}

/// Sends an interface or address event, waiting for room (these are rare and must not be
/// lost); gives up only when stopping or when the receiver is gone. Returns whether it was
/// delivered.
fn send_control(shared: &Shared, mut event: CaptureEvent) -> bool {
    loop {
        match shared
            .events
            .send_timeout(event, Duration::from_millis(100))
        {
            Ok(()) => return true,
            Err(SendTimeoutError::Timeout(back)) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return false;
                }
                event = back;
            }
            Err(SendTimeoutError::Disconnected(_)) => return false,
        }
    }
}

/// Waits `duration` or until stop; returns `false` when stopping.
fn pause(shared: &Shared, duration: Duration) -> bool {
    match shared.stop_signal.recv_timeout(duration) {
        Err(RecvTimeoutError::Timeout) => !shared.stopping.load(Ordering::SeqCst),
        Ok(()) | Err(RecvTimeoutError::Disconnected) => false,
    }
}

/// Why a capture loop ended.
enum Exit {
    Stopped,
    Lost(String),
}

fn capture_thread(shared: &Shared, interface: &Interface, mut first: Option<Opened>) {
    let mut waiting_reported = false;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let opened = match first.take() {
            Some(opened) => Ok(opened),
            None => open(shared, interface),
        };
        match opened {
            Ok(opened) => {
                interface.up.store(true, Ordering::SeqCst);
                waiting_reported = true;
                let up = CaptureEvent::InterfaceUp {
                    interface: interface.name.clone(),
                    link: opened.link,
                };
                if !send_control(shared, up) {
                    return;
                }
                let exit = run(shared, interface, opened);
                interface.up.store(false, Ordering::SeqCst);
                lock(&interface.pcap_stats).retire();
                interface.stats_refreshed.notify_all();
                match exit {
                    Exit::Stopped => return,
                    Exit::Lost(error) => {
                        let lost = CaptureEvent::InterfaceLost {
                            interface: interface.name.clone(),
                            error,
                        };
                        if !send_control(shared, lost) {
                            return;
                        }
                    }
                }
            }
            // After start even a "fatal" error (permissions changed…) is waited out: the
            // daemon is running and the interface may come back usable.
            Err(error) => {
                if !waiting_reported {
                    waiting_reported = true;
                    let reason = match error {
                        OpenError::Wait(reason) => reason,
                        OpenError::Fatal(error) => error.to_string(),
                    };
                    let waiting = CaptureEvent::InterfaceWaiting {
                        interface: interface.name.clone(),
                        reason,
                    };
                    if !send_control(shared, waiting) {
                        return;
                    }
                }
            }
        }
        if !wait_to_retry(shared, interface) {
            return;
        }
    }
}

/// Waits until the interface is worth retrying: a wakeup (the address watcher wakes every
/// capture thread on each link change, so a re-created interface is reopened at once) or
/// `retry_interval`. Returns `false` when stopping.
fn wait_to_retry(shared: &Shared, interface: &Interface) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let timeout = PollTimeout::try_from(shared.config.retry_interval).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(interface.wake_read.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, timeout).is_err() && !pause(shared, shared.config.retry_interval) {
        return false;
    }
    interface.drain_wakeups();
    !shared.stopping.load(Ordering::SeqCst)
}

/// How many frames between two refreshes of the libpcap counters under load.
const STATS_EVERY: u32 = 4096;

/// The most frames one `pcap_dispatch` call hands over: control requests (stop, reload,
/// stats) are checked between calls, so a flood that keeps the ring full delays them by at
/// most this many frames' work.
const DISPATCH_MAX: usize = 64;

fn run(shared: &Shared, interface: &Interface, opened: Opened) -> Exit {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Opened {
        mut capture,
        link,
        mut filter_generation,
        ifindex,
    } = opened;
    let mut since_stats = 0u32;
    let mut payload_generation = u64::MAX;
    let mut payload_ports: Vec<u16> = Vec::new();
    let mut pending = Pending::new(shared, interface);
    let mut pacer = Pacer::new(shared.config.burst_pause.min(MAX_BURST_PAUSE));
    // When the current read (dispatch calls until the ring is empty) began, and
    // how many frames it found.
    let mut read_began = std::time::Instant::now();
    let mut read_count = 0usize;
    // The time given to the packets: read for the first packet of a read and then every
    // CLOCK_EVERY packets, not for each one. A flood read of hundreds of packets then costs a
    // few clock reads instead of one per packet (a third of this thread's time at 100 000
    // packets/s); the packets of one read all arrived before it began, and their times stay
    // within CLOCK_EVERY packets' processing of when each was read.
    let mut now = shared.clock.now();
    loop {
        let generation = shared.payload_generation.load(Ordering::Relaxed);
        if generation != payload_generation {
            payload_generation = generation;
            payload_ports.clone_from(&lock(&shared.payload_ports));
        }
        // Control requests are checked before every read (cheap relaxed loads), so a flood
        // that keeps the ring full cannot delay a stop or a reload.
        if shared.stopping.load(Ordering::Relaxed) {
            return Exit::Stopped;
        }
        let generation = shared.filter_generation.load(Ordering::Relaxed);
        if generation != filter_generation {
            filter_generation = generation;
            let filter = crate::filter::for_link(
                &shared.config.effective_filter(&lock(&shared.filter)),
                link,
            );
            if let Err(error) = capture.filter(&filter, true) {
                // Packets read before the failure are delivered before it.
                if !pending.flush() {
                    return Exit::Stopped;
                }
                let failed = CaptureEvent::FilterFailed {
                    interface: interface.name.clone(),
                    error: error.to_string(),
                };
                if !send_control(shared, failed) {
                    return Exit::Stopped;
                }
            }
        }
        // A plain load first: the swap (a locked read-modify-write) runs only on a request.
        if interface.stats_requested.load(Ordering::Relaxed)
            && interface.stats_requested.swap(false, Ordering::Relaxed)
        {
            interface.refresh_pcap_stats(&mut capture);
        }
        // Up to DISPATCH_MAX frames in one libpcap call, handed over in place in the ring
        // (pcap_next_ex would copy each frame out first and cost a call per frame).
        let mut receiver_gone = false;
        let read = capture.dispatch(Some(DISPATCH_MAX), |packet| {
            if receiver_gone {
                return;
            }
            if read_count.is_multiple_of(CLOCK_EVERY) {
                now = shared.clock.now();
            }
            bump(&interface.read);
            read_count += 1;
            since_stats += 1;
            let frame = Frame {
                link,
                now,
                data: packet.data,
                wire_length: packet.header.len,
            };
            receiver_gone = !deliver(shared, interface, &mut pending, &payload_ports, frame);
        });
        match read {
            Ok(frames) if frames > 0 => {
                if receiver_gone {
                    return Exit::Stopped;
                }
                if since_stats >= STATS_EVERY {
                    since_stats = 0;
                    interface.refresh_pcap_stats(&mut capture);
                }
            }
            // Non-blocking: the ring is empty. Sleep until a frame or a wakeup arrives.
            Ok(_) => {
                // Whatever was read goes now: no packet waits for a batch to fill.
                if !pending.flush() {
                    return Exit::Stopped;
                }
                let pause = pacer.after_read(read_began, read_count);
                read_count = 0;
                if let Some(pause) = pause {
                    // A flood: let the ring fill, then read it all in one go.
                    std::thread::sleep(pause);
                    read_began = std::time::Instant::now();
                    continue;
                }
                let mut fds = [
                    PollFd::new(capture.as_fd(), PollFlags::POLLIN),
                    PollFd::new(interface.wake_read.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(error) => return Exit::Lost(format!("poll: {error}")),
                }
                let socket_error = fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
                let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
                if woken {
                    interface.drain_wakeups();
                }
                if (woken || socket_error) && interface_gone(&interface.name, ifindex) {
                    interface.refresh_pcap_stats(&mut capture);
                    return Exit::Lost("the interface disappeared".to_owned());
                }
                read_began = std::time::Instant::now();
            }
            Err(error) => {
                // Packets read before the error are delivered before the loss is reported.
                if !pending.flush() {
                    return Exit::Stopped;
                }
                interface.refresh_pcap_stats(&mut capture);
                return Exit::Lost(error.to_string());
            }
        }
    }
}

/// One frame read from the ring.
struct Frame<'a> {
    link: LinkType,
    /// The time given to it (see `run`).
    now: knock_core::Instant,
    data: &'a [u8],
    /// Its length on the wire (`data` may be cut short by the snap length).
    wire_length: u32,
}

/// Decodes one frame and queues it (a knock candidate) or sends it at once (a datagram to a
/// payload port, after the packets queued before it); a frame that is not a knock candidate
/// is counted by reason. `false` if the receiver is gone.
fn deliver(
    shared: &Shared,
    interface: &Interface,
    pending: &mut Pending<'_>,
    payload_ports: &[u16],
    frame: Frame<'_>,
) -> bool {
    match decode_with_payload(frame.link, frame.now, frame.data, frame.wire_length) {
        Ok((event, _)) if shared.config.ipv4_only && event.source.is_ipv6() => true,
        Ok((event, data))
            if event.protocol == knock_core::Protocol::Udp
                && payload_ports.contains(&event.destination_port) =>
        {
            // Packets read before it are delivered before it.
            if !pending.flush() {
                return false;
            }
            let datagram = Datagram::bounded(
                event,
                data,
                &shared.datagrams_in_flight,
                shared.config.max_datagrams_in_flight,
            );
            let sent =
                datagram.map(|d| shared.events.try_send(CaptureEvent::Datagram(Box::new(d))));
            match sent {
                Some(Ok(())) => bump(&interface.sent),
                None | Some(Err(TrySendError::Full(_))) => bump(&interface.channel_dropped),
                Some(Err(TrySendError::Disconnected(_))) => return false,
            }
            true
        }
        Ok((event, _)) => pending.push(event),
        Err(reason) => {
            interface.ignored.record(reason);
            true
        }
    }
}

/// The packets a capture thread has read and not yet sent: with batched delivery, the
/// batch being filled (sent when full or when the ring is empty); otherwise nothing (each
/// packet is sent at once).
struct Pending<'a> {
    shared: &'a Shared,
    interface: &'a Interface,
    /// The buffer being filled (taken from the pool on the first packet).
    buffer: Option<Vec<PacketEvent>>,
}

impl<'a> Pending<'a> {
    fn new(shared: &'a Shared, interface: &'a Interface) -> Self {
        Self {
            shared,
            interface,
            buffer: None,
        }
    }

    /// Queues one decoded packet; `false` if the receiver is gone.
    fn push(&mut self, event: PacketEvent) -> bool {
        let Some(pool) = &self.shared.batch_pool else {
            return match self.shared.events.try_send(CaptureEvent::Packet(event)) {
                Ok(()) => {
                    bump(&self.interface.sent);
                    true
                }
                Err(TrySendError::Full(_)) => {
                    bump(&self.interface.channel_dropped);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            };
        };
        if self.buffer.is_none() {
            self.buffer = pool.take();
        }
        let Some(buffer) = self.buffer.as_mut() else {
            // Every buffer is in flight: the consumer is behind.
            bump(&self.interface.channel_dropped);
            return true;
        };
        buffer.push(event);
        buffer.len() < pool.capacity() || self.flush()
    }

    /// Sends the batch being filled, if any; `false` if the receiver is gone.
    fn flush(&mut self) -> bool {
        let (Some(pool), Some(buffer)) = (&self.shared.batch_pool, self.buffer.take()) else {
            return true;
        };
        if buffer.is_empty() {
            pool.give_back(buffer);
            return true;
        }
        let count = buffer.len() as u64;
        match self
            .shared
            .events
            .try_send(CaptureEvent::Packets(pool.batch(buffer)))
        {
            Ok(()) => add(&self.interface.sent, count),
            // The batch is dropped, which gives its buffer back.
            Err(TrySendError::Full(_)) => add(&self.interface.channel_dropped, count),
            Err(TrySendError::Disconnected(_)) => return false,
        }
        true
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let (Some(pool), Some(buffer)) = (&self.shared.batch_pool, self.buffer.take()) {
            pool.give_back(buffer);
        }
    }
}

/// Re-reads the local addresses on every netlink notification (or every poll interval),
/// reports changes, and wakes the capture threads so they notice deleted interfaces.
fn address_thread(shared: &Shared, interfaces: &[Arc<Interface>], stop_pipe: &OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let netlink = if shared.config.address_netlink {
        crate::platform::netlink_watch()
    } else {
        None
    };
    let timeout = if netlink.is_some() {
        PollTimeout::NONE
    } else {
        PollTimeout::try_from(shared.config.address_poll_interval).unwrap_or(PollTimeout::MAX)
    };
    let mut reported: Option<Vec<IpAddr>> = None;
    loop {
        let current = discover_addresses(&shared.config);
        if reported.as_ref() != Some(&current) {
            *lock(&shared.addresses) = current.clone();
            let changed = CaptureEvent::AddressesChanged {
                addresses: current.clone(),
            };
            if !send_control(shared, changed) {
                return;
            }
            reported = Some(current);
        }
        let mut fds = vec![PollFd::new(stop_pipe.as_fd(), PollFlags::POLLIN)];
        if let Some(socket) = &netlink {
            fds.push(PollFd::new(socket.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // Cannot wait on the descriptors: fall back to sleeping.
            Err(_) => {
                if !pause(shared, shared.config.address_poll_interval) {
                    return;
                }
            }
        }
        // The stop pipe's write end is closed on stop (POLLHUP).
        if shared.stopping.load(Ordering::SeqCst) || fds[0].revents().is_some_and(|r| !r.is_empty())
        {
            return;
        }
        drop(fds);
        if let Some(socket) = &netlink {
            crate::platform::drain_netlink(socket);
        }
        for interface in interfaces {
            interface.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_counters_widen_across_wraps_and_reopenings() {
        let mut totals = PcapTotals::default();
        totals.update([10, 1, 0]);
        totals.update([u32::MAX - 4, 1, 0]);
        totals.update([5, 2, 0]); // wrapped: 10 more
        assert_eq!(totals.totals, [u64::from(u32::MAX) + 6, 2, 0]);
        totals.retire();
        totals.update([3, 0, 1]);
        assert_eq!(totals.totals, [u64::from(u32::MAX) + 9, 2, 1]);
    }

    /// Issue 10 items 10 and 14: the VLAN-following filter installed on Ethernet, built
    /// for 10 000 doors, stays within the kernel's 4 096 BPF instructions and still admits a
    /// QinQ knock (inline tags, as in a savefile) but not another port.
    #[test]
    fn issue10_item10_vlan_filter_for_many_doors_compiles_within_the_kernel_limit() {
        use knock_core::{Door, Knock};
        let doors: Vec<Door> = (0..10_000u32)
            .map(|i| {
                let port =
                    |k: u32| u16::try_from(1024 + (i * 7919 + k * 104_729) % 60_000).unwrap();
                Door::new(
                    format!("d{i}"),
                    vec![Knock::tcp(port(1)), Knock::udp(port(2))],
                )
            })
            .collect();
        let text = crate::filter_expression(&doors, &["10.0.0.1".parse().unwrap()]);
        let dead = Capture::dead(pcap::Linktype(LinkType::Ethernet.dlt())).unwrap();
        let installed = crate::filter::for_link(&text, LinkType::Ethernet);
        let program = dead.compile(&installed, true).unwrap();
        let insns = program.get_instructions().len();
        eprintln!("{} bytes, {insns} instructions", installed.len());
        assert!(insns <= 4096, "{insns}");
        validate_filter(&text, &LinkType::ALL).unwrap();
        // 802.1ad + 802.1Q tags inline, IPv4 UDP to door 0's second port.
        let udp_port = doors[0].sequence[1].port;
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .double_vlan(
                etherparse::VlanId::try_new(100).unwrap(),
                etherparse::VlanId::try_new(42).unwrap(),
            )
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .udp(40000, udp_port)
            .write(&mut frame, &[0])
            .unwrap();
        assert!(program.filter(&frame));
        // Three tags, as many as the decoder walks.
        let mut three = frame.clone();
        three.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        assert!(program.filter(&three));
        let plain = dead.compile(&text, true).unwrap();
        assert!(!plain.filter(&frame), "the untagged filter missed QinQ");
        let mut other = frame.clone();
        let at = other.len() - 7;
        other[at..at + 2].copy_from_slice(&[0, 1]);
        assert!(!program.filter(&other));
        assert_eq!(crate::filter::for_link(&text, LinkType::RawIp), text);
        assert_eq!(crate::filter::for_link("", LinkType::Ethernet), "");
    }

    #[test]
    fn ipv4_only_restricts_the_filter() {
        let mut config = CaptureConfig::new(vec!["lo".to_owned()], "udp");
        assert_eq!(config.effective_filter("udp"), "udp");
        config.ipv4_only = true;
        assert_eq!(config.effective_filter("udp"), "ip and (udp)");
        assert_eq!(config.effective_filter(""), "ip");
        assert!(
            validate_filter("ip and (udp dst port 1 or tcp dst port 2)", &LinkType::ALL).is_ok()
        );
        assert!(matches!(
            validate_filter("udp dst port", &[]),
            Err(CaptureError::Filter { .. })
        ));
    }

    #[test]
    fn no_interface_is_an_error() {
        let config = CaptureConfig::new(Vec::new(), "");
        let (sender, _receiver) = config.channel();
        assert!(matches!(
            LiveCapture::start(config, Clock::new(), sender),
            Err(CaptureError::NoInterface)
        ));
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn handles_cross_threads_and_events_stay_small() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<LiveCapture>();
        send_sync::<CaptureEvent>();
        // The channel's memory bound is capacity × this (documented on channel_capacity).
        assert!(
            size_of::<CaptureEvent>() <= 64,
            "{}",
            size_of::<CaptureEvent>()
        );
    }
}
