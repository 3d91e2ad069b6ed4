//! Runs start and stop commands off the event loop (0.8 bug B11/B2 fixed).
//!
//! * Each command runs as `/bin/sh -c CMD` with stdin from `/dev/null`, in its own process
//!   group (so a hung command can be killed as a group), inheriting no descriptor but the
//!   standard ones: every file knockd opens is close-on-exec.
//! * The event loop spawns the process (fast: fork/exec) and a small thread waits for it and
//!   reports back over a channel, so matching never waits for a command.
//! * Commands for the same (door, source) run one after the other in submission order: a
//!   stop command never overtakes its start command.
//! * At most `max_running` commands run at once; further ones queue, and the doors take turns
//!   for free slots: a flood of jobs for one door (its starts, or the stops those starts
//!   lead to) does not delay another door's commands. The daemon core refuses start
//!   commands once [`MAX_QUEUED_STARTS`] jobs wait (DoS: a one-step door opens on every
//!   packet, from any spoofed source); stop commands are always accepted, and are bounded by
//!   the matcher's bound on pending stops.
//! * Within a door's turn its stop commands go first, and stops may use [`STOP_SLOTS`] slots
//!   beyond `max_running` that starts never take, so a flood of start commands never holds
//!   back a due stop: the stop starts at once in the extra slot, or within one turn of the
//!   doors in a free one (issue 10 item 7).
//! * A command still running after `kill_after` is killed with its whole process group.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

pub(crate) use crate::core::Job;
use crate::core::{CommandKind, CommandOutcome};

/// Most jobs waiting for a slot before the daemon core refuses new start commands (it counts
/// the jobs it emitted and not yet reported finished).
pub(crate) const MAX_QUEUED_STARTS: usize = 4096;

/// How a command ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The shell exited with this status.
    Exited(i32),
    /// The shell was killed by this signal.
    Signaled(i32),
    /// It could not be started.
    SpawnFailed(std::io::Error),
    /// Waiting for it failed (should not happen).
    WaitFailed(std::io::Error),
}

impl Outcome {
    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Exited(code),
            (None, Some(signal)) => Self::Signaled(signal),
            (None, None) => Self::Exited(-1),
        }
    }

    /// Whether the command succeeded (exit status 0).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Self::Exited(0))
    }

    /// What the daemon core is told.
    #[must_use]
    pub(crate) fn to_core(&self) -> CommandOutcome {
        match self {
            Self::Exited(code) => CommandOutcome::Exited(*code),
            Self::Signaled(signal) => CommandOutcome::Signaled(*signal),
            Self::SpawnFailed(e) | Self::WaitFailed(e) => CommandOutcome::Failed(e.to_string()),
        }
    }
}

/// A finished command, reported to the event loop.
#[derive(Debug)]
pub(crate) struct Finished {
    /// What ran.
    pub(crate) job: Job,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Whether the executor killed it for running past the kill timeout.
    pub(crate) killed: bool,
}

type Key = (String, IpAddr);

#[derive(Debug)]
struct Running {
    pid: u32,
    deadline: Option<Instant>,
    killed: bool,
    /// It holds one of the [`STOP_SLOTS`] (it is a stop that started while every regular
    /// slot was taken).
    extra_slot: bool,
}

/// Something the executor did that the caller should log.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A command was started: as process `pid`, the spawn having returned at `at` (the
    /// shell is running: `posix_spawn` returns once it is).
    Started {
        /// What runs.
        job: Job,
        /// The shell's process id.
        pid: u32,
        /// When the spawn returned.
        at: Instant,
        /// How long the spawn call took (`posix_spawn`: until the shell was executed).
        call: Duration,
    },
    /// A start command was started as process group `pid` (recorded in the state file until
    /// it ends, so a restart can stop it before running its stop: issue 10 item 5).
    StartSpawned {
        /// The door.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The process group (the shell's pid).
        pid: u32,
    },
    /// A command ran past the kill timeout and its process group was killed.
    Killed {
        /// The door.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The process group.
        pid: u32,
    },
}

