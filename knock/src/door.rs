//! `--door NAME -c knockd.conf`: what to send for a door of the server's configuration: its
//! knock sequence (for a TOTP door, the current code's), or for an SPA door its SPA settings.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use knock_core::SpaConfig;
use knock_core::totp::{Secret, SecretFileError, TotpError, secret_from_file};
use knock_core::{Config, ConfigError, Knock};

/// Why a door's sequence could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoorError {
    /// The configuration file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The configuration file is not valid knockd.conf (file, line and column included).
    #[error("{0}")]
    Config(ConfigError),
    /// No door has that name.
    #[error("no door named '{name}' in {} (doors: {})", path.display(), list(available))]
    NoSuchDoor {
        /// The name asked for.
        name: String,
        /// The configuration file.
        path: PathBuf,
        /// The door names the file does have.
        available: Vec<String>,
    },
    /// The door uses one-time sequences and that file could not be read.
    #[error("cannot read one-time sequences of door '{door}' from {}: {source}", path.display())]
    ReadOneTimeSequences {
        /// The door.
        door: String,
        /// The `One_Time_Sequences` file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The one-time-sequence file has no usable line left (all used, or none valid).
    #[error("no unused one-time sequence left for door '{door}' in {}", path.display())]
    OneTimeSequencesExhausted {
        /// The door.
        door: String,
        /// The `One_Time_Sequences` file.
        path: PathBuf,
    },
    /// The door has neither a sequence nor a one-time-sequence file.
    #[error("door '{door}' has no sequence")]
    NoSequence {
        /// The door.
        door: String,
    },
    /// The door is an SPA door: it has no sequence ([`load_door`] handles it).
    #[error("door '{door}' is an SPA door: it has no knock sequence")]
    SpaDoor {
        /// The door.
        door: String,
    },
    /// The door's `TOTP_Secret_File` could not be read.
    #[error("cannot read the totp secret file of door '{door}', {}: {source}", path.display())]
    ReadTotpSecret {
        /// The door.
        door: String,
        /// The `TOTP_Secret_File`.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The door's `TOTP_Secret_File` is refused (others can read it, or it holds no valid
    /// secret). The message never contains the file's content.
    #[error("totp secret file of door '{door}', {}: {source}", path.display())]
    TotpSecretRefused {
        /// The door.
        door: String,
        /// The `TOTP_Secret_File`.
        path: PathBuf,
        /// Why.
        #[source]
        source: SecretFileError,
    },
    /// The door's TOTP settings do not fit its sequence (never for a configuration the
    /// parser accepted).
    #[error("door '{door}': {source}")]
    Totp {
        /// The door.
        door: String,
        /// Why.
        #[source]
        source: TotpError,
    },
}

/// When to compute a TOTP door's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnockTime {
    /// Now, by the system clock.
    #[default]
    Now,
    /// At this unix time, in seconds (`--totp-time`).
    Unix(u64),
}

