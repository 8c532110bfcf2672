//! The private copy of an app that buildpacks work on.
//!
//! A CNB build may change `/workspace`, and that change belongs in the image, not in the
//! user's checkout. So the app is copied into a task-private directory first, keeping what
//! `project.toml` includes and dropping what it excludes (gitignore syntax) and `.git/`.
//! When no buildpack changes the app, there is no copy: the exporter reads the same
//! [`app_entries`] straight from the app.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;

/// The app directory could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum AppDirError {
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid include/exclude pattern `{pattern}` in project.toml: {message}")]
    Pattern { pattern: String, message: String },
    /// A file could not be read or written.
    #[error("cannot copy app file {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What of the app in `src` goes into the image: every file, directory and symlink below it
/// (relative paths, in walk order), keeping what `include` (when non-empty) matches and
/// dropping what `exclude` matches (both gitignore syntax relative to `src`) and `.git/`.
///
/// # Errors
/// An invalid pattern, or a directory that cannot be read.
pub fn app_entries(
    src: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<PathBuf>, AppDirError> {
    let mut overrides = OverrideBuilder::new(src);
    let patterns = include
        .iter()
        .cloned()
        .chain(exclude.iter().map(|p| format!("!{p}")));
    for pattern in patterns {
        overrides.add(&pattern).map_err(|e| AppDirError::Pattern {
            pattern: pattern.trim_start_matches('!').to_owned(),
            message: e.to_string(),
        })?;
    }
    let overrides = overrides.build().map_err(|e| AppDirError::Pattern {
        pattern: String::new(),
        message: e.to_string(),
    })?;
    let walker = WalkBuilder::new(src)
        .standard_filters(false)
        .overrides(overrides)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    let mut out = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| AppDirError::Io {
            path: src.to_owned(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("walk failed")),
        })?;
        if let Ok(rel) = entry.path().strip_prefix(src)
            && !rel.as_os_str().is_empty()
        {
            out.push(rel.to_owned());
        }
    }
    Ok(out)
}

/// Copies the app in `src` to `dst` (which must exist and be empty), keeping modes and
/// symlinks: exactly the [`app_entries`] of `src`.
///
/// # Errors
/// As [`app_entries`], or a file that cannot be copied.
pub fn copy_app(
    src: &Path,
    dst: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<(), AppDirError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| AppDirError::Io { path, source }
    };
    for rel in app_entries(src, include, exclude)? {
        let path = src.join(&rel);
        let target = dst.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&path).map_err(io_err(&path))?;
            create_parent(&target).map_err(io_err(&target))?;
            std::os::unix::fs::symlink(link, &target).map_err(io_err(&target))?;
        } else if meta.is_dir() {
            fs::create_dir_all(&target).map_err(io_err(&target))?;
            fs::set_permissions(&target, meta.permissions()).map_err(io_err(&target))?;
        } else if meta.is_file() {
            create_parent(&target).map_err(io_err(&target))?;
            fs::copy(&path, &target).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::create_dir_all(p.join("src/deep")).unwrap();
        fs::create_dir_all(p.join(".git/objects")).unwrap();
        fs::write(p.join(".git/HEAD"), "ref").unwrap();
        fs::write(p.join("src/main.sh"), "echo").unwrap();
        fs::set_permissions(p.join("src/main.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(p.join("src/deep/data.txt"), "d").unwrap();
        fs::write(p.join("README.md"), "r").unwrap();
        fs::write(p.join(".env"), "e").unwrap();
        std::os::unix::fs::symlink("src/main.sh", p.join("run")).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = WalkBuilder::new(dir)
            .standard_filters(false)
            .build()
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.path()
                    .strip_prefix(dir)
                    .ok()
                    .map(|p| p.display().to_string())
            })
            .filter(|p| !p.is_empty())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn copies_everything_but_git_with_modes_and_links() {
        let src = tree();
        let dst = tempfile::tempdir().unwrap();
        copy_app(src.path(), dst.path(), &[], &[]).unwrap();
        assert_eq!(
            listing(dst.path()),
            [
                ".env",
                "README.md",
                "run",
                "src",
                "src/deep",
                "src/deep/data.txt",
                "src/main.sh"
            ]
        );
        let mode = fs::metadata(dst.path().join("src/main.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        assert_eq!(
            fs::read_link(dst.path().join("run")).unwrap(),
            Path::new("src/main.sh")
        );
    }

    #[test]
    fn include_and_exclude_follow_gitignore_syntax() {
        let src = tree();
        let only = tempfile::tempdir().unwrap();
        copy_app(src.path(), only.path(), &["src/**".into()], &[]).unwrap();
        assert_eq!(
            listing(only.path()),
            ["src", "src/deep", "src/deep/data.txt", "src/main.sh"]
        );

        let without = tempfile::tempdir().unwrap();
        copy_app(
            src.path(),
            without.path(),
            &[],
            &["deep/".into(), "*.md".into()],
        )
        .unwrap();
        assert_eq!(
            listing(without.path()),
            [".env", "run", "src", "src/main.sh"]
        );
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let src = tree();
        let dst = tempfile::tempdir().unwrap();
        let err = copy_app(src.path(), dst.path(), &["src/[".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("src/["), "{err}");
    }
}
