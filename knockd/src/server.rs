//! The live driver: startup, the event loop, reload and shutdown, around the daemon core.
//!
//! Every decision (what a packet means, what to log, which command to run, when a stop is
//! due, how a one-time sequence advances) is the core's ([`crate::core`]); this module feeds
//! it inputs with the time and performs its effects: capture filter, executor, state file,
//! one-time sequences files, logs. One thread (this one) owns all state: the core, the
//! executor's bookkeeping, the logger, the state file. Other threads only send it events over channels: the capture threads
//! (packets, interface and address changes; a bounded channel, so a flood cannot grow
//! memory), the signal thread (SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2), the command
//! waiters (a command finished) and the `-l` lookup worker. Timers (sequence timeouts, stop
//! commands, command kill deadlines) are the `select!` timeout. Signals are handled here, in
//! the loop, never in a signal handler (0.8 bug B3).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::{Receiver, select};
use jiff::Timestamp;
use knock_capture::{CaptureConfig, CaptureEvent, Clock, LiveCapture};
use knock_core::{Config, Limits, PacketEvent};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::cli::{Cli, Settings};
use crate::core::{Core, CoreOptions, Effect, Job, Level, Record, Time};
use crate::executor::{Executor, Finished, MAX_QUEUED_STARTS, Notice};
use crate::load::{Loaded, load};
use crate::logging::{LogOptions, Logger, debug_packet, debug_time};
use crate::lookup::Lookup;
use crate::nft::NftSets;
use crate::notify::Notifier;
use crate::process::{LeftStart, LockError, PidFile, StateLock, daemonize, stop_left_start};
use crate::state::{RunningStart, StateFile};
use crate::status::StatusKeeper;
use crate::{Error, Exit};

/// How long shutdown waits for running commands (the pending stop commands included) before
/// exiting anyway; stops that did not run stay in the state file for the next start.
pub(crate) const SHUTDOWN_BUDGET: Duration = Duration::from_secs(30);
/// Least time between two writes of the state file: under a flood of opens it is written at
/// most this often (the start commands waiting for it run right after), at idle at once.
const STATE_WRITE_INTERVAL: Duration = Duration::from_millis(10);
/// A write of the state file is followed by at least this many times its own duration
/// without one (up to [`STATE_RETRY_INTERVAL`]), so that writing it takes at most a tenth
/// of the event loop's time however many pending stops it holds (a flood that opens a door
/// with a stop command: thousands), as long as a write takes under about 0.1 s (beyond,
/// writes are still a second apart).
const STATE_WRITE_SPACING: u32 = 9;
/// How long startup waits for a killed start command's process group to disappear.
const LEFT_START_WAIT: Duration = Duration::from_secs(5);
/// Least time between two attempts to write a state file whose last write failed.
const STATE_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Most capture events (a batch counting as its packets) handled in one go (one loop pass)
/// before timers and signals are looked at again; the packets among them go to the core as
/// one burst. Also the most packets per capture batch (`CaptureConfig::packet_batch`).
const PACKET_BATCH: usize = 256;

/// The least time from a write of the state file (or a failed try) to the next: see
/// [`STATE_RETRY_INTERVAL`], [`STATE_WRITE_INTERVAL`] and [`STATE_WRITE_SPACING`]. `took`:
/// how long the last write took, its sync included.
fn write_interval(failing: bool, took: Duration) -> Duration {
    if failing {
        STATE_RETRY_INTERVAL
    } else {
        // At most a second apart all the same (a very slow disk).
        STATE_WRITE_INTERVAL
            .max(took.saturating_mul(STATE_WRITE_SPACING))
            .min(STATE_RETRY_INTERVAL)
    }
}

/// What a capture event counts for against [`PACKET_BATCH`]: its packets (at least 1).
fn event_weight(event: &CaptureEvent) -> usize {
    match event {
        CaptureEvent::Packets(batch) => batch.len().max(1),
        _ => 1,
    }
}

