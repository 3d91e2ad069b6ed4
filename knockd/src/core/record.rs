//! [`Record`]: the one type for what knockd logs about knocks, commands, pending stops and
//! one-time sequences, with one text rendering in knockd 0.8's wording ([`Record::display`])
//! and one JSON rendering ([`Record::json`]).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use jiff::Timestamp;
use knock_core::Knock;

use super::effect::{CommandKind, Job, OpenTimes, SetElementAdd};
use crate::logging::{JsonEvent, JsonValue};

/// How a command ended, as the driver that ran it reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum CommandOutcome {
    /// The shell exited with this status.
    Exited(i32),
    /// The shell was killed by this signal.
    Signaled(i32),
    /// It could not be started or waited for: the system's message.
    Failed(String),
}

impl CommandOutcome {
    /// Whether it exited with status 0.
    #[must_use]
    pub(crate) const fn is_success(&self) -> bool {
        matches!(self, Self::Exited(0))
    }
}

/// Why a complete knock on a TOTP door's port ranges opened nothing, when its code is not
/// one of the window's (those are the matcher's: it opens, or logs [`Record::CodeUsed`]).
///
/// "Stale" and "future" mean the code is that of an earlier or later step within
/// `knock_core::totp::DIAGNOSTIC_STEPS` beyond the window; a wrong code can be one of those
/// by chance (one in 10^digits per step), so they are a hint (a clock off, a slow knocker),
/// not a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum CodeRefusal {
    /// The code of a step before the window.
    Stale {
        /// How many steps before the current one.
        steps: u64,
        /// Its time-step counter.
        code_step: u64,
    },
    /// The code of a step after the window.
    Future {
        /// How many steps after the current one.
        steps: u64,
        /// Its time-step counter.
        code_step: u64,
    },
    /// No step near now has this code.
    Wrong,
}

impl CodeRefusal {
    /// `stale`, `future` or `wrong` (the JSON `reason`).
    #[must_use]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Stale { .. } => "stale",
            Self::Future { .. } => "future",
            Self::Wrong => "wrong",
        }
    }
}

/// Where a record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// Log file, syslog and `-v` (knock events, commands).
    Event,
    /// `-v` only.
    Verbose,
    /// `-D` only.
    Debug,
    /// stderr, log file and syslog.
    Error,
    /// No text line (only the JSON event, if any).
    Silent,
}

