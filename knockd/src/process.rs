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
    /// Writes `"PID\n"` to `path` (0.8's format), creating or truncating it. A symbolic link
    /// at `path` is refused, not followed (`O_NOFOLLOW`): following it let whoever could
    /// plant the link truncate any file as root (issue 10 item 15).
    ///
    /// # Errors
    /// The file could not be written, or `path` is a symbolic link.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        use nix::errno::Errno;
        use nix::fcntl::OFlag;
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(Errno::ELOOP as i32) {
                    io::Error::other("it is a symbolic link (not followed)")
                } else {
                    e
                }
            })?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
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

    /// Issue 10 item 15: a symlinked pid file's target was truncated; the link is refused
    /// and its target left intact.
    #[test]
    fn issue10_item15_a_symlinked_pid_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let path = dir.path().join("knockd.pid");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = PidFile::create(&path).unwrap_err();
        assert_eq!(err.to_string(), "it is a symbolic link (not followed)");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        // A dangling link is not followed either (it would create the target).
        let dangling = dir.path().join("dangling.pid");
        std::os::unix::fs::symlink(dir.path().join("created"), &dangling).unwrap();
        assert!(PidFile::create(&dangling).is_err());
        assert!(!dir.path().join("created").exists());
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
