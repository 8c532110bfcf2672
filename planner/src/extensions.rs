//! Image extensions (`extension.toml`, `[[extensions]]`, `[[order-extensions]]`) are refused.
//!
//! An image extension generates Dockerfiles that change the build or run image; strata does
//! not run them yet. Ignoring one silently would build an image without what the extension
//! was there to add, so every place one can be named is an error pointing at it.

use std::ops::Range;
use std::path::Path;

use crate::TomlError;

/// What the error adds under the message.
const HELP: &str = "strata does not run image extensions yet: remove them, or build with a \
                    platform that supports them (such as pack)";

/// The error for an image extension that `what` names at `span` of `text` in `path`.
pub(crate) fn refused(
    path: &Path,
    text: &str,
    span: Option<Range<usize>>,
    what: &str,
) -> Box<TomlError> {
    Box::new(
        TomlError::new(
            path,
            text,
            span,
            format!("{what}: image extensions are not supported"),
        )
        .with_help(HELP),
    )
}
