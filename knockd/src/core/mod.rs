//! The daemon core: everything knockd decides, without I/O (quinn-proto one layer up: this
//! is to the event loop what knock-core's `Matcher` is to this).
//!
//! ```text
//!  capture ──packets──▶ ┌──────────────────────────── Core ─┐ ──Effect──▶ driver
//!  clock ─────Time────▶ │ Matcher (knock-core)               │   Log(Record)      logs, JSON
//!  executor ─finished─▶ │ running config + one-time seqs     │   PersistStop/Drop state file
//!  signals ──reload───▶ │ pending stops (records)            │   RunJob           executor
//!  netlink ─addresses─▶ │ Destinations (knock-capture)       │   RewriteOts       OTS file
//!  state file ─restore▶ └────────────────────────────────────┘   SetFilter        capture
//! ```
//!
//! # Calling contract
//!
//! Feed inputs with the `handle_*` methods, each with the current [`Time`]; after each,
//! drain [`Core::poll_effect`] until `None` and perform the effects in order; then sleep
//! until [`Core::poll_timeout`] (or the next input) and call [`Core::handle_timeout`].
//! Report what performing an effect gave back: a finished [`Effect::RunJob`] with
//! [`Core::handle_command_finished`], a failed [`Effect::RewriteOts`] with
//! [`Core::handle_ots_write_failed`] (before the next input), an
//! [`Effect::AddSetElement`] with [`Core::handle_set_element_added_at`] (before the next
//! [`Core::poll_effect`]).
//!
//! # Ordering rules (enforced here, tested in `tests.rs`)
//!
//! * A stop is recorded ([`Effect::PersistStop`]) before its start job is emitted.
//! * A one-time sequence advances right after its open: before any further packet is
//!   matched (bursts are fed packet by packet while a one-time-sequence door exists).
//! * Jobs of one door and source are emitted in the order they must run (start before its
//!   stop); the driver keeps that order.
//! * An open's [`Effect::AddSetElement`] comes before its start job: commands run after
//!   the element is in. It has no stop and no pending record (the kernel expires it).
//!
//! # Time-based (TOTP) doors
//!
//! The core owns the TOTP clock: at the first input and at every step boundary (part of
//! [`Core::poll_timeout`], computed from the sub-second wall clock [`Time::unix`]) it gives the
//! matcher each TOTP door's window of candidate sequences
//! ([`Matcher::set_door_sequences`]) and marks the spent codes still in the window. An open
//! with a code records it ([`Effect::PersistSpentCodes`], before the start job); a later
//! complete knock of it is logged as [`Record::CodeUsed`]. Spent codes are kept by door
//! name, so they survive a reload, and restored from the state file at start
//! ([`Core::handle_restore_spent`]); at most `2 × TOTP_Window + 1` per door.
//!
//! A complete knock whose code is not the window's never completes in the matcher; a
//! [`CodeTracker`] fed with the same packets follows knocks on the doors' port ranges
//! whatever their code, and its complete ones are looked up in each door's [`CodeTable`]
//! (the window and `DIAGNOSTIC_STEPS` = 10 more steps on each side, moved along at each step
//! boundary with one HMAC; none per packet): a stale, future or wrong code is logged as [`Record::CodeRefused`];
//! a code of the window is left to the matcher (open, or [`Record::CodeUsed`]), so no knock
//! is logged twice.
//!
//! # Bounds
//!
//! The matcher's [`Limits`] bound attempts and pending closes; pending-stop records are at
//! most the matcher's pending closes plus the jobs not yet finished plus the records restored
//! at startup. Start commands are refused while more than `max_waiting_starts` jobs wait.
//! The TOTP code tracker follows at most `knock_core::totp::DEFAULT_MAX_TRACKED` (4096)
//! attempts (about 1.2 MB), evicting the oldest; the code tables hold at most 41 codes per
//! TOTP door.
//!
//! # Adding a door kind
//!
//! A new proof (TOTP, SPA) is a knock-core matcher concern and reaches [`Core::drain`] as
//! actions; a new opening (as [`Effect::AddSetElement`] for nftables sets) is a new [`Effect`] variant emitted from
//! [`Core::open`] / [`Core::close`] next to [`Effect::RunJob`], with a `handle_*` method
//! for its completion if the driver reports one.

mod effect;
#[cfg(test)]
mod nft_tests;
mod record;
mod spa;
#[cfg(test)]
mod stage_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use knock_capture::Destinations;
use knock_core::totp::{CodeCheck, CodeTable, CodeTracker, Totp};
use knock_core::{
    Action, ActionKind, Config, Door, DoorId, DoorRef, Instant, Knock, Limits, Matcher,
    PacketEvent, ots,
};

pub(crate) use effect::{
    CommandKind, Effect, Job, OpenTimes, PendingStop, SetElementAdd, SpentCode, StopId,
};
pub(crate) use record::{CodeRefusal, CommandOutcome, Level, Record};

/// The time of an input: the monotonic instant the matcher runs on, and the wall clock in
/// Unix seconds (for the state file's due times, which must survive a restart) with its
/// sub-second part (so TOTP windows move at the true step boundary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Time {
    /// Monotonic time (the capture clock, or the packets' time in a replay).
    pub(crate) instant: Instant,
    /// Wall-clock time, Unix seconds (whole seconds, rounded down).
    pub(crate) unix_secs: u64,
    /// The wall clock's nanoseconds past `unix_secs` (below 1 000 000 000).
    pub(crate) unix_nanos: u32,
}

