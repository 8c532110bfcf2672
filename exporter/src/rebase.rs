//! Rebase: an app image moved onto a new run image, per the CNB rebaser rules, reading only
//! its manifest and config.
//!
//! The old base is every layer up to and including the one whose diffID the lifecycle
//! metadata records as `runImage.topLayer`. The rebased image is the new run image's layers
//! followed by the app's upper layers, reused by descriptor: no app layer byte is read or
//! written. Its config is assembled through [`crate::baseconfig`], as export assembles it, so a
//! rebase onto a run image with the old one's config gives exactly the bytes a rebuild on it
//! gives. Where the new run image's config differs, the rules are:
//!
//! - platform (`os`, `architecture`, `variant`), the base part of `rootfs.diff_ids` and of the
//!   history: the new run image's. The app's history entries are those after the entry of the
//!   top layer (with the empty-layer entries that follow it, which belong to the base); an
//!   image whose history does not account for its layers gets no history.
//! - labels: `io.buildpacks.base.*` and `io.buildpacks.stack.*` are dropped and the new run
//!   image's taken; any other label of the new run image is added where the app has no label
//!   of that name (an app label may come from a buildpack, which wins at build time);
//!   `io.buildpacks.rebasable` is `false` when the new run image says so.
//! - Env: a variable the new run image sets (or a CNB one) that the app lacks is added; one the
//!   app has keeps the app's value, since launch env may have built on the base's value
//!   (a `PATH` prepend) and the old base's config is not at hand to tell. Variables whose value
//!   in the app neither equals nor contains the new base's are reported, so a caller can say
//!   that a rebuild would pick the new value up.
//! - `User`, `Entrypoint`, `Cmd`, `WorkingDir` and the other runtime settings: the app's.
//! - `io.buildpacks.lifecycle.metadata`: `runImage.topLayer` and `runImage.reference` name the
//!   new run image; everything else in the label is kept as it was, unknown keys included.
//! - `created`: the given time (`SOURCE_DATE_EPOCH` or 1980-01-01T00:00:01Z, as export).
//! - the run image's SBOM layer (the first upper layer, where the `io.strata.sbom` label
//!   records it, see [`crate::runsbom`]): replaced by the new run image's, made from its dpkg
//!   status once per batch, dated the given time and compressed as the old one; the label's
//!   entry names the new layer. An image built before that layer existed keeps its SBOMs as
//!   they are.
//!
//! Before that, the checks of the CNB rebaser, each a [`Refusal`] that forcing overrides:
//! `io.buildpacks.rebasable=false`; `os` and `architecture` must equal the new run image's,
//! `variant` where both set one, `io.buildpacks.base.distro.name`/`.version` where the new
//! run image sets them (images without `io.buildpacks.base.*` labels compare
//! `io.buildpacks.stack.id` instead); and the new run image's name must be the recorded
//! `runImage.image` or one of its mirrors (forced, the name replaces them). An `oci:` name
//! also matches when it names the same layout and tag spelled from another directory: a
//! layout image's relative names are read from the directory holding its layout, the new run
//! image's from the working directory ([`NewBase::is_named`]). An image without
//! the lifecycle label, without a recorded top layer, or whose top layer is not among its
//! layers is refused outright: there is no base to replace.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use oci_spec::image::{Descriptor, Digest, History, ImageConfiguration, ImageManifest, MediaType};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use strata_engine::env::Env;

use crate::archive::{Compression, compression_of};
use crate::archive::{DEFAULT_MTIME, format_timestamp};
use crate::baseconfig::{
    base_env, base_labels, config_on_base, env_list, image_manifest, label_map,
};
use crate::layout::{Layout, LayoutError, canonical_json};
use crate::metadata::{LIFECYCLE_LABEL, json};
use crate::relocate::{holder_of, oci_location, relative_oci_name, shown_from};
use crate::runimage::RunImage;
use crate::runsbom::{RunSbomError, RunSbomLayers};
use crate::sbomlayer::{SBOM_LABEL, SbomEntry, entries_of};

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

