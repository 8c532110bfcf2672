//! Artifacts attached to an image (OCI 1.1 referrers): signatures and attestations, each an
//! artifact manifest whose `subject` is the image's manifest.
//!
//! An artifact manifest has an `artifactType`, the empty config
//! (`application/vnd.oci.empty.v1+json`, `{}`), one layer holding the artifact (a DSSE
//! envelope, a signature payload) and the `subject` descriptor. How it is found:
//! - in a registry, through the referrers API or the `sha256-<hex>` tag schema (see
//!   `strata_registry::referrers`);
//! - in an OCI layout, through the same tag schema: `index.json` tags `sha256-<hex>` (after
//!   the subject's digest) with an image index listing the artifact manifests, each entry
//!   with its `artifactType` and annotations, as the distribution spec's referrers response
//!   has them. Tools that read referrers tag schema indexes (oras, regctl, cosign's
//!   `--registry-referrers-mode`) read the layout the same way.
//!
//! Each artifact carries the id of the key that signed it ([`KEY_ANNOTATION`]). Attaching an
//! artifact replaces the listed one of the same type and key, so rebuilding or re-signing an
//! image keeps one signature and one provenance per key instead of piling them up; the old
//! artifact manifest stays in the layout's blobs (nothing in a layout is removed).
//!
//! A listing is untrusted: an entry counts only if its manifest verifies against its digest
//! and names the image as its `subject`; its layer is then read (bounded, verified) for the
//! caller to check the signature.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::image::{Descriptor, MediaType};
use serde::Deserialize;

use crate::layout::{Layout, LayoutError, Staging};

/// `artifactType` of a provenance attestation: an in-toto statement in a DSSE envelope.
pub const PROVENANCE_ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";

/// `artifactType` of an image signature (as cosign's OCI 1.1 mode names it).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The annotation naming the key id that signed an artifact.
pub const KEY_ANNOTATION: &str = "dev.strata.signature.key-id";

/// The media type of the empty config.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The empty config's bytes.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// The media type of an OCI image manifest.
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The manifest a subject is: media type, digest (`sha256:<hex>`) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// An artifact to attach.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its `artifactType`.
    pub artifact_type: String,
    /// The media type of its one layer.
    pub layer_media_type: String,
    /// The layer's bytes.
    pub layer: Vec<u8>,
    /// Annotations of the layer (cosign keeps a signature in one).
    pub layer_annotations: BTreeMap<String, String>,
    /// Annotations of the manifest (and its entry in a listing).
    pub annotations: BTreeMap<String, String>,
}

/// The bytes of an artifact manifest and its blobs, ready to be stored.
#[derive(Debug, Clone)]
pub struct ArtifactManifest {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// `sha256:<hex>` of them.
    pub digest: String,
    /// The layer's digest.
    pub layer_digest: String,
}

/// A listed artifact that names the subject: what its manifest says, and its layer.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// Its manifest digest.
    pub digest: String,
    /// Its `artifactType`.
    pub artifact_type: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer's media type.
    pub layer_media_type: String,
    /// The layer's annotations.
    pub layer_annotations: BTreeMap<String, String>,
    /// The layer's bytes (verified against its digest).
    pub layer: Vec<u8>,
}

