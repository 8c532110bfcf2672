//! The platform side of the CNB contract: the platform directory (user env files and service
//! bindings), the target a build is for, and the env buildpack processes get, by the
//! precedence the spec and the lifecycle give: the build image's env, then what earlier
//! buildpacks' layers contribute, then the user env, then what the platform sets.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use strata_planner::{TargetEnv, oci_arch};

use strata_planner::Binding;

use crate::detect::PLATFORM_TARGET;
use crate::env::{Env, EnvModification};
use crate::sandbox::{DEFAULT_PATH, Mount, Sandbox};
use crate::scratch::{DIR_MODE, FILE_MODE};

/// The platform directory buildpacks read: `env/<NAME>` holds each user env variable, and
/// `bindings/<name>` each service binding. It is written when a process first needs it, so a
/// build that runs nothing writes nothing. The values are often secrets: the directories are
/// 0700 and the files 0600.
///
/// Bindings are never copied in: in the sandbox, `bindings/<name>` is an empty directory
/// that each binding is mounted on, read-only, for the processes that see bindings
/// ([`PlatformDir::mounts`]); without isolation it is a symlink to the binding.
#[derive(Debug)]
pub struct PlatformDir {
    /// The directory on the host.
    dir: PathBuf,
    /// The user env, in the order given (later wins for one name).
    pub env: Vec<(String, String)>,
    /// The service bindings, by name.
    bindings: Vec<Binding>,
    /// Whether `bindings/<name>` are links (no sandbox) rather than mount points.
    link_bindings: bool,
    /// The operator env (a builder's `/cnb/build-config/env/`), applied after the user env.
    operator_env: Vec<EnvModification>,
    written: OnceLock<Result<(), String>>,
}

/// How a process sees the platform directory.
#[derive(Debug, Clone)]
pub struct PlatformMounts {
    /// The mounts: the directory, then each binding on its mount point.
    pub mounts: Vec<Mount>,
    /// The directory as the process sees it (`CNB_PLATFORM_DIR`).
    pub dir: String,
    /// `SERVICE_BINDING_ROOT` as the process sees it, when it sees bindings.
    pub bindings_root: Option<String>,
}

impl PlatformDir {
    /// The platform directory `dir` with `env`, not written yet.
    pub fn new(dir: &Path, env: &[(String, String)]) -> Self {
        Self {
            dir: dir.to_owned(),
            env: env.to_vec(),
            bindings: Vec::new(),
            link_bindings: false,
            operator_env: Vec::new(),
            written: OnceLock::new(),
        }
    }

    /// The same directory with these service bindings, for processes run in `sandbox`.
    #[must_use]
    pub fn with_bindings(mut self, bindings: Vec<Binding>, sandbox: &Sandbox) -> Self {
        self.bindings = bindings;
        self.link_bindings = !sandbox.isolates();
        self
    }

    /// The user env a buildpack's process gets: all of it, or none for a buildpack that asks
    /// for `clear-env` (its files in `env/` are still there for it to read).
    pub fn user_env(&self, clear_env: bool) -> &[(String, String)] {
        if clear_env { &[] } else { &self.env }
    }

    /// The same directory with the operator env a builder gives (its
    /// `/cnb/build-config/env/`).
    #[must_use]
    pub fn with_operator_env(mut self, env: Vec<EnvModification>) -> Self {
        self.operator_env = env;
        self
    }

    /// The operator env: applied to every buildpack process after the buildpacks' and the
    /// user's env, `clear-env` or not, as the lifecycle applies `<build-config>/env/`.
    pub fn operator_env(&self) -> &[EnvModification] {
        &self.operator_env
    }

    /// The service bindings.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Writes `dir/env/<NAME>` for each variable now.
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    pub fn create(dir: &Path, env: &[(String, String)]) -> io::Result<Self> {
        let platform = Self::new(dir, env);
        platform.path()?;
        Ok(platform)
    }

