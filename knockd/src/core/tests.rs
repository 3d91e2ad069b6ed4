//! The core's ordering rules and lifecycle, driven with a virtual clock (no root, no I/O).

use std::net::IpAddr;
use std::path::PathBuf;

use knock_core::{Config, Instant, PacketEvent, TcpFlags};

use super::test_support::{UNIX0, at, effects, lines, new_core, options, running};
use super::*;
use knock_core::totp::Totp;

const SERVER: [u8; 4] = [10, 0, 0, 2];

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn syn(time: Time, source: IpAddr, port: u16) -> PacketEvent {
    PacketEvent::tcp(
        time.instant,
        source,
        IpAddr::from(SERVER),
        port,
        TcpFlags::SYN,
    )
}

fn core_with(conf: &str, ots: Vec<OtsText>, options: CoreOptions) -> Core {
    let config = Config::parse(conf).unwrap().config;
    Core::new(
        RunningConfig {
            config,
            ots,
            spa: Vec::new(),
            totp: Vec::new(),
        },
        options,
    )
}

fn jobs(effects: &[Effect]) -> Vec<Job> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::RunJob(job) => Some(job.clone()),
            _ => None,
        })
        .collect()
}

const ONE_STEP: &str = "[flood]\nsequence = 7000\ncmd_timeout = 10\n\
                        start_command = open %IP%\nstop_command = close %IP%\n";

#[test]
fn a_stop_is_recorded_before_its_start_job() {
    let mut core = new_core(ONE_STEP);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    let out = effects(&mut core);
    let persist = out
        .iter()
        .position(|e| matches!(e, Effect::PersistStop { .. }))
        .expect("the stop is recorded");
    let start = out
        .iter()
        .position(|e| matches!(e, Effect::RunJob(j) if j.kind == CommandKind::Start))
        .expect("the start command runs");
    assert!(persist < start, "{out:?}");
    let Effect::PersistStop { stop, .. } = &out[persist] else {
        unreachable!()
    };
    assert_eq!(stop.due_unix, UNIX0 + 10);
    assert_eq!(stop.command, "close 10.0.0.1");
    assert_eq!(jobs(&out)[0].command, "open 10.0.0.1");
    assert_eq!(
        lines(&out),
        ["10.0.0.1: flood: Stage 1", "10.0.0.1: flood: OPEN SESAME"]
    );
}

#[test]
fn start_and_stop_of_one_door_and_source_keep_their_order() {
    let mut core = new_core(ONE_STEP);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    let out = effects(&mut core);
    let Some(Effect::PersistStop { id, .. }) =
        out.iter().find(|e| matches!(e, Effect::PersistStop { .. }))
    else {
        panic!("no stop recorded: {out:?}");
    };
    let start = jobs(&out).remove(0);
    assert_eq!(core.poll_timeout(), Some(Instant::from_secs(10)));
    // Nothing before the deadline.
    core.handle_timeout(at(9_999));
    assert!(effects(&mut core).is_empty());
    core.handle_timeout(at(10_000));
    let out = effects(&mut core);
    assert_eq!(lines(&out), ["10.0.0.1: flood: command timeout"]);
    let stop = jobs(&out).remove(0);
    assert_eq!(stop.kind, CommandKind::Stop);
    assert_eq!(stop.stop, Some(*id), "the recorded stop runs");
    assert_eq!((stop.door.as_str(), stop.source), ("flood", ip(1)));

    core.handle_command_finished(&start, CommandOutcome::Exited(0));
    let out = effects(&mut core);
    assert_eq!(
        out.len(),
        1,
        "a successful start is only a JSON event: {out:?}"
    );
    core.handle_command_finished(&stop, CommandOutcome::Exited(1));
    let out = effects(&mut core);
    assert_eq!(
        lines(&out),
        ["flood: command returned non-zero status code (1)"]
    );
    assert_eq!(out.last(), Some(&Effect::DropStop(*id)));
}

