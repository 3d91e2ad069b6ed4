//! The command line: knockd 0.8's flags plus the new ones, and how they combine with the
//! configuration file (command line first).

use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory, Parser};
use knock_core::Config;

/// Where knockd reads its configuration unless `-c` says otherwise (as 0.8).
pub(crate) const DEFAULT_CONFIG: &str = "/etc/knockd.conf";
/// Where `-d` writes the process id unless `-p` or `PidFile` say otherwise (as 0.8).
pub(crate) const DEFAULT_PID_FILE: &str = "/var/run/knockd.pid";
/// Where pending stop commands are recorded unless `--state-file` says otherwise.
pub(crate) const DEFAULT_STATE_FILE: &str = "/var/lib/knockd/pending-stops";
/// The interface used when neither `-i` nor `Interface` names one and no default route is
/// found (0.8's default).
pub(crate) const FALLBACK_INTERFACE: &str = "eth0";

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0   clean exit (also -h, -V, and --check or --replay that succeeded)
  1   bad command line, configuration error, unreadable file, or a fatal runtime error
  2   stopped by SIGINT (after running every pending stop command)
  15  stopped by SIGTERM (after running every pending stop command)

Signals: SIGHUP re-reads the configuration (the old one stays if the new one is invalid)
and reopens the log file; SIGUSR1/SIGUSR2 log the counters; SIGPIPE is ignored.";

/// knockd's command line.
#[derive(Clone, Debug, Parser, PartialEq, Eq)]
#[command(
    name = "knockd",
    version,
    about = "Port-knock server: listens for knock sequences and runs commands",
    long_about = "Port-knock server: listens on network interfaces for knock sequences \
                  (TCP SYNs or UDP datagrams to closed ports) and runs the commands of \
                  /etc/knockd.conf. A drop-in replacement for knockd 0.8.",
    after_help = EXIT_STATUS_HELP,
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Interface to listen on (repeatable, or comma-separated); overrides `Interface`
    /// [default: the default route's interface, else eth0].
    #[arg(short, long = "interface", value_name = "IF", value_delimiter = ',', action = ArgAction::Append)]
    pub(crate) interfaces: Vec<String>,

    /// Run in the background (fork, setsid, chdir /) and write the pid file.
    #[arg(short, long)]
    pub(crate) daemon: bool,

    /// Configuration file.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub(crate) config: PathBuf,

    /// Debug output on stdout (configuration, every captured packet, filters).
    #[arg(short = 'D', long)]
    pub(crate) debug: bool,

    /// Show knockers' host names in log lines (reverse lookups, never blocking matching).
    #[arg(short, long)]
    pub(crate) lookup: bool,

    /// Ignore IPv6 packets and addresses.
    #[arg(short = '4', long = "only-ip-v4")]
    pub(crate) only_ipv4: bool,

    /// Verbose output on stdout.
    #[arg(short, long)]
    pub(crate) verbose: bool,

    /// Print the version and exit.
    #[arg(short = 'V', long, action = ArgAction::Version)]
    pub(crate) version: Option<bool>,

    /// Pid file written in daemon mode; overrides `PidFile` [default: /var/run/knockd.pid].
    #[arg(short, long, value_name = "FILE")]
    pub(crate) pidfile: Option<PathBuf>,

    /// Log file; overrides `LogFile`.
    #[arg(short = 'g', long, value_name = "FILE")]
    pub(crate) logfile: Option<PathBuf>,

    /// Parse the configuration, print it in canonical form with every warning, and exit
    /// (status 0 if valid, 1 if not).
    #[arg(long, conflicts_with = "replay")]
    pub(crate) check: bool,

    /// With --check: print nothing but errors (no configuration, no warnings); only the
    /// exit status tells. For systemd's ExecStartPre/ExecReload.
    #[arg(long, requires = "check")]
    pub quiet: bool,

    /// Run a pcap capture file through the configuration and print what would have
    /// happened, with the packets' times; runs no command.
    #[arg(long, value_name = "FILE.pcap")]
    pub(crate) replay: Option<PathBuf>,

    /// Also write every event (stage, open, close, timeout, invalidated, command started and
    /// finished, nftables element, SPA and TOTP outcomes, with each open's stage times) as one
    /// JSON object per line to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json_log: Option<PathBuf>,

    /// Where pending stop commands are recorded, so that they run after a crash or restart.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_STATE_FILE)]
    pub(crate) state_file: PathBuf,

    /// Syslog facility used when `UseSyslog` is set (daemon, user, local0…local7, …).
    #[arg(long, value_name = "NAME", default_value = "daemon", value_parser = FacilityParser,
          hide_possible_values = true)]
    pub(crate) syslog_facility: String,

    /// Most knock sources tracked at once; beyond it the oldest attempt is dropped (bounds
    /// memory under a spoofed-source flood).
    #[arg(long, value_name = "N", default_value_t = knock_core::DEFAULT_MAX_SOURCES,
          value_parser = parse_positive)]
    pub(crate) max_sources: usize,

    /// Most commands running at once; further ones wait their turn.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = parse_positive)]
    pub(crate) max_commands: usize,

    /// Kill a command (its whole process group) that is still running after this long
    /// (e.g. `300s`, `10m`; `0` never kills).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(crate) command_kill_timeout: std::time::Duration,

    /// Print the running daemon's status and exit: doors, open doors with their knockers
    /// and time left (the pending stop commands), counters, capture state per interface.
    /// Read from `status` in the --state-file's directory (default /var/lib/knockd/status),
    /// which the daemon rewrites every few seconds after a change.
    #[arg(long, conflicts_with_all = ["check", "replay"])]
    pub(crate) status: bool,

    /// With --status: print the status file's JSON document instead.
    #[arg(long, requires = "status")]
    pub(crate) json: bool,

    /// Also write the counters in the Prometheus text format to this file (atomically, every
    /// few seconds after a change), for node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics_file: Option<PathBuf>,

    /// On SIGTERM/SIGINT, do not run the pending stop commands (they stay recorded in the
    /// state file and run at the next start).
    #[arg(long)]
    pub(crate) no_stop_on_exit: bool,
}

