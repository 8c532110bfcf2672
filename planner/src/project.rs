//! `project.toml`: a service's CNB project descriptor, in schema 0.2 and the older 0.1.
//!
//! The schema is chosen as pack chooses it: `[_] schema-version`, or 0.1 when there is none.
//! Schema 0.2 keeps its settings under `[io.buildpacks]` and the project's own fields under
//! `[_]`; schema 0.1 uses `[build]` and `[project]`. Both read into one [`ProjectDescriptor`].
//! Keys strata does not use are ignored; errors point at the offending value.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::{BuildpackId, GroupRef, TomlError};

/// What strata uses of a `project.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectDescriptor {
    /// Globs of app files to include (gitignore syntax); empty means all.
    pub include: Vec<String>,
    /// Globs of app files to exclude (gitignore syntax).
    pub exclude: Vec<String>,
    /// The buildpack group to use instead of the builder's order; empty means none.
    /// Entries given by `uri` only are kept as `uris`.
    pub group: Vec<GroupRef>,
    /// Buildpacks given by `uri` (relative to the project dir), in group order: every entry
    /// that has a `uri`, including those that also give an `id`.
    pub uris: Vec<String>,
    /// Build env, in file order.
    pub env: Vec<(String, String)>,
    /// The project's `[_]`/`[project]` table (id, name, version, source-url…), for the
    /// `io.buildpacks.project.metadata` label. `schema-version` is left out.
    pub source: toml::Table,
    /// Every buildpack entry as written, in file order: how `group` and `uris` interleave.
    pub buildpacks: Vec<ProjectBuildpack>,
}

/// One `[[io.buildpacks.group]]` (0.2) or `[[build.buildpacks]]` (0.1) entry: an `id` (with
/// an optional `version`), a `uri`, or an `id` and a `uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectBuildpack {
    /// `id`.
    pub id: Option<BuildpackId>,
    /// `version` (never given together with `uri`).
    pub version: Option<String>,
    /// `uri`, relative to the project dir unless absolute.
    pub uri: Option<String>,
}

/// Why a `project.toml` could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProjectError {
    /// The file exists but could not be read.
    #[error("cannot read {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
}

impl ProjectDescriptor {
    /// Reads `app_dir/project.toml`; `Ok(None)` when there is none.
    pub fn load(app_dir: &Path) -> Result<Option<Self>, ProjectError> {
        let path = app_dir.join("project.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ProjectError::Io { path, source }),
        };
        Ok(Some(Self::parse(&path, &text)?))
    }

    /// Parses the text of the `project.toml` at `path`.
    ///
    /// # Errors
    /// A [`TomlError`] pointing at the offending value.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Box<TomlError>> {
        let from_toml = |err: toml::de::Error| Box::new(TomlError::from_toml(path, text, &err));
        let version: RawVersion = toml::from_str(text).map_err(from_toml)?;
        let mut table: toml::Table = toml::from_str(text).map_err(from_toml)?;
        let schema = version.underscore.and_then(|u| u.schema_version);
        let (settings, mut source) = match schema.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("0.1") => {
                let raw: RawV01 = toml::from_str(text).map_err(from_toml)?;
                (raw.build.unwrap_or_default(), table.remove("project"))
            }
            Some("0.2") => {
                let raw: RawV02 = toml::from_str(text).map_err(from_toml)?;
                (
                    raw.io
                        .and_then(|io| io.buildpacks)
                        .unwrap_or_default()
                        .into_settings(),
                    table.remove("_"),
                )
            }
            Some(other) => {
                let span = schema.as_ref().map(Spanned::span);
                return Err(Box::new(TomlError::new(
                    path,
                    text,
                    span,
                    format!(
                        "unknown project.toml schema-version `{other}`; strata reads 0.1 and 0.2"
                    ),
                )));
            }
        };
        let source = match source.take() {
            Some(toml::Value::Table(mut source)) => {
                source.remove("schema-version");
                source
            }
            _ => toml::Table::new(),
        };
        settings.validate(path, text, source)
    }
}

/// The settings both schemas share, as written.
#[derive(Default, serde::Deserialize)]
struct RawSettings {
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    buildpacks: Vec<Spanned<RawBuildpack>>,
    #[serde(default)]
    env: Vec<Spanned<RawEnv>>,
    /// Image extensions: refused (see [`crate::extensions`]).
    extensions: Option<Spanned<toml::Value>>,
    #[serde(rename = "group-extensions")]
    group_extensions: Option<Spanned<toml::Value>>,
    #[serde(rename = "order-extensions")]
    order_extensions: Option<Spanned<toml::Value>>,
}

