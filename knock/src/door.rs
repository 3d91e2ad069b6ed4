//! `--door NAME -c knockd.conf`: what to send for a door of the server's configuration: its
//! knock sequence, or for an SPA door its SPA settings.

use std::io;
use std::path::{Path, PathBuf};

use knock_core::config::SpaConfig;
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
/// (as [`load_door_sequence`]) or, for an SPA door, its SPA settings.
///
/// # Errors
/// See [`DoorError`].
pub fn load_door(config_path: &Path, name: &str) -> Result<DoorPlan, DoorError> {
    match load_door_sequence(config_path, name) {
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
/// sees it knocked.
///
/// # Errors
/// See [`DoorError`].
pub fn load_door_sequence(config_path: &Path, name: &str) -> Result<Vec<Knock>, DoorError> {
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
    Ok(door.sequence.clone())
}

/// The active one-time sequence of a file's text: the one the server expects next (the
/// first valid line that is not marked used).
fn active_one_time_sequence(text: &str) -> Option<Vec<Knock>> {
    knock_core::ots::active_sequence(text).map(|active| active.sequence)
}