/// The tag a referrers index for `digest` (`sha256:<hex>`) has: `sha256-<hex>`.
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// Whether `tag` is a referrers tag schema tag (`sha256-` and 64 hex digits), not an image.
pub fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Artifact {
    /// Its manifest, with `subject`.
    ///
    /// # Errors
    /// Never in practice: serialising plain values.
    pub fn manifest(&self, subject: &Subject) -> Result<ArtifactManifest, serde_json::Error> {
        let layer_digest = sha256(&self.layer);
        let mut layer = serde_json::json!({
            "mediaType": self.layer_media_type,
            "digest": layer_digest,
            "size": self.layer.len(),
        });
        if !self.layer_annotations.is_empty() {
            layer["annotations"] = serde_json::json!(self.layer_annotations);
        }
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": self.artifact_type,
            "config": {
                "mediaType": EMPTY_MEDIA_TYPE,
                "digest": sha256(EMPTY_CONFIG),
                "size": EMPTY_CONFIG.len(),
                "data": "e30=",
            },
            "layers": [layer],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
        });
        if !self.annotations.is_empty() {
            manifest["annotations"] = serde_json::json!(self.annotations);
        }
        let bytes = serde_json::to_vec(&manifest)?;
        Ok(ArtifactManifest {
            digest: sha256(&bytes),
            manifest: bytes,
            layer_digest,
        })
    }

    /// The entry a referrers index lists this artifact with.
    pub fn index_entry(&self, manifest: &ArtifactManifest) -> serde_json::Value {
        let mut entry = serde_json::json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest.digest,
            "size": manifest.manifest.len(),
            "artifactType": self.artifact_type,
        });
        if !self.annotations.is_empty() {
            entry["annotations"] = serde_json::json!(self.annotations);
        }
        entry
    }

    /// Whether a listed artifact of `artifact_type` with `annotations` is one this one
    /// replaces: the same type, signed by the same key.
    pub fn replaces(
        &self,
        artifact_type: Option<&str>,
        annotations: &BTreeMap<String, String>,
    ) -> bool {
        artifact_type == Some(self.artifact_type.as_str())
            && annotations.get(KEY_ANNOTATION) == self.annotations.get(KEY_ANNOTATION)
    }
}

/// Errors attaching to or reading the referrers of an image in a layout.
#[derive(Debug, thiserror::Error)]
pub enum ReferrersError {
    /// The layout cannot be read or written.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// JSON that cannot be made.
    #[error("cannot write {what}: {source}")]
    Serialize {
        /// What.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The referrers index changed under every try to attach to it.
    #[error("the referrers index `{tag}` kept changing while an artifact was attached to it")]
    Contended {
        /// Its tag.
        tag: String,
    },
    /// A digest that is no sha256 digest.
    #[error("`{digest}` is not a sha256 digest")]
    Digest {
        /// The text.
        digest: String,
    },
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Result<Descriptor, ReferrersError> {
    let parsed: oci_spec::image::Digest = digest.parse().map_err(|_| ReferrersError::Digest {
        digest: digest.to_owned(),
    })?;
    Ok(Descriptor::new(MediaType::from(media_type), size, parsed))
}

/// The listing of an index: each entry's JSON, artifact type and annotations.
#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    manifests: Vec<ListedEntry>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct ListedEntry {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl ListedEntry {
    fn json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        });
        if let Some(kind) = &self.artifact_type {
            value["artifactType"] = serde_json::Value::from(kind.as_str());
        }
        if !self.annotations.is_empty() {
            value["annotations"] = serde_json::json!(self.annotations);
        }
        value
    }
}

/// How often an attach reads the referrers index again when another attach or build changed
/// it between read and commit, before it gives up.
const ATTACH_TRIES: usize = 100;

/// The referrers index a layout tags for `subject_digest`: its digest (empty if untagged) and
/// its entries (none if untagged).
fn layout_listing(
    layout: &Layout,
    subject_digest: &str,
) -> Result<(String, Vec<ListedEntry>), ReferrersError> {
    let tag = fallback_tag(subject_digest);
    let Some((_, entry)) = layout.tags().into_iter().find(|(t, _)| *t == tag) else {
        return Ok((String::new(), Vec::new()));
    };
    let bytes = layout.read_blob(&entry)?;
    let listing: Listing = serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
        what: "referrers index",
        path: layout.blob_path(entry.digest()),
        source,
    })?;
    Ok((entry.digest().to_string(), listing.manifests))
}

