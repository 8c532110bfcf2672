//! Builder images written the way `pack builder create` writes them: the build image's layers,
//! then a layer of default directories, one layer per buildpack (entries
//! `/cnb/buildpacks/<escaped id>/<version>/...`, uid 0, modes 0755/0644, the 1980 mtime, as
//! pack's `toDistTar` makes them), the `order.toml`, `stack.toml` and `run.toml` layers, an
//! optional build-config env layer, and the labels pack sets. Layers are added verbatim with
//! `umoci raw add-layer`, so a test can also add a layer with entries no tar library would
//! write (`../`, absolute links, hardlinks out).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::runimage::RunImageCopy;
use super::{copy_tree, tool};

/// pack's `archive.NormalizedDateTime`: 1980-01-01T00:00:01Z.
const NORMALIZED_MTIME: u64 = 315_532_801;

/// A tar archive built entry by entry, in the ustar format Go's `archive/tar` writes for
/// short names, with any name and link name the test asks for.
#[derive(Default)]
pub struct Tar {
    bytes: Vec<u8>,
}

/// Tar entry types.
pub const REGULAR: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const DIRECTORY: u8 = b'5';

impl Tar {
    /// Appends one entry.
    pub fn entry(&mut self, name: &str, kind: u8, mode: u32, link: &str, data: &[u8]) -> &mut Self {
        self.entry_owned(name, kind, mode, (0, 0), link, data)
    }

    /// Appends one entry owned by `owner` (uid, gid).
    pub fn entry_owned(
        &mut self,
        name: &str,
        kind: u8,
        mode: u32,
        owner: (u32, u32),
        link: &str,
        data: &[u8],
    ) -> &mut Self {
        let mut header = [0u8; 512];
        let (prefix, name) = if name.len() > 100 {
            let split = name[..155.min(name.len())].rfind('/').unwrap();
            (&name[..split], &name[split + 1..])
        } else {
            ("", name)
        };
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "name too long: {name}"
        );
        header[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{value:0width$o}\0", width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], u64::from(mode));
        octal(&mut header[108..116], u64::from(owner.0));
        octal(&mut header[116..124], u64::from(owner.1));
        octal(&mut header[124..136], data.len() as u64);
        octal(&mut header[136..148], NORMALIZED_MTIME);
        header[156] = kind;
        header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().next_multiple_of(512), 0);
        self
    }

    /// A regular file, mode 0644.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, REGULAR, 0o644, "", data)
    }

    /// A directory, mode 0755.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, DIRECTORY, 0o755, "", b"")
    }

    /// The archive, with its end marker.
    pub fn finish(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        bytes.extend_from_slice(&[0u8; 1024]);
        bytes
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The build image the builder tests use: the example busybox image with every busybox applet
/// on `/bin`, `/usr/bin/env` and a static bash, so the example buildpacks run on it.
pub fn bash_build_image(root: &Path, name: &str) -> PathBuf {
    let image = RunImageCopy::new(root, name).layer("bash", |rootfs| {
        if let Err(e) = std::fs::copy("/bin/bash-static", rootfs.join("bin/bash")) {
            panic!("/bin/bash-static ({e}): apt-get install bash-static");
        }
        let list = tool("busybox", &["--list"]);
        for applet in list.lines() {
            let link = rootfs.join("bin").join(applet);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink("busybox", &link).unwrap();
            }
        }
        std::fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
        let env = rootfs.join("usr/bin/env");
        if std::fs::symlink_metadata(&env).is_err() {
            std::os::unix::fs::symlink("/bin/busybox", env).unwrap();
        }
    });
    image.dir().to_owned()
}

/// A buildpack to put in a builder image: its id, version and directory on this host.
pub struct BuilderBuildpack {
    pub id: String,
    pub version: String,
    pub dir: PathBuf,
    pub api: String,
    pub homepage: String,
    /// A composite's `[[order]]`, as pack's label has it (JSON).
    pub order: Option<serde_json::Value>,
}

