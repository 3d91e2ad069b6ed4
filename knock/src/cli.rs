//! The `knock` command line: knock 0.8's options plus `--door`, `--source-address` and
//! `--interface`. The binary is `fn main() -> ExitCode { knock::cli::main() }`.

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use knock_core::spa::AccessPort;
use knock_core::{Knock, Protocol};

use crate::door::{DoorError, DoorPlan, KnockTime, load_door};
use crate::send::{AddressFamily, KnockError, KnockOptions, knock_with, resolve_scoped};
use crate::spa::{SpaError, SpaSend, load_keys, send_spa};
use crate::spec::PortSpec;

/// The process exit statuses of `knock`, in one place (also listed by `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Every hit was sent (or `--help`/`--version` was printed).
    Success = 0,
    /// Resolving the host or sending a hit failed (unreachable network, bad source
    /// address or interface, …). Hits before the failure were sent.
    KnockFailed = 1,
    /// Invalid command line: unknown option, bad port or delay, missing ports. Nothing sent.
    Usage = 2,
    /// `--door`: the configuration or one-time-sequence file is unreadable or invalid, or
    /// has no such door, or an SPA door's keys are unusable. Nothing sent.
    Config = 3,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        Self::from(status as u8)
    }
}

/// The configuration file `--door` reads without `-c`, as knockd's default.
pub const DEFAULT_CONFIG: &str = "/etc/knockd.conf";

const AFTER_HELP: &str = "\
Each PORT is 1-65535, optionally followed by :tcp or :udp (any case).

Exit status:
  0  every hit was sent (also --help, --version)
  1  resolving the host or sending a hit failed
  2  invalid command line (nothing sent)
  3  --door: configuration or secret file unreadable or invalid, no such door, or unusable
     SPA keys (nothing sent)

--door NAME with an SPA door (SPA_* keys in knockd.conf) sends one fwknop-compatible SPA
packet over UDP to the door's SPA_Port instead of a sequence (--allow, --access).

Example:  knock myserver.example.com 123:tcp 456:udp 789:tcp";

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(
    name = "knock",
    version,
    about = "Port-knock client: sends one TCP SYN or UDP datagram per port, like knock 0.8",
    after_help = AFTER_HELP
)]
#[non_exhaustive]
pub struct Cli {
    /// Ports without a :tcp/:udp suffix use UDP (default is TCP)
    #[arg(short = 'u', long = "udp", conflicts_with = "door")]
    pub udp: bool,

    /// Wait MS milliseconds between port hits (not after the last one; at most 3600000)
    #[arg(
        short = 'd',
        long = "delay",
        value_name = "MS",
        default_value = "0",
        value_parser = parse_delay,
        allow_negative_numbers = true
    )]
    pub delay: Duration,

    /// Force usage of IPv4
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Force usage of IPv6
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Be verbose: print each hit before it is sent
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Knock the sequence of door NAME from the configuration file (one-time-sequence
    /// doors: the active line, which is not marked used)
    #[arg(long = "door", value_name = "NAME")]
    pub door: Option<String>,

    /// knockd configuration file read by --door [default: /etc/knockd.conf]
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        requires = "door",
        conflicts_with = "ports"
    )]
    pub config: Option<PathBuf>,

    /// SPA door: the address to let in [default: the packet's source (0.0.0.0)]
    #[arg(
        long = "allow",
        value_name = "ADDR",
        requires = "door",
        conflicts_with = "ports"
    )]
    pub allow: Option<IpAddr>,

    /// SPA door: the protocols/ports to ask for, e.g. tcp/22,udp/1194 [default: the door's
    /// SPA_Access]
    #[arg(
        long = "access",
        value_name = "PROTO/PORT,...",
        requires = "door",
        conflicts_with = "ports",
        value_parser = parse_access
    )]
    pub access: Option<AccessList>,

    /// TOTP doors: knock the code of this time instead of now (unix seconds, or an RFC 3339
    /// time such as 2026-01-02T03:04:05Z)
    #[arg(
        long = "totp-time",
        value_name = "TIME",
        requires = "door",
        conflicts_with = "ports",
        value_parser = parse_totp_time
    )]
    pub totp_time: Option<u64>,

    /// Send from this local address
    #[arg(long = "source-address", value_name = "ADDR")]
    pub source_address: Option<IpAddr>,

    /// Send through this network interface (SO_BINDTODEVICE; Linux only)
    #[arg(long = "interface", value_name = "IF")]
    pub interface: Option<String>,

    /// Host name or address to knock on (resolved once)
    #[arg(value_name = "HOST")]
    pub host: String,

    /// Ports to hit, in order
    #[arg(
        value_name = "PORT[:PROTO]",
        required_unless_present = "door",
        conflicts_with = "door"
    )]
    pub ports: Vec<PortSpec>,
}

