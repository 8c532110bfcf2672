//! What an opaque buildpack finds in its layers directory when it runs again, as the
//! lifecycle's analyzer and restorer leave it: the restore state.
//!
//! A task key decides whether a buildpack runs at all; when it does (its key changed), it
//! starts from what its last run left for the same service, so that a one-line app change is
//! an incremental build, not a cold one. Per the Buildpack spec's layer-type table:
//! - a `cache = true` layer gets its contents and its `<layer>.toml` back;
//! - a `launch = true` layer without `cache` (and without `build`, which the buildpack
//!   recreates anyway) gets only its `<layer>.toml`; if the buildpack then sets `launch =
//!   true` again and leaves the directory absent, the previous layer is reused in the image;
//! - a restored layer's SBOM files come back with it;
//! - `store.toml` comes back;
//! - every other layer (`build` only, or no type) comes back not at all.
//!
//! A restored `<layer>.toml` holds the `[metadata]` only, never `[types]`: a buildpack opts in
//! to each layer again by writing its types, and a layer it does not opt in to is ignored.
//!
//! The state is kept per restore id: the service (its app's canonical path and its name, so
//! that two repositories with a service of the same name on one store never mix) and the
//! buildpack id (not its version: a new version still starts from what the old one cached,
//! as with the lifecycle, and checks the metadata itself).

use std::fs;
use std::io;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use strata_planner::{TaskKey, safepath};

use crate::layers::LayerTypes;

/// The version of the restore id's encoding: a change gives every service a cold run.
const ID_VERSION: &[u8] = b"strata-restore-id/1";

/// What a layer of a buildpack's last run brings back to its next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restores {
    /// Its contents and its `<layer>.toml`.
    Contents,
    /// Its `<layer>.toml` only.
    Metadata,
    /// Nothing.
    Nothing,
}

/// What a layer of `types` brings back: the Buildpack spec's table.
pub fn restores(types: LayerTypes) -> Restores {
    if types.cache {
        Restores::Contents
    } else if types.launch && !types.build {
        Restores::Metadata
    } else {
        Restores::Nothing
    }
}

