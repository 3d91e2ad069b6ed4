//! `TOTP_Secret_File`: reading a TOTP door's secret from its file.
//!
//! The checks themselves (permissions, first line, BASE32) are
//! [`knock_core::totp::secret_from_file`]; this module only does the I/O. The file must not
//! be accessible to group or others, as ssh requires of private keys.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use knock_core::totp::{Secret, SecretFileError, secret_from_file};

/// Why a secret file cannot be used. Never contains the file's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SecretReadError {
    /// The file cannot be read (missing, not permitted, not UTF-8, …).
    #[error("cannot read totp secret file {shown}: {reason}")]
    Read {
        /// The path as written in the configuration.
        shown: String,
        /// The system error.
        reason: String,
    },
    /// The file is readable but refused.
    #[error("totp secret file {shown}: {error}")]
    Refused {
        /// The path as written in the configuration.
        shown: String,
        /// Why.
        error: SecretFileError,
    },
}

/// Reads the secret in the file at `path` (`shown` as written in the configuration).
///
/// # Errors
/// See [`SecretReadError`].
pub(crate) fn read_secret_file(shown: &str, path: &Path) -> Result<Secret, SecretReadError> {
    let read_error = |e: &std::io::Error| SecretReadError::Read {
        shown: shown.to_owned(),
        reason: crate::io_reason(e),
    };
    let mode = std::fs::metadata(path).map_err(|e| read_error(&e))?.mode();
    // Refuse before reading: a refused file's content is never even loaded.
    if mode & 0o077 != 0 {
        return Err(SecretReadError::Refused {
            shown: shown.to_owned(),
            error: SecretFileError::Permissions {
                mode: mode & 0o7777,
            },
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_error(&e))?;
    secret_from_file(&text, mode).map_err(|error| SecretReadError::Refused {
        shown: shown.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reads_the_first_line_of_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("door.key");
        write(
            &path,
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq\n# comment\n",
            0o600,
        );
        let secret = read_secret_file("door.key", &path).unwrap();
        assert_eq!(secret.as_bytes(), b"12345678901234567890");
        write(&path, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0o400);
        assert!(read_secret_file("door.key", &path).is_ok());
    }

    #[test]
    fn refuses_files_others_can_access_and_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("door.key");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            write(&path, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n", mode);
            let error = read_secret_file("door.key", &path).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "totp secret file door.key: accessible by group or others (mode {mode:04o}); \
                     a secret file must be readable by its owner only (chmod 600)"
                )
            );
        }
        write(&path, "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ\n", 0o600);
        let error = read_secret_file("door.key", &path).unwrap_err().to_string();
        assert!(
            error.contains("first line: the secret is not BASE32"),
            "{error}"
        );
        assert!(!error.contains("GEZD"), "{error}");
        let error = read_secret_file("nope", &dir.path().join("nope")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read totp secret file nope: No such file or directory"
        );
    }
}
