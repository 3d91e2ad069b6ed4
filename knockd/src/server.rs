//! The daemon: startup, the event loop, reload and shutdown.
//!
//! One thread (this one) owns all state: the matcher, the executor's bookkeeping, the logger,
//! the state file. Other threads only send it events over channels: the capture threads
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
use knock_capture::{CaptureConfig, CaptureEvent, Clock, LiveCapture, filter_expression};
use knock_core::{
    Action, ActionKind, Config, DoorId, Limits, LocalAddresses, Matcher, PacketEvent,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::cli::{Cli, Settings};
use crate::executor::{CommandKind, Executor, Finished, Job, Notice, Outcome};
use crate::load::{Loaded, exhausted_message, load};
use crate::logging::{
    ActionView, JsonEvent, JsonValue, LogOptions, Logger, debug_packet, debug_time, source_label,
};
use crate::lookup::Lookup;
use crate::process::{PidFile, daemonize};
use crate::state::{StateError, StateFile};
use crate::{Error, Exit};

/// How long shutdown waits for running commands (the pending stop commands included) before
/// exiting anyway; stops that did not run stay in the state file for the next start.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(30);
/// Most capture events handled in one go before timers and signals are looked at again.
const PACKET_BATCH: usize = 256;

/// Runs the daemon until SIGINT/SIGTERM.
///
/// # Errors
/// The configuration is invalid, or capture cannot start or gave up.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Fatal(format!("cannot read the current directory: {e}")))?;
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

    if cli.daemon {
        // Before any thread exists: only the forking thread survives.
        daemonize().map_err(|e| Error::Fatal(format!("cannot daemonize: {e}")))?;
    }
    // As early as possible after the fork: until then SIGHUP would kill the process.
    let signals = spawn_signal_thread()?;
    let pid_file = if cli.daemon {
        match PidFile::create(&settings.pid_file) {
            Ok(pid) => Some(pid),
            Err(e) => {
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

/// Signals, forwarded from the signal-hook thread.
fn spawn_signal_thread() -> Result<Receiver<i32>, Error> {
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2])
            .map_err(|e| Error::Fatal(format!("cannot install signal handlers: {e}")))?;
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
        .map_err(|e| Error::Fatal(format!("cannot start the signal thread: {e}")))?;
    Ok(rx)
}

/// Everything the event loop owns.
struct Server {
    cli: Cli,
    cwd: PathBuf,
    config_shown: String,
    config_path: PathBuf,
    loaded: Loaded,
    /// The configuration the matcher runs: one-time-sequence doors with their active sequence.
    running: Config,
    settings: Settings,
    logger: Logger,
    clock: Clock,
    matcher: Matcher,
    executor: Executor,
    state: StateFile,
    capture: Option<LiveCapture>,
    capture_rx: Receiver<CaptureEvent>,
    local_addresses: Vec<IpAddr>,
    /// Interfaces that were reported waiting or lost (their next "up" is logged).
    interrupted: Vec<String>,
    lookup: Option<Lookup>,
    notices: Vec<Notice>,
    /// Start commands refused because too many commands were waiting.
    refused_starts: u64,
    /// The last write of the state file failed.
    state_failing: bool,
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
        let running = loaded.effective_config();
        let limits = Limits::default().with_max_sources(cli.max_sources);
        let matcher = Matcher::with_limits(&running, limits);
        let kill_after = (!cli.command_kill_timeout.is_zero()).then_some(cli.command_kill_timeout);
        let executor = Executor::new(cli.max_commands, kill_after);
        let state_path = crate::cli::absolute_from(&cwd, &cli.state_file);
        let state = match StateFile::load(state_path.clone()) {
            Ok(state) => state,
            Err(e @ StateError::Corrupt { .. }) => {
                let aside = state_path.with_extension("corrupt");
                logger.error(&format!(
                    "error: {e}; moved to {} and starting without it",
                    aside.display()
                ));
                let _ = std::fs::rename(&state_path, &aside);
                StateFile::empty(state_path)
            }
            Err(e) => {
                logger.error(&format!("error: {e}"));
                StateFile::empty(state_path)
            }
        };
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
        let local_addresses = filter_family(
            knock_capture::local_addresses(&settings.interfaces),
            cli.only_ipv4,
        );
        capture_config.filter = filter_expression(&running.doors, &local_addresses);
        let (capture_tx, capture_rx) = capture_config.channel();
        let mut server = Self {
            cli,
            cwd,
            config_shown,
            config_path,
            loaded,
            running,
            settings,
            logger,
            clock,
            matcher,
            executor,
            state,
            capture: None,
            capture_rx,
            local_addresses,
            interrupted: Vec::new(),
            lookup,
            notices: Vec::new(),
            refused_starts: 0,
            state_failing: false,
        };
        server.apply_local_addresses();
        server
            .logger
            .debug(&format!("filter: {}", capture_config.filter));
        let capture = LiveCapture::start(capture_config, clock, capture_tx).map_err(|e| {
            server.logger.log(&format!("error: {e}"));
            Error::Fatal(e.to_string())
        })?;
        server.capture = Some(capture);
        let interfaces = server.settings.interfaces.join(", ");
        server
            .logger
            .verbose(&format!("listening on {interfaces}..."));
        server
            .logger
            .log(&format!("starting up, listening on {interfaces}"));
        server.restore_pending_stops();
        Ok(server)
    }

    // ----- the loop ---------------------------------------------------------------------

    fn run_loop(&mut self, signals: &Receiver<i32>) -> Result<Exit, Error> {
        let completions = self.executor.completions().clone();
        let answers = self
            .lookup
            .as_ref()
            .map_or_else(crossbeam_channel::never, |l| l.answers().clone());
        loop {
            self.drain_actions();
            // Log lines of this pass reach their files before the loop waits.
            self.logger.flush();
            let timeout = self.next_wakeup();
            select! {
                recv(self.capture_rx) -> event => {
                    let Ok(event) = event else {
                        return Err(Error::Fatal("packet capture stopped".into()));
                    };
                    self.capture_event(event);
                    for _ in 1..PACKET_BATCH {
                        match self.capture_rx.try_recv() {
                            Ok(event) => self.capture_event(event),
                            Err(_) => break,
                        }
                    }
                }
                recv(signals) -> signal => {
                    match signal {
                        Ok(SIGHUP) => self.reload(),
                        Ok(SIGINT) => return Ok(Exit::Interrupted),
                        Ok(SIGTERM) => return Ok(Exit::Terminated),
                        Ok(SIGUSR1 | SIGUSR2) => self.log_statistics(),
                        Ok(_) => {}
                        Err(_) => return Err(Error::Fatal("signal thread stopped".into())),
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
            self.matcher.handle_timeout(self.clock.now());
            self.executor
                .kill_overdue(std::time::Instant::now(), &mut self.notices);
            self.flush_notices();
        }
    }

    /// How long the loop may sleep: until the matcher's next deadline or a command's kill
    /// deadline (an hour when there is none; nothing happens then, the loop just sleeps
    /// again).
    fn next_wakeup(&self) -> Duration {
        let now = std::time::Instant::now();
        let matcher = self
            .matcher
            .poll_timeout()
            .and_then(|at| self.clock.to_std(at));
        let kill = self.executor.next_deadline();
        let deadline = match (matcher, kill) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        deadline.map_or(Duration::from_secs(3600), |d| {
            // Round up to the next millisecond so the wakeup is never a hair early.
            d.saturating_duration_since(now) + Duration::from_millis(1)
        })
    }

    fn capture_event(&mut self, event: CaptureEvent) {
        match event {
            CaptureEvent::Packet(packet) => self.packet(&packet),
            CaptureEvent::InterfaceUp { interface, link } => {
                self.logger
                    .debug(&format!("{interface}: link type {link:?}"));
                if let Some(i) = self.interrupted.iter().position(|n| *n == interface) {
                    self.interrupted.swap_remove(i);
                    self.logger.event(&format!("listening on {interface}"));
                }
            }
            CaptureEvent::InterfaceWaiting { interface, reason } => {
                self.logger.event(&format!(
                    "interface {interface} is not available yet ({reason}), waiting"
                ));
                self.mark_interrupted(interface);
            }
            CaptureEvent::InterfaceLost { interface, error } => {
                self.logger.event(&format!(
                    "interface {interface} lost: {error}, waiting for it to come back"
                ));
                self.mark_interrupted(interface);
            }
            CaptureEvent::FilterFailed { interface, error } => {
                self.logger.error(&format!(
                    "error: cannot install the packet filter on {interface}: {error}"
                ));
            }
            CaptureEvent::AddressesChanged { addresses } => {
                self.local_addresses = filter_family(addresses, self.cli.only_ipv4);
                for address in &self.local_addresses {
                    self.logger.debug(&format!("local IP: {address}"));
                }
                self.apply_local_addresses();
                self.refresh_filter();
            }
            _ => {}
        }
    }

    fn mark_interrupted(&mut self, interface: String) {
        if !self.interrupted.contains(&interface) {
            self.interrupted.push(interface);
        }
    }

    fn packet(&mut self, packet: &PacketEvent) {
        if self.cli.only_ipv4 && packet.source.is_ipv6() {
            return;
        }
        if self.logger.is_debug() {
            self.logger.debug(&format!(
                "{}: {}",
                debug_time(Timestamp::now()),
                debug_packet(packet)
            ));
        }
        self.matcher.handle_packet(packet);
        self.drain_actions();
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.matcher.poll_action() {
            self.action(&action, false);
        }
        self.flush_notices();
    }

    // ----- actions ----------------------------------------------------------------------

    fn label(&mut self, source: IpAddr) -> (String, Option<String>) {
        let host = self
            .lookup
            .as_mut()
            .and_then(|l| l.host(source))
            .map(str::to_owned);
        (source_label(source, host.as_deref()), host)
    }

    /// Logs and carries out one matcher action. `shutting_down`: a stop command run early
    /// because knockd is exiting.
    fn action(&mut self, action: &Action, shutting_down: bool) {
        let Some(view) = ActionView::of(action) else {
            return;
        };
        let (label, host) = self.label(view.source);
        let message = view.message(&label);
        let door: &knock_core::Door = view.door;
        let now = Timestamp::now();
        match view.kind {
            ActionKind::Invalidated => self.logger.verbose(&message),
            ActionKind::Close => {
                if shutting_down {
                    self.logger.event(&format!(
                        "{label}: {}: shutting down: running the stop command now",
                        door.name
                    ));
                } else {
                    self.logger.event(&message);
                }
            }
            _ => self.logger.event(&message),
        }
        if self.logger.has_json() {
            let event = view.json(now, host.as_deref());
            self.logger.json(&event);
        }
        match view.kind {
            ActionKind::Open => {
                let id = view.door.id();
                self.open(door, view.source, now);
                // "running command" right after "OPEN SESAME", as in 0.8.
                self.flush_notices();
                self.advance_one_time_sequence(id, door);
            }
            ActionKind::Close => {
                self.close(&door.name, view.source, door.stop_command_line(view.source))
            }
            _ => {}
        }
    }

    fn open(&mut self, door: &knock_core::Door, source: IpAddr, now: Timestamp) {
        let Some(start) = door.start_command_line(source) else {
            return;
        };
        if !self.executor.accepts_starts() {
            self.refused_starts += 1;
            // One line per power of two, so a flood cannot flood the log as well.
            if self.refused_starts.is_power_of_two() {
                self.logger.error(&format!(
                    "error: {}: {} commands are waiting; not running the start command for {source} ({} refused so far)",
                    door.name,
                    self.executor.queued(),
                    self.refused_starts
                ));
            }
            return;
        }
        // Record the stop before starting anything: if knockd dies while the start command
        // runs, the next start still closes the hole.
        if let Some(stop) = door.stop_command_line(source) {
            let due = now.as_second().max(0).unsigned_abs()
                + door.cmd_timeout.as_secs()
                + u64::from(door.cmd_timeout.subsec_nanos() > 0);
            let (_, written) = self.state.add(&door.name, source, due, &stop);
            self.state_written(written);
        }
        let job = Job {
            door: door.name.clone(),
            source,
            kind: CommandKind::Start,
            command: start,
            state_id: None,
        };
        self.executor.submit(job, &mut self.notices);
    }

    /// Runs the stop command of (`door`, `source`): the one recorded in the state file when
    /// there is one (it matches what was opened, even across a reload), else `configured`.
    fn close(&mut self, door: &str, source: IpAddr, configured: Option<String>) {
        let (command, state_id) = match self.state.start_next(door, source) {
            Some(entry) => (entry.command, Some(entry.id)),
            None => match configured {
                Some(command) => (command, None),
                None => return,
            },
        };
        let job = Job {
            door: door.to_owned(),
            source,
            kind: CommandKind::Stop,
            command,
            state_id,
        };
        self.executor.submit(job, &mut self.notices);
    }

    fn flush_notices(&mut self) {
        for notice in std::mem::take(&mut self.notices) {
            match notice {
                Notice::Started(job) => {
                    self.logger
                        .event(&format!("{}: running command: {}", job.door, job.command));
                }
                Notice::Killed { door, source, pid } => {
                    let (label, _) = self.label(source);
                    self.logger.error(&format!(
                        "{label}: {door}: command still running after {}, killed its process group {pid}",
                        humantime::format_duration(self.cli.command_kill_timeout)
                    ));
                }
            }
        }
    }

    fn command_finished(&mut self, finished: &mut Finished) {
        self.executor.finished(finished, &mut self.notices);
        let job = &finished.job;
        let status = match &finished.outcome {
            Outcome::Exited(0) => Some(0),
            Outcome::Exited(code) => {
                self.logger.error(&format!(
                    "{}: command returned non-zero status code ({code})",
                    job.door
                ));
                Some(i64::from(*code))
            }
            Outcome::Signaled(signal) => {
                self.logger.error(&format!(
                    "{}: command terminated by signal {signal}",
                    job.door
                ));
                None
            }
            Outcome::SpawnFailed(e) | Outcome::WaitFailed(e) => {
                self.logger
                    .error(&format!("error: {}: cannot run command: {e}", job.door));
                None
            }
        };
        if self.logger.has_json() {
            let mut fields = vec![
                ("kind", JsonValue::Str(job.kind.as_str())),
                ("command", JsonValue::Str(&job.command)),
                ("success", JsonValue::Bool(finished.outcome.is_success())),
            ];
            if let Some(status) = status {
                fields.push(("status", JsonValue::Int(status)));
            }
            if let Outcome::Signaled(signal) = finished.outcome {
                fields.push(("signal", JsonValue::Int(i64::from(signal))));
            }
            let event = JsonEvent {
                event: "command",
                time: Timestamp::now(),
                door: &job.door,
                source: job.source,
                host: None,
                fields,
            };
            self.logger.json(&event);
        }
        if let Some(id) = job.state_id {
            // Forgotten once it ran, whatever its status: a failing stop command would fail
            // again at every start.
            let written = self.state.remove(id);
            self.state_written(written);
        }
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
                self.state_write_failed(&e);
            }
            Err(_) => {}
        }
    }

    fn state_write_failed(&mut self, error: &std::io::Error) {
        self.logger.error(&format!(
            "error: cannot write state file {}: {}",
            self.state.path().display(),
            crate::io_reason(error)
        ));
    }

    // ----- one-time sequences -----------------------------------------------------------

    fn advance_one_time_sequence(&mut self, id: DoorId, door: &knock_core::Door) {
        let Some(ots) = self
            .loaded
            .ots
            .iter()
            .find(|o| o.door == id && o.name == door.name)
        else {
            return;
        };
        let next = match ots.file.mark_used(&door.sequence) {
            Ok(next) => next,
            Err(e) => {
                self.logger.error(&format!("error: {e}"));
                self.logger.error(&format!(
                    "error while disabling used one time sequence for door {} --> disabling the door",
                    door.name
                ));
                None
            }
        };
        match &next {
            Some(sequence) => {
                let text: Vec<String> = sequence.iter().map(ToString::to_string).collect();
                self.logger.debug(&format!(
                    "new sequence for door {}: {}",
                    door.name,
                    text.join(",")
                ));
            }
            None => self.logger.event(&exhausted_message(&door.name)),
        }
        let sequence = next.unwrap_or_default();
        if let Some(running) = self.running.doors.get_mut(id.index()) {
            running.sequence.clone_from(&sequence);
        }
        self.matcher.set_door_sequence(id, sequence);
        self.refresh_filter();
    }

    // ----- addresses, filter ------------------------------------------------------------

    fn apply_local_addresses(&mut self) {
        // With no address known yet (interface without address, `any`), accept every
        // destination rather than none: capture is non-promiscuous and incoming-only, so
        // packets seen are addressed to this host anyway (0.8 bug B4).
        let local = if self.local_addresses.is_empty() {
            LocalAddresses::Any
        } else {
            LocalAddresses::List(self.local_addresses.clone())
        };
        self.matcher.set_local_addresses(local);
    }

    fn refresh_filter(&mut self) {
        let filter = filter_expression(&self.running.doors, &self.local_addresses);
        self.logger.debug(&format!("filter: {filter}"));
        if let Some(capture) = &self.capture
            && let Err(e) = capture.set_filter(filter)
        {
            self.logger
                .error(&format!("error: cannot install the packet filter: {e}"));
        }
    }

    // ----- state file -------------------------------------------------------------------

    /// At startup: runs the stop commands that became due while knockd was not running and
    /// re-arms the others.
    fn restore_pending_stops(&mut self) {
        let entries = self.state.entries().to_vec();
        if entries.is_empty() {
            return;
        }
        let now_unix = Timestamp::now().as_second().max(0).unsigned_abs();
        let now = self.clock.now();
        for entry in entries {
            let door = self
                .running
                .doors
                .iter()
                .position(|d| d.name == entry.door)
                .and_then(|i| self.matcher.door(DoorId::from_index(i)).cloned());
            let (label, _) = self.label(entry.source);
            match door {
                Some(door) if entry.due_unix > now_unix => {
                    let wait = Duration::from_secs(entry.due_unix - now_unix);
                    self.logger.event(&format!(
                        "{label}: {}: stop command restored from {}, due in {}",
                        entry.door,
                        self.state.path().display(),
                        humantime::format_duration(wait)
                    ));
                    self.matcher
                        .schedule_close(door, entry.source, now.saturating_add(wait));
                }
                _ => {
                    self.logger.event(&format!(
                        "{label}: {}: running a stop command left pending by a previous run",
                        entry.door
                    ));
                    self.state.mark_started(entry.id);
                    let job = Job {
                        door: entry.door.clone(),
                        source: entry.source,
                        kind: CommandKind::Stop,
                        command: entry.command.clone(),
                        state_id: Some(entry.id),
                    };
                    self.executor.submit(job, &mut self.notices);
                }
            }
        }
        self.drain_actions();
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
        self.running = loaded.effective_config();
        self.loaded = loaded;
        self.matcher.replace_config(self.clock.now(), &self.running);
        self.refresh_filter();
        debug_config(&mut self.logger, &self.loaded.config);
    }

    fn log_statistics(&mut self) {
        let counters = *self.matcher.counters();
        let mut text = format!(
            "statistics: {} knocks admitted, {} doors opened, {} sources tracked, {} stop commands pending, {} commands running, {} queued",
            counters.admitted,
            counters.opened,
            self.matcher.tracked_sources(),
            self.matcher.pending_closes(),
            self.executor.running(),
            self.executor.queued(),
        );
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
        if let Err(e) = &exit {
            self.logger.error(&format!("error: {}", e.summary()));
        }
        if let Some(capture) = self.capture.take() {
            capture.stop();
        }
        if self.cli.no_stop_on_exit {
            let left = self.state.entries().iter().filter(|e| !e.started).count();
            if left > 0 {
                self.logger.event(&format!(
                    "leaving {left} stop commands pending in {} (--no-stop-on-exit)",
                    self.state.path().display()
                ));
            }
        } else {
            for close in self.matcher.take_pending_closes() {
                self.action(&close, true);
            }
            // Stops recorded but not known to the matcher (should not happen) run too.
            let orphans: Vec<_> = self
                .state
                .entries()
                .iter()
                .filter(|e| !e.started)
                .cloned()
                .collect();
            for entry in orphans {
                self.close(&entry.door, entry.source, None);
            }
        }
        self.flush_notices();
        if !self.executor.is_idle() {
            self.logger.verbose("waiting for child processes...");
            let deadline = std::time::Instant::now() + SHUTDOWN_BUDGET;
            let completions = self.executor.completions().clone();
            while !self.executor.is_idle() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                if let Ok(mut finished) = completions.recv_timeout(left) {
                    self.command_finished(&mut finished);
                }
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
        self.logger.log("shutting down");
        self.logger.flush();
        exit
    }
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

fn filter_family(addresses: Vec<IpAddr>, only_ipv4: bool) -> Vec<IpAddr> {
    if only_ipv4 {
        addresses.into_iter().filter(IpAddr::is_ipv4).collect()
    } else {
        addresses
    }
}
