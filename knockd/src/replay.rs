//! `knockd --replay FILE.pcap`: run a capture file through the configuration and print what
//! would have happened, running no command and writing no file.
//!
//! Time is the packets' own: the matcher's clock follows the capture timestamps, and
//! deadlines between two packets (sequence timeouts, stop commands) fire at their own
//! instant; those still pending after the last packet fire at theirs too. Every destination
//! counts as local (the capture may come from another host). One-time sequences advance in
//! memory only.
//!
//! Output, one line per event, prefixed with the local time to the microsecond:
//!
//! ```text
//! 2026-11-21 04:50:33.120000 10.0.0.1: openSSH: Stage 1
//! 2026-11-21 04:50:33.340000 10.0.0.1: openSSH: OPEN SESAME
//! 2026-11-21 04:50:33.340000 openSSH: would run: iptables -A INPUT -s 10.0.0.1 -j ACCEPT
//! 2026-11-21 04:50:43.340000 10.0.0.1: openSSH: command timeout
//! 2026-11-21 04:50:43.340000 openSSH: would run: iptables -D INPUT -s 10.0.0.1 -j ACCEPT
//! ```
//!
//! A door with an nftables set prints `IP: DOOR: would add to nftables set FAMILY TABLE SET
//! for CMD_TIMEOUT` after its `OPEN SESAME` (and no close: the kernel expires elements).
//!
//! A summary goes to stderr.

use std::io::Write as _;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use knock_capture::{Datagram, OfflineCapture, OfflineFrame};
use knock_core::{Instant, Limits, PacketEvent};

use crate::cli::Cli;
use crate::core::{CommandOutcome, Core, CoreOptions, Effect, Level, Record, RunningConfig, Time};
use crate::executor::MAX_QUEUED_STARTS;
use crate::load::load_read_only;
use crate::logging::{LogOptions, Logger, debug_packet};
use crate::{Error, Exit};

/// Runs `--replay`.
///
/// # Errors
/// The configuration is invalid or the capture file cannot be read.
pub(crate) fn run(cli: &Cli, pcap: &Path) -> Result<Exit, Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let shown = cli.config.display().to_string();
    let loaded = load_read_only(&shown, &crate::cli::absolute_from(&cwd, &cli.config), &cwd)?;
    // Checked with std first for a plain "No such file or directory".
    std::fs::File::open(pcap).map_err(|e| Error::Read {
        path: pcap.display().to_string(),
        reason: crate::io_reason(&e),
    })?;
    let capture = OfflineCapture::open(pcap).map_err(|e| {
        // The capture error names the file itself; show only its cause.
        let cause =
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
        Error::ReplayOpen {
            path: pcap.to_owned(),
            reason: cause,
        }
    })?;
    let mut logger = Logger::open(LogOptions {
        json_log: cli.json_log.clone(),
        debug: cli.debug,
        ..LogOptions::default()
    });
    let mut out = std::io::stdout().lock();
    let mut replay = Replay::new(
        loaded.running(),
        Limits::default().with_max_sources(cli.max_sources),
    );
    let summary = replay.run(capture, &mut logger, &mut |line| {
        let _ = out.write_all(line.as_bytes());
    });
    let _ = out.flush();
    for warning in loaded.ots_warnings {
        crate::logging::stderr_line(&format!("warning: {warning}"));
    }
    crate::logging::stderr_line(&summary);
    if let Some(error) = replay.read_error.take() {
        return Err(Error::ReplayRead {
            path: pcap.to_owned(),
            packets: replay.packets,
            reason: error,
        });
    }
    Ok(Exit::Success)
}

/// The replay driver: the daemon core fed from a capture file, its effects printed instead
/// of performed. Separate from file and terminal I/O so it can be tested.
#[derive(Debug)]
pub(crate) struct Replay {
    core: Core,
    packets: u64,
    ignored: u64,
    read_error: Option<String>,
    /// The SPA doors' ports: datagrams to them are replayed with their data.
    payload_ports: Vec<u16>,
}

impl Replay {
    /// A replay of `running` (every destination counts as local: the capture may come from
    /// another host).
    #[must_use]
    pub(crate) fn new(running: RunningConfig, limits: Limits) -> Self {
        let options = CoreOptions {
            limits,
            ipv4_only: false,
            max_running: 1,
            max_waiting_starts: MAX_QUEUED_STARTS,
            state_file: "(none)".into(),
        };
        Self {
            payload_ports: knock_capture::payload_ports(&running.config.doors),
            core: Core::new(running, options),
            packets: 0,
            ignored: 0,
            read_error: None,
        }
    }

