//! Fleet rebase: many images of one OCI layout moved onto one new run image, in one commit.
//!
//! A nightly job rebases hundreds of app images when their run image gets a patch, so the
//! work per image must be small and one bad image must not cost the others. Per layout:
//!
//! 1. **Examine**, in parallel on the current rayon pool: resolve each tag in `index.json`,
//!    read its manifest and config (nothing else), decide whether it is on the new run
//!    image's predecessor, already up to date, refused, or to be rebased, and compute the
//!    rebased config and manifest in memory ([`crate::rebase`]). An image's failure is its
//!    own result; the batch goes on.
//! 2. **Write**, unless it is a dry run or nothing is to be rebased: one [`Staging`] for the
//!    layout receives the new run image's layer blobs once (hardlinked where the file system
//!    allows; blobs the layout has intact are skipped), then every rebased config and manifest.
//! 3. **Commit** once: [`Staging::commit_swap`] checks every new manifest is complete, moves
//!    the blobs in, and replaces `index.json` atomically with the rebased tags re-pointed. A
//!    failed image is not re-tagged, so its old manifest stays; if the commit itself fails,
//!    the layout is as it was and every image of it is reported failed. The commit is a
//!    compare-and-swap per tag: under the layout lock, a tag that no longer names the
//!    manifest read in step 1 (a build committed it meanwhile) is left as it is, and its
//!    image is reported [`RebaseErrorKind::ChangedMeanwhile`]; the rebase of a stale image
//!    never replaces a newer one.
//!
//! With `all`, the candidates are every tag of the layout, and an image is taken when its
//! lifecycle metadata records the new run image's name (`runImage.image` or a mirror): the
//! run image it was built on is the new one's predecessor. An `oci:` name matches however its
//! path is spelled ([`NewBase::is_named`]): the image's is read from the directory holding
//! its layout, as a build records it, the new run image's from the working directory. Other
//! images (another run image, no CNB metadata, an image index) are [`Status::NotOnBase`] and
//! left alone.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, MediaType};
use rayon::prelude::*;

use crate::layout::{Layout, LayoutError, MovedTag, Staging, ref_name};
use crate::rebase::{
    AppImage, NewBase, RebaseError, RebaseErrorKind, RebaseOptions, Rebased, Refusal, rebase,
};
use crate::reference::ImageRef;

/// The images of one layout to rebase.
#[derive(Debug, Clone, Default)]
pub struct LayoutBatch {
    /// The layout directory.
    pub dir: PathBuf,
    /// Tags named one by one (each must be rebasable).
    pub tags: Vec<String>,
    /// Also every image of the layout whose run image is the new one's predecessor.
    pub all: bool,
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Rebased (in a dry run: would be) to the manifest with this digest.
    Rebased {
        /// The new manifest's digest.
        digest: String,
        /// Refusals that forcing overrode.
        overridden: Vec<Refusal>,
        /// Env variables kept as the app had them though the new run image sets them
        /// differently (see [`crate::rebase`]).
        kept_env: Vec<String>,
    },
    /// Already on the new run image; left alone.
    UpToDate,
    /// Not on the new run image's predecessor (only for images found with `all`); left alone.
    NotOnBase {
        /// The run image it was recorded with (`runImage.image`), if it has CNB metadata, named
        /// as from the working directory (a relative `oci:` name is recorded from the
        /// directory holding the layout).
        on: Option<String>,
    },
}

/// One image's result.
#[derive(Debug)]
pub struct ImageResult {
    /// The image, `oci:DIR:TAG`.
    pub image: String,
    /// Its tag.
    pub tag: String,
    /// Its manifest digest before the rebase, when the tag resolved.
    pub old_digest: Option<String>,
    /// Its run image's top layer before the rebase, when its metadata was readable.
    pub old_top_layer: Option<String>,
    /// What happened.
    pub outcome: Result<Status, RebaseError>,
}

/// The results for one layout.
#[derive(Debug)]
pub struct LayoutResult {
    /// The layout directory.
    pub dir: PathBuf,
    /// Per image: the named tags in the order given, then those found with `all`, by tag.
    pub images: Vec<ImageResult>,
    /// Whether `index.json` was rewritten.
    pub committed: bool,
}