/// The facility names `--syslog-facility` accepts (any case, `log_` prefix allowed); the shell
/// completions offer them.
pub(crate) const SYSLOG_FACILITIES: [&str; 24] = [
    "daemon",
    "user",
    "auth",
    "authpriv",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
    "kern",
    "mail",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "ftp",
    "ntp",
    "audit",
    "alert",
    "clock_daemon",
];

/// `parse_facility`, with [`SYSLOG_FACILITIES`] as the possible values for completions.
#[derive(Clone, Copy, Debug)]
struct FacilityParser;

impl clap::builder::TypedValueParser for FacilityParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        parse_facility.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            SYSLOG_FACILITIES
                .into_iter()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

fn parse_facility(text: &str) -> Result<String, String> {
    text.parse::<syslog::Facility>()
        .map(|_| text.to_ascii_lowercase())
        .map_err(|()| format!("unknown syslog facility {text:?} (e.g. daemon, user, local0)"))
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// The clap command, for man-page and shell-completion generators.
#[must_use]
pub fn cli_command() -> clap::Command {
    Cli::command()
}

/// What the command line and the configuration file decide together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Interfaces to listen on, never empty.
    pub(crate) interfaces: Vec<String>,
    /// Where the interface list came from, for the documentation of the default.
    pub(crate) interfaces_source: InterfacesSource,
    /// Interfaces that were listed beside `any` and dropped: `any` already captures on every
    /// interface, so each packet would be seen twice and every multi-step knock invalidated
    /// (issue 10 item 9). `--check` warns about them; the daemon should log the same warning
    /// ([`Settings::overlap_warning`]).
    pub(crate) overlapping_interfaces: Vec<String>,
    /// The log file, if any.
    pub(crate) log_file: Option<PathBuf>,
    /// The pid file (used in daemon mode).
    pub(crate) pid_file: PathBuf,
    /// Whether to log to syslog.
    pub(crate) use_syslog: bool,
}

/// Which setting chose the interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InterfacesSource {
    /// `-i`.
    CommandLine,
    /// `Interface =` in `[options]`.
    Config,
    /// The interface of the IPv4 default route.
    DefaultRoute,
    /// Nothing found: 0.8's `eth0`.
    Fallback,
}

