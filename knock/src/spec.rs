//! Command-line knock specifications: `7000`, `8000:udp`, `9000:TCP`.

use core::fmt;
use core::str::FromStr;

use knock_core::{Knock, Protocol};

/// One `PORT[:PROTO]` argument, before the default protocol (`-u`) is applied.
///
/// Parsing is strict where knock 0.8 was silently wrong: the protocol is matched without
/// regard to case (`:UDP` is UDP, not TCP), unknown protocols are errors, and the port must
/// be a number from 1 to 65535 (0.8 wrapped `70000` to 4464 and sent port 0 as is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// The destination port, 1–65535.
    pub port: u16,
    /// The protocol named after the colon, if any.
    pub protocol: Option<Protocol>,
}

impl PortSpec {
    /// The knock this specification means when ports without a suffix use `default`.
    ///
    /// An explicit suffix always wins, so `knock -u host 7000:tcp 8000` sends TCP to 7000 and
    /// UDP to 8000.
    #[must_use]
    pub fn resolve(self, default: Protocol) -> Knock {
        Knock {
            port: self.port,
            protocol: self.protocol.unwrap_or(default),
        }
    }
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (port_text, protocol_text) = match text.split_once(':') {
            Some((port, protocol)) => (port, Some(protocol)),
            None => (text, None),
        };
        let port = parse_port(port_text)?;
        let protocol = protocol_text.map(parse_protocol).transpose()?;
        Ok(Self { port, protocol })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            Some(protocol) => write!(f, "{}:{protocol}", self.port),
            None => write!(f, "{}", self.port),
        }
    }
}

fn parse_port(text: &str) -> Result<u16, PortSpecError> {
    if text.is_empty() {
        return Err(PortSpecError::MissingPort);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortSpecError::NotANumber(text.to_owned()));
    }
    // All digits: the only way `parse` fails is overflow, which is "too large" as well.
    let value = text.parse::<u32>().unwrap_or(u32::MAX);
    match u16::try_from(value) {
        Ok(0) => Err(PortSpecError::Zero),
        Ok(port) => Ok(port),
        Err(_) => Err(PortSpecError::OutOfRange(text.to_owned())),
    }
}

/// Parses a protocol name, `tcp` or `udp` in any case.
///
/// # Errors
/// [`PortSpecError::MissingProtocol`] for an empty name,
/// [`PortSpecError::UnknownProtocol`] for anything else.
pub fn parse_protocol(text: &str) -> Result<Protocol, PortSpecError> {
    if text.eq_ignore_ascii_case("tcp") {
        Ok(Protocol::Tcp)
    } else if text.eq_ignore_ascii_case("udp") {
        Ok(Protocol::Udp)
    } else if text.is_empty() {
        Err(PortSpecError::MissingProtocol)
    } else {
        Err(PortSpecError::UnknownProtocol(text.to_owned()))
    }
}

/// Why a `PORT[:PROTO]` argument was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortSpecError {
    /// Nothing before the colon (`:udp`) or an empty argument.
    #[error("missing port number")]
    MissingPort,
    /// The port is not made of digits only. knock 0.8 looked service names up; this client
    /// does not, so a name is an error with a hint rather than a surprise.
    #[error(
        "port '{0}' is not a number (service names are not looked up: \
         give the port number, e.g. `getent services {0}` shows it)"
    )]
    NotANumber(String),
    /// Port 0 cannot be knocked on.
    #[error("port 0 is not a valid port (use 1-65535)")]
    Zero,
    /// A number above 65535 (knock 0.8 silently wrapped it).
    #[error("port {0} is out of range (use 1-65535)")]
    OutOfRange(String),
    /// A colon with nothing after it.
    #[error("missing protocol after ':' (use tcp or udp)")]
    MissingProtocol,
    /// A suffix other than `tcp` or `udp` (knock 0.8 silently used TCP).
    #[error("unknown protocol '{0}' (use tcp or udp)")]
    UnknownProtocol(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<PortSpec, PortSpecError> {
        text.parse()
    }

    #[test]
    fn plain_port_has_no_protocol() {
        assert_eq!(
            spec("7000"),
            Ok(PortSpec {
                port: 7000,
                protocol: None
            })
        );
        assert_eq!(spec("1").map(|s| s.port), Ok(1));
        assert_eq!(spec("65535").map(|s| s.port), Ok(65535));
        assert_eq!(spec("0080").map(|s| s.port), Ok(80));
    }

    #[test]
    fn protocol_suffix_in_any_case() {
        for (text, protocol) in [
            ("9000:udp", Protocol::Udp),
            ("9000:UDP", Protocol::Udp),
            ("9000:Udp", Protocol::Udp),
            ("9000:tcp", Protocol::Tcp),
            ("9000:TCP", Protocol::Tcp),
        ] {
            assert_eq!(spec(text).unwrap().protocol, Some(protocol), "{text}");
        }
    }

    #[test]
    fn explicit_protocol_beats_default() {
        let tcp = spec("7000:tcp").unwrap();
        assert_eq!(tcp.resolve(Protocol::Udp), Knock::tcp(7000));
        let plain = spec("7000").unwrap();
        assert_eq!(plain.resolve(Protocol::Udp), Knock::udp(7000));
        assert_eq!(plain.resolve(Protocol::Tcp), Knock::tcp(7000));
    }

    #[test]
    fn every_error() {
        assert_eq!(spec(""), Err(PortSpecError::MissingPort));
        assert_eq!(spec(":udp"), Err(PortSpecError::MissingPort));
        assert_eq!(spec("0"), Err(PortSpecError::Zero));
        assert_eq!(spec("0:udp"), Err(PortSpecError::Zero));
        assert_eq!(
            spec("65536"),
            Err(PortSpecError::OutOfRange("65536".into()))
        );
        assert_eq!(
            spec("70000"),
            Err(PortSpecError::OutOfRange("70000".into()))
        );
        assert_eq!(
            spec("99999999999999999999"),
            Err(PortSpecError::OutOfRange("99999999999999999999".into()))
        );
        assert_eq!(spec("ssh"), Err(PortSpecError::NotANumber("ssh".into())));
        assert_eq!(spec("-5"), Err(PortSpecError::NotANumber("-5".into())));
        assert_eq!(spec("+5"), Err(PortSpecError::NotANumber("+5".into())));
        assert_eq!(spec(" 5"), Err(PortSpecError::NotANumber(" 5".into())));
        assert_eq!(spec("12ab"), Err(PortSpecError::NotANumber("12ab".into())));
        assert_eq!(spec("7000:"), Err(PortSpecError::MissingProtocol));
        assert_eq!(
            spec("7000:xyz"),
            Err(PortSpecError::UnknownProtocol("xyz".into()))
        );
        assert_eq!(
            spec("7000:udp:tcp"),
            Err(PortSpecError::UnknownProtocol("udp:tcp".into()))
        );
    }

    #[test]
    fn errors_explain_themselves() {
        let name = spec("ssh").unwrap_err().to_string();
        assert!(name.contains("not a number"), "{name}");
        assert!(name.contains("getent services ssh"), "{name}");
        assert!(spec("70000").unwrap_err().to_string().contains("1-65535"));
        assert!(
            spec("1:sctp")
                .unwrap_err()
                .to_string()
                .contains("unknown protocol 'sctp'")
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["7000", "8000:udp", "9000:tcp"] {
            assert_eq!(spec(text).unwrap().to_string(), text);
        }
    }
}
