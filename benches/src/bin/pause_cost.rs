//! `pause-cost`: what this machine charges for one pause of knockd's capture pipeline with no
//! packet in it, so that the CPU per flood packet at low flood rates can be read against it.
//!
//! Under a flood knockd's capture thread sleeps between reads (16 ms at most by default, the
//! bound on how long a knock waits during a flood), then reads the ring and sends what it found over a
//! channel, which wakes the event loop blocked in `select!`. At 10 000 packets/s that is one
//! pause per 160 packets, so whatever a pause costs by itself, with no packet work at all, is
//! spread over only 160 packets. This program runs that skeleton on the CPU it is pinned to (run
//! it under `taskset`, as `scripts/flood.sh` pins the server): a thread that sleeps, then sends
//! one message; a thread blocked in `select!` over that channel and two idle ones, that
//! receives it. It reports each thread's CPU time per pause (the kernel's per-thread run time,
//! `/proc/thread-self/schedstat`), and how long reading a 1 MiB buffer takes just after a pause
//! against back to back (what sleeping does to the caches the packet work then needs).
//!
//! ```text
//! pause-cost [--pause-ms N] [--pauses N] [--tsv FILE]
//! ```
//!
//! `--pause-ms` defaults to knock-capture's default pause, `--pauses` to 250.
//!
//! Prints a Markdown section; `--tsv FILE` also writes `pause_ms`, `pauses`, the sleeper's and
//! the receiver's CPU µs per pause, and the cold and hot read µs, tab-separated.
//!
//! It measures the machine, not knockd: on a virtual machine a wake-up costs many times what
//! it does on bare metal.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, never, select};

/// The buffer read after each pause: more than the L1 and L2 caches of a small core hold.
const READ_BYTES: usize = 1 << 20;

/// This thread's CPU time so far, in nanoseconds (the first field of its schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("pause-cost: cannot read /proc/thread-self/schedstat");
            std::process::exit(1)
        })
}

/// Reads one byte per cache line of `buffer`; how long that took.
fn read_lines(buffer: &[u8]) -> Duration {
    let began = Instant::now();
    let sum = buffer
        .iter()
        .step_by(64)
        .fold(0_u8, |sum, byte| sum.wrapping_add(*byte));
    black_box(sum);
    began.elapsed()
}

/// The figures of one run.
struct Figures {
    /// The sleeping and sending thread's CPU per pause.
    sleeper_us: f64,
    /// The receiving thread's CPU per pause.
    receiver_us: f64,
    /// Reading [`READ_BYTES`] right after a pause (median).
    cold_read_us: f64,
    /// Reading them again at once (median).
    hot_read_us: f64,
}

fn median_us(mut values: Vec<Duration>) -> f64 {
    values.sort_unstable();
    values
        .get(values.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn measure(pause: Duration, pauses: u32) -> Figures {
    let (sender, receiver) = bounded::<u32>(16);
    let (signals, commands) = (never::<i32>(), never::<u64>());
    let consumer = std::thread::spawn(move || {
        let began = thread_cpu_ns();
        let mut received = 0_u32;
        loop {
            select! {
                recv(receiver) -> message => match message {
                    Ok(_) => received += 1,
                    Err(_) => break,
                },
                recv(signals) -> _ => {}
                recv(commands) -> _ => {}
            }
        }
        (thread_cpu_ns() - began, received)
    });
    // Let the receiver block before the first pause.
    std::thread::sleep(Duration::from_millis(50));
    let began = thread_cpu_ns();
    for count in 0..pauses {
        std::thread::sleep(pause);
        if sender.send(count).is_err() {
            break;
        }
    }
    let sleeper = thread_cpu_ns() - began;
    drop(sender);
    let (receiver_cpu, received) = consumer.join().unwrap_or((0, 0));
    let per_pause = |ns: u64| ns as f64 / 1e3 / f64::from(received.max(1));

    let buffer = vec![1_u8; READ_BYTES];
    let rounds = (pauses / 4).max(3);
    let mut cold = Vec::new();
    let mut hot = Vec::new();
    for _ in 0..rounds {
        std::thread::sleep(pause);
        cold.push(read_lines(&buffer));
        hot.push(read_lines(&buffer));
    }
    Figures {
        sleeper_us: per_pause(sleeper),
        receiver_us: per_pause(receiver_cpu),
        cold_read_us: median_us(cold),
        hot_read_us: median_us(hot),
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`), so the
/// output says whether it was pinned.
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .map(|list| list.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn usage() -> ! {
    eprintln!("usage: pause-cost [--pause-ms N] [--pauses N] [--tsv FILE]");
    std::process::exit(2)
}

fn main() {
    // knockd's longest capture pause under a flood, its capture library's default.
    let default_pause = knock_capture::CaptureConfig::default().burst_pause;
    let mut pause_ms = u64::try_from(default_pause.as_millis()).unwrap_or(16);
    let mut pauses = 250_u32;
    let mut tsv = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--pause-ms" => pause_ms = value.parse().unwrap_or_else(|_| usage()),
            "--pauses" => pauses = value.parse().unwrap_or_else(|_| usage()),
            "--tsv" => tsv = Some(value),
            _ => usage(),
        }
    }
    if pause_ms == 0 || pauses == 0 {
        usage();
    }
    let figures = measure(Duration::from_millis(pause_ms), pauses);
    let total = figures.sleeper_us + figures.receiver_us;
    let per_second = 1000.0 / pause_ms as f64;
    println!("## What one flood pause costs this machine\n");
    println!(
        "`pause-cost` (`cargo run --release -p knock-benches --bin pause-cost`; CPUs allowed: \
         {}): the skeleton of knockd's capture pipeline with no packet in it. One thread sleeps \
         {pause_ms} ms (knockd's longest capture pause under a flood is {} ms) and sends one \
         message; another, blocked in `select!` as knockd's event loop is, receives it. {pauses} \
         pauses; CPU is each thread's run time from `/proc/thread-self/schedstat`.\n",
        allowed_cpus(),
        default_pause.as_millis()
    );
    println!(
        "| sleeper CPU µs per pause | receiver CPU µs per pause | both | per packet at 10 000 packets/s | reading 1 MiB after a pause | reading it again at once |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.1} | {:.1} | {:.1} | {:.2} µs | {:.0} µs | {:.0} µs |",
        figures.sleeper_us,
        figures.receiver_us,
        total,
        total * per_second / 10_000.0,
        figures.cold_read_us,
        figures.hot_read_us
    );
    println!(
        "\n*Per packet at 10 000 packets/s* spreads {per_second:.1} pauses a second (one per \
         {pause_ms} ms) over the packets: the share of the flood bar that waking the two threads \
         takes before any packet is read. The reads show what sleeping does to the caches the \
         packet work then needs."
    );
    if let Some(path) = tsv {
        let line = format!(
            "{pause_ms}\t{pauses}\t{:.2}\t{:.2}\t{:.1}\t{:.1}\n",
            figures.sleeper_us, figures.receiver_us, figures.cold_read_us, figures.hot_read_us
        );
        if let Err(error) = std::fs::write(&path, line) {
            eprintln!("pause-cost: cannot write {path}: {error}");
            std::process::exit(1);
        }
    }
}
