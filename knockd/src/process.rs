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

/// The identity of process `pid`, so that a reused pid is never mistaken for it: this
/// boot's id and the process's start time in clock ticks since boot (Linux `/proc`).
#[must_use]
pub(crate) fn identity(pid: u32) -> Option<(String, u64)> {
    Some((boot_id()?, start_ticks(pid)?))
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start with field 3; starttime is 22.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// What became of a start command a previous run left running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeftStart {
    /// Its process group was still there and was killed (SIGKILL).
    Killed,
    /// It had ended (or ran in an earlier boot, or its pid now belongs to another process).
    Gone,
}

/// Issue 10 item 5: stops the process group `pgid` of a start command a previous run left
/// running, if it is still that command's (checked with `identity`, recorded when it
/// started), and waits (at most `wait`) until the group is gone, so that its stop command
/// runs after it, never before.
#[must_use]
pub(crate) fn stop_left_start(
    pgid: u32,
    identity: Option<&(String, u64)>,
    wait: std::time::Duration,
) -> LeftStart {
    use nix::sys::signal::{Signal, killpg};
    let Ok(raw) = i32::try_from(pgid) else {
        return LeftStart::Gone;
    };
    if raw <= 1 {
        return LeftStart::Gone;
    }
    let group = nix::unistd::Pid::from_raw(raw);
    let ours = match (identity, start_ticks(pgid)) {
        // A different boot: nothing of it runs any more.
        (Some((boot, _)), _) if boot_id().as_ref() != Some(boot) => false,
        // The leader (the shell) still runs: it is ours if it started when recorded.
        (Some((_, ticks)), Some(now)) => *ticks == now,
        (None, Some(_)) => false,
        // The leader is gone; while any member of its group lives, its id is not given to
        // another process, so a live group is what is left of the command.
        (_, None) => killpg(group, None).is_ok(),
    };
    if !ours {
        return LeftStart::Gone;
    }
    let _ = killpg(group, Signal::SIGKILL);
    let deadline = std::time::Instant::now() + wait;
    while killpg(group, None).is_ok() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    LeftStart::Killed
}

/// A pid file written by this process, removed by [`PidFile::remove`]. It stays open with
/// an exclusive `flock` while this process runs (issue 10 item 6).
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// An exclusive lock on a state file, held for the life of the process: `flock` on
/// `STATE.lock` beside it (the state file itself is replaced by rename at every write, so it
/// cannot carry the lock). Issue 10 item 6: two instances on one state file overwrote each
/// other's entries.
#[derive(Debug)]
pub(crate) struct StateLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process holds it; the pid it wrote, if readable.
    Held(Option<u32>),
    /// The lock file could not be opened.
    Io(io::Error),
}

/// The lock file of the state file `state`: `STATE.lock`.
#[must_use]
pub(crate) fn state_lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StateLock {
    /// Locks [`state_lock_path`]`(state)` (creating it and its directory, mode 0600, not
    /// following a symbolic link) and writes this process's id into it.
    ///
    /// # Errors
    /// Another process holds the lock, or the file cannot be opened.
    pub(crate) fn take(state: &Path) -> Result<Self, LockError> {
        let path = state_lock_path(state);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = open_nofollow(&path, 0o600).map_err(LockError::Io)?;
        let lock = flock(file)?;
        write_pid(&lock).map_err(LockError::Io)?;
        Ok(Self { _lock: lock })
    }
}

fn open_nofollow(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    use nix::errno::Errno;
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(Errno::ELOOP as i32) {
                io::Error::other("it is a symbolic link (not followed)")
            } else {
                e
            }
        })
}

/// Takes an exclusive `flock` without waiting.
fn flock(file: std::fs::File) -> Result<nix::fcntl::Flock<std::fs::File>, LockError> {
    use nix::fcntl::{Flock, FlockArg};
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            let text = io::read_to_string(&file).unwrap_or_default();
            Err(LockError::Held(text.trim().parse().ok()))
        }
        Err((_, errno)) => Err(LockError::Io(io::Error::from(errno))),
    }
}

