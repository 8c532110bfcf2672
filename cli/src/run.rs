//! `strata run`: run an image's process in one command, as a container runtime would.
//!
//! The image (a layout, or a registry image pulled into the store) is unpacked once into the
//! store's root filesystems, keyed by its layers' diffIDs exactly as a build image is
//! ([`strata_exporter::rootfs`]), so a second run starts at once and `strata cache gc` trims
//! it like any tree. Its process runs in the build sandbox's bubblewrap isolation: a new user
//! namespace as the image's `User` (never host root), no capabilities, its own pid, ipc and
//! uts namespaces, and only the image's files, read-only, with a private `/tmp` (what
//! `docker run --read-only --tmpfs /tmp` gives). It shares the host's network, so a web
//! process is reached on the port it listens on, unless `--no-network` is given.
//!
//! What runs is the config's `Entrypoint` and `Cmd`, with its `Env` and `WorkingDir`; `--
//! ARGS` replace `Cmd`, and `--process TYPE` picks another of the CNB launcher's processes
//! (`/cnb/process/TYPE`, as `pack` and the lifecycle name them). The exit code is the
//! process's; strata's own failures to start it exit 125, as `docker run`'s do.

use std::path::{Path, PathBuf};

use clap::Args;
use strata_engine::sandbox::{Mount, Purpose, Root, Sandbox, SandboxCommand};
use strata_engine::store::{Store, store_dir};
use strata_exporter::builduser::build_user;
use strata_exporter::rootfs::unpack_rootfs;
use strata_exporter::runimage::{ImageRole, RunImage};
use strata_exporter::unpack::OwnerMap;

use crate::config::default_cache_dir;
use crate::error::CliError;
use crate::images::{Images, RegistrySettings};

/// Examples shown by `strata run --help`.
pub(crate) const RUN_EXAMPLES: &str = "Examples:
  strata run oci:examples/monorepo/out:api
  strata run oci:out:hello --process worker
  strata run oci:out:hello -e GREETING=hi --entrypoint /bin/sh -- -c 'echo $GREETING'
  strata run oci:out:hello --entrypoint /cnb/lifecycle/launcher -- 'id && pwd'
  strata run docker://127.0.0.1:5000/app:latest --insecure-registry 127.0.0.1:5000

Exit codes: the process's own; 125 when strata cannot start it (a bad reference, no such
process type, no bubblewrap).";

/// The exit code of a run that strata could not start.
pub(crate) const EXIT_NOT_STARTED: u8 = 125;

/// Top-level directories of an image that the sandbox makes its own mount points for, and
/// that a run therefore binds from the image itself.
const IMAGE_MOUNTS: &[&str] = &["workspace", "layers", "cnb", "home"];

/// Where the CNB launcher keeps one link per process type.
const PROCESS_DIR: &str = "cnb/process";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The image: `oci:DIR[:TAG]` or `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`.
    #[arg(value_name = "IMAGE_REF")]
    pub(crate) image: String,
    /// Run this process type of the image instead of its default (`/cnb/process/TYPE`).
    #[arg(long, value_name = "TYPE")]
    pub(crate) process: Option<String>,
    /// Run this program instead of the image's `Entrypoint` (`""` for none, so that `--
    /// ARGS` name the program), as `docker run --entrypoint` does.
    #[arg(long, value_name = "PATH", conflicts_with = "process")]
    pub(crate) entrypoint: Option<String>,
    /// Set a variable in the process's env, over the image's (repeatable).
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,
    /// Give the process only its own loopback instead of the host's network.
    #[arg(long)]
    pub(crate) no_network: bool,
    /// Where strata keeps its caches; the unpacked image is kept in its store (default:
    /// `$XDG_CACHE_HOME/strata` or `~/.cache/strata`).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// A registry (`HOST[:PORT]`) spoken to over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registries: Vec<String>,
    /// A PEM file of CA certificates that registries are trusted by, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
    /// Arguments that replace the image's `Cmd` (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,
}