impl KnockTime {
    /// The unix time in seconds.
    #[must_use]
    pub fn unix_secs(self) -> u64 {
        match self {
            Self::Unix(secs) => secs,
            Self::Now => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// What `--door` sends for a door.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DoorPlan {
    /// A knock sequence (for one-time-sequence doors, the active one).
    Sequence(Vec<Knock>),
    /// One SPA packet, per these settings (keys not read yet).
    Spa(SpaConfig),
}

/// Reads `config_path` and returns what to send for the door called `name`: its sequence
/// (as [`load_door_sequence_at`]) or, for an SPA door, its SPA settings.
///
/// # Errors
/// See [`DoorError`].
pub fn load_door(config_path: &Path, name: &str, time: KnockTime) -> Result<DoorPlan, DoorError> {
    match load_door_sequence_at(config_path, name, time) {
        Err(DoorError::SpaDoor { .. }) => {}
        other => return other.map(DoorPlan::Sequence),
    }
    let config = read_config(config_path)?;
    config
        .doors
        .into_iter()
        .find(|door| door.name == name)
        .and_then(|door| door.spa)
        .map(DoorPlan::Spa)
        .ok_or_else(|| DoorError::NoSequence {
            door: name.to_owned(),
        })
}

fn read_config(config_path: &Path) -> Result<Config, DoorError> {
    let text = std::fs::read_to_string(config_path).map_err(|source| DoorError::ReadConfig {
        path: config_path.to_owned(),
        source,
    })?;
    Config::parse(&text)
        .map(|parsed| parsed.config)
        .map_err(|error| DoorError::Config(error.with_file(config_path.display().to_string())))
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Reads `config_path` and returns the sequence of the door called `name` (the first door of
/// that name; section names are case-sensitive, as in knockd).
///
/// For a door with `One_Time_Sequences`, the active (first unused) line of that file is
/// returned. The file is only read, never marked: the server marks a sequence used once it
/// sees it knocked. For a TOTP door, the sequence of the current code (see
/// [`load_door_sequence_at`]).
///
/// # Errors
/// See [`DoorError`].
pub fn load_door_sequence(config_path: &Path, name: &str) -> Result<Vec<Knock>, DoorError> {
    load_door_sequence_at(config_path, name, KnockTime::Now)
}

/// [`load_door_sequence`], with the time at which a TOTP door's code is computed: the code
/// of the step containing `time`, laid out on the door's base ports (the secret comes from
/// `TOTP_Secret`, or from `TOTP_Secret_File`, which must be readable by its owner only).
///
/// # Errors
/// See [`DoorError`].
pub fn load_door_sequence_at(
    config_path: &Path,
    name: &str,
    time: KnockTime,
) -> Result<Vec<Knock>, DoorError> {
    let config = read_config(config_path)?;
    let Some(door) = config.doors.iter().find(|door| door.name == name) else {
        return Err(DoorError::NoSuchDoor {
            name: name.to_owned(),
            path: config_path.to_owned(),
            available: config.doors.iter().map(|door| door.name.clone()).collect(),
        });
    };
    if door.spa.is_some() {
        return Err(DoorError::SpaDoor {
            door: door.name.clone(),
        });
    }
    if let Some(ots_path) = &door.one_time_sequences {
        let ots_path = PathBuf::from(ots_path);
        let text = std::fs::read_to_string(&ots_path).map_err(|source| {
            DoorError::ReadOneTimeSequences {
                door: door.name.clone(),
                path: ots_path.clone(),
                source,
            }
        })?;
        return active_one_time_sequence(&text).ok_or_else(|| {
            DoorError::OneTimeSequencesExhausted {
                door: door.name.clone(),
                path: ots_path,
            }
        });
    }
    if door.sequence.is_empty() {
        return Err(DoorError::NoSequence {
            door: door.name.clone(),
        });
    }
    if let Some(settings) = &door.totp {
        let secret = match (settings.inline_secret(), settings.secret_file()) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => read_secret_file(&door.name, Path::new(path))?,
            (None, None) => {
                return Err(DoorError::NoSequence {
                    door: door.name.clone(),
                });
            }
        };
        let totp = settings
            .totp(secret, &door.sequence)
            .map_err(|source| DoorError::Totp {
                door: door.name.clone(),
                source,
            })?;
        return Ok(totp.sequence_at(time.unix_secs()));
    }
    Ok(door.sequence.clone())
}

/// The secret in a door's `TOTP_Secret_File`: refused when group or others can access the
/// file (checked before reading it), else its first line.
fn read_secret_file(door: &str, path: &Path) -> Result<Secret, DoorError> {
    let read_error = |source| DoorError::ReadTotpSecret {
        door: door.to_owned(),
        path: path.to_owned(),
        source,
    };
    let refused = |source| DoorError::TotpSecretRefused {
        door: door.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mode = crate::platform::permission_bits(&std::fs::metadata(path).map_err(read_error)?);
    if mode & 0o077 != 0 {
        return Err(refused(SecretFileError::Permissions {
            mode: mode & 0o7777,
        }));
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    secret_from_file(&text, mode).map_err(refused)
}

/// The active one-time sequence of a file's text: the one the server expects next (the
/// first valid line that is not marked used).
fn active_one_time_sequence(text: &str) -> Option<Vec<Knock>> {
    knock_core::ots::active_sequence(text).map(|active| active.sequence)
}
