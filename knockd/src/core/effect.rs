//! [`Effect`]: what the daemon core asks its driver to do. Plain data (no handles, closures
//! or shared state), so a driver may perform it in another process.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use knock_core::NftSetRef;

use super::record::Record;

/// Identifies a pending stop command, in this process (not stored in the state file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StopId(pub u64);

/// A stop command still to run, as the state file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingStop {
    /// The door's name.
    pub(crate) door: String,
    /// The knocker.
    pub(crate) source: IpAddr,
    /// When it is due, in Unix seconds.
    pub(crate) due_unix: u64,
    /// The command, `%IP%` replaced: the hole opened under an old configuration is closed by
    /// the matching command even if the configuration changed since.
    pub(crate) command: String,
}

/// A TOTP code that opened its door, as the state file keeps it: it opens nothing again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SpentCode {
    /// The door's name.
    pub(crate) door: String,
    /// The code's time-step counter (`floor(unix time / TOTP_Step)`).
    pub(crate) code_step: u64,
}

/// Which of a door's commands a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CommandKind {
    /// The start command (after a completed sequence).
    Start,
    /// The stop command (`cmd_timeout` later, at shutdown, or restored after a restart).
    Stop,
}

/// One command to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    /// The door's name (for log lines and ordering).
    pub(crate) door: String,
    /// The knocker.
    pub(crate) source: IpAddr,
    /// Start or stop.
    pub(crate) kind: CommandKind,
    /// The command line, `%IP%` already substituted.
    pub(crate) command: String,
    /// For stop jobs: the pending stop this runs (dropped once the job finished).
    pub(crate) stop: Option<StopId>,
    /// For the start jobs of an open: when its packet was captured and decided on (the
    /// driver stamps the spawn and logs the stage latencies).
    pub(crate) opened: Option<OpenTimes>,
}

/// When an open's packet went through the first stages, in microseconds since the Unix
/// epoch, on the driver's monotonic clock (see `Core::set_clock_epoch`): differences
/// between them (and the spawn time the driver adds) are exact durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenTimes {
    /// When the capture thread read the packet (the packet's time stamp).
    pub(crate) captured_us: u64,
    /// When the core was given the packet and decided (the `now` of the input).
    pub(crate) decided_us: u64,
}

/// Something the driver must do, in the order the core emits them.
///
/// New door kinds add variants here (e.g. adding an element to an nftables set for a
/// source, with a kernel timeout): the enum is `#[non_exhaustive]` so that adding one is not a
/// breaking change, and drivers have one arm per variant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Effect {
    /// Log this.
    Log(Record),
    /// Record a pending stop in the state file. Emitted before the start job it belongs to;
    /// the driver must have written it to disk before that job runs (it may write once for
    /// several records, e.g. once per loop pass).
    PersistStop {
        /// Its identifier (see [`Effect::DropStop`], [`Job::stop`]).
        id: StopId,
        /// The record.
        stop: PendingStop,
    },
    /// Forget a pending stop (its command ran).
    DropStop(StopId),
    /// Record these TOTP codes as spent in the state file, replacing those recorded
    /// (bounded: `2 × TOTP_Window + 1` per door at most). Like [`Effect::PersistStop`], emitted
    /// before the start job of the open that spent a code, and written before that job runs.
    PersistSpentCodes(Vec<SpentCode>),
    /// Run a command. Jobs of one (door, source) must run one after the other in the order
    /// emitted; report each end with `Core::handle_command_finished`.
    RunJob(Job),
    /// Replace a door's one-time sequences file with `text` (a used line marked). Report a
    /// failure with `Core::handle_ots_write_failed` before feeding the next input: the door
    /// is then disabled.
    RewriteOts {
        /// The door's name.
        door: String,
        /// The file, absolute.
        path: PathBuf,
        /// Its new content.
        text: String,
    },
    /// Install this kernel filter (the doors' current steps and the local addresses).
    SetFilter(String),
    /// Add `address` to the nftables set `set` with a kernel timeout of `timeout` (or restart
    /// the timeout of the element already there). Emitted at an open, after its
    /// [`Record::Open`] and before the door's start job, which the driver must not start
    /// before the element is in: perform it at once, in order. Report the result with
    /// `Core::handle_set_element_added` before the next [`poll_effect`](super::Core::poll_effect)
    /// (its record is then logged before that start job's). No stop and no pending record go
    /// with it: the kernel removes the element when the timeout expires, whatever happens to
    /// knockd.
    AddSetElement(Box<SetElementAdd>),
    /// Deliver the data of UDP datagrams to these ports (the SPA doors' `SPA_Port`s) with
    /// `Core::handle_datagram` rather than as plain packets.
    SetPayloadPorts(Vec<u16>),
    /// Record the SPA replay cache in the state file (its `ReplayCache::to_text` form;
    /// written with the pending stops, at most once per pass).
    PersistSpaReplay(String),
}

/// One element to add to an nftables set (see [`Effect::AddSetElement`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetElementAdd {
    /// The door's name.
    pub(crate) door: String,
    /// The set: the door's `Nft_Set` for an IPv4 knocker, `Nft_Set_6` for an IPv6 one.
    pub(crate) set: NftSetRef,
    /// The knocker.
    pub(crate) address: IpAddr,
    /// The element's timeout: the door's `Cmd_Timeout`.
    pub(crate) timeout: Duration,
    /// When the open's packet was captured and decided on (the driver logs when the element
    /// was written, with the stage latencies).
    pub(crate) opened: Option<OpenTimes>,
}
