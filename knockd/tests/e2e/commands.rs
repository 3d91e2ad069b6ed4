//! How commands run: start before stop for the same door and source, no descriptors of the
//! daemon leaking into them (0.8 bug B11), and no zombies left behind.

use std::collections::BTreeMap;
use std::fs;

use crate::fixture::{DEADLINE, Net, read, wait_contains, wait_lines, wait_until};

#[test]
#[ignore = "needs root"]
fn start_and_stop_never_run_out_of_order() {
    let net = Net::new();
    let dir = net.dir_str();
    // The start command is slow and cmd_timeout is 0: the stop is due before the start
    // has finished, and must still come after it.
    let config = format!(
        "[d]\n\
         sequence = 7000,8000\n\
         cmd_timeout = 0\n\
         start_command = sleep 1; echo start %IP% >> {dir}/order\n\
         stop_command = echo stop %IP% >> {dir}/order\n"
    );
    let _d = net.start_knockd(&config, &[]);
    net.knock(&net.srv4, "7000,8000");
    let got = wait_lines(&net.path("order"), 2, "start and stop");
    assert_eq!(
        got,
        [format!("start {}", net.cli4), format!("stop {}", net.cli4)]
    );
}

#[test]
#[ignore = "needs root"]
fn commands_inherit_no_descriptors_of_the_daemon() {
    let net = Net::new();
    let dir = net.dir_str();
    let ots = net.write("ots", " 7100,8100\n 7200,8200\n");
    let config = format!(
        "[d]\n\
         sequence = 7000,8000\n\
         command = ls -l /proc/self/fd/ > {dir}/fds 2>&1\n\
         [ots]\n\
         one_time_sequences = {ots}\n\
         command = true\n",
        ots = ots.display()
    );
    let events = net.path("events.json");
    let _d = net.start_knockd(&config, &["--json-log", events.to_str().unwrap()]);
    net.knock(&net.srv4, "7000,8000");
    wait_contains(&net.path("fds"), "total");
    // `ls` has its own stdin/stdout/stderr and the directory it reads; anything else came
    // from knockd.
    let fds = read(&net.path("fds"));
    for leaked in [
        "socket:",
        "anon_inode:",
        &format!("{dir}/log"),
        &format!("{dir}/state"),
        &format!("{dir}/ots"),
        &format!("{dir}/events.json"),
        &format!("{dir}/knockd.conf"),
    ] {
        assert!(
            !fds.contains(leaked),
            "command inherited {leaked:?}:\n{fds}"
        );
    }
}

/// The ids of `pid`'s children that are zombies.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut zombies = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) STATE PPID …": split after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            zombies.push(child);
        }
    }
    zombies
}

#[test]
#[ignore = "needs root"]
fn finished_commands_are_reaped() {
    let net = Net::new();
    let dir = net.dir_str();
    let config = format!(
        "[d]\n\
         sequence = 7000,8000\n\
         cmd_timeout = 0\n\
         start_command = echo %IP% >> {dir}/opened\n\
         stop_command = exit 1\n"
    );
    let d = net.start_knockd(&config, &[]);
    for n in 1..=5 {
        net.knock(&net.srv4, "7000,8000");
        wait_lines(&net.path("opened"), n, "knock");
    }
    // Every stop command has finished (and was waited for: its status is logged).
    let log = net.path("log");
    let stops = wait_until(DEADLINE, || {
        (crate::fixture::count(&log, "command returned non-zero status code (1)") >= 5)
            .then_some(())
    });
    assert!(
        stops.is_some(),
        "not every stop command ran:\n{}",
        read(&log)
    );
    let reaped = wait_until(DEADLINE, || zombie_children(d.pid).is_empty().then_some(()));
    assert!(
        reaped.is_some(),
        "zombie children of knockd: {:?}",
        zombie_children(d.pid)
    );
}

#[test]
#[ignore = "needs root"]
fn signals_to_a_command_do_not_reach_the_daemon_or_lose_the_stop() {
    let net = Net::new();
    let dir = net.dir_str();
    // The start command records its shell's pid and then waits; signalling that shell must
    // neither stop nor reload the daemon (0.8 bug B2: the child ran the daemon's handlers
    // and the stop command was lost), and the stop command still runs.
    let config = format!(
        "[d]\n\
         sequence = 7000,8000\n\
         cmd_timeout = 1\n\
         start_command = echo $$ > {dir}/child.%IP%; sleep 30\n\
         stop_command = echo close %IP% >> {dir}/closed\n"
    );
    let mut d = net.start_knockd(&config, &[]);
    let log = net.path("log");
    for (sig, from) in [("HUP", net.cli4.clone()), ("TERM", net.cli6.clone())] {
        let dst = if from.contains(':') {
            &net.srv6
        } else {
            &net.srv4
        };
        net.knock(dst, "7000,8000");
        let child_file = net.path(&format!("child.{from}"));
        let child: u32 = wait_until(DEADLINE, || read(&child_file).trim().parse().ok())
            .unwrap_or_else(|| panic!("the start command did not start:\n{}", read(&log)));
        crate::fixture::signal(child, sig);
        wait_contains(&net.path("closed"), &format!("close {from}"));
        assert!(d.alive(), "SIG{sig} to a command stopped knockd");
    }
    let text = read(&log);
    assert!(!text.contains("shutting down"), "{text}");
    assert!(!text.contains("re-reading config file"), "{text}");
}

