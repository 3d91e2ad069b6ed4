//! knockd.conf parser: grammar rules, error messages, warnings, display round trip.

use std::net::IpAddr;

use knock_core::config::{
    ConfigErrorKind, DEFAULT_CMD_TIMEOUT, DEFAULT_SEQ_TIMEOUT, Options, WarningKind,
};
use knock_core::{Config, ConfigError, Door, FlagRule, Knock, Parsed, TcpFlags};
use std::time::Duration;

fn parse(text: &str) -> Parsed {
    match Config::parse(text) {
        Ok(parsed) => parsed,
        Err(e) => panic!("unexpected error:\n{e}"),
    }
}

fn error(text: &str) -> ConfigError {
    match Config::parse(text) {
        Ok(parsed) => panic!("expected an error, got {:?}", parsed.config),
        Err(e) => e,
    }
}

/// The first line of the error's display.
fn summary(text: &str) -> String {
    error(text).summary()
}

fn door(text: &str) -> Door {
    let parsed = parse(text);
    assert_eq!(parsed.config.doors.len(), 1);
    parsed.config.doors.into_iter().next().unwrap()
}

#[test]
fn debian_style_config() {
    let text = "\
[options]
\tUseSyslog

[openSSH]
\tsequence    = 7000,8000,9000
\tseq_timeout = 5
\tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
\ttcpflags    = syn

[closeSSH]
\tsequence    = 9000,8000,7000
\tseq_timeout = 5
\tcommand     = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
\ttcpflags    = syn
";
    let parsed = parse(text);
    let config = &parsed.config;
    assert!(config.options.use_syslog);
    assert_eq!(config.doors.len(), 2);
    let open = &config.doors[0];
    assert_eq!(open.name, "openSSH");
    assert_eq!(
        open.sequence,
        [Knock::tcp(7000), Knock::tcp(8000), Knock::tcp(9000)]
    );
    assert_eq!(open.seq_timeout, Duration::from_secs(5));
    assert_eq!(open.cmd_timeout, DEFAULT_CMD_TIMEOUT);
    assert_eq!(
        open.tcp_flags,
        FlagRule {
            must_set: TcpFlags::SYN,
            must_clear: TcpFlags::EMPTY
        }
    );
    assert_eq!(
        open.start_command.as_deref(),
        Some("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(open.start_command_6, None);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

#[test]
fn error_display_has_line_and_caret() {
    let e = error("[d]\n\n\n\n\n\nsequence = 1:icmp\n");
    assert_eq!(
        e.to_string(),
        "knockd.conf:7:14: unknown protocol \"icmp\" in sequence (expected tcp or udp)\n    \
         sequence = 1:icmp\n                 ^"
    );
    assert_eq!(e.line(), 7);
    assert_eq!(e.column(), 14);
}

#[test]
fn defaults_and_basic_errors() {
    let d = door("[d]\nsequence = 1,2:udp\n");
    assert_eq!(d.seq_timeout, DEFAULT_SEQ_TIMEOUT);
    assert_eq!(d.target, None::<IpAddr>);
    assert_eq!(
        summary("[d]\nsequence = 7000 8000 9000\n"),
        "knockd.conf:2:17: ports must be separated by commas; did you mean \"7000,8000,9000\"?"
    );
    assert!(matches!(
        error("[d]\nseqtimeout = 5\n").kind(),
        ConfigErrorKind::UnknownKey { .. }
    ));
    let parsed = parse("[options]\nlogfile = knockd.log\n");
    assert_eq!(
        parsed.config.options.log_file.as_deref(),
        Some("knockd.log")
    );
    assert_ne!(parsed.config.options, Options::default());
    assert!(matches!(
        parsed.warnings[0].kind,
        WarningKind::RelativePath { .. }
    ));
}
