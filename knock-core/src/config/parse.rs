//! The knockd.conf parser: line classification and typed values, written with nom 8.
//!
//! The file is processed line by line (no multi-line state inside nom). Each line is
//! classified by [`classify`] into blank / comment / `[section]` / `key = value`; values are
//! then parsed by small, always-complete nom parsers (port lists, flag lists, durations).
//! Every error is located by a byte offset inside its line, turned into a 1-based character
//! column when the [`ConfigError`] is built.

use std::net::IpAddr;

use nom::bytes::complete::{take_till, take_till1};
use nom::character::complete::{char, digit0, digit1, space0};
use nom::combinator::{all_consuming, opt, recognize, rest};
use nom::multi::{many1, separated_list1};
use nom::sequence::preceded;
use nom::{IResult, Offset, Parser};

use super::error::{ConfigError, ConfigErrorKind, Warning, WarningKind};
use super::nft::nft_set_value;
use super::{
    Config, Door, FlagRule, Knock, MAX_DURATION, MAX_SEQUENCE_LEN, SpaConfig, SpaKeySource,
    TotpConfig, TotpSecret,
};
use crate::packet::{Protocol, TcpFlags};
use crate::spa::{AccessPort, SecretKey};
use crate::time::Duration;
use crate::totp::{Algorithm, LayoutError, MAX_WINDOW, Secret, TotpParams};

/// What the canonical display prints in place of a `totp_secret` (refused when parsed).
pub(crate) const SECRET_PLACEHOLDER: &str = "<hidden>";

/// A successfully parsed configuration and the warnings found on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parsed {
    /// The configuration.
    pub config: Config,
    /// Accepted but suspicious input, in file order.
    pub warnings: Vec<Warning>,
}

impl Config {
    /// Parses knockd.conf text.
    ///
    /// The grammar is summarised in the README's configuration reference. Problems that
    /// knockd 0.8 silently turned into surprising behaviour (space-separated ports, empty or
    /// non-numeric ports, trailing junk, unknown keys) are errors here, with a hint; inputs
    /// 0.8 rejected for no good reason (`tcpflags = syn, ack`, `UseSyslog = yes`) are
    /// accepted. Suspicious but valid input is reported in [`Parsed::warnings`].
    ///
    /// ```
    /// use knock_core::{Config, Knock};
    ///
    /// let parsed = Config::parse("[openSSH]\nsequence = 7000,8000:udp,9000\ncommand = true\n")?;
    /// let door = &parsed.config.doors[0];
    /// assert_eq!(door.sequence, [Knock::tcp(7000), Knock::udp(8000), Knock::tcp(9000)]);
    ///
    /// let err = Config::parse("[d]\nsequence = 7000 8000 9000\n").unwrap_err();
    /// assert_eq!(
    ///     err.summary(),
    ///     "knockd.conf:2:17: ports must be separated by commas; did you mean \"7000,8000,9000\"?"
    /// );
    /// # Ok::<(), knock_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// The first problem found, positioned by line and column.
    pub fn parse(text: &str) -> Result<Parsed, ConfigError> {
        // A UTF-8 byte order mark (some Windows editors write one) is not part of line 1.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut parser = FileParser::default();
        for (number, _, line) in split_lines(text) {
            parser.line(number, line)?;
        }
        parser.finish()
    }
}

/// Parses one sequence as written after `sequence =` (and as a line of a one-time
/// sequences file): `port[:tcp|udp]` items separated by commas, at most
/// [`MAX_SEQUENCE_LEN`].
///
/// ```
/// use knock_core::Knock;
/// use knock_core::parse_sequence;
///
/// assert_eq!(parse_sequence("7000, 8000 : UDP")?, [Knock::tcp(7000), Knock::udp(8000)]);
/// assert!(parse_sequence("7000:icmp").is_err());
/// # Ok::<(), knock_core::ConfigError>(())
/// ```
///
/// # Errors
/// The first problem, positioned on line 1 of `text`.
pub fn parse_sequence(text: &str) -> Result<Vec<Knock>, ConfigError> {
    let value = text.trim();
    if value.is_empty() {
        return Err(Located::at(
            text,
            value,
            ConfigErrorKind::EmptyValue {
                key: "sequence".to_owned(),
            },
        )
        .into_error(1, text));
    }
    sequence_value(text, value).map_err(|located| located.into_error(1, text))
}

/// The lines of `text`: (1-based number, byte offset of the line's start, the line without
/// its `\n` or `\r\n`). A final line terminator does not start another line.
pub(crate) fn split_lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut start = 0;
    let mut number = 0;
    core::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let rest = &text[start..];
        let (raw, consumed) = match rest.find('\n') {
            Some(end) => (&rest[..end], end + 1),
            None => (rest, rest.len()),
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line_start = start;
        start += consumed;
        number += 1;
        Some((number, line_start, line))
    })
}

/// An error kind at a byte offset inside one line.
#[derive(Debug)]
pub(crate) struct Located {
    offset: usize,
    kind: ConfigErrorKind,
}

impl Located {
    /// An error at the start of `part`, a sub-slice of `line`.
    pub(super) fn at(line: &str, part: &str, kind: ConfigErrorKind) -> Self {
        Self {
            offset: line.offset(part),
            kind,
        }
    }

    /// The positioned error for line `number` whose text is `line`.
    pub(crate) fn into_error(self, number: usize, line: &str) -> ConfigError {
        let column = line.get(..self.offset).map_or(1, |s| s.chars().count() + 1);
        ConfigError::new(number, column, redact_secret(line), self.kind)
    }
}

type LineResult<T> = Result<T, Located>;

