//! The files a buildpack leaves in its layers directory.
