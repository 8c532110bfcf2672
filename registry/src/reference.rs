//! Registry references: `HOST[:PORT]/REPO[:TAG|@sha256:HEX]`, the part of a
//! `docker://` reference after the transport.
//!
//! The rules are Docker's, so a name means here what it means to `docker pull` and
//! skopeo: the first path component is a host only when it contains a `.` or a `:`
//! or is `localhost`; otherwise the host is `docker.io`, and a one-component Docker
//! Hub name is an official image under `library/`. Repository components are
//! lowercase `[a-z0-9]` runs joined by `.`, `_`, `__` or dashes; a tag is at most 128
//! of `[A-Za-z0-9_.-]` not starting with `.` or `-`; a digest is `sha256:` and 64
//! lowercase hex digits. A reference with neither tag nor digest means `latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry that names without a host refer to.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed registry reference: registry host, repository and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a registry reference does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("empty registry reference")]
    Empty,
    /// The host part is not a valid `HOST[:PORT]`.
    #[error("invalid registry host `{host}` in `{reference}`")]
    Host {
        /// The whole reference.
        reference: String,
        /// The host part.
        host: String,
    },
    /// A repository path component breaks the naming rules.
    #[error(
        "invalid repository `{repository}` in `{reference}`: components are lowercase letters and \
         digits joined by `.`, `_`, `__` or `-`"
    )]
    Repository {
        /// The whole reference.
        reference: String,
        /// The repository part.
        repository: String,
    },
    /// The tag breaks the tag rules.
    #[error(
        "invalid tag `{tag}` in `{reference}`: at most 128 of A-Z a-z 0-9 _ . -, not starting \
         with `.` or `-`"
    )]
    Tag {
        /// The whole reference.
        reference: String,
        /// The tag.
        tag: String,
    },
    /// The digest is not `sha256:` and 64 lowercase hex digits.
    #[error(
        "invalid digest `{digest}` in `{reference}`: expected sha256: and 64 lowercase hex digits"
    )]
    Digest {
        /// The whole reference.
        reference: String,
        /// The digest part.
        digest: String,
    },
}

impl Reference {
    /// Parses `HOST[:PORT]/REPO[:TAG|@sha256:HEX]` (also `REPO[:TAG]` on Docker Hub).
    ///
    /// # Errors
    /// A [`ReferenceError`] naming the part that is wrong.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                let parsed = digest.parse().map_err(|_| ReferenceError::Digest {
                    reference: s.to_owned(),
                    digest: digest.to_owned(),
                })?;
                (rest, Some(parsed))
            }
            None => (s, None),
        };
        // A `:` after the last `/` starts the tag; one before it is the host's port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag {
                reference: s.to_owned(),
                tag: tag.to_owned(),
            });
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), repo.to_owned())
            }
            _ if !name.contains('/') => (DOCKER_HUB.to_owned(), format!("library/{name}")),
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        if !valid_host(&registry) {
            return Err(ReferenceError::Host {
                reference: s.to_owned(),
                host: registry,
            });
        }
        if !repository.split('/').all(valid_component) {
            return Err(ReferenceError::Repository {
                reference: s.to_owned(),
                repository,
            });
        }
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// A reference to `repository` on `registry` by `tag`.
    ///
    /// # Errors
    /// As [`Reference::parse`] for the joined form.
    pub fn with_tag(registry: &str, repository: &str, tag: &str) -> Result<Self, ReferenceError> {
        Self::parse(&format!("{registry}/{repository}:{tag}"))
    }

    /// The same repository, by `digest` (and without a tag).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository, by `tag` (and without a digest).
    ///
    /// # Errors
    /// [`ReferenceError::Tag`] if `tag` is not a valid tag.
    pub fn with_new_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag {
                reference: self.to_string(),
                tag: tag.to_owned(),
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// Another repository on the same registry, by the same tag or digest.
    ///
    /// # Errors
    /// [`ReferenceError::Repository`] if `repository` is not a valid name.
    pub fn with_repository(&self, repository: &str) -> Result<Self, ReferenceError> {
        if !repository.split('/').all(valid_component) {
            return Err(ReferenceError::Repository {
                reference: self.to_string(),
                repository: repository.to_owned(),
            });
        }
        Ok(Self {
            repository: repository.to_owned(),
            ..self.clone()
        })
    }

    /// The registry as written: `HOST[:PORT]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What the registry's manifest endpoint is asked for: the digest, else the tag,
    /// else `latest`.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same reference in oci-client's form.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match &self.digest {
            Some(digest) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.to_string(),
            ),
            None => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                self.target(),
            ),
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `HOST[:PORT]`: DNS labels or an IPv4 address, or a bracketed IPv6 address; a port
/// of digits.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, tail)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        let port = match tail {
            "" => None,
            tail => match tail.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    let name_ok = name.is_none_or(|name| {
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// `[a-z0-9]+` runs joined by one `.`, one or two `_`, or any number of `-`.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// At most 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with('.')
        && !tag.starts_with('-')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn host_port_repo_tag() {
        let r = Reference::parse("127.0.0.1:5000/team/app:v1.2").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("v1.2"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:v1.2");
    }

    #[test]
    fn digest_and_default_tag() {
        let r = Reference::parse(&format!("localhost/app@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry(), "localhost");
        assert_eq!(r.target(), format!("sha256:{HEX}"));
        let r = Reference::parse("registry.example.com:443/app").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.target(), "latest");
    }

    #[test]
    fn docker_hub_names() {
        let r = Reference::parse("heroku/heroku:24").unwrap();
        assert_eq!(
            (r.registry(), r.repository()),
            ("docker.io", "heroku/heroku")
        );
        let r = Reference::parse("ubuntu").unwrap();
        assert_eq!(r.repository(), "library/ubuntu");
        assert_eq!(r.to_oci().resolve_registry(), "index.docker.io");
    }

    #[test]
    fn bad_references_name_the_part() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            Reference::parse("127.0.0.1:5000/App:v1"),
            Err(ReferenceError::Repository { .. })
        ));
        assert!(matches!(
            Reference::parse("127.0.0.1:5000/app:-v1"),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(matches!(
            Reference::parse("127.0.0.1:5000/app@sha256:abc"),
            Err(ReferenceError::Digest { .. })
        ));
        assert!(matches!(
            Reference::parse("bad_host.example:5000/app"),
            Err(ReferenceError::Host { .. })
        ));
        assert!(matches!(
            Reference::parse("host.example:port/app"),
            Err(ReferenceError::Host { .. })
        ));
        assert!(matches!(
            Reference::parse("host.example//app"),
            Err(ReferenceError::Repository { .. })
        ));
    }

    #[test]
    fn derived_references() {
        let base = Reference::parse("r.example:5000/team").unwrap();
        let service = base
            .with_repository("team/api")
            .unwrap()
            .with_new_tag("v2")
            .unwrap();
        assert_eq!(service.to_string(), "r.example:5000/team/api:v2");
        let pinned = service.with_digest(Digest::of(b"m"));
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.target(), Digest::of(b"m").to_string());
        assert_eq!(
            Reference::with_tag("r.example:5000", "team/api", "v2").unwrap(),
            service
        );
        assert!(matches!(
            service.with_new_tag("-x"),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(matches!(
            base.with_repository("Team"),
            Err(ReferenceError::Repository { .. })
        ));
    }

    #[test]
    fn component_separators() {
        assert!(valid_component("a.b_c__d---e"));
        assert!(!valid_component("a..b"));
        assert!(!valid_component("a___b"));
        assert!(!valid_component("-a"));
    }
}
