//! Run images loaded from layouts other tools wrote (umoci, with gzip layers) and from
//! layouts strata wrote (uncompressed layers), and an app image exported onto a run image that
//! lives in another layout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{USER, run, tool};
use oci_spec::image::{
    ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};
use strata_exporter::archive::{Compression, DEFAULT_MTIME, LayerBuilder};
use strata_exporter::base::builtin_run_image;
use strata_exporter::layout::Staging;
use strata_exporter::reference::ImageRef;
use strata_exporter::runimage::{RunImage, RunImageError};

fn sha256_of_tar(blob: &Path, media_type: &MediaType) -> String {
    let bytes = fs::read(blob).unwrap();
    let tar = if *media_type == MediaType::ImageLayerGzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    };
    format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
}

/// `umoci init`, `umoci new`, a layer from unpack/repack, another from `umoci insert`, and
/// the CNB user ids in the config.
fn umoci_run_image(dir: &Path) -> ImageRef {
    let layout = dir.join("umoci-layout");
    let image = format!("{}:base", layout.display());
    run(tool("umoci").args(["init", "--layout"]).arg(&layout));
    run(tool("umoci").args(["new", "--image", &image]));
    let bundle = dir.join("bundle");
    run(tool("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    fs::write(bundle.join("rootfs/etc/os-release"), "ID=umoci-test\n").unwrap();
    run(tool("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    let extra = dir.join("motd");
    fs::write(&extra, "hello from umoci insert\n").unwrap();
    run(tool("umoci")
        .args(["insert", "--image", &image])
        .arg(&extra)
        .arg("/etc/motd"));
    run(tool("umoci").args([
        "config",
        "--image",
        &image,
        "--config.env",
        "CNB_USER_ID=1002",
        "--config.env",
        "CNB_GROUP_ID=1003",
    ]));
    ImageRef::parse(&format!("oci:{image}")).unwrap()
}

#[test]
fn loads_a_layout_written_by_umoci_with_gzip_layers() {
    let dir = tempfile::tempdir().unwrap();
    let reference = umoci_run_image(dir.path());
    let image = RunImage::load(&reference).unwrap();
    assert_eq!(image.layers.len(), 2);
    for layer in &image.layers {
        assert_eq!(layer.descriptor.media_type(), &MediaType::ImageLayerGzip);
        let blob = layer.blob.as_ref().unwrap();
        assert_eq!(fs::metadata(blob).unwrap().len(), layer.descriptor.size());
        assert_eq!(
            sha256_of_tar(blob, layer.descriptor.media_type()),
            layer.diff_id
        );
    }
    assert_eq!(image.cnb_user().unwrap().uid, 1002);
    assert_eq!(image.cnb_user().unwrap().gid, 1003);
    assert_eq!(image.os().to_string(), "linux");
    assert!(image.manifest_digest.starts_with("sha256:"));
    assert_eq!(image.reference, reference.to_string());

    let missing = ImageRef::OciLayout {
        dir: dir.path().join("umoci-layout"),
        tag: "latest".to_owned(),
    };
    let err = RunImage::load(&missing).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("umoci-layout") && chain.contains("`latest`"),
        "{chain}"
    );
    assert!(chain.contains("tags present: base"), "{chain}");
    assert!(matches!(err, RunImageError::Layout { .. }));
}

#[test]
fn loads_an_uncompressed_layout_written_by_strata() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("layout");
    let staging = Staging::new(&layout_dir).unwrap();
    let base =
        builtin_run_image(staging.blob_dir(), USER, DEFAULT_MTIME, Compression::None).unwrap();
    let config = staging
        .put_json(&base.config, MediaType::ImageConfig)
        .unwrap();
    assert_eq!(
        &config,
        base.manifest.config(),
        "the base describes its config as put_json does"
    );
    let manifest = staging
        .put_json(&base.manifest, MediaType::ImageManifest)
        .unwrap();
    assert_eq!(manifest.digest().to_string(), base.manifest_digest);
    staging.commit(&[("base".to_owned(), manifest)]).unwrap();

    let reference = ImageRef::parse(&format!("oci:{}:base", layout_dir.display())).unwrap();
    let image = RunImage::load(&reference).unwrap();
    assert_eq!(image.manifest_digest, base.manifest_digest);
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(layer.descriptor.media_type(), &MediaType::ImageLayer);
    assert_eq!(layer.diff_id, layer.descriptor.digest().to_string());
    assert_eq!(
        sha256_of_tar(layer.blob.as_ref().unwrap(), &MediaType::ImageLayer),
        layer.diff_id
    );
    assert_eq!(image.cnb_user().unwrap(), USER);

    // And a Go implementation agrees it is an image.
    let bundle = dir.path().join("bundle");
    run(tool("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:base", layout_dir.display()))
        .arg(&bundle));
    let workspace = fs::metadata(bundle.join("rootfs/workspace")).unwrap();
    assert_eq!((workspace.uid(), workspace.gid()), (USER.uid, USER.gid));
}

#[test]
fn exports_onto_a_umoci_run_image_from_another_layout() {
    let dir = tempfile::tempdir().unwrap();
    let base = RunImage::load(&umoci_run_image(dir.path())).unwrap();
    let owner = base.cnb_user().unwrap();

    let out = dir.path().join("out");
    let staging = Staging::new(&out).unwrap();
    for layer in &base.layers {
        staging
            .put_blob_file(layer.blob.as_ref().unwrap(), &layer.descriptor)
            .unwrap();
    }
    let mut app = LayerBuilder::new(owner, DEFAULT_MTIME);
    app.add_bytes("workspace/hello.txt", "hello\n", 0o644)
        .unwrap();
    let app = app.finish(Compression::Gzip, staging.blob_dir()).unwrap();
    let mut diff_ids: Vec<String> = base.layers.iter().map(|l| l.diff_id.clone()).collect();
    diff_ids.push(app.diff_id.clone());
    let mut layers: Vec<_> = base.layers.iter().map(|l| l.descriptor.clone()).collect();
    layers.push(app.descriptor().unwrap());
    let config = ImageConfigurationBuilder::default()
        .os(base.os().clone())
        .architecture(base.arch().clone())
        .config(
            ConfigBuilder::default()
                .env(vec!["CNB_USER_ID=1002".to_owned()])
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
    let manifest = staging
        .put_json(&manifest, MediaType::ImageManifest)
        .unwrap();
    staging.commit(&[("app".to_owned(), manifest)]).unwrap();

    let bundle = dir.path().join("app-bundle");
    run(tool("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:app", out.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/os-release")).unwrap(),
        "ID=umoci-test\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "hello from umoci insert\n"
    );
    let hello = fs::metadata(rootfs.join("workspace/hello.txt")).unwrap();
    assert_eq!((hello.uid(), hello.gid()), (1002, 1003));
    // The run image blobs were linked, not rewritten: same inode on one file system.
    for layer in &base.layers {
        let original = fs::metadata(layer.blob.as_ref().unwrap()).unwrap();
        let hex = layer.descriptor.as_digest_sha256().unwrap();
        let exported = fs::metadata(out.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(original.ino(), exported.ino());
    }
}
