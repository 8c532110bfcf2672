//! Image names moved between directories: a relative `oci:` layout path written relative to
//! one directory (a `builder.toml`'s) rewritten relative to another (an output layout's), so
//! that what refers to it keeps working when both are moved together, and names spelled from
//! different directories compared by the layout they resolve to.

use std::path::{Component, Path, PathBuf};

use crate::reference::ImageRef;

/// `name` with a relative `oci:` directory (relative to `from`) made relative to `to`; any
/// other name as it is, and `name` as written when `from` and `to` are one directory.
pub fn relative_oci_name(name: &str, from: &Path, to: &Path) -> String {
    let Ok(ImageRef::OciLayout { dir, tag }) = ImageRef::parse(name) else {
        return name.to_owned();
    };
    let to = resolved(to);
    if dir.is_absolute() || resolved(from) == to {
        return name.to_owned();
    }
    let target = resolved(&from.join(&dir));
    let rel = relative_path(&to, &target);
    format!("oci:{}:{tag}", rel.display())
}

/// The directory holding the layout `layout_dir`, which the layout's relative `oci:` names
/// are read from (`.` for a layout named by a bare directory name).
pub fn holder_of(layout_dir: &Path) -> &Path {
    match layout_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The layout and tag an `oci:` name means, its directory read from `base` when relative and
/// resolved (absolute, symlinks and `..` resolved as far as it exists); `None` for any other
/// name (a registry name).
pub fn oci_location(name: &str, base: &Path) -> Option<(PathBuf, String)> {
    let Ok(ImageRef::OciLayout { dir, tag }) = ImageRef::parse(name) else {
        return None;
    };
    Some((resolved(&base.join(dir)), tag))
}

/// `name`, a relative `oci:` name read from `holder`, spelled as from the working directory
/// for showing: `holder` joined to it with `.` and `..` folded as written (symlinks are kept,
/// so the name reads as the user's paths do); any other name as it is.
pub fn shown_from(name: &str, holder: &Path) -> String {
    let Ok(ImageRef::OciLayout { dir, tag }) = ImageRef::parse(name) else {
        return name.to_owned();
    };
    if dir.is_absolute() || holder == Path::new(".") {
        return name.to_owned();
    }
    let mut parts: Vec<Component<'_>> = Vec::new();
    for part in holder.components().chain(dir.components()) {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let shown: PathBuf = parts.iter().collect();
    let shown = if shown.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        shown
    };
    format!("oci:{}:{tag}", shown.display())
}

/// `path` made absolute, with symlinks and `..` resolved as far as the path exists.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut found) = existing.canonicalize() {
            found.extend(rest.iter().rev());
            return found;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The relative path from directory `from` to `to` (both absolute and resolved).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    rel.extend(&to[common..]);
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn relative_layouts_are_recorded_from_the_output_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("repo/stack/run")).unwrap();
        let builder_dir = root.join("repo/builders");
        std::fs::create_dir_all(&builder_dir).unwrap();
        let name = "oci:../stack/run:v1";
        assert_eq!(
            relative_oci_name(name, &builder_dir, &root.join("out")),
            "oci:../repo/stack/run:v1"
        );
        // The output layout need not exist, nor its parent.
        assert_eq!(
            relative_oci_name(name, &builder_dir, &root.join("a/b/out")),
            "oci:../../../repo/stack/run:v1"
        );
        // The run image in the output layout itself.
        assert_eq!(
            relative_oci_name(name, &builder_dir, &root.join("repo/stack/run")),
            "oci:.:v1"
        );
        // Absolute layouts and registry names are kept as written.
        assert_eq!(
            relative_oci_name("oci:/abs/run:v1", &builder_dir, &root),
            "oci:/abs/run:v1"
        );
        for name in ["cnbs/sample-stack-run:jammy", "docker.io/library/busybox"] {
            assert_eq!(relative_oci_name(name, &builder_dir, &root), name);
        }
    }

    #[test]
    fn names_spelled_from_different_directories_locate_one_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("repo/run-image/layout")).unwrap();
        std::fs::create_dir_all(root.join("repo/monorepo")).unwrap();
        let from_root = oci_location("oci:repo/run-image/layout:busybox", &root);
        let from_layout = oci_location(
            "oci:../run-image/layout:busybox",
            &root.join("repo/monorepo"),
        );
        assert_eq!(
            from_root,
            Some((root.join("repo/run-image/layout"), "busybox".to_owned()))
        );
        assert_eq!(from_root, from_layout);
        assert_ne!(
            from_root,
            oci_location("oci:repo/run-image/layout:other", &root)
        );
        assert_eq!(oci_location("docker.io/library/busybox", &root), None);
        assert_eq!(
            shown_from(
                "oci:../run-image/layout:busybox",
                Path::new("examples/monorepo")
            ),
            "oci:examples/run-image/layout:busybox"
        );
        assert_eq!(
            shown_from("oci:../../run:v1", Path::new("out")),
            "oci:../run:v1"
        );
        assert_eq!(shown_from("oci:base:run", Path::new(".")), "oci:base:run");
        assert_eq!(shown_from("oci:/abs:run", Path::new("x")), "oci:/abs:run");
        assert_eq!(
            shown_from("registry.example/run:1", Path::new("x")),
            "registry.example/run:1"
        );
        assert_eq!(holder_of(Path::new("out")), Path::new("."));
        assert_eq!(holder_of(Path::new("a/out")), Path::new("a"));
    }
}