impl Time {
    /// The wall-clock time as a duration since the Unix epoch.
    #[must_use]
    pub(crate) const fn unix(&self) -> Duration {
        Duration::new(self.unix_secs, self.unix_nanos)
    }
}

/// A door's one-time sequences file, as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtsText {
    /// The door's index in the configuration.
    pub(crate) door: usize,
    /// The file, absolute (what [`Effect::RewriteOts`] names).
    pub(crate) path: PathBuf,
    /// Its content.
    pub(crate) text: String,
}

/// A configuration to run: as parsed (one-time-sequence doors have an empty `sequence`),
/// with the texts of the one-time sequences files.
#[derive(Clone, Debug)]
pub(crate) struct RunningConfig {
    /// The parsed configuration.
    pub(crate) config: Config,
    /// One entry per door with `One_Time_Sequences`.
    pub(crate) ots: Vec<OtsText>,
    /// One verifier per SPA door (its index, keys read): see the `spa` module.
    pub(crate) spa: Vec<(usize, knock_core::spa::SpaDoor)>,
    /// One entry per time-based (TOTP) door, its secret read.
    pub(crate) totp: Vec<TotpRun>,
}

/// A time-based (TOTP) door to serve.
#[derive(Clone, Debug)]
pub(crate) struct TotpRun {
    /// The door's index in the configuration.
    pub(crate) door: usize,
    /// Its code calculator (its `Debug` hides the secret).
    pub(crate) totp: Totp,
}

/// Settings of the core that do not come from the configuration file.
#[derive(Clone, Debug)]
pub(crate) struct CoreOptions {
    /// The matcher's bounds.
    pub(crate) limits: Limits,
    /// `-4`: only IPv4 addresses count as local.
    pub(crate) ipv4_only: bool,
    /// Commands the driver runs at once (`--max-commands`).
    pub(crate) max_running: usize,
    /// Jobs of one door waiting beyond which that door's start commands are refused.
    pub(crate) max_waiting_starts: usize,
    /// The state file, as log lines name it.
    pub(crate) state_file: PathBuf,
}

/// The daemon core; see the module documentation.
#[derive(Debug)]
pub(crate) struct Core {
    options: CoreOptions,
    /// The running configuration: one-time-sequence doors with their active sequence.
    config: Config,
    ots: Vec<OtsText>,
    matcher: Matcher,
    destinations: Destinations,
    stops: Stops,
    effects: VecDeque<Effect>,
    /// Jobs emitted and not reported finished, per door (a flood against one door does not
    /// get another door's start commands refused).
    jobs_outstanding: HashMap<String, usize>,
    refused_starts: u64,
    /// Stop commands whose spawn failed, waiting to be tried again (issue 10 item 4): when,
    /// and the job with its failures so far. At most one per pending-stop record.
    retries: BTreeMap<(Instant, StopId), (Job, u32)>,
    /// Whether the last write of the state file succeeded (issue 10 item 11): while not,
    /// doors with a stop command do not open.
    stops_durable: bool,
    /// Opens refused because their stop could not be recorded.
    refused_not_durable: u64,
    /// SPA doors' verifiers, replay cache and counters (see the `spa` module).
    spa: spa::SpaState,
    /// The TOTP doors of the running configuration.
    totp: Vec<TotpRun>,
    /// TOTP codes that opened their door, by door name (at most `2W + 1` per door: older
    /// ones are dropped at each step boundary).
    spent: BTreeSet<SpentCode>,
    /// When the TOTP windows must move next: Unix seconds and the matching instant
    /// (`None`: set them at the next input).
    totp_boundary: Option<(u64, Instant)>,
    /// Complete knocks on TOTP doors' port ranges, whatever their code (bounded: see
    /// [`CodeTracker`]), for telling stale, future and wrong codes apart.
    code_tracker: CodeTracker,
    /// Each TOTP door's codes around the current step (by door index), moved along at each
    /// step boundary: classifying a knock's code is a look-up, never an HMAC.
    code_tables: Vec<(usize, CodeTable)>,
    /// The kernel filter last emitted ([`Effect::SetFilter`]), so an unchanged one is not
    /// installed again.
    filter: Option<String>,
    /// The Unix time in µs of [`Instant::ZERO`] (see [`Core::set_clock_epoch`]).
    clock_epoch_us: u64,
    /// The doors' names, by door index, shared by the per-packet records ([`Record::Stage`],
    /// …) so that a flood allocates no name per packet (one entry per door of the largest
    /// configuration seen; see [`shared_name`]).
    door_names: Vec<Rc<str>>,
}

impl Core {
    /// A core running `running`, with no local address known yet (every destination
    /// counts until [`handle_local_addresses`](Self::handle_local_addresses)).
    #[must_use]
    pub(crate) fn new(running: RunningConfig, options: CoreOptions) -> Self {
        let config = effective_config(&running);
        let matcher = Matcher::with_limits(&config, options.limits);
        let spa = spa::SpaState::new(running.spa.clone());
        let mut code_tracker = CodeTracker::default();
        code_tracker.set_doors(&config);
        Self {
            spa,
            destinations: Destinations::new(options.ipv4_only),
            options,
            config,
            ots: running.ots,
            matcher,
            stops: Stops::default(),
            effects: VecDeque::new(),
            jobs_outstanding: HashMap::new(),
            refused_starts: 0,
            retries: BTreeMap::new(),
            stops_durable: true,
            refused_not_durable: 0,
            totp: running.totp,
            spent: BTreeSet::new(),
            totp_boundary: None,
            code_tracker,
            code_tables: Vec::new(),
            filter: None,
            clock_epoch_us: 0,
            door_names: Vec::new(),
        }
    }

