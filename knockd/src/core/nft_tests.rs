//! nftables set doors in the core: the element is asked for right after the open and before
//! the start command, its record is logged before that command, and nothing is scheduled for
//! it (the kernel expires it). Virtual clock, no root, no I/O.

use std::net::IpAddr;
use std::time::Duration;

use knock_core::{NftFamily, NftSetRef, PacketEvent, TcpFlags};

use super::test_support::{at, new_core};
use super::*;

fn v4(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn v6(last: u16) -> IpAddr {
    IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, last])
}

fn syn(time: Time, source: IpAddr, port: u16) -> PacketEvent {
    let server = match source {
        IpAddr::V4(_) => IpAddr::from([10, 0, 0, 2]),
        IpAddr::V6(_) => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 2]),
    };
    PacketEvent::tcp(time.instant, source, server, port, TcpFlags::SYN)
}

fn set(name: &str) -> NftSetRef {
    NftSetRef::new(NftFamily::Inet, "knockd", name)
}

/// What a driver does, as a list: `log: LINE`, `add: SET ADDR MILLIS`, `persist`, `run:
/// COMMAND`, each set element reported with `result` at once.
fn drive(core: &mut Core, result: &dyn Fn(&SetElementAdd) -> Result<(), String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(effect) = core.poll_effect() {
        match effect {
            Effect::Log(record) => out.push(format!("log: {record}")),
            Effect::AddSetElement(add) => {
                out.push(format!(
                    "add: {} {} {}",
                    add.set,
                    add.address,
                    add.timeout.as_millis()
                ));
                let r = result(&add);
                core.handle_set_element_added(add, r);
            }
            Effect::PersistStop { .. } => out.push("persist".into()),
            Effect::RunJob(job) => out.push(format!("run: {}", job.command)),
            _ => {}
        }
    }
    out
}

const BOTH: &str = "[ssh]\nsequence = 7000\ncmd_timeout = 30\n\
                    nft_set = inet knockd ssh4\nnft_set_6 = inet knockd ssh6\n\
                    start_command = open %IP%\nstop_command = close %IP%\n";

#[test]
fn the_element_is_added_before_the_start_command_and_logged_before_it() {
    let mut core = new_core(BOTH);
    core.handle_packet(at(0), &syn(at(0), v4(1), 7000));
    let out = drive(&mut core, &|_| Ok(()));
    assert_eq!(
        out,
        [
            "log: 10.0.0.1: ssh: Stage 1",
            "log: 10.0.0.1: ssh: OPEN SESAME",
            "add: inet knockd ssh4 10.0.0.1 30000",
            "log: 10.0.0.1: ssh: added to nftables set inet knockd ssh4 for 30s",
            "persist",
            "run: open 10.0.0.1",
        ]
    );
}

#[test]
fn an_ipv6_knocker_goes_into_the_ipv6_set() {
    let mut core = new_core(BOTH);
    core.handle_packet(at(0), &syn(at(0), v6(1), 7000));
    let out = drive(&mut core, &|_| Ok(()));
    assert!(
        out.contains(&"add: inet knockd ssh6 fd00::1 30000".to_owned()),
        "{out:?}"
    );
    assert!(
        out.contains(&"log: fd00::1: ssh: added to nftables set inet knockd ssh6 for 30s".into()),
        "{out:?}"
    );
}

#[test]
fn a_family_without_a_set_adds_nothing() {
    let conf = "[ssh]\nsequence = 7000\ncmd_timeout = 5\nnft_set = inet knockd ssh4\n";
    let mut core = new_core(conf);
    core.handle_packet(at(0), &syn(at(0), v6(1), 7000));
    let out = drive(&mut core, &|_| panic!("no set for IPv6 knockers"));
    assert_eq!(
        out,
        [
            "log: fd00::1: ssh: Stage 1",
            "log: fd00::1: ssh: OPEN SESAME"
        ]
    );
}

