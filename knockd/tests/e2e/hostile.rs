//! Hostile input at run time: commands that fail, hang or flood their output, and a
//! spoofed-source flood against a door's first port.

use std::process::Stdio;
use std::time::Duration;

use crate::fixture::{Net, read, vm_hwm_kib, wait_contains, wait_lines, wait_until};

#[test]
#[ignore = "needs root"]
fn failing_hanging_and_flooding_commands_do_not_disturb_the_next_knock() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[fail]\n\
         sequence = 7000,7010\n\
         command = exit 3\n\
         [hang]\n\
         sequence = 7100,7110\n\
         command = sleep 1000\n\
         [flood]\n\
         sequence = 7200,7210\n\
         command = yes | head -c 10000000\n\
         [ok]\n\
         sequence = 7300,7310\n\
         command = echo ok %IP% >> {dir}/opened\n"
    );
    let mut d = net.start_knockd(&config, &[]);
    let opened = net.path("opened");
    let log = net.path("log");

    net.knock(&net.srv4, "7000,7010");
    wait_contains(&log, "fail: command returned non-zero status code (3)");
    net.knock(&net.srv4, "7300,7310");
    wait_lines(&opened, 1, "after a failing command");

    net.knock(&net.srv4, "7100,7110");
    wait_contains(&log, "hang: running command: sleep 1000");
    net.knock(&net.srv4, "7300,7310");
    wait_lines(&opened, 2, "while a command hangs");

    net.knock(&net.srv4, "7200,7210");
    wait_contains(&log, "flood: running command: yes");
    net.knock(&net.srv4, "7300,7310");
    wait_lines(&opened, 3, "after a command flooding stdout");

    // And again, all three at once before the good knock.
    net.knock(&net.srv4, "7000,7010,7100,7110,7200,7210,7300,7310");
    let got = wait_lines(&opened, 4, "after all three at once");
    assert!(
        got.iter().all(|l| *l == format!("ok {}", net.cli4)),
        "{got:?}"
    );
    assert!(d.alive(), "knockd died:\n{}", d.stderr());
}

#[test]
#[ignore = "needs root"]
fn a_spoofed_source_flood_neither_kills_nor_bloats_knockd() {
    const PACKETS: &str = "100000";
    const MAX_HWM_KIB: u64 = 64 * 1024;
    const MAX_GROWTH_KIB: u64 = 12 * 1024;
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[door]\n\
         sequence = 7000,8000,9000\n\
         tcpflags = syn\n\
         command = echo door %IP% >> {dir}/opened\n"
    );
    // -v is left out: 100 000 `Stage 1` lines on a pipe would only measure the pipe.
    net.write("knockd.conf", &config);
    let mut args = net.knockd_args(&["--max-sources", "1000"]);
    args.retain(|a| a != "-v");
    let mut d = net.spawn_knockd(&args);
    d.wait_listening(&net.path("log"), 0);
    let opened = net.path("opened");
    let baseline_kib = vm_hwm_kib(d.pid);

    // Random spoofed sources, SYNs to the first port, as fast as hping3 goes.
    let mut flood = net.cmd_in(&net.cli, "hping3");
    flood
        .args([
            "-q",
            "--rand-source",
            "-S",
            "-p",
            "7000",
            "-c",
            PACKETS,
            "-i",
            "u10",
        ])
        .arg(&net.srv4)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut flood = flood.spawn().expect("spawn hping3");

    // A legitimate knock while the flood runs (retried: 1000 tracked sources are a few
    // milliseconds of flood, and the oldest are evicted first).
    let during = wait_until(Duration::from_secs(30), || {
        net.knock_fast(&net.srv4, "7000,8000,9000");
        let done = wait_until(Duration::from_millis(300), || {
            (!read(&opened).is_empty()).then_some(())
        });
        let flood_over = flood.try_wait().ok().flatten().is_some();
        match (done, flood_over) {
            (Some(()), _) => Some(true),
            (None, true) => Some(false),
            (None, false) => None,
        }
    });
    let flood_status = wait_until(Duration::from_secs(60), || flood.try_wait().ok().flatten())
        .expect("hping3 flood did not finish");
    assert!(flood_status.code().is_some(), "hping3 was killed");
    assert!(d.alive(), "knockd died under the flood:\n{}", d.stderr());

    // After the flood, a knock opens for sure.
    let before = crate::fixture::lines(&opened).len();
    net.knock(&net.srv4, "7000,8000,9000");
    wait_lines(&opened, before + 1, "knock after the flood");
    assert_eq!(
        during,
        Some(true),
        "no legitimate knock opened while the flood ran (it was still running)"
    );

    // The flood did reach knockd: many spoofed sources got to stage 1.
    let spoofed_stages = read(&net.path("log"))
        .lines()
        .filter(|l| l.ends_with(": door: Stage 1") && !l.contains(&net.cli4))
        .count();
    assert!(
        spoofed_stages >= 1000,
        "only {spoofed_stages} spoofed knocks reached knockd: the flood did not happen"
    );

    let hwm = vm_hwm_kib(d.pid);
    eprintln!(
        "flood: {spoofed_stages} spoofed stage-1 knocks logged, knockd VmHWM {baseline_kib} KiB \
         before, {hwm} KiB after"
    );
    // 100 000 tracked sources take tens of MiB; 1000 must not.
    assert!(
        hwm.saturating_sub(baseline_kib) < MAX_GROWTH_KIB,
        "knockd's peak RSS grew by {} KiB (from {baseline_kib} KiB) with --max-sources 1000",
        hwm.saturating_sub(baseline_kib)
    );
    assert!(
        hwm < MAX_HWM_KIB,
        "knockd's peak RSS {hwm} KiB exceeds {MAX_HWM_KIB} KiB with --max-sources 1000"
    );
    assert!(d.alive());
}