impl Settings {
    /// Combines the command line and the configuration: the command line wins for the
    /// interfaces, the log file and the pid file (0.8 let `LogFile`/`PidFile` win; that
    /// inconsistency is fixed). Relative paths are made absolute against `cwd`, so they keep
    /// meaning the same file after `-d` changes directory.
    #[must_use]
    pub(crate) fn resolve(cli: &Cli, config: &Config, cwd: &Path) -> Self {
        let (mut interfaces, interfaces_source) = if !cli.interfaces.is_empty() {
            (split_names(&cli.interfaces), InterfacesSource::CommandLine)
        } else if !config.options.interfaces.is_empty() {
            (
                split_names(&config.options.interfaces),
                InterfacesSource::Config,
            )
        } else if let Some(name) = crate::platform::default_route_interface() {
            (vec![name], InterfacesSource::DefaultRoute)
        } else {
            (
                vec![FALLBACK_INTERFACE.to_owned()],
                InterfacesSource::Fallback,
            )
        };
        let mut overlapping_interfaces = Vec::new();
        if interfaces.len() > 1 && interfaces.iter().any(|i| i == knock_capture::ANY_INTERFACE) {
            overlapping_interfaces = interfaces
                .drain(..)
                .filter(|i| i != knock_capture::ANY_INTERFACE)
                .collect();
            interfaces.push(knock_capture::ANY_INTERFACE.to_owned());
        }
        let log_file = cli
            .logfile
            .clone()
            .or_else(|| config.options.log_file.as_ref().map(PathBuf::from))
            .map(|p| absolute_from(cwd, &p));
        let pid_file = absolute_from(
            cwd,
            &cli.pidfile
                .clone()
                .or_else(|| config.options.pid_file.as_ref().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PID_FILE)),
        );
        Self {
            interfaces,
            interfaces_source,
            overlapping_interfaces,
            log_file,
            pid_file,
            use_syslog: config.options.use_syslog,
        }
    }
}

impl Settings {
    /// The warning about [`overlapping_interfaces`](Self::overlapping_interfaces), if any.
    #[must_use]
    pub(crate) fn overlap_warning(&self) -> Option<String> {
        (!self.overlapping_interfaces.is_empty()).then(|| {
            format!(
                "interface {} listed beside \"any\", which already captures on every interface \
                 (each packet would be seen twice and multi-step knocks invalidated): listening \
                 on \"any\" only",
                self.overlapping_interfaces.join(",")
            )
        })
    }
}

/// Splits comma-separated names, trims them and drops empty and duplicate ones.
fn split_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')) {
        let name = name.trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// `path` made absolute against `cwd` (unchanged if already absolute).
