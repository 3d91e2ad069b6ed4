//! knockd.conf parser: every grammar rule, every error message, the warnings, the knockd 0.8
//! EXP 2/3 table (reference Appendix A) as expectations, the sample configs, and properties
//! (display round trip, no panic on arbitrary text).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use knock_core::totp::{Algorithm, Secret, TotpParams};
use knock_core::{Config, ConfigError, Door, FlagRule, Knock, Parsed, TcpFlags, Warning};
use knock_core::{
    ConfigErrorKind, DEFAULT_CMD_TIMEOUT, DEFAULT_SEQ_TIMEOUT, DisplayWithSecrets, MAX_DURATION,
    MAX_SEQUENCE_LEN, TotpConfig, TotpSecret, WarningKind, parse_sequence,
};
use proptest::prelude::*;

fn parse(text: &str) -> Parsed {
    match Config::parse(text) {
        Ok(parsed) => parsed,
        Err(e) => panic!("unexpected error:\n{e}"),
    }
}

fn error(text: &str) -> ConfigError {
    match Config::parse(text) {
        Ok(parsed) => panic!("expected an error for {text:?}, got {:?}", parsed.config),
        Err(e) => e,
    }
}

/// The first line of the error's display.
fn summary(text: &str) -> String {
    error(text).summary()
}

fn kind(text: &str) -> ConfigErrorKind {
    error(text).kind().clone()
}

fn door(text: &str) -> Door {
    let parsed = parse(text);
    assert_eq!(parsed.config.doors.len(), 1, "{:?}", parsed.config.doors);
    parsed.config.doors.into_iter().next().unwrap()
}

/// The sequence of a one-door file `[d]\nsequence = VALUE`.
fn sequence(value: &str) -> Vec<Knock> {
    door(&format!("[d]\nsequence = {value}\n")).sequence
}

/// The error summary for a one-door file `[d]\nsequence = VALUE`.
fn sequence_error(value: &str) -> String {
    summary(&format!("[d]\nsequence = {value}\n"))
}

/// A door with a valid sequence and `extra` lines.
fn door_with(extra: &str) -> Door {
    door(&format!("[d]\nsequence = 7000,8000\n{extra}\n"))
}

fn warnings(text: &str) -> Vec<WarningKind> {
    parse(text).warnings.into_iter().map(|w| w.kind).collect()
}

fn flags(set: TcpFlags, clear: TcpFlags) -> FlagRule {
    FlagRule {
        must_set: set,
        must_clear: clear,
    }
}

// ---------------------------------------------------------------------------------------
// Whole files

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
    assert_eq!(open.tcp_flags, flags(TcpFlags::SYN, TcpFlags::EMPTY));
    assert_eq!(
        open.start_command.as_deref(),
        Some("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(open.start_command_6, None);
    assert_eq!(config.doors[1].name, "closeSSH");
    // Debian's sequences are the well-known ones: the only thing worth a warning.
    let kinds: Vec<_> = parsed.warnings.iter().map(|w| w.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            WarningKind::WellKnownSequence,
            WarningKind::WellKnownSequence
        ]
    );
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(parse("").config, Config::default());
    assert_eq!(parse("\n\n  \t\n# c\n   # c\n").config, Config::default());
    assert_eq!(parse("[options]\n").config, Config::default());
}

#[test]
fn sample_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/configs exists") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = Config::parse(&text)
            .map_err(|e| e.with_file(path.display().to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.config.doors.is_empty(), "{}", path.display());
        // The canonical form of a sample parses to the same configuration.
        let again = parse(&parsed.config.to_string()).config;
        assert_eq!(again, parsed.config, "{}", path.display());
        count += 1;
    }
    assert!(count >= 2, "expected at least 2 samples, found {count}");
}

// ---------------------------------------------------------------------------------------
// Lexical rules

#[test]
fn comments_only_as_first_non_blank_character() {
    let d = door_with("  # sequence = 1\n\t#x\ncommand = echo # not a comment");
    assert_eq!(d.sequence, [Knock::tcp(7000), Knock::tcp(8000)]);
    assert_eq!(d.start_command.as_deref(), Some("echo # not a comment"));
}

#[test]
fn semicolon_is_not_a_comment() {
    assert_eq!(
        summary("[d]\nsequence = 1,2\n;comment\n"),
        "knockd.conf:3:1: unknown key \";comment\""
    );
}

#[test]
fn quotes_and_equals_are_kept_verbatim() {
    let d = door_with("command = \"echo hi\"\nstop_command = a=b  c = d");
    assert_eq!(d.start_command.as_deref(), Some("\"echo hi\""));
    assert_eq!(d.stop_command.as_deref(), Some("a=b  c = d"));
}

#[test]
fn crlf_files() {
    let d = door("[d]\r\nsequence = 1,2:udp\r\ncommand = x\r\n");
    assert_eq!(d.sequence, [Knock::tcp(1), Knock::udp(2)]);
    assert_eq!(d.start_command.as_deref(), Some("x"));
    let e = error("[d]\r\nsequence = 1:icmp\r\n");
    assert_eq!(e.line_text(), "sequence = 1:icmp");
    assert_eq!(e.column(), 14);
}

#[test]
fn long_lines_are_not_split() {
    let command = "x".repeat(5000);
    let d = door_with(&format!("command = {command}"));
    assert_eq!(d.start_command.as_deref(), Some(command.as_str()));
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = error("[d]\ncommand = é\nsequence = ü:icmp\n");
    assert_eq!((e.line(), e.column()), (3, 12));
}

// ---------------------------------------------------------------------------------------
// Sections

#[test]
fn section_names_are_verbatim_and_case_sensitive() {
    assert_eq!(door("[ d ]\nsequence = 1,2\n").name, " d ");
    assert_eq!(door("  [openSSH]  \nsequence = 1,2\n").name, "openSSH");
    assert_eq!(door("[a]b]\nsequence = 1,2\n").name, "a]b");
}

#[test]
fn empty_section_name() {
    assert_eq!(
        error("[]\n").to_string(),
        "knockd.conf:1:1: bad section name: a section name cannot be empty\n    []\n    ^"
    );
    assert_eq!(kind("  []"), ConfigErrorKind::BadSectionName);
}

