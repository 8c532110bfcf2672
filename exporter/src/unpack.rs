//! Unpacking a layer tar (plain, gzip or zstd) into a directory: how a cached layer or app change
//! comes back out of the store. The tar is untrusted (a shared cache may come from another
//! machine), so every entry must land inside the directory (the tar crate's `unpack_in`
//! refuses absolute paths, `..` components and entries whose parent resolves outside it), and
//! inside the part of it the tar is for (a layer's own directory, the app's).

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::MediaType;

use crate::archive::Compression;

/// The Docker media types of layers, which images from a registry may still carry.
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The compression of a base image's layer of media type `media_type` (OCI or Docker);
/// `None` for a type strata cannot unpack.
pub fn layer_compression(media_type: &MediaType) -> Option<Compression> {
    match media_type {
        MediaType::Other(other) if other == DOCKER_LAYER_GZIP => Some(Compression::Gzip),
        MediaType::Other(other) if other == DOCKER_LAYER => Some(Compression::None),
        other => crate::archive::compression_of(other),
    }
}

/// `reader` decompressed as `compression` says. gzip may come in several members and zstd in
/// several frames, as other tools write them.
///
/// # Errors
/// libzstd cannot make a decoder.
pub fn decoder<'a>(
    reader: impl Read + 'a,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// Unpacks the tar `reader` gives (decompressed first as `compression` says) into `dir`, keeping
/// permissions and overwriting what is there. Every entry must lie under `inside` (relative
/// to `dir`; empty for anywhere in it), or be one of its parent directories.
///
/// # Errors
/// The stream is not a valid tar (or gzip, or zstd), an entry lies outside `inside` or would land
/// outside `dir` (`InvalidData`), or a file cannot be written.
pub fn unpack_tar(
    reader: impl Read,
    compression: Compression,
    dir: &Path,
    inside: &Path,
) -> io::Result<()> {
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    // As `Archive::unpack`: into an existing, canonical `dir`; directories last, deepest
    // first, so that a read-only directory does not keep its own files from being written.
    std::fs::create_dir_all(dir)?;
    let dir = &dir.canonicalize()?;
    let mut directories = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let is_dir = entry.header().entry_type() == tar::EntryType::Directory;
        if !(path.starts_with(inside) || (is_dir && inside.starts_with(&path))) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the entry {} is outside {}",
                    path.display(),
                    inside.display()
                ),
            ));
        }
        if is_dir {
            directories.push(entry);
        } else if !entry.unpack_in(dir)? {
            return Err(outside(&path));
        }
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut entry in directories {
        let path = entry.path()?.into_owned();
        if !entry.unpack_in(dir)? {
            return Err(outside(&path));
        }
    }
    Ok(())
}

fn outside(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the entry {} would land outside the directory",
            path.display()
        ),
    )
}

/// The name prefix that marks a whiteout in an OCI layer: `.wh.<name>` deletes `<name>` of
/// the layers below.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The whiteout that makes its directory opaque: nothing of the layers below shows in it.
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Applies one image layer (an uncompressed tar) on top of the root filesystem at `root`, as
/// a container runtime does: whiteouts delete what the layers below put there, an entry
/// replaces what is at its path (but a directory merges into a directory).
///
/// The layer is untrusted, and `root` is on the host. An entry with a `..` component is
/// refused; an absolute path is taken relative to the root. A symlink on an entry's parent
/// path is followed as it would be with `root` as `/` (see [`resolve_in`]): Debian's
/// `bin -> usr/bin` makes a later `bin/foo` land in `usr/bin/foo`, as docker and umoci
/// unpack it, while a lower layer's `evil -> /etc` makes `evil/passwd` land in the root's own
/// `etc/`, never the host's. An entry at a symlink's path replaces the symlink and is never
/// written through it; a hardlink must name a file of the root. Device nodes and FIFOs are
/// skipped (the sandbox brings its own `/dev`). Owners are not kept (the files belong to
/// whoever unpacks), modes are.
///
/// # Errors
/// `InvalidData` for a refused entry or a malformed tar, or the I/O error of a write.
pub fn apply_layer(reader: impl Read, root: &Path) -> io::Result<()> {
    apply_layer_owned(reader, root, None)
}

