//! Where `strata build --output` sends images that are not a layout: a registry
//! (`docker://HOST/REPO:TAG`, or `docker://HOST/NAMESPACE` for a workspace, one repository
//! `NAMESPACE/<service>` each) or a `docker save` tarball (`docker-archive:PATH[:NAME:TAG]`).
//!
//! Images are built exactly as for a layout output, into a layout in the store that belongs to
//! this output (so an unchanged service is up to date there and its digest is the layout
//! build's), and then pushed or saved. A push sends only the blobs the registry lacks (each
//! asked for by `HEAD` first; one a remote cache on the same registry has is mounted from
//! there), then the manifest under every `--tag`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use strata_engine::store::store_dir;
use strata_exporter::layout::Layout;
use strata_registry::{BlobDir, Descriptor, MountSources, Reference};

use crate::error::CliError;
use crate::images::{Images, Location};

/// A non-layout output.
#[derive(Debug, Clone)]
pub(crate) enum Publish {
    /// Push to a registry: one repository, or (a workspace) one per service under a namespace.
    Registry {
        /// `HOST/REPO` (one app) or `HOST/NAMESPACE` (a workspace).
        reference: Reference,
        /// Whether each service gets `NAMESPACE/<service>`.
        namespace: bool,
        /// The tags to push.
        tags: Vec<String>,
    },
    /// Save as a `docker save` tarball.
    Archive { path: PathBuf, name: Option<String> },
}

/// What was pushed or saved for one image, as `--json` reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PushedReport {
    /// The references written (`docker://…` or `docker-archive:…`).
    pub(crate) references: Vec<String>,
    /// Blobs uploaded, mounted from another repository, and skipped (the registry had them).
    pub(crate) uploaded: usize,
    pub(crate) mounted: usize,
    pub(crate) skipped: usize,
    /// Bytes uploaded.
    pub(crate) bytes: u64,
    /// Where the image went and the blobs it names (config and layers), all there once
    /// pushed: a later push to the same registry mounts them from there.
    #[serde(skip)]
    pub(crate) holds: Option<(Reference, HashSet<strata_registry::Digest>)>,
}

impl Publish {
    /// The output `text` when it is not a layout, with `--tag`s; `workspace` for a workspace
    /// output. `None` for a layout.
    ///
    /// # Errors
    /// A usage error for a reference that cannot be an output of this build.
    pub(crate) fn parse(
        text: &str,
        base: &Path,
        tags: &[String],
        workspace: bool,
    ) -> Result<Option<Self>, CliError> {
        let usage = |message: &str| Err(CliError::Usage(format!("output {text}: {message}")));
        match Location::parse(text, base)? {
            Location::Layout(_) => {
                if !tags.is_empty() {
                    return usage("--tag is for registry outputs; a layout's tag is oci:DIR:TAG");
                }
                Ok(None)
            }
            Location::Registry(reference) => {
                if reference.digest().is_some() {
                    return usage("an image is pushed by tag, not by digest");
                }
                if workspace && reference.tag().is_some() {
                    return usage(
                        "a workspace pushes each service to NAMESPACE/<service>: name docker://HOST/NAMESPACE and pass --tag",
                    );
                }
                let mut tags = tags.to_vec();
                if tags.is_empty() {
                    tags.push(reference.tag().unwrap_or("latest").to_owned());
                }
                for tag in &tags {
                    reference
                        .with_new_tag(tag)
                        .map_err(|e| CliError::Usage(format!("--tag {tag}: {e}")))?;
                }
                Ok(Some(Publish::Registry {
                    reference,
                    namespace: workspace,
                    tags,
                }))
            }
            Location::Archive { path, name } => {
                if workspace {
                    return usage(
                        "a docker-archive holds one image; build one service (--service) or push the workspace to a registry",
                    );
                }
                if !tags.is_empty() {
                    return usage(
                        "--tag is for registry outputs; an archive is named PATH:NAME:TAG",
                    );
                }
                Ok(Some(Publish::Archive { path, name }))
            }
        }
    }

    /// The store layout images for `output` are built in before they are pushed or saved.
    pub(crate) fn staging_layout(cache_dir: &Path, output: &str) -> PathBuf {
        let key = Sha256::digest(output.as_bytes());
        let hex = key[..16].iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        store_dir(cache_dir).join("outputs").join(hex)
    }

