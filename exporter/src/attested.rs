//! Which of the artifacts attached to an image a key already made for it: a build whose image
//! is already in the output keeps its signature and provenance by that key as they are,
//! rather than attach new ones that differ only in their times.
//!
//! Listings are untrusted, so an artifact counts only when it verifies with the key and is
//! about the image: a signature whose payload names the image's digest, a DSSE envelope whose
//! in-toto statement has the image's digest as a subject.

use serde::Deserialize;

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::imagesig;
use crate::referrers::Referrer;
use crate::signing::PublicKey;

/// The first of `signatures` (signature artifacts listed for the image `manifest_digest`)
/// that is `key`'s signature of that digest.
pub fn signature_by<'r>(
    manifest_digest: &str,
    signatures: &'r [Referrer],
    key: &PublicKey,
) -> Option<&'r Referrer> {
    signatures.iter().find(|signature| {
        imagesig::verify("", manifest_digest, std::slice::from_ref(signature), key).is_ok()
    })
}

#[derive(Deserialize)]
struct Statement {
    #[serde(default)]
    subject: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// The first of `attestations` (provenance artifacts listed for the image `manifest_digest`)
/// whose envelope `key` signed and whose statement has that digest as a subject.
pub fn provenance_by<'r>(
    manifest_digest: &str,
    attestations: &'r [Referrer],
    key: &PublicKey,
) -> Option<&'r Referrer> {
    let hex = manifest_digest.strip_prefix("sha256:")?;
    attestations.iter().find(|attestation| {
        serde_json::from_slice::<Envelope>(&attestation.layer)
            .ok()
            .and_then(|envelope| envelope.verify(IN_TOTO_PAYLOAD_TYPE, key).ok())
            .and_then(|payload| serde_json::from_slice::<Statement>(&payload).ok())
            .is_some_and(|statement| {
                statement
                    .subject
                    .iter()
                    .any(|s| s.digest.get("sha256").map(String::as_str) == Some(hex))
            })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dsse::sign;
    use crate::signing::{Algorithm, SigningKey, generate};

    fn key() -> SigningKey {
        let generated = generate(Algorithm::Ed25519).unwrap();
        SigningKey::from_pem(generated.private_pem.as_bytes(), Path::new("k")).unwrap()
    }

    fn referrer(layer: Vec<u8>) -> Referrer {
        Referrer {
            digest: "sha256:1".to_owned(),
            artifact_type: crate::referrers::PROVENANCE_ARTIFACT_TYPE.to_owned(),
            annotations: std::collections::BTreeMap::new(),
            layer_media_type: crate::dsse::DSSE_MEDIA_TYPE.to_owned(),
            layer_annotations: std::collections::BTreeMap::new(),
            layer,
        }
    }

    #[test]
    fn a_provenance_counts_for_its_key_and_image_only() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let statement = format!(
            r#"{{"subject":[{{"digest":{{"sha256":"{}"}}}}]}}"#,
            "ab".repeat(32)
        );
        let signer = key();
        let envelope = sign(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes(), &signer).unwrap();
        let listed = [referrer(serde_json::to_vec(&envelope).unwrap())];
        assert!(provenance_by(&digest, &listed, signer.public()).is_some());
        assert!(provenance_by(&digest, &listed, key().public()).is_none());
        let other = format!("sha256:{}", "cd".repeat(32));
        assert!(provenance_by(&other, &listed, signer.public()).is_none());
        // The payload changed after signing: it names the image, but the signature fails.
        let mut forged = envelope;
        forged.payload = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{statement} "),
        );
        let listed = [referrer(serde_json::to_vec(&forged).unwrap())];
        assert!(provenance_by(&digest, &listed, signer.public()).is_none());
    }
}
