//! The status file that `knockd --status` reads, and the `--metrics-file` (see
//! [`crate::metrics`]), both kept by the event loop.
//!
//! Where: `status` in the state file's directory (by default `/var/lib/knockd/status`, next to
//! `/var/lib/knockd/pending-stops`; `--state-file` moves both). A file rather than a control
//! socket: a knock server should not listen, and a file needs no protocol.
//!
//! When: never on the packet path. A pass of the event loop that changed something (a packet,
//! an interface event, an effect of the core, a finished command, a reload) marks the files
//! stale; they are rewritten at the end of a pass at most once per [`WRITE_INTERVAL`], so an
//! idle daemon writes nothing and sets no timer, and a flood costs one write per interval.
//! Each write replaces the file atomically (temporary file in the same directory, rename):
//! a reader sees the old or the new file, never half of one. The last write, at shutdown, says
//! `"running": false`.
//!
//! Format (JSON, one document, `version` 1; times in Unix seconds):
//!
//! ```json
//! {"version":1,"running":true,"pid":4242,"started":1795000000,"written":1795000020,
//!  "doors":["openSSH","closeSSH"],
//!  "open":[{"door":"openSSH","source":"10.0.0.1","due":1795000030,"command":"iptables -D …"}],
//!  "counters":{"packets":12,"knocks":3,"opens":1,"invalidations":0,"timeouts":0,
//!              "evictions":0,"commands_run":1,"commands_failed":0,"drops":0,"sources_tracked":1},
//!  "interfaces":[{"name":"eth0","up":true,"state":"up","received":12,"dropped_kernel":0,
//!                 "dropped_interface":0,"dropped_queue":0}],
//!  "spent_codes":[]}
//! ```
//!
//! `open` lists the open doors that have a stop command, with their knockers and when the
//! stop command runs: these are also the pending stop commands. `spent_codes` lists the TOTP
//! codes (door, time step) that opened their door and will not open it again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use knock_capture::{CaptureEvent, InterfaceStats, LiveCapture};
use knock_core::Config;
use serde_json::{Value, json};

use crate::core::Core;
use crate::executor::{Finished, Outcome};
use crate::state::StateFile;

/// Least time between two writes of the status and metrics files.
pub(crate) const WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// The status file for a state file: `status` in the same directory.
#[must_use]
pub(crate) fn status_path(state_file: &Path) -> PathBuf {
    let path = state_file.with_file_name("status");
    if path == state_file {
        state_file.with_file_name("status.status")
    } else {
        path
    }
}

/// What the daemon counts itself (the rest comes from the core and the capture).
#[derive(Debug)]
pub(crate) struct StatusKeeper {
    path: PathBuf,
    metrics: Option<PathBuf>,
    started: u64,
    /// Something changed since the last write.
    stale: bool,
    written_at: Option<Instant>,
    commands_run: u64,
    commands_failed: u64,
    /// The last thing the capture said about each interface.
    interfaces: BTreeMap<String, String>,
    /// The last write failed (reported once).
    failing: bool,
}

/// The figures of one write, shared by the status and the metrics file.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// Packets the captures passed (libpcap `ps_recv`), all interfaces.
    pub(crate) packets: u64,
    /// Packets that counted as a knock.
    pub(crate) knocks: u64,
    /// Sequences completed.
    pub(crate) opens: u64,
    /// Attempts ended by a wrong knock.
    pub(crate) invalidations: u64,
    /// Attempts that ran out of time.
    pub(crate) timeouts: u64,
    /// Sources evicted at the `--max-sources` cap.
    pub(crate) evictions: u64,
    /// Sources tracked now.
    pub(crate) sources_tracked: u64,
    /// Commands that finished.
    pub(crate) commands_run: u64,
    /// Commands that finished with a status other than 0, by a signal, or did not start.
    pub(crate) commands_failed: u64,
    /// Stop commands pending.
    pub(crate) stops_pending: u64,
    /// Per interface.
    pub(crate) interfaces: Vec<InterfaceStats>,
}