    /// The directory, written on the first call.
    ///
    /// # Errors
    /// The directory or a file cannot be written (the same error on every call).
    pub fn path(&self) -> io::Result<&Path> {
        let written = self.written.get_or_init(|| {
            write_env(&self.dir, &self.env)
                .and_then(|()| self.write_bindings())
                .map_err(|e| e.to_string())
        });
        match written {
            Ok(()) => Ok(&self.dir),
            Err(message) => Err(io::Error::other(format!(
                "cannot write the platform directory {}: {message}",
                self.dir.display()
            ))),
        }
    }

    /// The mounts that show the directory at [`PLATFORM_TARGET`] in `sandbox`, with the
    /// bindings when `bindings` (detect and `bin/build` see them; declared layers, whose keys
    /// do not cover them, do not).
    ///
    /// # Errors
    /// The directory cannot be written.
    pub fn mounts(&self, sandbox: &Sandbox, bindings: bool) -> io::Result<PlatformMounts> {
        let main = Mount::private(self.path()?, PLATFORM_TARGET);
        let dir = sandbox.view(&main);
        let mut mounts = vec![main];
        let bindings = bindings && !self.bindings.is_empty();
        if bindings && !self.link_bindings {
            mounts.extend(
                self.bindings
                    .iter()
                    .map(|b| Mount::ro(&b.dir, format!("{PLATFORM_TARGET}/{BINDINGS}/{}", b.name))),
            );
        }
        Ok(PlatformMounts {
            bindings_root: bindings.then(|| format!("{dir}/{BINDINGS}")),
            mounts,
            dir,
        })
    }

    /// `bindings/<name>`: a mount point (0700, empty) or, without a sandbox, a link.
    fn write_bindings(&self) -> io::Result<()> {
        if self.bindings.is_empty() {
            return Ok(());
        }
        let root = self.dir.join(BINDINGS);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&root)?;
        for binding in &self.bindings {
            // The name was checked when the binding was loaded.
            let at = root.join(&binding.name);
            if self.link_bindings {
                std::os::unix::fs::symlink(&binding.dir, &at)?;
            } else {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&at)?;
            }
        }
        Ok(())
    }
}

/// Writes `dir/env/<NAME>` (0600) for each variable, in directories made 0700.
fn write_env(dir: &Path, env: &[(String, String)]) -> io::Result<()> {
    let env_dir = dir.join("env");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(&env_dir)?;
    // A directory that already existed keeps its mode otherwise.
    for d in [dir, &env_dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))?;
    }
    for (name, value) in env {
        let path = env_dir.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&path)?;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        file.write_all(value.as_bytes())?;
    }
    Ok(())
}

/// Where bindings are in the platform directory.
const BINDINGS: &str = "bindings";

/// The Platform API strata implements, passed to buildpacks as `CNB_PLATFORM_API`.
pub const PLATFORM_API: &str = "0.15";

/// The POSIX path variables: layer directories are prepended to them, and so is a user's value
/// (never a replacement: `--env PATH=/opt/bin` must not take the build's tools away).
pub const PATH_VARIABLES: [&str; 5] = [
    "PATH",
    "LD_LIBRARY_PATH",
    "LIBRARY_PATH",
    "CPATH",
    "PKG_CONFIG_PATH",
];

