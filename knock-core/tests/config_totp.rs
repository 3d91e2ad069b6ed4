//! knockd.conf TOTP directives: parsing, defaults, every validation error (positioned, never
//! showing the secret), and the canonical display with the secret hidden.

use std::time::Duration;

use knock_core::totp::Secret;
use knock_core::totp::{Algorithm, LayoutError, SecretError, TotpParams};
use knock_core::{Config, ConfigError, Door, Knock};
use knock_core::{ConfigErrorKind, DisplayWithSecrets, TotpSecret};
use proptest::prelude::*;

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn door(text: &str) -> Door {
    match Config::parse(text) {
        Ok(parsed) => parsed.config.doors.into_iter().next().unwrap(),
        Err(e) => panic!("unexpected error:\n{e}"),
    }
}

fn error(text: &str) -> ConfigError {
    match Config::parse(text) {
        Ok(parsed) => panic!("expected an error for {text:?}, got {:?}", parsed.config),
        Err(e) => e,
    }
}

#[test]
fn defaults_and_every_key() {
    let d = door(&format!(
        "[d]\nsequence = 40000,50000:udp\ntotp_secret = {SECRET}\n"
    ));
    let totp = d.totp.as_ref().unwrap();
    assert_eq!(totp.params, TotpParams::default());
    assert_eq!(
        totp.params,
        TotpParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            step: Duration::from_secs(30),
            window: 1
        }
    );
    assert_eq!(
        totp.inline_secret().unwrap().as_bytes(),
        b"12345678901234567890"
    );
    assert_eq!(d.sequence, [Knock::tcp(40000), Knock::udp(50000)]);

    let d = door(
        "[d]\n  Sequence = 40000, 50000:udp\n  TOTP_Secret_File = /etc/knockd/d.key\n  \
         TOTP_Algorithm = SHA256\n  TOTP_Digits = 8\n  TOTP_Step = 1m\n  TOTP_Window = 0\n",
    );
    let totp = d.totp.unwrap();
    assert_eq!(totp.secret, TotpSecret::File("/etc/knockd/d.key".into()));
    assert_eq!(
        totp.params,
        TotpParams {
            algorithm: Algorithm::Sha256,
            digits: 8,
            step: Duration::from_secs(60),
            window: 0
        }
    );
}

#[test]
fn secrets_as_apps_write_them() {
    for text in [
        "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
    ] {
        let d = door(&format!(
            "[d]\nsequence = 40000,50000\ntotp_secret = {text}\n"
        ));
        assert_eq!(
            d.totp.unwrap().inline_secret().unwrap().as_bytes(),
            b"12345678901234567890",
            "{text}"
        );
    }
}

#[test]
fn bad_secrets_are_positioned_and_never_shown() {
    let bad = "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ";
    let e = error(&format!(
        "[d]\nsequence = 40000,50000\ntotp_secret = {bad}\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::InvalidTotpSecret {
            reason: SecretError::InvalidCharacter { position: 16 }
        }
    );
    assert_eq!((e.line(), e.column()), (3, 15));
    let shown = format!("{e}\n{e:?}");
    assert!(!shown.contains("GEZD"), "{shown}");
    assert_eq!(e.line_text(), "totp_secret = <hidden>");
    assert_eq!(
        e.summary(),
        "knockd.conf:3:15: invalid totp_secret: the secret is not BASE32: character 16 is not \
         one of A-Z, 2-7 (blanks, \"-\" and final \"=\" are ignored)"
    );

    let short = "GEZDGNBVGY3TQOJQ";
    let e = error(&format!(
        "[d]\nsequence = 40000,50000\n  TOTP_Secret =  {short}\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::InvalidTotpSecret {
            reason: SecretError::TooShort { bytes: 10 }
        }
    );
    assert_eq!((e.line(), e.column()), (3, 18));
    assert!(!e.to_string().contains(short), "{e}");

    let e = error("[d]\nsequence = 40000,50000\ntotp_secret = <hidden>\n");
    assert_eq!(e.kind(), &ConfigErrorKind::TotpSecretPlaceholder);
    let e = error("[d]\nsequence = 40000,50000\ntotp_secret =\n");
    assert!(
        matches!(e.kind(), ConfigErrorKind::EmptyValue { .. }),
        "{e}"
    );
}

