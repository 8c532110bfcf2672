//! The registry client: options, the connection to registries, and the blocking
//! facade over oci-client's async API.
//!
//! A [`Client`] owns a small tokio runtime (two worker threads: the work is waiting on
//! the network, not computing) and blocks the calling thread for each operation, so
//! that callers on rayon or plain threads need no async of their own. Inside an
//! operation, blob transfers run concurrently, at most [`Options::jobs`] at once. Do not
//! call a `Client` from inside another tokio runtime.
//!
//! What oci-client does not do, this crate adds thinly around it: retries
//! ([`crate::retry`]), credential lookup ([`crate::credentials`]), a token whose
//! scope covers a mount's source repository ([`crate::scope`]), verified writes into a
//! blob directory ([`crate::blobdir`]) and platform choice from an index
//! ([`crate::pull`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};

use crate::credentials::{self, AuthFiles, Credential};
use crate::error::{Context, Error};
use crate::manifest::Platform;
use crate::reference::Reference;
use crate::retry::RetryPolicy;

/// How a [`Client`] connects and behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The platform an image index is resolved to (default `linux/amd64`).
    pub platform: Platform,
    /// Registries (`HOST[:PORT]`, as in references) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// A PEM file of CA certificates trusted in addition to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Blob transfers in flight at once, per operation.
    pub jobs: usize,
    /// Retries of 5xx answers and lost connections.
    pub retry: RetryPolicy,
    /// Where credentials are looked up.
    pub auth_files: AuthFiles,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a response may stall between two reads (a hung registry is then a
    /// transient error, retried, instead of a hang).
    pub read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            platform: Platform::linux_amd64(),
            insecure: Vec::new(),
            ca_file: None,
            jobs: 8,
            retry: RetryPolicy::default(),
            auth_files: AuthFiles::from_env(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_mins(2),
        }
    }
}

/// A registry client. Cheap to share by reference across threads.
pub struct Client {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) oci: oci_client::Client,
    /// For the token requests oci-client cannot make (several scopes at once).
    pub(crate) http: reqwest::Client,
    pub(crate) options: Options,
    credentials: Mutex<HashMap<String, Credential>>,
}

impl Client {
    /// A client with `options`.
    ///
    /// # Errors
    /// [`Error::CaFile`] if the CA file cannot be read or holds no PEM certificate;
    /// [`Error::Setup`] if the HTTP client cannot be built.
    pub fn new(options: Options) -> Result<Self, Error> {
        // rustls needs one process-wide crypto provider; ring is the one built in. An
        // error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let extra = match &options.ca_file {
            Some(path) => vec![read_ca(path)?],
            None => Vec::new(),
        };
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            extra_root_certificates: extra.clone(),
            // The client resolves indexes itself, to know what it chose and why not.
            platform_resolver: None,
            max_concurrent_upload: options.jobs.max(1),
            max_concurrent_download: options.jobs.max(1),
            connect_timeout: Some(options.connect_timeout),
            read_timeout: Some(options.read_timeout),
            ..ClientConfig::default()
        };
        let oci = oci_client::Client::try_from(config).map_err(|e| Error::Setup(e.to_string()))?;
        let mut http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout);
        for cert in &extra {
            let cert = reqwest::Certificate::from_pem(&cert.data)
                .map_err(|e| Error::Setup(e.to_string()))?;
            http = http.tls_certs_merge([cert]);
        }
        let http = http.build().map_err(|e| Error::Setup(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-registry")
            .enable_all()
            .build()
            .map_err(|e| Error::Setup(e.to_string()))?;
        Ok(Self {
            runtime,
            oci,
            http,
            options,
            credentials: Mutex::new(HashMap::new()),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Every tag of `repository` (its tag or digest is ignored), in the registry's order.
    ///
    /// # Errors
    /// As for any request: unreachable, unauthorized, not found.
    pub fn list_tags(&self, repository: &Reference) -> Result<Vec<String>, Error> {
        // Pages of this size, each continuing after the last tag of the previous one,
        // as the distribution spec's `n`/`last` pagination has it.
        const PAGE: usize = 1000;
        self.runtime.block_on(async {
            let session = self.session(repository, "tag list").await?;
            let mut tags: Vec<String> = Vec::new();
            loop {
                let last = tags.last().cloned();
                let page = self
                    .options
                    .retry
                    .run(|| async {
                        self.oci
                            .list_tags(
                                &session.oci,
                                &session.cred.auth,
                                Some(PAGE),
                                last.as_deref(),
                            )
                            .await
                            .map_err(|e| session.ctx().oci(e))
                    })
                    .await?;
                let n = page.tags.len();
                tags.extend(page.tags);
                if n < PAGE {
                    return Ok(tags);
                }
            }
        })
    }

    /// Credentials for `registry`, looked up once per client.
    fn credential(&self, registry: &str) -> Result<Credential, Error> {
        let mut cache = self
            .credentials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cred) = cache.get(registry) {
            return Ok(cred.clone());
        }
        let cred = credentials::lookup(&self.options.auth_files, registry)?;
        cache.insert(registry.to_owned(), cred.clone());
        Ok(cred)
    }

    /// Everything one operation on `reference` needs: its oci-client form and the
    /// credentials, registered with oci-client (its requests only authenticate for
    /// registries it has credentials stored for, anonymous included).
    pub(crate) async fn session(
        &self,
        reference: &Reference,
        what: &str,
    ) -> Result<Session, Error> {
        let cred = self.credential(reference.registry())?;
        let oci = reference.to_oci();
        self.oci
            .store_auth_if_needed(oci.resolve_registry(), &cred.auth)
            .await;
        Ok(Session {
            reference: reference.clone(),
            oci,
            cred,
            what: what.to_owned(),
        })
    }

    /// `http` or `https` for `registry`.
    pub(crate) fn scheme(&self, registry: &str) -> &'static str {
        if self.options.insecure.iter().any(|h| h == registry) {
            "http"
        } else {
            "https"
        }
    }
}

/// One operation's view of a repository.
pub(crate) struct Session {
    pub(crate) reference: Reference,
    pub(crate) oci: oci_client::Reference,
    pub(crate) cred: Credential,
    what: String,
}

impl Session {
    /// The context errors are classified in.
    pub(crate) fn ctx(&self) -> Context<'_> {
        Context {
            registry: self.reference.registry(),
            repository: self.reference.repository(),
            what: &self.what,
            credentials: self.cred.source.as_deref(),
        }
    }

    /// The same, for something else in the repository (a blob, a child manifest).
    pub(crate) fn ctx_for<'a>(&'a self, what: &'a str) -> Context<'a> {
        Context { what, ..self.ctx() }
    }
}

/// Reads a PEM CA file, refusing one without a certificate in it (a wrong path to a
/// key or a DER file would otherwise be silently ignored).
fn read_ca(path: &std::path::Path) -> Result<Certificate, Error> {
    let data = std::fs::read(path).map_err(|e| Error::CaFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::CaFile {
            path: path.to_owned(),
            message: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned(),
        });
    }
    reqwest::Certificate::from_pem(&data).map_err(|e| Error::CaFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(Certificate {
        encoding: CertificateEncoding::Pem,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Client>();
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let options = Options {
            ca_file: Some(missing.clone()),
            ..Options::default()
        };
        let err = Client::new(options).err().unwrap();
        assert!(
            matches!(err, Error::CaFile { ref path, .. } if *path == missing),
            "{err:?}"
        );
    }
}
