//! knockd: the port-knock server, a drop-in replacement for knockd 0.8.
//!
//! The binary (`src/main.rs`) only calls [`run`] and turns the outcome into an exit status.
//! Everything else lives here, in small modules:
//!
//! * [`cli`]: the command line (0.8's flags and the new ones) and how it combines with the
//!   configuration file;
//! * [`load`]: reading and validating the configuration and the one-time sequences files;
//! * [`check`]: the `--check` option;
//! * [`replay`]: `--replay FILE.pcap`;
//! * [`server`]: the daemon's event loop (capture events, signals, timers, finished
//!   commands);
//! * [`executor`]: running start/stop commands off the event loop, in order per knocker;
//! * [`state`]: the pending-stops state file;
//! * [`ots`]: one-time sequences files, updated atomically;
//! * [`logging`]: log file, syslog, `-v`/`-D` output, JSON lines;
//! * [`lookup`]: `-l` reverse lookups on a worker thread;
//! * [`process`]: daemon mode and the pid file;
//! * `platform` (private): the one place for what differs between operating systems: the
//!   default route's interface comes from `/proc/net/route` on Linux; elsewhere knockd falls
//!   back to `eth0` (knock-capture polls addresses there instead of using netlink). The
//!   server is Unix-only (signals, fork, process groups); it builds on Linux here, and macOS
//!   and the BSDs with libpcap are meant to work but are not checked in CI (no toolchain).
//!
//! `src/main.rs` does little more than this (here with `--check`, which validates a
//! configuration and prints it in canonical form):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let conf = dir.path().join("knockd.conf");
//! std::fs::write(&conf, "[openSSH]\nsequence = 7000,8000,9000\ncommand = true\n")?;
//! let args = ["knockd".as_ref(), "--check".as_ref(), "-c".as_ref(), conf.as_os_str()];
//! let exit = knockd::run(args)?;
//! assert_eq!(exit.status(), 0);
//!
//! // A bad option is an error with exit status 1.
//! let err = knockd::run(["knockd", "--no-such-option"]).unwrap_err();
//! assert_eq!(err.status(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! What it does not do: drop privileges, chroot, or manage the firewall itself (the
//! configured commands do that).

#![forbid(unsafe_code)]

use std::ffi::OsString;

use clap::Parser;

pub mod check;
pub mod cli;
pub mod executor;
pub mod load;
pub mod logging;
pub mod lookup;
pub mod ots;
mod platform;
pub mod process;
pub mod replay;
pub mod server;
pub mod state;

pub use cli::{Cli, cli_command};

/// How knockd ended normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Done (`--check`, `--replay`).
    Success,
    /// Stopped by SIGINT: status 2, as 0.8.
    Interrupted,
    /// Stopped by SIGTERM: status 15, as 0.8.
    Terminated,
}

impl Exit {
    /// The process exit status.
    #[must_use]
    pub const fn status(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Interrupted => 2,
            Self::Terminated => 15,
        }
    }
}

/// Why knockd could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad command line, or `-h`/`-V` (clap prints it; see [`clap::Error::use_stderr`]).
    #[error("{0}")]
    Usage(clap::Error),
    /// The configuration is invalid: the positioned message, with the quoted line.
    #[error("{display}")]
    Config {
        /// The full message (several lines).
        display: String,
        /// Its first line, for log lines.
        summary: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path as the user gave it.
        path: String,
        /// The system's description of the error.
        reason: String,
    },
    /// `--replay` could not read its capture file.
    #[error("{0}")]
    Replay(String),
    /// The daemon could not start or had to give up.
    #[error("{0}")]
    Fatal(String),
}

impl Error {
    /// The process exit status: 1 for every error (2 and 15 mean "stopped by a signal").
    #[must_use]
    pub const fn status(&self) -> u8 {
        1
    }

    /// One line for the log file.
    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Self::Config { summary, .. } => summary.clone(),
            other => other.to_string().replace('\n', " "),
        }
    }
}

/// The system's text for an I/O error, without Rust's ` (os error N)` suffix: `No such file
/// or directory`, as 0.8's `perror` printed it.
#[must_use]
pub fn io_reason(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

/// Runs knockd with these arguments (the first is the program name).
///
/// # Errors
/// See [`Error`]; `src/main.rs` prints it and exits with [`Error::status`].
pub fn run<I, T>(args: I) -> Result<Exit, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(Error::Usage)?;
    if cli.check {
        return check::run(&cli);
    }
    if let Some(path) = &cli.replay {
        return replay::run(&cli, path);
    }
    server::run(cli)
}
