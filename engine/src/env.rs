//! CNB env files read on the host, and the env each layer contributes.
//!
//! The rules (suffixes, delimiters, ordering across layers and buildpacks, which path
//! directories count in which phase) live in [`strata_launcher::env`], the one implementation
//! shared with the launcher that applies them again inside the image when a process starts.
//! This module supplies the host-side reader: buildpack-written files are read through
//! [`crate::untrusted`], so unlike the lifecycle strata refuses symlinks (an env directory or
//! file that is one) and anything but regular files and directories, and bounds each file's
//! size, as a link would put a host file into the image.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use strata_launcher::env::{self as rules, EnvFs};
pub use strata_launcher::env::{
    Env, EnvAction, EnvFileError, EnvFileName, EnvIter, EnvModification, InvalidEnvName, Phase,
    parse_env_file_name,
};

use crate::untrusted::{self, METADATA_LIMIT, UntrustedError};

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

impl From<EnvFileError> for EnvError {
    fn from(e: EnvFileError) -> Self {
        match e {
            EnvFileError::NonUtf8Name { path } => Self::NonUtf8Name { path },
            EnvFileError::NonUtf8Value { path } => Self::NonUtf8Value { path },
            EnvFileError::InvalidName { path, name } => Self::InvalidName { path, name },
            EnvFileError::Nul { path } => Self::Nul { path },
            EnvFileError::InvalidProcess { process } => Self::InvalidProcess { process },
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> EnvError + '_ {
    move |source| EnvError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The host's reader of buildpack-written env files: no links, nothing but regular files and
/// directories, each file bounded by [`METADATA_LIMIT`].
struct HostFs;

impl EnvFs for HostFs {
    type Error = EnvError;

    fn files(&self, dir: &Path) -> Result<Vec<OsString>, EnvError> {
        if !untrusted::is_dir(dir)? {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
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
            files.push(entry.file_name());
        }
        Ok(files)
    }

    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, EnvError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(None),
            Ok(_) => Ok(Some(untrusted::read(path, METADATA_LIMIT)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EnvError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn is_dir(&self, path: &Path) -> Result<bool, EnvError> {
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
}

/// Reads the env files in `dir` (for example a layer's `env.build/`), in byte order of their
/// names. A missing directory has no files.
///
/// # Errors
///
/// The directory or a file cannot be read or is refused, a file name or its contents are not
/// UTF-8, a file name gives an invalid variable name, or contents hold a NUL byte.
pub fn read_env_dir(dir: &Path) -> Result<Vec<EnvModification>, EnvError> {
    rules::read_env_dir(&HostFs, dir)
}

/// Reads an operator env directory (a builder's `/cnb/build-config/env/`): the env files of
/// [`read_env_dir`], except that a file with no suffix is `.default`, not `.override`, as the
/// platform spec says of operator env. Read with the same care as a buildpack's files, since
/// a builder image is untrusted too.
///
/// # Errors
///
/// As [`read_env_dir`].
pub fn read_operator_env_dir(dir: &Path) -> Result<Vec<EnvModification>, EnvError> {
    let mut modifications = read_env_dir(dir)?;
    // `read_env_dir` gives one modification per file that sets something, in byte order of
    // the file names: the same files, filtered and sorted the same way, say which had no
    // suffix.
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|t| !t.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(io_error(dir)(source)),
    };
    names.sort_unstable();
    let names = names
        .iter()
        .filter(|name| matches!(parse_env_file_name(name), Ok(Some(_))));
    for (modification, name) in modifications.iter_mut().zip(names) {
        if !name.contains('.') {
            modification.action = EnvAction::Default;
        }
    }
    Ok(modifications)
}

/// Everything one layer contributes to the environment of `phase`, in the build order: see
/// [`strata_launcher::env::layer_env`]. `layer_dir` is where the layer is on this host;
/// `image_dir` is where the process sees it.
///
/// # Errors
///
/// As [`read_env_dir`]; also when the process type cannot name a directory.
pub fn layer_env(
    layer_dir: &Path,
    image_dir: &str,
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, EnvError> {
    rules::layer_env(&HostFs, layer_dir, image_dir, phase)
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
    rules::layer_path_env(&HostFs, layer_dir, image_dir, phase)
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
    rules::layer_env_files(&HostFs, layer_dir, phase)
}

/// Everything one buildpack's layers contribute to the environment of `phase`, each layer
/// given as (host directory, directory the process sees), in layer name order; see
/// [`strata_launcher::env::buildpack_env`] for the build and launch orders.
///
/// # Errors
///
/// As [`layer_env`].
pub fn buildpack_env(
    layers: &[(&Path, &str)],
    phase: Phase<'_>,
) -> Result<Vec<EnvModification>, EnvError> {
    rules::buildpack_env(&HostFs, layers, phase)
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
    fn operator_env_files_without_a_suffix_are_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("env");
        write(&dir, "A", "a");
        write(&dir, "A.override", "forced");
        write(&dir, "B.append", "b");
        write(&dir, "B.delim", ",");
        write(&dir, "C", "c");
        fs::create_dir_all(dir.join("D")).unwrap();
        assert_eq!(
            read_operator_env_dir(&dir).unwrap(),
            [
                modification("A", EnvAction::Default, "a", None),
                modification("A", EnvAction::Override, "forced", None),
                modification("B", EnvAction::Append, "b", Some(",")),
                modification("C", EnvAction::Default, "c", None),
            ]
        );
        assert!(
            read_operator_env_dir(&tmp.path().join("none"))
                .unwrap()
                .is_empty()
        );
        std::os::unix::fs::symlink("/etc", dir.join("E")).unwrap();
        assert!(read_operator_env_dir(&dir).is_err());
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
