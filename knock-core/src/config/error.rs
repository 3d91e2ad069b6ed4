//! Positioned configuration errors and warnings.
//!
//! Errors stop the parse; warnings are collected beside the parsed configuration. Both name
//! the line (errors also the column, counted in characters, 1-based), and both display with
//! a file name prefix, `knockd.conf` unless another was given with `with_file`.

use core::fmt;

use crate::totp::{LayoutError, SecretError};

/// The file name shown when none was given with `with_file`.
const DEFAULT_FILE_NAME: &str = "knockd.conf";

/// A configuration error: where it is (file, line, column) and what is wrong.
///
/// Displays as `knockd.conf:7:14: message`, followed by the offending line and a caret under
/// the column:
///
/// ```text
/// knockd.conf:7:14: unknown protocol "icmp" in sequence (expected tcp or udp)
///     sequence = 1:icmp
///                  ^
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    file: Option<String>,
    line: usize,
    column: usize,
    line_text: String,
    kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error at `line`/`column` (1-based) of a file whose text at that line is `line_text`.
    #[must_use]
    pub fn new(
        line: usize,
        column: usize,
        line_text: impl Into<String>,
        kind: ConfigErrorKind,
    ) -> Self {
        Self {
            file: None,
            line,
            column,
            line_text: line_text.into(),
            kind,
        }
    }

    /// The same error, naming `file` (the path as the user gave it) in its display.
    #[must_use]
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// The file name given with [`with_file`](Self::with_file), if any.
    #[must_use]
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line number.
    #[must_use]
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column (in characters).
    #[must_use]
    pub fn column(&self) -> usize {
        self.column
    }

    /// The text of the offending line (without its line terminator).
    #[must_use]
    pub fn line_text(&self) -> &str {
        &self.line_text
    }

    /// What is wrong.
    #[must_use]
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }

    /// The first line of the display: `file:line:column: message`, without the quoted line
    /// and caret (for log lines and syslog).
    #[must_use]
    pub fn summary(&self) -> String {
        let file = self.file.as_deref().unwrap_or(DEFAULT_FILE_NAME);
        format!("{file}:{}:{}: {}", self.line, self.column, self.kind)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        if !self.line_text.is_empty() {
            // The caret line copies tabs from the quoted line so the caret stays under the
            // right character however the terminal expands tabs.
            let pad: String = self
                .line_text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n    {}\n    {pad}^", self.line_text)?;
        }
        Ok(())
    }
}

