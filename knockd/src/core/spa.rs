//! SPA doors in the daemon core: fwknop single-packet authorization (issue 13).
//!
//! The driver hands each UDP datagram to an `SPA_Port` to [`Core::handle_datagram`]. Every
//! SPA door listening on that port and destination tries it with its verifier
//! ([`SpaDoor::verify`], keys loaded at start and reload):
//!
//! * **Grant**: a [`Record::SpaGranted`] (the packet's source, the address let in, the
//!   ports, the user name the client sent), then a [`Record::Open`] naming the granted
//!   address (`IP: DOOR: OPEN SESAME`),
//!   then the door's commands as for a sequence door, `%IP%` being the granted address:
//!   once per grant, or once per granted port when a command names `%PROTO%`/`%PORT%`.
//!   Each stop is recorded before its start and runs after `Cmd_Timeout`, or after the
//!   client's requested timeout when that is shorter (never longer).
//! * **Refusal of an authentic packet** (HMAC verified: replay, too old, port outside
//!   `SPA_Access`, …): a [`Record::SpaRefused`] with the reason's code (log line and JSON
//!   event).
//! * **Unauthenticated** (bad HMAC, not SPA data): only counted
//!   ([`Core::spa_unauthenticated`], in the `SIGUSR1` statistics line): anyone can send
//!   those, and a flood must not fill the log.
//!
//! # Replay cache
//!
//! One [`ReplayCache`] for all SPA doors (digests of authentic packets), kept across reloads;
//! the driver persists it in the state file ([`Effect::PersistSpaReplay`], after every
//! authentic packet) and restores it at start ([`Core::handle_spa_replay_restore`]), so a
//! captured packet cannot be replayed after a restart either. Bounded: an entry lives until
//! its packet would be too old anyway (timestamp + `SPA_Max_Age`), only authentic packets
//! enter, and at most [`ReplayCache::DEFAULT_CAPACITY`] (65 536, about 3 MB) entries exist:
//! when full of live entries, new packets are refused (`replay_cache_full`) rather than an
//! entry evicted.

use std::net::IpAddr;
use std::time::Duration;

use knock_core::spa::{Grant, Refusal, ReplayCache, SpaDoor};
use knock_core::{Instant, PacketEvent};

use super::{CommandKind, Core, Effect, Job, PendingStop, Record, SetElementAdd, Time, door_id};

/// The SPA part of the core's state.
#[derive(Debug, Default)]
pub(super) struct SpaState {
    /// The verifiers, by door index.
    pub(super) doors: Vec<(usize, SpaDoor)>,
    /// Digests of the authentic packets seen.
    replay: ReplayCache,
    /// Datagrams refused before authentication (bad HMAC, not SPA data), since start.
    unauthenticated: u64,
    /// Packets that granted access, since start.
    granted: u64,
    /// The SPA ports last given to the driver (none at first: the capture starts with none).
    payload_ports: Vec<u16>,
}

impl SpaState {
    pub(super) fn new(doors: Vec<(usize, SpaDoor)>) -> Self {
        Self {
            doors,
            ..Self::default()
        }
    }
}