/// Something to log. Plain data: door names and commands are copies (or shared `Rc<str>`
/// names), so a record outlives the configuration that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Record {
    /// `source` completed step `stage` (1-based).
    Stage {
        /// The door's name (shared: one per door, not one per packet).
        door: Rc<str>,
        /// The knocker.
        source: IpAddr,
        /// The step just completed.
        stage: usize,
    },
    /// `source` completed the sequence.
    Open {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// When its packet was captured and decided on.
        times: OpenTimes,
    },
    /// `cmd_timeout` passed since the open: the stop command runs.
    Close {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
    },
    /// knockd is exiting: a pending stop command runs early.
    ShutdownClose {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
    },
    /// The sequence was not completed within `seq_timeout`.
    Timeout {
        /// The door's name (shared: one per door, not one per packet).
        door: Rc<str>,
        /// The knocker.
        source: IpAddr,
        /// Steps completed when it expired.
        stage: usize,
    },
    /// A wrong knock ended the attempt.
    Invalidated {
        /// The door's name (shared: one per door, not one per packet).
        door: Rc<str>,
        /// The knocker.
        source: IpAddr,
        /// Steps completed before the wrong knock.
        stage: usize,
    },
    /// A TOTP door's sequence completed with a code that already opened it: nothing opens.
    CodeUsed {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The code's time-step counter.
        code_step: u64,
    },
    /// A TOTP door's port ranges were knocked completely with a code outside the window:
    /// nothing opens (the expected code is never logged).
    CodeRefused {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// Stale, future or wrong.
        refusal: CodeRefusal,
    },
    /// At startup: a stop command from the state file, not due yet, is armed again.
    StopRestored {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// Time left until it is due.
        due_in: Duration,
        /// The state file it came from.
        state_file: PathBuf,
    },
    /// At startup: a stop command from the state file is overdue and runs now.
    StopOverdue {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
    },
    /// At shutdown with `--no-stop-on-exit`: stop commands left in the state file.
    StopsLeft {
        /// How many.
        count: usize,
        /// The state file.
        state_file: PathBuf,
    },
    /// A start command was not run because too many commands wait (logged once per power of
    /// two refusals).
    StartRefused {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// Commands waiting.
        waiting: usize,
        /// Start commands refused so far.
        refused: u64,
    },
    /// A command finished.
    CommandFinished {
        /// What ran (boxed: a `Job` is large, and every record, the flood's `Stage` lines
        /// included, is as large as the largest variant).
        job: Box<Job>,
        /// How it ended.
        outcome: CommandOutcome,
    },
    /// A command ran past `--command-kill-timeout` and the driver killed its process group
    /// (reported by the driver, logged through the same type).
    CommandKilled {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The kill timeout.
        after: Duration,
        /// The process group.
        pid: u32,
    },
    /// A one-time-sequence door has a new active sequence.
    OtsNext {
        /// The door's name.
        door: String,
        /// Its sequence.
        sequence: Vec<Knock>,
    },
    /// A one-time-sequence door used its last sequence and is disabled.
    OtsExhausted {
        /// The door's name.
        door: String,
    },
    /// The one-time sequences file could not be updated (the driver's message).
    OtsWriteFailed {
        /// The error.
        error: String,
    },
    /// …so the door is disabled.
    OtsDisabled {
        /// The door's name.
        door: String,
    },
    /// The knocker's address is in the door's nftables set, with the door's timeout.
    SetElementAdded {
        /// What was added (boxed, as below: records stay small enough to move cheaply).
        add: Box<SetElementAdd>,
        /// When the element was written (Unix µs, the clock of [`OpenTimes`]), if the
        /// driver said.
        written_us: Option<u64>,
    },
    /// A command was spawned (reported by the driver): `-D` and the JSON `started` event,
    /// with the stage latencies of the open it belongs to.
    CommandStarted {
        /// What runs.
        job: Box<Job>,
        /// The shell's process id.
        pid: u32,
        /// When the spawn returned (Unix µs, the clock of [`OpenTimes`]).
        spawned_us: u64,
        /// How long the spawn call took, in µs (`posix_spawn`, until the shell was
        /// executed): the part of the decision→spawn stage that is the system's.
        spawn_call_us: u64,
    },
    /// The address could not be added to the nftables set (the driver's reason, which does
    /// not repeat the set's name).
    SetElementFailed {
        /// What was to be added.
        add: Box<SetElementAdd>,
        /// Why it failed.
        error: String,
    },
    /// A stop command could not be started (issue 10 item 4): kept, tried again later.
    StopSpawnFailed {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The system's message.
        error: String,
        /// Failures so far.
        attempt: u32,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// A door with a stop command was not opened: the state file cannot be written, so its
    /// stop could not survive a crash (issue 10 item 11).
    OpenNotDurable {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The state file.
        state_file: PathBuf,
        /// Opens refused so far for this reason.
        refused: u64,
    },
    /// An SPA packet was verified and grants access (followed by [`Record::Open`] for the
    /// granted address).
    SpaGranted {
        /// The door's name.
        door: String,
        /// The packet's source.
        source: IpAddr,
        /// The address let in (the message's, or the source for `0.0.0.0`), as text.
        address: String,
        /// The granted protocols/ports (`tcp/22,udp/1194`).
        ports: String,
        /// The user name in the message (informational: anyone with the keys can send any).
        username: String,
    },
    /// An authentic SPA packet (its HMAC verified) was refused: replayed, too old, a port
    /// outside `SPA_Access`, … (unauthenticated packets are only counted, never recorded).
    SpaRefused {
        /// The door's name.
        door: String,
        /// The packet's source.
        source: IpAddr,
        /// The reason's stable code (`replay`, `too_old`, `not_allowed`, …).
        code: &'static str,
        /// The reason, in words (never key material).
        reason: String,
    },
}