impl RawSettings {
    /// An error for the first table of image extensions (see [`crate::extensions`]).
    fn refuse_extensions(&self, path: &Path, text: &str) -> Result<(), Box<TomlError>> {
        for (table, name) in [
            (&self.extensions, "extensions"),
            (&self.group_extensions, "group-extensions"),
            (&self.order_extensions, "order-extensions"),
        ] {
            if let Some(value) = table {
                return Err(crate::extensions::refused(
                    path,
                    text,
                    Some(value.span()),
                    &format!("project.toml names image extensions in `{name}`"),
                ));
            }
        }
        Ok(())
    }

    fn validate(
        self,
        path: &Path,
        text: &str,
        source: toml::Table,
    ) -> Result<ProjectDescriptor, Box<TomlError>> {
        let error = |span: Range<usize>, message: &str| {
            Box::new(TomlError::new(path, text, Some(span), message))
        };
        self.refuse_extensions(path, text)?;
        if let (Some(_), Some(exclude)) = (&self.include, &self.exclude) {
            return Err(error(
                exclude.span(),
                "`include` and `exclude` cannot both be given",
            ));
        }
        let mut project = ProjectDescriptor {
            include: self.include.map(Spanned::into_inner).unwrap_or_default(),
            exclude: self.exclude.map(Spanned::into_inner).unwrap_or_default(),
            source,
            ..ProjectDescriptor::default()
        };
        for entry in self.buildpacks {
            let span = entry.span();
            let entry = entry.into_inner();
            if let Some(extension) = entry
                .extension
                .as_ref()
                .filter(|e| e.get_ref().as_bool() != Some(false))
            {
                return Err(crate::extensions::refused(
                    path,
                    text,
                    Some(extension.span()),
                    "project.toml names an image extension (`extension = true`)",
                ));
            }
            if let Some(script) = &entry.script {
                return Err(error(
                    script.span(),
                    "inline buildpacks (`script`) are not supported; use a buildpack directory",
                ));
            }
            if let (Some(_), Some(version)) = (&entry.uri, &entry.version) {
                return Err(error(
                    version.span(),
                    "a buildpack cannot have both `uri` and `version`",
                ));
            }
            let id = match &entry.id {
                Some(id) => Some(
                    BuildpackId::new(id.get_ref())
                        .map_err(|err| error(id.span(), &err.to_string()))?,
                ),
                None => None,
            };
            let uri = match entry.uri {
                Some(uri) if uri.get_ref().trim().is_empty() => {
                    return Err(error(uri.span(), "`uri` is empty"));
                }
                Some(uri) => Some(uri.into_inner()),
                None => None,
            };
            if id.is_none() && uri.is_none() {
                return Err(error(span, "a buildpack needs an `id` or a `uri`"));
            }
            let version = entry.version.map(Spanned::into_inner);
            if let Some(id) = &id {
                project.group.push(GroupRef {
                    id: id.clone(),
                    version: version.clone(),
                    optional: false,
                    exec_env: Vec::new(),
                });
            }
            if let Some(uri) = &uri {
                project.uris.push(uri.clone());
            }
            project
                .buildpacks
                .push(ProjectBuildpack { id, version, uri });
        }
        for var in self.env {
            let span = var.span();
            let var = var.into_inner();
            if var.name.is_empty() || var.name.contains('=') {
                return Err(error(
                    span,
                    "an env `name` must be non-empty and contain no `=`",
                ));
            }
            project.env.push((var.name, var.value));
        }
        Ok(project)
    }
}

/// A buildpack entry as written.
#[derive(serde::Deserialize)]
struct RawBuildpack {
    id: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    uri: Option<Spanned<String>>,
    script: Option<Spanned<toml::Value>>,
    /// `extension = true` marks an image extension: refused.
    extension: Option<Spanned<toml::Value>>,
}

/// A `[[…env]] name, value` entry as written.
#[derive(serde::Deserialize)]
struct RawEnv {
    name: String,
    value: String,
}

