//! Image signatures in cosign's shape: the signed payload is a "simple signing" JSON document
//! naming the image's manifest digest
//! (<https://github.com/containers/image/blob/main/docs/containers-signature.5.md>):
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"…"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! It is the layer (`application/vnd.dev.cosign.simplesigning.v1+json`) of a signature
//! artifact attached to the image; the signature of those exact bytes (Ed25519, or ECDSA P-256
//! over their SHA-256, DER) is in the layer's `dev.cosignproject.cosign/signature` annotation,
//! base64, as cosign writes it. Verifying checks the signature over the payload bytes and then
//! that the payload names the image's digest, so a valid signature of another image does not
//! count.

use base64::Engine as _;
use serde::Deserialize;

use crate::referrers::{Artifact, KEY_ANNOTATION, Referrer, SIGNATURE_ARTIFACT_TYPE};
use crate::signing::{KeyError, PublicKey, SigningKey};

/// The payload's media type.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The layer annotation holding the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The payload's `critical.type`.
const PAYLOAD_TYPE: &str = "cosign container image signature";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The payload signing `manifest_digest`, an image known as `reference`.
pub fn payload(reference: &str, manifest_digest: &str) -> Vec<u8> {
    let value = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": reference },
            "image": { "docker-manifest-digest": manifest_digest },
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    value.to_string().into_bytes()
}

/// The signature artifact for the image `manifest_digest`, known as `reference`, signed by
/// `key`.
///
/// # Errors
/// [`KeyError::Sign`] if signing fails.
pub fn signature_artifact(
    reference: &str,
    manifest_digest: &str,
    key: &SigningKey,
) -> Result<Artifact, KeyError> {
    let payload = payload(reference, manifest_digest);
    let sig = key.sign(&payload)?;
    Ok(Artifact {
        artifact_type: SIGNATURE_ARTIFACT_TYPE.to_owned(),
        layer_media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        layer: payload,
        layer_annotations: [(SIGNATURE_ANNOTATION.to_owned(), B64.encode(sig))].into(),
        annotations: [(KEY_ANNOTATION.to_owned(), key.public().id())].into(),
    })
}

/// Why an image's signatures do not verify with a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature is attached at all.
    #[error("no signature is attached to {image}")]
    Unsigned {
        /// The image.
        image: String,
    },
    /// A signature says it was made by the key, but does not verify: the payload or the
    /// signature was changed.
    #[error(
        "the signature of {image} by key {key} does not verify: its payload or signature was tampered with"
    )]
    Tampered {
        /// The image.
        image: String,
        /// The key id.
        key: String,
    },
    /// The key signed a payload that names another image.
    #[error("the signature by key {key} is of {signed}, not of {image} ({digest})")]
    OtherImage {
        /// The image.
        image: String,
        /// Its digest.
        digest: String,
        /// The key id.
        key: String,
        /// The digest the payload names.
        signed: String,
    },
    /// Only other keys signed it.
    #[error("{image} is not signed by key {key}; it is signed by {}", others.join(", "))]
    WrongKey {
        /// The image.
        image: String,
        /// The key id.
        key: String,
        /// The key ids of its signatures.
        others: Vec<String>,
    },
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks that one of `signatures` (the signature artifacts attached to the image
/// `manifest_digest`, known as `image`) is `key`'s signature of a payload naming that digest.
///
/// # Errors
/// [`SignatureError`] saying what is wrong, the most specific reason first.
pub fn verify(
    image: &str,
    manifest_digest: &str,
    signatures: &[Referrer],
    key: &PublicKey,
) -> Result<(), SignatureError> {
    let id = key.id();
    if signatures.is_empty() {
        return Err(SignatureError::Unsigned {
            image: image.to_owned(),
        });
    }
    let mut tampered = false;
    let mut other_image = None;
    let mut others = Vec::new();
    for signature in signatures {
        let by_key = signature.annotations.get(KEY_ANNOTATION) == Some(&id);
        let sig = signature
            .layer_annotations
            .get(SIGNATURE_ANNOTATION)
            .and_then(|s| B64.decode(s).ok());
        let valid = sig.is_some_and(|sig| key.verify(&signature.layer, &sig));
        if !valid {
            if by_key {
                tampered = true;
            } else if let Some(other) = signature.annotations.get(KEY_ANNOTATION) {
                others.push(other.clone());
            } else {
                others.push("an unnamed key".to_owned());
            }
            continue;
        }
        match serde_json::from_slice::<Payload>(&signature.layer) {
            Ok(p)
                if p.critical.image.digest == manifest_digest
                    && p.critical.kind == PAYLOAD_TYPE =>
            {
                return Ok(());
            }
            Ok(p) => other_image = Some(p.critical.image.digest),
            Err(_) => tampered = true,
        }
    }
    if let Some(signed) = other_image {
        return Err(SignatureError::OtherImage {
            image: image.to_owned(),
            digest: manifest_digest.to_owned(),
            key: id,
            signed,
        });
    }
    if tampered {
        return Err(SignatureError::Tampered {
            image: image.to_owned(),
            key: id,
        });
    }
    others.sort();
    others.dedup();
    Err(SignatureError::WrongKey {
        image: image.to_owned(),
        key: id,
        others,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::signing::{Algorithm, generate};

    fn key(algorithm: Algorithm) -> SigningKey {
        let generated = generate(algorithm).unwrap();
        SigningKey::from_pem(generated.private_pem.as_bytes(), Path::new("k")).unwrap()
    }

    fn referrer(artifact: &Artifact) -> Referrer {
        Referrer {
            digest: String::new(),
            artifact_type: artifact.artifact_type.clone(),
            annotations: artifact.annotations.clone(),
            layer_media_type: artifact.layer_media_type.clone(),
            layer_annotations: artifact.layer_annotations.clone(),
            layer: artifact.layer.clone(),
        }
    }

    #[test]
    fn a_signature_verifies_for_its_image_and_key_only() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let signer = key(Algorithm::Ed25519);
        let artifact = signature_artifact("oci:out:app", &digest, &signer).unwrap();
        let good = referrer(&artifact);
        verify("img", &digest, std::slice::from_ref(&good), signer.public()).unwrap();

        let mut tampered = good.clone();
        tampered.layer = payload("oci:out:app", &format!("sha256:{}", "cd".repeat(32)));
        assert!(matches!(
            verify("img", &digest, &[tampered], signer.public()),
            Err(SignatureError::Tampered { .. })
        ));

        let other = key(Algorithm::P256);
        assert!(matches!(
            verify("img", &digest, std::slice::from_ref(&good), other.public()),
            Err(SignatureError::WrongKey { .. })
        ));
        let elsewhere = format!("sha256:{}", "ef".repeat(32));
        assert!(matches!(
            verify("img", &elsewhere, &[good], signer.public()),
            Err(SignatureError::OtherImage { .. })
        ));
        assert!(matches!(
            verify("img", &digest, &[], signer.public()),
            Err(SignatureError::Unsigned { .. })
        ));
    }
}
