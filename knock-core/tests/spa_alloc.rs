//! A forged SPA packet costs no allocation: the outer checks and the HMAC run on the
//! payload in place, and the refusal carries no heap data. (A flood of forged packets cannot
//! make the verifier allocate, decrypt or fill the replay cache.)
//!
//! Its own test binary with a single test: the global allocator counts every thread.

use std::alloc::System;
use std::net::IpAddr;

use knock_core::spa::{AccessPort, ReplayCache, SecretKey, SpaDoor, SpaKeys};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn forged_packets_allocate_nothing() {
    let keys = SpaKeys::new(
        SecretKey::from_bytes(vec![1; 32]),
        SecretKey::from_bytes(vec![2; 64]),
    )
    .unwrap();
    let door = SpaDoor::new(keys, vec![AccessPort::tcp(22)]);
    let mut cache = ReplayCache::default();
    let source: IpAddr = "192.0.2.1".parse().unwrap();
    // Payloads of every outer kind: base64 of SPA size (HMAC fails), too short, too long,
    // not base64, tacked-on prefixes.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut payloads: Vec<Vec<u8>> = (0..200u32)
        .map(|seed| {
            (0..(140 + seed as usize))
                .map(|i| alphabet[(i * 7 + seed as usize * 13) % 64])
                .collect()
        })
        .collect();
    payloads.push(vec![b'A'; 20]);
    payloads.push(vec![b'A'; 2000]);
    payloads.push(vec![0xff; 300]);
    payloads.push([b"U2FsdGVkX1".as_slice(), &[b'A'; 200]].concat());
    payloads.push([b"hQ".as_slice(), &[b'A'; 500]].concat());

    let region = Region::new(GLOBAL);
    let mut refused = 0;
    for payload in &payloads {
        let result = door.verify(1_800_000_000, source, payload, &mut cache);
        refused += usize::from(result.is_err_and(|refusal| refusal.is_unauthenticated()));
    }
    let stats = region.change();
    assert_eq!(refused, payloads.len());
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert!(cache.is_empty());
}