/// Just `[_] schema-version`.
#[derive(serde::Deserialize)]
struct RawVersion {
    #[serde(rename = "_")]
    underscore: Option<RawUnderscore>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawUnderscore {
    schema_version: Option<Spanned<String>>,
}

/// Schema 0.1: `[build]` holds the settings.
#[derive(serde::Deserialize)]
struct RawV01 {
    build: Option<RawSettings>,
}

/// Schema 0.2: `[io.buildpacks]` holds the settings.
#[derive(serde::Deserialize)]
struct RawV02 {
    io: Option<RawIo>,
}

#[derive(serde::Deserialize)]
struct RawIo {
    buildpacks: Option<RawIoBuildpacks>,
}

/// `[io.buildpacks]` as written.
#[derive(Default, serde::Deserialize)]
struct RawIoBuildpacks {
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    group: Vec<Spanned<RawBuildpack>>,
    /// `[[io.buildpacks.build.env]]`.
    build: Option<RawBuildEnv>,
    /// `[[io.buildpacks.env.build]]`, the older spelling pack still reads when the other is
    /// absent.
    env: Option<RawEnvBuild>,
    /// Image extensions: refused (see [`crate::extensions`]).
    extensions: Option<Spanned<toml::Value>>,
    #[serde(rename = "group-extensions")]
    group_extensions: Option<Spanned<toml::Value>>,
    #[serde(rename = "order-extensions")]
    order_extensions: Option<Spanned<toml::Value>>,
}

impl RawIoBuildpacks {
    fn into_settings(self) -> RawSettings {
        let env = match (self.build.and_then(|b| b.env), self.env) {
            (Some(env), _) => env,
            (None, Some(old)) => old.build,
            (None, None) => Vec::new(),
        };
        RawSettings {
            include: self.include,
            exclude: self.exclude,
            buildpacks: self.group,
            env,
            extensions: self.extensions,
            group_extensions: self.group_extensions,
            order_extensions: self.order_extensions,
        }
    }
}

/// `[io.buildpacks.build]`.
#[derive(serde::Deserialize)]
struct RawBuildEnv {
    env: Option<Vec<Spanned<RawEnv>>>,
}

/// `[io.buildpacks.env]`.
#[derive(serde::Deserialize)]
struct RawEnvBuild {
    #[serde(default)]
    build: Vec<Spanned<RawEnv>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::write;

    fn load(text: &str) -> Result<Option<ProjectDescriptor>, ProjectError> {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "project.toml", text);
        ProjectDescriptor::load(tmp.path())
    }

    fn toml_error(text: &str) -> Box<TomlError> {
        match load(text) {
            Err(ProjectError::Toml(err)) => err,
            other => panic!("expected a TOML error for {text}, got {other:?}"),
        }
    }

    fn group_ref(id: &str, version: Option<&str>) -> GroupRef {
        GroupRef {
            id: BuildpackId::new(id).unwrap(),
            version: version.map(str::to_owned),
            optional: false,
            exec_env: Vec::new(),
        }
    }

    #[test]
    fn image_extensions_are_refused_at_their_line() {
        for (text, line) in [
            (
                "[_]\nschema-version = \"0.2\"\n\n[[io.buildpacks.extensions]]\nid = \"e\"\n",
                4,
            ),
            (
                "[_]\nschema-version = \"0.2\"\n[[io.buildpacks.group]]\nid = \"e\"\nextension = true\n",
                5,
            ),
            ("[[build.group-extensions]]\nid = \"e\"\n", 1),
        ] {
            let err = toml_error(text);
            assert_eq!(err.line(), Some(line), "{text}");
            assert!(err.message.contains("image extension"), "{}", err.message);
        }
        let plain = "[_]\nschema-version = \"0.2\"\n[[io.buildpacks.group]]\nid = \"e\"\nextension = false\n";
        assert!(load(plain).unwrap().is_some());
    }