/// What is wrong with a configuration.
///
/// Messages are lower-case, like knockd 0.8's, and carry a hint where one helps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A line that is not a section header, a `key = value` directive, or a comment.
    #[error("syntax error: expected \"key = value\", \"[section]\" or a \"#\" comment")]
    Syntax,
    /// A directive without `=` (only `UseSyslog` may stand alone).
    #[error("syntax error: missing \"=\" after \"{key}\"{}", hint_suffix(hint.as_deref()))]
    MissingEquals {
        /// The key: the first word of the line.
        key: String,
        /// A corrected line, when the intent is clear.
        hint: Option<String>,
    },
    /// A directive whose key is empty (`= value`).
    #[error("syntax error: empty key before \"=\"")]
    EmptyKey,
    /// A line starting with `[` that does not end with `]`.
    #[error("syntax error: section header without a closing \"]\"")]
    UnterminatedSection,
    /// A section header followed by more text (`[openSSH] # ssh`).
    #[error("unexpected \"{text}\" after the section header; comments must be on their own line")]
    TextAfterSectionHeader {
        /// The text after the `]`.
        text: String,
    },
    /// `[]`: a section header with an empty name.
    #[error("bad section name: a section name cannot be empty")]
    BadSectionName,
    /// A directive before the first section header.
    #[error(
        "all directives must belong to a section; add \"[options]\" or a door header such as \
         \"[openSSH]\" above this line"
    )]
    DirectiveOutsideSection,
    /// A key that knockd.conf does not know.
    #[error("unknown key \"{key}\"{}", suggestion_suffix(suggestion.as_deref()))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The closest known key, when one is close.
        suggestion: Option<String>,
    },
    /// A door key (`sequence`, `command`, …) inside `[options]`.
    #[error("\"{key}\" is a door key and cannot be used in the [options] section")]
    DoorKeyInOptions {
        /// The key as written.
        key: String,
    },
    /// An `[options]` key (`logfile`, …) inside a door section.
    #[error(
        "\"{key}\" is an [options] key and cannot be used in door section \"{door}\"{}",
        options_case_hint(door)
    )]
    OptionKeyInDoor {
        /// The key as written.
        key: String,
        /// The door's name.
        door: String,
    },
    /// A key that needs a value was given none (`sequence =`).
    #[error("missing value for \"{key}\"")]
    EmptyValue {
        /// The key as written.
        key: String,
    },
    /// An empty item in a port list (`7000,,8000`, a trailing comma).
    #[error("empty port in sequence; remove the extra comma (knockd 0.8 read it as port 0)")]
    EmptyPort,
    /// A port that is not a decimal number (`abc`, `12x`).
    #[error("port \"{text}\" is not a number (expected 1-65535)")]
    PortNotANumber {
        /// The item as written.
        text: String,
    },
    /// A negative port (`-1`).
    #[error("port \"{text}\" is negative (expected 1-65535)")]
    NegativePort {
        /// The item as written.
        text: String,
    },
    /// Port 0: nothing can be knocked on it.
    #[error("port 0 cannot be knocked (expected 1-65535)")]
    PortZero,
    /// A port above 65535.
    #[error("port \"{text}\" is invalid: out of range (expected 1-65535)")]
    PortOutOfRange {
        /// The item as written.
        text: String,
    },
    /// Ports separated by blanks instead of commas (`7000 8000 9000`).
    #[error("ports must be separated by commas; did you mean \"{suggestion}\"?")]
    SpaceSeparatedPorts {
        /// The value with commas.
        suggestion: String,
    },
    /// A `#` after a port: comments must be on their own line.
    #[error("unexpected \"{text}\" after a port in sequence; comments must be on their own line")]
    TrailingComment {
        /// The text from the `#` on.
        text: String,
    },
    /// A protocol other than `tcp` or `udp` (case-insensitive).
    #[error("{}", unknown_protocol_message(protocol))]
    UnknownProtocol {
        /// The protocol as written (empty for `7000:`).
        protocol: String,
    },
    /// A third `:` field in a sequence item (`7000:tcp:junk`; knockd 0.8 ignored it).
    #[error(
        "unexpected \"{text}\" after the protocol in sequence (expected port or port:protocol)"
    )]
    ExtraSequenceField {
        /// The text from the second `:` on.
        text: String,
    },
    /// More than [`MAX_SEQUENCE_LEN`](super::MAX_SEQUENCE_LEN) steps.
    #[error("too many ports in knock sequence ({count}; at most {max})", max = super::MAX_SEQUENCE_LEN)]
    TooManySteps {
        /// How many steps were given.
        count: usize,
    },
    /// A `tcpflags` item that is not one of fin, syn, rst, psh, ack, urg.
    #[error(
        "unrecognized flag \"{flag}\" (expected fin, syn, rst, psh, ack or urg, each optionally \
         prefixed by \"!\")"
    )]
    UnknownFlag {
        /// The item as written.
        flag: String,
    },
    /// An empty `tcpflags` item (`syn,,ack`, a trailing comma, a lone `!`).
    #[error("empty flag in tcpflags; remove the extra comma")]
    EmptyFlag,
    /// A duration that is neither whole seconds nor a humantime duration.
    #[error(
        "invalid duration \"{text}\" for {key} (expected seconds such as \"5\", or a duration \
         such as \"5s\", \"500ms\" or \"1m30s\")"
    )]
    InvalidDuration {
        /// The key as written.
        key: String,
        /// The value as written.
        text: String,
    },
    /// A negative duration (`timeout = -5`; knockd 0.8 accepted it and misbehaved).
    #[error("negative duration \"{text}\" for {key} (expected 0 or more seconds)")]
    NegativeDuration {
        /// The key as written.
        key: String,
        /// The value as written.
        text: String,
    },
    /// A duration longer than [`MAX_DURATION`](super::MAX_DURATION) (3650 days).
    #[error("duration \"{text}\" for {key} is too long (at most 3650 days)")]
    DurationTooLong {
        /// The key as written.
        key: String,
        /// The value as written.
        text: String,
    },
    /// A NUL byte outside a comment: no command, path or name can contain one.
    #[error("NUL byte in the configuration (commands, paths and names cannot contain one)")]
    NulByte,
    /// A `Target` that is not an IP address.
    #[error(
        "target \"{text}\" is not an ip address (expected e.g. 10.0.0.1 or fd00::1; host names \
         are not resolved)"
    )]
    InvalidTarget {
        /// The value as written.
        text: String,
    },
    /// A `UseSyslog` or `AllowDuplicates` value other than yes/no, true/false, on/off, 1/0.
    #[error("invalid value \"{text}\" for {key} (expected yes, no, true, false, on, off, 1 or 0)")]
    InvalidBool {
        /// The key, in lower case.
        key: String,
        /// The value as written.
        text: String,
    },
    /// An empty name in an `Interface` list (`eth0,,eth1`).
    #[error("empty interface name in interface list; remove the extra comma")]
    EmptyInterface,
    /// A door with neither `sequence` nor `one_time_sequences` (reported at its header).
    #[error(
        "door \"{door}\" has an empty knock sequence; add \"sequence = PORT[:PROTO],...\" or \
         \"one_time_sequences = PATH\""
    )]
    EmptySequence {
        /// The door's name.
        door: String,
    },
    /// An `nft_set` value that is not three words.
    #[error(
        "invalid value \"{text}\" for {key} (expected FAMILY TABLE SET, e.g. \"inet knockd \
         ssh4\")"
    )]
    NftSetSyntax {
        /// The key as written (lower case).
        key: String,
        /// The value as written.
        text: String,
    },
    /// An nftables family other than `ip`, `ip6` and `inet`.
    #[error("unknown nftables family \"{text}\" for {key} (expected ip, ip6 or inet)")]
    NftFamily {
        /// The key as written (lower case).
        key: String,
        /// The family as written.
        text: String,
    },
    /// A table or set name that is not an nft identifier.
    #[error(
        "invalid nftables {what} name \"{text}\" (expected a letter or \"_\", then letters, \
         digits, \"_\", \"-\", \".\" or \"/\"; at most 255 bytes)"
    )]
    NftName {
        /// `table` or `set`.
        what: &'static str,
        /// The name as written.
        text: String,
    },
    /// `nft_set` naming an `ip6` table, or `nft_set_6` an `ip` one.
    #[error("{}", nft_wrong_family_message(*family))]
    NftSetWrongFamily {
        /// The family given (`ip6` for `nft_set`, `ip` for `nft_set_6`).
        family: super::NftFamily,
    },
    /// A door with an nftables set and a `cmd_timeout` under 1 ms (reported at its header):
    /// the kernel would keep the element forever.
    #[error(
        "door \"{door}\" adds to an nftables set but its cmd_timeout is under 1ms; the element's \
         timeout is cmd_timeout and must be at least 1ms"
    )]
    NftSetWithoutTimeout {
        /// The door's name.
        door: String,
    },
    /// An SPA key that is not valid base64, empty or too long (the key is never shown).
    #[error("invalid {key}: {reason} (the key is not shown)")]
    InvalidSpaKey {
        /// The directive as written.
        key: String,
        /// What is wrong.
        reason: crate::spa::KeyError,
    },
    /// A bad `SPA_Access` list.
    #[error("invalid spa_access: {0}")]
    InvalidSpaAccess(crate::spa::AccessError),
    /// An `SPA_Port` other than `PORT` or `PORT:udp`.
    #[error(
        "invalid spa_port \"{text}\" (expected a port 1-65535, optionally :udp; SPA over tcp is not supported)"
    )]
    InvalidSpaPort {
        /// The value as written.
        text: String,
    },
    /// Both the inline and the file form of one SPA key.
    #[error("door \"{door}\" sets both {key}_base64 and {key}_file; keep one")]
    SpaKeyTwice {
        /// The door's name.
        door: String,
        /// `spa_key` or `spa_hmac_key`.
        key: &'static str,
    },
    /// An SPA door without a required directive.
    #[error("SPA door \"{door}\" needs {missing}")]
    SpaIncomplete {
        /// The door's name.
        door: String,
        /// What is missing.
        missing: &'static str,
    },
    /// An `SPA_Require_Source` value other than yes/no, true/false, on/off, 1/0.
    #[error(
        "invalid value \"{text}\" for spa_require_source (expected yes, no, true, false, on, off, 1 or 0)"
    )]
    InvalidSpaRequireSource {
        /// The value as written.
        text: String,
    },
    /// An SPA door that also has a knock sequence (one kind of proof per door).
    #[error(
        "door \"{door}\" is an SPA door (it has SPA_* keys) and cannot also have a sequence or \
         one_time_sequences: one kind of proof per door; use two doors"
    )]
    SpaWithSequence {
        /// The door's name.
        door: String,
    },
    /// A `totp_secret` that is not a usable BASE32 key (the message never shows the key, and
    /// the quoted line has the value hidden).
    #[error("invalid totp_secret: {reason}")]
    InvalidTotpSecret {
        /// What is wrong with it.
        reason: SecretError,
    },
    /// `totp_secret = <hidden>`: the placeholder the canonical display prints.
    #[error(
        "totp_secret is the placeholder printed in place of the secret; write the BASE32 secret \
         here, or use \"totp_secret_file = PATH\""
    )]
    TotpSecretPlaceholder,
    /// Both `totp_secret` and `totp_secret_file` in one door.
    #[error("door \"{door}\" has both totp_secret and totp_secret_file; keep one")]
    TotpSecretTwice {
        /// The door's name.
        door: String,
    },
    /// A `totp_algorithm` other than sha1, sha256, sha512.
    #[error("unknown totp_algorithm \"{text}\" (expected sha1, sha256 or sha512)")]
    InvalidTotpAlgorithm {
        /// The value as written.
        text: String,
    },
    /// A `totp_digits` other than 6, 7, 8.
    #[error("invalid totp_digits \"{text}\" (expected 6, 7 or 8)")]
    InvalidTotpDigits {
        /// The value as written.
        text: String,
    },
    /// A `totp_step` that is not a whole number of seconds ≥ 1.
    #[error(
        "invalid totp_step \"{text}\" (expected a whole number of seconds, at least 1, such as \
         \"30\" or \"1m\")"
    )]
    InvalidTotpStep {
        /// The value as written.
        text: String,
    },
    /// A `totp_window` that is not a number from 0 to [`MAX_WINDOW`](crate::totp::MAX_WINDOW).
    #[error(
        "invalid totp_window \"{text}\" (expected a number of steps from 0 to {max})",
        max = crate::totp::MAX_WINDOW
    )]
    InvalidTotpWindow {
        /// The value as written.
        text: String,
    },
    /// The code does not fit the door's base ports.
    #[error("door \"{door}\": {reason}")]
    TotpLayout {
        /// The door's name.
        door: String,
        /// What does not fit.
        reason: LayoutError,
    },
    /// A TOTP door without a `sequence` of base ports (reported at its header).
    #[error(
        "door \"{door}\" has a totp secret but no sequence; add \"sequence = BASE[:PROTO],...\" \
         (the code is added to these base ports)"
    )]
    TotpWithoutSequence {
        /// The door's name.
        door: String,
    },
    /// A TOTP door with a `one_time_sequences` file.
    #[error(
        "door \"{door}\" has both a totp secret and one_time_sequences; a door has a fixed \
         sequence, one-time sequences or a totp secret"
    )]
    TotpWithOneTimeSequences {
        /// The door's name.
        door: String,
    },
    /// A `totp_*` setting in a door without `totp_secret` or `totp_secret_file`.
    #[error(
        "{key} in door \"{door}\", which has no totp_secret or totp_secret_file; add one, or \
         remove the totp settings"
    )]
    TotpWithoutSecret {
        /// The door's name.
        door: String,
        /// The first `totp_*` key, as written.
        key: String,
    },
}

