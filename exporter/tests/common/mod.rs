//! Helpers shared by the integration tests: running the external OCI tools that check what
//! strata writes, hashing layouts, and building a small image.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageManifestBuilder,
    MediaType, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};
use strata_exporter::archive::{Compression, DEFAULT_MTIME, LayerBuilder, Owner, format_timestamp};
use strata_exporter::base::builtin_run_image;
use strata_exporter::layout::Staging;

/// The Debian package that provides each tool the tests run.
const PACKAGES: &[(&str, &str)] = &[
    ("skopeo", "skopeo"),
    ("umoci", "umoci"),
    ("oci-image-tool", "oci-image-tool"),
];

/// A command for `tool`, failing the test with the package to install when it is missing.
pub fn tool(name: &str) -> Command {
    let package = PACKAGES
        .iter()
        .find(|(tool, _)| *tool == name)
        .map_or(name, |(_, package)| package);
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    assert!(
        found,
        "`{name}` is needed by this test and is not on PATH: install it with \
         `apt-get install {package}`"
    );
    Command::new(name)
}

/// Runs a command and returns its output, failing the test with its stderr if it fails.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file, directory and symlink under `root` with its mode, size and content hash (or
/// link target), to compare a tree before and after an operation.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_dir() {
                pending.push(path.clone());
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else {
                format!(
                    "file {}",
                    hex::encode(Sha256::digest(fs::read(&path).unwrap()))
                )
            };
            let key = path.strip_prefix(root).unwrap().to_path_buf();
            out.insert(
                key,
                format!("{what} mode {:o} mtime {}", meta.mode(), meta.mtime()),
            );
        }
    }
    out
}

/// The CNB user of the test images.
pub const USER: Owner = Owner::new(1000, 1001);

/// Writes a small app tree: an executable, a plain file, a symlink, two hardlinked files, a
/// path longer than 100 bytes and a symlink target longer than 100 bytes.
pub fn app_tree(root: &Path) -> String {
    let long_dir = format!("deep/{}/{}", "d".repeat(80), "e".repeat(90));
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join(&long_dir)).unwrap();
    fs::write(root.join("bin/run"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("data.txt"), "data\n").unwrap();
    fs::write(root.join(&long_dir).join("leaf.txt"), "leaf\n").unwrap();
    fs::write(root.join("linked-a"), "same inode\n").unwrap();
    fs::hard_link(root.join("linked-a"), root.join("linked-b")).unwrap();
    std::os::unix::fs::symlink("bin/run", root.join("run-link")).unwrap();
    std::os::unix::fs::symlink(format!("{long_dir}/leaf.txt"), root.join("long-link")).unwrap();
    long_dir
}

/// Stages an image made of the built-in base plus one layer holding `app` at
/// `layers/examples_runtime/runtime`, and returns its manifest descriptor.
pub fn stage_image(staging: &Staging, app: &Path, compression: Compression) -> Descriptor {
    let base = builtin_run_image(staging.blob_dir(), USER, DEFAULT_MTIME, compression).unwrap();
    let mut layer = LayerBuilder::new(USER, DEFAULT_MTIME);
    layer
        .add_dir_tree(app, "layers/examples_runtime/runtime")
        .unwrap();
    let blob = layer.finish(compression, staging.blob_dir()).unwrap();

    let mut diff_ids: Vec<String> = base.layers.iter().map(|l| l.diff_id.clone()).collect();
    diff_ids.push(blob.diff_id.clone());
    let mut layers: Vec<Descriptor> = base.layers.iter().map(|l| l.descriptor.clone()).collect();
    layers.push(blob.descriptor().unwrap());
    let base_runtime = base.config.config().clone().unwrap();
    let created = format_timestamp(DEFAULT_MTIME);
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .os(base.os().clone())
        .architecture(base.arch().clone())
        .config(
            ConfigBuilder::default()
                .env(base_runtime.env().clone().unwrap())
                .user(base_runtime.user().clone().unwrap())
                .working_dir("/workspace")
                .labels(base_runtime.labels().clone().unwrap())
                .build()
                .unwrap(),
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .unwrap(),
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created.clone())
                .created_by("base")
                .build()
                .unwrap(),
            HistoryBuilder::default()
                .created(created)
                .created_by("Layer: 'runtime', Created by buildpack: examples/runtime@1.0.0")
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    let config = staging.put_json(&config, MediaType::ImageConfig).unwrap();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .unwrap();
    staging
        .put_json(&manifest, MediaType::ImageManifest)
        .unwrap()
}
