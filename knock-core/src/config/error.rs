//! Positioned configuration errors and warnings.
//!
//! PLACEHOLDER shapes: the parser work fills in the kinds, hints and display.

use core::fmt;

/// A configuration error: where it is (file, line, column) and what is wrong.
///
/// Displays as `knockd.conf:7:14: message`, followed by the offending line and a caret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    file: Option<String>,
    line: usize,
    column: usize,
    line_text: String,
    kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error at `line`/`column` (1-based) of a file whose text at that line is `line_text`.
    #[must_use]
    pub fn new(
        line: usize,
        column: usize,
        line_text: impl Into<String>,
        kind: ConfigErrorKind,
    ) -> Self {
        Self {
            file: None,
            line,
            column,
            line_text: line_text.into(),
            kind,
        }
    }

    /// The same error, naming `file` (the path as the user gave it) in its display.
    #[must_use]
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// The file name given with [`with_file`](Self::with_file), if any.
    #[must_use]
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line number.
    #[must_use]
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column (in characters).
    #[must_use]
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong.
    #[must_use]
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("knockd.conf");
        write!(f, "{file}:{}:{}: {}", self.line, self.column, self.kind)?;
        if !self.line_text.is_empty() {
            write!(
                f,
                "\n    {}\n    {:>width$}",
                self.line_text,
                "^",
                width = self.column
            )?;
        }
        Ok(())
    }
}

/// What is wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A line that is not a section header, a directive, or a comment.
    #[error("syntax error")]
    Syntax,
}

/// Accepted but suspicious input, returned beside the parsed config (never printed by the
/// library).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The 1-based line the warning is about (0 when it concerns the file as a whole).
    pub line: usize,
    /// The door concerned, if any.
    pub door: Option<String>,
    /// What is suspicious.
    pub kind: WarningKind,
}

/// What is suspicious about an accepted configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A door with a single step fires on every matching packet.
    SingleStepDoor,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {:?}", self.line, self.kind)
    }
}
