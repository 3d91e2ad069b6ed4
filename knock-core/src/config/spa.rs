//! The SPA settings of a door (`SPA_*` directives): see [`crate::spa`].

use core::fmt;

use crate::spa::{
    AccessPort, DEFAULT_MAX_AGE_SECS, DEFAULT_PORT, DisplayAccess, SecretKey, SpaDoor, SpaKeys,
};
use crate::time::Duration;

/// Where an SPA key comes from: inline base64 in knockd.conf, or a file.
///
/// knock-core reads no files: for [`File`](Self::File) the daemon or the client reads the
/// path (refusing files readable by group or others) and decodes its base64 text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpaKeySource {
    /// `SPA_Key_Base64` / `SPA_HMAC_Key_Base64`: the decoded key (its `Debug` is redacted).
    Inline(SecretKey),
    /// `SPA_Key_File` / `SPA_HMAC_Key_File`: a path to a file holding the base64 key.
    File(String),
}

/// The SPA settings of a door. A door with these is opened by an SPA packet alone: it has
/// no `Sequence` and no `One_Time_Sequences`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpaConfig {
    /// The Rijndael (AES) key.
    pub key: SpaKeySource,
    /// The HMAC-SHA256 key.
    pub hmac_key: SpaKeySource,
    /// `SPA_Port`: the UDP port the packets come to (default [`DEFAULT_PORT`], 62201).
    pub port: u16,
    /// `SPA_Access`: the protocols/ports a client may ask for (at least one).
    pub access: Vec<AccessPort>,
    /// `SPA_Max_Age`: the largest accepted clock difference (default 120 s).
    pub max_age: Duration,
    /// `SPA_Require_Source`: the address in the message (other than `0.0.0.0`) must be the
    /// packet's source (default no).
    pub require_source: bool,
}

impl SpaConfig {
    /// Settings with the given keys and access list, every other setting at its default.
    #[must_use]
    pub fn new(key: SpaKeySource, hmac_key: SpaKeySource, access: Vec<AccessPort>) -> Self {
        Self {
            key,
            hmac_key,
            port: DEFAULT_PORT,
            access,
            max_age: Duration::from_secs(DEFAULT_MAX_AGE_SECS),
            require_source: false,
        }
    }
}

impl SpaConfig {
    /// The inline keys, when both keys are inline (`None` when a key comes from a file:
    /// the caller reads it, see [`SpaKeySource::File`]).
    ///
    /// # Errors
    /// [`KeyError`](crate::spa::KeyError) when the keys are unusable together.
    pub fn inline_keys(&self) -> Option<Result<SpaKeys, crate::spa::KeyError>> {
        match (&self.key, &self.hmac_key) {
            (SpaKeySource::Inline(key), SpaKeySource::Inline(hmac)) => {
                Some(SpaKeys::new(key.clone(), hmac.clone()))
            }
            _ => None,
        }
    }

    /// The verifier for this door, given its keys (inline or read from the key files).
    #[must_use]
    pub fn door(&self, keys: SpaKeys) -> SpaDoor {
        let mut door = SpaDoor::new(keys, self.access.clone());
        door.max_age = self.max_age.as_secs();
        door.require_source = self.require_source;
        door
    }
}

