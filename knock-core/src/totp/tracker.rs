//! [`CodeTracker`]: complete knocks on a TOTP door's port ranges, whatever their code, so
//! that a daemon can tell a stale, future or wrong code apart (the matcher only follows the
//! codes of the window and never sees the others complete).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::{Code, check_layout, group_digits};
use crate::config::{Config, FlagRule, Knock};
use crate::matcher::DoorId;
use crate::packet::{PacketEvent, Protocol};
use crate::time::{Duration, Instant};

/// The default number of (source, door) attempts a [`CodeTracker`] follows at once.
pub const DEFAULT_MAX_TRACKED: usize = 4096;

/// A complete knock on a TOTP door's port ranges: the code it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnockedCode {
    /// The door.
    pub door: DoorId,
    /// The knocker.
    pub source: IpAddr,
    /// The code its ports spell (see [`super::sequence_to_code`]).
    pub code: Code,
}

/// Follows knocks on the port ranges of every TOTP door and reports each complete one with
/// the code it spells, valid or not. Pure and time-injected like the matcher: it reads the
/// time of each packet from [`PacketEvent::timestamp`].
///
/// A knock is complete when one source knocked every step of the door's `Sequence`, in
/// order, each on its step's protocol and inside its step's range
/// `base..=base + 10^(digits/steps) − 1`, the last one strictly before the first one +
/// `seq_timeout`, with the door's destination (`Target`, else a local address) and, for
/// TCP, the door's `TCPFlags`. As in the matcher, a knock on the door's ranges that is not
/// the next step ends the attempt (and starts nothing), except a repeat of the step just
/// matched on an `AllowDuplicates` door; a knock on another door's ports does not (the
/// matcher would end the attempt there: such a knock may be reported here and not opened
/// there, which is harmless since the caller leaves the window's codes to the matcher).
///
/// The caller classifies the code with the door's [`super::CodeTable`] (one look-up, no
/// HMAC per knock) and reports only the codes outside the window: those inside are the
/// matcher's (it opens, or says the code was used).
///
/// # Cost and memory bound (DoS)
///
/// Every packet may be spoofed, so the work and the state are bounded whatever the
/// traffic. Per packet: a range check per step of each TOTP door (a handful of compares),
/// and for a packet inside a range one hash look-up (std's `HashMap`, SipHash with a
/// per-process random key, so addresses cannot be chosen to collide); no HMAC, no
/// allocation once the tables have grown. At most `max_tracked` (source, door) attempts are
/// followed at once ([`DEFAULT_MAX_TRACKED`] by default); a new attempt beyond that evicts
/// the one started longest ago (counted in [`evicted`](Self::evicted)), so a flood of
/// spoofed first knocks can cost a real knocker its diagnostic line, never more (this
/// tracker opens nothing). Each attempt of the cap takes at most about
/// [`CodeTracker::BYTES_PER_ATTEMPT`] bytes (hash table and eviction queue at their worst
/// load): about 1.2 MB at the default cap.
#[derive(Debug)]
pub struct CodeTracker {
    doors: Vec<TrackedDoor>,
    /// The local addresses for doors without `Target` (empty: every destination).
    local: Vec<IpAddr>,
    attempts: Attempts,
}

/// The settings of one TOTP door the tracker needs (no secret).
#[derive(Clone, Debug)]
struct TrackedDoor {
    id: DoorId,
    bases: Vec<Knock>,
    digits: u8,
    /// `10^(digits/steps)`: one past the largest group.
    modulus: u32,
    seq_timeout: Duration,
    flags: FlagRule,
    allow_duplicates: bool,
    target: Option<IpAddr>,
}

impl TrackedDoor {
    /// The group `knock` stands for at step `step`, if it is inside that step's range.
    fn group(&self, step: usize, knock: Knock) -> Option<u32> {
        let base = self.bases.get(step)?;
        let group = u32::from(knock.port.checked_sub(base.port)?);
        (knock.protocol == base.protocol && group < self.modulus).then_some(group)
    }

    fn in_ranges(&self, knock: Knock) -> bool {
        (0..self.bases.len()).any(|step| self.group(step, knock).is_some())
    }

    fn accepts(&self, packet: &PacketEvent, local: &[IpAddr]) -> bool {
        let destination = match self.target {
            Some(target) => target == packet.destination,
            None => local.is_empty() || local.contains(&packet.destination),
        };
        destination && (packet.protocol == Protocol::Udp || self.flags.accepts(packet.tcp_flags))
    }
}

/// (source, index in `CodeTracker::doors`).
type Key = (IpAddr, u32);

