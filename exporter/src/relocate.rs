//! Image names moved between directories: a relative `oci:` layout path written relative to
//! one directory (a `builder.toml`'s) rewritten relative to another (an output layout's), so
//! that what refers to it keeps working when both are moved together.

use std::path::{Component, Path, PathBuf};

use crate::reference::ImageRef;

/// `name` with a relative `oci:` directory (relative to `from`) made relative to `to`; any
/// other name as it is.
pub fn relative_oci_name(name: &str, from: &Path, to: &Path) -> String {
    let Ok(ImageRef::OciLayout { dir, tag }) = ImageRef::parse(name) else {
        return name.to_owned();
    };
    if dir.is_absolute() {
        return name.to_owned();
    }
    let target = resolved(&from.join(&dir));
    let rel = relative_path(&resolved(to), &target);
    format!("oci:{}:{tag}", rel.display())
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
}
