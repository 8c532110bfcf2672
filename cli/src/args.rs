//! Command-line arguments, exactly as scripts type them. Parsing only: [`crate::config`] turns
//! them into validated settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build reproducible OCI images from source with Cloud Native Buildpacks.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an app into an OCI image.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(BuildArgs),
    /// Show what a build would run and why, without running it.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Show an image's layers, processes, run image and buildpacks.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Move app images onto a new run image without rebuilding them.
    #[command(after_help = crate::rebase::REBASE_EXAMPLES)]
    Rebase(crate::rebase::RebaseArgs),
    /// Show, check or trim the store of built layers and task outputs.
    #[command(after_help = CACHE_EXAMPLES)]
    Cache(CacheArgs),
    /// Make builder images.
    Builder(crate::builder::BuilderArgs),
    /// Make signing keys.
    Key(crate::key::KeyArgs),
    /// Sign an image's manifest digest and attach the signature to it.
    #[command(after_help = crate::sign::SIGN_EXAMPLES)]
    Sign(crate::sign::SignArgs),
    /// Check an image's signature with a public key (exit 0 valid, 1 not).
    #[command(after_help = crate::sign::VERIFY_EXAMPLES)]
    VerifySignature(crate::sign::VerifyArgs),
    /// Run an image's process in a sandbox, as a container runtime would.
    #[command(after_help = crate::run::RUN_EXAMPLES)]
    Run(crate::run::RunArgs),
    /// Download an image's SBOMs.
    Sbom(crate::sbom::SbomArgs),
}

const BUILD_EXAMPLES: &str = "Examples:
  strata build examples/monorepo
  strata build examples/monorepo --service api --service docs --json
  strata build . --shard 2/3 --cache-from docker://registry.example.com/ci/cache --cache-to docker://registry.example.com/ci/cache
  strata build examples/apps/hello --builder examples/builder.toml --output oci:out:hello
  strata build . --builder oci:builders:base --run-image oci:base:latest --output oci:out:app
  strata build . --buildpack ./my-buildpack --run-image oci:base:latest --output oci:out:app --json
  strata build . --builder builder.toml --env BP_LOG_LEVEL=debug --binding db=./bindings/db
  strata build examples/monorepo --sign-key cosign.key
  strata build examples/monorepo --check";

const PLAN_EXAMPLES: &str = "Examples:
  strata plan examples/monorepo
  strata plan examples/monorepo --shard 1/3 --format json
  strata plan examples/apps/hello --builder examples/builder.toml
  strata plan examples/apps/hello --builder examples/builder.toml --format json
  strata plan examples/apps/hello --builder examples/builder.toml --format dot | dot -Tsvg > plan.svg";

const INSPECT_EXAMPLES: &str = "Examples:
  strata inspect oci:out:hello
  strata inspect oci:out:hello --json";

const CACHE_EXAMPLES: &str = "Examples:
  strata cache stats
  strata cache verify --cache-dir /var/cache/strata --json
  strata cache gc --max-size 10GiB";