impl Record {
    /// Where the record goes.
    #[must_use]
    pub(crate) fn level(&self) -> Level {
        match self {
            Self::Stage { .. }
            | Self::Open { .. }
            | Self::Close { .. }
            | Self::ShutdownClose { .. }
            | Self::Timeout { .. }
            | Self::StopRestored { .. }
            | Self::StopOverdue { .. }
            | Self::StopsLeft { .. }
            | Self::OtsExhausted { .. }
            | Self::SetElementAdded { .. }
            | Self::SpaRefused { .. }
            | Self::SpaGranted { .. } => Level::Event,
            Self::Invalidated { .. } => Level::Verbose,
            Self::CodeUsed { .. } | Self::CodeRefused { .. } => Level::Event,
            Self::OtsNext { .. } | Self::CommandStarted { .. } => Level::Debug,
            Self::StartRefused { .. }
            | Self::CommandKilled { .. }
            | Self::OtsWriteFailed { .. }
            | Self::OtsDisabled { .. }
            | Self::SetElementFailed { .. }
            | Self::StopSpawnFailed { .. }
            | Self::OpenNotDurable { .. } => Level::Error,
            Self::CommandFinished { outcome, .. } => {
                if outcome.is_success() {
                    Level::Silent
                } else {
                    Level::Error
                }
            }
        }
    }

    /// The knocker a text line names as its label (`IP` or, with `-l`, `IP (host)`).
    #[must_use]
    pub(crate) const fn labelled_source(&self) -> Option<IpAddr> {
        match self {
            Self::Stage { source, .. }
            | Self::Open { source, .. }
            | Self::Close { source, .. }
            | Self::ShutdownClose { source, .. }
            | Self::Timeout { source, .. }
            | Self::Invalidated { source, .. }
            | Self::CodeUsed { source, .. }
            | Self::CodeRefused { source, .. }
            | Self::StopRestored { source, .. }
            | Self::StopOverdue { source, .. }
            | Self::CommandKilled { source, .. }
            | Self::StopSpawnFailed { source, .. }
            | Self::OpenNotDurable { source, .. }
            | Self::SpaRefused { source, .. }
            | Self::SpaGranted { source, .. } => Some(*source),
            Self::SetElementAdded { add, .. } | Self::SetElementFailed { add, .. } => {
                Some(add.address)
            }
            Self::CommandStarted { job, .. } => Some(job.source),
            Self::StopsLeft { .. }
            | Self::StartRefused { .. }
            | Self::CommandFinished { .. }
            | Self::OtsNext { .. }
            | Self::OtsExhausted { .. }
            | Self::OtsWriteFailed { .. }
            | Self::OtsDisabled { .. } => None,
        }
    }

    /// The text line, in 0.8's wording, the knocker named `IP (host)` when `host` is given
    /// (`Display` is this without a host).
    #[must_use]
    pub(crate) const fn display<'a>(&'a self, host: Option<&'a str>) -> Line<'a> {
        Line { record: self, host }
    }

