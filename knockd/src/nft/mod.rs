//! Native nftables doors: add the knocker's address to an nftables set with a per-element
//! timeout, over netlink, from the daemon itself (no shell, no `nft` process).
//!
//! Requests are built from the MIT-licensed `netlink-packet-netfilter` crate's nf_tables
//! message types and sent on a `NETLINK_NETFILTER` socket from `netlink-sys`; [`wire`]
//! assembles them, decodes the replies (with its own length-checked decoder) and has
//! golden-byte tests against what `nft` sends and what the kernel answers.
//!
//! * [`NftSets::validate`] (at start and on reload): the set exists, has the `timeout` flag
//!   and holds addresses of the knocker's family (`ipv4_addr`, 4-byte keys, or
//!   `ipv6_addr`, 16-byte keys); maps, interval and concatenated sets are refused.
//! * [`NftSets::add_element`]: adds `{ ADDR timeout T }` in one batch. When the element is
//!   already there (a second knock), its timeout is **restarted** at `T`. Since Linux 6.12 a
//!   re-add updates an existing element, but only what differs: a timeout equal to the
//!   element's leaves the countdown running (seen on 6.18: `nft add element … { A timeout
//!   30s }` twice keeps the first expiration), so knockd sends `timeout T expires T`, which
//!   restarts it: one round trip, [`Refresh::ReAdd`]. Through 6.11 a re-add succeeds but
//!   keeps the old expiration, so on those kernels knockd first asks for the element (a
//!   GETSETELEM of that one key) and, when it is there, deletes and re-adds it in one batch
//!   (one transaction: packets never see the address missing), [`Refresh::Replace`]. [`NftSets::open`] picks
//!   the strategy from the kernel release. An exclusive add (`NLM_F_EXCL`) failing with
//!   `EEXIST` would also detect the element, but an aborted nf_tables transaction costs
//!   about 16 ms against tens of microseconds for a query (measured on 6.18).
//! * [`NftSets::elements`]: reads a set's elements back, with timeout and time left.
//!
//! Cost of one [`NftSets::add_element`] call, measured on Linux 6.18 in a network namespace
//! (release build, 2 000 addresses, each added twice): `ReAdd` p50 5 µs, p99 13 µs, new or
//! repeated; `Replace` p50 11 µs new, 21 µs repeated.
//!
//! A socket belongs to the network namespace it was opened in. Each request waits at most
//! [`REPLY_TIMEOUT`] for the kernel's answer.

use std::io;
use std::net::IpAddr;
use std::ops::Range;
use std::os::fd::AsFd;
use std::time::Duration;

use knock_core::Door;
use knock_core::NftSetRef;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

pub mod wire;

use wire::{Expiration, Reply};
pub use wire::{SetElement, SetInfo};

const ENOENT: i32 = Errno::ENOENT as i32;
const EPERM: i32 = Errno::EPERM as i32;
const EACCES: i32 = Errno::EACCES as i32;

/// How long a request waits for the kernel's reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Receive buffer size: a netlink dump sends at most one page-sized skb per datagram
/// (the kernel caps it well below this).
const RECV_BUFFER: usize = 64 * 1024;

/// The address family of the knockers a set is meant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressFamily {
    /// IPv4 knockers: a set of `type ipv4_addr`.
    Ipv4,
    /// IPv6 knockers: a set of `type ipv6_addr`.
    Ipv6,
}

impl AddressFamily {
    /// The family of `addr`.
    #[must_use]
    pub const fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    fn nft_type(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4_addr",
            Self::Ipv6 => "ipv6_addr",
        }
    }
}

/// How [`NftSets::add_element`] restarts the timeout of an element that is already in the
/// set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refresh {
    /// Add again (`NLM_F_CREATE`) with `timeout T expires T`: the kernel (Linux 6.12 and
    /// later) updates an existing element. One round trip.
    ReAdd,
    /// Ask whether the element is there; if so delete and re-add it in one batch, else add
    /// it. Two round trips; works on every kernel with nf_tables element timeouts.
    Replace,
}

