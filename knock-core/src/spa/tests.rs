use super::*;

// TEST VECTORS. Keys made with `fwknop --key-gen` (Debian fwknop-client 2.6.10) for these
// tests only; the packets were made by that client with
//   fwknop -A tcp/22 --use-hmac --key-base64-rijndael $K --key-base64-hmac $H \
//          -a 10.0.0.1 -D 127.0.0.1 --save-packet p1.txt
//   fwknop -A tcp/22,udp/1194 --fw-timeout 30 (same keys and addresses) ... p2.txt
// (user "root", timestamp 1795985373; p1 random value 1063880420142013).
const KEY_B64: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";
const HMAC_B64: &str =
    "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";
const FWKNOP_P1: &str = "/HUyb7QEH+25X9SA8tbaYgzDNPJpGBOrehzLPVkXyVAe+XEd031WbYaIpvPZYadBxoUtqJzhRZ9CxoVZ3YF0fziNtyOXeA/uycgz69iPRjtnO8o1eeGnK8IpAONg9hoIddA0iholCZA0LBvKcpW1dG7UJ02u4Qqu0Rh+MX9jG+DK5kpHqsBRLIm1GuCM7vxRfPYxSAqYkIpk";
const FWKNOP_P2: &str = "8tykSyEmsaAkMsY9sqU3qMKFVfuZrJxYjddPwYMGo8Ft8AMXuUckqVQQT29yWTuoi5srB59FuvCLcd31byF/6XrfWOs2wMq9eYwNhnw0PCQmH4SAMdaww1RdmpXx/A6Km4gPUTUlaTWmCs41+BYXXKyJ17JRRorA2v5cEjnJERwBnnWcFPsTToneeB1xoGGpsnqbEe/W4JeA7aZdma5uf8A30QHdRcC+g";
const TS: u64 = 1_795_985_373;

fn keys() -> SpaKeys {
    SpaKeys::new(
        SecretKey::from_base64(KEY_B64).unwrap(),
        SecretKey::from_base64(HMAC_B64).unwrap(),
    )
    .unwrap()
}

fn other_key(b64_len: usize) -> SecretKey {
    SecretKey::from_bytes(vec![0x5a; b64_len])
}

fn door() -> SpaDoor {
    SpaDoor::new(keys(), AccessPort::parse_list("tcp/22, udp/1194").unwrap())
}

fn source() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

fn request(ts: u64) -> SpaRequest {
    SpaRequest {
        username: "alice".to_owned(),
        timestamp: ts,
        allow: "0.0.0.0".parse().unwrap(),
        access: vec![AccessPort::tcp(22)],
        client_timeout: None,
    }
}

#[test]
fn decodes_fwknop_client_packet() {
    let message = decode(FWKNOP_P1.as_bytes(), &keys()).unwrap();
    assert_eq!(message.random, "1063880420142013");
    assert_eq!(message.username, "root");
    assert_eq!(message.timestamp, TS);
    assert_eq!(message.version, "3.0.0");
    assert_eq!(message.allow, source());
    assert_eq!(message.access, [AccessPort::tcp(22)]);
    assert_eq!(message.client_timeout, None);
}

#[test]
fn decodes_fwknop_client_timeout_packet() {
    let message = decode(FWKNOP_P2.as_bytes(), &keys()).unwrap();
    assert_eq!(message.access, [AccessPort::tcp(22), AccessPort::udp(1194)]);
    assert_eq!(message.client_timeout, Some(30));
    let grant = door()
        .verify(
            TS + 3,
            source(),
            FWKNOP_P2.as_bytes(),
            &mut ReplayCache::default(),
        )
        .unwrap();
    assert_eq!(grant.client_timeout, Some(30));
    assert_eq!(grant.ports.len(), 2);
}

