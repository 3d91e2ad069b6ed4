//! `SPA_Key_File` / `SPA_HMAC_Key_File`: reading an SPA door's keys from their files.
//!
//! A key file holds the base64 key as `fwknop --key-gen` prints it (surrounding blanks
//! ignored). Like TOTP secret files ([`crate::secret`]), it must not be accessible to group
//! or others (checked before it is read); errors never contain the file's content.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use knock_core::spa::{KeyError, SecretKey};
use zeroize::Zeroizing;

/// Why a key file cannot be used. Never contains the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeyFileError {
    /// The file cannot be read (missing, not permitted, …).
    #[error("cannot read spa key file {shown}: {reason}")]
    Read {
        /// The path as written in the configuration.
        shown: String,
        /// The system error.
        reason: String,
    },
    /// Group or others may access it.
    #[error(
        "spa key file {shown}: accessible by group or others (mode {mode:04o}); \
         a key file must be readable by its owner only (chmod 600)"
    )]
    Permissions {
        /// The path as written in the configuration.
        shown: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a usable key.
    #[error("spa key file {shown}: {reason}")]
    Key {
        /// The path as written in the configuration.
        shown: String,
        /// Why.
        reason: KeyError,
    },
}

/// Reads the key in the file at `path` (`shown` as written in the configuration).
///
/// # Errors
/// See [`KeyFileError`].
pub(crate) fn read_key_file(shown: &str, path: &Path) -> Result<SecretKey, KeyFileError> {
    let read_error = |e: &std::io::Error| KeyFileError::Read {
        shown: shown.to_owned(),
        reason: crate::io_reason(e),
    };
    let mode = std::fs::metadata(path).map_err(|e| read_error(&e))?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            shown: shown.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| read_error(&e))?);
    SecretKey::from_base64(&text).map_err(|reason| KeyFileError::Key {
        shown: shown.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const KEY: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reads_owner_only_files_and_refuses_others_without_showing_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spa.key");
        write(&path, &format!("  {KEY}\n"), 0o600);
        assert_eq!(read_key_file("spa.key", &path).unwrap().len(), 32);
        for mode in [0o640, 0o604, 0o644] {
            write(&path, KEY, mode);
            let error = read_key_file("spa.key", &path).unwrap_err().to_string();
            assert!(error.contains(&format!("(mode {mode:04o})")), "{error}");
            assert!(!error.contains("p94U"), "{error}");
        }
        write(&path, "not base64 !!", 0o600);
        let error = read_key_file("spa.key", &path).unwrap_err().to_string();
        assert!(error.starts_with("spa key file spa.key: "), "{error}");
        assert!(!error.contains("not base64 !!"), "{error}");
        let error = read_key_file("nope", &dir.path().join("nope")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read spa key file nope: No such file or directory"
        );
    }
}