#[test]
fn a_one_time_sequence_advances_before_the_next_packet() {
    let conf = "[ots]\none_time_sequences = /etc/knockd.ots\ncommand = open %IP%\n\
                [other]\nsequence = 9000\ncommand = other %IP%\n";
    let ots = vec![OtsText {
        door: 0,
        path: PathBuf::from("/etc/knockd.ots"),
        text: " 7000\n 8000\n".to_owned(),
    }];
    let mut core = core_with(conf, ots, options());
    // One burst: A uses 7000; B's 7000 right after must not open; B's 8000 does.
    let burst = [
        syn(at(0), ip(1), 7000),
        syn(at(0), ip(9), 7000),
        syn(at(0), ip(9), 8000),
    ];
    core.handle_packets(at(0), &burst);
    let out = effects(&mut core);
    let opens: Vec<String> = lines(&out)
        .into_iter()
        .filter(|l| l.contains("OPEN SESAME"))
        .collect();
    assert_eq!(
        opens,
        ["10.0.0.1: ots: OPEN SESAME", "10.0.0.9: ots: OPEN SESAME"]
    );
    let rewrites: Vec<&str> = out
        .iter()
        .filter_map(|e| match e {
            Effect::RewriteOts { text, path, .. } => {
                assert_eq!(path, &PathBuf::from("/etc/knockd.ots"));
                Some(text.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(rewrites, ["#7000\n 8000\n", "#7000\n#8000\n"]);
    // The first rewrite comes right after the first open, before B's packets.
    let first_rewrite = out
        .iter()
        .position(|e| matches!(e, Effect::RewriteOts { .. }))
        .unwrap();
    let second_open = out
        .iter()
        .rposition(|e| matches!(e, Effect::Log(Record::Open { .. })))
        .unwrap();
    assert!(first_rewrite < second_open, "{out:?}");
    // Exhausted: the door is disabled and the filter keeps only the other door.
    assert_eq!(
        lines(&out).last().map(String::as_str),
        Some(
            "no more sequences left in the one time sequences file for door ots --> disabling the door"
        )
    );
    let Some(Effect::SetFilter(filter)) =
        out.iter().rev().find(|e| matches!(e, Effect::SetFilter(_)))
    else {
        panic!("no filter change: {out:?}");
    };
    assert!(
        filter.contains("tcp dst port 9000") && !filter.contains("8000"),
        "{filter}"
    );
    assert!(core.config().doors[0].sequence.is_empty());
    core.handle_packet(at(1), &syn(at(1), ip(3), 8000));
    assert!(lines(&effects(&mut core)).is_empty());
}

#[test]
fn a_failed_one_time_sequences_write_disables_the_door() {
    let conf = "[ots]\none_time_sequences = seqs\ncommand = open %IP%\n";
    let ots = vec![OtsText {
        door: 0,
        path: PathBuf::from("/x/seqs"),
        text: " 7000\n 8000\n".to_owned(),
    }];
    let mut core = core_with(conf, ots, options());
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    let out = effects(&mut core);
    assert!(lines(&out).contains(&"new sequence for door ots: 8000:tcp".to_owned()));
    core.handle_ots_write_failed(
        "ots",
        "cannot update one-time sequences file seqs: Read-only file system".into(),
    );
    let out = effects(&mut core);
    assert_eq!(
        lines(&out),
        [
            "error: cannot update one-time sequences file seqs: Read-only file system",
            "error while disabling used one time sequence for door ots --> disabling the door",
            "no more sequences left in the one time sequences file for door ots --> disabling the door",
        ]
    );
    assert_eq!(
        out.last(),
        Some(&Effect::SetFilter(knock_capture::MATCH_NOTHING.to_owned()))
    );
    core.handle_packet(at(1), &syn(at(1), ip(1), 8000));
    assert!(effects(&mut core).is_empty());
}

#[test]
fn a_reload_keeps_pending_stops_and_their_recorded_command() {
    let mut core = new_core(ONE_STEP);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    effects(&mut core);
    let new = Config::parse(
        "[flood]\nsequence = 7100\nstart_command = new-open %IP%\nstop_command = new-close %IP%\n",
    )
    .unwrap()
    .config;
    core.handle_reload(
        at(1_000),
        RunningConfig {
            config: new,
            ots: Vec::new(),
            spa: Vec::new(),
            totp: Vec::new(),
        },
    );
    let out = effects(&mut core);
    assert!(
        matches!(&out[..], [Effect::SetFilter(f)] if f.contains("7100")),
        "{out:?}"
    );
    core.handle_timeout(at(10_000));
    let out = effects(&mut core);
    assert_eq!(
        jobs(&out)[0].command,
        "close 10.0.0.1",
        "the command recorded at the open"
    );
    assert_eq!(lines(&out), ["10.0.0.1: flood: command timeout"]);
}

#[test]
fn a_restart_runs_overdue_stops_at_once_and_rearms_the_others() {
    let mut core = new_core(ONE_STEP);
    let stop = |source: u8, due_unix: u64, door: &str| PendingStop {
        door: door.to_owned(),
        source: ip(source),
        due_unix,
        command: format!("recorded-close {}", ip(source)),
    };
    core.handle_restore(
        at(0),
        vec![
            (StopId(1), stop(1, UNIX0 - 5, "flood")),
            (StopId(2), stop(2, UNIX0 + 8, "flood")),
            // A door that no longer exists: run now, whatever the due time.
            (StopId(3), stop(3, UNIX0 + 30, "gone")),
        ],
    );
    let out = effects(&mut core);
    assert_eq!(
        lines(&out),
        [
            "10.0.0.1: flood: running a stop command left pending by a previous run",
            "10.0.0.2: flood: stop command restored from /var/lib/knockd/pending-stops, due in 8s",
            "10.0.0.3: gone: running a stop command left pending by a previous run",
        ]
    );
    let ran = jobs(&out);
    assert_eq!(ran.len(), 2);
    assert_eq!(
        (ran[0].stop, ran[0].command.as_str()),
        (Some(StopId(1)), "recorded-close 10.0.0.1")
    );
    assert_eq!(ran[1].stop, Some(StopId(3)));
    assert_eq!(core.poll_timeout(), Some(Instant::from_secs(8)));
    core.handle_timeout(at(8_000));
    let out = effects(&mut core);
    assert_eq!(lines(&out), ["10.0.0.2: flood: command timeout"]);
    assert_eq!(jobs(&out)[0].stop, Some(StopId(2)));
    assert_eq!(jobs(&out)[0].command, "recorded-close 10.0.0.2");
    // New records get fresh ids.
    core.handle_packet(at(31_000), &syn(at(31_000), ip(4), 7000));
    let out = effects(&mut core);
    assert!(
        out.iter()
            .any(|e| matches!(e, Effect::PersistStop { id: StopId(4), .. })),
        "{out:?}"
    );
}

/// Issue 10 item 12: a restored stop due far in the future (a wall clock set back at boot,
/// or a hand-edited file) runs no later than the door's `cmd_timeout` after the restart.
#[test]
fn issue10_item12_restored_deadlines_are_capped_by_cmd_timeout() {
    let mut core = new_core(ONE_STEP);
    core.handle_restore(
        at(0),
        vec![(
            StopId(1),
            PendingStop {
                door: "flood".into(),
                source: ip(1),
                due_unix: UNIX0 + 1_000_000,
                command: "close 10.0.0.1".into(),
            },
        )],
    );
    let out = effects(&mut core);
    assert_eq!(
        lines(&out),
        ["10.0.0.1: flood: stop command restored from /var/lib/knockd/pending-stops, due in 10s"]
    );
    assert_eq!(core.poll_timeout(), Some(Instant::from_secs(10)));
    core.handle_timeout(at(10_000));
    let out = effects(&mut core);
    assert_eq!(jobs(&out)[0].command, "close 10.0.0.1");
    assert_eq!(jobs(&out)[0].stop, Some(StopId(1)));
}

/// Issue 10 item 4: a stop command whose spawn fails (EAGAIN, ENOMEM) was forgotten. It is
/// kept (no `DropStop`: the state file keeps it across a restart) and tried again with a
/// doubling backoff, each failure logged.
#[test]
fn issue10_item4_a_stop_whose_spawn_fails_is_kept_and_retried_with_backoff() {
    let mut core = new_core(ONE_STEP);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    let _ = effects(&mut core);
    core.handle_timeout(at(10_000));
    let stop = jobs(&effects(&mut core)).remove(0);
    assert_eq!(stop.kind, CommandKind::Stop);

    core.handle_spawn_failed(at(10_000), &stop, "Resource temporarily unavailable".into());
    let out = effects(&mut core);
    assert!(
        !out.iter().any(|e| matches!(e, Effect::DropStop(_))),
        "{out:?}"
    );
    assert_eq!(
        lines(&out),
        [
            "10.0.0.1: flood: error: cannot start the stop command (Resource temporarily \
          unavailable), failure 1; trying again in 1s (it stays in the state file)"
        ]
    );
    assert_eq!(core.poll_timeout(), Some(Instant::from_secs(11)));
    core.handle_timeout(at(10_999));
    assert!(jobs(&effects(&mut core)).is_empty());
    core.handle_timeout(at(11_000));
    let again = jobs(&effects(&mut core));
    assert_eq!(again, std::slice::from_ref(&stop));

    core.handle_spawn_failed(at(11_000), &stop, "Cannot allocate memory".into());
    let out = effects(&mut core);
    assert!(
        lines(&out)[0].contains("failure 2; trying again in 2s"),
        "{out:?}"
    );
    assert_eq!(core.poll_timeout(), Some(Instant::from_secs(13)));
    core.handle_timeout(at(13_000));
    assert_eq!(jobs(&effects(&mut core)), std::slice::from_ref(&stop));

    // It ran: now it is forgotten.
    core.handle_command_finished(&stop, CommandOutcome::Exited(0));
    let out = effects(&mut core);
    assert!(
        out.contains(&Effect::DropStop(stop.stop.unwrap())),
        "{out:?}"
    );
    assert_eq!(core.poll_timeout(), None);
}

/// Issue 10 item 11: with a state file that cannot be written (read-only directory, a file
/// kept because it was unsafe), a door with a stop command opened anyway and a crash then
/// lost the stop. It is refused and logged; a door without a stop command still opens.
#[test]
fn issue10_item11_no_open_with_a_stop_that_cannot_be_made_durable() {
    let conf = format!("{ONE_STEP}[plain]\nsequence = 7100\ncommand = plain %IP%\n");
    let mut core = new_core(&conf);
    core.handle_state_durable(false);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    let out = effects(&mut core);
    assert!(jobs(&out).is_empty(), "{out:?}");
    assert!(
        !out.iter().any(|e| matches!(e, Effect::PersistStop { .. })),
        "{out:?}"
    );
    assert_eq!(
        lines(&out)[2..],
        [
            "10.0.0.1: flood: error: not opened: its stop command cannot be recorded in \
          /var/lib/knockd/pending-stops (1 opens refused so far)"
        ]
    );
    core.handle_packet(at(1), &syn(at(1), ip(1), 7100));
    assert_eq!(jobs(&effects(&mut core))[0].command, "plain 10.0.0.1");
    // Writable again: the door opens.
    core.handle_state_durable(true);
    core.handle_packet(at(2), &syn(at(2), ip(2), 7000));
    assert_eq!(jobs(&effects(&mut core))[0].command, "open 10.0.0.2");
}

#[test]
fn shutdown_runs_pending_stops_or_leaves_them_recorded() {
    let mut core = new_core(ONE_STEP);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    effects(&mut core);
    core.handle_shutdown(true);
    let out = effects(&mut core);
    assert_eq!(
        lines(&out),
        ["10.0.0.1: flood: shutting down: running the stop command now"]
    );
    assert_eq!(jobs(&out)[0].command, "close 10.0.0.1");
    assert!(jobs(&out)[0].stop.is_some());

    let mut core = new_core(ONE_STEP);
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    effects(&mut core);
    core.handle_shutdown(false);
    assert_eq!(
        lines(&effects(&mut core)),
        ["leaving 1 stop commands pending in /var/lib/knockd/pending-stops (--no-stop-on-exit)"]
    );
}

#[test]
fn a_flood_of_opens_is_refused_once_too_many_commands_wait() {
    let options = CoreOptions {
        max_running: 1,
        max_waiting_starts: 2,
        ..options()
    };
    let mut core = core_with(ONE_STEP, Vec::new(), options);
    let burst: Vec<PacketEvent> = (1..=8).map(|i| syn(at(0), ip(i), 7000)).collect();
    core.handle_packets(at(0), &burst);
    let out = effects(&mut core);
    // 1 running + 2 waiting; the others are refused, and no stop is recorded for them.
    let starts = jobs(&out);
    assert_eq!(starts.len(), 3);
    let persisted = out
        .iter()
        .filter(|e| matches!(e, Effect::PersistStop { .. }))
        .count();
    assert_eq!(persisted, 3);
    let refusals: Vec<String> = lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("error:"))
        .collect();
    // Refusals 1, 2 and 4 are logged (powers of two), 3 and 5 are not.
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert_eq!(
        refusals[0],
        "error: flood: 2 commands are waiting; not running the start command for 10.0.0.4 (1 refused so far)"
    );
    // Their closes come due all the same; only the recorded stops run.
    core.handle_timeout(at(10_000));
    let out = effects(&mut core);
    assert_eq!(lines(&out).len(), 8, "eight command timeouts: {out:?}");
    let stops = jobs(&out);
    assert_eq!(stops.len(), 3, "{stops:?}");
    assert!(
        stops
            .iter()
            .all(|j| j.kind == CommandKind::Stop && j.stop.is_some())
    );
    // Finished commands free their slots.
    for job in starts.iter().chain(&stops) {
        core.handle_command_finished(job, CommandOutcome::Exited(0));
    }
    let out = effects(&mut core);
    assert_eq!(
        out.iter()
            .filter(|e| matches!(e, Effect::DropStop(_)))
            .count(),
        3
    );
    core.handle_packet(at(1), &syn(at(1), ip(20), 7000));
    assert_eq!(jobs(&effects(&mut core)).len(), 1);
}

#[test]
fn a_flood_against_one_door_does_not_refuse_another_doors_starts() {
    let options = CoreOptions {
        max_running: 1,
        max_waiting_starts: 2,
        ..options()
    };
    let conf = format!("{ONE_STEP}[door]\nsequence = 7100,8100,9100\ncommand = door %IP%\n");
    let mut core = core_with(&conf, Vec::new(), options);
    let burst: Vec<PacketEvent> = (1..=50).map(|i| syn(at(0), ip(i), 7000)).collect();
    core.handle_packets(at(0), &burst);
    assert_eq!(jobs(&effects(&mut core)).len(), 3);
    for port in [7100, 8100, 9100] {
        core.handle_packet(at(1), &syn(at(1), ip(200), port));
    }
    let out = effects(&mut core);
    assert_eq!(jobs(&out)[0].command, "door 10.0.0.200", "{out:?}");
}

#[test]
fn addresses_restrict_destinations_and_the_filter() {
    let mut core = new_core("[d]\nsequence = 7000\ncommand = open %IP%\n");
    core.handle_local_addresses(vec![ip(2), "fd00::2".parse().unwrap()]);
    let out = effects(&mut core);
    assert!(
        matches!(&out[..], [Effect::SetFilter(f)] if f.contains("dst host 10.0.0.2")),
        "{out:?}"
    );
    // Another destination is not local any more.
    let elsewhere = PacketEvent::tcp(Instant::ZERO, ip(1), ip(77), 7000, TcpFlags::SYN);
    core.handle_packet(at(0), &elsewhere);
    assert!(effects(&mut core).is_empty());
    core.handle_packet(at(0), &syn(at(0), ip(1), 7000));
    assert_eq!(jobs(&effects(&mut core)).len(), 1);
    // No address known: any destination.
    core.handle_local_addresses(Vec::new());
    effects(&mut core);
    core.handle_packet(at(1), &elsewhere);
    assert_eq!(jobs(&effects(&mut core)).len(), 1);
}

#[test]
fn records_render_in_0_8_wording_and_json() {
    let timeout = Record::Timeout {
        door: "d".into(),
        source: ip(1),
        stage: 2,
    };
    assert_eq!(
        timeout.to_string(),
        "10.0.0.1: d: sequence timeout (stage 2)"
    );
    assert_eq!(
        timeout.display(Some("h.example")).to_string(),
        "10.0.0.1 (h.example): d: sequence timeout (stage 2)"
    );
    let time = "2026-11-21T04:50:33Z".parse().unwrap();
    assert_eq!(
        timeout.json(time, Some("h.example")).unwrap().to_line(),
        "{\"door\":\"d\",\"event\":\"timeout\",\"host\":\"h.example\",\"source\":\"10.0.0.1\",\"stage\":2,\"time\":\"2026-11-21T04:50:33Z\"}\n"
    );
    let job = Job {
        door: "d".into(),
        source: ip(1),
        kind: CommandKind::Stop,
        command: "x".into(),
        stop: None,
        opened: None,
    };
    let killed = Record::CommandFinished {
        job: Box::new(job),
        outcome: CommandOutcome::Signaled(9),
    };
    assert_eq!(killed.level(), Level::Error);
    let hung = Record::CommandKilled {
        door: "d".into(),
        source: ip(1),
        after: Duration::from_secs(600),
        pid: 4242,
    };
    assert_eq!(
        hung.display(Some("h")).to_string(),
        "10.0.0.1 (h): d: command still running after 10m, killed its process group 4242"
    );
    assert_eq!(killed.to_string(), "d: command terminated by signal 9");
    assert_eq!(
        killed.json(time, None).unwrap().to_line(),
        "{\"command\":\"x\",\"door\":\"d\",\"event\":\"command\",\"kind\":\"stop\",\"signal\":9,\"source\":\"10.0.0.1\",\"success\":false,\"time\":\"2026-11-21T04:50:33Z\"}\n"
    );
}

// ----- time-based (TOTP) doors --------------------------------------------------------

const TOTP_CONF: &str = "[t]\nsequence = 40000,50000\ntotp_secret = \
                         GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\nstart_command = open %IP%\n\
                         stop_command = close %IP%\ncmd_timeout = 5\n";

fn totp_running(conf: &str) -> (RunningConfig, Totp) {
    let running = running(Config::parse(conf).unwrap().config);
    let totp = running.totp[0].totp.clone();
    (running, totp)
}

/// A core serving [`TOTP_CONF`], started at `at(0)` with `spent` restored.
fn totp_core(spent: Vec<SpentCode>) -> (Core, Totp) {
    let (running, totp) = totp_running(TOTP_CONF);
    let mut core = Core::new(running, options());
    core.handle_restore_spent(at(0), spent);
    (core, totp)
}

/// Knocks the code of step `counter` from `source`, starting at `time`; the effects.
fn knock_code(
    core: &mut Core,
    totp: &Totp,
    time: Time,
    source: IpAddr,
    counter: u64,
) -> Vec<Effect> {
    for (n, knock) in totp.sequence_for_counter(counter).iter().enumerate() {
        let t = Time {
            instant: time.instant + Duration::from_millis(n as u64),
            ..time
        };
        core.handle_packet(t, &syn(t, source, knock.port));
    }
    effects(core)
}

fn opened(out: &[Effect]) -> bool {
    out.iter()
        .any(|e| matches!(e, Effect::Log(Record::Open { .. })))
}

fn code_used(out: &[Effect]) -> bool {
    out.iter()
        .any(|e| matches!(e, Effect::Log(Record::CodeUsed { .. })))
}

fn spent(counter: u64) -> SpentCode {
    SpentCode {
        door: "t".into(),
        code_step: counter,
    }
}

#[test]
fn a_totp_code_opens_once_and_is_persisted_before_its_start_command() {
    let (mut core, totp) = totp_core(Vec::new());
    let now = totp.counter_at(UNIX0);
    let out = knock_code(&mut core, &totp, at(100), ip(1), now);
    assert!(opened(&out), "{out:?}");
    let persisted = out
        .iter()
        .position(|e| *e == Effect::PersistSpentCodes(vec![spent(now)]))
        .expect("spent code persisted");
    let start = out
        .iter()
        .position(|e| matches!(e, Effect::RunJob(job) if job.kind == CommandKind::Start))
        .expect("start job");
    assert!(persisted < start, "{out:?}");
    // The same code again, from another source: logged, nothing runs.
    let out = knock_code(&mut core, &totp, at(200), ip(2), now);
    assert!(code_used(&out) && !opened(&out), "{out:?}");
    assert!(
        !out.iter().any(|e| matches!(e, Effect::RunJob(_))),
        "{out:?}"
    );
    let line = out
        .iter()
        .find_map(|e| match e {
            Effect::Log(r @ Record::CodeUsed { .. }) => Some(r.display(None).to_string()),
            _ => None,
        })
        .unwrap();
    assert_eq!(line, "10.0.0.2: t: code already used");
    // The previous step's code (window 1) opens; two steps back does not.
    assert!(opened(&knock_code(
        &mut core,
        &totp,
        at(300),
        ip(3),
        now - 1
    )));
    let out = knock_code(&mut core, &totp, at(400), ip(4), now - 2);
    assert!(!opened(&out) && !code_used(&out), "{out:?}");
    assert_eq!(core.spent_codes(), [spent(now - 1), spent(now)]);
}

#[test]
fn the_next_totp_step_boundary_is_a_timeout_and_moves_the_window() {
    let (mut core, totp) = totp_core(vec![spent(totp_counter() - 5)]);
    let now = totp.counter_at(UNIX0);
    // The restored code is outside the window: forgotten (and the file rewritten).
    assert!(core.spent_codes().is_empty());
    let boundary = totp.next_step_boundary(UNIX0);
    let expected = Instant::from_secs(boundary - UNIX0);
    assert_eq!(core.poll_timeout(), Some(expected));
    assert!(opened(&knock_code(&mut core, &totp, at(0), ip(1), now)));
    // One step later the code is still in the window (as a past step): still spent.
    let later = at((boundary - UNIX0) * 1000);
    core.handle_timeout(later);
    effects(&mut core);
    assert_eq!(
        core.poll_timeout(),
        Some(expected + Duration::from_secs(30))
    );
    assert!(code_used(&knock_code(&mut core, &totp, later, ip(2), now)));
    // Two steps later it left the window: forgotten, bounded.
    let after = at((boundary + 30 - UNIX0) * 1000);
    core.handle_timeout(after);
    assert!(effects(&mut core).contains(&Effect::PersistSpentCodes(Vec::new())));
    assert!(core.spent_codes().is_empty());
}

fn totp_counter() -> u64 {
    UNIX0 / 30
}

#[test]
fn spent_totp_codes_survive_restart_and_reload() {
    let now = totp_counter();
    // Restart: restored from the state file.
    let (mut core, totp) = totp_core(vec![spent(now)]);
    assert!(code_used(&knock_code(&mut core, &totp, at(10), ip(1), now)));
    // Reload: the same door keeps its spent codes.
    let (running, _) = totp_running(TOTP_CONF);
    core.handle_reload(at(20), running);
    effects(&mut core);
    assert!(code_used(&knock_code(&mut core, &totp, at(30), ip(1), now)));
    assert!(opened(&knock_code(
        &mut core,
        &totp,
        at(40),
        ip(1),
        now + 1
    )));
}

#[test]
fn a_totp_door_filter_covers_its_port_ranges() {
    let (mut core, _) = totp_core(Vec::new());
    core.handle_local_addresses(vec![IpAddr::from(SERVER)]);
    let filter = effects(&mut core)
        .into_iter()
        .find_map(|e| match e {
            Effect::SetFilter(f) => Some(f),
            _ => None,
        })
        .unwrap();
    assert!(filter.contains("portrange 40000-40999"), "{filter}");
    assert!(filter.contains("portrange 50000-50999"), "{filter}");
}

#[test]
fn a_totp_window_moves_exactly_at_the_step_boundary() {
    // Window 0: only the current step's code opens, so the switch is visible to the
    // microsecond.
    let conf = TOTP_CONF.replace("[t]\n", "[t]\ntotp_window = 0\n");
    let (running, totp) = totp_running(&conf);
    let mut core = Core::new(running, options());
    // Started 700 ms into a second: the wall clock's whole seconds are 700 ms behind.
    let start = at(700);
    core.handle_restore_spent(start, Vec::new());
    effects(&mut core);
    let boundary = totp.next_step_boundary(UNIX0);
    let boundary_ms = (boundary - UNIX0) * 1000;
    // Woken at the boundary itself, not when the next whole second is read after it.
    assert_eq!(core.poll_timeout(), Some(Instant::from_millis(boundary_ms)));
    let old = totp.counter_at(UNIX0);
    let just_before = Time {
        instant: Instant::from_micros(boundary_ms * 1000 - 1),
        unix_secs: boundary - 1,
        unix_nanos: 999_999_000,
    };
    // 1 µs before the boundary the new step's code does not open; the old one does.
    core.handle_timeout(just_before);
    effects(&mut core);
    let knock_at = |core: &mut Core, time: Time, source, counter| {
        for knock in totp.sequence_for_counter(counter) {
            core.handle_packet(time, &syn(time, source, knock.port));
        }
        effects(core)
    };
    assert!(!opened(&knock_at(&mut core, just_before, ip(1), old + 1)));
    assert!(opened(&knock_at(&mut core, just_before, ip(2), old)));
    // At the boundary (the timeout asked for) the window has moved.
    let exactly = at(boundary_ms);
    core.handle_timeout(exactly);
    effects(&mut core);
    assert_eq!(
        core.totp_boundary.map(|(_, wake)| wake),
        Some(Instant::from_millis(boundary_ms + 30_000)),
        "the next boundary, exactly one step later"
    );
    assert!(opened(&knock_at(&mut core, exactly, ip(3), old + 1)));
    assert!(!opened(&knock_at(&mut core, exactly, ip(4), old)));
}

#[test]
fn a_wall_clock_behind_the_boundary_reschedules_the_wake_up_instead_of_spinning() {
    let (mut core, totp) = totp_core(Vec::new());
    let boundary = totp.next_step_boundary(UNIX0);
    let due = core.poll_timeout().unwrap();
    assert_eq!(due, Instant::from_secs(boundary - UNIX0));
    // Woken at the instant, but the wall clock was set back by 10 s meanwhile.
    let behind = Time {
        instant: due,
        unix_secs: boundary - 10,
        unix_nanos: 0,
    };
    core.handle_timeout(behind);
    effects(&mut core);
    assert_eq!(
        core.poll_timeout(),
        Some(due + Duration::from_secs(10)),
        "the next wake-up is when the wall clock reaches the boundary"
    );
}

/// The TOTP refusals among `effects`.
fn refusals(out: &[Effect]) -> Vec<&Record> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Log(r @ Record::CodeRefused { .. }) => Some(r),
            _ => None,
        })
        .collect()
}

