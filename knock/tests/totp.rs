//! `knock --door` on time-based (TOTP) doors: the built binary sends the ports `oathtool`
//! predicts, and the README's shell recipe (oathtool + knock 0.8, no client of ours) sends
//! the same. Everything on loopback, UDP sinks bound on the predicted ports.

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn knock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knock"))
        .args(args)
        .output()
        .expect("run knock")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `oathtool --totp=ALG -b -d DIGITS -s 30s -N @TIME SECRET`.
fn oathtool(algorithm: &str, digits: u8, time: u64) -> String {
    let output = Command::new("oathtool")
        .arg(format!("--totp={algorithm}"))
        .args(["-b", "-d", &digits.to_string(), "-s", "30s"])
        .args(["-N", &format!("@{time}"), SECRET])
        .output()
        .expect("run oathtool (apt-get install oathtool)");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

/// The ports of `code` on `bases` as the README's recipe computes them (base + group, the
/// group read in decimal whatever its leading zeros).
fn ports(code: &str, bases: &[u16]) -> Vec<u16> {
    let width = code.len() / bases.len();
    bases
        .iter()
        .enumerate()
        .map(|(i, base)| base + code[i * width..(i + 1) * width].parse::<u16>().unwrap())
        .collect()
}

/// UDP sockets bound on loopback at given ports.
struct Sinks(Vec<UdpSocket>);

impl Sinks {
    /// Sinks on every port, or `None` when one is taken (by another test or program).
    fn bind(ports: &[u16]) -> Option<Self> {
        let mut sockets = Vec::new();
        for port in ports {
            let socket = UdpSocket::bind(("127.0.0.1", *port)).ok()?;
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            sockets.push(socket);
        }
        Some(Self(sockets))
    }

    /// Each sink received one knock (a single NUL byte).
    #[track_caller]
    fn assert_one_knock_each(&self) {
        for socket in &self.0 {
            let mut buffer = [0xff_u8; 16];
            let (length, _) = socket
                .recv_from(&mut buffer)
                .expect("a datagram within 10 s");
            assert_eq!(&buffer[..length], [0]);
        }
    }
}

/// The first time (30 s steps from `start`) whose code satisfies `wanted` and whose ports can
/// all be bound: (time, code, sinks).
fn find_time(
    algorithm: &str,
    digits: u8,
    bases: &[u16],
    start: u64,
    wanted: impl Fn(&str) -> bool,
) -> (u64, String, Vec<u16>, Sinks) {
    for step in 0..400 {
        let time = start + step * 30;
        let code = oathtool(algorithm, digits, time);
        if !wanted(&code) {
            continue;
        }
        let ports = ports(&code, bases);
        if let Some(sinks) = Sinks::bind(&ports) {
            return (time, code, ports, sinks);
        }
    }
    panic!("no usable time found");
}

fn write_secret_file(path: &Path, mode: u32) {
    std::fs::write(path, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[track_caller]
fn assert_hits(output: &Output, ports: &[u16]) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        text(&output.stderr)
    );
    let expected: String = ports
        .iter()
        .map(|p| format!("hitting udp 127.0.0.1:{p}\n"))
        .collect();
    assert_eq!(text(&output.stdout), expected);
}

#[test]
fn door_knocks_the_ports_oathtool_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("door.key");
    write_secret_file(&key, 0o600);
    let config = dir.path().join("knockd.conf");
    std::fs::write(
        &config,
        format!(
            "[totp]\n  sequence = 40000:udp,50000:udp\n  totp_secret_file = {}\n  \
             totp_algorithm = sha256\n  totp_digits = 8\n  command = true\n",
            key.display()
        ),
    )
    .unwrap();
    let bases = [40000, 50000];
    // A code with a leading zero (the first port is 4000x–4099x), and one without.
    let cases: [fn(&str) -> bool; 2] = [|c| c.starts_with('0'), |c| !c.starts_with('0')];
    for wanted in cases {
        let (time, code, ports, sinks) = find_time("SHA256", 8, &bases, 1_700_000_000, wanted);
        let output = knock(&[
            "-v",
            "--door",
            "totp",
            "-c",
            path(&config),
            "--totp-time",
            &time.to_string(),
            "127.0.0.1",
        ]);
        assert_hits(&output, &ports);
        sinks.assert_one_knock_each();
        assert!(
            !text(&output.stdout).contains(&code),
            "the code is not printed"
        );

        // The same instant as RFC 3339.
        let rfc3339 = jiff::Timestamp::from_second(i64::try_from(time).unwrap())
            .unwrap()
            .to_string();
        let output = knock(&[
            "-v",
            "--door",
            "totp",
            "-c",
            path(&config),
            "--totp-time",
            &rfc3339,
            "127.0.0.1",
        ]);
        assert_hits(&output, &ports);
        sinks.assert_one_knock_each();
    }
}