/// Rebases the images of `batch` onto `base` (see the module docs); with `dry_run`, computes
/// everything and writes nothing.
///
/// # Errors
/// Only when the layout cannot be opened; everything else is a per-image result.
pub fn rebase_layout(
    batch: &LayoutBatch,
    base: &NewBase,
    options: &RebaseOptions,
    dry_run: bool,
) -> Result<LayoutResult, LayoutError> {
    let plan = plan_layout(batch, base, options)?;
    Ok(if dry_run {
        LayoutResult {
            dir: plan.dir,
            images: plan.images,
            committed: false,
        }
    } else {
        commit_plan(plan, base)
    })
}

/// What [`plan_layout`] decided for one layout: every image's result so far, and the
/// rebased images to write.
#[derive(Debug)]
pub struct LayoutPlan {
    dir: PathBuf,
    images: Vec<ImageResult>,
    to_write: Vec<(usize, Rebased)>,
}

impl LayoutPlan {
    /// The results, as a dry run reports them.
    pub fn images(&self) -> &[ImageResult] {
        &self.images
    }
}

/// Step 1 of [`rebase_layout`]: reads the layout and computes every rebase, writing nothing.
///
/// # Errors
/// Only when the layout cannot be opened.
pub fn plan_layout(
    batch: &LayoutBatch,
    base: &NewBase,
    options: &RebaseOptions,
) -> Result<LayoutPlan, LayoutError> {
    let layout = Layout::open(&batch.dir)?;
    let mut entries: HashMap<&str, Vec<&Descriptor>> = HashMap::new();
    for entry in layout.index().manifests() {
        if let Some(tag) = ref_name(entry) {
            entries.entry(tag).or_default().push(entry);
        }
    }
    let mut seen = HashSet::new();
    let mut candidates: Vec<(&str, bool)> = batch
        .tags
        .iter()
        .filter(|t| seen.insert(t.as_str()))
        .map(|t| (t.as_str(), true))
        .collect();
    if batch.all {
        // Referrers indexes (`sha256-<hex>`: signatures, attestations) are no images.
        let mut found: Vec<&str> = entries
            .keys()
            .copied()
            .filter(|t| !crate::referrers::is_referrers_tag(t) && seen.insert(t))
            .collect();
        found.sort_unstable();
        candidates.extend(found.into_iter().map(|t| (t, false)));
    }

    let examined: Vec<(ImageResult, Option<Rebased>)> = candidates
        .par_iter()
        .map(|&(tag, named)| {
            let image = ImageRef::OciLayout {
                dir: batch.dir.clone(),
                tag: tag.to_owned(),
            }
            .to_string();
            let found = entries.get(tag).map_or(&[][..], Vec::as_slice);
            examine(&layout, image, tag, found, named, base, options)
        })
        .collect();
    let (images, plans): (Vec<ImageResult>, Vec<Option<Rebased>>) = examined.into_iter().unzip();
    let to_write: Vec<(usize, Rebased)> = plans
        .into_iter()
        .enumerate()
        .filter_map(|(i, plan)| plan.map(|p| (i, p)))
        .collect();
    Ok(LayoutPlan {
        dir: batch.dir.clone(),
        images,
        to_write,
    })
}

/// Steps 2 and 3 of [`rebase_layout`]: writes and commits what `plan` rebased, each tag only
/// if it still names the manifest the plan read.
pub fn commit_plan(plan: LayoutPlan, base: &NewBase) -> LayoutResult {
    let LayoutPlan {
        dir,
        mut images,
        to_write,
    } = plan;
    let committed = !to_write.is_empty() && write(&dir, base, &mut images, &to_write);
    LayoutResult {
        dir,
        images,
        committed,
    }
}

/// Reads one image and decides what to do with it; returns the rebased blobs to write.
fn examine(
    layout: &Layout,
    image: String,
    tag: &str,
    entries: &[&Descriptor],
    named: bool,
    base: &NewBase,
    options: &RebaseOptions,
) -> (ImageResult, Option<Rebased>) {
    let mut result = ImageResult {
        image,
        tag: tag.to_owned(),
        old_digest: None,
        old_top_layer: None,
        outcome: Ok(Status::NotOnBase { on: None }),
    };
    let fail = |result: &mut ImageResult, kind| {
        result.outcome = Err(RebaseError {
            image: result.image.clone(),
            kind,
        });
    };
    let entry = match entries {
        [one] => *one,
        [] => {
            fail(
                &mut result,
                RebaseErrorKind::TagNotFound {
                    tag: tag.to_owned(),
                },
            );
            return (result, None);
        }
        several => {
            if named {
                fail(
                    &mut result,
                    RebaseErrorKind::SeveralEntries {
                        count: several.len(),
                    },
                );
            }
            return (result, None);
        }
    };
    result.old_digest = Some(entry.digest().to_string());
    let app = AppImage::read(layout, &result.image, entry);
    // Every app layer must stay in the layout; only its size is looked at.
    let rebased = judge(&mut result, app, named, base, options, |d| {
        layout.has_blob(d)
    });
    (result, rebased)
}

