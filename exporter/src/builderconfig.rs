//! The parts of `builder.toml` that only making a builder image needs, read as pack reads them.
//!
//! The planner reads what a build needs from `builder.toml` (the buildpacks, the order, the
//! first run image, the build image). Writing a builder image needs more: the description,
//! every run image with its mirrors, the legacy `[stack]`, the operator's build env
//! (`[[build.env]]`) and the lifecycle (`[lifecycle] uri`). They are read here from the same
//! text, with pack's rules: `[build] image` and `[stack] build-image` must agree when both are
//! given, the first `[[run.images]]` is the stack's run image (or `[stack] run-image` is the
//! only run image), and each `[[build.env]]` entry becomes one file name under
//! `/cnb/build-config/env/` (`NAME`, `NAME.default`, `NAME.override`, `NAME.append`,
//! `NAME.prepend`, and `NAME.delim` when a delimiter is given). Unknown keys are ignored, as for
//! every CNB file strata reads.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use strata_planner::TomlError;
use toml::Spanned;

use crate::builderlabels::RunImageMetadata;

/// What `builder.toml` says about the builder image beyond buildpacks and order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuilderConfig {
    /// `description`.
    pub description: String,
    /// `[build] image` (or `[stack] build-image`), as written.
    pub build_image: Option<String>,
    /// `[[run.images]]` with their mirrors (or `[stack] run-image` and its mirrors), as written.
    pub run_images: Vec<RunImageMetadata>,
    /// `[stack] id`: the build image's `io.buildpacks.stack.id` must be the same.
    pub stack_id: Option<String>,
    /// `[[build.env]]` as files of `/cnb/build-config/env/`: file name → content.
    pub build_env: BTreeMap<String, String>,
    /// `[lifecycle] uri`: a local lifecycle tarball (absolute).
    pub lifecycle: Option<PathBuf>,
    /// What pack would warn about (an empty value, a variable set twice).
    pub warnings: Vec<String>,
}

/// Why `builder.toml` cannot describe a builder image.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuilderConfigError {
    /// The file could not be read.
    #[error("cannot read builder {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A value is malformed or not something strata can use; points at it.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
}

impl BuilderConfig {
    /// Reads the `builder.toml` at `path`.
    ///
    /// # Errors
    /// [`BuilderConfigError::Io`], or a [`TomlError`] at the offending value.
    pub fn load(path: &Path) -> Result<Self, BuilderConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| BuilderConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of the `builder.toml` at `path`; relative paths are taken relative to
    /// the file's directory.
    ///
    /// # Errors
    /// A [`TomlError`] at the offending value.
    pub fn parse(path: &Path, text: &str) -> Result<Self, BuilderConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|err| Box::new(TomlError::from_toml(path, text, &err)))?;
        let error = |span: Option<Range<usize>>, message: String| -> BuilderConfigError {
            Box::new(TomlError::new(path, text, span, message)).into()
        };
        let base = path.parent().unwrap_or(Path::new("/"));
        let mut config = BuilderConfig {
            description: raw.description.unwrap_or_default(),
            ..BuilderConfig::default()
        };

        let stack = raw.stack.unwrap_or_default();
        let build = raw.build.unwrap_or_default();
        config.build_image = match (&build.image, &stack.build_image) {
            (Some(image), Some(legacy)) if image.get_ref() != legacy.get_ref() => {
                return Err(error(
                    Some(legacy.span()),
                    format!(
                        "`[stack] build-image` is `{}` but `[build] image` is `{}`",
                        legacy.get_ref(),
                        image.get_ref()
                    ),
                ));
            }
            (Some(image), _) | (None, Some(image)) => Some(image.get_ref().clone()),
            (None, None) => None,
        };
        config.stack_id = stack.id.filter(|id| !id.is_empty());

        let run = raw.run.unwrap_or_default();
        for image in &run.images {
            let Some(name) = image.get_ref().image.as_ref().filter(|i| !i.is_empty()) else {
                return Err(error(
                    Some(image.span()),
                    "a `[[run.images]]` entry has no `image`".to_owned(),
                ));
            };
            config.run_images.push(RunImageMetadata {
                image: name.clone(),
                mirrors: image.get_ref().mirrors.clone(),
            });
        }
        match (config.run_images.first(), &stack.run_image) {
            (Some(first), Some(legacy)) if first.image != *legacy.get_ref() => {
                return Err(error(
                    Some(legacy.span()),
                    format!(
                        "`[stack] run-image` is `{}` but the first `[[run.images]]` is `{}`",
                        legacy.get_ref(),
                        first.image
                    ),
                ));
            }
            (None, Some(legacy)) => config.run_images.push(RunImageMetadata {
                image: legacy.get_ref().clone(),
                mirrors: stack.run_image_mirrors,
            }),
            _ => {}
        }

        for entry in &build.env {
            add_env(&mut config, entry, &error)?;
        }
        for file in config.build_env.keys() {
            let Some((name, suffix)) = file.split_once('.') else {
                continue;
            };
            if matches!(suffix, "append" | "prepend")
                && !config.build_env.contains_key(&format!("{name}.delim"))
            {
                let span = build
                    .env
                    .iter()
                    .find(|e| {
                        e.get_ref()
                            .name
                            .as_ref()
                            .is_some_and(|n| n.get_ref() == name)
                    })
                    .map(Spanned::span);
                return Err(error(
                    span,
                    format!(
                        "`[[build.env]]` {name} has suffix `{suffix}` but no `delim`: the \
                         values it joins need one"
                    ),
                ));
            }
        }

        if let Some(lifecycle) = raw.lifecycle {
            config.lifecycle = lifecycle_path(&lifecycle, base, &error)?;
        }
        Ok(config)
    }
}

