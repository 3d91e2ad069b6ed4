//! The knockd.conf configuration: typed model, parser and canonical display.
//!
//! [`Config::parse`] reads the classic knockd 0.8 format; [`Config`]'s `Display` writes it
//! back in a canonical form that parses to the same value. Problems are [`ConfigError`]s
//! (file, line, column, the line, a caret and often a hint); suspicious but valid input comes
//! back as [`Warning`]s in [`Parsed::warnings`]. The library never prints.
//!
//! # Grammar (knockd 0.8, with the footguns turned into errors)
//!
//! * The file is read line by line (`\n` or `\r\n`); each line is trimmed. Empty lines are
//!   skipped; a line whose **first non-blank character** is `#` is a comment. There are no
//!   trailing comments, quotes, escapes or continuations: `#` and `"` elsewhere are data.
//! * `[name]` starts a section; the name is taken verbatim (`[ d ]` is named ` d `) and is
//!   case-sensitive. `[options]` (exactly) is the global section and may appear several
//!   times, anywhere; any other name is a door (duplicate names give independent doors).
//!   `[]` is an error; so is a directive before the first section.
//! * `key = value` splits at the **first** `=` (values may contain `=`); both sides are
//!   trimmed; keys are case-insensitive. A later key overrides an earlier one, except
//!   `tcpflags`, which accumulates. Unknown keys are errors (with a "did you mean").
//! * `[options]` keys: `UseSyslog` (bare, or `= yes|no|true|false|on|off|1|0`; a bare
//!   `UseSyslog` in a door is accepted like 0.8 does, with a warning), `LogFile = PATH`,
//!   `PidFile = PATH`, `Interface = NAME[,NAME…]`, `AllowDuplicates` (bare or a boolean: the
//!   default for doors that do not set it).
//! * Door keys: `Sequence`, `One_Time_Sequences = PATH`, `Seq_Timeout` (alias `Timeout`,
//!   default 25 s), `TCPFlags`, `Start_Command` (alias `Command`), `Start_Command_6` (alias
//!   `Command_6`), `Cmd_Timeout` (default 10 s), `Stop_Command`, `Stop_Command_6`, `Target`,
//!   `Nft_Set`, `Nft_Set_6`, `AllowDuplicates` (bare or a boolean).
//!   A door key in `[options]` or an options key in a door is an error. Every door needs a
//!   `Sequence` or a `One_Time_Sequences` file, or is an SPA door (below).
//! * TOTP door keys (see [`crate::totp`]): `TOTP_Secret = BASE32` or
//!   `TOTP_Secret_File = PATH` (not both), `TOTP_Algorithm = sha1|sha256|sha512` (default
//!   sha1), `TOTP_Digits = 6|7|8` (default 6), `TOTP_Step` (a duration, whole seconds,
//!   default 30 s), `TOTP_Window = N` (0–10, default 1). A TOTP door needs a `Sequence`,
//!   which lists base ports, and no `One_Time_Sequences`; `TOTP_Digits` must be divisible by
//!   the number of steps and every base + 10^(digits/steps) − 1 must be ≤ 65535. Other
//!   `TOTP_*` keys without a secret are an error. The canonical display prints
//!   `totp_secret = <hidden>` instead of the key (see [`DisplayWithSecrets`]).
//! * Sequence: `port[:proto]` items separated by commas, blanks around `,` and `:` allowed
//!   (`7000, 8000 : udp`); protocol `tcp` (default) or `udp`, any case; at most
//!   [`MAX_SEQUENCE_LEN`] items. Ports are 1–65535. Errors where 0.8 guessed: empty items,
//!   non-numeric, negative, 0 or too large ports, blank-separated ports (`7000 8000`),
//!   trailing junk or comments, a third `:` field.
//! * TCPFlags: `fin syn rst psh ack urg`, any case, each optionally prefixed by `!` (must be
//!   clear), separated by commas, blanks tolerated (`syn, !ack`).
//! * Durations: bare digits are seconds (`5`); humantime forms are accepted too (`5s`,
//!   `1m30s`, `500ms`, `1.5s`), up to [`MAX_DURATION`] (3650 days). Negative, longer or other
//!   values are errors.
//! * A NUL byte outside a comment is an error (no command, path or name can hold one).
//! * Commands are kept verbatim (after trimming); an empty `_6` command (`command_6 =`) means
//!   "run nothing for IPv6", an absent one falls back to the IPv4 command.
//! * `Target` must be an IP address (any valid spelling, e.g. `fd99:0:0::2`).
//! * `Nft_Set = FAMILY TABLE SET` (IPv4 knockers) and `Nft_Set_6 = FAMILY TABLE SET` (IPv6
//!   knockers): three words separated by blanks; FAMILY is `ip`, `ip6` or `inet` (lower
//!   case, as nft writes it; `Nft_Set` cannot name an `ip6` table nor `Nft_Set_6` an `ip`
//!   one); TABLE and SET are nft identifiers ([`is_nft_identifier`]). A door with a set
//!   needs a `Cmd_Timeout` of at least 1 ms (the element's timeout).
//! * SPA doors ([`crate::spa`], fwknop-compatible): `SPA_Key_Base64` or `SPA_Key_File`,
//!   `SPA_HMAC_Key_Base64` or `SPA_HMAC_Key_File` (keys as `fwknop --key-gen` prints them),
//!   `SPA_Access = tcp/22[,udp/1194…]` (required), `SPA_Port` (default `62201:udp`; UDP
//!   only), `SPA_Max_Age` (a duration, default 120 s), `SPA_Require_Source = yes|no`
//!   (default no). An SPA door has no `Sequence` or `One_Time_Sequences`. Displayed
//!   configurations show inline keys as `<secret>`.
//!
//! One-time sequence files use the sequence syntax, one per line: see [`crate::ots`].