impl BuilderBuildpack {
    /// Reads `dir/buildpack.toml`.
    pub fn from_dir(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join("buildpack.toml")).unwrap();
        let toml: toml::Value = toml::from_str(&text).unwrap();
        let info = &toml["buildpack"];
        let order = toml
            .get("order")
            .map(|order| serde_json::to_value(order).unwrap());
        Self {
            id: info["id"].as_str().unwrap().to_owned(),
            version: info["version"].as_str().unwrap().to_owned(),
            dir: dir.to_owned(),
            api: toml["api"].as_str().unwrap().to_owned(),
            homepage: info
                .get("homepage")
                .and_then(|h| h.as_str())
                .unwrap_or_default()
                .to_owned(),
            order,
        }
    }

    fn escaped(&self) -> String {
        self.id.replace('/', "_")
    }

    /// The layer pack's `toDistTar` writes: the id and version directories, then the
    /// buildpack's files in walk order, modes normalized, owned by root, the 1980 mtime.
    pub fn layer(&self) -> Vec<u8> {
        let mut tar = Tar::default();
        let base = format!("/cnb/buildpacks/{}/{}", self.escaped(), self.version);
        tar.dir(&format!("/cnb/buildpacks/{}", self.escaped()));
        tar.dir(&base);
        walk(&self.dir, Path::new(""), &mut |rel, meta| {
            let name = format!("{base}/{}", rel.display());
            if meta.is_dir() {
                tar.dir(&name);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(self.dir.join(rel)).unwrap();
                tar.entry(&name, SYMLINK, 0o644, target.to_str().unwrap(), b"");
            } else {
                use std::os::unix::fs::PermissionsExt;
                let exec = meta.permissions().mode() & 0o111 != 0
                    || ["bin/build", "bin/detect"].contains(&rel.to_str().unwrap());
                let data = std::fs::read(self.dir.join(rel)).unwrap();
                tar.entry(&name, REGULAR, if exec { 0o755 } else { 0o644 }, "", &data);
            }
        });
        tar.finish()
    }
}

/// Walks `root/rel` in lexical order, as Go's `filepath.Walk` does, directories before their
/// contents.
fn walk(root: &Path, rel: &Path, visit: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let child = rel.join(&name);
        let meta = std::fs::symlink_metadata(root.join(&child)).unwrap();
        visit(&child, &meta);
        if meta.is_dir() {
            walk(root, &child, visit);
        }
    }
}

/// A builder image being written: a copy of a build image layout, with layers and labels
/// added as pack adds them.
pub struct BuilderImageWriter {
    dir: PathBuf,
    tag: String,
    buildpacks: Vec<BuilderBuildpack>,
    order: Vec<Vec<(String, String, bool)>>,
    run_image: String,
    build_config_env: Vec<(String, String)>,
    /// Labels to set instead of (or besides) the ones made from the above.
    pub labels: Vec<(String, String)>,
    /// Extra raw layers, added after pack's.
    extra_layers: Vec<Vec<u8>>,
    /// Leave these buildpacks' layers out (but keep them in the labels).
    pub omit_layers: Vec<String>,
    /// Leave out `/cnb/order.toml`, `/cnb/run.toml`, `/cnb/stack.toml` (older builders, or
    /// other tools, have only some of them).
    pub no_order_file: bool,
    pub no_run_file: bool,
    pub no_stack_file: bool,
    /// The run image the metadata label names, if not the one the files name.
    pub label_run_image: Option<String>,
}

impl BuilderImageWriter {
    /// A builder at `dir` (tag `tag`) on the build image layout `build_image` (tag `busybox`).
    pub fn new(build_image: &Path, dir: &Path, tag: &str) -> Self {
        copy_tree(build_image, dir);
        if tag != "busybox" {
            tool(
                "umoci",
                &["tag", "--image", &format!("{}:busybox", dir.display()), tag],
            );
        }
        Self {
            dir: dir.to_owned(),
            tag: tag.to_owned(),
            buildpacks: Vec::new(),
            order: Vec::new(),
            run_image: String::new(),
            build_config_env: Vec::new(),
            labels: Vec::new(),
            extra_layers: Vec::new(),
            omit_layers: Vec::new(),
            no_order_file: false,
            no_run_file: false,
            no_stack_file: false,
            label_run_image: None,
        }
    }