/// Adds one `[[build.env]]` entry to `config.build_env`, as pack's `ParseBuildConfigEnv`.
fn add_env(
    config: &mut BuilderConfig,
    entry: &Spanned<RawEnv>,
    error: &dyn Fn(Option<Range<usize>>, String) -> BuilderConfigError,
) -> Result<(), BuilderConfigError> {
    let raw = entry.get_ref();
    let Some(name) = raw.name.as_ref().filter(|n| !n.get_ref().is_empty()) else {
        return Err(error(
            Some(entry.span()),
            "a `[[build.env]]` entry has no `name`".to_owned(),
        ));
    };
    if !strata_planner::valid_env_name(name.get_ref()) {
        return Err(error(
            Some(name.span()),
            format!(
                "`{}` is not an environment variable name (letters, digits and `_`, not \
                 starting with a digit)",
                name.get_ref()
            ),
        ));
    }
    let name = name.get_ref();
    let value = raw.value.clone().unwrap_or_default();
    if value.is_empty() {
        config
            .warnings
            .push(format!("`[[build.env]]` {name} has an empty value"));
    }
    let file = match raw.suffix.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("") => name.clone(),
        Some(suffix @ ("default" | "override" | "append" | "prepend")) => {
            format!("{name}.{suffix}")
        }
        Some(other) => {
            let span = raw.suffix.as_ref().map(Spanned::span);
            return Err(error(
                span,
                format!(
                    "unknown `suffix` `{other}` for {name}: expected `default`, `override`, \
                     `append` or `prepend`"
                ),
            ));
        }
    };
    if let Some(delim) = raw.delim.as_ref().filter(|d| !d.is_empty()) {
        let delim_file = format!("{name}.delim");
        if let Some(old) = config.build_env.insert(delim_file, delim.clone()) {
            config.warnings.push(format!(
                "`[[build.env]]` {name}: delim `{old}` replaced by `{delim}`"
            ));
        }
    }
    if let Some(old) = config.build_env.insert(file.clone(), value.clone()) {
        config.warnings.push(format!(
            "`[[build.env]]` {file}: value `{old}` replaced by `{value}`"
        ));
    }
    Ok(())
}

/// The local lifecycle tarball `[lifecycle]` names; strata downloads nothing.
fn lifecycle_path(
    lifecycle: &RawLifecycle,
    base: &Path,
    error: &dyn Fn(Option<Range<usize>>, String) -> BuilderConfigError,
) -> Result<Option<PathBuf>, BuilderConfigError> {
    match (&lifecycle.uri, &lifecycle.version) {
        (Some(_), Some(version)) => Err(error(
            Some(version.span()),
            "`[lifecycle]` can give `uri` or `version`, not both".to_owned(),
        )),
        (None, Some(version)) => Err(error(
            Some(version.span()),
            format!(
                "strata does not download lifecycle {}: give `[lifecycle] uri` a local \
                 lifecycle tarball (`lifecycle-v{}+linux.x86-64.tgz` from the lifecycle's \
                 releases)",
                version.get_ref(),
                version.get_ref()
            ),
        )),
        (Some(uri), None) => {
            let text = uri.get_ref();
            let path = if let Some(rest) = text.strip_prefix("file://") {
                PathBuf::from(rest)
            } else if text.contains("://") {
                return Err(error(
                    Some(uri.span()),
                    format!(
                        "`{text}` is not a local file: strata reads the lifecycle from a \
                         tarball on disk (a path or a file:// URI)"
                    ),
                ));
            } else {
                base.join(text)
            };
            if !path.is_file() {
                return Err(error(
                    Some(uri.span()),
                    format!("no lifecycle tarball at {}", path.display()),
                ));
            }
            Ok(Some(path))
        }
        (None, None) => Ok(None),
    }
}

