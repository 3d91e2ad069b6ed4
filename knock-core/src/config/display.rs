//! Canonical knockd.conf text for a [`Config`].
//!
//! The output parses back to an equal `Config` for every configuration the text format can
//! express. It cannot express (and these are never produced by the parser): a door with an
//! empty name, named exactly `options`, or with a newline in its name; a door with neither a
//! sequence nor a one-time sequences file nor SPA settings; an SPA door with inline keys
//! (they display as `<secret>`: secrets are never printed) or with a sequence; a sequence longer than [`MAX_SEQUENCE_LEN`] or
//! containing port 0; values with leading or trailing blanks or line breaks; empty
//! interface names or names containing `,`; `ECE`/`CWR` in a [`FlagRule`], or a flag both
//! required and forbidden.
//!
//!
//! A `TOTP_Secret` is never displayed: the canonical text has `totp_secret = <hidden>` in its
//! place (which the parser refuses, with a hint). [`DisplayWithSecrets`] writes the secrets
//! (BASE32), for the rare caller that must write a complete file.
//!
//! [`MAX_SEQUENCE_LEN`]: super::MAX_SEQUENCE_LEN

use core::fmt;

use super::parse::SECRET_PLACEHOLDER;
use super::{Config, DEFAULT_CMD_TIMEOUT, Door, FlagRule, Knock, Options, TotpConfig, TotpSecret};
use crate::packet::TcpFlags;
use crate::time::Duration;

impl fmt::Display for Knock {
    /// `7000:tcp`, `8000:udp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.port, self.protocol)
    }
}

/// A sequence as knockd.conf writes it: `7000:tcp,8000:udp`.
#[derive(Clone, Copy, Debug)]
pub struct DisplaySequence<'a>(pub &'a [Knock]);

impl fmt::Display for DisplaySequence<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, knock) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{knock}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FlagRule {
    /// `syn,!ack` (knockd's flag order; empty for [`FlagRule::ANY`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (flag, name) in TcpFlags::NAMED {
            let prefix = if self.must_set.contains(flag) {
                ""
            } else if self.must_clear.contains(flag) {
                "!"
            } else {
                continue;
            };
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{prefix}{name}")?;
        }
        Ok(())
    }
}

/// A duration as knockd.conf writes it: whole seconds as a bare number (`25`), anything else
/// as seconds plus the sub-second part in the largest exact unit (`1s 500ms`, `250us`).
#[derive(Clone, Copy, Debug)]
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            return write!(f, "{secs}");
        }
        if secs > 0 {
            write!(f, "{secs}s ")?;
        }
        if nanos.is_multiple_of(1_000_000) {
            write!(f, "{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            write!(f, "{}us", nanos / 1_000)
        } else {
            write!(f, "{nanos}ns")
        }
    }
}

/// `    key = value`, for values that never display empty (sequences, rules, durations, IPs).
fn key_value(f: &mut fmt::Formatter<'_>, key: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(f, "    {key} = {value}")
}

/// `    key = text`, or `    key =` for an empty text (no trailing blank).
fn key_text(f: &mut fmt::Formatter<'_>, key: &str, text: &str) -> fmt::Result {
    if text.is_empty() {
        writeln!(f, "    {key} =")
    } else {
        writeln!(f, "    {key} = {text}")
    }
}

impl Options {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Options {
    /// The `[options]` section (header included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[options]")?;
        if self.use_syslog {
            writeln!(f, "    UseSyslog")?;
        }
        if let Some(path) = &self.log_file {
            key_text(f, "LogFile", path)?;
        }
        if let Some(path) = &self.pid_file {
            key_text(f, "PidFile", path)?;
        }
        if !self.interfaces.is_empty() {
            key_text(f, "Interface", &self.interfaces.join(","))?;
        }
        if self.allow_duplicates {
            writeln!(f, "    AllowDuplicates")?;
        }
        Ok(())
    }
}

impl fmt::Display for Door {
    /// The door's section (header included), one key per line, canonical key names; a
    /// `totp_secret` is shown as `<hidden>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_body(f, false)
    }
}

/// The TOTP keys of a door, every parameter written out (they are the effective values).
fn write_totp(totp: &TotpConfig, f: &mut fmt::Formatter<'_>, reveal: bool) -> fmt::Result {
    match &totp.secret {
        TotpSecret::Inline(secret) if reveal => key_value(f, "totp_secret", secret.to_base32())?,
        TotpSecret::Inline(_) => key_value(f, "totp_secret", SECRET_PLACEHOLDER)?,
        TotpSecret::File(path) => key_text(f, "totp_secret_file", path)?,
    }
    key_value(f, "totp_algorithm", totp.params.algorithm)?;
    key_value(f, "totp_digits", totp.params.digits)?;
    key_value(f, "totp_step", DisplayDuration(totp.params.step))?;
    key_value(f, "totp_window", totp.params.window)
}