/// The line as an error may quote it: the value of a directive whose key mentions "key" or
/// "secret" (`SPA_Key_Base64`, a misspelling of it…) is replaced by `<secret>`, so secrets
/// never reach error messages.
fn redact_secret(line: &str) -> String {
    match line.split_once('=') {
        Some((key, value))
            if ![SECRET_PLACEHOLDER, "<secret>"].contains(&value.trim())
                && ["key", "secret"]
                    .iter()
                    .any(|word| key.to_ascii_lowercase().contains(word)) =>
        {
            format!("{key}= <secret>")
        }
        _ => line.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Lines

/// What one line of knockd.conf is.
#[derive(Debug, PartialEq, Eq)]
enum LineKind<'a> {
    /// Empty or blanks only.
    Blank,
    /// First non-blank character is `#`.
    Comment,
    /// `[name]`, name verbatim (may be empty: the caller reports it).
    Section(&'a str),
    /// `key = value` (both trimmed) or a bare word (`value` is `None`).
    Directive {
        key: &'a str,
        value: Option<&'a str>,
    },
}

fn section_header(input: &str) -> IResult<&str, &str> {
    preceded(char('['), rest)
        .map_opt(|inner: &str| inner.strip_suffix(']'))
        .parse_complete(input)
}

fn directive(input: &str) -> IResult<&str, (&str, Option<&str>)> {
    (take_till(|c| c == '='), opt(preceded(char('='), rest))).parse_complete(input)
}

fn classify(line: &str) -> LineResult<LineKind<'_>> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(LineKind::Blank);
    }
    if trimmed.starts_with('#') {
        return Ok(LineKind::Comment);
    }
    if let Ok((_, name)) = section_header(trimmed) {
        return Ok(LineKind::Section(name));
    }
    if trimmed.starts_with('[') && !trimmed.contains('=') {
        // `[name] # comment` or `[name] junk`: a header followed by text.
        if let Some(close) = trimmed.find(']') {
            let junk = trimmed[close + 1..].trim_start();
            return Err(Located::at(
                line,
                junk,
                ConfigErrorKind::TextAfterSectionHeader {
                    text: junk.to_owned(),
                },
            ));
        }
        return Err(Located::at(
            line,
            trimmed,
            ConfigErrorKind::UnterminatedSection,
        ));
    }
    let (_, (key, value)) = directive(trimmed).map_err(|_| {
        // `directive` cannot fail (both parts may be empty); stay total anyway.
        Located::at(line, trimmed, ConfigErrorKind::Syntax)
    })?;
    Ok(LineKind::Directive {
        key: key.trim(),
        value: value.map(str::trim),
    })
}

// ---------------------------------------------------------------------------------------
// Keys

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    UseSyslog,
    LogFile,
    PidFile,
    Interface,
    Sequence,
    OneTimeSequences,
    SeqTimeout,
    TcpFlags,
    StartCommand,
    StartCommand6,
    CmdTimeout,
    StopCommand,
    StopCommand6,
    Target,
    NftSet,
    NftSet6,
    SpaKeyBase64,
    SpaHmacKeyBase64,
    SpaKeyFile,
    SpaHmacKeyFile,
    SpaPort,
    SpaAccess,
    SpaMaxAge,
    SpaRequireSource,
    TotpSecret,
    TotpSecretFile,
    TotpAlgorithm,
    TotpDigits,
    TotpStep,
    TotpWindow,
    AllowDuplicates,
}

impl Key {
    fn is_option(self) -> bool {
        matches!(
            self,
            Self::UseSyslog | Self::LogFile | Self::PidFile | Self::Interface
        )
    }
}

/// Every spelling knockd 0.8 accepts (lower case; keys are compared case-insensitively).
const KEYS: [(&str, Key); 34] = [
    ("usesyslog", Key::UseSyslog),
    ("logfile", Key::LogFile),
    ("pidfile", Key::PidFile),
    ("interface", Key::Interface),
    ("sequence", Key::Sequence),
    ("one_time_sequences", Key::OneTimeSequences),
    ("seq_timeout", Key::SeqTimeout),
    ("timeout", Key::SeqTimeout),
    ("tcpflags", Key::TcpFlags),
    ("start_command", Key::StartCommand),
    ("command", Key::StartCommand),
    ("start_command_6", Key::StartCommand6),
    ("command_6", Key::StartCommand6),
    ("cmd_timeout", Key::CmdTimeout),
    ("stop_command", Key::StopCommand),
    ("stop_command_6", Key::StopCommand6),
    ("target", Key::Target),
    ("nft_set", Key::NftSet),
    ("nft_set_6", Key::NftSet6),
    ("spa_key_base64", Key::SpaKeyBase64),
    ("spa_hmac_key_base64", Key::SpaHmacKeyBase64),
    ("spa_key_file", Key::SpaKeyFile),
    ("spa_hmac_key_file", Key::SpaHmacKeyFile),
    ("spa_port", Key::SpaPort),
    ("spa_access", Key::SpaAccess),
    ("spa_max_age", Key::SpaMaxAge),
    ("spa_require_source", Key::SpaRequireSource),
    ("totp_secret", Key::TotpSecret),
    ("totp_secret_file", Key::TotpSecretFile),
    ("totp_algorithm", Key::TotpAlgorithm),
    ("totp_digits", Key::TotpDigits),
    ("totp_step", Key::TotpStep),
    ("totp_window", Key::TotpWindow),
    ("allowduplicates", Key::AllowDuplicates),
];

fn lookup_key(key: &str) -> Option<Key> {
    KEYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|&(_, k)| k)
}

/// The known key closest to `key` by edit distance, when it is close enough to be a typo.
fn suggest_key(key: &str) -> Option<String> {
    let lower = key.to_ascii_lowercase();
    let typed = lower.chars().count();
    let threshold = (typed / 3).max(2);
    KEYS.iter()
        .map(|(name, _)| (edit_distance(&lower, name), *name))
        .filter(|&(distance, _)| distance <= threshold)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name.to_owned())
}