    pub fn buildpack(mut self, dir: &Path) -> Self {
        self.buildpacks.push(BuilderBuildpack::from_dir(dir));
        self
    }

    /// One group of the order: (id, version, optional).
    pub fn group(mut self, group: &[(&str, &str, bool)]) -> Self {
        self.order.push(
            group
                .iter()
                .map(|(id, v, o)| ((*id).to_owned(), (*v).to_owned(), *o))
                .collect(),
        );
        self
    }

    pub fn run_image(mut self, name: &str) -> Self {
        name.clone_into(&mut self.run_image);
        self
    }

    /// A `/cnb/build-config/env/<file>` with `value`.
    pub fn build_config_env(mut self, file: &str, value: &str) -> Self {
        self.build_config_env
            .push((file.to_owned(), value.to_owned()));
        self
    }

    /// One more layer, verbatim, after pack's.
    pub fn extra_layer(mut self, tar: Vec<u8>) -> Self {
        self.extra_layers.push(tar);
        self
    }

    /// `oci:DIR:TAG`.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    fn image(&self) -> String {
        format!("{}:{}", self.dir.display(), self.tag)
    }

    fn add_layer(&self, name: &str, tar: &[u8]) -> String {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join(format!("{name}.tar"));
        std::fs::write(&path, tar).unwrap();
        tool(
            "umoci",
            &[
                "raw",
                "add-layer",
                "--no-history",
                "--image",
                &self.image(),
                path.to_str().unwrap(),
            ],
        );
        sha256(tar)
    }

    fn order_toml(&self) -> String {
        let mut text = String::new();
        for group in &self.order {
            text.push_str("[[order]]\n\n");
            for (id, version, optional) in group {
                writeln!(text, "  [[order.group]]\n    id = \"{id}\"").unwrap();
                if !version.is_empty() {
                    writeln!(text, "    version = \"{version}\"").unwrap();
                }
                if *optional {
                    text.push_str("    optional = true\n");
                }
                text.push('\n');
            }
        }
        text
    }

    fn order_json(&self) -> serde_json::Value {
        self.order
            .iter()
            .map(|group| {
                let group: Vec<serde_json::Value> = group
                    .iter()
                    .map(|(id, version, optional)| {
                        let mut entry = serde_json::json!({ "id": id });
                        if !version.is_empty() {
                            entry["version"] = version.clone().into();
                        }
                        if *optional {
                            entry["optional"] = true.into();
                        }
                        entry
                    })
                    .collect();
                serde_json::json!({ "group": group })
            })
            .collect()
    }

    /// Writes the layers and labels; returns `oci:DIR:TAG`.
    #[allow(clippy::too_many_lines)] // one builder, layer by layer in the order pack writes
    pub fn write(self) -> String {
        // pack's default directories: /workspace and /layers for the CNB user, the rest root's.
        let mut dirs = Tar::default();
        for dir in ["/workspace", "/layers"] {
            dirs.entry_owned(dir, DIRECTORY, 0o755, (1000, 1000), "", b"");
        }
        for dir in [
            "/cnb",
            "/cnb/buildpacks",
            "/cnb/extensions",
            "/platform",
            "/platform/env",
            "/cnb/build-config",
            "/cnb/build-config/env",
        ] {
            dirs.dir(dir);
        }
        self.add_layer("dirs", &dirs.finish());

        // One layer per buildpack, in order of `id@version` (pack sorts its keys).
        let mut sorted: Vec<&BuilderBuildpack> = self.buildpacks.iter().collect();
        sorted.sort_by_key(|bp| format!("{}@{}", bp.id, bp.version));
        let mut layers = serde_json::Map::new();
        for bp in sorted {
            let tar = bp.layer();
            let diff_id = if self.omit_layers.contains(&bp.id) {
                sha256(&tar)
            } else {
                self.add_layer(&bp.escaped(), &tar)
            };
            let mut info = serde_json::json!({
                "api": bp.api,
                "layerDiffID": diff_id,
            });
            if !bp.homepage.is_empty() {
                info["homepage"] = bp.homepage.clone().into();
            }
            if let Some(order) = &bp.order {
                info["order"] = order.clone();
            } else {
                info["targets"] = serde_json::json!([{ "os": "linux", "arch": "" }]);
            }
            layers
                .entry(bp.id.clone())
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
                .unwrap()
                .insert(bp.version.clone(), info);
        }

        if !self.no_order_file {
            let mut order = Tar::default();
            order.file("/cnb/order.toml", self.order_toml().as_bytes());
            self.add_layer("order", &order.finish());
        }
        let mut stack = Tar::default();
        let stack_toml = if self.run_image.is_empty() {
            String::new()
        } else {
            format!("[run-image]\n  image = \"{}\"\n", self.run_image)
        };
        if !self.no_stack_file {
            stack.file("/cnb/stack.toml", stack_toml.as_bytes());
            self.add_layer("stack", &stack.finish());
        }
        let mut run = Tar::default();
        let run_toml = if self.run_image.is_empty() {
            String::new()
        } else {
            format!("[[images]]\n  image = \"{}\"\n", self.run_image)
        };
        if !self.no_run_file {
            run.file("/cnb/run.toml", run_toml.as_bytes());
            self.add_layer("run", &run.finish());
        }
        if !self.build_config_env.is_empty() {
            let mut env = Tar::default();
            for (file, value) in &self.build_config_env {
                env.file(&format!("/cnb/build-config/env/{file}"), value.as_bytes());
            }
            self.add_layer("build-config-env", &env.finish());
        }
        // pack's env layer (`/platform/env`), empty without `--env`.
        self.add_layer("env", &Tar::default().finish());
        for (i, layer) in self.extra_layers.iter().enumerate() {
            self.add_layer(&format!("extra-{i}"), layer);
        }

        let buildpacks: Vec<serde_json::Value> = self
            .buildpacks
            .iter()
            .map(|bp| {
                let mut info = serde_json::json!({ "id": bp.id, "version": bp.version });
                if !bp.homepage.is_empty() {
                    info["homepage"] = bp.homepage.clone().into();
                }
                info
            })
            .collect();
        let label_run_image = self.label_run_image.as_ref().unwrap_or(&self.run_image);
        let images = if label_run_image.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!([{ "image": label_run_image }])
        };
        let metadata = serde_json::json!({
            "description": "a builder made as pack makes one",
            "buildpacks": buildpacks,
            "extensions": null,
            "stack": { "runImage": { "image": label_run_image, "mirrors": null } },
            "images": images,
            "lifecycle": {
                "version": "0.20.0",
                "api": { "buildpack": "0.2", "platform": "0.3" },
                "apis": {
                    "buildpack": { "deprecated": [], "supported": ["0.2", "0.10", "0.11"] },
                    "platform": { "deprecated": [], "supported": ["0.3", "0.13"] }
                }
            },
            "createdBy": { "name": "Pack CLI", "version": "0.36.0" }
        });
        let mut labels: Vec<(String, String)> = vec![
            (
                "io.buildpacks.builder.metadata".to_owned(),
                metadata.to_string(),
            ),
            (
                "io.buildpacks.buildpack.layers".to_owned(),
                serde_json::Value::Object(layers).to_string(),
            ),
            (
                "io.buildpacks.buildpack.order".to_owned(),
                self.order_json().to_string(),
            ),
            (
                "io.buildpacks.buildpack.order-extensions".to_owned(),
                "null".to_owned(),
            ),
            ("io.buildpacks.extension.layers".to_owned(), "{}".to_owned()),
            ("io.buildpacks.stack.mixins".to_owned(), "null".to_owned()),
        ];
        for (key, value) in &self.labels {
            labels.retain(|(k, _)| k != key);
            labels.push((key.clone(), value.clone()));
        }
        let mut args = vec![
            "config".to_owned(),
            "--no-history".to_owned(),
            "--image".to_owned(),
            self.image(),
            "--config.workingdir".to_owned(),
            "/layers".to_owned(),
        ];
        for (key, value) in &labels {
            args.push("--config.label".to_owned());
            args.push(format!("{key}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool("umoci", &args);
        self.reference()
    }
}