    /// Feeds every frame of `capture`, then lets the remaining deadlines fire. Each output
    /// line is passed to `emit`; the return value is the summary.
    pub(crate) fn run(
        &mut self,
        mut capture: OfflineCapture,
        logger: &mut Logger,
        emit: &mut dyn FnMut(&str),
    ) -> String {
        capture.set_payload_ports(self.payload_ports.clone());
        while let Some(frame) = capture.next_frame() {
            match frame {
                Ok(OfflineFrame::Packet(packet)) => self.packet(&packet, logger, emit),
                Ok(OfflineFrame::Datagram(datagram)) => {
                    self.datagram(&datagram, logger, emit);
                }
                Ok(_) | Err(_) => self.ignored += 1,
            }
        }
        if let Some(error) = capture.take_error() {
            self.read_error = Some(error.to_string());
        }
        self.finish(logger, emit);
        let counters = self.core.matcher().counters();
        let mut summary = format!(
            "replayed {} packets ({} not TCP/UDP or undecodable): {} admitted as knocks, {} doors opened",
            self.packets + self.ignored,
            self.ignored,
            counters.admitted,
            counters.opened
        );
        if self.core.has_spa_doors() {
            summary.push_str(&format!(
                ", {} SPA packets granted, {} unauthenticated SPA packets",
                self.core.spa_granted(),
                self.core.spa_unauthenticated()
            ));
        }
        summary
    }

    /// Feeds one packet (after firing the deadlines that come before it).
    pub(crate) fn packet(
        &mut self,
        packet: &PacketEvent,
        logger: &mut Logger,
        emit: &mut dyn FnMut(&str),
    ) {
        self.packets += 1;
        self.advance_to(packet.timestamp, logger, emit);
        if logger.is_debug() {
            emit(&format!(
                "{} {}\n",
                time_text(packet.timestamp),
                debug_packet(packet)
            ));
        }
        self.core.handle_packet(time(packet.timestamp), packet);
        self.perform(packet.timestamp, logger, emit);
    }

    /// Feeds one datagram to an SPA port (after firing the deadlines that come before it);
    /// its time is also the wall clock SPA timestamps are checked against.
    fn datagram(&mut self, datagram: &Datagram, logger: &mut Logger, emit: &mut dyn FnMut(&str)) {
        let packet = &datagram.packet;
        self.packets += 1;
        self.advance_to(packet.timestamp, logger, emit);
        if logger.is_debug() {
            emit(&format!(
                "{} {} ({} bytes of data)\n",
                time_text(packet.timestamp),
                debug_packet(packet),
                datagram.payload().len()
            ));
        }
        self.core
            .handle_datagram(time(packet.timestamp), packet, datagram.payload());
        self.perform(packet.timestamp, logger, emit);
    }

    /// Fires every deadline up to `now`, each at its own instant.
    fn advance_to(&mut self, now: Instant, logger: &mut Logger, emit: &mut dyn FnMut(&str)) {
        while let Some(at) = self.core.poll_timeout().filter(|&at| at <= now) {
            self.core.handle_timeout(time(at));
            self.perform(at, logger, emit);
        }
    }

    /// Fires every remaining deadline (after the last packet; TOTP step boundaries, which
    /// never end, only up to the last pending deadline).
    pub(crate) fn finish(&mut self, logger: &mut Logger, emit: &mut dyn FnMut(&str)) {
        while let Some(at) = self.core.poll_pending_timeout() {
            self.advance_to(at, logger, emit);
        }
    }