/// The niceness of each thread of process `pid`, by thread id (`/proc/PID/task/TID/stat`).
fn thread_niceness(pid: u32) -> BTreeMap<u32, i32> {
    let mut threads = BTreeMap::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).expect("read the task list") {
        let task = task.expect("task entry");
        let tid: u32 = task
            .file_name()
            .to_string_lossy()
            .parse()
            .expect("thread id");
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // The fields after the command name (which may hold spaces) start at field 3, state;
        // field 19 is the niceness.
        let after_name = &stat[stat.rfind(')').expect("stat has (comm)") + 1..];
        let nice = after_name.split_whitespace().nth(16).expect("field 19");
        threads.insert(tid, nice.parse().expect("niceness"));
    }
    threads
}

/// Run as the packaged systemd unit runs it (`Nice=` below 0 and
/// `CPUSchedulingResetOnFork=yes`, see the unit's comment), knockd's first thread, the event
/// loop that spawns the commands, keeps the raised priority, while its other threads and the
/// commands start at nice 0: a command cannot take the CPU from the loop that spawned it, and
/// neither it nor the capture thread gets more CPU than any other process.
#[test]
#[ignore = "needs root"]
fn under_the_units_priority_only_the_event_loop_is_raised() {
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/systemd/knockd.service"
    ))
    .expect("read the packaged unit");
    let nice: i32 = unit
        .lines()
        .find_map(|line| line.strip_prefix("Nice="))
        .expect("the unit sets Nice=")
        .parse()
        .expect("Nice= is a number");
    assert!(nice < 0, "the unit's Nice={nice} raises nothing");
    assert!(
        unit.lines()
            .any(|line| line == "CPUSchedulingResetOnFork=yes"),
        "without CPUSchedulingResetOnFork the commands would inherit Nice={nice}"
    );

    let net = Net::new();
    let dir = net.dir_str();
    // What systemd does for those two settings, done by nice(1) and chrt(1).
    let nice_arg = nice.to_string();
    let daemon = net.start_knockd_under(
        &format!("[d]\nsequence = 7000,8000\ncommand = nice > {dir}/niceness\n"),
        &[
            "nice",
            "-n",
            &nice_arg,
            "chrt",
            "--reset-on-fork",
            "--other",
            "0",
        ],
    );

    let threads = thread_niceness(daemon.pid);
    assert_eq!(
        threads.get(&daemon.pid),
        Some(&nice),
        "threads: {threads:?}"
    );
    assert!(
        threads.len() >= 2,
        "knockd has a capture thread: {threads:?}"
    );
    for (tid, niceness) in &threads {
        if *tid != daemon.pid {
            assert_eq!(*niceness, 0, "thread {tid} is raised: {threads:?}");
        }
    }

    net.knock(&net.srv4, "7000,8000");
    wait_contains(&net.path("niceness"), "\n");
    assert_eq!(read(&net.path("niceness")).trim(), "0");
}

/// Issue 14: the start command of a door with a stop command runs once its stop is written to
/// the state file and renamed into place (what a knockd restarted after a crash or `kill -9`
/// reads), without waiting for the file to be synced to the disk; the sync follows. Seen in
/// the order of knockd's system calls, traced by strace.
#[test]
#[ignore = "needs root"]
fn a_start_command_waits_for_its_stop_record_but_not_for_the_disk() {
    let net = Net::new();
    let dir = net.dir_str();
    let trace = net.path("trace");
    let config = format!(
        "[d]\n\
         sequence = 7000,8000\n\
         start_command = echo started > {dir}/started\n\
         cmd_timeout = 600\n\
         stop_command = true\n"
    );
    let trace_arg = trace.display().to_string();
    let strace = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=rename,renameat,renameat2,fsync,execve",
        "-o",
        &trace_arg,
    ];
    let _daemon = net.start_knockd_under(&config, &strace);
    net.knock(&net.srv4, "7000,8000");
    wait_contains(&net.path("started"), "started");

    let state = net.path("state").display().to_string();
    // The start command's shell, then the first fsync after it (the loop's sync).
    let synced_after_start = |lines: &[String]| {
        let start = lines
            .iter()
            .position(|l| l.contains("execve(\"/bin/sh\"") && l.contains("started"))?;
        lines[start..]
            .iter()
            .position(|l| l.contains("fsync("))
            .map(|sync| (start, start + sync))
    };
    let lines = wait_until(DEADLINE, || {
        let lines: Vec<String> = read(&trace).lines().map(str::to_owned).collect();
        synced_after_start(&lines).is_some().then_some(lines)
    })
    .unwrap_or_else(|| {
        panic!(
            "no start command then fsync in the trace:\n{}",
            read(&trace)
        )
    });
    let (start, sync) = synced_after_start(&lines).expect("found above");
    let renamed = lines[..start]
        .iter()
        .rposition(|l| l.contains("rename") && l.contains(&format!("\"{state}\"")))
        .unwrap_or_else(|| panic!("the state file was not renamed before the start:\n{lines:#?}"));
    let between = &lines[renamed + 1..start];
    assert!(
        !between.iter().any(|l| l.contains("fsync(")),
        "the start command waited for an fsync of the state file:\n{:#?}",
        &lines[renamed..=sync]
    );
}