    /// The Unix time, in microseconds, of [`Instant::ZERO`] on the clock of the packets'
    /// time stamps and of [`Time::instant`]: the stage times of opens ([`OpenTimes`]) are
    /// that plus the instants. 0 (the default) when instants already are Unix times (a
    /// replay: pcap time stamps); a live driver sets the wall-clock time at its clock's
    /// origin, so that stage times read as wall-clock times and their differences stay
    /// exact (monotonic).
    pub(crate) fn set_clock_epoch(&mut self, unix_micros: u64) {
        self.clock_epoch_us = unix_micros;
    }

    /// `at` as Unix microseconds (see [`set_clock_epoch`](Self::set_clock_epoch)).
    pub(crate) fn unix_micros(&self, at: Instant) -> u64 {
        self.clock_epoch_us.saturating_add(at.as_micros())
    }

    /// The next effect to perform, or `None` when drained.
    pub(crate) fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next (`None`: no deadline).
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.earliest_deadline(self.matcher.poll_expiry_timeout())
    }

    /// The earliest of `expiry` (the next `seq_timeout` expiry, exact or rounded), the next
    /// stop command, command retry and TOTP step boundary.
    fn earliest_deadline(&self, expiry: Option<Instant>) -> Option<Instant> {
        let retry = self.retries.keys().next().map(|(at, _)| *at);
        let boundary = self.totp_boundary.map(|(_, at)| at);
        [expiry, self.matcher.poll_close_timeout(), retry, boundary]
            .into_iter()
            .flatten()
            .min()
    }

    /// When a live daemon should call [`handle_timeout`](Self::handle_timeout) next: like
    /// [`poll_timeout`](Self::poll_timeout), except that `seq_timeout` expiries are rounded up
    /// to the next multiple of [`EXPIRY_TICK`] on the core's clock. Expiries only log
    /// `sequence timeout` and free memory (a knock after its `seq_timeout` is refused whenever
    /// they run), and under a spoofed-source flood there is one per flood packet: rounded,
    /// they cost a few wake-ups a second instead of one every packet or so, and are expired
    /// many at once. Stop commands, command retries and TOTP step boundaries stay on time.
    #[must_use]
    pub(crate) fn poll_wakeup(&self) -> Option<Instant> {
        let tick = u64::try_from(EXPIRY_TICK.as_micros()).unwrap_or(u64::MAX);
        let expiry = self
            .matcher
            .poll_expiry_timeout()
            .map(|at| Instant::from_micros(at.as_micros().div_ceil(tick).saturating_mul(tick)));
        self.earliest_deadline(expiry)
    }

    /// The earliest deadline with work pending (sequence timeouts, stop commands): like
    /// [`poll_timeout`](Self::poll_timeout) without the TOTP step boundaries, which never
    /// end. What a replay drains after its last packet.
    #[must_use]
    pub(crate) fn poll_pending_timeout(&self) -> Option<Instant> {
        self.matcher.poll_timeout()
    }

    /// The matcher, for statistics.
    #[must_use]
    pub(crate) const fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The running configuration (one-time-sequence doors with their active sequence).
    #[cfg(test)]
    #[must_use]
    pub(crate) const fn config(&self) -> &Config {
        &self.config
    }

    /// One packet.
    pub(crate) fn handle_packet(&mut self, now: Time, packet: &PacketEvent) {
        self.move_totp_windows(now);
        self.matcher.handle_packet(packet);
        self.drain_packets(now, std::slice::from_ref(packet));
        self.refuse_codes(packet);
    }

    /// A burst of packets, each at its own time stamp (`now`: when the burst is handled, for
    /// the records' wall-clock times and the opens' decision time). Fed to [`Matcher::handle_packets`] at once (faster with many
    /// sources), or packet by packet while a one-time-sequence door exists, so that its
    /// sequence advances before the next packet.
    pub(crate) fn handle_packets(&mut self, now: Time, packets: &[PacketEvent]) {
        self.move_totp_windows(now);
        if self.ots.is_empty() {
            self.matcher.handle_packets(packets);
            self.drain_packets(now, packets);
            if self.code_tracker.is_tracking() {
                for packet in packets {
                    self.refuse_codes(packet);
                }
            }
        } else {
            for packet in packets {
                self.handle_packet(now, packet);
            }
        }
    }

    /// Time passed: sequence timeouts and stop commands due by `now`.
    pub(crate) fn handle_timeout(&mut self, now: Time) {
        self.move_totp_windows(now);
        self.matcher.handle_timeout(now.instant);
        self.drain(now);
        self.run_due_retries(now.instant);
    }

    /// The local addresses changed (or are known for the first time).
    pub(crate) fn handle_local_addresses(&mut self, addresses: Vec<IpAddr>) {
        self.destinations.set_addresses(addresses);
        self.matcher.set_local_addresses(self.destinations.local());
        self.code_tracker
            .set_local_addresses(self.destinations.addresses());
        self.refresh_filter();
    }

    /// A new configuration (reload). Attempts in progress are discarded, pending stops kept.
    pub(crate) fn handle_reload(&mut self, now: Time, running: RunningConfig) {
        self.config = effective_config(&running);
        self.spa.doors.clone_from(&running.spa);
        self.ots = running.ots;
        self.totp = running.totp;
        self.matcher.replace_config(now.instant, &self.config);
        self.code_tracker.set_doors(&self.config);
        // Another configuration may have other secrets: its tables are computed afresh.
        self.code_tables.clear();
        self.totp_boundary = None;
        self.move_totp_windows(now);
        self.refresh_filter();
        self.drain(now);
    }

    /// At startup: the pending stops a previous run left in the state file. Overdue ones run
    /// at once; the others are armed again.
    pub(crate) fn handle_restore(&mut self, now: Time, stops: Vec<(StopId, PendingStop)>) {
        for (id, stop) in stops {
            let door = self
                .config
                .doors
                .iter()
                .position(|d| d.name == stop.door)
                .and_then(|i| self.matcher.door(door_id(i)).cloned());
            self.stops.insert(id, stop.clone());
            match door {
                Some(door) if stop.due_unix > now.unix_secs => {
                    // Issue 10 item 12: never later than a fresh open's stop (a file written
                    // under a wall clock that ran ahead, or read under one set back at boot,
                    // would otherwise leave the hole open for as long as it says).
                    let due_in = Duration::from_secs(stop.due_unix - now.unix_secs)
                        .min(restore_cap(settings(&door).cmd_timeout));
                    self.push(Effect::Log(Record::StopRestored {
                        door: stop.door,
                        source: stop.source,
                        due_in,
                        state_file: self.options.state_file.clone(),
                    }));
                    self.matcher.schedule_close(
                        door,
                        stop.source,
                        now.instant.saturating_add(due_in),
                    );
                }
                _ => {
                    self.push(Effect::Log(Record::StopOverdue {
                        door: stop.door.clone(),
                        source: stop.source,
                    }));
                    self.stops.start(id);
                    self.run(Job {
                        door: stop.door,
                        source: stop.source,
                        kind: CommandKind::Stop,
                        command: stop.command,
                        stop: Some(id),
                        opened: None,
                    });
                }
            }
        }
        self.drain(now);
    }

    /// At startup: the TOTP codes a previous run recorded as spent (state file). Those still
    /// inside their door's window open nothing; the others are forgotten. Also sets the TOTP
    /// windows, so [`poll_timeout`](Self::poll_timeout) includes the next step boundary.
    pub(crate) fn handle_restore_spent(&mut self, now: Time, spent: Vec<SpentCode>) {
        self.spent.extend(spent);
        self.totp_boundary = None;
        self.move_totp_windows(now);
        self.drain(now);
    }

    /// The TOTP codes spent now (for tests and statistics).
    #[cfg(test)]
    pub(crate) fn spent_codes(&self) -> Vec<SpentCode> {
        self.spent.iter().cloned().collect()
    }

    /// A job emitted by [`Effect::RunJob`] finished.
    pub(crate) fn handle_command_finished(&mut self, job: &Job, outcome: CommandOutcome) {
        if let Some(count) = self.jobs_outstanding.get_mut(&job.door) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.jobs_outstanding.remove(&job.door);
            }
        }
        self.push(Effect::Log(Record::CommandFinished {
            job: Box::new(job.clone()),
            outcome,
        }));
        // Forgotten once it ran, whatever its status: a failing stop command would fail
        // again at every start.
        if let Some(id) = job.stop
            && self.stops.remove(id)
        {
            self.push(Effect::DropStop(id));
        }
    }

    /// A job emitted by [`Effect::RunJob`] could not be started (`fork`/`exec` failed:
    /// EAGAIN, ENOMEM): the system's `error`. A stop command is kept (its state-file record
    /// stays) and tried again after a backoff (1 s, doubling, at most
    /// [`MAX_RETRY_BACKOFF`]), each failure logged; a start command is reported finished.
    pub(crate) fn handle_spawn_failed(&mut self, now: Time, job: &Job, error: String) {
        let Some(id) = job.stop.filter(|_| job.kind == CommandKind::Stop) else {
            self.handle_command_finished(job, CommandOutcome::Failed(error));
            return;
        };
        if let Some(count) = self.jobs_outstanding.get_mut(&job.door) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.jobs_outstanding.remove(&job.door);
            }
        }
        let attempt = self.stops.failed(id);
        let retry_in = MAX_RETRY_BACKOFF.min(Duration::from_secs(1 << (attempt - 1).min(16)));
        self.push(Effect::Log(Record::StopSpawnFailed {
            door: job.door.clone(),
            source: job.source,
            error,
            attempt,
            retry_in,
        }));
        self.retries.insert(
            (now.instant.saturating_add(retry_in), id),
            (job.clone(), attempt),
        );
    }

    /// Whether the state file can be written (the driver's last write, or its probe at
    /// startup, succeeded). While it cannot, a door with a stop command does not open: its
    /// stop could not survive a crash (issue 10 item 11). Doors without one still open.
    pub(crate) fn handle_state_durable(&mut self, durable: bool) {
        self.stops_durable = durable;
    }

    /// An [`Effect::RewriteOts`] for `door` failed with `error`: the door is disabled (its
    /// used sequence must not open again).
    pub(crate) fn handle_ots_write_failed(&mut self, door: &str, error: String) {
        self.push(Effect::Log(Record::OtsWriteFailed { error }));
        self.push(Effect::Log(Record::OtsDisabled {
            door: door.to_owned(),
        }));
        self.push(Effect::Log(Record::OtsExhausted {
            door: door.to_owned(),
        }));
        if let Some(index) = self.config.doors.iter().position(|d| d.name == door) {
            self.set_sequence(index, Vec::new());
        }
    }

    /// An [`Effect::AddSetElement`] was performed: `Ok` or the reason it failed (a failure
    /// is an error for that knock only; the door's start command still runs, and the daemon
    /// goes on). Call it before the next [`poll_effect`](Self::poll_effect): its record goes
    /// to the front of the queue, so it is logged right after the open and before that
    /// open's start job. (The live driver calls
    /// [`handle_set_element_added_at`](Self::handle_set_element_added_at).)
    #[cfg(test)]
    pub(crate) fn handle_set_element_added(
        &mut self,
        add: Box<SetElementAdd>,
        result: Result<(), String>,
    ) {
        self.set_element_result(add, result, None);
    }

    /// `handle_set_element_added` (used by tests), with the time the
    /// element was written (logged with the open's stage times).
    pub(crate) fn handle_set_element_added_at(
        &mut self,
        add: Box<SetElementAdd>,
        result: Result<(), String>,
        written: Instant,
    ) {
        let written_us = self.unix_micros(written);
        self.set_element_result(add, result, Some(written_us));
    }

    fn set_element_result(
        &mut self,
        add: Box<SetElementAdd>,
        result: Result<(), String>,
        written_us: Option<u64>,
    ) {
        let record = match result {
            Ok(()) => Record::SetElementAdded { add, written_us },
            Err(error) => Record::SetElementFailed { add, error },
        };
        self.effects.push_front(Effect::Log(record));
    }

    /// knockd is exiting: run every pending stop now (`run_pending_stops`), or leave them in
    /// the state file for the next start (`--no-stop-on-exit`).
    ///
    /// nftables set elements are left alone either way: each expires at its own timeout in
    /// the kernel, as if knockd were still running (removing them early would cut an SSH
    /// login short at a mere restart; with `--no-stop-on-exit` they simply go on, like the
    /// stops left in the state file).
    pub(crate) fn handle_shutdown(&mut self, run_pending_stops: bool) {
        if !run_pending_stops {
            let count = self.stops.unstarted().len();
            if count > 0 {
                self.push(Effect::Log(Record::StopsLeft {
                    count,
                    state_file: self.options.state_file.clone(),
                }));
            }
            return;
        }
        for close in self.matcher.take_pending_closes() {
            if let Action::Close { door, source } = close {
                let settings = settings(&door);
                self.push(Effect::Log(Record::ShutdownClose {
                    door: settings.name.clone(),
                    source,
                }));
                self.close(&settings.name, source);
            }
        }
        // Stops recorded but not known to the matcher (should not happen) run too.
        for (door, source) in self.stops.unstarted() {
            self.close(&door, source);
        }
        // Stops waiting to be tried again after a failed spawn: one last try now.
        for (_, (job, _)) in std::mem::take(&mut self.retries) {
            self.run(job);
        }
    }

    /// Runs again the stop commands whose retry time has come.
    fn run_due_retries(&mut self, now: Instant) {
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (job, _) = entry.remove();
            self.run(job);
        }
    }

    // ----- inside ---------------------------------------------------------------------

    fn push(&mut self, effect: Effect) {
        self.effects.push_back(effect);
    }

    /// Turns the matcher's actions into effects.
    fn drain(&mut self, now: Time) {
        self.drain_packets(now, &[]);
    }

    /// Turns the matcher's actions into effects, after `packets` were fed (their capture
    /// times go into the opens' [`OpenTimes`]).
    fn drain_packets(&mut self, now: Time, packets: &[PacketEvent]) {
        // Opens come in packet order: each one's packet is at or after the previous one's.
        let mut cursor = 0;
        while let Some(view) = self.matcher.poll_action_ref() {
            let (kind, source, stage) = (view.kind, view.source, view.stage);
            let names = &mut self.door_names;
            let mut door = || shared_name(names, view.door);
            let record = match kind {
                ActionKind::Stage => Record::Stage {
                    door: door(),
                    source,
                    stage,
                },
                ActionKind::Timeout => Record::Timeout {
                    door: door(),
                    source,
                    stage,
                },
                ActionKind::Invalidated => Record::Invalidated {
                    door: door(),
                    source,
                    stage,
                },
                ActionKind::Open => {
                    let door = view.door.clone();
                    if let Some(code_step) = view.code_step {
                        // Recorded before the start command runs: a restart never lets
                        // the code open again.
                        self.spent.insert(SpentCode {
                            door: settings(&door).name.clone(),
                            code_step,
                        });
                        self.push(Effect::PersistSpentCodes(self.spent_list()));
                    }
                    let last = settings(&door).sequence.last().copied();
                    let captured = opening_packet(packets, &mut cursor, source, last)
                        .map_or(now.instant, |p| p.timestamp);
                    let times = self.open_times(captured, now);
                    self.open(now, &door, source, times);
                    continue;
                }
                ActionKind::CodeUsed => Record::CodeUsed {
                    door: door().to_string(),
                    source,
                    code_step: view.code_step.unwrap_or_default(),
                },
                ActionKind::Close => {
                    let door = view.door.clone();
                    let settings = settings(&door);
                    self.push(Effect::Log(Record::Close {
                        door: settings.name.clone(),
                        source,
                    }));
                    self.close(&settings.name, source);
                    continue;
                }
                // A kind added to knock-core after this was written: nothing is logged
                // rather than a wrong word.
                _ => continue,
            };
            self.push(Effect::Log(record));
        }
    }

    /// An open whose stop command could not be made durable (the state file cannot be
    /// written, issue 10 item 11) runs nothing: counted, and logged once per power of two so
    /// that a flood cannot flood the log as well.
    fn refuse_not_durable(&mut self, door: &str, source: IpAddr) {
        self.refused_not_durable += 1;
        if self.refused_not_durable.is_power_of_two() {
            self.push(Effect::Log(Record::OpenNotDurable {
                door: door.to_owned(),
                source,
                state_file: self.options.state_file.clone(),
                refused: self.refused_not_durable,
            }));
        }
    }

    /// Whether a start command for `door` must be refused because too many of its jobs
    /// already wait for a slot (DoS: a one-step door opens on every spoofed packet). Counted,
    /// and logged once per power of two so that a flood cannot flood the log as well.
    fn start_refused(&mut self, door: &str, source: IpAddr) -> bool {
        let waiting = self
            .jobs_outstanding
            .get(door)
            .map_or(0, |n| n.saturating_sub(self.options.max_running));
        if waiting < self.options.max_waiting_starts {
            return false;
        }
        self.refused_starts += 1;
        if self.refused_starts.is_power_of_two() {
            self.push(Effect::Log(Record::StartRefused {
                door: door.to_owned(),
                source,
                waiting,
                refused: self.refused_starts,
            }));
        }
        true
    }

    /// An open: the knocker's address goes into the door's nftables set (if it has one for
    /// that family), the stop is recorded, then the start command runs, then a one-time
    /// sequence advances.
    fn open(&mut self, now: Time, door: &DoorRef, source: IpAddr, times: OpenTimes) {
        let settings = settings(door);
        self.push(Effect::Log(Record::Open {
            door: settings.name.clone(),
            source,
            times,
        }));
        // Before the start command: commands run after the element is in.
        if let Some(set) = settings.nft_set_for(source) {
            self.push(Effect::AddSetElement(Box::new(SetElementAdd {
                door: settings.name.clone(),
                set: set.clone(),
                address: source,
                timeout: settings.cmd_timeout,
                opened: Some(times),
            })));
        }
        if settings.start_command_line(source).is_some()
            && !self.stops_durable
            && settings.stop_command_line(source).is_some()
        {
            self.refuse_not_durable(&settings.name, source);
        } else if let Some(start) = settings.start_command_line(source)
            && !self.start_refused(&settings.name, source)
        {
            // Recorded before starting anything: if knockd dies while the start command
            // runs, the next start still closes the hole.
            if let Some(stop) = settings.stop_command_line(source) {
                let timeout = settings.cmd_timeout;
                let due_unix =
                    now.unix_secs + timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
                let stop = PendingStop {
                    door: settings.name.clone(),
                    source,
                    due_unix,
                    command: stop,
                };
                let id = self.stops.add(stop.clone());
                self.push(Effect::PersistStop { id, stop });
            }
            self.run(Job {
                door: settings.name.clone(),
                source,
                kind: CommandKind::Start,
                command: start,
                stop: None,
                opened: Some(times),
            });
        }
        self.advance_one_time_sequence(door_index(door), settings);
    }

    /// Runs the stop command of (`door`, `source`): the one recorded at the open (it matches
    /// what was opened, even across a reload). Every start that ran has one; an open whose
    /// start command was refused (flood) has none, and its close runs nothing: a stop
    /// command for a hole never opened would only add to the flood.
    fn close(&mut self, door: &str, source: IpAddr) {
        let Some((id, command)) = self.stops.start_next(door, source) else {
            return;
        };
        self.run(Job {
            door: door.to_owned(),
            source,
            kind: CommandKind::Stop,
            command,
            stop: Some(id),
            opened: None,
        });
    }

    fn run(&mut self, job: Job) {
        *self.jobs_outstanding.entry(job.door.clone()).or_default() += 1;
        self.push(Effect::RunJob(job));
    }

    /// After an open of a one-time-sequence door: the used line is marked, the next one
    /// becomes active (or the door is disabled).
    fn advance_one_time_sequence(&mut self, index: usize, door: &Door) {
        let Some(ots) = self.ots.iter_mut().find(|o| o.door == index) else {
            return;
        };
        let next = match ots::advance(&ots.text, &door.sequence) {
            Some(step) => {
                ots.text.clone_from(&step.text);
                let path = ots.path.clone();
                self.push(Effect::RewriteOts {
                    door: door.name.clone(),
                    path,
                    text: step.text,
                });
                step.next.map(|n| n.sequence)
            }
            // The used line is gone (should not happen): keep the active one.
            None => ots::active_sequence(&ots.text).map(|a| a.sequence),
        };
        match &next {
            Some(sequence) => self.push(Effect::Log(Record::OtsNext {
                door: door.name.clone(),
                sequence: sequence.clone(),
            })),
            None => self.push(Effect::Log(Record::OtsExhausted {
                door: door.name.clone(),
            })),
        }
        self.set_sequence(index, next.unwrap_or_default());
    }

    fn set_sequence(&mut self, index: usize, sequence: Vec<Knock>) {
        if let Some(door) = self.config.doors.get_mut(index) {
            door.sequence.clone_from(&sequence);
        }
        self.matcher.set_door_sequence(door_id(index), sequence);
        self.refresh_filter();
    }

    fn spent_list(&self) -> Vec<SpentCode> {
        self.spent.iter().cloned().collect()
    }

    /// At a TOTP step boundary (or when nothing is set yet): gives the matcher each TOTP
    /// door's window of codes, marks the spent ones, and forgets spent codes that left the
    /// window. Steps are whole seconds, so the step of `now` is that of `now.unix_secs`;
    /// the wake-up instant for the next boundary is computed from the sub-second wall clock
    /// (`Time::unix`), so the window moves at the true boundary, not up to a second late.
    fn move_totp_windows(&mut self, now: Time) {
        if self.totp.is_empty() {
            self.code_tables.clear();
            if self.totp_boundary.take().is_some() || !self.spent.is_empty() {
                self.spent.clear();
                self.push(Effect::PersistSpentCodes(Vec::new()));
            }
            return;
        }
        if let Some((unix, at)) = self.totp_boundary
            && now.unix_secs < unix
        {
            if now.instant >= at {
                // Woken for the boundary while the wall clock is not there yet (it drifted
                // from the monotonic clock, or was set back): wake up again when it is,
                // rather than at once again and again.
                let wait = Duration::from_secs(unix).saturating_sub(now.unix());
                self.totp_boundary = Some((unix, now.instant.saturating_add(wait)));
            }
            return;
        }
        let mut next = u64::MAX;
        let mut keep = BTreeSet::new();
        let mut tables = Vec::with_capacity(self.totp.len());
        for run in &self.totp {
            let Some(door) = self.config.doors.get(run.door) else {
                continue;
            };
            let window = run.totp.window_counters(now.unix_secs);
            // The window's codes and those of DIAGNOSTIC_STEPS more steps on each side:
            // moved along from the previous step (one HMAC per door and step), computed in
            // full (at most 41 HMACs per door) at start and after a reload.
            let table = match self.code_tables.iter().position(|(d, _)| *d == run.door) {
                Some(index) => {
                    let (_, mut table) = self.code_tables.swap_remove(index);
                    run.totp.advance_table(&mut table, now.unix_secs);
                    table
                }
                None => run.totp.table(now.unix_secs),
            };
            let candidates = table
                .window()
                .into_iter()
                .map(|c| (c.counter, c.sequence))
                .collect();
            tables.push((run.door, table));
            self.matcher
                .set_door_sequences(door_id(run.door), candidates);
            for spent in self.spent.iter().filter(|s| s.door == door.name) {
                if window.contains(&spent.code_step) {
                    self.matcher.spend_code(door_id(run.door), spent.code_step);
                    keep.insert(spent.clone());
                }
            }
            next = next.min(run.totp.next_step_boundary(now.unix_secs));
        }
        self.code_tables = tables;
        if keep != self.spent {
            self.spent = keep;
            self.push(Effect::PersistSpentCodes(self.spent_list()));
        }
        let wait = Duration::from_secs(next).saturating_sub(now.unix());
        self.totp_boundary = Some((next, now.instant.saturating_add(wait)));
    }

    /// Feeds `packet` to the TOTP code tracker and logs every complete knock on a TOTP
    /// door's port ranges whose code is stale, future or wrong ([`Record::CodeRefused`]).
    /// Codes of the window are left to the matcher, which opens or logs
    /// [`Record::CodeUsed`], so nothing is logged twice.
    fn refuse_codes(&mut self, packet: &PacketEvent) {
        if !self.code_tracker.is_tracking() {
            return;
        }
        let (tables, doors, effects) = (&self.code_tables, &self.config.doors, &mut self.effects);
        self.code_tracker.handle_packet(packet, |knocked| {
            let index = knocked.door.index();
            let Some((_, table)) = tables.iter().find(|(door, _)| *door == index) else {
                return;
            };
            let current = table.current();
            let refusal = match table.check_code(knocked.code) {
                CodeCheck::Stale { counter } => CodeRefusal::Stale {
                    steps: current.saturating_sub(counter),
                    code_step: counter,
                },
                CodeCheck::Future { counter } => CodeRefusal::Future {
                    steps: counter.saturating_sub(current),
                    code_step: counter,
                },
                CodeCheck::Wrong => CodeRefusal::Wrong,
                // A code of the window: the matcher's.
                _ => return,
            };
            let Some(door) = doors.get(index) else {
                return;
            };
            effects.push_back(Effect::Log(Record::CodeRefused {
                door: door.name.clone(),
                source: knocked.source,
                refusal,
            }));
        });
    }

    /// The stage times of an open whose packet was captured at `captured` and decided on
    /// at `now`.
    fn open_times(&self, captured: Instant, now: Time) -> OpenTimes {
        OpenTimes {
            captured_us: self.unix_micros(captured),
            decided_us: self.unix_micros(now.instant.max(captured)),
        }
    }

    /// Emits [`Effect::SetFilter`] when the kernel filter changed (only then: reinstalling
    /// a filter drops the packets that arrive meanwhile, and the local addresses are
    /// reported again at startup and when an IPv6 address leaves its tentative state).
    fn refresh_filter(&mut self) {
        let filter = self.destinations.filter(&self.config.doors);
        if self.filter.as_ref() != Some(&filter) {
            self.filter = Some(filter.clone());
            self.push(Effect::SetFilter(filter));
        }
        self.refresh_payload_ports();
    }
}