#[test]
fn unterminated_section_header() {
    assert_eq!(
        summary("[foo\n"),
        "knockd.conf:1:1: syntax error: section header without a closing \"]\""
    );
}

#[test]
fn text_after_section_header() {
    assert_eq!(
        summary("[openSSH] # ssh\n"),
        "knockd.conf:1:11: unexpected \"# ssh\" after the section header; comments must be on \
         their own line"
    );
    assert!(matches!(
        kind("[a]b\n"),
        ConfigErrorKind::TextAfterSectionHeader { .. }
    ));
}

#[test]
fn byte_order_mark_is_ignored() {
    assert_eq!(door("\u{feff}[d]\nsequence = 1,2\n").name, "d");
}

#[test]
fn directive_before_any_section() {
    assert_eq!(
        summary("# c\nsequence = 1\n[d]\n"),
        "knockd.conf:2:1: all directives must belong to a section; add \"[options]\" or a \
         door header such as \"[openSSH]\" above this line"
    );
    assert_eq!(
        kind("UseSyslog\n"),
        ConfigErrorKind::DirectiveOutsideSection
    );
}

#[test]
fn duplicate_doors_are_kept() {
    let config = parse("[d]\nsequence = 1,2\n[d]\nsequence = 3,4\n").config;
    assert_eq!(config.doors.len(), 2);
    assert_eq!(config.doors[0].sequence, [Knock::tcp(1), Knock::tcp(2)]);
    assert_eq!(config.doors[1].sequence, [Knock::tcp(3), Knock::tcp(4)]);
}

#[test]
fn options_repeatable_anywhere_later_keys_override() {
    let config = parse(
        "[options]\nlogfile = /a.log\n[d]\nsequence = 1,2\n[options]\nlogfile = /b.log\n\
         pidfile = /p\n[e]\nsequence = 3,4\n",
    )
    .config;
    assert_eq!(config.options.log_file.as_deref(), Some("/b.log"));
    assert_eq!(config.options.pid_file.as_deref(), Some("/p"));
    assert_eq!(config.doors.len(), 2);
}

#[test]
fn capitalised_options_is_a_door() {
    let parsed = parse("[Options]\nsequence = 1,5\n");
    assert_eq!(parsed.config.doors[0].name, "Options");
    assert_eq!(parsed.warnings[0].kind, WarningKind::DoorNamedOptions);
    assert_eq!(
        summary("[Options]\nlogfile = /var/log/knockd.log\n"),
        "knockd.conf:2:1: \"logfile\" is an [options] key and cannot be used in door section \
         \"Options\" (section names are case-sensitive: the global section is \"[options]\")"
    );
}

#[test]
fn door_without_sequence_is_reported_at_its_header() {
    let expected = "knockd.conf:2:1: door \"d\" has an empty knock sequence; add \"sequence = \
                    PORT[:PROTO],...\" or \"one_time_sequences = PATH\"";
    assert_eq!(summary("# c\n[d]\ncommand = x\n"), expected);
    assert_eq!(
        summary("# c\n[d]\ncommand = x\n[e]\nsequence = 1,2\n"),
        expected
    );
    assert_eq!(summary("# c\n[d]\ncommand = x\n[options]\n"), expected);
    let e = error("[ok]\nsequence=1,2\n  [d]\n");
    assert_eq!((e.line(), e.column(), e.line_text()), (3, 3, "  [d]"));
}

// ---------------------------------------------------------------------------------------
// Directives

#[test]
fn keys_are_case_insensitive_and_aliases_work() {
    let d = door(
        "[d]\nSEQUENCE = 1,2\nTimeOut = 7\nCOMMAND = a\nCommand_6 = b\nCmd_Timeout = 3\n\
         Stop_Command = c\nSTOP_COMMAND_6 = d\nTarget = 10.0.0.1\nTCPFlags = SYN\n",
    );
    assert_eq!(d.seq_timeout, Duration::from_secs(7));
    assert_eq!(d.start_command.as_deref(), Some("a"));
    assert_eq!(d.start_command_6.as_deref(), Some("b"));
    assert_eq!(d.cmd_timeout, Duration::from_secs(3));
    assert_eq!(d.stop_command.as_deref(), Some("c"));
    assert_eq!(d.stop_command_6.as_deref(), Some("d"));
    assert_eq!(d.target, Some("10.0.0.1".parse::<IpAddr>().unwrap()));
    assert_eq!(d.tcp_flags, flags(TcpFlags::SYN, TcpFlags::EMPTY));
    let d = door("[d]\nsequence=1,2\nseq_timeout=9\nstart_command=a\nstart_command_6=b\n");
    assert_eq!(d.seq_timeout, Duration::from_secs(9));
    assert_eq!(d.start_command.as_deref(), Some("a"));
    assert_eq!(d.start_command_6.as_deref(), Some("b"));
}

#[test]
fn later_keys_override_earlier_ones() {
    let d = door_with("sequence = 3,4:udp\ncommand = a\ncommand = b\ntimeout = 1\nseq_timeout = 2");
    assert_eq!(d.sequence, [Knock::tcp(3), Knock::udp(4)]);
    assert_eq!(d.start_command.as_deref(), Some("b"));
    assert_eq!(d.seq_timeout, Duration::from_secs(2));
}

#[test]
fn ipv6_commands_absent_versus_empty() {
    let d = door_with("command = open\nstop_command = close");
    assert_eq!((d.start_command_6, d.stop_command_6), (None, None));
    let d = door_with("command = open\ncommand_6 =\nstop_command_6 =");
    assert_eq!(d.start_command_6.as_deref(), Some(""));
    assert_eq!(d.stop_command_6.as_deref(), Some(""));
    let d = door_with("command =");
    assert_eq!(d.start_command.as_deref(), Some(""));
}

#[test]
fn unknown_keys_suggest_close_ones() {
    assert_eq!(
        summary("[d]\nsequence = 1,2\nseq timeout = 5\n"),
        "knockd.conf:3:1: unknown key \"seq timeout\"; did you mean \"seq_timeout\"?"
    );
    assert_eq!(
        summary("[d]\nSequense = 1,2\n"),
        "knockd.conf:2:1: unknown key \"Sequense\"; did you mean \"sequence\"?"
    );
    assert_eq!(
        summary("[options]\n  LogFil = /x\n"),
        "knockd.conf:2:3: unknown key \"LogFil\"; did you mean \"logfile\"?"
    );
    assert_eq!(
        summary("[d]\nsequence = 1,2\nfrobnicate = 1\n"),
        "knockd.conf:3:1: unknown key \"frobnicate\""
    );
    assert_eq!(
        summary("[options]\nusesyslg\n"),
        "knockd.conf:2:1: unknown key \"usesyslg\"; did you mean \"usesyslog\"?"
    );
}