/// The longest `-d` accepted: 3 600 000 ms (one hour). A knock's steps must all arrive within
/// the door's `seq_timeout`, so a longer pause is a mistake; knock 0.8 (and this client
/// before, issue 10 item 17) took `-d 18446744073709551615` and slept forever.
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// A `--access` list: `tcp/22,udp/1194`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessList(pub Vec<AccessPort>);

fn parse_access(text: &str) -> Result<AccessList, String> {
    AccessPort::parse_list(text)
        .map(AccessList)
        .map_err(|error| error.to_string())
}

/// Parses `--totp-time`: unix seconds, or an RFC 3339 time (any offset).
fn parse_totp_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    let timestamp: jiff::Timestamp = text.parse().map_err(|_| {
        format!("'{text}' is neither unix seconds nor an RFC 3339 time (2026-01-02T03:04:05Z)")
    })?;
    u64::try_from(timestamp.as_second()).map_err(|_| format!("'{text}' is before 1970"))
}

/// Parses `-d`: a whole number of milliseconds, not negative, at most [`MAX_DELAY_MS`].
fn parse_delay(text: &str) -> Result<Duration, String> {
    let digits = text.trim();
    if digits.starts_with('-') && digits.len() > 1 {
        return Err("delay cannot be negative".to_owned());
    }
    let too_long = || format!("delay '{text}' is longer than {MAX_DELAY_MS} ms (one hour)");
    match digits.parse::<u64>() {
        Ok(ms) if ms > MAX_DELAY_MS => Err(too_long()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Err(too_long())
        }
        Err(_) => Err(format!("'{text}' is not a whole number of milliseconds")),
    }
}

impl Cli {
    /// The address family `-4`/`-6` ask for; without them, the family of
    /// `--source-address` if given, else any.
    #[must_use]
    pub fn family(&self) -> AddressFamily {
        if self.ipv4 {
            AddressFamily::Ipv4
        } else if self.ipv6 {
            AddressFamily::Ipv6
        } else {
            self.source_address
                .map_or(AddressFamily::Any, AddressFamily::of)
        }
    }

    /// The knocks given on the command line, with `-u` applied to ports without a suffix.
    #[must_use]
    pub fn command_line_sequence(&self) -> Vec<Knock> {
        let default = if self.udp {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        self.ports
            .iter()
            .map(|spec| spec.resolve(default))
            .collect()
    }

    /// The configuration file `--door` reads: `-c FILE`, else [`DEFAULT_CONFIG`].
    #[must_use]
    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .unwrap_or_else(|| Path::new(DEFAULT_CONFIG))
    }

    /// The sending options.
    #[must_use]
    pub fn options(&self) -> KnockOptions {
        KnockOptions {
            delay: self.delay,
            source_address: self.source_address,
            interface: self.interface.clone(),
            scope_id: 0,
        }
    }
}

/// What went wrong after the command line was accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// `--door` failed.
    #[error(transparent)]
    Door(#[from] DoorError),
    /// Resolving or sending failed.
    #[error(transparent)]
    Knock(#[from] KnockError),
    /// An SPA door's packet could not be made or sent.
    #[error(transparent)]
    Spa(#[from] SpaError),
}

impl RunError {
    /// The exit status for this error.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            Self::Door(_) => Status::Config,
            Self::Knock(_) | Self::Spa(SpaError::Send(_) | SpaError::Random(_)) => {
                Status::KnockFailed
            }
            Self::Spa(_) => Status::Config,
        }
    }
}