impl Door {
    fn fmt_body(&self, f: &mut fmt::Formatter<'_>, reveal: bool) -> fmt::Result {
        writeln!(f, "[{}]", self.name)?;
        if !self.sequence.is_empty() {
            key_value(f, "sequence", DisplaySequence(&self.sequence))?;
        }
        if let Some(totp) = &self.totp {
            write_totp(totp, f, reveal)?;
        }
        if let Some(path) = &self.one_time_sequences {
            key_text(f, "one_time_sequences", path)?;
        }
        if self.spa.is_none() || self.seq_timeout != super::DEFAULT_SEQ_TIMEOUT {
            key_value(f, "seq_timeout", DisplayDuration(self.seq_timeout))?;
        }
        if !self.tcp_flags.is_any() {
            key_value(f, "tcpflags", self.tcp_flags)?;
        }
        let commands = [
            ("start_command", &self.start_command),
            ("start_command_6", &self.start_command_6),
        ];
        for (key, command) in commands {
            if let Some(command) = command {
                key_text(f, key, command)?;
            }
        }
        let has_stop = self.stop_command.is_some() || self.stop_command_6.is_some();
        let has_set = self.nft_set.is_some() || self.nft_set_6.is_some();
        if has_stop || has_set || self.cmd_timeout != DEFAULT_CMD_TIMEOUT {
            key_value(f, "cmd_timeout", DisplayDuration(self.cmd_timeout))?;
        }
        let stops = [
            ("stop_command", &self.stop_command),
            ("stop_command_6", &self.stop_command_6),
        ];
        for (key, command) in stops {
            if let Some(command) = command {
                key_text(f, key, command)?;
            }
        }
        if let Some(target) = self.target {
            key_value(f, "target", target)?;
        }
        for (key, set) in [("nft_set", &self.nft_set), ("nft_set_6", &self.nft_set_6)] {
            if let Some(set) = set {
                key_value(f, key, set)?;
            }
        }
        if let Some(spa) = &self.spa {
            super::spa::write_spa(f, spa)?;
        }
        if self.allow_duplicates {
            writeln!(f, "    AllowDuplicates")?;
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    /// Canonical knockd.conf text: `[options]` first (only when something is set), then
    /// every door in order, separated by blank lines. TOTP secrets are hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_all(f, false)
    }
}

/// A [`Config`] displayed with its `TOTP_Secret`s written out (BASE32): text that parses
/// back to the same configuration, secrets included. This reveals the secrets: write it
/// only where the configuration itself belongs.
///
/// ```
/// use knock_core::Config;
/// use knock_core::DisplayWithSecrets;
///
/// let text = "[d]\nsequence = 40000,50000\ntotp_secret = GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n";
/// let config = Config::parse(text)?.config;
/// assert!(config.to_string().contains("totp_secret = <hidden>"));
/// let full = DisplayWithSecrets(&config).to_string();
/// assert_eq!(Config::parse(&full)?.config, config);
/// # Ok::<(), knock_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DisplayWithSecrets<'a>(pub &'a Config);

impl fmt::Display for DisplayWithSecrets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_all(f, true)
    }
}

impl Config {
    fn fmt_all(&self, f: &mut fmt::Formatter<'_>, reveal: bool) -> fmt::Result {
        let mut first = true;
        if !self.options.is_default() {
            write!(f, "{}", self.options)?;
            first = false;
        }
        for door in &self.doors {
            if !first {
                writeln!(f)?;
            }
            first = false;
            door.fmt_body(f, reveal)?;
            if self.options.allow_duplicates && !door.allow_duplicates {
                // The door opts out of the `[options]` default.
                key_value(f, "AllowDuplicates", "no")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Knock;

    #[test]
    fn durations() {
        let d = |d: Duration| DisplayDuration(d).to_string();
        assert_eq!(d(Duration::from_secs(25)), "25");
        assert_eq!(d(Duration::ZERO), "0");
        assert_eq!(d(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(d(Duration::from_micros(250)), "250us");
        assert_eq!(d(Duration::new(3, 7)), "3s 7ns");
    }

    #[test]
    fn canonical_text() {
        let mut config = Config::default();
        config.options.use_syslog = true;
        config.options.interfaces = vec!["eth0".into(), "eth1".into()];
        let mut door = Door::new("openSSH", vec![Knock::tcp(7000), Knock::udp(8000)]);
        door.tcp_flags = FlagRule {
            must_set: TcpFlags::SYN,
            must_clear: TcpFlags::ACK,
        };
        door.start_command = Some("/sbin/iptables -A INPUT -s %IP% -j ACCEPT".into());
        door.start_command_6 = Some(String::new());
        door.target = Some("fd99::2".parse().unwrap());
        config.doors.push(door);
        assert_eq!(
            config.to_string(),
            "[options]\n    UseSyslog\n    Interface = eth0,eth1\n\n[openSSH]\n    sequence = \
             7000:tcp,8000:udp\n    seq_timeout = 25\n    tcpflags = syn,!ack\n    \
             start_command = /sbin/iptables -A INPUT -s %IP% -j ACCEPT\n    start_command_6 \
             =\n    target = fd99::2\n"
        );
    }
}