/// Slots beyond `max_running` that only stop commands may use (issue 10 item 7: a due stop
/// never waits for a slot held by a flood of start commands).
pub(crate) const STOP_SLOTS: usize = 1;

/// Keys ready to start, per door, served round-robin over the doors; within a door's turn,
/// its keys whose next job is a stop command go first, in arrival order.
///
/// Why not all stops first, over all doors: a flood on a one-step door with a stop command
/// fills the stop line as fast as its starts end (the matcher fires their stops early when
/// its pending-stop bound is reached), and another door's start then waited for the whole
/// line: 2.2-3.3 s at 25 000 packets/s (`scripts/flood/stop_door.sh`).
#[derive(Debug, Default)]
struct Ready {
    by_door: HashMap<String, DoorKeys>,
    /// Doors with a ready key, in turn order.
    turns: VecDeque<String>,
}

/// One door's ready keys.
#[derive(Debug, Default)]
struct DoorKeys {
    /// Keys whose next job is a stop command.
    stops: VecDeque<Key>,
    /// Keys whose next job is a start command.
    starts: VecDeque<Key>,
}

impl DoorKeys {
    fn is_empty(&self) -> bool {
        self.stops.is_empty() && self.starts.is_empty()
    }
}

impl Ready {
    fn push(&mut self, key: Key, kind: CommandKind) {
        let keys = self.by_door.entry(key.0.clone()).or_default();
        if keys.is_empty() {
            self.turns.push_back(key.0.clone());
        }
        match kind {
            CommandKind::Stop => keys.stops.push_back(key),
            CommandKind::Start => keys.starts.push_back(key),
        }
    }

    /// The next key: the door whose turn it is gives its oldest stop, or else its oldest
    /// start. With `stops_only`, the first door in turn order that has a stop waiting gives
    /// it (a scan of the doors with ready keys: at most the configured doors).
    fn pop(&mut self, stops_only: bool) -> Option<Key> {
        let turn = if stops_only {
            self.turns
                .iter()
                .position(|door| self.by_door.get(door).is_some_and(|k| !k.stops.is_empty()))?
        } else {
            0
        };
        let door = self.turns.remove(turn)?;
        let keys = self.by_door.get_mut(&door)?;
        let key = keys.stops.pop_front().or_else(|| keys.starts.pop_front());
        if keys.is_empty() {
            self.by_door.remove(&door);
        } else {
            self.turns.push_back(door);
        }
        key
    }
}

/// The command runner. Owned by the event loop; see the module docs.
#[derive(Debug)]
pub(crate) struct Executor {
    max_running: usize,
    kill_after: Option<Duration>,
    /// Jobs waiting, per key, in order; a key appears in `ready` when its head can start.
    queues: HashMap<Key, VecDeque<Job>>,
    /// Jobs in `queues`, all keys together.
    queued: usize,
    /// Keys whose head job waits only for a free slot, per door in arrival order; the doors
    /// take turns (a flood of jobs for one door does not delay another door's).
    ready: Ready,
    running: HashMap<Key, Running>,
    /// How many of `running` hold one of the [`STOP_SLOTS`]; the others hold regular slots.
    in_extra_slots: usize,
    done_tx: Sender<Finished>,
    done_rx: Receiver<Finished>,
}

impl Executor {
    /// An executor running at most `max_running` commands at once, killing those that run
    /// longer than `kill_after` (never, if `None`).
    #[must_use]
    pub(crate) fn new(max_running: usize, kill_after: Option<Duration>) -> Self {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Self {
            max_running: max_running.max(1),
            kill_after,
            queues: HashMap::new(),
            queued: 0,
            ready: Ready::default(),
            running: HashMap::new(),
            in_extra_slots: 0,
            done_tx,
            done_rx,
        }
    }

    /// The channel on which finished commands arrive; pass each to [`finished`](Self::finished).
    #[must_use]
    pub(crate) fn completions(&self) -> &Receiver<Finished> {
        &self.done_rx
    }

    /// Queues a job; it starts at once if nothing else runs for its (door, source) and a slot
    /// is free.
    pub(crate) fn submit(&mut self, job: Job, notices: &mut Vec<Notice>) {
        let key = (job.door.clone(), job.source);
        let queue = self.queues.entry(key.clone()).or_default();
        queue.push_back(job);
        self.queued += 1;
        if queue.len() == 1 && !self.running.contains_key(&key) {
            self.make_ready(key);
        }
        self.start_ready(notices);
    }