/// Whose files of an image become whose on the host: what the image's build user (`image`,
/// uid and gid) owns is given to `host` (uid and gid), the sandbox's own host id, so that the
/// build user owns it in the sandbox too; everything else belongs to whoever unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerMap {
    /// The build user's uid and gid in the image.
    pub image: (u32, u32),
    /// The host id they become.
    pub host: u32,
}

/// [`apply_layer`], giving what the image's build user owns to `owners.host`.
///
/// # Errors
/// As [`apply_layer`], or a chown that fails.
pub fn apply_layer_owned(
    reader: impl Read,
    root: &Path,
    owners: Option<OwnerMap>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    std::fs::create_dir_all(root)?;
    let root = &root.canonicalize()?;
    // What this layer itself put in place (host paths), so that its own opaque whiteout
    // (which may come after its entries in the same directory) spares them.
    let mut written: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut directories = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = relative(&entry.path()?)?;
        let Some(name) = path.file_name().map(std::ffi::OsStr::to_owned) else {
            // The root itself (`./`): nothing to create.
            continue;
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        if name == OPAQUE_WHITEOUT {
            let host_parent = resolve_in(root, parent, false)?;
            if host_parent.is_dir() {
                for child in std::fs::read_dir(&host_parent)? {
                    let child = child?.path();
                    if !written.iter().any(|w| w.starts_with(&child)) {
                        remove_any(&child)?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name
            .to_str()
            .and_then(|name| name.strip_prefix(WHITEOUT_PREFIX))
        {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(invalid(format!(
                    "the whiteout {} names no file",
                    path.display()
                )));
            }
            remove_any(&resolve_in(root, parent, false)?.join(hidden))?;
            continue;
        }
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            continue;
        }
        let link_source = if kind.is_hard_link() {
            Some(hardlink_source(&entry, &path, root)?)
        } else {
            None
        };
        let host_parent = resolve_in(root, parent, true)?;
        let host_path = host_parent.join(&name);
        if let Ok(existing) = std::fs::symlink_metadata(&host_path) {
            // A directory merges into a directory; anything else is replaced, so that no
            // write follows a symlink a lower layer left at this path.
            if !(existing.is_dir() && kind == tar::EntryType::Directory) {
                remove_any(&host_path)?;
            }
        }
        written.insert(host_path.clone());
        let owner = owners.map(|map| {
            let header = entry.header();
            let uid = header.uid().ok() == Some(u64::from(map.image.0));
            let gid = header.gid().ok() == Some(u64::from(map.image.1));
            (uid.then_some(map.host), gid.then_some(map.host))
        });
        // Every component of `host_parent` is a directory or missing: nothing followed
        // below leads out of the root.
        std::fs::create_dir_all(&host_parent)?;
        if kind == tar::EntryType::Directory {
            std::fs::create_dir_all(&host_path)?;
            directories.push((path.clone(), entry));
        } else if let Some(source) = link_source {
            std::fs::hard_link(&source, &host_path)?;
        } else {
            entry.unpack(&host_path)?;
        }
        if let Some((uid, gid)) = owner
            && (uid.is_some() || gid.is_some())
        {
            // The path was just made by this entry and is no symlink of a lower layer's.
            std::os::unix::fs::lchown(&host_path, uid, gid)?;
        }
    }
    // Directory modes last, deepest first, so that a read-only directory does not keep its
    // own files from being written. Each is found again: a later entry of this layer may
    // have replaced it (or a parent) with a symlink, which is never followed out of the root
    // nor chmod-ed through.
    directories.sort_by(|a, b| b.0.cmp(&a.0));
    for (path, mut entry) in directories {
        let Some(name) = path.file_name() else {
            continue;
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        let host_path = resolve_in(root, parent, false)?.join(name);
        if std::fs::symlink_metadata(&host_path).is_ok_and(|m| m.is_dir()) {
            entry.unpack(&host_path)?;
        }
    }
    Ok(())
}

/// Where the hardlink `entry` (at `path`) points, on the host: a regular file of the root.
fn hardlink_source<R: Read>(
    entry: &tar::Entry<'_, R>,
    path: &Path,
    root: &Path,
) -> io::Result<PathBuf> {
    let target = entry
        .link_name()?
        .ok_or_else(|| invalid(format!("the hardlink {} has no target", path.display())))?;
    let target = relative(&target)?;
    let no_file = || {
        invalid(format!(
            "the hardlink {} links to {}, which is no file of the image",
            path.display(),
            target.display()
        ))
    };
    let name = target.file_name().ok_or_else(no_file)?;
    let source = resolve_in(root, target.parent().unwrap_or(Path::new("")), false)?.join(name);
    match std::fs::symlink_metadata(&source) {
        Ok(meta) if meta.is_file() => Ok(source),
        _ => Err(no_file()),
    }
}

/// `path` as a path relative to the root: leading `/` and `.` dropped, a `..` refused.
fn relative(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(outside(path)),
        }
    }
    Ok(out)
}

/// How many symlinks one path may pass through before it is taken for a loop (Linux's
/// limit).
const MAX_SYMLINKS: usize = 40;

/// The host path of the directory `parent` (relative, no `..`) names in the root filesystem
/// at `root`, resolved as the kernel would with `root` as `/`: a symlink on the way is
/// followed by reading it, an absolute target starts again at `root`, and `..` never climbs
/// above it, so the result is always inside `root` and free of symlinks. With `make_way`
/// (for an entry about to be written there), a file where a directory is wanted is removed:
/// the entry replaces it; without (a whiteout, a hardlink's target, a second look) it stays,
/// and the path leads nowhere. Missing components are fine (they are made as directories).
///
/// # Errors
/// `InvalidData` after [`MAX_SYMLINKS`] symlinks (a loop), or the I/O error of a read.
pub(crate) fn resolve_in(root: &Path, parent: &Path, make_way: bool) -> io::Result<PathBuf> {
    // Components still to walk, the next one last.
    let mut pending: Vec<std::ffi::OsString> = parent
        .components()
        .rev()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut at = root.to_path_buf();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        match Path::new(&part).components().next() {
            Some(Component::Normal(_)) => {}
            Some(Component::ParentDir) => {
                if at != root {
                    at.pop();
                }
                continue;
            }
            // `.`, `/` (only ever from a link target, handled there) or empty.
            _ => continue,
        }
        at.push(&part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(invalid(format!(
                        "the entry under {} passes through more than {MAX_SYMLINKS} symlinks",
                        parent.display()
                    )));
                }
                let target = std::fs::read_link(&at)?;
                at.pop();
                if target.is_absolute() {
                    at = root.to_path_buf();
                }
                pending.extend(
                    target
                        .components()
                        .rev()
                        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
                        .map(|c| c.as_os_str().to_owned()),
                );
            }
            Ok(meta) if make_way && !meta.is_dir() => {
                // A file where a directory is wanted: the entry replaces it.
                std::fs::remove_file(&at)?;
            }
            _ => {}
        }
    }
    Ok(at)
}

