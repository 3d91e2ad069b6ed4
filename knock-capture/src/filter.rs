//! The kernel (BPF) filter text built from the doors.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use knock_core::{Door, LocalAddresses, Protocol};

/// A filter that compiles on every link type and matches no packet: used when there is no
/// door, so the kernel hands nothing to user space. (`less 0` is a length test, "at most 0
/// bytes", which no frame satisfies; libpcap's optimiser accepts it, whereas a contradiction
/// such as `ip and not ip` fails with "expression rejects all packets".)
pub const MATCH_NOTHING: &str = "less 0";

/// IPv6 next-header values of extension headers the decoder walks (hop-by-hop 0, routing 43,
/// fragment 44, authentication 51, destination options 60). libpcap's `tcp`/`udp` primitives
/// only look at the fixed header's next-header field, so packets whose chain starts with one
/// of these are let through and left to the decoder.
const IPV6_EXTENSION_HEADERS: [u8; 5] = [0, 43, 44, 51, 60];

/// The most port terms (`dst port N` or `dst portrange A-B`) per protocol and family. Beyond
/// this, the closest ports are merged into ranges (admitting the ports between them too): the
/// filter stays a superset, its size and libpcap's compile time stay bounded whatever the
/// number of doors (1 000 doors with one term per port compiled in about 16 s into 9 251
/// instructions, beyond the kernel's 4 096), and building it is O(n log n) in the ports.
pub const MAX_PORT_TERMS: usize = 24;

/// The most `dst host` terms per family. Beyond this the family has no destination
/// restriction (a superset; the core checks each door's destination).
pub const MAX_HOST_TERMS: usize = 16;

/// What one address family of the filter must admit.
#[derive(Default)]
struct FamilyClause {
    /// Some door of this family exists.
    used: bool,
    /// Some door accepts any destination of this family (no `Target`, no known local
    /// address): no `dst host` restriction.
    any_destination: bool,
    hosts: BTreeSet<IpAddr>,
    tcp_ports: BTreeSet<u16>,
    udp_ports: BTreeSet<u16>,
}

/// Builds the libpcap filter expression for `doors`, given the local addresses (empty: not
/// known).
///
/// The result is a **superset** of what knock-core admits, never the decision itself: per
/// address family, the protocols and destination ports of all doors' steps (deduplicated),
/// restricted to the doors' `Target`s and to the local addresses when those are known. It
/// has no TCP flag tests (libpcap's `tcp[]` accessors do not work over IPv6; the core checks
/// flags) and lets IPv6 packets with extension headers through (see the decoder).
///
/// SPA doors (`SPA_*`) admit their UDP `SPA_Port` to the same destinations.
///
/// Pass the doors with the sequence they currently accept (for one-time-sequence doors, the
/// active sequence). With no door steps at all the result is [`MATCH_NOTHING`].
///
/// The text compiles with libpcap on every [`LinkType`](crate::LinkType). Refresh it when
/// the local addresses change (see `CaptureEvent::AddressesChanged`).
///
/// Size: at most [`MAX_PORT_TERMS`] port terms per protocol and family (nearby ports are
/// merged into `portrange`s beyond that) and at most [`MAX_HOST_TERMS`] hosts per family (no
/// host restriction beyond that), so the text and the compiled program are bounded whatever
/// the number of doors, and the build is O(n log n) in the doors' steps.
///
/// VLAN tags: the plain `tcp`/`udp` primitives do not look past a tag left inline in the
/// frame (the inner tag of QinQ: Linux strips only the outer one); the live capture installs
/// this text wrapped by `for_link`, which also admits it behind up to three tags on Ethernet.
///
/// Limits (all on the side of admitting too much or of links Linux does not produce live):
/// libpcap built on Linux tests `ip6`
/// on BSD NULL/LOOP links against Linux's `AF_INET6` (10), so IPv6 in BSD savefiles is not
/// matched — replay those without a filter.
#[must_use]
pub fn filter_expression(doors: &[Door], local: &[IpAddr]) -> String {
    let mut v4 = FamilyClause::default();
    let mut v6 = FamilyClause::default();
    let local_v4: Vec<IpAddr> = local.iter().copied().filter(IpAddr::is_ipv4).collect();
    let local_v6: Vec<IpAddr> = local.iter().copied().filter(IpAddr::is_ipv6).collect();
    for door in doors
        .iter()
        .filter(|d| !d.sequence.is_empty() || d.spa.is_some())
    {
        add_door(&mut v4, door, &local_v4, true);
        add_door(&mut v6, door, &local_v6, false);
    }
    let mut parts = Vec::new();
    if v4.used {
        parts.push(family_expression("ip", &v4, false));
    }
    if v6.used {
        parts.push(family_expression("ip6", &v6, true));
    }
    if parts.is_empty() {
        return MATCH_NOTHING.to_owned();
    }
    parts.join(" or ")
}

