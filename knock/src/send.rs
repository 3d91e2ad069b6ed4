//! Sending knocks: name resolution, one socket per hit, the delay between hits.

use core::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::time::Duration;

use knock_core::{Knock, Protocol};
use socket2::{Domain, SockAddr, Socket, Type};

/// Which address family to knock over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressFamily {
    /// The first address the resolver returns, whatever its family (`getaddrinfo` order).
    #[default]
    Any,
    /// IPv4 only (`-4`).
    Ipv4,
    /// IPv6 only (`-6`).
    Ipv6,
}

impl AddressFamily {
    /// Whether `address` belongs to this family.
    #[must_use]
    pub const fn admits(self, address: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Ipv4 => address.is_ipv4(),
            Self::Ipv6 => address.is_ipv6(),
        }
    }

    /// The family of `address`.
    #[must_use]
    pub const fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        })
    }
}

/// How to send a sequence: delay between hits and where the knocks leave from.
///
/// Build it with [`KnockOptions::default`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// let options = knock::KnockOptions::default()
///     .with_delay(Duration::from_millis(200))
///     .with_source_address("127.0.0.1".parse().unwrap());
/// assert_eq!(options.delay, Duration::from_millis(200));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KnockOptions {
    /// Pause between two hits (never after the last one). knock 0.8's `-d`.
    pub delay: Duration,
    /// Bind every socket to this local address before sending (`--source-address`).
    pub source_address: Option<IpAddr>,
    /// Bind every socket to this network device, `SO_BINDTODEVICE` (`--interface`). It also
    /// supplies the scope of an IPv6 link-local destination. Linux only: elsewhere sending
    /// fails with [`KnockError::BindInterface`] ("not supported on this platform").
    pub interface: Option<String>,
    /// The scope (interface index) of an IPv6 destination, from `HOST%SCOPE` (see
    /// [`resolve_scoped`]); 0: none. A link-local destination needs one (or `interface`):
    /// without it the kernel refuses to send (`EINVAL`).
    pub scope_id: u32,
}

impl KnockOptions {
    /// The same options with `delay` between hits.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The same options, sending from `address`.
    #[must_use]
    pub fn with_source_address(mut self, address: IpAddr) -> Self {
        self.source_address = Some(address);
        self
    }

    /// The same options, with `scope_id` for an IPv6 destination (0: none).
    #[must_use]
    pub fn with_scope_id(mut self, scope_id: u32) -> Self {
        self.scope_id = scope_id;
        self
    }

    /// The same options, sending through the device named `interface`.
    #[must_use]
    pub fn with_interface(mut self, interface: impl Into<String>) -> Self {
        self.interface = Some(interface.into());
        self
    }
}

/// One hit about to be sent, as reported to the progress callback of [`knock_with`].
///
/// Displays as knock 0.8's verbose line without the leading `hitting `: `tcp 10.0.0.2:7000`,
/// and for IPv6 `udp fd00::2:8000` (0.8 prints the address without brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hit {
    /// Position in the sequence, from 0.
    pub index: usize,
    /// The knock: port and protocol.
    pub knock: Knock,
    /// The destination address (the same for every hit of a sequence).
    pub address: IpAddr,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{}",
            self.knock.protocol, self.address, self.knock.port
        )
    }
}

