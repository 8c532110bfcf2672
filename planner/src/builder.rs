//! `builder.toml`: the buildpacks a builder carries and the order it detects with.
//!
//! Every `[[buildpacks]] uri` must name a buildpack directory, and loading the builder loads
//! them all into a [`Registry`]. (A builder image gives the same [`Builder`] through
//! [`Builder::from_parts`]: the platform reads the image and hands over its buildpacks and
//! order text, so nothing here knows of images.) It then checks, once, what
//! detection would otherwise discover halfway: that every order entry (the builder's and, through
//! every composite buildpack, theirs) names a buildpack the builder has, and that no composite
//! buildpacks contain each other. Both errors point at the `id` line that is wrong, in
//! `builder.toml` or in the composite's `buildpack.toml`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use crate::buildpack::reread_order;
use crate::order::{RawOrder, id_span, validate_order};
use crate::{Buildpack, BuildpackError, Order, Registry, RegistryError, TomlError};

/// A builder read from its `builder.toml` (or a builder image), with its buildpacks loaded
/// from their directories.
#[derive(Debug, Clone)]
pub struct Builder {
    /// The `builder.toml` (absolute), or a builder image's layout directory: relative image
    /// references are relative to the directory holding it.
    pub path: PathBuf,
    /// The buildpacks that `[[buildpacks]] uri` names, as a registry.
    pub registry: crate::Registry,
    /// `[[order]]`.
    pub order: Order,
    /// The run image reference (`[run] [[run.images]] image`, or `[stack] run-image`).
    pub run_image: Option<String>,
    /// Other names of the same run image (`[[run.images]] mirrors`), which the app image
    /// records with it.
    pub run_image_mirrors: Vec<String>,
    /// The build image reference (`[build] image`, or `[stack] build-image`).
    pub build_image: Option<String>,
}

/// Why a builder could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuilderError {
    /// `builder.toml` could not be read.
    #[error("cannot read builder {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `builder.toml` is malformed or invalid (including an order naming an unknown buildpack).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
    /// A buildpack it names could not be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Buildpack(#[from] BuildpackError),
    /// Two buildpacks with the same id and version.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
}