/// What to do with one app image, once its manifest and config are read (`app`, or why they
/// could not be): the part of a fleet rebase that layouts and registries share. Sets
/// `result`'s outcome and top layer, and returns the rebased config and manifest to write.
///
/// `named` images must be rebasable; the others (found by listing a layout or repository) are
/// taken only when they record the new run image's name, and left alone
/// ([`Status::NotOnBase`]) when they have no CNB metadata or are not image manifests.
/// `has_layer` tells whether an app layer is where the rebased manifest will need it.
///
/// A layout batch calls it from [`rebase_layout`]; a registry batch (in the CLI, which owns the
/// registry client) calls it with the manifest and config it fetched.
pub fn judge(
    result: &mut ImageResult,
    app: Result<AppImage, RebaseErrorKind>,
    named: bool,
    base: &NewBase,
    options: &RebaseOptions,
    has_layer: impl Fn(&Descriptor) -> bool,
) -> Option<Rebased> {
    let fail = |result: &mut ImageResult, kind| {
        result.outcome = Err(RebaseError {
            image: result.image.clone(),
            kind,
        });
    };
    let app = match app {
        Ok(app) => app,
        Err(kind) => {
            let foreign = matches!(
                kind,
                RebaseErrorKind::NoMetadata | RebaseErrorKind::NotAManifest { .. }
            );
            if named || !foreign {
                fail(result, kind);
            } else {
                result.outcome = Ok(Status::NotOnBase { on: None });
            }
            return None;
        }
    };
    result.old_top_layer = Some(app.top_layer().to_owned());
    if !named && !app.is_built_on_name_of(base) {
        let on = app.run_image_shown();
        result.outcome = Ok(Status::NotOnBase { on });
        return None;
    }
    if app.is_on(base) {
        result.outcome = Ok(Status::UpToDate);
        return None;
    }
    if let Some(missing) = app.kept_layers().iter().find(|d| !has_layer(d)) {
        let digest = missing.digest().to_string();
        fail(result, RebaseErrorKind::MissingLayer { digest });
        return None;
    }
    match rebase(&app, base, options) {
        Ok(rebased) => {
            result.outcome = Ok(Status::Rebased {
                digest: rebased.manifest.digest().to_string(),
                overridden: rebased.overridden.clone(),
                kept_env: rebased.kept_env.clone(),
            });
            Some(rebased)
        }
        Err(kind) => {
            fail(result, kind);
            None
        }
    }
}

/// Stages the new run image's layers and every rebased config and manifest, then commits the
/// rebased tags. Images that fail here get the error; returns whether the commit happened.
fn write(
    dir: &Path,
    base: &NewBase,
    images: &mut [ImageResult],
    to_write: &[(usize, Rebased)],
) -> bool {
    let fail_all = |images: &mut [ImageResult], indices: &[usize], error: LayoutError| {
        let error = Arc::new(error);
        for &i in indices {
            images[i].outcome = Err(RebaseError {
                image: images[i].image.clone(),
                kind: RebaseErrorKind::Commit(Arc::clone(&error)),
            });
        }
    };
    let all: Vec<usize> = to_write.iter().map(|(i, _)| *i).collect();
    let staging = match stage_base(dir, base, to_write.iter().map(|(_, r)| r)) {
        Ok(staging) => staging,
        Err(e) => {
            fail_all(images, &all, e);
            return false;
        }
    };
    let staged: Vec<Result<(), LayoutError>> = to_write
        .par_iter()
        .map(|(_, rebased)| {
            staging.put_bytes(&rebased.config_bytes, MediaType::ImageConfig)?;
            staging.put_bytes(&rebased.manifest_bytes, MediaType::ImageManifest)?;
            Ok(())
        })
        .collect();
    let mut tags = Vec::new();
    let mut expected = Vec::new();
    let mut committing = Vec::new();
    for ((i, rebased), staged) in to_write.iter().zip(staged) {
        match staged {
            Ok(()) => {
                tags.push((images[*i].tag.clone(), rebased.manifest.clone()));
                expected.push(images[*i].old_digest.clone().unwrap_or_default());
                committing.push(*i);
            }
            Err(e) => {
                images[*i].outcome = Err(RebaseError {
                    image: images[*i].image.clone(),
                    kind: RebaseErrorKind::Stage(Box::new(e)),
                });
            }
        }
    }
    if tags.is_empty() {
        return false;
    }
    match staging.commit_swap(&tags, &expected) {
        Ok(moved) => {
            for MovedTag { tag, now } in &moved {
                if let Some(&i) = committing.iter().find(|&&i| images[i].tag == *tag) {
                    images[i].outcome = Err(RebaseError {
                        image: images[i].image.clone(),
                        kind: RebaseErrorKind::ChangedMeanwhile {
                            read: images[i].old_digest.clone().unwrap_or_default(),
                            now: now.clone(),
                        },
                    });
                }
            }
            moved.len() < tags.len()
        }
        Err(e) => {
            fail_all(images, &committing, e);
            false
        }
    }
}

