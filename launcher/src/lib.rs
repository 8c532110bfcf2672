//! The CNB launch contract shared by strata's engine and the launcher it puts in every image.
//!
//! The [`env`](mod@env) module holds the one implementation of the env-file rules: the engine
//! applies them on the host while building (reading buildpack files through its hardened reader),
//! and the `launcher` binary applies them inside the container when a process starts (reading with
//! plain reads). Both read through [`env::EnvFs`], so the rules cannot drift apart.

pub mod env;
pub mod process_type;