/// Why a knock could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnockError {
    /// The resolver failed (unknown host, no network, …).
    #[error("failed to resolve hostname '{host}': {source}")]
    Resolve {
        /// The name as given.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// The host has addresses, but none in the requested family.
    #[error("hostname '{host}' has no {family} address")]
    NoAddressInFamily {
        /// The name as given.
        host: String,
        /// The family asked for.
        family: AddressFamily,
    },
    /// The source address and the destination are of different families.
    #[error(
        "source address {source_address} cannot reach {destination}: different address families"
    )]
    FamilyMismatch {
        /// The `--source-address`.
        source_address: IpAddr,
        /// The destination.
        destination: IpAddr,
    },
    /// An empty sequence: nothing to send.
    #[error("the knock sequence is empty")]
    EmptySequence,
    /// A knock on port 0, which no server can see as a knock.
    #[error("port 0 at position {index} of the sequence is not a valid port")]
    PortZero {
        /// Position in the sequence, from 0.
        index: usize,
    },
    /// The socket could not be created.
    #[error("cannot open {protocol} socket: {source}")]
    Socket {
        /// TCP or UDP.
        protocol: Protocol,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Binding to the source address failed (typically: not a local address).
    #[error("cannot send from {address}: {source}")]
    BindAddress {
        /// The `--source-address`.
        address: IpAddr,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Binding to the network device failed (typically: no such device).
    #[error("cannot send through interface '{interface}': {source}")]
    BindInterface {
        /// The `--interface`.
        interface: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The hit itself failed: network or host unreachable, firewall refused, ….
    #[error("cannot knock {protocol} {destination}: {source}")]
    Send {
        /// TCP or UDP.
        protocol: Protocol,
        /// Address and port of the hit.
        destination: SocketAddr,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// Resolves `host` once: the first address of `family` in resolver order.
///
/// A numeric address is used as is (after the family check). Resolving once, not per port as
/// knock 0.8 did, keeps a round-robin name from spreading one sequence over several servers.
///
/// # Errors
/// [`KnockError::Resolve`] when the resolver fails, [`KnockError::NoAddressInFamily`] when
/// it returns no address of `family`.
pub fn resolve(host: &str, family: AddressFamily) -> Result<IpAddr, KnockError> {
    resolve_scoped(host, family).map(|(address, _)| address)
}

/// [`resolve`], also returning the IPv6 scope id (interface index) of `HOST%SCOPE`
/// (`fe80::2%eth0` or `fe80::2%3`; 0 when none): pass it as [`KnockOptions::scope_id`].
/// knock used to drop it, so a link-local destination failed with `EINVAL` (issue 10
/// item 17).
///
/// # Errors
/// As [`resolve`]; an unknown scope name is a [`KnockError::Resolve`].
pub fn resolve_scoped(host: &str, family: AddressFamily) -> Result<(IpAddr, u32), KnockError> {
    let candidates: Vec<(IpAddr, u32)> = match host.parse::<IpAddr>() {
        Ok(address) => vec![(address, 0)],
        Err(_) => (host, 0)
            .to_socket_addrs()
            .map_err(|source| KnockError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .map(|socket_address| match socket_address {
                SocketAddr::V4(a) => (IpAddr::V4(*a.ip()), 0),
                SocketAddr::V6(a) => (IpAddr::V6(*a.ip()), a.scope_id()),
            })
            .collect(),
    };
    candidates
        .into_iter()
        .find(|(address, _)| family.admits(*address))
        .ok_or_else(|| KnockError::NoAddressInFamily {
            host: host.to_owned(),
            family,
        })
}

/// Sends `sequence` to `target`: one TCP SYN or one UDP datagram per knock, `options.delay`
/// apart.
///
/// # Errors
/// The first failure; the hits before it were sent. Everything that can be checked before
/// sending (empty sequence, port 0, source/destination family mismatch) is checked first, so
/// such errors send nothing.
pub fn knock(target: IpAddr, sequence: &[Knock], options: &KnockOptions) -> Result<(), KnockError> {
    knock_with(target, sequence, options, |_| {})
}

/// Like [`knock`], calling `on_hit` just before each hit is sent (the `knock -v` output).
///
/// # Errors
/// As [`knock`].
pub fn knock_with(
    target: IpAddr,
    sequence: &[Knock],
    options: &KnockOptions,
    mut on_hit: impl FnMut(&Hit),
) -> Result<(), KnockError> {
    validate(target, sequence, options)?;
    run_sequence(
        sequence,
        options.delay,
        std::thread::sleep,
        |index, knock| {
            let hit = Hit {
                index,
                knock: *knock,
                address: target,
            };
            on_hit(&hit);
            let destination = match target {
                IpAddr::V6(v6) if options.scope_id != 0 => {
                    SocketAddr::V6(SocketAddrV6::new(v6, knock.port, 0, options.scope_id))
                }
                _ => SocketAddr::new(target, knock.port),
            };
            send_knock(destination, knock.protocol, options)
        },
    )
}

fn validate(target: IpAddr, sequence: &[Knock], options: &KnockOptions) -> Result<(), KnockError> {
    if sequence.is_empty() {
        return Err(KnockError::EmptySequence);
    }
    if let Some(index) = sequence.iter().position(|knock| knock.port == 0) {
        return Err(KnockError::PortZero { index });
    }
    if let Some(source_address) = options.source_address
        && source_address.is_ipv4() != target.is_ipv4()
    {
        return Err(KnockError::FamilyMismatch {
            source_address,
            destination: target,
        });
    }
    Ok(())
}

/// Runs `hit` for each knock, sleeping `delay` between hits but not after the last one
/// (knock 0.8 also slept after the last hit, delaying whatever the user runs next).
fn run_sequence<E>(
    sequence: &[Knock],
    delay: Duration,
    mut sleep: impl FnMut(Duration),
    mut hit: impl FnMut(usize, &Knock) -> Result<(), E>,
) -> Result<(), E> {
    for (index, knock) in sequence.iter().enumerate() {
        if index > 0 && !delay.is_zero() {
            sleep(delay);
        }
        hit(index, knock)?;
    }
    Ok(())
}

/// Sends one hit to `destination`, exactly as knock 0.8 does.
///
/// * TCP: a non-blocking `connect` (one kernel-generated SYN; `EINPROGRESS` is the expected
///   answer), then the socket is closed at once, so the kernel neither retransmits nor
///   completes a handshake.
/// * UDP: one datagram whose payload is a single NUL byte.
///
/// `options.delay` is not used here.
///
/// # Errors
/// Socket creation, binding (`source_address`, `interface`) or sending failed. Unlike 0.8, an
/// unreachable network is an error.
pub fn send_knock(
    destination: SocketAddr,
    protocol: Protocol,
    options: &KnockOptions,
) -> Result<(), KnockError> {
    let socket = open_socket(destination, protocol, options)?;
    let send_error = |source| KnockError::Send {
        protocol,
        destination,
        source,
    };
    let peer = SockAddr::from(destination);
    match protocol {
        Protocol::Tcp => {
            socket.set_nonblocking(true).map_err(send_error)?;
            match socket.connect(&peer) {
                Ok(()) => Ok(()),
                Err(error) if crate::platform::syn_was_sent(&error) => Ok(()),
                Err(error) => Err(send_error(error)),
            }
            // `socket` is dropped (closed) here: the SYN is out, nothing else follows.
        }
        Protocol::Udp => socket.send_to(&[0], &peer).map(drop).map_err(send_error),
    }
}

/// A socket for `protocol` towards `destination`, bound as `options` say.
fn open_socket(
    destination: SocketAddr,
    protocol: Protocol,
    options: &KnockOptions,
) -> Result<Socket, KnockError> {
    let socket_type = match protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let socket = Socket::new(Domain::for_address(destination), socket_type, None)
        .map_err(|source| KnockError::Socket { protocol, source })?;
    if let Some(interface) = &options.interface {
        crate::platform::bind_device(&socket, interface).map_err(|source| {
            KnockError::BindInterface {
                interface: interface.clone(),
                source,
            }
        })?;
    }
    if let Some(address) = options.source_address {
        socket
            .bind(&SockAddr::from(SocketAddr::new(address, 0)))
            .map_err(|source| KnockError::BindAddress { address, source })?;
    }
    Ok(socket)
}

/// Sends one UDP datagram carrying `payload` to `destination` (an SPA packet), from the
/// source address and interface of `options` (`options.delay` is not used).
///
/// # Errors
/// Socket creation, binding or sending failed.
pub fn send_datagram(
    destination: SocketAddr,
    payload: &[u8],
    options: &KnockOptions,
) -> Result<(), KnockError> {
    let socket = open_socket(destination, Protocol::Udp, options)?;
    socket
        .send_to(payload, &SockAddr::from(destination))
        .map(drop)
        .map_err(|source| KnockError::Send {
            protocol: Protocol::Udp,
            destination,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn delay_only_between_hits() {
        let sequence = [Knock::tcp(1), Knock::udp(2), Knock::tcp(3)];
        let mut events = Vec::new();
        let events_cell = core::cell::RefCell::new(&mut events);
        run_sequence::<()>(
            &sequence,
            Duration::from_millis(5),
            |d| {
                events_cell
                    .borrow_mut()
                    .push(format!("sleep {}", d.as_millis()))
            },
            |i, k| {
                events_cell.borrow_mut().push(format!("hit {i} {}", k.port));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            events,
            ["hit 0 1", "sleep 5", "hit 1 2", "sleep 5", "hit 2 3"]
        );
    }

    #[test]
    fn zero_delay_never_sleeps_and_error_stops_the_sequence() {
        let sequence = [Knock::tcp(1), Knock::tcp(2), Knock::tcp(3)];
        let mut hits = Vec::new();
        let result = run_sequence(
            &sequence,
            Duration::ZERO,
            |_| panic!("slept with a zero delay"),
            |i, _| {
                hits.push(i);
                if i == 1 { Err("boom") } else { Ok(()) }
            },
        );
        assert_eq!(result, Err("boom"));
        assert_eq!(hits, [0, 1]);
    }

    #[test]
    fn validation_errors_send_nothing() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let options = KnockOptions::default();
        assert!(matches!(
            validate(v4, &[], &options),
            Err(KnockError::EmptySequence)
        ));
        assert!(matches!(
            validate(v4, &[Knock::tcp(1), Knock::udp(0)], &options),
            Err(KnockError::PortZero { index: 1 })
        ));
        let from_v6 = options.clone().with_source_address(v6);
        let error = validate(v4, &[Knock::tcp(1)], &from_v6).unwrap_err();
        assert!(matches!(error, KnockError::FamilyMismatch { .. }));
        assert_eq!(
            error.to_string(),
            "source address ::1 cannot reach 127.0.0.1: different address families"
        );
        assert!(validate(v6, &[Knock::tcp(1)], &from_v6).is_ok());
    }

    #[test]
    fn resolve_literals_and_families() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(resolve("127.0.0.1", AddressFamily::Any).unwrap(), v4);
        assert_eq!(resolve("127.0.0.1", AddressFamily::Ipv4).unwrap(), v4);
        let error = resolve("127.0.0.1", AddressFamily::Ipv6).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hostname '127.0.0.1' has no IPv6 address"
        );
        let error = resolve("::1", AddressFamily::Ipv4).unwrap_err();
        assert_eq!(error.to_string(), "hostname '::1' has no IPv4 address");
        assert_eq!(
            resolve("localhost", AddressFamily::Ipv4).unwrap(),
            v4,
            "/etc/hosts maps localhost to 127.0.0.1"
        );
    }

    #[test]
    fn resolve_failure_names_the_host() {
        // `.invalid` is reserved (RFC 2606): it never resolves.
        let error = resolve("no-such-host.invalid", AddressFamily::Any).unwrap_err();
        assert!(matches!(error, KnockError::Resolve { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("failed to resolve hostname 'no-such-host.invalid': "),
            "{error}"
        );
    }

    #[test]
    fn hit_displays_like_knock_0_8() {
        let hit = Hit {
            index: 0,
            knock: Knock::tcp(7000),
            address: "10.0.0.2".parse().unwrap(),
        };
        assert_eq!(hit.to_string(), "tcp 10.0.0.2:7000");
        let hit = Hit {
            index: 1,
            knock: Knock::udp(8000),
            address: "fd00::2".parse().unwrap(),
        };
        assert_eq!(hit.to_string(), "udp fd00::2:8000");
    }

    #[test]
    fn udp_hit_is_one_nul_byte_on_loopback() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let destination = receiver.local_addr().unwrap();
        send_knock(destination, Protocol::Udp, &KnockOptions::default()).unwrap();
        let mut buffer = [0xff_u8; 16];
        let (length, from) = receiver.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], &[0]);
        assert_eq!(from.ip(), destination.ip());
    }

    #[test]
    fn tcp_hit_reaches_a_listener_on_loopback() {
        // A listening socket sees the SYN: the kernel completes the handshake into the
        // backlog even though the client socket is already closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let destination = listener.local_addr().unwrap();
        send_knock(destination, Protocol::Tcp, &KnockOptions::default()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match listener.accept() {
                Ok(_) => break,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the listener saw no connection within 10 s"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(error) => panic!("accept: {error}"),
            }
        }
        // A closed port: the RST may come back before connect returns; still a sent SYN.
        drop(listener);
        send_knock(destination, Protocol::Tcp, &KnockOptions::default()).unwrap();
    }

    #[test]
    fn bind_errors_name_what_failed() {
        let destination: SocketAddr = "127.0.0.1:9".parse().unwrap();
        // 192.0.2.0/24 is TEST-NET-1: never a local address, so bind fails before sending.
        let options = KnockOptions::default().with_source_address("192.0.2.1".parse().unwrap());
        let error = send_knock(destination, Protocol::Udp, &options).unwrap_err();
        assert!(matches!(error, KnockError::BindAddress { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("cannot send from 192.0.2.1: "),
            "{error}"
        );
        let options = KnockOptions::default().with_interface("nosuchif0");
        let error = send_knock(destination, Protocol::Tcp, &options).unwrap_err();
        assert!(
            matches!(error, KnockError::BindInterface { .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("cannot send through interface 'nosuchif0': "),
            "{error}"
        );
    }
}
