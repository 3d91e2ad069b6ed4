//! Reading and validating a configuration: the file, the parser's verdict, and every door's
//! one-time sequences file. Used at startup, by `--check`, `--replay`, and on reload (where a
//! failure keeps the old configuration running).

use std::path::Path;

use knock_core::{Config, ConfigError, Knock, Warning};

use crate::core::{OtsText, RunningConfig};

use crate::ots::{OtsFile, ots_file};
use crate::{Error, io_reason};

/// A door's one-time sequences, as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtsDoor {
    /// The door's index in the configuration.
    pub(crate) door: usize,
    /// The door's name.
    pub(crate) name: String,
    /// Its file.
    pub(crate) file: OtsFile,
    /// The active sequence when the file was loaded; `None` when it had none left (the door
    /// is disabled). Not updated afterwards: the daemon core keeps the current text.
    pub(crate) active: Option<Vec<Knock>>,
    /// The file's text when it was loaded.
    pub(crate) text: String,
}

/// A configuration ready to run.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    /// The parsed configuration (one-time-sequence doors keep an empty `sequence`; the
    /// daemon core fills in the active one).
    pub(crate) config: Config,
    /// The parser's warnings, naming the file.
    pub(crate) warnings: Vec<Warning>,
    /// Problems found in one-time sequences files (invalid lines, exhausted files): warnings,
    /// one line each.
    pub(crate) ots_warnings: Vec<String>,
    /// The doors that take their sequence from a file.
    pub(crate) ots: Vec<OtsDoor>,
}

impl Loaded {
    /// What the daemon core runs: the configuration and the one-time sequences texts.
    #[must_use]
    pub(crate) fn running(&self) -> RunningConfig {
        RunningConfig {
            config: self.config.clone(),
            ots: self
                .ots
                .iter()
                .map(|o| OtsText {
                    door: o.door,
                    path: o.file.path.clone(),
                    text: o.text.clone(),
                })
                .collect(),
        }
    }
}

/// Reads and validates the configuration at `path`; `shown` is the path as the user gave it
/// (errors name it), `cwd` resolves relative one-time sequences paths.
///
/// # Errors
/// [`Error::Read`] if the file cannot be read, [`Error::Config`] with the positioned message
/// if it is invalid or a one-time sequences file is missing or not writable.
pub(crate) fn load(shown: &str, path: &Path, cwd: &Path) -> Result<Loaded, Error> {
    load_with(shown, path, cwd, true)
}

/// [`load`] for `--replay`: one-time sequences files need only be readable.
///
/// # Errors
/// As [`load`].
pub(crate) fn load_read_only(shown: &str, path: &Path, cwd: &Path) -> Result<Loaded, Error> {
    load_with(shown, path, cwd, false)
}

fn load_with(shown: &str, path: &Path, cwd: &Path, writable: bool) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: shown.to_owned(),
        reason: io_reason(&e),
    })?;
    let parsed = Config::parse(&text).map_err(|e| config_error(&e.with_file(shown)))?;
    let warnings = parsed
        .warnings
        .into_iter()
        .map(|w| w.with_file(shown))
        .collect();
    let config = parsed.config;
    let mut ots = Vec::new();
    let mut ots_warnings = Vec::new();
    for (index, door) in config.doors.iter().enumerate() {
        let Some(file_text) = door.one_time_sequences.as_deref() else {
            continue;
        };
        let file = ots_file(file_text, cwd);
        let status = if writable {
            file.load()
        } else {
            file.load_read_only()
        };
        let status = status.map_err(|e| {
            let (line, column, line_text) =
                locate_directive(&text, "one_time_sequences", file_text);
            let error = format!("{shown}:{line}:{column}: {e}");
            let display = if line_text.is_empty() {
                error.clone()
            } else {
                let pad = " ".repeat(column.saturating_sub(1));
                format!("{error}\n    {line_text}\n    {pad}^")
            };
            Error::Config {
                display,
                summary: error,
            }
        })?;
        for invalid in &status.invalid {
            ots_warnings.push(format!("skipping invalid line: {}", invalid.summary()));
        }
        if status.active.is_none() {
            ots_warnings.push(exhausted_message(&door.name));
        }
        ots.push(OtsDoor {
            door: index,
            name: door.name.clone(),
            file,
            active: status.active,
            text: status.text,
        });
    }
    Ok(Loaded {
        config,
        warnings,
        ots_warnings,
        ots,
    })
}

/// 0.8's message when a door's one-time sequences run out.
#[must_use]
pub(crate) fn exhausted_message(door: &str) -> String {
    format!(
        "no more sequences left in the one time sequences file for door {door} --> disabling the door"
    )
}

fn config_error(error: &ConfigError) -> Error {
    Error::Config {
        display: error.to_string(),
        summary: error.summary(),
    }
}

/// The line, column and text of the `key = value` line (key case-insensitive) whose value is
/// `value`; (0, 0, "") if none.
fn locate_directive(text: &str, key: &str, value: &str) -> (usize, usize, String) {
    for (index, line) in text.lines().enumerate() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case(key) && v.trim() == value {
            let column = line.len() - v.trim_start().len() + 1;
            let line = line.trim_end_matches('\r');
            return (index + 1, column, line.to_owned());
        }
    }
    (0, 0, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_reads_like_perror() {
        let err = load(
            "/nonexistent/knockd.conf",
            Path::new("/nonexistent/knockd.conf"),
            Path::new("/"),
        )
        .unwrap_err();
        assert_eq!(
            format!("knockd: {err}"),
            "knockd: cannot read /nonexistent/knockd.conf: No such file or directory"
        );
    }

    #[test]
    fn parse_errors_name_the_file_as_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.conf"), "[d]\nsequence = 7000 8000\n").unwrap();
        let err = load("k.conf", &dir.path().join("k.conf"), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("k.conf:2:"), "{text}");
        assert!(text.contains("sequence = 7000 8000"), "{text}");
        assert!(!err.summary().contains('\n'));
    }

    #[test]
    fn one_time_sequences_are_loaded_and_positioned_on_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seqs"), " 1000,2000\n").unwrap();
        let conf = "[a]\none_time_sequences = seqs\ncommand = true\n\n[b]\n  One_Time_Sequences = missing\n";
        std::fs::write(dir.path().join("k.conf"), conf).unwrap();
        let err = load("k.conf", &dir.path().join("k.conf"), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "k.conf:6:24: cannot open one-time sequences file missing: No such file or directory"
            ),
            "{text}"
        );

        std::fs::write(dir.path().join("missing"), "").unwrap();
        let loaded = load("k.conf", &dir.path().join("k.conf"), dir.path()).unwrap();
        assert_eq!(loaded.ots.len(), 2);
        assert_eq!(
            loaded.ots[0].active,
            Some(vec![Knock::tcp(1000), Knock::tcp(2000)])
        );
        assert_eq!(loaded.ots[1].active, None);
        assert_eq!(loaded.ots_warnings, [exhausted_message("b")]);
        let running = loaded.running();
        assert_eq!(running.ots[0].text, " 1000,2000\n");
        assert_eq!(running.ots[1].door, 1);
    }
}
