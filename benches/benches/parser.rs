//! Parser throughput: `Config::parse` on a generated 1 000-door knockd.conf (every door with
//! a 3-step mixed TCP/UDP sequence, flags, both timeouts, start and stop commands and their
//! IPv6 variants, the layout of the Debian sample), reported in bytes/s; plus the canonical
//! `Display` of the parsed result and a one-time sequences scan of 1 000 lines.
#![allow(missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use knock_core::{Config, ots};

const DOORS: u16 = 1_000;

fn config_text() -> String {
    let mut text = String::from("[options]\n    UseSyslog\n    LogFile = /var/log/knockd.log\n");
    for i in 0..DOORS {
        let base = 10_000 + i * 3;
        write!(
            text,
            "\n# door {i}\n[door{i}]\n    sequence    = {base},{}:udp,{}\n    seq_timeout = 5\n    \
             tcpflags    = syn,!ack\n    start_command   = /usr/sbin/nft add element inet knock \
             ssh4 {{ %IP% timeout 30s }}\n    start_command_6 = /usr/sbin/nft add element inet knock \
             ssh6 {{ %IP% timeout 30s }}\n    cmd_timeout = 30s\n    stop_command = /bin/true\n",
            base + 2,
            base + 1,
        )
        .unwrap();
    }
    text
}

fn ots_text() -> String {
    (0..1_000u32)
        .map(|i| format!(" {},{}:udp,{}\n", 1_000 + i, 20_000 + i, 40_000 + i))
        .collect()
}

fn parser(c: &mut Criterion) {
    let text = config_text();
    let parsed = Config::parse(&text).expect("the generated config parses");
    assert_eq!(parsed.config.doors.len(), usize::from(DOORS));

    let mut group = c.benchmark_group("parser");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse_1000_doors", |b| {
        b.iter(|| Config::parse(black_box(&text)).map(|p| p.config.doors.len()))
    });
    group.bench_function("display_1000_doors", |b| {
        b.iter(|| black_box(&parsed.config).to_string().len())
    });
    group.finish();

    let ots = ots_text();
    let mut group = c.benchmark_group("ots");
    group.throughput(Throughput::Bytes(ots.len() as u64));
    group.bench_function("scan_1000_lines", |b| {
        b.iter(|| ots::scan(black_box(&ots)).remaining)
    });
    group.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
