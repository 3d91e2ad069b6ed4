//! The pending-stops state file: every stop command that is due but has not run yet, so a
//! crash, `kill -9` or reboot never leaves a firewall hole open (0.8 bug B2).
//!
//! The daemon core owns the records and tells the driver what changed
//! (`Effect::PersistStop`, `Effect::DropStop`); this mirror applies the changes in memory and
//! is written at most once per pass of the event loop, so a flood of opens does not turn into
//! one fsync per open. The file is rewritten whole: a temporary file in the same directory,
//! renamed over it (from then on a knockd restarted after a crash or `kill -9` reads it), then
//! synced, file and directory, once the start commands that waited for their stops are
//! spawned (see `Server::end_pass`). Format (JSON, one document):
//!
//! ```json
//! {"version":1,"pending_stops":[
//!   {"door":"openSSH","source":"10.0.0.1","due":1795000000,"command":"iptables -D … 10.0.0.1 …"}
//! ]}
//! ```
//!
//! SPA doors add `"spa_replay_cache"`: the replay cache's text (one `<sha-256 hex> <expiry>`
//! line per authentic packet still young enough to be replayed; see
//! `knock_core::spa::ReplayCache`), so a captured packet cannot be replayed after a restart.
//! Files without it (older versions, no SPA door) load as before.
//!
//! When time-based (TOTP) doors opened lately, `"spent_codes":[{"door":"totp","step":
//! 59999999}]`: the codes that must not open again (at most `2 × TOTP_Window + 1` per door;
//! the core drops the older ones at each step boundary). A file without that list (knockd
//! before TOTP) loads as having none.
//!
//! `due` is in Unix seconds; `command` is the stop command as it will run (`%IP%` already
//! replaced), so the hole opened under an old configuration is closed by the matching
//! command even if the configuration changed since. While start commands run, an optional
//! `"running_starts"` list records each one's process group (`door`, `source`, `pgid`,
//! `boot_id`, `start_ticks`; issue 10 item 5).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::core::{PendingStop, SpentCode, StopId};

/// Why the state file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    /// Reading failed.
    #[error("cannot read state file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not a `source`).
        error: io::Error,
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

/// A start command that was running when the file was written (issue 10 item 5): a restart
/// stops its process group before running the door's stop, so the start cannot finish after
/// the stop and leave the hole open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunningStart {
    /// The door's name.
    pub(crate) door: String,
    /// The knocker.
    pub(crate) source: IpAddr,
    /// Its process group (the shell's pid).
    pub(crate) pgid: u32,
    /// The shell's identity, so that a reused pid is never mistaken for it: the boot it ran
    /// in and its start time in clock ticks since that boot (`/proc/PID/stat`).
    pub(crate) identity: Option<(String, u64)>,
}

/// A pending stop and its entry in the file's `pending_stops` list, made once when it is
/// recorded: every write of the file (up to a hundred a second while a flood opens a door
/// with a stop command, with thousands of pending stops) then copies the entries instead of
/// formatting and escaping each again.
#[derive(Debug)]
struct Recorded {
    stop: PendingStop,
    json: Box<str>,
}

impl Recorded {
    fn new(stop: PendingStop) -> Self {
        let mut out = Vec::with_capacity(64 + stop.command.len() + stop.door.len());
        out.extend_from_slice(b"{\"command\":");
        push_json_string(&mut out, &stop.command);
        out.extend_from_slice(b",\"door\":");
        push_json_string(&mut out, &stop.door);
        // Keys in the order a serde_json `Value` writes them (sorted). An address has nothing
        // to escape. Writing to a Vec cannot fail.
        let _ = write!(
            out,
            ",\"due\":{},\"source\":\"{}\"}}",
            stop.due_unix, stop.source
        );
        // Only JSON text and UTF-8 strings went in.
        let json = String::from_utf8(out).unwrap_or_default().into_boxed_str();
        Self { stop, json }
    }
}

