//! `knockd --check`: validate the configuration, print it in canonical form (what knockd will
//! actually run, with the command-line overrides) and every warning.
//!
//! The canonical text goes to stdout (it parses back to the same configuration, except that
//! inline secrets are hidden: `TOTP_Secret` as `<hidden>`, SPA keys as `<secret>`); warnings
//! go to stderr as `warning: FILE:LINE: …`. As root, the nftables sets named by `Nft_Set` /
//! `Nft_Set_6` must also exist and fit (see [`crate::nft::NftSets::validate`]). Exit status 0
//! if valid, 1 if not. With `--quiet` only errors are printed (by the caller, on stderr) and
//! the exit status tells.
//!
//! Besides the configuration's own warnings it warns about this machine
//! ([`machine_warnings`]): a command whose program is not found or not executable, an
//! interface that does not exist now.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use knock_core::Config;

use crate::cli::{Cli, InterfacesSource, Settings, absolute_from};
use crate::load::{Loaded, load};
use crate::{Error, Exit};

/// Runs `--check`.
///
/// # Errors
/// The configuration cannot be read or is invalid.
pub(crate) fn run(cli: &Cli) -> Result<Exit, Error> {
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
    if let Some(warning) = settings.overlap_warning() {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    let path = std::env::var_os("PATH");
    for warning in machine_warnings(&shown, &loaded.config, &settings, path.as_deref()) {
        let _ = writeln!(stderr, "warning: {warning}");
    }
    check_nft_sets(&loaded, &mut stderr)?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(render(&shown, &loaded, &settings).as_bytes());
    let _ = out.flush();
    Ok(Exit::Success)
}

/// As root, checks the nftables sets the doors name (`Nft_Set`, `Nft_Set_6`) in the current
/// network namespace; otherwise says that they were not checked.
fn check_nft_sets(loaded: &Loaded, stderr: &mut impl std::io::Write) -> Result<(), Error> {
    let doors = &loaded.config.doors;
    if !doors
        .iter()
        .any(|door| door.nft_set.is_some() || door.nft_set_6.is_some())
    {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        let _ = writeln!(
            stderr,
            "note: not running as root: the nftables sets were not checked"
        );
        return Ok(());
    }
    let mut sets = crate::nft::NftSets::open().map_err(Error::NftOpen)?;
    sets.validate_doors(doors).map_err(Error::NftSet)?;
    Ok(())
}

/// The text `--check` prints: a comment header with the effective settings, then the
/// canonical configuration.
#[must_use]
pub(crate) fn render(shown: &str, loaded: &Loaded, settings: &Settings) -> String {
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
    for door in &loaded.totp {
        let params = door.totp.params();
        let ranges = door
            .totp
            .port_ranges()
            .iter()
            .map(|(protocol, low, high)| format!("{low}-{high}/{protocol}"))
            .collect::<Vec<_>>()
            .join(",");
        let source = door.secret_file.as_deref().map_or_else(
            || "totp_secret (hidden)".to_owned(),
            |file| format!("{file} (readable by its owner only: ok)"),
        );
        let _ = writeln!(
            text,
            "# effective: door {}: TOTP {}, {} digits, {} s steps, window {} ({} codes accepted \
             at a time), port ranges {ranges}, secret from {source}",
            door.name,
            params.algorithm,
            params.digits,
            params.step.as_secs(),
            params.window,
            2 * params.window + 1,
        );
    }
    let _ = writeln!(text, "{}", loaded.config);
    text
}

/// The `PATH` commands are looked up in when knockd has none (systemd's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shell builtins and keywords: a command starting with one has no program to look for.
const SHELL_WORDS: &[&str] = &[
    ":", ".", "[", "alias", "break", "case", "cd", "command", "continue", "echo", "eval", "exec",
    "exit", "export", "false", "for", "if", "kill", "printf", "pwd", "read", "readonly", "return",
    "set", "shift", "test", "trap", "true", "type", "umask", "unset", "until", "wait", "while",
    "{", "!",
];

/// Warnings about this machine rather than the file (`--check` only): a command whose
/// program (its first word, looked up in `path` like `/bin/sh` does) is not found or not
/// executable, and an interface that does not exist now (knockd would wait for it).
#[must_use]
pub(crate) fn machine_warnings(
    shown: &str,
    config: &Config,
    settings: &Settings,
    path: Option<&OsStr>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for door in &config.doors {
        let commands = [
            ("start_command", &door.start_command),
            ("start_command_6", &door.start_command_6),
            ("stop_command", &door.stop_command),
            ("stop_command_6", &door.stop_command_6),
        ];
        for (key, command) in commands {
            let Some(program) = command.as_deref().and_then(program_of) else {
                continue;
            };
            if let Err(problem) = find_program(program, path) {
                warnings.push(format!("{shown}: door \"{}\": {key}: {problem}", door.name));
            }
        }
    }
    for name in &settings.interfaces {
        if name != "any" && nix::net::if_::if_nametoindex(name.as_str()).is_err() {
            warnings.push(format!(
                "interface {name} does not exist now (knockd will wait for it to appear)"
            ));
        }
    }
    warnings
}

/// The program a shell command runs: its first word after `VAR=value` assignments; `None`
/// when that is a shell builtin or keyword or not a plain word (`$X`, quotes, `(`…).
fn program_of(command: &str) -> Option<&str> {
    let word = command
        .split_ascii_whitespace()
        .find(|word| !word.contains('=') || word.starts_with('='))?;
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@%,".contains(c));
    (plain && !SHELL_WORDS.contains(&word)).then_some(word)
}

/// Finds `program` as `/bin/sh` would: as a path if it has a `/`, else in each `PATH`
/// directory. The error says what is wrong.
fn find_program(program: &str, path: Option<&OsStr>) -> Result<PathBuf, String> {
    if program.contains('/') {
        let candidate = PathBuf::from(program);
        return match executable(&candidate) {
            Some(true) => Ok(candidate),
            Some(false) => Err(format!("{program} is not an executable file")),
            None => Err(format!("{program} not found")),
        };
    }
    let path = path.unwrap_or_else(|| OsStr::new(DEFAULT_PATH));
    let mut found_unusable = None;
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        match executable(&candidate) {
            Some(true) => return Ok(candidate),
            Some(false) => found_unusable = found_unusable.or(Some(candidate)),
            None => {}
        }
    }
    Err(match found_unusable {
        Some(file) => format!("{} is not an executable file", file.display()),
        None => format!(
            "program {program} not found in PATH ({})",
            path.to_string_lossy()
        ),
    })
}

