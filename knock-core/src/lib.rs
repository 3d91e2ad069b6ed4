//! knock-core: the heart of a port-knocking server, without any I/O.
//!
//! PLACEHOLDER crate docs: overview, run-loop example and DoS bound come with the parser and
//! matcher work.

#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]

pub mod config;
pub mod matcher;
pub mod ots;
pub mod packet;
pub mod time;

pub use config::{Config, ConfigError, Door, FlagRule, Knock, Parsed, Warning};
pub use matcher::{Action, Counters, DoorId, DoorRef, Limits, LocalAddresses, Matcher};
pub use packet::{PacketEvent, Protocol, TcpFlags};
pub use time::{Duration, Instant};