/// Label a run image sets to `false` when its updates are not ABI-compatible.
pub const REBASABLE_LABEL: &str = "io.buildpacks.rebasable";
/// Label with the distribution name of a run image (`/etc/os-release` `ID`).
pub const DISTRO_NAME_LABEL: &str = "io.buildpacks.base.distro.name";
/// Label with the distribution version of a run image (`/etc/os-release` `VERSION_ID`).
pub const DISTRO_VERSION_LABEL: &str = "io.buildpacks.base.distro.version";
/// The stack id of older run images.
pub const STACK_ID_LABEL: &str = "io.buildpacks.stack.id";

/// Labels that belong to the run image: rebase replaces them with the new one's.
fn is_base_label(name: &str) -> bool {
    name.starts_with("io.buildpacks.base.") || name.starts_with("io.buildpacks.stack.")
}

/// The run image to rebase onto, with the name it was given by (recorded as
/// `runImage.image`), and what it contributes to an app config.
#[derive(Debug, Clone)]
pub struct NewBase {
    /// The run image.
    pub image: RunImage,
    /// Its name as the user gave it.
    pub name: String,
    /// Its registry repository (`HOST/REPO`) when it came from a registry.
    pub repository: Option<String>,
    /// The layout and tag an `oci:` name means, read from the working directory.
    location: Option<(PathBuf, String)>,
    /// [`Self::is_named`]'s answers by recorded name and directory: the images of a layout
    /// mostly record one name, which is resolved (a few system calls) once.
    named: Arc<Mutex<HashMap<(String, PathBuf), bool>>>,
    env: Env,
    labels: BTreeMap<String, String>,
    target: Target,
    sbom: Arc<RunSbomLayers>,
}

impl NewBase {
    /// Prepares `image`, named `name`, as the base of rebased images.
    /// A relative `oci:` name is read from the working directory, as `strata rebase
    /// --run-image` takes it.
    pub fn new(image: RunImage, name: impl Into<String>) -> NewBase {
        let labels = base_labels(&image.config);
        let name = name.into();
        NewBase {
            location: oci_location(&name, Path::new(".")),
            named: Arc::default(),
            env: base_env(&image.config),
            target: Target::of(&image.config, &labels),
            labels,
            name,
            repository: None,
            sbom: Arc::new(RunSbomLayers::new(image.clone(), None)),
            image,
        }
    }

    /// The same base, whose packages (for the rebased images' run image SBOM) are looked up
    /// in, and kept in, the store at `store`.
    #[must_use]
    pub fn with_store(mut self, store: Option<PathBuf>) -> NewBase {
        self.sbom = Arc::new(RunSbomLayers::new(self.image.clone(), store));
        self
    }

    /// The same base, pulled from the registry repository `repository` (`HOST/REPO`): rebased
    /// images then record `runImage.reference` as `HOST/REPO@sha256:…`, as a build on it does.
    #[must_use]
    pub fn in_repository(mut self, repository: Option<String>) -> NewBase {
        self.repository = repository;
        self
    }

    /// What rebased images record as `runImage.reference`: `HOST/REPO@sha256:…` for a
    /// registry run image, the bare manifest digest otherwise (as export records it).
    pub fn reference(&self) -> String {
        match &self.repository {
            Some(repository) => format!("{repository}@{}", self.image.manifest_digest),
            None => self.image.manifest_digest.clone(),
        }
    }

    /// The diffID of its top layer.
    pub fn top_layer(&self) -> &str {
        self.image.top_layer().unwrap_or_default()
    }

