//! Registry credentials from the files `docker login`, `podman login` and
//! `skopeo login` write, looked up in the order containers/image (skopeo, podman) uses:
//! `REGISTRY_AUTH_FILE` (else `$XDG_RUNTIME_DIR/containers/auth.json`), then
//! `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`). The first file with an
//! entry for the registry wins; its `credHelpers`/`credsStore` helpers are run by
//! `docker_credential`. A file that does not exist is skipped; one that exists but
//! cannot be read is an error, since silently going anonymous would hide it.

use std::ffi::OsString;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use crate::error::Error;
use crate::reference::DOCKER_HUB;

/// The credential files to consult, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFiles {
    /// Files tried in order; missing ones are skipped.
    pub files: Vec<PathBuf>,
}

impl AuthFiles {
    /// The files the environment names: `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`,
    /// `DOCKER_CONFIG`, `HOME`.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var_os(key))
    }

    /// As [`AuthFiles::from_env`], with variables from `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let mut files = Vec::new();
        if let Some(file) = var("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(file));
        } else if let Some(dir) = var("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(dir).join("containers/auth.json"));
        }
        if let Some(dir) = var("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(dir).join("config.json"));
        } else if let Some(home) = var("HOME").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(home).join(".docker/config.json"));
        }
        Self { files }
    }

    /// Only `DOCKER_DIR/config.json`, as `DOCKER_CONFIG=DOCKER_DIR` would name.
    pub fn docker_config(dir: impl Into<PathBuf>) -> Self {
        Self {
            files: vec![dir.into().join("config.json")],
        }
    }
}

/// Credentials for one registry and where they came from.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub(crate) auth: RegistryAuth,
    /// The file they came from, for error messages; `None` for anonymous.
    pub(crate) source: Option<String>,
}

impl Credential {
    pub(crate) fn anonymous() -> Self {
        Self {
            auth: RegistryAuth::Anonymous,
            source: None,
        }
    }
}

/// Looks up the credentials for `registry` (`HOST[:PORT]`).
pub(crate) fn lookup(files: &AuthFiles, registry: &str) -> Result<Credential, Error> {
    // Docker Hub's entries are keyed by its legacy index URL.
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    for path in &files.files {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Io {
                    path: path.clone(),
                    source: e,
                });
            }
        };
        let source_name = path.display().to_string();
        let fail = |message: String| Error::Credentials {
            registry: registry.to_owned(),
            source_name: source_name.clone(),
            message,
        };
        match docker_credential::get_credential_from_reader(BufReader::new(file), server) {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                return Ok(Credential {
                    auth: RegistryAuth::Basic(user, password),
                    source: Some(source_name),
                });
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                return Err(fail(
                    "identity tokens (OAuth2 refresh tokens) are not supported".into(),
                ));
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => {}
            Err(e) => return Err(fail(e.to_string().trim_end().to_owned())),
        }
    }
    Ok(Credential::anonymous())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_order_is_containers_then_docker() {
        let files = AuthFiles::from_lookup(env(&[
            ("REGISTRY_AUTH_FILE", "/a/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("DOCKER_CONFIG", "/d"),
            ("HOME", "/h"),
        ]));
        assert_eq!(
            files.files,
            [
                PathBuf::from("/a/auth.json"),
                PathBuf::from("/d/config.json")
            ]
        );
        let files =
            AuthFiles::from_lookup(env(&[("XDG_RUNTIME_DIR", "/run/user/1"), ("HOME", "/h")]));
        assert_eq!(
            files.files,
            [
                PathBuf::from("/run/user/1/containers/auth.json"),
                PathBuf::from("/h/.docker/config.json")
            ]
        );
    }

    #[test]
    fn first_file_with_an_entry_wins_and_missing_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.json");
        std::fs::write(&other, r#"{"auths":{"elsewhere.example":{"auth":"eDp5"}}}"#).unwrap();
        let docker = dir.path().join("config.json");
        // "alice:secret"
        std::fs::write(
            &docker,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6c2VjcmV0"}}}"#,
        )
        .unwrap();
        let files = AuthFiles {
            files: vec![dir.path().join("missing.json"), other, docker.clone()],
        };
        let cred = lookup(&files, "127.0.0.1:5000").unwrap();
        assert!(
            matches!(cred.auth, RegistryAuth::Basic(ref u, ref p) if u == "alice" && p == "secret")
        );
        assert_eq!(cred.source, Some(docker.display().to_string()));
        let none = lookup(&files, "127.0.0.1:6000").unwrap();
        assert!(matches!(none.auth, RegistryAuth::Anonymous));
    }

    #[test]
    fn credential_helpers_are_consulted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credHelpers":{"r.example":"strata-test-absent"}}"#,
        )
        .unwrap();
        let files = AuthFiles::docker_config(dir.path());
        let err = lookup(&files, "r.example").unwrap_err();
        assert!(matches!(err, Error::Credentials { .. }), "{err:?}");
        assert!(err.to_string().contains("helper"), "{err}");
        // Other registries do not run it.
        assert!(matches!(
            lookup(&files, "s.example").unwrap().auth,
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
        let err = lookup(&AuthFiles::docker_config(dir.path()), "r.example").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
