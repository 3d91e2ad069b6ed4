//! The machine's own limit for the matcher's memory accesses with a million tracked sources,
//! so that `matcher/steady_batched/1000000_sources` can be read against it: that figure
//! follows the host's memory and page-walk latency (the matcher of commit `ae6a52c` did
//! 19 M events/s in it on 2026-11-21, and 7.5-11 M/s on the same bench VM on 2026-11-30),
//! which these two measure without the matcher.
//!
//! With 1 M sources the source table has 2 M buckets: 2 MiB of control bytes and 128 MiB of
//! 64-byte entries, each look-up reading one of each at a random place.
//!
//! * `machine/random_reads/independent`: per event, one byte of a 2 MiB array and one
//!   64-byte line of a 128 MiB array, at random places that do not depend on earlier reads
//!   (many in flight at once). A batched look-up does these reads and more, so this is its
//!   ceiling.
//! * `machine/random_reads/dependent`: one 64-byte line of the 128 MiB array per event,
//!   its place computed from the line read before (one at a time: the latency of a read
//!   that misses the caches and the TLB).
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Buckets of the source table with 1 M sources (hashbrown keeps it at most 7/8 full).
const BUCKETS: usize = 1 << 21;
/// Events per measured iteration, as in the matcher benchmarks.
const EVENTS: u64 = 1_000;

/// One table entry's worth of memory.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([u64; 8]);

/// Spreads consecutive numbers over the buckets (a multiplicative hash).
fn spread(x: u64) -> usize {
    let x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ (x >> 29)) as usize & (BUCKETS - 1)
}

struct Table {
    control: Vec<u8>,
    entries: Vec<Line>,
    next: u64,
}

impl Table {
    fn new() -> Self {
        Self {
            control: vec![1; BUCKETS],
            entries: vec![Line([1; 8]); BUCKETS],
            next: 0,
        }
    }

    fn independent(&mut self) -> u64 {
        let mut sum = 0_u64;
        for _ in 0..EVENTS {
            let bucket = spread(self.next);
            self.next += 1;
            sum = sum
                .wrapping_add(u64::from(self.control[bucket]))
                .wrapping_add(self.entries[bucket].0[0]);
        }
        sum
    }

    fn dependent(&mut self) -> u64 {
        let mut bucket = spread(self.next);
        for _ in 0..EVENTS {
            self.next += 1;
            bucket = spread(self.next ^ self.entries[bucket].0[0]);
        }
        bucket as u64
    }
}

fn random_reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("machine/random_reads");
    group.throughput(Throughput::Elements(EVENTS));
    // Built on the first call (criterion calls each function once per sample).
    let mut table: Option<Table> = None;
    group.bench_function("independent", |b| {
        let table = table.get_or_insert_with(Table::new);
        b.iter(|| black_box(table.independent()));
    });
    group.bench_function("dependent", |b| {
        let table = table.get_or_insert_with(Table::new);
        b.iter(|| black_box(table.dependent()));
    });
    group.finish();
}

criterion_group!(benches, random_reads);
criterion_main!(benches);
