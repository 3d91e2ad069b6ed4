//! One-time sequences: pure functions over the text of a `One_Time_Sequences` file.
//!
//! The file holds one sequence per line, in the syntax of `sequence =` (see
//! [`parse_sequence`](crate::parse_sequence)). Lines are trimmed; empty lines and
//! lines whose first non-blank character is `#` are skipped; lines that do not parse are
//! skipped too and reported. The door's **active sequence** is the first line that parses.
//! When it has been used, the daemon marks that line with `#` and the next valid line becomes
//! active; when none is left the door is disabled.
//!
//! These functions only compute; reading and writing the file belongs to the daemon. A
//! typical use:
//!
//! ```
//! use knock_core::Knock;
//! use knock_core::ots;
//!
//! let text = " 1000,2000\n 99999,1\n3000:udp,4000\n";
//! let scan = ots::scan(text);
//! let active = scan.active.expect("a sequence is left");
//! assert_eq!(active.sequence, [Knock::tcp(1000), Knock::tcp(2000)]);
//! assert_eq!(scan.invalid.len(), 1); // line 2: port 99999 is out of range
//!
//! // The knock succeeded: mark the line that was used.
//! let step = ots::advance(text, &active.sequence).expect("the used line is still there");
//! assert_eq!(step.text, "#1000,2000\n 99999,1\n3000:udp,4000\n");
//! let next = step.next.expect("another sequence is left");
//! assert_eq!(next.sequence, [Knock::udp(3000), Knock::tcp(4000)]);
//!
//! let last = ots::advance(&step.text, &next.sequence).unwrap();
//! assert_eq!(last.text, "#1000,2000\n 99999,1\n#3000:udp,4000\n");
//! assert!(last.next.is_none(), "exhausted: the daemon disables the door");
//! ```
//!
//! # How a used line is marked (and what changed from knockd 0.8)
//!
//! * The `#` goes on the line that was actually used: the first line whose *parsed* sequence
//!   equals the used one. knockd 0.8 compared raw text and could mark an earlier invalid
//!   line instead, leaving the used sequence valid for a replay (its bug B8).
//! * No digit is ever overwritten. If the line starts with a blank (space or tab, the layout
//!   knockd's man page recommends: ` 1000,2000`), that blank is replaced by `#`, exactly as
//!   0.8 does, and the file keeps its length (the daemon may write the one byte in place).
//!   Otherwise `#` is **inserted** before the line's first byte (`1000,2000` becomes
//!   `#1000,2000`, where 0.8 wrote `#000,2000`), and the file grows by one byte, so the
//!   daemon must rewrite it (write a temporary file and rename it over the original).
//!   [`OtsEdit::keeps_length`] tells which case applies.
//!
//! Scanning is linear in the file size; nothing is cached between calls.

use crate::config::{ConfigError, Knock, Located, sequence_value, split_lines};

/// A valid line of a one-time sequences file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtsSequence {
    /// The 1-based line number.
    pub line: usize,
    /// The byte offset of the line's first byte in the file text.
    pub line_start: usize,
    /// The parsed sequence.
    pub sequence: Vec<Knock>,
}

/// The result of scanning a one-time sequences file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OtsScan {
    /// The active sequence: the first valid line. `None` when the file is exhausted; the
    /// daemon then disables the door (knockd 0.8 aborted here, its bug B6).
    pub active: Option<OtsSequence>,
    /// How many valid lines are left, the active one included.
    pub remaining: usize,
    /// The lines that are neither blank, comments, nor valid sequences, in file order, each
    /// positioned by line and column (name the file with
    /// [`ConfigError::with_file`]). They are skipped, never marked.
    pub invalid: Vec<ConfigError>,
}

/// Scans the file text: the active sequence, how many are left, and the invalid lines.
#[must_use]
pub fn scan(text: &str) -> OtsScan {
    let mut result = OtsScan::default();
    for (line, line_start, sequence) in lines(text) {
        match sequence {
            Ok(sequence) => {
                result.remaining += 1;
                if result.active.is_none() {
                    result.active = Some(OtsSequence {
                        line,
                        line_start,
                        sequence,
                    });
                }
            }
            Err(error) => result.invalid.push(error),
        }
    }
    result
}

