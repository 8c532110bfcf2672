//! What can go wrong talking to a registry, classified so that a caller can tell the
//! user what to do (log in, pass a CA, start the registry) and so that retries happen
//! only where trying again can help: 5xx answers and lost connections, never a 4xx.

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};

use crate::digest::Digest;
use crate::manifest::Platform;
use crate::reference::ReferenceError;

/// An error from a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference built by the client does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The extra CA file could not be read or holds no certificate.
    #[error("cannot use CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the registry client: {0}")]
    Setup(String),
    /// A credentials file exists but cannot be read, or a credential helper failed.
    #[error("cannot read credentials for {registry} from {source_name}: {message}")]
    Credentials {
        /// The registry whose credentials were looked up.
        registry: String,
        /// The file or helper consulted.
        source_name: String,
        /// Why.
        message: String,
    },
    /// The registry answered 401: it needs credentials, or refused the ones given.
    #[error(
        "registry {registry} requires authentication{}",
        match credentials {
            Some(from) => format!(": it refused the credentials from {from}"),
            None => ": no credentials for it were found (docker login, DOCKER_CONFIG, REGISTRY_AUTH_FILE)"
                .to_owned(),
        }
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Where the refused credentials came from; `None` when there were none.
        credentials: Option<String>,
    },
    /// The registry answered 403: these credentials may not do this.
    #[error("registry {registry} denied access to {repository}")]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
    },
    /// The manifest, blob or repository does not exist.
    #[error("{what} not found in {registry}/{repository}")]
    NotFound {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// What was asked for: `manifest TAG`, `manifest DIGEST`, `blob DIGEST`.
        what: String,
    },
    /// No connection to the registry (refused, reset, timed out), after the retries.
    #[error("registry {registry} is unreachable: {message}")]
    Unreachable {
        /// The registry.
        registry: String,
        /// What the transport said.
        message: String,
    },
    /// The TLS handshake failed, typically an untrusted certificate.
    #[error(
        "TLS connection to registry {registry} failed: {message} (pass the registry's CA \
         certificate, or list the host as an insecure registry if it speaks plain HTTP)"
    )]
    Tls {
        /// The registry.
        registry: String,
        /// What the TLS layer said.
        message: String,
    },
    /// Any other HTTP error status.
    #[error("registry {registry} answered {status} for {url}: {message}")]
    Http {
        /// The registry.
        registry: String,
        /// The HTTP status code.
        status: u16,
        /// The request URL.
        url: String,
        /// The error body.
        message: String,
    },
    /// The registry refused a request (a 4xx other than 401, 403 and 404) with an
    /// error body.
    #[error("registry {registry} refused {url}: {message}")]
    Rejected {
        /// The registry.
        registry: String,
        /// The request URL.
        url: String,
        /// The registry's error codes and messages.
        message: String,
    },
    /// Downloaded content does not hash to the digest it was asked for by.
    #[error(
        "content of {digest} from {registry}/{repository} does not match its digest (got {actual})"
    )]
    DigestMismatch {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The digest asked for.
        digest: Digest,
        /// The digest of what came.
        actual: String,
    },
    /// The registry sent more bytes than the descriptor's size.
    #[error("blob {digest} from {registry} is larger than its descriptor's {size} bytes")]
    TooLarge {
        /// The registry.
        registry: String,
        /// The blob.
        digest: Digest,
        /// Its declared size.
        size: u64,
    },
    /// A manifest or index that cannot be read.
    #[error("invalid manifest {digest} of {reference}: {message}")]
    Manifest {
        /// The image.
        reference: String,
        /// The manifest's digest.
        digest: Digest,
        /// Why.
        message: String,
    },
    /// An index names no manifest for the wanted platform.
    #[error("{reference} has no image for {wanted}; it has: {available}")]
    NoPlatform {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: Platform,
        /// The platforms the index lists.
        available: String,
    },
    /// A single-platform image is for another platform than the one wanted.
    #[error("{reference} is an image for {found}, not {wanted}")]
    WrongPlatform {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: Platform,
        /// The image's own platform.
        found: String,
    },
    /// A blob the push needs is not in the local blob directory (or is corrupt there).
    #[error("blob {digest} is missing or corrupt in {dir}")]
    MissingBlob {
        /// The blob directory.
        dir: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The registry broke the distribution protocol.
    #[error("registry {registry}: {message}")]
    Protocol {
        /// The registry.
        registry: String,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// Whether trying again may help: a lost or refused connection, or a 5xx answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Where an oci-client error happened, to turn it into an [`Error`].
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) registry: &'a str,
    pub(crate) repository: &'a str,
    /// What was asked for (`manifest TAG`, `blob DIGEST`), for "not found".
    pub(crate) what: &'a str,
    /// Where credentials came from, for "unauthorized".
    pub(crate) credentials: Option<&'a str>,
}