/// Levenshtein distance over chars (inputs are short: keys are under 20 characters, and a
/// typed key is capped before comparison so an attacker-sized line costs nothing).
fn edit_distance(a: &str, b: &str) -> usize {
    const CAP: usize = 64;
    let a: Vec<char> = a.chars().take(CAP).collect();
    let b: Vec<char> = b.chars().take(CAP).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        core::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------
// The file-level state machine

#[derive(Default)]
struct FileParser {
    config: Config,
    warnings: Vec<Warning>,
    section: Section,
    log_file_line: usize,
    pid_file_line: usize,
    /// Per door closed so far: whether it set `AllowDuplicates` itself (else it takes the
    /// `[options]` value, which may come later in the file).
    allow_duplicates_set: Vec<bool>,
}

#[derive(Default)]
enum Section {
    #[default]
    None,
    Options,
    Door(Box<DoorBuilder>),
}

struct DoorBuilder {
    door: Door,
    header_line: usize,
    header_text: String,
    has_sequence: bool,
    sequence_line: usize,
    seq_timeout_line: usize,
    ots_line: usize,
    stop_line: usize,
    spa: SpaBuilder,
    totp: TotpBuilder,
    allow_duplicates_set: bool,
}

/// The `SPA_*` directives of a door, as read so far.
#[derive(Default)]
struct SpaBuilder {
    any: bool,
    key: Option<SpaKeySource>,
    hmac_key: Option<SpaKeySource>,
    port: Option<u16>,
    access: Option<Vec<AccessPort>>,
    max_age: Option<Duration>,
    require_source: bool,
}

/// A door's `totp_*` directives while its section is read.
#[derive(Default)]
struct TotpBuilder {
    secret: Option<TotpSecret>,
    params: TotpParams,
    /// The first `totp_*` parameter line: (number, text, key as written).
    first_param: Option<(usize, String, String)>,
    /// The `totp_digits` line: (number, text).
    digits_line: Option<(usize, String)>,
    /// The `sequence` line: (number, text).
    sequence_line: Option<(usize, String)>,
    /// The `one_time_sequences` line: (number, text).
    ots_line: Option<(usize, String)>,
}

/// Whether a key (as written, perhaps misspelt or followed by `:`) names a secret:
/// `totp_secret`, anything close to it, or any key containing "secret" but not "file".
fn secret_like_key(key: &str) -> bool {
    let key = key.trim_end_matches(':').to_ascii_lowercase();
    (key.contains("secret") && !key.contains("file"))
        || suggest_key(&key).as_deref() == Some("totp_secret")
}

/// `line` with the value of a secret directive (`totp_secret = …`, also misspelt or
/// without `=`) replaced by [`SECRET_PLACEHOLDER`], so that an error quoting the line never
/// shows the key; other lines unchanged.
fn redact_totp_secret(line: &str) -> std::borrow::Cow<'_, str> {
    let value = match classify(line) {
        Ok(LineKind::Directive {
            key,
            value: Some(value),
        }) if secret_like_key(key) => value,
        Ok(LineKind::Directive { key, value: None }) => {
            let word_end = key.find(char::is_whitespace).unwrap_or(key.len());
            if !secret_like_key(&key[..word_end]) {
                return line.into();
            }
            key[word_end..].trim_start()
        }
        _ => return line.into(),
    };
    if value.is_empty() {
        return line.into();
    }
    let start = line.offset(value);
    format!("{}{SECRET_PLACEHOLDER}", &line[..start]).into()
}

/// An error at the value of the `key = value` line `text` (line `number`), or at the
/// start of the `index`-th comma-separated item of that value when given.
fn error_at_value(
    number: usize,
    text: &str,
    item: Option<usize>,
    kind: ConfigErrorKind,
) -> ConfigError {
    let value = text
        .split_once('=')
        .map_or_else(|| text.trim(), |(_, value)| value.trim());
    let at = item
        .and_then(|index| comma_items(value).get(index).map(|i| i.trim_start()))
        .unwrap_or(value);
    Located::at(text, at, kind).into_error(number, text)
}

impl FileParser {
    fn line(&mut self, number: usize, line: &str) -> Result<(), ConfigError> {
        // Errors quote the line, except a secret's value.
        let located = |located: Located| located.into_error(number, &redact_totp_secret(line));
        let kind = classify(line).map_err(located)?;
        // Issue 10 item 13: a NUL byte cannot be passed to exec, open or pcap, so a command,
        // path or name holding one would pass --check and fail at run time.
        if !matches!(kind, LineKind::Blank | LineKind::Comment)
            && let Some(offset) = line.find('\0')
        {
            return Err(located(Located {
                offset,
                kind: ConfigErrorKind::NulByte,
            }));
        }
        match kind {
            LineKind::Blank | LineKind::Comment => Ok(()),
            LineKind::Section(name) => self.section(number, line, name),
            LineKind::Directive { key, value } => {
                self.directive(number, line, key, value).map_err(located)
            }
        }
    }

    fn section(&mut self, number: usize, line: &str, name: &str) -> Result<(), ConfigError> {
        if name.is_empty() {
            return Err(
                Located::at(line, line.trim_start(), ConfigErrorKind::BadSectionName)
                    .into_error(number, line),
            );
        }
        self.close_door()?;
        self.section = if name == "options" {
            Section::Options
        } else {
            Section::Door(Box::new(DoorBuilder {
                door: Door::new(name, Vec::new()),
                header_line: number,
                header_text: line.to_owned(),
                has_sequence: false,
                sequence_line: 0,
                seq_timeout_line: 0,
                ots_line: 0,
                stop_line: 0,
                spa: SpaBuilder::default(),
                totp: TotpBuilder::default(),
                allow_duplicates_set: false,
            }))
        };
        Ok(())
    }

