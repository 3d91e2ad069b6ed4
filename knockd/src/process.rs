//! Daemon mode (`-d`) and the pid file.

use std::io;
use std::path::{Path, PathBuf};

/// Detaches from the terminal as 0.8's `daemon(0, 0)`: fork, `setsid`, `chdir /`, stdin,
/// stdout and stderr to `/dev/null`. Must be called before any thread is started (only the
/// calling thread survives a fork).
///
/// # Errors
/// The fork or `setsid` failed.
pub(crate) fn daemonize() -> io::Result<()> {
    nix::unistd::daemon(false, false).map_err(io::Error::from)
}

/// A pid file written by this process, removed by [`PidFile::remove`].
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes `"PID\n"` to `path` (0.8's format), creating or truncating it.
    ///
    /// # Errors
    /// The file could not be written.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Deletes the file (on a clean exit), if it still holds this process's id.
    pub(crate) fn remove(self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|text| text.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.pid");
        let pid = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        pid.remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_pid_file_rewritten_by_another_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.pid");
        let pid = PidFile::create(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        pid.remove();
        assert!(path.exists());
    }
}