#[test]
fn misspelt_secret_lines_are_redacted_too() {
    for (line, column) in [
        (format!("totp_secert = {SECRET}"), 1),
        (format!("TOTP_Secret {SECRET}"), 12),
        (format!("totp_secret: {SECRET}"), 1),
        (format!("secret = {SECRET}"), 1),
    ] {
        let e = error(&format!("[d]\nsequence = 40000,50000\n{line}\n"));
        let shown = format!("{e}\n{e:?}");
        assert!(!shown.contains("GEZD"), "{line}: {shown}");
        assert!(e.line_text().ends_with("<hidden>"), "{line}: {shown}");
        assert_eq!((e.line(), e.column()), (3, column), "{line}: {shown}");
    }
    let e = error(&format!(
        "[d]\nsequence = 40000,50000\ntotp_secret {SECRET}\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::MissingEquals {
            key: "totp_secret".into(),
            hint: Some("totp_secret = BASE32".into())
        }
    );
    // Other lines are quoted as they are.
    let e = error("[d]\nsequence = 40000,50000\ntotp_digits = 9\n");
    assert_eq!(e.line_text(), "totp_digits = 9");
}

#[test]
fn parameter_errors() {
    let base = format!("[d]\nsequence = 40000,50000\ntotp_secret = {SECRET}\n");
    for (line, expected, column) in [
        (
            "totp_algorithm = md5",
            ConfigErrorKind::InvalidTotpAlgorithm { text: "md5".into() },
            18,
        ),
        (
            "totp_digits = 9",
            ConfigErrorKind::InvalidTotpDigits { text: "9".into() },
            15,
        ),
        (
            "totp_digits = six",
            ConfigErrorKind::InvalidTotpDigits { text: "six".into() },
            15,
        ),
        (
            "totp_step = 1500ms",
            ConfigErrorKind::InvalidTotpStep {
                text: "1500ms".into(),
            },
            13,
        ),
        (
            "totp_step = 0",
            ConfigErrorKind::InvalidTotpStep { text: "0".into() },
            13,
        ),
        (
            "totp_window = 11",
            ConfigErrorKind::InvalidTotpWindow { text: "11".into() },
            15,
        ),
        (
            "totp_window = -1",
            ConfigErrorKind::InvalidTotpWindow { text: "-1".into() },
            15,
        ),
    ] {
        let e = error(&format!("{base}{line}\n"));
        assert_eq!(e.kind(), &expected, "{line}");
        assert_eq!((e.line(), e.column()), (4, column), "{line}");
    }
    let e = error(&format!("{base}totp_step = soon\n"));
    assert!(
        matches!(e.kind(), ConfigErrorKind::InvalidDuration { .. }),
        "{e}"
    );
}

#[test]
fn layout_errors_point_at_the_cause() {
    // 8 digits on 3 steps: at the totp_digits line.
    let e = error(&format!(
        "[d]\nsequence = 1000,2000,3000\ntotp_secret = {SECRET}\ntotp_digits = 8\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TotpLayout {
            door: "d".into(),
            reason: LayoutError::NotDivisible {
                digits: 8,
                steps: 3
            }
        }
    );
    assert_eq!((e.line(), e.column()), (4, 15));
    assert_eq!(
        e.summary(),
        "knockd.conf:4:15: door \"d\": totp_digits (8) must be divisible by the number of \
         sequence steps (3): the code is cut into equal groups, one per step"
    );
    // Default 6 digits on 4 steps: at the sequence line.
    let e = error(&format!(
        "[d]\nsequence = 1000,2000,3000,4000\ntotp_secret = {SECRET}\n"
    ));
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::TotpLayout {
            reason: LayoutError::NotDivisible { .. },
            ..
        }
    ));
    assert_eq!((e.line(), e.column()), (2, 12));
    // 65535 bound: at the offending base.
    let e = error(&format!(
        "[d]\nsequence = 40000, 55537:udp\ntotp_secret = {SECRET}\ntotp_digits = 8\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TotpLayout {
            door: "d".into(),
            reason: LayoutError::PortOverflow {
                step: 2,
                base: 55537,
                group_digits: 4,
                max_group: 9999
            }
        }
    );
    assert_eq!((e.line(), e.column()), (2, 19));
    assert!(e.to_string().contains("use a base of at most 55536"), "{e}");
    // The largest base that fits is accepted.
    let d = door(&format!(
        "[d]\nsequence = 40000,55536:udp\ntotp_secret = {SECRET}\ntotp_digits = 8\n"
    ));
    assert!(d.totp.is_some());
    // 6 digits, 3 steps of 2 digits: 65535 − 99.
    door(&format!(
        "[d]\nsequence = 65436,1,2\ntotp_secret = {SECRET}\n"
    ));
    let e = error(&format!(
        "[d]\nsequence = 65437,1,2\ntotp_secret = {SECRET}\n"
    ));
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::TotpLayout {
            reason: LayoutError::PortOverflow { step: 1, .. },
            ..
        }
    ));
}