use std::net::IpAddr;

use crate::packet::{Protocol, TcpFlags};
use crate::time::Duration;
use crate::totp::{Secret, Totp, TotpError, TotpParams};

mod display;
mod error;
mod nft;
mod parse;
mod spa;

pub use display::{DisplayDuration, DisplaySequence, DisplayWithSecrets};
pub use error::{ConfigError, ConfigErrorKind, Warning, WarningKind};
pub use nft::{MAX_NFT_NAME_LEN, NftFamily, NftSetRef, is_nft_identifier};
pub(crate) use parse::{Located, sequence_value, split_lines};
pub use parse::{Parsed, parse_sequence};
pub use spa::{SpaConfig, SpaKeySource};

/// knockd 0.8's default `Seq_Timeout`: 25 seconds.
pub const DEFAULT_SEQ_TIMEOUT: Duration = Duration::from_secs(25);
/// knockd 0.8's default `Cmd_Timeout`: 10 seconds.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `Seq_Timeout` or `Cmd_Timeout` accepted: 3650 days (about ten years). Longer
/// values are surely mistakes, and the bound keeps every deadline computed from a timeout
/// representable (in memory as microseconds, on disk as seconds) instead of overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);
/// The most steps a sequence may have (knockd 0.8's `SEQ_MAX`).
pub const MAX_SEQUENCE_LEN: usize = 32;

/// A whole configuration file: global options and the doors, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The `[options]` section(s), merged.
    pub options: Options,
    /// Every door section, in file order (duplicate names allowed, as in knockd 0.8).
    pub doors: Vec<Door>,
}

/// The global `[options]` directives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// `UseSyslog`: log to syslog as well.
    pub use_syslog: bool,
    /// `LogFile = PATH`: append log lines to this file.
    pub log_file: Option<String>,
    /// `PidFile = PATH`: where `-d` writes the process id.
    pub pid_file: Option<String>,
    /// `Interface = NAME[,NAME…]`: the interfaces to listen on (empty: not set).
    pub interfaces: Vec<String>,
    /// `AllowDuplicates` in `[options]`: the default of [`Door::allow_duplicates`] for every
    /// door that does not set it (off by default).
    pub allow_duplicates: bool,
}

/// Where a TOTP door's secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpSecret {
    /// `TOTP_Secret = BASE32`: the key itself (its `Debug` is redacted; the canonical
    /// display prints a placeholder).
    Inline(Secret),
    /// `TOTP_Secret_File = PATH`: the first line of this file (read by the daemon or the
    /// client with [`crate::totp::secret_from_file`], which refuses a file group or others
    /// can access).
    File(String),
}

