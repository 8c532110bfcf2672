//! The CNB launcher every app image carries at `/cnb/lifecycle/launcher`.
//!
//! A placeholder until the launcher binary is embedded: empty bytes.

/// The launcher's static binary.
pub const BINARY: &[u8] = &[];

/// The launcher's version, recorded in `io.buildpacks.build.metadata`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