#[test]
fn a_failure_is_an_error_for_that_knock_and_the_command_still_runs() {
    let mut core = new_core(BOTH);
    core.handle_packet(at(0), &syn(at(0), v4(1), 7000));
    let out = drive(&mut core, &|_| Err("no such table or set".into()));
    assert_eq!(
        out[2..],
        [
            "add: inet knockd ssh4 10.0.0.1 30000",
            "log: error: 10.0.0.1: ssh: cannot add to nftables set inet knockd ssh4: no such table or set",
            "persist",
            "run: open 10.0.0.1",
        ]
    );
    // The core goes on: the next knock adds again.
    core.handle_packet(at(1_000), &syn(at(1_000), v4(2), 7000));
    let out = drive(&mut core, &|_| Ok(()));
    assert!(
        out.contains(&"add: inet knockd ssh4 10.0.0.2 30000".to_owned()),
        "{out:?}"
    );
}

#[test]
fn a_set_only_door_schedules_nothing_and_leaves_nothing_at_shutdown() {
    let conf = "[ssh]\nsequence = 7000\ncmd_timeout = 2\nnft_set = inet knockd ssh4\n";
    let mut core = new_core(conf);
    core.handle_packet(at(0), &syn(at(0), v4(1), 7000));
    let out = drive(&mut core, &|_| Ok(()));
    assert_eq!(
        out,
        [
            "log: 10.0.0.1: ssh: Stage 1",
            "log: 10.0.0.1: ssh: OPEN SESAME",
            "add: inet knockd ssh4 10.0.0.1 2000",
            "log: 10.0.0.1: ssh: added to nftables set inet knockd ssh4 for 2s",
        ]
    );
    assert_eq!(core.poll_timeout(), None, "no stop for the set part");
    core.handle_timeout(at(2_000));
    assert!(drive(&mut core, &|_| Ok(())).is_empty());
    // A repeated knock asks again (the driver restarts the element's timeout).
    core.handle_packet(at(2_500), &syn(at(2_500), v4(1), 7000));
    let out = drive(&mut core, &|_| Ok(()));
    assert!(
        out.contains(&"add: inet knockd ssh4 10.0.0.1 2000".to_owned()),
        "{out:?}"
    );
    for run_pending_stops in [true, false] {
        core.handle_shutdown(run_pending_stops);
        assert!(drive(&mut core, &|_| Ok(())).is_empty());
    }
}

#[test]
fn set_records_are_events_and_errors_with_json() {
    let add = SetElementAdd {
        door: "ssh".into(),
        set: set("ssh4"),
        address: v4(1),
        timeout: Duration::from_millis(1_500),
        opened: None,
    };
    let added = Record::SetElementAdded {
        add: Box::new(add.clone()),
        written_us: None,
    };
    let failed = Record::SetElementFailed {
        add: Box::new(add),
        error: "permission denied (CAP_NET_ADMIN is needed)".into(),
    };
    assert_eq!(added.level(), Level::Event);
    assert_eq!(failed.level(), Level::Error);
    assert_eq!(
        added.display(Some("h")).to_string(),
        "10.0.0.1 (h): ssh: added to nftables set inet knockd ssh4 for 1s 500ms"
    );
    let time = "2026-11-21T04:50:33Z".parse().unwrap();
    assert_eq!(
        added.json(time, None).unwrap().to_line(),
        "{\"door\":\"ssh\",\"event\":\"nft\",\"family\":\"inet\",\"set\":\"ssh4\",\"source\":\"10.0.0.1\",\"success\":true,\"table\":\"knockd\",\"time\":\"2026-11-21T04:50:33Z\",\"timeout_ms\":1500}\n"
    );
    assert_eq!(
        failed.json(time, Some("h")).unwrap().to_line(),
        "{\"door\":\"ssh\",\"error\":\"permission denied (CAP_NET_ADMIN is needed)\",\"event\":\"nft\",\"family\":\"inet\",\"host\":\"h\",\"set\":\"ssh4\",\"source\":\"10.0.0.1\",\"success\":false,\"table\":\"knockd\",\"time\":\"2026-11-21T04:50:33Z\",\"timeout_ms\":1500}\n"
    );
}
