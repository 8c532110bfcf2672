//! Pulling an image into a blob directory: its index (if the reference names one), the
//! manifest for the wanted platform, the config, and the layers.
//!
//! Nothing is fetched that the directory already has: a manifest is first asked for by
//! `HEAD` (its digest, no body), and a blob already present under its digest with its
//! size is not requested at all, so pulling an unchanged image again transfers only
//! the `HEAD`. Every byte that arrives is hashed on the way in and named by its digest
//! only if it matches (see [`crate::blobdir`]). The config comes before any layer, so an
//! image for another platform fails before its layers are downloaded.

use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use crate::blobdir::BlobDir;
use crate::client::{Client, Session};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{
    ACCEPTED, ConfigPlatform, Descriptor, OCI_INDEX, OCI_MANIFEST, Parsed, Platform,
};
use crate::reference::Reference;

/// What a pull brought into the blob directory.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The index the reference named, if it named one (the manifest was chosen from it).
    pub index: Option<Descriptor>,
    /// The image manifest.
    pub manifest: Descriptor,
    /// The image config.
    pub config: Descriptor,
    /// The layers, in manifest order.
    pub layers: Vec<Descriptor>,
    /// What was transferred.
    pub stats: PullStats,
}

/// Transfer counts of a pull.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullStats {
    /// Blobs (config, layers) and manifests downloaded.
    pub downloaded: usize,
    /// Blobs and manifests already in the directory.
    pub present: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// A manifest or index fetched by reference: its descriptor and bytes.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type, digest and size.
    pub descriptor: Descriptor,
    /// The bytes, exactly as the registry stores them.
    pub bytes: Vec<u8>,
}

impl Client {
    /// Pulls `reference` into `blobs`: the index if it is one, then the manifest for
    /// [`crate::Options::platform`], the config and every layer.
    ///
    /// # Errors
    /// [`Error::NoPlatform`] / [`Error::WrongPlatform`] when there is no image for the
    /// platform; [`Error::DigestMismatch`] when content does not match its digest (no
    /// file is left for it); and any request error.
    pub fn pull(&self, reference: &Reference, blobs: &BlobDir) -> Result<Pulled, Error> {
        self.runtime.block_on(self.pull_async(reference, blobs))
    }

