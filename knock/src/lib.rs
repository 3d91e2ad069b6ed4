//! knock: the port-knock client, as a library and as the `knock` program.
//!
//! It sends a *sequence* of knocks to one host: one TCP SYN or one UDP datagram per port,
//! exactly as knock 0.8 does on the wire, so a knockd server cannot tell the two apart:
//!
//! * a TCP hit is a non-blocking `connect` closed at once: a single kernel-generated SYN,
//!   no retransmission, no handshake;
//! * a UDP hit is one datagram whose payload is a single NUL byte.
//!
//! Compared with knock 0.8 it fixes the traps: the host is resolved once (a round-robin name
//! cannot spread one sequence over several servers), `:UDP` in any case means UDP, port 0,
//! ports above 65535 and unknown protocols are errors, the delay is not slept after the last
//! hit, and a failed send (unreachable network, …) is an error instead of a silent success.
//! It adds `--door` (the sequence of a door in a knockd.conf, including the active
//! one-time sequence and the current code of a time-based (TOTP) door, or its code at
//! `--totp-time`), `--source-address` and `--interface`.
//!
//! For an SPA door (`SPA_*` directives, see [`knock_core::spa`]), `--door` sends one
//! fwknop-compatible single packet authorization datagram instead (see [`spa`]): UDP to the
//! door's `SPA_Port`, asking for the door's `SPA_Access` (or `--access`) for the packet's
//! source address (or `--allow`). fwknopd 2.6 accepts these packets.
//!
//! # Example
//!
//! Knock on three UDP ports of the local host, 10 ms apart:
//!
//! ```
//! use std::time::Duration;
//! use knock::{Knock, KnockOptions};
//!
//! let target = knock::resolve("127.0.0.1", knock::AddressFamily::Any)?;
//! let sequence = [Knock::udp(7000), Knock::udp(8000), Knock::udp(9000)];
//! let options = KnockOptions::default().with_delay(Duration::from_millis(10));
//! knock::knock(target, &sequence, &options)?;
//! # Ok::<(), knock::KnockError>(())
//! ```
//!
//! Command-line style port arguments parse with [`PortSpec`]:
//!
//! ```
//! let spec: knock::PortSpec = "8000:UDP".parse()?;
//! assert_eq!(spec.resolve(knock::Protocol::Tcp), knock::Knock::udp(8000));
//! assert!("70000".parse::<knock::PortSpec>().is_err());
//! # Ok::<(), knock::PortSpecError>(())
//! ```
//!
//! # Platforms
//!
//! Linux, macOS, the BSDs and Windows. Everything platform-specific is in one private module,
//! `platform`: binding to a device (`--interface`, `SO_BINDTODEVICE`) is Linux-only and
//! fails elsewhere with "not supported on this platform"; which `connect` errors mean "SYN
//! sent" differs between Unix and Windows.
//!
//! # What it does not do
//!
//! * No raw sockets and no crafted packets: the kernel builds every SYN (with its usual
//!   options), so no custom TCP flags, payloads or spoofed sources.
//! * No service names (`ssh`): ports are numbers.
//! * No waiting for an answer: a knock is fire-and-forget, and a lost packet is not noticed.
//!   Errors the kernel reports at once (no route, unreachable host, local firewall) are.
//! * It never writes to a one-time-sequence file: the server marks a sequence used.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
mod door;
mod platform;
mod send;
pub mod spa;
mod spec;

pub use door::{
    DoorError, DoorPlan, KnockTime, load_door, load_door_sequence, load_door_sequence_at,
};
pub use knock_core::{Knock, Protocol};
pub use send::{
    AddressFamily, Hit, KnockError, KnockOptions, knock, knock_with, resolve, resolve_scoped,
    send_datagram, send_knock,
};
pub use spec::{PortSpec, PortSpecError, parse_protocol};