/// Knocks `code` (not necessarily any step's) on [`TOTP_CONF`]'s bases from `source`.
fn knock_value(
    core: &mut Core,
    time: Time,
    source: IpAddr,
    code: knock_core::totp::Code,
) -> Vec<Effect> {
    let bases = [Knock::tcp(40000), Knock::tcp(50000)];
    for (n, knock) in knock_core::totp::code_to_sequence(code, &bases)
        .unwrap()
        .iter()
        .enumerate()
    {
        let t = Time {
            instant: time.instant + Duration::from_millis(n as u64),
            ..time
        };
        core.handle_packet(t, &syn(t, source, knock.port));
    }
    effects(core)
}

#[test]
fn stale_future_and_wrong_codes_are_logged_as_such_and_never_open() {
    let (mut core, totp) = totp_core(Vec::new());
    let now = totp.counter_at(UNIX0);
    let time = jiff::Timestamp::from_second(1_795_000_000).unwrap();

    // Three steps back (window 1): stale.
    let out = knock_code(&mut core, &totp, at(100), ip(1), now - 3);
    assert!(!opened(&out) && !code_used(&out), "{out:?}");
    let refused = refusals(&out);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(
        refused[0].to_string(),
        "10.0.0.1: t: stale code (3 steps old)"
    );
    assert_eq!(refused[0].level(), Level::Event);
    assert_eq!(
        refused[0].json(time, None).unwrap().to_line(),
        format!(
            "{{\"code_step\":{},\"door\":\"t\",\"event\":\"code_refused\",\"offset\":-3,\
             \"reason\":\"stale\",\"source\":\"10.0.0.1\",\"time\":\"2026-11-18T11:06:40Z\"}}\n",
            now - 3
        )
    );
    // Two steps ahead: future.
    let out = knock_code(&mut core, &totp, at(200), ip(2), now + 2);
    assert!(!opened(&out), "{out:?}");
    let refused = refusals(&out);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(
        refused[0].to_string(),
        "10.0.0.2: t: future code (2 steps ahead)"
    );
    let json = refused[0].json(time, None).unwrap().to_line();
    assert!(
        json.contains("\"reason\":\"future\"") && json.contains("\"offset\":2"),
        "{json}"
    );
    // A code no step near now has: wrong; neither the line nor the event shows any code.
    let nearby: Vec<_> = (now - 12..=now + 12)
        .map(|c| totp.code_for_counter(c))
        .collect();
    let wrong = (0..1_000_000)
        .map(|v| knock_core::totp::Code::new(v, 6))
        .find(|c| !nearby.contains(c))
        .unwrap();
    let out = knock_value(&mut core, at(300), ip(3), wrong);
    assert!(!opened(&out), "{out:?}");
    let refused = refusals(&out);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0].to_string(), "10.0.0.3: t: wrong code");
    let json = refused[0].json(time, None).unwrap().to_line();
    assert!(
        json.contains("\"reason\":\"wrong\"") && !json.contains("offset"),
        "{json}"
    );
    let current = totp.code_for_counter(now).to_string();
    for text in [refused[0].to_string(), json] {
        assert!(!text.contains(&current), "{text}");
    }

    // Codes of the window are the matcher's: it opens, then says the code was used; the
    // tracker adds nothing (no line twice).
    let out = knock_code(&mut core, &totp, at(400), ip(4), now);
    assert!(opened(&out) && refusals(&out).is_empty(), "{out:?}");
    let out = knock_code(&mut core, &totp, at(500), ip(5), now);
    assert!(code_used(&out) && refusals(&out).is_empty(), "{out:?}");
    let out = knock_code(&mut core, &totp, at(600), ip(6), now + 1);
    assert!(opened(&out) && refusals(&out).is_empty(), "{out:?}");
    // Beyond the classification range (window + 10 steps): wrong, whatever it once was.
    let out = knock_code(&mut core, &totp, at(700), ip(7), now - 12);
    assert_eq!(
        lines(
            &refusals(&out)
                .into_iter()
                .map(|r| Effect::Log(r.clone()))
                .collect::<Vec<_>>()
        ),
        ["10.0.0.7: t: wrong code"]
    );
}