    #[test]
    fn no_file_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(ProjectDescriptor::load(tmp.path()).unwrap(), None);
    }

    #[test]
    fn reads_schema_0_2() {
        let project = load(
            r#"[_]
schema-version = "0.2"
id = "io.example.api"
name = "API"
version = "1.0.0"
source-url = "https://github.com/example/api"

[_.metadata]
team = "core"

[io.buildpacks]
builder = "ignored/builder"
exclude = ["*.md", "tests/"]

[[io.buildpacks.group]]
id = "examples/node"
version = "0.1.0"

[[io.buildpacks.group]]
uri = "../buildpacks/local"

[[io.buildpacks.group]]
id = "examples/web"
uri = "file:///opt/web"

[[io.buildpacks.build.env]]
name = "NODE_ENV"
value = "production"

[[io.buildpacks.build.env]]
name = "A"
value = "b=c"

[[io.buildpacks.env.build]]
name = "IGNORED"
value = "because build.env is given"
"#,
        )
        .unwrap()
        .unwrap();
        assert!(project.include.is_empty());
        assert_eq!(project.exclude, ["*.md", "tests/"]);
        assert_eq!(
            project.group,
            [
                group_ref("examples/node", Some("0.1.0")),
                group_ref("examples/web", None)
            ]
        );
        assert_eq!(project.uris, ["../buildpacks/local", "file:///opt/web"]);
        assert_eq!(project.buildpacks.len(), 3);
        assert_eq!(
            project.buildpacks[1],
            ProjectBuildpack {
                id: None,
                version: None,
                uri: Some("../buildpacks/local".into())
            }
        );
        assert_eq!(
            project.env,
            [
                ("NODE_ENV".to_owned(), "production".to_owned()),
                ("A".to_owned(), "b=c".to_owned())
            ]
        );
        assert_eq!(project.source["id"].as_str(), Some("io.example.api"));
        assert_eq!(
            project.source["source-url"].as_str(),
            Some("https://github.com/example/api")
        );
        assert_eq!(project.source["metadata"]["team"].as_str(), Some("core"));
        assert!(!project.source.contains_key("schema-version"));
    }

    #[test]
    fn reads_the_older_env_spelling_of_0_2() {
        let project = load(
            "[_]\nschema-version = \"0.2\"\n[[io.buildpacks.env.build]]\nname = \"X\"\nvalue = \"1\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(project.env, [("X".to_owned(), "1".to_owned())]);
        assert!(project.source.is_empty());
    }

    #[test]
    fn reads_schema_0_1() {
        for prefix in ["", "[_]\nschema-version = \"0.1\"\n"] {
            let project = load(&format!(
                r#"{prefix}
[project]
id = "io.example.worker"
name = "Worker"
version = "2.0"
source-url = "https://example.com/worker.git"

[build]
include = ["src/", "package.json"]

[[build.buildpacks]]
id = "examples/node"

[[build.buildpacks]]
uri = "bp"

[[build.env]]
name = "PORT"
value = "8080"

[metadata]
free = "form"
"#
            ))
            .unwrap()
            .unwrap();
            assert_eq!(project.include, ["src/", "package.json"]);
            assert!(project.exclude.is_empty());
            assert_eq!(project.group, [group_ref("examples/node", None)]);
            assert_eq!(project.uris, ["bp"]);
            assert_eq!(project.env, [("PORT".to_owned(), "8080".to_owned())]);
            assert_eq!(project.source["name"].as_str(), Some("Worker"));
            assert_eq!(
                project.source["source-url"].as_str(),
                Some("https://example.com/worker.git")
            );
        }
    }

    #[test]
    fn empty_files_are_empty_descriptors() {
        assert_eq!(load("").unwrap(), Some(ProjectDescriptor::default()));
        assert_eq!(
            load("[_]\nschema-version = \"0.2\"\n").unwrap(),
            Some(ProjectDescriptor::default())
        );
    }

    #[test]
    fn errors_point_at_the_offending_line() {
        let cases: &[(&str, &str, usize)] = &[
            ("[_]\nschema-version = \"0.9\"\n", "schema-version `0.9`", 2),
            ("[_]\nschema-version = 2\n", "string", 2),
            (
                "[_]\nschema-version = \"0.2\"\n[io.buildpacks]\ninclude = [\"a\"]\nexclude = [\"b\"]\n",
                "cannot both",
                5,
            ),
            (
                "[build]\ninclude = [\"a\"]\nexclude = [\"b\"]\n",
                "cannot both",
                3,
            ),
            (
                "[[build.buildpacks]]\nuri = \"x\"\nversion = \"1\"\n",
                "both `uri` and `version`",
                3,
            ),
            (
                "[[build.buildpacks]]\nversion = \"1\"\n",
                "an `id` or a `uri`",
                1,
            ),
            ("[[build.buildpacks]]\nid = \"app\"\n", "reserved", 2),
            ("[[build.buildpacks]]\nuri = \"\"\n", "empty", 2),
            (
                "[_]\nschema-version = \"0.2\"\n[[io.buildpacks.group]]\nid = \"x\"\n[io.buildpacks.group.script]\napi = \"0.10\"\ninline = \"true\"\n",
                "inline",
                5,
            ),
            (
                "[[build.env]]\nname = \"\"\nvalue = \"x\"\n",
                "env `name`",
                1,
            ),
            ("[[build.env]]\nname = \"X\"\n", "value", 1),
            ("[build\n", "", 1),
        ];
        for (text, message, line) in cases {
            let err = toml_error(text);
            assert!(err.message.contains(message), "{text}: {}", err.message);
            assert_eq!(err.line(), Some(*line), "{text}: {}", err.message);
        }
    }

    #[test]
    fn unreadable_file_is_io() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("project.toml")).unwrap();
        assert!(matches!(
            ProjectDescriptor::load(tmp.path()),
            Err(ProjectError::Io { .. })
        ));
    }
}
