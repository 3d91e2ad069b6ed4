//! knockd: the port-knock server, a drop-in replacement for knockd 0.8.
//!
//! The binary (`src/main.rs`) only calls [`run`] and [`report`]; `xtask` uses
//! [`cli_command`] for the man page and completions. Everything else is private, in layers:
//!
//! ```text
//!  capture ──▶ matcher ──▶ daemon core ──▶ effects ──▶ drivers
//!  knock-capture  knock-core  core/        Effect      server.rs: executor, state file,
//!  (libpcap,      (Matcher:   (running     (plain        OTS files, capture filter, logs
//!   decode,        actions)    config,      data)      replay.rs: prints what would run
//!   Destinations)              stops, OTS)
//! ```
//!
//! * `core`: the I/O-free daemon core. It owns the running configuration (one-time
//!   sequences included), the matcher and the pending-stop records, takes packets, timer
//!   expiries, command completions, reloads, address changes, the state restored at startup
//!   and shutdown, with the time, and returns effects: log a `Record` (the one type for what
//!   is logged, 0.8's wording and a JSON rendering), persist or drop a pending stop, run a
//!   job, rewrite a one-time sequences file, set the capture filter. Its ordering rules are
//!   unit-tested with a virtual clock.
//! * `server`: the live driver (capture, signals, timers, executor, state file written at
//!   most once per loop pass); `replay`: `--replay FILE.pcap`, a driver that performs
//!   nothing and prints what would run.
//! * `cli` (0.8's flags and the new ones), `load` (configuration and one-time sequences
//!   files), `check` (`--check`), `executor` (commands off the event loop, in order per
//!   knocker), `state` (the pending-stops file), `ots` (one-time sequences files, written
//!   atomically), `secret` (TOTP secret files: owner-only, first line), `nft` (nftables set
//!   elements over netlink, for `Nft_Set` doors), `logging` (log file, syslog, `-v`/`-D`,
//!   JSON lines), `lookup` (`-l`), `process` (daemon mode, pid file).
//! * `platform`: the one place for what differs between operating systems: the default
//!   route's interface comes from `/proc/net/route` on Linux; elsewhere knockd falls back to
//!   `eth0` (knock-capture polls addresses there instead of using netlink). The server is
//!   Unix-only (signals, fork, process groups); it builds on Linux here, and macOS and the
//!   BSDs with libpcap are meant to work but are not checked in CI (no toolchain).
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
use std::path::PathBuf;

use clap::Parser;

mod check;
mod cli;
mod core;
mod executor;
mod load;
mod logging;
mod lookup;
mod metrics;
// Public only for its root integration tests (tests/nft.rs), which drive it inside network
// namespaces; not a stable API.
#[doc(hidden)]
pub mod nft;
mod notify;
mod ots;
mod platform;
mod process;
mod replay;
mod secret;
mod server;
mod spa_keys;
mod startup;
mod state;
mod status;

use cli::Cli;
pub use cli::cli_command;

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

/// Why knockd could not run. Each message carries its cause once (no variant has a
/// `source`: the text is the whole story).
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
    /// `--replay` could not open its capture file: the path and libpcap's reason.
    #[error("cannot read {}: {reason}", path.display())]
    ReplayOpen {
        /// The capture file.
        path: PathBuf,
        /// Why (libpcap's message).
        reason: String,
    },
    /// `--replay` hit a read error in the middle of its capture file.
    #[error("{}: read error after {packets} packets: {reason}", path.display())]
    ReplayRead {
        /// The capture file.
        path: PathBuf,
        /// Packets read before the error.
        packets: u64,
        /// Why.
        reason: String,
    },
    /// The current directory cannot be read (relative paths are resolved against it).
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
    /// `-d` failed.
    #[error("cannot daemonize: {0}")]
    Daemonize(std::io::Error),
    /// The signal handlers or their thread could not be set up.
    #[error("cannot {what}: {error}")]
    Signals {
        /// What failed.
        what: &'static str,
        /// The system's error.
        error: std::io::Error,
    },
    /// Capture could not start (the capture error says where and why).
    #[error("{0}")]
    Capture(knock_capture::CaptureError),
    /// Every capture thread ended.
    #[error("packet capture stopped")]
    CaptureStopped,
    /// The signal thread ended.
    #[error("signal thread stopped")]
    SignalThreadStopped,
    /// The nftables netlink socket could not be opened (to check the sets).
    #[error("{0}")]
    NftOpen(nft::NftError),
    /// A door's nftables set is missing or unfit (the message names the door and the set).
    #[error("{0}")]
    NftSet(nft::DoorSetError),
    /// `--status`: the status file cannot be read or is not one.
    #[error("{0}")]
    Status(String),
    /// Another knockd holds the lock of this state file or pid file (issue 10 item 6).
    #[error(
        "another knockd{} is running with the {what} {} (its lock {} is held); refusing to start",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        path.display(),
        lock.display()
    )]
    InUse {
        /// "state file" or "pid file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The locked file.
        lock: PathBuf,
        /// The holder's pid, if it could be read.
        pid: Option<u32>,
    },
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
fn io_reason(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

/// Prints `error` as knockd reports it and returns the exit status: help and version on
/// stdout with status 0; a bad option on stderr with status 1 (not clap's 2, which would
/// read as "stopped by SIGINT"); a configuration error as `FILE:LINE:COL: message`, the
/// quoted line and a caret (the shape editors and compilers use, so no program-name prefix);
/// anything else as `knockd: message`.
#[must_use]
pub fn report(error: &Error) -> u8 {
    match error {
        Error::Usage(e) => {
            let _ = e.print();
            u8::from(e.use_stderr())
        }
        Error::Config { .. } => {
            logging::stderr_line(&error.to_string());
            error.status()
        }
        _ => {
            logging::stderr_line(&format!("knockd: {error}"));
            error.status()
        }
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
    if cli.status {
        let state_file = cli::absolute_from(
            &std::env::current_dir().map_err(Error::CurrentDir)?,
            &cli.state_file,
        );
        return match status::print(&state_file, cli.json) {
            Ok(text) => {
                use std::io::Write as _;
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
                Ok(Exit::Success)
            }
            Err(message) => Err(Error::Status(message)),
        };
    }
    if let Some(path) = &cli.replay {
        return replay::run(&cli, path);
    }
    server::run(cli)
}