/// `Some(true)`: an executable file; `Some(false)`: exists but is not one; `None`: absent.
fn executable(path: &Path) -> Option<bool> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
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
            overlapping_interfaces: Vec::new(),
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
        let reparsed = Config::parse(&text).unwrap().config;
        assert_eq!(reparsed, loaded.config);
    }

    fn settings() -> Settings {
        Settings {
            interfaces: vec!["lo".into()],
            interfaces_source: InterfacesSource::CommandLine,
            log_file: None,
            pid_file: DEFAULT_PID_FILE.into(),
            use_syslog: false,
            overlapping_interfaces: Vec::new(),
        }
    }

    #[test]
    fn totp_doors_show_effective_values_and_never_the_secret() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("k.conf");
        let key = dir.path().join("d.key");
        std::fs::write(&key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            &conf,
            format!(
                "[file]\n  sequence = 40000,50000:udp\n  totp_secret_file = {}\n  \
                 totp_digits = 8\n  totp_algorithm = SHA256\n  command = true\n\
                 [inline]\n  sequence = 1000,2000,3000\n  \
                 totp_secret = JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP\n",
                key.display()
            ),
        )
        .unwrap();
        let loaded = load("k.conf", &conf, dir.path()).unwrap();
        let text = render("k.conf", &loaded, &settings());
        assert!(
            text.contains(
                "# effective: door file: TOTP sha256, 8 digits, 30 s steps, window 1 (3 codes \
                 accepted at a time), port ranges 40000-49999/tcp,50000-59999/udp, secret from"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "# effective: door inline: TOTP sha1, 6 digits, 30 s steps, window 1 (3 codes \
                 accepted at a time), port ranges 1000-1099/tcp,2000-2099/tcp,3000-3099/tcp, \
                 secret from totp_secret (hidden)"
            ),
            "{text}"
        );
        assert!(text.contains("    totp_secret = <hidden>\n"), "{text}");
        assert!(!text.contains("GEZD") && !text.contains("JBSW"), "{text}");
        assert!(!text.to_uppercase().contains("JBSWY3DP"), "{text}");

        // A secret file others can read is an error, positioned on its directive.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load("k.conf", &conf, dir.path()).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "k.conf:3:22: totp secret file {}: accessible by group or others (mode 0644)",
                key.display()
            )),
            "{error}"
        );
        assert!(!error.contains("GEZD"), "{error}");
    }

    #[test]
    fn machine_warnings_name_missing_programs_and_interfaces() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("open.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[good]\nsequence = 1,5\ncommand = sh -c true\nstop_command = echo %IP% >/tmp/x\n\
             [env]\nsequence = 1,5\ncommand = LANG=C /bin/sh -c true\n\
             [missing]\nsequence = 1,5\ncommand = /sbin/iptablez -A INPUT\n\
             [inpath]\nsequence = 1,5\ncommand = no-such-knock-program %IP%\n\
             [plain]\nsequence = 1,5\ncommand = {}\n",
            script.display()
        );
        let config = Config::parse(&text).unwrap().config;
        let settings = Settings {
            interfaces: vec!["lo".into(), "any".into(), "knocknope0".into()],
            interfaces_source: InterfacesSource::CommandLine,
            log_file: None,
            pid_file: DEFAULT_PID_FILE.into(),
            use_syslog: false,
            overlapping_interfaces: Vec::new(),
        };
        let warnings = machine_warnings(
            "k.conf",
            &config,
            &settings,
            Some(OsStr::new("/usr/bin:/bin")),
        );
        assert_eq!(
            warnings,
            [
                "k.conf: door \"missing\": start_command: /sbin/iptablez not found".to_owned(),
                "k.conf: door \"inpath\": start_command: program no-such-knock-program not found \
                 in PATH (/usr/bin:/bin)"
                    .to_owned(),
                format!(
                    "k.conf: door \"plain\": start_command: {} is not an executable file",
                    script.display()
                ),
                "interface knocknope0 does not exist now (knockd will wait for it to appear)"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn the_program_is_the_first_plain_word() {
        assert_eq!(
            program_of("/sbin/iptables -A INPUT"),
            Some("/sbin/iptables")
        );
        assert_eq!(program_of("A=1 B=2 nft add"), Some("nft"));
        assert_eq!(program_of("echo %IP% >> /tmp/x"), None);
        assert_eq!(program_of("if true; then x; fi"), None);
        assert_eq!(program_of("\"$HOME/x\" y"), None);
        assert_eq!(program_of("   "), None);
    }
}
