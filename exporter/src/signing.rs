//! Signing keys: Ed25519 and ECDSA P-256, read from and written as PEM (a PKCS#8
//! `PRIVATE KEY`, a `SubjectPublicKeyInfo` `PUBLIC KEY`), as `openssl genpkey` and cosign write
//! them.
//!
//! Signatures are made and checked with `ring` (already the TLS provider of the registry
//! client). Ed25519 signs the message itself; ECDSA signs its SHA-256 and writes the
//! signature as ASN.1 DER, as cosign, sigstore and Python `cryptography` do. A key's id is
//! the sha256 of its public key's DER (`sha256:<hex>`), so signatures name the key that made
//! them without naming a file.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, UnparsedPublicKey,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest as _, Sha256};

/// The largest key file read: a PEM key is a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 << 10;

/// The DER of an Ed25519 `SubjectPublicKeyInfo` before its 32 key bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The DER of an ECDSA P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1) before its
/// 65-byte uncompressed point (RFC 5480).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256, DER signatures.
    P256,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::P256 => "ecdsa-p256",
        })
    }
}

/// Why a key cannot be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no key of the kind wanted, or one strata cannot use.
    #[error("key file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The system's random source failed.
    #[error("cannot generate a key: the system random source failed")]
    Random,
    /// Signing failed (only ECDSA can, and only if the random source fails).
    #[error("cannot sign with key {id}")]
    Sign {
        /// The key id.
        id: String,
    },
}

/// The PEM boundary of an encrypted PKCS#8 key.
const ENCRYPTED_PEM: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// A private key that signs.
pub struct SigningKey {
    inner: Inner,
    public: PublicKey,
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair, SystemRandom),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A public key that checks signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: Algorithm,
    /// The raw key: 32 bytes (Ed25519) or a 65-byte uncompressed point (P-256).
    raw: Vec<u8>,
}

/// A key pair as PEM text, as `strata key generate` writes it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The PKCS#8 private key, `-----BEGIN PRIVATE KEY-----`.
    pub private_pem: String,
    /// The `SubjectPublicKeyInfo`, `-----BEGIN PUBLIC KEY-----`.
    pub public_pem: String,
    /// The key id of the public key.
    pub id: String,
}

/// Makes a new key pair.
///
/// # Errors
/// [`KeyError::Random`] if the system random source fails.
pub fn generate(algorithm: Algorithm) -> Result<GeneratedKey, KeyError> {
    let rng = SystemRandom::new();
    let pkcs8 = match algorithm {
        Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        Algorithm::P256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng),
    }
    .map_err(|_| KeyError::Random)?;
    let key = SigningKey::from_pkcs8(pkcs8.as_ref(), Path::new("<generated>"))?;
    Ok(GeneratedKey {
        private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        public_pem: key.public().to_pem(),
        id: key.public().id(),
    })
}