#[must_use]
pub(crate) fn absolute_from(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_completed_facility_is_accepted() {
        for name in SYSLOG_FACILITIES {
            let cli = parse(&["--syslog-facility", name]).unwrap();
            assert_eq!(cli.syslog_facility, name);
        }
        assert_eq!(
            parse(&["--syslog-facility", "LOCAL3"])
                .unwrap()
                .syslog_facility,
            "local3"
        );
        assert!(parse(&["--syslog-facility", "nope"]).is_err());
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("knockd").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_knockd_0_8() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.config, PathBuf::from("/etc/knockd.conf"));
        assert!(!cli.daemon && !cli.verbose && !cli.debug && !cli.lookup && !cli.only_ipv4);
        assert_eq!(cli.pidfile, None);
        assert_eq!(cli.state_file, PathBuf::from(DEFAULT_STATE_FILE));
        assert_eq!(cli.syslog_facility, "daemon");
    }

    #[test]
    fn short_flags_of_0_8() {
        let cli = parse(&[
            "-4", "-v", "-D", "-d", "-l", "-i", "eth1", "-c", "k.conf", "-p", "pid", "-g", "log",
        ])
        .unwrap();
        assert!(cli.only_ipv4 && cli.verbose && cli.debug && cli.daemon && cli.lookup);
        assert_eq!(cli.interfaces, ["eth1"]);
        assert_eq!(cli.config, PathBuf::from("k.conf"));
        assert_eq!(cli.pidfile, Some(PathBuf::from("pid")));
        assert_eq!(cli.logfile, Some(PathBuf::from("log")));
    }

    #[test]
    fn interfaces_repeat_and_split_on_commas() {
        let cli = parse(&["-i", "eth0,wg0", "--interface", "lo", "-i", "eth0"]).unwrap();
        let config = Config::default();
        let settings = Settings::resolve(&cli, &config, Path::new("/"));
        assert_eq!(settings.interfaces, ["eth0", "wg0", "lo"]);
        assert_eq!(settings.interfaces_source, InterfacesSource::CommandLine);
    }

    /// Issue 10 item 9: `-i any,IF` captured every packet twice (once on `any`, once on IF),
    /// so every multi-step knock was invalidated; `any` alone is kept, with a warning.
    #[test]
    fn issue10_item9_interfaces_beside_any_are_dropped() {
        let cli = parse(&["-i", "eth0,any", "-i", "lo"]).unwrap();
        let settings = Settings::resolve(&cli, &Config::default(), Path::new("/"));
        assert_eq!(settings.interfaces, ["any"]);
        assert_eq!(settings.overlapping_interfaces, ["eth0", "lo"]);
        let warning = settings.overlap_warning().unwrap();
        assert!(
            warning.starts_with("interface eth0,lo listed beside \"any\""),
            "{warning}"
        );
        let mut config = Config::default();
        config.options.interfaces = vec!["any".into(), "wg0".into()];
        let settings = Settings::resolve(&parse(&[]).unwrap(), &config, Path::new("/"));
        assert_eq!(settings.interfaces, ["any"]);
        assert_eq!(settings.overlapping_interfaces, ["wg0"]);
        let settings = Settings::resolve(&parse(&["-i", "any"]).unwrap(), &config, Path::new("/"));
        assert_eq!(settings.interfaces, ["any"]);
        assert!(settings.overlap_warning().is_none());
    }

    #[test]
    fn command_line_wins_over_config() {
        let mut config = Config::default();
        config.options.interfaces = vec!["eth9".into()];
        config.options.log_file = Some("/var/log/conf.log".into());
        config.options.pid_file = Some("/run/conf.pid".into());
        let cli = parse(&["-i", "lo", "-g", "cli.log", "-p", "/run/cli.pid"]).unwrap();
        let s = Settings::resolve(&cli, &config, Path::new("/home/me"));
        assert_eq!(s.interfaces, ["lo"]);
        assert_eq!(s.log_file, Some(PathBuf::from("/home/me/cli.log")));
        assert_eq!(s.pid_file, PathBuf::from("/run/cli.pid"));

        let cli = parse(&[]).unwrap();
        let s = Settings::resolve(&cli, &config, Path::new("/home/me"));
        assert_eq!(s.interfaces, ["eth9"]);
        assert_eq!(s.interfaces_source, InterfacesSource::Config);
        assert_eq!(s.log_file, Some(PathBuf::from("/var/log/conf.log")));
        assert_eq!(s.pid_file, PathBuf::from("/run/conf.pid"));

        let s = Settings::resolve(&cli, &Config::default(), Path::new("/"));
        assert_eq!(s.pid_file, PathBuf::from(DEFAULT_PID_FILE));
        assert_eq!(s.log_file, None);
        assert!(!s.interfaces.is_empty());
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["-x"]).is_err());
        assert!(parse(&["--max-sources", "0"]).is_err());
        assert!(parse(&["--syslog-facility", "nope"]).is_err());
        assert!(parse(&["--check", "--replay", "x.pcap"]).is_err());
        let help = parse(&["-h"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let version = parse(&["-V"]).unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn durations_accept_bare_seconds_and_humantime() {
        let cli = parse(&["--command-kill-timeout", "30"]).unwrap();
        assert_eq!(cli.command_kill_timeout, std::time::Duration::from_secs(30));
        let cli = parse(&["--command-kill-timeout", "2m"]).unwrap();
        assert_eq!(
            cli.command_kill_timeout,
            std::time::Duration::from_secs(120)
        );
    }

    #[test]
    fn the_command_is_consistent() {
        cli_command().debug_assert();
    }
}