    /// Whether `recorded`, a run image name as an image records it, names this run image:
    /// the same name, or (read from `holder` when the image is in a layout) an `oci:` name
    /// of the same layout and tag however the path is spelled. Registry names compare as
    /// written.
    pub fn is_named(&self, recorded: &str, holder: Option<&Path>) -> bool {
        if recorded == self.name {
            return true;
        }
        let (Some(location), Some(holder)) = (&self.location, holder) else {
            return false;
        };
        let key = (recorded.to_owned(), holder.to_owned());
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        *named
            .entry(key)
            .or_insert_with(|| oci_location(recorded, holder).as_ref() == Some(location))
    }

    /// Its name as an image in a layout read from `holder` records it: a relative `oci:` name
    /// rewritten from the working directory to `holder`, as a build records it.
    pub fn name_from(&self, holder: Option<&Path>) -> String {
        match holder {
            Some(holder) => relative_oci_name(&self.name, Path::new("."), holder),
            None => self.name.clone(),
        }
    }
}

/// How rebased images are written.
#[derive(Debug, Clone, Copy)]
pub struct RebaseOptions {
    /// Rebase even where a [`Refusal`] applies.
    pub force: bool,
    /// The config's `created` (seconds since the epoch).
    pub epoch: u64,
}

impl Default for RebaseOptions {
    /// Not forced; `created` the time export uses without `SOURCE_DATE_EPOCH`.
    fn default() -> Self {
        Self {
            force: false,
            epoch: DEFAULT_MTIME,
        }
    }
}

/// A reason the CNB rebaser refuses an image unless forced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The image is labelled `io.buildpacks.rebasable=false`.
    #[error("the image is labelled {REBASABLE_LABEL}=false")]
    NotRebasable,
    /// A target field differs between the image and the new run image.
    #[error("the new run image's {field} is `{new_base}`, the image's is `{image}`")]
    Target {
        /// `os`, `architecture`, `variant` or a label name.
        field: &'static str,
        /// The image's value (`(none)` when unset).
        image: String,
        /// The new run image's value.
        new_base: String,
    },
    /// The new run image's name is not the one the image records.
    #[error("the image was built on `{recorded}`, not on `{name}`")]
    Name {
        /// The new run image's name.
        name: String,
        /// `runImage.image` and its mirrors, as recorded.
        recorded: String,
    },
}