/// `der` as PEM: base64 in lines of 64 characters between the `label` lines (RFC 7468).
fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The bytes of a key file, bounded; only a regular file (a FIFO or device would block or
/// never end).
fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    use std::io::Read as _;
    let read = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(KeyError::Invalid {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        });
    }
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::Invalid {
            path: path.to_owned(),
            reason: format!("larger than {MAX_KEY_FILE} bytes: not a PEM key"),
        });
    }
    Ok(bytes)
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key (Ed25519 or P-256) from `path`.
    ///
    /// # Errors
    /// [`KeyError::Read`] or [`KeyError::Invalid`] naming the file.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        Self::from_pem(&bytes, path)
    }

    /// Parses a PKCS#8 PEM private key; `path` is for messages.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when `bytes` holds no usable private key.
    pub fn from_pem(bytes: &[u8], path: &Path) -> Result<Self, KeyError> {
        // ring reads no encrypted PKCS#8, and no crate strata has decrypts one.
        if bytes
            .windows(ENCRYPTED_PEM.len())
            .any(|w| w == ENCRYPTED_PEM)
        {
            return Err(KeyError::Invalid {
                path: path.to_owned(),
                reason: "the key is encrypted (`ENCRYPTED PRIVATE KEY`), which strata does not read; decrypt it with `openssl pkcs8 -in KEY -out PLAIN.pem` and keep that file private".to_owned(),
            });
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(bytes).map_err(|e| KeyError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "no PKCS#8 `PRIVATE KEY` PEM block ({e}); make one with `strata key generate` or `openssl genpkey -algorithm ed25519`"
            ),
        })?;
        Self::from_pkcs8(der.secret_pkcs8_der(), path)
    }

    fn from_pkcs8(der: &[u8], path: &Path) -> Result<Self, KeyError> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = PublicKey {
                algorithm: Algorithm::Ed25519,
                raw: pair.public_key().as_ref().to_vec(),
            };
            return Ok(Self {
                inner: Inner::Ed25519(pair),
                public,
            });
        }
        let rng = SystemRandom::new();
        match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng) {
            Ok(pair) => {
                let public = PublicKey {
                    algorithm: Algorithm::P256,
                    raw: pair.public_key().as_ref().to_vec(),
                };
                Ok(Self {
                    inner: Inner::P256(pair, rng),
                    public,
                })
            }
            Err(e) => Err(KeyError::Invalid {
                path: path.to_owned(),
                reason: format!("not an Ed25519 or ECDSA P-256 PKCS#8 private key ({e})"),
            }),
        }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`.
    ///
    /// # Errors
    /// [`KeyError::Sign`] if ECDSA's random source fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Inner::P256(pair, rng) => pair
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign {
                    id: self.public.id(),
                }),
        }
    }
}

impl PublicKey {
    /// Reads a `SubjectPublicKeyInfo` PEM public key (Ed25519 or P-256) from `path`.
    ///
    /// # Errors
    /// [`KeyError::Read`] or [`KeyError::Invalid`] naming the file.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        Self::from_pem(&bytes, path)
    }

    /// Parses a `SubjectPublicKeyInfo` PEM public key; `path` is for messages.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when `bytes` holds no usable public key.
    pub fn from_pem(bytes: &[u8], path: &Path) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let der = SubjectPublicKeyInfoDer::from_pem_slice(bytes).map_err(|e| {
            invalid(format!(
                "no `PUBLIC KEY` PEM block ({e}); `strata key generate` writes one next to the private key (KEY.pub)"
            ))
        })?;
        let der: &[u8] = der.as_ref();
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..])
            && raw.len() == 32
        {
            return Ok(Self {
                algorithm: Algorithm::Ed25519,
                raw: raw.to_vec(),
            });
        }
        if let Some(raw) = der.strip_prefix(&P256_SPKI_PREFIX[..])
            && raw.len() == 65
            && raw[0] == 0x04
        {
            return Ok(Self {
                algorithm: Algorithm::P256,
                raw: raw.to_vec(),
            });
        }
        Err(invalid(
            "not an Ed25519 or ECDSA P-256 public key (uncompressed point)".to_owned(),
        ))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `SubjectPublicKeyInfo` DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let prefix: &[u8] = match self.algorithm {
            Algorithm::Ed25519 => &ED25519_SPKI_PREFIX,
            Algorithm::P256 => &P256_SPKI_PREFIX,
        };
        [prefix, &self.raw].concat()
    }

    /// The `SubjectPublicKeyInfo` as PEM.
    pub fn to_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki_der())
    }

    /// The key id: `sha256:<hex>` of the `SubjectPublicKeyInfo` DER.
    pub fn id(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.spki_der())))
    }

    /// Whether `sig` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let algorithm: &'static dyn signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::P256 => &ECDSA_P256_SHA256_ASN1,
        };
        UnparsedPublicKey::new(algorithm, &self.raw)
            .verify(message, sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_round_trip_through_pem() {
        for algorithm in [Algorithm::Ed25519, Algorithm::P256] {
            let generated = generate(algorithm).unwrap();
            let key =
                SigningKey::from_pem(generated.private_pem.as_bytes(), Path::new("k")).unwrap();
            let public =
                PublicKey::from_pem(generated.public_pem.as_bytes(), Path::new("k.pub")).unwrap();
            assert_eq!(&public, key.public());
            assert_eq!(public.algorithm(), algorithm);
            assert_eq!(public.id(), generated.id);
            let sig = key.sign(b"message").unwrap();
            assert!(public.verify(b"message", &sig));
            assert!(!public.verify(b"messagf", &sig));
            let other = generate(algorithm).unwrap();
            let other =
                PublicKey::from_pem(other.public_pem.as_bytes(), Path::new("o.pub")).unwrap();
            assert!(!other.verify(b"message", &sig));
        }
    }

    #[test]
    fn a_public_key_is_no_private_key_and_garbage_is_neither() {
        let generated = generate(Algorithm::Ed25519).unwrap();
        let err =
            SigningKey::from_pem(generated.public_pem.as_bytes(), Path::new("k.pub")).unwrap_err();
        assert!(err.to_string().contains("k.pub"), "{err}");
        assert!(PublicKey::from_pem(b"not pem", Path::new("x")).is_err());
        let err = PublicKey::from_pem(generated.private_pem.as_bytes(), Path::new("k"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PUBLIC KEY"), "{err}");
    }

    #[test]
    fn an_encrypted_key_is_refused_saying_how_to_decrypt_it() {
        // `openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:test`
        let encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhcjJj/XHYBEgICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEIyP2mgklV2rYEYAPfpD5DoEQKzK
L/5rnE4eOpBvdSa/PjQVACU9t0xSWvFhFF1puBKQj3qi39kOcEQE6WQDUd5UnK5V
BmNM57TDuKbeLvtmAR0=
-----END ENCRYPTED PRIVATE KEY-----
";
        let err = SigningKey::from_pem(encrypted, Path::new("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("k.pem") && err.contains("encrypted") && err.contains("openssl pkcs8"),
            "{err}"
        );
    }
}
