//! `strata.toml`: a repository of many services, built as one plan.
//!
//! ```toml
//! [workspace]
//! builder = "builders/builder.toml"     # default builder of every service (or an image,
//!                                       # oci:DIR:TAG)
//! run-image = "oci:run-image:latest"
//! output = "oci:out"                    # one layout; each image is tagged with its service
//! services = ["services/*"]             # directories, by glob
//! env = { LOG_LEVEL = "info" }          # default build env
//! bindings = { db = "bindings/db" }     # service bindings (directories inside the repository)
//!
//! [[service]]                           # and/or one table per service
//! name = "api"
//! path = "legacy/api"
//! builder = "builders/legacy.toml"
//! env = { LOG_LEVEL = "debug" }
//! bindings = { cache = "bindings/redis" }
//! ```
//!
//! Every path is relative to the file. The keys are strata's own, so an unknown key is an
//! error pointing at it. A `services` glob that matches no directory is a warning, not an
//! error (a new repository may have none yet), but never silence.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::{PathError, TomlError, valid_env_name};

/// The file name strata looks for at a repository root.
pub const WORKSPACE_FILE: &str = "strata.toml";

/// A validated `strata.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The file.
    pub path: PathBuf,
    /// Its directory: paths in it are relative to this.
    pub root: PathBuf,
    /// The default builder.
    pub builder: Option<PathBuf>,
    /// The default run image reference.
    pub run_image: Option<String>,
    /// The output reference (a layout: images are tagged with their service's name).
    pub output: Option<String>,
    /// `launcher`: whether images start through the CNB launcher (default true; `false` is
    /// `strata build --no-launcher`).
    pub launcher: bool,
    /// `insecure-registries`: registries (`HOST[:PORT]`) spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// `cache`: a registry repository (`docker://HOST/REPO`) that builds read task outputs
    /// from and push them to (the CLI checks the reference).
    pub cache: Option<String>,
    /// The default build env, sorted by name.
    pub env: Vec<(String, String)>,
    /// The default service bindings (name, directory), sorted by name.
    pub bindings: Vec<(String, PathBuf)>,
    /// The services, sorted by name.
    pub services: Vec<ServiceSpec>,
    /// Things worth telling the user (a glob that matched nothing).
    pub warnings: Vec<String>,
}

/// One service of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Its name (its image's tag).
    pub name: String,
    /// Its directory (absolute).
    pub path: PathBuf,
    /// Its builder, if not the workspace's.
    pub builder: Option<PathBuf>,
    /// Its build env: the workspace's, then its own (its own wins), sorted by name.
    pub env: Vec<(String, String)>,
    /// Its service bindings: the workspace's, then its own (its own wins), sorted by name.
    pub bindings: Vec<(String, PathBuf)>,
}

/// Why a `strata.toml` could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WorkspaceError {
    /// The file could not be read.
    #[error("cannot read {path}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    workspace: Option<RawWorkspace>,
    #[serde(default)]
    service: Vec<RawService>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawWorkspace {
    builder: Option<String>,
    run_image: Option<String>,
    output: Option<String>,
    launcher: Option<bool>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    cache: Option<String>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    bindings: BTreeMap<String, Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Option<Spanned<String>>,
    path: Spanned<String>,
    builder: Option<String>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    bindings: BTreeMap<String, Spanned<String>>,
}