#[test]
fn a_stale_code_is_told_by_the_window_of_the_time_it_completes() {
    let (mut core, totp) = totp_core(Vec::new());
    let now = totp.counter_at(UNIX0);
    let boundary_ms = (totp.next_step_boundary(UNIX0) - UNIX0) * 1000;
    // The previous step's code opens now (window 1)…
    let out = knock_code(&mut core, &totp, at(100), ip(1), now - 1);
    assert!(opened(&out) && refusals(&out).is_empty(), "{out:?}");
    // …and one step later it is stale (2 steps old), from another source.
    let later = at(boundary_ms);
    core.handle_timeout(later);
    effects(&mut core);
    let out = knock_code(&mut core, &totp, later, ip(2), now - 1);
    assert_eq!(
        refusals(&out)
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["10.0.0.2: t: stale code (2 steps old)"]
    );
    // In a burst too.
    let first = totp.sequence_for_counter(now - 1);
    let burst: Vec<PacketEvent> = first
        .iter()
        .enumerate()
        .map(|(n, k)| syn(at(boundary_ms + 10 + n as u64), ip(3), k.port))
        .collect();
    core.handle_packets(at(boundary_ms + 20), &burst);
    let out = effects(&mut core);
    assert_eq!(
        refusals(&out)
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["10.0.0.3: t: stale code (2 steps old)"]
    );
}