/// The pending stops and the file that records them.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    entries: BTreeMap<StopId, Recorded>,
    /// The SPA replay cache's text (empty: none).
    spa_replay: String,
    spent: Vec<SpentCode>,
    /// Changed since the last successful write.
    dirty: bool,
    /// Why the file must not be written (it was ignored at startup: unsafe or unreadable;
    /// overwriting it would lose its entries). Issue 10 item 11.
    frozen: Option<String>,
    /// Start commands running (issue 10 item 5), per (door, source): one at a time each.
    running: BTreeMap<(String, IpAddr), RunningStart>,
}

impl StateFile {
    /// An empty state recorded at `path` (nothing is written until the first change).
    #[must_use]
    pub(crate) const fn empty(path: PathBuf) -> Self {
        Self {
            path,
            entries: BTreeMap::new(),
            spa_replay: String::new(),
            spent: Vec::new(),
            dirty: false,
            frozen: None,
            running: BTreeMap::new(),
        }
    }

    /// [`load`](Self::load), recovering from what can be recovered from (issue 10 item 11):
    /// a corrupt file (invalid JSON or UTF-8) is moved aside to `PATH.corrupt` and an empty
    /// state starts; an unsafe or unreadable file (or a corrupt one that cannot be moved) is
    /// left as it is and never overwritten: every write fails until it is dealt with, so
    /// doors with a stop command do not open. The message to log, if any.
    #[must_use]
    pub(crate) fn load_or_recover(path: PathBuf) -> (Self, Option<String>) {
        match Self::load(path.clone()) {
            Ok(state) => (state, None),
            Err(e @ StateError::Corrupt { .. }) => {
                let aside = corrupt_path(&path);
                match std::fs::rename(&path, &aside) {
                    Ok(()) => (
                        Self::empty(path),
                        Some(format!(
                            "error: {e}; moved to {} and starting without it",
                            aside.display()
                        )),
                    ),
                    Err(error) => {
                        let why = format!(
                            "{e}, and it cannot be moved to {}: {}",
                            aside.display(),
                            crate::io_reason(&error)
                        );
                        (Self::frozen(path, &why), Some(frozen_message(&why)))
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                (Self::frozen(path, &why), Some(frozen_message(&why)))
            }
        }
    }

    fn frozen(path: PathBuf, why: &str) -> Self {
        let mut state = Self::empty(path);
        state.frozen = Some(why.to_owned());
        state
    }

    /// Reads `path`; a missing file is an empty state. Entries get ids 1, 2, … in file order.
    ///
    /// # Errors
    /// The file exists but cannot be read or is not a state document.
    pub(crate) fn load(path: PathBuf) -> Result<Self, StateError> {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::empty(path)),
            Err(error) => return Err(StateError::Read { path, error }),
        };
        // Its commands run through /bin/sh with knockd's privileges (normally root): a file
        // that another user could have written (e.g. `--state-file /tmp/…`) is refused.
        let meta = std::fs::metadata(&path).map_err(|error| StateError::Read {
            path: path.clone(),
            error,
        })?;
        if !is_safe(&meta) {
            return Err(StateError::Unsafe { path });
        }
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(StateError::Corrupt {
                path,
                reason: "not UTF-8".into(),
            });
        };
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
        let mut entries = BTreeMap::new();
        for (index, item) in (1..).zip(list) {
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
            entries.insert(
                StopId(index),
                Recorded::new(PendingStop {
                    door: door.to_owned(),
                    source,
                    due_unix,
                    command: command.to_owned(),
                }),
            );
        }
        let mut spent = Vec::new();
        for item in value
            .get("spent_codes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let door = item.get("door").and_then(Value::as_str);
            let step = item.get("step").and_then(Value::as_u64);
            let (Some(door), Some(code_step)) = (door, step) else {
                return Err(corrupt("a spent code without \"door\" or \"step\"".into()));
            };
            spent.push(SpentCode {
                door: door.to_owned(),
                code_step,
            });
        }
        state.entries = entries;
        for item in value
            .get("running_starts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let door = item.get("door").and_then(Value::as_str);
            let source = item
                .get("source")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let pgid = item
                .get("pgid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok());
            let (Some(door), Some(source), Some(pgid)) = (door, source, pgid) else {
                return Err(corrupt("a \"running_starts\" entry is incomplete".into()));
            };
            let identity = item
                .get("boot_id")
                .and_then(Value::as_str)
                .zip(item.get("start_ticks").and_then(Value::as_u64))
                .map(|(b, t)| (b.to_owned(), t));
            state.running.insert(
                (door.to_owned(), source),
                RunningStart {
                    door: door.to_owned(),
                    source,
                    pgid,
                    identity,
                },
            );
        }
        match value.get("spa_replay_cache") {
            None => {}
            Some(Value::String(text)) => state.spa_replay.clone_from(text),
            Some(_) => return Err(corrupt("\"spa_replay_cache\" is not a string".into())),
        }
        state.spent = spent;
        Ok(state)
    }

