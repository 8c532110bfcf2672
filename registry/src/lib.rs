//! strata's OCI distribution client: pull images into a content-addressed blob
//! directory, push them from one, list tags, fetch and write manifests. It knows
//! nothing of buildpacks or of strata's store: images are blobs and manifests.
//!
//! Built on `oci-client` (the protocol) and `docker_credential` (the credential files
//! and helpers); see [`client`] for what this crate adds around them. The API blocks
//! (each [`Client`] owns a small tokio runtime), so callers on rayon need no async.
//!
//! ```no_run
//! use strata_registry::{BlobDir, Client, Options, Reference};
//! let client = Client::new(Options::default())?;
//! let image = Reference::parse("registry.example.com/stacks/run:24")?;
//! let blobs = BlobDir::new("layout/blobs/sha256");
//! let pulled = client.pull(&image, &blobs)?;
//! let target = Reference::parse("registry.example.com/mirror/run:24")?;
//! let report = client.push(&blobs, &pulled.manifest, &target, Some(&image))?;
//! println!("{} uploaded, {} mounted, {} skipped", report.uploaded, report.mounted, report.skipped);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod blobdir;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;
pub mod retry;
mod scope;

pub use blobdir::BlobDir;
pub use client::{Client, Options};
pub use credentials::AuthFiles;
pub use digest::Digest;
pub use error::Error;
pub use manifest::{Descriptor, Platform};
pub use pull::{FetchedManifest, PullStats, Pulled};
pub use push::{MountSources, PushReport};
pub use reference::{Reference, ReferenceError};
pub use referrers::{ReferrerEntry, fallback_tag};
pub use retry::RetryPolicy;