/// A staging area for `dir` holding the new run image's layer blobs, and its SBOM layers that
/// the `rebased` images name.
fn stage_base<'r>(
    dir: &Path,
    base: &NewBase,
    rebased: impl Iterator<Item = &'r Rebased>,
) -> Result<Staging, LayoutError> {
    let staging = Staging::new(dir)?;
    let mut sboms = HashSet::new();
    for (descriptor, path) in rebased.filter_map(|r| r.run_sbom.as_ref()) {
        if sboms.insert(descriptor.digest().clone()) {
            staging.put_blob_file(path, descriptor)?;
        }
    }
    for layer in &base.image.layers {
        let blob = layer
            .blob
            .as_deref()
            .ok_or_else(|| LayoutError::MissingBlob {
                dir: PathBuf::from(&base.image.reference),
                digest: layer.descriptor.digest().to_string(),
                tag: None,
            })?;
        staging.put_blob_file(blob, &layer.descriptor)?;
    }
    Ok(staging)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::rebase::fixtures::{BaseSpec, write_apps, write_run_image};

    const NAME: &str = "oci:base:run";

    /// Every file under `dir` with its content.
    fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    out.push((path, bytes));
                }
            }
        }
        out.sort();
        out
    }

    fn statuses(result: &LayoutResult) -> Vec<(&str, Result<&Status, &RebaseErrorKind>)> {
        result
            .images
            .iter()
            .map(|i| (i.tag.as_str(), i.outcome.as_ref().map_err(|e| &e.kind)))
            .collect()
    }

    /// A layout `apps` with apps on run image `a`, and run image `b` named [`NAME`].
    fn setup(root: &Path, apps: &[(&str, &str)]) -> (PathBuf, NewBase) {
        let dir = root.join("apps");
        write_apps(&dir, &BaseSpec::new("a"), NAME, apps);
        let b = write_run_image(&root.join("base"), "run", &BaseSpec::new("b").layers(2));
        (dir, NewBase::new(b, NAME))
    }

    fn batch(dir: &Path, tags: &[&str], all: bool) -> LayoutBatch {
        LayoutBatch {
            dir: dir.to_path_buf(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            all,
        }
    }

    #[test]
    fn a_broken_image_fails_alone_and_the_others_are_committed_together() {
        let root = tempfile::tempdir().unwrap();
        let apps = [("one", "1"), ("two", "2"), ("broken", "3"), ("four", "4")];
        let (dir, base) = setup(root.path(), &apps);
        let layout = Layout::open(&dir).unwrap();
        let (_, broken) = layout.resolve("broken").unwrap();
        std::fs::remove_file(layout.blob_path(broken.layers()[2].digest())).unwrap();

        let result = rebase_layout(
            &batch(&dir, &["one", "two", "broken", "four", "nope"], false),
            &base,
            &RebaseOptions::default(),
            false,
        )
        .unwrap();
        assert!(result.committed);
        let statuses = statuses(&result);
        assert_eq!(statuses.len(), 5);
        for (tag, status) in &statuses {
            match *tag {
                "broken" => assert!(
                    matches!(status, Err(RebaseErrorKind::MissingLayer { .. })),
                    "{status:?}"
                ),
                "nope" => assert!(
                    matches!(status, Err(RebaseErrorKind::TagNotFound { .. })),
                    "{status:?}"
                ),
                _ => assert!(matches!(status, Ok(Status::Rebased { .. })), "{status:?}"),
            }
        }

        let after = Layout::open(&dir).unwrap();
        let tags: Vec<String> = after.tags().into_iter().map(|(t, _)| t).collect();
        assert_eq!(tags, ["broken", "four", "one", "two"]);
        assert_eq!(
            after.resolve("broken").unwrap().0.digest(),
            layout.resolve("broken").unwrap().0.digest(),
            "a failed image keeps its manifest"
        );
        for image in &result.images {
            if let Ok(Status::Rebased { digest, .. }) = &image.outcome {
                let (descriptor, manifest) = after.resolve(&image.tag).unwrap();
                assert_eq!(&descriptor.digest().to_string(), digest);
                assert!(manifest.layers().iter().all(|l| after.has_blob(l)));
                assert_eq!(
                    &manifest.layers()[..2],
                    &base
                        .image
                        .layers
                        .iter()
                        .map(|l| l.descriptor.clone())
                        .collect::<Vec<_>>()[..]
                );
            }
        }
        let leftovers = std::fs::read_dir(root.path()).unwrap().count();
        assert_eq!(leftovers, 2, "no staging directory is left behind");
    }

    #[test]
    fn a_dry_run_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let (dir, base) = setup(root.path(), &[("one", "1"), ("two", "2")]);
        let before = tree(root.path());
        let result = rebase_layout(
            &batch(&dir, &[], true),
            &base,
            &RebaseOptions::default(),
            true,
        )
        .unwrap();
        assert!(!result.committed);
        assert!(
            statuses(&result)
                .iter()
                .all(|(_, s)| matches!(s, Ok(Status::Rebased { .. })))
        );
        assert_eq!(tree(root.path()), before);
    }

    #[test]
    fn all_takes_the_images_on_the_named_run_image_and_then_finds_them_up_to_date() {
        let root = tempfile::tempdir().unwrap();
        let (dir, base) = setup(root.path(), &[("one", "1"), ("two", "2")]);
        write_apps(
            &dir,
            &BaseSpec::new("a"),
            "oci:other:run",
            &[("other", "3")],
        );
        write_run_image(&dir, "run", &BaseSpec::new("a"));

        let first = rebase_layout(
            &batch(&dir, &[], true),
            &base,
            &RebaseOptions::default(),
            false,
        )
        .unwrap();
        assert!(first.committed);
        let found = statuses(&first);
        assert!(matches!(found[0], ("one", Ok(Status::Rebased { .. }))));
        // Named as from the working directory: read from the directory holding the layout.
        let other = format!("oci:{}:run", root.path().join("other").display());
        assert!(
            matches!(&found[1], ("other", Ok(Status::NotOnBase { on: Some(on) })) if *on == other),
            "{:?}",
            found[1]
        );
        assert!(matches!(
            found[2],
            ("run", Ok(Status::NotOnBase { on: None }))
        ));
        assert!(matches!(found[3], ("two", Ok(Status::Rebased { .. }))));

        let index = std::fs::read(dir.join("index.json")).unwrap();
        let second = rebase_layout(
            &batch(&dir, &["one"], true),
            &base,
            &RebaseOptions::default(),
            false,
        )
        .unwrap();
        assert!(!second.committed);
        assert!(matches!(
            statuses(&second)[0],
            ("one", Ok(Status::UpToDate))
        ));
        assert!(matches!(
            statuses(&second)[3],
            ("two", Ok(Status::UpToDate))
        ));
        assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), index);
    }

    #[test]
    fn app_layer_bytes_are_never_read() {
        let root = tempfile::tempdir().unwrap();
        let (dir, base) = setup(root.path(), &[("one", "1")]);
        let layout = Layout::open(&dir).unwrap();
        let (_, manifest) = layout.resolve("one").unwrap();
        for layer in &manifest.layers()[1..] {
            let path = layout.blob_path(layer.digest());
            let size = std::fs::metadata(&path).unwrap().len();
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, vec![b'?'; usize::try_from(size).unwrap()]).unwrap();
        }
        let result = rebase_layout(
            &batch(&dir, &["one"], false),
            &base,
            &RebaseOptions::default(),
            false,
        )
        .unwrap();
        assert!(matches!(
            statuses(&result)[0],
            ("one", Ok(Status::Rebased { .. }))
        ));
        assert!(result.committed);
    }

    #[test]
    fn a_tag_a_build_moved_while_the_rebase_ran_keeps_the_newer_image() {
        let root = tempfile::tempdir().unwrap();
        let (dir, base) = setup(root.path(), &[("one", "1"), ("two", "2")]);
        let plan = plan_layout(&batch(&dir, &[], true), &base, &RebaseOptions::default()).unwrap();
        // Between the read and the commit, a build commits `one` anew.
        let built = write_apps(&dir, &BaseSpec::new("a"), NAME, &[("one", "new")]);
        let result = commit_plan(plan, &base);
        assert!(result.committed);
        let statuses = statuses(&result);
        assert!(
            matches!(
                statuses[0],
                ("one", Err(RebaseErrorKind::ChangedMeanwhile { now: Some(now), .. }))
                    if *now == built[0].digest().to_string()
            ),
            "{statuses:?}"
        );
        assert!(
            matches!(statuses[1], ("two", Ok(Status::Rebased { .. }))),
            "{statuses:?}"
        );
        let layout = Layout::open(&dir).unwrap();
        let (one, _) = layout.resolve("one").unwrap();
        assert_eq!(one.digest(), built[0].digest(), "the build's image stays");
        let (two, _) = layout.resolve("two").unwrap();
        let Ok(Status::Rebased { digest, .. }) = &result.images[1].outcome else {
            unreachable!()
        };
        assert_eq!(&two.digest().to_string(), digest);
    }

    #[test]
    fn a_run_image_spelled_from_another_directory_is_the_same_run_image() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // As a workspace build records it: relative to the directory holding `out`.
        let dir = root.join("repo/monorepo/out");
        let recorded = "oci:../base:run";
        write_apps(&dir, &BaseSpec::new("a"), recorded, &[("one", "1")]);
        let b = write_run_image(
            &root.join("repo/base"),
            "run",
            &BaseSpec::new("b").layers(2),
        );
        // `--run-image` as typed in the working directory, which the test does not own: an
        // absolute spelling of the same layout, through a symlink.
        std::os::unix::fs::symlink(root.join("repo"), root.join("link")).unwrap();
        let typed = format!("oci:{}:run", root.join("link/base").display());
        let base = NewBase::new(b.clone(), typed.as_str());
        let result = rebase_layout(
            &batch(&dir, &[], true),
            &base,
            &RebaseOptions::default(),
            false,
        )
        .unwrap();
        assert!(
            matches!(statuses(&result)[0], ("one", Ok(Status::Rebased { .. }))),
            "{:?}",
            statuses(&result)
        );
        let layout = Layout::open(&dir).unwrap();
        let (_, manifest) = layout.resolve("one").unwrap();
        let config: serde_json::Value = layout.read_json(manifest.config(), "config").unwrap();
        let label = config["config"]["Labels"][crate::metadata::LIFECYCLE_LABEL]
            .as_str()
            .unwrap();
        let lifecycle: serde_json::Value = serde_json::from_str(label).unwrap();
        assert_eq!(
            lifecycle["runImage"]["image"], recorded,
            "the name is kept as recorded"
        );

        // Another tag of the same layout is another run image.
        let other = NewBase::new(b, format!("oci:{}:other", root.join("repo/base").display()));
        let result = rebase_layout(
            &batch(&dir, &[], true),
            &other,
            &RebaseOptions::default(),
            true,
        )
        .unwrap();
        assert!(
            matches!(&statuses(&result)[0], ("one", Ok(Status::NotOnBase { on: Some(on) }))
                if *on == format!("oci:{}:run", root.join("repo/base").display())),
            "{:?}",
            statuses(&result)
        );
    }

    #[test]
    fn a_missing_layout_is_an_error_of_the_batch() {
        let root = tempfile::tempdir().unwrap();
        let (_, base) = setup(root.path(), &[]);
        let err = rebase_layout(
            &batch(&root.path().join("nowhere"), &["x"], false),
            &base,
            &RebaseOptions::default(),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, LayoutError::Missing { .. }), "{err}");
    }
}