/// The TOTP settings of a door (see [`crate::totp`]): its `Sequence` lists base ports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TotpConfig {
    /// `TOTP_Secret` or `TOTP_Secret_File`.
    pub secret: TotpSecret,
    /// `TOTP_Algorithm`, `TOTP_Digits`, `TOTP_Step`, `TOTP_Window`.
    pub params: TotpParams,
}

impl TotpConfig {
    /// Settings with `secret` and every parameter at its default (sha1, 6 digits, 30 s,
    /// window 1).
    #[must_use]
    pub fn new(secret: TotpSecret) -> Self {
        Self {
            secret,
            params: TotpParams::default(),
        }
    }

    /// The secret when it is written in the configuration itself.
    #[must_use]
    pub fn inline_secret(&self) -> Option<&Secret> {
        match &self.secret {
            TotpSecret::Inline(secret) => Some(secret),
            TotpSecret::File(_) => None,
        }
    }

    /// The `TOTP_Secret_File` path, as written, when the secret is in a file.
    #[must_use]
    pub fn secret_file(&self) -> Option<&str> {
        match &self.secret {
            TotpSecret::File(path) => Some(path),
            TotpSecret::Inline(_) => None,
        }
    }

    /// The calculator for a door whose `Sequence` is `bases`, with `secret` (the inline one,
    /// or the one the caller read from the secret file).
    ///
    /// # Errors
    /// The parameters do not fit the bases (never for a door from [`Config::parse`]).
    pub fn totp(&self, secret: Secret, bases: &[Knock]) -> Result<Totp, TotpError> {
        Totp::new(secret, self.params, bases)
    }
}

/// One step of a knock sequence: a port and a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Knock {
    /// The destination port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl Knock {
    /// A TCP knock on `port`.
    #[must_use]
    pub const fn tcp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP knock on `port`.
    #[must_use]
    pub const fn udp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Udp,
        }
    }
}

/// The `TCPFlags` rule of a door: per flag, don't care, must be set, or must be clear.
///
/// It constrains TCP packets only; UDP packets always satisfy it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlagRule {
    /// Flags that must be set.
    pub must_set: TcpFlags,
    /// Flags that must be clear.
    pub must_clear: TcpFlags,
}

impl FlagRule {
    /// The rule that accepts every packet.
    pub const ANY: Self = Self {
        must_set: TcpFlags::EMPTY,
        must_clear: TcpFlags::EMPTY,
    };

    /// Whether a TCP packet with `flags` satisfies the rule.
    #[must_use]
    pub const fn accepts(self, flags: TcpFlags) -> bool {
        flags.contains(self.must_set) && !flags.intersects(self.must_clear)
    }

    /// Whether the rule constrains nothing.
    #[must_use]
    pub const fn is_any(self) -> bool {
        self.must_set.is_empty() && self.must_clear.is_empty()
    }
}

/// One door (a `[name]` section other than `[options]`): a knock sequence and what to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Door {
    /// The section name, verbatim.
    pub name: String,
    /// `Sequence`: the steps, at most [`MAX_SEQUENCE_LEN`]. Empty when the door takes its
    /// sequence from a `One_Time_Sequences` file (the daemon reads the file).
    pub sequence: Vec<Knock>,
    /// `One_Time_Sequences = PATH`.
    pub one_time_sequences: Option<String>,
    /// `Seq_Timeout` (alias `Timeout`): the whole sequence must arrive within this time,
    /// measured from the first knock. Default [`DEFAULT_SEQ_TIMEOUT`].
    pub seq_timeout: Duration,
    /// `TCPFlags`.
    pub tcp_flags: FlagRule,
    /// `Start_Command` (alias `Command`).
    pub start_command: Option<String>,
    /// `Start_Command_6` (alias `Command_6`). `None` falls back to `start_command`;
    /// `Some("")` runs nothing for IPv6 knockers.
    pub start_command_6: Option<String>,
    /// `Cmd_Timeout`: delay between the start and the stop command, and the timeout of the
    /// elements added to `nft_set`/`nft_set_6`. Default [`DEFAULT_CMD_TIMEOUT`].
    pub cmd_timeout: Duration,
    /// `Stop_Command`.
    pub stop_command: Option<String>,
    /// `Stop_Command_6`; falls back like `start_command_6`.
    pub stop_command_6: Option<String>,
    /// `Target`: the only destination this door accepts (instead of the local addresses).
    pub target: Option<IpAddr>,
    /// `Nft_Set = FAMILY TABLE SET`: IPv4 knockers' addresses go into this nftables set,
    /// with `cmd_timeout` as the element's timeout (family `ip` or `inet`).
    pub nft_set: Option<NftSetRef>,
    /// `Nft_Set_6 = FAMILY TABLE SET`: the set for IPv6 knockers (family `ip6` or `inet`).
    /// There is no fallback to `nft_set`: a set holds one address type.
    pub nft_set_6: Option<NftSetRef>,
    /// The `SPA_*` directives: an SPA door (no sequence), see [`SpaConfig`].
    pub spa: Option<SpaConfig>,
    /// `TOTP_Secret`/`TOTP_Secret_File` and the other `TOTP_*` keys: a time-based door,
    /// whose `sequence` lists the base ports (see [`crate::totp`]).
    pub totp: Option<TotpConfig>,
    /// `AllowDuplicates` (bare, or `= yes|no`; default: `[options]`' value, else off): a
    /// repeat of the step just matched, from the same source, is ignored instead of
    /// invalidating the attempt (retransmitted SYNs, `nc -z`, browsers).
    pub allow_duplicates: bool,
}