    /// The file's path.
    #[must_use]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every pending stop, in id order (the order recorded).
    #[must_use]
    pub(crate) fn entries(&self) -> Vec<(StopId, PendingStop)> {
        self.entries
            .iter()
            .map(|(id, recorded)| (*id, recorded.stop.clone()))
            .collect()
    }

    /// The TOTP codes recorded as spent.
    #[must_use]
    pub(crate) fn spent_codes(&self) -> Vec<SpentCode> {
        self.spent.clone()
    }

    /// Replaces the spent TOTP codes (in memory).
    pub(crate) fn set_spent_codes(&mut self, spent: Vec<SpentCode>) {
        if spent != self.spent {
            self.spent = spent;
            self.dirty = true;
        }
    }

    /// Records a pending stop (in memory; see [`write_if_dirty`](Self::write_if_dirty)).
    pub(crate) fn add(&mut self, id: StopId, stop: PendingStop) {
        self.entries.insert(id, Recorded::new(stop));
        self.dirty = true;
    }

    /// Records a start command now running (in memory).
    pub(crate) fn add_running(&mut self, start: RunningStart) {
        self.running
            .insert((start.door.clone(), start.source), start);
        self.dirty = true;
    }

    /// Forgets the running start command of (`door`, `source`) (it ended).
    pub(crate) fn remove_running(&mut self, door: &str, source: IpAddr) {
        if self.running.remove(&(door.to_owned(), source)).is_some() {
            self.dirty = true;
        }
    }

    /// The SPA replay cache's text as loaded or last set (empty: none).
    #[must_use]
    pub(crate) fn spa_replay(&self) -> &str {
        &self.spa_replay
    }

    /// Replaces the SPA replay cache's text (in memory; written with the pending stops).
    pub(crate) fn set_spa_replay(&mut self, text: String) {
        if self.spa_replay != text {
            self.spa_replay = text;
            self.dirty = true;
        }
    }

    /// Takes the start commands recorded as running (a previous run's, at startup).
    pub(crate) fn take_running(&mut self) -> Vec<RunningStart> {
        if !self.running.is_empty() {
            self.dirty = true;
        }
        std::mem::take(&mut self.running).into_values().collect()
    }

    /// Forgets a pending stop (in memory).
    pub(crate) fn remove(&mut self, id: StopId) {
        if self.entries.remove(&id).is_some() {
            self.dirty = true;
        }
    }

