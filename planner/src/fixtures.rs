//! Buildpack directories for tests, written into temporary trees.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes `text` to `root/rel`, creating parent directories.
pub(crate) fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes an executable script to `root/rel`.
pub(crate) fn write_executable(root: &Path, rel: &str) {
    let path = write(root, rel, "#!/bin/sh\nexit 0\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A component buildpack `id@version` in `root/rel`, with `bin/detect` and `bin/build`.
pub(crate) fn component(root: &Path, rel: &str, id: &str, version: &str) -> PathBuf {
    write(
        root,
        &format!("{rel}/buildpack.toml"),
        &format!("api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n"),
    );
    write_executable(root, &format!("{rel}/bin/detect"));
    write_executable(root, &format!("{rel}/bin/build"));
    root.join(rel)
}

/// A composite buildpack `id@version` in `root/rel` whose `[[order]]` is `groups`: each group a
/// list of `(id, version, optional)`.
pub(crate) fn composite(
    root: &Path,
    rel: &str,
    id: &str,
    version: &str,
    groups: &[&[(&str, Option<&str>, bool)]],
) -> PathBuf {
    let mut text =
        format!("api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"{version}\"\n");
    for group in groups {
        text.push_str("\n[[order]]\n");
        for (id, version, optional) in *group {
            writeln!(text, "[[order.group]]\nid = \"{id}\"").unwrap();
            if let Some(version) = version {
                writeln!(text, "version = \"{version}\"").unwrap();
            }
            if *optional {
                text.push_str("optional = true\n");
            }
        }
    }
    write(root, &format!("{rel}/buildpack.toml"), &text);
    root.join(rel)
}
