//! Where knockd's messages go: the `LogFile` (`[YYYY-MM-DD HH:MM] msg`, as 0.8), syslog
//! (ident `knockd`), `-v`/`-D` lines on stdout, errors on stderr, and the optional JSON-lines
//! event file.
//!
//! Priorities ([`Priority`]): knocks, opens and commands at NOTICE (as 0.8, same text), lines
//! starting with `warning:` at WARNING, errors at ERR, so `journalctl -p err -u knockd` shows
//! the errors only.
//!
//! Under systemd with neither `LogFile` nor `UseSyslog` (stderr is the journal stream that
//! `JOURNAL_STREAM` names), every log line goes to stderr once, with its priority as a `<N>`
//! prefix (sd-daemon(3)), so events reach the journal without `-v`; with `-v` the events are
//! not repeated on stdout.
//!
//! The logger is owned by the event-loop thread; nothing else writes to these sinks, so
//! lines never interleave.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The time stamp of a `LogFile` line: local time, minute resolution (as 0.8).
#[must_use]
pub(crate) fn log_file_time(now: Timestamp) -> String {
    now.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// One `LogFile` line, newline included: `[YYYY-MM-DD HH:MM] msg`.
#[cfg(test)]
#[must_use]
pub(crate) fn log_file_line(now: Timestamp, message: &str) -> String {
    format!("{}{}\n", line_stamp(now), one_line(message))
}

/// The start of a `LogFile` line: `[YYYY-MM-DD HH:MM] `.
fn line_stamp(now: Timestamp) -> String {
    format!("[{}] ", log_file_time(now))
}

/// The time stamp of a `-D` packet line: local time to the second, with the correct month
/// (0.8 printed the month 0-based).
#[must_use]
pub(crate) fn debug_time(now: Timestamp) -> String {
    now.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The body of a `-D` packet line, after its time stamp, as 0.8 prints it:
/// `tcp: SRC:SPORT -> DST:DPORT LEN bytes`.
#[must_use]
pub(crate) fn debug_packet(packet: &knock_core::PacketEvent) -> String {
    format!(
        "{}: {}:{} -> {}:{} {} bytes",
        packet.protocol,
        packet.source,
        packet.source_port,
        packet.destination,
        packet.destination_port,
        packet.wire_len
    )
}

/// Messages never carry line breaks into a log (0.8's stray blank lines are gone, and a
/// crafted value cannot forge a second log line).
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if message.contains(['\n', '\r']) {
        std::borrow::Cow::Owned(message.trim_end().replace(['\n', '\r'], " "))
    } else {
        std::borrow::Cow::Borrowed(message)
    }
}

/// A log line that can append its text to a buffer (faster than `Display` for the lines a
/// flood logs); the bytes are those of its `Display`.
pub(crate) trait LogLine: std::fmt::Display {
    /// Appends the line's text (what `Display` writes) to `out`.
    fn append_to(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{self}");
    }

    /// Whether a flood logs one of these per packet (a knock's step, a timeout): such
    /// lines may wait to be written with others (see [`FLOOD_FLUSH_INTERVAL`]).
    fn is_flood_line(&self) -> bool {
        false
    }
}

/// The syslog priority (severity) of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Priority {
    /// An error (`LOG_ERR`).
    Err = 3,
    /// A warning (`LOG_WARNING`).
    Warning = 4,
    /// A knock event, a command, start and stop (`LOG_NOTICE`, as 0.8 logs everything).
    Notice = 5,
}

impl Priority {
    /// The priority of a log line: `warning: …` lines are warnings, `error: …` lines errors,
    /// the others `default`.
    #[must_use]
    pub(crate) fn of(message: &str, default: Self) -> Self {
        if message.starts_with("warning:") {
            Self::Warning
        } else if message.starts_with("error:") {
            Self::Err
        } else {
            default
        }
    }
}

/// A syslog connection (RFC 3164 over the local socket), without the PID in the tag, as
/// 0.8's `openlog("knockd", 0, facility)`.
struct Syslog {
    facility: syslog::Facility,
    /// The socket, when not the system's (`/dev/log`): tests.
    path: Option<PathBuf>,
    logger: Option<syslog::Logger<syslog::LoggerBackend, Rfc3164NoPid>>,
}

/// RFC 3164 formatting with tag `knockd:` and no `[pid]`, time stamps in local time.
#[derive(Clone, Debug)]
struct Rfc3164NoPid {
    facility: u8,
}

impl<T: std::fmt::Display> syslog::LogFormat<T> for Rfc3164NoPid {
    fn format<W: Write>(
        &self,
        w: &mut W,
        severity: syslog::Severity,
        message: T,
    ) -> syslog::Result<()> {
        let stamp = Timestamp::now()
            .to_zoned(TimeZone::system())
            .strftime("%b %e %H:%M:%S")
            .to_string();
        // Facilities are defined as `code << 3`, so this is the RFC 3164 PRI value.
        let priority = self.facility | severity as u8;
        write!(w, "<{priority}>{stamp} knockd: {message}").map_err(syslog::Error::Write)
    }
}

impl Syslog {
    fn connect(facility: syslog::Facility, path: Option<PathBuf>) -> Self {
        let mut sink = Self {
            facility,
            path,
            logger: None,
        };
        sink.reconnect();
        sink
    }

    fn reconnect(&mut self) {
        let formatter = Rfc3164NoPid {
            facility: self.facility as u8,
        };
        self.logger = match &self.path {
            Some(path) => syslog::unix_custom(formatter, path).ok(),
            None => syslog::unix(formatter).ok(),
        };
    }