/// The packet of `packets` that opened for `source`: the first one from `source` at or after
/// `cursor` (the previous open's packet: opens come in packet order) that is the door's
/// `last` knock (any packet from `source` if none is, or for a door without a fixed
/// sequence), and `cursor` moves there. Exact for a burst of one packet (at idle, and with
/// `-D`); in a longer burst, exact unless the source sent its door's last knock more than
/// once in it. `None` when no packet is known (timeouts, SPA).
fn opening_packet<'a>(
    packets: &'a [PacketEvent],
    cursor: &mut usize,
    source: IpAddr,
    last: Option<Knock>,
) -> Option<&'a PacketEvent> {
    let rest = packets.get(*cursor..)?;
    let is_last = |p: &PacketEvent| {
        last.is_some_and(|k| k.port == p.destination_port && k.protocol == p.protocol)
    };
    let offset = rest
        .iter()
        .position(|p| p.source == source && is_last(p))
        .or_else(|| rest.iter().position(|p| p.source == source))?;
    *cursor += offset;
    packets.get(*cursor)
}

/// The granularity of `seq_timeout` expiries in a live daemon (see [`Core::poll_wakeup`]):
/// a `sequence timeout` line comes at most this late.
pub(crate) const EXPIRY_TICK: Duration = Duration::from_millis(100);