/// Runs the daemon until SIGINT/SIGTERM.
///
/// # Errors
/// The configuration is invalid, or capture cannot start or gave up.
pub(crate) fn run(cli: Cli) -> Result<Exit, Error> {
    let cwd = std::env::current_dir().map_err(Error::CurrentDir)?;
    let config_shown = cli.config.display().to_string();
    // Absolute, so reloads work after `-d` changed the directory.
    let config_path = crate::cli::absolute_from(&cwd, &cli.config);
    let loaded = load(&config_shown, &config_path, &cwd)?;
    for warning in &loaded.warnings {
        crate::logging::stderr_line(&format!("warning: {warning}"));
    }
    let settings = Settings::resolve(&cli, &loaded.config, &cwd);
    let mut logger = Logger::open(log_options(&cli, &settings, &cwd));
    for warning in &loaded.ots_warnings {
        logger.error(&format!("warning: {warning}"));
    }
    // Issue 10 item 9: interfaces listed beside `any` were dropped (each packet twice).
    if let Some(warning) = settings.overlap_warning() {
        logger.error(&format!("warning: {warning}"));
    }

    // Before daemonizing, so that a missing set is an error on the terminal and exit 1.
    let nft = open_nft_sets(&loaded.config).inspect_err(|e| {
        logger.log(&format!("error: {e}"));
    })?;

    // Issue 10 item 6: one instance per state file (before daemonizing, so that the refusal
    // reaches the terminal; the lock survives the fork).
    let state_path = crate::cli::absolute_from(&cwd, &cli.state_file);
    let _state_lock = match StateLock::take(&state_path) {
        Ok(lock) => Some(lock),
        Err(LockError::Held(pid)) => {
            let error = Error::InUse {
                what: "state file",
                lock: crate::process::state_lock_path(&state_path),
                path: state_path,
                pid,
            };
            // The log file says why too; knockd's report prints it on stderr.
            logger.log(&format!("error: {error}"));
            logger.flush();
            return Err(error);
        }
        Err(LockError::Io(e)) => {
            logger.error(&format!(
                "warning: cannot lock the state file {}: {}",
                crate::process::state_lock_path(&state_path).display(),
                crate::io_reason(&e)
            ));
            None
        }
    };
    if cli.daemon {
        // Before any thread exists: only the forking thread survives.
        daemonize().map_err(Error::Daemonize)?;
    }
    // As early as possible after the fork: until then SIGHUP would kill the process.
    let signals = spawn_signal_thread()?;
    let pid_file = if cli.daemon {
        match PidFile::create(&settings.pid_file) {
            Ok(pid) => Some(pid),
            Err(LockError::Held(pid)) => {
                let error = Error::InUse {
                    what: "pid file",
                    path: settings.pid_file.clone(),
                    lock: settings.pid_file.clone(),
                    pid,
                };
                logger.log(&format!("error: {error}"));
                logger.flush();
                return Err(error);
            }
            Err(LockError::Io(e)) => {
                logger.error(&format!(
                    "could not create pid file {}: {}",
                    settings.pid_file.display(),
                    crate::io_reason(&e)
                ));
                None
            }
        }
    } else {
        None
    };

    let result = Server::new(
        cli,
        cwd,
        config_shown,
        config_path,
        loaded,
        settings,
        logger,
    )
    .and_then(|mut server| {
        server.nft = nft;
        let exit = server.run_loop(&signals);
        server.shutdown(exit)
    });
    // Removed on every way out, a failed start included.
    if let Some(pid) = pid_file {
        pid.remove();
    }
    result
}

fn log_options(cli: &Cli, settings: &Settings, cwd: &Path) -> LogOptions {
    LogOptions {
        log_file: settings.log_file.clone(),
        syslog_facility: settings.use_syslog.then(|| {
            cli.syslog_facility
                .parse()
                .unwrap_or(syslog::Facility::LOG_DAEMON)
        }),
        verbose: cli.verbose,
        debug: cli.debug,
        json_log: cli
            .json_log
            .as_ref()
            .map(|p| crate::cli::absolute_from(cwd, p)),
    }
}

/// A netlink socket to nf_tables when some door has an nftables set (`None` otherwise),
/// with every door's sets validated.
///
/// # Errors
/// The socket cannot be opened, or a set is missing or unfit (the error names the door and
/// the set).
fn open_nft_sets(config: &Config) -> Result<Option<NftSets>, Error> {
    if !has_nft_sets(config) {
        return Ok(None);
    }
    let mut sets = NftSets::open().map_err(Error::NftOpen)?;
    sets.validate_doors(&config.doors).map_err(Error::NftSet)?;
    Ok(Some(sets))
}

/// Whether some door names an nftables set.
fn has_nft_sets(config: &Config) -> bool {
    config
        .doors
        .iter()
        .any(|door| door.nft_set.is_some() || door.nft_set_6.is_some())
}

/// Signals, forwarded from the signal-hook thread.
fn spawn_signal_thread() -> Result<Receiver<i32>, Error> {
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2]).map_err(
            |error| Error::Signals {
                what: "install signal handlers",
                error,
            },
        )?;
    let (tx, rx) = crossbeam_channel::bounded(64);
    std::thread::Builder::new()
        .name("knockd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    break;
                }
            }
        })
        .map_err(|error| Error::Signals {
            what: "start the signal thread",
            error,
        })?;
    Ok(rx)
}

/// Everything the event loop owns.
struct Server {
    cli: Cli,
    cwd: PathBuf,
    config_shown: String,
    config_path: PathBuf,
    loaded: Loaded,
    settings: Settings,
    logger: Logger,
    clock: Clock,
    core: Core,
    executor: Executor,
    state: StateFile,
    capture: Option<LiveCapture>,
    capture_rx: Receiver<CaptureEvent>,
    /// The filter to start the capture with (set by the core before the capture exists).
    initial_filter: String,
    /// The SPA ports to start the capture with (likewise).
    initial_payload_ports: Vec<u16>,
    /// Packets of this pass not yet given to the core.
    burst: Vec<PacketEvent>,
    /// Jobs held until the state file is written (end of the pass), in order.
    deferred_jobs: Vec<Job>,
    /// Records of this `perform` not logged yet: logged after the job or nftables element
    /// that follows them (see [`Server::perform`]).
    held_records: Vec<Record>,
    /// (door, source) of the stops recorded since the last successful write: their start
    /// jobs wait for it (and are refused if it fails).
    unwritten_stops: Vec<(String, IpAddr)>,
    /// Interfaces that were reported waiting or lost (their next "up" is logged).
    interrupted: Vec<String>,
    lookup: Option<Lookup>,
    notices: Vec<Notice>,
    /// The last write of the state file failed.
    state_failing: bool,
    /// When the state file was last written (or tried).
    state_written_at: Option<std::time::Instant>,
    /// How long that write took (with its sync).
    state_write_took: Duration,
    /// systemd notifications (nothing without systemd).
    notify: Notifier,
    /// The status and metrics files.
    status: StatusKeeper,
    /// The netlink socket for nftables doors: opened at start if some door has a set, or at
    /// the first reload that brings one.
    nft: Option<NftSets>,
}