    fn send(&mut self, priority: Priority, message: &str) {
        fn emit(
            logger: &mut syslog::Logger<syslog::LoggerBackend, Rfc3164NoPid>,
            priority: Priority,
            message: &str,
        ) -> bool {
            match priority {
                Priority::Err => logger.err(message),
                Priority::Warning => logger.warning(message),
                Priority::Notice => logger.notice(message),
            }
            .is_ok()
        }
        let sent = self
            .logger
            .as_mut()
            .is_some_and(|l| emit(l, priority, message));
        if !sent {
            // The syslog daemon may have restarted: one reconnect attempt per message.
            self.reconnect();
            if let Some(logger) = self.logger.as_mut() {
                emit(logger, priority, message);
            }
        }
    }
}

/// Whether stderr is the journal stream systemd named in `JOURNAL_STREAM` (`DEV:INODE` of
/// the stream; systemd.exec(5) says to compare it with stderr's, since a child may inherit
/// the variable with another stderr).
fn stderr_is_journal() -> bool {
    static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *JOURNAL.get_or_init(|| {
        let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let value = value.to_string_lossy();
        let Some((dev, ino)) = value.split_once(':') else {
            return false;
        };
        let Ok(stat) = nix::sys::stat::fstat(io::stderr()) else {
            return false;
        };
        dev.parse::<u64>().ok() == Some(stat.st_dev) && ino.parse::<u64>().ok() == Some(stat.st_ino)
    })
}

/// Settings of the logger.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogOptions {
    /// `LogFile`/`-g`.
    pub(crate) log_file: Option<PathBuf>,
    /// `UseSyslog`, with its facility.
    pub(crate) syslog_facility: Option<syslog::Facility>,
    /// `-v`.
    pub(crate) verbose: bool,
    /// `-D`.
    pub(crate) debug: bool,
    /// `--json-log`.
    pub(crate) json_log: Option<PathBuf>,
}

/// All of knockd's output sinks.
pub(crate) struct Logger {
    options: LogOptions,
    file: Option<File>,
    json: Option<File>,
    syslog: Option<Syslog>,
    /// Whole log-file lines not yet written; see [`Logger::flush`].
    file_pending: Vec<u8>,
    /// Whole JSON lines not yet written.
    json_pending: Vec<u8>,
    /// `[YYYY-MM-DD HH:MM] ` for the minute it was made: the local-time conversion is done
    /// once a minute, not once a line (a flood logs a `Stage 1` line per spoofed packet).
    stamp: MinuteStamp,
    /// Log lines go to stderr with `<N>` priority prefixes: no `LogFile`, no `UseSyslog`, and
    /// stderr is the journal.
    journal: bool,
    /// Failed writes of the log file and of the JSON log (issue 10 item 15).
    file_failures: WriteFailures,
    json_failures: WriteFailures,
    /// The time of the lines logged now, when the driver read the clock for a whole batch
    /// of inputs ([`Logger::set_time`]); `None`: read per line.
    time: Option<Timestamp>,
    /// Something other than flood lines is pending: [`Logger::end_pass`] writes at once.
    urgent: bool,
    /// When the pending lines were last written (see [`FLOOD_FLUSH_INTERVAL`]).
    written_at: Option<std::time::Instant>,
}

/// Failed writes of one log: the first of a run is reported (stderr, syslog), the others
/// only counted; the first success after them says how many were lost.
#[derive(Debug, Default)]
struct WriteFailures {
    /// Failed writes since the last success.
    current: u64,
    /// Failed writes since knockd started.
    total: u64,
    /// Reports made (one per run of failures).
    reports: u64,
}

/// Pending log bytes beyond which a line is written at once instead of at the next flush.
const PENDING_LIMIT: usize = 64 * 1024;

/// How long lines of a flood only (see [`LogLine::is_flood_line`]) may wait for the next
/// write after the previous one, so that a flood costs tens of writes a second, not one
/// per pass of the event loop. Any other line is written at the end of its pass, with
/// everything before it.
pub(crate) const FLOOD_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// How long waiting flood lines may wait at most: the wake-up [`Logger::next_flush`] asks
/// for. Under a flood the event loop wakes for the capture's batches anyway (after each
/// capture pause, at most 16 ms by default), and their passes write the lines once
/// [`FLOOD_FLUSH_INTERVAL`] has passed; this later deadline only writes the last lines when
/// the flood stops, so the log costs the loop no wake-ups of its own.
pub(crate) const FLOOD_FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Default)]
struct MinuteStamp {
    minute: Option<i64>,
    text: String,
}

impl MinuteStamp {
    fn get(&mut self, now: Timestamp) -> &str {
        let minute = now.as_second().div_euclid(60);
        if self.minute != Some(minute) {
            self.text = line_stamp(now);
            self.minute = Some(minute);
        }
        &self.text
    }
}

/// Writes `pending` (whole lines only) to `file` in one call and empties it; `None` when
/// there was nothing to write.
fn write_pending(file: Option<&mut File>, pending: &mut Vec<u8>) -> Option<io::Result<()>> {
    let result = match file {
        Some(file) if !pending.is_empty() => Some(file.write_all(pending)),
        _ => None,
    };
    pending.clear();
    result
}

