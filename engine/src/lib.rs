//! strata's engine: runs CNB buildpacks under their contract inside a bubblewrap sandbox and
//! collects what they leave behind.
//!
//! The engine knows nothing about manifests or registries: it hands the exporter directories
//! (layers, the app) and parsed CNB metadata.

pub mod appdir;
pub mod build;
pub mod cutoff;
pub mod detect;
pub mod env;
pub mod execute;
pub mod executor;
pub mod hashing;
pub mod layer_task;
pub mod layers;
pub mod osrelease;
pub mod platform;
pub mod remote;
pub mod restore;
pub mod sandbox;
pub mod sbomshape;
pub mod scratch;
pub mod store;
pub mod unmet;
pub mod untrusted;
pub mod workspace;
