//! CNB env files and the env each layer contributes.
//!
//! A buildpack changes the environment of later buildpacks (and of the app at launch) in two
//! ways: directories with well-known names in a layer (`bin`, `lib`, …) are prepended to path
//! variables, and files in the layer's `env/`, `env.build/` and `env.launch/` directories
//! override, default, append to or prepend to a variable named by the file.
//!
//! Reading and applying are separate steps. Reading a layer yields a list of
//! [`EnvModification`]s, plain data that can be stored with a cached layer and replayed without
//! touching the filesystem; [`Env::apply`] replays them. The CNB ordering rules across
//! buildpacks and layers then need no special code: applying each buildpack's layers in group
//! order, each buildpack's layers in name order, gives exactly what the spec asks for (append:
//! earlier first; prepend and layer paths: later first; override: later wins; default: earlier
//! wins).
//!
//! Where the spec is silent, the reference lifecycle decides:
//! - File contents are used verbatim: a trailing newline is part of the value, as the spec
//!   forbids modifying contents and the lifecycle does not trim them.
//! - Files are read in byte order of their names; directories (for example the per-process
//!   directories inside `env.launch/`) are skipped.
//!
//! Unlike the lifecycle, strata refuses symlinks (an env directory or file that is one) and
//! anything but regular files and directories, and bounds each file's size: it reads these on
//! the host, and a link would put a host file into the image (see [`crate::untrusted`]).
//! - A suffix the spec does not define is ignored, not an error, because the lifecycle ignores
//!   it; `.delim` is such a file too, read only as the delimiter of its variable's
//!   append/prepend files in the same directory.
//! - A file whose name ends in a bare `.` (`PATH.`) prepends with `:` unless a `.delim` file
//!   says otherwise: the lifecycle's "prepend path" action.
//! - "Unset" and "empty" are the same for `.default`, `.append` and `.prepend`, as they are in
//!   the lifecycle.
//!
//! At launch the lifecycle's launcher adds the path directories of all of a buildpack's layers
//! before any of their env files, whereas during build it handles one layer completely before
//! the next; [`buildpack_env`] reproduces both orders.

use std::collections::{BTreeMap, btree_map};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::layers::is_valid_process_type;
use crate::untrusted::{self, METADATA_LIMIT, UntrustedError};

/// How an env file changes its variable, chosen by the file name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvAction {
    /// No suffix or `.override`: the value replaces the variable.
    Override,
    /// `.default`: the value is used only if the variable is unset or empty.
    Default,
    /// `.append`: the value goes after the current value, joined by the delimiter.
    Append,
    /// `.prepend`: the value goes before the current value, joined by the delimiter.
    Prepend,
}

/// One change to one environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvModification {
    /// The variable.
    pub name: String,
    /// What to do with it.
    pub action: EnvAction,
    /// The value (an env file's contents, verbatim).
    pub value: String,
    /// What joins `value` to the current value for [`EnvAction::Append`] and
    /// [`EnvAction::Prepend`]; `None` joins with nothing. Ignored by the other actions.
    pub delim: Option<String>,
}

impl EnvModification {
    /// Prepends `value` to the path list in `name`, separated by `:`.
    pub fn prepend_path(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action: EnvAction::Prepend,
            value: value.into(),
            delim: Some(":".to_owned()),
        }
    }
}

/// A set of environment variables, kept sorted by name so that iterating, hashing and
/// passing them to a process are deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// Iterator over an [`Env`]'s variables in name order.
pub type EnvIter<'a> = std::iter::Map<
    btree_map::Iter<'a, String, String>,
    fn((&'a String, &'a String)) -> (&'a str, &'a str),