/// The longest wait before a stop command whose spawn failed is tried again.
pub(crate) const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// The latest a restored stop of a door with `cmd_timeout` may run: that timeout from now,
/// in whole seconds rounded up (as the state file records due times).
fn restore_cap(cmd_timeout: Duration) -> Duration {
    Duration::from_secs(cmd_timeout.as_secs() + u64::from(cmd_timeout.subsec_nanos() > 0))
}

/// The configuration with every one-time-sequence door's active sequence filled in (empty
/// if exhausted).
fn effective_config(running: &RunningConfig) -> Config {
    let mut config = running.config.clone();
    for ots in &running.ots {
        if let Some(door) = config.doors.get_mut(ots.door) {
            door.sequence = ots::active_sequence(&ots.text)
                .map(|a| a.sequence)
                .unwrap_or_default();
        }
    }
    config
}

// The only places that know how knock-core names a door.

fn door_id(index: usize) -> DoorId {
    DoorId::from_index(index)
}

fn door_index(door: &DoorRef) -> usize {
    door.id().index()
}

fn settings(door: &DoorRef) -> &Door {
    door
}

/// `door`'s name, shared: the entry of `names` at its index, made (or replaced, after a
/// reload renamed the door) when it is not that name; no allocation in the steady state.
fn shared_name(names: &mut Vec<Rc<str>>, door: &DoorRef) -> Rc<str> {
    let index = door_index(door);
    let name = settings(door).name.as_str();
    if names.len() <= index {
        names.resize_with(index + 1, || Rc::from(""));
    }
    if *names[index] != *name {
        names[index] = Rc::from(name);
    }
    Rc::clone(&names[index])
}