impl Figures {
    /// Packets dropped by the kernel, the interface and knockd's queue, all interfaces.
    #[must_use]
    pub(crate) fn drops(&self) -> u64 {
        self.interfaces
            .iter()
            .map(|i| i.dropped + i.if_dropped + i.channel_dropped)
            .sum()
    }
}

impl StatusKeeper {
    /// Keeps the status file next to `state_file` and, with `--metrics-file`, the metrics.
    #[must_use]
    pub(crate) fn new(state_file: &Path, metrics: Option<PathBuf>) -> Self {
        Self {
            path: status_path(state_file),
            metrics,
            started: unix_now(),
            stale: true,
            written_at: None,
            commands_run: 0,
            commands_failed: 0,
            interfaces: BTreeMap::new(),
            failing: false,
        }
    }

    /// Something changed: the files are rewritten when due.
    pub(crate) fn touch(&mut self) {
        self.stale = true;
    }

    /// An interface event from the capture (packets only mark the files stale).
    pub(crate) fn capture_event(&mut self, event: &CaptureEvent) {
        self.stale = true;
        let (name, state) = match event {
            CaptureEvent::InterfaceUp { interface, .. } => (interface, "up".to_owned()),
            CaptureEvent::InterfaceWaiting { interface, reason } => {
                (interface, format!("waiting: {reason}"))
            }
            CaptureEvent::InterfaceLost { interface, error } => {
                (interface, format!("lost: {error}"))
            }
            _ => return,
        };
        self.interfaces.insert(name.clone(), state);
    }

    /// A command finished.
    pub(crate) fn command_finished(&mut self, finished: &Finished) {
        self.stale = true;
        self.commands_run += 1;
        if !matches!(finished.outcome, Outcome::Exited(0)) {
            self.commands_failed += 1;
        }
    }

    /// When the stale files are written next, if they are stale.
    #[must_use]
    pub(crate) fn next_write(&self) -> Option<Instant> {
        if !self.stale {
            return None;
        }
        Some(
            self.written_at
                .map_or_else(Instant::now, |at| at + WRITE_INTERVAL),
        )
    }

    /// Writes the files now; `running` is false for the last write, at shutdown.
    pub(crate) fn write(
        &mut self,
        running: bool,
        config: &Config,
        core: &Core,
        state: &StateFile,
        capture: Option<&LiveCapture>,
    ) -> Option<String> {
        self.stale = false;
        self.written_at = Some(Instant::now());
        let figures = self.figures(core, state, capture);
        let status = self.document(running, config, state, &figures);
        let mut result =
            replace_file(&self.path, status.to_string().as_bytes(), 0o640).map_err(|e| {
                format!(
                    "status file {}: {}",
                    self.path.display(),
                    crate::io_reason(&e)
                )
            });
        if let Some(path) = &self.metrics {
            let text = crate::metrics::render(&figures);
            // node_exporter usually runs as another user.
            let written = replace_file(path, text.as_bytes(), 0o644)
                .map_err(|e| format!("metrics file {}: {}", path.display(), crate::io_reason(&e)));
            result = result.and(written);
        }
        match result {
            Ok(()) => {
                self.failing = false;
                None
            }
            Err(e) if !self.failing => {
                self.failing = true;
                Some(format!("error: cannot write {e}"))
            }
            Err(_) => None,
        }
    }

    fn figures(&self, core: &Core, state: &StateFile, capture: Option<&LiveCapture>) -> Figures {
        let matcher = core.matcher();
        let counters = matcher.counters();
        let interfaces = capture.map(LiveCapture::stats).unwrap_or_default();
        Figures {
            packets: interfaces.iter().map(|i| i.received).sum(),
            knocks: counters.admitted,
            opens: counters.opened,
            invalidations: counters.attempts_invalidated,
            timeouts: counters.attempts_expired,
            evictions: counters.sources_evicted,
            sources_tracked: matcher.tracked_sources() as u64,
            commands_run: self.commands_run,
            commands_failed: self.commands_failed,
            stops_pending: state.entries().len() as u64,
            interfaces,
        }
    }