fn nft_wrong_family_message(family: super::NftFamily) -> String {
    let (key, knockers, other) = if family == super::NftFamily::Ip {
        ("nft_set_6", "IPv6", "nft_set")
    } else {
        ("nft_set", "IPv4", "nft_set_6")
    };
    format!(
        "{key} is for {knockers} knockers and cannot name an {family} table (use {other} for \
         {family} sets, or an inet table)"
    )
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!("; did you mean \"{h}\"?"))
        .unwrap_or_default()
}

fn options_case_hint(door: &str) -> &'static str {
    if door.trim().eq_ignore_ascii_case("options") {
        " (section names are case-sensitive: the global section is \"[options]\")"
    } else {
        ""
    }
}

fn unknown_protocol_message(protocol: &str) -> String {
    if protocol.is_empty() {
        "missing protocol after \":\" in sequence (expected tcp or udp)".to_owned()
    } else {
        format!("unknown protocol \"{protocol}\" in sequence (expected tcp or udp)")
    }
}

fn suggestion_suffix(suggestion: Option<&str>) -> String {
    hint_suffix(suggestion)
}

/// Accepted but suspicious input, returned beside the parsed config (never printed by the
/// library).
///
/// Displays as `knockd.conf:12: door "openSSH": message` (the door part only when the
/// warning concerns a door; the line part only when it is not 0).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The 1-based line the warning is about (0 when it concerns the file as a whole).
    pub line: usize,
    /// The door concerned, if any.
    pub door: Option<String>,
    /// What is suspicious.
    pub kind: WarningKind,
    /// The file name shown in the display (`knockd.conf` when `None`).
    pub file: Option<String>,
}

