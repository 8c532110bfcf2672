//! Image references: where a run image comes from and where an exported image goes.
//!
//! The syntax follows the transports of `skopeo`/`containers/image`, so a reference a user
//! already passes to skopeo means the same thing to strata. Only the `oci:` transport (an OCI
//! image layout on disk) exists today; the parser names the supported transports when it sees
//! another one, so the message stays right as transports are added.
//!
//! `oci:DIR:TAG` is split at the first `:` after the transport, exactly as skopeo's `oci`
//! transport does on Unix: a directory name cannot contain `:`, a tag may (the OCI
//! `org.opencontainers.image.ref.name` grammar allows `:` as a separator). A missing tag means
//! `latest`, so every parsed reference names one tag and `Display` prints it back in full.

use std::fmt;
use std::path::PathBuf;

/// The tag used when a reference names no tag.
pub const DEFAULT_TAG: &str = "latest";

/// The transports [`ImageRef::parse`] accepts, as shown in error messages.
pub const SUPPORTED_TRANSPORTS: &[&str] = &["oci:DIR[:TAG]"];

/// Where an image is read from or written to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// An image in an OCI image layout directory, selected by its
    /// `org.opencontainers.image.ref.name` annotation in `index.json`.
    OciLayout {
        /// The layout directory (the one holding `oci-layout` and `index.json`).
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`) of the image in the layout.
        tag: String,
    },
}

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RefError {
    /// The reference has no `transport:` prefix.
    #[error(
        "image reference `{input}` names no transport; supported: {}",
        SUPPORTED_TRANSPORTS.join(", ")
    )]
    MissingTransport {
        /// The reference as given.
        input: String,
    },
    /// The transport is known to skopeo but not (yet) to strata, or unknown altogether.
    #[error(
        "image reference `{input}` uses transport `{transport}`, which strata does not support; supported: {}",
        SUPPORTED_TRANSPORTS.join(", ")
    )]
    UnsupportedTransport {
        /// The reference as given.
        input: String,
        /// The transport name before the first `:`.
        transport: String,
    },
    /// `oci:` with no directory.
    #[error("image reference `{input}` names no layout directory (expected oci:DIR[:TAG])")]
    EmptyPath {
        /// The reference as given.
        input: String,
    },
    /// The tag does not match the OCI ref name grammar.
    #[error(
        "invalid tag `{tag}`: {reason} (a tag is alphanumerics joined by `.`, `_`, `-`, `:`, `@`, `+`, `--` or `/`)"
    )]
    InvalidTag {
        /// The offending tag.
        tag: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ImageRef {
    /// Parses `oci:DIR[:TAG]`.
    ///
    /// # Errors
    /// [`RefError`] when the transport is missing or unsupported, the directory is empty or
    /// the tag is not a valid OCI ref name.
    pub fn parse(input: &str) -> Result<ImageRef, RefError> {
        let Some((transport, rest)) = input.split_once(':') else {
            return Err(RefError::MissingTransport {
                input: input.to_owned(),
            });
        };
        match transport {
            "oci" => {
                let (dir, tag) = match rest.split_once(':') {
                    Some((dir, tag)) => (dir, tag),
                    None => (rest, DEFAULT_TAG),
                };
                if dir.is_empty() {
                    return Err(RefError::EmptyPath {
                        input: input.to_owned(),
                    });
                }
                validate_tag(tag)?;
                Ok(ImageRef::OciLayout {
                    dir: PathBuf::from(dir),
                    tag: tag.to_owned(),
                })
            }
            // A bare `name:tag` (no transport) has a tag where the transport rest would be;
            // `docker://` style references have `//` there.
            other if other.is_empty() || other.contains(['/', '.']) => {
                Err(RefError::MissingTransport {
                    input: input.to_owned(),
                })
            }
            other => Err(RefError::UnsupportedTransport {
                input: input.to_owned(),
                transport: other.to_owned(),
            }),
        }
    }

    /// The tag this reference selects.
    pub fn tag(&self) -> &str {
        match self {
            ImageRef::OciLayout { tag, .. } => tag,
        }
    }

    /// The layout directory.
    pub fn dir(&self) -> &std::path::Path {
        match self {
            ImageRef::OciLayout { dir, .. } => dir,
        }
    }

    /// The same reference with a relative layout directory taken relative to `base` (as a
    /// `builder.toml` names its run image relative to itself).
    #[must_use]
    pub fn relative_to(self, base: &std::path::Path) -> ImageRef {
        match self {
            ImageRef::OciLayout { dir, tag } => ImageRef::OciLayout {
                dir: base.join(dir),
                tag,
            },
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::OciLayout { dir, tag } => write!(f, "oci:{}:{tag}", dir.display()),
        }
    }
}

