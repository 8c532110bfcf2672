//! The launcher that goes into every image at `/cnb/lifecycle/launcher`: the `launcher`
//! binary of the `strata-launcher` crate, built statically by this crate's build script and
//! embedded here, so an image's launcher layer depends only on the strata version.

/// The launcher executable, a static Linux binary.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/launcher"));

/// The launcher's version, for `io.buildpacks.build.metadata`'s `launcher.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The repository of the launcher's source, for `launcher.source.git.repository`; empty when
/// the package names none.
pub const SOURCE_REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

/// The commit of the launcher's source, for `launcher.source.git.commit`; strata records
/// none, so that the build metadata does not change with an unreleased checkout's commit.
pub const SOURCE_COMMIT: &str = "";
