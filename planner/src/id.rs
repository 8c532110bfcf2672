//! Validated buildpack ids.

use std::fmt;

/// A buildpack id as CNB allows it: letters, digits, `.`, `/`, `-` (and `_`, which real
/// buildpacks use), never one of the reserved ids `app`, `config`, `generated`, `sbom`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct BuildpackId(String);

/// Why a string is not a valid buildpack id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("buildpack id is empty")]
    Empty,
    #[error("buildpack id `{0}` is reserved by CNB")]
    Reserved(String),
    #[error(
        "buildpack id `{id}` contains `{ch}`; only letters, digits, `.`, `/`, `-` and `_` are allowed"
    )]
    InvalidChar { id: String, ch: char },
    /// The id would not name one directory of its own: `.`, `..`, `a//b`, `a/../b`.
    #[error("buildpack id `{id}` cannot name a directory: {source}")]
    Path {
        id: String,
        source: crate::PathError,
    },
}

impl BuildpackId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, IdError> {
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if matches!(id, "app" | "config" | "generated" | "sbom") {
            return Err(IdError::Reserved(id.to_owned()));
        }
        if let Some(ch) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_')))
        {
            return Err(IdError::InvalidChar {
                id: id.to_owned(),
                ch,
            });
        }
        // The id names directories (`/cnb/buildpacks/<id>`, `/layers/<escaped id>`), so each
        // `/`-separated part must be a plain name, as the one path check has it.
        for part in id.split('/') {
            crate::safepath::name(part).map_err(|source| IdError::Path {
                id: id.to_owned(),
                source,
            })?;
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id with `/` replaced by `_`: the name of the buildpack's directory under `/layers`.
    pub fn escaped(&self) -> String {
        self.0.replace('/', "_")
    }
}

impl fmt::Display for BuildpackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for BuildpackId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `name` can name a user env variable: a file name under `<platform>/env/` that a
/// shell could export (letters, digits and `_`, not starting with a digit).
pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_cnb_ids_and_escapes_slashes() {
        let id = BuildpackId::new("heroku/nodejs-engine").unwrap();
        assert_eq!(id.escaped(), "heroku_nodejs-engine");
        assert!(BuildpackId::new("paketo-buildpacks/node.js_x").is_ok());
    }

    #[test]
    fn rejects_reserved_empty_and_odd_characters() {
        assert_eq!(
            BuildpackId::new("app"),
            Err(IdError::Reserved("app".into()))
        );
        assert_eq!(BuildpackId::new(""), Err(IdError::Empty));
        assert!(matches!(
            BuildpackId::new("a b"),
            Err(IdError::InvalidChar { ch: ' ', .. })
        ));
        for id in [".", "..", "a/..", "../x", "a//b", "a/", "a/./b"] {
            assert!(
                matches!(BuildpackId::new(id), Err(IdError::Path { .. })),
                "{id}"
            );
        }
        assert!(BuildpackId::new("a.b/c..d").is_ok());
    }
}