>;

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Unsets `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.vars.remove(name)
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// The variables in byte order of their names.
    pub fn iter(&self) -> EnvIter<'_> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Applies `mods` in order.
    pub fn apply(&mut self, mods: &[EnvModification]) {
        for m in mods {
            self.apply_one(m);
        }
    }

    /// Applies one modification.
    pub fn apply_one(&mut self, m: &EnvModification) {
        let current = self.get(&m.name).unwrap_or_default();
        let delim = m.delim.as_deref().unwrap_or_default();
        // An unset variable and an empty one are the same to every action.
        let value = match m.action {
            EnvAction::Default if !current.is_empty() => return,
            EnvAction::Append if !current.is_empty() => format!("{current}{delim}{}", m.value),
            EnvAction::Prepend if !current.is_empty() => format!("{}{delim}{current}", m.value),
            EnvAction::Override | EnvAction::Default | EnvAction::Append | EnvAction::Prepend => {
                m.value.clone()
            }
        };
        self.set(m.name.clone(), value);
    }

    /// The variables as `(name, value)` pairs in byte order of their names.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.vars.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut env = Self::new();
        env.extend(iter);
        env
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Env {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k, v);
        }
    }
}

impl<'a> IntoIterator for &'a Env {
    type Item = (&'a str, &'a str);
    type IntoIter = EnvIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Env {
    type Item = (String, String);
    type IntoIter = btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.vars.into_iter()
    }
}

/// Why env files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A directory or file could not be read.
    #[error("cannot read env files at {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An env file's name is not UTF-8, so it names no variable strata can set.
    #[error("env file {path}: the file name is not UTF-8", path = path.display())]
    NonUtf8Name { path: PathBuf },
    /// An env file's contents are not UTF-8.
    #[error("env file {path}: the contents are not UTF-8", path = path.display())]
    NonUtf8Value { path: PathBuf },
    /// An env file's name gives an empty variable name or one containing `=`.
    #[error("env file {path}: `{name}` is not a valid environment variable name", path = path.display())]
    InvalidName { path: PathBuf, name: String },
    /// An env file contains a NUL byte, which no environment variable can hold.
    #[error("env file {path}: contains a NUL byte, which no environment variable can hold", path = path.display())]
    Nul { path: PathBuf },
    /// The process type given for launch cannot name a directory in `env.launch/`.
    #[error("`{process}` is not a valid process type")]
    InvalidProcess { process: String },
    /// An env directory or file is a symlink, not a regular file, or too large.
    #[error("env files: {0}")]
    Untrusted(#[from] UntrustedError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> EnvError + '_ {
    move |source| EnvError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the env files in `dir` (for example a layer's `env.build/`), in byte order of their
/// names. A missing directory has no files.
///
/// # Errors
///
/// The directory or a file cannot be read, a file name or its contents are not UTF-8, a file
/// name gives an invalid variable name, or contents hold a NUL byte.
pub fn read_env_dir(dir: &Path) -> Result<Vec<EnvModification>, EnvError> {
    if !untrusted::is_dir(dir)? {
        return Ok(Vec::new());
    }
    let entries = fs::read_dir(dir).map_err(io_error(dir))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_error(&path))?;
        if file_type.is_dir() {
            continue;
        }
        if file_type.is_symlink() {
            return Err(UntrustedError::Symlink { path }.into());
        }
        if !file_type.is_file() {
            return Err(UntrustedError::NotAFile { path }.into());
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| EnvError::NonUtf8Name { path })?;
        files.push(name);
    }
    // Byte order, as the lifecycle reads them: `String`'s order is that of its UTF-8 bytes.
    files.sort_unstable();

    let mut mods = Vec::new();
    for file in &files {
        let path = dir.join(file);
        let EnvFileName {
            name,
            action,
            default_delim,
        } = match parse_env_file_name(file) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(InvalidEnvName(name)) => return Err(EnvError::InvalidName { path, name }),
        };
        let value = read_value(&path)?;
        let delim = match action {
            EnvAction::Append | EnvAction::Prepend => {
                read_delim(dir, name)?.or_else(|| default_delim.map(str::to_owned))
            }
            EnvAction::Override | EnvAction::Default => None,
        };
        mods.push(EnvModification {
            name: name.to_owned(),
            action,
            value,
            delim,
        });
    }
    Ok(mods)
}

/// What an env file's name says: the variable it sets and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvFileName<'a> {
    /// The variable: the name up to the first `.`.
    pub name: &'a str,
    /// What the suffix asks for.
    pub action: EnvAction,
    /// The delimiter when the file gives none (`NAME.` prepends with `:`, as the lifecycle
    /// does for path lists).
    pub default_delim: Option<&'static str>,
}

/// An env file name gives an empty variable name or one containing `=`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid environment variable name")]
pub struct InvalidEnvName(pub String);

/// Reads an env file's name by the CNB rules: `NAME`, `NAME.override`, `NAME.default`,
/// `NAME.append`, `NAME.prepend`; `Ok(None)` for a file that sets nothing (`NAME.delim` and
/// suffixes CNB does not define).
///
/// # Errors
/// [`InvalidEnvName`] when the variable name is empty or holds `=`.
pub fn parse_env_file_name(file: &str) -> Result<Option<EnvFileName<'_>>, InvalidEnvName> {
    let (name, suffix) = match file.split_once('.') {
        Some((name, suffix)) => (name, Some(suffix)),
        None => (file, None),
    };
    let (action, default_delim) = match suffix {
        None | Some("override") => (EnvAction::Override, None),
        Some("default") => (EnvAction::Default, None),
        Some("append") => (EnvAction::Append, None),
        Some("prepend") => (EnvAction::Prepend, None),
        Some("") => (EnvAction::Prepend, Some(":")),
        // `.delim` and anything the spec does not define.
        Some(_) => return Ok(None),
    };
    if name.is_empty() || name.contains('=') {
        return Err(InvalidEnvName(name.to_owned()));
    }
    Ok(Some(EnvFileName {
        name,
        action,
        default_delim,
    }))
}

fn read_value(path: &Path) -> Result<String, EnvError> {
    let bytes = untrusted::read(path, METADATA_LIMIT)?;
    if bytes.contains(&0) {
        return Err(EnvError::Nul {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|_| EnvError::NonUtf8Value {
        path: path.to_owned(),
    })
}

/// The contents of `<dir>/<name>.delim`, if it is a file.
fn read_delim(dir: &Path, name: &str) -> Result<Option<String>, EnvError> {
    let path = dir.join(format!("{name}.delim"));
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(None),
        Ok(_) => read_value(&path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EnvError::Io { path, source }),
    }
}

/// Which environment a layer's contribution is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase<'a> {
    /// The `bin/build` of later buildpacks: `env/` and `env.build/`, and all the POSIX path
    /// directories.
    Build,
    /// The app's processes: `env/`, `env.launch/`, `env.launch/<process>/` when a process is
    /// given, and `bin` and `lib`.
    Launch {
        /// The process type being launched, if any.
        process: Option<&'a str>,
    },
}

/// The layer directories that go on path variables during build, in the lifecycle's terms.
const BUILD_PATH_DIRS: &[(&str, &[&str])] = &[
    ("bin", &["PATH"]),
    ("lib", &["LD_LIBRARY_PATH", "LIBRARY_PATH"]),
    ("include", &["CPATH"]),
    ("pkgconfig", &["PKG_CONFIG_PATH"]),
];

/// The layer directories that go on path variables at launch.
const LAUNCH_PATH_DIRS: &[(&str, &[&str])] = &[("bin", &["PATH"]), ("lib", &["LD_LIBRARY_PATH"])];

/// Everything one layer contributes to the environment of `phase`: first its path directories
/// (prepended with `:`), then its env files. `layer_dir` is where the layer is on this host;
/// `image_dir` is where the process sees it (e.g. `/layers/examples_node/runtime`), and is
/// what goes into path values.
///
/// This is the order the lifecycle uses during build. At launch it adds the path directories
/// of all of a buildpack's layers before their env files: use [`buildpack_env`] for that.
///
/// # Errors
///
/// As [`read_env_dir`]; also when the process type cannot name a directory.
pub fn layer_env(
    layer_dir: &Path,
    image_dir: &str,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, EnvError> {
    let mut mods = layer_path_env(layer_dir, image_dir, phase)?;
    mods.extend(layer_env_files(layer_dir, phase)?);
    Ok(mods)
}

/// The path directories of one layer that exist in `layer_dir`, as prepends of
/// `<image_dir>/<dir>` with `:`.
///
/// # Errors
///
/// A directory's presence cannot be checked.
pub fn layer_path_env(
    layer_dir: &Path,
    image_dir: &str,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, EnvError> {
    let dirs = match phase {
        Phase::Build => BUILD_PATH_DIRS,
        Phase::Launch { .. } => LAUNCH_PATH_DIRS,
    };
    let image_dir = image_dir.trim_end_matches('/');
    let mut mods = Vec::new();
    for (dir, vars) in dirs {
        if is_dir(&layer_dir.join(dir))? {
            for var in *vars {
                mods.push(EnvModification::prepend_path(
                    *var,
                    format!("{image_dir}/{dir}"),
                ));
            }
        }
    }
    Ok(mods)
}

/// The env files of one layer for `phase`, in the order they apply: `env/`, then `env.build/`
/// or `env.launch/`, then `env.launch/<process>/`.
///
/// # Errors
///
/// As [`read_env_dir`]; also when the process type cannot name a directory.
pub fn layer_env_files(
    layer_dir: &Path,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, EnvError> {
    let mut mods = read_env_dir(&layer_dir.join("env"))?;
    match phase {
        Phase::Build => mods.extend(read_env_dir(&layer_dir.join("env.build"))?),
        Phase::Launch { process } => {
            let launch = layer_dir.join("env.launch");
            mods.extend(read_env_dir(&launch)?);
            if let Some(process) = process {
                if !is_valid_process_type(process) {
                    return Err(EnvError::InvalidProcess {
                        process: process.to_owned(),
                    });
                }
                mods.extend(read_env_dir(&launch.join(process))?);
            }
        }
    }
    Ok(mods)
}

/// Reads every env file of one layer, for every phase and process, and drops the result:
/// run right after a buildpack exits, so that a symlinked, odd or oversized env file fails
/// the build at that buildpack rather than at whichever phase reads it first.
///
/// # Errors
///
/// As [`read_env_dir`].
pub fn check_env_files(layer_dir: &Path) -> Result<(), EnvError> {
    for dir in ["env", "env.build", "env.launch"] {
        read_env_dir(&layer_dir.join(dir))?;
    }
    let launch = layer_dir.join("env.launch");
    if untrusted::is_dir(&launch)? {
        for entry in fs::read_dir(&launch).map_err(io_error(&launch))? {
            let entry = entry.map_err(io_error(&launch))?;
            if entry.file_type().map_err(io_error(&launch))?.is_dir() {
                read_env_dir(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Everything one buildpack's layers contribute to the environment of `phase`, each layer
/// given as (host directory, directory the process sees), in layer name order.
///
/// During build each layer is handled completely before the next, as the lifecycle's builder
/// does; at launch the path directories of all layers come before any env file, as its
/// launcher does. The two differ only when an env file changes a path variable.
///
/// # Errors
///
/// As [`layer_env`].
pub fn buildpack_env(
    layers: &[(&Path, &str)],
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, EnvError> {
    let mut mods = Vec::new();
    match phase {
        Phase::Build => {
            for (layer_dir, image_dir) in layers {
                mods.extend(layer_env(layer_dir, image_dir, phase)?);
            }
        }
        Phase::Launch { .. } => {
            for (layer_dir, image_dir) in layers {
                mods.extend(layer_path_env(layer_dir, image_dir, phase)?);
            }
            for (layer_dir, _) in layers {
                mods.extend(layer_env_files(layer_dir, phase)?);
            }
        }
    }
    Ok(mods)
}

fn is_dir(path: &Path) -> Result<bool, EnvError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(source) => Err(EnvError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Writes `content` to `root/rel`, creating parent directories.
    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn modification(
        name: &str,
        action: EnvAction,
        value: &str,
        delim: Option<&str>,
    ) -> EnvModification {
        EnvModification {
            name: name.to_owned(),
            action,
            value: value.to_owned(),
            delim: delim.map(str::to_owned),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn env_is_sorted_and_round_trips() {
        let mut env = env_of(&[("B", "2"), ("A", "1")]);
        env.set("C", "3");
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("Z"), None);
        assert_eq!(env.remove("B").as_deref(), Some("2"));
        assert_eq!(env.iter().collect::<Vec<_>>(), [("A", "1"), ("C", "3")]);
        assert_eq!(env.len(), 2);
        assert_eq!(
            env.into_vec(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("C".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn read_env_dir_maps_every_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "PLAIN", "plain");
        write(d, "OVER.override", "over");
        write(d, "DEF.default", "def");
        write(d, "APP.append", "app");
        write(d, "APP.delim", ",");
        write(d, "PRE.prepend", "pre");
        write(d, "BARE.", "bare");
        write(d, "ODD.unknown", "ignored");
        write(d, "ODD.append.extra", "ignored too");
        write(d, "LONE.delim", ";");

        let mods = read_env_dir(d).unwrap();
        assert_eq!(
            mods,
            [
                modification("APP", EnvAction::Append, "app", Some(",")),
                modification("BARE", EnvAction::Prepend, "bare", Some(":")),
                modification("DEF", EnvAction::Default, "def", None),
                modification("OVER", EnvAction::Override, "over", None),
                modification("PLAIN", EnvAction::Override, "plain", None),
                modification("PRE", EnvAction::Prepend, "pre", None),
            ]
        );
    }

    #[test]
    fn read_env_dir_keeps_contents_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "GREETING", "hello world\n");
        write(dir.path(), "SPACES.append", "  x  ");
        write(dir.path(), "SPACES.delim", " \n");
        let mods = read_env_dir(dir.path()).unwrap();
        assert_eq!(mods[0].value, "hello world\n");
        assert_eq!(
            mods[1],
            modification("SPACES", EnvAction::Append, "  x  ", Some(" \n"))
        );
    }

    #[test]
    fn read_env_dir_orders_by_bytes_and_skips_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "b", "1");
        write(d, "PATH.prepend", "p");
        write(d, "PATH.append", "a");
        write(d, "A", "2");
        write(d, "web/INSIDE", "not read");
        fs::create_dir(d.join("DIR.append")).unwrap();

        let names: Vec<_> = read_env_dir(d)
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.action))
            .collect();
        assert_eq!(
            names,
            [
                ("A".to_owned(), EnvAction::Override),
                ("PATH".to_owned(), EnvAction::Append),
                ("PATH".to_owned(), EnvAction::Prepend),
                ("b".to_owned(), EnvAction::Override),
            ]
        );
    }

    #[test]
    fn read_env_dir_of_a_missing_dir_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_env_dir(&dir.path().join("nope")).unwrap(), []);
    }

    #[cfg(unix)]
    #[test]
    fn read_env_dir_refuses_symlinks_fifos_and_huge_files() {
        let refused = |setup: &dyn Fn(&Path)| {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            write(d, "target/value", "host secret");
            write(d, "layer/env/OK", "fine");
            setup(d);
            layer_env_files(
                &d.join("layer"),
                Phase::Launch {
                    process: Some("web"),
                },
            )
            .unwrap_err()
        };
        let link = |d: &Path, target: &str, at: &str| {
            std::os::unix::fs::symlink(d.join(target), d.join(at)).unwrap();
        };
        for (what, err) in [
            (
                "file",
                refused(&|d: &Path| link(d, "target/value", "layer/env/LINKED")),
            ),
            (
                "delim",
                refused(&|d: &Path| {
                    write(d, "layer/env/P.append", "x");
                    link(d, "target/value", "layer/env/P.delim");
                }),
            ),
            (
                "dir",
                refused(&|d: &Path| link(d, "target", "layer/env.launch")),
            ),
            (
                "process dir",
                refused(&|d: &Path| {
                    fs::create_dir_all(d.join("layer/env.launch")).unwrap();
                    link(d, "target", "layer/env.launch/web");
                }),
            ),
        ] {
            assert!(
                matches!(&err, EnvError::Untrusted(UntrustedError::Symlink { .. })),
                "{what}: {err}"
            );
        }
        let fifo = refused(&|d: &Path| {
            let made = std::process::Command::new("mkfifo")
                .arg(d.join("layer/env/FIFO"))
                .status()
                .unwrap();
            assert!(made.success());
        });
        assert!(
            matches!(fifo, EnvError::Untrusted(UntrustedError::NotAFile { .. })),
            "{fifo}"
        );
        let big = refused(&|d: &Path| write(d, "layer/env/BIG", &"x".repeat(2 << 20)));
        assert!(
            matches!(big, EnvError::Untrusted(UntrustedError::TooLarge { .. })),
            "{big}"
        );
    }

    #[test]
    fn read_env_dir_rejects_bad_names_and_values() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".append", "x");
        let err = read_env_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, EnvError::InvalidName { name, .. } if name.is_empty()),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "A=B", "x");
        assert!(matches!(
            read_env_dir(dir.path()),
            Err(EnvError::InvalidName { .. })
        ));

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "NUL", "a\0b");
        let err = read_env_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, EnvError::Nul { path } if path.ends_with("NUL")),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("BIN"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_env_dir(dir.path()),
            Err(EnvError::NonUtf8Value { .. })
        ));

        // Files the lifecycle ignores are not checked at all.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".DS_Store", "\0");
        assert_eq!(read_env_dir(dir.path()).unwrap(), []);
    }

    #[test]
    fn override_sets() {
        let mut env = env_of(&[("X", "old")]);
        env.apply(&[modification("X", EnvAction::Override, "new", None)]);
        env.apply(&[modification("Y", EnvAction::Override, "y", None)]);
        assert_eq!(env.get("X"), Some("new"));
        assert_eq!(env.get("Y"), Some("y"));
    }

    #[test]
    fn default_sets_only_an_unset_or_empty_variable() {
        let mut env = env_of(&[("SET", "kept"), ("EMPTY", "")]);
        env.apply(&[
            modification("SET", EnvAction::Default, "d", None),
            modification("EMPTY", EnvAction::Default, "d", None),
            modification("UNSET", EnvAction::Default, "d", None),
        ]);
        assert_eq!(env.get("SET"), Some("kept"));
        assert_eq!(env.get("EMPTY"), Some("d"));
        assert_eq!(env.get("UNSET"), Some("d"));
    }

    #[test]
    fn append_and_prepend_join_with_the_delimiter_or_nothing() {
        let mut env = env_of(&[("A", "a"), ("B", "b"), ("C", "c"), ("D", "d")]);
        env.apply(&[
            modification("A", EnvAction::Append, "x", Some(":")),
            modification("B", EnvAction::Append, "x", None),
            modification("C", EnvAction::Prepend, "x", Some(" ")),
            modification("D", EnvAction::Prepend, "x", None),
        ]);
        assert_eq!(env.get("A"), Some("a:x"));
        assert_eq!(env.get("B"), Some("bx"));
        assert_eq!(env.get("C"), Some("x c"));
        assert_eq!(env.get("D"), Some("xd"));
    }

    #[test]
    fn append_and_prepend_to_unset_or_empty_give_the_value_alone() {
        let mut env = env_of(&[("EMPTY_A", ""), ("EMPTY_P", "")]);
        env.apply(&[
            modification("EMPTY_A", EnvAction::Append, "x", Some(":")),
            modification("EMPTY_P", EnvAction::Prepend, "x", Some(":")),
            modification("UNSET_A", EnvAction::Append, "x", Some(":")),
            modification("UNSET_P", EnvAction::Prepend, "x", Some(":")),
        ]);
        for name in ["EMPTY_A", "EMPTY_P", "UNSET_A", "UNSET_P"] {
            assert_eq!(env.get(name), Some("x"), "{name}");
        }
    }

    #[test]
    fn delimiter_is_read_from_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "env/V.delim", "|");
        write(d, "env.build/V.append", "b");
        write(d, "env/V.append", "a");
        let mods = layer_env_files(d, Phase::Build).unwrap();
        assert_eq!(
            mods,
            [
                modification("V", EnvAction::Append, "a", Some("|")),
                modification("V", EnvAction::Append, "b", None),
            ]
        );
        let mut env = env_of(&[("V", "0")]);
        env.apply(&mods);
        assert_eq!(env.get("V"), Some("0|ab"));
    }

    /// Lays out a layer with every kind of contribution.
    fn full_layer(root: &Path) {
        for dir in ["bin", "lib", "include", "pkgconfig"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        write(root, "env/SHARED", "env");
        write(root, "env.build/BUILD_ONLY", "build");
        write(root, "env.launch/LAUNCH_ONLY", "launch");
        write(root, "env.launch/SHARED", "launch");
        write(root, "env.launch/web/SHARED", "web");
        write(root, "env.launch/web/WEB_ONLY", "web");
    }

    #[test]
    fn build_phase_uses_all_path_dirs_env_and_env_build() {
        let dir = tempfile::tempdir().unwrap();
        full_layer(dir.path());
        let mods = layer_env(dir.path(), "/layers/bp/layer/", Phase::Build).unwrap();
        let p = |name: &str, value: &str| EnvModification::prepend_path(name, value);
        assert_eq!(
            mods,
            [
                p("PATH", "/layers/bp/layer/bin"),
                p("LD_LIBRARY_PATH", "/layers/bp/layer/lib"),
                p("LIBRARY_PATH", "/layers/bp/layer/lib"),
                p("CPATH", "/layers/bp/layer/include"),
                p("PKG_CONFIG_PATH", "/layers/bp/layer/pkgconfig"),
                modification("SHARED", EnvAction::Override, "env", None),
                modification("BUILD_ONLY", EnvAction::Override, "build", None),
            ]
        );
    }

    #[test]
    fn launch_phase_uses_bin_lib_env_and_env_launch() {
        let dir = tempfile::tempdir().unwrap();
        full_layer(dir.path());
        let mods = layer_env(
            dir.path(),
            "/layers/bp/layer",
            Phase::Launch { process: None },
        )
        .unwrap();
        assert_eq!(
            mods,
            [
                EnvModification::prepend_path("PATH", "/layers/bp/layer/bin"),
                EnvModification::prepend_path("LD_LIBRARY_PATH", "/layers/bp/layer/lib"),
                modification("SHARED", EnvAction::Override, "env", None),
                modification("LAUNCH_ONLY", EnvAction::Override, "launch", None),
                modification("SHARED", EnvAction::Override, "launch", None),
            ]
        );
    }

    #[test]
    fn process_specific_env_applies_last_and_only_to_its_process() {
        let dir = tempfile::tempdir().unwrap();
        full_layer(dir.path());
        let web = Phase::Launch {
            process: Some("web"),
        };
        let mut env = Env::new();
        env.apply(&layer_env_files(dir.path(), web).unwrap());
        assert_eq!(env.get("SHARED"), Some("web"));
        assert_eq!(env.get("WEB_ONLY"), Some("web"));

        let mut env = Env::new();
        env.apply(
            &layer_env_files(
                dir.path(),
                Phase::Launch {
                    process: Some("worker"),
                },
            )
            .unwrap(),
        );
        assert_eq!(env.get("SHARED"), Some("launch"));
        assert_eq!(env.get("WEB_ONLY"), None);
    }

    #[test]
    fn a_process_type_must_not_escape_env_launch() {
        let dir = tempfile::tempdir().unwrap();
        for process in ["..", "../x", "", "a/b"] {
            let phase = Phase::Launch {
                process: Some(process),
            };
            assert!(
                matches!(
                    layer_env_files(dir.path(), phase),
                    Err(EnvError::InvalidProcess { .. })
                ),
                "{process:?}"
            );
        }
    }

    #[test]
    fn a_layer_without_path_dirs_contributes_no_paths() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bin", "a file, not a directory");
        assert_eq!(layer_env(dir.path(), "/l", Phase::Build).unwrap(), []);
        assert_eq!(
            layer_env(&dir.path().join("missing"), "/l", Phase::Build).unwrap(),
            []
        );
    }

    /// Two buildpacks, each with layers `a` and `b`, every layer writing every kind of file.
    fn two_buildpacks(root: &Path) -> Vec<(PathBuf, String)> {
        let mut layers = Vec::new();
        for bp in ["bp1", "bp2"] {
            for layer in ["a", "b"] {
                let dir = root.join(bp).join(layer);
                let tag = format!("{bp}-{layer}");
                fs::create_dir_all(dir.join("bin")).unwrap();
                write(&dir, "env/LIST.append", &tag);
                write(&dir, "env/LIST.delim", ",");
                write(&dir, "env/STACK.prepend", &tag);
                write(&dir, "env/STACK.delim", ",");
                write(&dir, "env/LAST", &tag);
                write(&dir, "env/FIRST.default", &tag);
                layers.push((dir, format!("/layers/{bp}/{layer}")));
            }
        }
        layers
    }

    #[test]
    fn buildpacks_in_sequence_follow_the_cnb_ordering_rules() {
        let root = tempfile::tempdir().unwrap();
        let mut env = env_of(&[("PATH", "/usr/bin")]);
        for (dir, image_dir) in two_buildpacks(root.path()) {
            env.apply(&layer_env(&dir, &image_dir, Phase::Build).unwrap());
        }
        // Append: group order, then layer name.
        assert_eq!(env.get("LIST"), Some("bp1-a,bp1-b,bp2-a,bp2-b"));
        // Prepend: the reverse.
        assert_eq!(env.get("STACK"), Some("bp2-b,bp2-a,bp1-b,bp1-a"));
        // Override: the later wins; default: the earlier wins.
        assert_eq!(env.get("LAST"), Some("bp2-b"));
        assert_eq!(env.get("FIRST"), Some("bp1-a"));
        // Later buildpacks' bin dirs come first.
        assert_eq!(
            env.get("PATH"),
            Some(
                "/layers/bp2/b/bin:/layers/bp2/a/bin:/layers/bp1/b/bin:/layers/bp1/a/bin:/usr/bin"
            )
        );
    }

    #[test]
    fn launch_adds_all_paths_of_a_buildpack_before_its_env_files() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        fs::create_dir_all(d.join("b/bin")).unwrap();
        write(d, "a/env/PATH.prepend", "/custom");
        write(d, "a/env/PATH.delim", ":");
        let (a, b) = (d.join("a"), d.join("b"));
        let layers = [(a.as_path(), "/layers/bp/a"), (b.as_path(), "/layers/bp/b")];

        let mut launch = env_of(&[("PATH", "/usr/bin")]);
        launch.apply(&buildpack_env(&layers, Phase::Launch { process: None }).unwrap());
        assert_eq!(
            launch.get("PATH"),
            Some("/custom:/layers/bp/b/bin:/usr/bin")
        );

        let mut build = env_of(&[("PATH", "/usr/bin")]);
        build.apply(&buildpack_env(&layers, Phase::Build).unwrap());
        assert_eq!(build.get("PATH"), Some("/layers/bp/b/bin:/custom:/usr/bin"));
    }
}