impl Server {
    fn new(
        cli: Cli,
        cwd: PathBuf,
        config_shown: String,
        config_path: PathBuf,
        loaded: Loaded,
        settings: Settings,
        mut logger: Logger,
    ) -> Result<Self, Error> {
        debug_config(&mut logger, &loaded.config);
        let clock = Clock::new();
        let state_path = crate::cli::absolute_from(&cwd, &cli.state_file);
        let options = CoreOptions {
            limits: Limits::default().with_max_sources(cli.max_sources),
            ipv4_only: cli.only_ipv4,
            max_running: cli.max_commands.max(1),
            max_waiting_starts: MAX_QUEUED_STARTS,
            state_file: state_path.clone(),
        };
        let mut core = Core::new(loaded.running(), options);
        // Stage times (capture, decision, spawn) read as wall-clock times, on the monotonic
        // capture clock.
        core.set_clock_epoch(unix_micros_now().saturating_sub(clock.now().as_micros()));
        let kill_after = (!cli.command_kill_timeout.is_zero()).then_some(cli.command_kill_timeout);
        let executor = Executor::new(cli.max_commands, kill_after);
        let metrics_file = cli
            .metrics_file
            .as_ref()
            .map(|p| crate::cli::absolute_from(&cwd, p));
        let status = StatusKeeper::new(&state_path, metrics_file);
        // Issue 10 item 11: an unusable file is kept (never overwritten), a corrupt one
        // moved aside to STATE.corrupt.
        let (state, message) = StateFile::load_or_recover(state_path);
        if let Some(message) = message {
            logger.error(&message);
        }
        let lookup = if cli.lookup {
            match Lookup::start() {
                Ok(lookup) => Some(lookup),
                Err(e) => {
                    logger.error(&format!("error: cannot start the lookup thread: {e}"));
                    None
                }
            }
        } else {
            None
        };

        let mut capture_config = CaptureConfig::new(settings.interfaces.clone(), String::new());
        capture_config.ipv4_only = cli.only_ipv4;
        // Packets read together arrive as one event (bounded: see max_batches_in_flight).
        capture_config.packet_batch = PACKET_BATCH;
        let (capture_tx, capture_rx) = capture_config.channel();
        let addresses = knock_capture::local_addresses(&settings.interfaces);
        let mut server = Self {
            cli,
            cwd,
            config_shown,
            config_path,
            loaded,
            settings,
            logger,
            clock,
            core,
            executor,
            state,
            capture: None,
            capture_rx,
            initial_filter: String::new(),
            initial_payload_ports: Vec::new(),
            burst: Vec::with_capacity(PACKET_BATCH),
            deferred_jobs: Vec::new(),
            held_records: Vec::new(),
            unwritten_stops: Vec::new(),
            interrupted: Vec::new(),
            lookup,
            notices: Vec::new(),
            state_failing: false,
            state_written_at: None,
            state_write_took: Duration::ZERO,
            notify: Notifier::from_env(),
            status,
            nft: None,
        };
        server.core.handle_local_addresses(addresses);
        server.perform();
        capture_config.filter = std::mem::take(&mut server.initial_filter);
        capture_config.payload_ports = std::mem::take(&mut server.initial_payload_ports);
        let capture = LiveCapture::start(capture_config, clock, capture_tx).map_err(|e| {
            server.logger.log(&format!("error: {e}"));
            Error::Capture(e)
        })?;
        server.capture = Some(capture);
        // The line names the interfaces actually captured; the missing ones are warned about
        // at once (the held events below), in every log target.
        let reports = crate::startup::first_reports(
            &server.capture_rx,
            &server.settings.interfaces,
            crate::startup::REPORT_WAIT,
        );
        if !reports.up.is_empty() {
            let interfaces = reports.up.join(", ");
            server
                .logger
                .verbose(&format!("listening on {interfaces}..."));
        }
        server.logger.log(&reports.startup_line());
        // Issue 10 item 5: start commands a previous run left running are stopped (their
        // process groups killed) before any stop command runs, so that none finishes after
        // its stop and leaves the hole open.
        for start in server.state.take_running() {
            let outcome = stop_left_start(start.pgid, start.identity.as_ref(), LEFT_START_WAIT);
            if outcome == LeftStart::Killed {
                server.logger.event(&format!(
                    "{}: {}: killed the start command (process group {}) a previous run left running, before its stop command",
                    start.source, start.door, start.pgid
                ));
            }
        }
        // Issue 10 item 11: can stops be made durable? One write now says (a read-only
        // directory, a file kept because it was unusable); doors with a stop command open
        // only while the state file can be written.
        let probe = server.state.save();
        server.core.handle_state_durable(probe.is_ok());
        if probe.is_err() {
            server.state.mark_dirty();
            server.state_written_at = Some(std::time::Instant::now());
        }
        server.state_written(probe);
        // The SPA replay cache a previous run left: its packets stay refused.
        if !server.state.spa_replay().is_empty() {
            let now = server.now();
            let text = server.state.spa_replay().to_owned();
            if let Some(error) = server.core.handle_spa_replay_restore(now, &text) {
                server.logger.error(&format!(
                    "error: state file {}: ignoring its SPA replay cache: {error}",
                    server.state.path().display()
                ));
            }
        }
        for event in reports.events {
            server.capture_event(event);
        }
        server.feed_burst();
        // Stop commands a previous run left pending: overdue ones run now, the others are
        // armed again.
        let entries = server.state.entries();
        if !entries.is_empty() {
            let now = server.now();
            server.core.handle_restore(now, entries);
            server.perform();
        }
        // TOTP codes spent before the restart stay spent; this also sets the TOTP windows.
        let now = server.now();
        server
            .core
            .handle_restore_spent(now, server.state.spent_codes());
        server.perform();
        Ok(server)
    }

