//! The private copy of an app that buildpacks work on.
//!
//! A CNB build may change `/workspace`, and that change belongs in the image, not in the
//! user's checkout. So the app is copied into a task-private directory first, keeping what
//! `project.toml` includes and dropping what it excludes (gitignore syntax) and `.git/`.
//! When no buildpack changes the app, there is no copy: the exporter reads the same
//! [`app_entries`] straight from the app.
//!
//! The copy is one pass over the walk: each entry's type comes from the directory listing
//! (no second `lstat`), each file's data goes with `copy_file_range` (`fs::copy`; on a file
//! system with reflinks, XFS or btrfs, that shares the blocks instead of copying them), and
//! each entry is handed to its owner as it is made, not by a second walk over the copy.
//!
//! Why a copy and not an overlay of the app: started as root, strata runs the build user as
//! [`crate::sandbox::HOST_ID`], and through an overlay whose lower layer is the app, the
//! app's files keep their owner (root, or whoever checked it out), so the build user could
//! not change a file or make one in any directory of it, as it can in its own copy. Lending
//! the app to the build user takes an idmapped lower layer (`mount_setattr` with
//! `MOUNT_ATTR_IDMAP`), which rustix does not wrap and this code base does not call
//! unsafely; bubblewrap before 0.9 has no `--overlay` for the unprivileged case. An overlay
//! would also show buildpacks what the copy leaves out (`.git/` and what `project.toml`
//! excludes) unless the upper layer starts with a whiteout for each of those entries.

use std::collections::HashSet;
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
    Ok(walk(src, include, exclude)?
        .into_iter()
        .map(|(rel, _)| rel)
        .collect())
}

/// As [`app_entries`], with each entry's type as its directory listed it (a link is a link).
fn walk(
    src: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<(PathBuf, fs::FileType)>, AppDirError> {
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
        if let (Ok(rel), Some(kind)) = (entry.path().strip_prefix(src), entry.file_type())
            && !rel.as_os_str().is_empty()
        {
            out.push((rel.to_owned(), kind));
        }
    }
    Ok(out)
}

/// Copies the app in `src` to `dst` (which must exist and be empty), keeping modes and
/// symlinks: exactly the [`app_entries`] of `src`. With `owner`, `dst` and every entry made
/// in it belong to that uid and gid, as `Sandbox::hand_over` would leave them (links are
/// changed, never followed; a file's set-id bits go, as `chown` drops them).
///
/// # Errors
/// As [`app_entries`], or a file that cannot be copied.
pub fn copy_app(
    src: &Path,
    dst: &Path,
    include: &[String],
    exclude: &[String],
    owner: Option<u32>,
) -> Result<(), AppDirError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| AppDirError::Io { path, source }
    };
    let hand_over = |path: &Path| match owner {
        Some(id) => {
            std::os::unix::fs::lchown(path, Some(id), Some(id)).map_err(|source| AppDirError::Io {
                path: path.to_owned(),
                source,
            })
        }
        None => Ok(()),
    };
    hand_over(dst)?;
    // Directories of the copy known to exist: the walk lists a directory before what is in
    // it, so a parent is almost always here and costs no system call.
    let mut made: HashSet<PathBuf> = HashSet::new();
    for (rel, kind) in walk(src, include, exclude)? {
        let path = src.join(&rel);
        let target = dst.join(&rel);
        make_parents(dst, &rel, &mut made, &hand_over)?;
        if kind.is_symlink() {
            let link = fs::read_link(&path).map_err(io_err(&path))?;
            std::os::unix::fs::symlink(link, &target).map_err(io_err(&target))?;
        } else if kind.is_dir() {
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            match fs::create_dir(&target) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(io_err(&target)(e));
                }
                _ => {}
            }
            fs::set_permissions(&target, meta.permissions()).map_err(io_err(&target))?;
            made.insert(rel.clone());
        } else if kind.is_file() {
            fs::copy(&path, &target).map_err(io_err(&path))?;
        } else {
            continue;
        }
        hand_over(&target)?;
    }
    Ok(())
}

/// Makes the directories above `rel` in `dst` that are not in `made` (handed over with
/// `hand_over`): only an include pattern that matches a file but not its directory leaves one
/// for the entry itself to need.
fn make_parents(
    dst: &Path,
    rel: &Path,
    made: &mut HashSet<PathBuf>,
    hand_over: &dyn Fn(&Path) -> Result<(), AppDirError>,
) -> Result<(), AppDirError> {
    let missing: Vec<&Path> = rel
        .ancestors()
        .skip(1)
        .take_while(|a| !a.as_os_str().is_empty() && !made.contains(*a))
        .collect();
    for dir in missing.into_iter().rev() {
        let target = dst.join(dir);
        match fs::create_dir(&target) {
            Ok(()) => hand_over(&target)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(AppDirError::Io {
                    path: target,
                    source,
                });
            }
        }
        made.insert(dir.to_owned());
    }
    Ok(())
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
        copy_app(src.path(), dst.path(), &[], &[], None).unwrap();
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
        copy_app(src.path(), only.path(), &["src/**".into()], &[], None).unwrap();
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
            None,
        )
        .unwrap();
        assert_eq!(
            listing(without.path()),
            [".env", "run", "src", "src/main.sh"]
        );
    }

    /// Owner, group and mode of every entry under `dir`, the directory itself too.
    fn owners(dir: &Path) -> Vec<(String, u32, u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let mut out: Vec<_> = WalkBuilder::new(dir)
            .standard_filters(false)
            .build()
            .filter_map(Result::ok)
            .map(|e| {
                let meta = fs::symlink_metadata(e.path()).unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                (rel, meta.uid(), meta.gid(), meta.mode())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_copy_made_for_an_owner_is_what_handing_over_a_copy_leaves() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let id = 2_000_000_123;
        let src = tree();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), src.path().join("src/out")).unwrap();
        fs::set_permissions(
            src.path().join("src/main.sh"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        fs::set_permissions(
            src.path().join("src/deep"),
            fs::Permissions::from_mode(0o2750),
        )
        .unwrap();
        for include in [vec![], vec!["src/deep/data.txt".to_owned()]] {
            let handed = tempfile::tempdir().unwrap();
            copy_app(src.path(), handed.path(), &include, &[], None).unwrap();
            let mut stack = vec![handed.path().to_owned()];
            while let Some(path) = stack.pop() {
                std::os::unix::fs::lchown(&path, Some(id), Some(id)).unwrap();
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                }
            }
            let owned = tempfile::tempdir().unwrap();
            copy_app(src.path(), owned.path(), &include, &[], Some(id)).unwrap();
            let got = owners(owned.path());
            assert_eq!(got, owners(handed.path()), "include {include:?}");
            assert!(
                got.iter().all(|(_, uid, gid, _)| (*uid, *gid) == (id, id)),
                "{got:?}"
            );
        }
        let target = fs::metadata(outside.path()).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&target),
            0,
            "links are not followed"
        );
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let src = tree();
        let dst = tempfile::tempdir().unwrap();
        let err = copy_app(src.path(), dst.path(), &["src/[".into()], &[], None).unwrap_err();
        assert!(err.to_string().contains("src/["), "{err}");
    }
}
