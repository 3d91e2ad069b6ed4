//! systemd notifications (`Type=notify`, sd_notify(3)) with the `sd-notify` crate: `READY=1`
//! once the capture is up, `RELOADING=1` (with `MONOTONIC_USEC`, which systemd ≥ 253 wants)
//! and `READY=1` around a reload, `STOPPING=1` at shutdown, and `WATCHDOG=1` keep-alives from
//! the event loop when the unit sets `WatchdogSec` (systemd passes `WATCHDOG_USEC`).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) nothing is sent and the
//! event loop gets no timer from here: knockd is a plain foreground daemon. With a watchdog the
//! loop wakes at most every half watchdog period (sooner only when it has other work), so an
//! idle daemon wakes twice per `WatchdogSec` and never otherwise.
//!
//! The datagrams go to the socket systemd names; a failed send is ignored (systemd notices
//! missing keep-alives itself, and knockd must not stop knocking because of it).

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The notification side of the daemon, owned by the event loop.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// `NOTIFY_SOCKET` was set at start-up.
    enabled: bool,
    /// Half the watchdog period, when systemd asked for keep-alives.
    ping_every: Option<Duration>,
    /// When the last keep-alive (or READY) was sent.
    last_ping: Instant,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    #[must_use]
    pub(crate) fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let ping_every = enabled
            .then(sd_notify::watchdog_enabled)
            .flatten()
            .filter(|period| !period.is_zero())
            .map(|period| period / 2);
        Self {
            enabled,
            ping_every,
            last_ping: Instant::now(),
        }
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if self.enabled {
            let _ = sd_notify::notify(states);
        }
    }

    /// The capture is up and the restored stops are armed: `READY=1`.
    pub(crate) fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_ping = Instant::now();
    }

    /// A reload starts (`RELOADING=1` with `MONOTONIC_USEC`); [`ready`](Self::ready) ends it.
    pub(crate) fn reloading(&mut self) {
        if !self.enabled {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// Shutdown starts: `STOPPING=1`.
    pub(crate) fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// When the next keep-alive is due, if systemd wants them.
    #[must_use]
    pub(crate) fn next_ping(&self) -> Option<Instant> {
        self.ping_every.map(|every| self.last_ping + every)
    }

    /// Sends `WATCHDOG=1` if it is due (called once per pass of the event loop).
    pub(crate) fn ping_if_due(&mut self) {
        if let Some(due) = self.next_ping() {
            let now = Instant::now();
            if now >= due {
                self.send(&[NotifyState::Watchdog]);
                self.last_ping = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without systemd there is no timer and nothing to send.
    #[test]
    fn disabled_has_no_timer() {
        let mut n = Notifier {
            enabled: false,
            ping_every: None,
            last_ping: Instant::now(),
        };
        assert_eq!(n.next_ping(), None);
        n.ready("x");
        n.ping_if_due();
        assert_eq!(n.next_ping(), None);
    }

    /// A keep-alive is due half a period after the last one, and sending it moves the next.
    #[test]
    fn keep_alive_is_due_every_half_period() {
        let start = Instant::now();
        let mut n = Notifier {
            enabled: false,
            ping_every: Some(Duration::from_secs(5)),
            last_ping: start,
        };
        assert_eq!(n.next_ping(), Some(start + Duration::from_secs(5)));
        n.ping_if_due();
        assert_eq!(
            n.next_ping(),
            Some(start + Duration::from_secs(5)),
            "not due yet"
        );
        n.last_ping = start - Duration::from_secs(6);
        n.ping_if_due();
        assert!(n.next_ping().unwrap() >= start + Duration::from_secs(5));
    }
}