    /// The time of an input: the capture clock and the wall clock.
    fn now(&self) -> Time {
        wall_time(self.clock.now())
    }

    // ----- the loop ---------------------------------------------------------------------

    fn run_loop(&mut self, signals: &Receiver<i32>) -> Result<Exit, Error> {
        let completions = self.executor.completions().clone();
        let answers = self
            .lookup
            .as_ref()
            .map_or_else(crossbeam_channel::never, |l| l.answers().clone());
        self.notify.ready("listening");
        loop {
            self.end_pass(false);
            self.after_pass();
            let timeout = self.next_wakeup();
            select! {
                recv(self.capture_rx) -> event => {
                    let Ok(event) = event else {
                        return Err(Error::CaptureStopped);
                    };
                    let mut taken = event_weight(&event);
                    self.capture_event(event);
                    while taken < PACKET_BATCH {
                        match self.capture_rx.try_recv() {
                            Ok(event) => {
                                taken += event_weight(&event);
                                self.capture_event(event);
                            }
                            Err(_) => break,
                        }
                    }
                    self.feed_burst();
                }
                recv(signals) -> signal => {
                    match signal {
                        Ok(SIGHUP) => {
                            self.notify.reloading();
                            self.reload();
                            self.status.touch();
                            self.notify.ready("listening");
                        }
                        Ok(SIGINT) => return Ok(Exit::Interrupted),
                        Ok(SIGTERM) => return Ok(Exit::Terminated),
                        Ok(SIGUSR1 | SIGUSR2) => self.log_statistics(),
                        Ok(_) => {}
                        Err(_) => return Err(Error::SignalThreadStopped),
                    }
                }
                recv(completions) -> finished => {
                    if let Ok(mut finished) = finished {
                        self.command_finished(&mut finished);
                    }
                }
                recv(answers) -> answer => {
                    if let (Ok((address, name)), Some(lookup)) = (answer, self.lookup.as_mut()) {
                        lookup.answer(address, name);
                    }
                }
                default(timeout) => {}
            }
            let now = self.now();
            self.core.handle_timeout(now);
            self.perform();
            self.executor
                .kill_overdue(std::time::Instant::now(), &mut self.notices);
            self.flush_notices();
        }
    }

    /// The end of a loop pass: the state file is written if it changed (once, however many
    /// opens the pass had, and at most once per [`STATE_WRITE_INTERVAL`], or per
    /// [`STATE_WRITE_SPACING`] times the last write's duration if longer, unless `force`), then
    /// the jobs held for it run, then the file is synced to the disk, then the logs reach
    /// their files.
    ///
    /// Why the jobs run before the sync (issue 14): once written and renamed into place, the
    /// pending stops are what a knockd restarted after a crash or `kill -9` reads (the page
    /// cache keeps them); the sync (two fsyncs: 0.1-0.3 ms on the bench VM's disk, far more on
    /// a busy or slow one) only guards against an operating-system crash, which also resets
    /// the firewall rules a start command adds. Waiting for it put the disk's latency between
    /// a knock and its command.
    fn end_pass(&mut self, force: bool) {
        self.perform();
        let mut unsynced = None;
        let mut write_took = Duration::ZERO;
        if self.state.is_dirty() {
            if !force && self.state_write_due().is_some() {
                // Written soon (the loop wakes for it); held jobs wait until then.
                self.flush_notices();
                self.logger.end_pass();
                return;
            }
            let began = std::time::Instant::now();
            let written = self.state.write_if_dirty();
            let now = std::time::Instant::now();
            self.state_written_at = Some(now);
            write_took = now - began;
            self.state_write_took = write_took;
            match written {
                Ok(file) => {
                    self.unwritten_stops.clear();
                    unsynced = file;
                }
                Err(e) => {
                    self.core.handle_state_durable(false);
                    self.state_written(Err(e));
                    // Tried again later (STATE_RETRY_INTERVAL).
                    self.state.mark_dirty();
                    // Issue 10 item 11: the start commands whose stop is not on disk do not
                    // run (their stops stay in memory and run at their time, harmlessly).
                    self.refuse_deferred_starts();
                }
            }
        }
        for job in std::mem::take(&mut self.deferred_jobs) {
            self.executor.submit(job, &mut self.notices);
        }
        if let Some(file) = unsynced {
            let began = std::time::Instant::now();
            let synced = file.sync();
            self.state_write_took = write_took + began.elapsed();
            let durable = synced.is_ok();
            self.core.handle_state_durable(durable);
            self.state_written(synced);
            if !durable {
                // Written again later; until then doors with a stop command do not open.
                self.state.mark_dirty();
            }
        }
        self.flush_notices();
        self.logger.end_pass();
    }

