//! A TOML error that points at the offending line.

use std::path::{Path, PathBuf};

use miette::{NamedSource, SourceSpan};

/// An error in a TOML file, with the file's text and the span of the offending value, so that
/// the CLI can render the line.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{path}: {message}", path = path.display())]
pub struct TomlError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

impl TomlError {
    /// An error at `span` (a byte range of `text`), or at no particular place.
    pub fn new(
        path: &Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Self {
            path: path.to_owned(),
            src: NamedSource::new(path.display().to_string(), text.to_owned()),
            span: span.map(SourceSpan::from),
            label: "here".to_owned(),
            message,
            help: None,
        }
    }

    /// A parse error reported by the `toml` crate.
    pub fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        Self::new(path, text, err.span(), err.message().to_owned())
    }

    /// Adds a hint shown under the error.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The 1-based line of the span, if any (for tests and plain-text output).
    pub fn line(&self) -> Option<usize> {
        let span = self.span?;
        let text = self.src.inner();
        let newlines = text
            .char_indices()
            .take_while(|(i, _)| *i < span.offset())
            .filter(|(_, c)| *c == '\n')
            .count();
        Some(newlines + 1)
    }
}