impl WriteFailures {
    /// Records the outcome of a write of the log `what` at `path`; the message to report, if
    /// any (a full disk is reported once, then counted).
    fn record(
        &mut self,
        result: io::Result<()>,
        what: &str,
        path: Option<&Path>,
    ) -> Option<String> {
        // Made only for a message (not at every successful write).
        let path = || path.map_or_else(String::new, |p| format!(" {}", p.display()));
        match result {
            Ok(()) if self.current > 0 => {
                let lost = std::mem::take(&mut self.current);
                Some(format!(
                    "{what}{} written again after {lost} failed writes (their lines are lost)",
                    path()
                ))
            }
            Ok(()) => None,
            Err(e) => {
                self.current += 1;
                self.total += 1;
                (self.current == 1).then(|| {
                    self.reports += 1;
                    format!(
                        "error: cannot write {what}{}: {}; further failures are counted, \
                         not reported",
                        path(),
                        crate::io_reason(&e)
                    )
                })
            }
        }
    }
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // std opens every file with O_CLOEXEC, so commands never inherit it (0.8 bug B11).
    // A symbolic link is refused, not followed (issue 10 item 15: whoever could plant it
    // made root append to any file).
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                io::Error::other("it is a symbolic link (not followed)")
            } else {
                e
            }
        })
}

impl Logger {
    /// Opens the sinks. A log file that cannot be opened is reported on stderr and skipped
    /// (as 0.8), so a bad `LogFile` path does not stop the daemon.
    #[must_use]
    pub(crate) fn open(options: LogOptions) -> Self {
        let mut logger = Self {
            file: None,
            json: None,
            syslog: options
                .syslog_facility
                .map(|facility| Syslog::connect(facility, None)),
            options,
            file_pending: Vec::new(),
            json_pending: Vec::new(),
            stamp: MinuteStamp::default(),
            journal: false,
            file_failures: WriteFailures::default(),
            json_failures: WriteFailures::default(),
            time: None,
            urgent: false,
            written_at: None,
        };
        logger.open_files();
        logger
    }

    /// A logger whose syslog lines go to the socket at `path` (a test's `/dev/log`).
    #[cfg(test)]
    fn open_with_syslog_at(options: LogOptions, path: &Path) -> Self {
        let mut logger = Self::open(options);
        logger.syslog = logger
            .options
            .syslog_facility
            .map(|facility| Syslog::connect(facility, Some(path.to_owned())));
        logger
    }

    fn open_files(&mut self) {
        self.flush();
        self.journal = self.options.log_file.is_none()
            && self.options.syslog_facility.is_none()
            && stderr_is_journal();
        self.file = None;
        self.json = None;
        if let Some(path) = self.options.log_file.clone() {
            match open_append(&path) {
                Ok(file) => self.file = Some(file),
                Err(e) => stderr_line(&format!(
                    "warning: cannot open logfile {}: {}",
                    path.display(),
                    crate::io_reason(&e)
                )),
            }
        }
        if let Some(path) = self.options.json_log.clone() {
            match open_append(&path) {
                Ok(file) => self.json = Some(file),
                Err(e) => stderr_line(&format!(
                    "warning: cannot open JSON log {}: {}",
                    path.display(),
                    crate::io_reason(&e)
                )),
            }
        }
    }

    /// Replaces the settings (after a reload) and reopens every file (logrotate).
    pub(crate) fn reconfigure(&mut self, options: LogOptions) {
        let code = |f: Option<syslog::Facility>| f.map(|f| f as u8);
        if code(options.syslog_facility) != code(self.options.syslog_facility) {
            self.syslog = options
                .syslog_facility
                .map(|facility| Syslog::connect(facility, None));
        } else if let Some(syslog) = self.syslog.as_mut() {
            syslog.reconnect();
        }
        self.options = options;
        self.open_files();
    }

    /// The current settings.
    #[must_use]
    pub(crate) fn options(&self) -> &LogOptions {
        &self.options
    }

    /// Whether `-D` is on.
    #[must_use]
    pub(crate) fn is_debug(&self) -> bool {
        self.options.debug
    }

    /// A message for the log file and syslog only (0.8's `logprint`).
    ///
    /// Log-file lines are gathered and written by [`end_pass`](Self::end_pass), which the
    /// event loop calls before it waits, so a line reaches the file within one pass of the
    /// loop (a flood's lines within [`FLOOD_FLUSH_DEADLINE`]).
    /// Only whole lines are written, so readers (`tail -f`) never see half a line.
    pub(crate) fn log(&mut self, message: &str) {
        self.log_at(Priority::of(message, Priority::Notice), message);
    }

    /// [`log`](Self::log) at this priority (syslog and journal).
    fn log_at(&mut self, priority: Priority, message: &str) {
        self.urgent = true;
        if self.journal {
            let _ = writeln!(
                io::stderr().lock(),
                "<{}>{}",
                priority as u8,
                one_line(message)
            );
        }
        if self.file.is_some() {
            let stamp = self.stamp.get(self.time.unwrap_or_else(Timestamp::now));
            self.file_pending.extend_from_slice(stamp.as_bytes());
            self.file_pending
                .extend_from_slice(one_line(message).as_bytes());
            self.end_file_line();
        }
        if let Some(syslog) = self.syslog.as_mut() {
            syslog.send(priority, &one_line(message));
        }
    }

    /// Ends the log-file line being gathered (written at once if enough is pending).
    fn end_file_line(&mut self) {
        self.file_pending.push(b'\n');
        if self.file_pending.len() >= PENDING_LIMIT {
            self.write_file();
        }
    }