#[test]
fn an_unchanged_filter_is_not_installed_again() {
    // Reinstalling a filter drops the packets that arrive meanwhile; the addresses are
    // reported again at startup and when an IPv6 address stops being tentative.
    let mut core = new_core("[d]\nsequence = 7000\ncommand = open %IP%\n");
    core.handle_local_addresses(vec![ip(2)]);
    assert!(matches!(&effects(&mut core)[..], [Effect::SetFilter(_)]));
    core.handle_local_addresses(vec![ip(2)]);
    assert_eq!(effects(&mut core), []);
    let (running, _) = totp_running(TOTP_CONF);
    core.handle_reload(at(0), running);
    assert!(
        effects(&mut core)
            .iter()
            .any(|e| matches!(e, Effect::SetFilter(f) if f.contains("40000-40999"))),
        "a changed configuration changes the filter"
    );
    core.handle_local_addresses(vec![ip(2), ip(3)]);
    assert!(matches!(&effects(&mut core)[..], [Effect::SetFilter(f)] if f.contains("10.0.0.3")));
}

#[test]
fn flood_lines_are_appended_with_the_bytes_of_display() {
    use crate::logging::LogLine as _;
    let sources: [IpAddr; 5] = [
        "0.0.0.0".parse().unwrap(),
        "255.255.255.255".parse().unwrap(),
        "10.20.3.100".parse().unwrap(),
        "1.0.99.9".parse().unwrap(),
        "fd00::1".parse().unwrap(),
    ];
    let mut checked = 0;
    for source in sources {
        for stage in [0, 1, 9, 10, 99, 100, 123_456_789, usize::MAX] {
            for door in ["openSSH", "", "two\nlines "] {
                let records = [
                    Record::Stage {
                        door: door.into(),
                        source,
                        stage,
                    },
                    Record::Timeout {
                        door: door.into(),
                        source,
                        stage,
                    },
                    Record::Invalidated {
                        door: door.into(),
                        source,
                        stage,
                    },
                    Record::Close {
                        door: door.into(),
                        source,
                    },
                ];
                for record in &records {
                    for host in [None, Some("host.example"), Some("")] {
                        let line = record.display(host);
                        let mut out = b"before".to_vec();
                        line.append_to(&mut out);
                        assert_eq!(
                            String::from_utf8(out).unwrap(),
                            format!("before{line}"),
                            "{record:?} {host:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 8 * 3 * 4 * 3);
}

/// A live daemon wakes for `seq_timeout` expiries on `EXPIRY_TICK` boundaries (under a
/// flood, many expire at once), for a stop command on time; the late expiry is still logged
/// and a knock completed after its `seq_timeout` still does not open.
#[test]
fn the_wakeup_rounds_expiries_up_to_the_tick_but_not_stop_commands() {
    let conf = "[flood]\nsequence = 7000,8000\nseq_timeout = 5\ncommand = open %IP%\n\n\
                [one]\nsequence = 9000\ncmd_timeout = 3\nstart_command = open %IP%\n\
                stop_command = close %IP%\n";
    let mut core = new_core(conf);
    core.handle_packet(at(1_234), &syn(at(1_234), ip(1), 7000));
    assert_eq!(lines(&effects(&mut core)), ["10.0.0.1: flood: Stage 1"]);
    assert_eq!(core.poll_timeout(), Some(Instant::from_millis(6_234)));
    assert_eq!(core.poll_wakeup(), Some(Instant::from_millis(6_300)));

    core.handle_packet(at(2_001), &syn(at(2_001), ip(2), 9000));
    assert_eq!(jobs(&effects(&mut core)).len(), 1);
    assert_eq!(core.poll_wakeup(), Some(Instant::from_millis(5_001)));
    core.handle_timeout(at(5_001));
    assert_eq!(
        lines(&effects(&mut core)),
        ["10.0.0.2: one: command timeout"]
    );
    assert_eq!(core.poll_wakeup(), Some(Instant::from_millis(6_300)));

    // The second step comes after the seq_timeout, before the rounded wake-up: refused.
    core.handle_packet(at(6_250), &syn(at(6_250), ip(1), 8000));
    let out = effects(&mut core);
    assert!(jobs(&out).is_empty(), "{out:?}");
    assert_eq!(lines(&out), ["10.0.0.1: flood: sequence timeout (stage 1)"]);
    assert_eq!(core.poll_wakeup(), None);

    // Alone, the expiry is logged at the tick.
    core.handle_packet(at(7_010), &syn(at(7_010), ip(3), 7000));
    effects(&mut core);
    assert_eq!(core.poll_wakeup(), Some(Instant::from_millis(12_100)));
    core.handle_timeout(at(12_100));
    assert_eq!(
        lines(&effects(&mut core)),
        ["10.0.0.3: flood: sequence timeout (stage 1)"]
    );
}
