//! Declarative layers: what a buildpack declares under `[metadata.strata]` in its
//! `buildpack.toml`.
//!
//! CNB leaves `[metadata]` free-form, so a buildpack can describe its layers here and stay a
//! valid buildpack for other platforms (which run its `bin/build`). strata plans each declared
//! layer as its own task, keyed by exactly the app files it names, so a change that misses a
//! layer's inputs leaves that layer cached:
//!
//! ```toml
//! [metadata.strata.detect]
//! files = ["package.json"]        # passes when any exists: no process is spawned
//! provides = ["node"]             # build plan entries, as bin/detect would write them
//! requires = ["node"]
//!
//! [[metadata.strata.layers]]
//! name = "deps"
//! inputs = ["package.json", "package-lock.json"]   # globs relative to the app
//! needs = ["runtime", "other/buildpack:layer"]
//! run = "layers/deps.sh"          # relative to the buildpack directory
//! env = ["NODE_ENV"]              # user env variables that are part of the key
//! launch = true
//! build = false
//! cache = true
//! network = false                 # the script gets no network unless this is true
//!
//! [[metadata.strata.processes]]   # as launch.toml's [[processes]]
//! type = "web"
//! command = ["node", "server.js"]
//! default = true
//! ```
//!
//! Unknown keys in these tables are errors (they are strata's own), each with the span of the
//! offending value. Everything that can be checked within one buildpack is checked when it is
//! loaded; `needs` naming another buildpack is checked when the plan is built.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use crate::{BuildpackId, TomlError, valid_env_name};

/// Layer names CNB reserves for a buildpack's metadata files.
const RESERVED_LAYER_NAMES: [&str; 3] = ["build", "launch", "store"];

/// A validated `[metadata.strata]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StrataMetadata {
    /// `[metadata.strata.detect]`: detection without a process.
    pub detect: Option<DeclaredDetect>,
    /// `inputs`: the app files an opaque `bin/build` reads (default: the whole app).
    pub inputs: Option<Vec<String>>,
    /// `[[metadata.strata.layers]]`, in file order.
    pub layers: Vec<DeclaredLayer>,
    /// `[[metadata.strata.processes]]`.
    pub processes: Vec<DeclaredProcess>,
    source: Arc<Source>,
}

/// The file the metadata came from, for errors found later (a `needs` naming another
/// buildpack is checked when the plan is built).
#[derive(Debug, PartialEq)]
struct Source {
    path: std::path::PathBuf,
    text: String,
}

/// `[metadata.strata.detect]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredDetect {
    /// App paths; detection passes when any exists.
    pub files: Vec<String>,
    /// Build plan provides.
    pub provides: Vec<String>,
    /// Build plan requires.
    pub requires: Vec<String>,
}

/// One `[[metadata.strata.layers]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // the flags of buildpack.toml, one each
pub struct DeclaredLayer {
    /// The layer name.
    pub name: String,
    /// Globs of the app files it reads, relative to the app directory.
    pub inputs: Vec<String>,
    /// The layers it needs, in file order.
    pub needs: Vec<LayerRef>,
    /// The script that fills it, relative to the buildpack directory.
    pub run: String,
    /// User env variables that are part of its key and that it sees.
    pub env: Vec<String>,
    /// Exported in the image.
    pub launch: bool,
    /// Visible to later layers and buildpacks at build time.
    pub build: bool,
    /// Kept between builds.
    pub cache: bool,
    /// Whether its script may reach the network (declared layers are offline unless they
    /// ask: what they download is not part of their key).
    pub network: bool,
}

/// A layer a declared layer needs: `layer` (same buildpack) or `other/buildpack:layer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The buildpack, when another one.
    pub buildpack: Option<BuildpackId>,
    /// The layer name.
    pub layer: String,
    /// Where the reference is written in `buildpack.toml`.
    pub span: Range<usize>,
}

impl std::fmt::Display for LayerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.buildpack {
            Some(bp) => write!(f, "{bp}:{}", self.layer),
            None => f.write_str(&self.layer),
        }
    }
}

/// One `[[metadata.strata.processes]]`, as a `launch.toml` process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeclaredProcess {
    /// The process type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The command.
    pub command: Vec<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Whether it is the default process.
    #[serde(default)]
    pub default: bool,
    /// Its working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `exec-env`: the execution environments it is for; empty means all.
    #[serde(default)]
    pub exec_env: Vec<String>,
}

impl StrataMetadata {
    /// An error at `span` of the `buildpack.toml` this came from.
    pub fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> TomlError {
        TomlError::new(&self.source.path, &self.source.text, span, message)
    }