impl Workspace {
    /// The `strata.toml` in `dir`, if there is one.
    pub fn find(dir: &Path) -> Option<PathBuf> {
        let path = dir.join(WORKSPACE_FILE);
        path.is_file().then_some(path)
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, WorkspaceError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkspaceError::Io {
            path: path.to_owned(),
            source,
        })?;
        let root = path.parent().unwrap_or(Path::new(".")).to_owned();
        Ok(Self::parse(path, &root, &text)?)
    }

    /// Parses and validates the text of the `strata.toml` at `path`, whose service globs
    /// match directories under `root`.
    ///
    /// # Errors
    /// A [`TomlError`] pointing at the offending value.
    pub fn parse(path: &Path, root: &Path, text: &str) -> Result<Self, Box<TomlError>> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| Box::new(TomlError::from_toml(path, text, &e)))?;
        let error = |span: Range<usize>, message: String| {
            Box::new(TomlError::new(path, text, Some(span), message))
        };
        let ws = raw.workspace.unwrap_or(RawWorkspace {
            builder: None,
            run_image: None,
            output: None,
            launcher: None,
            insecure_registries: Vec::new(),
            cache: None,
            services: Vec::new(),
            env: BTreeMap::new(),
            bindings: BTreeMap::new(),
        });
        let env = checked_env(&ws.env, &error)?;
        let bindings = checked_bindings(root, &ws.bindings, &error)?;
        let mut services: BTreeMap<String, (ServiceSpec, Range<usize>)> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut add = |spec: ServiceSpec, span: Range<usize>| -> Result<(), Box<TomlError>> {
            if let Some((other, _)) = services.get(&spec.name) {
                return Err(error(
                    span,
                    format!(
                        "two services are named `{}`: {} and {}",
                        spec.name,
                        other.path.display(),
                        spec.path.display()
                    ),
                ));
            }
            services.insert(spec.name.clone(), (spec, span));
            Ok(())
        };
        for pattern in &ws.services {
            let dirs =
                matching_dirs(root, pattern.get_ref()).map_err(|m| error(pattern.span(), m))?;
            if dirs.is_empty() {
                warnings.push(format!(
                    "{}: `{}` matches no directory",
                    path.display(),
                    pattern.get_ref()
                ));
            }
            for dir in dirs {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                add(
                    ServiceSpec {
                        name,
                        path: dir,
                        builder: None,
                        env: env.clone(),
                        bindings: bindings.clone(),
                    },
                    pattern.span(),
                )?;
            }
        }
        for service in &raw.service {
            let defaults = Defaults {
                env: &env,
                bindings: &bindings,
            };
            let (spec, span) = service_spec(root, service, &defaults, &error)?;
            add(spec, span)?;
        }
        Ok(Self {
            path: path.to_owned(),
            root: root.to_owned(),
            builder: ws.builder.map(|b| builder_at(root, b)),
            run_image: ws.run_image,
            output: ws.output,
            launcher: ws.launcher.unwrap_or(true),
            insecure_registries: ws.insecure_registries,
            cache: ws.cache,
            env,
            bindings,
            services: services.into_values().map(|(spec, _)| spec).collect(),
            warnings,
        })
    }
}

/// What every service of the workspace gets unless its table says otherwise.
struct Defaults<'a> {
    env: &'a [(String, String)],
    bindings: &'a [(String, PathBuf)],
}

/// One `[[service]]`: its directory must exist; its name defaults to the directory's.
fn service_spec(
    root: &Path,
    service: &RawService,
    defaults: &Defaults<'_>,
    error: &dyn Fn(Range<usize>, String) -> Box<TomlError>,
) -> Result<(ServiceSpec, Range<usize>), Box<TomlError>> {
    let value = service.path.get_ref();
    // The app of a service becomes image layers: it must be inside the repository, through
    // whatever links lead to it.
    let dir = match crate::safepath::resolve_inside(root, value) {
        Ok(dir) => dir,
        Err(PathError::Unresolvable { .. }) => {
            return Err(error(
                service.path.span(),
                format!("service directory `{value}` does not exist"),
            ));
        }
        Err(e) => {
            return Err(error(
                service.path.span(),
                format!("service path {e}: it leads outside the directory of strata.toml"),
            ));
        }
    };
    if !dir.is_dir() {
        return Err(error(
            service.path.span(),
            format!("service path `{value}` is not a directory"),
        ));
    }
    let (name, span) = match &service.name {
        Some(name) => (name.get_ref().clone(), name.span()),
        None => (
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            service.path.span(),
        ),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(error(
            span,
            format!("`{name}` is not a valid service name: use letters, digits, `.`, `_` and `-`"),
        ));
    }
    let mut merged: BTreeMap<String, String> = defaults.env.iter().cloned().collect();
    merged.extend(checked_env(&service.env, error)?);
    let mut merged_bindings: BTreeMap<String, PathBuf> =
        defaults.bindings.iter().cloned().collect();
    merged_bindings.extend(checked_bindings(root, &service.bindings, error)?);
    let spec = ServiceSpec {
        name,
        path: dir,
        builder: service.builder.clone().map(|b| builder_at(root, b)),
        env: merged.into_iter().collect(),
        bindings: merged_bindings.into_iter().collect(),
    };
    Ok((spec, span))
}