/// Carries out a parsed command line, writing `-v` lines to `verbose_out`.
///
/// # Errors
/// See [`RunError`]; nothing is sent when the door or the host cannot be resolved.
pub fn run(cli: &Cli, verbose_out: &mut dyn Write) -> Result<(), RunError> {
    let plan = match &cli.door {
        Some(name) => {
            let time = cli.totp_time.map_or(KnockTime::Now, KnockTime::Unix);
            load_door(cli.config_path(), name, time)?
        }
        None => DoorPlan::Sequence(cli.command_line_sequence()),
    };
    let keys = match &plan {
        DoorPlan::Spa(spa) => Some(load_keys(spa)?),
        _ => None,
    };
    let (target, scope_id) = match resolve_scoped(&cli.host, cli.family()) {
        // The family was only a preference taken from --source-address: resolve without it
        // so that the mismatch is reported as such, not as a missing address.
        Err(KnockError::NoAddressInFamily { .. })
            if !cli.ipv4 && !cli.ipv6 && cli.source_address.is_some() =>
        {
            resolve_scoped(&cli.host, AddressFamily::Any)?
        }
        resolved => resolved?,
    };
    let options = cli.options().with_scope_id(scope_id);
    let sequence = match (plan, keys) {
        (DoorPlan::Spa(spa), Some(keys)) => {
            let what = SpaSend {
                allow: cli.allow,
                access: cli.access.clone().map(|list| list.0),
                ..SpaSend::default()
            };
            if cli.verbose {
                let _ = writeln!(verbose_out, "sending SPA packet udp {target}:{}", spa.port)
                    .and_then(|()| verbose_out.flush());
            }
            send_spa(target, &spa, &keys, &what, &options)?;
            return Ok(());
        }
        (DoorPlan::Sequence(sequence), _) => sequence,
        (_, _) => {
            return Err(RunError::Door(DoorError::NoSequence {
                door: cli.door.clone().unwrap_or_default(),
            }));
        }
    };
    knock_with(target, &sequence, &options, |hit| {
        if cli.verbose {
            // A closed stdout must not stop the knock itself.
            let _ = writeln!(verbose_out, "hitting {hit}").and_then(|()| verbose_out.flush());
        }
    })?;
    Ok(())
}

/// Parses `args` (program name first), runs, prints errors as `knock: …` on stderr, and
/// returns the exit status (see [`Status`]).
pub fn main_with_args<I, T>(args: I) -> Status
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = error.print();
            return if error.use_stderr() {
                Status::Usage
            } else {
                Status::Success
            };
        }
    };
    match run(&cli, &mut io::stdout().lock()) {
        Ok(()) => Status::Success,
        Err(error) => {
            eprintln!("knock: {error}");
            error.status()
        }
    }
}

