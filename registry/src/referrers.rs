//! Referrers (OCI distribution 1.1): the manifests whose `subject` is a given manifest, such
//! as signatures and attestations.
//!
//! Listing asks the referrers API (`GET /v2/<name>/referrers/<digest>`); a registry without
//! it answers 404, and then the referrers tag schema is read instead: an image index tagged
//! `sha256-<hex>` after the subject's digest (oci-client does both). Attaching pushes the
//! artifact manifest by digest; when the listing afterwards does not show it (the registry
//! keeps no referrers of its own), the tag schema index is rewritten with it, as the
//! distribution spec asks of clients.
//!
//! A listing is only a list of candidates: whoever reads one checks each manifest's
//! `subject` and signatures, since anyone who can push may have written it.

use std::collections::BTreeMap;

use crate::blobdir::BlobDir;
use crate::client::Client;
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, OCI_INDEX};
use crate::reference::Reference;

/// One entry of a referrers listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerEntry {
    /// The artifact manifest.
    pub descriptor: Descriptor,
    /// Its `artifactType`.
    pub artifact_type: Option<String>,
    /// Its annotations, as listed.
    pub annotations: BTreeMap<String, String>,
}

/// The tag the referrers tag schema keeps the referrers of `digest` under: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

impl Client {
    /// The referrers of the manifest `subject` names by digest.
    ///
    /// # Errors
    /// [`Error::Manifest`] when `subject` has no digest or the listing is not an index; any
    /// request error.
    pub fn referrers(&self, subject: &Reference) -> Result<Vec<ReferrerEntry>, Error> {
        subject_digest(subject)?;
        self.runtime.block_on(async {
            let session = self.session(subject, "referrers").await?;
            let index = self
                .options
                .retry
                .run(|| async {
                    self.oci
                        .pull_referrers(&session.oci, None)
                        .await
                        .map_err(|e| session.ctx().oci(e))
                })
                .await?;
            let mut entries = Vec::new();
            for entry in index.manifests {
                // An entry that is not a sha256 manifest cannot be one strata wrote or reads.
                let (Ok(entry_digest), Ok(size)) =
                    (entry.digest.parse::<Digest>(), u64::try_from(entry.size))
                else {
                    continue;
                };
                entries.push(ReferrerEntry {
                    descriptor: Descriptor {
                        media_type: entry.media_type,
                        digest: entry_digest,
                        size,
                        platform: None,
                    },
                    artifact_type: entry.artifact_type,
                    annotations: entry.annotations.unwrap_or_default(),
                });
            }
            Ok(entries)
        })
    }

    /// Pushes the artifact manifest `artifact` (with its blobs, from `blobs`) into the
    /// repository of `subject`, and makes it a listed referrer of `subject`: where the registry
    /// does not list it by itself, the tag schema index is rewritten to hold `index_entry`
    /// (the entry's JSON, as a referrers index lists it) after the entries of `keep`, the
    /// listed referrers the caller keeps.
    ///
    /// # Errors
    /// As [`Client::push`] and [`Client::referrers`].
    pub fn attach(
        &self,
        blobs: &BlobDir,
        artifact: &Descriptor,
        subject: &Reference,
        index_entry: &serde_json::Value,
        keep: impl Fn(&ReferrerEntry) -> bool,
    ) -> Result<(), Error> {
        subject_digest(subject)?;
        let by_digest = subject.with_digest(artifact.digest.clone());
        self.push(blobs, artifact, &by_digest, None)?;
        let listed = self.referrers(subject)?;
        if listed
            .iter()
            .any(|e| e.descriptor.digest == artifact.digest)
        {
            return Ok(());
        }
        let mut manifests: Vec<serde_json::Value> =
            listed.iter().filter(|e| keep(e)).map(entry_json).collect();
        manifests.push(index_entry.clone());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::Manifest {
            reference: subject.to_string(),
            digest: artifact.digest.clone(),
            message: e.to_string(),
        })?;
        let descriptor = Descriptor {
            media_type: OCI_INDEX.to_owned(),
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            platform: None,
        };
        let digest = subject_digest(subject)?;
        let tag = subject
            .with_new_tag(&fallback_tag(&digest))
            .map_err(|e| Error::Manifest {
                reference: subject.to_string(),
                digest: digest.clone(),
                message: e.to_string(),
            })?;
        self.push_manifest(&tag, &descriptor, bytes)
    }
}

/// The digest `subject` names; referrers are of a manifest, not of a tag.
fn subject_digest(subject: &Reference) -> Result<Digest, Error> {
    subject.digest().cloned().ok_or_else(|| Error::Manifest {
        reference: subject.to_string(),
        digest: Digest::of(b""),
        message: "referrers are of a manifest by digest, not of a tag".to_owned(),
    })
}

/// A listed referrer as an index entry again.
fn entry_json(entry: &ReferrerEntry) -> serde_json::Value {
    let mut value = serde_json::json!({
        "mediaType": entry.descriptor.media_type,
        "digest": entry.descriptor.digest.as_str(),
        "size": entry.descriptor.size,
    });
    if let Some(kind) = &entry.artifact_type {
        value["artifactType"] = serde_json::Value::from(kind.as_str());
    }
    if !entry.annotations.is_empty() {
        value["annotations"] = serde_json::json!(entry.annotations);
    }
    value
}