/// What the lifecycle passes through from its own env to every buildpack (its allowlist,
/// less the path variables, which come from the build image here).
const PASSED_THROUGH: [&str; 7] = [
    "HOSTNAME",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// The env every buildpack process starts from before any buildpack changed it, as the
/// lifecycle starts from its own: the build image's env (the host root's is the fixed
/// `PATH`), `HOME` (the build user's), and the variables passed through from strata's env
/// (`HOSTNAME`, the proxy variables). The user env is not in it: [`process_env`] puts it on top
/// of what earlier buildpacks contribute.
///
/// Task keys leave the passed-through variables out on purpose: a proxy or a host name says
/// how to reach the network, not what to build, and keying on them would make every machine's
/// cache its own.
pub fn base_env(isolated: bool) -> Env {
    let mut env = Env::new();
    env.set("PATH", DEFAULT_PATH);
    let home = if isolated {
        Some("/home/cnb".to_owned())
    } else {
        std::env::var("HOME").ok()
    };
    if let Some(home) = home {
        env.set("HOME", home);
    }
    for name in PASSED_THROUGH {
        if let Ok(value) = std::env::var(name) {
            env.set(name, value);
        }
    }
    env
}

/// [`base_env`] for processes in `sandbox`, with the env of the build image it runs on (its
/// `PATH` and the rest) in place of the host root's fixed `PATH`; `HOME` stays the build
/// user's home the sandbox makes.
pub fn sandbox_base_env(sandbox: &Sandbox) -> Env {
    let mut env = base_env(sandbox.isolates());
    for (name, value) in sandbox.image_env() {
        if name != "HOME" {
            env.set(name, value);
        }
    }
    env
}

/// The env of a buildpack process, by the platform's precedence rules: `base`, then `earlier`
/// (the build env of the layers before it, in order), then `user` (the user env, empty for a
/// `clear-env` buildpack) on top. A user value of a [path variable](PATH_VARIABLES) is
/// prepended, with `:`, to what the build image and earlier layers give; any other user value
/// wins over what a buildpack set. Later values of one name in `user` win.
///
/// The platform's own variables ([`platform_env`]) and the process's `CNB_*` paths go on top
/// of this: the lifecycle sets them last, so a user cannot change them.
pub fn process_env(mut base: Env, earlier: &[EnvModification], user: &[(String, String)]) -> Env {
    base.apply(earlier);
    // One value per name, the last: the platform dir holds one file per variable.
    let mut last: Vec<&(String, String)> = Vec::new();
    for pair in user {
        last.retain(|(k, _)| *k != pair.0);
        last.push(pair);
    }
    for (name, value) in last {
        if PATH_VARIABLES.contains(&name.as_str()) {
            base.apply_one(&EnvModification::prepend_path(name.clone(), value.clone()));
        } else {
            base.set(name.clone(), value.clone());
        }
    }
    base
}

/// What the platform sets for every buildpack process, over the user env: the
/// `CNB_PLATFORM_API` strata implements, `SERVICE_BINDING_ROOT` where the process sees
/// bindings (`bindings_root`), and the `CNB_TARGET_*` set.
pub fn platform_env(target: &TargetEnv, bindings_root: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("CNB_PLATFORM_API".to_owned(), PLATFORM_API.to_owned())];
    if let Some(root) = bindings_root {
        env.push(("SERVICE_BINDING_ROOT".to_owned(), root.to_owned()));
    }
    env.extend(target.vars());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvAction;
    use std::os::unix::fs::MetadataExt;

    fn m(name: &str, action: EnvAction, value: &str) -> EnvModification {
        EnvModification {
            name: name.to_owned(),
            action,
            value: value.to_owned(),
            delim: Some(",".to_owned()),
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// What a buildpack's process gets, composed as `bin/build` composes it: the base, the
    /// earlier layers' build env, the user env unless `clear_env`, the platform's variables.
    fn composed(
        earlier: &[EnvModification],
        user: &[(&str, &str)],
        clear_env: bool,
    ) -> (Env, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let platform = PlatformDir::create(&dir.path().join("platform"), &pairs(user)).unwrap();
        let base: Env = [("PATH", "/usr/bin"), ("HOME", "/home/cnb")]
            .into_iter()
            .collect();
        let mut env = process_env(base, earlier, platform.user_env(clear_env));
        env.extend(platform_env(&TargetEnv::host(), None));
        (env, dir)
    }

    /// What a row says, what earlier layers set, the user env, `clear-env`, and the variable
    /// with the value the buildpack must see.
    type Row<'a> = (
        &'a str,
        Vec<EnvModification>,
        Vec<(&'a str, &'a str)>,
        bool,
        &'a str,
        Option<&'a str>,
    );

    #[test]
    fn env_precedence_table() {
        use EnvAction::{Append, Default, Override, Prepend};
        let bin = |dir: &str| EnvModification::prepend_path("PATH", format!("/layers/{dir}/bin"));
        let lib = |var: &str| EnvModification::prepend_path(var, "/layers/a/lib");
        #[rustfmt::skip]
        let table: Vec<Row<'_>> = vec![
            ("user value, nothing else", vec![], vec![("MODE", "dev")], false, "MODE", Some("dev")),
            ("user beats a buildpack override", vec![m("MODE", Override, "bp")], vec![("MODE", "dev")], false, "MODE", Some("dev")),
            ("user beats a buildpack default", vec![m("MODE", Default, "bp")], vec![("MODE", "dev")], false, "MODE", Some("dev")),
            ("user beats a buildpack append", vec![m("MODE", Append, "bp")], vec![("MODE", "dev")], false, "MODE", Some("dev")),
            ("user beats a buildpack prepend", vec![m("MODE", Prepend, "bp")], vec![("MODE", "dev")], false, "MODE", Some("dev")),
            ("buildpack default without a user value", vec![m("MODE", Default, "bp")], vec![], false, "MODE", Some("bp")),
            ("later user value of a name wins", vec![], vec![("MODE", "a"), ("MODE", "b")], false, "MODE", Some("b")),
            ("user PATH is prepended to the image's", vec![], vec![("PATH", "/x")], false, "PATH", Some("/x:/usr/bin")),
            ("user PATH is prepended to layers' bin", vec![bin("a"), bin("b")], vec![("PATH", "/x")], false, "PATH", Some("/x:/layers/b/bin:/layers/a/bin:/usr/bin")),
            ("user PATH beats a buildpack PATH override only by prepending", vec![m("PATH", Override, "/bp")], vec![("PATH", "/x")], false, "PATH", Some("/x:/bp")),
            ("LD_LIBRARY_PATH is a path variable", vec![lib("LD_LIBRARY_PATH")], vec![("LD_LIBRARY_PATH", "/u")], false, "LD_LIBRARY_PATH", Some("/u:/layers/a/lib")),
            ("LIBRARY_PATH is a path variable", vec![lib("LIBRARY_PATH")], vec![("LIBRARY_PATH", "/u")], false, "LIBRARY_PATH", Some("/u:/layers/a/lib")),
            ("CPATH is a path variable", vec![EnvModification::prepend_path("CPATH", "/l/include")], vec![("CPATH", "/u")], false, "CPATH", Some("/u:/l/include")),
            ("PKG_CONFIG_PATH is a path variable", vec![EnvModification::prepend_path("PKG_CONFIG_PATH", "/l/pc")], vec![("PKG_CONFIG_PATH", "/u")], false, "PKG_CONFIG_PATH", Some("/u:/l/pc")),
            ("a path variable nothing else sets is the user's", vec![], vec![("CPATH", "/u")], false, "CPATH", Some("/u")),
            ("other *PATH variables are replaced", vec![m("GOPATH", Override, "/bp")], vec![("GOPATH", "/u")], false, "GOPATH", Some("/u")),
            ("clear-env: no user value", vec![], vec![("MODE", "dev")], true, "MODE", None),
            ("clear-env: the buildpack's value stays", vec![m("MODE", Override, "bp")], vec![("MODE", "dev")], true, "MODE", Some("bp")),
            ("clear-env: PATH without the user's", vec![bin("a")], vec![("PATH", "/x")], true, "PATH", Some("/layers/a/bin:/usr/bin")),
            ("the platform's variables beat the user's", vec![], vec![("CNB_PLATFORM_API", "0.1")], false, "CNB_PLATFORM_API", Some(PLATFORM_API)),
            ("the target beats the user", vec![], vec![("CNB_TARGET_OS", "windows")], false, "CNB_TARGET_OS", Some("linux")),
            ("HOME comes from the base", vec![], vec![], false, "HOME", Some("/home/cnb")),
        ];
        for (what, earlier, user, clear_env, name, want) in table {
            let (env, _dir) = composed(&earlier, &user, clear_env);
            assert_eq!(env.get(name), want, "{what}");
        }
    }

    #[test]
    fn platform_env_files_hold_every_user_value_even_for_clear_env() {
        let (env, dir) = composed(&[], &[("MODE", "dev"), ("PATH", "/x")], true);
        assert_eq!(env.get("MODE"), None);
        let files = dir.path().join("platform/env");
        assert_eq!(fs::read_to_string(files.join("MODE")).unwrap(), "dev");
        assert_eq!(fs::read_to_string(files.join("PATH")).unwrap(), "/x");
    }

    #[test]
    fn the_base_env_is_the_build_images_and_never_the_callers() {
        let env = base_env(true);
        assert_eq!(env.get("PATH"), Some(DEFAULT_PATH));
        assert_eq!(env.get("HOME"), Some("/home/cnb"));
        let allowed = ["PATH", "HOME"];
        for (name, _) in &env {
            assert!(
                allowed.contains(&name) || PASSED_THROUGH.contains(&name),
                "{name} comes from the caller's env"
            );
        }
        let platform = platform_env(&TargetEnv::host(), Some("/platform/bindings"));
        let platform: Env = platform.into_iter().collect();
        assert_eq!(platform.get("CNB_PLATFORM_API"), Some(PLATFORM_API));
        assert_eq!(
            platform.get("SERVICE_BINDING_ROOT"),
            Some("/platform/bindings")
        );
        assert_eq!(platform.get("CNB_TARGET_OS"), Some("linux"));
        let none: Env = platform_env(&TargetEnv::host(), None).into_iter().collect();
        assert_eq!(none.get("SERVICE_BINDING_ROOT"), None);
    }

    fn a_binding(root: &Path) -> Binding {
        let dir = root.join("db-binding");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("type"), "postgresql").unwrap();
        Binding::load("db", &dir).unwrap()
    }

    #[test]
    fn bindings_are_mounted_read_only_on_empty_mount_points() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::bwrap().unwrap();
        let binding = a_binding(dir.path());
        let platform = PlatformDir::new(&dir.path().join("platform"), &[])
            .with_bindings(vec![binding.clone()], &sandbox);
        let seen = platform.mounts(&sandbox, true).unwrap();
        assert_eq!(seen.dir, PLATFORM_TARGET);
        assert_eq!(seen.bindings_root.as_deref(), Some("/platform/bindings"));
        let mount = &seen.mounts[1];
        assert_eq!(
            (
                mount.host.as_path(),
                mount.target.as_str(),
                mount.writable,
                mount.private
            ),
            (binding.dir.as_path(), "/platform/bindings/db", false, false)
        );
        let point = dir.path().join("platform/bindings/db");
        assert!(point.is_dir() && fs::read_dir(&point).unwrap().next().is_none());
        let hidden = platform.mounts(&sandbox, false).unwrap();
        assert_eq!(hidden.mounts.len(), 1);
        assert_eq!(hidden.bindings_root, None);
    }

    #[test]
    fn without_a_sandbox_bindings_are_links() {
        let dir = tempfile::tempdir().unwrap();
        let binding = a_binding(dir.path());
        let platform = PlatformDir::new(&dir.path().join("platform"), &[])
            .with_bindings(vec![binding.clone()], &Sandbox::none());
        let seen = platform.mounts(&Sandbox::none(), true).unwrap();
        assert_eq!(seen.mounts.len(), 1);
        let root = seen.bindings_root.unwrap();
        assert_eq!(
            fs::read_to_string(Path::new(&root).join("db/type")).unwrap(),
            "postgresql"
        );
    }

    #[test]
    fn env_values_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let platform_dir = dir.path().join("platform");
        let env = [("API_TOKEN".to_owned(), "secret".to_owned())];
        let platform = PlatformDir::create(&platform_dir, &env).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(platform.path().unwrap()), 0o700);
        assert_eq!(mode(&platform_dir.join("env")), 0o700);
        let value = platform_dir.join("env/API_TOKEN");
        assert_eq!(mode(&value), 0o600);
        assert_eq!(fs::read_to_string(value).unwrap(), "secret");
    }
}