/// Runs the image's process and returns its exit code.
///
/// # Errors
/// Whatever keeps the process from starting: the image cannot be read or unpacked, the
/// process type is unknown, bubblewrap is missing.
pub(crate) fn run(args: &RunArgs) -> Result<u8, CliError> {
    let env_overrides = parse_env(&args.env)?;
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir()?,
    };
    let images = Images::new(
        &cache_dir,
        RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ca_file: args.registry_ca.clone(),
        },
    );
    let reference = images.resolve(&args.image, Path::new("."))?;
    let image = RunImage::load_as(&reference, ImageRole::App)?;
    let user = image_user(&image)?;
    let sandbox = Sandbox::bwrap()?;
    let owners = sandbox
        .host_owner()
        .map(|host| OwnerMap { image: user, host });
    let store_root = store_dir(&cache_dir);
    // Held open while the tree is made and used, so that `strata cache gc` leaves it alone.
    let _store = Store::open(&store_root).map_err(crate::cache::CacheError::from)?;
    let rootfs = unpack_rootfs(&image, &store_root, owners)?;

    let config = image.config.config().clone().unwrap_or_default();
    let mut entrypoint = config.entrypoint().clone().unwrap_or_default();
    let mut cmd = config.cmd().clone().unwrap_or_default();
    if let Some(process) = &args.process {
        entrypoint = vec![process_entrypoint(&rootfs, process, &args.image)?];
        // The launcher's own args of the default process belong to it alone.
        cmd.clear();
    }
    if let Some(program) = &args.entrypoint {
        entrypoint = if program.is_empty() {
            Vec::new()
        } else {
            vec![program.clone()]
        };
        // The image's `Cmd` is for its own entrypoint, as `docker run --entrypoint` has it.
        cmd.clear();
    }
    if !args.args.is_empty() {
        cmd.clone_from(&args.args);
    }
    let program: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if program.is_empty() {
        return Err(CliError::Usage(format!(
            "image {} has no Entrypoint and no Cmd: give the program after `--`",
            args.image
        )));
    }
    let mut env = image_env(config.env().as_deref().unwrap_or_default());
    for (name, value) in env_overrides {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    }
    let mounts = IMAGE_MOUNTS
        .iter()
        .filter(|dir| is_real_dir(&rootfs.join(dir)))
        .map(|dir| Mount::ro(rootfs.join(dir), format!("/{dir}")))
        .collect();
    let command = SandboxCommand {
        argv: program,
        env,
        mounts,
        sealed: Vec::new(),
        cwd: config
            .working_dir()
            .clone()
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/".to_owned()),
        network: !args.no_network,
        purpose: Purpose::Run,
    };
    let status = sandbox
        .with_root(Root::Image(rootfs))
        .with_user(user.0, user.1)
        .run_attached(&command)?;
    Ok(exit_code(status))
}

/// The uid and gid the image runs as: its `User` as a build user is read, root (of its own
/// user namespace, never of the host) when it names none.
fn image_user(image: &RunImage) -> Result<(u32, u32), CliError> {
    let named = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .is_some_and(|user| !user.is_empty());
    if named || image.env_var("CNB_USER_ID").is_some() {
        Ok(build_user(image)?)
    } else {
        Ok((0, 0))
    }
}

/// `/cnb/process/TYPE`, once the image is seen to have it.
fn process_entrypoint(rootfs: &Path, process: &str, image: &str) -> Result<String, CliError> {
    let valid = !process.is_empty()
        && process
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && process != "."
        && process != "..";
    // Each directory on the way is the image's own, never a link a layer made that would
    // lead out of the tree.
    let dir = rootfs.join(PROCESS_DIR);
    let own = is_real_dir(&rootfs.join("cnb")) && is_real_dir(&dir);
    if own && valid && std::fs::symlink_metadata(dir.join(process)).is_ok() {
        return Ok(format!("/{PROCESS_DIR}/{process}"));
    }
    let listing = if own {
        std::fs::read_dir(&dir)
    } else {
        Err(std::io::ErrorKind::NotFound.into())
    };
    let mut known: Vec<String> = listing
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    Err(CliError::Usage(if known.is_empty() {
        format!(
            "image {image} has no CNB launcher processes (no /{PROCESS_DIR}): --process {process} cannot run"
        )
    } else {
        format!(
            "image {image} has no process type `{process}`; it has: {}",
            known.join(", ")
        )
    }))
}

/// A directory of the image itself (not a link a layer made).
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// `NAME=VALUE` pairs of the config's `Env`, in order.
fn image_env(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// `--env NAME=VALUE` flags.
fn parse_env(flags: &[String]) -> Result<Vec<(String, String)>, CliError> {
    flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((name, value)) if !name.is_empty() && !name.contains('\0') => {
                Ok((name.to_owned(), value.to_owned()))
            }
            _ => Err(CliError::Usage(format!(
                "--env {flag}: expected NAME=VALUE"
            ))),
        })
        .collect()
}

/// The process's exit code, or 128 + the signal that ended it, as shells report it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}