    /// Prints what the effects would do; performs none (one-time sequences advance in the
    /// core's memory only, commands "finish" at once).
    fn perform(&mut self, now: Instant, logger: &mut Logger, emit: &mut dyn FnMut(&str)) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Log(record) => {
                    if matches!(record, Record::CommandFinished { .. }) {
                        continue;
                    }
                    if matches!(record.level(), Level::Event | Level::Verbose) {
                        emit(&format!("{} {record}\n", time_text(now)));
                    }
                    if logger.has_json()
                        && let Some(event) = record.json(timestamp(now), None)
                    {
                        logger.json(&event);
                    }
                }
                Effect::RunJob(job) => {
                    emit(&format!(
                        "{} {}: would run: {}\n",
                        time_text(now),
                        job.door,
                        job.command
                    ));
                    self.core
                        .handle_command_finished(&job, CommandOutcome::Exited(0));
                }
                // Nothing is added, so nothing is reported to the core (no "added" record).
                Effect::AddSetElement(add) => {
                    emit(&format!(
                        "{} {}: {}: would add to nftables set {} for {}\n",
                        time_text(now),
                        add.address,
                        add.door,
                        add.set,
                        humantime::format_duration(add.timeout)
                    ));
                }
                Effect::PersistStop { .. }
                | Effect::DropStop(_)
                | Effect::PersistSpentCodes(_)
                | Effect::RewriteOts { .. }
                | Effect::SetFilter(_)
                | Effect::SetPayloadPorts(_)
                | Effect::PersistSpaReplay(_) => {}
            }
        }
    }
}

fn time(at: Instant) -> Time {
    Time {
        instant: at,
        unix_secs: at.as_micros() / 1_000_000,
        unix_nanos: u32::try_from(at.as_micros() % 1_000_000).unwrap_or(0) * 1000,
    }
}