#[test]
fn verify_grants_then_refuses_replay() {
    let door = door();
    let mut cache = ReplayCache::default();
    let grant = door
        .verify(
            TS + 1,
            "192.0.2.9".parse().unwrap(),
            FWKNOP_P1.as_bytes(),
            &mut cache,
        )
        .unwrap();
    // The message names 10.0.0.1; without require_source that is the address let in.
    assert_eq!(grant.address, source());
    assert_eq!(grant.ports, [AccessPort::tcp(22)]);
    assert_eq!(grant.username, "root");
    assert_eq!(cache.len(), 1);
    assert_eq!(
        door.verify(TS + 2, source(), FWKNOP_P1.as_bytes(), &mut cache),
        Err(Refusal::Replay)
    );
    // Persisted and restored, the cache still knows it.
    let mut restored = ReplayCache::from_text(&cache.to_text(), TS + 2, 10).unwrap();
    assert_eq!(
        door.verify(TS + 3, source(), FWKNOP_P1.as_bytes(), &mut restored),
        Err(Refusal::Replay)
    );
}

#[test]
fn wrong_hmac_key_is_refused_before_decryption() {
    let keys = SpaKeys::new(SecretKey::from_base64(KEY_B64).unwrap(), other_key(64)).unwrap();
    let refusal = decode(FWKNOP_P1.as_bytes(), &keys).unwrap_err();
    assert_eq!(refusal, Refusal::BadHmac);
    assert!(refusal.is_unauthenticated());
    // Even a wrong encryption key gives BadHmac: nothing is decrypted.
    let both_wrong = SpaKeys::new(other_key(32), other_key(64)).unwrap();
    assert_eq!(
        decode(FWKNOP_P1.as_bytes(), &both_wrong),
        Err(Refusal::BadHmac)
    );
}

#[test]
fn wrong_encryption_key_is_refused() {
    let keys = SpaKeys::new(other_key(32), SecretKey::from_base64(HMAC_B64).unwrap()).unwrap();
    let refusal = decode(FWKNOP_P1.as_bytes(), &keys).unwrap_err();
    assert_eq!(refusal, Refusal::DecryptionFailed);
    assert!(!refusal.is_unauthenticated());
}

#[test]
fn stale_and_future_packets_are_refused() {
    let door = door();
    let mut cache = ReplayCache::default();
    assert_eq!(
        door.verify(TS + 121, source(), FWKNOP_P1.as_bytes(), &mut cache),
        Err(Refusal::TooOld {
            age: 121,
            max_age: 120
        })
    );
    assert_eq!(
        door.verify(TS - 600, source(), FWKNOP_P2.as_bytes(), &mut cache),
        Err(Refusal::TooNew {
            ahead: 600,
            max_age: 120
        })
    );
    // At the edge, both directions.
    let mut cache = ReplayCache::default();
    assert!(
        door.verify(TS + 120, source(), FWKNOP_P1.as_bytes(), &mut cache)
            .is_ok()
    );
    assert!(
        door.verify(TS - 120, source(), FWKNOP_P2.as_bytes(), &mut cache)
            .is_ok()
    );
}

#[test]
fn port_outside_access_is_refused() {
    let mut door = door();
    door.access = vec![AccessPort::tcp(2222)];
    assert_eq!(
        door.verify(
            TS,
            source(),
            FWKNOP_P1.as_bytes(),
            &mut ReplayCache::default()
        ),
        Err(Refusal::NotAllowed {
            requested: AccessPort::tcp(22)
        })
    );
    // One of two ports outside: the whole request is refused.
    door.access = vec![AccessPort::tcp(22)];
    assert_eq!(
        door.verify(
            TS,
            source(),
            FWKNOP_P2.as_bytes(),
            &mut ReplayCache::default()
        ),
        Err(Refusal::NotAllowed {
            requested: AccessPort::udp(1194)
        })
    );
}

#[test]
fn require_source() {
    let mut door = door();
    door.require_source = true;
    let elsewhere: IpAddr = "192.0.2.9".parse().unwrap();
    assert_eq!(
        door.verify(
            TS,
            elsewhere,
            FWKNOP_P1.as_bytes(),
            &mut ReplayCache::default()
        ),
        Err(Refusal::SourceMismatch {
            requested: source(),
            from: elsewhere
        })
    );
    assert!(
        door.verify(
            TS,
            source(),
            FWKNOP_P1.as_bytes(),
            &mut ReplayCache::default()
        )
        .is_ok()
    );
    // 0.0.0.0 always means the source, also over IPv6.
    let packet = encode(&request(TS), &keys(), &[1; 16]).unwrap();
    let v6: IpAddr = "fd00::7".parse().unwrap();
    let grant = door
        .verify(TS, v6, packet.as_bytes(), &mut ReplayCache::default())
        .unwrap();
    assert_eq!(grant.address, v6);
}