/// `expression` as installed on a live interface of link type `link`: on Ethernet, also
/// behind up to three VLAN tags (802.1Q, 802.1ad QinQ: as many as the decoder walks), as
/// `E or (vlan and (E or (vlan and (E or (vlan and E)))))`. libpcap's first `vlan` matches a
/// tag the kernel stripped into the packet's metadata as well as an inline one, and each
/// `vlan` moves the offsets of what follows it by one tag (issue 10 item 10: QinQ was
/// decoded in `--replay` but dropped live). Other links (and the empty expression: every
/// packet) are unchanged; `vlan` does not compile on them.
#[cfg(feature = "libpcap")]
pub(crate) fn for_link(expression: &str, link: crate::LinkType) -> String {
    if expression.is_empty() || link != crate::LinkType::Ethernet {
        return expression.to_owned();
    }
    let mut out = format!("({expression})");
    for _ in 0..crate::decode::MAX_VLAN_TAGS {
        out = format!("({expression}) or (vlan and ({out}))");
    }
    out
}

/// The capture-side view of where knocks may be addressed: the local addresses known so far
/// (restricted to IPv4 with `-4`), the destinations the matcher accepts, and the kernel
/// filter for a set of doors.
///
/// A daemon keeps one, passes it the addresses it discovers
/// ([`set_addresses`](Self::set_addresses), e.g. on `CaptureEvent::AddressesChanged`) and
/// asks it, whenever the addresses or the doors' sequences change (one-time sequences), for
/// the matcher's [`local`](Self::local) destinations and the [`filter`](Self::filter) text
/// to install. Plain data, no I/O.
///
/// ```
/// use knock_capture::Destinations;
/// use knock_core::{Config, LocalAddresses};
///
/// let doors = Config::parse("[d]\nsequence = 7000\ncommand = true\n")?.config.doors;
/// let mut destinations = Destinations::new(true);
/// // No address known yet: every destination counts (capture sees only this host's
/// // packets anyway).
/// assert_eq!(destinations.local(), LocalAddresses::Any);
/// destinations.set_addresses(vec!["10.0.0.1".parse()?, "fd00::1".parse()?]);
/// // `-4`: the IPv6 address is dropped.
/// assert_eq!(destinations.addresses(), ["10.0.0.1".parse::<std::net::IpAddr>()?]);
/// // The IPv4 part names the address; the capture installs it as `ip and (…)` with `-4`.
/// assert!(destinations.filter(&doors).starts_with("(ip and (dst host 10.0.0.1) and (tcp dst port 7000))"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations {
    ipv4_only: bool,
    addresses: Vec<IpAddr>,
}

impl Destinations {
    /// No address known yet; `ipv4_only` (`-4`) drops IPv6 addresses.
    #[must_use]
    pub const fn new(ipv4_only: bool) -> Self {
        Self {
            ipv4_only,
            addresses: Vec::new(),
        }
    }

    /// Replaces the known local addresses (IPv6 ones are dropped with `ipv4_only`).
    pub fn set_addresses(&mut self, mut addresses: Vec<IpAddr>) {
        if self.ipv4_only {
            addresses.retain(IpAddr::is_ipv4);
        }
        self.addresses = addresses;
    }

    /// The known local addresses.
    #[must_use]
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The destinations the matcher should accept for doors without `Target`: the known
    /// addresses, or [`LocalAddresses::Any`] while none is known (an interface without
    /// address, `any`): capture is non-promiscuous and incoming-only, so the packets seen are
    /// addressed to this host anyway (knockd 0.8 accepted none then, bug B4).
    #[must_use]
    pub fn local(&self) -> LocalAddresses {
        if self.addresses.is_empty() {
            LocalAddresses::Any
        } else {
            LocalAddresses::List(self.addresses.clone())
        }
    }

    /// The kernel filter for `doors` (with their current sequences) and these addresses:
    /// [`filter_expression`]. With `ipv4_only` the capture restricts it further to IPv4 when
    /// installing it (`CaptureConfig::ipv4_only`).
    #[must_use]
    pub fn filter(&self, doors: &[Door]) -> String {
        filter_expression(doors, &self.addresses)
    }
}