    /// Stamps the lines logged from now on with `time` (the clock read once for a batch of
    /// inputs: a flood logs a line per packet), or, with `None`, with the time each is logged.
    pub(crate) fn set_time(&mut self, time: Option<Timestamp>) {
        self.time = time;
    }

    /// [`event`](Self::event) for a line given as `Display` (a record's line): formatted
    /// straight into the log file's pending buffer, with the same bytes as `event` of its
    /// `to_string()`, when no other sink needs it as a string (no `-v`, syslog or journal):
    /// no allocation per line in a flood.
    pub(crate) fn event_display(&mut self, message: &dyn LogLine) {
        if self.journal || self.options.verbose || self.syslog.is_some() {
            self.event(&message.to_string());
            return;
        }
        if !message.is_flood_line() {
            self.urgent = true;
        }
        // What `event` does here: `verbose` prints nothing, `log_at` writes the file only.
        if self.file.is_none() {
            return;
        }
        let stamp = self.stamp.get(self.time.unwrap_or_else(Timestamp::now));
        self.file_pending.extend_from_slice(stamp.as_bytes());
        let start = self.file_pending.len();
        message.append_to(&mut self.file_pending);
        // memchr2: a vectorised search (a byte loop here was most of this function's time
        // in a flood, one line per packet).
        if memchr::memchr2(b'\n', b'\r', &self.file_pending[start..]).is_some() {
            // Rare (a door name with a line break): as `one_line`, on the text written.
            let text = String::from_utf8_lossy(&self.file_pending[start..]).into_owned();
            self.file_pending.truncate(start);
            self.file_pending
                .extend_from_slice(one_line(&text).as_bytes());
        }
        self.end_file_line();
    }

    /// [`verbose`](Self::verbose) for a line given as `Display`: formatted only with `-v`.
    pub(crate) fn verbose_display(&mut self, message: &dyn std::fmt::Display) {
        if self.options.verbose {
            println_flushed(&message.to_string());
        }
    }

    /// [`debug`](Self::debug) for a line given as `Display`: formatted only with `-D`.
    pub(crate) fn debug_display(&mut self, message: &dyn std::fmt::Display) {
        if self.options.debug {
            println_flushed(&message.to_string());
        }
    }

    /// The end of a pass of the event loop: the gathered lines are written, unless they are
    /// only flood lines and the last write was less than [`FLOOD_FLUSH_INTERVAL`] ago (then
    /// they wait for [`next_flush`](Self::next_flush), or for a line that is not a flood
    /// line, or for [`PENDING_LIMIT`]).
    pub(crate) fn end_pass(&mut self) {
        self.end_pass_at(std::time::Instant::now());
    }

    /// [`end_pass`](Self::end_pass) at `now`.
    fn end_pass_at(&mut self, now: std::time::Instant) {
        if self.file_pending.is_empty() && self.json_pending.is_empty() {
            return;
        }
        if !self.urgent
            && let Some(written_at) = self.written_at
            && now < written_at + FLOOD_FLUSH_INTERVAL
        {
            return;
        }
        self.flush();
    }

    /// When deferred flood lines must be written ([`FLOOD_FLUSH_DEADLINE`] after the last
    /// write; `None`: nothing waits).
    #[must_use]
    pub(crate) fn next_flush(&self) -> Option<std::time::Instant> {
        if self.file_pending.is_empty() && self.json_pending.is_empty() {
            return None;
        }
        Some(
            self.written_at
                .map_or_else(std::time::Instant::now, |at| at + FLOOD_FLUSH_DEADLINE),
        )
    }

    /// Writes the gathered log-file and JSON lines.
    pub(crate) fn flush(&mut self) {
        if !self.file_pending.is_empty() || !self.json_pending.is_empty() {
            self.written_at = Some(std::time::Instant::now());
        }
        self.urgent = false;
        self.write_file();
        if let Some(result) = write_pending(self.json.as_mut(), &mut self.json_pending)
            && let Some(message) =
                self.json_failures
                    .record(result, "JSON log", self.options.json_log.as_deref())
        {
            self.report_write(&message);
        }
    }

    /// Failed writes of the log file and the JSON log since knockd started.
    #[must_use]
    pub(crate) const fn write_failures(&self) -> u64 {
        self.file_failures.total + self.json_failures.total
    }

    fn write_file(&mut self) {
        if let Some(result) = write_pending(self.file.as_mut(), &mut self.file_pending)
            && let Some(message) =
                self.file_failures
                    .record(result, "log file", self.options.log_file.as_deref())
        {
            self.report_write(&message);
            if self.file_failures.current == 0 {
                // Recovered: the file says what it lost.
                self.log(&message);
            }
        }
    }

    /// A log write failure (or recovery): stderr and syslog, not the failing file.
    fn report_write(&mut self, message: &str) {
        stderr_line(message);
        if let Some(syslog) = self.syslog.as_mut() {
            syslog.send(Priority::of(message, Priority::Err), message);
        }
    }

    /// A message for the log, syslog and (with `-v`) stdout: knock events and commands.
    /// Under the journal, `-v` does not repeat them on stdout (they are in the journal once).
    pub(crate) fn event(&mut self, message: &str) {
        if !self.journal {
            self.verbose(message);
        }
        self.log(message);
    }

    /// A `-v` line on stdout (flushed at once: stdout is line-buffered).
    pub(crate) fn verbose(&mut self, message: &str) {
        if self.options.verbose {
            println_flushed(message);
        }
    }

