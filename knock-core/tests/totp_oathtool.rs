//! Cross-check of the TOTP codes and sequences against `oathtool` (OATH Toolkit), the
//! reference a user without our client computes codes with (`scripts/test.sh` installs it).

use std::process::Command;

use knock_core::Knock;
use knock_core::totp::{Algorithm, Secret, Totp, TotpParams};

/// `oathtool --totp=ALG -b -d DIGITS -s STEPs -N @TIME SECRET`.
fn oathtool(algorithm: Algorithm, digits: u8, step: u64, time: u64, secret: &str) -> String {
    let output = Command::new("oathtool")
        .arg(format!("--totp={}", algorithm.name().to_ascii_uppercase()))
        .args(["-b", "-d", &digits.to_string(), "-s", &format!("{step}s")])
        .args(["-N", &format!("@{time}"), secret])
        .output()
        .expect("run oathtool (apt-get install oathtool)");
    assert!(
        output.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn codes_match_oathtool() {
    // A random-looking 20-byte key, and the same key as people type it.
    let secret_text = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let typed = "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp";
    let bases = [Knock::tcp(40000), Knock::udp(50000)];
    let mut compared = 0;
    for algorithm in Algorithm::ALL {
        for (digits, step) in [(6, 30), (8, 30), (8, 60), (6, 10)] {
            let params = TotpParams {
                algorithm,
                digits,
                step: std::time::Duration::from_secs(step),
                window: 1,
            };
            let totp = Totp::new(Secret::from_base32(typed).unwrap(), params, &bases).unwrap();
            for time in [
                0,
                59,
                1_111_111_109,
                1_234_567_890,
                1_700_000_029,
                20_000_000_000,
            ] {
                let expected = oathtool(algorithm, digits, step, time, secret_text);
                let code = totp.code_at(time);
                assert_eq!(
                    code.to_string(),
                    expected,
                    "{algorithm} d={digits} s={step} t={time}"
                );
                // The shell recipe of the README: base + 10#group, left to right.
                let half = usize::from(digits) / 2;
                let first: u16 = expected[..half].parse().unwrap();
                let second: u16 = expected[half..].parse().unwrap();
                assert_eq!(
                    totp.sequence_at(time),
                    [Knock::tcp(40000 + first), Knock::udp(50000 + second)]
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3 * 4 * 6);
}

#[test]
fn window_neighbours_match_oathtool() {
    let secret_text = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
    let params = TotpParams {
        algorithm: Algorithm::Sha256,
        digits: 8,
        window: 2,
        ..TotpParams::default()
    };
    let totp = Totp::new(
        Secret::from_base32(secret_text).unwrap(),
        params,
        &[
            Knock::tcp(10000),
            Knock::tcp(20000),
            Knock::tcp(30000),
            Knock::tcp(40000),
        ],
    )
    .unwrap();
    let now = 1_800_000_015;
    let window = totp.window(now);
    assert_eq!(window.len(), 5);
    for candidate in window {
        let expected = oathtool(
            Algorithm::Sha256,
            8,
            30,
            candidate.counter * 30,
            secret_text,
        );
        assert_eq!(
            candidate.code.to_string(),
            expected,
            "T={}",
            candidate.counter
        );
    }
}
