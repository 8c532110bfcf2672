//! The one check every relative path from outside goes through before strata joins it.
//!
//! Store entries, output layouts, TOML files, app repositories and buildpacks all hand strata
//! paths and names it later joins onto a directory of its own: a workspace change's deleted
//! paths, layer names, buildpack ids and versions, env and SBOM file names, service paths.
//! Each is untrusted, so each is validated here first, by the same rules, and a value that
//! could name something outside its root is a [`PathError`] naming the value.
//!
//! The rules are lexical (no filesystem access): a path is relative, non-empty, free of NUL,
//! and has no `..` component. `.` components are dropped, since `a/./b` names `a/b`; a value
//! that is nothing but `.` names the root itself, which [`relative_or_root`] allows and
//! [`relative`] does not (deleting "the root", or a layer named `.`, is never meant). A name
//! ([`name`]) is one component. What the filesystem does with a valid path (a symlink on the
//! way) is the caller's to check where it matters: [`resolve_inside`] for a directory that
//! may be reached through links that stay inside the root, [`no_link_on_the_way`] where no
//! link may be followed at all.

use std::path::{Component, Path, PathBuf};

/// Why a path or name from outside is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The value is empty.
    #[error("the path is empty")]
    Empty,
    /// The value holds a NUL byte, which no path can.
    #[error("`{}` contains a NUL byte", .0.escape_debug())]
    Nul(String),
    /// The value is absolute.
    #[error("`{0}` is absolute")]
    Absolute(String),
    /// The value has a `..` component.
    #[error("`{0}` contains `..`")]
    Parent(String),
    /// The value names its root itself (`.`), where a path below it is needed.
    #[error("`{0}` names the directory itself, not a path inside it")]
    Root(String),
    /// The value should be one file name but has several components.
    #[error("`{0}` must be a single file name, without `/`")]
    NotAName(String),
    /// The path, once its symlinks are resolved, leaves its root.
    #[error("`{value}` resolves to {}, outside {}", resolved.display(), root.display())]
    Outside {
        value: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    /// A component of the path is a symlink, where none may be followed.
    #[error("`{value}` goes through the symlink {}", link.display())]
    Symlink { value: String, link: PathBuf },
    /// The path could not be resolved.
    #[error("cannot resolve `{value}`: {message}")]
    Unresolvable { value: String, message: String },
}

/// Validates `value` as a relative path to something strictly below its root and returns
/// it with `.` components dropped.
///
/// # Errors
///
/// The value is empty, holds a NUL, is absolute, has a `..`, or is only `.`.
pub fn relative(value: &str) -> Result<PathBuf, PathError> {
    let path = relative_or_root(value)?;
    if path.as_os_str().is_empty() {
        return Err(PathError::Root(value.to_owned()));
    }
    Ok(path)
}

/// As [`relative`], but `.` (or `./`) is allowed and gives the empty path: the root itself.
///
/// # Errors
///
/// The value is empty, holds a NUL, is absolute, or has a `..`.
pub fn relative_or_root(value: &str) -> Result<PathBuf, PathError> {
    if value.is_empty() {
        return Err(PathError::Empty);
    }
    if value.contains('\0') {
        return Err(PathError::Nul(value.to_owned()));
    }
    let mut out = PathBuf::new();
    for component in Path::new(value).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(PathError::Parent(value.to_owned())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Absolute(value.to_owned()));
            }
        }
    }
    Ok(out)
}

/// Validates `value` as one file name: what [`relative`] accepts, with exactly one component
/// and written without `/` or `.` parts (`a/`, `./a` are refused: a name is written as is).
///
/// # Errors
///
/// As [`relative`]; also when the value is not exactly one plain component.
pub fn name(value: &str) -> Result<&str, PathError> {
    let path = relative(value)?;
    if path.components().count() != 1 || path.as_os_str() != value {
        return Err(PathError::NotAName(value.to_owned()));
    }
    Ok(value)
}

/// `root` joined with `value` once [`relative`] accepts it.
///
/// # Errors
///
/// As [`relative`].
pub fn join(root: &Path, value: &str) -> Result<PathBuf, PathError> {
    Ok(root.join(relative(value)?))
}