    /// The JSON event, if the record has one (knock events and finished commands), stamped
    /// `time`; `host` is the knocker's name with `-l`.
    #[must_use]
    pub(crate) fn json<'a>(
        &'a self,
        time: Timestamp,
        host: Option<&'a str>,
    ) -> Option<JsonEvent<'a>> {
        let stage = |stage: &usize| {
            vec![(
                "stage",
                JsonValue::Int(i64::try_from(*stage).unwrap_or(i64::MAX)),
            )]
        };
        let (event, door, source, fields): (&str, &str, IpAddr, Vec<_>) = match self {
            Self::Stage {
                door,
                source,
                stage: n,
            } => ("stage", &**door, *source, stage(n)),
            Self::Open {
                door,
                source,
                times,
            } => ("open", door, *source, times.json_fields()),
            Self::Close { door, source } | Self::ShutdownClose { door, source } => {
                ("close", door, *source, Vec::new())
            }
            Self::Timeout {
                door,
                source,
                stage: n,
            } => ("timeout", &**door, *source, stage(n)),
            Self::Invalidated {
                door,
                source,
                stage: n,
            } => ("invalidated", &**door, *source, stage(n)),
            Self::SpaGranted {
                door,
                source,
                address,
                ports,
                username,
            } => {
                return Some(JsonEvent {
                    event: "spa_granted",
                    time,
                    door,
                    source: *source,
                    host,
                    fields: vec![
                        ("address", JsonValue::Str(address)),
                        ("ports", JsonValue::Str(ports)),
                        ("user", JsonValue::Str(username)),
                    ],
                });
            }
            Self::SpaRefused {
                door,
                source,
                code,
                reason,
            } => (
                "spa_refused",
                door,
                *source,
                vec![
                    ("code", JsonValue::Str(code)),
                    ("reason", JsonValue::Str(reason)),
                ],
            ),
            Self::CodeUsed {
                door,
                source,
                code_step,
            } => (
                "code_used",
                door,
                *source,
                vec![(
                    "code_step",
                    JsonValue::Int(i64::try_from(*code_step).unwrap_or(i64::MAX)),
                )],
            ),
            Self::CodeRefused {
                door,
                source,
                refusal,
            } => {
                let mut fields = vec![("reason", JsonValue::Str(refusal.as_str()))];
                let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                match *refusal {
                    CodeRefusal::Stale { steps, code_step } => {
                        fields.push(("offset", JsonValue::Int(-int(steps))));
                        fields.push(("code_step", JsonValue::Int(int(code_step))));
                    }
                    CodeRefusal::Future { steps, code_step } => {
                        fields.push(("offset", JsonValue::Int(int(steps))));
                        fields.push(("code_step", JsonValue::Int(int(code_step))));
                    }
                    CodeRefusal::Wrong => {}
                }
                ("code_refused", door, *source, fields)
            }
            Self::CommandFinished { job, outcome } => {
                let mut fields = vec![
                    ("kind", JsonValue::Str(job.kind.as_str())),
                    ("command", JsonValue::Str(&job.command)),
                    ("success", JsonValue::Bool(outcome.is_success())),
                ];
                match outcome {
                    CommandOutcome::Exited(status) => {
                        fields.push(("status", JsonValue::Int(i64::from(*status))));
                    }
                    CommandOutcome::Signaled(signal) => {
                        fields.push(("signal", JsonValue::Int(i64::from(*signal))));
                    }
                    CommandOutcome::Failed(_) => {}
                }
                return Some(JsonEvent {
                    event: "command",
                    time,
                    door: &job.door,
                    source: job.source,
                    host: None,
                    fields,
                });
            }
            Self::CommandStarted {
                job,
                pid,
                spawned_us,
                spawn_call_us,
            } => {
                let mut fields = vec![
                    ("kind", JsonValue::Str(job.kind.as_str())),
                    ("command", JsonValue::Str(&job.command)),
                    ("pid", JsonValue::Int(i64::from(*pid))),
                    ("spawned_us", micros(*spawned_us)),
                    ("spawn_call_us", micros(*spawn_call_us)),
                ];
                if let Some(times) = &job.opened {
                    fields.extend(times.json_fields());
                    fields.extend(times.later_fields("spawn", *spawned_us));
                }
                return Some(JsonEvent {
                    event: "started",
                    time,
                    door: &job.door,
                    source: job.source,
                    host,
                    fields,
                });
            }
            Self::SetElementAdded { add, .. } | Self::SetElementFailed { add, .. } => {
                let mut fields = vec![
                    ("family", JsonValue::Str(add.set.family.as_str())),
                    ("table", JsonValue::Str(&add.set.table)),
                    ("set", JsonValue::Str(&add.set.set)),
                    (
                        "timeout_ms",
                        JsonValue::Int(i64::try_from(add.timeout.as_millis()).unwrap_or(i64::MAX)),
                    ),
                ];
                match self {
                    Self::SetElementFailed { error, .. } => {
                        fields.push(("success", JsonValue::Bool(false)));
                        fields.push(("error", JsonValue::Str(error)));
                    }
                    Self::SetElementAdded {
                        written_us: Some(written),
                        ..
                    } => {
                        fields.push(("success", JsonValue::Bool(true)));
                        fields.push(("written_us", micros(*written)));
                        if let Some(times) = &add.opened {
                            fields.extend(times.json_fields());
                            fields.extend(times.later_fields("write", *written));
                        }
                    }
                    _ => fields.push(("success", JsonValue::Bool(true))),
                }
                ("nft", &add.door, add.address, fields)
            }
            Self::StopRestored { .. }
            | Self::StopOverdue { .. }
            | Self::StopsLeft { .. }
            | Self::StartRefused { .. }
            | Self::CommandKilled { .. }
            | Self::OtsNext { .. }
            | Self::OtsExhausted { .. }
            | Self::OtsWriteFailed { .. }
            | Self::OtsDisabled { .. }
            | Self::StopSpawnFailed { .. }
            | Self::OpenNotDurable { .. } => return None,
        };
        Some(JsonEvent {
            event,
            time,
            door,
            source,
            host,
            fields,
        })
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display(None).fmt(f)
    }
}