    /// The declared layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&DeclaredLayer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Parses `[metadata.strata]` out of a `buildpack.toml`'s text; `Ok(None)` when the file
    /// has none. `dir` is the buildpack directory, where `run` scripts must exist.
    pub(crate) fn parse(
        path: &Path,
        text: &str,
        dir: &Path,
    ) -> Result<Option<Self>, Box<TomlError>> {
        let raw: RawFile =
            toml::from_str(text).map_err(|err| Box::new(TomlError::from_toml(path, text, &err)))?;
        let Some(strata) = raw.metadata.and_then(|m| m.strata) else {
            return Ok(None);
        };
        let source = Arc::new(Source {
            path: path.to_owned(),
            text: text.to_owned(),
        });
        let error = |span: Range<usize>, message: String| {
            Box::new(TomlError::new(path, text, Some(span), message))
        };

        let detect = strata.detect.map(|d| DeclaredDetect {
            files: d.files,
            provides: d.provides,
            requires: d.requires,
        });
        if let Some(inputs) = &strata.inputs {
            check_globs(inputs, &error)?;
        }

        let layers = parse_layers(&strata.layers, dir, &error)?;
        let mut defaults = strata.processes.iter().filter(|p| p.get_ref().default);
        if let (Some(_), Some(second)) = (defaults.next(), defaults.next()) {
            return Err(error(
                second.span(),
                "two processes have `default = true`".to_owned(),
            ));
        }
        Ok(Some(Self {
            detect,
            inputs: strata
                .inputs
                .map(|i| i.into_iter().map(Spanned::into_inner).collect()),
            layers,
            processes: strata
                .processes
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            source,
        }))
    }
}

type ErrorAt<'a> = dyn Fn(Range<usize>, String) -> Box<TomlError> + 'a;

/// Validates the declared layers of one buildpack: names, globs, scripts, env names, and
/// `needs` within the buildpack (existing, not itself, no cycle).
fn parse_layers(
    raw_layers: &[RawLayer],
    dir: &Path,
    error: &ErrorAt<'_>,
) -> Result<Vec<DeclaredLayer>, Box<TomlError>> {
    let mut layers: Vec<DeclaredLayer> = Vec::new();
    let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for raw in raw_layers {
        let name = raw.name.get_ref();
        if let Some(problem) = layer_name_problem(name) {
            return Err(error(raw.name.span(), problem));
        }
        if spans.insert(name.clone(), raw.name.span()).is_some() {
            return Err(error(
                raw.name.span(),
                format!("layer `{name}` is declared twice"),
            ));
        }
        check_globs(&raw.inputs, &error)?;
        check_run(dir, &raw.run, &error)?;
        for env in &raw.env {
            if !valid_env_name(env.get_ref()) {
                return Err(error(
                    env.span(),
                    format!("`{}` is not a valid env variable name", env.get_ref()),
                ));
            }
        }
        let mut needs = Vec::new();
        for need in &raw.needs {
            needs.push(parse_layer_ref(need).map_err(|m| error(need.span(), m))?);
        }
        layers.push(DeclaredLayer {
            name: name.clone(),
            inputs: raw.inputs.iter().map(|g| g.get_ref().clone()).collect(),
            needs,
            run: raw.run.get_ref().clone(),
            env: raw.env.iter().map(|e| e.get_ref().clone()).collect(),
            launch: raw.launch,
            build: raw.build,
            cache: raw.cache,
            network: raw.network,
        });
    }
    for layer in &layers {
        for need in layer.needs.iter().filter(|n| n.buildpack.is_none()) {
            if need.layer == layer.name {
                return Err(error(
                    need.span.clone(),
                    format!("layer `{}` needs itself", layer.name),
                ));
            }
            if !spans.contains_key(&need.layer) {
                let known: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                return Err(error(
                    need.span.clone(),
                    format!(
                        "layer `{}` needs `{}`, which this buildpack does not declare (it declares: {})",
                        layer.name,
                        need.layer,
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(cycle) = local_cycle(&layers) {
        let span = spans.get(&cycle[0]).cloned().unwrap_or(0..0);
        return Err(error(
            span,
            format!("layers need each other in a cycle: {}", cycle.join(" -> ")),
        ));
    }
    Ok(layers)
}

fn check_globs(globs: &[Spanned<String>], error: &ErrorAt<'_>) -> Result<(), Box<TomlError>> {
    for glob in globs {
        let pattern = glob.get_ref();
        if pattern.starts_with('/') || pattern.split('/').any(|part| part == "..") {
            return Err(error(
                glob.span(),
                format!("input `{pattern}` must be relative to the app and stay inside it"),
            ));
        }
        if let Err(e) = globset::Glob::new(pattern) {
            return Err(error(
                glob.span(),
                format!("invalid glob `{pattern}`: {}", e.kind()),
            ));
        }
    }
    Ok(())
}

fn check_run(dir: &Path, run: &Spanned<String>, error: &ErrorAt<'_>) -> Result<(), Box<TomlError>> {
    let rel = run.get_ref();
    let path = match crate::safepath::join(dir, rel) {
        Ok(path) => path,
        Err(e) => {
            return Err(error(
                run.span(),
                format!("run script {e}: it must be a path inside the buildpack directory"),
            ));
        }
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(error(
                    run.span(),
                    format!("run script `{rel}` is not executable"),
                ));
            }
            Ok(())
        }
        _ => Err(error(
            run.span(),
            format!("run script `{rel}` does not exist in {}", dir.display()),
        )),
    }
}

/// Why `name` cannot name a layer, if it cannot.
fn layer_name_problem(name: &str) -> Option<String> {
    if RESERVED_LAYER_NAMES.contains(&name) {
        return Some(format!(
            "layer name `{name}` is reserved by CNB (`build`, `launch` and `store` name metadata files)"
        ));
    }
    if crate::safepath::name(name).is_err()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Some(format!(
            "`{name}` is not a valid layer name: use letters, digits, `-`, `_` and `.`"
        ));
    }
    None
}

/// `layer` or `other/buildpack:layer`.
fn parse_layer_ref(raw: &Spanned<String>) -> Result<LayerRef, String> {
    let text = raw.get_ref();
    let (buildpack, layer) = match text.rsplit_once(':') {
        Some((bp, layer)) => (
            Some(BuildpackId::new(bp).map_err(|e| format!("in needs `{text}`: {e}"))?),
            layer,
        ),
        None => (None, text.as_str()),
    };
    if layer.is_empty() {
        return Err(format!("needs `{text}` names no layer"));
    }
    Ok(LayerRef {
        buildpack,
        layer: layer.to_owned(),
        span: raw.span(),
    })
}

/// A cycle among one buildpack's layers, as names (first repeated at the end), if any.
fn local_cycle(layers: &[DeclaredLayer]) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = layers
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.needs
                    .iter()
                    .filter(|n| n.buildpack.is_none())
                    .map(|n| n.layer.as_str())
                    .collect(),
            )
        })
        .collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in edges.keys() {
        let mut path: Vec<&str> = Vec::new();
        if let Some(cycle) = visit(start, &edges, &mut path, &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn visit<'a>(
    node: &'a str,
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|n| *n == node) {
        let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
        cycle.push(node.to_owned());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node);
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = visit(next, edges, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node);
    None
}