impl Core {
    /// A UDP datagram to an SPA port (`packet` with its `payload`).
    pub(crate) fn handle_datagram(&mut self, now: Time, packet: &PacketEvent, payload: &[u8]) {
        let mut tried = false;
        for slot in 0..self.spa.doors.len() {
            let index = self.spa.doors[slot].0;
            let Some(door) = self.config.doors.get(index) else {
                continue;
            };
            let Some(settings) = &door.spa else {
                continue;
            };
            let for_us = match door.target {
                Some(target) => target == packet.destination,
                None => {
                    let local = self.destinations.addresses();
                    local.is_empty() || local.contains(&packet.destination)
                }
            };
            if settings.port != packet.destination_port || !for_us {
                continue;
            }
            tried = true;
            let result = self.spa.doors[slot].1.verify(
                now.unix_secs,
                packet.source,
                payload,
                &mut self.spa.replay,
            );
            match result {
                // Maybe another door's keys: try the next one.
                Err(refusal) if refusal.is_unauthenticated() => {}
                Ok(grant) => {
                    self.spa.granted = self.spa.granted.saturating_add(1);
                    self.persist_replay(now);
                    self.push(Effect::Log(Record::SpaGranted {
                        door: self.config.doors[index].name.clone(),
                        source: packet.source,
                        address: grant.address.to_string(),
                        ports: knock_core::spa::DisplayAccess(&grant.ports).to_string(),
                        username: grant.username.clone(),
                    }));
                    self.spa_open(now, index, &grant, packet.timestamp);
                    return;
                }
                Err(refusal) => {
                    // A replay changed nothing in the cache: no state-file work for it.
                    if refusal != Refusal::Replay {
                        self.persist_replay(now);
                    }
                    self.spa_refused(index, packet.source, &refusal);
                    return;
                }
            }
        }
        if tried {
            self.spa.unauthenticated = self.spa.unauthenticated.saturating_add(1);
        }
    }

    /// At startup: the replay cache a previous run left in the state file (its
    /// `ReplayCache::to_text` form). A bad text is ignored (the cache starts empty), and
    /// the reason returned for the log.
    pub(crate) fn handle_spa_replay_restore(&mut self, now: Time, text: &str) -> Option<String> {
        match ReplayCache::from_text(text, now.unix_secs, ReplayCache::DEFAULT_CAPACITY) {
            Ok(cache) => {
                self.spa.replay = cache;
                None
            }
            Err(error) => Some(error.to_string()),
        }
    }

    /// Datagrams refused before authentication since start (never logged one by one).
    #[must_use]
    pub(crate) const fn spa_unauthenticated(&self) -> u64 {
        self.spa.unauthenticated
    }

    /// SPA packets that granted access since start.
    #[must_use]
    pub(crate) const fn spa_granted(&self) -> u64 {
        self.spa.granted
    }

    /// Whether some door is an SPA door.
    #[must_use]
    pub(crate) fn has_spa_doors(&self) -> bool {
        !self.spa.doors.is_empty()
    }

    /// Emits [`Effect::SetPayloadPorts`] when the SPA doors' ports changed.
    pub(super) fn refresh_payload_ports(&mut self) {
        let ports = knock_capture::payload_ports(&self.config.doors);
        if ports != self.spa.payload_ports {
            self.spa.payload_ports.clone_from(&ports);
            self.push(Effect::SetPayloadPorts(ports));
        }
    }

    fn persist_replay(&mut self, now: Time) {
        self.spa.replay.purge(now.unix_secs);
        let text = self.spa.replay.to_text();
        self.push(Effect::PersistSpaReplay(text));
    }

    fn spa_refused(&mut self, index: usize, source: IpAddr, refusal: &Refusal) {
        let door = self.config.doors[index].name.clone();
        self.push(Effect::Log(Record::SpaRefused {
            door,
            source,
            code: refusal.code(),
            reason: refusal.to_string(),
        }));
    }