/// The whole program: [`main_with_args`] on the process arguments.
#[must_use]
pub fn main() -> ExitCode {
    main_with_args(std::env::args_os()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("knock").chain(args.iter().copied()))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        parse(args).expect_err("should be rejected")
    }

    #[test]
    fn knock_0_8_command_line() {
        let cli = parse(&["-v", "-d", "100", "myserver", "7000", "8000:udp", "9000"]).unwrap();
        assert!(cli.verbose);
        assert_eq!(cli.delay, Duration::from_millis(100));
        assert_eq!(cli.host, "myserver");
        assert_eq!(
            cli.command_line_sequence(),
            [Knock::tcp(7000), Knock::udp(8000), Knock::tcp(9000)]
        );
        assert_eq!(cli.family(), AddressFamily::Any);
        assert_eq!(cli.options(), KnockOptions::default().with_delay(cli.delay));
    }

    #[test]
    fn long_options_and_options_after_operands() {
        let cli = parse(&["host", "1", "--udp", "--delay", "5", "--ipv6", "--verbose"]).unwrap();
        assert!(cli.udp && cli.verbose && cli.ipv6 && !cli.ipv4);
        assert_eq!(cli.delay, Duration::from_millis(5));
        assert_eq!(cli.command_line_sequence(), [Knock::udp(1)]);
        assert_eq!(cli.family(), AddressFamily::Ipv6);
        let cli = parse(&["-4", "host", "1"]).unwrap();
        assert_eq!(cli.family(), AddressFamily::Ipv4);
        assert_eq!(cli.delay, Duration::ZERO);
    }

    #[test]
    fn udp_flag_is_the_default_protocol_and_suffixes_win() {
        let cli = parse(&["-u", "host", "1", "2:tcp", "3:TCP", "4:udp"]).unwrap();
        assert_eq!(
            cli.command_line_sequence(),
            [Knock::udp(1), Knock::tcp(2), Knock::tcp(3), Knock::udp(4)]
        );
        let cli = parse(&["host", "9000:UDP", "9001:Udp"]).unwrap();
        assert_eq!(
            cli.command_line_sequence(),
            [Knock::udp(9000), Knock::udp(9001)]
        );
    }

    #[test]
    fn source_and_interface() {
        let cli = parse(&[
            "--source-address",
            "fd00::1",
            "--interface",
            "eth0",
            "host",
            "1",
        ])
        .unwrap();
        assert_eq!(cli.source_address, Some("fd00::1".parse().unwrap()));
        assert_eq!(cli.family(), AddressFamily::Ipv6, "follows the source");
        let options = cli.options();
        assert_eq!(options.interface.as_deref(), Some("eth0"));
        let cli = parse(&["--source-address", "fd00::1", "-4", "host", "1"]).unwrap();
        assert_eq!(
            cli.family(),
            AddressFamily::Ipv4,
            "-4 wins; run() reports it"
        );
        let error = parse_err(&["--source-address", "nope", "host", "1"]);
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn door_mode() {
        let cli = parse(&["--door", "ssh", "host"]).unwrap();
        assert_eq!(cli.door.as_deref(), Some("ssh"));
        assert_eq!(cli.config_path(), Path::new("/etc/knockd.conf"));
        let cli = parse(&["--door", "ssh", "-c", "/tmp/k.conf", "host"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/tmp/k.conf")));
        let error = parse_err(&["--door", "ssh", "host", "7000"]);
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        let error = parse_err(&["--door", "ssh", "-u", "host"]);
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
        let error = parse_err(&["-c", "/tmp/k.conf", "host", "7000"]);
        assert_eq!(
            error.kind(),
            ErrorKind::ArgumentConflict,
            "-c without --door"
        );
        let error = parse_err(&["-c", "/tmp/k.conf", "host"]);
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn totp_time() {
        let cli = parse(&["--door", "d", "--totp-time", "59", "host"]).unwrap();
        assert_eq!(cli.totp_time, Some(59));
        let cli = parse(&["--door", "d", "--totp-time", "2005-03-18T01:58:31Z", "host"]).unwrap();
        assert_eq!(cli.totp_time, Some(1_111_111_111));
        let cli = parse(&[
            "--door",
            "d",
            "--totp-time",
            "2005-03-18T03:58:31+02:00",
            "h",
        ])
        .unwrap();
        assert_eq!(cli.totp_time, Some(1_111_111_111));
        let error = parse_err(&["--door", "d", "--totp-time", "yesterday", "host"]);
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(
            error.to_string().contains("neither unix seconds"),
            "{error}"
        );
        let error = parse_err(&["--door", "d", "--totp-time", "1969-12-31T23:59:59Z", "h"]);
        assert!(error.to_string().contains("before 1970"), "{error}");
        let error = parse_err(&["--totp-time", "59", "host", "7000"]);
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict, "not with ports");
        let error = parse_err(&["--totp-time", "59", "host"]);
        assert_eq!(
            error.kind(),
            ErrorKind::MissingRequiredArgument,
            "needs --door"
        );
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for flag in ["-h", "--help"] {
            let error = parse_err(&[flag]);
            assert_eq!(error.kind(), ErrorKind::DisplayHelp);
            assert!(!error.use_stderr());
            let help = error.to_string();
            assert!(help.contains("Exit status:"), "{help}");
            assert!(help.contains("--source-address"), "{help}");
        }
        for flag in ["-V", "--version"] {
            let error = parse_err(&[flag]);
            assert_eq!(error.kind(), ErrorKind::DisplayVersion);
            assert_eq!(
                error.to_string(),
                format!("knock {}\n", env!("CARGO_PKG_VERSION"))
            );
        }
        assert_eq!(main_with_args(["knock", "-h"]), Status::Success);
    }

    #[test]
    fn usage_errors() {
        assert_eq!(
            parse_err(&[]).kind(),
            ErrorKind::MissingRequiredArgument,
            "no host"
        );
        assert_eq!(
            parse_err(&["host"]).kind(),
            ErrorKind::MissingRequiredArgument,
            "no port"
        );
        assert_eq!(
            parse_err(&["-x", "host", "1"]).kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse_err(&["-4", "-6", "host", "1"]).kind(),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(main_with_args(["knock", "host"]), Status::Usage);
        assert_eq!(main_with_args(["knock", "host", "0"]), Status::Usage);
    }

    #[test]
    fn every_port_error_is_a_usage_error() {
        for (port, message) in [
            ("0", "port 0 is not a valid port"),
            ("65536", "port 65536 is out of range"),
            ("70000", "port 70000 is out of range"),
            ("ssh", "port 'ssh' is not a number"),
            ("7000:xyz", "unknown protocol 'xyz'"),
            ("7000:", "missing protocol"),
            (":udp", "missing port number"),
        ] {
            let error = parse_err(&["host", "1", port]);
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{port}");
            let text = error.to_string();
            assert!(text.contains(message), "{port}: {text}");
        }
    }

    #[test]
    fn delay_errors() {
        for (delay, message) in [
            ("-5", "delay cannot be negative"),
            ("-1", "delay cannot be negative"),
            ("abc", "'abc' is not a whole number of milliseconds"),
            ("1.5", "'1.5' is not a whole number of milliseconds"),
            ("", "is not a whole number of milliseconds"),
        ] {
            let error = parse_err(&["-d", delay, "host", "1"]);
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{delay}");
            let text = error.to_string();
            assert!(text.contains(message), "{delay}: {text}");
        }
        assert_eq!(parse(&["-d", "0", "h", "1"]).unwrap().delay, Duration::ZERO);
        // Issue 10 item 17: a huge delay slept forever; above one hour it is a usage error.
        assert_eq!(
            parse(&["-d", "3600000", "h", "1"]).unwrap().delay,
            Duration::from_secs(3600)
        );
        for huge in ["3600001", "18446744073709551615", "99999999999999999999999"] {
            let error = parse_err(&["-d", huge, "host", "1"]);
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{huge}");
            let text = error.to_string();
            assert!(
                text.contains("is longer than 3600000 ms (one hour)"),
                "{huge}: {text}"
            );
        }
    }

    #[test]
    fn run_errors_map_to_statuses() {
        let cli = parse(&["-6", "127.0.0.1", "7000"]).unwrap();
        let error = run(&cli, &mut Vec::new()).unwrap_err();
        assert_eq!(error.status(), Status::KnockFailed);
        assert_eq!(
            error.to_string(),
            "hostname '127.0.0.1' has no IPv6 address"
        );

        let cli = parse(&["--door", "x", "-c", "/nonexistent/knockd.conf", "127.0.0.1"]).unwrap();
        let error = run(&cli, &mut Vec::new()).unwrap_err();
        assert_eq!(error.status(), Status::Config);
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/knockd.conf: "),
            "{error}"
        );
    }

    #[test]
    fn verbose_lines_match_knock_0_8() {
        // UDP to the discard port on loopback: harmless, and the line is what matters.
        let cli = parse(&["-v", "-u", "127.0.0.1", "9", "9:tcp"]).unwrap();
        let mut out = Vec::new();
        run(&cli, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hitting udp 127.0.0.1:9\nhitting tcp 127.0.0.1:9\n"
        );
        let cli = parse(&["127.0.0.1", "9:udp"]).unwrap();
        let mut out = Vec::new();
        run(&cli, &mut out).unwrap();
        assert!(out.is_empty(), "quiet without -v");
    }

    #[test]
    fn spa_door_sends_a_packet_the_door_accepts() {
        use knock_core::spa::{Refusal, ReplayCache, SpaDoor};
        use std::net::UdpSocket;
        use std::os::unix::fs::PermissionsExt as _;

        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let hmac_path = dir.path().join("hmac.key");
        std::fs::write(
            &hmac_path,
            "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==\n",
        )
        .unwrap();
        std::fs::set_permissions(&hmac_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let conf = dir.path().join("knockd.conf");
        std::fs::write(
            &conf,
            format!(
                "[ssh]\nspa_key_base64 = p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=\n\
                 spa_hmac_key_file = {}\nspa_port = {port}\nspa_access = tcp/22,udp/1194\n",
                hmac_path.display()
            ),
        )
        .unwrap();
        let config = knock_core::Config::parse(&std::fs::read_to_string(&conf).unwrap())
            .unwrap()
            .config;
        let spa = config.doors[0].spa.clone().unwrap();
        let door = SpaDoor::new(load_keys(&spa).unwrap(), spa.access.clone());
        let conf_arg = conf.to_str().unwrap();
        let mut cache = ReplayCache::default();
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let mut receive = |args: &[&str]| {
            let cli = parse(args).unwrap();
            let mut out = Vec::new();
            run(&cli, &mut out).unwrap();
            let mut buf = [0u8; 2048];
            let (len, from) = server.recv_from(&mut buf).unwrap();
            (door.verify(now(), from.ip(), &buf[..len], &mut cache), out)
        };
        let (result, out) = receive(&["-v", "--door", "ssh", "-c", conf_arg, "127.0.0.1"]);
        let grant = result.unwrap();
        assert_eq!(
            grant.address,
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "0.0.0.0: the source"
        );
        assert_eq!(grant.ports, [AccessPort::tcp(22), AccessPort::udp(1194)]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("sending SPA packet udp 127.0.0.1:{port}\n")
        );
        let (result, _) = receive(&[
            "--door",
            "ssh",
            "-c",
            conf_arg,
            "--allow",
            "10.0.0.5",
            "--access",
            "tcp/22",
            "127.0.0.1",
        ]);
        let grant = result.unwrap();
        assert_eq!(grant.address, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(grant.ports, [AccessPort::tcp(22)]);
        let (result, _) = receive(&[
            "--door",
            "ssh",
            "-c",
            conf_arg,
            "--access",
            "tcp/23",
            "127.0.0.1",
        ]);
        assert_eq!(
            result.unwrap_err(),
            Refusal::NotAllowed {
                requested: AccessPort::tcp(23)
            }
        );
        // A key file readable by others: refused before anything is sent.
        std::fs::set_permissions(&hmac_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cli = parse(&["--door", "ssh", "-c", conf_arg, "127.0.0.1"]).unwrap();
        let error = run(&cli, &mut Vec::new()).unwrap_err();
        assert_eq!(error.status(), Status::Config);
        assert!(
            error.to_string().contains("readable by group or others"),
            "{error}"
        );
        // --allow/--access need --door; a bad --access is a usage error.
        assert_eq!(
            parse_err(&["--allow", "10.0.0.1", "h", "1"]).kind(),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            parse_err(&["--access", "tcp/22", "h"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        let error = parse_err(&["--door", "ssh", "--access", "tcp/0", "h"]);
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            Status::Success,
            Status::KnockFailed,
            Status::Usage,
            Status::Config,
        ]
        .map(|s| s as u8);
        assert_eq!(codes, [0, 1, 2, 3]);
    }
}