#[derive(serde::Deserialize)]
struct RawFile {
    metadata: Option<RawMetadata>,
}

#[derive(serde::Deserialize)]
struct RawMetadata {
    strata: Option<RawStrata>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrata {
    detect: Option<RawDetect>,
    inputs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    layers: Vec<RawLayer>,
    #[serde(default)]
    processes: Vec<Spanned<DeclaredProcess>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetect {
    files: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)]
struct RawLayer {
    name: Spanned<String>,
    #[serde(default)]
    inputs: Vec<Spanned<String>>,
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    run: Spanned<String>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    #[serde(default)]
    launch: bool,
    #[serde(default)]
    build: bool,
    #[serde(default)]
    cache: bool,
    #[serde(default)]
    network: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{write, write_executable};

    fn parse(strata: &str) -> Result<Option<StrataMetadata>, Box<TomlError>> {
        let dir = tempfile::tempdir().unwrap();
        write_executable(dir.path(), "layers/a.sh");
        write_executable(dir.path(), "layers/b.sh");
        write(dir.path(), "layers/plain.sh", "echo");
        let text = format!("api = \"0.10\"\n[buildpack]\nid = \"t/x\"\nversion = \"1\"\n{strata}");
        StrataMetadata::parse(&dir.path().join("buildpack.toml"), &text, dir.path())
    }

    fn err(strata: &str) -> (String, Option<usize>) {
        let e = parse(strata).unwrap_err();
        (e.message.clone(), e.line())
    }