/// Checks `tag` against the OCI image layout ref name grammar
/// (`org.opencontainers.image.ref.name` in the image-spec annotations):
///
/// ```text
/// ref       ::= component ("/" component)*
/// component ::= alphanum (separator alphanum)*
/// alphanum  ::= [A-Za-z0-9]+
/// separator ::= [-._:@+] | "--"
/// ```
///
/// # Errors
/// [`RefError::InvalidTag`] naming the tag and the rule it breaks.
pub fn validate_tag(tag: &str) -> Result<(), RefError> {
    let invalid = |reason| {
        Err(RefError::InvalidTag {
            tag: tag.to_owned(),
            reason,
        })
    };
    if tag.is_empty() {
        return invalid("it is empty");
    }
    for component in tag.split('/') {
        if component.is_empty() {
            return invalid("it has an empty `/`-separated component");
        }
        let bytes = component.as_bytes();
        let is_separator = |b: u8| matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+');
        if bytes
            .iter()
            .any(|&b| !b.is_ascii_alphanumeric() && !is_separator(b))
        {
            return invalid("it contains a character outside [A-Za-z0-9._:@+/-]");
        }
        if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
            return invalid("a component must start and end with a letter or digit");
        }
        // Between alphanumerics exactly one separator, except the double dash `--`.
        let mut run = 0usize;
        let mut run_is_dashes = true;
        for &b in bytes {
            if is_separator(b) {
                run += 1;
                run_is_dashes &= b == b'-';
                if run > 2 || (run == 2 && !run_is_dashes) {
                    return invalid("separators must not repeat (except `--`)");
                }
            } else {
                run = 0;
                run_is_dashes = true;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn oci(dir: &str, tag: &str) -> ImageRef {
        ImageRef::OciLayout {
            dir: PathBuf::from(dir),
            tag: tag.to_owned(),
        }
    }

    #[test]
    fn parses_oci_with_and_without_tag() {
        assert_eq!(ImageRef::parse("oci:out:v1"), Ok(oci("out", "v1")));
        assert_eq!(ImageRef::parse("oci:out"), Ok(oci("out", "latest")));
        assert_eq!(
            ImageRef::parse("oci:/abs/dir:1.2.3-rc.1"),
            Ok(oci("/abs/dir", "1.2.3-rc.1"))
        );
    }

    #[test]
    fn splits_at_first_colon_after_transport() {
        assert_eq!(
            ImageRef::parse("oci:dir:a:b"),
            Ok(oci("dir", "a:b")),
            "the tag keeps later colons, as skopeo's oci transport does"
        );
    }

    #[test]
    fn display_round_trips() {
        for input in ["oci:out:v1", "oci:a/b/c:x_y", "oci:dir:a:b", "oci:out"] {
            let parsed = ImageRef::parse(input).unwrap();
            let shown = parsed.to_string();
            assert_eq!(ImageRef::parse(&shown), Ok(parsed), "{input} -> {shown}");
        }
        assert_eq!(
            ImageRef::parse("oci:out").unwrap().to_string(),
            "oci:out:latest"
        );
    }

    #[test]
    fn rejects_other_transports_listing_supported_ones() {
        for input in [
            "docker://alpine:3",
            "docker-archive:x.tar",
            "oci-archive:x.tar",
            "dir:/tmp/x",
        ] {
            let err = ImageRef::parse(input).unwrap_err();
            assert!(
                matches!(err, RefError::UnsupportedTransport { .. }),
                "{input}: {err:?}"
            );
            assert!(err.to_string().contains("oci:DIR[:TAG]"), "{err}");
        }
        let err = ImageRef::parse("alpine").unwrap_err();
        assert!(matches!(err, RefError::MissingTransport { .. }));
        let err = ImageRef::parse("ghcr.io/x/y:1").unwrap_err();
        assert!(matches!(err, RefError::MissingTransport { .. }), "{err:?}");
        assert!(err.to_string().contains("oci:DIR[:TAG]"));
    }

    #[test]
    fn rejects_empty_dir_and_bad_tags() {
        assert!(matches!(
            ImageRef::parse("oci:"),
            Err(RefError::EmptyPath { .. })
        ));
        assert!(matches!(
            ImageRef::parse("oci::v1"),
            Err(RefError::EmptyPath { .. })
        ));
        for bad in [
            "oci:d:",
            "oci:d:-x",
            "oci:d:x-",
            "oci:d:a..b",
            "oci:d:a b",
            "oci:d:a/",
            "oci:d:a//b",
            "oci:d:ä",
            "oci:d:a---b",
        ] {
            assert!(
                matches!(ImageRef::parse(bad), Err(RefError::InvalidTag { .. })),
                "{bad} should be rejected"
            );
        }
        for good in [
            "oci:d:a--b",
            "oci:d:v1.0.0",
            "oci:d:my_app",
            "oci:d:team/app",
            "oci:d:a@b+c",
        ] {
            assert!(ImageRef::parse(good).is_ok(), "{good} should be accepted");
        }
    }
}
