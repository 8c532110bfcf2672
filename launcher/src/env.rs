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
//! Reading goes through [`EnvFs`]: the engine reads buildpack files on the host and must refuse
//! symlinks and bound sizes, while the launcher reads the image's own files; the rules here are
//! the same for both.
//!
//! Where the spec is silent, the reference lifecycle decides:
//! - File contents are used verbatim: a trailing newline is part of the value, as the spec
//!   forbids modifying contents and the lifecycle does not trim them.
//! - Files are read in byte order of their names; directories (for example the per-process
//!   directories inside `env.launch/`) are skipped.
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
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::process_type::is_valid_process_type;

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

    /// Sets `name` to `value`, as an exec.d program's output does.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action: EnvAction::Override,
            value: value.into(),
            delim: None,
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

/// What the env-file rules themselves reject, whoever reads the files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// An env file's name is not UTF-8, so it names no variable that can be set.
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
}

/// How env files are read: the engine refuses links and bounds sizes, the launcher reads
/// plainly. Every method treats a missing path as empty or absent, not as an error.
pub trait EnvFs {
    /// The reader's error; the rules' own errors convert into it.
    type Error: From<EnvFileError>;

    /// The names of the entries in `dir` that are not directories, in any order; empty if
    /// `dir` does not exist or is not a directory.
    ///
    /// # Errors
    /// The directory cannot be listed, or the reader refuses an entry.
    fn files(&self, dir: &Path) -> Result<Vec<OsString>, Self::Error>;

    /// The contents of the file at `path`, `None` if there is none or it is a directory.
    ///
    /// # Errors
    /// The file cannot be read, or the reader refuses it.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Whether `path` is a directory (following links is the reader's choice).
    ///
    /// # Errors
    /// Its type cannot be checked.
    fn is_dir(&self, path: &Path) -> Result<bool, Self::Error>;
}

/// Reads the env files in `dir` (for example a layer's `env.build/`), in byte order of their
/// names. A missing directory has no files.
///
/// # Errors
///
/// The reader fails, a file name or its contents are not UTF-8, a file name gives an invalid
/// variable name, or contents hold a NUL byte.
pub fn read_env_dir<F: EnvFs>(fs: &F, dir: &Path) -> Result<Vec<EnvModification>, F::Error> {
    let mut files = Vec::new();
    for name in fs.files(dir)? {
        let name = name
            .into_string()
            .map_err(|name| EnvFileError::NonUtf8Name {
                path: dir.join(name),
            })?;
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
            Err(InvalidEnvName(name)) => {
                return Err(EnvFileError::InvalidName { path, name }.into());
            }
        };
        // Listed as a file a moment ago; gone now reads as empty rather than racing.
        let value = read_value(fs, &path)?.unwrap_or_default();
        let delim = match action {
            EnvAction::Append | EnvAction::Prepend => {
                read_value(fs, &dir.join(format!("{name}.delim")))?
                    .or_else(|| default_delim.map(str::to_owned))
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

fn read_value<F: EnvFs>(fs: &F, path: &Path) -> Result<Option<String>, F::Error> {
    let Some(bytes) = fs.read(path)? else {
        return Ok(None);
    };
    if bytes.contains(&0) {
        return Err(EnvFileError::Nul {
            path: path.to_owned(),
        }
        .into());
    }
    match String::from_utf8(bytes) {
        Ok(value) => Ok(Some(value)),
        Err(_) => Err(EnvFileError::NonUtf8Value {
            path: path.to_owned(),
        }
        .into()),
    }
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
pub const BUILD_PATH_DIRS: &[(&str, &[&str])] = &[
    ("bin", &["PATH"]),
    ("lib", &["LD_LIBRARY_PATH", "LIBRARY_PATH"]),
    ("include", &["CPATH"]),
    ("pkgconfig", &["PKG_CONFIG_PATH"]),
];

/// The layer directories that go on path variables at launch.
pub const LAUNCH_PATH_DIRS: &[(&str, &[&str])] =
    &[("bin", &["PATH"]), ("lib", &["LD_LIBRARY_PATH"])];

impl Phase<'_> {
    /// The layer directories that go on path variables in this phase, with their variables.
    pub fn path_dirs(self) -> &'static [(&'static str, &'static [&'static str])] {
        match self {
            Phase::Build => BUILD_PATH_DIRS,
            Phase::Launch { .. } => LAUNCH_PATH_DIRS,
        }
    }
}