impl Context<'_> {
    fn unauthorized(&self) -> Error {
        Error::Unauthorized {
            registry: self.registry.to_owned(),
            credentials: self.credentials.map(str::to_owned),
        }
    }

    fn status(&self, status: u16, url: String, message: String) -> Error {
        match status {
            401 => self.unauthorized(),
            403 => Error::Denied {
                registry: self.registry.to_owned(),
                repository: self.repository.to_owned(),
            },
            404 => self.not_found(),
            400..=499 => match serde_json::from_str::<OciEnvelope>(&message) {
                Ok(envelope) => self.rejected(&envelope, url),
                Err(_) => Error::Http {
                    registry: self.registry.to_owned(),
                    status,
                    url,
                    message,
                },
            },
            _ => Error::Http {
                registry: self.registry.to_owned(),
                status,
                url,
                message,
            },
        }
    }

    fn rejected(&self, envelope: &OciEnvelope, url: String) -> Error {
        Error::Rejected {
            registry: self.registry.to_owned(),
            url,
            message: envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    pub(crate) fn not_found(&self) -> Error {
        Error::NotFound {
            registry: self.registry.to_owned(),
            repository: self.repository.to_owned(),
            what: self.what.to_owned(),
        }
    }

    /// Classifies an oci-client error.
    pub(crate) fn oci(&self, err: OciDistributionError) -> Error {
        match err {
            OciDistributionError::RequestError(e) => self.request(&e),
            OciDistributionError::ServerError { code, url, message } => {
                self.status(code, url, message)
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => self.unauthorized(),
            OciDistributionError::RegistryError { envelope, url } => {
                let code = envelope.errors.first().map(|e| &e.code);
                match code {
                    Some(OciErrorCode::Unauthorized) => self.unauthorized(),
                    Some(OciErrorCode::Denied) => self.status(403, url, String::new()),
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound,
                    ) => self.not_found(),
                    _ => self.rejected(&envelope, url),
                }
            }
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => match expected.parse() {
                Ok(digest) => Error::DigestMismatch {
                    registry: self.registry.to_owned(),
                    repository: self.repository.to_owned(),
                    digest,
                    actual,
                },
                Err(_) => self.protocol(format!("digest {expected} does not match {actual}")),
            },
            OciDistributionError::IoError(e) => self.io(&e),
            other => self.protocol(other.to_string()),
        }
    }

    pub(crate) fn protocol(&self, message: String) -> Error {
        Error::Protocol {
            registry: self.registry.to_owned(),
            message,
        }
    }

    /// Classifies an I/O error from a response body stream (oci-client reports a digest
    /// mismatch at the end of a stream this way).
    pub(crate) fn io(&self, e: &std::io::Error) -> Error {
        if let Some(inner) = e.get_ref() {
            if let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) =
                inner.downcast_ref::<oci_client::errors::DigestError>()
                && let Ok(digest) = expected.parse()
            {
                return Error::DigestMismatch {
                    registry: self.registry.to_owned(),
                    repository: self.repository.to_owned(),
                    digest,
                    actual: actual.clone(),
                };
            }
            if let Some(req) = inner.downcast_ref::<reqwest::Error>() {
                return self.request(req);
            }
        }
        Error::Unreachable {
            registry: self.registry.to_owned(),
            message: chain(e),
        }
    }

    /// Classifies a transport error: TLS, no connection, or an HTTP status.
    pub(crate) fn request(&self, e: &reqwest::Error) -> Error {
        if let Some(status) = e.status() {
            let url = e.url().map(ToString::to_string).unwrap_or_default();
            return self.status(status.as_u16(), url, String::new());
        }
        let message = chain(e);
        if is_tls(e) {
            return Error::Tls {
                registry: self.registry.to_owned(),
                message,
            };
        }
        Error::Unreachable {
            registry: self.registry.to_owned(),
            message,
        }
    }
}

/// Whether a transport error is a failed TLS handshake (an untrusted certificate, or a
/// server that does not speak TLS at all): retrying cannot fix those. rustls's error
/// travels inside I/O errors, whose `source()` skips it, so look inside those too.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        // hyper-rustls nests the rustls error in an I/O error in an I/O error.
        let mut io = err.downcast_ref::<std::io::Error>();
        while let Some(inner) = io.and_then(std::io::Error::get_ref) {
            if inner.is::<rustls::Error>() {
                return true;
            }
            io = inner.downcast_ref::<std::io::Error>();
        }
        cur = err.source();
    }
    false
}

/// An error with its sources, `a: b: c`, since reqwest's own message is only the outermost.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = err.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = err.source();
    }
    out
}
