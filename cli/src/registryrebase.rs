//! `strata rebase` of images in registries: `docker://HOST/REPO:TAG` one by one, or every tag
//! of a repository (`--all docker://HOST/REPO`), moved onto a new run image in place.
//!
//! What is rebased and how is decided exactly as for a layout, by
//! [`strata_exporter::fleet::judge`] and [`strata_exporter::rebase::rebase`]; this module only
//! moves bytes, in three steps, each in parallel on the current rayon pool:
//!
//! 1. **Examine**: per image, the manifest (a `GET` by tag) and the config (a `GET` of one
//!    small blob, verified against its digest), nothing else: no app layer is ever fetched.
//! 2. **Push the blobs, once per repository**: the new run image's layers and the rebased
//!    configs of that repository's images, each asked for by `HEAD` first, mounted from the
//!    run image's own repository when it is on the same registry, uploaded otherwise. If this
//!    fails, every image of that repository fails with it and none of its tags moves.
//! 3. **Retag**, per image: a `HEAD` checks that the tag still names the manifest read in
//!    step 1 (one a build pushed meanwhile stays, reported `changed_meanwhile`), then the
//!    rebased manifest is written under the tag. A registry refuses a manifest whose blobs it
//!    lacks, so a tag never names a half-written image.
//!
//! One image's failure is its own row; the batch goes on.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;

use oci_spec::image::{Descriptor, Digest as OciDigest, ImageConfiguration, ImageManifest};
use rayon::prelude::*;
use strata_exporter::fleet::{ImageResult, Status, judge};
use strata_exporter::rebase::{
    AppImage, NewBase, RebaseError, RebaseErrorKind, RebaseOptions, Rebased,
};
use strata_registry::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use strata_registry::{BlobDir, Client, Digest, PushReport, Reference};

/// The largest image config read (a config is a few kB; a registry that names a larger
/// one is not followed).
const MAX_CONFIG: u64 = 16 << 20;

/// The registry images of one `strata rebase`.
#[derive(Debug, Default)]
pub(crate) struct RegistryBatch {
    /// Images named one by one (each must be rebasable).
    pub(crate) images: Vec<Reference>,
    /// Repositories whose every tag is a candidate (taken when on the run image's name).
    pub(crate) all: Vec<Reference>,
}

impl RegistryBatch {
    /// Whether there is nothing in it.
    pub(crate) fn is_empty(&self) -> bool {
        self.images.is_empty() && self.all.is_empty()
    }
}

/// What a registry rebase did: a result per image, and what went over the wire.
pub(crate) struct RegistryResult {
    pub(crate) images: Vec<ImageResult>,
    /// Blobs pushed (the run image's layers and the configs, per repository).
    pub(crate) blobs: PushReport,
    /// Manifests written.
    pub(crate) manifests: usize,
}

/// The new run image as the registry side needs it: where its layer blobs are on disk and
/// the repository they can be mounted from.
pub(crate) struct RegistryBase<'a> {
    pub(crate) base: &'a NewBase,
    pub(crate) source: Option<&'a Reference>,
}

/// Rebases the images of `batch` onto `base` (see the module docs); with `dry_run`, reads
/// and computes everything and writes nothing. `work` is a scratch directory.
pub(crate) fn rebase_registry(
    client: &Client,
    batch: &RegistryBatch,
    base: &RegistryBase<'_>,
    options: &RebaseOptions,
    dry_run: bool,
    work: &Path,
) -> RegistryResult {
    let blobs = BlobDir::new(work.join("blobs"));
    let (candidates, mut images) = candidates(client, batch);
    let examined: Vec<(ImageResult, Option<Rebased>)> = candidates
        .par_iter()
        .map(|(reference, named)| examine(client, &blobs, reference, *named, base.base, options))
        .collect();
    let mut to_write: Vec<ToWrite> = Vec::new();
    let offset = images.len();
    for (i, ((result, rebased), (reference, _))) in
        examined.into_iter().zip(&candidates).enumerate()
    {
        images.push(result);
        if let Some(rebased) = rebased {
            to_write.push((offset + i, reference.clone(), rebased));
        }
    }
    let mut result = RegistryResult {
        images,
        blobs: PushReport::default(),
        manifests: 0,
    };
    if !dry_run && !to_write.is_empty() {
        write(client, &blobs, base, &mut result, &to_write);
    }
    result
}