/// The active sequence only (see [`scan`]).
#[must_use]
pub fn active_sequence(text: &str) -> Option<OtsSequence> {
    lines(text).find_map(|(line, line_start, sequence)| {
        sequence.ok().map(|sequence| OtsSequence {
            line,
            line_start,
            sequence,
        })
    })
}

/// The non-blank, non-comment lines: (number, start offset, parsed sequence or error).
fn lines(text: &str) -> impl Iterator<Item = (usize, usize, Result<Vec<Knock>, ConfigError>)> {
    split_lines(text).filter_map(|(number, start, line)| {
        let value = line.trim();
        if value.is_empty() || value.starts_with('#') {
            return None;
        }
        let parsed = sequence_value(line, value)
            .map_err(|located: Located| located.into_error(number, line));
        Some((number, start, parsed))
    })
}

/// A change to the file text that marks one line as used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtsEdit {
    /// Byte offset in the file text where the change starts (the used line's first byte).
    pub byte_offset: usize,
    /// How many bytes are replaced: 1 when a leading blank is overwritten, 0 when the `#` is
    /// inserted.
    pub len: usize,
    /// The bytes written at `byte_offset`: always `#`.
    pub replacement: &'static str,
    /// The 1-based number of the marked line.
    pub line: usize,
}

impl OtsEdit {
    /// Whether the edit keeps the file's length (a one-byte overwrite, possible in place).
    #[must_use]
    pub fn keeps_length(&self) -> bool {
        self.len == self.replacement.len()
    }

    /// The file text with the edit applied.
    ///
    /// # Panics
    /// If the edit does not fit `text` (it was computed for another text).
    #[must_use]
    pub fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + self.replacement.len());
        out.push_str(&text[..self.byte_offset]);
        out.push_str(self.replacement);
        out.push_str(&text[self.byte_offset + self.len..]);
        out
    }
}

/// The edit that marks the line holding `used` (the first valid line whose parsed sequence
/// equals it), or `None` if no valid line holds it (the file changed under the daemon).
#[must_use]
pub fn mark_used(text: &str, used: &[Knock]) -> Option<OtsEdit> {
    let (line, line_start, _) = lines(text).find(|(_, _, parsed)| {
        parsed
            .as_ref()
            .is_ok_and(|sequence| sequence.as_slice() == used)
    })?;
    let first = text.as_bytes().get(line_start).copied();
    let overwrite = matches!(first, Some(b' ' | b'\t'));
    Some(OtsEdit {
        byte_offset: line_start,
        len: usize::from(overwrite),
        replacement: "#",
        line,
    })
}

/// What follows the use of a sequence: the edit, the new text, and the next active sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtsAdvance {
    /// The edit that marks the used line.
    pub edit: OtsEdit,
    /// The file text with the edit applied (what the daemon writes back).
    pub text: String,
    /// The new active sequence; `None` when the file is exhausted (disable the door).
    pub next: Option<OtsSequence>,
}

