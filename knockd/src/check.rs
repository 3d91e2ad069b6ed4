//! `knockd --check`: validate the configuration, print it in canonical form (what knockd will
//! actually run, with the command-line overrides) and every warning.
//!
//! The canonical text goes to stdout (it parses back to the same configuration); warnings go
//! to stderr as `warning: FILE:LINE: …`. Exit status 0 if valid, 1 if not. With `--quiet`
//! only errors are printed (by the caller, on stderr) and the exit status tells.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::cli::{Cli, InterfacesSource, Settings, absolute_from};
use crate::load::{Loaded, load};
use crate::{Error, Exit};

/// Runs `--check`.
///
/// # Errors
/// The configuration cannot be read or is invalid.
pub fn run(cli: &Cli) -> Result<Exit, Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let shown = cli.config.display().to_string();
    let loaded = load(&shown, &absolute_from(&cwd, &cli.config), &cwd)?;
    if cli.quiet {
        return Ok(Exit::Success);
    }
    let settings = Settings::resolve(cli, &loaded.config, &cwd);
    let mut stderr = std::io::stderr().lock();
    for warning in &loaded.warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    for warning in &loaded.ots_warnings {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(render(&shown, &loaded, &settings).as_bytes());
    let _ = out.flush();
    Ok(Exit::Success)
}

/// The text `--check` prints: a comment header with the effective settings, then the
/// canonical configuration.
#[must_use]
pub fn render(shown: &str, loaded: &Loaded, settings: &Settings) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# {shown}: configuration is valid");
    let source = match settings.interfaces_source {
        InterfacesSource::CommandLine => "from -i",
        InterfacesSource::Config => "from Interface",
        InterfacesSource::DefaultRoute => "the default route's interface",
        InterfacesSource::Fallback => "default",
    };
    let _ = writeln!(
        text,
        "# effective: interfaces {} ({source})",
        settings.interfaces.join(",")
    );
    let _ = writeln!(
        text,
        "# effective: log file {}, pid file {}, syslog {}",
        settings
            .log_file
            .as_deref()
            .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
        settings.pid_file.display(),
        if settings.use_syslog { "on" } else { "off" },
    );
    for ots in &loaded.ots {
        let active = ots.active.as_ref().map_or_else(
            || "none left (door disabled)".to_owned(),
            |seq| {
                seq.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
        let _ = writeln!(
            text,
            "# effective: door {}: active one-time sequence {active} (from {})",
            ots.name,
            Path::new(&ots.file.shown).display()
        );
    }
    let _ = writeln!(text, "{}", loaded.config);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::DEFAULT_PID_FILE;

    #[test]
    fn rendered_text_parses_back_to_the_same_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("k.conf");
        std::fs::write(
            &conf,
            "[options]\n  logfile = /var/log/k.log\n[openSSH]\n  sequence = 7000, 8000:UDP,9000\n  \
             tcpflags = syn, !ack\n  command = /sbin/iptables -A INPUT -s %IP% -j ACCEPT\n",
        )
        .unwrap();
        let loaded = load("k.conf", &conf, dir.path()).unwrap();
        let settings = Settings {
            interfaces: vec!["lo".into()],
            interfaces_source: InterfacesSource::CommandLine,
            log_file: None,
            pid_file: DEFAULT_PID_FILE.into(),
            use_syslog: false,
        };
        let text = render("k.conf", &loaded, &settings);
        assert!(
            text.starts_with("# k.conf: configuration is valid\n"),
            "{text}"
        );
        assert!(
            text.contains("# effective: interfaces lo (from -i)"),
            "{text}"
        );
        let reparsed = knock_core::Config::parse(&text).unwrap().config;
        assert_eq!(reparsed, loaded.config);
    }
}