/// What both `plan` and `build` read: the app, its buildpacks, env and the sandbox.
#[derive(Debug, Clone, Args)]
pub(crate) struct InputArgs {
    /// The app's directory, or a workspace root (a directory with `strata.toml`).
    #[arg(default_value = ".")]
    pub(crate) app_dir: PathBuf,
    /// In a workspace, only this service (by name). Repeatable.
    #[arg(long = "service", value_name = "NAME")]
    pub(crate) services: Vec<String>,
    /// A CNB builder: a builder.toml, or a builder image `oci:DIR[:TAG]` (as `pack builder
    /// create` writes one): its buildpacks, its order, its run image and (an image) its build
    /// image.
    #[arg(long, value_name = "FILE|REF")]
    pub(crate) builder: Option<PathBuf>,
    /// Build with exactly these buildpacks, in this order: a directory, or `id[@version]` from
    /// the builder. Repeatable.
    #[arg(long = "buildpack", value_name = "DIR|ID")]
    pub(crate) buildpacks: Vec<String>,
    /// The run image, `oci:DIR:TAG` (default: the builder's, else a minimal built-in base).
    #[arg(long, value_name = "REF")]
    pub(crate) run_image: Option<String>,
    /// The build image buildpacks run on, as the sandbox's `/`: `oci:DIR:TAG`, or `host` for
    /// the host's system directories (default: a builder image itself, or a builder.toml's
    /// `[build] image` when it is an `oci:` reference, else `host`).
    #[arg(long, value_name = "REF|host")]
    pub(crate) build_image: Option<String>,
    /// Build env for the buildpacks (`K=V`, or `K` to take it from this environment). Repeatable.
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub(crate) env: Vec<String>,
    /// A service binding for the buildpacks: `DIR` (with a `type` file, an optional
    /// `provider` file and one file per key) is mounted read-only at
    /// `/platform/bindings/NAME`, and `SERVICE_BINDING_ROOT` names `/platform/bindings`.
    /// Never copied into a layer, the image or the cache. Repeatable.
    #[arg(long = "binding", value_name = "NAME=DIR", value_parser = parse_binding)]
    pub(crate) bindings: Vec<(String, PathBuf)>,
    /// Where strata keeps its caches (default: `$XDG_CACHE_HOME/strata` or `~/.cache/strata`).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Where buildpacks run: a bubblewrap sandbox, or the host (no isolation; paths differ).
    #[arg(long, value_enum, default_value_t = SandboxArg::Bwrap)]
    pub(crate) sandbox: SandboxArg,
    /// What buildpacks' `bin/detect` and `bin/build` can reach: `host` shares the host's
    /// network (what the host reaches, its loopback included), `none` gives them only their
    /// own loopback. Declared layers have no network unless they set `network = true`.
    #[arg(long, value_enum, default_value_t = NetworkArg::Host)]
    pub(crate) network: NetworkArg,
    /// Run buildpacks without network access (`--network none`).
    #[arg(long)]
    pub(crate) offline: bool,
    /// Kill a buildpack's `bin/build` or a layer's script, with all it started, after this
    /// long (`90s`, `30m`, `2h`, seconds); `bin/detect` gets at most 2 minutes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) task_timeout: Option<std::time::Duration>,
    /// The execution environment to build for (`CNB_EXEC_ENV`): `production`, `test`,
    /// `development`, … Buildpacks, order entries and processes for other environments are
    /// left out.
    #[arg(long, value_name = "NAME", default_value = strata_planner::exec_env::DEFAULT_EXEC_ENV)]
    pub(crate) exec_env: String,
    /// A registry (`HOST[:PORT]`) spoken to over plain HTTP (repeatable; also
    /// `insecure-registries` in strata.toml).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registries: Vec<String>,
    /// A PEM file of CA certificates that registries are trusted by, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
    /// In a workspace, only shard K of N: the services rendezvous hashing of their names
    /// gives that shard (N runners with 1/N … N/N cover the workspace once; adding a service
    /// moves no other).
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<strata_planner::Shard>,
}

/// `NAME=DIR`; the name and the directory are checked when the config is made.
fn parse_binding(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, dir)) if !dir.is_empty() => Ok((name.to_owned(), PathBuf::from(dir))),
        _ => Err(format!("`{text}`: give NAME=DIR")),
    }
}

/// `90`, `90s`, `30m`, `2h`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}`: use seconds, or a number with s, m or h")),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    match value.checked_mul(scale) {
        Some(0) => Err("a timeout of 0 would kill every task".to_owned()),
        Some(secs) => Ok(std::time::Duration::from_secs(secs)),
        None => Err(format!("`{text}` is too long")),
    }
}