/// The images to examine, named ones first, each once; and a failed result for each
/// repository whose tags could not be listed.
fn candidates(
    client: &Client,
    batch: &RegistryBatch,
) -> (Vec<(Reference, bool)>, Vec<ImageResult>) {
    let mut seen = HashSet::new();
    let mut out: Vec<(Reference, bool)> = Vec::new();
    for image in &batch.images {
        if seen.insert(image.to_string()) {
            out.push((image.clone(), true));
        }
    }
    let listed: Vec<(&Reference, Result<Vec<String>, strata_registry::Error>)> = batch
        .all
        .par_iter()
        .map(|repository| (repository, client.list_tags(repository)))
        .collect();
    let mut failed = Vec::new();
    for (repository, tags) in listed {
        let shown = format!(
            "docker://{}/{}",
            repository.registry(),
            repository.repository()
        );
        match tags {
            Ok(mut tags) => {
                tags.sort();
                for tag in tags {
                    // A tag the registry lists but that is not a valid tag is skipped: there
                    // is no reference to write it back under.
                    let Ok(reference) = repository.with_new_tag(&tag) else {
                        continue;
                    };
                    if seen.insert(reference.to_string()) {
                        out.push((reference, false));
                    }
                }
            }
            Err(e) => failed.push(ImageResult {
                image: shown.clone(),
                tag: String::new(),
                old_digest: None,
                old_top_layer: None,
                outcome: Err(RebaseError {
                    image: shown.clone(),
                    kind: registry_error(format!("cannot list the tags of {shown}"), e),
                }),
            }),
        }
    }
    (out, failed)
}

fn registry_error(what: String, e: strata_registry::Error) -> RebaseErrorKind {
    RebaseErrorKind::Registry {
        what,
        source: Arc::new(e),
    }
}

/// Step 1 for one image.
fn examine(
    client: &Client,
    blobs: &BlobDir,
    reference: &Reference,
    named: bool,
    base: &NewBase,
    options: &RebaseOptions,
) -> (ImageResult, Option<Rebased>) {
    let mut result = ImageResult {
        image: format!("docker://{reference}"),
        tag: reference.tag().unwrap_or_default().to_owned(),
        old_digest: None,
        old_top_layer: None,
        outcome: Ok(Status::NotOnBase { on: None }),
    };
    let app = read_app(client, blobs, reference, &mut result);
    // The registry checks the app layers when the manifest is written: no HEAD per layer.
    let rebased = judge(&mut result, app, named, base, options, |_| true);
    (result, rebased)
}

/// The manifest and config of `reference`, and nothing else.
fn read_app(
    client: &Client,
    blobs: &BlobDir,
    reference: &Reference,
    result: &mut ImageResult,
) -> Result<AppImage, RebaseErrorKind> {
    if reference.digest().is_some() {
        return Err(RebaseErrorKind::ByDigest);
    }
    let fetched = client
        .fetch_manifest(reference)
        .map_err(|e| registry_error("cannot read its manifest".to_owned(), e))?;
    result.old_digest = Some(fetched.descriptor.digest.to_string());
    let media_type = fetched.descriptor.media_type.as_str();
    if matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST) {
        return Err(RebaseErrorKind::NotAManifest {
            media_type: media_type.to_owned(),
        });
    }
    let malformed = |what| {
        move |e: serde_json::Error| RebaseErrorKind::Malformed {
            what,
            message: e.to_string(),
        }
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&fetched.bytes).map_err(malformed("image manifest"))?;
    let config = manifest.config();
    if config.size() > MAX_CONFIG {
        return Err(RebaseErrorKind::Malformed {
            what: "image manifest",
            message: format!(
                "its config is {} bytes, more than an image config can be ({MAX_CONFIG})",
                config.size()
            ),
        });
    }
    let config = registry_descriptor(config)?;
    client
        .pull_blobs(reference, std::slice::from_ref(&config), blobs)
        .map_err(|e| registry_error("cannot read its config".to_owned(), e))?;
    let bytes = blobs
        .read_verified(&config.digest)
        .map_err(|e| registry_error("cannot read its config".to_owned(), e))?;
    let config: ImageConfiguration =
        serde_json::from_slice(&bytes).map_err(malformed("image config"))?;
    let descriptor = Descriptor::new(
        media_type.into(),
        fetched.descriptor.size,
        oci_digest(fetched.descriptor.digest.as_str())?,
    );
    AppImage::from_parts(&result.image, descriptor, manifest, config)
}