    /// Makes the next [`write_if_dirty`](Self::write_if_dirty) write (to retry a failed
    /// write).
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether the file lags behind the records.
    #[must_use]
    pub(crate) const fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the file if it changed since the last successful write, and renames it into
    /// place: what a reader (a knockd restarted after a crash or `kill -9`) finds from then
    /// on. It is on the disk once the returned [`Unsynced`] is synced (`None`: nothing was
    /// written). It stays dirty when the write fails (tried again at the next call).
    ///
    /// # Errors
    /// See [`save`](Self::save).
    pub(crate) fn write_if_dirty(&mut self) -> io::Result<Option<Unsynced>> {
        if !self.dirty {
            return Ok(None);
        }
        if let Some(why) = &self.frozen {
            return Err(frozen_error(why));
        }
        let unsynced = write_visible(&self.path, self.to_text().as_bytes())?;
        self.dirty = false;
        Ok(Some(unsynced))
    }

    /// The document as written to disk.
    ///
    /// The pending stops' entries are made once each (see `Recorded`) and copied here: a
    /// flood that opens a door with a stop command keeps thousands of them, and building a
    /// `serde_json::Value` of them for every write took most of the event loop's time. The
    /// keys come in the order the `Value` wrote them (sorted), so the text is the same.
    #[must_use]
    pub(crate) fn to_text(&self) -> String {
        let size: usize = self.entries.values().map(|r| r.json.len() + 1).sum();
        let mut out = Vec::with_capacity(64 + size);
        out.extend_from_slice(b"{\"pending_stops\":[");
        for (index, recorded) in self.entries.values().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(recorded.json.as_bytes());
        }
        out.push(b']');
        if !self.running.is_empty() {
            let running: Vec<Value> = self
                .running
                .values()
                .map(|r| {
                    let mut v = json!({
                        "door": r.door,
                        "source": r.source.to_string(),
                        "pgid": r.pgid,
                    });
                    if let Some((boot, ticks)) = &r.identity {
                        v["boot_id"] = json!(boot);
                        v["start_ticks"] = json!(ticks);
                    }
                    v
                })
                .collect();
            out.extend_from_slice(b",\"running_starts\":");
            push_json_array(&mut out, &running);
        }
        if !self.spa_replay.is_empty() {
            out.extend_from_slice(b",\"spa_replay_cache\":");
            push_json_string(&mut out, &self.spa_replay);
        }
        if !self.spent.is_empty() {
            let spent: Vec<Value> = self
                .spent
                .iter()
                .map(|s| json!({ "door": s.door, "step": s.code_step }))
                .collect();
            out.extend_from_slice(b",\"spent_codes\":");
            push_json_array(&mut out, &spent);
        }
        out.extend_from_slice(b",\"version\":1}\n");
        // Only JSON text and UTF-8 strings went in.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the file atomically.
    ///
    /// # Errors
    /// Creating the directory, writing, syncing or renaming failed.
    pub(crate) fn save(&self) -> io::Result<()> {
        if let Some(why) = &self.frozen {
            return Err(frozen_error(why));
        }
        write_atomically(&self.path, self.to_text().as_bytes())
    }
}

/// Appends `text` as a JSON string (escaped as JSON requires).
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec cannot fail, nor can serialising a string.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends `values` as a JSON array.
fn push_json_array(out: &mut Vec<u8>, values: &[Value]) {
    // Writing to a Vec cannot fail, nor can serialising `Value`s.
    let _ = serde_json::to_writer(&mut *out, values);
}

fn frozen_error(why: &str) -> io::Error {
    io::Error::other(format!(
        "not overwriting it ({why}): move it away and restart knockd"
    ))
}

/// Where a corrupt state file is moved: `PATH.corrupt` (appended: `pending-stops.json`
/// becomes `pending-stops.json.corrupt`).
#[must_use]
pub(crate) fn corrupt_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}