    fn document(&self, running: bool, config: &Config, state: &StateFile, f: &Figures) -> Value {
        let open: Vec<Value> = state
            .entries()
            .into_iter()
            .map(|(_, stop)| {
                json!({"door": stop.door, "source": stop.source.to_string(),
                       "due": stop.due_unix, "command": stop.command})
            })
            .collect();
        let interfaces: Vec<Value> = f
            .interfaces
            .iter()
            .map(|i| {
                let state = self
                    .interfaces
                    .get(&i.interface)
                    .cloned()
                    .unwrap_or_else(|| if i.up { "up" } else { "waiting" }.to_owned());
                let state = if i.up { "up".to_owned() } else { state };
                json!({"name": i.interface, "up": i.up, "state": state,
                       "received": i.received, "dropped_kernel": i.dropped,
                       "dropped_interface": i.if_dropped, "dropped_queue": i.channel_dropped})
            })
            .collect();
        json!({
            "version": 1,
            "running": running,
            "pid": std::process::id(),
            "started": self.started,
            "written": unix_now(),
            "doors": config.doors.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            "open": open,
            "counters": {
                "packets": f.packets, "knocks": f.knocks, "opens": f.opens,
                "invalidations": f.invalidations, "timeouts": f.timeouts,
                "evictions": f.evictions, "commands_run": f.commands_run,
                "commands_failed": f.commands_failed, "drops": f.drops(),
                "sources_tracked": f.sources_tracked,
            },
            "interfaces": interfaces,
            // TOTP codes that opened their door and must not open again.
            "spent_codes": state
                .spent_codes()
                .iter()
                .map(|s| json!({"door": s.door, "step": s.code_step}))
                .collect::<Vec<_>>(),
        })
    }
}

/// The wall clock in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    jiff::Timestamp::now().as_second().max(0).unsigned_abs()
}

/// Replaces `path` with `bytes` atomically (temporary file in the same directory, then
/// rename) with permissions `mode`. Not synced to disk: the files are rewritten every few
/// seconds and mean nothing after a reboot.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".knockd-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.write_all(bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

// ----- knockd --status -------------------------------------------------------------------

/// `knockd --status [--json]`: prints the status file of the daemon using `state_file`.
///
/// # Errors
/// The file cannot be read or is not a status document.
pub(crate) fn print(state_file: &Path, as_json: bool) -> Result<String, String> {
    let path = status_path(state_file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {} (is knockd running with this --state-file?)",
            path.display(),
            crate::io_reason(&e)
        )
    })?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a knockd status file: {e}", path.display()))?;
    if doc["version"] != 1 {
        return Err(format!("{}: unknown status version", path.display()));
    }
    if as_json {
        return Ok(format!("{doc}\n"));
    }
    Ok(human(&doc, unix_now(), pid_alive))
}

fn pid_alive(pid: u64) -> bool {
    i32::try_from(pid).is_ok_and(|pid| {
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Ok(()) | Err(nix::errno::Errno::EPERM)
        )
    })
}

fn ago(now: u64, then: u64) -> String {
    humantime::format_duration(Duration::from_secs(now.saturating_sub(then))).to_string()
}