#[test]
fn inline_secret_three_steps() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("knockd.conf");
    // As an authenticator app shows it: lower case, in groups.
    std::fs::write(
        &config,
        "[d]\n  sequence = 41000:udp,42000:udp,43000:udp\n  \
         totp_secret = jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp\n",
    )
    .unwrap();
    let (time, _, ports, sinks) =
        find_time("SHA1", 6, &[41000, 42000, 43000], 1_800_000_000, |_| true);
    let output = knock(&[
        "-v",
        "--door",
        "d",
        "-c",
        path(&config),
        "--totp-time",
        &time.to_string(),
        "127.0.0.1",
    ]);
    assert_hits(&output, &ports);
    sinks.assert_one_knock_each();
}

#[test]
fn secret_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("door.key");
    write_secret_file(&key, 0o644);
    let config = dir.path().join("knockd.conf");
    std::fs::write(
        &config,
        format!(
            "[d]\n  sequence = 40000:udp,50000:udp\n  totp_secret_file = {}\n",
            key.display()
        ),
    )
    .unwrap();
    let output = knock(&["--door", "d", "-c", path(&config), "127.0.0.1"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        format!(
            "knock: totp secret file of door 'd', {}: accessible by group or others (mode 0644); \
             a secret file must be readable by its owner only (chmod 600)\n",
            key.display()
        )
    );
    assert!(!stderr.contains("JBSW"));

    let output = knock(&["--door", "d", "-c", path(&config), "--totp-time", "x", "h"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn readme_shell_recipe_with_knock_0_8() {
    // The recipe of the README, with `-N @TIME` added for a fixed time and UDP for both
    // steps (the sinks are UDP); knock 0.8 is /usr/bin/knock (Debian package knockd).
    let knock_0_8 = "/usr/bin/knock";
    assert!(
        Path::new(knock_0_8).exists(),
        "knock 0.8 missing (apt-get install knockd)"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("knockd.conf");
    std::fs::write(
        &config,
        format!(
            "[d]\n  sequence = 40000:udp,50000:udp\n  totp_secret = {SECRET}\n  \
             totp_algorithm = sha256\n  totp_digits = 8\n"
        ),
    )
    .unwrap();
    // A code whose second group has a leading zero ("08" is not octal with 10#).
    let (time, code, ports, sinks) = find_time("SHA256", 8, &[40000, 50000], 1_750_000_000, |c| {
        c[4..].starts_with('0') && c[4..6] != *"00"
    });
    let script = "code=$(oathtool --totp=SHA256 -b -d 8 -s 30s -N \"@$TIME\" \"$SECRET\") && \
                  \"$KNOCK\" -v 127.0.0.1 $((40000+10#${code:0:4})):udp $((50000+10#${code:4:4})):udp";
    let output = Command::new("bash")
        .args(["-c", script])
        .env("TIME", time.to_string())
        .env("SECRET", SECRET)
        .env("KNOCK", knock_0_8)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for port in &ports {
        assert!(stdout.contains(&format!(":{port}")), "{code}: {stdout}");
    }
    sinks.assert_one_knock_each();

    // Our client sends exactly the same.
    let output = knock(&[
        "-v",
        "--door",
        "d",
        "-c",
        path(&config),
        "--totp-time",
        &time.to_string(),
        "127.0.0.1",
    ]);
    assert_hits(&output, &ports);
    sinks.assert_one_knock_each();
}