/// A record's text line; see [`Record::display`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line<'a> {
    record: &'a Record,
    host: Option<&'a str>,
}

impl crate::logging::LogLine for Line<'_> {
    fn is_flood_line(&self) -> bool {
        matches!(
            self.record,
            Record::Stage { .. } | Record::Timeout { .. } | Record::Invalidated { .. }
        )
    }

    /// The lines of a flood (a step, a timeout or a wrong knock of an IPv4 knocker) are
    /// put together by hand, byte for byte what `Display` writes, without `core::fmt`; the
    /// others through `Display`.
    fn append_to(&self, out: &mut Vec<u8>) {
        let (door, ip, stage, what): (&str, _, _, &[u8]) = match self.record {
            Record::Stage {
                door,
                source: IpAddr::V4(ip),
                stage,
            } => (door, ip, stage, b": Stage "),
            Record::Timeout {
                door,
                source: IpAddr::V4(ip),
                stage,
            } => (door, ip, stage, b": sequence timeout (stage "),
            Record::Invalidated {
                door,
                source: IpAddr::V4(ip),
                stage,
            } => (door, ip, stage, b": knock invalidated (stage "),
            _ => {
                use std::io::Write as _;
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{self}");
                return;
            }
        };
        // An IPv4 address, host, separators and a stage: one growth at most.
        out.reserve(15 + self.host.map_or(0, |h| h.len() + 3) + door.len() + what.len() + 21);
        let [a, b, c, d] = ip.octets();
        out.extend_from_slice(decimal_octet(a));
        for octet in [b, c, d] {
            out.push(b'.');
            out.extend_from_slice(decimal_octet(octet));
        }
        if let Some(host) = self.host {
            out.extend_from_slice(b" (");
            out.extend_from_slice(host.as_bytes());
            out.push(b')');
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(door.as_bytes());
        out.extend_from_slice(what);
        push_decimal(out, u64::try_from(*stage).unwrap_or(u64::MAX));
        if what.ends_with(b"(stage ") {
            out.push(b')');
        }
    }
}