/// The registry client's form of a descriptor.
fn registry_descriptor(d: &Descriptor) -> Result<strata_registry::Descriptor, RebaseErrorKind> {
    let digest = Digest::from_str(d.digest().as_ref()).map_err(|e| RebaseErrorKind::Malformed {
        what: "image manifest",
        message: format!("digest {}: {e}", d.digest()),
    })?;
    Ok(strata_registry::Descriptor {
        media_type: d.media_type().to_string(),
        digest,
        size: d.size(),
        platform: None,
    })
}

fn oci_digest(text: &str) -> Result<OciDigest, RebaseErrorKind> {
    OciDigest::from_str(text).map_err(|e| RebaseErrorKind::Spec(e.to_string()))
}

/// One image to write: its index in the results, its reference, its rebased blobs.
type ToWrite = (usize, Reference, Rebased);

fn fail(images: &mut [ImageResult], i: usize, kind: RebaseErrorKind) {
    images[i].outcome = Err(RebaseError {
        image: images[i].image.clone(),
        kind,
    });
}

/// Steps 2 and 3.
fn write(
    client: &Client,
    blobs: &BlobDir,
    base: &RegistryBase<'_>,
    result: &mut RegistryResult,
    to_write: &[ToWrite],
) {
    // The blobs go into the scratch directory first, one thread, so that no push reads a
    // file being written: the run image's layers (linked to where they are), every config.
    if let Err(e) = stage(blobs, base.base, to_write) {
        let source: Arc<dyn std::error::Error + Send + Sync> = Arc::new(e);
        let what = format!(
            "cannot stage the blobs to push in {}",
            blobs.dir().display()
        );
        for (i, _, _) in to_write {
            let (what, source) = (what.clone(), Arc::clone(&source));
            fail(
                &mut result.images,
                *i,
                RebaseErrorKind::Registry { what, source },
            );
        }
        return;
    }
    let failed = push_blobs(client, blobs, base, result, to_write);
    let retagged: Vec<(usize, Option<RebaseErrorKind>)> = to_write
        .par_iter()
        .filter(|(i, _, _)| !failed.contains(i))
        .map(|(i, reference, rebased)| {
            let read = result.images[*i].old_digest.clone().unwrap_or_default();
            (*i, retag(client, reference, rebased, &read).err())
        })
        .collect();
    for (i, error) in retagged {
        match error {
            Some(kind) => fail(&mut result.images, i, kind),
            None => result.manifests += 1,
        }
    }
}

/// The images of one repository, and what pushing their blobs gave.
type RepositoryPush = (Vec<usize>, Result<[PushReport; 2], RebaseErrorKind>);