impl Refresh {
    /// The strategy for the running kernel: [`ReAdd`](Self::ReAdd) from Linux 6.12 on (read
    /// from `/proc/sys/kernel/osrelease`), else [`Replace`](Self::Replace).
    #[must_use]
    pub fn for_running_kernel() -> Self {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|release| Self::for_release(&release))
            .unwrap_or(Self::Replace)
    }

    /// The strategy for kernel release `release` (`6.12.0-1-amd64`), `None` when it does not
    /// start with `MAJOR.MINOR`.
    #[must_use]
    pub fn for_release(release: &str) -> Option<Self> {
        let mut parts = release.trim().split(['.', '-']);
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        Some(if (major, minor) >= (6, 12) {
            Self::ReAdd
        } else {
            Self::Replace
        })
    }
}

/// Why an nftables operation failed. Every variant but [`Open`](Self::Open) names the set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netfilter netlink socket: {0}")]
    Open(#[source] io::Error),
    /// The table or the set does not exist (`ENOENT`).
    #[error("nftables set {set} does not exist (no such table or set)")]
    NoSuchSet {
        /// The set.
        set: NftSetRef,
    },
    /// The kernel refused (`EPERM`/`EACCES`): knockd needs `CAP_NET_ADMIN`.
    #[error("nftables set {set}: permission denied (CAP_NET_ADMIN is needed)")]
    PermissionDenied {
        /// The set.
        set: NftSetRef,
    },
    /// The set lacks the `timeout` flag, so elements cannot expire.
    #[error("nftables set {set} has no timeout flag (declare it with `flags timeout;`)")]
    NoTimeoutFlag {
        /// The set.
        set: NftSetRef,
    },
    /// The set's key is not an address of the knocker's family.
    #[error(
        "nftables set {set} holds keys of type {key_type} and length {key_len}, \
         not {expected} (use `type {expected};`)"
    )]
    WrongType {
        /// The set.
        set: NftSetRef,
        /// The nft type knockd needs, `ipv4_addr` or `ipv6_addr`.
        expected: &'static str,
        /// The set's `NFTA_SET_KEY_TYPE` (nft's data type number).
        key_type: u32,
        /// The set's key length in bytes.
        key_len: u32,
    },
    /// The set is a map, an interval set or a concatenation, not a plain set of addresses.
    #[error("nftables set {set} is a {kind} set; knockd needs a plain set of addresses")]
    UnsupportedSet {
        /// The set.
        set: NftSetRef,
        /// `map`, `interval`, …
        kind: &'static str,
    },
    /// The set's table family cannot hold the knocker's addresses (an `ip6` table for
    /// IPv4 knockers or an `ip` table for IPv6 ones).
    #[error("nftables set {set} is in an {family} table, which cannot hold {expected} keys", family = set.family)]
    WrongFamily {
        /// The set.
        set: NftSetRef,
        /// The nft type knockd would add.
        expected: &'static str,
    },
    /// A zero timeout would make the element permanent: refused.
    #[error("nftables set {set}: an element timeout of less than 1 ms would never expire")]
    ZeroTimeout {
        /// The set.
        set: NftSetRef,
    },
    /// Any other failure reported by the kernel or the socket.
    #[error("nftables set {set}: {operation} failed: {source}")]
    Kernel {
        /// The set.
        set: NftSetRef,
        /// What knockd was doing (`adding an element`, …).
        operation: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl NftError {
    /// What went wrong, without the set's name (for log lines that name the set already):
    /// `no such table or set`, `permission denied (CAP_NET_ADMIN is needed)`, …
    #[must_use]
    pub fn reason(&self) -> String {
        match self {
            Self::Open(error) => format!("cannot open a netfilter netlink socket: {error}"),
            Self::NoSuchSet { .. } => "no such table or set".to_owned(),
            Self::PermissionDenied { .. } => {
                "permission denied (CAP_NET_ADMIN is needed)".to_owned()
            }
            Self::NoTimeoutFlag { .. } => "the set has no timeout flag".to_owned(),
            Self::WrongType { expected, .. } => format!("the set does not hold {expected} keys"),
            Self::UnsupportedSet { kind, .. } => format!("the set is a {kind} set"),
            Self::WrongFamily { expected, .. } => {
                format!("the set's table family cannot hold {expected} keys")
            }
            Self::ZeroTimeout { .. } => "a timeout under 1 ms would never expire".to_owned(),
            Self::Kernel {
                operation, source, ..
            } => format!("{operation} failed: {source}"),
        }
    }
}

/// A door whose nftables set failed [`NftSets::validate_doors`].
#[derive(Debug, thiserror::Error)]
#[error("door \"{door}\": {source}")]
#[non_exhaustive]
pub struct DoorSetError {
    /// The door's name.
    pub door: String,
    /// What is wrong with its set.
    #[source]
    pub source: NftError,
}

/// A netlink connection to nf_tables. Cheap to keep open for the life of the daemon; one
/// request at a time (`&mut self`).
#[derive(Debug)]
pub struct NftSets {
    socket: Socket,
    refresh: Refresh,
    next_seq: u32,
    send: Vec<u8>,
    recv: Vec<u8>,
}

impl NftSets {
    /// Opens a `NETLINK_NETFILTER` socket in the calling thread's network namespace, with
    /// the [`Refresh`] strategy for the running kernel.
    ///
    /// # Errors
    ///
    /// [`NftError::Open`] when the socket cannot be created or bound.
    pub fn open() -> Result<Self, NftError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(NftError::Open)?;
        socket.bind_auto().map_err(NftError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NftError::Open)?;
        Ok(Self {
            socket,
            refresh: Refresh::for_running_kernel(),
            next_seq: 1,
            send: Vec::with_capacity(512),
            recv: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// How an existing element's timeout is restarted.
    #[must_use]
    pub fn refresh(&self) -> Refresh {
        self.refresh
    }

    /// Chooses how an existing element's timeout is restarted (tests use both on one kernel).
    pub fn set_refresh(&mut self, refresh: Refresh) {
        self.refresh = refresh;
    }

    /// What the kernel says about `set` (flags, key type and length).
    ///
    /// # Errors
    ///
    /// [`NftError::NoSuchSet`], [`NftError::PermissionDenied`] or [`NftError::Kernel`].
    pub fn set_info(&mut self, set: &NftSetRef) -> Result<SetInfo, NftError> {
        const OPERATION: &str = "querying the set";
        let seq = self.take_seqs(1);
        self.send.clear();
        wire::get_set_request(&mut self.send, seq, set);
        let replies = self
            .exchange(seq..seq + 1, |reply| matches!(reply, Reply::Ack { .. }))
            .map_err(|source| kernel(set, OPERATION, source))?;
        let mut info = None;
        for reply in replies {
            match reply {
                Reply::Error { errno, .. } => return Err(errno_error(set, OPERATION, errno)),
                Reply::Set { info: found, .. } => info = Some(found),
                _ => {}
            }
        }
        info.ok_or_else(|| {
            kernel(
                set,
                OPERATION,
                io::Error::new(io::ErrorKind::InvalidData, "no set in the kernel's reply"),
            )
        })
    }

    /// Checks that `set` can take elements for knockers of `family`: it exists, has the
    /// `timeout` flag, is a plain set (not a map, interval or concatenation), its table
    /// family carries that address family and its key is `ipv4_addr` or `ipv6_addr`.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the set.
    pub fn validate(&mut self, set: &NftSetRef, family: AddressFamily) -> Result<(), NftError> {
        let expected = family.nft_type();
        if !set.family.carries(family == AddressFamily::Ipv6) {
            return Err(NftError::WrongFamily {
                set: set.clone(),
                expected,
            });
        }
        let info = self.set_info(set)?;
        if let Some(kind) = info.special_kind() {
            return Err(NftError::UnsupportedSet {
                set: set.clone(),
                kind,
            });
        }
        let (key_type, key_len) = match family {
            AddressFamily::Ipv4 => (wire::NFT_TYPE_IPV4_ADDR, 4),
            AddressFamily::Ipv6 => (wire::NFT_TYPE_IPV6_ADDR, 16),
        };
        if info.key_type != key_type || info.key_len != key_len {
            return Err(NftError::WrongType {
                set: set.clone(),
                expected,
                key_type: info.key_type,
                key_len: info.key_len,
            });
        }
        if !info.has_timeout() {
            return Err(NftError::NoTimeoutFlag { set: set.clone() });
        }
        Ok(())
    }

    /// Validates every set the doors name: `nft_set` for IPv4 knockers, `nft_set_6` for
    /// IPv6 ones (at start, on reload and in `--check` as root). Returns how many sets were
    /// checked.
    ///
    /// # Errors
    ///
    /// The first door whose set is missing or unsuitable.
    pub fn validate_doors(&mut self, doors: &[Door]) -> Result<usize, DoorSetError> {
        let mut checked = 0;
        for door in doors {
            let sets = [
                (&door.nft_set, AddressFamily::Ipv4),
                (&door.nft_set_6, AddressFamily::Ipv6),
            ];
            for (set, family) in sets {
                let Some(set) = set else { continue };
                self.validate(set, family).map_err(|source| DoorSetError {
                    door: door.name.clone(),
                    source,
                })?;
                checked += 1;
            }
        }
        Ok(checked)
    }

    /// Adds `{ addr timeout timeout }` to `set`, or restarts the element's timeout at
    /// `timeout` when `addr` is already in the set (see [`Refresh`]). Timeouts are rounded
    /// down to milliseconds.
    ///
    /// # Errors
    ///
    /// [`NftError::ZeroTimeout`] for a timeout under 1 ms (the kernel would make the
    /// element permanent); [`NftError::NoSuchSet`], [`NftError::PermissionDenied`] or
    /// [`NftError::Kernel`] (e.g. `EINVAL` for a set without the timeout flag or of the
    /// wrong type: [`validate`](Self::validate) first).
    pub fn add_element(
        &mut self,
        set: &NftSetRef,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<(), NftError> {
        const OPERATION: &str = "adding an element";
        if timeout.as_millis() == 0 {
            return Err(NftError::ZeroTimeout { set: set.clone() });
        }
        if self.refresh == Refresh::Replace && self.contains(set, addr)? {
            let seq = self.take_seqs(4);
            self.send.clear();
            wire::replace_element_batch(&mut self.send, seq, set, addr, timeout);
            match self.batch(set, seq..seq + 4, 2)? {
                None => return Ok(()),
                // It expired since the query: a plain add is enough.
                Some(ENOENT) => {}
                Some(errno) => return Err(errno_error(set, OPERATION, errno)),
            }
        }
        // ReAdd: `timeout T expires T`, which a 6.12+ kernel applies to an existing element
        // too. Replace: the element is new here, a timeout is enough.
        let expiration = match self.refresh {
            Refresh::ReAdd => Expiration::Explicit,
            Refresh::Replace => Expiration::Implicit,
        };
        let seq = self.take_seqs(3);
        self.send.clear();
        wire::add_element_batch(&mut self.send, seq, set, addr, timeout, expiration);
        match self.batch(set, seq..seq + 3, 1)? {
            None => Ok(()),
            Some(errno) => Err(errno_error(set, OPERATION, errno)),
        }
    }

    /// Whether `addr` is in `set` (`false` also when the set does not exist: the add that
    /// follows reports that).
    fn contains(&mut self, set: &NftSetRef, addr: IpAddr) -> Result<bool, NftError> {
        const OPERATION: &str = "looking up an element";
        let seq = self.take_seqs(1);
        self.send.clear();
        wire::get_element_request(&mut self.send, seq, set, addr);
        let replies = self
            .exchange(seq..seq + 1, |reply| matches!(reply, Reply::Ack { .. }))
            .map_err(|source| kernel(set, OPERATION, source))?;
        let mut found = false;
        for reply in replies {
            match reply {
                Reply::Error { errno: ENOENT, .. } => return Ok(false),
                Reply::Error { errno, .. } => return Err(errno_error(set, OPERATION, errno)),
                Reply::Elements { elements, .. } => {
                    found |= elements.iter().any(|element| element.addr == Some(addr));
                }
                _ => {}
            }
        }
        Ok(found)
    }

    /// The elements of `set`, with their timeouts and the time each has left.
    ///
    /// # Errors
    ///
    /// [`NftError::NoSuchSet`], [`NftError::PermissionDenied`] or [`NftError::Kernel`].
    pub fn elements(&mut self, set: &NftSetRef) -> Result<Vec<SetElement>, NftError> {
        const OPERATION: &str = "listing the elements";
        let seq = self.take_seqs(1);
        self.send.clear();
        wire::get_elements_request(&mut self.send, seq, set);
        let replies = self
            .exchange(seq..seq + 1, |reply| matches!(reply, Reply::Done { .. }))
            .map_err(|source| kernel(set, OPERATION, source))?;
        let mut out = Vec::new();
        for reply in replies {
            match reply {
                Reply::Error { errno, .. } => return Err(errno_error(set, OPERATION, errno)),
                Reply::Elements { elements, .. } => out.extend(elements),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Sends the batch in `self.send` (sequence numbers `seqs`, `acks` of its messages ask
    /// for an acknowledgement) and waits until all are acknowledged or one fails.
    fn batch(
        &mut self,
        set: &NftSetRef,
        seqs: Range<u32>,
        acks: usize,
    ) -> Result<Option<i32>, NftError> {
        let mut answered = 0;
        let replies = self
            .exchange(seqs, |reply| {
                answered += usize::from(matches!(reply, Reply::Ack { .. }));
                answered == acks
            })
            .map_err(|source| kernel(set, "adding an element", source))?;
        Ok(replies.into_iter().find_map(|reply| match reply {
            Reply::Error { errno, .. } => Some(errno),
            _ => None,
        }))
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    fn take_seqs(&mut self, n: u32) -> u32 {
        // Never wrap inside a request: the ranges below are plain `Range<u32>`.
        if self.next_seq.checked_add(n).is_none() {
            self.next_seq = 1;
        }
        let first = self.next_seq;
        self.next_seq += n;
        first
    }

    /// Sends `self.send` and collects the replies to sequence numbers in `seqs` until
    /// `done` says so or an error arrives. Replies to earlier requests (left over after a
    /// failed batch) are skipped.
    fn exchange(
        &mut self,
        seqs: Range<u32>,
        mut done: impl FnMut(&Reply) -> bool,
    ) -> io::Result<Vec<Reply>> {
        let sent = self.socket.send(&self.send, 0)?;
        if sent != self.send.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write on the netlink socket",
            ));
        }
        let mut replies = Vec::new();
        loop {
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(REPLY_TIMEOUT).unwrap_or(PollTimeout::MAX);
            let ready = match poll(&mut fds, timeout) {
                Ok(ready) => ready,
                // A signal (SIGHUP, SIGCHLD…) is not a failure: wait again.
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            };
            if ready == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply from the kernel",
                ));
            }
            self.recv.clear();
            let len = match self.socket.recv(&mut self.recv, 0) {
                Ok(len) => len,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if len > self.recv.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink reply larger than the receive buffer",
                ));
            }
            let parsed = wire::parse_replies(&self.recv)
                .map_err(|detail| io::Error::new(io::ErrorKind::InvalidData, detail))?;
            for reply in parsed {
                if !seqs.contains(&reply.seq()) {
                    continue;
                }
                let stop = matches!(reply, Reply::Error { .. }) || done(&reply);
                replies.push(reply);
                if stop {
                    return Ok(replies);
                }
            }
        }
    }
}

fn kernel(set: &NftSetRef, operation: &'static str, source: io::Error) -> NftError {
    NftError::Kernel {
        set: set.clone(),
        operation,
        source,
    }
}

fn errno_error(set: &NftSetRef, operation: &'static str, errno: i32) -> NftError {
    match errno {
        ENOENT => NftError::NoSuchSet { set: set.clone() },
        EPERM | EACCES => NftError::PermissionDenied { set: set.clone() },
        _ => kernel(set, operation, io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_do_not_repeat_the_set() {
        let set = NftSetRef::new(knock_core::NftFamily::Inet, "knockd", "ssh4");
        let errors = [
            NftError::NoSuchSet { set: set.clone() },
            NftError::PermissionDenied { set: set.clone() },
            NftError::NoTimeoutFlag { set: set.clone() },
            NftError::ZeroTimeout { set: set.clone() },
            kernel(&set, "adding an element", io::Error::from_raw_os_error(28)),
        ];
        for error in &errors {
            assert!(error.to_string().contains("inet knockd ssh4"), "{error}");
            assert!(!error.reason().contains("ssh4"), "{}", error.reason());
            assert!(!error.reason().is_empty());
        }
        assert_eq!(errors[0].reason(), "no such table or set");
        assert!(errors[4].reason().starts_with("adding an element failed: "));
    }

    #[test]
    fn refresh_strategy_from_the_kernel_release() {
        assert_eq!(Refresh::for_release("6.12.0"), Some(Refresh::ReAdd));
        assert_eq!(
            Refresh::for_release("6.18.44-fc-v657\n"),
            Some(Refresh::ReAdd)
        );
        assert_eq!(
            Refresh::for_release("7.0.0-30-generic"),
            Some(Refresh::ReAdd)
        );
        assert_eq!(Refresh::for_release("6.11.9"), Some(Refresh::Replace));
        assert_eq!(
            Refresh::for_release("6.1.0-13-amd64"),
            Some(Refresh::Replace)
        );
        assert_eq!(
            Refresh::for_release("5.15.0-91-generic"),
            Some(Refresh::Replace)
        );
        assert_eq!(Refresh::for_release("garbage"), None);
        assert_eq!(Refresh::for_release(""), None);
    }
}