/// Why one image cannot be rebased.
#[derive(Debug, thiserror::Error)]
pub enum RebaseErrorKind {
    /// The layout has no such tag.
    #[error("the layout has no image tagged `{tag}`")]
    TagNotFound {
        /// The tag.
        tag: String,
    },
    /// The tag names several index entries (one per platform).
    #[error("the tag has {count} entries in index.json (one per platform); rebase them one by one")]
    SeveralEntries {
        /// How many.
        count: usize,
    },
    /// The tag names something other than an image manifest.
    #[error(
        "the tag points to a {media_type}, not an image manifest (multi-platform images are not rebased)"
    )]
    NotAManifest {
        /// Its media type.
        media_type: String,
    },
    /// The manifest or config could not be read.
    #[error("cannot read the image")]
    Read(#[source] Box<LayoutError>),
    /// The image has no lifecycle label.
    #[error("it has no `{LIFECYCLE_LABEL}` label: it was not built with buildpacks")]
    NoMetadata,
    /// The lifecycle label does not parse.
    #[error("its `{LIFECYCLE_LABEL}` label is invalid: {message}")]
    InvalidMetadata {
        /// What is wrong.
        message: String,
    },
    /// The lifecycle label records no top layer.
    #[error("its `{LIFECYCLE_LABEL}` label records no run image top layer (`runImage.topLayer`)")]
    NoTopLayer,
    /// The recorded top layer is not a layer of the image.
    #[error("its recorded run image top layer {top_layer} is not one of its layers")]
    UnknownTopLayer {
        /// The recorded diffID.
        top_layer: String,
    },
    /// Manifest layers and `rootfs.diff_ids` differ in number.
    #[error("its manifest lists {layers} layers but its config {diff_ids} diff_ids")]
    LayerCount {
        /// Manifest layers.
        layers: usize,
        /// diffIDs.
        diff_ids: usize,
    },
    /// An app layer blob is not in the layout (its size is checked, its content never read).
    #[error("its layer blob {digest} is missing from the layout or has the wrong size")]
    MissingLayer {
        /// The layer digest.
        digest: String,
    },
    /// One or more [`Refusal`]s, not forced.
    #[error("{}", join_refusals(.0))]
    Refused(Vec<Refusal>),
    /// The rebased config or manifest could not be built.
    #[error("cannot assemble the rebased image: {0}")]
    Spec(String),
    /// The rebased config or manifest could not be staged.
    #[error("cannot write the rebased image")]
    Stage(#[source] Box<LayoutError>),
    /// The tag was moved to another manifest (by a build) after it was read: the rebase of
    /// the manifest it named then is not committed, so the newer image stays.
    #[error("the tag changed meanwhile: it was {read} when read and is {} now; rebase it again", now.as_deref().unwrap_or("gone"))]
    ChangedMeanwhile {
        /// The manifest digest the rebase started from.
        read: String,
        /// The digest the tag names now, if any.
        now: Option<String>,
    },
    /// The layout's index could not be updated (no image of the layout was re-tagged).
    #[error("cannot commit to the layout")]
    Commit(#[source] std::sync::Arc<LayoutError>),
    /// A registry's manifest or config is not valid JSON of its kind.
    #[error("its {what} is invalid: {message}")]
    Malformed {
        /// `image manifest` or `image config`.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A registry image is named by digest: there is no tag to move.
    #[error("it is named by digest; a rebase moves a tag, so name it by tag")]
    ByDigest,
    /// The new run image's SBOM layer could not be made.
    #[error("cannot make the new run image's SBOM layer")]
    RunSbom(#[source] Arc<RunSbomError>),
    /// A request to the registry failed (shared by the images of one repository when the new
    /// run image's blobs could not be pushed there).
    #[error("{what}")]
    Registry {
        /// What was being done: `cannot read the image`, `cannot push the new run image's
        /// layers to HOST/REPO`, …
        what: String,
        /// The registry client's error.
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
}

fn join_refusals(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An image that could not be rebased, and why.
#[derive(Debug)]
pub struct RebaseError {
    /// The image (`oci:DIR:TAG` or `docker://HOST/REPO:TAG`).
    pub image: String,
    /// Why.
    pub kind: RebaseErrorKind,
}

impl fmt::Display for RebaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot rebase {}: {}", self.image, self.kind)
    }
}

impl std::error::Error for RebaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// The target data rebase compares: platform and distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Target {
    os: String,
    arch: String,
    variant: Option<String>,
    distro_name: Option<String>,
    distro_version: Option<String>,
    stack_id: Option<String>,
    has_base_labels: bool,
}

impl Target {
    fn of(config: &ImageConfiguration, labels: &BTreeMap<String, String>) -> Target {
        let label = |name: &str| labels.get(name).filter(|v| !v.is_empty()).cloned();
        Target {
            os: config.os().to_string(),
            arch: config.architecture().to_string(),
            variant: config.variant().clone().filter(|v| !v.is_empty()),
            distro_name: label(DISTRO_NAME_LABEL),
            distro_version: label(DISTRO_VERSION_LABEL),
            stack_id: label(STACK_ID_LABEL),
            has_base_labels: labels.keys().any(|k| k.starts_with("io.buildpacks.base.")),
        }
    }

    /// What keeps an image with this target from moving onto `new`.
    fn refusals(&self, new: &Target) -> Vec<Refusal> {
        let mut out = Vec::new();
        let mut differ = |field, image: Option<&String>, new: &String| {
            if image != Some(new) {
                out.push(Refusal::Target {
                    field,
                    image: image.cloned().unwrap_or_else(|| "(none)".to_owned()),
                    new_base: new.clone(),
                });
            }
        };
        differ("os", Some(&self.os), &new.os);
        differ("architecture", Some(&self.arch), &new.arch);
        if let (Some(image), Some(new)) = (&self.variant, &new.variant) {
            differ("variant", Some(image), new);
        }
        if let Some(name) = &new.distro_name {
            differ(DISTRO_NAME_LABEL, self.distro_name.as_ref(), name);
        }
        if let Some(version) = &new.distro_version {
            differ(DISTRO_VERSION_LABEL, self.distro_version.as_ref(), version);
        }
        if let Some(stack) = self.stack_id.as_ref().filter(|_| !self.has_base_labels) {
            let new_stack = new.stack_id.clone().unwrap_or_else(|| "(none)".to_owned());
            differ(STACK_ID_LABEL, Some(stack), &new_stack);
        }
        out
    }
}

/// An app image as read from a layout: its manifest, config and lifecycle metadata.
#[derive(Debug, Clone)]
pub struct AppImage {
    /// The image (`oci:DIR:TAG`).
    pub reference: String,
    /// Its manifest's descriptor.
    pub descriptor: Descriptor,
    /// Its manifest.
    pub manifest: ImageManifest,
    /// Its config.
    pub config: ImageConfiguration,
    lifecycle: serde_json::Map<String, Value>,
    top_layer: String,
    top_index: usize,
    /// The directory its relative `oci:` run image names are read from: the one holding its
    /// layout (as a build records them); `None` for a registry image.
    holder: Option<PathBuf>,
}

impl AppImage {
    /// Reads the image an `index.json` entry points to: manifest and config only, both
    /// checked against their digests; the lifecycle label must be there and its recorded top
    /// layer one of the image's layers.
    ///
    /// # Errors
    /// Why the image cannot be rebased.
    pub fn read(
        layout: &Layout,
        reference: &str,
        entry: &Descriptor,
    ) -> Result<AppImage, RebaseErrorKind> {
        match entry.media_type() {
            MediaType::ImageManifest => {}
            MediaType::Other(other)
                if other == "application/vnd.docker.distribution.manifest.v2+json" => {}
            other => {
                return Err(RebaseErrorKind::NotAManifest {
                    media_type: other.to_string(),
                });
            }
        }
        let read = |e| RebaseErrorKind::Read(Box::new(e));
        let manifest: ImageManifest = layout.read_json(entry, "image manifest").map_err(read)?;
        let config: ImageConfiguration = layout
            .read_json(manifest.config(), "image config")
            .map_err(read)?;
        let mut app = Self::from_parts(reference, entry.clone(), manifest, config)?;
        app.holder = Some(holder_of(layout.dir()).to_owned());
        Ok(app)
    }

    /// An app image from its manifest and config.
    ///
    /// # Errors
    /// What [`Self::read`] checks after reading.
    pub fn from_parts(
        reference: &str,
        descriptor: Descriptor,
        manifest: ImageManifest,
        config: ImageConfiguration,
    ) -> Result<AppImage, RebaseErrorKind> {
        let label = config
            .config()
            .as_ref()
            .and_then(|c| c.labels().as_ref())
            .and_then(|l| l.get(LIFECYCLE_LABEL))
            .ok_or(RebaseErrorKind::NoMetadata)?;
        let invalid = |message: String| RebaseErrorKind::InvalidMetadata { message };
        let lifecycle = match serde_json::from_str(label) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(invalid("not a JSON object".to_owned())),
            Err(e) => return Err(invalid(e.to_string())),
        };
        let top_layer = match lifecycle.get("runImage").and_then(|r| r.get("topLayer")) {
            Some(Value::String(top)) if !top.is_empty() => top.clone(),
            None | Some(Value::String(_)) => return Err(RebaseErrorKind::NoTopLayer),
            Some(_) => return Err(invalid("`runImage.topLayer` is not a string".to_owned())),
        };
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(RebaseErrorKind::LayerCount {
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        // The base is at the bottom: its top layer is the first layer with that diffID.
        let top_index = diff_ids
            .iter()
            .position(|d| *d == top_layer)
            .ok_or_else(|| RebaseErrorKind::UnknownTopLayer {
                top_layer: top_layer.clone(),
            })?;
        Ok(AppImage {
            reference: reference.to_owned(),
            descriptor,
            manifest,
            config,
            lifecycle,
            top_layer,
            top_index,
            holder: None,
        })
    }

    /// The recorded top layer of its run image.
    pub fn top_layer(&self) -> &str {
        &self.top_layer
    }

    /// The recorded run image manifest (`runImage.reference`).
    pub fn run_image_reference(&self) -> &str {
        self.lifecycle
            .get("runImage")
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The names its run image was recorded under: `runImage.image` and `runImage.mirrors`
    /// (and, for older images, `stack.runImage.image` and `.mirrors`).
    pub fn run_image_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let run_images = [
            self.lifecycle.get("runImage"),
            self.lifecycle.get("stack").and_then(|s| s.get("runImage")),
        ];
        for run in run_images.into_iter().flatten() {
            if let Some(image) = run.get("image").and_then(Value::as_str) {
                names.push(image);
            }
            let mirrors = run.get("mirrors").and_then(Value::as_array);
            names.extend(mirrors.into_iter().flatten().filter_map(Value::as_str));
        }
        names.retain(|n| !n.is_empty());
        names
    }

    /// Whether one of [`Self::run_image_names`] names `base` (see [`NewBase::is_named`]).
    pub fn is_built_on_name_of(&self, base: &NewBase) -> bool {
        self.run_image_names()
            .iter()
            .any(|name| base.is_named(name, self.holder.as_deref()))
    }

    /// Its first recorded run image name as the working directory names it (a relative
    /// `oci:` name rewritten from the directory holding its layout), for showing.
    pub fn run_image_shown(&self) -> Option<String> {
        let name = self.run_image_names().first().copied()?;
        Some(match &self.holder {
            Some(holder) => shown_from(name, holder),
            None => name.to_owned(),
        })
    }

    /// The app's layers above the old base: descriptors and diffIDs.
    pub fn upper_layers(&self) -> (&[Descriptor], &[String]) {
        let start = self.top_index + 1;
        (
            &self.manifest.layers()[start..],
            &self.config.rootfs().diff_ids()[start..],
        )
    }

    /// The app's layers that a rebase keeps: its upper layers but the run image's SBOM layer,
    /// which it replaces.
    pub fn kept_layers(&self) -> &[Descriptor] {
        let (upper, _) = self.upper_layers();
        let skip = usize::from(self.run_sbom().is_some());
        &upper[skip.min(upper.len())..]
    }

    /// Whether it already sits on `base`: the same run image manifest and top layer.
    pub fn is_on(&self, base: &NewBase) -> bool {
        let reference = self.run_image_reference();
        let digest = &base.image.manifest_digest;
        self.top_layer == base.top_layer()
            && (reference == digest || reference.ends_with(&format!("@{digest}")))
    }

    fn labels(&self) -> BTreeMap<String, String> {
        base_labels(&self.config)
    }

    /// Its `io.strata.sbom` entries when they record a run image SBOM layer and that layer is
    /// its first upper layer, where export puts it.
    fn run_sbom(&self) -> Option<Vec<SbomEntry>> {
        let labels = self.labels();
        let entries = entries_of(labels.get(SBOM_LABEL).map(String::as_str))?;
        let layer = crate::runsbom::recorded_layer(&entries)?;
        let (_, diff_ids) = self.upper_layers();
        (diff_ids.first().map(String::as_str) == Some(layer)).then_some(entries)
    }

    /// The checks of the CNB rebaser that `base` fails.
    pub fn refusals(&self, base: &NewBase) -> Vec<Refusal> {
        let labels = self.labels();
        let mut out = Vec::new();
        if labels.get(REBASABLE_LABEL).is_some_and(|v| v == "false") {
            out.push(Refusal::NotRebasable);
        }
        out.extend(Target::of(&self.config, &labels).refusals(&base.target));
        if !self.is_built_on_name_of(base) {
            let names = self.run_image_names();
            out.push(Refusal::Name {
                name: base.name.clone(),
                recorded: if names.is_empty() {
                    "(no recorded run image)".to_owned()
                } else {
                    names.join(", ")
                },
            });
        }
        out
    }

    /// The history entries of its upper layers, or `None` when its history does not line up
    /// with its layers.
    fn upper_history(&self) -> Option<Vec<History>> {
        let history = self.config.history().as_ref()?;
        let is_layer = |h: &History| !h.empty_layer().unwrap_or(false);
        if history.iter().filter(|h| is_layer(h)).count() != self.config.rootfs().diff_ids().len() {
            return None;
        }
        // The entry of the first upper layer: the (top_index + 1)-th entry that has a layer.
        let start = history
            .iter()
            .enumerate()
            .filter(|(_, h)| is_layer(h))
            .nth(self.top_index + 1)
            .map_or(history.len(), |(i, _)| i);
        Some(history[start..].to_vec())
    }
}

/// A rebased image, computed but not written: its config and manifest as the bytes to store.
#[derive(Debug, Clone)]
pub struct Rebased {
    /// The config's descriptor.
    pub config: Descriptor,
    /// The config's canonical JSON.
    pub config_bytes: Vec<u8>,
    /// The manifest's descriptor (what the tag will point to).
    pub manifest: Descriptor,
    /// The manifest's canonical JSON.
    pub manifest_bytes: Vec<u8>,
    /// The refusals that forcing overrode.
    pub overridden: Vec<Refusal>,
    /// Variables whose value in the app neither equals nor contains the new base's: kept as
    /// the app had them.
    pub kept_env: Vec<String>,
    /// The new run image's SBOM layer, which the rebased manifest names in place of the old
    /// one's: to be stored with the run image's layers.
    pub run_sbom: Option<(Descriptor, PathBuf)>,
}

/// Rebases `app` onto `base`: checks the CNB rebaser's rules, then computes the new config
/// and manifest. No layer of `app` is read and nothing is written but the new run image's SBOM
/// layer, once per batch, into a directory of `base`'s (see [`crate::runsbom`]).
///
/// # Errors
/// [`RebaseErrorKind::Refused`] when a [`Refusal`] applies and `options.force` is off, or
/// [`RebaseErrorKind::Spec`].
pub fn rebase(
    app: &AppImage,
    base: &NewBase,
    options: &RebaseOptions,
) -> Result<Rebased, RebaseErrorKind> {
    let refusals = app.refusals(base);
    if !refusals.is_empty() && !options.force {
        return Err(RebaseErrorKind::Refused(refusals));
    }
    let spec = |e: oci_spec::OciSpecError| RebaseErrorKind::Spec(e.to_string());

    let mut runtime = app.config.config().clone().unwrap_or_default();
    let mut env: Env = runtime
        .env()
        .as_ref()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let mut kept_env = Vec::new();
    for (name, value) in &base.env {
        match env.get(name) {
            None => env.set(name, value),
            Some(current) if !current.contains(value) => kept_env.push(name.to_owned()),
            Some(_) => {}
        }
    }
    runtime.set_env(Some(env_list(&env)));

    let mut labels = app.labels();
    labels.retain(|name, _| !is_base_label(name));
    for (name, value) in &base.labels {
        if is_base_label(name) {
            labels.insert(name.clone(), value.clone());
        } else {
            labels.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    if base
        .labels
        .get(REBASABLE_LABEL)
        .is_some_and(|v| v == "false")
    {
        labels.insert(REBASABLE_LABEL.to_owned(), "false".to_owned());
    }
    labels.insert(
        LIFECYCLE_LABEL.to_owned(),
        Value::Object(lifecycle_on(app, base)).to_string(),
    );

    let (upper, upper_diff_ids) = app.upper_layers();
    let mut upper = upper.to_vec();
    let mut upper_diff_ids = upper_diff_ids.to_vec();
    let run_sbom = match app.run_sbom() {
        Some(mut entries) => {
            let compression = compression_of(upper[0].media_type()).unwrap_or(Compression::Gzip);
            let blob = base
                .sbom
                .blob(options.epoch, compression)
                .map_err(RebaseErrorKind::RunSbom)?;
            let descriptor = blob
                .descriptor()
                .map_err(|e| RebaseErrorKind::Spec(e.to_string()))?;
            upper[0] = descriptor.clone();
            upper_diff_ids[0].clone_from(&blob.diff_id);
            for entry in &mut entries {
                if entry.path == crate::sbomlayer::RUN_IMAGE_SBOM_DIR {
                    entry.layer = Some(blob.diff_id.clone());
                }
            }
            labels.insert(SBOM_LABEL.to_owned(), json(&entries));
            Some((descriptor, blob.path))
        }
        None => None,
    };
    runtime.set_labels(Some(label_map(labels)));

    let config = config_on_base(
        &base.image.config,
        format_timestamp(options.epoch),
        runtime,
        &upper_diff_ids,
        app.upper_history(),
    )
    .map_err(spec)?;
    let config_bytes = json_bytes(&config)?;
    let config_descriptor = descriptor_of(&config_bytes, MediaType::ImageConfig)?;

    let layers = base
        .image
        .layers
        .iter()
        .map(|l| l.descriptor.clone())
        .chain(upper)
        .collect();
    let mut manifest = image_manifest(config_descriptor.clone(), layers).map_err(spec)?;
    manifest.set_annotations(app.manifest.annotations().clone());
    let manifest_bytes = json_bytes(&manifest)?;
    Ok(Rebased {
        config: config_descriptor,
        config_bytes,
        manifest: descriptor_of(&manifest_bytes, MediaType::ImageManifest)?,
        manifest_bytes,
        overridden: refusals,
        kept_env,
        run_sbom,
    })
}

/// The lifecycle metadata with `runImage` naming `base`: top layer and reference always; when
/// the name is not among the recorded ones (a forced rebase), the name replaces them.
fn lifecycle_on(app: &AppImage, base: &NewBase) -> serde_json::Map<String, Value> {
    let mut lifecycle = app.lifecycle.clone();
    let name = base.name_from(app.holder.as_deref());
    let renamed = !app.is_built_on_name_of(base);
    let run = lifecycle
        .entry("runImage")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Value::Object(run) = run {
        run.insert("topLayer".to_owned(), base.top_layer().into());
        run.insert("reference".to_owned(), base.reference().into());
        if renamed {
            run.insert("image".to_owned(), name.clone().into());
            run.remove("mirrors");
        }
    }
    if let (true, Some(Value::Object(stack))) = (renamed, lifecycle.get_mut("stack")) {
        stack.insert("runImage".to_owned(), serde_json::json!({ "image": name }));
    }
    lifecycle
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, RebaseErrorKind> {
    canonical_json(value).map_err(|e| RebaseErrorKind::Spec(e.to_string()))
}

/// The descriptor of `bytes` stored as a blob, as [`crate::layout::Staging::put_bytes`]
/// returns it.
fn descriptor_of(bytes: &[u8], media_type: MediaType) -> Result<Descriptor, RebaseErrorKind> {
    let text = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let digest = Digest::from_str(&text).map_err(|e| RebaseErrorKind::Spec(e.to_string()))?;
    Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
}
