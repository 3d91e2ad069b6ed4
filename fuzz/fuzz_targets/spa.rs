//! `knock_core::spa` on arbitrary input: it must never panic. The first byte picks what is
//! fuzzed: a packet payload through `SpaDoor::verify` (and `decode`), a decrypted plaintext
//! through the message parser (what a key holder could send), or a persisted replay cache.
#![no_main]

use std::net::IpAddr;

use knock_core::spa::{
    self, AccessPort, Refusal, ReplayCache, SecretKey, SpaDoor, SpaKeys, SpaRequest,
};
use libfuzzer_sys::fuzz_target;

fn keys() -> SpaKeys {
    SpaKeys::new(
        SecretKey::from_bytes(vec![0x11; 32]),
        SecretKey::from_bytes(vec![0x22; 64]),
    )
    .expect("valid test keys")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            let door = SpaDoor::new(keys(), vec![AccessPort::tcp(22)]);
            let mut cache = ReplayCache::with_capacity(4);
            let source = IpAddr::from([192, 0, 2, 1]);
            if let Err(refusal) = door.verify(1_800_000_000, source, rest, &mut cache) {
                // Random bytes cannot carry a valid HMAC.
                assert!(refusal.is_unauthenticated(), "{refusal:?}");
                let _ = refusal.to_string();
            }
            let _ = spa::decode(rest, &keys());
        }
        1 => {
            if let Ok(message) = spa::parse_plaintext_for_fuzzing(rest) {
                assert!(!message.access.is_empty());
                // What parses re-encodes and decodes to the same request.
                let request = SpaRequest {
                    username: message.username.clone(),
                    timestamp: message.timestamp,
                    allow: message.allow,
                    access: message.access.clone(),
                    client_timeout: message.client_timeout,
                };
                if let Ok(packet) = spa::encode(&request, &keys(), &[3; 16]) {
                    let back = spa::decode(packet.as_bytes(), &keys()).expect("own packet");
                    assert_eq!(back.access, message.access);
                    assert_eq!(back.client_timeout, message.client_timeout);
                }
            }
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(cache) = ReplayCache::from_text(text, 1_000, 16) {
                    assert!(cache.len() <= 16);
                    let again = ReplayCache::from_text(&cache.to_text(), 1_000, 16)
                        .expect("own text reads back");
                    assert_eq!(again, cache);
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = AccessPort::parse_list(text);
                let _ = SecretKey::from_base64(text);
            }
        }
    }
    let _ = Refusal::BadHmac.code();
});