    fn directive(
        &mut self,
        number: usize,
        line: &str,
        key_text: &str,
        value: Option<&str>,
    ) -> LineResult<()> {
        if matches!(self.section, Section::None) {
            return Err(Located::at(
                line,
                line.trim_start(),
                ConfigErrorKind::DirectiveOutsideSection,
            ));
        }
        let Some(value) = value else {
            return self.bare_word(number, line, key_text);
        };
        if key_text.is_empty() {
            return Err(Located::at(
                line,
                line.trim_start(),
                ConfigErrorKind::EmptyKey,
            ));
        }
        let Some(key) = lookup_key(key_text) else {
            return Err(Located::at(
                line,
                key_text,
                ConfigErrorKind::UnknownKey {
                    key: key_text.to_owned(),
                    suggestion: suggest_key(key_text),
                },
            ));
        };
        let value_error = |kind| Located::at(line, value, kind);
        let empty_value = || {
            value_error(ConfigErrorKind::EmptyValue {
                key: key_text.to_owned(),
            })
        };
        match &mut self.section {
            // Rejected above already; kept total rather than panicking.
            Section::None => {
                return Err(Located::at(
                    line,
                    line.trim_start(),
                    ConfigErrorKind::DirectiveOutsideSection,
                ));
            }
            Section::Options => {
                let options = &mut self.config.options;
                match key {
                    Key::UseSyslog => options.use_syslog = bool_value(line, key_text, value)?,
                    Key::LogFile => {
                        options.log_file = Some(value.to_owned());
                        self.log_file_line = number;
                    }
                    Key::PidFile => {
                        options.pid_file = Some(value.to_owned());
                        self.pid_file_line = number;
                    }
                    Key::Interface => {
                        if value.is_empty() {
                            return Err(empty_value());
                        }
                        options.interfaces = interface_list(line, value)?;
                    }
                    Key::AllowDuplicates => {
                        options.allow_duplicates = bool_value(line, key_text, value)?;
                    }
                    _ => {
                        return Err(Located::at(
                            line,
                            key_text,
                            ConfigErrorKind::DoorKeyInOptions {
                                key: key_text.to_owned(),
                            },
                        ));
                    }
                }
            }
            Section::Door(builder) => {
                let door = &mut builder.door;
                let option_in_door = |door: &Door| {
                    Located::at(
                        line,
                        key_text,
                        ConfigErrorKind::OptionKeyInDoor {
                            key: key_text.to_owned(),
                            door: door.name.clone(),
                        },
                    )
                };
                if key.is_option() {
                    return Err(option_in_door(door));
                }
                let needs_value = !matches!(
                    key,
                    Key::StartCommand | Key::StartCommand6 | Key::StopCommand | Key::StopCommand6
                );
                if needs_value && value.is_empty() {
                    return Err(empty_value());
                }
                match key {
                    Key::Sequence => {
                        door.sequence = sequence_value(line, value)?;
                        builder.has_sequence = true;
                        builder.sequence_line = number;
                        builder.totp.sequence_line = Some((number, line.to_owned()));
                    }
                    Key::OneTimeSequences => {
                        door.one_time_sequences = Some(value.to_owned());
                        builder.ots_line = number;
                        builder.totp.ots_line = Some((number, line.to_owned()));
                    }
                    Key::TotpSecret | Key::TotpSecretFile => {
                        let secret = if key == Key::TotpSecret {
                            if value == SECRET_PLACEHOLDER {
                                return Err(value_error(ConfigErrorKind::TotpSecretPlaceholder));
                            }
                            TotpSecret::Inline(Secret::from_base32(value).map_err(|reason| {
                                value_error(ConfigErrorKind::InvalidTotpSecret { reason })
                            })?)
                        } else {
                            TotpSecret::File(value.to_owned())
                        };
                        let other_kind = matches!(
                            (&builder.totp.secret, &secret),
                            (Some(TotpSecret::Inline(_)), TotpSecret::File(_))
                                | (Some(TotpSecret::File(_)), TotpSecret::Inline(_))
                        );
                        if other_kind {
                            return Err(Located::at(
                                line,
                                key_text,
                                ConfigErrorKind::TotpSecretTwice {
                                    door: door.name.clone(),
                                },
                            ));
                        }
                        builder.totp.secret = Some(secret);
                    }
                    Key::TotpAlgorithm | Key::TotpDigits | Key::TotpStep | Key::TotpWindow => {
                        totp_param(&mut builder.totp, key, number, line, key_text, value)?;
                    }
                    Key::SeqTimeout => {
                        door.seq_timeout = duration_value(line, key_text, value)?;
                        builder.seq_timeout_line = number;
                    }
                    Key::CmdTimeout => door.cmd_timeout = duration_value(line, key_text, value)?,
                    Key::TcpFlags => flags_value(line, value, &mut door.tcp_flags)?,
                    Key::StartCommand => door.start_command = Some(value.to_owned()),
                    Key::StartCommand6 => door.start_command_6 = Some(value.to_owned()),
                    Key::StopCommand => {
                        door.stop_command = Some(value.to_owned());
                        builder.stop_line = number;
                    }
                    Key::StopCommand6 => {
                        door.stop_command_6 = Some(value.to_owned());
                        builder.stop_line = number;
                    }
                    Key::Target => {
                        door.target = Some(value.parse::<IpAddr>().map_err(|_| {
                            value_error(ConfigErrorKind::InvalidTarget {
                                text: value.to_owned(),
                            })
                        })?);
                    }
                    Key::NftSet => {
                        door.nft_set = Some(nft_set_value(line, key_text, value, false)?)
                    }
                    Key::NftSet6 => {
                        door.nft_set_6 = Some(nft_set_value(line, key_text, value, true)?)
                    }
                    Key::AllowDuplicates => {
                        door.allow_duplicates = bool_value(line, key_text, value)?;
                        builder.allow_duplicates_set = true;
                    }
                    Key::UseSyslog | Key::LogFile | Key::PidFile | Key::Interface => {
                        return Err(option_in_door(door));
                    }
                    Key::SpaKeyBase64
                    | Key::SpaHmacKeyBase64
                    | Key::SpaKeyFile
                    | Key::SpaHmacKeyFile
                    | Key::SpaPort
                    | Key::SpaAccess
                    | Key::SpaMaxAge
                    | Key::SpaRequireSource => {
                        let door_name = door.name.clone();
                        spa_directive(&mut builder.spa, &door_name, line, key, key_text, value)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A directive line without `=`: only `UseSyslog` (in any section, as in knockd 0.8) and
    /// `AllowDuplicates` may stand alone.
    fn bare_word(&mut self, number: usize, line: &str, text: &str) -> LineResult<()> {
        if text.eq_ignore_ascii_case("allowduplicates") {
            match &mut self.section {
                Section::Door(builder) => {
                    builder.door.allow_duplicates = true;
                    builder.allow_duplicates_set = true;
                }
                _ => self.config.options.allow_duplicates = true,
            }
            return Ok(());
        }
        if text.eq_ignore_ascii_case("usesyslog") {
            self.config.options.use_syslog = true;
            if let Section::Door(builder) = &self.section {
                self.warnings.push(Warning::new(
                    number,
                    Some(builder.door.name.clone()),
                    WarningKind::UseSyslogInDoor,
                ));
            }
            return Ok(());
        }
        let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
        let (word, remainder) = text.split_at(word_end);
        let remainder = remainder.trim_start();
        if remainder.is_empty() && lookup_key(text).is_some() {
            // A known key alone: the `=` and the value are missing.
            return Err(Located::at(
                line,
                &text[text.len()..],
                ConfigErrorKind::MissingEquals {
                    key: text.to_owned(),
                    hint: None,
                },
            ));
        }
        if remainder.is_empty() {
            // A single word: most likely a misspelled key.
            return Err(Located::at(
                line,
                text,
                ConfigErrorKind::UnknownKey {
                    key: text.to_owned(),
                    suggestion: suggest_key(text),
                },
            ));
        }
        let hint = lookup_key(word).map(|_| word).map(|w| {
            if secret_like_key(w) {
                format!("{w} = BASE32")
            } else {
                format!("{w} = {remainder}")
            }
        });
        if hint.is_none() {
            return Err(Located::at(line, text, ConfigErrorKind::Syntax));
        }
        Err(Located::at(
            line,
            &text[word_end..],
            ConfigErrorKind::MissingEquals {
                key: word.to_owned(),
                hint,
            },
        ))
    }

    /// Finishes the current door, if any: checks it has a sequence and collects warnings.
    fn close_door(&mut self) -> Result<(), ConfigError> {
        if let Section::Door(builder) = &mut self.section {
            close_totp(builder)?;
        }
        let Section::Door(builder) = core::mem::take(&mut self.section) else {
            return Ok(());
        };
        let DoorBuilder {
            door,
            header_line,
            header_text,
            has_sequence,
            sequence_line,
            seq_timeout_line,
            ots_line,
            stop_line,
            spa,
            totp: _,
            allow_duplicates_set,
        } = *builder;
        let mut door = door;
        let header_error = |kind| {
            Located::at(&header_text, header_text.trim_start(), kind)
                .into_error(header_line, &header_text)
        };
        if spa.any {
            if has_sequence || door.one_time_sequences.is_some() {
                return Err(header_error(ConfigErrorKind::SpaWithSequence {
                    door: door.name.clone(),
                }));
            }
            let incomplete = |missing| {
                header_error(ConfigErrorKind::SpaIncomplete {
                    door: door.name.clone(),
                    missing,
                })
            };
            let key = spa
                .key
                .ok_or_else(|| incomplete("spa_key_base64 or spa_key_file"))?;
            let hmac_key = spa
                .hmac_key
                .ok_or_else(|| incomplete("spa_hmac_key_base64 or spa_hmac_key_file"))?;
            let access = spa
                .access
                .ok_or_else(|| incomplete("spa_access (e.g. tcp/22)"))?;
            let mut config = SpaConfig::new(key, hmac_key, access);
            if let Some(port) = spa.port {
                config.port = port;
            }
            if let Some(max_age) = spa.max_age {
                config.max_age = max_age;
            }
            config.require_source = spa.require_source;
            door.spa = Some(config);
            self.config.doors.push(door);
            return Ok(());
        }
        let name = || Some(door.name.clone());
        if !has_sequence && door.one_time_sequences.is_none() {
            let located = Located::at(
                &header_text,
                header_text.trim_start(),
                ConfigErrorKind::EmptySequence {
                    door: door.name.clone(),
                },
            );
            return Err(located.into_error(header_line, &header_text));
        }
        if (door.nft_set.is_some() || door.nft_set_6.is_some())
            && door.cmd_timeout < Duration::from_millis(1)
        {
            let located = Located::at(
                &header_text,
                header_text.trim_start(),
                ConfigErrorKind::NftSetWithoutTimeout {
                    door: door.name.clone(),
                },
            );
            return Err(located.into_error(header_line, &header_text));
        }
        let mut warn = |line, kind| self.warnings.push(Warning::new(line, name(), kind));
        if door.name != "options" && door.name.trim().eq_ignore_ascii_case("options") {
            warn(header_line, WarningKind::DoorNamedOptions);
        }
        if let Some(path) = &door.one_time_sequences {
            if has_sequence {
                warn(ots_line, WarningKind::SequenceOverridden);
            }
            if !path.starts_with('/') {
                warn(
                    ots_line,
                    WarningKind::RelativePath {
                        key: "one_time_sequences",
                        path: path.clone(),
                    },
                );
            }
        } else if door.totp.is_some() {
            // Bases, not ports: only the timeout warning applies.
            if door.sequence.len() >= 2 && door.seq_timeout.is_zero() {
                warn(seq_timeout_line, WarningKind::ZeroSeqTimeout);
            }
        } else {
            sequence_warnings(&door, sequence_line, seq_timeout_line, &mut warn);
        }
        let v4 = IpAddr::from([0, 0, 0, 0]);
        let v6 = IpAddr::from([0u16; 8]);
        let stop_unreachable = [v4, v6].into_iter().any(|family| {
            let stop = match family {
                IpAddr::V4(_) => door.stop_command.as_deref(),
                IpAddr::V6(_) => door
                    .stop_command_6
                    .as_deref()
                    .or(door.stop_command.as_deref()),
            };
            stop.is_some_and(|s| !s.is_empty()) && door.start_command_for(family).is_none()
        });
        if stop_unreachable {
            warn(stop_line, WarningKind::StopWithoutStart);
        }
        self.config.doors.push(door);
        self.allow_duplicates_set.push(allow_duplicates_set);
        Ok(())
    }

    fn finish(mut self) -> Result<Parsed, ConfigError> {
        self.close_door()?;
        let default = self.config.options.allow_duplicates;
        for (door, set) in self.config.doors.iter_mut().zip(&self.allow_duplicates_set) {
            if !set {
                door.allow_duplicates = default;
            }
        }
        self.path_warning(
            self.log_file_line,
            "LogFile",
            self.config.options.log_file.clone(),
        );
        self.path_warning(
            self.pid_file_line,
            "PidFile",
            self.config.options.pid_file.clone(),
        );
        self.warnings.sort_by_key(|w| w.line);
        Ok(Parsed {
            config: self.config,
            warnings: self.warnings,
        })
    }

    fn path_warning(&mut self, line: usize, key: &'static str, path: Option<String>) {
        if let Some(path) = path.filter(|p| !p.starts_with('/')) {
            self.warnings.push(Warning::new(
                line,
                None,
                WarningKind::RelativePath { key, path },
            ));
        }
    }
}

/// One `SPA_*` directive of door `door_name` (value non-empty).
fn spa_directive(
    spa: &mut SpaBuilder,
    door_name: &str,
    line: &str,
    key: Key,
    key_text: &str,
    value: &str,
) -> LineResult<()> {
    let value_error = |kind| Located::at(line, value, kind);
    spa.any = true;
    let set_key = |slot: &mut Option<SpaKeySource>, source: SpaKeySource, name| {
        let twice = matches!(
            (&*slot, &source),
            (Some(SpaKeySource::Inline(_)), SpaKeySource::File(_))
                | (Some(SpaKeySource::File(_)), SpaKeySource::Inline(_))
        );
        if twice {
            return Err(Located::at(
                line,
                key_text,
                ConfigErrorKind::SpaKeyTwice {
                    door: door_name.to_owned(),
                    key: name,
                },
            ));
        }
        *slot = Some(source);
        Ok(())
    };
    let inline = |max: usize| {
        let key = SecretKey::from_base64(value).map_err(|reason| {
            value_error(ConfigErrorKind::InvalidSpaKey {
                key: key_text.to_ascii_lowercase(),
                reason,
            })
        })?;
        if key.len() > max {
            let reason = if max == crate::spa::MAX_KEY_LEN {
                crate::spa::KeyError::EncryptionKeyTooLong { len: key.len() }
            } else {
                crate::spa::KeyError::HmacKeyTooLong { len: key.len() }
            };
            return Err(value_error(ConfigErrorKind::InvalidSpaKey {
                key: key_text.to_ascii_lowercase(),
                reason,
            }));
        }
        Ok(SpaKeySource::Inline(key))
    };
    match key {
        Key::SpaKeyBase64 => {
            let source = inline(crate::spa::MAX_KEY_LEN)?;
            set_key(&mut spa.key, source, "spa_key")?;
        }
        Key::SpaHmacKeyBase64 => {
            let source = inline(crate::spa::MAX_HMAC_KEY_LEN)?;
            set_key(&mut spa.hmac_key, source, "spa_hmac_key")?;
        }
        Key::SpaKeyFile => {
            set_key(
                &mut spa.key,
                SpaKeySource::File(value.to_owned()),
                "spa_key",
            )?;
        }
        Key::SpaHmacKeyFile => set_key(
            &mut spa.hmac_key,
            SpaKeySource::File(value.to_owned()),
            "spa_hmac_key",
        )?,
        Key::SpaPort => {
            let invalid = || {
                value_error(ConfigErrorKind::InvalidSpaPort {
                    text: value.to_owned(),
                })
            };
            let (port, protocol) = match value.split_once(':') {
                Some((port, protocol)) => (port.trim(), Some(protocol.trim())),
                None => (value, None),
            };
            if protocol.is_some_and(|p| !p.eq_ignore_ascii_case("udp")) {
                return Err(invalid());
            }
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(invalid)?;
            spa.port = Some(port);
        }
        Key::SpaAccess => {
            let list = AccessPort::parse_list(value).map_err(|error| {
                let offset = line.offset(value) + error.offset();
                Located {
                    offset,
                    kind: ConfigErrorKind::InvalidSpaAccess(error),
                }
            })?;
            spa.access = Some(list);
        }
        Key::SpaMaxAge => spa.max_age = Some(duration_value(line, key_text, value)?),
        Key::SpaRequireSource => {
            spa.require_source = parse_bool(value).ok_or_else(|| {
                value_error(ConfigErrorKind::InvalidSpaRequireSource {
                    text: value.to_owned(),
                })
            })?;
        }
        _ => return Err(value_error(ConfigErrorKind::Syntax)),
    }
    Ok(())
}

/// One `totp_algorithm`, `totp_digits`, `totp_step` or `totp_window` directive.
fn totp_param(
    totp: &mut TotpBuilder,
    key: Key,
    number: usize,
    line: &str,
    key_text: &str,
    value: &str,
) -> LineResult<()> {
    let text = || value.to_owned();
    let error = |kind| Located::at(line, value, kind);
    match key {
        Key::TotpAlgorithm => {
            totp.params.algorithm = Algorithm::from_name(value)
                .ok_or_else(|| error(ConfigErrorKind::InvalidTotpAlgorithm { text: text() }))?;
        }
        Key::TotpDigits => {
            totp.params.digits = value
                .parse::<u8>()
                .ok()
                .filter(|d| (6..=8).contains(d))
                .ok_or_else(|| error(ConfigErrorKind::InvalidTotpDigits { text: text() }))?;
            totp.digits_line = Some((number, line.to_owned()));
        }
        Key::TotpStep => {
            let step = duration_value(line, key_text, value)?;
            if step.subsec_nanos() != 0 || step.as_secs() == 0 {
                return Err(error(ConfigErrorKind::InvalidTotpStep { text: text() }));
            }
            totp.params.step = step;
        }
        _ => {
            totp.params.window = value
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= MAX_WINDOW)
                .ok_or_else(|| error(ConfigErrorKind::InvalidTotpWindow { text: text() }))?;
        }
    }
    if totp.first_param.is_none() {
        totp.first_param = Some((number, line.to_owned(), key_text.to_owned()));
    }
    Ok(())
}

/// Checks a door's TOTP settings as a whole and stores them in the door.
fn close_totp(builder: &mut DoorBuilder) -> Result<(), ConfigError> {
    let door = &mut builder.door;
    let totp = core::mem::take(&mut builder.totp);
    let Some(secret) = totp.secret else {
        if let Some((number, text, key)) = totp.first_param {
            let kind = ConfigErrorKind::TotpWithoutSecret {
                door: door.name.clone(),
                key,
            };
            let key_start = text.len() - text.trim_start().len();
            return Err(Located {
                offset: key_start,
                kind,
            }
            .into_error(number, &text));
        }
        return Ok(());
    };
    let name = door.name.clone();
    if let Some((number, text)) = &totp.ots_line {
        return Err(error_at_value(
            *number,
            text,
            None,
            ConfigErrorKind::TotpWithOneTimeSequences { door: name },
        ));
    }
    let Some((sequence_number, sequence_text)) = &totp.sequence_line else {
        let header = &builder.header_text;
        let located = Located::at(
            header,
            header.trim_start(),
            ConfigErrorKind::TotpWithoutSequence { door: name },
        );
        return Err(located.into_error(builder.header_line, header));
    };
    if let Err(reason) = crate::totp::check_layout(totp.params.digits, &door.sequence) {
        let (number, text, item) = match (&reason, &totp.digits_line) {
            (LayoutError::PortOverflow { step, .. }, _) => {
                (*sequence_number, sequence_text, Some(step - 1))
            }
            (LayoutError::NotDivisible { .. }, Some((number, text))) => (*number, text, None),
            _ => (*sequence_number, sequence_text, None),
        };
        return Err(error_at_value(
            number,
            text,
            item,
            ConfigErrorKind::TotpLayout { door: name, reason },
        ));
    }
    door.totp = Some(TotpConfig {
        secret,
        params: totp.params,
    });
    Ok(())
}

fn sequence_warnings(
    door: &Door,
    sequence_line: usize,
    seq_timeout_line: usize,
    warn: &mut impl FnMut(usize, WarningKind),
) {
    let steps = &door.sequence;
    if steps.len() == 1 {
        warn(sequence_line, WarningKind::SingleStepDoor);
    }
    if steps.len() >= 2 && door.seq_timeout.is_zero() {
        warn(seq_timeout_line, WarningKind::ZeroSeqTimeout);
    }
    if steps.len() >= 2
        && steps
            .windows(2)
            .all(|pair| u32::from(pair[0].port) + 1 == u32::from(pair[1].port))
    {
        warn(sequence_line, WarningKind::AscendingAdjacentPorts);
    }
    let ports = || steps.iter().map(|step| step.port);
    if ports().eq([7000, 8000, 9000]) || ports().eq([9000, 8000, 7000]) {
        warn(sequence_line, WarningKind::WellKnownSequence);
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// A boolean directive's value, or a positioned [`ConfigErrorKind::InvalidBool`].
fn bool_value(line: &str, key: &str, value: &str) -> LineResult<bool> {
    parse_bool(value).ok_or_else(|| {
        Located::at(
            line,
            value,
            ConfigErrorKind::InvalidBool {
                key: key.to_ascii_lowercase(),
                text: value.to_owned(),
            },
        )
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["yes", "true", "1", "on"];
    const FALSE: [&str; 4] = ["no", "false", "0", "off"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(value)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(value)) {
        Some(false)
    } else {
        None
    }
}

/// Splits a comma-separated value into its raw items (never fails; items may be empty).
fn comma_items(value: &str) -> Vec<&str> {
    let items: IResult<&str, Vec<&str>> =
        separated_list1(char(','), take_till(|c| c == ',')).parse_complete(value);
    items.map_or_else(|_| vec![value], |(_, items)| items)
}

fn interface_list(line: &str, value: &str) -> LineResult<Vec<String>> {
    comma_items(value)
        .into_iter()
        .map(|item| {
            let name = item.trim();
            if name.is_empty() {
                Err(Located::at(line, item, ConfigErrorKind::EmptyInterface))
            } else {
                Ok(name.to_owned())
            }
        })
        .collect()
}

/// A port list: `port[:proto]` items separated by commas. `value` is a trimmed, non-empty
/// sub-slice of `line`.
pub(crate) fn sequence_value(line: &str, value: &str) -> LineResult<Vec<Knock>> {
    let items = comma_items(value);
    let mut knocks = Vec::with_capacity(items.len().min(MAX_SEQUENCE_LEN));
    for (index, item) in items.iter().enumerate() {
        if index == MAX_SEQUENCE_LEN {
            return Err(Located::at(
                line,
                item.trim_start(),
                ConfigErrorKind::TooManySteps { count: items.len() },
            ));
        }
        knocks.push(knock_item(line, value, item)?);
    }
    Ok(knocks)
}

/// What follows a token inside a sequence item: nothing, a comment, another port (blank
/// separated), or junk.
fn check_after_token<'a>(line: &str, value: &'a str, after: &'a str) -> LineResult<bool> {
    let next = after.trim_start();
    if next.is_empty() {
        return Ok(true);
    }
    if next.starts_with('#') {
        let from_hash = &value[value.offset(next)..];
        return Err(Located::at(
            line,
            next,
            ConfigErrorKind::TrailingComment {
                text: from_hash.to_owned(),
            },
        ));
    }
    let blank_separated = after.len() != next.len();
    if blank_separated && next.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Located::at(
            line,
            next,
            ConfigErrorKind::SpaceSeparatedPorts {
                suggestion: comma_suggestion(value),
            },
        ));
    }
    Ok(false)
}

/// `value` with blank-separated ports joined by commas (for the hint).
fn comma_suggestion(value: &str) -> String {
    let value = value.split('#').next().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for token in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        match out.last_mut() {
            Some(last) if token.starts_with(':') || last.ends_with(':') => last.push_str(token),
            _ => out.push(token.to_owned()),
        }
    }
    out.join(",")
}

fn signed_number(input: &str) -> IResult<&str, &str> {
    recognize((opt(char('-')), digit1)).parse_complete(input)
}

fn knock_item(line: &str, value: &str, item: &str) -> LineResult<Knock> {
    let (port_part, proto_part) = match item.split_once(':') {
        Some((port, proto)) => (port, Some(proto)),
        None => (item, None),
    };
    let port_text = port_part.trim();
    if port_text.is_empty() {
        let at = if item.trim().is_empty() {
            item
        } else {
            port_text
        };
        return Err(Located::at(line, at, ConfigErrorKind::EmptyPort));
    }
    let not_a_number = || {
        Located::at(
            line,
            port_text,
            ConfigErrorKind::PortNotANumber {
                text: port_text.to_owned(),
            },
        )
    };
    let (after, number) = signed_number(port_part.trim_start()).map_err(|_| not_a_number())?;
    if !check_after_token(line, value, after)? {
        return Err(not_a_number());
    }
    let port = port_number(number).map_err(|kind| Located::at(line, number, kind))?;

    let Some(proto_part) = proto_part else {
        return Ok(Knock::tcp(port));
    };
    let (proto_field, extra) = match proto_part.split_once(':') {
        Some((proto, extra)) => (proto, Some(extra)),
        None => (proto_part, None),
    };
    let proto_text = proto_field.trim();
    let word_len = proto_text
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(proto_text.len());
    let (word, after) = proto_text.split_at(word_len);
    let protocol = if word.eq_ignore_ascii_case("tcp") {
        Some(Protocol::Tcp)
    } else if word.eq_ignore_ascii_case("udp") {
        Some(Protocol::Udp)
    } else {
        None
    };
    let unknown = || {
        Located::at(
            line,
            proto_text,
            ConfigErrorKind::UnknownProtocol {
                protocol: proto_text.to_owned(),
            },
        )
    };
    let protocol = protocol.ok_or_else(unknown)?;
    if extra.is_none() && !check_after_token(line, value, after)? {
        return Err(unknown());
    }
    if !after.is_empty() {
        return Err(unknown());
    }
    if let Some(extra) = extra {
        let from_colon = &proto_part[proto_field.len()..];
        debug_assert!(from_colon.len() == extra.len() + 1);
        return Err(Located::at(
            line,
            from_colon,
            ConfigErrorKind::ExtraSequenceField {
                text: from_colon.trim_end().to_owned(),
            },
        ));
    }
    Ok(Knock { port, protocol })
}

/// A port from `-?[0-9]+`.
fn port_number(text: &str) -> Result<u16, ConfigErrorKind> {
    if text.starts_with('-') {
        return Err(ConfigErrorKind::NegativePort {
            text: text.to_owned(),
        });
    }
    let out_of_range = || ConfigErrorKind::PortOutOfRange {
        text: text.to_owned(),
    };
    // Leading zeros are harmless ("0080"); only the value matters.
    let digits = text.trim_start_matches('0');
    if digits.is_empty() {
        return Err(ConfigErrorKind::PortZero);
    }
    if digits.len() > 5 {
        return Err(out_of_range());
    }
    digits.parse::<u16>().map_err(|_| out_of_range())
}

/// A `tcpflags` value: `flag` or `!flag` items, separated by commas, blanks around items
/// tolerated. Later items overwrite the state of the same flag; other flags are kept.
fn flags_value(line: &str, value: &str, rule: &mut FlagRule) -> LineResult<()> {
    for item in comma_items(value) {
        let trimmed = item.trim();
        let (negated, name) = match trimmed.strip_prefix('!') {
            Some(name) => (true, name.trim_start()),
            None => (false, trimmed),
        };
        if name.is_empty() {
            let at = if trimmed.is_empty() { item } else { trimmed };
            return Err(Located::at(line, at, ConfigErrorKind::EmptyFlag));
        }
        let Some(&(flag, _)) = TcpFlags::NAMED
            .iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(name))
        else {
            return Err(Located::at(
                line,
                trimmed,
                ConfigErrorKind::UnknownFlag {
                    flag: trimmed.to_owned(),
                },
            ));
        };
        if negated {
            rule.must_set = rule.must_set.difference(flag);
            rule.must_clear = rule.must_clear.union(flag);
        } else {
            rule.must_clear = rule.must_clear.difference(flag);
            rule.must_set = rule.must_set.union(flag);
        }
    }
    Ok(())
}

/// Longest duration text looked at; anything longer is not a duration anyone means.
const MAX_DURATION_LEN: usize = 64;

/// One humantime component, `number unit` (`5s`, `1.5 h`, `500ms`).
fn duration_component(input: &str) -> IResult<&str, &str> {
    preceded(
        space0,
        recognize((
            digit1,
            opt((char('.'), digit0)),
            space0,
            take_till1(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.'),
        )),
    )
    .parse_complete(input)
}

/// A duration: bare digits are seconds (knockd 0.8), anything else must be a humantime
/// duration (`5s`, `1m30s`, `500ms`).
fn duration_value(line: &str, key: &str, value: &str) -> LineResult<Duration> {
    let invalid = || {
        Located::at(
            line,
            value,
            ConfigErrorKind::InvalidDuration {
                key: key.to_ascii_lowercase(),
                text: value.to_owned(),
            },
        )
    };
    if value.starts_with('-') {
        return Err(Located::at(
            line,
            value,
            ConfigErrorKind::NegativeDuration {
                key: key.to_ascii_lowercase(),
                text: value.to_owned(),
            },
        ));
    }
    // Issue 10 item 13: a duration beyond MAX_DURATION (u64::MAX seconds overflowed every
    // deadline computed from it) is an error, not a timer that never fires.
    let too_long = || {
        Located::at(
            line,
            value,
            ConfigErrorKind::DurationTooLong {
                key: key.to_ascii_lowercase(),
                text: value.to_owned(),
            },
        )
    };
    let bounded = |d: Duration| {
        if d > MAX_DURATION {
            Err(too_long())
        } else {
            Ok(d)
        }
    };
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u64>() {
            Ok(secs) => bounded(Duration::from_secs(secs)),
            // All digits but beyond u64: too long, not malformed.
            Err(_) if !value.is_empty() => Err(too_long()),
            Err(_) => Err(invalid()),
        };
    }
    if value.len() > MAX_DURATION_LEN {
        return Err(invalid());
    }
    // Each component goes to humantime on its own and the sum is checked here: humantime
    // sums components itself with an unchecked carry that can panic near u64::MAX seconds.
    let (_, components) = all_consuming(many1(duration_component))
        .parse_complete(value)
        .map_err(|_: nom::Err<nom::error::Error<&str>>| invalid())?;
    components
        .into_iter()
        .try_fold(Duration::ZERO, |total, component| {
            humantime::parse_duration(component)
                .ok()
                .ok_or_else(invalid)
                .and_then(|d| total.checked_add(d).ok_or_else(too_long))
                .and_then(bounded)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_lines() {
        assert_eq!(classify("   ").unwrap(), LineKind::Blank);
        assert_eq!(classify("  # x = y").unwrap(), LineKind::Comment);
        assert_eq!(classify(" [ d ] ").unwrap(), LineKind::Section(" d "));
        assert_eq!(classify("[]").unwrap(), LineKind::Section(""));
        assert_eq!(
            classify(" Key = a=b  c ").unwrap(),
            LineKind::Directive {
                key: "Key",
                value: Some("a=b  c")
            }
        );
        assert_eq!(
            classify("usesyslog").unwrap(),
            LineKind::Directive {
                key: "usesyslog",
                value: None
            }
        );
        assert!(matches!(
            classify("[foo").unwrap_err().kind,
            ConfigErrorKind::UnterminatedSection
        ));
    }

    #[test]
    fn split_lines_handles_crlf_and_final_newline() {
        let lines: Vec<_> = split_lines("a\r\nb\n\nc").collect();
        assert_eq!(lines, [(1, 0, "a"), (2, 3, "b"), (3, 5, ""), (4, 6, "c")]);
        assert_eq!(split_lines("a\n").count(), 1);
        assert_eq!(split_lines("").count(), 0);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("seqtimeout", "seq_timeout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest_key("Seq_Timout").as_deref(), Some("seq_timeout"));
        assert_eq!(suggest_key("xyzzy"), None);
    }

    #[test]
    fn durations() {
        let d = |v: &str| duration_value(v, "timeout", v).map_err(|e| e.kind);
        assert_eq!(d("25").unwrap(), Duration::from_secs(25));
        assert_eq!(d("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(matches!(
            d("-5"),
            Err(ConfigErrorKind::NegativeDuration { .. })
        ));
        assert!(matches!(
            d("abc"),
            Err(ConfigErrorKind::InvalidDuration { .. })
        ));
        assert!(matches!(
            d("3x"),
            Err(ConfigErrorKind::InvalidDuration { .. })
        ));
        assert!(matches!(
            d("5 S"),
            Err(ConfigErrorKind::InvalidDuration { .. })
        ));
        assert!(matches!(
            d("99999999999999999999999"),
            Err(ConfigErrorKind::DurationTooLong { .. })
        ));
        // Would overflow (and panic inside humantime if given as one string).
        assert!(d("18446744073709551615s 500ms 500ms").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port_number("1"), Ok(1));
        assert_eq!(port_number("065535"), Ok(65535));
        assert_eq!(port_number("0"), Err(ConfigErrorKind::PortZero));
        assert_eq!(port_number("000"), Err(ConfigErrorKind::PortZero));
        assert!(matches!(
            port_number("65536"),
            Err(ConfigErrorKind::PortOutOfRange { .. })
        ));
        assert!(matches!(
            port_number("99999999999999999999"),
            Err(ConfigErrorKind::PortOutOfRange { .. })
        ));
        assert!(matches!(
            port_number("-1"),
            Err(ConfigErrorKind::NegativePort { .. })
        ));
    }

    #[test]
    fn suggestions() {
        assert_eq!(comma_suggestion("7000 8000 9000"), "7000,8000,9000");
        assert_eq!(
            comma_suggestion("7000 8000 : udp  9000"),
            "7000,8000:udp,9000"
        );
        assert_eq!(comma_suggestion("7000 8000 # x"), "7000,8000");
    }
}