    /// A `-D` line on stdout.
    pub(crate) fn debug(&mut self, message: &str) {
        if self.options.debug {
            println_flushed(message);
        }
    }

    /// An error: stderr, log file and syslog, at ERR (at WARNING if it starts with
    /// `warning:`). Under the journal it is on stderr once, with its priority.
    pub(crate) fn error(&mut self, message: &str) {
        // With UseSyslog under systemd, /dev/log is the journal too: the syslog copy is
        // enough there (nothing twice in the journal).
        let syslog_is_journal = self.syslog.is_some() && stderr_is_journal();
        if !self.journal && !syslog_is_journal {
            stderr_line(&one_line(message));
        }
        self.log_at(Priority::of(message, Priority::Err), message);
        self.flush();
    }

    /// One JSON event line, if `--json-log` is on (see [`JsonEvent::write_line`]).
    pub(crate) fn json(&mut self, event: &JsonEvent<'_>) {
        if self.json.is_some() {
            if !matches!(event.event, "stage" | "timeout" | "invalidated") {
                self.urgent = true;
            }
            event.write_line(&mut self.json_pending);
            if self.json_pending.len() >= PENDING_LIMIT {
                write_pending(self.json.as_mut(), &mut self.json_pending);
            }
        }
    }

    /// Whether `--json-log` is writing.
    #[must_use]
    pub(crate) fn has_json(&self) -> bool {
        self.json.is_some()
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.flush();
    }
}

/// One line on stderr. Unlike `eprintln!`, a closed stderr is not a panic. When stderr is
/// the journal, the line carries its priority (`<4>` for `warning:` lines, `<3>` otherwise).
pub(crate) fn stderr_line(message: &str) {
    if stderr_is_journal() {
        let priority = Priority::of(message, Priority::Err) as u8;
        let _ = writeln!(io::stderr().lock(), "<{priority}>{message}");
    } else {
        let _ = writeln!(io::stderr().lock(), "{message}");
    }
}

fn println_flushed(message: &str) {
    let mut out = io::stdout().lock();
    // A closed stdout (e.g. the reader went away) must not kill the daemon.
    let _ = writeln!(out, "{}", one_line(message));
    let _ = out.flush();
}

/// One event for the JSON-lines output.
#[derive(Clone, Debug)]
pub(crate) struct JsonEvent<'a> {
    /// `stage`, `open`, `close`, `timeout`, `invalidated`, `command`, `nft` (an nftables set element added or not).
    pub(crate) event: &'a str,
    /// When it happened.
    pub(crate) time: Timestamp,
    /// The door's name.
    pub(crate) door: &'a str,
    /// The knocker.
    pub(crate) source: IpAddr,
    /// The knocker's host name, when `-l` found one.
    pub(crate) host: Option<&'a str>,
    /// Extra fields.
    pub(crate) fields: Vec<(&'a str, JsonValue<'a>)>,
}

/// A value of an extra JSON field.
#[derive(Clone, Debug)]
pub(crate) enum JsonValue<'a> {
    /// A string.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// `true`/`false`.
    Bool(bool),
}