#[test]
fn empty_key_and_missing_equals() {
    assert_eq!(
        summary("[d]\n = 1,2\n"),
        "knockd.conf:2:2: syntax error: empty key before \"=\""
    );
    assert_eq!(
        summary("[d]\nsequence 7000,8000\n"),
        "knockd.conf:2:9: syntax error: missing \"=\" after \"sequence\"; did you mean \
         \"sequence = 7000,8000\"?"
    );
    assert_eq!(
        summary("[d]\nsequence = 1,2\n  Command\n"),
        "knockd.conf:3:10: syntax error: missing \"=\" after \"Command\""
    );
    assert_eq!(
        summary("[d]\nfoo bar\n"),
        "knockd.conf:2:1: syntax error: expected \"key = value\", \"[section]\" or a \"#\" comment"
    );
}

#[test]
fn keys_in_the_wrong_section() {
    assert_eq!(
        summary("[options]\nsequence = 1\n"),
        "knockd.conf:2:1: \"sequence\" is a door key and cannot be used in the [options] section"
    );
    assert_eq!(
        summary("[openSSH]\nsequence = 1,2\nLogFile = /x\n"),
        "knockd.conf:3:1: \"LogFile\" is an [options] key and cannot be used in door section \
         \"openSSH\""
    );
    assert_eq!(
        kind("[d]\nsequence = 1,2\nusesyslog = yes\n"),
        ConfigErrorKind::OptionKeyInDoor {
            key: "usesyslog".into(),
            door: "d".into()
        }
    );
}

#[test]
fn missing_values() {
    for key in [
        "sequence",
        "seq_timeout",
        "cmd_timeout",
        "tcpflags",
        "target",
        "one_time_sequences",
    ] {
        assert_eq!(
            kind(&format!("[d]\nsequence = 1,2\n{key} =\n")),
            ConfigErrorKind::EmptyValue { key: key.into() },
            "{key}"
        );
    }
    assert_eq!(
        summary("[d]\nsequence =\n"),
        "knockd.conf:2:11: missing value for \"sequence\""
    );
}

// ---------------------------------------------------------------------------------------
// [options]

#[test]
fn use_syslog_forms() {
    for text in [
        "UseSyslog",
        "usesyslog",
        "USESYSLOG = yes",
        "UseSyslog = True",
        "usesyslog=1",
        "usesyslog = on",
    ] {
        assert!(
            parse(&format!("[options]\n{text}\n"))
                .config
                .options
                .use_syslog,
            "{text}"
        );
    }
    for text in [
        "UseSyslog = no",
        "usesyslog = FALSE",
        "usesyslog=0",
        "usesyslog = off",
    ] {
        assert!(
            !parse(&format!("[options]\n{text}\n"))
                .config
                .options
                .use_syslog,
            "{text}"
        );
    }
    assert_eq!(
        summary("[options]\nusesyslog = maybe\n"),
        "knockd.conf:2:13: invalid value \"maybe\" for usesyslog (expected yes, no, true, false, \
         on, off, 1 or 0)"
    );
    // A bare UseSyslog inside a door: accepted as in 0.8, global, with a warning.
    let parsed = parse("[d]\nsequence = 1,5\nusesyslog\n");
    assert!(parsed.config.options.use_syslog);
    assert!(
        parsed
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::UseSyslogInDoor && w.line == 3)
    );
}

