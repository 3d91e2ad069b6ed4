//! Stage times of a real open (issue 14): the open's JSON event carries the capture and
//! decision times, the `started` event the spawn time too, in order, and `-D` prints them.
//! Behaviour only: no duration is asserted.

use crate::fixture::{Net, is_json_event, json_events, read, wait_json_event, wait_lines};

fn micros(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
}

fn unix_micros_now() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(now.as_micros()).unwrap()
}

#[test]
#[ignore = "needs root"]
fn an_open_reports_capture_decision_and_spawn_times_in_order() {
    let net = Net::new();
    let dir = net.dir_str();
    let events = net.path("events.json");
    let config = format!(
        "[stages]\n\
         \tsequence      = 7000,8000\n\
         \tseq_timeout   = 5\n\
         \ttcpflags      = syn\n\
         \tstart_command = echo %IP% >> {dir}/opened\n"
    );
    let before = unix_micros_now();
    let d = net.start_knockd(&config, &["--json-log", events.to_str().unwrap(), "-D"]);
    net.knock(&net.srv4, "7000,8000");
    wait_lines(&net.path("opened"), 1, "2-step knock");
    wait_json_event(&events, &net.cli4, "stages", "started");
    let after = unix_micros_now();

    let all = json_events(&events);
    let find = |kind: &str| {
        all.iter()
            .find(|v| is_json_event(v, &net.cli4, "stages", kind))
            .unwrap_or_else(|| panic!("no {kind:?} event:\n{}", read(&events)))
            .clone()
    };
    let open = find("open");
    let started = find("started");
    let (captured, decided) = (micros(&open, "captured_us"), micros(&open, "decided_us"));
    let spawned = micros(&started, "spawned_us");
    assert!(
        captured <= decided && decided <= spawned,
        "stages out of order: {open} {started}"
    );
    // The started event repeats the open's times, and its durations are their differences.
    assert_eq!(micros(&started, "captured_us"), captured);
    assert_eq!(micros(&started, "decided_us"), decided);
    assert_eq!(
        micros(&started, "capture_to_decision_us"),
        decided - captured
    );
    assert_eq!(micros(&started, "decision_to_spawn_us"), spawned - decided);
    assert_eq!(micros(&started, "capture_to_spawn_us"), spawned - captured);
    assert_eq!(
        open["capture_to_decision_us"],
        started["capture_to_decision_us"]
    );
    assert_eq!(started["kind"], "start");
    assert!(micros(&started, "pid") > 0, "{started}");
    // Wall-clock times: within this test's run (a minute's slack for clock adjustments).
    let slack = 60_000_000;
    assert!(
        captured + slack >= before && spawned <= after + slack,
        "times not Unix µs of now: {before}..{after} vs {open} {started}"
    );

    // -D prints them too.
    let out = d.stdout();
    for needle in [
        format!("{}: stages: open: captured ", net.cli4),
        format!("{}: stages: start command started (pid ", net.cli4),
        "µs after capture".to_owned(),
    ] {
        assert!(out.contains(&needle), "stdout lacks {needle:?}:\n{out}");
    }
}