/// One source's progress on one door.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    started: Instant,
    /// Which push to the eviction queue is this attempt's.
    serial: u64,
    /// Steps matched so far.
    stage: u8,
    /// The groups matched so far, as a number.
    value: u32,
    /// The last step matched (for `AllowDuplicates`).
    last: Knock,
}

/// The attempts and their eviction queue (oldest first; entries of attempts that ended are
/// skipped, and dropped when the queue grows past twice the cap).
#[derive(Debug)]
struct Attempts {
    map: HashMap<Key, Attempt>,
    queue: VecDeque<(Key, u64)>,
    next_serial: u64,
    max: usize,
    evicted: u64,
}

impl Attempts {
    fn insert(&mut self, key: Key, mut attempt: Attempt) {
        if !self.map.contains_key(&key) && self.map.len() >= self.max {
            self.evict_oldest();
        }
        self.next_serial += 1;
        attempt.serial = self.next_serial;
        self.map.insert(key, attempt);
        self.queue.push_back((key, attempt.serial));
        if self.queue.len() > 2 * self.max + QUEUE_SLACK {
            let map = &self.map;
            self.queue
                .retain(|(key, serial)| map.get(key).is_some_and(|a| a.serial == *serial));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, serial)) = self.queue.pop_front() {
            if self.map.get(&key).is_some_and(|a| a.serial == serial) {
                self.map.remove(&key);
                self.evicted += 1;
                return;
            }
        }
    }
}

/// Queue entries beyond twice the cap before stale ones are dropped (so that a small cap
/// does not compact at every insert).
const QUEUE_SLACK: usize = 64;

impl CodeTracker {
    /// An upper bound of the memory one attempt of the cap takes: three hash-table entries
    /// (key, attempt and control byte; after growth at least 7/16 of the buckets are used)
    /// and four eviction-queue entries (twice the cap, at least half the ring used after
    /// growth).
    pub const BYTES_PER_ATTEMPT: usize =
        3 * (size_of::<Key>() + size_of::<Attempt>() + 1) + 4 * size_of::<(Key, u64)>();

    /// A tracker of no door that follows at most `max_tracked` attempts at once (at least
    /// one).
    #[must_use]
    pub fn new(max_tracked: usize) -> Self {
        Self {
            doors: Vec::new(),
            local: Vec::new(),
            attempts: Attempts {
                map: HashMap::new(),
                queue: VecDeque::new(),
                next_serial: 0,
                max: max_tracked.max(1),
                evicted: 0,
            },
        }
    }

    /// Follows the TOTP doors of `config` (those whose layout is valid; the others match
    /// nothing anyway). Every attempt in progress is forgotten.
    pub fn set_doors(&mut self, config: &Config) {
        self.doors = config
            .doors
            .iter()
            .enumerate()
            .filter_map(|(index, door)| {
                let totp = door.totp.as_ref()?;
                let digits = totp.params.digits;
                check_layout(digits, &door.sequence).ok()?;
                Some(TrackedDoor {
                    id: DoorId::from_index(index),
                    bases: door.sequence.clone(),
                    digits,
                    modulus: 10u32.pow(u32::from(group_digits(digits, door.sequence.len()))),
                    seq_timeout: door.seq_timeout,
                    flags: door.tcp_flags,
                    allow_duplicates: door.allow_duplicates,
                    target: door.target,
                })
            })
            .collect();
        self.attempts.map.clear();
        self.attempts.queue.clear();
    }

    /// The destinations that count as local for doors without `Target` (as the matcher's
    /// [`crate::LocalAddresses`]; empty: every destination).
    pub fn set_local_addresses(&mut self, addresses: &[IpAddr]) {
        addresses.clone_into(&mut self.local);
    }

    /// Whether some TOTP door is followed (if not, [`handle_packet`](Self::handle_packet)
    /// returns at once).
    #[must_use]
    pub fn is_tracking(&self) -> bool {
        !self.doors.is_empty()
    }