#[test]
fn allow_duplicates_forms_and_the_options_default() {
    // Off by default; bare or a boolean in a door.
    assert!(!door_with("").allow_duplicates);
    for text in [
        "AllowDuplicates",
        "allowduplicates = yes",
        "ALLOWDUPLICATES=on",
    ] {
        assert!(door_with(text).allow_duplicates, "{text}");
    }
    assert!(!door_with("AllowDuplicates = no").allow_duplicates);
    // In [options] (before or after the doors): the default of every door not setting it.
    let config = parse(
        "[a]\nsequence = 1,2\n[b]\nsequence = 3,4\nallowduplicates = no\n[options]\n\
         AllowDuplicates\n[c]\nsequence = 5,6\n",
    )
    .config;
    assert!(config.options.allow_duplicates);
    let allowed: Vec<bool> = config.doors.iter().map(|d| d.allow_duplicates).collect();
    assert_eq!(allowed, [true, false, true]);
    assert!(
        !parse("[options]\nallowduplicates = 0\n[a]\nsequence = 1,2\n")
            .config
            .doors[0]
            .allow_duplicates
    );
    // Bad values are positioned errors; the canonical text round-trips.
    assert_eq!(
        summary("[d]\nsequence = 1,2\nAllowDuplicates = twice\n"),
        "knockd.conf:3:19: invalid value \"twice\" for allowduplicates (expected yes, no, true, \
         false, on, off, 1 or 0)"
    );
    assert!(matches!(
        kind("[options]\nallowduplicates =\n"),
        ConfigErrorKind::InvalidBool { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence = 1,2\nallowduplicates =\n"),
        ConfigErrorKind::EmptyValue { .. }
    ));
    assert_eq!(parse(&config.to_string()).config, config);
    assert!(
        config.to_string().contains(
            "[b]\n    sequence = 3:tcp,4:tcp\n    seq_timeout = 25\n    AllowDuplicates = no\n"
        ),
        "{config}"
    );
}

#[test]
fn interfaces() {
    let parsed = parse("[options]\nInterface = eth0\n");
    assert_eq!(parsed.config.options.interfaces, ["eth0"]);
    let parsed = parse("[options]\ninterface = eth0 , wg0,eth1.10\n");
    assert_eq!(parsed.config.options.interfaces, ["eth0", "wg0", "eth1.10"]);
    let parsed = parse("[options]\ninterface = a\ninterface = b\n");
    assert_eq!(parsed.config.options.interfaces, ["b"]);
    assert_eq!(
        summary("[options]\ninterface = eth0,,eth1\n"),
        "knockd.conf:2:18: empty interface name in interface list; remove the extra comma"
    );
    assert_eq!(
        kind("[options]\ninterface =\n"),
        ConfigErrorKind::EmptyValue {
            key: "interface".into()
        }
    );
}

#[test]
fn log_and_pid_files() {
    let parsed = parse("[options]\nLogFile = /var/log/knockd.log\nPidFile = /run/knockd.pid\n");
    assert_eq!(
        parsed.config.options.log_file.as_deref(),
        Some("/var/log/knockd.log")
    );
    assert_eq!(
        parsed.config.options.pid_file.as_deref(),
        Some("/run/knockd.pid")
    );
    assert!(parsed.warnings.is_empty());
}

// ---------------------------------------------------------------------------------------
// Sequences

#[test]
fn sequence_syntax() {
    assert_eq!(sequence("7000"), [Knock::tcp(7000)]);
    assert_eq!(
        sequence("7000,8000:udp,9000:tcp"),
        [Knock::tcp(7000), Knock::udp(8000), Knock::tcp(9000)]
    );
    assert_eq!(
        sequence("8000:UDP,9000:Tcp"),
        [Knock::udp(8000), Knock::tcp(9000)]
    );
    assert_eq!(
        sequence("7000, 8000 : udp ,9000"),
        [Knock::tcp(7000), Knock::udp(8000), Knock::tcp(9000)]
    );
    assert_eq!(
        sequence("1,65535,080"),
        [Knock::tcp(1), Knock::tcp(65535), Knock::tcp(80)]
    );
    assert_eq!(
        parse_sequence(" 7000 , 8000:udp ").unwrap(),
        [Knock::tcp(7000), Knock::udp(8000)]
    );
}

#[test]
fn port_errors() {
    assert_eq!(
        sequence_error("7000 8000 9000"),
        "knockd.conf:2:17: ports must be separated by commas; did you mean \"7000,8000,9000\"?"
    );
    assert_eq!(
        sequence_error("7000:udp 8000"),
        "knockd.conf:2:21: ports must be separated by commas; did you mean \"7000:udp,8000\"?"
    );
    assert_eq!(
        sequence_error("1,,2"),
        "knockd.conf:2:14: empty port in sequence; remove the extra comma (knockd 0.8 read it as \
         port 0)"
    );
    assert_eq!(
        sequence_error("1,2,"),
        "knockd.conf:2:16: empty port in sequence; remove the extra comma (knockd 0.8 read it as \
         port 0)"
    );
    assert_eq!(error("[d]\nsequence = 1,2,\n").column(), 16);
    assert_eq!(kind("[d]\nsequence = :udp\n"), ConfigErrorKind::EmptyPort);
    assert_eq!(
        sequence_error("7000,abc"),
        "knockd.conf:2:17: port \"abc\" is not a number (expected 1-65535)"
    );
    assert_eq!(
        sequence_error("12x:udp"),
        "knockd.conf:2:12: port \"12x\" is not a number (expected 1-65535)"
    );
    assert_eq!(
        sequence_error("7000, -1"),
        "knockd.conf:2:18: port \"-1\" is negative (expected 1-65535)"
    );
    assert_eq!(
        sequence_error("0"),
        "knockd.conf:2:12: port 0 cannot be knocked (expected 1-65535)"
    );
    assert_eq!(
        sequence_error("1,65536"),
        "knockd.conf:2:14: port \"65536\" is invalid: out of range (expected 1-65535)"
    );
    assert_eq!(
        kind("[d]\nsequence = 99999999999999999999999\n"),
        ConfigErrorKind::PortOutOfRange {
            text: "99999999999999999999999".into()
        }
    );
}

#[test]
fn trailing_comments_in_sequences_are_errors() {
    assert_eq!(
        sequence_error("7000,8000 # x"),
        "knockd.conf:2:22: unexpected \"# x\" after a port in sequence; comments must be on their \
         own line"
    );
    assert_eq!(
        kind("[d]\nsequence = 7000:udp #c\n"),
        ConfigErrorKind::TrailingComment { text: "#c".into() }
    );
}

#[test]
fn protocol_errors() {
    assert_eq!(
        error("[d]\n\n\n\n\n\nsequence = 1:icmp\n").to_string(),
        "knockd.conf:7:14: unknown protocol \"icmp\" in sequence (expected tcp or udp)\n    \
         sequence = 1:icmp\n                 ^"
    );
    assert_eq!(
        sequence_error("1:"),
        "knockd.conf:2:14: missing protocol after \":\" in sequence (expected tcp or udp)"
    );
    assert_eq!(
        sequence_error("7:tcp:junk"),
        "knockd.conf:2:17: unexpected \":junk\" after the protocol in sequence (expected port or \
         port:protocol)"
    );
    assert_eq!(
        kind("[d]\nsequence = 7:tcpx\n"),
        ConfigErrorKind::UnknownProtocol {
            protocol: "tcpx".into()
        }
    );
}

#[test]
fn thirty_two_steps_at_most() {
    let ports = |n: u16| {
        (1..=n)
            .map(|p| (p * 2).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(sequence(&ports(32)).len(), MAX_SEQUENCE_LEN);
    let e = error(&format!("[d]\nsequence = {}\n", ports(33)));
    assert_eq!(e.kind(), &ConfigErrorKind::TooManySteps { count: 33 });
    assert_eq!(
        e.summary(),
        format!(
            "knockd.conf:2:{}: too many ports in knock sequence (33; at most 32)",
            "sequence = ".len() + ports(32).len() + 2
        )
    );
}

// ---------------------------------------------------------------------------------------
// TCP flags

#[test]
fn tcp_flags_tri_state_accumulates() {
    let d = door_with("tcpflags = SYN,!ack,Fin\ntcpflags = urg");
    assert_eq!(
        d.tcp_flags,
        flags(
            TcpFlags::SYN.union(TcpFlags::FIN).union(TcpFlags::URG),
            TcpFlags::ACK
        )
    );
    let d = door_with("tcpflags = syn, ack\ntcpflags = !syn , ! rst");
    assert_eq!(
        d.tcp_flags,
        flags(TcpFlags::ACK, TcpFlags::SYN.union(TcpFlags::RST))
    );
    let d = door_with("tcpflags = fin,syn,rst,psh,ack,urg");
    assert_eq!(d.tcp_flags.must_set.bits(), 0x3f);
}

#[test]
fn tcp_flag_errors() {
    assert_eq!(
        summary("[d]\nsequence = 1,2\ntcpflags = syn,ece\n"),
        "knockd.conf:3:16: unrecognized flag \"ece\" (expected fin, syn, rst, psh, ack or urg, \
         each optionally prefixed by \"!\")"
    );
    assert_eq!(
        kind("[d]\nsequence = 1,2\ntcpflags = syn|ack\n"),
        ConfigErrorKind::UnknownFlag {
            flag: "syn|ack".into()
        }
    );
    assert_eq!(
        summary("[d]\nsequence = 1,2\ntcpflags = syn,\n"),
        "knockd.conf:3:16: empty flag in tcpflags; remove the extra comma"
    );
    assert_eq!(
        kind("[d]\nsequence = 1,2\ntcpflags = !\n"),
        ConfigErrorKind::EmptyFlag
    );
}

// ---------------------------------------------------------------------------------------
// Durations and target

#[test]
fn durations() {
    let seq = |v: &str| door_with(&format!("seq_timeout = {v}")).seq_timeout;
    assert_eq!(seq("5"), Duration::from_secs(5));
    assert_eq!(seq("0"), Duration::ZERO);
    assert_eq!(seq("5s"), Duration::from_secs(5));
    assert_eq!(seq("1m30s"), Duration::from_secs(90));
    assert_eq!(seq("1m 30s"), Duration::from_secs(90));
    assert_eq!(seq("500ms"), Duration::from_millis(500));
    assert_eq!(seq("2.5s"), Duration::from_millis(2500));
    let cmd = door_with("cmd_timeout = 1h").cmd_timeout;
    assert_eq!(cmd, Duration::from_secs(3600));
    assert_eq!(door_with("").seq_timeout, DEFAULT_SEQ_TIMEOUT);
}

#[test]
fn duration_errors() {
    assert_eq!(
        summary("[d]\nsequence = 1,2\nseq_timeout = abc\n"),
        "knockd.conf:3:15: invalid duration \"abc\" for seq_timeout (expected seconds such as \
         \"5\", or a duration such as \"5s\", \"500ms\" or \"1m30s\")"
    );
    assert_eq!(
        summary("[d]\nsequence = 1,2\nTimeout = -5\n"),
        "knockd.conf:3:11: negative duration \"-5\" for timeout (expected 0 or more seconds)"
    );
    for bad in ["3x", "5 S", "s", "1..5s", "5s junk"] {
        assert!(
            matches!(
                kind(&format!("[d]\nsequence = 1,2\ncmd_timeout = {bad}\n")),
                ConfigErrorKind::InvalidDuration { .. }
            ),
            "{bad}"
        );
    }
}

/// Issue 10 item 13: durations that cannot be represented (u64::MAX seconds never fired in
/// memory and wrapped on disk) or exceed MAX_DURATION are positioned errors.
#[test]
fn issue10_item13_unrepresentable_durations_are_positioned_errors() {
    assert_eq!(
        summary("[d]\nsequence = 1,2\ncmd_timeout = 18446744073709551615\n"),
        "knockd.conf:3:15: duration \"18446744073709551615\" for cmd_timeout is too long (at \
         most 3650 days)"
    );
    for bad in [
        "99999999999999999999999",
        "315360001",
        "3651days",
        "3650days 1s",
        "18446744073709551615s 500ms 500ms",
        "300000000000000h",
    ] {
        for key in ["cmd_timeout", "seq_timeout"] {
            let e = error(&format!("[d]\nsequence = 1,2\n{key} = {bad}\n"));
            assert!(
                matches!(e.kind(), ConfigErrorKind::DurationTooLong { .. }),
                "{key} = {bad}: {e}"
            );
            assert_eq!((e.line(), e.column()), (3, key.len() + 4), "{bad}");
        }
    }
    // The bound itself is accepted, in either spelling, and displays back.
    let d = door_with("cmd_timeout = 315360000");
    assert_eq!(d.cmd_timeout, MAX_DURATION);
    assert_eq!(
        door_with("seq_timeout = 3650days").seq_timeout,
        MAX_DURATION
    );
    let text = parse("[d]\nsequence = 1,2\ncmd_timeout = 315360000\n")
        .config
        .to_string();
    assert_eq!(parse(&text).config.doors[0].cmd_timeout, MAX_DURATION);
}

/// Issue 10 item 13: a NUL byte in a command (or any other value) passed --check and failed
/// at run time; it is a positioned error.
#[test]
fn issue10_item13_nul_byte_is_a_positioned_error() {
    let e = error("[d]\nsequence = 1,2\ncommand = /bin/echo a\0b\n");
    assert_eq!(e.kind(), &ConfigErrorKind::NulByte);
    assert_eq!((e.line(), e.column()), (3, 22));
    assert_eq!(
        e.summary(),
        "knockd.conf:3:22: NUL byte in the configuration (commands, paths and names cannot \
         contain one)"
    );
    for line in [
        "stop_command = x\0",
        "start_command_6 = \0",
        "one_time_sequences = /etc/a\0b",
        "target = 10.0.0.1\0",
    ] {
        let e = error(&format!("[d]\nsequence = 1,2\n{line}\n"));
        assert_eq!(e.line(), 3, "{line}");
    }
    assert_eq!(error("[options]\nlogfile = /tmp/x\0\n").line(), 2);
    assert_eq!(error("[d\0]\nsequence = 1\n").line(), 1);
    // In a comment it is harmless.
    parse("# a\0b\n[d]\nsequence = 1,2\n");
}

#[test]
fn targets() {
    let d = door_with("target = fd99:0:0::2");
    assert_eq!(d.target, Some("fd99::2".parse::<IpAddr>().unwrap()));
    let d = door_with("target = 10.99.0.2");
    assert_eq!(d.target, Some("10.99.0.2".parse::<IpAddr>().unwrap()));
    assert_eq!(
        summary("[d]\nsequence = 1,2\ntarget = knock.example.org\n"),
        "knockd.conf:3:10: target \"knock.example.org\" is not an ip address (expected e.g. \
         10.0.0.1 or fd00::1; host names are not resolved)"
    );
}

#[test]
fn one_time_sequences_door() {
    let parsed = parse("[d]\none_time_sequences = /etc/knockd/ots\ncommand = x\n");
    let d = &parsed.config.doors[0];
    assert!(d.sequence.is_empty());
    assert_eq!(d.one_time_sequences.as_deref(), Some("/etc/knockd/ots"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

// ---------------------------------------------------------------------------------------
// Warnings

#[test]
fn warning_kinds() {
    assert_eq!(
        warnings("[d]\nsequence = 7000\n"),
        [WarningKind::SingleStepDoor]
    );
    assert_eq!(
        warnings("[d]\nsequence = 7000,9000\nseq_timeout = 0\n"),
        [WarningKind::ZeroSeqTimeout]
    );
    assert_eq!(
        warnings("[d]\nsequence = 7000,9000\nstop_command = x\n"),
        [WarningKind::StopWithoutStart]
    );
    assert_eq!(
        warnings("[d]\nsequence = 7000,9000\ncommand_6 = a\nstop_command = x\n"),
        [WarningKind::StopWithoutStart],
        "an IPv4 knocker would run the stop command without a start"
    );
    assert!(warnings("[d]\nsequence = 7000,9000\ncommand = a\nstop_command = x\n").is_empty());
    assert_eq!(
        warnings("[d]\nsequence = 7000,7001:udp,7002\n"),
        [WarningKind::AscendingAdjacentPorts]
    );
    assert!(warnings("[d]\nsequence = 7002,7001,7000\n").is_empty());
    assert_eq!(
        warnings("[d]\nsequence = 7000,8000:udp,9000\ncommand = a\n"),
        [WarningKind::WellKnownSequence]
    );
    assert_eq!(
        warnings("[d]\nsequence = 9000,8000,7000\ncommand = a\n"),
        [WarningKind::WellKnownSequence],
        "Debian's closeSSH door"
    );
    assert!(warnings("[d]\nsequence = 7000,8000,9001\ncommand = a\n").is_empty());
    assert_eq!(
        warnings("[d]\nsequence = 1,5\none_time_sequences = /o\n"),
        [WarningKind::SequenceOverridden]
    );
    assert_eq!(
        warnings("[options]\npidfile = run/k.pid\n[d]\nsequence = 1,5\n"),
        [WarningKind::RelativePath {
            key: "PidFile",
            path: "run/k.pid".into()
        }]
    );
    assert_eq!(
        warnings("[OPTIONS]\nsequence = 1,5\n"),
        [WarningKind::DoorNamedOptions]
    );
}

#[test]
fn warning_display() {
    let text = "[options]\nlogfile = knockd.log\n[openSSH]\nsequence = 7000\nseq_timeout = 5\n\
                [z]\nsequence=1,2\nseq_timeout=0\n";
    let shown: Vec<String> = parse(text)
        .warnings
        .iter()
        .map(Warning::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "knockd.conf:2: LogFile \"knockd.log\" is a relative path (resolved against the \
             daemon's working directory, which is / once daemonized)",
            "knockd.conf:4: door \"openSSH\": one-step sequence: every matching packet opens the \
             door (a port scan can trigger it)",
            "knockd.conf:7: door \"z\": the sequence is consecutive ascending ports: an ordinary \
             port scan completes it",
            "knockd.conf:8: door \"z\": seq_timeout is 0, so this multi-step sequence can never \
             be completed",
        ]
    );
    let w = parse("[d]\nsequence = 1\n").warnings[0]
        .clone()
        .with_file("/etc/knockd.conf");
    assert!(
        w.to_string()
            .starts_with("/etc/knockd.conf:2: door \"d\": one-step")
    );
}

#[test]
fn error_with_file_name() {
    let e = error("[d]\nsequence = 0\n").with_file("/etc/knockd.conf");
    assert_eq!(e.file(), Some("/etc/knockd.conf"));
    assert_eq!(
        e.to_string(),
        "/etc/knockd.conf:2:12: port 0 cannot be knocked (expected 1-65535)\n    sequence = 0\n    \
         \x20          ^"
    );
}

// ---------------------------------------------------------------------------------------
// knockd 0.8 EXP 2/3 (reference Appendix A): 0.8's result, and ours where we deviate.

#[test]
fn exp2_exp3_table() {
    // [Options] + logfile: 0.8 "syntax error"; ours names the problem.
    assert!(matches!(
        kind("[Options]\nlogfile = /x\n"),
        ConfigErrorKind::OptionKeyInDoor { .. }
    ));
    // Mixed-case keys OK.
    assert_eq!(door("[d]\nSeQuEnCe = 1,2\n").sequence.len(), 2);
    // UseSyslog = yes: 0.8 syntax error; accepted here.
    assert!(
        parse("[options]\nUseSyslog = yes\n")
            .config
            .options
            .use_syslog
    );
    // usesyslog inside a door: accepted (global).
    assert!(
        parse("[d]\nusesyslog\nsequence = 1,2\n")
            .config
            .options
            .use_syslog
    );
    // Inline "# foo" after a sequence: 0.8 ignored it by accident; error here.
    assert!(matches!(
        kind("[d]\nsequence = 1,2 # foo\n"),
        ConfigErrorKind::TrailingComment { .. }
    ));
    // ... after a command: kept.
    assert_eq!(
        door_with("command = x # foo").start_command.as_deref(),
        Some("x # foo")
    );
    // "syn, ack": 0.8 'unrecognized flag " ACK"'; accepted here.
    assert_eq!(
        door_with("tcpflags = syn, ack").tcp_flags,
        flags(TcpFlags::SYN.union(TcpFlags::ACK), TcpFlags::EMPTY)
    );
    // ece and empty flags rejected.
    assert!(matches!(
        kind("[d]\nsequence=1,2\ntcpflags = ece\n"),
        ConfigErrorKind::UnknownFlag { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence=1,2\ntcpflags =\n"),
        ConfigErrorKind::EmptyValue { .. }
    ));
    // Unknown key: error.
    assert!(matches!(
        kind("[d]\nsequence=1,2\nfoo = 1\n"),
        ConfigErrorKind::UnknownKey { .. }
    ));
    // 70000 and 65536 invalid, 65535 OK.
    assert!(matches!(
        kind("[d]\nsequence = 70000\n"),
        ConfigErrorKind::PortOutOfRange { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence = 65536\n"),
        ConfigErrorKind::PortOutOfRange { .. }
    ));
    assert_eq!(sequence("65535,1"), [Knock::tcp(65535), Knock::tcp(1)]);
    // "-1,abc,,12x:udp, 99 : udp ,7:tcp:junk": 0.8 gave 65535,0,0,12:udp,99:udp,7; each
    // surprising item is an error here, the blank-padded one is fine.
    assert!(matches!(
        kind("[d]\nsequence = -1,abc\n"),
        ConfigErrorKind::NegativePort { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence = 1,abc\n"),
        ConfigErrorKind::PortNotANumber { .. }
    ));
    assert_eq!(kind("[d]\nsequence = 1,,12\n"), ConfigErrorKind::EmptyPort);
    assert!(matches!(
        kind("[d]\nsequence = 12x:udp\n"),
        ConfigErrorKind::PortNotANumber { .. }
    ));
    assert_eq!(
        sequence("1, 99 : udp ,7:tcp"),
        [Knock::tcp(1), Knock::udp(99), Knock::tcp(7)]
    );
    assert!(matches!(
        kind("[d]\nsequence = 7:tcp:junk\n"),
        ConfigErrorKind::ExtraSequenceField { .. }
    ));
    // Trailing comma: 0.8 extra port 0; error here.
    assert_eq!(kind("[d]\nsequence = 1,2,\n"), ConfigErrorKind::EmptyPort);
    // 1:icmp and 1: -> unknown protocol.
    assert!(matches!(
        kind("[d]\nsequence = 1:icmp\n"),
        ConfigErrorKind::UnknownProtocol { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence = 1:\n"),
        ConfigErrorKind::UnknownProtocol { .. }
    ));
    // Duplicate door names both kept (see duplicate_doors_are_kept); [] bad; [foo error.
    assert_eq!(
        parse("[d]\nsequence=1,2\n[d]\nsequence=1,2\n")
            .config
            .doors
            .len(),
        2
    );
    assert_eq!(kind("[]\n"), ConfigErrorKind::BadSectionName);
    assert_eq!(kind("[foo\n"), ConfigErrorKind::UnterminatedSection);
    // command = a=b  c = d keeps "a=b  c = d"; quotes kept.
    assert_eq!(
        door_with("command = a=b  c = d").start_command.as_deref(),
        Some("a=b  c = d")
    );
    assert_eq!(
        door_with("command = 'x'").start_command.as_deref(),
        Some("'x'")
    );
    // sequence="1,2": 0.8 read ports 0 and 2; error here.
    assert!(matches!(
        kind("[d]\nsequence=\"1,2\"\n"),
        ConfigErrorKind::PortNotANumber { .. }
    ));
    // ;comment is a directive -> error.
    assert!(matches!(
        kind("[d]\nsequence=1,2\n;comment\n"),
        ConfigErrorKind::UnknownKey { .. }
    ));
    // [ d ] keeps spaces.
    assert_eq!(door("[ d ]\nsequence=1,2\n").name, " d ");
    // seq_timeout = abc: 0.8 -> 0; timeout = -5: 0.8 -> -5; cmd_timeout = 3x: 0.8 -> 3.
    assert!(matches!(
        kind("[d]\nsequence=1,2\nseq_timeout = abc\n"),
        ConfigErrorKind::InvalidDuration { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence=1,2\ntimeout = -5\n"),
        ConfigErrorKind::NegativeDuration { .. }
    ));
    assert!(matches!(
        kind("[d]\nsequence=1,2\ncmd_timeout = 3x\n"),
        ConfigErrorKind::InvalidDuration { .. }
    ));
    // Second sequence replaces the first; CRLF OK.
    assert_eq!(
        door("[d]\r\nsequence=1,2\r\nsequence=3,4\r\n").sequence,
        [Knock::tcp(3), Knock::tcp(4)]
    );
    // seq timeout = 5 -> error.
    assert!(matches!(
        kind("[d]\nsequence=1,2\nseq timeout = 5\n"),
        ConfigErrorKind::UnknownKey { .. }
    ));
    // sequence = 7000 8000 9000: 0.8 -> 7000 only; error with hint here.
    assert_eq!(
        kind("[d]\nsequence = 7000 8000 9000\n"),
        ConfigErrorKind::SpaceSeparatedPorts {
            suggestion: "7000,8000,9000".into()
        }
    );
    // A 4100-character line: 0.8 split it ("line 4: syntax error"); read whole here.
    let long = format!("[d]\nsequence = 1,2\ncommand = {}\n", "y".repeat(4100));
    assert_eq!(door(&long).start_command.map(|c| c.len()), Some(4100));
}

// ---------------------------------------------------------------------------------------
// Properties

fn trimmed_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{0,{max}}}"))
        .unwrap()
        .prop_map(|s| s.trim().to_owned())
}

fn non_empty_trimmed(max: usize) -> impl Strategy<Value = String> {
    trimmed_text(max).prop_filter("non-empty", |s| !s.is_empty())
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..100_000).prop_map(Duration::from_secs),
        (0u64..100_000, 0u32..1_000).prop_map(|(s, ms)| Duration::new(s, ms * 1_000_000)),
        (0..MAX_DURATION.as_secs(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn flag_rule() -> impl Strategy<Value = FlagRule> {
    proptest::collection::vec(0u8..3, 6).prop_map(|states| {
        let mut rule = FlagRule::ANY;
        for ((flag, _), state) in TcpFlags::NAMED.iter().zip(states) {
            match state {
                1 => rule.must_set = rule.must_set.union(*flag),
                2 => rule.must_clear = rule.must_clear.union(*flag),
                _ => {}
            }
        }
        rule
    })
}

fn knock() -> impl Strategy<Value = Knock> {
    (1u16..=u16::MAX, any::<bool>()).prop_map(|(port, udp)| {
        if udp {
            Knock::udp(port)
        } else {
            Knock::tcp(port)
        }
    })
}

/// Valid TOTP settings and matching bases: digits, a divisor of them as the step count, bases
/// that leave room for the groups.
fn totp_parts() -> impl Strategy<Value = (TotpConfig, Vec<Knock>)> {
    let layout = prop_oneof![
        Just((6u8, 2usize)),
        Just((6, 3)),
        Just((6, 6)),
        Just((7, 7)),
        Just((8, 2)),
        Just((8, 4)),
        Just((8, 8)),
    ];
    let secret = prop_oneof![
        proptest::collection::vec(any::<u8>(), 16..48)
            .prop_map(|bytes| TotpSecret::Inline(Secret::from_bytes(&bytes).unwrap())),
        non_empty_trimmed(20).prop_map(TotpSecret::File),
    ];
    (
        layout,
        secret,
        proptest::sample::select(Algorithm::ALL.to_vec()),
        1u64..1_000_000,
        0u32..=10,
    )
        .prop_flat_map(|((digits, steps), secret, algorithm, step, window)| {
            let group = u32::from(digits) / u32::try_from(steps).unwrap();
            let max_base = u16::try_from(65_535 - (10u32.pow(group) - 1)).unwrap();
            let bases = proptest::collection::vec(
                (1..=max_base, any::<bool>())
                    .prop_map(|(p, udp)| if udp { Knock::udp(p) } else { Knock::tcp(p) }),
                steps,
            );
            let mut totp = TotpConfig::new(secret);
            totp.params = TotpParams {
                algorithm,
                digits,
                step: Duration::from_secs(step),
                window,
            };
            (Just(totp), bases)
        })
}

fn arbitrary_door() -> impl Strategy<Value = Door> {
    let name = proptest::string::string_regex("[^\\n\\r]{1,16}")
        .unwrap()
        .prop_filter("not the options section", |n| {
            // A NUL byte is an error anywhere but in a comment (issue 10 item 13).
            n != "options" && !n.contains(['\n', '\r', '\0'])
        });
    let commands = proptest::collection::vec(proptest::option::of(trimmed_text(30)), 4);
    let ots = proptest::option::of(non_empty_trimmed(20));
    (
        name,
        proptest::collection::vec(knock(), 0..=MAX_SEQUENCE_LEN),
        ots,
        duration(),
        duration(),
        flag_rule(),
        commands,
        proptest::option::of(any::<IpAddr>()),
        proptest::option::weighted(0.2, totp_parts()),
    )
        .prop_filter("a door needs a sequence or a file", |(_, seq, ots, ..)| {
            !seq.is_empty() || ots.is_some()
        })
        .prop_map(
            |(name, sequence, ots, seq_timeout, cmd_timeout, tcp_flags, commands, target, totp)| {
                let mut door = Door::new(name, sequence);
                door.one_time_sequences = ots;
                if let Some((totp, bases)) = totp {
                    // A TOTP door: its sequence is the bases, and no one-time sequences.
                    door.sequence = bases;
                    door.one_time_sequences = None;
                    door.totp = Some(totp);
                }
                door.seq_timeout = seq_timeout;
                door.cmd_timeout = cmd_timeout;
                door.tcp_flags = tcp_flags;
                let [start, start6, stop, stop6]: [Option<String>; 4] =
                    commands.try_into().unwrap();
                door.start_command = start;
                door.start_command_6 = start6;
                door.stop_command = stop;
                door.stop_command_6 = stop6;
                door.target = target;
                door
            },
        )
}

fn arbitrary_config() -> impl Strategy<Value = Config> {
    let interface = proptest::string::string_regex("[A-Za-z0-9._:@-]{1,10}").unwrap();
    (
        any::<bool>(),
        proptest::option::of(trimmed_text(20)),
        proptest::option::of(trimmed_text(20)),
        proptest::collection::vec(interface, 0..3),
        proptest::collection::vec(arbitrary_door(), 0..4),
        (any::<bool>(), proptest::collection::vec(any::<bool>(), 4)),
    )
        .prop_map(
            |(use_syslog, log_file, pid_file, interfaces, doors, allow)| {
                let (allow_default, allow_doors) = allow;
                let mut config = Config::default();
                config.options.allow_duplicates = allow_default;
                config.options.use_syslog = use_syslog;
                config.options.log_file = log_file;
                config.options.pid_file = pid_file;
                config.options.interfaces = interfaces;
                config.doors = doors;
                for (door, allow) in config.doors.iter_mut().zip(allow_doors) {
                    door.allow_duplicates = allow;
                }
                config
            },
        )
}

/// Text that looks like knockd.conf, to reach deep into the parser.
fn config_like_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("=".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("!".to_owned()),
        Just("#".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("options".to_owned()),
        Just("sequence".to_owned()),
        Just("tcpflags".to_owned()),
        Just("seq_timeout".to_owned()),
        Just("target".to_owned()),
        Just("usesyslog".to_owned()),
        Just("interface".to_owned()),
        Just("totp_secret".to_owned()),
        Just("totp_digits".to_owned()),
        Just("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_owned()),
        Just("udp".to_owned()),
        Just("syn".to_owned()),
        Just("ms".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        "[0-9]{1,6}",
        "\\PC{1,3}",
    ];
    proptest::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_round_trips(config in arbitrary_config()) {
        // With the secrets written out, the text parses back to the same configuration.
        let text = DisplayWithSecrets(&config).to_string();
        let parsed = Config::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n---\n{text}")))?;
        prop_assert_eq!(&parsed.config, &config, "text:\n{}", text);
        // The ordinary display is the same text with every inline secret hidden.
        let hidden = config.to_string();
        let mut expected = text.clone();
        for door in &config.doors {
            if let Some(secret) = door.totp.as_ref().and_then(TotpConfig::inline_secret) {
                let b32 = secret.to_base32();
                prop_assert!(!hidden.contains(&b32), "secret shown:\n{}", hidden);
                expected = expected.replacen(
                    &format!("totp_secret = {b32}\n"),
                    "totp_secret = <hidden>\n",
                    1,
                );
            }
        }
        prop_assert_eq!(hidden, expected);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Config::parse(&text);
    }

    #[test]
    fn config_like_text_never_panics_and_reparses(text in config_like_text()) {
        if let Ok(parsed) = Config::parse(&text) {
            let again = Config::parse(&DisplayWithSecrets(&parsed.config).to_string()).map(|p| p.config);
            prop_assert_eq!(again, Ok(parsed.config));
        } else if let Err(e) = Config::parse(&text) {
            prop_assert!(e.line() >= 1 && e.column() >= 1);
            let _ = e.to_string();
        }
    }
}