/// The pending-stop records, by id, with the not yet started ones indexed by (door, source).
#[derive(Debug, Default)]
struct Stops {
    records: BTreeMap<StopId, PendingStop>,
    /// Failed spawns so far, per record (issue 10 item 4).
    failures: HashMap<StopId, u32>,
    /// Not started yet, per (door, source).
    waiting: HashMap<(String, IpAddr), Vec<StopId>>,
    next_id: u64,
}

impl Stops {
    fn add(&mut self, stop: PendingStop) -> StopId {
        self.next_id += 1;
        let id = StopId(self.next_id);
        self.insert(id, stop);
        id
    }

    fn insert(&mut self, id: StopId, stop: PendingStop) {
        self.next_id = self.next_id.max(id.0);
        self.waiting
            .entry((stop.door.clone(), stop.source))
            .or_default()
            .push(id);
        self.records.insert(id, stop);
    }

    /// Marks the earliest due, not yet started stop of (`door`, `source`) as started and
    /// returns it with its command.
    fn start_next(&mut self, door: &str, source: IpAddr) -> Option<(StopId, String)> {
        let key = (door.to_owned(), source);
        let ids = self.waiting.get_mut(&key)?;
        let (position, id) = ids
            .iter()
            .enumerate()
            .min_by_key(|(_, id)| (self.records.get(id).map(|r| r.due_unix), **id))
            .map(|(i, id)| (i, *id))?;
        ids.swap_remove(position);
        if ids.is_empty() {
            self.waiting.remove(&key);
        }
        Some((id, self.records.get(&id)?.command.clone()))
    }

    /// Marks a stop as started by id.
    fn start(&mut self, id: StopId) {
        let Some(stop) = self.records.get(&id) else {
            return;
        };
        let key = (stop.door.clone(), stop.source);
        if let Some(ids) = self.waiting.get_mut(&key) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.waiting.remove(&key);
            }
        }
    }

    /// Counts a failed spawn of a stop; the failures so far (1 for the first).
    fn failed(&mut self, id: StopId) -> u32 {
        let count = self.failures.entry(id).or_default();
        *count = count.saturating_add(1);
        *count
    }

    /// Forgets a stop that ran; whether it was recorded.
    fn remove(&mut self, id: StopId) -> bool {
        self.failures.remove(&id);
        self.start(id);
        self.records.remove(&id).is_some()
    }

    /// (door, source) of every stop not started yet, once per stop, in id order.
    fn unstarted(&self) -> Vec<(String, IpAddr)> {
        let mut ids: Vec<StopId> = self.waiting.values().flatten().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .filter_map(|id| self.records.get(id))
            .map(|r| (r.door.clone(), r.source))
            .collect()
    }
}