#[test]
fn prefixes_and_junk_are_refused_cheaply() {
    let keys = keys();
    let salted = format!("{SALTED_PREFIX_B64}{FWKNOP_P1}");
    assert_eq!(decode(salted.as_bytes(), &keys), Err(Refusal::SaltedPrefix));
    let gpg = format!("hQ{}", "A".repeat(450));
    assert_eq!(decode(gpg.as_bytes(), &keys), Err(Refusal::GpgPrefix));
    assert_eq!(
        decode(&[b'A'; 100], &keys),
        Err(Refusal::TooShort { len: 100 })
    );
    assert_eq!(
        decode(&[b'A'; 1501], &keys),
        Err(Refusal::TooLong { len: 1501 })
    );
    let mut bad = FWKNOP_P1.as_bytes().to_vec();
    bad[5] = b'=';
    assert_eq!(decode(&bad, &keys), Err(Refusal::NotBase64));
    let mut newline = FWKNOP_P1.as_bytes().to_vec();
    newline.push(b'\n');
    assert_eq!(decode(&newline, &keys), Err(Refusal::NotBase64));
    // One flipped character anywhere: HMAC.
    for index in [0, 50, FWKNOP_P1.len() - 44, FWKNOP_P1.len() - 1] {
        let mut flipped = FWKNOP_P1.as_bytes().to_vec();
        flipped[index] = if flipped[index] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            decode(&flipped, &keys),
            Err(Refusal::BadHmac),
            "index {index}"
        );
    }
}

#[test]
fn non_canonical_hmac_spelling_is_refused() {
    // The 43rd character of the HMAC carries 2 unused bits: another spelling of the same
    // HMAC must not pass (it would be a new packet to the replay cache).
    let mut packet = FWKNOP_P1.as_bytes().to_vec();
    let last = packet.len() - 1;
    let value = STRICT
        .decode(&packet[last - 42..])
        .map(|_| packet[last])
        .unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let index = alphabet.iter().position(|&c| c == value).unwrap();
    packet[last] = alphabet[index ^ 1];
    assert_eq!(decode(&packet, &keys()), Err(Refusal::BadHmac));
}

/// Builds an authentic packet around an arbitrary plaintext (what a key holder could send).
fn forge(plaintext: &str) -> String {
    let keys = keys();
    let (key, iv) = derive_key_iv(keys.encryption.bytes(), &[9; 8]);
    let encryptor =
        cbc::Encryptor::<aes::Aes256>::new_from_slices(key.as_slice(), iv.as_slice()).unwrap();
    let mut raw = b"Salted__".to_vec();
    raw.extend_from_slice(&[9; 8]);
    raw.extend_from_slice(&encryptor.encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes()));
    let full = STRICT.encode(&raw);
    let mut mac = Hmac::<Sha256>::new_from_slice(keys.hmac.bytes()).unwrap();
    mac.update(full.as_bytes());
    format!(
        "{}{}",
        &full[SALTED_PREFIX_B64.len()..],
        STRICT.encode(mac.finalize().into_bytes())
    )
}

fn with_digest(body: &str) -> String {
    format!("{body}:{}", STRICT.encode(Sha256::digest(body.as_bytes())))
}

fn b64(text: &str) -> String {
    STRICT.encode(text.as_bytes())
}

