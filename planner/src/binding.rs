//! Service bindings: directories the platform gives buildpacks at `<platform>/bindings/<name>`,
//! each with a `type` file, an optional `provider` file and one file per key (the
//! servicebinding.io workload projection, which buildpacks find through
//! `SERVICE_BINDING_ROOT`).
//!
//! A binding usually holds secrets (a database password, an API token), so it is never
//! copied: the engine mounts it read-only for `bin/detect` and `bin/build`. What a task sees
//! of it must still be part of the task's key, or a changed password would be a cache hit;
//! so every binding is hashed on load, names and contents in a fixed order, and only that
//! digest goes into keys. No binding's content is ever stored anywhere.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::key::{KeyHasher, TaskKey};
use crate::safepath;

/// How deep a binding's directory tree may go: Kubernetes projects secrets two levels deep
/// (`..data` and a timestamped directory); anything far deeper is not a binding.
const MAX_DEPTH: usize = 8;

/// One service binding: its name under `<platform>/bindings/` and the directory it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The name buildpacks see it under.
    pub name: String,
    /// The directory on the host (absolute).
    pub dir: PathBuf,
    /// The digest of its names and contents (see [`Binding::load`]).
    pub digest: TaskKey,
}

/// Why a binding cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// The name cannot be a directory name under `<platform>/bindings/`.
    #[error(
        "binding name `{name}`: {why}; use letters, digits, `.`, `-` and `_`, not starting with `.`"
    )]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The same name was given twice.
    #[error("binding `{name}` is given twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The name.
        name: String,
        /// The first directory.
        first: PathBuf,
        /// The second directory.
        second: PathBuf,
    },
    /// The directory does not exist, or is not a directory.
    #[error("binding `{name}`: {} is not a directory", dir.display())]
    NotADirectory {
        /// The binding.
        name: String,
        /// The path given.
        dir: PathBuf,
    },
    /// The directory has no `type` file.
    #[error("binding `{name}`: {} has no `type` file (every binding names its type)", dir.display())]
    NoType {
        /// The binding.
        name: String,
        /// The directory.
        dir: PathBuf,
    },
    /// The directory could not be read.
    #[error("binding `{name}`: cannot read {}: {source}", path.display())]
    Io {
        /// The binding.
        name: String,
        /// What could not be read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Binding {
    /// Validates the binding `name` at `dir` and hashes it.
    ///
    /// The digest covers, for each entry below `dir` in byte order of its relative path: the
    /// path, whether it is a file, a directory or a link, its permission bits, and a file's
    /// contents or a link's target. Links are not followed (Kubernetes makes each key a link
    /// into a directory that is itself in the binding, and so hashed).
    ///
    /// # Errors
    /// [`BindingError`]: a bad name, a `dir` that is not a directory or has no `type` file, or
    /// an entry that cannot be read.
    pub fn load(name: &str, dir: &Path) -> Result<Self, BindingError> {
        check_name(name)?;
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        if !dir.is_dir() {
            return Err(BindingError::NotADirectory {
                name: name.to_owned(),
                dir,
            });
        }
        if !dir.join("type").is_file() {
            return Err(BindingError::NoType {
                name: name.to_owned(),
                dir,
            });
        }
        let mut h = KeyHasher::new("binding");
        h.field("name").str(name);
        h.field("entries");
        hash_tree(name, &dir, &dir, 0, &mut h)?;
        Ok(Self {
            name: name.to_owned(),
            dir,
            digest: h.finish(),
        })
    }

    /// Loads each `(name, dir)`, sorted by name; a name given twice is an error.
    ///
    /// # Errors
    /// As [`Binding::load`], and [`BindingError::Duplicate`].
    pub fn load_all(bindings: &[(String, PathBuf)]) -> Result<Vec<Self>, BindingError> {
        let mut out: Vec<Self> = Vec::new();
        for (name, dir) in bindings {
            if let Some(first) = out.iter().find(|b| b.name == *name) {
                return Err(BindingError::Duplicate {
                    name: name.clone(),
                    first: first.dir.clone(),
                    second: dir.clone(),
                });
            }
            out.push(Self::load(name, dir)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// The digest of a set of bindings, for the keys of the tasks that see them; `None` when
/// there are none, so that keys of builds without bindings stay as they were.
pub fn bindings_digest(bindings: &[Binding]) -> Option<TaskKey> {
    if bindings.is_empty() {
        return None;
    }
    let mut sorted: Vec<&Binding> = bindings.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = KeyHasher::new("bindings");
    h.u64(sorted.len() as u64);
    for binding in sorted {
        h.str(&binding.name).key(&binding.digest);
    }
    Some(h.finish())
}

/// A binding name is one plain directory name of portable characters, not hidden.
fn check_name(name: &str) -> Result<(), BindingError> {
    let error = |why: String| BindingError::Name {
        name: name.to_owned(),
        why,
    };
    safepath::name(name).map_err(|e| error(e.to_string()))?;
    if name.starts_with('.') {
        return Err(error("it starts with `.`".to_owned()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(error(format!("`{}` is not allowed", c.escape_debug())));
    }
    Ok(())
}

fn hash_tree(
    name: &str,
    root: &Path,
    dir: &Path,
    depth: usize,
    h: &mut KeyHasher,
) -> Result<(), BindingError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BindingError::Io {
            name: name.to_owned(),
            path,
            source,
        }
    };
    if depth > MAX_DEPTH {
        return Err(io_err(dir)(io::Error::other("nested too deep")));
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    h.u64(entries.len() as u64);
    for path in entries {
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let rel = path.strip_prefix(root).unwrap_or(&path);
        h.bytes(rel.as_os_str().as_bytes());
        h.u64(u64::from(meta.permissions().mode() & 0o7777));
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err(&path))?;
            h.str("link").bytes(target.as_os_str().as_bytes());
        } else if kind.is_dir() {
            h.str("dir");
            hash_tree(name, root, &path, depth + 1, h)?;
        } else if kind.is_file() {
            let contents = fs::read(&path).map_err(io_err(&path))?;
            h.str("file").bytes(&contents);
        } else {
            // A FIFO or a device would block or never end; a binding holds files.
            return Err(io_err(&path)(io::Error::other(
                "not a regular file, directory or symlink",
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(dir: &Path, files: &[(&str, &str)]) {
        for (name, contents) in files {
            let path = dir.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
    }

    #[test]
    fn digests_change_with_names_and_contents() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db");
        binding(&dir, &[("type", "postgresql"), ("password", "one")]);
        let first = Binding::load("db", &dir).unwrap();
        assert_eq!(Binding::load("db", &dir).unwrap().digest, first.digest);
        assert_ne!(Binding::load("other", &dir).unwrap().digest, first.digest);
        binding(&dir, &[("password", "two")]);
        let changed = Binding::load("db", &dir).unwrap();
        assert_ne!(changed.digest, first.digest);
        binding(&dir, &[("username", "")]);
        assert_ne!(Binding::load("db", &dir).unwrap().digest, changed.digest);
        assert_eq!(bindings_digest(&[]), None);
        assert_ne!(
            bindings_digest(std::slice::from_ref(&first)),
            bindings_digest(&[changed])
        );
    }

    #[test]
    fn bad_bindings_are_refused_with_their_name() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db");
        binding(&dir, &[("password", "x")]);
        let err = Binding::load("db", &dir).unwrap_err();
        assert!(matches!(err, BindingError::NoType { .. }), "{err}");
        assert!(err.to_string().contains("`type`"), "{err}");
        let err = Binding::load("db", &dir.join("password")).unwrap_err();
        assert!(matches!(err, BindingError::NotADirectory { .. }), "{err}");
        let err = Binding::load("db", &root.path().join("missing")).unwrap_err();
        assert!(matches!(err, BindingError::NotADirectory { .. }), "{err}");
        binding(&dir, &[("type", "x")]);
        for name in ["", ".", "..", "a/b", ".hidden", "a b", "db\n"] {
            let err = Binding::load(name, &dir).unwrap_err();
            assert!(matches!(err, BindingError::Name { .. }), "{name:?}: {err}");
        }
        Binding::load("my-db_1.primary", &dir).unwrap();
        let twice = [("db".to_owned(), dir.clone()), ("db".to_owned(), dir)];
        assert!(matches!(
            Binding::load_all(&twice),
            Err(BindingError::Duplicate { .. })
        ));
    }
}