    /// Feeds one packet (instants must not decrease); calls `complete` for each knock it
    /// completes (one per door whose ranges it completes, in configuration order).
    pub fn handle_packet(&mut self, packet: &PacketEvent, mut complete: impl FnMut(KnockedCode)) {
        let knock = Knock {
            port: packet.destination_port,
            protocol: packet.protocol,
        };
        let now = packet.timestamp;
        for (slot, door) in self.doors.iter().enumerate() {
            if !door.in_ranges(knock) || !door.accepts(packet, &self.local) {
                continue;
            }
            let key = (packet.source, u32::try_from(slot).unwrap_or(u32::MAX));
            let steps = door.bases.len();
            let live = self
                .attempts
                .map
                .get(&key)
                .copied()
                .filter(|a| now.saturating_duration_since(a.started) < door.seq_timeout);
            let (stage, value, started) = match live {
                Some(attempt) => {
                    let stage = usize::from(attempt.stage);
                    match door.group(stage, knock) {
                        Some(group) => {
                            (stage, attempt.value * door.modulus + group, attempt.started)
                        }
                        None if door.allow_duplicates && knock == attempt.last => continue,
                        None => {
                            // Not the next step: the attempt ends, nothing starts.
                            self.attempts.map.remove(&key);
                            continue;
                        }
                    }
                }
                None => match door.group(0, knock) {
                    Some(group) => (0, group, now),
                    None => {
                        self.attempts.map.remove(&key);
                        continue;
                    }
                },
            };
            if stage + 1 == steps {
                self.attempts.map.remove(&key);
                complete(KnockedCode {
                    door: door.id,
                    source: packet.source,
                    code: Code::new(value, door.digits),
                });
                continue;
            }
            let attempt = Attempt {
                started,
                serial: 0,
                stage: u8::try_from(stage + 1).unwrap_or(u8::MAX),
                value,
                last: knock,
            };
            match self.attempts.map.get_mut(&key) {
                Some(entry) if live.is_some() => {
                    *entry = Attempt {
                        serial: entry.serial,
                        ..attempt
                    };
                }
                _ => self.attempts.insert(key, attempt),
            }
        }
    }

    /// Attempts followed now (at most the cap).
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.attempts.map.len()
    }

    /// Attempts evicted at the cap so far.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.attempts.evicted
    }
}

impl Default for CodeTracker {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TRACKED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::TcpFlags;

    const CONF: &str = "[t]\nsequence = 40000,50000:udp\ntotp_secret = \
                        GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\ntotp_digits = 8\nseq_timeout = 5\n\
                        [fixed]\nsequence = 7000,8000\n";
    // The documented bound (about 1.2 MB at the default cap) holds on this target.
    const _: () = assert!(CodeTracker::BYTES_PER_ATTEMPT <= 300);

