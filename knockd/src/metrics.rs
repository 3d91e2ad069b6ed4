//! `--metrics-file PATH`: the counters in the Prometheus text exposition format (version
//! 0.0.4), for node_exporter's textfile collector — metrics without opening a port (a knock
//! server should not listen). The file is written with the status file (see
//! [`crate::status`]: atomically, at most every five seconds, only after something changed).
//!
//! Plain text written here rather than the `prometheus-client` crate: a dozen counters and
//! gauges with fixed names need no registry, and the format is a few lines (`# HELP`,
//! `# TYPE`, `name{label="value"} number`).

use std::fmt::Write as _;

use crate::status::Figures;

/// Escapes a label value (backslash, double quote, line feed).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics file's text.
#[must_use]
pub(crate) fn render(f: &Figures) -> String {
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    one(
        "knockd_packets_seen_total",
        "counter",
        "Packets the capture filters passed (all interfaces).",
        f.packets,
    );
    one(
        "knockd_knocks_total",
        "counter",
        "Packets that counted as a knock for a door.",
        f.knocks,
    );
    one(
        "knockd_opens_total",
        "counter",
        "Knock sequences completed (doors opened).",
        f.opens,
    );
    one(
        "knockd_invalidations_total",
        "counter",
        "Knock attempts ended by a wrong knock.",
        f.invalidations,
    );
    one(
        "knockd_timeouts_total",
        "counter",
        "Knock attempts that ran out of seq_timeout.",
        f.timeouts,
    );
    one(
        "knockd_commands_run_total",
        "counter",
        "Commands that finished.",
        f.commands_run,
    );
    one(
        "knockd_commands_failed_total",
        "counter",
        "Commands that exited with a non-zero status, were killed by a signal or did not start.",
        f.commands_failed,
    );
    one(
        "knockd_capture_drops_total",
        "counter",
        "Packets dropped by the kernel, the interface or knockd's queue (all interfaces).",
        f.drops(),
    );
    one(
        "knockd_evictions_total",
        "counter",
        "Knock sources evicted at the --max-sources cap.",
        f.evictions,
    );
    one(
        "knockd_sources_tracked",
        "gauge",
        "Knock sources tracked now.",
        f.sources_tracked,
    );
    one(
        "knockd_stops_pending",
        "gauge",
        "Stop commands waiting for their time.",
        f.stops_pending,
    );
    let _ = writeln!(
        out,
        "# HELP knockd_interface_up Whether the interface is being captured (1) or waited for (0)."
    );
    let _ = writeln!(out, "# TYPE knockd_interface_up gauge");
    for i in &f.interfaces {
        let _ = writeln!(
            out,
            "knockd_interface_up{{interface=\"{}\"}} {}",
            label(&i.interface),
            u8::from(i.up)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample line is `name{labels} value`, each name has HELP and TYPE first.
    #[test]
    fn text_format_is_well_formed() {
        let figures = Figures {
            opens: 2,
            knocks: 6,
            ..Figures::default()
        };
        let text = render(&figures);
        assert!(text.contains("\nknockd_opens_total 2\n"), "{text}");
        assert!(text.contains("\nknockd_knocks_total 6\n"), "{text}");
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_owned()), "TYPE twice: {line}");
            } else if !line.starts_with("# HELP ") {
                let (name, value) = line.rsplit_once(' ').unwrap();
                let name = name.split('{').next().unwrap();
                assert!(typed.contains(name), "sample before its TYPE: {line}");
                value.parse::<u64>().unwrap();
            }
        }
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