/// Attaches `artifact` to the image `subject` in the layout at `dir`: stores its manifest and
/// blobs and tags the subject's referrers index (`sha256-<hex>`) with it listed, in place of
/// an artifact it replaces. Returns the artifact manifest's digest. An artifact listed already
/// (the same bytes) leaves the index as it is.
///
/// The new index is committed with a compare-and-swap of its tag (see
/// [`Staging::commit_swap`]): when another attach changed the index after it was read, it is
/// read again and the artifact listed in it, so concurrent attaches never lose an entry.
///
/// # Errors
/// [`ReferrersError`] when the layout cannot be read or written, or the index keeps changing.
pub fn attach_in_layout(
    dir: &Path,
    subject: &Subject,
    artifact: &Artifact,
) -> Result<String, ReferrersError> {
    let manifest = artifact
        .manifest(subject)
        .map_err(|source| ReferrersError::Serialize {
            what: "an artifact manifest",
            source,
        })?;
    for _ in 0..ATTACH_TRIES {
        if let Some(attempt) = Attempt::prepare(dir, subject, artifact, &manifest)? {
            if attempt.commit()? {
                return Ok(manifest.digest);
            }
        } else {
            return Ok(manifest.digest);
        }
    }
    Err(ReferrersError::Contended {
        tag: fallback_tag(&subject.digest),
    })
}

/// One try at attaching: the new referrers index staged, and the one it was made from.
struct Attempt {
    staging: Staging,
    tag: String,
    index: Descriptor,
    read: String,
}

impl Attempt {
    /// Reads the listing and stages it with `artifact` in it; `None` when it is listed already.
    fn prepare(
        dir: &Path,
        subject: &Subject,
        artifact: &Artifact,
        manifest: &ArtifactManifest,
    ) -> Result<Option<Attempt>, ReferrersError> {
        let layout = Layout::open(dir)?;
        let (read, listing) = layout_listing(&layout, &subject.digest)?;
        // What the listing names must be a manifest the layout has: the commit checks every
        // entry, and a stale or planted one must not keep this one out.
        let present = |e: &ListedEntry| {
            e.media_type == MANIFEST_MEDIA_TYPE
                && descriptor(&e.media_type, &e.digest, e.size)
                    .is_ok_and(|d| layout.read_blob(&d).is_ok())
        };
        let replaced = |e: &ListedEntry| {
            e.digest != manifest.digest
                && artifact.replaces(e.artifact_type.as_deref(), &e.annotations)
        };
        if listing
            .iter()
            .any(|e| e.digest == manifest.digest && present(e))
            && !listing.iter().any(replaced)
        {
            return Ok(None);
        }
        let mut manifests: Vec<serde_json::Value> = listing
            .iter()
            .filter(|e| e.digest != manifest.digest && !replaced(e) && present(e))
            .map(ListedEntry::json)
            .collect();
        manifests.push(artifact.index_entry(manifest));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let staging = Staging::new(dir)?;
        staging.put_bytes(EMPTY_CONFIG, MediaType::from(EMPTY_MEDIA_TYPE))?;
        staging.put_bytes(
            &artifact.layer,
            MediaType::from(artifact.layer_media_type.as_str()),
        )?;
        staging.put_bytes(&manifest.manifest, MediaType::ImageManifest)?;
        let index = staging.put_json(&index, MediaType::ImageIndex)?;
        Ok(Some(Attempt {
            staging,
            tag: fallback_tag(&subject.digest),
            index,
            read,
        }))
    }

    /// Commits the index if its tag still names the one read; `false` when it moved.
    fn commit(self) -> Result<bool, ReferrersError> {
        let moved = self
            .staging
            .commit_swap(&[(self.tag, self.index)], &[self.read])?;
        Ok(moved.is_empty())
    }
}

