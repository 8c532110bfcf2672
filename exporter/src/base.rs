//! The built-in run image, for builds that name none.
//!
//! A CNB app image needs very little from its base: a user database that knows the CNB user
//! (so `USER uid:gid` resolves and `$HOME` exists), a world-writable `/tmp`, and `/workspace`
//! owned by that user. Apps whose launch layers bring their own runtime (a static binary, a
//! buildpack-provided interpreter) run on exactly that. So strata can export without pulling
//! anything, and the result is byte-reproducible: the base is one layer written by
//! [`LayerBuilder`] with the build's mtime, and a config with no timestamps of its own.
//!
//! The layer holds, owned by root unless noted: `etc/passwd` and `etc/group` (root and `cnb`
//! with the CNB user's ids, home `/home/cnb`, shell `/sbin/nologin`: there is no shell in the
//! image), `root` (0700), `tmp` (01777), `home/cnb` and `workspace` (0755, owned by the CNB
//! user). The config sets os `linux`, this machine's architecture, a conventional `PATH`,
//! `CNB_USER_ID`/`CNB_GROUP_ID`, `User` as `uid:gid` and the `io.buildpacks.base.id` label.
//!
//! Only the layer is written to disk (into the staging blob directory, so the exporter includes
//! it like any other blob). The base's own config and manifest are never part of an app image,
//! so they are kept in memory; their digests are those of their canonical JSON.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder, Sha256Digest,
};
use sha2::{Digest as _, Sha256};

use crate::archive::{ArchiveError, Compression, LayerBuilder, Owner, format_timestamp};
use crate::layout::{canonical_json, host_arch};
use crate::runimage::{RunImage, RunImageLayer};

/// The reference recorded for the built-in base.
pub const BUILTIN_BASE_REFERENCE: &str = "strata/builtin-base";

/// The label run images carry to identify their flavour (Platform API 0.12 target data).
pub const BASE_ID_LABEL: &str = "io.buildpacks.base.id";

/// `PATH` of the built-in base.
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors building the built-in base.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// Writing its layer failed.
    #[error("cannot write the layer of the built-in base image")]
    Layer(#[from] ArchiveError),
    /// Building or serialising its config or manifest failed.
    #[error("cannot build the {what} of the built-in base image: {message}")]
    Metadata {
        /// The config or the manifest.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Builds the built-in base for a CNB user `owner`: writes its single layer into
/// `staging_blob_dir` (see [`crate::layout::Staging::blob_dir`]) and returns it as a
/// [`RunImage`] whose layer `blob` points there.
///
/// # Errors
/// [`BaseError::Layer`] when the layer cannot be written.
pub fn builtin_run_image(
    staging_blob_dir: &Path,
    owner: Owner,
    mtime: u64,
    compression: Compression,
) -> Result<RunImage, BaseError> {
    let mut layer = LayerBuilder::new(Owner::ROOT, mtime);
    layer.add_bytes("etc/passwd", passwd(owner), 0o644)?;
    layer.add_bytes("etc/group", group(owner), 0o644)?;
    layer.add_dir("root", 0o700)?;
    layer.add_dir("tmp", 0o1777)?;
    layer.add_dir_owned("home/cnb", 0o755, owner)?;
    layer.add_dir_owned("workspace", 0o755, owner)?;
    let blob = layer.finish(compression, staging_blob_dir)?;
    let layer_descriptor = blob.descriptor()?;

    let config = base_config(owner, mtime, &blob.diff_id)?;
    let config_bytes = json(&config, "config")?;
    let config_descriptor = Descriptor::new(
        MediaType::ImageConfig,
        config_bytes.len() as u64,
        sha256_of(&config_bytes, "config")?,
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(vec![layer_descriptor.clone()])
        .build()
        .map_err(|e| metadata_err("manifest", &e))?;
    let manifest_bytes = json(&manifest, "manifest")?;
    let manifest_digest = sha256_of(&manifest_bytes, "manifest")?.to_string();

    Ok(RunImage {
        reference: BUILTIN_BASE_REFERENCE.to_owned(),
        manifest,
        manifest_digest,
        config,
        layers: vec![RunImageLayer {
            descriptor: layer_descriptor,
            diff_id: blob.diff_id,
            blob: Some(blob.path),
        }],
    })
}

fn passwd(owner: Owner) -> String {
    format!(
        "root:x:0:0:root:/root:/sbin/nologin\ncnb:x:{}:{}:CNB user:/home/cnb:/sbin/nologin\n",
        owner.uid, owner.gid
    )
}

fn group(owner: Owner) -> String {
    format!("root:x:0:\ncnb:x:{}:\n", owner.gid)
}

fn base_config(owner: Owner, mtime: u64, diff_id: &str) -> Result<ImageConfiguration, BaseError> {
    let err = |e: oci_spec::OciSpecError| metadata_err("config", &e);
    let created = format_timestamp(mtime);
    let labels = HashMap::from([(BASE_ID_LABEL.to_owned(), BUILTIN_BASE_REFERENCE.to_owned())]);
    let runtime = ConfigBuilder::default()
        .user(owner.to_string())
        .env(vec![
            format!("PATH={BASE_PATH}"),
            format!("CNB_USER_ID={}", owner.uid),
            format!("CNB_GROUP_ID={}", owner.gid),
        ])
        .labels(labels)
        .build()
        .map_err(err)?;
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by("strata built-in base")
        .build()
        .map_err(err)?;
    ImageConfigurationBuilder::default()
        .created(created)
        .os(Os::Linux)
        .architecture(host_arch())
        .config(runtime)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.to_owned()])
                .build()
                .map_err(err)?,
        )
        .history(vec![history])
        .build()
        .map_err(err)
}