    const SERVER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn tracker(conf: &str, max: usize) -> CodeTracker {
        let mut tracker = CodeTracker::new(max);
        tracker.set_doors(&Config::parse(conf).unwrap().config);
        tracker
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// Feeds knocks from `source` at `millis`, `millis + 1`, …; the codes completed.
    fn feed(
        tracker: &mut CodeTracker,
        source: IpAddr,
        millis: u64,
        knocks: &[Knock],
    ) -> Vec<KnockedCode> {
        let mut out = Vec::new();
        for (n, knock) in knocks.iter().enumerate() {
            let at = Instant::from_millis(millis + n as u64);
            let packet = PacketEvent::knock(at, source, SERVER, *knock);
            tracker.handle_packet(&packet, |k| out.push(k));
        }
        out
    }

    fn code(value: u32) -> Code {
        Code::new(value, 8)
    }

    #[test]
    fn a_complete_knock_spells_its_code_leading_zeros_kept() {
        let mut t = tracker(CONF, 16);
        assert!(t.is_tracking());
        let got = feed(&mut t, ip(1), 0, &[Knock::tcp(40471), Knock::udp(58362)]);
        assert_eq!(
            got,
            [KnockedCode {
                door: DoorId::from_index(0),
                source: ip(1),
                code: code(4_718_362)
            }]
        );
        assert_eq!(got[0].code.to_string(), "04718362");
        assert_eq!(t.tracked(), 0, "a complete attempt is forgotten");
        // A fixed door's ports, or ports outside the ranges, are not followed.
        assert!(feed(&mut t, ip(1), 10, &[Knock::tcp(7000), Knock::tcp(8000)]).is_empty());
        assert!(feed(&mut t, ip(1), 20, &[Knock::tcp(39999), Knock::udp(58362)]).is_empty());
        assert_eq!(t.tracked(), 0);
        // No TOTP door: nothing to do.
        assert!(!tracker("[fixed]\nsequence = 7000,8000\n", 16).is_tracking());
    }

    #[test]
    fn the_matcher_rules_apply() {
        let mut t = tracker(CONF, 16);
        // Wrong protocol for the second step: no code.
        assert!(feed(&mut t, ip(1), 0, &[Knock::tcp(40471), Knock::tcp(58362)]).is_empty());
        // Out of order: the second step first starts nothing.
        assert!(feed(&mut t, ip(2), 0, &[Knock::udp(58362), Knock::tcp(40471)]).is_empty());
        // Too slow: the last knock must come strictly before first + seq_timeout.
        let first = PacketEvent::knock(Instant::from_millis(0), ip(3), SERVER, Knock::tcp(40471));
        let late = PacketEvent::knock(Instant::from_secs(5), ip(3), SERVER, Knock::udp(58362));
        let mut out = Vec::new();
        t.handle_packet(&first, |k| out.push(k));
        t.handle_packet(&late, |k| out.push(k));
        assert!(out.is_empty());
        // A repeated first step ends the attempt (no AllowDuplicates) and starts nothing.
        assert!(
            feed(
                &mut t,
                ip(4),
                0,
                &[Knock::tcp(40471), Knock::tcp(40471), Knock::udp(58362)]
            )
            .is_empty()
        );
        // Another source's knocks do not mix in.
        let mut out = Vec::new();
        for (source, knock) in [
            (ip(5), Knock::tcp(40001)),
            (ip(6), Knock::tcp(40002)),
            (ip(5), Knock::udp(50003)),
        ] {
            let packet = PacketEvent::knock(Instant::from_millis(10), source, SERVER, knock);
            t.handle_packet(&packet, |k| out.push(k));
        }
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].source, out[0].code), (ip(5), code(10_003)));
        // TCPFlags: a packet the door's rule rejects is ignored by the attempt.
        let mut t = tracker(&CONF.replace("[t]\n", "[t]\ntcpflags = syn,!ack\n"), 16);
        let mut out = Vec::new();
        for (flags, port) in [(TcpFlags::SYN, 40001), (TcpFlags::ACK, 40002)] {
            let packet = PacketEvent::tcp(Instant::from_millis(1), ip(1), SERVER, port, flags);
            t.handle_packet(&packet, |k| out.push(k));
        }
        let udp = PacketEvent::udp(Instant::from_millis(2), ip(1), SERVER, 50003);
        t.handle_packet(&udp, |k| out.push(k));
        assert_eq!(
            out.iter().map(|k| k.code).collect::<Vec<_>>(),
            [code(10_003)]
        );
    }

    #[test]
    fn allow_duplicates_and_destinations() {
        let conf = CONF.replace("[t]\n", "[t]\nallowduplicates\n");
        let mut t = tracker(&conf, 16);
        let got = feed(
            &mut t,
            ip(1),
            0,
            &[Knock::tcp(40471), Knock::tcp(40471), Knock::udp(58362)],
        );
        assert_eq!(got.len(), 1);
        // Local addresses: another destination is not followed.
        t.set_local_addresses(&[ip(9)]);
        assert!(feed(&mut t, ip(1), 10, &[Knock::tcp(40471), Knock::udp(58362)]).is_empty());
        t.set_local_addresses(&[SERVER]);
        assert_eq!(
            feed(&mut t, ip(1), 20, &[Knock::tcp(40471), Knock::udp(58362)]).len(),
            1
        );
        // Target: only that destination.
        let mut t = tracker(&CONF.replace("[t]\n", "[t]\ntarget = 10.0.0.9\n"), 16);
        assert!(feed(&mut t, ip(1), 0, &[Knock::tcp(40471), Knock::udp(58362)]).is_empty());
    }

    #[test]
    fn attempts_are_bounded_and_the_oldest_is_evicted() {
        let mut t = tracker(CONF, 8);
        for n in 0..100u8 {
            feed(
                &mut t,
                ip(n),
                u64::from(n),
                &[Knock::tcp(40000 + u16::from(n))],
            );
            assert!(t.tracked() <= 8);
            assert!(t.attempts.queue.len() <= 2 * 8 + QUEUE_SLACK);
        }
        assert_eq!(t.tracked(), 8);
        assert_eq!(t.evicted(), 92);
        // The newest ones are kept: 99 completes, 0 does not.
        assert_eq!(feed(&mut t, ip(99), 200, &[Knock::udp(50001)]).len(), 1);
        assert!(feed(&mut t, ip(0), 201, &[Knock::udp(50001)]).is_empty());
        // The same source restarting again and again keeps one entry, and the queue bounded.
        let mut t = tracker(CONF, 8);
        for n in 0..1000u64 {
            feed(&mut t, ip(1), n * 10_000, &[Knock::tcp(40001)]);
            assert!(t.attempts.queue.len() <= 2 * 8 + QUEUE_SLACK);
        }
        assert_eq!(t.tracked(), 1);
        assert_eq!(t.evicted(), 0);
    }

    #[test]
    fn a_reload_forgets_attempts() {
        let mut t = tracker(CONF, 8);
        feed(&mut t, ip(1), 0, &[Knock::tcp(40471)]);
        assert_eq!(t.tracked(), 1);
        t.set_doors(&Config::parse(CONF).unwrap().config);
        assert_eq!(t.tracked(), 0);
        assert!(feed(&mut t, ip(1), 1, &[Knock::udp(58362)]).is_empty());
    }
}
