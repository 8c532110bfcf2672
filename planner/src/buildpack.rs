//! `buildpack.toml`: a buildpack directory's descriptor.
//!
//! The file is read in two steps: serde fills private raw structs that keep the byte span of
//! every value strata validates (`api`, `id`, `version`, order entries), then validation turns
//! them into a [`BuildpackDescriptor`]. Every problem in the file is a [`TomlError`] pointing at
//! the offending value. Keys CNB does not define, or that strata does not use, are ignored, as
//! the CNB spec asks of platforms.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::order::{RawOrder, validate_order};
use crate::{BuildpackId, Order, StrataMetadata, TomlError};

/// The descriptor's file name inside a buildpack directory.
const DESCRIPTOR: &str = "buildpack.toml";

/// The Buildpack API versions strata reads: `0.MIN_API` to `0.MAX_API`.
const MIN_API: u32 = 7;
const MAX_API: u32 = 12;

/// A buildpack read from its directory.
#[derive(Debug, Clone)]
pub struct Buildpack {
    /// The buildpack directory (absolute).
    pub dir: PathBuf,
    /// Its parsed and validated `buildpack.toml`.
    pub descriptor: BuildpackDescriptor,
}

/// A validated `buildpack.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildpackDescriptor {
    /// Buildpack API, e.g. `"0.10"`.
    pub api: String,
    /// `[buildpack]`.
    pub info: BuildpackInfo,
    /// `[[order]]`: non-empty for a composite buildpack.
    pub order: Order,
    /// `[[targets]]`, or when there are none what the lifecycle infers: from `[[stacks]]`
    /// (`io.buildpacks.stacks.bionic` is linux/amd64 ubuntu 18.04, `*` any target), else
    /// `os = "linux"` for a component buildpack.
    pub targets: Vec<Target>,
    /// The ids of the deprecated `[[stacks]]`, kept only when no `[[targets]]` are given
    /// (targets take their place then, as in the lifecycle): matched against the run image's
    /// stack id when it has one (see [`crate::TargetEnv::supports`]).
    pub stacks: Vec<String>,
    /// `[metadata]`, free-form.
    pub metadata: toml::Table,
    /// `[metadata.strata]`: declared layers, detection and processes.
    pub strata: Option<StrataMetadata>,
}

/// `[buildpack]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackInfo {
    /// `id`.
    pub id: BuildpackId,
    /// `version`.
    pub version: String,
    /// `name`.
    pub name: Option<String>,
    /// `homepage`.
    pub homepage: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `clear-env`: build without the platform's user env.
    pub clear_env: bool,
    /// `sbom-formats`: media types the buildpack may write.
    pub sbom_formats: Vec<String>,
    /// `exec-env`: the execution environments the buildpack is for; empty means all. Read
    /// from Buildpack API 0.12, as the lifecycle does (empty before).
    pub exec_env: Vec<String>,
}

/// One `[[targets]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// `os`, e.g. `linux`; `None` matches any.
    pub os: Option<String>,
    /// `arch`, e.g. `amd64`; `None` matches any.
    pub arch: Option<String>,
    /// `variant` (or `arch-variant`).
    pub variant: Option<String>,
    /// `[[targets.distros]]` as (name, version).
    pub distros: Vec<(String, Option<String>)>,
}

/// Why a buildpack could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildpackError {
    /// The directory or its `buildpack.toml` could not be read.
    #[error("cannot read buildpack at {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `buildpack.toml` is malformed or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
    /// A component buildpack lacks an executable `bin/detect` or `bin/build`, or a composite
    /// one has a `bin/`; `what` says which.
    #[error("buildpack {id} at {dir}: {what}", dir = dir.display())]
    Layout {
        id: String,
        dir: PathBuf,
        what: String,
    },
}