#[derive(Debug, Clone, Args)]
#[allow(clippy::struct_excessive_bools)] // command-line flags, one each
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Where the image goes: `oci:DIR:TAG`. For a workspace, a layout `oci:DIR` (default: its
    /// `output`), where each image is tagged with its service's name.
    #[arg(long, value_name = "REF")]
    pub(crate) output: Option<String>,
    /// A tag to push a registry output under (repeatable; default the reference's tag, else
    /// `latest`).
    #[arg(long = "tag", value_name = "T")]
    pub(crate) tags: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub(crate) compression: CompressionArg,
    /// How many tasks may run at once (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) jobs: Option<u16>,
    /// After a task fails, still run every task that does not need it.
    #[arg(long)]
    pub(crate) keep_going: bool,
    /// Run every task, even those whose output is in the cache (outputs are still stored).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Images without the CNB launcher: the Entrypoint is the default process's command and
    /// the buildpacks' launch env is baked into the config (no process types by name, no
    /// exec.d, no profile.d).
    #[arg(long)]
    pub(crate) no_launcher: bool,
    /// Print a JSON report on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A registry repository to read task outputs from before running a task,
    /// `docker://HOST/REPO` (default: `cache` in strata.toml).
    #[arg(long, value_name = "REF")]
    pub(crate) cache_from: Option<String>,
    /// A registry repository to push the outputs of the tasks that ran to, and their restore
    /// state, `docker://HOST/REPO` (default: `cache` in strata.toml).
    #[arg(long, value_name = "REF")]
    pub(crate) cache_to: Option<String>,
    /// Write a Chrome trace-event JSON of the build to FILE (open it in Perfetto,
    /// <https://ui.perfetto.dev>): a track per worker, a span per task with its key, status
    /// and reason.
    #[arg(long, value_name = "FILE")]
    pub(crate) profile: Option<PathBuf>,
    /// Sign each image with this private key (PKCS#8 PEM, Ed25519 or ECDSA P-256; see `strata
    /// key generate`), and attach its signature and a signed SLSA provenance attestation to it.
    #[arg(long, value_name = "FILE")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Rebuild from scratch in a fresh temporary store and compare with the image the output
    /// holds: exit 0 identical, 1 different (naming the first layer and entry that differ),
    /// 2 when the output holds no image yet. The output is left as it is.
    #[arg(long, conflicts_with_all = ["sign_key", "profile"])]
    pub(crate) check: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// The output the build will write (as `build --output`; a workspace's default is its
    /// `output`): the image task's key covers the run image name the image records, which a
    /// layout output records from the directory holding it.
    #[arg(long, value_name = "REF")]
    pub(crate) output: Option<String>,
    /// How to print the plan: a table for people, JSON for scripts, DOT for Graphviz.
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub(crate) format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    Table,
    Json,
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CompressionArg {
    /// Uncompressed tar layers.
    None,
    /// gzip layers (`tar+gzip`): what every registry and runtime reads.
    Gzip,
    /// zstd layers (`tar+zstd`): smaller and faster to write and read; needs a runtime that
    /// reads zstd layers (containerd 1.5+, Podman, skopeo, umoci).
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NetworkArg {
    None,
    Host,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SandboxArg {
    Bwrap,
    None,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The image: `oci:DIR:TAG`.
    pub(crate) image: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// A registry (`HOST[:PORT]`) spoken to over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registries: Vec<String>,
    /// A PEM file of CA certificates that registries are trusted by, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
}

/// `strata cache`: the store in the cache directory.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) command: CacheCommand,
    /// Where strata keeps its caches (default: `$XDG_CACHE_HOME/strata` or `~/.cache/strata`).
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Print a JSON report on stdout instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Count the store's blobs, actions and logs, and their bytes.
    #[command(after_help = "Example:\n  strata cache stats --json")]
    Stats,
    /// Hash every blob and check every action; exit 1 if anything is corrupt or missing.
    #[command(
        after_help = "Examples:\n  strata cache verify\n  strata cache verify --repair\n  strata cache verify --layout oci:out"
    )]
    Verify {
        /// Remove what is corrupt or broken; the next build rebuilds it.
        #[arg(long)]
        repair: bool,
        /// Also hash every blob of this output layout and check each tagged image is whole
        /// (only reported: a build replaces a bad blob). Repeatable.
        #[arg(long, value_name = "oci:DIR")]
        layout: Vec<String>,
    },
    /// Remove garbage, then the least recently used entries until the store fits a size.
    #[command(after_help = "Examples:\n  strata cache gc\n  strata cache gc --max-size 2G")]
    Gc {
        /// The most the store may keep: bytes, or with a unit (`500M`, `2G`, `10GiB` are
        /// binary; `500MB`, `2GB` decimal). Default: remove only garbage.
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        max_size: Option<String>,
    },
}
