//! Start-up: which interfaces the capture actually opened, so that the start-up line names
//! those and a missing interface is reported at once.
//!
//! Each capture thread's first event is `InterfaceUp` (opened at start) or `InterfaceWaiting`
//! (missing or not usable yet), sent as soon as the capture starts. [`first_reports`] reads the
//! capture channel until every interface has reported (bounded by [`REPORT_WAIT`]) and hands
//! back everything it read, packets included, for the event loop to handle in order.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use knock_capture::CaptureEvent;

/// Longest wait for the capture threads' first reports.
pub(crate) const REPORT_WAIT: Duration = Duration::from_secs(2);

/// What the capture threads said first.
#[derive(Debug, Default)]
pub(crate) struct FirstReports {
    /// Interfaces being captured, in configuration order.
    pub(crate) up: Vec<String>,
    /// Interfaces not (yet) captured: the configured ones that are not up.
    pub(crate) not_up: Vec<String>,
    /// Every event read, in order (to be handled by the event loop).
    pub(crate) events: Vec<CaptureEvent>,
}

/// Reads `events` until each of `interfaces` has reported up or waiting, or `wait` passed.
#[must_use]
pub(crate) fn first_reports(
    events: &Receiver<CaptureEvent>,
    interfaces: &[String],
    wait: Duration,
) -> FirstReports {
    let deadline = Instant::now() + wait;
    let mut reports = FirstReports::default();
    let mut reported: Vec<&str> = Vec::new();
    while reported.len() < interfaces.len() {
        let Ok(event) = events.recv_deadline(deadline) else {
            break;
        };
        match &event {
            CaptureEvent::InterfaceUp { interface, .. } => {
                reported.push(interface_name(interfaces, interface));
                reports.up.push(interface.clone());
            }
            CaptureEvent::InterfaceWaiting { interface, .. } => {
                reported.push(interface_name(interfaces, interface));
            }
            _ => {}
        }
        reports.events.push(event);
    }
    reports
        .up
        .sort_by_key(|name| interfaces.iter().position(|i| i == name));
    reports.not_up = interfaces
        .iter()
        .filter(|i| !reports.up.contains(i))
        .cloned()
        .collect();
    reports
}

fn interface_name<'a>(interfaces: &'a [String], name: &str) -> &'a str {
    interfaces
        .iter()
        .find(|i| *i == name)
        .map_or("", String::as_str)
}

impl FirstReports {
    /// The start-up line: `starting up, listening on eth0, wg0` (0.8's words) when all are
    /// captured; the missing ones are named after `waiting for`.
    #[must_use]
    pub(crate) fn startup_line(&self) -> String {
        match (self.up.is_empty(), self.not_up.is_empty()) {
            (_, true) => format!("starting up, listening on {}", self.up.join(", ")),
            (true, false) => format!("starting up, waiting for {}", self.not_up.join(", ")),
            (false, false) => format!(
                "starting up, listening on {}; waiting for {}",
                self.up.join(", "),
                self.not_up.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_line_names_what_is_captured() {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(CaptureEvent::InterfaceWaiting {
            interface: "wg0".into(),
            reason: "No such device".into(),
        })
        .unwrap();
        tx.send(CaptureEvent::AddressesChanged { addresses: vec![] })
            .unwrap();
        let reports = first_reports(&rx, &names(&["eth0", "wg0"]), Duration::from_millis(50));
        // eth0 never reported: it is not claimed as listening.
        assert_eq!(reports.up, Vec::<String>::new());
        assert_eq!(reports.not_up, names(&["eth0", "wg0"]));
        assert_eq!(reports.startup_line(), "starting up, waiting for eth0, wg0");
        assert_eq!(reports.events.len(), 2, "everything read is handed back");

        let reports = FirstReports {
            up: names(&["eth0"]),
            not_up: names(&["wg0"]),
            events: vec![],
        };
        assert_eq!(
            reports.startup_line(),
            "starting up, listening on eth0; waiting for wg0"
        );
        let reports = FirstReports {
            up: names(&["eth0", "wg0"]),
            ..FirstReports::default()
        };
        assert_eq!(
            reports.startup_line(),
            "starting up, listening on eth0, wg0"
        );
    }
}
