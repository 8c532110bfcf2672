//! Run images and app images for tests, made in memory the way export makes them, and
//! written to layouts where a test needs them on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifest, MediaType, Os, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};

use crate::archive::{DEFAULT_MTIME, format_timestamp};
use crate::baseconfig::{
    base_env, base_labels, config_on_base, env_list, image_manifest, label_map,
};
use crate::layout::{Staging, canonical_json};
use crate::metadata::LIFECYCLE_LABEL;
use crate::reference::ImageRef;
use crate::runimage::{RunImage, RunImageLayer};

/// `sha256:` of `text`.
pub(crate) fn digest(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The descriptor of `bytes` stored as a blob.
pub(crate) fn descriptor(bytes: &[u8], media_type: MediaType) -> Descriptor {
    super::descriptor_of(bytes, media_type).unwrap()
}

/// A run image to make: layers and config are functions of these fields alone.
#[derive(Debug, Clone)]
pub(crate) struct BaseSpec {
    seed: String,
    layers: usize,
    arch: String,
    variant: Option<String>,
    env: Vec<(String, String)>,
    labels: Vec<(String, String)>,
}

impl BaseSpec {
    /// One layer, linux/amd64, a `PATH`, the CNB user, busybox base labels.
    pub(crate) fn new(seed: &str) -> BaseSpec {
        BaseSpec {
            seed: seed.to_owned(),
            layers: 1,
            arch: "amd64".to_owned(),
            variant: None,
            env: vec![
                ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
                ("CNB_USER_ID".to_owned(), "1000".to_owned()),
                ("CNB_GROUP_ID".to_owned(), "1000".to_owned()),
            ],
            labels: vec![
                (
                    "io.buildpacks.base.id".to_owned(),
                    "examples.busybox".to_owned(),
                ),
                (
                    "io.buildpacks.base.distro.name".to_owned(),
                    "busybox".to_owned(),
                ),
                (
                    "io.buildpacks.stack.id".to_owned(),
                    "examples.stack".to_owned(),
                ),
            ],
        }
    }

    pub(crate) fn layers(mut self, n: usize) -> Self {
        self.layers = n;
        self
    }

    pub(crate) fn arch(mut self, arch: &str) -> Self {
        arch.clone_into(&mut self.arch);
        self
    }

    pub(crate) fn variant(mut self, variant: &str) -> Self {
        self.variant = Some(variant.to_owned());
        self
    }

    /// Sets `NAME=value`.
    pub(crate) fn env(mut self, kv: &str) -> Self {
        let (k, v) = kv.split_once('=').unwrap();
        self.env.retain(|(name, _)| name != k);
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub(crate) fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.retain(|(k, _)| k != name);
        self.labels.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Only `io.buildpacks.stack.id`, as older run images have.
    pub(crate) fn no_base_labels(mut self) -> Self {
        self.labels
            .retain(|(k, _)| !k.starts_with("io.buildpacks.base."));
        self
    }

    fn layer_bytes(&self, i: usize) -> Vec<u8> {
        format!("{} layer {i}", self.seed).into_bytes()
    }
}

/// The run image `spec` describes, in memory (no blob on disk).
pub(crate) fn run_image(spec: &BaseSpec) -> RunImage {
    let layers: Vec<RunImageLayer> = (0..spec.layers)
        .map(|i| RunImageLayer {
            descriptor: descriptor(&spec.layer_bytes(i), MediaType::ImageLayerGzip),
            diff_id: digest(&format!("{} diff {i}", spec.seed)),
            blob: None,
        })
        .collect();
    let created = format_timestamp(DEFAULT_MTIME);
    let mut history: Vec<_> = (0..spec.layers)
        .map(|i| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(format!("{} layer {i}", spec.seed))
                .build()
                .unwrap()
        })
        .collect();
    history.push(
        HistoryBuilder::default()
            .created(created.clone())
            .created_by(format!("{} config", spec.seed))
            .empty_layer(true)
            .build()
            .unwrap(),
    );
    let mut config = ImageConfigurationBuilder::default()
        .created(created)
        .os(Os::Linux)
        .architecture(spec.arch.as_str())
        .config(
            ConfigBuilder::default()
                .user("1000:1000")
                .env(
                    spec.env
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>(),
                )
                .labels(
                    spec.labels
                        .iter()
                        .cloned()
                        .collect::<std::collections::HashMap<_, _>>(),
                )
                .build()
                .unwrap(),
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
                .build()
                .unwrap(),
        )
        .history(history);
    if let Some(variant) = &spec.variant {
        config = config.variant(variant.clone());
    }
    let config = config.build().unwrap();
    let config_descriptor = descriptor(&canonical_json(&config).unwrap(), MediaType::ImageConfig);
    let manifest = image_manifest(
        config_descriptor,
        layers.iter().map(|l| l.descriptor.clone()).collect(),
    )
    .unwrap();
    RunImage {
        reference: format!("test:{}", spec.seed),
        manifest_digest: descriptor(
            &canonical_json(&manifest).unwrap(),
            MediaType::ImageManifest,
        )
        .digest()
        .to_string(),
        manifest,
        config,
        layers,
    }
}

/// The bytes of the app layers of an app made with `seed`.
fn app_layer_bytes(seed: &str) -> [Vec<u8>; 2] {
    [
        format!("{seed} runtime layer").into_bytes(),
        format!("{seed} app layer").into_bytes(),
    ]
}

/// An app built on `base` (recorded under `name`) as export builds it: manifest descriptor,
/// manifest and config. Its two layers depend on nothing but the seed `app`.
pub(crate) fn app_parts(
    base: &RunImage,
    name: &str,
) -> (Descriptor, ImageManifest, ImageConfiguration) {
    app_parts_seeded(base, name, "app")
}

/// [`app_parts`] with its own layers.
pub(crate) fn app_parts_seeded(
    base: &RunImage,
    name: &str,
    seed: &str,
) -> (Descriptor, ImageManifest, ImageConfiguration) {
    let layers: Vec<Descriptor> = app_layer_bytes(seed)
        .iter()
        .map(|b| descriptor(b, MediaType::ImageLayerGzip))
        .collect();
    let diff_ids = [
        digest(&format!("{seed} runtime diff")),
        digest(&format!("{seed} app diff")),
    ];

    let mut env = base_env(&base.config);
    let path = env.get("PATH").unwrap_or_default().to_owned();
    env.set(
        "PATH",
        format!("/layers/examples_runtime/runtime/bin:{path}"),
    );
    env.set("APP_MODE", "prod");
    let mut labels = base_labels(&base.config);
    labels.insert("org.example.bp".to_owned(), "from a buildpack".to_owned());
    let lifecycle = serde_json::json!({
        "app": [{ "sha": diff_ids[1] }],
        "buildpacks": [{
            "key": "examples/runtime",
            "version": "1.0.0",
            "layers": { "runtime": { "sha": diff_ids[0], "data": {}, "build": false, "launch": true, "cache": false } }
        }],
        "runImage": {
            "topLayer": base.top_layer().unwrap(),
            "reference": base.manifest_digest,
            "image": name
        },
        "x-unknown": "kept"
    });
    labels.insert(LIFECYCLE_LABEL.to_owned(), lifecycle.to_string());
    let runtime = ConfigBuilder::default()
        .user("1000:1000")
        .env(env_list(&env))
        .working_dir("/workspace")
        .labels(label_map(labels))
        .entrypoint(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "greet".to_owned(),
        ])
        .cmd(Vec::<String>::new())
        .build()
        .unwrap();
    let created = format_timestamp(DEFAULT_MTIME);
    let history = [
        "Layer: 'runtime', Created by buildpack: examples/runtime@1.0.0",
        "Application Layer",
    ]
    .map(|created_by| {
        HistoryBuilder::default()
            .created(created.clone())
            .created_by(created_by)
            .build()
            .unwrap()
    });
    let config = config_on_base(
        &base.config,
        created,
        runtime,
        &diff_ids,
        Some(history.to_vec()),
    )
    .unwrap();
    let config_descriptor = descriptor(&canonical_json(&config).unwrap(), MediaType::ImageConfig);
    let manifest = image_manifest(
        config_descriptor,
        base.layers
            .iter()
            .map(|l| l.descriptor.clone())
            .chain(layers)
            .collect(),
    )
    .unwrap();
    let manifest_descriptor = descriptor(
        &canonical_json(&manifest).unwrap(),
        MediaType::ImageManifest,
    );
    (manifest_descriptor, manifest, config)
}