    /// The name a service's image goes out under, for reports.
    pub(crate) fn shown(&self, service: &str) -> String {
        match self {
            Publish::Registry { tags, .. } => match self.repository(service) {
                Ok(r) => format!(
                    "docker://{}:{}",
                    r,
                    tags.first().map_or("latest", String::as_str)
                ),
                Err(_) => format!("docker://{service}"),
            },
            Publish::Archive { path, name } => match name {
                Some(name) => format!("docker-archive:{}:{name}", path.display()),
                None => format!("docker-archive:{}", path.display()),
            },
        }
    }

    /// `HOST/REPO` a service is pushed to.
    fn repository(&self, service: &str) -> Result<String, CliError> {
        let Publish::Registry {
            reference,
            namespace,
            ..
        } = self
        else {
            return Err(CliError::Usage("not a registry output".to_owned()));
        };
        let repository = if *namespace {
            format!("{}/{service}", reference.repository())
        } else {
            reference.repository().to_owned()
        };
        Ok(format!("{}/{repository}", reference.registry()))
    }

    /// Pushes or saves the image tagged `tag` in `layout` (service `service`). A blob the
    /// registry lacks is mounted from its source in `sources` (a repository an earlier push
    /// of this build wrote it to, else a remote cache's repository, which has the layers of
    /// every entry) when that is on the same registry, else uploaded. The layout may lack a
    /// layer a remote hit left promised: the registry has it or mounts it.
    ///
    /// # Errors
    /// A registry error for a failed push, a layout or archive error otherwise.
    pub(crate) fn publish(
        &self,
        images: &Images,
        layout: &Path,
        tag: &str,
        service: &str,
        sources: &MountSources,
    ) -> Result<PushedReport, CliError> {
        match self {
            Publish::Archive { path, name } => {
                strata_exporter::dockerarchive::write(layout, tag, path, name.as_deref())?;
                Ok(PushedReport {
                    references: vec![self.shown(service)],
                    ..PushedReport::default()
                })
            }
            Publish::Registry { tags, .. } => {
                let repository = self.repository(service)?;
                let (descriptor, manifest) = Layout::open(layout)?.resolve(tag)?;
                let named: HashSet<strata_registry::Digest> = std::iter::once(manifest.config())
                    .chain(manifest.layers())
                    .filter_map(|d| d.digest().to_string().parse().ok())
                    .collect();
                let root = Descriptor {
                    media_type: descriptor.media_type().to_string(),
                    digest: descriptor
                        .digest()
                        .to_string()
                        .parse()
                        .map_err(|e| CliError::Usage(format!("{e}")))?,
                    size: descriptor.size(),
                    platform: None,
                };
                let blobs = BlobDir::new(layout.join("blobs").join("sha256"));
                let client = images.client()?;
                let mut report = PushedReport::default();
                for (i, tag) in tags.iter().enumerate() {
                    let target = Reference::parse(&format!("{repository}:{tag}"))
                        .map_err(|e| CliError::Usage(format!("--tag {tag}: {e}")))?;
                    let shown = format!("docker://{target}");
                    if i == 0 {
                        let pushed = client
                            .push_mounting(&blobs, &root, &target, sources)
                            .map_err(|source| CliError::RegistryImage {
                                what: format!("cannot push {shown}"),
                                source: Box::new(source),
                            })?;
                        report.uploaded = pushed.uploaded;
                        report.mounted = pushed.mounted;
                        report.skipped = pushed.skipped;
                        report.bytes = pushed.bytes;
                        report.holds = Some((target.clone(), named.clone()));
                    } else {
                        // Every blob is there now: only the manifest goes under the tag.
                        let bytes = blobs.read_verified(&root.digest).map_err(|source| {
                            CliError::RegistryImage {
                                what: format!("cannot push {shown}"),
                                source: Box::new(source),
                            }
                        })?;
                        client
                            .push_manifest(&target, &root, bytes)
                            .map_err(|source| CliError::RegistryImage {
                                what: format!("cannot push {shown}"),
                                source: Box::new(source),
                            })?;
                    }
                    report.references.push(shown);
                }
                Ok(report)
            }
        }
    }
}
