//! strata's planner: reads and validates the CNB descriptors of a build (`buildpack.toml`,
//! `builder.toml`, `project.toml`) and resolves which buildpack group applies to an app,
//! exactly as CNB order resolution does.
//!
//! The planner spawns no process: running `bin/detect` sits behind the [`Detector`] trait, which
//! the engine implements with its sandbox and tests implement with a fake.

mod binding;
mod builder;
mod buildpack;
mod buildplan;
mod declarative;
mod detect;
mod detect_cache;
mod diagnostic;
pub mod exec_env;
mod extensions;
#[cfg(test)]
mod fixtures;
mod graph;
mod id;
pub mod key;
mod order;
mod project;
mod records;
mod registry;
pub mod safepath;
mod shard;
pub mod sources;
pub mod statcache;
mod target;
mod workspace;

pub use binding::{Binding, BindingError, bindings_digest};
pub use builder::{Builder, BuilderError};
pub use buildpack::{Buildpack, BuildpackDescriptor, BuildpackError, BuildpackInfo, Target};
pub use buildplan::{BuildPlan, BuildPlanAlternative, BuildpackPlan, PlanEntry, Provide, Require};
pub use declarative::{DeclaredDetect, DeclaredLayer, DeclaredProcess, LayerRef, StrataMetadata};
pub use detect::{
    DetectError, DetectOutcome, DetectResult, Detector, ErroredDetect, GroupMember, Skipped,
    resolve, resolve_for_exec_env,
};
pub use detect_cache::CachingDetector;
pub use diagnostic::TomlError;
pub use graph::{Plan, PlanError, Reason, ServiceInput, ServicePlan, Status, Task, TaskKind};
pub use id::{BuildpackId, IdError, valid_env_name};
pub use key::{CacheKey, KEY_SCHEMA, KeyHasher, TaskKey};
pub use order::{Group, GroupRef, Order};
pub use project::{ProjectBuildpack, ProjectDescriptor, ProjectError};
pub use records::{Lookup, Records};
pub use registry::{Registry, RegistryError, compare_versions};
pub use safepath::PathError;
pub use shard::{Shard, ShardError};
pub use sources::{HashStats, ScanOptions, SourceError, SourceFile, SourceTree, glob_set, scan};
pub use statcache::{StatCache, StatCacheStatus, stat_cache_path};
pub use target::{Mismatch, TargetEnv, UnbuildableTarget, oci_arch};
pub use workspace::{ServiceSpec, WORKSPACE_FILE, Workspace, WorkspaceError, is_image_reference};