fn timestamp(at: Instant) -> Timestamp {
    i64::try_from(at.as_micros())
        .ok()
        .and_then(|m| Timestamp::from_microsecond(m).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A packet time as `YYYY-MM-DD HH:MM:SS.ffffff`, local time.
fn time_text(at: Instant) -> String {
    timestamp(at)
        .to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use knock_core::Config;

    use super::*;
    use crate::core::OtsText;

    /// Writes a pcap savefile (classic format, Ethernet) of TCP SYNs and UDP datagrams.
    /// (time in µs, source, destination, port, is UDP).
    type Frame = (u64, [u8; 4], [u8; 4], u16, bool);

    fn write_pcap(path: &Path, packets: &[Frame]) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        for &(micros, src, dst, port, udp) in packets {
            let mut frame = Vec::new();
            let builder = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(src, dst, 64);
            if udp {
                let data = SPA_DATA.with(|d| d.borrow().get(&micros).cloned());
                let data = data.unwrap_or_else(|| vec![0]);
                builder.udp(40000, port).write(&mut frame, &data).unwrap();
            } else {
                builder
                    .tcp(40000, port, 1, 1024)
                    .syn()
                    .write(&mut frame, &[])
                    .unwrap();
            }
            let secs = u32::try_from(micros / 1_000_000).unwrap();
            let usecs = u32::try_from(micros % 1_000_000).unwrap();
            bytes.extend_from_slice(&secs.to_le_bytes());
            bytes.extend_from_slice(&usecs.to_le_bytes());
            let len = u32::try_from(frame.len()).unwrap();
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&frame);
        }
        std::fs::write(path, bytes).unwrap();
    }

    thread_local! {
        /// The data of the UDP datagrams sent at a given time (default: one zero byte).
        static SPA_DATA: std::cell::RefCell<std::collections::HashMap<u64, Vec<u8>>> =
            std::cell::RefCell::default();
    }

    #[test]
    fn spa_packets_are_replayed_at_their_capture_time() {
        use knock_core::spa::{AccessPort, SecretKey, SpaKeys, SpaRequest, encode};
        let key = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";
        let hmac = "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";
        let conf = format!(
            "[spa]\nspa_key_base64 = {key}\nspa_hmac_key_base64 = {hmac}\nspa_access = tcp/22\n\
             cmd_timeout = 10\nstart_command = open %IP% %PORT%\nstop_command = close %IP%\n"
        );
        let keys = SpaKeys::new(
            SecretKey::from_base64(key).unwrap(),
            SecretKey::from_base64(hmac).unwrap(),
        )
        .unwrap();
        let request = SpaRequest {
            username: "alice".into(),
            timestamp: T0 / 1_000_000,
            allow: "0.0.0.0".parse().unwrap(),
            access: vec![AccessPort {
                protocol: knock_core::Protocol::Tcp,
                port: 22,
            }],
            client_timeout: None,
        };
        let data = encode(&request, &keys, &[3; 16]).unwrap().into_bytes();
        SPA_DATA.with(|d| {
            let mut d = d.borrow_mut();
            d.insert(T0 + 1_000, data.clone());
            d.insert(T0 + 2_000, data.clone());
        });
        let running = crate::core::test_support::running(Config::parse(&conf).unwrap().config);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spa.pcap");
        write_pcap(
            &path,
            &[
                (T0 + 1_000, A, SERVER, 62201, true),
                (T0 + 2_000, B, SERVER, 62201, true),
            ],
        );
        let mut replay = Replay::new(running, Limits::default());
        let mut logger = Logger::open(LogOptions::default());
        let mut lines = Vec::new();
        let summary = replay.run(
            OfflineCapture::open(&path).unwrap(),
            &mut logger,
            &mut |text| {
                lines.extend(
                    text.lines()
                        .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default().to_owned()),
                );
            },
        );
        assert_eq!(
            lines,
            [
                "10.0.0.1: spa: SPA packet verified: tcp/22 for 10.0.0.1 (user alice)",
                "10.0.0.1: spa: OPEN SESAME",
                "spa: would run: open 10.0.0.1 22",
                "10.0.0.9: spa: SPA packet refused (replay): replayed SPA packet (seen before)",
                "10.0.0.1: spa: command timeout",
                "spa: would run: close 10.0.0.1",
            ]
        );
        assert!(
            summary.ends_with(", 1 SPA packets granted, 0 unauthenticated SPA packets"),
            "{summary}"
        );
    }

    fn replay(conf: &str, packets: &[Frame]) -> Vec<String> {
        replay_with_ots(conf, None, packets)
    }

    /// Replays `packets`; `ots` is the text of door 0's one-time sequences file, if any.
    fn replay_with_ots(conf: &str, ots_text: Option<&str>, packets: &[Frame]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pcap");
        write_pcap(&path, packets);
        let config = Config::parse(conf).unwrap().config;
        let ots = ots_text
            .map(|text| OtsText {
                door: 0,
                path: "/nonexistent".into(),
                text: text.to_owned(),
            })
            .into_iter()
            .collect();
        let mut replay = Replay::new(
            RunningConfig {
                config,
                ots,
                spa: Vec::new(),
                totp: Vec::new(),
            },
            Limits::default(),
        );
        let mut logger = Logger::open(LogOptions::default());
        let mut lines = Vec::new();
        replay.run(
            OfflineCapture::open(&path).unwrap(),
            &mut logger,
            &mut |text| {
                lines.extend(text.lines().map(|l| {
                    // Drop the local-time prefix (date, time): the rest is deterministic.
                    l.splitn(3, ' ').nth(2).unwrap_or_default().to_owned()
                }));
            },
        );
        lines
    }

    /// Replays `packets` against `conf`, whose door 0 is a TOTP door.
    fn replay_totp(conf: &str, packets: &[Frame]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pcap");
        write_pcap(&path, packets);
        let running = crate::core::test_support::running(Config::parse(conf).unwrap().config);
        let mut replay = Replay::new(running, Limits::default());
        let mut logger = Logger::open(LogOptions::default());
        let mut lines = Vec::new();
        replay.run(
            OfflineCapture::open(&path).unwrap(),
            &mut logger,
            &mut |text| {
                lines.extend(
                    text.lines()
                        .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default().to_owned()),
                );
            },
        );
        lines
    }

    #[test]
    fn a_totp_door_replays_at_the_capture_time_and_ends() {
        // RFC 6238's SHA1 secret, 8 digits: 94287082 at 59 s (step 1), so the knock
        // 49428, 57082/udp opens at a capture time in [30 s, 60 s), once.
        let conf = "[t]\nsequence = 40000,50000:udp\ntotp_secret = \
                    GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\ntotp_digits = 8\n\
                    start_command = open %IP%\ncmd_timeout = 10\nstop_command = close %IP%\n";
        let s = 1_000_000;
        let lines = replay_totp(
            conf,
            &[
                (50 * s, A, SERVER, 49428, false),
                (50 * s + 1, A, SERVER, 57082, true),
                (55 * s, B, SERVER, 49428, false),
                (55 * s + 1, B, SERVER, 57082, true),
                (200 * s, B, SERVER, 49428, false),
                (200 * s + 1, B, SERVER, 57082, true),
            ],
        );
        let text = lines.join("\n");
        assert_eq!(text.matches("OPEN SESAME").count(), 1, "{text}");
        assert!(text.contains("10.0.0.1: t: OPEN SESAME"), "{text}");
        assert!(text.contains("10.0.0.9: t: code already used"), "{text}");
        assert!(text.contains("would run: close 10.0.0.1"), "{text}");
    }

    const T0: u64 = 1_795_000_000_000_000;
    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 9];
    const SERVER: [u8; 4] = [10, 0, 0, 2];

    #[test]
    fn open_then_stop_at_cmd_timeout() {
        let conf = "[openSSH]\nsequence = 7000,8000:udp,9000\nseq_timeout = 5\n\
                    start_command = open %IP%\ncmd_timeout = 10\nstop_command = close %IP%\n";
        let lines = replay(
            conf,
            &[
                (T0, A, SERVER, 7000, false),
                (T0 + 100_000, A, SERVER, 8000, true),
                (T0 + 200_000, A, SERVER, 9000, false),
            ],
        );
        assert_eq!(
            lines,
            [
                "10.0.0.1: openSSH: Stage 1",
                "10.0.0.1: openSSH: Stage 2",
                "10.0.0.1: openSSH: Stage 3",
                "10.0.0.1: openSSH: OPEN SESAME",
                "openSSH: would run: open 10.0.0.1",
                "10.0.0.1: openSSH: command timeout",
                "openSSH: would run: close 10.0.0.1",
            ]
        );
    }

    #[test]
    fn set_doors_print_the_element_they_would_add() {
        let conf = "[ssh]\nsequence = 7000,8000\nseq_timeout = 5\ncmd_timeout = 30\n\
                    nft_set = inet knockd ssh4\nnft_set_6 = inet knockd ssh6\n\
                    start_command = notify %IP%\n";
        let lines = replay(
            conf,
            &[
                (T0, A, SERVER, 7000, false),
                (T0 + 100_000, A, SERVER, 8000, false),
            ],
        );
        assert_eq!(
            lines,
            [
                "10.0.0.1: ssh: Stage 1",
                "10.0.0.1: ssh: Stage 2",
                "10.0.0.1: ssh: OPEN SESAME",
                "10.0.0.1: ssh: would add to nftables set inet knockd ssh4 for 30s",
                "ssh: would run: notify 10.0.0.1",
            ]
        );
    }

    #[test]
    fn timeouts_and_invalid_knocks_are_reported_at_their_time() {
        let conf = "[d]\nsequence = 7000,8000\nseq_timeout = 5\ncommand = run %IP%\n";
        let lines = replay(
            conf,
            &[
                (T0, A, SERVER, 7000, false),
                (T0 + 1_000, B, SERVER, 7000, false),
                (T0 + 2_000, B, SERVER, 9999, false),
                (T0 + 3_000, B, SERVER, 7000, false),
                (T0 + 4_000, B, SERVER, 7000, false),
                // A's attempt expires at T0 + 5 s, before this packet.
                (T0 + 6_000_000, A, SERVER, 8000, false),
            ],
        );
        assert_eq!(lines[0], "10.0.0.1: d: Stage 1");
        assert_eq!(lines[1], "10.0.0.9: d: Stage 1");
        assert!(
            lines.contains(&"10.0.0.1: d: sequence timeout (stage 1)".to_owned()),
            "{lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("OPEN SESAME")),
            "{lines:?}"
        );
    }

    #[test]
    fn one_time_sequences_advance_in_memory() {
        let conf = "[ots]\none_time_sequences = /nonexistent\ncommand = open %IP%\n";
        let lines = replay_with_ots(
            conf,
            Some(" 7000,8000\n 7100,8100\n"),
            &[
                (T0, A, SERVER, 7000, false),
                (T0 + 1_000, A, SERVER, 8000, false),
                // The used sequence no longer opens…
                (T0 + 2_000, B, SERVER, 7000, false),
                (T0 + 3_000, B, SERVER, 8000, false),
                // …the next one does, and is the last.
                (T0 + 4_000, B, SERVER, 7100, false),
                (T0 + 5_000, B, SERVER, 8100, false),
            ],
        );
        let opens: Vec<&String> = lines.iter().filter(|l| l.contains("OPEN SESAME")).collect();
        assert_eq!(
            opens,
            ["10.0.0.1: ots: OPEN SESAME", "10.0.0.9: ots: OPEN SESAME"],
            "{lines:?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some(
                "no more sequences left in the one time sequences file for door ots --> disabling the door"
            ),
            "{lines:?}"
        );
    }
}