/// Writes the run image `spec` describes to `oci:<dir>:<tag>` and loads it from there.
pub(crate) fn write_run_image(dir: &Path, tag: &str, spec: &BaseSpec) -> RunImage {
    let image = run_image(spec);
    let staging = Staging::new(dir).unwrap();
    for i in 0..spec.layers {
        staging
            .put_bytes(&spec.layer_bytes(i), MediaType::ImageLayerGzip)
            .unwrap();
    }
    staging
        .put_json(&image.config, MediaType::ImageConfig)
        .unwrap();
    let manifest = staging
        .put_json(&image.manifest, MediaType::ImageManifest)
        .unwrap();
    staging.commit(&[(tag.to_owned(), manifest)]).unwrap();
    RunImage::load(&ImageRef::OciLayout {
        dir: dir.to_path_buf(),
        tag: tag.to_owned(),
    })
    .unwrap()
}

/// Writes app images on `base` (recorded under `name`) to the layout at `dir`, one per
/// `(tag, seed)`, with the base's layers and their own; returns their manifest descriptors.
pub(crate) fn write_apps(
    dir: &Path,
    base_spec: &BaseSpec,
    name: &str,
    apps: &[(&str, &str)],
) -> Vec<Descriptor> {
    let base = run_image(base_spec);
    let staging = Staging::new(dir).unwrap();
    for i in 0..base_spec.layers {
        staging
            .put_bytes(&base_spec.layer_bytes(i), MediaType::ImageLayerGzip)
            .unwrap();
    }
    let mut tags = Vec::new();
    for (tag, seed) in apps {
        let (_, manifest, config) = app_parts_seeded(&base, name, seed);
        for bytes in app_layer_bytes(seed) {
            staging
                .put_bytes(&bytes, MediaType::ImageLayerGzip)
                .unwrap();
        }
        staging.put_json(&config, MediaType::ImageConfig).unwrap();
        let descriptor = staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap();
        tags.push(((*tag).to_owned(), descriptor));
    }
    staging.commit(&tags).unwrap();
    tags.into_iter().map(|(_, d)| d).collect()
}