impl Buildpack {
    /// Reads and validates `dir/buildpack.toml`, and checks the directory's layout: a
    /// component buildpack needs executable `bin/detect` and `bin/build`, a composite one
    /// (with an `[[order]]`) must have no `bin/`. A component buildpack that declares its
    /// layers under `[metadata.strata]` and has no `bin/` at all is accepted: strata runs it
    /// from that table.
    pub fn load(dir: &Path) -> Result<Self, BuildpackError> {
        let dir = dir.canonicalize().map_err(|source| BuildpackError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(DESCRIPTOR);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => {
                if source.kind() == std::io::ErrorKind::NotFound {
                    refuse_extension_dir(&dir)?;
                }
                return Err(BuildpackError::Io { path, source });
            }
        };
        let descriptor = BuildpackDescriptor::parse(&path, &text, &dir)?;
        check_layout(&dir, &descriptor)?;
        Ok(Self { dir, descriptor })
    }

    /// The id.
    pub fn id(&self) -> &BuildpackId {
        &self.descriptor.info.id
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.descriptor.info.version
    }

    /// `id@version`, how the CLI names a buildpack.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.id(), self.version())
    }

    /// Whether this is a composite buildpack (it has an `[[order]]`).
    pub fn is_composite(&self) -> bool {
        !self.descriptor.order.is_empty()
    }
}

impl BuildpackDescriptor {
    /// Parses and validates the text of a `buildpack.toml` at `path`, in buildpack directory
    /// `dir` (which decides the target a component buildpack gets when it declares none).
    /// [`Buildpack::load`] reads the file and checks the directory around it too.
    ///
    /// # Errors
    /// A [`TomlError`] pointing at the offending value.
    pub fn parse(path: &Path, text: &str, dir: &Path) -> Result<Self, Box<TomlError>> {
        let raw: RawDescriptor =
            toml::from_str(text).map_err(|err| Box::new(TomlError::from_toml(path, text, &err)))?;
        let error = |span: Option<Range<usize>>, message: String| {
            Box::new(TomlError::new(path, text, span, message))
        };
        if let Some(extension) = &raw.extension {
            return Err(crate::extensions::refused(
                path,
                text,
                Some(extension.span()),
                "this descriptor has an `[extension]` table, so it describes an image extension",
            ));
        }

        let Some(api) = raw.api else {
            return Err(error(
                None,
                "missing `api`: the Buildpack API version, e.g. `api = \"0.10\"`".to_owned(),
            ));
        };
        if !api_supported(api.get_ref()) {
            return Err(error(
                Some(api.span()),
                format!(
                    "Buildpack API `{}` is not supported: strata reads 0.{MIN_API} to 0.{MAX_API}",
                    api.get_ref()
                ),
            ));
        }

        let Some(info) = raw.buildpack else {
            return Err(error(None, "missing `[buildpack]` table".to_owned()));
        };
        let info_span = info.span();
        let info = info.into_inner();
        let Some(raw_id) = info.id else {
            return Err(error(
                Some(info_span),
                "`[buildpack]` has no `id`".to_owned(),
            ));
        };
        let id = BuildpackId::new(raw_id.get_ref())
            .map_err(|err| error(Some(raw_id.span()), err.to_string()))?;
        let version = match info.version {
            None => {
                return Err(error(
                    Some(info_span),
                    format!("buildpack {id} has no `version`"),
                ));
            }
            Some(version) if version.get_ref().trim().is_empty() => {
                return Err(error(
                    Some(version.span()),
                    format!("buildpack {id} has an empty `version`"),
                ));
            }
            Some(version) => {
                // The version names a directory (`/cnb/buildpacks/<id>/<version>`).
                if let Err(e) = crate::safepath::name(version.get_ref()) {
                    return Err(error(
                        Some(version.span()),
                        format!("buildpack {id} has a `version` that cannot name a directory: {e}"),
                    ));
                }
                version.into_inner()
            }
        };

        let order: Order = validate_order(&raw.order, path, text)?;
        let (mut targets, stacks) = if raw.targets.is_empty() {
            let stacks: Vec<String> = raw.stacks.into_iter().filter_map(|s| s.id).collect();
            (stack_targets(&stacks, api.get_ref()), stacks)
        } else {
            let targets = raw.targets.into_iter().map(RawTarget::into_target);
            (targets.collect(), Vec::new())
        };
        if targets.is_empty() && (order.is_empty() || dir.join("bin").join("build").is_file()) {
            targets.push(Target {
                os: Some("linux".to_owned()),
                ..Target::default()
            });
        }

        let exec_env = exec_envs(api.get_ref(), info.exec_env);
        Ok(Self {
            api: api.into_inner(),
            info: BuildpackInfo {
                id,
                version,
                name: info.name,
                homepage: info.homepage,
                description: info.description,
                clear_env: info.clear_env,
                sbom_formats: info.sbom_formats,
                exec_env,
            },
            order,
            targets,
            stacks,
            metadata: raw.metadata,
            strata: StrataMetadata::parse(path, text, dir)?,
        })
    }
}

