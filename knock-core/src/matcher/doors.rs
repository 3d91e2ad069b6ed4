//! Doors and the knock index: the running configuration's doors, the (protocol, port) →
//! doors index every packet is looked up in, and the destination and flag rules.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::config::{Config, Door, FlagRule, Knock};
use crate::packet::{PacketEvent, Protocol, TcpFlags};
use crate::time::Duration;

#[cfg(doc)]
use super::Matcher;

/// Which destinations count as local for doors without `Target`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalAddresses {
    /// Every destination is accepted (the default; right for pcap replays from elsewhere).
    Any,
    /// Only these addresses (the host's own, as the daemon discovers them). Looked up
    /// linearly: meant for the handful of addresses a host has.
    List(Vec<IpAddr>),
}

impl LocalAddresses {
    pub(super) fn contains(&self, address: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.contains(&address),
        }
    }
}

/// Names a door of the configuration the matcher runs: its position in
/// [`Config::doors`]. Opaque; [`index`](Self::index) and
/// [`from_index`](Self::from_index) convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DoorId(u32);

impl DoorId {
    /// The door at position `index` of [`Config::doors`] (an index beyond the configuration
    /// names no door: the matcher ignores it).
    #[must_use]
    pub fn from_index(index: usize) -> Self {
        Self(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// The door's position in [`Config::doors`].
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A door named by an action: its index and a shared handle on its settings (still valid
/// after a reload replaced the configuration).
///
/// It dereferences to the [`Door`], so `door.name` reads the name. After
/// [`Matcher::set_door_sequence`] the handle carries the door's new active sequence. Cloning
/// it clones an `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorRef {
    id: DoorId,
    door: Arc<Door>,
}

impl DoorRef {
    pub(super) fn new(id: DoorId, door: Arc<Door>) -> Self {
        Self { id, door }
    }

    /// The door's index in the configuration that produced the action.
    #[must_use]
    pub fn id(&self) -> DoorId {
        self.id
    }

    /// The shared handle on the door's settings.
    #[must_use]
    pub fn shared(&self) -> &Arc<Door> {
        &self.door
    }
}

impl core::ops::Deref for DoorRef {
    type Target = Door;

    fn deref(&self) -> &Door {
        &self.door
    }
}

/// The doors of the running configuration, indexed by step.
#[derive(Debug)]
pub(super) struct DoorTable {
    /// The configured doors (`configured` of them, in config order), then the TOTP
    /// candidates: at most `2 × TOTP_Window + 1` per TOTP door (one per code of the window).
    pub(super) slots: Vec<DoorSlot>,
    pub(super) configured: usize,
    /// For each (protocol, port) that is a step of an enabled door: the doors having it as
    /// any step and the doors starting with it, as ranges of `lists`.
    pub(super) by_knock: KnockIndex,
    pub(super) lists: Vec<u32>,
    pub(super) local: LocalAddresses,
}

/// (protocol, port) → doors. A short list scanned linearly for the usual handful of
/// distinct steps (faster than hashing), a hash map beyond.
#[derive(Debug, Default)]
pub(super) struct KnockIndex {
    pub(super) few: Vec<(u32, KnockDoors)>,
    pub(super) many: HashMap<Knock, KnockDoors>,
}

/// Steps up to which [`KnockIndex`] scans a list.
pub(super) const FEW_KNOCKS: usize = 16;

pub(super) fn knock_key(knock: Knock) -> u32 {
    u32::from(knock.port) | (u32::from(knock.protocol == Protocol::Udp) << 16)
}

impl KnockIndex {
    #[inline]
    pub(super) fn get(&self, knock: Knock) -> Option<KnockDoors> {
        if self.many.is_empty() {
            let key = knock_key(knock);
            self.few.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
        } else {
            self.many.get(&knock).copied()
        }
    }
}

#[derive(Debug)]
pub(super) struct DoorSlot {
    pub(super) door: DoorRef,
    /// Index of the door's `seq_timeout` in [`Deadlines::classes`](super::deadlines::Deadlines::classes).
    pub(super) class: usize,
    // Copies of the settings read for every packet, one indirection closer than `door`.
    pub(super) target: Option<IpAddr>,
    pub(super) flags: FlagRule,
    pub(super) sequence: Box<[Knock]>,
    /// `AllowDuplicates`: a repeat of the step just matched is ignored.
    pub(super) allow_duplicates: bool,
    /// The slot of the configured door: its own index, or for a TOTP candidate the TOTP
    /// door's (candidates' actions name that door).
    pub(super) parent: u32,
    /// For a TOTP candidate: the time-step counter whose code `sequence` is.
    pub(super) code_step: Option<u64>,
    /// For a TOTP candidate: its code opened once already.
    pub(super) spent: bool,
}

impl DoorSlot {
    pub(super) fn new(door: DoorRef, class: usize) -> Self {
        // A TOTP door's `sequence` lists base ports, never a sequence to knock: its slot
        // matches nothing, its candidates (one slot per code of the window) do.
        let sequence = if door.totp.is_some() {
            Box::default()
        } else {
            door.sequence.clone().into_boxed_slice()
        };
        Self {
            target: door.target,
            flags: door.tcp_flags,
            sequence,
            allow_duplicates: door.allow_duplicates,
            parent: u32::try_from(door.id().index()).unwrap_or(u32::MAX),
            code_step: None,
            spent: false,
            door,
            class,
        }
    }

    /// A TOTP candidate of `parent` (a slot of the table) for step `code_step`.
    pub(super) fn candidate(parent: &Self, code_step: u64, sequence: Vec<Knock>) -> Self {
        Self {
            target: parent.target,
            flags: parent.flags,
            sequence: sequence.into_boxed_slice(),
            allow_duplicates: parent.allow_duplicates,
            parent: parent.parent,
            code_step: Some(code_step),
            spent: false,
            door: parent.door.clone(),
            class: parent.class,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct KnockDoors {
    pub(super) with_step: (u32, u32),
    pub(super) starting: (u32, u32),
}

/// What a packet is, as the door rules see it.
#[derive(Clone, Copy)]
pub(super) struct Probe<'a> {
    /// Read in place: copying its 17-byte, byte-aligned addresses into a local (stored and
    /// reloaded with different widths) stalls store-to-load forwarding for ~15 cycles.
    pub(super) packet: &'a PacketEvent,
    pub(super) knock: Knock,
    /// `None` for UDP: door flag rules constrain TCP only.
    pub(super) tcp_flags: Option<TcpFlags>,
}

impl DoorTable {
    pub(super) fn build(config: &Config, local: LocalAddresses) -> (Self, Vec<Duration>) {
        let mut timeouts: Vec<Duration> = Vec::new();
        let mut slots = Vec::with_capacity(config.doors.len());
        for (index, door) in config.doors.iter().enumerate() {
            let class = match timeouts.iter().position(|t| *t == door.seq_timeout) {
                Some(class) => class,
                None => {
                    timeouts.push(door.seq_timeout);
                    timeouts.len() - 1
                }
            };
            let door = DoorRef::new(DoorId::from_index(index), Arc::new(door.clone()));
            slots.push(DoorSlot::new(door, class));
        }
        let mut table = Self {
            configured: slots.len(),
            slots,
            by_knock: KnockIndex::default(),
            lists: Vec::new(),
            local,
        };
        table.reindex();
        (table, timeouts)
    }

    /// Rebuilds the step index from the doors' current sequences.
    pub(super) fn reindex(&mut self) {
        let mut with_step: HashMap<Knock, Vec<u32>> = HashMap::new();
        let mut starting: HashMap<Knock, Vec<u32>> = HashMap::new();
        // Attempts store door numbers and stages in 16 bits: doors beyond that never match.
        for (index, slot) in self.slots.iter().enumerate().take(usize::from(u16::MAX)) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let sequence = &slot.sequence;
            if sequence.len() > usize::from(u16::MAX) {
                continue;
            }
            if let Some(first) = sequence.first() {
                starting.entry(*first).or_default().push(index);
            }
            for knock in sequence {
                let doors = with_step.entry(*knock).or_default();
                if doors.last() != Some(&index) {
                    doors.push(index);
                }
            }
        }
        self.by_knock = KnockIndex::default();
        self.lists.clear();
        let few = with_step.len() <= FEW_KNOCKS;
        for (knock, doors) in with_step {
            let with_step = push_range(&mut self.lists, &doors);
            let starting = push_range(
                &mut self.lists,
                starting.get(&knock).map_or(&[][..], Vec::as_slice),
            );
            let doors = KnockDoors {
                with_step,
                starting,
            };
            if few {
                self.by_knock.few.push((knock_key(knock), doors));
            } else {
                self.by_knock.many.insert(knock, doors);
            }
        }
    }

    /// Makes `candidates` (time-step counter, sequence) the accepted sequences of TOTP door
    /// `door` (a configured door). A counter already a candidate keeps its slot, its attempts
    /// and whether it is spent; the slots of counters no longer given are reused or emptied.
    /// Returns the slots whose sequence changed (their attempts must be discarded).
    pub(super) fn set_candidates(
        &mut self,
        door: usize,
        mut candidates: Vec<(u64, Vec<Knock>)>,
    ) -> Vec<u32> {
        let parent = u32::try_from(door).unwrap_or(u32::MAX);
        let first_candidate = self.configured;
        let mut changed = Vec::new();
        let mut free = Vec::new();
        for index in first_candidate..self.slots.len() {
            let slot = &self.slots[index];
            if slot.parent != parent {
                continue;
            }
            match candidates
                .iter()
                .position(|(step, _)| Some(*step) == slot.code_step)
            {
                Some(position) if *slot.sequence == *candidates[position].1 => {
                    candidates.swap_remove(position);
                }
                _ => free.push(index),
            }
        }
        for (code_step, sequence) in candidates {
            let slot = DoorSlot::candidate(&self.slots[door], code_step, sequence);
            let index = match free.pop() {
                Some(index) => {
                    self.slots[index] = slot;
                    index
                }
                None => {
                    self.slots.push(slot);
                    self.slots.len() - 1
                }
            };
            changed.push(u32::try_from(index).unwrap_or(u32::MAX));
        }
        for index in free {
            let slot = &mut self.slots[index];
            slot.sequence = Box::default();
            slot.code_step = None;
            slot.spent = false;
            changed.push(u32::try_from(index).unwrap_or(u32::MAX));
        }
        self.reindex();
        changed
    }

    /// Whether some TOTP door has candidate slots (else every slot is its own door).
    #[inline]
    pub(super) fn has_candidates(&self) -> bool {
        self.slots.len() > self.configured
    }

    /// Marks the candidate of `door` for `code_step` spent; whether there is one.
    pub(super) fn spend(&mut self, door: usize, code_step: u64) -> bool {
        let parent = u32::try_from(door).unwrap_or(u32::MAX);
        let mut found = false;
        for slot in &mut self.slots[self.configured..] {
            if slot.parent == parent && slot.code_step == Some(code_step) {
                slot.spent = true;
                found = true;
            }
        }
        found
    }

    #[inline]
    pub(super) fn range(&self, (start, len): (u32, u32)) -> &[u32] {
        let start = start as usize;
        &self.lists[start..start + len as usize]
    }

    #[inline]
    pub(super) fn accepts_destination(&self, slot: &DoorSlot, destination: IpAddr) -> bool {
        match slot.target {
            Some(target) => target == destination,
            None => self.local.contains(destination),
        }
    }

    /// Whether door `index` would take part in handling the probe: destination, and flags
    /// for TCP (its steps are checked by the caller through the index).
    #[inline]
    pub(super) fn accepts(&self, index: u32, probe: &Probe<'_>) -> bool {
        let slot = &self.slots[index as usize];
        self.accepts_destination(slot, probe.packet.destination)
            && probe.tcp_flags.is_none_or(|f| slot.flags.accepts(f))
    }
}

pub(super) fn push_range(lists: &mut Vec<u32>, doors: &[u32]) -> (u32, u32) {
    let start = u32::try_from(lists.len()).unwrap_or(u32::MAX);
    lists.extend_from_slice(doors);
    (start, u32::try_from(doors.len()).unwrap_or(u32::MAX))
}