impl Warning {
    /// A warning about `line` (and `door`, if any).
    #[must_use]
    pub fn new(line: usize, door: Option<String>, kind: WarningKind) -> Self {
        Self {
            line,
            door,
            kind,
            file: None,
        }
    }

    /// The same warning, naming `file` (the path as the user gave it) in its display.
    #[must_use]
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file.as_deref().unwrap_or(DEFAULT_FILE_NAME))?;
        if self.line != 0 {
            write!(f, ":{}", self.line)?;
        }
        f.write_str(": ")?;
        if let Some(door) = &self.door {
            write!(f, "door \"{door}\": ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What is suspicious about an accepted configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A door with a single step fires on every matching packet.
    SingleStepDoor,
    /// A door named like the options section in another case (`[Options]`): section names
    /// are case-sensitive, so it is a door, and its `logfile` etc. are errors.
    DoorNamedOptions,
    /// A multi-step door with `seq_timeout = 0`: it can never complete.
    ZeroSeqTimeout,
    /// A stop command on a door with no start command: it never runs.
    StopWithoutStart,
    /// Consecutive ascending ports (`7000,7001,7002`): a port scan in port order completes
    /// the sequence.
    AscendingAdjacentPorts,
    /// A path that is relative (resolved against the daemon's working directory, which is
    /// `/` once daemonized) or empty.
    RelativePath {
        /// The key, in its canonical spelling (`LogFile`, `PidFile`, `one_time_sequences`).
        key: &'static str,
        /// The path as written.
        path: String,
    },
    /// A door with both `sequence` and `one_time_sequences`: the file wins.
    SequenceOverridden,
    /// A bare `UseSyslog` line inside a door section: accepted as in knockd 0.8, but it sets
    /// the global option.
    UseSyslogInDoor,
    /// The well-known `7000,8000,9000` (or its reverse) of knockd's example configuration:
    /// the first sequence anyone tries.
    WellKnownSequence,
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SingleStepDoor => f.write_str(
                "one-step sequence: every matching packet opens the door (a port scan can \
                 trigger it)",
            ),
            Self::DoorNamedOptions => f.write_str(
                "this is a door, not the global section: section names are case-sensitive and \
                 only \"[options]\" is global",
            ),
            Self::ZeroSeqTimeout => {
                f.write_str("seq_timeout is 0, so this multi-step sequence can never be completed")
            }
            Self::StopWithoutStart => f.write_str(
                "stop_command without start_command: a stop command only runs after a start \
                 command, so it never runs",
            ),
            Self::AscendingAdjacentPorts => f.write_str(
                "the sequence is consecutive ascending ports: an ordinary port scan completes it",
            ),
            Self::RelativePath { key, path } if path.is_empty() => {
                write!(f, "{key} is empty")
            }
            Self::RelativePath { key, path } => write!(
                f,
                "{key} \"{path}\" is a relative path (resolved against the daemon's working \
                 directory, which is / once daemonized)"
            ),
            Self::SequenceOverridden => f.write_str(
                "both sequence and one_time_sequences are set: the one-time sequences file \
                 wins and sequence is ignored",
            ),
            Self::UseSyslogInDoor => f.write_str(
                "usesyslog in a door section sets the global option; move it to [options]",
            ),
            Self::WellKnownSequence => f.write_str(
                "7000,8000,9000 (or its reverse) is the example sequence of knockd's documentation and default \
                 configuration, the first one anybody tries: choose your own ports",
            ),
        }
    }
}