#[test]
fn one_kind_of_sequence_per_door() {
    let e = error(&format!(
        "[d]\ntotp_secret = {SECRET}\ncommand = true\n[e]\nsequence = 1,2\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TotpWithoutSequence { door: "d".into() }
    );
    assert_eq!((e.line(), e.column()), (1, 1));

    let e = error(&format!(
        "[d]\nsequence = 40000,50000\none_time_sequences = /etc/ots\ntotp_secret = {SECRET}\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TotpWithOneTimeSequences { door: "d".into() }
    );
    assert_eq!((e.line(), e.column()), (3, 22));

    let e = error(&format!(
        "[d]\nsequence = 40000,50000\ntotp_secret = {SECRET}\ntotp_secret_file = /k\n"
    ));
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TotpSecretTwice { door: "d".into() }
    );
    assert_eq!((e.line(), e.column()), (4, 1));
    // The same key twice: the later one wins, as for every key.
    let d = door("[d]\nsequence = 40000,50000\ntotp_secret_file = /a\ntotp_secret_file = /b\n");
    assert_eq!(d.totp.unwrap().secret, TotpSecret::File("/b".into()));

    let e = error("[d]\nsequence = 40000,50000\n  totp_digits = 8\ntotp_window = 2\n");
    assert_eq!(
        e.kind(),
        &ConfigErrorKind::TotpWithoutSecret {
            door: "d".into(),
            key: "totp_digits".into()
        }
    );
    assert_eq!((e.line(), e.column()), (3, 3));

    let e = error(&format!("[options]\ntotp_secret = {SECRET}\n"));
    assert!(
        matches!(e.kind(), ConfigErrorKind::DoorKeyInOptions { .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("GEZD"), "{e}");
}

#[test]
fn display_hides_the_secret_and_prints_effective_values() {
    let text = format!("[d]\nsequence = 40000,50000:udp\ntotp_secret = {SECRET}\n");
    let config = Config::parse(&text).unwrap().config;
    let shown = config.to_string();
    assert_eq!(
        shown,
        "[d]\n    sequence = 40000:tcp,50000:udp\n    totp_secret = <hidden>\n    \
         totp_algorithm = sha1\n    totp_digits = 6\n    totp_step = 30\n    totp_window = 1\n    \
         seq_timeout = 25\n"
    );
    assert!(!format!("{config:?}").contains("GEZD"));
    let full = DisplayWithSecrets(&config).to_string();
    assert!(
        full.contains(&format!("totp_secret = {SECRET}\n")),
        "{full}"
    );
    assert_eq!(Config::parse(&full).unwrap().config, config);

    let file = door("[d]\nsequence = 40000,50000\ntotp_secret_file = /etc/k\ntotp_digits=8\n");
    let shown = file.to_string();
    assert!(shown.contains("    totp_secret_file = /etc/k\n"), "{shown}");
    assert_eq!(door(&shown), file);
}

#[test]
fn totp_doors_get_no_fixed_sequence_warnings() {
    // 40000,40001 would be "consecutive ascending ports" for a fixed door; bases are not.
    let parsed = Config::parse(&format!(
        "[d]\nsequence = 4000,4001,4002\ntotp_secret = {SECRET}\ncommand = true\n"
    ))
    .unwrap();
    assert_eq!(parsed.warnings, []);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text: no panic, and an error never repeats the text.
    #[test]
    fn base32_never_panics_nor_echoes(text in "[A-Za-z2-7 =01-]{0,80}|\\PC{0,40}") {
        if let Err(error) = Secret::from_base32(&text) {
            let message = error.to_string();
            let trimmed = text.trim();
            if trimmed.chars().count() >= 8 {
                prop_assert!(!message.contains(trimmed), "{}", message);
            }
        }
    }

    /// What a secret encodes to decodes back, in any case and with blanks every 4 characters.
    #[test]
    fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 16..64)) {
        let secret = Secret::from_bytes(&bytes).unwrap();
        let b32 = secret.to_base32().to_lowercase();
        let spaced: Vec<String> = b32
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        prop_assert_eq!(Secret::from_base32(&spaced.join(" ")).unwrap(), secret);
    }
}
