//! Variants of the example run image for tests that need more of a base than busybox gives:
//! labels it lacks, or files (such as a static bash) in one more layer, both written with umoci.

use std::path::{Path, PathBuf};

use super::{copy_tree, run_image_dir, tool};

/// A copy of the example run image at `root/<name>`, which tests change with the methods below.
pub struct RunImageCopy {
    dir: PathBuf,
}

impl RunImageCopy {
    pub fn new(root: &Path, name: &str) -> Self {
        let dir = root.join(name);
        copy_tree(&run_image_dir(), &dir);
        Self { dir }
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `oci:DIR:busybox`, how strata takes it.
    pub fn reference(&self) -> String {
        format!("oci:{}:busybox", self.dir.display())
    }

    fn image(&self) -> String {
        format!("{}:busybox", self.dir.display())
    }

    /// Adds config labels.
    pub fn labels(self, labels: &[(&str, &str)]) -> Self {
        let mut args = vec!["config".to_owned(), "--image".to_owned(), self.image()];
        for (key, value) in labels {
            args.push("--config.label".to_owned());
            args.push(format!("{key}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool("umoci", &args);
        self
    }

    /// Sets the config's `User`.
    pub fn user(self, user: &str) -> Self {
        tool(
            "umoci",
            &["config", "--image", &self.image(), "--config.user", user],
        );
        self
    }

    /// Adds one layer made by `change` from the unpacked root filesystem.
    pub fn layer(self, created_by: &str, change: impl FnOnce(&Path)) -> Self {
        let work = tempfile::tempdir().unwrap();
        let bundle = work.path().join("bundle");
        let image = self.image();
        tool(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().unwrap()],
        );
        change(&bundle.join("rootfs"));
        tool(
            "umoci",
            &[
                "repack",
                "--history.created_by",
                created_by,
                "--image",
                &image,
                bundle.to_str().unwrap(),
            ],
        );
        self
    }
}