/// Every byte in decimal, as `Display` writes it (one to three digits), built at compile time:
/// the four octets of an address are then four copies, not twelve divisions and pushes.
const DECIMAL_OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        // Each digit is below 10 (`as` cannot truncate).
        #[allow(clippy::cast_possible_truncation)]
        let (hundreds, tens, ones) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = if n >= 100 {
            ([b'0' + hundreds, b'0' + tens, b'0' + ones], 3)
        } else if n >= 10 {
            ([b'0' + tens, b'0' + ones, 0], 2)
        } else {
            ([b'0' + ones, 0, 0], 1)
        };
        n += 1;
    }
    table
};

/// `octet` in decimal.
fn decimal_octet(octet: u8) -> &'static [u8] {
    let (digits, len) = &DECIMAL_OCTETS[usize::from(octet)];
    &digits[..usize::from(*len)]
}

/// `n` in decimal, as `Display` writes it.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    // Stages: up to three digits pushed one by one (no copy call).
    if n < 1000 {
        // Each below 10.
        let digit = |d: u64| b'0' + u8::try_from(d % 10).unwrap_or(0);
        if n >= 100 {
            out.push(digit(n / 100));
        }
        if n >= 10 {
            out.push(digit(n / 10));
        }
        out.push(digit(n));
        return;
    }
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // A digit: below 10.
        digits[start] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// `IP` or `IP (HOST)`: how 0.8 names a knocker in log lines.
