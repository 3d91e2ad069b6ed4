//! Fuzz `knock_core::Config::parse` on arbitrary text: it must never panic, every error must
//! be positioned (line and column from 1) and display, and every accepted configuration must
//! survive its canonical display (`parse(display(c)) == c`; SPA doors with inline keys
//! excepted: those display as `<secret>`). The one-time sequences scanner
//! runs on the same text (it must not panic either, and marking its active sequence must
//! leave the file scannable).
#![no_main]

use knock_core::SpaKeySource;
use knock_core::{Config, ots};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(parsed) => {
            let canonical = parsed.config.to_string();
            // Inline SPA keys display as `<secret>` (never printed), so such a configuration
            // cannot read back from its display.
            let inline_secret = parsed.config.doors.iter().any(|door| {
                door.spa.as_ref().is_some_and(|spa| {
                    matches!(spa.key, SpaKeySource::Inline(_))
                        || matches!(spa.hmac_key, SpaKeySource::Inline(_))
                })
            });
            if inline_secret {
                assert!(canonical.contains("<secret>"));
            } else {
                let again = Config::parse(&canonical)
                    .unwrap_or_else(|e| panic!("canonical text does not parse: {e}\n{canonical}"));
                assert_eq!(
                    again.config, parsed.config,
                    "round trip changed:\n{canonical}"
                );
            }
            for warning in &parsed.warnings {
                let _ = warning.to_string();
            }
        }
        Err(error) => {
            assert!(error.line() >= 1 && error.column() >= 1);
            let _ = error.to_string();
        }
    }

    let scan = ots::scan(text);
    if let Some(active) = scan.active {
        let step = ots::advance(text, &active.sequence).expect("the active line is markable");
        assert_eq!(ots::scan(&step.text).remaining, scan.remaining - 1);
    }
});
