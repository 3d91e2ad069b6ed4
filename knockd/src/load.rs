//! Reading and validating a configuration: the file, the parser's verdict, and every door's
//! one-time sequences file. Used at startup, by `--check`, `--replay`, and on reload (where a
//! failure keeps the old configuration running).

use std::io::Read as _;
use std::path::Path;

use knock_core::totp::Totp;
use knock_core::{Config, ConfigError, Knock, Warning};

use crate::core::{OtsText, RunningConfig, TotpRun};

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

/// A TOTP door, with its secret read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TotpDoor {
    /// The door's index.
    pub(crate) door: usize,
    /// The door's name.
    pub name: String,
    /// `TOTP_Secret_File` as written (`None` for an inline `TOTP_Secret`).
    pub secret_file: Option<String>,
    /// The code calculator (secret, parameters, base ports); its `Debug` hides the secret.
    pub totp: Totp,
}

/// A configuration ready to run.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    /// The parsed configuration (one-time-sequence doors keep an empty `sequence`; the
    /// daemon core fills in the active one).
    pub(crate) config: Config,
    /// The parser's warnings, naming the file.
    pub(crate) warnings: Vec<Warning>,
    /// Problems found in one-time sequences files (invalid lines, exhausted files), and the configuration file's ownership and permissions
    /// ([`file_safety_warnings`]): warnings, one line each, logged at start and printed by
    /// `--check`.
    pub(crate) ots_warnings: Vec<String>,
    /// The doors that take their sequence from a file.
    pub(crate) ots: Vec<OtsDoor>,
    /// The TOTP doors, secrets read.
    pub(crate) totp: Vec<TotpDoor>,
    /// The SPA doors' verifiers (door index, keys read), see [`load_spa_doors`].
    pub(crate) spa: Vec<(usize, knock_core::spa::SpaDoor)>,
}