impl Door {
    /// A door with the given name and sequence and every other setting at its default.
    #[must_use]
    pub fn new(name: impl Into<String>, sequence: Vec<Knock>) -> Self {
        Self {
            name: name.into(),
            sequence,
            one_time_sequences: None,
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            tcp_flags: FlagRule::ANY,
            start_command: None,
            start_command_6: None,
            cmd_timeout: DEFAULT_CMD_TIMEOUT,
            stop_command: None,
            stop_command_6: None,
            target: None,
            nft_set: None,
            nft_set_6: None,
            spa: None,
            totp: None,
            allow_duplicates: false,
        }
    }

    /// The nftables set for a knocker at `source`: `nft_set` for IPv4, `nft_set_6` for IPv6.
    #[must_use]
    pub fn nft_set_for(&self, source: IpAddr) -> Option<&NftSetRef> {
        match source {
            IpAddr::V4(_) => self.nft_set.as_ref(),
            IpAddr::V6(_) => self.nft_set_6.as_ref(),
        }
    }

    /// The start command for a knocker at `source`: the `_6` variant for IPv6 when present,
    /// else the plain one; `None` when that is absent or empty (nothing to run).
    #[must_use]
    pub fn start_command_for(&self, source: IpAddr) -> Option<&str> {
        pick_command(
            source,
            self.start_command.as_deref(),
            self.start_command_6.as_deref(),
        )
    }

    /// The start command line for a knocker at `source`, ready to run: the command chosen
    /// by [`start_command_for`](Self::start_command_for) with every literal, case-sensitive
    /// `%IP%` replaced by the address (as knockd 0.8). The address text is only
    /// `[0-9a-f.:]`, so it cannot inject shell syntax.
    #[must_use]
    pub fn start_command_line(&self, source: IpAddr) -> Option<String> {
        Some(substitute_ip(self.start_command_for(source)?, source))
    }

    /// The stop command line for a knocker at `source`, like
    /// [`start_command_line`](Self::start_command_line) (`None` without a start command).
    #[must_use]
    pub fn stop_command_line(&self, source: IpAddr) -> Option<String> {
        Some(substitute_ip(self.stop_command_for(source)?, source))
    }

    /// Whether the start or stop command for `source` names `%PROTO%` or `%PORT%`: an SPA
    /// door then runs them once per granted port (with
    /// [`start_command_line_for_port`](Self::start_command_line_for_port)), else once per
    /// grant.
    #[must_use]
    pub fn commands_per_port(&self, source: IpAddr) -> bool {
        [
            self.start_command_for(source),
            self.stop_command_for(source),
        ]
        .into_iter()
        .flatten()
        .any(|c| c.contains("%PROTO%") || c.contains("%PORT%"))
    }

    /// The start command line for `source` and one granted port of an SPA door: `%IP%`,
    /// `%PROTO%` (`tcp`, `udp`) and `%PORT%` replaced (`None` without a start command).
    #[must_use]
    pub fn start_command_line_for_port(
        &self,
        source: IpAddr,
        port: crate::spa::AccessPort,
    ) -> Option<String> {
        Some(substitute_port(self.start_command_line(source)?, port))
    }