/// Writes the `SPA_*` lines of a door. Inline keys are written as `<secret>`: secrets are
/// never printed, so a configuration with inline keys does not read back from its display
/// (one with key files does).
pub(super) fn write_spa(f: &mut fmt::Formatter<'_>, spa: &SpaConfig) -> fmt::Result {
    for (inline, file, source) in [
        ("spa_key_base64", "spa_key_file", &spa.key),
        ("spa_hmac_key_base64", "spa_hmac_key_file", &spa.hmac_key),
    ] {
        match source {
            SpaKeySource::Inline(_) => writeln!(f, "    {inline} = <secret>")?,
            SpaKeySource::File(path) => writeln!(f, "    {file} = {path}")?,
        }
    }
    writeln!(f, "    spa_port = {}:udp", spa.port)?;
    writeln!(f, "    spa_access = {}", DisplayAccess(&spa.access))?;
    writeln!(
        f,
        "    spa_max_age = {}",
        super::DisplayDuration(spa.max_age)
    )?;
    writeln!(
        f,
        "    spa_require_source = {}",
        if spa.require_source { "yes" } else { "no" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigErrorKind};

    const KEY: &str = "p94UgXOyC8ZqKULnkrtgEsq4DqkbcSyhspnzUE4gQlY=";
    const HMAC: &str =
        "wMipfKH7Up65R3ciFGUHP2jSPFU0OjvpMsumO1r51Q9/8e5aLg2M9fvbWV+pqmirbzwYgBRQHzWq2KCs4jVYTw==";

    fn conf(extra: &str) -> String {
        format!(
            "[ssh]\nSPA_Key_Base64 = {KEY}\nSPA_HMAC_Key_Base64 = {HMAC}\nSPA_Access = tcp/22, udp/1194\n{extra}start_command = open %IP% %PROTO% %PORT%\n"
        )
    }

    #[test]
    fn parses_an_spa_door() {
        let parsed = Config::parse(&conf(
            "SPA_Port = 62202:UDP\nspa_max_age = 1m\nSPA_Require_Source = yes\n",
        ))
        .unwrap();
        let door = &parsed.config.doors[0];
        assert!(door.sequence.is_empty());
        let spa = door.spa.as_ref().unwrap();
        assert_eq!(spa.port, 62202);
        assert_eq!(spa.access, [AccessPort::tcp(22), AccessPort::udp(1194)]);
        assert_eq!(spa.max_age, Duration::from_secs(60));
        assert!(spa.require_source);
        assert_eq!(
            spa.key,
            SpaKeySource::Inline(SecretKey::from_base64(KEY).unwrap())
        );
        // Defaults.
        let spa = Config::parse(&conf("")).unwrap().config.doors[0]
            .spa
            .clone()
            .unwrap();
        assert_eq!(spa.port, 62201);
        assert_eq!(spa.max_age, Duration::from_secs(120));
        assert!(!spa.require_source);
        let door = spa.door(spa.inline_keys().unwrap().unwrap());
        assert_eq!(door.max_age, 120);
        assert_eq!(door.access, spa.access);
    }

    #[test]
    fn display_hides_secrets() {
        let config = Config::parse(&conf("")).unwrap().config;
        let text = config.to_string();
        assert!(text.contains("spa_key_base64 = <secret>"), "{text}");
        assert!(text.contains("spa_access = tcp/22,udp/1194"), "{text}");
        assert!(
            !text.contains(KEY) && !text.contains(HMAC) && !text.contains("p94U"),
            "{text}"
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("p94U") && !debug.contains("wMip"),
            "{debug}"
        );
        // With key files the display reads back to the same configuration.
        let files = "[ssh]\nspa_key_file = /etc/knockd/ssh.key\nspa_hmac_key_file = /etc/knockd/ssh.hmac\nspa_access = tcp/22\n";
        let config = Config::parse(files).unwrap().config;
        assert_eq!(Config::parse(&config.to_string()).unwrap().config, config);
    }

    #[test]
    fn positioned_errors() {
        let err = |text: &str| Config::parse(text).unwrap_err();
        let e = err("[d]\nspa_key_base64 = not*base64\n");
        assert_eq!(
            e.summary(),
            "knockd.conf:2:18: invalid spa_key_base64: the key is not valid base64 (the key is not shown)"
        );
        assert!(!e.to_string().contains("not*base64"), "{e}");
        assert!(e.to_string().contains("spa_key_base64 = <secret>"), "{e}");
        // A misspelt key directive is not quoted either.
        let e = err(&format!("[d]\nspa_key_bas64 = {KEY}\n"));
        assert!(!e.to_string().contains("p94U"), "{e}");
        let e = err(&conf("sequence = 1,2,3\n"));
        assert!(
            matches!(e.kind(), ConfigErrorKind::SpaWithSequence { .. }),
            "{e}"
        );
        assert_eq!(e.summary().split(':').nth(1), Some("1"));
        let e = err(&conf("one_time_sequences = /x\n"));
        assert!(
            matches!(e.kind(), ConfigErrorKind::SpaWithSequence { .. }),
            "{e}"
        );
        let e = err(&format!(
            "[d]\nspa_key_base64 = {KEY}\nspa_hmac_key_base64 = {HMAC}\n"
        ));
        assert!(e.summary().contains("needs spa_access"), "{e}");
        let e = err(&format!(
            "[d]\nspa_key_base64 = {KEY}\nspa_access = tcp/22\n"
        ));
        assert!(
            e.summary()
                .contains("needs spa_hmac_key_base64 or spa_hmac_key_file"),
            "{e}"
        );
        let e = err(&conf("spa_access = tcp/22,tcp/x\n"));
        assert_eq!(
            e.summary(),
            "knockd.conf:5:25: invalid spa_access: port \"x\" is invalid (expected 1-65535)"
        );
        let e = err(&conf("spa_port = 62201:tcp\n"));
        assert!(
            matches!(e.kind(), ConfigErrorKind::InvalidSpaPort { .. }),
            "{e}"
        );
        let e = err(&conf("spa_port = 0\n"));
        assert!(
            matches!(e.kind(), ConfigErrorKind::InvalidSpaPort { .. }),
            "{e}"
        );
        let e = err(&conf("spa_key_file = /k\n"));
        assert_eq!(
            e.summary(),
            "knockd.conf:5:1: door \"ssh\" sets both spa_key_base64 and spa_key_file; keep one"
        );
        let e = err(&conf("spa_require_source = maybe\n"));
        assert!(
            matches!(e.kind(), ConfigErrorKind::InvalidSpaRequireSource { .. }),
            "{e}"
        );
        let e = err(&format!("[d]\nspa_key_base64 = {HMAC}\n"));
        assert!(e.summary().contains("64 bytes; at most 32"), "{e}");
    }
}
