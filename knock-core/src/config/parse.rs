//! The knockd.conf parser. PLACEHOLDER: the parser work replaces this file.

use super::{Config, ConfigError, ConfigErrorKind, Warning};

/// A successfully parsed configuration and the warnings found on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parsed {
    /// The configuration.
    pub config: Config,
    /// Accepted but suspicious input, in file order.
    pub warnings: Vec<Warning>,
}

impl Config {
    /// Parses knockd.conf text.
    ///
    /// # Errors
    /// The first problem found, positioned by line and column.
    pub fn parse(text: &str) -> Result<Parsed, ConfigError> {
        let _ = text;
        Err(ConfigError::new(1, 1, "", ConfigErrorKind::Syntax))
    }
}