fn checked_env(
    env: &BTreeMap<Spanned<String>, String>,
    error: &dyn Fn(Range<usize>, String) -> Box<TomlError>,
) -> Result<Vec<(String, String)>, Box<TomlError>> {
    let mut out = Vec::new();
    for (name, value) in env {
        let n = name.get_ref();
        if !valid_env_name(n) {
            return Err(error(
                name.span(),
                format!("`{n}` is not a valid env variable name"),
            ));
        }
        out.push((n.clone(), value.clone()));
    }
    out.sort();
    Ok(out)
}

/// Binding directories, resolved inside `root`: a repository must not hand its buildpacks a
/// directory of the host (`~/.ssh`); one elsewhere is given with `--binding`. The binding
/// itself (its name, its `type` file) is checked when it is loaded.
fn checked_bindings(
    root: &Path,
    bindings: &BTreeMap<String, Spanned<String>>,
    error: &dyn Fn(Range<usize>, String) -> Box<TomlError>,
) -> Result<Vec<(String, PathBuf)>, Box<TomlError>> {
    let mut out = Vec::new();
    for (name, dir) in bindings {
        let value = dir.get_ref();
        let resolved = crate::safepath::resolve_inside(root, value).map_err(|e| {
            error(
                dir.span(),
                format!(
                    "binding `{name}`: {e}; a binding in strata.toml must be a directory inside \
                     the directory of strata.toml (use --binding for one elsewhere)"
                ),
            )
        })?;
        out.push((name.clone(), resolved));
    }
    Ok(out)
}

/// The longest `services` glob strata compiles: real ones are a few dozen bytes, and a huge
/// one only makes the glob compiler work (or fail) hard.
const MAX_GLOB_LEN: usize = 1024;

/// The directories under `root` whose relative path matches `pattern`, sorted. A match that
/// is a symlink must resolve inside `root`, like a `[[service]] path`.
fn matching_dirs(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    if pattern.len() > MAX_GLOB_LEN {
        return Err(format!(
            "the glob is {} bytes long; at most {MAX_GLOB_LEN} are allowed",
            pattern.len()
        ));
    }
    if let Err(e) = crate::safepath::relative_or_root(pattern) {
        return Err(format!(
            "{e}; a glob must be relative to strata.toml and stay inside its directory"
        ));
    }
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    let glob = globset::GlobBuilder::new(pattern.trim_end_matches('/'))
        .literal_separator(true)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))?;
    // A set reports a regex that will not compile; `Glob::compile_matcher` panics on one.
    let glob = globset::GlobSetBuilder::new()
        .add(glob)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))?;
    let depth = pattern.trim_end_matches('/').split('/').count();
    let mut out = Vec::new();
    let mut level = vec![root.to_owned()];
    for current in 1..=depth {
        let mut next = Vec::new();
        for dir in &level {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() || entry.file_name() == ".git" {
                    continue;
                }
                if current == depth {
                    if path.strip_prefix(root).is_ok_and(|rel| glob.is_match(rel)) {
                        let resolved = path
                            .canonicalize()
                            .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
                        if !resolved.starts_with(&real_root) {
                            return Err(format!(
                                "`{pattern}` matches {}, a link to {}, outside the directory of \
                                 strata.toml",
                                path.display(),
                                resolved.display()
                            ));
                        }
                        out.push(resolved);
                    }
                } else {
                    next.push(path);
                }
            }
        }
        level = next;
    }
    out.sort();
    Ok(out)
}

/// Whether a `builder` value is an image reference (`oci:DIR[:TAG]`, later `docker://…`): it
/// starts with a transport name and `:`, which a builder.toml path does not.
pub fn is_image_reference(value: &str) -> bool {
    value.split_once(':').is_some_and(|(transport, _)| {
        !transport.is_empty()
            && transport
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    })
}