/// Replaces the content of a locked file with `"PID\n"`.
fn write_pid(file: &std::fs::File) -> io::Result<()> {
    use std::io::{Seek as _, Write as _};
    let mut file = file;
    file.set_len(0)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
}

impl PidFile {
    /// Writes `"PID\n"` to `path` (0.8's format), creating or truncating it, and keeps it
    /// locked (`flock`) while this process runs. A symbolic link at `path` is refused, not
    /// followed (`O_NOFOLLOW`): following it let whoever could plant the link truncate any
    /// file as root (issue 10 item 15).
    ///
    /// # Errors
    /// The file could not be written, or `path` is a symbolic link, or another process holds
    /// its lock ([`LockError::Held`]: a running knockd).
    pub(crate) fn create(path: &Path) -> Result<Self, LockError> {
        let file = open_nofollow(path, 0o644).map_err(LockError::Io)?;
        let lock = flock(file)?;
        write_pid(&lock).map_err(LockError::Io)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
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
    use std::os::unix::process::ExitStatusExt as _;

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
        let Err(LockError::Io(err)) = PidFile::create(&path) else {
            panic!("a symbolic link was followed");
        };
        assert_eq!(err.to_string(), "it is a symbolic link (not followed)");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        // A dangling link is not followed either (it would create the target).
        let dangling = dir.path().join("dangling.pid");
        std::os::unix::fs::symlink(dir.path().join("created"), &dangling).unwrap();
        assert!(PidFile::create(&dangling).is_err());
        assert!(!dir.path().join("created").exists());
    }

    /// Issue 10 item 6: a second instance on the same pid file or state file is refused
    /// while the first holds them (`flock` is per open file description, so two opens in one
    /// process conflict like two processes).
    #[test]
    fn issue10_item6_pid_file_and_state_file_are_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.pid");
        let first = PidFile::create(&path).unwrap();
        let Err(LockError::Held(pid)) = PidFile::create(&path) else {
            panic!("a second pid file on a locked one");
        };
        assert_eq!(pid, Some(std::process::id()));
        first.remove();

        let state = dir.path().join("sub").join("pending-stops");
        let lock = StateLock::take(&state).unwrap();
        assert_eq!(
            state_lock_path(&state),
            dir.path().join("sub").join("pending-stops.lock")
        );
        assert!(matches!(
            StateLock::take(&state),
            Err(LockError::Held(Some(_)))
        ));
        drop(lock);
        assert!(StateLock::take(&state).is_ok());
    }

    /// Issue 10 item 5: a start command's group left running by a previous run is killed
    /// only if it is still that command (same start time); a reused pid is left alone.
    #[test]
    fn issue10_item5_left_starts_are_killed_only_if_still_theirs() {
        use std::os::unix::process::CommandExt as _;
        let spawn = || {
            std::process::Command::new("/bin/sh")
                .args(["-c", "sleep 30; true"])
                .process_group(0)
                .spawn()
                .unwrap()
        };
        // The killed shell stays a zombie (our child) until waited for: a short wait.
        let wait = std::time::Duration::from_millis(100);
        let mut other = spawn();
        let (boot, ticks) = identity(other.id()).unwrap();
        // Recorded with another start time: a reused pid, not touched.
        let wrong = (boot.clone(), ticks + 1);
        assert_eq!(
            stop_left_start(other.id(), Some(&wrong), wait),
            LeftStart::Gone
        );
        assert!(
            other.try_wait().unwrap().is_none(),
            "an unrelated process was killed"
        );
        // Recorded in another boot: not touched.
        let old_boot = ("another boot".to_owned(), ticks);
        assert_eq!(
            stop_left_start(other.id(), Some(&old_boot), wait),
            LeftStart::Gone
        );
        assert!(other.try_wait().unwrap().is_none());
        // Its own identity: killed, group and all.
        let ours = (boot, ticks);
        assert_eq!(
            stop_left_start(other.id(), Some(&ours), wait),
            LeftStart::Killed
        );
        assert!(other.wait().unwrap().signal().is_some());
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
