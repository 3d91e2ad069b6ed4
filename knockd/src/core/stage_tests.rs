//! Stage times of opens (issue 14): the capture time of the opening packet and the decision
//! time travel with the open's record, its start job and its nftables element, and come out
//! in the JSON events and the `-D` lines. Virtual clock, no I/O.

use std::net::IpAddr;

use knock_core::{Instant, PacketEvent, TcpFlags};

use super::test_support::{UNIX0, effects, new_core};
use super::*;

/// The Unix µs of the tests' `Instant::ZERO`.
const EPOCH_US: u64 = UNIX0 * 1_000_000;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

/// `micros` after the start, on both clocks.
fn at_us(micros: u64) -> Time {
    Time {
        instant: Instant::from_micros(micros),
        unix_secs: UNIX0 + micros / 1_000_000,
        unix_nanos: u32::try_from(micros % 1_000_000).unwrap_or(0) * 1_000,
    }
}

fn syn(micros: u64, source: IpAddr, port: u16) -> PacketEvent {
    PacketEvent::tcp(
        Instant::from_micros(micros),
        source,
        IpAddr::from([10, 0, 0, 2]),
        port,
        TcpFlags::SYN,
    )
}

fn opens(effects: &[Effect]) -> Vec<(IpAddr, OpenTimes)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(Record::Open { source, times, .. }) => Some((*source, *times)),
            _ => None,
        })
        .collect()
}

fn times(captured: u64, decided: u64) -> OpenTimes {
    OpenTimes {
        captured_us: EPOCH_US + captured,
        decided_us: EPOCH_US + decided,
    }
}

const THREE_STEPS: &str = "[d]\nsequence = 7000,8000,9000\nseq_timeout = 5\n\
                           start_command = open %IP%\nstop_command = close %IP%\n";