    /// Records that a command finished (call with every [`Finished`] from
    /// [`completions`](Self::completions)) and starts whatever was waiting for it.
    pub(crate) fn finished(&mut self, finished: &mut Finished, notices: &mut Vec<Notice>) {
        let key = (finished.job.door.clone(), finished.job.source);
        if let Some(running) = self.running.remove(&key) {
            finished.killed = running.killed;
            if running.extra_slot {
                self.in_extra_slots -= 1;
            }
        }
        if self.queues.get(&key).is_some_and(|q| !q.is_empty()) {
            self.make_ready(key);
        }
        self.start_ready(notices);
    }

    /// `key`'s head job waits only for a slot.
    fn make_ready(&mut self, key: Key) {
        if let Some(kind) = self
            .queues
            .get(&key)
            .and_then(VecDeque::front)
            .map(|job| job.kind)
        {
            self.ready.push(key, kind);
        }
    }

    fn start_ready(&mut self, notices: &mut Vec<Notice>) {
        loop {
            // The doors take turns for the regular slots; only stops take the extra
            // STOP_SLOTS, and only once the regular ones are all taken (were a stop to take
            // an extra slot while a regular one is free, a regular slot freed later would
            // again go to a stop before another door's start had its turn).
            let regular_taken = self.running.len() - self.in_extra_slots;
            let (key, extra_slot) = if regular_taken < self.max_running {
                (self.ready.pop(false), false)
            } else if self.in_extra_slots < STOP_SLOTS {
                (self.ready.pop(true), true)
            } else {
                (None, false)
            };
            let Some(key) = key else {
                break;
            };
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            let Some(job) = queue.pop_front() else {
                self.queues.remove(&key);
                continue;
            };
            self.queued -= 1;
            if queue.is_empty() {
                self.queues.remove(&key);
            }
            // Both outcomes below put the key in `running` (a key in `ready` is not there).
            self.in_extra_slots += usize::from(extra_slot);
            let called = Instant::now();
            match spawn(&job) {
                Ok(child) => {
                    let at = Instant::now();
                    let pid = child.id();
                    self.running.insert(
                        key.clone(),
                        Running {
                            pid,
                            deadline: self.kill_after.map(|d| Instant::now() + d),
                            killed: false,
                            extra_slot,
                        },
                    );
                    notices.push(Notice::Started {
                        job: job.clone(),
                        pid,
                        at,
                        call: at.saturating_duration_since(called),
                    });
                    if job.kind == CommandKind::Start {
                        notices.push(Notice::StartSpawned {
                            door: job.door.clone(),
                            source: job.source,
                            pid,
                        });
                    }
                    let done_tx = self.done_tx.clone();
                    let for_waiter = job.clone();
                    let waiter = std::thread::Builder::new()
                        .name("knockd-cmd".into())
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            let mut child = child;
                            let outcome = match child.wait() {
                                Ok(status) => Outcome::from_status(status),
                                Err(e) => Outcome::WaitFailed(e),
                            };
                            let _ = done_tx.send(Finished {
                                job: for_waiter,
                                outcome,
                                killed: false,
                            });
                        });
                    if let Err(e) = waiter {
                        // No thread to wait for it: report it finished so its key is
                        // released (the child is reaped when knockd exits).
                        let _ = self.done_tx.send(Finished {
                            job,
                            outcome: Outcome::WaitFailed(e),
                            killed: false,
                        });
                    }
                }
                Err(e) => {
                    // Reported through the completion channel like any other end, so the
                    // caller logs it in one place and the next job for this key follows.
                    let _ = self.done_tx.send(Finished {
                        job,
                        outcome: Outcome::SpawnFailed(e),
                        killed: false,
                    });
                    // Keep the key busy until that notice is processed, so order holds.
                    self.running.insert(
                        key.clone(),
                        Running {
                            pid: 0,
                            deadline: None,
                            killed: false,
                            extra_slot,
                        },
                    );
                }
            }
        }
    }

    /// The next kill deadline, if any command has one.
    #[must_use]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.running
            .values()
            .filter(|r| !r.killed && r.pid != 0)
            .filter_map(|r| r.deadline)
            .min()
    }

    /// Kills (SIGKILL, whole process group) every command past its deadline at `now`.
    pub(crate) fn kill_overdue(&mut self, now: Instant, notices: &mut Vec<Notice>) {
        for ((door, source), running) in &mut self.running {
            if running.killed || running.pid == 0 {
                continue;
            }
            if running.deadline.is_some_and(|d| d <= now) {
                running.killed = true;
                kill_group(running.pid);
                notices.push(Notice::Killed {
                    door: door.clone(),
                    source: *source,
                    pid: running.pid,
                });
            }
        }
    }

    /// Commands running now.
    #[must_use]
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Commands waiting to start.
    #[must_use]
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Whether nothing runs and nothing waits.
    #[must_use]
    pub(crate) fn is_idle(&self) -> bool {
        self.running.is_empty() && self.queues.is_empty()
    }
}