    /// A grant: the open record, then per command line (one, or one per port) the stop
    /// recorded, its close armed, and the start job.
    fn spa_open(&mut self, now: Time, index: usize, grant: &Grant, captured: Instant) {
        let door = self.config.doors[index].clone();
        let address = grant.address;
        let times = self.open_times(captured, now);
        self.push(Effect::Log(Record::Open {
            door: door.name.clone(),
            source: address,
            times,
        }));
        let timeout = match grant.client_timeout {
            Some(client) => door.cmd_timeout.min(Duration::from_secs(u64::from(client))),
            None => door.cmd_timeout,
        };
        // A native nftables door: the granted address goes into the set first (the kernel
        // expires it), then the commands run, as for sequence doors.
        if let Some(set) = door.nft_set_for(address) {
            self.push(Effect::AddSetElement(Box::new(SetElementAdd {
                door: door.name.clone(),
                set: set.clone(),
                address,
                timeout,
                opened: Some(times),
            })));
        }
        let lines: Vec<(String, Option<String>)> = if door.commands_per_port(address) {
            grant
                .ports
                .iter()
                .filter_map(|&port| {
                    Some((
                        door.start_command_line_for_port(address, port)?,
                        door.stop_command_line_for_port(address, port),
                    ))
                })
                .collect()
        } else {
            door.start_command_line(address)
                .map(|start| (start, door.stop_command_line(address)))
                .into_iter()
                .collect()
        };
        // As for sequence doors: no command runs while its stop cannot be made durable.
        if !self.stops_durable && lines.iter().any(|(_, stop)| stop.is_some()) {
            self.refuse_not_durable(&door.name, address);
            return;
        }
        // The matcher arms the closes; it knows every door of the configuration, so this
        // is there (without it nothing runs: a start without its stop would leave a hole).
        let Some(door_ref) = self.matcher.door(door_id(index)).cloned() else {
            return;
        };
        for (start, stop) in lines {
            if self.start_refused(&door.name, address) {
                continue;
            }
            if let Some(stop) = stop {
                let due_unix =
                    now.unix_secs + timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
                let stop = PendingStop {
                    door: door.name.clone(),
                    source: address,
                    due_unix,
                    command: stop,
                };
                let id = self.stops.add(stop.clone());
                self.push(Effect::PersistStop { id, stop });
                self.matcher.schedule_close(
                    door_ref.clone(),
                    address,
                    now.instant.saturating_add(timeout),
                );
            }
            self.run(Job {
                door: door.name.clone(),
                source: address,
                kind: CommandKind::Start,
                command: start,
                stop: None,
                opened: Some(times),
            });
        }
        // A close the matcher emitted early (its pending-close bound) is performed now.
        self.drain(now);
    }
}

#[cfg(test)]
mod tests {

    use knock_core::spa::{AccessPort, SpaKeys, SpaRequest, encode};
    use knock_core::{Config, Instant, Protocol};

    use super::super::RunningConfig;
    use super::super::test_support::{lines, options, running};
    use super::*;

    const UNIX0: u64 = 1_795_000_000;
    const KEY: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";
    const HMAC: &str =
        "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";
    const SERVER: [u8; 4] = [10, 0, 0, 2];

    fn at(secs: u64) -> Time {
        Time {
            instant: Instant::from_secs(secs),
            unix_secs: UNIX0 + secs,
            unix_nanos: 0,
        }
    }

    fn conf(commands: &str) -> String {
        format!(
            "[ssh]\nspa_key_base64 = {KEY}\nspa_hmac_key_base64 = {HMAC}\n\
             spa_access = tcp/22,udp/1194\ncmd_timeout = 30\n{commands}"
        )
    }

    fn core(conf: &str) -> Core {
        Core::new(running(Config::parse(conf).unwrap().config), options())
    }

    fn keys(key: &str, hmac: &str) -> SpaKeys {
        SpaKeys::new(
            knock_core::spa::SecretKey::from_base64(key).unwrap(),
            knock_core::spa::SecretKey::from_base64(hmac).unwrap(),
        )
        .unwrap()
    }

    fn packet(
        timestamp: u64,
        allow: &str,
        access: &[(Protocol, u16)],
        timeout: Option<u32>,
        seed: u8,
    ) -> String {
        let request = SpaRequest {
            username: "alice".into(),
            timestamp,
            allow: allow.parse().unwrap(),
            access: access
                .iter()
                .map(|&(protocol, port)| AccessPort { protocol, port })
                .collect(),
            client_timeout: timeout,
        };
        encode(&request, &keys(KEY, HMAC), &[seed; 16]).unwrap()
    }

    fn send(core: &mut Core, now: Time, source: &str, payload: &str) -> Vec<Effect> {
        let event = PacketEvent::udp(
            now.instant,
            source.parse().unwrap(),
            IpAddr::from(SERVER),
            62201,
        );
        core.handle_datagram(now, &event, payload.as_bytes());
        std::iter::from_fn(|| core.poll_effect()).collect()
    }