    #[test]
    fn parses_layers_detect_and_processes() {
        let m = parse(
            "[metadata.strata.detect]\nfiles = [\"a.txt\"]\nprovides = [\"x\"]\n\
             [[metadata.strata.layers]]\nname = \"runtime\"\ninputs = [\".v\"]\nrun = \"layers/a.sh\"\nlaunch = true\nbuild = true\n\
             [[metadata.strata.layers]]\nname = \"deps\"\ninputs = [\"*.lock\"]\nneeds = [\"runtime\", \"o/bp:tools\"]\nrun = \"layers/b.sh\"\nenv = [\"MODE\"]\n\
             [[metadata.strata.processes]]\ntype = \"web\"\ncommand = [\"srv\"]\ndefault = true\n\
             exec-env = [\"production\"]\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.detect.as_ref().unwrap().files, ["a.txt"]);
        assert_eq!(m.layers.len(), 2);
        let deps = m.layer("deps").unwrap();
        assert_eq!(deps.needs[0].to_string(), "runtime");
        assert_eq!(deps.needs[1].buildpack.as_ref().unwrap().as_str(), "o/bp");
        assert_eq!(deps.needs[1].layer, "tools");
        assert_eq!(deps.env, ["MODE"]);
        assert!(m.layer("runtime").unwrap().launch);
        assert_eq!(m.processes[0].kind, "web");
        assert_eq!(m.processes[0].exec_env, ["production"]);
    }

    #[test]
    fn no_strata_table_is_none() {
        assert!(parse("[metadata]\nother = 1\n").unwrap().is_none());
    }

    #[test]
    fn a_needs_cycle_is_named() {
        let (msg, line) = err(
            "[[metadata.strata.layers]]\nname = \"a\"\nneeds = [\"b\"]\nrun = \"layers/a.sh\"\n\
             [[metadata.strata.layers]]\nname = \"b\"\nneeds = [\"a\"]\nrun = \"layers/a.sh\"\n",
        );
        assert!(msg.contains("a -> b -> a"), "{msg}");
        assert_eq!(line, Some(6));
    }

    #[test]
    fn unknown_needs_invalid_glob_missing_script_and_reserved_names_point_at_their_line() {
        let (msg, line) = err(
            "[[metadata.strata.layers]]\nname = \"a\"\nneeds = [\"nope\"]\nrun = \"layers/a.sh\"\n",
        );
        assert!(msg.contains("`nope`"), "{msg}");
        assert_eq!(line, Some(7));
        let (msg, line) = err(
            "[[metadata.strata.layers]]\nname = \"a\"\ninputs = [\"src/[\"]\nrun = \"layers/a.sh\"\n",
        );
        assert!(msg.contains("invalid glob `src/[`"), "{msg}");
        assert_eq!(line, Some(7));
        let (msg, line) =
            err("[[metadata.strata.layers]]\nname = \"a\"\nrun = \"layers/missing.sh\"\n");
        assert!(msg.contains("does not exist"), "{msg}");
        assert_eq!(line, Some(7));
        let (msg, _) = err("[[metadata.strata.layers]]\nname = \"a\"\nrun = \"layers/plain.sh\"\n");
        assert!(msg.contains("not executable"), "{msg}");
        let (msg, line) =
            err("[[metadata.strata.layers]]\nname = \"launch\"\nrun = \"layers/a.sh\"\n");
        assert!(msg.contains("reserved"), "{msg}");
        assert_eq!(line, Some(6));
    }

    #[test]
    fn unknown_keys_in_strata_tables_are_errors() {
        let (msg, _) =
            err("[[metadata.strata.layers]]\nname = \"a\"\nrun = \"layers/a.sh\"\nlunch = true\n");
        assert!(msg.contains("lunch"), "{msg}");
        let (msg, _) = err("[metadata.strata]\nlayer = []\n");
        assert!(msg.contains("layer"), "{msg}");
    }

    #[test]
    fn self_needs_duplicates_escapes_and_two_defaults_are_errors() {
        assert!(
            err(
                "[[metadata.strata.layers]]\nname = \"a\"\nneeds = [\"a\"]\nrun = \"layers/a.sh\"\n"
            )
            .0
            .contains("itself")
        );
        assert!(
            err("[[metadata.strata.layers]]\nname = \"a\"\nrun = \"layers/a.sh\"\n[[metadata.strata.layers]]\nname = \"a\"\nrun = \"layers/a.sh\"\n")
                .0
                .contains("twice")
        );
        assert!(err("[[metadata.strata.layers]]\nname = \"a\"\ninputs = [\"../x\"]\nrun = \"layers/a.sh\"\n").0.contains("inside"));
        assert!(
            err("[[metadata.strata.layers]]\nname = \"a\"\nrun = \"../a.sh\"\n")
                .0
                .contains("inside")
        );
        assert!(
            err("[[metadata.strata.processes]]\ntype = \"a\"\ncommand = [\"x\"]\ndefault = true\n[[metadata.strata.processes]]\ntype = \"b\"\ncommand = [\"x\"]\ndefault = true\n")
                .0
                .contains("default")
        );
    }
}
