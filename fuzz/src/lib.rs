//! What the fuzz targets share: rendering an error as the CLI does (a panic there is as much
//! a bug as one in the parser), and a scratch directory per fuzzing process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

/// Renders `err` with its source snippet, as `strata` prints errors.
pub fn render(err: &dyn Diagnostic) {
    let mut out = String::new();
    let _ = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, err);
}

/// Renders a plain error and its chain of causes.
pub fn render_chain(err: &dyn std::error::Error) {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&cause.to_string());
        source = cause.source();
    }
}

/// A directory private to this fuzzing process, under the system temp dir. It is kept, since
/// libFuzzer exits without running destructors: run.sh removes what its targets leave.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("strata-fuzz-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}"))
    })
}

/// `bytes` as UTF-8, as strata reads every text file (`read_to_string`), or `None`.
pub fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}