/// The restore id of `buildpack` (its id) in the service `service` whose app is at
/// `source`, built for `exec_env`: the canonical path when it resolves, so that two spellings
/// of one app are one. The exec env is part of it because a build for another one should not
/// start from this one's layers (the spec's "Execution Environments").
pub fn restore_id(source: &Path, service: &str, exec_env: &str, buildpack: &str) -> TaskKey {
    let source = fs::canonicalize(source).unwrap_or_else(|_| source.to_owned());
    let mut hasher = Sha256::new();
    // Each part length-prefixed: no two triples encode alike.
    for part in [
        ID_VERSION,
        source.as_os_str().as_encoded_bytes(),
        service.as_bytes(),
        exec_env.as_bytes(),
        buildpack.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    TaskKey::from_bytes(hasher.finalize().into())
}

/// The version of the shared restore id's encoding.
const SHARED_ID_VERSION: &[u8] = b"strata-shared-restore-id/1";

/// The restore id under which a remote cache keeps the restore state of `buildpack` in the
/// workspace service `service` built for `exec_env`: without the app's path, which differs
/// from one CI runner to the next, so a fresh runner finds what any other left. A remote
/// cache serves one repository; within it a service's name is unique.
pub fn shared_restore_id(service: &str, exec_env: &str, buildpack: &str) -> TaskKey {
    let mut hasher = Sha256::new();
    for part in [
        SHARED_ID_VERSION,
        service.as_bytes(),
        exec_env.as_bytes(),
        buildpack.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    TaskKey::from_bytes(hasher.finalize().into())
}

/// Writes `<layers_dir>/<name>.toml` with `metadata` as its `[metadata]` and no `[types]`.
///
/// # Errors
/// `name` is no plain file name (`InvalidInput`), or the file cannot be written.
pub fn write_layer_toml(layers_dir: &Path, name: &str, metadata: &toml::Table) -> io::Result<()> {
    let name = safepath::name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    write_metadata(&layers_dir.join(format!("{name}.toml")), metadata)
}

/// Writes `<layers_dir>/store.toml` with `metadata` as its `[metadata]`.
///
/// # Errors
/// The file cannot be written.
pub fn write_store_toml(layers_dir: &Path, metadata: &toml::Table) -> io::Result<()> {
    write_metadata(&layers_dir.join("store.toml"), metadata)
}

/// Writes the new file `<layers_dir>/<name>` with `bytes` (a restored SBOM file).
///
/// # Errors
/// `name` is no plain file name (`InvalidInput`), the file exists, or it cannot be written.
pub fn write_new(layers_dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let name = safepath::name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    create_new(&layers_dir.join(name), bytes)
}

fn write_metadata(path: &Path, metadata: &toml::Table) -> io::Result<()> {
    let mut table = toml::Table::new();
    table.insert("metadata".into(), toml::Value::Table(metadata.clone()));
    let text = toml::to_string(&table).map_err(io::Error::other)?;
    create_new(path, text.as_bytes())
}

/// `create_new`: the layers directory is fresh, and nothing in it may be a link to follow.
fn create_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    io::Write::write_all(&mut file, bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn types(launch: bool, build: bool, cache: bool) -> LayerTypes {
        LayerTypes {
            launch,
            build,
            cache,
        }
    }

    #[test]
    fn the_spec_table_says_what_comes_back() {
        use Restores::{Contents, Metadata, Nothing};
        for ((build, cache, launch), want) in [
            ((true, true, true), Contents),
            ((true, true, false), Contents),
            ((true, false, true), Nothing),
            ((true, false, false), Nothing),
            ((false, true, true), Contents),
            ((false, true, false), Contents),
            ((false, false, true), Metadata),
            ((false, false, false), Nothing),
        ] {
            assert_eq!(
                restores(types(launch, build, cache)),
                want,
                "build {build}, cache {cache}, launch {launch}"
            );
        }
    }

    #[test]
    fn restore_ids_differ_by_repository_service_exec_env_and_buildpack() {
        let a = restore_id(
            Path::new("/repo-a/services/web"),
            "web",
            "production",
            "t/bp",
        );
        assert_eq!(
            a,
            restore_id(
                Path::new("/repo-a/services/web"),
                "web",
                "production",
                "t/bp"
            )
        );
        for other in [
            restore_id(
                Path::new("/repo-b/services/web"),
                "web",
                "production",
                "t/bp",
            ),
            restore_id(
                Path::new("/repo-a/services/web"),
                "api",
                "production",
                "t/bp",
            ),
            restore_id(
                Path::new("/repo-a/services/web"),
                "web",
                "production",
                "t/other",
            ),
            restore_id(Path::new("/repo-a/services/web"), "web", "test", "t/bp"),
            restore_id(
                Path::new("/repo-a/services/we"),
                "bweb",
                "production",
                "t/bp",
            ),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn a_restored_layer_toml_has_metadata_and_no_types() {
        let dir = tempfile::tempdir().unwrap();
        let metadata: toml::Table = toml::from_str("builds = 2\n[nested]\nv = \"x\"\n").unwrap();
        write_layer_toml(dir.path(), "cache", &metadata).unwrap();
        let text = fs::read_to_string(dir.path().join("cache.toml")).unwrap();
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(back["metadata"].as_table(), Some(&metadata));
        assert!(!back.contains_key("types"), "{text}");
        for bad in ["../x", "a/b", ".", ""] {
            assert!(
                write_layer_toml(dir.path(), bad, &metadata).is_err(),
                "{bad}"
            );
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("store.toml")).unwrap();
        assert!(write_store_toml(dir.path(), &metadata).is_err());
    }
}
