//! `Nft_Set` / `Nft_Set_6`: parsing, positioned errors, canonical display round trip.

use std::net::IpAddr;
use std::time::Duration;

use knock_core::{Config, ConfigError, Door, Knock};
use knock_core::{ConfigErrorKind, NftFamily, NftSetRef};
use proptest::prelude::*;

fn door(extra: &str) -> Door {
    let text = format!("[ssh]\nsequence = 7000,8000\n{extra}\n");
    let parsed = Config::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    parsed.config.doors.into_iter().next().unwrap()
}

fn error(extra: &str) -> ConfigError {
    let text = format!("[ssh]\nsequence = 7000,8000\n{extra}\n");
    match Config::parse(&text) {
        Ok(parsed) => panic!("expected an error, got {:?}", parsed.config.doors),
        Err(e) => e,
    }
}

#[test]
fn both_directives() {
    let d =
        door("Nft_Set = inet knockd ssh4\nNFT_SET_6 =   inet\tknockd   ssh6  \ncmd_timeout = 30");
    assert_eq!(
        d.nft_set,
        Some(NftSetRef::new(NftFamily::Inet, "knockd", "ssh4"))
    );
    assert_eq!(
        d.nft_set_6,
        Some(NftSetRef::new(NftFamily::Inet, "knockd", "ssh6"))
    );
    let v4: IpAddr = "10.0.0.1".parse().unwrap();
    let v6: IpAddr = "fd00::1".parse().unwrap();
    assert_eq!(d.nft_set_for(v4).unwrap().set, "ssh4");
    assert_eq!(d.nft_set_for(v6).unwrap().set, "ssh6");

    // Family-specific tables; no fallback from _6 to the IPv4 set.
    let d = door("nft_set = ip filter knock_v4\nnft_set_6 = ip6 filter6 knock.v6");
    assert_eq!(d.nft_set.unwrap().family, NftFamily::Ip);
    assert_eq!(d.nft_set_6.unwrap().family, NftFamily::Ip6);
    let d = door("nft_set = inet t s");
    assert_eq!(d.nft_set_for(v6), None);
    let d = door("start_command = true");
    assert_eq!((d.nft_set, d.nft_set_6), (None, None));
}

#[test]
fn positioned_errors() {
    let e = error("nft_set = inet knockd");
    assert_eq!(
        e.summary(),
        "knockd.conf:3:11: invalid value \"inet knockd\" for nft_set (expected FAMILY TABLE \
         SET, e.g. \"inet knockd ssh4\")"
    );
    assert!(matches!(
        error("nft_set = inet a b c").kind(),
        ConfigErrorKind::NftSetSyntax { .. }
    ));

    let e = error("nft_set = bridge knockd ssh4");
    assert_eq!(
        e.summary(),
        "knockd.conf:3:11: unknown nftables family \"bridge\" for nft_set (expected ip, ip6 or \
         inet)"
    );
    assert!(matches!(
        error("nft_set = INET t s").kind(),
        ConfigErrorKind::NftFamily { .. }
    ));

    let e = error("nft_set = inet 4table ssh4");
    assert_eq!(e.column(), 16);
    assert!(
        e.summary()
            .contains("invalid nftables table name \"4table\""),
        "{e}"
    );
    let e = error("Nft_Set_6 = inet knockd ssh;6");
    assert_eq!(e.column(), 25);
    assert!(
        e.summary().contains("invalid nftables set name \"ssh;6\""),
        "{e}"
    );
    let long = "s".repeat(256);
    assert!(matches!(
        error(&format!("nft_set = inet t {long}")).kind(),
        ConfigErrorKind::NftName { what: "set", .. }
    ));

    let e = error("nft_set = ip6 knockd ssh");
    assert_eq!(
        e.summary(),
        "knockd.conf:3:11: nft_set is for IPv4 knockers and cannot name an ip6 table (use \
         nft_set_6 for ip6 sets, or an inet table)"
    );
    let e = error("nft_set_6 = ip knockd ssh");
    assert_eq!(
        e.summary(),
        "knockd.conf:3:13: nft_set_6 is for IPv6 knockers and cannot name an ip table (use \
         nft_set for ip sets, or an inet table)"
    );

    // An empty value is the usual "missing value" error.
    assert!(matches!(
        error("nft_set =").kind(),
        ConfigErrorKind::EmptyValue { .. }
    ));

    // The element's timeout is cmd_timeout: zero (or under 1 ms) would never expire.
    for timeout in ["0", "500us"] {
        let e = error(&format!(
            "nft_set = inet knockd ssh4\ncmd_timeout = {timeout}"
        ));
        assert_eq!(e.line(), 1, "reported at the door header");
        assert!(
            matches!(e.kind(), ConfigErrorKind::NftSetWithoutTimeout { door } if door == "ssh"),
            "{e}"
        );
    }
    assert_eq!(
        door("cmd_timeout = 1ms\nnft_set_6 = inet k s").cmd_timeout,
        Duration::from_millis(1)
    );
    // Without a set, cmd_timeout = 0 stays valid (knockd 0.8 accepts it).
    let _ = door("cmd_timeout = 0");
}

#[test]
fn canonical_display() {
    let d = door("nft_set_6 = inet knockd ssh6\nnft_set = ip filter ssh4");
    assert_eq!(
        d.to_string(),
        "[ssh]\n    sequence = 7000:tcp,8000:tcp\n    seq_timeout = 25\n    cmd_timeout = 10\n    \
         nft_set = ip filter ssh4\n    nft_set_6 = inet knockd ssh6\n"
    );
}

fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z_][A-Za-z0-9_./-]{0,12}").unwrap()
}

fn set_ref(ipv6: bool) -> impl Strategy<Value = NftSetRef> {
    let family = if ipv6 {
        prop_oneof![Just(NftFamily::Ip6), Just(NftFamily::Inet)].boxed()
    } else {
        prop_oneof![Just(NftFamily::Ip), Just(NftFamily::Inet)].boxed()
    };
    (family, name(), name()).prop_map(|(family, table, set)| NftSetRef::new(family, table, set))
}

proptest! {
    #[test]
    fn display_round_trips(
        v4 in proptest::option::of(set_ref(false)),
        v6 in proptest::option::of(set_ref(true)),
        millis in 1u64..100_000_000,
    ) {
        let mut config = Config::default();
        let mut d = Door::new("door", vec![Knock::tcp(1), Knock::udp(2)]);
        d.nft_set = v4;
        d.nft_set_6 = v6;
        d.cmd_timeout = Duration::from_millis(millis);
        config.doors.push(d);
        let text = config.to_string();
        let parsed = Config::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n---\n{text}")))?;
        prop_assert_eq!(parsed.config, config, "text:\n{}", text);
    }
}