    fn jobs(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::RunJob(job) => Some(job.command.clone()),
                _ => None,
            })
            .collect()
    }

    const TCP22: (Protocol, u16) = (Protocol::Tcp, 22);
    const UDP1194: (Protocol, u16) = (Protocol::Udp, 1194);

    #[test]
    fn a_grant_opens_per_port_with_each_stop_recorded_before_its_start() {
        let mut core = core(&conf(
            "start_command = open %IP% %PROTO% %PORT%\nstop_command = close %IP% %PROTO%/%PORT%\n",
        ));
        let payload = packet(UNIX0 + 5, "10.0.0.9", &[TCP22, UDP1194], None, 1);
        let out = send(&mut core, at(5), "10.0.0.1", &payload);
        assert_eq!(
            lines(&out),
            [
                "10.0.0.1: ssh: SPA packet verified: tcp/22,udp/1194 for 10.0.0.9 (user alice)",
                "10.0.0.9: ssh: OPEN SESAME"
            ]
        );
        assert_eq!(
            jobs(&out),
            ["open 10.0.0.9 tcp 22", "open 10.0.0.9 udp 1194"]
        );
        // Each start comes right after its own stop's record.
        let kinds: Vec<&str> = out
            .iter()
            .filter_map(|e| match e {
                Effect::PersistStop { stop, .. } => {
                    assert_eq!(stop.due_unix, UNIX0 + 35);
                    Some("persist")
                }
                Effect::RunJob(_) => Some("run"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ["persist", "run", "persist", "run"]);
        assert!(
            out.iter()
                .any(|e| matches!(e, Effect::PersistSpaReplay(t) if !t.is_empty()))
        );
        // The stops run after Cmd_Timeout, one per port.
        core.handle_timeout(at(34));
        assert!(jobs(&std::iter::from_fn(|| core.poll_effect()).collect::<Vec<_>>()).is_empty());
        core.handle_timeout(at(35));
        let out: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
        let mut stops = jobs(&out);
        stops.sort();
        assert_eq!(stops, ["close 10.0.0.9 tcp/22", "close 10.0.0.9 udp/1194"]);
    }

    /// Issue 10 item 11 for SPA doors: while the state file cannot be written, a grant whose
    /// commands have a stop runs nothing (its stop could not survive a crash).
    #[test]
    fn a_grant_runs_no_command_while_its_stop_cannot_be_made_durable() {
        let mut core = core(&conf(
            "start_command = open %IP%\nstop_command = close %IP%\n",
        ));
        core.handle_state_durable(false);
        let payload = packet(UNIX0 + 5, "10.0.0.9", &[TCP22], None, 1);
        let out = send(&mut core, at(5), "10.0.0.1", &payload);
        assert!(jobs(&out).is_empty(), "{out:?}");
        assert!(!out.iter().any(|e| matches!(e, Effect::PersistStop { .. })));
        assert!(
            lines(&out)
                .iter()
                .any(|l| l.starts_with("10.0.0.9: ssh: error: not opened: its stop command")),
            "{out:?}"
        );
        // Durable again: the next grant runs its command.
        core.handle_state_durable(true);
        let payload = packet(UNIX0 + 6, "10.0.0.9", &[TCP22], None, 2);
        let out = send(&mut core, at(6), "10.0.0.1", &payload);
        assert_eq!(jobs(&out), ["open 10.0.0.9"]);
    }

    #[test]
    fn the_spa_port_reaches_the_capture_once_and_other_destinations_are_ignored() {
        let mut core = core(&conf("start_command = open %IP%\n"));
        core.handle_local_addresses(vec![IpAddr::from([10, 0, 0, 3])]);
        let out: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
        assert!(
            out.contains(&Effect::SetPayloadPorts(vec![62201])),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|e| matches!(e, Effect::SetFilter(f) if f.contains("udp dst port 62201"))),
            "{out:?}"
        );
        core.handle_local_addresses(vec![IpAddr::from([10, 0, 0, 3])]);
        let out: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
        assert!(!out.iter().any(|e| matches!(e, Effect::SetPayloadPorts(_))));
        // Sent to 10.0.0.2, not a local address: no door tries it.
        let payload = packet(UNIX0, "10.0.0.1", &[TCP22], None, 9);
        assert!(send(&mut core, at(0), "10.0.0.1", &payload).is_empty());
        assert_eq!(core.spa_unauthenticated(), 0);
    }

    #[test]
    fn doors_sharing_a_port_each_verify_with_their_own_keys() {
        let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let other_hmac = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
        let two = format!(
            "{}[vpn]\nspa_key_base64 = {other_key}\nspa_hmac_key_base64 = {other_hmac}\n\
             spa_access = udp/1194\nstart_command = vpn %IP%\n",
            conf("start_command = ssh %IP%\n")
        );
        let mut core = core(&two);
        let request = SpaRequest {
            username: "bob".into(),
            timestamp: UNIX0,
            allow: "0.0.0.0".parse().unwrap(),
            access: vec![AccessPort {
                protocol: Protocol::Udp,
                port: 1194,
            }],
            client_timeout: None,
        };
        let payload = encode(&request, &keys(other_key, other_hmac), &[11; 16]).unwrap();
        let out = send(&mut core, at(0), "10.0.0.4", &payload);
        assert_eq!(jobs(&out), ["vpn 10.0.0.4"]);
        let out = send(
            &mut core,
            at(0),
            "10.0.0.4",
            &packet(UNIX0, "0.0.0.0", &[TCP22], None, 12),
        );
        assert_eq!(jobs(&out), ["ssh 10.0.0.4"]);
        assert_eq!((core.spa_granted(), core.spa_unauthenticated()), (2, 0));
    }

    #[test]
    fn without_placeholders_the_command_runs_once_and_0_0_0_0_means_the_source() {
        let mut core = core(&conf(
            "start_command = open %IP%\nstop_command = close %IP%\n",
        ));
        let payload = packet(UNIX0, "0.0.0.0", &[TCP22, UDP1194], None, 2);
        let out = send(&mut core, at(0), "10.0.0.1", &payload);
        assert_eq!(lines(&out)[1], "10.0.0.1: ssh: OPEN SESAME");
        assert_eq!(jobs(&out), ["open 10.0.0.1"]);
    }

    #[test]
    fn the_client_timeout_is_honoured_only_up_to_cmd_timeout() {
        for (asked, due) in [(Some(10), 10), (Some(3600), 30), (None, 30)] {
            let mut core = core(&conf(
                "start_command = open %IP%\nstop_command = close %IP%\n",
            ));
            let payload = packet(UNIX0, "10.0.0.1", &[TCP22], asked, 3);
            let out = send(&mut core, at(0), "10.0.0.1", &payload);
            let stop = out.iter().find_map(|e| match e {
                Effect::PersistStop { stop, .. } => Some(stop.due_unix),
                _ => None,
            });
            assert_eq!(stop, Some(UNIX0 + due), "{asked:?}");
            core.handle_timeout(at(due - 1));
            assert!(
                std::iter::from_fn(|| core.poll_effect()).all(|e| !matches!(e, Effect::RunJob(_)))
            );
            core.handle_timeout(at(due));
            let out: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
            assert_eq!(jobs(&out), ["close 10.0.0.1"], "{asked:?}");
        }
    }

    #[test]
    fn a_replay_is_refused_and_logged_even_after_a_restore() {
        let mut core1 = core(&conf("start_command = open %IP%\n"));
        let payload = packet(UNIX0, "10.0.0.1", &[TCP22], None, 4);
        let out = send(&mut core1, at(0), "10.0.0.1", &payload);
        assert_eq!(jobs(&out), ["open 10.0.0.1"]);
        let saved = out
            .iter()
            .find_map(|e| match e {
                Effect::PersistSpaReplay(text) => Some(text.clone()),
                _ => None,
            })
            .unwrap();
        let out = send(&mut core1, at(1), "10.0.0.7", &payload);
        assert!(jobs(&out).is_empty());
        assert_eq!(
            lines(&out),
            ["10.0.0.7: ssh: SPA packet refused (replay): replayed SPA packet (seen before)"]
        );
        // A restarted daemon with the persisted cache refuses it too.
        let mut core2 = core(&conf("start_command = open %IP%\n"));
        assert_eq!(core2.handle_spa_replay_restore(at(2), &saved), None);
        let out = send(&mut core2, at(2), "10.0.0.1", &payload);
        assert!(jobs(&out).is_empty());
        assert!(lines(&out)[0].contains("(replay)"), "{out:?}");
        // A reload keeps the cache.
        let config = Config::parse(&conf("start_command = open %IP%\n"))
            .unwrap()
            .config;
        let spa = core(&conf("")).spa.doors.clone();
        core2.handle_reload(
            at(3),
            RunningConfig {
                spa,
                ..running(config)
            },
        );
        let out = send(&mut core2, at(3), "10.0.0.1", &payload);
        assert!(
            lines(&out).iter().any(|l| l.contains("(replay)")),
            "{out:?}"
        );
    }

    #[test]
    fn authentic_refusals_are_logged_with_their_code() {
        let mut core = core(&conf("start_command = open %IP%\n"));
        let cases = [
            (
                packet(UNIX0 - 600, "10.0.0.1", &[TCP22], None, 5),
                "too_old",
            ),
            (
                packet(UNIX0 + 600, "10.0.0.1", &[TCP22], None, 6),
                "too_new",
            ),
            (
                packet(UNIX0, "10.0.0.1", &[(Protocol::Tcp, 23)], None, 7),
                "not_allowed",
            ),
        ];
        for (payload, code) in cases {
            let out = send(&mut core, at(0), "10.0.0.1", &payload);
            assert!(jobs(&out).is_empty(), "{code}");
            let refused: Vec<&Record> = out
                .iter()
                .filter_map(|e| match e {
                    Effect::Log(r @ Record::SpaRefused { .. }) => Some(r),
                    _ => None,
                })
                .collect();
            assert!(
                matches!(refused[..], [Record::SpaRefused { code: c, .. }] if *c == code),
                "{out:?}"
            );
            let json = refused[0].json(jiff::Timestamp::UNIX_EPOCH, None).unwrap();
            assert_eq!(json.event, "spa_refused");
        }
        assert_eq!(core.spa_unauthenticated(), 0);
    }

    #[test]
    fn unauthenticated_packets_are_counted_not_logged() {
        let mut core = core(&conf("start_command = open %IP%\n"));
        let other_hmac = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
        let request = SpaRequest {
            username: "mallory".into(),
            timestamp: UNIX0,
            allow: "10.0.0.1".parse().unwrap(),
            access: vec![AccessPort {
                protocol: Protocol::Tcp,
                port: 22,
            }],
            client_timeout: None,
        };
        let wrong = encode(&request, &keys(KEY, other_hmac), &[8; 16]).unwrap();
        let junk = "x".repeat(200);
        for payload in [wrong.as_str(), junk.as_str(), "short"] {
            let out = send(&mut core, at(0), "10.0.0.66", payload);
            assert!(out.is_empty(), "{out:?}");
        }
        assert_eq!(core.spa_unauthenticated(), 3);
        // A datagram to another port is not an SPA packet for this door at all.
        let event = PacketEvent::udp(
            at(0).instant,
            "10.0.0.66".parse().unwrap(),
            IpAddr::from(SERVER),
            9,
        );
        core.handle_datagram(at(0), &event, junk.as_bytes());
        assert_eq!(core.spa_unauthenticated(), 3);
    }
}
