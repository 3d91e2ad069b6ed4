//! One-time sequences files: reading the active sequence and marking a used line, safely.
//!
//! The pure part (which line is active, which edit marks it) is `knock_core::ots`; this
//! module does the I/O. Unlike 0.8, the file is not kept open (commands cannot inherit it),
//! and a used line is marked by writing the whole new text to a temporary file in the same
//! directory, fsyncing it and renaming it over the original: a crash leaves either the old or
//! the new file, never a half-written one (0.8 wrote one byte in place without fsync).
//!
//! A symbolic link is resolved at each read and rewrite: the *target* is marked and the link
//! stays (renaming over the link replaced it with a regular file and never marked the
//! target; issue 10 item 8). The rewrite needs the target's directory writable, which
//! [`OtsFile::load`] checks (issue 10 item 3).

use std::io;
use std::path::{Path, PathBuf};

use knock_core::{ConfigError, Knock, ots};

use crate::io_reason;
use crate::state::write_atomically;

/// A door's one-time sequences file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtsFile {
    /// The path as written in the configuration.
    pub(crate) shown: String,
    /// The path made absolute at load time.
    pub(crate) path: PathBuf,
}

/// The state of a file at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtsStatus {
    /// The active sequence; `None` when none is left (the door is disabled).
    pub(crate) active: Option<Vec<Knock>>,
    /// Lines that are not valid sequences (skipped), named with the file.
    pub(crate) invalid: Vec<ConfigError>,
    /// The whole text (the daemon core advances it in memory; see
    /// [`OtsFile::write`]).
    pub(crate) text: String,
}

/// Why a file could not be read or updated.
#[derive(Debug, thiserror::Error)]
#[error("{what} one-time sequences file {shown}: {reason}")]
pub(crate) struct OtsError {
    what: &'static str,
    shown: String,
    reason: String,
}

impl OtsError {
    fn new(what: &'static str, file: &OtsFile, error: &io::Error) -> Self {
        Self {
            what,
            shown: file.shown.clone(),
            reason: io_reason(error),
        }
    }
}

impl OtsFile {
    /// Reads the file; it must exist and be writable (as 0.8 opened it `r+`), and so must
    /// its directory (after resolving symbolic links): marking a line writes a new file
    /// there and renames it over the old one.
    ///
    /// # Errors
    /// The file cannot be opened for reading and writing, or read, or a file cannot be
    /// created in its directory.
    pub(crate) fn load(&self) -> Result<OtsStatus, OtsError> {
        // Check writability up front: finding out only after the first successful knock
        // would leave the used sequence valid (replayable).
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| OtsError::new("cannot open", self, &e))?;
        let target = self.target()?;
        let dir = target.parent().unwrap_or_else(|| Path::new("/"));
        // What the rewrite does first: create a file beside the target (removed at once).
        let probe = dir.join(format!(".knockd-probe-{}.tmp", std::process::id()));
        // A stale probe of an earlier process with this pid (killed between the two calls).
        let _ = std::fs::remove_file(&probe);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| OtsError {
                what: "cannot update",
                shown: self.shown.clone(),
                reason: format!(
                    "cannot create a file in its directory {} ({}), so a used sequence could \
                     not be marked",
                    dir.display(),
                    io_reason(&e)
                ),
            })?;
        let _ = std::fs::remove_file(&probe);
        self.load_read_only()
    }

    /// The file itself: `path` with every symbolic link resolved.
    fn target(&self) -> Result<PathBuf, OtsError> {
        std::fs::canonicalize(&self.path).map_err(|e| OtsError::new("cannot open", self, &e))
    }

    /// Reads the file without requiring it to be writable (`--replay` never writes it).
    ///
    /// # Errors
    /// The file cannot be read.
    pub(crate) fn load_read_only(&self) -> Result<OtsStatus, OtsError> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| OtsError::new("cannot read", self, &e))?;
        let scan = ots::scan(&text);
        Ok(OtsStatus {
            active: scan.active.map(|a| a.sequence),
            invalid: scan
                .invalid
                .into_iter()
                .map(|e| e.with_file(self.shown.clone()))
                .collect(),
            text,
        })
    }

    /// Replaces the file's content with `text` (the daemon core's advanced text).
    ///
    /// # Errors
    /// Rewriting the file failed; it is then unchanged. A symbolic link is followed: its
    /// target is rewritten and the link stays (issue 10 item 8).
    pub(crate) fn write(&self, text: &str) -> Result<(), OtsError> {
        write_atomically(&self.target()?, text.as_bytes())
            .map_err(|e| OtsError::new("cannot update", self, &e))
    }
}

/// The file of a door, with a relative path made absolute against `cwd`.
#[must_use]
pub(crate) fn ots_file(shown: &str, cwd: &Path) -> OtsFile {
    OtsFile {
        shown: shown.to_owned(),
        path: crate::cli::absolute_from(cwd, Path::new(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ots");
        std::fs::write(&path, " 1000,2000\nbad\n3000:udp\n").unwrap();
        let file = ots_file("ots", dir.path());
        let status = file.load().unwrap();
        assert_eq!(
            status.active,
            Some(vec![Knock::tcp(1000), Knock::tcp(2000)])
        );
        assert_eq!(status.invalid.len(), 1);
        assert!(status.invalid[0].summary().starts_with("ots:2:"));

        let step = ots::advance(&status.text, &[Knock::tcp(1000), Knock::tcp(2000)]).unwrap();
        file.write(&step.text).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "#1000,2000\nbad\n3000:udp\n"
        );
        assert_eq!(file.load().unwrap().active, Some(vec![Knock::udp(3000)]));
        let step = ots::advance(&step.text, &[Knock::udp(3000)]).unwrap();
        assert_eq!(step.next, None);
        file.write(&step.text).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "#1000,2000\nbad\n#3000:udp\n"
        );
        assert_eq!(file.load().unwrap().active, None);
    }

    /// Issue 10 item 8: marking a one-time sequence replaced a symlinked file with a regular
    /// file and never marked the target. The target is marked; the link stays.
    #[test]
    fn issue10_item8_a_symlinked_file_marks_its_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real").join("ots");
        std::fs::write(&target, " 1000\n 2000\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("real/ots", &link).unwrap();
        let file = ots_file("link", dir.path());
        assert_eq!(file.load().unwrap().active, Some(vec![Knock::tcp(1000)]));
        let text = std::fs::read_to_string(&link).unwrap();
        let step = ots::advance(&text, &[Knock::tcp(1000)]).unwrap();
        file.write(&step.text).unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "#1000\n 2000\n");
        assert_eq!(file.load().unwrap().active, Some(vec![Knock::tcp(2000)]));
        // No temporary file left behind, in either directory.
        let leftovers = |d: &Path| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".knockd-")
                })
                .count()
        };
        assert_eq!(
            leftovers(dir.path()) + leftovers(&dir.path().join("real")),
            0
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = ots_file("nope.txt", dir.path());
        let err = file.load().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot open one-time sequences file nope.txt: No such file or directory"
        );
    }
}
