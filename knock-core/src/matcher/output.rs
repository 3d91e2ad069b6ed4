//! Actions and the output queue: what the matcher tells its caller, queued as plain indices
//! so that a packet touches no reference count.

use core::fmt;
use std::net::IpAddr;

use super::deadlines::PendingClose;
use super::doors::{DoorRef, DoorTable};
use super::limits::Counters;

#[cfg(doc)]
use super::Matcher;

/// Something the caller should log or do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// `source` completed step `stage` (1-based) of `door`.
    Stage {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// The step just completed, 1-based.
        stage: usize,
    },
    /// `source` completed the whole sequence: run the start command.
    Open {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// For a TOTP door, the time-step counter of the code knocked (now spent); `None`
        /// for other doors.
        code_step: Option<u64>,
    },
    /// `cmd_timeout` after an open: run the stop command.
    Close {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
    },
    /// The sequence was not completed within `seq_timeout`.
    Timeout {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// Steps completed when it expired.
        stage: usize,
    },
    /// A wrong knock ended the attempt.
    Invalidated {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// Steps completed before the wrong knock.
        stage: usize,
    },
    /// `source` completed the sequence of a TOTP code that already opened the door (for
    /// any source): nothing opens.
    CodeUsed {
        /// The door.
        door: DoorRef,
        /// The knocker.
        source: IpAddr,
        /// The time-step counter of the spent code.
        code_step: u64,
    },
}

/// What an [`Action`] is, without its data (see [`ActionView`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActionKind {
    /// [`Action::Stage`].
    Stage,
    /// [`Action::Open`].
    Open,
    /// [`Action::Close`].
    Close,
    /// [`Action::Timeout`].
    Timeout,
    /// [`Action::Invalidated`].
    Invalidated,
    /// [`Action::CodeUsed`].
    CodeUsed,
}

/// A borrowed view of the next action, from [`Matcher::poll_action_ref`]: the same
/// information as an [`Action`] without cloning the door's `Arc` (an atomic operation per
/// action, which dominates the cost of a packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActionView<'a> {
    /// Which action.
    pub kind: ActionKind,
    /// The door.
    pub door: &'a DoorRef,
    /// The knocker.
    pub source: IpAddr,
    /// For `Stage`, the step just completed (1-based); for `Timeout` and `Invalidated`, the
    /// steps completed before; 0 for `Open`, `Close` and `CodeUsed`.
    pub stage: usize,
    /// For `Open` of a TOTP door and `CodeUsed`: the time-step counter of the code.
    pub code_step: Option<u64>,
}

impl ActionView<'_> {
    /// The owned [`Action`] (clones the door's `Arc`).
    #[must_use]
    pub fn to_action(&self) -> Action {
        let door = self.door.clone();
        let source = self.source;
        let stage = self.stage;
        let code_step = self.code_step;
        match self.kind {
            ActionKind::Stage => Action::Stage {
                door,
                source,
                stage,
            },
            ActionKind::Open => Action::Open {
                door,
                source,
                code_step,
            },
            ActionKind::CodeUsed => Action::CodeUsed {
                door,
                source,
                code_step: code_step.unwrap_or_default(),
            },
            ActionKind::Close => Action::Close { door, source },
            ActionKind::Timeout => Action::Timeout {
                door,
                source,
                stage,
            },
            ActionKind::Invalidated => Action::Invalidated {
                door,
                source,
                stage,
            },
        }
    }
}

impl Action {
    /// What the action is, without its data.
    #[must_use]
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Stage { .. } => ActionKind::Stage,
            Self::Open { .. } => ActionKind::Open,
            Self::Close { .. } => ActionKind::Close,
            Self::Timeout { .. } => ActionKind::Timeout,
            Self::Invalidated { .. } => ActionKind::Invalidated,
            Self::CodeUsed { .. } => ActionKind::CodeUsed,
        }
    }

    /// The door, the knocker and the stage (0 for `Open` and `Close`), as in [`ActionView`].
    #[must_use]
    pub fn view(&self) -> ActionView<'_> {
        let code_step = match self {
            Self::Open { code_step, .. } => *code_step,
            Self::CodeUsed { code_step, .. } => Some(*code_step),
            _ => None,
        };
        let (door, source, stage) = match self {
            Self::Stage {
                door,
                source,
                stage,
            }
            | Self::Timeout {
                door,
                source,
                stage,
            }
            | Self::Invalidated {
                door,
                source,
                stage,
            } => (door, *source, *stage),
            Self::Open { door, source, .. }
            | Self::Close { door, source }
            | Self::CodeUsed { door, source, .. } => (door, *source, 0),
        };
        ActionView {
            kind: self.kind(),
            door,
            source,
            stage,
            code_step,
        }
    }
}

impl fmt::Display for Action {
    /// knockd 0.8's log wording: see [`ActionView`]'s `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.view(), f)
    }
}

impl fmt::Display for ActionView<'_> {
    /// knockd 0.8's log wording, `IP: DOOR: Stage N`, `IP: DOOR: OPEN SESAME`,
    /// `IP: DOOR: command timeout`, `IP: DOOR: sequence timeout (stage N)`; and
    /// `IP: DOOR: knock invalidated (stage N)` (0.8 never reported it), and for TOTP doors
    /// `IP: DOOR: code already used`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (source, door, stage) = (self.source, &self.door.name, self.stage);
        match self.kind {
            ActionKind::Stage => write!(f, "{source}: {door}: Stage {stage}"),
            ActionKind::Open => write!(f, "{source}: {door}: OPEN SESAME"),
            ActionKind::Close => write!(f, "{source}: {door}: command timeout"),
            ActionKind::Timeout => write!(f, "{source}: {door}: sequence timeout (stage {stage})"),
            ActionKind::Invalidated => {
                write!(f, "{source}: {door}: knock invalidated (stage {stage})")
            }
            ActionKind::CodeUsed => write!(f, "{source}: {door}: code already used"),
        }
    }
}