/// The error for a directory that holds an image extension (`extension.toml`) and no
/// `buildpack.toml`; `Ok` when it holds neither.
fn refuse_extension_dir(dir: &Path) -> Result<(), BuildpackError> {
    #[derive(serde::Deserialize)]
    struct ExtensionOnly {
        extension: Option<Spanned<toml::Value>>,
    }
    let path = dir.join("extension.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let span = toml::from_str::<ExtensionOnly>(&text)
        .ok()
        .and_then(|raw| raw.extension)
        .map(|e| e.span());
    Err(crate::extensions::refused(
        &path,
        &text,
        span,
        &format!(
            "{} holds an image extension, not a buildpack",
            dir.display()
        ),
    )
    .into())
}

/// The `exec-env` names of `[buildpack]`, which the lifecycle reads from Buildpack API 0.12.
fn exec_envs(api: &str, raw: Vec<RawExecEnv>) -> Vec<String> {
    if !api_at_least(api, 12) {
        return Vec::new();
    }
    raw.into_iter()
        .map(|e| match e {
            RawExecEnv::Name(name) | RawExecEnv::Table { name } => name,
        })
        .collect()
}

/// Whether `api` is `0.N` with N at least `minor` (and supported).
fn api_at_least(api: &str, minor: u32) -> bool {
    api_supported(api)
        && api
            .trim()
            .split_once('.')
            .and_then(|(_, m)| m.parse::<u32>().ok())
            .is_some_and(|m| m >= minor)
}

/// Whether `api` is `0.N` with N in the supported range.
fn api_supported(api: &str) -> bool {
    let Some((major, minor)) = api.trim().split_once('.') else {
        return false;
    };
    major == "0"
        && minor
            .parse::<u32>()
            .is_ok_and(|minor| (MIN_API..=MAX_API).contains(&minor))
}

/// Checks `bin/`: present and executable for a component buildpack, absent for a composite.
fn check_layout(dir: &Path, descriptor: &BuildpackDescriptor) -> Result<(), BuildpackError> {
    let layout = |what: String| BuildpackError::Layout {
        id: descriptor.info.id.to_string(),
        dir: dir.to_owned(),
        what,
    };
    let bin = dir.join("bin");
    if !descriptor.order.is_empty() {
        if bin.exists() {
            return Err(layout(
                "a composite buildpack (one with `[[order]]`) must not have a `bin/` directory"
                    .to_owned(),
            ));
        }
        return Ok(());
    }
    if !bin.exists() && descriptor.metadata.contains_key("strata") {
        return Ok(());
    }
    for name in ["detect", "build"] {
        let file = bin.join(name);
        match std::fs::metadata(&file) {
            Err(_) => return Err(layout(format!("bin/{name} is missing"))),
            Ok(meta) if !meta.is_file() => return Err(layout(format!("bin/{name} is not a file"))),
            Ok(meta) if !is_executable(&meta) => {
                return Err(layout(format!("bin/{name} is not executable")));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Reads the `[[order]]` of the buildpack in `dir` again, with spans, for an error about one of
/// its entries: `(path, text, order)`, or `None` when the file no longer reads.
pub(crate) fn reread_order(dir: &Path) -> Option<(PathBuf, String, RawOrder)> {
    #[derive(serde::Deserialize)]
    struct OrderOnly {
        #[serde(default)]
        order: RawOrder,
    }
    let path = dir.join(DESCRIPTOR);
    let text = std::fs::read_to_string(&path).ok()?;
    let raw: OrderOnly = toml::from_str(&text).ok()?;
    Some((path, text, raw.order))
}

/// `buildpack.toml` as written.
#[derive(serde::Deserialize)]
struct RawDescriptor {
    api: Option<Spanned<String>>,
    buildpack: Option<Spanned<RawInfo>>,
    #[serde(default)]
    order: RawOrder,
    #[serde(default)]
    targets: Vec<RawTarget>,
    #[serde(default)]
    stacks: Vec<RawStack>,
    #[serde(default)]
    metadata: toml::Table,
    /// An image extension's table: refused.
    extension: Option<Spanned<toml::Value>>,
}

/// `[buildpack]` as written.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawInfo {
    id: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    name: Option<String>,
    homepage: Option<String>,
    description: Option<String>,
    #[serde(default)]
    clear_env: bool,
    #[serde(default)]
    sbom_formats: Vec<String>,
    #[serde(default)]
    exec_env: Vec<RawExecEnv>,
}

/// One `exec-env` of `[buildpack]`: a name, as the lifecycle reads it, or a
/// `[[buildpack.exec-env]] name` table, as the spec writes it.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RawExecEnv {
    Name(String),
    Table { name: String },
}

/// `[[targets]]` as written.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawTarget {
    os: Option<String>,
    arch: Option<String>,
    variant: Option<String>,
    arch_variant: Option<String>,
    #[serde(default)]
    distros: Vec<RawDistro>,
}

/// `[[stacks]]` as written; `mixins` is not read (mixins are gone from the spec).
#[derive(serde::Deserialize)]
struct RawStack {
    id: Option<String>,
}

/// The stack id the lifecycle translates into a target.
const BIONIC: &str = "io.buildpacks.stacks.bionic";

/// The targets the lifecycle infers from `[[stacks]]` when a buildpack gives no `[[targets]]`:
/// Ubuntu 18.04 on amd64 for the bionic stack (from Buildpack API 0.10, or when it is the only
/// stack), any target for `*`; other stack ids give none.
fn stack_targets(stacks: &[String], api: &str) -> Vec<Target> {
    let mut targets = Vec::new();
    for id in stacks {
        if id == BIONIC && (api_at_least(api, 10) || stacks.len() == 1) {
            targets.push(Target {
                os: Some("linux".to_owned()),
                arch: Some("amd64".to_owned()),
                variant: None,
                distros: vec![("ubuntu".to_owned(), Some("18.04".to_owned()))],
            });
        } else if id == "*" {
            targets.push(Target::default());
        }
    }
    targets
}

/// `[[targets.distros]]` as written.
#[derive(serde::Deserialize)]
struct RawDistro {
    name: String,
    version: Option<String>,
}

impl RawTarget {
    fn into_target(self) -> Target {
        Target {
            os: self.os,
            arch: self.arch,
            variant: self.variant.or(self.arch_variant),
            distros: self
                .distros
                .into_iter()
                .map(|d| (d.name, d.version))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::fixtures::{component, composite, write, write_executable};

    fn toml_error(err: BuildpackError) -> Box<TomlError> {
        match err {
            BuildpackError::Toml(err) => err,
            other => panic!("expected a TOML error, got {other:?}"),
        }
    }

    #[test]
    fn image_extensions_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "ext/buildpack.toml",
            "api = \"0.10\"\n\n[extension]\nid = \"e\"\nversion = \"1\"\n",
        );
        let err = toml_error(Buildpack::load(&tmp.path().join("ext")).unwrap_err());
        assert_eq!(err.line(), Some(3));
        assert!(err.message.contains("image extension"), "{}", err.message);

        write(
            tmp.path(),
            "other/extension.toml",
            "api = \"0.10\"\n[extension]\nid = \"e\"\nversion = \"1\"\n",
        );
        let err = toml_error(Buildpack::load(&tmp.path().join("other")).unwrap_err());
        assert!(
            err.path.ends_with("other/extension.toml"),
            "{}",
            err.path.display()
        );
        assert_eq!(err.line(), Some(2));
        assert!(err.message.contains("image extension"), "{}", err.message);
        // A directory with neither file is an I/O error, as before.
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        assert!(matches!(
            Buildpack::load(&tmp.path().join("empty")),
            Err(BuildpackError::Io { .. })
        ));
    }

    #[test]
    fn exec_envs_are_read_in_both_spellings_from_api_0_12() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let parse = |api: &str, exec_env: &str| {
            let text =
                format!("api = \"{api}\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n{exec_env}");
            BuildpackDescriptor::parse(&dir.join("buildpack.toml"), &text, dir)
                .unwrap()
                .info
                .exec_env
        };
        assert_eq!(
            parse("0.12", "exec-env = [\"test\", \"*\"]\n"),
            ["test", "*"]
        );
        assert_eq!(
            parse(
                "0.12",
                "[[buildpack.exec-env]]\nname = \"test\"\n[[buildpack.exec-env]]\nname = \"development\"\n"
            ),
            ["test", "development"]
        );
        assert!(parse("0.11", "exec-env = [\"test\"]\n").is_empty());
        assert!(parse("0.12", "").is_empty());
    }

    #[test]
    fn reads_a_component_buildpack() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "bp/buildpack.toml",
            r#"api = "0.12"

[buildpack]
id = "examples/node"
version = "0.1.0"
name = "Node"
homepage = "https://example.com"
description = "Node.js runtime"
keywords = ["node"]
clear-env = true
sbom-formats = ["application/vnd.cyclonedx+json"]
unknown-key = 1

[[buildpack.licenses]]
type = "MIT"

[[targets]]
os = "linux"
arch = "arm64"
arch-variant = "v8"
[[targets.distros]]
name = "ubuntu"
version = "24.04"

[[targets]]
os = "linux"
arch = "amd64"

[metadata.strata.detect]
files = ["package.json"]
"#,
        );
        write_executable(tmp.path(), "bp/bin/detect");
        write_executable(tmp.path(), "bp/bin/build");

        let bp = Buildpack::load(&tmp.path().join("bp/./")).unwrap();
        assert!(bp.dir.is_absolute());
        assert_eq!(bp.dir, tmp.path().join("bp").canonicalize().unwrap());
        assert_eq!(bp.reference(), "examples/node@0.1.0");
        assert!(!bp.is_composite());
        let d = &bp.descriptor;
        assert_eq!(d.api, "0.12");
        assert_eq!(d.info.name.as_deref(), Some("Node"));
        assert_eq!(d.info.homepage.as_deref(), Some("https://example.com"));
        assert_eq!(d.info.description.as_deref(), Some("Node.js runtime"));
        assert!(d.info.clear_env);
        assert_eq!(d.info.sbom_formats, ["application/vnd.cyclonedx+json"]);
        assert_eq!(
            d.targets,
            [
                Target {
                    os: Some("linux".into()),
                    arch: Some("arm64".into()),
                    variant: Some("v8".into()),
                    distros: vec![("ubuntu".into(), Some("24.04".into()))],
                },
                Target {
                    os: Some("linux".into()),
                    arch: Some("amd64".into()),
                    ..Target::default()
                },
            ]
        );
        assert!(d.metadata["strata"]["detect"]["files"].is_array());
    }

    #[test]
    fn infers_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = component(tmp.path(), "plain", "a", "1");
        let linux = vec![Target {
            os: Some("linux".into()),
            ..Target::default()
        }];
        assert_eq!(Buildpack::load(&plain).unwrap().descriptor.targets, linux);

        let stacks_dir = component(tmp.path(), "stacks", "b", "1");
        let with_stacks = |api: &str, extra: &str, ids: &[&str]| {
            let stacks = ids.iter().fold(String::new(), |mut s, id| {
                let _ = writeln!(s, "[[stacks]]\nid = \"{id}\"\nmixins = []");
                s
            });
            write(
                tmp.path(),
                "stacks/buildpack.toml",
                &format!(
                    "api = \"{api}\"\n[buildpack]\nid = \"b\"\nversion = \"1\"\n{stacks}{extra}"
                ),
            );
            Buildpack::load(&stacks_dir).unwrap().descriptor
        };
        // A stack the lifecycle does not translate: the buildpack is for Linux, and the stack
        // id is kept for the run image's.
        let d = with_stacks("0.7", "", &["io.buildpacks.stacks.jammy"]);
        assert_eq!(d.targets, linux);
        assert_eq!(d.stacks, ["io.buildpacks.stacks.jammy"]);
        let d = with_stacks("0.9", "", &["*"]);
        assert_eq!(
            (d.targets, d.stacks),
            (vec![Target::default()], vec!["*".to_owned()])
        );
        let bionic = Target {
            os: Some("linux".into()),
            arch: Some("amd64".into()),
            variant: None,
            distros: vec![("ubuntu".into(), Some("18.04".into()))],
        };
        let both = ["io.buildpacks.stacks.bionic", "io.buildpacks.stacks.jammy"];
        assert_eq!(
            with_stacks("0.10", "", &both).targets,
            std::slice::from_ref(&bionic)
        );
        assert_eq!(
            with_stacks("0.9", "", &both).targets,
            linux,
            "before API 0.10 bionic is translated only when it is the only stack"
        );
        assert_eq!(with_stacks("0.9", "", &both[..1]).targets, [bionic]);
        // Targets win: the stacks are dropped.
        let d = with_stacks("0.10", "[[targets]]\narch = \"arm64\"\n", &both);
        assert_eq!(d.targets.len(), 1);
        assert_eq!(d.targets[0].arch.as_deref(), Some("arm64"));
        assert!(d.stacks.is_empty());

        let variant = component(tmp.path(), "variant", "c", "1");
        write(
            tmp.path(),
            "variant/buildpack.toml",
            "api = \"0.10\"\n[buildpack]\nid = \"c\"\nversion = \"1\"\n[[targets]]\narch = \"arm\"\nvariant = \"v7\"\narch-variant = \"v6\"\n",
        );
        let targets = Buildpack::load(&variant).unwrap().descriptor.targets;
        assert_eq!(targets[0].variant.as_deref(), Some("v7"));
        assert_eq!(targets[0].os, None);
    }

    #[test]
    fn reads_a_composite_buildpack() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = composite(
            tmp.path(),
            "meta",
            "examples/meta",
            "1.0.0",
            &[
                &[
                    ("examples/node", Some("0.1.0"), false),
                    ("examples/npm", None, true),
                ],
                &[("examples/go", None, false)],
            ],
        );
        let bp = Buildpack::load(&dir).unwrap();
        assert!(bp.is_composite());
        assert!(bp.descriptor.targets.is_empty());
        let order = &bp.descriptor.order;
        assert_eq!(order.len(), 2);
        assert_eq!(order[0].group[0].id.as_str(), "examples/node");
        assert_eq!(order[0].group[0].version.as_deref(), Some("0.1.0"));
        assert!(!order[0].group[0].optional);
        assert_eq!(order[0].group[1].version, None);
        assert!(order[0].group[1].optional);
        assert_eq!(order[1].group[0].reference(), "examples/go");
    }

    #[test]
    fn composite_with_bin_is_a_layout_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = composite(tmp.path(), "meta", "meta", "1", &[&[("a", None, false)]]);
        write_executable(tmp.path(), "meta/bin/build");
        let err = Buildpack::load(&dir).unwrap_err();
        let BuildpackError::Layout { id, dir: at, what } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(id, "meta");
        assert_eq!(at, &dir.canonicalize().unwrap());
        assert!(what.contains("must not have a `bin/`"), "{what}");
    }

    #[test]
    fn component_needs_executable_detect_and_build() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = component(tmp.path(), "bp", "a", "1");
        std::fs::remove_file(dir.join("bin/detect")).unwrap();
        let err = Buildpack::load(&dir).unwrap_err();
        assert!(
            matches!(&err, BuildpackError::Layout { what, .. } if what == "bin/detect is missing"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&dir.canonicalize().unwrap().display().to_string())
        );

        write(tmp.path(), "bp/bin/detect", "#!/bin/sh\n");
        let err = Buildpack::load(&dir).unwrap_err();
        #[cfg(unix)]
        assert!(
            matches!(&err, BuildpackError::Layout { what, .. } if what == "bin/detect is not executable"),
            "{err:?}"
        );

        std::fs::remove_dir_all(dir.join("bin")).unwrap();
        let err = Buildpack::load(&dir).unwrap_err();
        assert!(
            matches!(&err, BuildpackError::Layout { id, .. } if id == "a"),
            "{err:?}"
        );
    }

    #[test]
    fn declarative_buildpack_needs_no_bin() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bp");
        write(
            tmp.path(),
            "bp/buildpack.toml",
            "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n[metadata.strata.detect]\nfiles = [\"x\"]\n",
        );
        let bp = Buildpack::load(&dir).unwrap();
        assert_eq!(bp.descriptor.targets[0].os.as_deref(), Some("linux"));
    }

    #[test]
    fn errors_point_at_the_offending_line() {
        let cases: &[(&str, &str, usize)] = &[
            (
                "api = \"0.6\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n",
                "not supported",
                1,
            ),
            (
                "api = \"1.0\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n",
                "not supported",
                1,
            ),
            (
                "api = \"0.13\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n",
                "not supported",
                1,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"app\"\nversion = \"1\"\n",
                "reserved",
                3,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a b\"\nversion = \"1\"\n",
                "contains",
                3,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = \"\"\n",
                "empty `version`",
                4,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"..\"\nversion = \"1\"\n",
                "cannot name a directory",
                3,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a/.\"\nversion = \"1\"\n",
                "cannot name a directory",
                3,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = \"../x\"\n",
                "cannot name a directory",
                4,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = \"..\"\n",
                "cannot name a directory",
                4,
            ),
            (
                "api = \"0.10\"\n\n[buildpack]\nid = \"a\"\n",
                "no `version`",
                3,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n[[order]]\n[[order.group]]\nid = \"x y\"\n",
                "contains",
                7,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = 1\n",
                "string",
                4,
            ),
            (
                "api = \"0.10\"\n[buildpack]\nid = \"a\"\nversion = \"1\n",
                "",
                4,
            ),
        ];
        for (text, message, line) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let dir = component(tmp.path(), "bp", "a", "1");
            write(tmp.path(), "bp/buildpack.toml", text);
            let err = toml_error(Buildpack::load(&dir).unwrap_err());
            assert!(err.message.contains(message), "{text}: {}", err.message);
            assert_eq!(err.line(), Some(*line), "{text}: {}", err.message);
            assert_eq!(err.path, dir.canonicalize().unwrap().join("buildpack.toml"));
        }
    }

    #[test]
    fn missing_api_or_table_is_an_error() {
        for text in [
            "[buildpack]\nid = \"a\"\nversion = \"1\"\n",
            "api = \"0.10\"\n",
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = component(tmp.path(), "bp", "a", "1");
            write(tmp.path(), "bp/buildpack.toml", text);
            assert!(
                matches!(Buildpack::load(&dir), Err(BuildpackError::Toml(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn missing_directory_or_file_is_io() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            Buildpack::load(&tmp.path().join("nope")),
            Err(BuildpackError::Io { .. })
        ));
        assert!(
            matches!(Buildpack::load(tmp.path()), Err(BuildpackError::Io { path, .. }) if path.ends_with("buildpack.toml"))
        );
    }
}
