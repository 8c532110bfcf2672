//! DSSE envelopes (Dead Simple Signing Envelope, <https://github.com/secure-systems-lab/dsse>,
//! protocol v1): what in-toto attestations are signed in.
//!
//! The signature covers the pre-authentication encoding (PAE) of the payload type and the
//! payload, never the envelope's JSON, so no JSON canonicalisation is involved:
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal. The
//! envelope carries the payload base64-encoded (standard alphabet, padded) and one
//! signature per key, each with its key id.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::signing::{KeyError, PublicKey, SigningKey};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The media type of a DSSE envelope as a blob.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// What the payload is.
    pub payload_type: String,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The id of the key that made it (see [`PublicKey::id`]); may be empty.
    #[serde(default)]
    pub keyid: String,
    /// The signature of the PAE, base64.
    pub sig: String,
}

/// Why an envelope does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The payload or a signature is not base64.
    #[error("the envelope's {what} is not base64")]
    Encoding {
        /// `payload` or `signature`.
        what: &'static str,
    },
    /// The envelope carries another kind of payload.
    #[error("the envelope's payload type is `{found}`, not `{wanted}`")]
    PayloadType {
        /// What was wanted.
        wanted: String,
        /// What it says.
        found: String,
    },
    /// No signature verifies with the key.
    #[error(
        "no signature verifies with key {key}: {}",
        if *.signed_by_key {
            "a signature names this key but does not match the payload (tampered)"
        } else {
            "the envelope is signed by another key"
        }
    )]
    NoValidSignature {
        /// The key tried.
        key: String,
        /// Whether a signature said it was made by that key.
        signed_by_key: bool,
    },
}

/// The pre-authentication encoding of `payload_type` and `payload`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Signs `payload` of type `payload_type` with `key`.
///
/// # Errors
/// [`KeyError::Sign`] if signing fails.
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Result<Envelope, KeyError> {
    let sig = key.sign(&pae(payload_type, payload))?;
    Ok(Envelope {
        payload: B64.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![Signature {
            keyid: key.public().id(),
            sig: B64.encode(sig),
        }],
    })
}

impl Envelope {
    /// The payload, verified: of type `payload_type` and signed by `key`.
    ///
    /// # Errors
    /// [`VerifyError`] saying why not.
    pub fn verify(&self, payload_type: &str, key: &PublicKey) -> Result<Vec<u8>, VerifyError> {
        if self.payload_type != payload_type {
            return Err(VerifyError::PayloadType {
                wanted: payload_type.to_owned(),
                found: self.payload_type.clone(),
            });
        }
        let payload = B64
            .decode(&self.payload)
            .map_err(|_| VerifyError::Encoding { what: "payload" })?;
        let message = pae(&self.payload_type, &payload);
        let id = key.id();
        let mut signed_by_key = false;
        for signature in &self.signatures {
            signed_by_key |= signature.keyid == id;
            let Ok(sig) = B64.decode(&signature.sig) else {
                continue;
            };
            if key.verify(&message, &sig) {
                return Ok(payload);
            }
        }
        Err(VerifyError::NoValidSignature {
            key: id,
            signed_by_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::signing::{Algorithm, generate};

    #[test]
    fn pae_is_the_dsse_encoding() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn an_envelope_verifies_until_its_payload_or_key_changes() {
        let generated = generate(Algorithm::P256).unwrap();
        let key = SigningKey::from_pem(generated.private_pem.as_bytes(), Path::new("k")).unwrap();
        let envelope = sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key).unwrap();
        assert_eq!(
            envelope.verify(IN_TOTO_PAYLOAD_TYPE, key.public()).unwrap(),
            b"{\"a\":1}"
        );
        let mut tampered = envelope.clone();
        tampered.payload = B64.encode(b"{\"a\":2}");
        assert_eq!(
            tampered.verify(IN_TOTO_PAYLOAD_TYPE, key.public()),
            Err(VerifyError::NoValidSignature {
                key: key.public().id(),
                signed_by_key: true
            })
        );
        let other = generate(Algorithm::Ed25519).unwrap();
        let other = PublicKey::from_pem(other.public_pem.as_bytes(), Path::new("o")).unwrap();
        assert!(matches!(
            envelope.verify(IN_TOTO_PAYLOAD_TYPE, &other),
            Err(VerifyError::NoValidSignature {
                signed_by_key: false,
                ..
            })
        ));
        assert!(matches!(
            envelope.verify("text/plain", key.public()),
            Err(VerifyError::PayloadType { .. })
        ));
    }
}
