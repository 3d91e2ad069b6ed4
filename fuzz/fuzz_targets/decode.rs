//! `knock_capture::decode` on arbitrary frames: the first byte picks the link type, the rest
//! is the frame. Must never panic.
#![no_main]

use knock_capture::{LinkType, decode, decode_with_payload};
use knock_core::Instant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LinkType::ALL[usize::from(selector) % LinkType::ALL.len()];
    let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    if let Ok(event) = decode(link, Instant::from_micros(1), frame, wire_len) {
        // An event only comes from a frame holding at least an IP and a TCP/UDP header.
        assert!(frame.len() >= 28, "{link:?} {event:?}");
        assert_eq!(event.wire_len, wire_len);
        // The SPA path: same event, and data that lies within the frame.
        let (same, data) = decode_with_payload(link, Instant::from_micros(1), frame, wire_len)
            .expect("decode_with_payload agrees with decode");
        assert_eq!(same, event);
        assert!(data.len() + 28 <= frame.len(), "{link:?} {}", data.len());
    }
});
