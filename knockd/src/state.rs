//! The pending-stops state file: every stop command that is due but has not run yet, so a
//! crash, `kill -9` or reboot never leaves a firewall hole open (0.8 bug B2).
//!
//! Format (JSON, one document, rewritten atomically — temporary file in the same directory,
//! fsync, rename, fsync of the directory — on every change):
//!
//! ```json
//! {"version":1,"pending_stops":[
//!   {"door":"openSSH","source":"10.0.0.1","due":1795000000,"command":"iptables -D … 10.0.0.1 …"}
//! ]}
//! ```
//!
//! `due` is in Unix seconds; `command` is the stop command as it will run (`%IP%` already
//! replaced), so the hole opened under an old configuration is closed by the matching
//! command even if the configuration changed since.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// One stop command still to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingStop {
    /// In-process identifier (not stored).
    pub id: u64,
    /// The door's name.
    pub door: String,
    /// The knocker.
    pub source: IpAddr,
    /// When it is due, in Unix seconds.
    pub due_unix: u64,
    /// The command, `%IP%` replaced.
    pub command: String,
    /// Whether it has been handed to the executor (it stays recorded until it finished).
    pub started: bool,
}

/// Why the state file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("cannot read state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file could be written by someone else: its commands are not run.
    #[error(
        "state file {path} is not safe to run commands from (it must be owned by this user and \
         writable by no one else); ignoring it"
    )]
    Unsafe {
        /// The file.
        path: PathBuf,
    },
    /// The content is not a valid state document.
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The pending stops and the file that records them.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    entries: Vec<PendingStop>,
    next_id: u64,
}

impl StateFile {
    /// An empty state recorded at `path` (nothing is written until the first change).
    #[must_use]
    pub fn empty(path: PathBuf) -> Self {
        Self {
            path,
            entries: Vec::new(),
            next_id: 1,
        }
    }

    /// Reads `path`; a missing file is an empty state.
    ///
    /// # Errors
    /// The file exists but cannot be read or is not a state document.
    pub fn load(path: PathBuf) -> Result<Self, StateError> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::empty(path)),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        // Its commands run through /bin/sh with knockd's privileges (normally root): a file
        // that another user could have written (e.g. `--state-file /tmp/…`) is refused.
        let meta = std::fs::metadata(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        if !is_safe(&meta) {
            return Err(StateError::Unsafe { path });
        }
        let mut state = Self::empty(path);
        if text.trim().is_empty() {
            return Ok(state);
        }
        let corrupt = |reason: String| StateError::Corrupt {
            path: state.path.clone(),
            reason,
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let list = value
            .get("pending_stops")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("no \"pending_stops\" list".into()))?;
        let mut entries = Vec::with_capacity(list.len());
        for item in list {
            let field = |name: &str| {
                item.get(name)
                    .ok_or_else(|| corrupt(format!("entry without \"{name}\"")))
            };
            let door = field("door")?
                .as_str()
                .ok_or_else(|| corrupt("\"door\" is not a string".into()))?;
            let source = field("source")?
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("\"source\" is not an IP address".into()))?;
            let due_unix = field("due")?
                .as_u64()
                .ok_or_else(|| corrupt("\"due\" is not a number of seconds".into()))?;
            let command = field("command")?
                .as_str()
                .ok_or_else(|| corrupt("\"command\" is not a string".into()))?;
            entries.push((door.to_owned(), source, due_unix, command.to_owned()));
        }
        for (door, source, due_unix, command) in entries {
            let id = state.next_id;
            state.next_id += 1;
            state.entries.push(PendingStop {
                id,
                door,
                source,
                due_unix,
                command,
                started: false,
            });
        }
        Ok(state)
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every pending stop, in the order recorded.
    #[must_use]
    pub fn entries(&self) -> &[PendingStop] {
        &self.entries
    }

    /// Records a new pending stop and returns its id.
    ///
    /// # Errors
    /// The file could not be written (the entry is kept in memory all the same).
    pub fn add(
        &mut self,
        door: &str,
        source: IpAddr,
        due_unix: u64,
        command: &str,
    ) -> (u64, io::Result<()>) {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(PendingStop {
            id,
            door: door.to_owned(),
            source,
            due_unix,
            command: command.to_owned(),
            started: false,
        });
        (id, self.save())
    }

    /// Marks the earliest not yet started stop of (`door`, `source`) as started and returns
    /// it.
    pub fn start_next(&mut self, door: &str, source: IpAddr) -> Option<PendingStop> {
        let entry = self
            .entries
            .iter_mut()
            .filter(|e| !e.started && e.door == door && e.source == source)
            .min_by_key(|e| (e.due_unix, e.id))?;
        entry.started = true;
        Some(entry.clone())
    }

    /// Marks a stop as started by id (restored entries run at once).
    pub fn mark_started(&mut self, id: u64) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.id == id) {
            entry.started = true;
        }
    }

    /// Forgets a stop that ran.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn remove(&mut self, id: u64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        if self.entries.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// The document as written to disk.
    #[must_use]
    pub fn to_text(&self) -> String {
        let list: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                json!({
                    "door": e.door,
                    "source": e.source.to_string(),
                    "due": e.due_unix,
                    "command": e.command,
                })
            })
            .collect();
        let mut text = json!({ "version": 1, "pending_stops": list }).to_string();
        text.push('\n');
        text
    }

    /// Writes the file atomically.
    ///
    /// # Errors
    /// Creating the directory, writing, syncing or renaming failed.
    pub fn save(&self) -> io::Result<()> {
        write_atomically(&self.path, self.to_text().as_bytes())
    }
}

