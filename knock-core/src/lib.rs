//! knock-core: the heart of a port-knocking server, without any I/O.
//!
//! A port-knocking server watches the packets sent to a host (including those to closed
//! ports) and runs a command, typically opening a firewall hole for the sender, when one
//! source hits a configured sequence of ports in time. This crate is that logic, as a
//! library, compatible with knockd 0.8:
//!
//! * the `knockd.conf` format: [`Config::parse`] gives a typed [`Config`] of [`Door`]s (and
//!   [`Warning`]s), with [`ConfigError`]s that name line and column; a `Config` displays
//!   back as canonical text.
//! * the knock-sequence state machine: [`Matcher`] consumes [`PacketEvent`]s (each with its
//!   [`Instant`]) and the passing of time and produces [`Action`]s (stage reached, door
//!   opened, stop command due, attempt timed out or invalidated), which display in knockd's
//!   log wording.
//! * [`ots`]: one-time-sequence files as pure functions over their text.
//! * [`spa`]: fwknop-compatible single packet authorization: verify (HMAC first, replay
//!   cache, age, access) and encode SPA packets.
//! * [`totp`]: RFC 6238 time-based sequences (TOTP code → ports), pure and time-injected.
//!
//! Every item is at the crate root (one path each), except the functions and types of the
//! [`ots`], [`spa`] and [`totp`] modules.
//!
//! # What it does not do
//!
//! No I/O, no clock, no threads, no logging, no `unsafe`. It never captures packets,
//! reads files, runs commands or sleeps: the caller does, and feeds the results in, with
//! the time (sans-IO, in the style of quinn-proto and str0m). So a live daemon, a pcap
//! replay and a test drive exactly the same code, and tests control time instead of
//! waiting for it.
//!
//! ```text
//!   capture (libpcap, eBPF, a pcap file, a test) ──PacketEvent──▶ ┌───────────┐
//!   the caller's clock ─────────────────────────────Instant─────▶ │  Matcher  │
//!                                                                 └─────┬─────┘
//!   run start/stop commands, log, persist ◀──────────Action────────────┘
//!   sleep until ◀───────────────────────────────poll_timeout()
//! ```
//!
//! # The run loop
//!
//! After every `handle_*` call, drain [`Matcher::poll_action`] until `None`, then ask
//! [`Matcher::poll_timeout`] when to call [`Matcher::handle_timeout`] next. (Under load,
//! [`Matcher::handle_packets`] takes a burst at once and [`Matcher::poll_action_ref`]
//! borrows each action instead of cloning it: see [`Matcher`]'s performance notes.)
//!
//! ```
//! use std::net::IpAddr;
//! use knock_core::{Action, Config, Duration, Instant, Matcher, PacketEvent};
//!
//! let parsed = Config::parse(
//!     "[openSSH]\n\
//!      sequence    = 7000,8000,9000\n\
//!      seq_timeout = 5\n\
//!      tcpflags    = syn\n\
//!      start_command = /sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n\
//!      cmd_timeout = 10\n\
//!      stop_command  = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n",
//! )?;
//! let door = &parsed.config.doors[0];
//! let mut matcher = Matcher::new(&parsed.config);
//!
//! let knocker: IpAddr = "198.51.100.7".parse()?;
//! let server: IpAddr = "192.0.2.1".parse()?;
//! let mut log = Vec::new();
//! // Packets as a capture thread would deliver them, each with its arrival time.
//! for (millis, step) in [0, 300, 600].into_iter().zip(&door.sequence) {
//!     let packet = PacketEvent::knock(Instant::from_millis(millis), knocker, server, *step);
//!     matcher.handle_packet(&packet);
//!     while let Some(action) = matcher.poll_action() {
//!         // A daemon would log these (Display is knockd's wording) and run the command.
//!         log.push(action.to_string());
//!         if let Action::Open { door, source, .. } = &action {
//!             let command = door.start_command_line(*source).unwrap_or_default();
//!             log.push(format!("run: {command}"));
//!         }
//!     }
//! }
//! assert_eq!(log[0], "198.51.100.7: openSSH: Stage 1");
//! assert_eq!(log[2], "198.51.100.7: openSSH: Stage 3");
//! assert_eq!(log[3], "198.51.100.7: openSSH: OPEN SESAME");
//! assert!(log[4].starts_with("run: /sbin/iptables -I INPUT -s 198.51.100.7 "));
//!
//! // Nothing arrives for a while: sleep until the next deadline, then tell the matcher.
//! let deadline = matcher.poll_timeout().expect("the stop command is pending");
//! assert_eq!(deadline, Instant::from_millis(600) + Duration::from_secs(10));
//! matcher.handle_timeout(deadline);
//! let close = matcher.poll_action().expect("the stop command is due");
//! assert_eq!(close.to_string(), "198.51.100.7: openSSH: command timeout");
//! assert_eq!(matcher.poll_action(), None);
//! assert_eq!(matcher.poll_timeout(), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Bounded state (DoS)
//!
//! Everything the matcher keeps is driven by packets, and source addresses are trivially
//! spoofed, so all of it is capped by [`Limits`]: at most [`Limits::max_sources`] sources
//! with a knock in progress (default 65 536; beyond it the source tracked longest is evicted
//! and counted, sparing those past a first step, which a spoofed flood never is) and at most [`Limits::max_pending_closes`] pending stop commands (beyond
//! it the first due closes early: a hole never stays open). At most
//! [`Matcher::BYTES_PER_SOURCE`] bytes per source of the cap (a worst case: about 44 MB at the
//! default cap, typically under half that).
//! Each packet costs O(1) whatever the number of sources (hash maps with a per-process
//! random seed, so colliding addresses cannot be chosen) and allocates nothing once the
//! tables have grown to their working size. See [`Matcher`] for the details.

#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]

mod config;
mod matcher;
pub mod ots;
mod packet;
pub mod spa;
mod time;
pub mod totp;

// The public API: every item has exactly one path, at the crate root (except the
// one-time-sequence functions, under `ots`).
pub use config::{
    Config, ConfigError, ConfigErrorKind, DEFAULT_CMD_TIMEOUT, DEFAULT_SEQ_TIMEOUT,
    DisplayDuration, DisplaySequence, DisplayWithSecrets, Door, FlagRule, Knock, MAX_DURATION,
    MAX_NFT_NAME_LEN, MAX_SEQUENCE_LEN, NftFamily, NftSetRef, Options, Parsed, SpaConfig,
    SpaKeySource, TotpConfig, TotpSecret, Warning, WarningKind, is_nft_identifier, parse_sequence,
};
pub use matcher::{
    Action, ActionKind, ActionView, Counters, DEFAULT_MAX_PENDING_CLOSES, DEFAULT_MAX_SOURCES,
    DoorId, DoorRef, Limits, LocalAddresses, Matcher,
};
pub use packet::{PacketEvent, Protocol, TcpFlags};
pub use time::{Duration, Instant};