fn frozen_message(why: &str) -> String {
    format!(
        "error: {why}; it is left as it is and not overwritten: doors with a stop command do \
         not open until it is dealt with (move it away and restart knockd)"
    )
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
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (temp, dir) = temporary_with(path, bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_directory(dir);
    Ok(())
}

/// Replaces `path` with `bytes` as [`write_atomically`] does, except that nothing waits for
/// the disk: the whole new content is what every reader sees from the return on (it is in
/// the page cache, so a crash of this process does not lose it), and [`Unsynced::sync`]
/// then puts it on the disk. Until then an operating-system crash could lose the new
/// content. ext4 and btrfs write a renamed file's data before the rename; on a file system
/// that does not, such a crash could also leave an empty or zero-filled file (which
/// `StateFile::load` reads as empty or as corrupt).
///
/// # Errors
/// Any step failed; `path` is then unchanged.
pub(crate) fn write_visible(path: &Path, bytes: &[u8]) -> io::Result<Unsynced> {
    let (temp, dir) = temporary_with(path, bytes)?;
    let file = temp.persist(path).map_err(|e| e.error)?;
    Ok(Unsynced {
        file,
        dir: dir.to_owned(),
    })
}

/// A file [`write_visible`] renamed into place, not yet on the disk.
#[must_use = "the file is not on the disk until synced"]
#[derive(Debug)]
pub(crate) struct Unsynced {
    file: std::fs::File,
    dir: PathBuf,
}

impl Unsynced {
    /// Puts the file on the disk, then its directory entry (the rename).
    ///
    /// # Errors
    /// Syncing the file failed (a failure to sync the directory is not reported, as in
    /// [`write_atomically`]).
    pub(crate) fn sync(self) -> io::Result<()> {
        self.file.sync_all()?;
        sync_directory(&self.dir);
        Ok(())
    }
}

/// A temporary file in `path`'s directory (created if needed) holding `bytes`, with the
/// permissions of the file it is to replace, and that directory.
fn temporary_with<'p>(
    path: &'p Path,
    bytes: &[u8],
) -> io::Result<(tempfile::NamedTempFile, &'p Path)> {
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
    Ok((temp, dir))
}

