//! `--door NAME` for an SPA door: build one fwknop-compatible packet and send it.
//!
//! The packet itself comes from [`knock_core::spa::encode`]; this module adds what the pure
//! core does not do: reading key files (refusing files readable by group or others, like
//! ssh), the clock, the random bytes (from the operating system's CSPRNG) and the socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use knock_core::spa::{
    AccessPort, ENCODE_RANDOM_LEN, EncodeError, KeyError, SecretKey, SpaKeys, SpaRequest, encode,
};
use knock_core::{SpaConfig, SpaKeySource};

use crate::send::{KnockError, KnockOptions, send_datagram};

/// Why an SPA packet could not be made. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpaError {
    /// A key file could not be read.
    #[error("cannot read SPA key file {}: {source}", path.display())]
    ReadKeyFile {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A key file may be read by group or others.
    #[error(
        "SPA key file {} is readable by group or others (mode {mode:03o}); chmod 600 it",
        path.display()
    )]
    KeyFileMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key (inline or from a file) is unusable.
    #[error("SPA key{}: {reason}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Key {
        /// The key file, if the key came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: KeyError,
    },
    /// The operating system's random generator failed.
    #[error("cannot get random bytes: {0}")]
    Random(String),
    /// The request cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] KnockError),
}

/// Reads a key file: base64 text (as `fwknop --key-gen` prints a key), surrounding blanks
/// ignored. The file must not be readable by group or others.
///
/// # Errors
/// [`SpaError::ReadKeyFile`], [`SpaError::KeyFileMode`] or [`SpaError::Key`].
pub fn read_key_file(path: &Path) -> Result<SecretKey, SpaError> {
    let read_error = |source| SpaError::ReadKeyFile {
        path: path.to_owned(),
        source,
    };
    let mode =
        crate::platform::permission_bits(&std::fs::metadata(path).map_err(read_error)?) & 0o777;
    if mode & 0o077 != 0 {
        return Err(SpaError::KeyFileMode {
            path: path.to_owned(),
            mode,
        });
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(read_error)?);
    SecretKey::from_base64(&text).map_err(|reason| SpaError::Key {
        path: Some(path.to_owned()),
        reason,
    })
}

/// The keys of an SPA door: inline ones as they are, file ones read with
/// [`read_key_file`].
///
/// # Errors
/// See [`SpaError`].
pub fn load_keys(spa: &SpaConfig) -> Result<SpaKeys, SpaError> {
    let key = |source: &SpaKeySource| match source {
        SpaKeySource::File(path) => read_key_file(Path::new(path)),
        SpaKeySource::Inline(key) => Ok(key.clone()),
        _ => Err(SpaError::Key {
            path: None,
            reason: KeyError::Empty,
        }),
    };
    SpaKeys::new(key(&spa.key)?, key(&spa.hmac_key)?)
        .map_err(|reason| SpaError::Key { path: None, reason })
}

/// What to send for an SPA door.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpaSend {
    /// The address to let in; `None` sends `0.0.0.0`, "the packet's source".
    pub allow: Option<IpAddr>,
    /// The ports to ask for; `None` asks for the door's whole `SPA_Access`.
    pub access: Option<Vec<AccessPort>>,
    /// The user name in the packet.
    pub username: String,
}

impl Default for SpaSend {
    fn default() -> Self {
        Self {
            allow: None,
            access: None,
            username: default_username(),
        }
    }
}

/// The login name (`$USER`, as fwknop sends it) when it is a valid SPA user name, else
/// `knock`.
#[must_use]
pub fn default_username() -> String {
    std::env::var("USER")
        .ok()
        .filter(|name| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        })
        .unwrap_or_else(|| "knock".to_owned())
}

/// Builds the packet for `spa` with `keys` at the current time and sends it to
/// `target`'s `SPA_Port` over UDP. Returns the payload sent.
///
/// # Errors
/// See [`SpaError`].
pub fn send_spa(
    target: IpAddr,
    spa: &SpaConfig,
    keys: &SpaKeys,
    what: &SpaSend,
    options: &KnockOptions,
) -> Result<String, SpaError> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let request = SpaRequest {
        username: what.username.clone(),
        timestamp,
        allow: what.allow.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        access: what.access.clone().unwrap_or_else(|| spa.access.clone()),
        client_timeout: None,
    };
    let mut random = [0u8; ENCODE_RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|error| SpaError::Random(error.to_string()))?;
    let packet = encode(&request, keys, &random)?;
    send_datagram(
        SocketAddr::new(target, spa.port),
        packet.as_bytes(),
        options,
    )?;
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const KEY: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";

    #[test]
    fn key_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = read_key_file(&path).unwrap_err();
        assert!(
            matches!(error, SpaError::KeyFileMode { mode: 0o640, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = read_key_file(&path).unwrap();
        assert_eq!(key, SecretKey::from_base64(KEY).unwrap());
        std::fs::write(&path, "not base64!\n").unwrap();
        let error = read_key_file(&path).unwrap_err();
        assert!(!error.to_string().contains("not base64!"), "{error}");
        assert!(matches!(error, SpaError::Key { .. }));
        let missing = read_key_file(&dir.path().join("none")).unwrap_err();
        assert!(matches!(missing, SpaError::ReadKeyFile { .. }));
    }
}