#[test]
fn an_open_carries_its_packets_capture_time_and_the_decision_time() {
    let mut core = new_core(THREE_STEPS);
    core.set_clock_epoch(EPOCH_US);
    core.handle_packet(at_us(1_000), &syn(1_000, ip(1), 7000));
    core.handle_packet(at_us(2_000), &syn(2_000, ip(1), 8000));
    // Captured at 3 000 µs, given to the core 250 µs later.
    core.handle_packets(at_us(3_250), &[syn(3_000, ip(1), 9000)]);
    let out = effects(&mut core);
    assert_eq!(opens(&out), [(ip(1), times(3_000, 3_250))]);
    // The start job carries them to the driver; its stop job (later) does not.
    let start = out
        .iter()
        .find_map(|e| match e {
            Effect::RunJob(job) => Some(job.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(start.opened, Some(times(3_000, 3_250)));
    core.handle_command_finished(&start, CommandOutcome::Exited(0));
    core.handle_timeout(at_us(20_000_000));
    let stop = effects(&mut core)
        .into_iter()
        .find_map(|e| match e {
            Effect::RunJob(job) => Some(job),
            _ => None,
        })
        .unwrap();
    assert_eq!(stop.kind, CommandKind::Stop);
    assert_eq!(stop.opened, None);
}

#[test]
fn in_a_burst_each_open_gets_its_own_packets_time() {
    let conf = "[one]\nsequence = 7000\ncommand = open %IP%\n";
    let mut core = new_core(conf);
    core.set_clock_epoch(EPOCH_US);
    let burst = [
        syn(10, ip(1), 7000),
        syn(20, ip(2), 6000),
        syn(30, ip(2), 7000),
        syn(40, ip(3), 7000),
        syn(50, ip(1), 7000),
    ];
    core.handle_packets(at_us(100), &burst);
    let out = effects(&mut core);
    assert_eq!(
        opens(&out),
        [
            (ip(1), times(10, 100)),
            (ip(2), times(30, 100)),
            (ip(3), times(40, 100)),
            (ip(1), times(50, 100)),
        ]
    );
}

#[test]
fn in_a_burst_a_sequence_opens_at_its_last_knocks_time() {
    let mut core = new_core(THREE_STEPS);
    core.set_clock_epoch(EPOCH_US);
    let burst = [
        syn(10, ip(1), 7000),
        syn(15, ip(2), 7000),
        syn(20, ip(1), 8000),
        syn(25, ip(2), 8000),
        syn(30, ip(1), 9000),
        syn(35, ip(1), 7000),
        syn(40, ip(2), 9000),
    ];
    core.handle_packets(at_us(100), &burst);
    let out = effects(&mut core);
    assert_eq!(
        opens(&out),
        [(ip(1), times(30, 100)), (ip(2), times(40, 100))]
    );
}

#[test]
fn a_decision_time_before_the_capture_time_is_raised_to_it() {
    let conf = "[one]\nsequence = 7000\ncommand = open %IP%\n";
    let mut core = new_core(conf);
    // Epoch 0: instants are Unix times already (a replay).
    core.handle_packets(at_us(5), &[syn(9, ip(1), 7000)]);
    let out = effects(&mut core);
    assert_eq!(
        opens(&out),
        [(
            ip(1),
            OpenTimes {
                captured_us: 9,
                decided_us: 9
            }
        )]
    );
}

#[test]
fn open_json_has_the_stage_times_and_debug_shows_them() {
    let open = Record::Open {
        door: "d".into(),
        source: ip(1),
        times: times(3_000, 3_250),
    };
    let time = "2026-11-21T04:50:33Z".parse().unwrap();
    assert_eq!(
        open.json(time, None).unwrap().to_line(),
        "{\"capture_to_decision_us\":250,\"captured_us\":1795000000003000,\
         \"decided_us\":1795000000003250,\"door\":\"d\",\"event\":\"open\",\
         \"source\":\"10.0.0.1\",\"time\":\"2026-11-21T04:50:33Z\"}\n"
    );
    // The 0.8 line is unchanged; -D adds one with the times.
    assert_eq!(open.to_string(), "10.0.0.1: d: OPEN SESAME");
    assert_eq!(
        open.stage_times_line(Some("h")).unwrap(),
        "10.0.0.1 (h): d: open: captured 1795000000.003000, decided 1795000000.003250 (+250 µs)"
    );
}

#[test]
fn started_json_has_the_spawn_time_and_each_stage() {
    let job = Job {
        door: "d".into(),
        source: ip(1),
        kind: CommandKind::Start,
        command: "open 10.0.0.1".into(),
        stop: None,
        opened: Some(times(3_000, 3_250)),
    };
    let started = Record::CommandStarted {
        job: Box::new(job.clone()),
        pid: 4242,
        spawned_us: EPOCH_US + 3_400,
        spawn_call_us: 90,
    };
    assert_eq!(started.level(), Level::Debug);
    let time = "2026-11-21T04:50:33Z".parse().unwrap();
    assert_eq!(
        started.json(time, None).unwrap().to_line(),
        "{\"capture_to_decision_us\":250,\"capture_to_spawn_us\":400,\
         \"captured_us\":1795000000003000,\"command\":\"open 10.0.0.1\",\
         \"decided_us\":1795000000003250,\"decision_to_spawn_us\":150,\"door\":\"d\",\
         \"event\":\"started\",\"kind\":\"start\",\"pid\":4242,\"source\":\"10.0.0.1\",\
         \"spawn_call_us\":90,\"spawned_us\":1795000000003400,\"time\":\"2026-11-21T04:50:33Z\"}\n"
    );
    assert_eq!(
        started.to_string(),
        "10.0.0.1: d: start command started (pid 4242) at 1795000000.003400 (spawn call 90 µs); captured \
         1795000000.003000, decided 1795000000.003250 (+250 µs), done +150 µs after the \
         decision, 400 µs after capture"
    );
    // A stop command (no open): the spawn time only.
    let stop = Record::CommandStarted {
        job: Box::new(Job {
            kind: CommandKind::Stop,
            opened: None,
            ..job
        }),
        pid: 7,
        spawned_us: EPOCH_US,
        spawn_call_us: 90,
    };
    let line = stop.json(time, None).unwrap().to_line();
    assert!(line.contains("\"spawned_us\":1795000000000000"), "{line}");
    assert!(!line.contains("captured_us"), "{line}");
    assert_eq!(
        stop.to_string(),
        "10.0.0.1: d: stop command started (pid 7) at 1795000000.000000 (spawn call 90 µs)"
    );
}

#[test]
fn a_set_element_write_time_goes_with_the_open_times() {
    let conf = "[ssh]\nsequence = 7000\ncmd_timeout = 30\nnft_set = inet knockd ssh4\n";
    let mut core = new_core(conf);
    core.set_clock_epoch(EPOCH_US);
    core.handle_packets(at_us(120), &[syn(100, ip(1), 7000)]);
    let mut records = Vec::new();
    while let Some(effect) = core.poll_effect() {
        match effect {
            Effect::AddSetElement(add) => {
                assert_eq!(add.opened, Some(times(100, 120)));
                core.handle_set_element_added_at(add, Ok(()), Instant::from_micros(180));
            }
            Effect::Log(record) => records.push(record),
            _ => {}
        }
    }
    let added = records
        .iter()
        .find(|r| matches!(r, Record::SetElementAdded { .. }))
        .unwrap();
    let time = "2026-11-21T04:50:33Z".parse().unwrap();
    assert_eq!(
        added.json(time, None).unwrap().to_line(),
        "{\"capture_to_decision_us\":20,\"capture_to_write_us\":80,\
         \"captured_us\":1795000000000100,\"decided_us\":1795000000000120,\
         \"decision_to_write_us\":60,\"door\":\"ssh\",\"event\":\"nft\",\"family\":\"inet\",\
         \"set\":\"ssh4\",\"source\":\"10.0.0.1\",\"success\":true,\"table\":\"knockd\",\
         \"time\":\"2026-11-21T04:50:33Z\",\"timeout_ms\":30000,\
         \"written_us\":1795000000000180}\n"
    );
    assert_eq!(
        added.stage_times_line(None).unwrap(),
        "10.0.0.1: ssh: nftables set element written at 1795000000.000180; captured \
         1795000000.000100, decided 1795000000.000120 (+20 µs), done +60 µs after the \
         decision, 80 µs after capture"
    );
}