/// The door of a queued action: an index into the running configuration (no reference
/// count touched per action), or an index into [`Output::owned`], the handles of stop
/// commands (which can outlive the configuration that scheduled them) and of actions queued
/// across a configuration change. Plain indices keep [`Queued`] `Copy`, so the queue clears
/// in O(1).
#[derive(Clone, Copy, Debug)]
pub(super) enum QueuedDoor {
    Current(u32),
    Owned(u32),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Queued {
    pub(super) kind: ActionKind,
    pub(super) stage: u32,
    pub(super) source: IpAddr,
    pub(super) door: QueuedDoor,
    /// For `Open` of a TOTP candidate and `CodeUsed`: the high half of the code's
    /// time-step counter, whose low half is in `stage`; [`NO_CODE`] for other actions (two
    /// `u32` rather than an `Option<u64>`: the queue entry stays 36 bytes, not 48).
    pub(super) code_hi: u32,
}

/// [`Queued::code_hi`] of an action without a code.
const NO_CODE: u32 = u32::MAX;

impl Queued {
    /// The code's time-step counter, for `Open` of a TOTP candidate and `CodeUsed`.
    pub(super) fn code_step(&self) -> Option<u64> {
        (self.code_hi != NO_CODE).then(|| (u64::from(self.code_hi) << 32) | u64::from(self.stage))
    }

    /// The stage as actions report it (0 for actions with a code).
    pub(super) fn stage(&self) -> usize {
        if self.code_hi == NO_CODE {
            self.stage as usize
        } else {
            0
        }
    }
}

/// The action queue and the counters: written by every part of the matcher.
#[derive(Debug, Default)]
pub(super) struct Output {
    /// Queued actions; those before `next` were handed out. Cleared (keeping its capacity)
    /// when a poll finds it exhausted, which the calling contract makes happen after every
    /// call: a plain vector is cheaper than a ring buffer here, and the entry a view borrows
    /// stays in place until the next poll.
    pub(super) actions: Vec<Queued>,
    pub(super) next: usize,
    /// Door handles of queued actions that must not follow the running configuration.
    pub(super) owned: Vec<DoorRef>,
    pub(super) counters: Counters,
}

impl Output {
    /// The next queued action, or `None` (emptying the queue) when all were handed out.
    #[inline]
    pub(super) fn next_entry(&mut self) -> Option<Queued> {
        let queued = self.actions.get(self.next).copied();
        match queued {
            Some(_) => self.next += 1,
            None => self.reset(),
        }
        queued
    }

    pub(super) fn reset(&mut self) {
        self.actions.clear();
        self.owned.clear();
        self.next = 0;
    }

    pub(super) fn own(&mut self, door: DoorRef) -> QueuedDoor {
        self.owned.push(door);
        QueuedDoor::Owned(u32::try_from(self.owned.len() - 1).unwrap_or(u32::MAX))
    }

    #[inline]
    pub(super) fn emit(&mut self, kind: ActionKind, door: u32, source: IpAddr, stage: usize) {
        self.actions.push(Queued {
            kind,
            stage: u32::try_from(stage).unwrap_or(u32::MAX),
            source,
            door: QueuedDoor::Current(door),
            code_hi: NO_CODE,
        });
    }

    /// Emits an `Open` or `CodeUsed` of a TOTP candidate, naming the door `door`.
    pub(super) fn emit_code(&mut self, kind: ActionKind, door: u32, source: IpAddr, step: u64) {
        // Counters reach 2^64 − 2^32 (the high half `NO_CODE`) only with absurd clocks.
        let code_hi = u32::try_from(step >> 32)
            .unwrap_or(NO_CODE - 1)
            .min(NO_CODE - 1);
        self.actions.push(Queued {
            kind,
            stage: step as u32,
            source,
            door: QueuedDoor::Current(door),
            code_hi,
        });
    }

    pub(super) fn emit_close(&mut self, door: DoorRef, source: IpAddr) {
        let door = self.own(door);
        self.actions.push(Queued {
            kind: ActionKind::Close,
            stage: 0,
            source,
            door,
            code_hi: NO_CODE,
        });
    }

    pub(super) fn close_early(&mut self, close: PendingClose) {
        self.counters.closes_fired_early += 1;
        self.emit_close(close.door, close.source);
    }

    /// Turns queued door indices into owned handles, before the doors they index change.
    pub(super) fn detach(&mut self, doors: &DoorTable) {
        for position in self.next..self.actions.len() {
            if let QueuedDoor::Current(index) = self.actions[position].door {
                let door = self.own(doors.slots[index as usize].door.clone());
                self.actions[position].door = door;
            }
        }
    }

    #[inline]
    pub(super) fn door<'a>(&'a self, doors: &'a DoorTable, door: QueuedDoor) -> &'a DoorRef {
        match door {
            QueuedDoor::Current(index) => &doors.slots[index as usize].door,
            QueuedDoor::Owned(index) => &self.owned[index as usize],
        }
    }
}