struct Label<'a>(IpAddr, Option<&'a str>);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(host) => write!(f, "{} ({host})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = |source: &IpAddr| Label(*source, self.host);
        match self.record {
            Record::Stage {
                door,
                source,
                stage,
            } => write!(f, "{}: {door}: Stage {stage}", label(source)),
            Record::Open { door, source, .. } => {
                write!(f, "{}: {door}: OPEN SESAME", label(source))
            }
            Record::SpaGranted {
                door,
                source,
                address,
                ports,
                username,
            } => write!(
                f,
                "{}: {door}: SPA packet verified: {ports} for {address} (user {username})",
                label(source)
            ),
            Record::SpaRefused {
                door,
                source,
                code,
                reason,
            } => write!(
                f,
                "{}: {door}: SPA packet refused ({code}): {reason}",
                label(source)
            ),
            Record::Close { door, source } => {
                write!(f, "{}: {door}: command timeout", label(source))
            }
            Record::ShutdownClose { door, source } => write!(
                f,
                "{}: {door}: shutting down: running the stop command now",
                label(source)
            ),
            Record::Timeout {
                door,
                source,
                stage,
            } => write!(
                f,
                "{}: {door}: sequence timeout (stage {stage})",
                label(source)
            ),
            Record::Invalidated {
                door,
                source,
                stage,
            } => write!(
                f,
                "{}: {door}: knock invalidated (stage {stage})",
                label(source)
            ),
            Record::CodeUsed { door, source, .. } => {
                write!(f, "{}: {door}: code already used", label(source))
            }
            Record::CodeRefused {
                door,
                source,
                refusal,
            } => {
                let plural = |n: u64| if n == 1 { "" } else { "s" };
                match *refusal {
                    CodeRefusal::Stale { steps, .. } => write!(
                        f,
                        "{}: {door}: stale code ({steps} step{} old)",
                        label(source),
                        plural(steps)
                    ),
                    CodeRefusal::Future { steps, .. } => write!(
                        f,
                        "{}: {door}: future code ({steps} step{} ahead)",
                        label(source),
                        plural(steps)
                    ),
                    CodeRefusal::Wrong => write!(f, "{}: {door}: wrong code", label(source)),
                }
            }
            Record::StopRestored {
                door,
                source,
                due_in,
                state_file,
            } => write!(
                f,
                "{}: {door}: stop command restored from {}, due in {}",
                label(source),
                state_file.display(),
                humantime::format_duration(*due_in)
            ),
            Record::StopOverdue { door, source } => write!(
                f,
                "{}: {door}: running a stop command left pending by a previous run",
                label(source)
            ),
            Record::StopsLeft { count, state_file } => write!(
                f,
                "leaving {count} stop commands pending in {} (--no-stop-on-exit)",
                state_file.display()
            ),
            Record::StartRefused {
                door,
                source,
                waiting,
                refused,
            } => write!(
                f,
                "error: {door}: {waiting} commands are waiting; not running the start command for {source} ({refused} refused so far)"
            ),
            Record::CommandFinished { job, outcome } => match outcome {
                CommandOutcome::Exited(0) => write!(f, "{}: command succeeded", job.door),
                CommandOutcome::Exited(code) => write!(
                    f,
                    "{}: command returned non-zero status code ({code})",
                    job.door
                ),
                CommandOutcome::Signaled(signal) => {
                    write!(f, "{}: command terminated by signal {signal}", job.door)
                }
                CommandOutcome::Failed(error) => {
                    write!(f, "error: {}: cannot run command: {error}", job.door)
                }
            },
            Record::CommandKilled {
                door,
                source,
                after,
                pid,
            } => write!(
                f,
                "{}: {door}: command still running after {}, killed its process group {pid}",
                label(source),
                humantime::format_duration(*after)
            ),
            Record::OtsNext { door, sequence } => {
                write!(f, "new sequence for door {door}: ")?;
                for (i, knock) in sequence.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{knock}")?;
                }
                Ok(())
            }
            Record::OtsExhausted { door } => write!(
                f,
                "no more sequences left in the one time sequences file for door {door} --> disabling the door"
            ),
            Record::OtsWriteFailed { error } => write!(f, "error: {error}"),
            Record::OtsDisabled { door } => write!(
                f,
                "error while disabling used one time sequence for door {door} --> disabling the door"
            ),
            Record::CommandStarted {
                job,
                pid,
                spawned_us,
                spawn_call_us,
            } => {
                write!(
                    f,
                    "{}: {}: {} command started (pid {pid}) at {} (spawn call {spawn_call_us} µs)",
                    label(&job.source),
                    job.door,
                    job.kind.as_str(),
                    UnixMicros(*spawned_us)
                )?;
                match &job.opened {
                    Some(times) => write!(f, "; {}", times.display(*spawned_us)),
                    None => Ok(()),
                }
            }
            Record::SetElementAdded { add, .. } => write!(
                f,
                "{}: {}: added to nftables set {} for {}",
                label(&add.address),
                add.door,
                add.set,
                humantime::format_duration(add.timeout)
            ),
            Record::SetElementFailed { add, error } => write!(
                f,
                "error: {}: {}: cannot add to nftables set {}: {error}",
                label(&add.address),
                add.door,
                add.set
            ),
            Record::StopSpawnFailed {
                door,
                source,
                error,
                attempt,
                retry_in,
            } => write!(
                f,
                "{}: {door}: error: cannot start the stop command ({error}), failure {attempt}; \
                 trying again in {} (it stays in the state file)",
                label(source),
                humantime::format_duration(*retry_in)
            ),
            Record::OpenNotDurable {
                door,
                source,
                state_file,
                refused,
            } => write!(
                f,
                "{}: {door}: error: not opened: its stop command cannot be recorded in {} \
                 ({refused} opens refused so far)",
                label(source),
                state_file.display()
            ),
        }
    }
}

/// A JSON integer of microseconds (saturating).
fn micros(us: u64) -> JsonValue<'static> {
    JsonValue::Int(i64::try_from(us).unwrap_or(i64::MAX))
}

/// Unix microseconds as `SECONDS.MICROS` (the `-D` lines).
struct UnixMicros(u64);

impl fmt::Display for UnixMicros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The stage times of an open, as `-D` shows them.
struct StageLine {
    times: OpenTimes,
    /// The spawn or write time, if done.
    acted_us: Option<u64>,
}