/// `root/value` with its symlinks resolved, when that stays inside `root` (itself resolved):
/// for a directory an app repository names, which may reach its target through links inside
/// the repository but never outside it.
///
/// # Errors
///
/// As [`relative_or_root`]; [`PathError::Outside`] when the resolved path leaves `root`;
/// [`PathError::Unresolvable`] when it does not exist or cannot be resolved.
pub fn resolve_inside(root: &Path, value: &str) -> Result<PathBuf, PathError> {
    let rel = relative_or_root(value)?;
    let unresolvable = |e: std::io::Error| PathError::Unresolvable {
        value: value.to_owned(),
        message: e.to_string(),
    };
    let root = root.canonicalize().map_err(unresolvable)?;
    let resolved = root.join(rel).canonicalize().map_err(unresolvable)?;
    if !resolved.starts_with(&root) {
        return Err(PathError::Outside {
            value: value.to_owned(),
            resolved,
            root,
        });
    }
    Ok(resolved)
}

/// Checks that no component of `root/rel` below `root` but the last is a symlink, so that
/// acting on the path (removing it, writing it) acts inside `root`. A component that does not
/// exist ends the check: nothing below it exists either.
///
/// # Errors
///
/// [`PathError::Symlink`] naming the first link; [`PathError::Unresolvable`] when a component
/// cannot be examined.
pub fn no_link_on_the_way(root: &Path, rel: &Path) -> Result<(), PathError> {
    let value = || rel.display().to_string();
    let mut current = root.to_owned();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            break;
        }
        current.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(PathError::Symlink {
                    value: value(),
                    link: current,
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(PathError::Unresolvable {
                    value: value(),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_inside_pass_with_dots_dropped() {
        assert_eq!(relative("a/b").unwrap(), Path::new("a/b"));
        assert_eq!(relative("./a/./b/").unwrap(), Path::new("a/b"));
        assert_eq!(relative_or_root(".").unwrap(), Path::new(""));
        assert_eq!(name("node.js").unwrap(), "node.js");
    }

    #[test]
    fn anything_that_could_leave_its_root_is_refused() {
        for (value, want) in [
            ("", PathError::Empty),
            ("..", PathError::Parent("..".into())),
            ("../../../x", PathError::Parent("../../../x".into())),
            ("a/../../x", PathError::Parent("a/../../x".into())),
            ("/etc/ssh", PathError::Absolute("/etc/ssh".into())),
            ("a\0b", PathError::Nul("a\0b".into())),
            (".", PathError::Root(".".into())),
            ("./", PathError::Root("./".into())),
        ] {
            assert_eq!(relative(value), Err(want), "{value:?}");
        }
        for value in ["a/b", "a/", "./a", "..", "."] {
            assert!(name(value).is_err(), "{value:?}");
        }
        assert_eq!(
            join(Path::new("/ws"), "../../x"),
            Err(PathError::Parent("../../x".into()))
        );
    }

    #[cfg(unix)]
    #[test]
    fn resolving_refuses_links_that_leave_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        std::fs::create_dir(tmp.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("real", root.join("inner")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), root.join("outer")).unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(
            resolve_inside(&root, "inner/dir").unwrap(),
            root.join("real/dir")
        );
        assert_eq!(resolve_inside(&root, ".").unwrap(), root);
        assert!(matches!(
            resolve_inside(&root, "outer"),
            Err(PathError::Outside { .. })
        ));
        assert!(matches!(
            resolve_inside(&root, "missing"),
            Err(PathError::Unresolvable { .. })
        ));

        assert!(no_link_on_the_way(&root, Path::new("real/dir/x")).is_ok());
        assert!(no_link_on_the_way(&root, Path::new("outer")).is_ok());
        assert!(matches!(
            no_link_on_the_way(&root, Path::new("outer/x")),
            Err(PathError::Symlink { link, .. }) if link == root.join("outer")
        ));
        assert!(no_link_on_the_way(&root, Path::new("nope/x/y")).is_ok());
    }
}