impl Loaded {
    /// What the daemon core runs: the configuration, the one-time sequences texts and the
    /// TOTP doors' calculators. (A TOTP door's `sequence` lists bases: the matcher never
    /// takes it as a fixed sequence, only the codes' sequences the core gives it.)
    #[must_use]
    pub(crate) fn running(&self) -> RunningConfig {
        RunningConfig {
            config: self.config.clone(),
            totp: self
                .totp
                .iter()
                .map(|t| TotpRun {
                    door: t.door,
                    totp: t.totp.clone(),
                })
                .collect(),
            ots: self
                .ots
                .iter()
                .map(|o| OtsText {
                    door: o.door,
                    path: o.file.path.clone(),
                    text: o.text.clone(),
                })
                .collect(),
            spa: self.spa.clone(),
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

/// The largest configuration file read: 16 MiB, far above any real knockd.conf (100 000
/// doors take about 5 MiB) and small enough that `-c /dev/zero` or a runaway file fails fast
/// instead of exhausting memory (issue 10 item 14).
pub(crate) const MAX_CONFIG_LEN: u64 = 16 << 20;

/// Reads the configuration text: at most [`MAX_CONFIG_LEN`] bytes of UTF-8; invalid UTF-8 is
/// a positioned error (line and column of the first invalid byte).
fn read_config(shown: &str, path: &Path) -> Result<String, Error> {
    let read_error = |e: &std::io::Error| Error::Read {
        path: shown.to_owned(),
        reason: io_reason(e),
    };
    let file = std::fs::File::open(path).map_err(|e| read_error(&e))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(&e))?;
    if bytes.len() as u64 > MAX_CONFIG_LEN {
        return Err(Error::Read {
            path: shown.to_owned(),
            reason: format!(
                "file too large (a configuration may have at most {} MiB)",
                MAX_CONFIG_LEN >> 20
            ),
        });
    }
    String::from_utf8(bytes).map_err(|e| utf8_error(shown, e.as_bytes(), e.utf8_error()))
}

/// The positioned error for invalid UTF-8 at `error.valid_up_to()` of `bytes`.
fn utf8_error(shown: &str, bytes: &[u8], error: std::str::Utf8Error) -> Error {
    let at = error.valid_up_to();
    let line_start = bytes[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    // The prefix of the line before `at` is valid UTF-8 by definition of `valid_up_to`.
    let column = String::from_utf8_lossy(&bytes[line_start..at])
        .chars()
        .count()
        + 1;
    let line_end = bytes[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| at + i);
    let line_text = String::from_utf8_lossy(&bytes[line_start..line_end])
        .trim_end_matches('\r')
        .to_owned();
    let summary = format!(
        "{shown}:{line}:{column}: invalid UTF-8 (byte 0x{:02x}); the configuration must be \
         UTF-8 text",
        bytes[at]
    );
    let pad = " ".repeat(column.saturating_sub(1));
    Error::Config {
        display: format!("{summary}\n    {line_text}\n    {pad}^"),
        summary,
    }
}

/// Warnings about who can change the configuration at `path` (whose commands run as root):
/// a file writable by its group or by others, a file not owned by root, or a directory
/// writable by its group or others without the sticky bit (the file could be replaced)
/// (issue 10 item 15). Nothing when the file cannot be examined.
#[must_use]
pub(crate) fn file_safety_warnings(shown: &str, path: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut warnings = Vec::new();
    let Ok(meta) = std::fs::metadata(path) else {
        return warnings;
    };
    if meta.mode() & 0o022 != 0 {
        warnings.push(format!(
            "{shown} is writable by its group or by others (mode {:04o}) and its commands run \
             as root; run \"chmod go-w {shown}\"",
            meta.mode() & 0o7777
        ));
    }
    if meta.uid() != 0 {
        warnings.push(format!(
            "{shown} is owned by uid {}, not root, and its commands run as root; run \
             \"chown root {shown}\"",
            meta.uid()
        ));
    }
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(dir) = dir
        && let Ok(dir_meta) = std::fs::metadata(&dir)
        && dir_meta.mode() & 0o022 != 0
        && dir_meta.mode() & 0o1000 == 0
    {
        warnings.push(format!(
            "the directory of {shown} ({}) is writable by its group or by others (mode {:04o}): \
             the configuration, whose commands run as root, could be replaced",
            dir.display(),
            dir_meta.mode() & 0o7777
        ));
    }
    warnings
}

fn load_with(shown: &str, path: &Path, cwd: &Path, writable: bool) -> Result<Loaded, Error> {
    let text = read_config(shown, path)?;
    let parsed = Config::parse(&text).map_err(|e| config_error(&e.with_file(shown)))?;
    let warnings = parsed
        .warnings
        .into_iter()
        .map(|w| w.with_file(shown))
        .collect();
    let config = parsed.config;
    let mut ots = Vec::new();
    let mut ots_warnings = file_safety_warnings(shown, path);
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
    let mut totp = Vec::new();
    for (index, door) in config.doors.iter().enumerate() {
        let Some(settings) = &door.totp else {
            continue;
        };
        let (secret, secret_file) = match (settings.inline_secret(), settings.secret_file()) {
            (Some(secret), _) => (secret.clone(), None),
            (None, Some(file_text)) => {
                let file = ots_file(file_text, cwd);
                let secret = crate::secret::read_secret_file(&file.shown, &file.path)
                    .map_err(|e| positioned(&text, shown, "totp_secret_file", file_text, &e))?;
                (secret, Some(file_text.to_owned()))
            }
            (None, None) => {
                let error = format!("door {}: unsupported totp secret source", door.name);
                return Err(positioned(&text, shown, "", "", &error));
            }
        };
        // Config::parse validated the layout; stay total anyway.
        let calculator = settings
            .totp(secret, &door.sequence)
            .map_err(|e| positioned(&text, shown, "sequence", "", &e))?;
        totp.push(TotpDoor {
            door: index,
            name: door.name.clone(),
            secret_file,
            totp: calculator,
        });
    }
    let spa = load_spa_doors(&config, &text, shown, cwd)?;
    Ok(Loaded {
        config,
        warnings,
        ots_warnings,
        ots,
        totp,
        spa,
    })
}

/// The SPA doors' verifiers: keys inline or read from their files (relative paths from
/// `cwd`; refused when group/other-accessible), errors positioned on the directive like
/// TOTP secret files.
fn load_spa_doors(
    config: &Config,
    text: &str,
    shown: &str,
    cwd: &Path,
) -> Result<Vec<(usize, knock_core::spa::SpaDoor)>, Error> {
    use knock_core::SpaKeySource;
    let mut doors = Vec::new();
    for (index, door) in config.doors.iter().enumerate() {
        let Some(spa) = &door.spa else {
            continue;
        };
        let key = |source: &SpaKeySource, directive: &str| match source {
            SpaKeySource::Inline(key) => Ok(key.clone()),
            SpaKeySource::File(file_text) => {
                let file = ots_file(file_text, cwd);
                crate::spa_keys::read_key_file(&file.shown, &file.path)
                    .map_err(|e| positioned(text, shown, directive, file_text, &e))
            }
            _ => {
                let error = format!("door {}: unsupported spa key source", door.name);
                Err(positioned(text, shown, "", "", &error))
            }
        };
        let keys = knock_core::spa::SpaKeys::new(
            key(&spa.key, "spa_key_file")?,
            key(&spa.hmac_key, "spa_hmac_key_file")?,
        )
        .map_err(|e| {
            let error = format!("door {}: {e}", door.name);
            positioned(text, shown, "", "", &error)
        })?;
        doors.push((index, spa.door(keys)));
    }
    Ok(doors)
}

/// An error about the `key = value` directive of the configuration `text`, positioned on it
/// (unpositioned when not found).
fn positioned(
    text: &str,
    shown: &str,
    key: &str,
    value: &str,
    error: &dyn std::fmt::Display,
) -> Error {
    let (line, column, line_text) = locate_directive(text, key, value);
    if line == 0 {
        let error = format!("{shown}: {error}");
        return Error::Config {
            display: error.clone(),
            summary: error,
        };
    }
    let error = format!("{shown}:{line}:{column}: {error}");
    let pad = " ".repeat(column.saturating_sub(1));
    Error::Config {
        display: format!("{error}\n    {line_text}\n    {pad}^"),
        summary: error,
    }
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

    /// Issue 10 item 14: `-c /dev/zero` read until out of memory; the size is bounded and the
    /// error names the file.
    #[test]
    fn issue10_item14_config_size_is_bounded() {
        let err = load("/dev/zero", Path::new("/dev/zero"), Path::new("/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read /dev/zero: file too large (a configuration may have at most 16 MiB)"
        );
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("k.conf");
        let mut text = "[d]\nsequence = 1,2\n".to_owned();
        text.push_str(&"#".repeat(usize::try_from(MAX_CONFIG_LEN).unwrap() - text.len()));
        std::fs::write(&conf, &text).unwrap();
        load("k.conf", &conf, dir.path()).unwrap();
        text.push('\n');
        std::fs::write(&conf, &text).unwrap();
        let err = load("k.conf", &conf, dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read k.conf: file too large")
        );
    }

    /// Issue 10 item 14: invalid UTF-8 gave "stream did not contain valid UTF-8" with no line;
    /// it is positioned at the first invalid byte.
    #[test]
    fn issue10_item14_invalid_utf8_is_positioned() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("k.conf");
        std::fs::write(
            &conf,
            b"[d]\r\nsequence = 1,2\r\ncommand = \xc3\xa9\xff x\r\n",
        )
        .unwrap();
        let err = load("k.conf", &conf, dir.path()).unwrap_err();
        assert_eq!(
            err.summary(),
            "k.conf:3:12: invalid UTF-8 (byte 0xff); the configuration must be UTF-8 text"
        );
        assert_eq!(
            err.to_string(),
            "k.conf:3:12: invalid UTF-8 (byte 0xff); the configuration must be UTF-8 text\n    \
             command = \u{e9}\u{fffd} x\n               ^"
        );
        std::fs::write(&conf, b"\x80").unwrap();
        let err = load("k.conf", &conf, dir.path()).unwrap_err();
        assert!(
            err.summary()
                .starts_with("k.conf:1:1: invalid UTF-8 (byte 0x80)")
        );
    }

    /// Issue 10 item 15: a configuration writable by others or not owned by root (its
    /// commands run as root) is loaded with a warning (printed by --check, logged at start).
    #[test]
    fn issue10_item15_unsafe_configuration_ownership_and_mode_warn() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("k.conf");
        std::fs::write(&conf, "[d]\nsequence = 1,2\ncommand = true\n").unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let root = nix::unistd::geteuid().is_root();
        let loaded = load("k.conf", &conf, dir.path()).unwrap();
        if root {
            assert!(loaded.ots_warnings.is_empty(), "{:?}", loaded.ots_warnings);
        }
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o666)).unwrap();
        let loaded = load("k.conf", &conf, dir.path()).unwrap();
        assert!(
            loaded
                .ots_warnings
                .iter()
                .any(|w| w.starts_with("k.conf is writable by its group or by others (mode 0666)")),
            "{:?}",
            loaded.ots_warnings
        );
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        if root {
            nix::unistd::chown(&conf, Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        }
        let loaded = load("k.conf", &conf, dir.path()).unwrap();
        assert!(
            loaded
                .ots_warnings
                .iter()
                .any(|w| w.starts_with("k.conf is owned by uid ") && w.contains("not root")),
            "{:?}",
            loaded.ots_warnings
        );
        // A world-writable directory without the sticky bit: the file can be replaced.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let loaded = load("k.conf", &conf, dir.path()).unwrap();
        assert!(
            loaded
                .ots_warnings
                .iter()
                .any(|w| w.starts_with("the directory of k.conf")),
            "{:?}",
            loaded.ots_warnings
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
    fn spa_key_files_are_read_owner_only_and_positioned_on_error() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("spa.key");
        let hmac = dir.path().join("spa.hmac");
        std::fs::write(&key, "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=\n").unwrap();
        std::fs::write(
            &hmac,
            "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==\n",
        )
        .unwrap();
        for file in [&key, &hmac] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let conf = "[knock]\nsequence = 7000\ncommand = true\n[spa]\nspa_key_file = spa.key\n\
                    spa_hmac_key_file = spa.hmac\nspa_access = tcp/22\nstart_command = true\n";
        std::fs::write(dir.path().join("k.conf"), conf).unwrap();
        let loaded = load("k.conf", &dir.path().join("k.conf"), dir.path()).unwrap();
        assert_eq!(loaded.spa.len(), 1);
        assert_eq!(loaded.spa[0].0, 1);
        assert_eq!(loaded.running().spa.len(), 1);

        std::fs::set_permissions(&hmac, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = load("k.conf", &dir.path().join("k.conf"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("k.conf:6:21: spa key file spa.hmac: accessible by group or others"),
            "{text}"
        );
        assert!(!text.contains("wMip"), "{text}");
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

    #[test]
    fn totp_doors_are_loaded_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let conf = "[t]\nsequence = 40000,50000:udp\ntotp_secret = \
                    GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\ntotp_digits = 8\n[f]\nsequence = 7000,8000\n";
        std::fs::write(dir.path().join("k.conf"), conf).unwrap();
        let loaded = load("k.conf", &dir.path().join("k.conf"), dir.path()).unwrap();
        assert_eq!(loaded.totp.len(), 1);
        assert_eq!(loaded.totp[0].door, 0);
        // RFC 6238 Appendix B, SHA1 at 59 s: 94287082.
        assert_eq!(
            loaded.totp[0].totp.sequence_at(59),
            [Knock::tcp(49428), Knock::udp(57082)]
        );
        assert!(loaded.ots_warnings.is_empty(), "{:?}", loaded.ots_warnings);
        let running = loaded.running();
        assert_eq!(running.totp.len(), 1);
        assert_eq!(running.totp[0].door, 0);
        let effective = running.config;
        // The bases stay (the capture filter covers their ranges); the matcher never
        // matches them as a fixed sequence.
        assert_eq!(
            effective.doors[0].sequence,
            [Knock::tcp(40000), Knock::udp(50000)]
        );
        assert_eq!(
            effective.doors[1].sequence,
            [Knock::tcp(7000), Knock::tcp(8000)]
        );
        assert!(!format!("{loaded:?}").contains("GEZD"));
    }
}
