//! `strata sign` and `strata verify-signature`: a signature of an image's manifest digest,
//! attached to the image as an OCI 1.1 artifact (see `strata_exporter::imagesig` for the
//! payload and `crate::attach` for where it goes), and its check.

use std::path::PathBuf;

use clap::Args;
use strata_exporter::imagesig::{signature_artifact, verify};
use strata_exporter::referrers::SIGNATURE_ARTIFACT_TYPE;
use strata_exporter::signing::{PublicKey, SigningKey};

use crate::attach::Attached;
use crate::error::CliError;
use crate::images::{Images, RegistrySettings};

pub(crate) const SIGN_EXAMPLES: &str = "Examples:
  strata key generate --output cosign.key
  strata sign oci:out:app --key cosign.key
  strata sign docker://registry.example.com/apps/api:1.2 --key cosign.key

The signature is attached to the image as an OCI 1.1 artifact (artifactType
application/vnd.dev.cosign.artifact.sig.v1+json, a cosign simple-signing payload), listed
under the tag sha256-<hex> of the image's digest. Exit codes: 0 signed, 1 the image could not be
read or written, 2 bad input.";

pub(crate) const VERIFY_EXAMPLES: &str = "Examples:
  strata verify-signature oci:out:app --key cosign.pub
  strata verify-signature docker://registry.example.com/apps/api:1.2 --key cosign.pub

Exit codes: 0 a signature by the key of this image's digest verifies; 1 none does (unsigned,
tampered, signed by another key, or of another image: the message says which); 2 bad input.";

/// How the registry is reached, for the commands that read images by reference.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// A registry (`HOST[:PORT]`) spoken to over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registries: Vec<String>,
    /// A PEM file of CA certificates that registries are trusted by, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The image: `oci:DIR:TAG` or `docker://HOST/REPO:TAG`.
    pub(crate) image: String,
    /// The private key (PKCS#8 PEM, Ed25519 or ECDSA P-256).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: PathBuf,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The image: `oci:DIR:TAG` or `docker://HOST/REPO:TAG`.
    pub(crate) image: String,
    /// The public key (`SubjectPublicKeyInfo` PEM, as `strata key generate` writes KEY.pub).
    #[arg(long, value_name = "PUB")]
    pub(crate) key: PathBuf,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// A registry client set up from `args`, with its scratch in a temp directory: signing reads
/// no store.
fn images(args: &RegistryArgs, scratch: &std::path::Path) -> Images {
    Images::new(
        scratch,
        RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ca_file: args.registry_ca.clone(),
        },
    )
}

fn temp() -> Result<tempfile::TempDir, CliError> {
    tempfile::tempdir().map_err(|source| CliError::Io {
        what: "cannot make a temporary directory".to_owned(),
        source,
    })
}

/// Signs the image `image` with `key` and attaches the signature; returns the signature
/// artifact's digest.
///
/// # Errors
/// A key error (bad input), or one reading or writing the image.
pub(crate) fn sign_image(image: &Attached<'_>, key: &SigningKey) -> Result<String, CliError> {
    let artifact = signature_artifact(image.shown(), &image.subject().digest, key)?;
    image.attach(&artifact)
}

/// `strata sign`.
pub(crate) fn run_sign(args: &SignArgs) -> Result<(), CliError> {
    let key = SigningKey::from_pem_file(&args.key)?;
    let scratch = temp()?;
    let images = images(&args.registry, scratch.path());
    let image = Attached::open(&args.image, &images)?;
    let digest = sign_image(&image, &key)?;
    eprintln!(
        "signed {} ({}) with key {}: signature {digest}",
        image.shown(),
        image.subject().digest,
        key.public().id()
    );
    Ok(())
}

/// `strata verify-signature`.
pub(crate) fn run_verify(args: &VerifyArgs) -> Result<(), CliError> {
    let key = PublicKey::from_pem_file(&args.key)?;
    let scratch = temp()?;
    let images = images(&args.registry, scratch.path());
    let image = Attached::open(&args.image, &images)?;
    let signatures = image.list(SIGNATURE_ARTIFACT_TYPE)?;
    let digest = &image.subject().digest;
    verify(image.shown(), digest, &signatures, &key)?;
    eprintln!(
        "verified: {} ({digest}) is signed by key {}",
        image.shown(),
        key.id()
    );
    Ok(())
}