/// A `builder` value of `strata.toml`: a builder.toml path, joined onto the workspace root, or
/// an image reference, kept as written (the CLI takes its layout relative to the root).
fn builder_at(root: &Path, value: String) -> PathBuf {
    if is_image_reference(&value) {
        PathBuf::from(value)
    } else {
        root.join(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::write;

    fn parse(text: &str, dirs: &[&str]) -> (tempfile::TempDir, Result<Workspace, Box<TomlError>>) {
        let tmp = tempfile::tempdir().unwrap();
        for dir in dirs {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        write(tmp.path(), "strata.toml", text);
        let root = tmp.path().canonicalize().unwrap();
        let result = Workspace::parse(&root.join("strata.toml"), &root, text);
        (tmp, result)
    }

    #[test]
    fn a_builder_image_reference_is_kept_as_written() {
        let (_tmp, ws) = parse(
            "[workspace]\nbuilder = \"oci:builders/layout:base\"\nservices = [\"a\"]\n             [[service]]\nname = \"b\"\npath = \"b\"\nbuilder = \"b/builder.toml\"\n",
            &["a", "b"],
        );
        let ws = ws.unwrap();
        assert_eq!(
            ws.builder.as_deref(),
            Some(Path::new("oci:builders/layout:base"))
        );
        let b = ws.services.iter().find(|s| s.name == "b").unwrap();
        assert!(b.builder.as_ref().unwrap().is_absolute());
        assert!(is_image_reference("oci:dir:tag"));
        assert!(is_image_reference("docker://example.com/builder"));
        assert!(!is_image_reference("builders/builder.toml"));
        assert!(!is_image_reference("/abs/builder.toml"));
        assert!(!is_image_reference("./a:b/builder.toml"));
    }

    #[test]
    fn services_from_globs_and_tables_with_env_and_builders() {
        let (_tmp, ws) = parse(
            "[workspace]\nbuilder = \"b/builder.toml\"\noutput = \"oci:out\"\nservices = [\"services/*\"]\nenv = { LEVEL = \"info\", A = \"1\" }\n\
             [[service]]\nname = \"legacy-api\"\npath = \"legacy/api\"\nbuilder = \"b/old.toml\"\nenv = { LEVEL = \"debug\" }\n",
            &[
                "services/web",
                "services/worker",
                "legacy/api",
                "services/.git",
            ],
        );
        let ws = ws.unwrap();
        let names: Vec<&str> = ws.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["legacy-api", "web", "worker"]);
        assert!(ws.builder.as_ref().unwrap().ends_with("b/builder.toml"));
        let legacy = &ws.services[0];
        assert!(legacy.builder.as_ref().unwrap().ends_with("b/old.toml"));
        assert_eq!(
            legacy.env,
            [("A".into(), "1".into()), ("LEVEL".into(), "debug".into())]
        );
        assert_eq!(
            ws.services[1].env,
            [("A".into(), "1".into()), ("LEVEL".into(), "info".into())]
        );
        assert_eq!(ws.output.as_deref(), Some("oci:out"));
        assert!(ws.warnings.is_empty());
    }

    #[test]
    fn bad_input_points_at_the_line() {
        let (_t, e) = parse("[workspace]\nbuildr = \"x\"\n", &[]);
        let e = e.unwrap_err();
        assert!(e.message.contains("buildr"), "{}", e.message);
        assert_eq!(e.line(), Some(2));

        let (_t, e) = parse("[[service]]\npath = \"nope\"\n", &[]);
        let e = e.unwrap_err();
        assert!(e.message.contains("does not exist"), "{}", e.message);
        assert_eq!(e.line(), Some(2));

        let (_t, e) = parse(
            "[workspace]\nservices = [\"s/*\"]\n[[service]]\nname = \"a\"\npath = \"other/a\"\n",
            &["s/a", "other/a"],
        );
        let e = e.unwrap_err();
        assert!(
            e.message.contains("two services are named `a`"),
            "{}",
            e.message
        );
        assert_eq!(e.line(), Some(4));

        let (_t, e) = parse("[workspace]\nservices = [\"../*\"]\n", &[]);
        assert!(e.unwrap_err().message.contains("inside"));
        let (_t, e) = parse("[workspace]\nenv = { 1X = \"v\" }\n", &[]);
        assert!(e.unwrap_err().message.contains("1X"));
    }

    #[test]
    fn service_paths_outside_the_repository_are_refused_at_their_line() {
        for path in ["../outside", "/etc/ssh", "a/../../outside", "link"] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("repo");
            std::fs::create_dir_all(&root).unwrap();
            std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
            std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("link")).unwrap();
            let text = format!("[workspace]\n\n[[service]]\nname = \"x\"\npath = \"{path}\"\n");
            let e = Workspace::parse(&root.join("strata.toml"), &root, &text).unwrap_err();
            assert!(
                e.message.contains("outside the directory of strata.toml"),
                "{path}: {}",
                e.message
            );
            assert!(e.message.contains(path), "{path}: {}", e.message);
            assert_eq!(e.line(), Some(5), "{path}");
        }
    }

    #[test]
    fn a_link_inside_the_repository_is_a_service_at_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("real/api")).unwrap();
        std::os::unix::fs::symlink("real/api", root.join("api")).unwrap();
        let text = "[[service]]\npath = \"api\"\n[[service]]\nname = \"root\"\npath = \".\"\n";
        let ws = Workspace::parse(&root.join("strata.toml"), &root, text).unwrap();
        assert_eq!(ws.services[0].path, root.join("real/api"));
        assert_eq!(ws.services[1].path, root);
    }

    #[test]
    fn a_glob_match_linking_outside_the_repository_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        std::fs::create_dir_all(root.join("services/web")).unwrap();
        std::fs::create_dir_all(tmp.path().join("secrets")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secrets"), root.join("services/evil")).unwrap();
        let text = "[workspace]\nservices = [\"services/*\"]\n";
        let e = Workspace::parse(&root.join("strata.toml"), &root, text).unwrap_err();
        assert!(e.message.contains("services/evil"), "{}", e.message);
        assert!(e.message.contains("outside"), "{}", e.message);
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn a_huge_glob_is_an_error_not_a_panic() {
        // 300 KB of `*`: globset panics compiling it to a regex.
        let pattern = "*".repeat(300_000);
        let (_t, e) = parse(&format!("[workspace]\nservices = [\"{pattern}\"]\n"), &[]);
        let e = e.unwrap_err();
        assert!(
            e.message.contains("at most"),
            "{}",
            &e.message[..200.min(e.message.len())]
        );
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn bindings_merge_by_name_and_stay_inside_the_repository() {
        let (tmp, ws) = parse(
            "[workspace]\nservices = [\"services/*\"]\nbindings = { db = \"b/db\", cache = \"b/cache\" }\n\
             [[service]]\nname = \"legacy\"\npath = \"legacy/api\"\nbindings = { db = \"b/legacy-db\" }\n",
            &[
                "services/web",
                "legacy/api",
                "b/db",
                "b/cache",
                "b/legacy-db",
            ],
        );
        let ws = ws.unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let named = |items: &[(String, PathBuf)]| -> Vec<(String, PathBuf)> { items.to_vec() };
        assert_eq!(
            named(&ws.services[1].bindings),
            [
                ("cache".to_owned(), root.join("b/cache")),
                ("db".to_owned(), root.join("b/db"))
            ]
        );
        assert_eq!(
            named(&ws.services[0].bindings),
            [
                ("cache".to_owned(), root.join("b/cache")),
                ("db".to_owned(), root.join("b/legacy-db"))
            ]
        );
        for bad in ["/etc", "../outside", "b/../../x"] {
            let (_t, e) = parse(
                &format!("[workspace]\nbindings = {{ db = \"{bad}\" }}\n"),
                &[],
            );
            let e = e.unwrap_err();
            assert!(e.message.contains("binding `db`"), "{bad}: {}", e.message);
            let labels = miette::Diagnostic::labels(&*e).map(Iterator::count);
            assert_eq!(labels, Some(1), "{bad}: the error points at the value");
        }
    }

    #[test]
    fn a_glob_matching_nothing_is_a_warning() {
        let (_t, ws) = parse(
            "[workspace]\nservices = [\"services/*\", \"apps/*\"]\n",
            &["services/a"],
        );
        let ws = ws.unwrap();
        assert_eq!(ws.services.len(), 1);
        assert_eq!(ws.warnings.len(), 1);
        assert!(
            ws.warnings[0].contains("`apps/*` matches no directory"),
            "{:?}",
            ws.warnings
        );
    }
}