fn is_safe(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// write a temporary file in the same directory, fsync it, rename it over `path`, fsync the
/// directory. The temporary file is opened close-on-exec.
///
/// # Errors
/// Any step failed; `path` is then unchanged.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".knockd-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // Keep the permissions of the file being replaced (e.g. a one-time sequences file
    // readable only by root).
    // (Never group- or world-writable, though: see `StateFile::load`.)
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7755;
        let _ = temp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode));
    }
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("pending-stops");
        let mut state = StateFile::load(path.clone()).unwrap();
        assert!(state.entries().is_empty());
        let ip4: IpAddr = "10.0.0.1".parse().unwrap();
        let ip6: IpAddr = "fd00::1".parse().unwrap();
        let (a, r) = state.add("openSSH", ip4, 1_795_000_000, "iptables -D x \"10.0.0.1\"");
        r.unwrap();
        let (_b, r) = state.add("door 2", ip6, 1_795_000_100, "ip6tables -D y fd00::1");
        r.unwrap();
        let loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.entries().len(), 2);
        assert_eq!(loaded.entries()[0].door, "openSSH");
        assert_eq!(loaded.entries()[0].source, ip4);
        assert_eq!(loaded.entries()[0].due_unix, 1_795_000_000);
        assert_eq!(loaded.entries()[0].command, "iptables -D x \"10.0.0.1\"");
        assert_eq!(loaded.entries()[1].source, ip6);

        state.remove(a).unwrap();
        let loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.entries().len(), 1);
        assert_eq!(loaded.entries()[0].door, "door 2");
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn start_next_takes_the_earliest_unstarted() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::empty(dir.path().join("s"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (late, _) = state.add("d", ip, 200, "late");
        let (early, _) = state.add("d", ip, 100, "early");
        assert_eq!(state.start_next("d", ip).unwrap().id, early);
        assert_eq!(state.start_next("d", ip).unwrap().id, late);
        assert_eq!(state.start_next("d", ip), None);
        assert_eq!(state.start_next("other", ip), None);
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            StateFile::load(path.clone()),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::write(
            &path,
            r#"{"pending_stops":[{"door":"d","source":"x","due":1,"command":"c"}]}"#,
        )
        .unwrap();
        let err = StateFile::load(path.clone()).unwrap_err();
        assert!(err.to_string().contains("source"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(StateFile::load(path).unwrap().entries().is_empty());
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut state = StateFile::empty(path.clone());
        state
            .add("d", "10.0.0.1".parse().unwrap(), 1, "true")
            .1
            .unwrap();
        assert_eq!(StateFile::load(path.clone()).unwrap().entries().len(), 1);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            StateFile::load(path),
            Err(StateError::Unsafe { .. })
        ));
    }
}
