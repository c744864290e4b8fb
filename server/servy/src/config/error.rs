//! A refused configuration, as one line that names the file and line or the variable.

use std::fmt;

/// Why a configuration was refused, as one line: the file and line, or the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(super) String);

impl fmt::Display for ConfigError {
    /// Always one line: a reason quoted from a parser may carry newlines of its own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self.0.lines().map(str::trim).filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        lines.try_for_each(|l| write!(f, " {l}"))
    }
}

impl std::error::Error for ConfigError {}

/// One line out of a toml error: `file: line N: message`.
pub(super) fn describe(file: &str, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let prefix = if file.is_empty() {
        String::new()
    } else {
        format!("{file}: ")
    };
    match e.span() {
        Some(span) => {
            let line = text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            format!("{prefix}line {line}: {message}")
        }
        None => format!("{prefix}{message}"),
    }
}