/// Adds what `door` admits in one family (`local`: that family's local addresses).
fn add_door(clause: &mut FamilyClause, door: &Door, local: &[IpAddr], ipv4: bool) {
    match door.target {
        Some(target) if target.is_ipv4() == ipv4 => {
            clause.hosts.insert(target);
        }
        // A door whose target is of the other family admits nothing of this one.
        Some(_) => return,
        None if local.is_empty() => clause.any_destination = true,
        None => clause.hosts.extend(local.iter().copied()),
    }
    clause.used = true;
    if let Some(totp) = &door.totp {
        // A time-based door: its `sequence` lists base ports; every code's step lies in
        // its step's range, so the filter never changes with the time step.
        for (protocol, low, high) in
            knock_core::totp::port_ranges(totp.params.digits, &door.sequence)
        {
            let ports = match protocol {
                Protocol::Tcp => &mut clause.tcp_ports,
                Protocol::Udp => &mut clause.udp_ports,
            };
            ports.extend(low..=high);
        }
        return;
    }
    for knock in &door.sequence {
        match knock.protocol {
            Protocol::Tcp => clause.tcp_ports.insert(knock.port),
            Protocol::Udp => clause.udp_ports.insert(knock.port),
        };
    }
    // An SPA door: its UDP port (`SPA_Port`), to the same destinations.
    if let Some(spa) = &door.spa {
        clause.udp_ports.insert(spa.port);
    }
}

/// The UDP ports whose datagrams must be delivered with their data: the `SPA_Port`s of
/// the SPA doors, sorted and deduplicated (for `CaptureConfig::payload_ports`).
#[must_use]
pub fn payload_ports(doors: &[Door]) -> Vec<u16> {
    let ports: BTreeSet<u16> = doors
        .iter()
        .filter_map(|d| d.spa.as_ref().map(|s| s.port))
        .collect();
    ports.into_iter().collect()
}

/// `ports` as at most `max` inclusive ranges covering them all: adjacent ports always merge;
/// if more than `max` runs remain, the `max - 1` widest gaps are kept and the others filled.
fn port_ranges(ports: &BTreeSet<u16>, max: usize) -> Vec<(u16, u16)> {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for &port in ports {
        match runs.last_mut() {
            Some((_, high)) if u32::from(*high) + 1 == u32::from(port) => *high = port,
            _ => runs.push((port, port)),
        }
    }
    if runs.len() <= max || max == 0 {
        return runs;
    }
    // The gap before each run but the first, with the run's index; keep the widest ones.
    let mut gaps: Vec<(u16, usize)> = runs
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].0 - w[0].1, i + 1))
        .collect();
    let keep = max - 1;
    gaps.select_nth_unstable_by(keep, |a, b| b.cmp(a));
    let mut starts: Vec<usize> = gaps[..keep].iter().map(|&(_, i)| i).collect();
    starts.sort_unstable();
    let mut merged = Vec::with_capacity(max);
    let mut begin = 0;
    for start in starts.into_iter().chain([runs.len()]) {
        merged.push((runs[begin].0, runs[start - 1].1));
        begin = start;
    }
    merged
}

fn family_expression(family: &str, clause: &FamilyClause, ipv6: bool) -> String {
    let mut out = format!("({family}");
    if !clause.any_destination && clause.hosts.len() <= MAX_HOST_TERMS {
        out.push_str(" and (");
        for (i, host) in clause.hosts.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            let _ = write!(out, "dst host {host}");
        }
        out.push(')');
    }
    out.push_str(" and (");
    let mut first = true;
    let mut alternative = |out: &mut String, text: std::fmt::Arguments<'_>| {
        if !first {
            out.push_str(" or ");
        }
        first = false;
        let _ = out.write_fmt(text);
    };
    for (protocol, ports) in [("tcp", &clause.tcp_ports), ("udp", &clause.udp_ports)] {
        for (low, high) in port_ranges(ports, MAX_PORT_TERMS) {
            if low == high {
                alternative(&mut out, format_args!("{protocol} dst port {low}"));
            } else {
                alternative(
                    &mut out,
                    format_args!("{protocol} dst portrange {low}-{high}"),
                );
            }
        }
    }
    if ipv6 {
        for next in IPV6_EXTENSION_HEADERS {
            alternative(&mut out, format_args!("ip6[6] == {next}"));
        }
    }
    out.push_str("))");
    out
}
