//! What a run image contributes to the config of an app image built on it.
//!
//! An app image's config is its run image's config with the app's parts added on top: the
//! run image decides the platform (`os`, `architecture`, `variant`), the start of the Env
//! (its own variables, then the CNB ones), the labels the app inherits, the first
//! `rootfs.diff_ids` and the first history entries. Export ([`crate::image`]) and rebase
//! ([`crate::rebase`]) both assemble a config through these functions, which is what makes a
//! rebase byte-identical to a rebuild when the new run image has the old one's config: the
//! same base gives the same contributions, in the same places.

use std::collections::{BTreeMap, HashMap};

use oci_spec::OciSpecError;
use oci_spec::image::{
    Config, Descriptor, History, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifest, ImageManifestBuilder, MediaType, RootFsBuilder,
};
use strata_engine::env::Env;

/// `CNB_LAYERS_DIR` in an app image: where the buildpack layers are.
pub const LAYERS_DIR: &str = "/layers";
/// `CNB_APP_DIR` in an app image: where the app is.
pub const APP_DIR: &str = "/workspace";

/// The start of an app image's Env on `run`: every `NAME=value` of the run image's config
/// (entries without `=` are dropped), then `CNB_LAYERS_DIR` and `CNB_APP_DIR`. Buildpack
/// launch env is applied on top of this.
pub fn base_env(run: &ImageConfiguration) -> Env {
    let mut env: Env = run
        .config()
        .as_ref()
        .and_then(|c| c.env().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    env.set("CNB_LAYERS_DIR", LAYERS_DIR);
    env.set("CNB_APP_DIR", APP_DIR);
    env
}

/// The labels an app image inherits from `run`: all of the run image's labels. Buildpack and
/// CNB labels are added on top.
pub fn base_labels(run: &ImageConfiguration) -> BTreeMap<String, String> {
    run.config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// `env` as a config's `Env` list (`NAME=value`, in name order).
pub fn env_list(env: &Env) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `labels` as a config's `Labels`.
pub fn label_map(labels: BTreeMap<String, String>) -> HashMap<String, String> {
    labels.into_iter().collect()
}

/// The history entries of layers added on a base, one per layer, each `created` at the same
/// time (the build's) and `created_by` what made it.
///
/// # Errors
/// An [`OciSpecError`] when an entry cannot be built.
pub fn layer_history<'a>(
    created: &str,
    created_by: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<History>, OciSpecError> {
    created_by
        .into_iter()
        .map(|by| {
            HistoryBuilder::default()
                .created(created.to_owned())
                .created_by(by.to_owned())
                .build()
        })
        .collect()
}

/// The image config of an app on `run`: the platform of `run`; `config` (the runtime
/// settings, whose Env and labels already start from [`base_env`] and [`base_labels`]);
/// `rootfs.diff_ids` = the run image's, then `app_diff_ids`; history = the run image's, then
/// `app_history` (`None` leaves the history out: the app's history is unknown).
///
/// # Errors
/// An [`OciSpecError`] when the config cannot be built.
pub fn config_on_base(
    run: &ImageConfiguration,
    created: String,
    config: Config,
    app_diff_ids: &[String],
    app_history: Option<Vec<History>>,
) -> Result<ImageConfiguration, OciSpecError> {
    let diff_ids: Vec<String> = run
        .rootfs()
        .diff_ids()
        .iter()
        .chain(app_diff_ids)
        .cloned()
        .collect();
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids)
        .build()?;
    let mut builder = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(run.architecture().clone())
        .os(run.os().clone())
        .config(config)
        .rootfs(rootfs);
    if let Some(app_history) = app_history {
        let mut history = run.history().clone().unwrap_or_default();
        history.extend(app_history);
        builder = builder.history(history);
    }
    if let Some(variant) = run.variant() {
        builder = builder.variant(variant.clone());
    }
    builder.build()
}

/// The manifest of an image with this config and these layers (bottom first).
///
/// # Errors
/// An [`OciSpecError`] when the manifest cannot be built.
pub fn image_manifest(
    config: Descriptor,
    layers: Vec<Descriptor>,
) -> Result<ImageManifest, OciSpecError> {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
}