/// Everything one layer contributes to the environment of `phase`: first its path directories
/// (prepended with `:`), then its env files. `layer_dir` is where the layer is read;
/// `image_dir` is where the process sees it (e.g. `/layers/examples_node/runtime`), and is
/// what goes into path values.
///
/// This is the order the lifecycle uses during build. At launch it adds the path directories
/// of all of a buildpack's layers before their env files: use [`buildpack_env`] for that.
///
/// # Errors
///
/// As [`read_env_dir`]; also when the process type cannot name a directory.
pub fn layer_env<F: EnvFs>(
    fs: &F,
    layer_dir: &Path,
    image_dir: &str,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, F::Error> {
    let mut mods = layer_path_env(fs, layer_dir, image_dir, phase)?;
    mods.extend(layer_env_files(fs, layer_dir, phase)?);
    Ok(mods)
}

/// The path directories of one layer that exist in `layer_dir`, as prepends of
/// `<image_dir>/<dir>` with `:`.
///
/// # Errors
///
/// A directory's presence cannot be checked.
pub fn layer_path_env<F: EnvFs>(
    fs: &F,
    layer_dir: &Path,
    image_dir: &str,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, F::Error> {
    let image_dir = image_dir.trim_end_matches('/');
    let mut mods = Vec::new();
    for (dir, vars) in phase.path_dirs() {
        if fs.is_dir(&layer_dir.join(dir))? {
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
pub fn layer_env_files<F: EnvFs>(
    fs: &F,
    layer_dir: &Path,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, F::Error> {
    let mut mods = read_env_dir(fs, &layer_dir.join("env"))?;
    match phase {
        Phase::Build => mods.extend(read_env_dir(fs, &layer_dir.join("env.build"))?),
        Phase::Launch { process } => {
            let launch = layer_dir.join("env.launch");
            mods.extend(read_env_dir(fs, &launch)?);
            if let Some(process) = process {
                if !is_valid_process_type(process) {
                    return Err(EnvFileError::InvalidProcess {
                        process: process.to_owned(),
                    }
                    .into());
                }
                mods.extend(read_env_dir(fs, &launch.join(process))?);
            }
        }
    }
    Ok(mods)
}

/// Everything one buildpack's layers contribute to the environment of `phase`, each layer
/// given as (directory to read, directory the process sees), in layer name order.
///
/// During build each layer is handled completely before the next, as the lifecycle's builder
/// does; at launch the path directories of all layers come before any env file, as its
/// launcher does. The two differ only when an env file changes a path variable.
///
/// # Errors
///
/// As [`layer_env`].
pub fn buildpack_env<F: EnvFs>(
    fs: &F,
    layers: &[(&Path, &str)],
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, F::Error> {
    let mut mods = Vec::new();
    match phase {
        Phase::Build => {
            for (layer_dir, image_dir) in layers {
                mods.extend(layer_env(fs, layer_dir, image_dir, phase)?);
            }
        }
        Phase::Launch { .. } => {
            for (layer_dir, image_dir) in layers {
                mods.extend(layer_path_env(fs, layer_dir, image_dir, phase)?);
            }
            for (layer_dir, _) in layers {
                mods.extend(layer_env_files(fs, layer_dir, phase)?);
            }
        }
    }
    Ok(mods)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::{fs, io};

    /// Reads with plain `std::fs`, as the launcher does.
    struct StdFs;

    impl EnvFs for StdFs {
        type Error = io::Error;
        fn files(&self, dir: &Path) -> io::Result<Vec<OsString>> {
            let Ok(entries) = fs::read_dir(dir) else {
                return Ok(Vec::new());
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    names.push(entry.file_name());
                }
            }
            Ok(names)
        }
        fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
            if path.is_file() {
                fs::read(path).map(Some)
            } else {
                Ok(None)
            }
        }
        fn is_dir(&self, path: &Path) -> io::Result<bool> {
            Ok(path.is_dir())
        }
    }

    impl From<EnvFileError> for io::Error {
        fn from(e: EnvFileError) -> Self {
            io::Error::other(e)
        }
    }

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
    }

    #[test]
    fn file_names_map_to_actions() {
        fn parsed(f: &str) -> Option<(&str, EnvAction, Option<&'static str>)> {
            parse_env_file_name(f)
                .unwrap()
                .map(|p| (p.name, p.action, p.default_delim))
        }
        assert_eq!(parsed("A"), Some(("A", EnvAction::Override, None)));
        assert_eq!(parsed("A.override"), Some(("A", EnvAction::Override, None)));
        assert_eq!(parsed("A.default"), Some(("A", EnvAction::Default, None)));
        assert_eq!(parsed("A.append"), Some(("A", EnvAction::Append, None)));
        assert_eq!(parsed("A.prepend"), Some(("A", EnvAction::Prepend, None)));
        assert_eq!(
            parsed("PATH."),
            Some(("PATH", EnvAction::Prepend, Some(":")))
        );
        assert_eq!(parsed("A.delim"), None);
        assert_eq!(parsed("A.weird"), None);
        assert_eq!(parsed("A.append.x"), None);
        assert!(parse_env_file_name(".append").is_err());
        assert!(parse_env_file_name("A=B").is_err());
    }

    #[test]
    fn override_default_append_prepend() {
        let mut env = env_of(&[
            ("X", "old"),
            ("SET", "kept"),
            ("EMPTY", ""),
            ("A", "a"),
            ("P", "p"),
        ]);
        env.apply(&[
            modification("X", EnvAction::Override, "new", None),
            modification("SET", EnvAction::Default, "d", None),
            modification("EMPTY", EnvAction::Default, "d", None),
            modification("UNSET", EnvAction::Default, "d", None),
            modification("A", EnvAction::Append, "x", Some(":")),
            modification("P", EnvAction::Prepend, "x", None),
            modification("NEW", EnvAction::Append, "x", Some(":")),
        ]);
        assert_eq!(env.get("X"), Some("new"));
        assert_eq!(env.get("SET"), Some("kept"));
        assert_eq!(env.get("EMPTY"), Some("d"));
        assert_eq!(env.get("UNSET"), Some("d"));
        assert_eq!(env.get("A"), Some("a:x"));
        assert_eq!(env.get("P"), Some("xp"));
        assert_eq!(env.get("NEW"), Some("x"));
    }

    #[test]
    fn read_env_dir_orders_by_bytes_reads_delims_and_skips_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "b", "1");
        write(d, "PATH.prepend", "p");
        write(d, "PATH.delim", "|");
        write(d, "BARE.", "bare");
        write(d, "A", "2\n");
        write(d, "web/INSIDE", "not read");
        assert_eq!(
            read_env_dir(&StdFs, d).unwrap(),
            [
                modification("A", EnvAction::Override, "2\n", None),
                modification("BARE", EnvAction::Prepend, "bare", Some(":")),
                modification("PATH", EnvAction::Prepend, "p", Some("|")),
                modification("b", EnvAction::Override, "1", None),
            ]
        );
        assert_eq!(read_env_dir(&StdFs, &d.join("missing")).unwrap(), []);
    }

    #[test]
    fn launch_adds_all_paths_of_a_buildpack_before_its_env_files() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        fs::create_dir_all(d.join("b/bin")).unwrap();
        fs::create_dir_all(d.join("b/include")).unwrap();
        write(d, "a/env/PATH.prepend", "/custom");
        write(d, "a/env/PATH.delim", ":");
        write(d, "a/env.launch/web/ONLY", "web");
        let (a, b) = (d.join("a"), d.join("b"));
        let layers = [(a.as_path(), "/layers/bp/a"), (b.as_path(), "/layers/bp/b")];

        let mut launch = env_of(&[("PATH", "/usr/bin")]);
        let web = Phase::Launch {
            process: Some("web"),
        };
        launch.apply(&buildpack_env(&StdFs, &layers, web).unwrap());
        assert_eq!(
            launch.get("PATH"),
            Some("/custom:/layers/bp/b/bin:/usr/bin")
        );
        assert_eq!(launch.get("ONLY"), Some("web"));
        assert_eq!(launch.get("CPATH"), None);

        let mut build = env_of(&[("PATH", "/usr/bin")]);
        build.apply(&buildpack_env(&StdFs, &layers, Phase::Build).unwrap());
        assert_eq!(build.get("PATH"), Some("/layers/bp/b/bin:/custom:/usr/bin"));
        assert_eq!(build.get("CPATH"), Some("/layers/bp/b/include"));
        assert_eq!(build.get("ONLY"), None);
    }
}