/// The artifact manifest's fields a reader checks.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactFields {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    subject: Option<SubjectField>,
    #[serde(default)]
    layers: Vec<LayerField>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct SubjectField {
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerField {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Reads a listed artifact from manifest bytes (already verified against its digest):
/// `None` unless it names `subject_digest` as its subject and has one layer that `read`
/// returns (verified) bytes for.
///
/// # Errors
/// What `read` returns.
pub fn referrer_from_manifest<E>(
    digest: &str,
    manifest: &[u8],
    subject_digest: &str,
    read: impl FnOnce(&str, &str, u64) -> Result<Vec<u8>, E>,
) -> Result<Option<Referrer>, E> {
    let Ok(fields) = serde_json::from_slice::<ArtifactFields>(manifest) else {
        return Ok(None);
    };
    if fields.subject.as_ref().map(|s| s.digest.as_str()) != Some(subject_digest) {
        return Ok(None);
    }
    let (Some(artifact_type), [layer]) = (fields.artifact_type, fields.layers.as_slice()) else {
        return Ok(None);
    };
    let bytes = read(&layer.media_type, &layer.digest, layer.size)?;
    Ok(Some(Referrer {
        digest: digest.to_owned(),
        artifact_type,
        annotations: fields.annotations,
        layer_media_type: layer.media_type.clone(),
        layer_annotations: layer.annotations.clone(),
        layer: bytes,
    }))
}

/// The artifacts attached to the image `subject_digest` in the layout at `dir` whose
/// `artifactType` is `artifact_type`. Listed entries that are missing, corrupt, or not about
/// this image are left out.
///
/// # Errors
/// [`ReferrersError`] when the layout or its referrers index cannot be read.
pub fn list_in_layout(
    dir: &Path,
    subject_digest: &str,
    artifact_type: &str,
) -> Result<Vec<Referrer>, ReferrersError> {
    let layout = Layout::open(dir)?;
    let mut found = Vec::new();
    for entry in layout_listing(&layout, subject_digest)?.1 {
        if entry.artifact_type.as_deref() != Some(artifact_type) {
            continue;
        }
        let Ok(listed) = descriptor(&entry.media_type, &entry.digest, entry.size) else {
            continue;
        };
        let Ok(manifest) = layout.read_blob(&listed) else {
            continue;
        };
        let read = |media_type: &str, digest: &str, size: u64| {
            Ok::<_, ReferrersError>(layout.read_blob(&descriptor(media_type, digest, size)?)?)
        };
        if let Ok(Some(referrer)) =
            referrer_from_manifest(&entry.digest, &manifest, subject_digest, read)
            && referrer.artifact_type == artifact_type
        {
            found.push(referrer);
        }
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn signature(key: &str) -> Artifact {
        Artifact {
            artifact_type: SIGNATURE_ARTIFACT_TYPE.to_owned(),
            layer_media_type: "application/vnd.dev.cosign.simplesigning.v1+json".to_owned(),
            layer: format!("signed by {key}").into_bytes(),
            layer_annotations: BTreeMap::new(),
            annotations: [(KEY_ANNOTATION.to_owned(), key.to_owned())].into(),
        }
    }

    #[test]
    fn an_attach_whose_index_changed_meanwhile_reads_it_again_and_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        let subject = Subject {
            media_type: MANIFEST_MEDIA_TYPE.to_owned(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 2,
        };
        let (a, b) = (signature("a"), signature("b"));
        let manifest = a.manifest(&subject).unwrap();
        // `a` reads the (missing) index, then `b` attaches before `a` commits.
        let late = Attempt::prepare(dir, &subject, &a, &manifest)
            .unwrap()
            .unwrap();
        attach_in_layout(dir, &subject, &b).unwrap();
        assert!(
            !late.commit().unwrap(),
            "the index moved: nothing committed"
        );
        attach_in_layout(dir, &subject, &a).unwrap();
        let listed = list_in_layout(dir, &subject.digest, SIGNATURE_ARTIFACT_TYPE).unwrap();
        let keys: BTreeSet<&str> = listed
            .iter()
            .map(|r| r.annotations[KEY_ANNOTATION].as_str())
            .collect();
        assert_eq!(keys, BTreeSet::from(["a", "b"]));

        // The same artifact again: index.json is left as it is.
        let index = std::fs::read(dir.join("index.json")).unwrap();
        attach_in_layout(dir, &subject, &a).unwrap();
        assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), index);
    }

    #[test]
    fn referrers_tags_are_told_from_image_tags() {
        assert!(is_referrers_tag(&fallback_tag(&format!(
            "sha256:{}",
            "a".repeat(64)
        ))));
        assert!(!is_referrers_tag("sha256-abc"));
        assert!(!is_referrers_tag("latest"));
    }
}