/// `builder.toml` as written, only the keys read here.
#[derive(serde::Deserialize)]
struct RawConfig {
    description: Option<String>,
    stack: Option<RawStack>,
    build: Option<RawBuild>,
    run: Option<RawRun>,
    lifecycle: Option<RawLifecycle>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawStack {
    id: Option<String>,
    build_image: Option<Spanned<String>>,
    run_image: Option<Spanned<String>>,
    #[serde(default)]
    run_image_mirrors: Vec<String>,
}

#[derive(Default, serde::Deserialize)]
struct RawBuild {
    image: Option<Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<RawEnv>>,
}

#[derive(serde::Deserialize)]
struct RawEnv {
    name: Option<Spanned<String>>,
    value: Option<String>,
    suffix: Option<Spanned<String>>,
    delim: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct RawRun {
    #[serde(default)]
    images: Vec<Spanned<RawRunImage>>,
}

#[derive(serde::Deserialize)]
struct RawRunImage {
    image: Option<String>,
    #[serde(default)]
    mirrors: Vec<String>,
}

#[derive(serde::Deserialize)]
struct RawLifecycle {
    uri: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BuilderConfig, BuilderConfigError> {
        BuilderConfig::parse(Path::new("/b/builder.toml"), text)
    }

    fn message(err: BuilderConfigError) -> (String, Option<usize>) {
        match err {
            BuilderConfigError::Toml(e) => (e.message.clone(), e.line()),
            other @ BuilderConfigError::Io { .. } => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_run_images_with_mirrors_and_the_legacy_stack() {
        let config = parse(
            "description = \"d\"\n[build]\nimage = \"b\"\n[[run.images]]\nimage = \"r\"\n\
             mirrors = [\"m1\", \"m2\"]\n[[run.images]]\nimage = \"s\"\n",
        )
        .unwrap();
        assert_eq!(config.description, "d");
        assert_eq!(config.build_image.as_deref(), Some("b"));
        assert_eq!(config.run_images.len(), 2);
        assert_eq!(config.run_images[0].mirrors, ["m1", "m2"]);

        let legacy = parse(
            "[stack]\nid = \"x\"\nbuild-image = \"b\"\nrun-image = \"r\"\n\
             run-image-mirrors = [\"m\"]\n",
        )
        .unwrap();
        assert_eq!(legacy.build_image.as_deref(), Some("b"));
        assert_eq!(legacy.stack_id.as_deref(), Some("x"));
        assert_eq!(legacy.run_images[0].image, "r");
        assert_eq!(legacy.run_images[0].mirrors, ["m"]);

        let (msg, line) =
            message(parse("[build]\nimage = \"b\"\n[stack]\nbuild-image = \"c\"\n").unwrap_err());
        assert!(msg.contains("but `[build] image` is `b`"), "{msg}");
        assert_eq!(line, Some(4));
    }

    #[test]
    fn build_env_becomes_files_with_suffixes_as_pack_names_them() {
        let config = parse(
            "[[build.env]]\nname = \"A\"\nvalue = \"1\"\n\
             [[build.env]]\nname = \"B\"\nvalue = \"2\"\nsuffix = \"default\"\n\
             [[build.env]]\nname = \"P\"\nvalue = \"/x\"\nsuffix = \"prepend\"\ndelim = \":\"\n\
             [[build.env]]\nname = \"E\"\nvalue = \"\"\n",
        )
        .unwrap();
        let files: Vec<(&str, &str)> = config
            .build_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                ("A", "1"),
                ("B.default", "2"),
                ("E", ""),
                ("P.delim", ":"),
                ("P.prepend", "/x")
            ]
        );
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    }

    #[test]
    fn refuses_bad_build_env_at_its_line() {
        let (msg, line) = message(
            parse("[[build.env]]\nname = \"A\"\nvalue = \"1\"\nsuffix = \"later\"\n").unwrap_err(),
        );
        assert!(msg.contains("unknown `suffix` `later`"), "{msg}");
        assert_eq!(line, Some(4));
        let (msg, _) = message(
            parse("[[build.env]]\nname = \"A\"\nvalue = \"1\"\nsuffix = \"append\"\n").unwrap_err(),
        );
        assert!(msg.contains("no `delim`"), "{msg}");
        let (msg, line) = message(parse("[[build.env]]\nname = \"../x\"\n").unwrap_err());
        assert!(msg.contains("not an environment variable name"), "{msg}");
        assert_eq!(line, Some(2));
        let (msg, _) = message(parse("[[build.env]]\nvalue = \"1\"\n").unwrap_err());
        assert!(msg.contains("no `name`"), "{msg}");
    }

    #[test]
    fn lifecycle_must_be_a_local_tarball() {
        let (msg, line) = message(parse("[lifecycle]\nversion = \"0.20.0\"\n").unwrap_err());
        assert!(msg.contains("does not download"), "{msg}");
        assert_eq!(line, Some(2));
        let (msg, _) =
            message(parse("[lifecycle]\nuri = \"https://example.com/l.tgz\"\n").unwrap_err());
        assert!(msg.contains("not a local file"), "{msg}");
        let (msg, _) = message(parse("[lifecycle]\nuri = \"missing.tgz\"\n").unwrap_err());
        assert!(
            msg.contains("no lifecycle tarball at /b/missing.tgz"),
            "{msg}"
        );
        assert_eq!(parse("").unwrap().lifecycle, None);
    }
}