/// Syncs a directory (a rename in it); failures are ignored (some file systems refuse).
fn sync_directory(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Syncs what `write_if_dirty` wrote, if anything.
    fn sync(unsynced: Option<Unsynced>) {
        if let Some(unsynced) = unsynced {
            unsynced.sync().unwrap();
        }
    }

    fn stop(door: &str, source: &str, due_unix: u64, command: &str) -> PendingStop {
        PendingStop {
            door: door.into(),
            source: source.parse().unwrap(),
            due_unix,
            command: command.into(),
        }
    }

    #[test]
    fn round_trip_written_once_per_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("pending-stops");
        let mut state = StateFile::load(path.clone()).unwrap();
        assert!(state.entries().is_empty());
        let a = stop(
            "openSSH",
            "10.0.0.1",
            1_795_000_000,
            "iptables -D x \"10.0.0.1\"",
        );
        let b = stop("door 2", "fd00::1", 1_795_000_100, "ip6tables -D y fd00::1");
        state.add(StopId(7), a.clone());
        state.add(StopId(9), b.clone());
        assert!(!path.exists(), "nothing written before write_if_dirty");
        assert!(state.is_dirty());
        sync(state.write_if_dirty().unwrap());
        assert!(!state.is_dirty());
        let loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.entries(), [(StopId(1), a), (StopId(2), b.clone())]);

        state.remove(StopId(7));
        sync(state.write_if_dirty().unwrap());
        let loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.entries(), [(StopId(1), b)]);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    /// The document as a `serde_json::Value`, serialised (how `to_text` wrote it before it
    /// wrote the pending stops by hand).
    fn text_through_a_value(state: &StateFile) -> String {
        let list: Vec<Value> = state
            .entries
            .values()
            .map(|r| &r.stop)
            .map(|e| {
                json!({
                    "door": e.door,
                    "source": e.source.to_string(),
                    "due": e.due_unix,
                    "command": e.command,
                })
            })
            .collect();
        let mut doc = json!({ "version": 1, "pending_stops": list });
        if !state.running.is_empty() {
            let running: Vec<Value> = state
                .running
                .values()
                .map(|r| {
                    let mut v =
                        json!({"door": r.door, "source": r.source.to_string(), "pgid": r.pgid});
                    if let Some((boot, ticks)) = &r.identity {
                        v["boot_id"] = json!(boot);
                        v["start_ticks"] = json!(ticks);
                    }
                    v
                })
                .collect();
            doc["running_starts"] = Value::Array(running);
        }
        if !state.spa_replay.is_empty() {
            doc["spa_replay_cache"] = Value::String(state.spa_replay.clone());
        }
        if !state.spent.is_empty() {
            doc["spent_codes"] = state
                .spent
                .iter()
                .map(|s| json!({ "door": s.door, "step": s.code_step }))
                .collect();
        }
        let mut text = doc.to_string();
        text.push('\n');
        text
    }

    /// Issue 14: the pending stops written by hand give the same text as the whole document
    /// serialised through a `Value`, with strings that need escaping, with and without the
    /// optional lists, and with no pending stop at all.
    #[test]
    fn the_text_is_what_a_json_value_gives() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::load(dir.path().join("pending-stops")).unwrap();
        assert_eq!(state.to_text(), text_through_a_value(&state));
        state.add(
            StopId(1),
            stop(
                "door \"one\"\\",
                "10.0.0.1",
                1_795_000_000,
                "iptables -D x \"10.0.0.1\"\t\u{1}é",
            ),
        );
        state.add(
            StopId(2),
            stop("d\n2", "fd00::1", 0, "ip6tables -D y fd00::1"),
        );
        assert_eq!(state.to_text(), text_through_a_value(&state));
        state.add_running(RunningStart {
            door: "r\"".into(),
            source: "10.0.0.2".parse().unwrap(),
            pgid: 42,
            identity: Some(("boot-id".into(), 123)),
        });
        state.add_running(RunningStart {
            door: "s".into(),
            source: "fd00::2".parse().unwrap(),
            pgid: 43,
            identity: None,
        });
        assert_eq!(state.to_text(), text_through_a_value(&state));
        state.set_spa_replay("abc 1\ndef 2\n".into());
        state.set_spent_codes(vec![SpentCode {
            door: "totp".into(),
            code_step: 59_999_999,
        }]);
        let text = state.to_text();
        assert_eq!(text, text_through_a_value(&state));
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }

    /// Issue 14: a written record is what a reader finds before the sync (the start command
    /// runs in between), and the sync then leaves the file clean.
    #[test]
    fn a_write_is_visible_before_its_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pending-stops");
        let mut state = StateFile::load(path.clone()).unwrap();
        let a = stop(
            "openSSH",
            "10.0.0.1",
            1_795_000_000,
            "iptables -D x 10.0.0.1",
        );
        state.add(StopId(3), a.clone());
        let unsynced = state.write_if_dirty().unwrap().expect("dirty: written");
        assert!(!state.is_dirty());
        let loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.entries(), [(StopId(1), a)]);
        unsynced.sync().unwrap();
        assert!(
            state.write_if_dirty().unwrap().is_none(),
            "clean: nothing written"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    /// Issue 10 item 5: running start commands survive a write and a load.
    #[test]
    fn issue10_item5_running_starts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut state = StateFile::empty(path.clone());
        let start = RunningStart {
            door: "d".into(),
            source: "10.0.0.1".parse().unwrap(),
            pgid: 4242,
            identity: Some(("boot".into(), 99)),
        };
        state.add_running(start.clone());
        sync(state.write_if_dirty().unwrap());
        let mut loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.take_running(), std::slice::from_ref(&start));
        state.remove_running("d", start.source);
        sync(state.write_if_dirty().unwrap());
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("running_starts")
        );
    }

    #[test]
    fn the_spa_replay_cache_round_trips_and_old_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(
            &path,
            r#"{"version":1,"pending_stops":[{"door":"d","source":"10.0.0.1","due":5,"command":"c"}]}"#,
        )
        .unwrap();
        let mut state = StateFile::load(path.clone()).unwrap();
        assert_eq!(state.spa_replay(), "");
        assert_eq!(state.entries().len(), 1);
        let text = format!("{} 1795000120\n", "ab".repeat(32));
        state.set_spa_replay(text.clone());
        assert!(state.is_dirty());
        sync(state.write_if_dirty().unwrap());
        state.set_spa_replay(text.clone());
        assert!(!state.is_dirty(), "an unchanged cache is not written again");
        let loaded = StateFile::load(path.clone()).unwrap();
        assert_eq!(loaded.spa_replay(), text);
        assert_eq!(loaded.entries().len(), 1);
        std::fs::write(&path, r#"{"pending_stops":[],"spa_replay_cache":7}"#).unwrap();
        assert!(matches!(
            StateFile::load(path),
            Err(StateError::Corrupt { .. })
        ));
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

    /// Issue 10 item 11: an unsafe file was "ignored" and then overwritten at the next open
    /// (its entries lost); invalid UTF-8 was not moved aside; `.corrupt` replaced the
    /// extension.
    #[test]
    fn issue10_item11_ignored_files_are_kept_and_corrupt_ones_moved_aside() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stops.json");
        let text = r#"{"version":1,"pending_stops":[{"door":"d","source":"10.0.0.1","due":1,"command":"c"}]}"#;
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (mut state, message) = StateFile::load_or_recover(path.clone());
        assert!(message.unwrap().contains("not overwritten"));
        assert!(state.entries().is_empty());
        state.add(StopId(1), stop("d", "10.0.0.2", 2, "true"));
        let err = state.write_if_dirty().unwrap_err();
        assert!(err.to_string().contains("not overwriting it"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        // Invalid UTF-8: moved aside to stops.json.corrupt, byte for byte.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"{\"pending_stops\":[\xff]}").unwrap();
        let (mut state, message) = StateFile::load_or_recover(path.clone());
        let message = message.unwrap();
        let aside = dir.path().join("stops.json.corrupt");
        assert!(message.contains("not UTF-8"), "{message}");
        assert!(message.contains(&aside.display().to_string()), "{message}");
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            b"{\"pending_stops\":[\xff]}"
        );
        assert!(!path.exists());
        state.add(StopId(1), stop("d", "10.0.0.2", 2, "true"));
        sync(state.write_if_dirty().unwrap());
        assert_eq!(StateFile::load(path).unwrap().entries().len(), 1);
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut state = StateFile::empty(path.clone());
        state.add(StopId(1), stop("d", "10.0.0.1", 1, "true"));
        sync(state.write_if_dirty().unwrap());
        assert_eq!(StateFile::load(path.clone()).unwrap().entries().len(), 1);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            StateFile::load(path),
            Err(StateError::Unsafe { .. })
        ));
    }

    #[test]
    fn spent_codes_round_trip_and_old_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // A file written before TOTP doors: no spent codes.
        std::fs::write(&path, r#"{"version":1,"pending_stops":[]}"#).unwrap();
        let mut state = StateFile::load(path.clone()).unwrap();
        assert!(state.spent_codes().is_empty());
        let spent = vec![SpentCode {
            door: "totp".into(),
            code_step: 59_999_999,
        }];
        state.set_spent_codes(spent.clone());
        assert!(state.is_dirty());
        sync(state.write_if_dirty().unwrap());
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(r#""spent_codes":[{"door":"totp","step":59999999}]"#)
        );
        assert_eq!(StateFile::load(path.clone()).unwrap().spent_codes(), spent);
        std::fs::write(
            &path,
            r#"{"version":1,"pending_stops":[],"spent_codes":[{"door":"t"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            StateFile::load(path),
            Err(StateError::Corrupt { .. })
        ));
    }
}