impl fmt::Display for StageLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.times;
        write!(
            f,
            "captured {}, decided {} (+{} µs)",
            UnixMicros(t.captured_us),
            UnixMicros(t.decided_us),
            t.decided_us.saturating_sub(t.captured_us)
        )?;
        if let Some(acted) = self.acted_us {
            write!(
                f,
                ", done +{} µs after the decision, {} µs after capture",
                acted.saturating_sub(t.decided_us),
                acted.saturating_sub(t.captured_us)
            )?;
        }
        Ok(())
    }
}

impl OpenTimes {
    /// `captured_us`, `decided_us` and `capture_to_decision_us`.
    fn json_fields(&self) -> Vec<(&'static str, JsonValue<'static>)> {
        vec![
            ("captured_us", micros(self.captured_us)),
            ("decided_us", micros(self.decided_us)),
            (
                "capture_to_decision_us",
                micros(self.decided_us.saturating_sub(self.captured_us)),
            ),
        ]
    }

    /// `decision_to_STAGE_us` and `capture_to_STAGE_us` for a stage done at `at_us`
    /// (`spawn`: the command spawned; `write`: the nftables element written).
    fn later_fields(&self, stage: &str, at_us: u64) -> [(&'static str, JsonValue<'static>); 2] {
        let (from_decision, from_capture) = match stage {
            "spawn" => ("decision_to_spawn_us", "capture_to_spawn_us"),
            _ => ("decision_to_write_us", "capture_to_write_us"),
        };
        [
            (from_decision, micros(at_us.saturating_sub(self.decided_us))),
            (from_capture, micros(at_us.saturating_sub(self.captured_us))),
        ]
    }

    /// The `-D` text of these times, the stage done at `acted_us` included.
    fn display(self, acted_us: u64) -> impl fmt::Display {
        StageLine {
            times: self,
            acted_us: Some(acted_us),
        }
    }
}

impl Record {
    /// The `-D` line of an open's stage times (capture, decision, and the nftables write),
    /// for the records that have them besides their 0.8 text line ([`Record::Open`],
    /// [`Record::SetElementAdded`]); `None` for the others.
    #[must_use]
    pub(crate) fn stage_times_line(&self, host: Option<&str>) -> Option<String> {
        match self {
            Self::Open {
                door,
                source,
                times,
            } => Some(format!(
                "{}: {door}: open: {}",
                Label(*source, host),
                StageLine {
                    times: *times,
                    acted_us: None
                }
            )),
            Self::SetElementAdded {
                add,
                written_us: Some(written),
            } => add.opened.map(|times| {
                format!(
                    "{}: {}: nftables set element written at {}; {}",
                    Label(add.address, host),
                    add.door,
                    UnixMicros(*written),
                    times.display(*written)
                )
            }),
            _ => None,
        }
    }
}

/// Which of a door's commands a [`Job`] runs, as JSON names it.
impl CommandKind {
    /// `start` or `stop`.
    #[must_use]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
        }
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;
    use crate::logging::LogLine as _;

    /// The hand-built flood lines are byte for byte what `Display` writes, for every octet
    /// value (one, two and three digits) and stage.
    #[test]
    fn flood_lines_match_display_for_every_octet() {
        for n in 0..=255_u8 {
            assert_eq!(decimal_octet(n), n.to_string().as_bytes());
            let source = IpAddr::from([n, 255 - n, n / 10, 7]);
            for record in [
                Record::Stage {
                    door: "door".into(),
                    source,
                    stage: usize::from(n),
                },
                Record::Timeout {
                    door: "d".into(),
                    source,
                    stage: 1000 + usize::from(n),
                },
            ] {
                for host in [None, Some("h.example")] {
                    let line = record.display(host);
                    let mut bytes = Vec::new();
                    line.append_to(&mut bytes);
                    assert_eq!(String::from_utf8(bytes).unwrap(), line.to_string());
                }
            }
        }
    }
}