    /// The stop command line for `source` and one granted port, like
    /// [`start_command_line_for_port`](Self::start_command_line_for_port).
    #[must_use]
    pub fn stop_command_line_for_port(
        &self,
        source: IpAddr,
        port: crate::spa::AccessPort,
    ) -> Option<String> {
        Some(substitute_port(self.stop_command_line(source)?, port))
    }

    /// The stop command for a knocker at `source`, chosen like
    /// [`start_command_for`](Self::start_command_for). A stop command only runs after a
    /// start command ran.
    #[must_use]
    pub fn stop_command_for(&self, source: IpAddr) -> Option<&str> {
        self.start_command_for(source)?;
        pick_command(
            source,
            self.stop_command.as_deref(),
            self.stop_command_6.as_deref(),
        )
    }
}

fn substitute_ip(command: &str, source: IpAddr) -> String {
    command.replace("%IP%", &source.to_string())
}

fn substitute_port(command: String, port: crate::spa::AccessPort) -> String {
    command
        .replace("%PROTO%", port.protocol.as_str())
        .replace("%PORT%", &port.port.to_string())
}

fn pick_command<'a>(source: IpAddr, v4: Option<&'a str>, v6: Option<&'a str>) -> Option<&'a str> {
    let chosen = match source {
        IpAddr::V6(_) => v6.or(v4),
        IpAddr::V4(_) => v4,
    };
    chosen.filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_and_port_placeholders_run_per_port() {
        let mut door = Door::new("spa", Vec::new());
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let ssh = crate::spa::AccessPort {
            protocol: Protocol::Tcp,
            port: 22,
        };
        door.start_command = Some("open %IP% %PROTO% %PORT%".into());
        door.stop_command = Some("close %IP%".into());
        assert!(door.commands_per_port(v6));
        assert_eq!(
            door.start_command_line_for_port(v6, ssh).as_deref(),
            Some("open fd00::7 tcp 22")
        );
        assert_eq!(
            door.stop_command_line_for_port(v6, ssh).as_deref(),
            Some("close fd00::7")
        );
        door.start_command = Some("open %IP%".into());
        assert!(!door.commands_per_port(v6));
        door.stop_command = Some("close %IP% %PORT%".into());
        assert!(door.commands_per_port(v6));
    }

    #[test]
    fn ipv6_commands_fall_back_only_when_absent() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let mut door = Door::new("d", vec![Knock::tcp(1)]);
        door.start_command = Some("open %IP%".into());
        door.stop_command = Some("close %IP%".into());
        assert_eq!(door.start_command_for(v6), Some("open %IP%"));
        assert_eq!(door.stop_command_for(v6), Some("close %IP%"));
        door.start_command_6 = Some(String::new());
        assert_eq!(door.start_command_for(v6), None);
        assert_eq!(door.stop_command_for(v6), None, "no stop without a start");
        assert_eq!(door.start_command_for(v4), Some("open %IP%"));
    }

    /// `%IP%` substitution (moved from knockd's executor): every literal, case-sensitive
    /// occurrence, both families.
    #[test]
    fn command_lines_substitute_the_address() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let mut door = Door::new("d", vec![Knock::tcp(1)]);
        assert_eq!(door.start_command_line(v4), None);
        door.start_command = Some("iptables -A INPUT -s %IP% -j ACCEPT # %IP%".into());
        door.stop_command = Some("x %IP%%IP% %ip% %IP".into());
        assert_eq!(
            door.start_command_line(v4).as_deref(),
            Some("iptables -A INPUT -s 192.0.2.7 -j ACCEPT # 192.0.2.7")
        );
        assert_eq!(
            door.stop_command_line(v6).as_deref(),
            Some("x fd00::1fd00::1 %ip% %IP")
        );
        door.start_command_6 = Some(String::new());
        assert_eq!(door.stop_command_line(v6), None, "no stop without a start");
    }

    #[test]
    fn flag_rule_tri_state() {
        let rule = FlagRule {
            must_set: TcpFlags::SYN,
            must_clear: TcpFlags::ACK,
        };
        assert!(rule.accepts(TcpFlags::SYN));
        assert!(!rule.accepts(TcpFlags::SYN.union(TcpFlags::ACK)));
        assert!(!rule.accepts(TcpFlags::RST));
        assert!(FlagRule::ANY.accepts(TcpFlags::EMPTY));
    }
}