/// Marks `used` in `text` and finds the next active sequence ([`mark_used`] then
/// [`active_sequence`]). `None` if no valid line holds `used`.
#[must_use]
pub fn advance(text: &str, used: &[Knock]) -> Option<OtsAdvance> {
    let edit = mark_used(text, used)?;
    let text = edit.apply(text);
    let next = active_sequence(&text);
    Some(OtsAdvance { edit, text, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigErrorKind;

    #[test]
    fn active_is_first_valid_line() {
        let text = "# header\n\n   \n  # indented comment\n 1000,2000\n3000\n";
        let scan = scan(text);
        let active = scan.active.unwrap();
        assert_eq!(active.line, 5);
        assert_eq!(active.line_start, text.find(" 1000").unwrap());
        assert_eq!(active.sequence, [Knock::tcp(1000), Knock::tcp(2000)]);
        assert_eq!(scan.remaining, 2);
        assert!(scan.invalid.is_empty());
    }

    #[test]
    fn invalid_lines_are_skipped_and_reported() {
        let text = "abc\n 5000 6000\n7000:icmp\n 8000:udp , 9000\n";
        let scan = scan(text);
        let lines: Vec<usize> = scan.invalid.iter().map(ConfigError::line).collect();
        assert_eq!(lines, [1, 2, 3]);
        assert_eq!(
            scan.invalid[0].kind(),
            &ConfigErrorKind::PortNotANumber { text: "abc".into() }
        );
        assert_eq!(
            scan.invalid[1].summary(),
            "knockd.conf:2:7: ports must be separated by commas; did you mean \"5000,6000\"?"
        );
        assert_eq!(
            scan.invalid[2]
                .clone()
                .with_file("/etc/knockd/ots")
                .summary(),
            "/etc/knockd/ots:3:6: unknown protocol \"icmp\" in sequence (expected tcp or udp)"
        );
        let active = scan.active.unwrap();
        assert_eq!(active.line, 4);
        assert_eq!(active.sequence, [Knock::udp(8000), Knock::tcp(9000)]);
        assert_eq!(scan.remaining, 1);
    }

    #[test]
    fn leading_blank_is_overwritten_in_place() {
        let text = " 1000,2000\n\t3000\n";
        let edit = mark_used(text, &[Knock::tcp(1000), Knock::tcp(2000)]).unwrap();
        assert_eq!(
            edit,
            OtsEdit {
                byte_offset: 0,
                len: 1,
                replacement: "#",
                line: 1
            }
        );
        assert!(edit.keeps_length());
        assert_eq!(edit.apply(text), "#1000,2000\n\t3000\n");
        let edit = mark_used(text, &[Knock::tcp(3000)]).unwrap();
        assert_eq!(edit.apply(text), " 1000,2000\n#3000\n");
    }

    #[test]
    fn line_without_leading_blank_gets_an_inserted_hash() {
        let text = "1000,2000\r\n3000:udp,4000\r\n";
        let step = advance(text, &[Knock::tcp(1000), Knock::tcp(2000)]).unwrap();
        assert_eq!(step.edit.len, 0);
        assert!(!step.edit.keeps_length());
        assert_eq!(
            step.text, "#1000,2000\r\n3000:udp,4000\r\n",
            "no digit lost"
        );
        assert_eq!(step.next.unwrap().line, 2);
    }

    /// knockd 0.8 bug B8 (EXP 9c): with an invalid line before the used one, 0.8 marked the
    /// invalid line and the used sequence stayed valid for a replay.
    #[test]
    fn b8_marks_the_line_that_was_used() {
        let text = " 1000,2000\n 99999,1\n 3000,4000\n";
        let first = advance(text, &[Knock::tcp(1000), Knock::tcp(2000)]).unwrap();
        assert_eq!(first.text, "#1000,2000\n 99999,1\n 3000,4000\n");
        let next = first.next.unwrap();
        assert_eq!(next.sequence, [Knock::tcp(3000), Knock::tcp(4000)]);
        assert_eq!(next.line, 3);

        let second = advance(&first.text, &next.sequence).unwrap();
        assert_eq!(second.edit.line, 3);
        assert_eq!(second.text, "#1000,2000\n 99999,1\n#3000,4000\n");
        assert_eq!(second.next, None, "3000,4000 cannot be replayed");
        let scan = scan(&second.text);
        assert_eq!(scan.active, None);
        assert_eq!(scan.remaining, 0);
        assert_eq!(scan.invalid.len(), 1, "the invalid line is still reported");
        assert_eq!(scan.invalid[0].line(), 2);
    }

    #[test]
    fn marks_the_first_line_equal_by_value_not_text() {
        // Same sequence written differently: the first one is used and marked.
        let text = "7000:TCP, 8000\n7000,8000\n";
        let step = advance(text, &[Knock::tcp(7000), Knock::tcp(8000)]).unwrap();
        assert_eq!(step.edit.line, 1);
        assert_eq!(step.next.unwrap().line, 2);
    }

    #[test]
    fn unknown_or_exhausted() {
        assert_eq!(mark_used("1000\n", &[Knock::tcp(2000)]), None);
        assert_eq!(advance("", &[Knock::tcp(1)]), None);
        assert_eq!(active_sequence("# all used\n#1000\n\n"), None);
        assert_eq!(scan("").remaining, 0);
    }

    #[test]
    fn last_line_without_newline() {
        let text = "#used\n1000";
        let step = advance(text, &[Knock::tcp(1000)]).unwrap();
        assert_eq!(step.text, "#used\n#1000");
        assert_eq!(step.next, None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// One line of a generated file: a valid sequence (with or without a leading blank),
        /// or a line that must be skipped (comment, blank, invalid).
        #[derive(Clone, Debug)]
        enum Line {
            Valid { indent: bool, sequence: Vec<Knock> },
            Skipped(&'static str),
        }

        fn line() -> impl Strategy<Value = Line> {
            let knock = (1u16..=u16::MAX, any::<bool>()).prop_map(|(port, udp)| {
                if udp {
                    Knock::udp(port)
                } else {
                    Knock::tcp(port)
                }
            });
            prop_oneof![
                3 => (any::<bool>(), proptest::collection::vec(knock, 1..4))
                    .prop_map(|(indent, sequence)| Line::Valid { indent, sequence }),
                1 => prop_oneof![
                    Just(""),
                    Just("# comment"),
                    Just("  #1000,2000"),
                    Just(" 99999,1"),
                    Just("5000 6000"),
                    Just("7000:icmp"),
                    Just("   "),
                ]
                .prop_map(Line::Skipped),
            ]
        }

        fn render(line: &Line) -> String {
            match line {
                Line::Valid { indent, sequence } => {
                    let items: Vec<String> = sequence.iter().map(ToString::to_string).collect();
                    format!("{}{}", if *indent { " " } else { "" }, items.join(","))
                }
                Line::Skipped(text) => (*text).to_owned(),
            }
        }

        proptest! {
            /// Using the active sequence again and again yields every valid line once, in
            /// file order, then exhaustion; each step changes only the used line, by one `#`,
            /// and never loses a character of it.
            #[test]
            fn sequences_are_used_in_order_exactly_once(
                lines in proptest::collection::vec(line(), 0..12),
                crlf in any::<bool>(),
            ) {
                let newline = if crlf { "\r\n" } else { "\n" };
                let mut text: String =
                    lines.iter().map(|l| render(l) + newline).collect();
                let expected: Vec<&Vec<Knock>> = lines
                    .iter()
                    .filter_map(|l| match l {
                        Line::Valid { sequence, .. } => Some(sequence),
                        Line::Skipped(_) => None,
                    })
                    .collect();
                for (used, sequence) in expected.iter().enumerate() {
                    let scan = scan(&text);
                    prop_assert_eq!(scan.remaining, expected.len() - used);
                    let active = scan.active.unwrap();
                    prop_assert_eq!(&&active.sequence, sequence);
                    let before: Vec<String> = text.split('\n').map(str::to_owned).collect();
                    let step = advance(&text, &active.sequence).unwrap();
                    prop_assert_eq!(step.edit.line, active.line);
                    let after: Vec<&str> = step.text.split('\n').collect();
                    prop_assert_eq!(before.len(), after.len());
                    for (index, (old, new)) in before.iter().zip(&after).enumerate() {
                        if index + 1 == active.line {
                            let expected_new = match old.strip_prefix(' ') {
                                Some(rest) => format!("#{rest}"),
                                None => format!("#{old}"),
                            };
                            prop_assert_eq!(new, &expected_new.as_str());
                        } else {
                            prop_assert_eq!(old, new);
                        }
                    }
                    text = step.text;
                }
                prop_assert_eq!(active_sequence(&text), None);
                prop_assert_eq!(scan(&text).remaining, 0);
            }
        }
    }
}