impl Builder {
    /// Reads `path`, loads every buildpack its `[[buildpacks]] uri` names (a directory path
    /// relative to the file, or a `file://` URI), and checks that each order entry names a
    /// known buildpack, recursively through composite buildpacks, with no cycle among them.
    pub fn load(path: &Path) -> Result<Self, BuilderError> {
        let path = path.canonicalize().map_err(|source| BuilderError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = std::fs::read_to_string(&path).map_err(|source| BuilderError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of the `builder.toml` at `path` (absolute) and loads the buildpacks it
    /// names relative to it, as [`Self::load`] does.
    ///
    /// # Errors
    /// As [`Self::load`], but for reading the file itself.
    pub fn parse(path: PathBuf, text: &str) -> Result<Self, BuilderError> {
        let raw: RawBuilder = toml::from_str(text)
            .map_err(|err| Box::new(TomlError::from_toml(&path, text, &err)))?;
        for (table, name) in [
            (&raw.extensions, "[[extensions]]"),
            (&raw.order_extensions, "[[order-extensions]]"),
        ] {
            if let Some(value) = table {
                return Err(crate::extensions::refused(
                    &path,
                    text,
                    Some(value.span()),
                    &format!("builder.toml names image extensions in {name}"),
                )
                .into());
            }
        }
        let base = path.parent().unwrap_or(Path::new("/"));
        let mut registry = Registry::new();
        for entry in &raw.buildpacks {
            registry.insert(load_buildpack(entry, base, &path, text)?)?;
        }
        let order = validate_order(&raw.order, &path, text)?;
        check_order(&order, &raw.order, &registry, &path, text)?;
        check_composites(&registry)?;

        let first_run = raw.run.and_then(|run| run.images.into_iter().next());
        let run_image_mirrors = first_run
            .as_ref()
            .map(|image| image.mirrors.clone())
            .unwrap_or_default();
        let run_image = first_run
            .map(|image| image.image)
            .or_else(|| raw.stack.as_ref().and_then(|stack| stack.run_image.clone()));
        let build_image = raw
            .build
            .and_then(|build| build.image)
            .or_else(|| raw.stack.and_then(|stack| stack.build_image));
        Ok(Self {
            path,
            registry,
            order,
            run_image,
            run_image_mirrors,
            build_image,
        })
    }
}

impl Builder {
    /// A builder whose buildpacks were loaded elsewhere (from a builder image's layers, say):
    /// `registry` holds them, `order_text` is its order as `order.toml` text (`[[order]]`,
    /// whose errors name `order_path`), and the run and build image references are kept as
    /// given. Relative references are relative to the directory holding `path`. The same
    /// checks as [`Self::parse`] apply: every order entry and every composite's member names
    /// a buildpack of `registry`, and no composites contain each other.
    ///
    /// # Errors
    /// The order text is malformed or names an unknown buildpack, or composites are wrong.
    pub fn from_parts(
        path: PathBuf,
        registry: Registry,
        order_path: &Path,
        order_text: &str,
        run_image: Option<String>,
        build_image: Option<String>,
    ) -> Result<Self, BuilderError> {
        let raw: RawOrderFile = toml::from_str(order_text)
            .map_err(|err| Box::new(TomlError::from_toml(order_path, order_text, &err)))?;
        if let Some(value) = raw
            .order_extensions
            .as_ref()
            .filter(|v| !v.get_ref().is_empty())
        {
            return Err(crate::extensions::refused(
                order_path,
                order_text,
                Some(value.span()),
                "the builder names image extensions in [[order-extensions]]",
            )
            .into());
        }
        let order = validate_order(&raw.order, order_path, order_text)?;
        check_order(&order, &raw.order, &registry, order_path, order_text)?;
        check_composites(&registry)?;
        Ok(Self {
            path,
            registry,
            order,
            run_image,
            run_image_mirrors: Vec::new(),
            build_image,
        })
    }
}

/// Loads the buildpack a `[[buildpacks]]` entry of the builder at `path` names, checking the
/// `id` and `version` the entry gives, if any.
fn load_buildpack(
    entry: &Spanned<RawBuildpackEntry>,
    base: &Path,
    path: &Path,
    text: &str,
) -> Result<Buildpack, BuilderError> {
    let error = |span: Range<usize>, message: String| -> BuilderError {
        Box::new(TomlError::new(path, text, Some(span), message)).into()
    };
    let Some(uri) = &entry.get_ref().uri else {
        return Err(error(
            entry.span(),
            "`[[buildpacks]]` entry has no `uri`: strata reads buildpacks from directories"
                .to_owned(),
        ));
    };
    let dir = uri_to_dir(uri.get_ref(), base).map_err(|message| error(uri.span(), message))?;
    if !dir.is_dir() {
        let message = if dir.exists() {
            format!(
                "{} is not a directory: strata reads buildpacks from unpacked directories",
                dir.display()
            )
        } else {
            format!("no buildpack directory at {}", dir.display())
        };
        return Err(error(uri.span(), message));
    }
    let buildpack = Buildpack::load(&dir)?;
    match &entry.get_ref().id {
        Some(id) if id.get_ref() != buildpack.id().as_str() => {
            let message = format!(
                "the buildpack at `{}` is {}, not {}",
                uri.get_ref(),
                buildpack.id(),
                id.get_ref()
            );
            return Err(error(id.span(), message));
        }
        _ => {}
    }
    match &entry.get_ref().version {
        Some(version) if version.get_ref() != buildpack.version() => {
            let message = format!(
                "the buildpack at `{}` is {}, not version {}",
                uri.get_ref(),
                buildpack.reference(),
                version.get_ref()
            );
            return Err(error(version.span(), message));
        }
        _ => {}
    }
    Ok(buildpack)
}

/// Checks that every entry of the builder's `order` names a buildpack of `registry`.
fn check_order(
    order: &Order,
    raw: &RawOrder,
    registry: &Registry,
    path: &Path,
    text: &str,
) -> Result<(), Box<TomlError>> {
    for (g, group) in order.iter().enumerate() {
        for (e, entry) in group.group.iter().enumerate() {
            if registry.get(&entry.id, entry.version.as_deref()).is_err() {
                let message = format!("the builder has no buildpack {}", entry.reference());
                return Err(Box::new(
                    TomlError::new(path, text, id_span(raw, g, e), message)
                        .with_help(format!("known buildpacks: {}", registry.known())),
                ));
            }
        }
    }
    Ok(())
}

/// The directory a `[[buildpacks]] uri` names: a path relative to `base`, an absolute path, or
/// a `file://` URI with an absolute path.
fn uri_to_dir(uri: &str, base: &Path) -> Result<PathBuf, String> {
    if let Some(rest) = uri.strip_prefix("file://") {
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        if !rest.starts_with('/') {
            return Err(format!(
                "`{uri}` is not an absolute file:// URI; write `file:///absolute/path` or a \
                 relative path"
            ));
        }
        return percent_decode(rest)
            .map(PathBuf::from)
            .ok_or_else(|| format!("`{uri}` has an invalid %-escape"));
    }
    if uri.contains("://") || uri.starts_with("urn:") || uri.starts_with("docker:") {
        return Err(format!(
            "`{uri}` is not a directory: strata reads buildpacks from directories (a relative \
             path or a file:// URI)"
        ));
    }
    Ok(base.join(uri))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a composite buildpack is being checked (on the current path) or done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    OnPath,
    Done,
}

/// Checks every composite buildpack in `registry`: each order entry names a known buildpack,
/// and no composite contains itself, directly or through others.
fn check_composites(registry: &Registry) -> Result<(), Box<TomlError>> {
    let mut visits = HashMap::new();
    let mut path = Vec::new();
    for buildpack in registry.iter().filter(|b| b.is_composite()) {
        check_composite(buildpack, registry, &mut visits, &mut path)?;
    }
    Ok(())
}

/// Depth-first over composites; `path` holds the composites being checked, outermost first.
fn check_composite(
    composite: &Arc<Buildpack>,
    registry: &Registry,
    visits: &mut HashMap<String, Visit>,
    path: &mut Vec<String>,
) -> Result<(), Box<TomlError>> {
    let reference = composite.reference();
    if visits.contains_key(&reference) {
        return Ok(());
    }
    visits.insert(reference.clone(), Visit::OnPath);
    path.push(reference.clone());
    for (g, group) in composite.descriptor.order.iter().enumerate() {
        for (e, entry) in group.group.iter().enumerate() {
            let Ok(member) = registry.get(&entry.id, entry.version.as_deref()) else {
                return Err(composite_entry_error(
                    composite,
                    g,
                    e,
                    format!(
                        "composite buildpack {reference} names buildpack {}, which the builder \
                         does not have",
                        entry.reference()
                    ),
                    Some(format!("known buildpacks: {}", registry.known())),
                ));
            };
            if !member.is_composite() {
                continue;
            }
            let member_reference = member.reference();
            match visits.get(&member_reference) {
                Some(Visit::Done) => {}
                Some(Visit::OnPath) => {
                    let start = path
                        .iter()
                        .position(|r| *r == member_reference)
                        .unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(member_reference);
                    return Err(composite_entry_error(
                        composite,
                        g,
                        e,
                        format!(
                            "composite buildpacks contain each other: {}",
                            cycle.join(" -> ")
                        ),
                        None,
                    ));
                }
                None => check_composite(&member, registry, visits, path)?,
            }
        }
    }
    path.pop();
    visits.insert(reference, Visit::Done);
    Ok(())
}

/// An error at entry `entry` of group `group` of `composite`'s `[[order]]`.
fn composite_entry_error(
    composite: &Buildpack,
    group: usize,
    entry: usize,
    message: String,
    help: Option<String>,
) -> Box<TomlError> {
    let error = match reread_order(&composite.dir) {
        Some((path, text, order)) => {
            TomlError::new(&path, &text, id_span(&order, group, entry), message)
        }
        None => TomlError::new(&composite.dir.join("buildpack.toml"), "", None, message),
    };
    Box::new(match help {
        Some(help) => error.with_help(help),
        None => error,
    })
}

/// `builder.toml` as written; keys strata does not use are ignored.
#[derive(serde::Deserialize)]
struct RawBuilder {
    #[serde(default)]
    buildpacks: Vec<Spanned<RawBuildpackEntry>>,
    #[serde(default)]
    order: RawOrder,
    stack: Option<RawStack>,
    build: Option<RawBuild>,
    run: Option<RawRun>,
    /// Refused (see [`crate::extensions`]).
    extensions: Option<Spanned<toml::Value>>,
    /// Refused (see [`crate::extensions`]).
    #[serde(rename = "order-extensions")]
    order_extensions: Option<Spanned<toml::Value>>,
}

/// `order.toml` as written.
#[derive(serde::Deserialize)]
struct RawOrderFile {
    #[serde(default)]
    order: RawOrder,
    /// Refused (see [`crate::extensions`]); an empty list is what pack writes without any.
    #[serde(rename = "order-extensions")]
    order_extensions: Option<Spanned<Vec<toml::Value>>>,
}

/// `[[buildpacks]]` as written.
#[derive(serde::Deserialize)]
struct RawBuildpackEntry {
    uri: Option<Spanned<String>>,
    id: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
}

/// `[stack]` (deprecated) as written.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawStack {
    run_image: Option<String>,
    build_image: Option<String>,
}

/// `[build]` as written.
#[derive(serde::Deserialize)]
struct RawBuild {
    image: Option<String>,
}

/// `[run]` as written.
#[derive(serde::Deserialize)]
struct RawRun {
    #[serde(default)]
    images: Vec<RawRunImage>,
}

/// `[[run.images]]` as written.
#[derive(serde::Deserialize)]
struct RawRunImage {
    image: String,
    #[serde(default)]
    mirrors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BuildpackId;
    use crate::fixtures::{component, composite, write};

    fn toml_error(err: BuilderError) -> Box<TomlError> {
        match err {
            BuilderError::Toml(err) => err,
            other => panic!("expected a TOML error, got {other:?}"),
        }
    }

    fn help(err: &TomlError) -> String {
        miette::Diagnostic::help(err)
            .map(|h| h.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn reads_a_builder() {
        let tmp = tempfile::tempdir().unwrap();
        component(tmp.path(), "bps/node", "examples/node", "0.1.0");
        let npm = component(tmp.path(), "elsewhere/npm dir", "examples/npm", "0.2.0");
        let npm = npm.canonicalize().unwrap();
        let npm_uri = format!("file://{}", npm.display().to_string().replace(' ', "%20"));
        let builder = write(
            tmp.path(),
            "builder/builder.toml",
            &format!(
                r#"description = "examples"

[[buildpacks]]
uri = "../bps/node"
id = "examples/node"
version = "0.1.0"

[[buildpacks]]
uri = "{npm_uri}"

[[order]]
[[order.group]]
id = "examples/node"
version = "0.1.0"
[[order.group]]
id = "examples/npm"
optional = true

[[order]]
[[order.group]]
id = "examples/node"

[lifecycle]
version = "0.20.0"

[run]
[[run.images]]
image = "example.com/run:latest"
mirrors = ["mirror.example.com/run:latest"]

[build]
image = "example.com/build:latest"

[stack]
id = "io.buildpacks.stacks.jammy"
run-image = "ignored/run"
build-image = "ignored/build"
"#
            ),
        );
        let builder = Builder::load(&builder).unwrap();
        assert!(builder.path.is_absolute());
        assert_eq!(builder.registry.len(), 2);
        let npm_id = BuildpackId::new("examples/npm").unwrap();
        assert_eq!(builder.registry.get(&npm_id, None).unwrap().dir, npm);
        assert_eq!(builder.order.len(), 2);
        assert_eq!(builder.order[0].group[1].reference(), "examples/npm");
        assert!(builder.order[0].group[1].optional);
        assert_eq!(builder.run_image.as_deref(), Some("example.com/run:latest"));
        assert_eq!(
            builder.build_image.as_deref(),
            Some("example.com/build:latest")
        );
    }

    #[test]
    fn stack_images_are_the_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(
            tmp.path(),
            "builder.toml",
            "[stack]\nid = \"x\"\nrun-image = \"r\"\nbuild-image = \"b\"\n",
        );
        let builder = Builder::load(&path).unwrap();
        assert_eq!(builder.run_image.as_deref(), Some("r"));
        assert_eq!(builder.build_image.as_deref(), Some("b"));
        assert!(builder.registry.is_empty());
    }

    #[test]
    fn unknown_order_entries_point_at_the_id() {
        let cases = [
            (
                "[[order]]\n[[order.group]]\nid = \"a\"\n[[order.group]]\nid = \"nope\"\n",
                5,
                "nope",
            ),
            (
                "[[order]]\n[[order.group]]\nid = \"a\"\nversion = \"2\"\n",
                3,
                "a@2",
            ),
        ];
        for (order, line, name) in cases {
            let tmp = tempfile::tempdir().unwrap();
            component(tmp.path(), "a", "a", "1");
            component(tmp.path(), "b", "b", "1");
            let text = format!("[[buildpacks]]\nuri = \"a\"\n[[buildpacks]]\nuri = \"b\"\n{order}");
            let path = write(tmp.path(), "builder.toml", &text);
            let err = toml_error(Builder::load(&path).unwrap_err());
            assert_eq!(err.line(), Some(line + 4), "{order}");
            assert!(err.message.contains(name), "{}", err.message);
            assert_eq!(help(&err), "known buildpacks: a@1, b@1");
        }
    }

    #[test]
    fn order_entries_keep_their_exec_env() {
        let tmp = tempfile::tempdir().unwrap();
        component(tmp.path(), "a", "a", "1");
        let text = "[[buildpacks]]\nuri = \"a\"\n[[order]]\n[[order.group]]\nid = \"a\"\n\
                    exec-env = [\"test\"]\n";
        let builder = Builder::load(&write(tmp.path(), "builder.toml", text)).unwrap();
        assert_eq!(builder.order[0].group[0].exec_env, ["test"]);
    }

    #[test]
    fn image_extensions_are_refused_at_their_table() {
        for (table, line) in [
            ("[[extensions]]\nid = \"e\"\nuri = \"e\"\n", 4),
            (
                "[[order-extensions]]\n[[order-extensions.group]]\nid = \"e\"\n",
                4,
            ),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            component(tmp.path(), "a", "a", "1");
            let text = format!("[[buildpacks]]\nuri = \"a\"\n\n{table}");
            let path = write(tmp.path(), "builder.toml", &text);
            let err = toml_error(Builder::load(&path).unwrap_err());
            assert_eq!(err.line(), Some(line), "{table}");
            assert!(
                err.message.contains("image extensions are not supported"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn buildpack_entry_errors_point_at_the_key() {
        let cases = [
            (
                "[[buildpacks]]\nuri = \"missing\"\n",
                2,
                "no buildpack directory",
            ),
            ("[[buildpacks]]\nuri = \"file\"\n", 2, "not a directory"),
            (
                "[[buildpacks]]\nuri = \"docker://example/bp\"\n",
                2,
                "directories",
            ),
            (
                "[[buildpacks]]\nuri = \"urn:cnb:registry:a@1\"\n",
                2,
                "directories",
            ),
            ("[[buildpacks]]\nuri = \"file://a\"\n", 2, "absolute"),
            (
                "[[buildpacks]]\nuri = \"a\"\nid = \"b\"\n",
                3,
                "is a, not b",
            ),
            (
                "[[buildpacks]]\nuri = \"a\"\nversion = \"2\"\n",
                3,
                "not version 2",
            ),
            ("[[buildpacks]]\nid = \"a\"\n", 1, "no `uri`"),
            ("[[buildpacks]]\nuri = 3\n", 2, "string"),
            (
                "[[order]]\n[[order.group]]\nid = \"bad id\"\n",
                3,
                "contains",
            ),
        ];
        for (text, line, message) in cases {
            let tmp = tempfile::tempdir().unwrap();
            component(tmp.path(), "a", "a", "1");
            write(tmp.path(), "file", "");
            let path = write(tmp.path(), "builder.toml", text);
            let err = toml_error(Builder::load(&path).unwrap_err());
            assert!(err.message.contains(message), "{text}: {}", err.message);
            assert_eq!(err.line(), Some(line), "{text}: {}", err.message);
        }
    }

    #[test]
    fn buildpack_and_registry_errors_pass_through() {
        let tmp = tempfile::tempdir().unwrap();
        component(tmp.path(), "a", "a", "1");
        component(tmp.path(), "a2", "a", "1");
        let path = write(
            tmp.path(),
            "builder.toml",
            "[[buildpacks]]\nuri = \"a\"\n[[buildpacks]]\nuri = \"a2\"\n",
        );
        assert!(matches!(
            Builder::load(&path),
            Err(BuilderError::Registry(RegistryError::Duplicate { .. }))
        ));

        write(tmp.path(), "a2/buildpack.toml", "api = \"0.10\"\n");
        assert!(matches!(
            Builder::load(&path),
            Err(BuilderError::Buildpack(BuildpackError::Toml(_)))
        ));

        assert!(matches!(
            Builder::load(&tmp.path().join("nope.toml")),
            Err(BuilderError::Io { .. })
        ));
    }

    #[test]
    fn composite_members_must_be_known() {
        let tmp = tempfile::tempdir().unwrap();
        component(tmp.path(), "a", "a", "1");
        composite(
            tmp.path(),
            "outer",
            "outer",
            "1",
            &[&[("inner", None, false)]],
        );
        let inner = composite(
            tmp.path(),
            "inner",
            "inner",
            "1",
            &[
                &[("a", Some("1"), false)],
                &[("a", None, false), ("ghost", None, true)],
            ],
        );
        let path = write(
            tmp.path(),
            "builder.toml",
            "[[buildpacks]]\nuri = \"a\"\n[[buildpacks]]\nuri = \"outer\"\n[[buildpacks]]\nuri = \"inner\"\n[[order]]\n[[order.group]]\nid = \"outer\"\n",
        );
        let err = toml_error(Builder::load(&path).unwrap_err());
        assert_eq!(
            err.path,
            inner.canonicalize().unwrap().join("buildpack.toml")
        );
        assert!(err.message.contains("ghost"), "{}", err.message);
        let text = std::fs::read_to_string(inner.join("buildpack.toml")).unwrap();
        let ghost_line = text.lines().position(|l| l.contains("ghost")).unwrap() + 1;
        assert_eq!(err.line(), Some(ghost_line));
        assert_eq!(help(&err), "known buildpacks: a@1, inner@1, outer@1");

        composite(
            tmp.path(),
            "inner",
            "inner",
            "1",
            &[&[("a", Some("1"), false)]],
        );
        let builder = Builder::load(&path).unwrap();
        assert_eq!(builder.registry.len(), 3);
    }

    #[test]
    fn a_builder_from_parts_checks_its_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut registry = Registry::new();
        registry
            .insert(Buildpack::load(&component(tmp.path(), "a", "a", "1")).unwrap())
            .unwrap();
        let order_path = Path::new("oci:builder:tag /cnb/order.toml");
        // As pack writes it: indented, and an empty `order-extensions` when there are none.
        let text = "[[order]]\n\n  [[order.group]]\n    id = \"a\"\n    version = \"1\"\n\norder-extensions = []\n";
        let builder = Builder::from_parts(
            tmp.path().join("layout"),
            registry.clone(),
            order_path,
            text,
            Some("oci:run:latest".to_owned()),
            None,
        )
        .unwrap();
        assert_eq!(builder.order[0].group[0].reference(), "a@1");
        assert_eq!(builder.run_image.as_deref(), Some("oci:run:latest"));
        assert_eq!(builder.path, tmp.path().join("layout"));

        let err = toml_error(
            Builder::from_parts(
                tmp.path().join("layout"),
                registry.clone(),
                order_path,
                "[[order]]\n[[order.group]]\nid = \"ghost\"\n",
                None,
                None,
            )
            .unwrap_err(),
        );
        assert_eq!(err.path, order_path);
        assert_eq!(err.line(), Some(3));
        assert!(
            err.message.contains("no buildpack ghost"),
            "{}",
            err.message
        );

        let err = toml_error(
            Builder::from_parts(
                tmp.path().join("layout"),
                registry,
                order_path,
                "[[order-extensions]]\n[[order-extensions.group]]\nid = \"e\"\n",
                None,
                None,
            )
            .unwrap_err(),
        );
        assert!(
            err.message.contains("image extensions are not supported"),
            "{}",
            err.message
        );
    }

    #[test]
    fn composite_cycles_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        composite(tmp.path(), "x", "x", "1", &[&[("y", None, false)]]);
        composite(tmp.path(), "y", "y", "1", &[&[("z", None, false)]]);
        composite(tmp.path(), "z", "z", "1", &[&[("x", Some("1"), false)]]);
        composite(tmp.path(), "self", "self", "1", &[&[("self", None, false)]]);
        let path = write(
            tmp.path(),
            "builder.toml",
            "[[buildpacks]]\nuri = \"x\"\n[[buildpacks]]\nuri = \"y\"\n[[buildpacks]]\nuri = \"z\"\n",
        );
        let err = toml_error(Builder::load(&path).unwrap_err());
        assert!(
            err.message.contains("x@1 -> y@1 -> z@1 -> x@1"),
            "{}",
            err.message
        );
        assert!(err.path.ends_with("z/buildpack.toml"));
        assert_eq!(err.line(), Some(9));

        let path = write(
            tmp.path(),
            "builder.toml",
            "[[buildpacks]]\nuri = \"self\"\n",
        );
        let err = toml_error(Builder::load(&path).unwrap_err());
        assert!(err.message.contains("self@1 -> self@1"), "{}", err.message);
    }
}