impl JsonEvent<'_> {
    /// The object as one line, newline included.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn to_line(&self) -> String {
        let mut line = Vec::new();
        self.write_line(&mut line);
        String::from_utf8(line).unwrap_or_default()
    }

    /// Appends the object as one line, newline included, to `out`, with no intermediate map
    /// or strings (one line per knock during a flood). Keys are in alphabetical order, as a
    /// `serde_json::Map` prints them; a field repeating a key replaces its value.
    pub(crate) fn write_line(&self, out: &mut Vec<u8>) {
        enum Entry<'v> {
            Value(&'v JsonValue<'v>),
            Str(&'v str),
            /// A value whose text needs no JSON escaping (time stamp, IP address).
            Plain(&'v dyn std::fmt::Display),
        }
        let mut entries: Vec<(&str, Entry<'_>)> = Vec::with_capacity(5 + self.fields.len());
        entries.push(("time", Entry::Plain(&self.time)));
        entries.push(("event", Entry::Str(self.event)));
        entries.push(("door", Entry::Str(self.door)));
        entries.push(("source", Entry::Plain(&self.source)));
        if let Some(host) = self.host {
            entries.push(("host", Entry::Str(host)));
        }
        for (key, value) in &self.fields {
            entries.push((key, Entry::Value(value)));
        }
        // Latest first, so that of equal keys the stable sort and dedup keep the latest.
        entries.reverse();
        entries.sort_by_key(|(key, _)| *key);
        entries.dedup_by_key(|(key, _)| *key);
        out.push(b'{');
        for (i, (key, entry)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            match entry {
                Entry::Str(s) | Entry::Value(JsonValue::Str(s)) => {
                    let _ = serde_json::to_writer(&mut *out, s);
                }
                Entry::Value(JsonValue::Int(n)) => {
                    let _ = write!(out, "{n}");
                }
                Entry::Value(JsonValue::Bool(b)) => {
                    out.extend_from_slice(if *b { b"true" } else { b"false" });
                }
                Entry::Plain(value) => {
                    let _ = write!(out, "\"{value}\"");
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_lines_have_0_8_shape() {
        let now: Timestamp = "2026-11-21T04:50:33Z".parse().unwrap();
        let line = log_file_line(now, "10.0.0.1: openSSH: Stage 1");
        // The local zone may differ from UTC; check the shape, then the text.
        let bytes = line.as_bytes();
        assert_eq!(bytes[0], b'[');
        assert_eq!(&line[17..19], "] ");
        assert!(
            line[1..17]
                .chars()
                .all(|c| c.is_ascii_digit() || "- :".contains(c))
        );
        assert!(line.ends_with("] 10.0.0.1: openSSH: Stage 1\n"));
        let utc = now
            .to_zoned(TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M")
            .to_string();
        assert_eq!(utc, "2026-11-21 04:50");
    }

    #[test]
    fn no_stray_blank_lines() {
        let now = Timestamp::UNIX_EPOCH;
        let line = log_file_line(now, "re-reading config file: /etc/knockd.conf\n");
        assert_eq!(line.matches('\n').count(), 1);
        let line = log_file_line(now, "a\nb");
        assert!(line.ends_with("] a b\n"));
    }

    #[test]
    fn debug_time_has_the_right_month() {
        let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        let text = debug_time(now);
        assert_eq!(&text[4..8], "-11-", "{text}");
    }

    #[test]
    fn json_events_escape_and_carry_the_source() {
        let event = JsonEvent {
            event: "open",
            time: "2026-11-21T04:50:33Z".parse().unwrap(),
            door: "door \"x\"\n",
            source: "10.0.0.1".parse().unwrap(),
            host: None,
            fields: vec![("stage", JsonValue::Int(3)), ("ok", JsonValue::Bool(true))],
        };
        let line = event.to_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["source"], "10.0.0.1");
        assert_eq!(value["door"], "door \"x\"\n");
        assert_eq!(value["event"], "open");
        assert_eq!(value["stage"], 3);
        assert_eq!(value["time"], "2026-11-21T04:50:33Z");
    }

    /// The line is byte for byte what a `serde_json::Map` of the same entries prints.
    #[test]
    fn json_lines_equal_serde_json_map_output() {
        let event = JsonEvent {
            event: "command",
            time: "2026-11-21T04:50:33.123456Z".parse().unwrap(),
            door: "d\u{1}\"\\é",
            source: "fd00::1".parse().unwrap(),
            host: Some("h.example"),
            fields: vec![
                ("kind", JsonValue::Str("stop")),
                ("status", JsonValue::Int(-3)),
                ("success", JsonValue::Bool(false)),
                ("door", JsonValue::Str("replaced")),
            ],
        };
        let mut map = serde_json::Map::new();
        map.insert("time".into(), event.time.to_string().into());
        map.insert("event".into(), event.event.into());
        map.insert("door".into(), event.door.into());
        map.insert("source".into(), event.source.to_string().into());
        map.insert("host".into(), "h.example".into());
        map.insert("kind".into(), "stop".into());
        map.insert("status".into(), (-3).into());
        map.insert("success".into(), false.into());
        map.insert("door".into(), "replaced".into());
        let expected = format!("{}\n", serde_json::Value::Object(map));
        assert_eq!(event.to_line(), expected);
    }

    #[test]
    fn syslog_messages_have_0_8_shape() {
        use syslog::LogFormat as _;
        let formatter = Rfc3164NoPid {
            facility: syslog::Facility::LOG_DAEMON as u8,
        };
        let mut out = Vec::new();
        formatter
            .format(
                &mut out,
                syslog::Severity::LOG_NOTICE,
                "10.0.0.1: A: OPEN SESAME",
            )
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // `<29>Nov 21 04:54:53 knockd: 10.0.0.1: A: OPEN SESAME`, as 0.8 on Debian.
        assert!(text.starts_with("<29>"), "{text}");
        assert_eq!(
            text.len(),
            "<29>Nov 21 04:54:53 knockd: 10.0.0.1: A: OPEN SESAME".len()
        );
        assert!(
            text.ends_with(" knockd: 10.0.0.1: A: OPEN SESAME"),
            "{text}"
        );
        let user = Rfc3164NoPid {
            facility: syslog::Facility::LOG_USER as u8,
        };
        let mut out = Vec::new();
        user.format(&mut out, syslog::Severity::LOG_NOTICE, "x")
            .unwrap();
        assert!(out.starts_with(b"<13>"));
    }

    /// Through a private `/dev/log`: errors at ERR, warnings at WARNING, knocks at NOTICE
    /// (0.8's text), each once.
    #[test]
    fn syslog_priorities_mean_something() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut logger = Logger::open_with_syslog_at(
            LogOptions {
                syslog_facility: Some(syslog::Facility::LOG_DAEMON),
                ..LogOptions::default()
            },
            &path,
        );
        logger.event("10.0.0.1: openSSH: OPEN SESAME");
        logger.error("error: cannot write state file /x: Read-only file system");
        logger.error("warning: interface eth9 is not available yet (No such device), waiting");
        logger.log("warning: the door d has no command");
        logger.error("could not create pid file /run/x.pid: Permission denied");
        let mut got = Vec::new();
        for _ in 0..5 {
            let mut buf = [0u8; 1024];
            let n = socket.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let pri = |line: &str| line[1..line.find('>').unwrap()].parse::<u8>().unwrap();
        // LOG_DAEMON is 3 << 3 = 24: NOTICE 29, WARNING 28, ERR 27.
        assert_eq!(
            got.iter().map(|l| pri(l)).collect::<Vec<_>>(),
            [29, 27, 28, 28, 27],
            "{got:?}"
        );
        assert!(
            got[0].ends_with(" knockd: 10.0.0.1: openSSH: OPEN SESAME"),
            "{got:?}"
        );
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(socket.recv(&mut buf).is_err(), "a line sent twice");
    }

    /// Issue 10 item 15: the log file followed symbolic links (root appended to whatever
    /// the link named); it is refused and its target left alone.
    #[test]
    fn issue10_item15_a_symlinked_log_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let path = dir.path().join("knockd.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = open_append(&path).unwrap_err();
        assert_eq!(err.to_string(), "it is a symbolic link (not followed)");
        let mut logger = Logger::open(LogOptions {
            log_file: Some(path),
            ..LogOptions::default()
        });
        logger.log("10.0.0.1: d: OPEN SESAME");
        logger.flush();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    }

    /// Issue 10 item 15: a full disk on the log is reported once, then counted (/dev/full
    /// fails every write with ENOSPC).
    #[test]
    fn issue10_item15_a_full_log_disk_is_reported_once_then_counted() {
        let mut logger = Logger::open(LogOptions {
            log_file: Some(PathBuf::from("/dev/full")),
            ..LogOptions::default()
        });
        for _ in 0..5 {
            logger.log("10.0.0.1: d: Stage 1");
            logger.flush();
        }
        assert_eq!(logger.write_failures(), 5);
        assert_eq!(logger.file_failures.reports, 1);
        let mut failures = WriteFailures::default();
        let full = || Err(io::Error::from_raw_os_error(28));
        let first = failures.record(full(), "log file", Some(Path::new("/var/log/k")));
        assert_eq!(
            first.as_deref(),
            Some(
                "error: cannot write log file /var/log/k: No space left on device; further \
                 failures are counted, not reported"
            )
        );
        assert_eq!(failures.record(full(), "log file", None), None);
        assert_eq!(
            failures.record(Ok(()), "log file", None).as_deref(),
            Some("log file written again after 2 failed writes (their lines are lost)")
        );
        assert_eq!(failures.record(Ok(()), "log file", None), None);
    }

    #[test]
    fn log_file_receives_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.log");
        let mut logger = Logger::open(LogOptions {
            log_file: Some(path.clone()),
            ..LogOptions::default()
        });
        logger.log("starting up, listening on lo");
        logger.event("10.0.0.1: d: OPEN SESAME");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "lines are gathered until the loop flushes"
        );
        logger.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'), "whole lines only: {text:?}");
        // The logger's layout is log_file_line's (the minute may turn between the calls).
        let reference = log_file_line(Timestamp::now(), "starting up, listening on lo");
        assert_eq!(lines[0].len() + 1, reference.len(), "{text:?}");
        assert!(lines[0].ends_with("] starting up, listening on lo"));
        assert!(lines[1].ends_with("] 10.0.0.1: d: OPEN SESAME"));
        // Reopen after a rotation: the new file gets the next line.
        std::fs::rename(&path, dir.path().join("knockd.log.1")).unwrap();
        let options = logger.options().clone();
        logger.reconfigure(options);
        logger.log("after rotation");
        // Dropping the logger writes what is left.
        drop(logger);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("] after rotation\n")
        );
    }

    /// Every kind of record, with a plain door name and one needing `one_line`.
    fn sample_records() -> Vec<crate::core::Record> {
        use crate::core::SetElementAdd;
        use crate::core::{CodeRefusal, CommandKind, CommandOutcome, Job, OpenTimes, Record};
        use knock_core::{NftFamily, NftSetRef};
        use std::time::Duration;
        let source: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let mut records = Vec::new();
        for door in ["openSSH", "two\nlines\r\n", "tail \n"] {
            let job = Job {
                door: door.to_owned(),
                source,
                kind: CommandKind::Start,
                command: "echo hi\nthere".to_owned(),
                stop: None,
                opened: None,
            };
            let add = SetElementAdd {
                door: door.to_owned(),
                set: NftSetRef::new(NftFamily::Inet, "knockd", "ssh4"),
                address: v6,
                timeout: Duration::from_millis(1_500),
                opened: None,
            };
            let times = OpenTimes {
                captured_us: 1,
                decided_us: 2,
            };
            records.extend([
                Record::Stage {
                    door: door.into(),
                    source,
                    stage: 1,
                },
                Record::Open {
                    door: door.into(),
                    source,
                    times,
                },
                Record::Close {
                    door: door.into(),
                    source,
                },
                Record::ShutdownClose {
                    door: door.into(),
                    source,
                },
                Record::Timeout {
                    door: door.into(),
                    source,
                    stage: 2,
                },
                Record::Invalidated {
                    door: door.into(),
                    source: v6,
                    stage: 3,
                },
                Record::CodeUsed {
                    door: door.into(),
                    source,
                    code_step: 7,
                },
                Record::CodeRefused {
                    door: door.into(),
                    source,
                    refusal: CodeRefusal::Stale {
                        steps: 2,
                        code_step: 5,
                    },
                },
                Record::StopRestored {
                    door: door.into(),
                    source,
                    due_in: Duration::from_secs(3),
                    state_file: "/var/lib/knockd/state".into(),
                },
                Record::StopOverdue {
                    door: door.into(),
                    source,
                },
                Record::StopsLeft {
                    count: 2,
                    state_file: "/tmp/s\nx".into(),
                },
                Record::StartRefused {
                    door: door.into(),
                    source,
                    waiting: 3,
                    refused: 4,
                },
                Record::CommandFinished {
                    job: Box::new(job.clone()),
                    outcome: CommandOutcome::Exited(1),
                },
                Record::CommandKilled {
                    door: door.into(),
                    source,
                    after: Duration::from_secs(5),
                    pid: 42,
                },
                Record::OtsNext {
                    door: door.into(),
                    sequence: Vec::new(),
                },
                Record::OtsExhausted { door: door.into() },
                Record::OtsWriteFailed {
                    error: "full".into(),
                },
                Record::OtsDisabled { door: door.into() },
                Record::SetElementAdded {
                    add: Box::new(add.clone()),
                    written_us: Some(3),
                },
                Record::CommandStarted {
                    job: Box::new(job),
                    pid: 42,
                    spawned_us: 3,
                    spawn_call_us: 1,
                },
                Record::SetElementFailed {
                    add: Box::new(add),
                    error: "no\nway".into(),
                },
                Record::StopSpawnFailed {
                    door: door.into(),
                    source,
                    error: "EAGAIN".into(),
                    attempt: 2,
                    retry_in: Duration::from_secs(4),
                },
                Record::OpenNotDurable {
                    door: door.into(),
                    source,
                    state_file: "/state".into(),
                    refused: 1,
                },
                Record::SpaGranted {
                    door: door.into(),
                    source,
                    address: "10.0.0.1".into(),
                    ports: "tcp/22".into(),
                    username: "u\nv".into(),
                },
                Record::SpaRefused {
                    door: door.into(),
                    source,
                    code: "replay",
                    reason: "seen \n\r".into(),
                },
            ]);
        }
        records
    }

    #[test]
    fn event_display_writes_the_bytes_of_event() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.log");
        let new = dir.path().join("new.log");
        let open = |path: &Path| {
            Logger::open(LogOptions {
                log_file: Some(path.to_owned()),
                ..LogOptions::default()
            })
        };
        let (mut by_string, mut by_display) = (open(&old), open(&new));
        // One clock for both (the minute must not turn between them).
        let time: Timestamp = "2026-11-21T04:50:33Z".parse().unwrap();
        by_string.set_time(Some(time));
        by_display.set_time(Some(time));
        let records = sample_records();
        for record in &records {
            for host in [None, Some("host.example"), Some("bad\nhost")] {
                let line = record.display(host);
                by_string.event(&line.to_string());
                by_display.event_display(&line);
            }
        }
        by_string.flush();
        by_display.flush();
        let expected = std::fs::read(&old).unwrap();
        assert_eq!(
            expected.split(|&b| b == b'\n').count(),
            records.len() * 3 + 1
        );
        assert!(String::from_utf8_lossy(&expected).contains("] 10.0.0.1: two lines  : Stage 1\n"));
        assert_eq!(std::fs::read(&new).unwrap(), expected);
        // Without a log file (and no other sink) nothing is written, as by `event`.
        let mut silent = Logger::open(LogOptions::default());
        silent.event_display(&records[0].display(None));
        assert!(silent.file_pending.is_empty());
    }

    #[test]
    fn flood_lines_wait_for_the_next_write_other_lines_do_not() {
        use crate::core::Record;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.log");
        let mut logger = Logger::open(LogOptions {
            log_file: Some(path.clone()),
            ..LogOptions::default()
        });
        let source: IpAddr = "10.0.0.1".parse().unwrap();
        let stage = |n| Record::Stage {
            door: "d".into(),
            source,
            stage: n,
        };
        let written = || std::fs::read_to_string(&path).unwrap();
        assert_eq!(logger.next_flush(), None, "nothing waits at idle");
        // The first line after a quiet time is written at the end of its pass.
        logger.event_display(&stage(1).display(None));
        logger.end_pass();
        assert!(written().ends_with("] 10.0.0.1: d: Stage 1\n"));
        let first = logger.written_at.unwrap();
        // A flood line right after waits (with a wake-up for it at the later deadline) …
        logger.event_display(&stage(2).display(None));
        logger.end_pass_at(first + FLOOD_FLUSH_INTERVAL / 2);
        assert_eq!(written().lines().count(), 1);
        assert_eq!(logger.next_flush(), Some(first + FLOOD_FLUSH_DEADLINE));
        // … and goes with the first pass after the interval (a flood's next batch).
        logger.end_pass_at(first + FLOOD_FLUSH_INTERVAL);
        assert!(written().ends_with("] 10.0.0.1: d: Stage 2\n"));
        assert_eq!(logger.next_flush(), None);
        // Another line takes the waiting flood lines with it at the end of its pass.
        let second = logger.written_at.unwrap();
        logger.event_display(&stage(3).display(None));
        logger.end_pass_at(second);
        assert_eq!(written().lines().count(), 2);
        let open = Record::Close {
            door: "d".into(),
            source,
        };
        logger.event_display(&open.display(None));
        logger.end_pass_at(second);
        assert!(
            written().contains("] 10.0.0.1: d: Stage 3\n[")
                && written().ends_with("] 10.0.0.1: d: command timeout\n"),
            "{}",
            written()
        );
        // So does any plain message.
        let third = logger.written_at.unwrap();
        logger.event_display(&stage(4).display(None));
        logger.log("starting up");
        logger.end_pass_at(third);
        assert!(
            written().contains("] 10.0.0.1: d: Stage 4\n[")
                && written().ends_with("] starting up\n"),
            "{}",
            written()
        );
        assert_eq!(written().lines().count(), 6);
    }
}