#[test]
fn message_types_and_fields() {
    let user = b64("bob");
    let msg = b64("10.0.0.1,tcp/22");
    let plain = |body: &str| forge(&with_digest(body));
    let ok = plain(&format!("1234567890123456:{user}:{TS}:3.0.0:1:{msg}"));
    assert!(decode(ok.as_bytes(), &keys()).is_ok());
    // With a server_auth field (ignored).
    let auth = plain(&format!(
        "1234567890123456:{user}:{TS}:3.0.0:1:{msg}:{}",
        b64("x")
    ));
    assert!(decode(auth.as_bytes(), &keys()).is_ok());
    let cases = [
        (
            format!(
                "1234567890123456:{user}:{TS}:3.0.0:0:{}",
                b64("10.0.0.1,echo hi")
            ),
            Refusal::CommandMessage,
        ),
        (
            format!(
                "1234567890123456:{user}:{TS}:3.0.0:2:{msg}:{}",
                b64("192.168.1.2,22")
            ),
            Refusal::NatAccess,
        ),
        (
            format!("1234567890123456:{user}:{TS}:9.0.0:1:{msg}"),
            Refusal::UnsupportedVersion {
                version: "9.0.0".into(),
            },
        ),
        (
            format!("1234567890123456:{user}:{TS}:3.0.0:7:{msg}"),
            Refusal::Malformed {
                field: Field::MessageType,
            },
        ),
        (
            format!(
                "1234567890123456:{user}:{TS}:3.0.0:1:{}",
                b64("10.0.0.1,icmp/0")
            ),
            Refusal::UnsupportedProtocol {
                protocol: "icmp".into(),
            },
        ),
        (
            format!(
                "1234567890123456:{user}:{TS}:3.0.0:1:{}",
                b64("10.0.0.1,tcp/0")
            ),
            Refusal::Malformed {
                field: Field::Access,
            },
        ),
        (
            format!("1234567890123456:{user}:{TS}:3.0.0:1:{}", b64("10.0.0.1")),
            Refusal::Malformed {
                field: Field::Access,
            },
        ),
        (
            format!("1234567890123456:{user}:{TS}:3.0.0:3:{msg}:99999999"),
            Refusal::Malformed {
                field: Field::ClientTimeout,
            },
        ),
        (
            format!("1234567890123456:{user}:{TS}:3.0.0:3:{msg}"),
            Refusal::Malformed {
                field: Field::Layout,
            },
        ),
        (
            format!("1234567890123456:{}:{TS}:3.0.0:1:{msg}", b64("a:b")),
            Refusal::Malformed {
                field: Field::Username,
            },
        ),
        (
            format!("1234567890123456:{user}:12x:3.0.0:1:{msg}"),
            Refusal::Malformed {
                field: Field::Timestamp,
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            decode(plain(&body).as_bytes(), &keys()),
            Err(expected),
            "{body}"
        );
    }
    // Bad inner digest.
    let body = format!("1234567890123456:{user}:{TS}:3.0.0:1:{msg}");
    let wrong = forge(&format!(
        "{body}:{}",
        STRICT.encode(Sha256::digest(b"other"))
    ));
    assert_eq!(decode(wrong.as_bytes(), &keys()), Err(Refusal::BadDigest));
    // Not 16 digits first: what a wrong key looks like.
    let short = forge(&with_digest(&format!("12345:{user}:{TS}:3.0.0:1:{msg}")));
    assert_eq!(
        decode(short.as_bytes(), &keys()),
        Err(Refusal::DecryptionFailed)
    );
}

#[test]
fn encode_round_trip() {
    let mut req = request(TS);
    req.allow = "198.51.100.4".parse().unwrap();
    req.access = vec![AccessPort::tcp(22), AccessPort::udp(1194)];
    req.client_timeout = Some(45);
    let packet = encode(&req, &keys(), &[0xa5; 16]).unwrap();
    assert!(!packet.starts_with(SALTED_PREFIX_B64));
    let message = decode(packet.as_bytes(), &keys()).unwrap();
    assert_eq!(message.username, "alice");
    assert_eq!(message.timestamp, TS);
    assert_eq!(message.allow, req.allow);
    assert_eq!(message.access, req.access);
    assert_eq!(message.client_timeout, Some(45));
    assert_eq!(message.random.len(), 16);
    // Other random bytes: another packet.
    let other = encode(&req, &keys(), &[0x5a; 16]).unwrap();
    assert_ne!(packet, other);
    assert_eq!(
        encode(&req, &keys(), &[0xa5; 16]).unwrap(),
        packet,
        "deterministic"
    );
    req.username = "a/b".into();
    assert_eq!(encode(&req, &keys(), &[0; 16]), Err(EncodeError::Username));
}

#[test]
fn secrets_are_redacted() {
    let keys = keys();
    let debug = format!("{keys:?} {:?}", door());
    assert!(debug.contains("<redacted>"));
    for secret in [KEY_B64, HMAC_B64, "p94UgXOy", "167, 222"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert_eq!(
        SecretKey::from_base64("not base64!"),
        Err(KeyError::BadBase64)
    );
    assert!(!KeyError::BadBase64.to_string().contains("not base64!"));
    assert_eq!(
        SpaKeys::new(other_key(33), other_key(64)),
        Err(KeyError::EncryptionKeyTooLong { len: 33 })
    );
}

#[test]
fn access_list_parsing() {
    assert_eq!(
        AccessPort::parse_list("tcp/22, UDP/1194").unwrap(),
        [AccessPort::tcp(22), AccessPort::udp(1194)]
    );
    assert_eq!(
        DisplayAccess(&[AccessPort::tcp(22), AccessPort::udp(53)]).to_string(),
        "tcp/22,udp/53"
    );
    assert_eq!(AccessPort::parse_list("tcp/22,").unwrap_err().offset(), 7);
    assert!(matches!(
        AccessPort::parse_list("tcp/0"),
        Err(AccessError::Port { offset: 4, .. })
    ));
    assert!(matches!(
        AccessPort::parse_list("icmp/1"),
        Err(AccessError::Protocol { .. })
    ));
    assert!(matches!(
        AccessPort::parse_list(" 22"),
        Err(AccessError::Syntax { offset: 1, .. })
    ));
    assert!(AccessPort::parse_list("tcp/65536").is_err());
}

#[test]
fn replay_cache_bounds_and_text() {
    let mut cache = ReplayCache::with_capacity(2);
    cache.insert([1; 32], 100, 0).unwrap();
    cache.insert([2; 32], 200, 0).unwrap();
    assert_eq!(
        cache.insert([3; 32], 300, 50),
        Err(ReplayCacheFull { capacity: 2 })
    );
    assert!(cache.contains(&[1; 32], 100));
    assert!(!cache.contains(&[1; 32], 101), "expired");
    // At 150 the first entry has expired and makes room.
    cache.insert([3; 32], 300, 150).unwrap();
    assert_eq!(cache.len(), 2);
    let text = cache.to_text();
    let back = ReplayCache::from_text(&text, 150, 2).unwrap();
    assert_eq!(back, cache);
    // Expired entries are dropped on load; the cap keeps the latest-expiring.
    assert_eq!(ReplayCache::from_text(&text, 250, 2).unwrap().len(), 1);
    assert_eq!(ReplayCache::from_text(&text, 0, 1).unwrap().len(), 1);
    let bad = ReplayCache::from_text("# c\nzz 5\n", 0, 2).unwrap_err();
    assert_eq!(bad.line, 2);
    let multibyte = format!("{} 5\n", "é".repeat(32));
    assert!(ReplayCache::from_text(&multibyte, 0, 2).is_err());
}

#[test]
fn replay_cache_full_refuses_authentic_packet() {
    let door = door();
    let mut cache = ReplayCache::with_capacity(1);
    cache.insert([7; 32], u64::MAX, 0).unwrap();
    assert_eq!(
        door.verify(TS, source(), FWKNOP_P1.as_bytes(), &mut cache),
        Err(Refusal::ReplayCacheFull { capacity: 1 })
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_payloads_are_refused_unauthenticated(payload in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let refusal = door()
                .verify(TS, source(), &payload, &mut ReplayCache::default())
                .unwrap_err();
            prop_assert!(refusal.is_unauthenticated(), "{refusal:?}");
        }

        #[test]
        fn base64_payloads_are_refused_by_the_hmac(payload in "[A-Za-z0-9+/]{140,399}") {
            prop_assert_eq!(decode(payload.as_bytes(), &keys()), Err(Refusal::BadHmac));
        }

        #[test]
        fn plaintext_parser_never_panics(body in "[0-9]{16}:[A-Za-z0-9+/:=.,]{0,120}") {
            let _ = parse_plaintext(with_digest(&body).as_bytes());
            let _ = parse_plaintext(body.as_bytes());
        }
    }
}