    /// Drops the held start jobs (their stops could not be written), reporting each to the
    /// core as not run.
    fn refuse_deferred_starts(&mut self) {
        let unwritten = std::mem::take(&mut self.unwritten_stops);
        let (starts, others): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.deferred_jobs)
            .into_iter()
            .partition(|job| {
                job.kind == crate::core::CommandKind::Start
                    && unwritten.contains(&(job.door.clone(), job.source))
            });
        self.deferred_jobs = others;
        let reason = format!(
            "not run: its stop command could not be recorded in {}",
            self.state.path().display()
        );
        for job in starts {
            self.core
                .handle_command_finished(&job, crate::core::CommandOutcome::Failed(reason.clone()));
        }
        self.perform();
    }

    /// When the dirty state file may be written next, if not now.
    fn state_write_due(&self) -> Option<std::time::Instant> {
        // While writes fail, tried again once a second (doors with a stop command open again
        // once one succeeds).
        let due =
            self.state_written_at? + write_interval(self.state_failing, self.state_write_took);
        (due > std::time::Instant::now()).then_some(due)
    }

    /// How long the loop may sleep: until the core's next deadline (its sequence timeouts
    /// on [`EXPIRY_TICK`](crate::core::EXPIRY_TICK) boundaries, see
    /// [`Core::poll_wakeup`](crate::core::Core::poll_wakeup)) or a command's kill deadline
    /// (an hour when there is none; nothing happens then, the loop just sleeps again).
    fn next_wakeup(&self) -> Duration {
        let now = std::time::Instant::now();
        let core = self.core.poll_wakeup().and_then(|at| self.clock.to_std(at));
        let kill = self.executor.next_deadline();
        let state = self
            .state
            .is_dirty()
            .then(|| self.state_write_due())
            .flatten();
        let status = self.status.next_write();
        let watchdog = self.notify.next_ping();
        // Flood lines waiting for their write (nothing at idle).
        let log = self.logger.next_flush();
        let deadline = [core, kill, state, status, watchdog, log]
            .into_iter()
            .flatten()
            .min();
        // No deadline: no timer (Duration::MAX waits for an event only).
        deadline.map_or(Duration::MAX, |d| {
            // Round up to the next millisecond so the wakeup is never a hair early.
            d.saturating_duration_since(now) + Duration::from_millis(1)
        })
    }

    fn capture_event(&mut self, event: CaptureEvent) {
        self.status.capture_event(&event);
        if !matches!(event, CaptureEvent::Packet(_) | CaptureEvent::Packets(_)) {
            // Packets before an interface or address change are matched before it.
            self.feed_burst();
        }
        match event {
            CaptureEvent::Packet(packet) => self.capture_packet(packet),
            // One channel send for many packets (the batch's buffer goes back to the capture
            // when it is dropped, at the end of this arm).
            CaptureEvent::Packets(batch) => {
                if self.logger.is_debug() {
                    for packet in batch.iter() {
                        self.capture_packet(*packet);
                    }
                } else {
                    self.burst.extend_from_slice(&batch);
                    if self.burst.len() >= PACKET_BATCH {
                        self.feed_burst();
                    }
                }
            }
            CaptureEvent::InterfaceUp { interface, link } => {
                self.logger
                    .debug(&format!("{interface}: link type {link:?}"));
                if let Some(i) = self.interrupted.iter().position(|n| *n == interface) {
                    self.interrupted.swap_remove(i);
                    self.logger.event(&format!("listening on {interface}"));
                }
            }
            CaptureEvent::InterfaceWaiting { interface, reason } => {
                self.logger.error(&format!(
                    "warning: interface {interface} is not available yet ({reason}), waiting"
                ));
                self.mark_interrupted(interface);
            }
            CaptureEvent::InterfaceLost { interface, error } => {
                self.logger.error(&format!(
                    "warning: interface {interface} lost: {error}, waiting for it to come back"
                ));
                self.mark_interrupted(interface);
            }
            CaptureEvent::FilterFailed { interface, error } => {
                self.logger.error(&format!(
                    "error: cannot install the packet filter on {interface}: {error}"
                ));
            }
            CaptureEvent::Datagram(datagram) => {
                if self.logger.is_debug() {
                    self.logger.debug(&format!(
                        "{}: {} ({} bytes of data)",
                        debug_time(Timestamp::now()),
                        debug_packet(&datagram.packet),
                        datagram.payload().len()
                    ));
                }
                let now = self.now();
                self.core
                    .handle_datagram(now, &datagram.packet, datagram.payload());
                self.perform();
            }
            CaptureEvent::AddressesChanged { addresses } => {
                for address in &addresses {
                    self.logger.debug(&format!("local IP: {address}"));
                }
                self.core.handle_local_addresses(addresses);
                self.perform();
            }
            _ => {}
        }
    }

    /// One captured packet: into the burst (and, with `-D`, logged and matched at once).
    fn capture_packet(&mut self, packet: PacketEvent) {
        if self.logger.is_debug() {
            // `-D`: each packet's line comes before what it caused.
            self.logger.debug(&format!(
                "{}: {}",
                debug_time(Timestamp::now()),
                debug_packet(&packet)
            ));
            self.burst.push(packet);
            self.feed_burst();
        } else {
            self.burst.push(packet);
        }
    }

    /// Gives the packets gathered so far to the core, as one burst.
    fn feed_burst(&mut self) {
        let Some(first) = self.burst.first() else {
            return;
        };
        // The decision time of the burst's opens (at least its first packet's time).
        let now = wall_time(self.clock.now().max(first.timestamp));
        // The burst's lines carry its time: the clock is read once per burst, not per line.
        self.logger.set_time(log_time(now));
        self.core.handle_packets(now, &self.burst);
        self.burst.clear();
        self.perform();
        self.logger.set_time(None);
    }

    fn mark_interrupted(&mut self, interface: String) {
        if !self.interrupted.contains(&interface) {
            self.interrupted.push(interface);
        }
    }

    // ----- effects ----------------------------------------------------------------------

    /// Performs the core's effects, in order, except that records are logged after the
    /// command or nftables element that follows them (issue 14: formatting and writing log
    /// lines is not on the path from a knock to its action); the lines keep their order.
    fn perform(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            self.status.touch();
            if !matches!(
                effect,
                Effect::Log(_)
                    | Effect::RunJob(_)
                    | Effect::AddSetElement(_)
                    | Effect::PersistStop { .. }
                    | Effect::DropStop(_)
                    | Effect::PersistSpentCodes(_)
                    | Effect::PersistSpaReplay(_)
            ) {
                // Effects with output of their own (lines, files) come after the held lines.
                self.log_held();
            }
            match effect {
                Effect::Log(record) => self.held_records.push(record),
                Effect::PersistStop { id, stop } => {
                    self.unwritten_stops.push((stop.door.clone(), stop.source));
                    self.state.add(id, stop);
                }
                Effect::DropStop(id) => self.state.remove(id),
                Effect::PersistSpentCodes(spent) => self.state.set_spent_codes(spent),
                Effect::RunJob(job) => {
                    if !self.unwritten_stops.is_empty() || !self.deferred_jobs.is_empty() {
                        // Its stop is not on disk yet (or an earlier job waits for that).
                        self.deferred_jobs.push(job);
                        self.log_held();
                    } else {
                        self.executor.submit(job, &mut self.notices);
                        self.log_held();
                        // "running command" right after "OPEN SESAME", as in 0.8.
                        self.flush_notices();
                    }
                }
                Effect::RewriteOts { door, path, text } => {
                    let file = self.loaded.ots.iter().find(|o| o.file.path == path);
                    if let Some(Err(e)) = file.map(|o| o.file.write(&text)) {
                        self.core.handle_ots_write_failed(&door, e.to_string());
                    }
                }
                Effect::SetFilter(filter) => self.set_filter(filter),
                // At once, before the effects after it (the open's start job).
                Effect::AddSetElement(add) => {
                    let result = match self.nft.as_mut() {
                        Some(sets) => sets
                            .add_element(&add.set, add.address, add.timeout)
                            .map_err(|e| e.reason()),
                        None => Err("no netlink socket to nf_tables".to_owned()),
                    };
                    let written = self.clock.now();
                    self.core.handle_set_element_added_at(add, result, written);
                    self.log_held();
                }
                Effect::SetPayloadPorts(ports) => match &self.capture {
                    Some(capture) => capture.set_payload_ports(ports),
                    None => self.initial_payload_ports = ports,
                },
                Effect::PersistSpaReplay(text) => self.state.set_spa_replay(text),
            }
        }
        self.log_held();
    }

    /// Logs the records [`perform`](Self::perform) held, in order.
    fn log_held(&mut self) {
        if self.held_records.is_empty() {
            return;
        }
        let mut held = std::mem::take(&mut self.held_records);
        for record in held.drain(..) {
            self.log(&record);
        }
        // The buffer is kept (no allocation per pass).
        self.held_records = held;
    }

    /// With `-l`, the knocker's host name if known (asks for it otherwise).
    fn host(&mut self, source: IpAddr) -> Option<String> {
        self.lookup
            .as_mut()
            .and_then(|l| l.host(source))
            .map(str::to_owned)
    }

    fn log(&mut self, record: &Record) {
        let host = record.labelled_source().and_then(|s| self.host(s));
        let level = record.level();
        if level != Level::Silent {
            // Formatted where it goes (the log file's buffer), or not at all when no sink
            // takes it: no line is made into a String in a flood.
            let line = record.display(host.as_deref());
            match level {
                Level::Event => self.logger.event_display(&line),
                Level::Verbose => self.logger.verbose_display(&line),
                Level::Debug => self.logger.debug_display(&line),
                Level::Error => self.logger.error(&line.to_string()),
                Level::Silent => {}
            }
        }
        if self.logger.is_debug()
            && let Some(line) = record.stage_times_line(host.as_deref())
        {
            self.logger.debug(&line);
        }
        if self.logger.has_json()
            && let Some(event) = record.json(Timestamp::now(), host.as_deref())
        {
            self.logger.json(&event);
        }
    }

    fn set_filter(&mut self, filter: String) {
        self.logger.debug(&format!("filter: {filter}"));
        match &self.capture {
            Some(capture) => {
                if let Err(e) = capture.set_filter(filter) {
                    self.logger
                        .error(&format!("error: cannot install the packet filter: {e}"));
                }
            }
            None => self.initial_filter = filter,
        }
    }

    fn flush_notices(&mut self) {
        for notice in std::mem::take(&mut self.notices) {
            match notice {
                Notice::Started { job, pid, at, call } => {
                    self.logger
                        .event(&format!("{}: running command: {}", job.door, job.command));
                    let spawned_us = self.core.unix_micros(self.clock.instant_at(at));
                    self.log(&Record::CommandStarted {
                        job: Box::new(job),
                        pid,
                        spawned_us,
                        spawn_call_us: u64::try_from(call.as_micros()).unwrap_or(u64::MAX),
                    });
                }
                Notice::StartSpawned { door, source, pid } => {
                    self.state.add_running(RunningStart {
                        door,
                        source,
                        pgid: pid,
                        identity: crate::process::identity(pid),
                    });
                }
                Notice::Killed { door, source, pid } => self.log(&Record::CommandKilled {
                    door,
                    source,
                    after: self.cli.command_kill_timeout,
                    pid,
                }),
            }
        }
    }

    fn command_finished(&mut self, finished: &mut Finished) {
        self.status.command_finished(finished);
        self.executor.finished(finished, &mut self.notices);
        if finished.job.kind == crate::core::CommandKind::Start {
            self.state
                .remove_running(&finished.job.door, finished.job.source);
        }
        if let crate::executor::Outcome::SpawnFailed(error) = &finished.outcome {
            // Issue 10 item 4: a stop command is kept and tried again.
            let now = self.now();
            self.core
                .handle_spawn_failed(now, &finished.job, crate::io_reason(error));
        } else {
            self.core
                .handle_command_finished(&finished.job, finished.outcome.to_core());
        }
        self.perform();
        self.flush_notices();
    }

    fn state_written(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) if self.state_failing => {
                self.state_failing = false;
                self.logger.log(&format!(
                    "state file {} written again",
                    self.state.path().display()
                ));
            }
            Ok(()) => {}
            // Logged when it starts failing, not at every change (a read-only disk).
            Err(e) if !self.state_failing => {
                self.state_failing = true;
                self.logger.error(&format!(
                    "error: cannot write state file {}: {}",
                    self.state.path().display(),
                    crate::io_reason(&e)
                ));
            }
            Err(_) => {}
        }
    }

    /// After each pass: the status and metrics files if due, a watchdog keep-alive if due.
    fn after_pass(&mut self) {
        if self
            .status
            .next_write()
            .is_some_and(|due| due <= std::time::Instant::now())
        {
            self.write_status(true);
        }
        self.notify.ping_if_due();
    }

    fn write_status(&mut self, running: bool) {
        let failed = self.status.write(
            running,
            &self.loaded.config,
            &self.core,
            &self.state,
            self.capture.as_ref(),
        );
        if let Some(message) = failed {
            self.logger.error(&message);
        }
    }

    // ----- signals ----------------------------------------------------------------------

    fn reload(&mut self) {
        self.logger.event(&format!(
            "re-reading config file: {}",
            self.config_path.display()
        ));
        let result = load(&self.config_shown, &self.config_path, &self.cwd);
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                // Reopen the logs all the same: logrotate sends SIGHUP too.
                let options = self.logger.options().clone();
                self.logger.reconfigure(options);
                self.logger.error(&format!(
                    "error: reload failed, keeping the old configuration: {}",
                    e.summary()
                ));
                return;
            }
        };
        if let Err(e) = self.check_nft_sets(&loaded.config) {
            let options = self.logger.options().clone();
            self.logger.reconfigure(options);
            self.logger.error(&format!(
                "error: reload failed, keeping the old configuration: {e}"
            ));
            return;
        }
        for warning in &loaded.warnings {
            self.logger.log(&format!("warning: {warning}"));
        }
        for warning in &loaded.ots_warnings {
            self.logger.log(&format!("warning: {warning}"));
        }
        let settings = Settings::resolve(&self.cli, &loaded.config, &self.cwd);
        if settings.interfaces != self.settings.interfaces {
            self.logger.error(&format!(
                "warning: the interfaces changed to {}; restart knockd to listen on them (still listening on {})",
                settings.interfaces.join(", "),
                self.settings.interfaces.join(", ")
            ));
        }
        // The new LogFile/UseSyslog take effect (0.8 kept syslog on once it was on).
        let options = log_options(&self.cli, &settings, &self.cwd);
        self.logger.reconfigure(options);
        self.settings = Settings {
            interfaces: self.settings.interfaces.clone(),
            interfaces_source: self.settings.interfaces_source,
            ..settings
        };
        let now = self.now();
        self.core.handle_reload(now, loaded.running());
        self.loaded = loaded;
        self.perform();
        debug_config(&mut self.logger, &self.loaded.config);
    }

    /// On reload: the new configuration's nftables sets exist and fit (the socket is opened
    /// if this is the first configuration with sets).
    fn check_nft_sets(&mut self, config: &Config) -> Result<(), Error> {
        if !has_nft_sets(config) {
            return Ok(());
        }
        let sets = match &mut self.nft {
            Some(sets) => sets,
            None => self.nft.insert(NftSets::open().map_err(Error::NftOpen)?),
        };
        sets.validate_doors(&config.doors).map_err(Error::NftSet)?;
        Ok(())
    }

    fn log_statistics(&mut self) {
        let matcher = self.core.matcher();
        let counters = *matcher.counters();
        let mut text = format!(
            "statistics: {} knocks admitted, {} doors opened, {} sources tracked, {} stop commands pending, {} commands running, {} queued",
            counters.admitted,
            counters.opened,
            matcher.tracked_sources(),
            matcher.pending_closes(),
            self.executor.running(),
            self.executor.queued(),
        );
        let failed = self.logger.write_failures();
        if failed > 0 {
            text.push_str(&format!(", {failed} log writes failed"));
        }
        if self.core.has_spa_doors() {
            text.push_str(&format!(
                ", {} SPA packets granted, {} unauthenticated SPA packets dropped",
                self.core.spa_granted(),
                self.core.spa_unauthenticated()
            ));
        }
        if let Some(capture) = &self.capture {
            for stats in capture.stats() {
                text.push_str(&format!(
                    "; {}: {} received, {} dropped by the kernel, {} dropped by the interface, {} dropped in the queue",
                    stats.interface, stats.received, stats.dropped, stats.if_dropped, stats.channel_dropped
                ));
            }
        }
        self.logger.event(&text);
    }

    // ----- shutdown ---------------------------------------------------------------------

    fn shutdown(&mut self, exit: Result<Exit, Error>) -> Result<Exit, Error> {
        self.notify.stopping();
        if let Err(e) = &exit {
            self.logger.error(&format!("error: {}", e.summary()));
        }
        if let Some(capture) = self.capture.take() {
            capture.stop();
        }
        self.feed_burst();
        self.core.handle_shutdown(!self.cli.no_stop_on_exit);
        self.end_pass(true);
        if !self.executor.is_idle() {
            self.logger.verbose("waiting for child processes...");
            let deadline = std::time::Instant::now() + SHUTDOWN_BUDGET;
            let completions = self.executor.completions().clone();
            while !self.executor.is_idle() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                // Keep-alives go on while commands finish (a watchdog may be armed).
                let wait = self.notify.next_ping().map_or(left, |due| {
                    left.min(due.saturating_duration_since(std::time::Instant::now()))
                });
                if let Ok(mut finished) = completions.recv_timeout(wait) {
                    self.command_finished(&mut finished);
                    self.end_pass(false);
                }
                self.notify.ping_if_due();
            }
            if !self.executor.is_idle() {
                self.logger.error(&format!(
                    "error: {} commands still running and {} waiting after {}; pending stop commands stay recorded in {}",
                    self.executor.running(),
                    self.executor.queued(),
                    humantime::format_duration(SHUTDOWN_BUDGET),
                    self.state.path().display()
                ));
            }
        }
        self.end_pass(true);
        self.write_status(false);
        self.logger.log("shutting down");
        self.logger.flush();
        exit
    }
}