/// Step 2: per repository, in parallel, the run image's layers (mountable from its own
/// repository) and the rebased configs. Returns the images whose repository failed (their
/// results say why).
fn push_blobs(
    client: &Client,
    blobs: &BlobDir,
    base: &RegistryBase<'_>,
    result: &mut RegistryResult,
    to_write: &[ToWrite],
) -> HashSet<usize> {
    let layers: Vec<strata_registry::Descriptor> = base
        .base
        .image
        .layers
        .iter()
        .filter_map(|l| registry_descriptor(&l.descriptor).ok())
        .collect();
    let mut repositories: BTreeMap<String, Vec<&ToWrite>> = BTreeMap::new();
    for item in to_write {
        let repository = format!("{}/{}", item.1.registry(), item.1.repository());
        repositories.entry(repository).or_default().push(item);
    }
    let pushed: Vec<RepositoryPush> = repositories
        .par_iter()
        .map(|(repository, items)| {
            // The configs, and the run image SBOM layers they name, are new.
            let mut configs: Vec<strata_registry::Descriptor> = Vec::new();
            for (_, _, rebased) in items {
                let sbom = rebased.run_sbom.as_ref().map(|(d, _)| d);
                for d in std::iter::once(&rebased.config).chain(sbom) {
                    if let Ok(d) = registry_descriptor(d)
                        && !configs.iter().any(|c| c.digest == d.digest)
                    {
                        configs.push(d);
                    }
                }
            }
            let target = &items[0].1;
            let push = |wanted: &[strata_registry::Descriptor], from| {
                client.push_blobs(blobs, wanted, target, from).map_err(|e| {
                    registry_error(
                        format!(
                            "cannot push the new run image's layers and the rebased config to docker://{repository}"
                        ),
                        e,
                    )
                })
            };
            // The layers may be mounted from the run image's repository; the configs are new.
            let reports = push(&layers, base.source).and_then(|l| Ok([l, push(&configs, None)?]));
            (items.iter().map(|(i, _, _)| *i).collect(), reports)
        })
        .collect();
    let mut failed = HashSet::new();
    for (indices, reports) in pushed {
        match reports {
            Ok(reports) => {
                for report in reports {
                    result.blobs.uploaded += report.uploaded;
                    result.blobs.mounted += report.mounted;
                    result.blobs.skipped += report.skipped;
                    result.blobs.bytes += report.bytes;
                }
            }
            Err(RebaseErrorKind::Registry { what, source }) => {
                for i in indices {
                    failed.insert(i);
                    let (what, source) = (what.clone(), Arc::clone(&source));
                    fail(
                        &mut result.images,
                        i,
                        RebaseErrorKind::Registry { what, source },
                    );
                }
            }
            Err(other) => {
                let message = other.to_string();
                for i in indices {
                    failed.insert(i);
                    fail(
                        &mut result.images,
                        i,
                        RebaseErrorKind::Spec(message.clone()),
                    );
                }
            }
        }
    }
    failed
}

/// Puts the run image's layers and SBOM layers (symlinks to their blobs) and every rebased
/// config into `blobs`.
fn stage(blobs: &BlobDir, base: &NewBase, to_write: &[ToWrite]) -> std::io::Result<()> {
    std::fs::create_dir_all(blobs.dir())?;
    for layer in &base.image.layers {
        let (Some(file), Ok(d)) = (&layer.blob, registry_descriptor(&layer.descriptor)) else {
            continue;
        };
        let link = blobs.path(&d.digest);
        if !link.exists() {
            std::os::unix::fs::symlink(std::path::absolute(file)?, link)?;
        }
    }
    for (_, _, rebased) in to_write {
        if let Ok(d) = registry_descriptor(&rebased.config) {
            std::fs::write(blobs.path(&d.digest), &rebased.config_bytes)?;
        }
        if let Some((descriptor, file)) = &rebased.run_sbom
            && let Ok(d) = registry_descriptor(descriptor)
        {
            let link = blobs.path(&d.digest);
            if !link.exists() {
                std::os::unix::fs::symlink(std::path::absolute(file)?, link)?;
            }
        }
    }
    Ok(())
}

/// Step 3 for one image: the tag moves to the rebased manifest if it still names `read`.
fn retag(
    client: &Client,
    reference: &Reference,
    rebased: &Rebased,
    read: &str,
) -> Result<(), RebaseErrorKind> {
    let now = client
        .manifest_digest(reference)
        .map_err(|e| registry_error("cannot check the tag before moving it".to_owned(), e))?;
    if now.as_str() != read {
        return Err(RebaseErrorKind::ChangedMeanwhile {
            read: read.to_owned(),
            now: Some(now.to_string()),
        });
    }
    let descriptor = strata_registry::Descriptor {
        media_type: OCI_MANIFEST.to_owned(),
        digest: Digest::from_str(rebased.manifest.digest().as_ref())
            .map_err(|e| RebaseErrorKind::Spec(e.to_string()))?,
        size: rebased.manifest.size(),
        platform: None,
    };
    client
        .push_manifest(reference, &descriptor, rebased.manifest_bytes.clone())
        .map_err(|e| registry_error("cannot write the rebased manifest".to_owned(), e))
}
