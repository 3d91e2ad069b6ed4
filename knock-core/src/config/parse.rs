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
use super::{Config, Door, FlagRule, Knock, MAX_SEQUENCE_LEN};
use crate::packet::{Protocol, TcpFlags};
use crate::time::Duration;

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
    /// The grammar is summarised in the [module documentation](crate::config). Problems that
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
/// use knock_core::config::parse_sequence;
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
    fn at(line: &str, part: &str, kind: ConfigErrorKind) -> Self {
        Self {
            offset: line.offset(part),
            kind,
        }
    }

    /// The positioned error for line `number` whose text is `line`.
    pub(crate) fn into_error(self, number: usize, line: &str) -> ConfigError {
        let column = line.get(..self.offset).map_or(1, |s| s.chars().count() + 1);
        ConfigError::new(number, column, line, self.kind)
    }
}

type LineResult<T> = Result<T, Located>;

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
const KEYS: [(&str, Key); 17] = [
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
}

impl FileParser {
    fn line(&mut self, number: usize, line: &str) -> Result<(), ConfigError> {
        let located = |located: Located| located.into_error(number, line);
        match classify(line).map_err(located)? {
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
                    Key::UseSyslog => {
                        options.use_syslog = parse_bool(value).ok_or_else(|| {
                            value_error(ConfigErrorKind::InvalidBool {
                                text: value.to_owned(),
                            })
                        })?;
                    }
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
                    }
                    Key::OneTimeSequences => {
                        door.one_time_sequences = Some(value.to_owned());
                        builder.ots_line = number;
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
                    Key::UseSyslog | Key::LogFile | Key::PidFile | Key::Interface => {
                        return Err(option_in_door(door));
                    }
                }
            }
        }
        Ok(())
    }

    /// A directive line without `=`: only `UseSyslog` may stand alone (in any section, as in
    /// knockd 0.8).
    fn bare_word(&mut self, number: usize, line: &str, text: &str) -> LineResult<()> {
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
        let hint = lookup_key(word)
            .map(|_| word)
            .map(|w| format!("{w} = {remainder}"));
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
        } = *builder;
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
        Ok(())
    }

    fn finish(mut self) -> Result<Parsed, ConfigError> {
        self.close_door()?;
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
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid());
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
                .and_then(|d| total.checked_add(d))
                .ok_or_else(invalid)
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
            Err(ConfigErrorKind::InvalidDuration { .. })
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