    /// Fetches the manifest or index `reference` names, without storing it: for reading
    /// images in place (inspect, rebase).
    ///
    /// # Errors
    /// Any request error; [`Error::DigestMismatch`] if the reference has a digest that
    /// the bytes do not match.
    pub fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        self.runtime.block_on(async {
            let session = self
                .session(reference, &format!("manifest {}", reference.target()))
                .await?;
            let (bytes, digest) = self.get_manifest(&session).await?;
            let parsed = parse(&session, &digest, &bytes)?;
            Ok(FetchedManifest {
                descriptor: descriptor(&parsed, digest, bytes.len()),
                bytes,
            })
        })
    }

    /// The digest of the manifest or index `reference` names, by `HEAD` (no body): to tell
    /// whether a tag still names what was read.
    ///
    /// # Errors
    /// Any request error.
    pub fn manifest_digest(&self, reference: &Reference) -> Result<Digest, Error> {
        self.runtime.block_on(async {
            let session = self
                .session(reference, &format!("manifest {}", reference.target()))
                .await?;
            self.head_manifest(&session).await
        })
    }

    /// Downloads the blobs `descriptors` from `repository` into `blobs`, those not
    /// already there, verified, at most [`crate::Options::jobs`] at once.
    ///
    /// # Errors
    /// As [`Client::pull`].
    pub fn pull_blobs(
        &self,
        repository: &Reference,
        descriptors: &[Descriptor],
        blobs: &BlobDir,
    ) -> Result<PullStats, Error> {
        self.runtime.block_on(async {
            let session = self.session(repository, "blobs").await?;
            let mut stats = PullStats::default();
            self.download_all(&session, descriptors, blobs, &mut stats)
                .await?;
            Ok(stats)
        })
    }

    /// Fetches the manifest each of `references` names, at most [`crate::Options::jobs`]
    /// requests in flight, so that probing many tags (a cache's keys) waits on one round trip
    /// per batch, not per tag. One result per reference, in order: `Ok(None)` when the
    /// registry has no such manifest (or repository).
    pub fn fetch_manifests(
        &self,
        references: &[Reference],
    ) -> Vec<Result<Option<FetchedManifest>, Error>> {
        self.runtime.block_on(async {
            stream::iter(references)
                .map(|reference| async move {
                    let session = self
                        .session(reference, &format!("manifest {}", reference.target()))
                        .await?;
                    match self.get_manifest(&session).await {
                        Ok((bytes, digest)) => {
                            let parsed = parse(&session, &digest, &bytes)?;
                            Ok(Some(FetchedManifest {
                                descriptor: descriptor(&parsed, digest, bytes.len()),
                                bytes,
                            }))
                        }
                        Err(Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffered(self.options.jobs.max(1))
                .collect()
                .await
        })
    }

    /// Downloads each of `descriptors` from `repository` into `blobs` (those not there
    /// already), verified, at most [`crate::Options::jobs`] at once, each with its own
    /// result in order (the bytes downloaded, 0 for one present): one bad blob fails only
    /// itself, not the others.
    ///
    /// # Errors
    /// Only when no request can be made (credentials); each blob's failure is its result.
    pub fn pull_blobs_each(
        &self,
        repository: &Reference,
        descriptors: &[Descriptor],
        blobs: &BlobDir,
    ) -> Result<Vec<Result<u64, Error>>, Error> {
        self.runtime.block_on(async {
            let session = self.session(repository, "blobs").await?;
            let session = &session;
            Ok(stream::iter(descriptors)
                .map(|d| async move {
                    if blobs.contains(&d.digest, d.size) {
                        return Ok(0);
                    }
                    self.options
                        .retry
                        .run(move || self.download(session, d, blobs))
                        .await
                })
                .buffered(self.options.jobs.max(1))
                .collect()
                .await)
        })
    }

    async fn pull_async(&self, reference: &Reference, blobs: &BlobDir) -> Result<Pulled, Error> {
        let session = self
            .session(reference, &format!("manifest {}", reference.target()))
            .await?;
        let mut stats = PullStats::default();
        let (root, bytes) = self
            .manifest_into(&session, None, blobs, &mut stats)
            .await?;
        let parsed = parse(&session, &root.digest, &bytes)?;
        let wanted = &self.options.platform;
        let (index, manifest, parsed, chosen) = if parsed.is_index() {
            let entries = parsed.manifests.unwrap_or_default();
            let entry = entries
                .iter()
                .find(|e| e.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                .ok_or_else(|| Error::NoPlatform {
                    reference: reference.to_string(),
                    wanted: wanted.clone(),
                    available: available(&entries),
                })?
                .clone();
            let (manifest, bytes) = self
                .manifest_into(&session, Some(&entry), blobs, &mut stats)
                .await?;
            let parsed = parse(&session, &manifest.digest, &bytes)?;
            if parsed.is_index() {
                return Err(Error::Manifest {
                    reference: reference.to_string(),
                    digest: manifest.digest,
                    message: "an index entry for a platform names another index".to_owned(),
                });
            }
            (Some(root), manifest, parsed, true)
        } else {
            (None, root, parsed, false)
        };
        let config = parsed.config.clone().ok_or_else(|| Error::Manifest {
            reference: reference.to_string(),
            digest: manifest.digest.clone(),
            message: "no config descriptor".to_owned(),
        })?;
        self.download_all(&session, std::slice::from_ref(&config), blobs, &mut stats)
            .await?;
        if !chosen {
            check_platform(reference, wanted, blobs, &config)?;
        }
        self.download_all(&session, &parsed.layers, blobs, &mut stats)
            .await?;
        Ok(Pulled {
            index,
            manifest,
            config,
            layers: parsed.layers,
            stats,
        })
    }

    /// Brings a manifest into `blobs` (by `entry`, or the session's reference), unless
    /// it is there already, and returns its descriptor and bytes.
    async fn manifest_into(
        &self,
        session: &Session,
        entry: Option<&Descriptor>,
        blobs: &BlobDir,
        stats: &mut PullStats,
    ) -> Result<(Descriptor, Vec<u8>), Error> {
        let by_digest;
        let session = match entry {
            Some(entry) => {
                by_digest = self
                    .session(
                        &session.reference.with_digest(entry.digest.clone()),
                        &format!("manifest {}", entry.digest),
                    )
                    .await?;
                &by_digest
            }
            None => session,
        };
        // The digest without the body: from the entry or the reference, else a HEAD.
        let known = match (entry, session.reference.digest()) {
            (Some(entry), _) => Some(entry.digest.clone()),
            (None, Some(digest)) => Some(digest.clone()),
            (None, None) => Some(self.head_manifest(session).await?),
        };
        if let Some(digest) = known
            && let Ok(bytes) = blobs.read_verified(&digest)
        {
            stats.present += 1;
            let parsed = parse(session, &digest, &bytes)?;
            return Ok((descriptor(&parsed, digest, bytes.len()), bytes));
        }
        let (bytes, digest) = self.get_manifest(session).await?;
        blobs.write(&digest, &bytes)?;
        stats.downloaded += 1;
        stats.bytes += bytes.len() as u64;
        let parsed = parse(session, &digest, &bytes)?;
        Ok((descriptor(&parsed, digest, bytes.len()), bytes))
    }

    /// The digest of the session's manifest, by `HEAD`.
    async fn head_manifest(&self, session: &Session) -> Result<Digest, Error> {
        let digest = self
            .options
            .retry
            .run(|| async {
                self.oci
                    .fetch_manifest_digest(&session.oci, &session.cred.auth)
                    .await
                    .map_err(|e| session.ctx().oci(e))
            })
            .await?;
        digest.parse().map_err(|_| {
            session
                .ctx()
                .protocol(format!("manifest digest `{digest}` is not sha256"))
        })
    }

    /// The session's manifest bytes and digest, verified against the reference's digest.
    async fn get_manifest(&self, session: &Session) -> Result<(Vec<u8>, Digest), Error> {
        let (bytes, digest) = self
            .options
            .retry
            .run(|| async {
                self.oci
                    .pull_manifest_raw(&session.oci, &session.cred.auth, ACCEPTED)
                    .await
                    .map_err(|e| session.ctx().oci(e))
            })
            .await?;
        let bytes = bytes.to_vec();
        // oci-client takes the digest from the registry's header when it has one; the
        // name a manifest is stored under must be that of its bytes.
        let actual = Digest::of(&bytes);
        if actual.as_str() != digest {
            return Err(Error::DigestMismatch {
                registry: session.reference.registry().to_owned(),
                repository: session.reference.repository().to_owned(),
                digest: digest.parse().unwrap_or_else(|_| actual.clone()),
                actual: actual.to_string(),
            });
        }
        Ok((bytes, actual))
    }

    /// Downloads those of `descriptors` not in `blobs`, a bounded number at once.
    async fn download_all(
        &self,
        session: &Session,
        descriptors: &[Descriptor],
        blobs: &BlobDir,
        stats: &mut PullStats,
    ) -> Result<(), Error> {
        let mut seen = std::collections::HashSet::new();
        let mut missing = Vec::new();
        for d in descriptors {
            if !seen.insert(&d.digest) {
                continue;
            }
            if blobs.contains(&d.digest, d.size) {
                stats.present += 1;
            } else {
                missing.push(d);
            }
        }
        let sizes: Vec<u64> = stream::iter(missing)
            .map(|d| {
                self.options
                    .retry
                    .run(move || self.download(session, d, blobs))
            })
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect()
            .await?;
        stats.downloaded += sizes.len();
        stats.bytes += sizes.iter().sum::<u64>();
        Ok(())
    }

    /// One try at downloading a blob: streamed into a temporary file, hashed and
    /// size-checked on the way, named by its digest only if it matches.
    pub(crate) async fn download(
        &self,
        session: &Session,
        d: &Descriptor,
        blobs: &BlobDir,
    ) -> Result<u64, Error> {
        let what = format!("blob {}", d.digest);
        let ctx = session.ctx_for(&what);
        let mut response = self
            .oci
            .pull_blob_stream(&session.oci, d.digest.as_str())
            .await
            .map_err(|e| ctx.oci(e))?;
        let mut writer = blobs.writer()?;
        while let Some(chunk) = response.next().await {
            let chunk = chunk.map_err(|e| ctx.io(&e))?;
            if writer.len() + chunk.len() as u64 > d.size {
                return Err(Error::TooLarge {
                    registry: session.reference.registry().to_owned(),
                    digest: d.digest.clone(),
                    size: d.size,
                });
            }
            // Blocking writes on the runtime's worker: small, buffered by the page cache.
            writer.write(&chunk)?;
        }
        let actual = writer.digest();
        if actual != d.digest {
            return Err(Error::DigestMismatch {
                registry: session.reference.registry().to_owned(),
                repository: session.reference.repository().to_owned(),
                digest: d.digest.clone(),
                actual: actual.to_string(),
            });
        }
        let len = writer.len();
        writer.commit(&d.digest)?;
        Ok(len)
    }
}

fn parse(session: &Session, digest: &Digest, bytes: &[u8]) -> Result<Parsed, Error> {
    Parsed::parse(bytes).map_err(|e| Error::Manifest {
        reference: session.reference.to_string(),
        digest: digest.clone(),
        message: e.to_string(),
    })
}

fn descriptor(parsed: &Parsed, digest: Digest, size: usize) -> Descriptor {
    let media_type = parsed.media_type.clone().unwrap_or_else(|| {
        if parsed.is_index() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        }
        .to_owned()
    });
    Descriptor {
        media_type,
        digest,
        size: size as u64,
        platform: None,
    }
}

/// The platforms an index lists, for the error when none fits.
fn available(entries: &[Descriptor]) -> String {
    let list: Vec<String> = entries
        .iter()
        .map(|e| {
            e.platform
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), Platform::to_string)
        })
        .collect();
    if list.is_empty() {
        "no manifests".to_owned()
    } else {
        list.join(", ")
    }
}

/// A single-platform image must be for the wanted platform: its config says which.
fn check_platform(
    reference: &Reference,
    wanted: &Platform,
    blobs: &BlobDir,
    config: &Descriptor,
) -> Result<(), Error> {
    let bytes = blobs.read_verified(&config.digest)?;
    let found: ConfigPlatform = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
        reference: reference.to_string(),
        digest: config.digest.clone(),
        message: format!("config: {e}"),
    })?;
    let found = Platform {
        os: found.os,
        architecture: found.architecture,
        variant: found.variant,
    };
    if wanted.matches(&found) {
        Ok(())
    } else {
        Err(Error::WrongPlatform {
            reference: reference.to_string(),
            wanted: wanted.clone(),
            found: found.to_string(),
        })
    }
}