/// The human-readable form of a status document, at `now`.
fn human(doc: &Value, now: u64, alive: impl Fn(u64) -> bool) -> String {
    let mut out = String::new();
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    let pid = num(&doc["pid"]);
    let state = if doc["running"] == true && alive(pid) {
        "running"
    } else {
        "not running"
    };
    let _ = writeln!(
        out,
        "knockd (pid {pid}) {state}; started {} ago; status written {} ago",
        ago(now, num(&doc["started"])),
        ago(now, num(&doc["written"])),
    );
    let doors: Vec<&str> = doc["doors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "doors: {}", doors.join(", "));
    let open = doc["open"].as_array().cloned().unwrap_or_default();
    if open.is_empty() {
        let _ = writeln!(out, "open doors (pending stop commands): none");
    } else {
        let _ = writeln!(out, "open doors (pending stop commands):");
        for o in &open {
            let due = num(&o["due"]);
            let left = if due > now {
                format!(
                    "closes in {}",
                    humantime::format_duration(Duration::from_secs(due - now))
                )
            } else {
                "closing now".to_owned()
            };
            let _ = writeln!(
                out,
                "  {}: {}: {left}: {}",
                o["door"].as_str().unwrap_or("?"),
                o["source"].as_str().unwrap_or("?"),
                o["command"].as_str().unwrap_or("")
            );
        }
    }
    let c = &doc["counters"];
    let _ = writeln!(
        out,
        "counters: {} packets, {} knocks, {} opens, {} invalidations, {} timeouts, {} evictions, \
         {} sources tracked, {} commands run, {} failed, {} drops",
        num(&c["packets"]),
        num(&c["knocks"]),
        num(&c["opens"]),
        num(&c["invalidations"]),
        num(&c["timeouts"]),
        num(&c["evictions"]),
        num(&c["sources_tracked"]),
        num(&c["commands_run"]),
        num(&c["commands_failed"]),
        num(&c["drops"]),
    );
    let spent = doc["spent_codes"].as_array().cloned().unwrap_or_default();
    if !spent.is_empty() {
        let codes: Vec<String> = spent
            .iter()
            .map(|s| {
                format!(
                    "{} step {}",
                    s["door"].as_str().unwrap_or("?"),
                    num(&s["step"])
                )
            })
            .collect();
        let _ = writeln!(out, "spent TOTP codes: {}", codes.join(", "));
    }
    for i in doc["interfaces"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            out,
            "interface {}: {}; {} received, {} dropped by the kernel, {} by the interface, {} in the queue",
            i["name"].as_str().unwrap_or("?"),
            i["state"].as_str().unwrap_or("?"),
            num(&i["received"]),
            num(&i["dropped_kernel"]),
            num(&i["dropped_interface"]),
            num(&i["dropped_queue"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lives_next_to_the_state_file() {
        assert_eq!(
            status_path(Path::new("/var/lib/knockd/pending-stops")),
            Path::new("/var/lib/knockd/status")
        );
        assert_eq!(
            status_path(Path::new("/x/status")),
            Path::new("/x/status.status")
        );
    }

    #[test]
    fn human_form_shows_open_doors_with_time_left() {
        let doc = json!({
            "version": 1, "running": true, "pid": 42, "started": 1000, "written": 1090,
            "doors": ["openSSH", "other"],
            "open": [{"door": "openSSH", "source": "10.0.0.1", "due": 1130, "command": "close 10.0.0.1"}],
            "counters": {"packets": 7, "knocks": 3, "opens": 1, "invalidations": 0, "timeouts": 2,
                         "evictions": 0, "commands_run": 1, "commands_failed": 0, "drops": 0,
                         "sources_tracked": 1},
            "interfaces": [{"name": "eth0", "up": false, "state": "waiting: no such device",
                            "received": 7, "dropped_kernel": 0, "dropped_interface": 0,
                            "dropped_queue": 0}],
            "spent_codes": [{"door": "totp", "step": 59_999_999}],
        });
        let text = human(&doc, 1100, |pid| pid == 42);
        assert!(
            text.contains("\nspent TOTP codes: totp step 59999999\n"),
            "{text}"
        );
        assert!(
            text.starts_with(
                "knockd (pid 42) running; started 1m 40s ago; status written 10s ago\n"
            ),
            "{text}"
        );
        assert!(text.contains("doors: openSSH, other\n"), "{text}");
        assert!(
            text.contains("  openSSH: 10.0.0.1: closes in 30s: close 10.0.0.1\n"),
            "{text}"
        );
        assert!(
            text.contains("7 packets, 3 knocks, 1 opens, 0 invalidations, 2 timeouts"),
            "{text}"
        );
        assert!(
            text.contains("interface eth0: waiting: no such device; 7 received"),
            "{text}"
        );
        let dead = human(&doc, 1100, |_| false);
        assert!(dead.starts_with("knockd (pid 42) not running"), "{dead}");
    }

    #[test]
    fn files_are_replaced_with_their_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        replace_file(&path, b"a\n", 0o644).unwrap();
        replace_file(&path, b"b\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