/// The time of an input at `instant`: the wall clock read once, to the nanosecond (the
/// TOTP windows move at the true step boundary).
fn wall_time(instant: knock_core::Instant) -> Time {
    let now = Timestamp::now();
    let (unix_secs, unix_nanos) = if now.as_second() < 0 {
        (0, 0)
    } else {
        (
            now.as_second().unsigned_abs(),
            u32::try_from(now.subsec_nanosecond()).unwrap_or(0),
        )
    };
    Time {
        instant,
        unix_secs,
        unix_nanos,
    }
}

/// The wall-clock time of `time`, for log lines.
fn log_time(time: Time) -> Option<Timestamp> {
    Timestamp::new(
        i64::try_from(time.unix_secs).ok()?,
        i32::try_from(time.unix_nanos).ok()?,
    )
    .ok()
}

/// The wall clock in Unix microseconds.
fn unix_micros_now() -> u64 {
    Timestamp::now().as_microsecond().max(0).unsigned_abs()
}

/// `-D`: the configuration as knockd runs it, one `config:` line per non-blank line.
fn debug_config(logger: &mut Logger, config: &Config) {
    if !logger.is_debug() {
        return;
    }
    for line in config.to_string().lines() {
        if !line.trim().is_empty() {
            logger.debug(&format!("config: {line}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fast write keeps the 10 ms floor; a slow one (a file of thousands of pending stops)
    /// is followed by nine times its duration without a write, up to a second; a failing one
    /// by a second.
    #[test]
    fn state_writes_are_spaced_by_their_own_cost() {
        let ms = Duration::from_millis;
        assert_eq!(write_interval(false, Duration::ZERO), STATE_WRITE_INTERVAL);
        assert_eq!(write_interval(false, ms(1)), STATE_WRITE_INTERVAL);
        assert_eq!(write_interval(false, ms(4)), ms(36));
        assert_eq!(write_interval(false, ms(500)), STATE_RETRY_INTERVAL);
        assert_eq!(write_interval(false, Duration::MAX), STATE_RETRY_INTERVAL);
        assert_eq!(write_interval(true, ms(4)), STATE_RETRY_INTERVAL);
    }
}