fn spawn(job: &Job) -> std::io::Result<std::process::Child> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(&job.command)
        .stdin(Stdio::null())
        // Its own process group: a hung command (and anything it started) can be killed as
        // one, and a Ctrl-C on knockd's terminal is not delivered to it mid-update.
        .process_group(0)
        .spawn()
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(door: &str, kind: CommandKind, command: &str) -> Job {
        Job {
            door: door.into(),
            source: "10.0.0.1".parse().unwrap(),
            kind,
            command: command.into(),
            stop: None,
            opened: None,
        }
    }

    /// Submits `count` jobs for door "flood", each for its own source (10.1.0.i).
    fn submit_flood(
        executor: &mut Executor,
        kind: CommandKind,
        command: &str,
        count: u8,
        notices: &mut Vec<Notice>,
    ) {
        for i in 0..count {
            let mut flood = job("flood", kind, command);
            flood.source = IpAddr::from([10, 1, 0, i]);
            executor.submit(flood, notices);
        }
    }

    fn wait_all(executor: &mut Executor, n: usize) -> Vec<Finished> {
        let mut out = Vec::new();
        let mut notices = Vec::new();
        while out.len() < n {
            let mut f = executor
                .completions()
                .recv_timeout(Duration::from_secs(30))
                .expect("a command finished");
            executor.finished(&mut f, &mut notices);
            out.push(f);
        }
        out
    }

    #[test]
    fn exit_status_is_reported() {
        let mut executor = Executor::new(4, None);
        let mut notices = Vec::new();
        executor.submit(job("a", CommandKind::Start, "exit 3"), &mut notices);
        assert!(matches!(notices[0], Notice::Started { .. }));
        let done = wait_all(&mut executor, 1);
        assert!(matches!(done[0].outcome, Outcome::Exited(3)));
        assert!(executor.is_idle());
    }

    #[test]
    fn stop_never_overtakes_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("order");
        let log = log.display();
        let mut executor = Executor::new(4, None);
        let mut notices = Vec::new();
        executor.submit(
            job(
                "a",
                CommandKind::Start,
                &format!("sleep 0.3; echo start >> {log}"),
            ),
            &mut notices,
        );
        executor.submit(
            job("a", CommandKind::Stop, &format!("echo stop >> {log}")),
            &mut notices,
        );
        assert_eq!(executor.running(), 1);
        assert_eq!(executor.queued(), 1);
        let done = wait_all(&mut executor, 2);
        assert_eq!(done[0].job.kind, CommandKind::Start);
        assert_eq!(done[1].job.kind, CommandKind::Stop);
        let text = std::fs::read_to_string(dir.path().join("order")).unwrap();
        assert_eq!(text, "start\nstop\n");
    }

    #[test]
    fn concurrency_is_bounded_and_others_proceed() {
        let mut executor = Executor::new(1, None);
        let mut notices = Vec::new();
        executor.submit(job("a", CommandKind::Start, "true"), &mut notices);
        executor.submit(job("b", CommandKind::Start, "true"), &mut notices);
        assert_eq!(executor.running(), 1);
        assert_eq!(executor.queued(), 1);
        let done = wait_all(&mut executor, 2);
        assert!(done.iter().all(|f| f.outcome.is_success()));
        assert!(executor.is_idle());
    }

    #[test]
    fn doors_take_turns_for_free_slots() {
        let mut executor = Executor::new(1, None);
        let mut notices = Vec::new();
        submit_flood(&mut executor, CommandKind::Start, "true", 5, &mut notices);
        executor.submit(job("other", CommandKind::Start, "true"), &mut notices);
        let done = wait_all(&mut executor, 6);
        let order: Vec<&str> = done.iter().map(|f| f.job.door.as_str()).collect();
        // The first flood job was running; the doors then take turns: the other door's job
        // is third, not sixth.
        assert_eq!(order[..3], ["flood", "flood", "other"], "{order:?}");
    }

    /// Issue 10 item 7: a legitimate door's stop waited 20 s behind 3 000 spoofed opens.
    /// With every slot held (here by hung starts), a due stop still starts at once, before
    /// any queued start.
    #[test]
    fn issue10_item7_a_due_stop_never_waits_behind_starts() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("stop-ran");
        let mut executor = Executor::new(2, Some(Duration::ZERO));
        let mut notices = Vec::new();
        submit_flood(
            &mut executor,
            CommandKind::Start,
            "sleep 5",
            50,
            &mut notices,
        );
        let mut stop = job(
            "flood",
            CommandKind::Stop,
            &format!("touch {}", ran.display()),
        );
        stop.source = IpAddr::from([10, 2, 0, 1]);
        executor.submit(stop, &mut notices);
        let started: Vec<CommandKind> = notices
            .iter()
            .filter_map(|n| match n {
                Notice::Started { job, .. } => Some(job.kind),
                Notice::Killed { .. } | Notice::StartSpawned { .. } => None,
            })
            .collect();
        assert_eq!(
            started,
            [CommandKind::Start, CommandKind::Start, CommandKind::Stop]
        );
        assert_eq!(executor.queued(), 48);
        // The stop finishes first; then the hung starts are killed so the test ends.
        let done = wait_all(&mut executor, 1);
        assert_eq!(done[0].job.kind, CommandKind::Stop);
        assert!(ran.exists());
        // The queued starts, stopped one by one as they start (kill deadline zero).
        let mut left = 50;
        while left > 0 {
            executor.kill_overdue(Instant::now() + Duration::from_secs(1), &mut notices);
            left -= wait_all(&mut executor, 1).len();
        }
        assert!(executor.is_idle());
    }

    fn key(door: &str, last: u8) -> Key {
        (door.into(), IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn doors_take_turns_and_a_doors_stops_go_before_its_starts() {
        let mut ready = Ready::default();
        ready.push(key("a", 1), CommandKind::Start);
        ready.push(key("a", 2), CommandKind::Stop);
        ready.push(key("a", 3), CommandKind::Start);
        ready.push(key("b", 1), CommandKind::Start);
        ready.push(key("a", 4), CommandKind::Stop);
        // a's turn: its oldest stop; then b's turn, though a has another stop waiting.
        assert_eq!(ready.pop(false), Some(key("a", 2)));
        assert_eq!(ready.pop(false), Some(key("b", 1)));
        // A slot for stops only: a's stop, then none left (the starts stay).
        assert_eq!(ready.pop(true), Some(key("a", 4)));
        assert_eq!(ready.pop(true), None);
        assert_eq!(ready.pop(false), Some(key("a", 1)));
        assert_eq!(ready.pop(false), Some(key("a", 3)));
        assert_eq!(ready.pop(false), None);
        assert!(ready.by_door.is_empty() && ready.turns.is_empty());
    }

    /// The stop-door flood (`scripts/flood/stop_door.sh`): a one-step door's stops, fired
    /// early at the pending-stop bound, kept the stop line full, and a legitimate knock on
    /// another door waited 2.2-3.3 s for its start command at 25 000 packets/s. A freed
    /// regular slot now goes to the doors in turn; the extra stop slot stays the stops'.
    #[test]
    fn a_flood_of_stops_does_not_hold_back_another_doors_start() {
        fn started(notices: &mut Vec<Notice>) -> Vec<(String, CommandKind, u32)> {
            notices
                .drain(..)
                .filter_map(|n| match n {
                    Notice::Started { job, pid, .. } => Some((job.door, job.kind, pid)),
                    Notice::Killed { .. } | Notice::StartSpawned { .. } => None,
                })
                .collect()
        }
        fn end(executor: &mut Executor, pid: u32, notices: &mut Vec<Notice>) {
            kill_group(pid);
            let mut finished = executor
                .completions()
                .recv_timeout(Duration::from_secs(30))
                .expect("the killed command is reported");
            assert_eq!(finished.outcome.to_core(), CommandOutcome::Signaled(9));
            executor.finished(&mut finished, notices);
        }
        // One regular slot and the extra stop slot; every command hangs until killed (far longer
        // than the test, so the only command that ends is the one killed).
        let mut executor = Executor::new(1, Some(Duration::ZERO));
        let mut notices = Vec::new();
        submit_flood(
            &mut executor,
            CommandKind::Stop,
            "sleep 600",
            4,
            &mut notices,
        );
        executor.submit(job("other", CommandKind::Start, "sleep 600"), &mut notices);
        let first = started(&mut notices);
        let kinds: Vec<_> = first.iter().map(|(d, k, _)| (d.as_str(), *k)).collect();
        // The regular slot, then the extra one.
        assert_eq!(
            kinds,
            [("flood", CommandKind::Stop), ("flood", CommandKind::Stop)]
        );
        // The extra slot frees: another stop takes it.
        end(&mut executor, first[1].2, &mut notices);
        let next = started(&mut notices);
        assert_eq!(next.len(), 1);
        assert_eq!(
            (next[0].0.as_str(), next[0].1),
            ("flood", CommandKind::Stop)
        );
        // The regular slot frees: the other door's turn, before the last flood stop.
        end(&mut executor, first[0].2, &mut notices);
        let next = started(&mut notices);
        assert_eq!(next.len(), 1);
        assert_eq!(
            (next[0].0.as_str(), next[0].1),
            ("other", CommandKind::Start)
        );
        assert_eq!(executor.queued(), 1);
        // The rest are killed so the test ends.
        while !executor.is_idle() {
            executor.kill_overdue(Instant::now() + Duration::from_secs(1), &mut notices);
            wait_all(&mut executor, 1);
        }
    }

    #[test]
    fn hung_command_is_killed_as_a_group() {
        let mut executor = Executor::new(4, Some(Duration::ZERO));
        let mut notices = Vec::new();
        executor.submit(
            job("a", CommandKind::Start, "sleep 1000 & sleep 1000"),
            &mut notices,
        );
        let deadline = executor.next_deadline().expect("a kill deadline");
        executor.kill_overdue(deadline, &mut notices);
        assert!(notices.iter().any(|n| matches!(n, Notice::Killed { .. })));
        let done = wait_all(&mut executor, 1);
        assert!(done[0].killed);
        assert!(matches!(done[0].outcome, Outcome::Signaled(9)));
    }

    #[test]
    fn commands_inherit_no_open_file_and_get_null_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fds");
        let held_path = dir.path().join("held");
        // A file this process keeps open: the command must not inherit it (std opens
        // files close-on-exec).
        let _held = std::fs::File::create(&held_path).unwrap();
        let mut executor = Executor::new(4, None);
        let mut notices = Vec::new();
        executor.submit(
            job(
                "a",
                CommandKind::Start,
                &format!(
                    "for f in /proc/self/fd/*; do readlink $f; done > {o}; readlink /proc/self/fd/0 >> {o}",
                    o = out.display()
                ),
            ),
            &mut notices,
        );
        let done = wait_all(&mut executor, 1);
        assert!(done[0].outcome.is_success(), "{:?}", done[0].outcome);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().last(), Some("/dev/null"));
        assert!(
            !text.contains(held_path.to_str().unwrap()),
            "inherited a descriptor: {text}"
        );
    }
}