/// Removes whatever is at `path` (never following a symlink); nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        // Nothing there, or a file where a directory on the way would be: nothing to remove.
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(err),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod layer_tests {
    use super::*;

    enum Item<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
    }

    /// A tar of `items`, names written raw (the builder's own checks would refuse `..`).
    fn layer(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            let (name, kind, link, data) = match item {
                Item::File(name, data) => (name, tar::EntryType::Regular, None, data.as_bytes()),
                Item::Dir(name) => (name, tar::EntryType::Directory, None, &b""[..]),
                Item::Symlink(name, to) => (name, tar::EntryType::Symlink, Some(to), &b""[..]),
                Item::Hardlink(name, to) => (name, tar::EntryType::Link, Some(to), &b""[..]),
            };
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(to) = link {
                let raw = &mut header.as_old_mut().linkname;
                raw[..to.len()].copy_from_slice(to.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A scratch dir with the root inside it, so that escapes land beside the root.
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        std::fs::create_dir(&root).unwrap();
        (base, root)
    }

    #[test]
    fn dotdot_entry_is_refused() {
        let (base, root) = scratch();
        let err = apply_layer(&layer(&[Item::File("../escaped", "x")])[..], &root).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(!base.path().join("escaped").exists());
    }

    #[test]
    fn absolute_entry_lands_inside_the_root() {
        let (base, root) = scratch();
        let outside = base.path().join("absolute");
        let name = outside.to_str().unwrap().to_owned();
        apply_layer(&layer(&[Item::File(&name, "x")])[..], &root).unwrap();
        assert!(!outside.exists());
        let inside = root.join(outside.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read_to_string(inside).unwrap(), "x");
    }

    /// `root`'s own copy of the host path `outside`: where an absolute link to it leads.
    fn inside(root: &Path, outside: &Path) -> PathBuf {
        root.join(outside.strip_prefix("/").unwrap())
    }

    #[test]
    fn write_through_a_symlink_stays_inside_the_root() {
        // In one layer, and with the symlink from a lower layer.
        let (base, root) = scratch();
        let target = base.path().to_str().unwrap().to_owned();
        let one = layer(&[
            Item::Symlink("evil", &target),
            Item::File("evil/pwned", "x"),
        ]);
        apply_layer(&one[..], &root).unwrap();
        assert!(!base.path().join("pwned").exists());
        let landed = inside(&root, base.path()).join("pwned");
        assert_eq!(std::fs::read_to_string(landed).unwrap(), "x");
        let (base, root) = scratch();
        let target = base.path().to_str().unwrap().to_owned();
        apply_layer(&layer(&[Item::Symlink("evil", &target)])[..], &root).unwrap();
        apply_layer(&layer(&[Item::File("evil/pwned", "x")])[..], &root).unwrap();
        assert!(!base.path().join("pwned").exists());
        assert!(inside(&root, base.path()).join("pwned").is_file());
        // A relative link climbing out stops at the root, as `..` does at `/`.
        let (base, root) = scratch();
        let up = layer(&[
            Item::Symlink("up", "../../../.."),
            Item::File("up/escaped", "x"),
            Item::Symlink("deep/er", "../../.."),
            Item::Dir("deep/er/d"),
        ]);
        apply_layer(&up[..], &root).unwrap();
        assert!(!base.path().join("escaped").exists());
        assert!(!base.path().join("d").exists());
        assert!(root.join("escaped").is_file());
        assert!(root.join("d").is_dir());
        assert!(root.join("up").is_symlink());
    }

    #[test]
    fn merged_usr_symlinks_are_written_through() {
        let (_base, root) = scratch();
        let lower = layer(&[
            Item::Dir("usr"),
            Item::Dir("usr/bin"),
            Item::Dir("usr/lib"),
            Item::Symlink("bin", "usr/bin"),
            Item::Symlink("lib", "/usr/lib"),
            Item::File("usr/bin/sh", "sh"),
        ]);
        apply_layer(&lower[..], &root).unwrap();
        let upper = layer(&[
            Item::File("bin/foo", "foo"),
            Item::Dir("lib/x86_64-linux-gnu"),
            Item::File("/lib/x86_64-linux-gnu/libfoo.so", "so"),
            Item::Hardlink("bin/sh2", "/bin/sh"),
            Item::File("bin/.wh.sh", ""),
        ]);
        apply_layer(&upper[..], &root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("usr/bin/foo")).unwrap(),
            "foo"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("usr/lib/x86_64-linux-gnu/libfoo.so")).unwrap(),
            "so"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("usr/bin/sh2")).unwrap(),
            "sh"
        );
        assert!(
            !root.join("usr/bin/sh").exists(),
            "the whiteout went through bin/"
        );
        for link in ["bin", "lib"] {
            assert!(root.join(link).is_symlink(), "{link} stays a symlink");
        }
    }

    #[test]
    fn only_a_written_entry_replaces_a_file_on_its_path() {
        let (_base, root) = scratch();
        apply_layer(&layer(&[Item::File("f", "keep")])[..], &root).unwrap();
        // A whiteout, a hardlink to, and a directory entry's second look under a file leave
        // it be.
        apply_layer(&layer(&[Item::File("f/.wh.x", "")])[..], &root).unwrap();
        apply_layer(&layer(&[Item::File("f/.wh..wh..opq", "")])[..], &root).unwrap();
        assert!(apply_layer(&layer(&[Item::Hardlink("h", "f/x")])[..], &root).is_err());
        let later = layer(&[Item::Dir("d"), Item::Dir("d/sub"), Item::File("d", "file")]);
        apply_layer(&later[..], &root).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(root.join("d")).unwrap(), "file");
        // A file written under it does replace it.
        apply_layer(&layer(&[Item::File("f/x", "x")])[..], &root).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("f/x")).unwrap(), "x");
    }

    #[test]
    fn symlink_loops_are_refused() {
        let (base, root) = scratch();
        let looping = layer(&[
            Item::Symlink("a", "b"),
            Item::Symlink("b", "/a"),
            Item::File("a/x", "x"),
        ]);
        let err = apply_layer(&looping[..], &root).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("symlinks"), "{err}");
        assert!(!base.path().join("x").exists());
        let (_base, root) = scratch();
        let selfish = layer(&[Item::Symlink("s", "s/s"), Item::File("s/x", "x")]);
        assert!(apply_layer(&selfish[..], &root).is_err());
    }

    #[test]
    fn a_file_at_a_symlinks_path_replaces_the_symlink() {
        let (base, root) = scratch();
        let target = base.path().join("target");
        let to = target.to_str().unwrap().to_owned();
        apply_layer(&layer(&[Item::Symlink("link", &to)])[..], &root).unwrap();
        apply_layer(&layer(&[Item::File("link", "mine")])[..], &root).unwrap();
        assert!(!target.exists());
        assert_eq!(std::fs::read_to_string(root.join("link")).unwrap(), "mine");
    }

    #[test]
    fn hardlink_outside_is_refused() {
        let (base, root) = scratch();
        std::fs::write(base.path().join("secret"), "s").unwrap();
        let absolute = base.path().join("secret").to_str().unwrap().to_owned();
        for to in ["../secret", absolute.as_str()] {
            let err = apply_layer(&layer(&[Item::Hardlink("hl", to)])[..], &root).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{to}");
            assert!(!root.join("hl").exists());
        }
        // Nor through a symlink a lower layer left.
        let dir = base.path().to_str().unwrap().to_owned();
        apply_layer(&layer(&[Item::Symlink("evil", &dir)])[..], &root).unwrap();
        assert!(apply_layer(&layer(&[Item::Hardlink("hl", "evil/secret")])[..], &root).is_err());
        assert!(!root.join("hl").exists());
        // A hardlink inside works.
        apply_layer(
            &layer(&[Item::File("a", "x"), Item::Hardlink("b", "a")])[..],
            &root,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(root.join("b")).unwrap(), "x");
    }

    #[test]
    fn whiteouts_delete_what_lower_layers_put() {
        let (_base, root) = scratch();
        let lower = layer(&[
            Item::Dir("a"),
            Item::File("a/x", "x"),
            Item::File("a/y", "y"),
            Item::File("b", "b"),
            Item::File("c", "c"),
        ]);
        apply_layer(&lower[..], &root).unwrap();
        let upper = layer(&[
            Item::Dir("a"),
            Item::File("a/z", "z"),
            Item::File("a/.wh..wh..opq", ""),
            Item::File(".wh.b", ""),
        ]);
        apply_layer(&upper[..], &root).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(root.join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["z"]);
        assert!(!root.join("b").exists());
        assert!(root.join("c").exists());
        assert!(!root.join(".wh.b").exists());
    }

    #[test]
    fn whiteout_through_a_symlink_stays_inside_the_root() {
        let (base, root) = scratch();
        std::fs::write(base.path().join("keep"), "k").unwrap();
        let dir = base.path().to_str().unwrap().to_owned();
        apply_layer(&layer(&[Item::Symlink("evil", &dir)])[..], &root).unwrap();
        apply_layer(&layer(&[Item::File("evil/.wh.keep", "")])[..], &root).unwrap();
        apply_layer(&layer(&[Item::File("evil/.wh..wh..opq", "")])[..], &root).unwrap();
        assert!(base.path().join("keep").exists());
    }
}