fn metadata_err(what: &'static str, error: &dyn std::fmt::Display) -> BaseError {
    BaseError::Metadata {
        what,
        message: error.to_string(),
    }
}

fn json<T: serde::Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, BaseError> {
    canonical_json(value).map_err(|e| metadata_err(what, &e))
}

fn sha256_of(bytes: &[u8], what: &'static str) -> Result<oci_spec::image::Digest, BaseError> {
    let hex = hex::encode(Sha256::digest(bytes));
    hex.parse::<Sha256Digest>()
        .map(Into::into)
        .map_err(|e| metadata_err(what, &e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::archive::DEFAULT_MTIME;
    use std::io::Read;

    #[test]
    fn base_is_deterministic_and_names_the_cnb_user() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let owner = Owner::new(1001, 1002);
        let a = builtin_run_image(one.path(), owner, DEFAULT_MTIME, Compression::Gzip).unwrap();
        let b = builtin_run_image(two.path(), owner, DEFAULT_MTIME, Compression::Gzip).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(a.layers[0].diff_id, b.layers[0].diff_id);
        assert_eq!(a.layers[0].descriptor, b.layers[0].descriptor);
        assert_eq!(a.cnb_user().unwrap(), owner);
        assert_eq!(a.reference, BUILTIN_BASE_REFERENCE);
        assert_eq!(a.os(), &Os::Linux);
        assert_eq!(a.arch(), &host_arch());
        assert_eq!(a.env_var("PATH"), Some(BASE_PATH));
        let runtime = a.config.config().as_ref().unwrap();
        assert_eq!(runtime.user().as_deref(), Some("1001:1002"));
        assert_eq!(a.config.created().as_deref(), Some("1980-01-01T00:00:01Z"));
        assert_eq!(a.config.rootfs().diff_ids(), &[a.layers[0].diff_id.clone()]);
        let other = builtin_run_image(
            one.path(),
            Owner::new(1000, 1000),
            DEFAULT_MTIME,
            Compression::Gzip,
        )
        .unwrap();
        assert_ne!(other.layers[0].diff_id, a.layers[0].diff_id);
    }

    #[test]
    fn base_layer_contents_and_owners() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::new(1000, 1001);
        let image = builtin_run_image(dir.path(), owner, DEFAULT_MTIME, Compression::None).unwrap();
        let blob = std::fs::read(image.layers[0].blob.as_ref().unwrap()).unwrap();
        let mut archive = tar::Archive::new(blob.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let header = entry.header();
            let ids = (header.uid().unwrap(), header.gid().unwrap());
            let mode = header.mode().unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.push((path, mode, ids, text));
        }
        let get = |p: &str| seen.iter().find(|(path, ..)| path == p).unwrap().clone();
        assert_eq!(
            seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            [
                "etc",
                "etc/group",
                "etc/passwd",
                "home",
                "home/cnb",
                "root",
                "tmp",
                "workspace"
            ]
        );
        assert_eq!(get("tmp").1, 0o1777);
        assert_eq!(get("tmp").2, (0, 0));
        assert_eq!(get("workspace").2, (1000, 1001));
        assert_eq!(get("home/cnb").2, (1000, 1001));
        assert_eq!(get("home").2, (0, 0));
        assert_eq!(get("root").1, 0o700);
        assert!(
            get("etc/passwd")
                .3
                .contains("cnb:x:1000:1001:CNB user:/home/cnb:")
        );
        assert!(get("etc/group").3.contains("cnb:x:1001:"));
    }
}
