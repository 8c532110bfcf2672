//! A small Cloud Native Buildpack written with libcnb, for apps with a `message.txt`.
//!
//! It exercises what a platform must give a real buildpack between builds: a `cache = true`
//! launch layer (`counter`) whose typed metadata counts the builds that filled it, and whose
//! contents (`builds.log`, one line per build) grow when the platform restored them; a
//! `store.toml` that counts builds too; two launch processes (`web`, the default, prints the
//! app's message, `report` prints the log); a `CycloneDX` SBOM for the layer and for launch;
//! an exec.d program in the layer (`src/bin/counter-execd.rs`, shipped as libcnb-cargo ships a
//! buildpack's other binaries) that sets `COUNTER_EXECD` for every process, which `web` prints.
//!
//! Every step prints what it saw, prefixed `libcnb-counter:`, so a test can read from the build
//! output whether the cached layer and the store came back, and which `CNB_TARGET_*` it got.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use libcnb::build::{BuildContext, BuildResult, BuildResultBuilder};
use libcnb::data::launch::{LaunchBuilder, ProcessBuilder};
use libcnb::data::sbom::SbomFormat;
use libcnb::data::store::Store;
use libcnb::data::{layer_name, process_type};
use libcnb::detect::{DetectContext, DetectResult, DetectResultBuilder};
use libcnb::generic::{GenericMetadata, GenericPlatform};
use libcnb::layer::{
    CachedLayerDefinition, EmptyLayerCause, InvalidMetadataAction, LayerState, RestoredLayerAction,
};
use libcnb::sbom::Sbom;
use libcnb::{Buildpack, Target, additional_buildpack_binary_path, buildpack_main};
use serde::{Deserialize, Serialize};

/// The app file this buildpack is for.
const MESSAGE_FILE: &str = "message.txt";
/// The log in the cached layer: one line per build that had the layer.
const BUILDS_LOG: &str = "builds.log";

struct CounterBuildpack;

/// The `counter` layer's metadata.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterMetadata {
    /// How many builds have filled this layer.
    builds: u64,
}

/// What the restored-layer check found.
enum Cached {
    /// Metadata and contents are there: the layer is kept, filled by `builds` builds.
    Kept { builds: u64 },
    /// The metadata came back but `builds.log` did not: the layer is rebuilt.
    LogMissing,
}

#[derive(Debug)]
enum CounterError {
    Io(PathBuf, std::io::Error),
}

impl From<CounterError> for libcnb::Error<CounterError> {
    fn from(error: CounterError) -> Self {
        Self::BuildpackError(error)
    }
}

impl Buildpack for CounterBuildpack {
    type Platform = GenericPlatform;
    type Metadata = GenericMetadata;
    type Error = CounterError;

    fn detect(&self, context: DetectContext<Self>) -> libcnb::Result<DetectResult, Self::Error> {
        say(&format!("detect: {}", describe_target(&context.target)));
        if context.app_dir.join(MESSAGE_FILE).is_file() {
            DetectResultBuilder::pass().build()
        } else {
            say(&format!("detect: no {MESSAGE_FILE}"));
            DetectResultBuilder::fail().build()
        }
    }

    fn build(&self, context: BuildContext<Self>) -> libcnb::Result<BuildResult, Self::Error> {
        say(&format!("build: {}", describe_target(&context.target)));
        let stored_builds = if let Some(store) = &context.store {
            say(&format!("store.toml: {}", describe_table(&store.metadata)));
            store
                .metadata
                .get("builds")
                .and_then(toml::Value::as_integer)
                .unwrap_or(0)
        } else {
            say("store.toml: none");
            0
        };

        let layer = context.cached_layer(
            layer_name!("counter"),
            CachedLayerDefinition {
                build: true,
                launch: true,
                invalid_metadata_action: &|_| {
                    (
                        InvalidMetadataAction::<CounterMetadata>::DeleteLayer,
                        "metadata is not a counter's",
                    )
                },
                restored_layer_action: &|metadata: &CounterMetadata, dir: &Path| {
                    if dir.join(BUILDS_LOG).is_file() {
                        (
                            RestoredLayerAction::KeepLayer,
                            Cached::Kept {
                                builds: metadata.builds,
                            },
                        )
                    } else {
                        (RestoredLayerAction::DeleteLayer, Cached::LogMissing)
                    }
                },
            },
        )?;
        let layer_builds = match &layer.state {
            LayerState::Restored {
                cause: Cached::Kept { builds },
            } => {
                say(&format!("layer counter: restored, builds = {builds}"));
                *builds
            }
            LayerState::Restored {
                cause: Cached::LogMissing,
            } => 0,
            LayerState::Empty { cause } => {
                let why = match cause {
                    EmptyLayerCause::NewlyCreated => "new",
                    EmptyLayerCause::InvalidMetadataAction { cause } => cause,
                    EmptyLayerCause::RestoredLayerAction { .. } => "restored without its log",
                };
                say(&format!("layer counter: empty ({why})"));
                0
            }
        };

        let dir = layer.path();
        let log = dir.join(BUILDS_LOG);
        let previous = read_optional(&log)?;
        say(&format!(
            "layer counter: {BUILDS_LOG} held {} line(s)",
            previous.lines().count()
        ));
        let message_path = context.app_dir.join(MESSAGE_FILE);
        let message =
            fs::read_to_string(&message_path).map_err(|e| CounterError::Io(message_path, e))?;
        let message = message.lines().next().unwrap_or_default();
        let build = layer_builds + 1;
        append(&log, &format!("build {build}: {message}\n"))?;
        write_script(
            &dir.join("bin/counter-hello"),
            &format!(
                "echo \"libcnb-counter: $(cat {MESSAGE_FILE}) (layer build {build})\"\n\
                 echo \"libcnb-counter: COUNTER_EXECD=${{COUNTER_EXECD-unset}}\""
            ),
        )?;
        write_script(
            &dir.join("bin/counter-report"),
            &format!("cat \"${{0%/bin/*}}/{BUILDS_LOG}\""),
        )?;
        layer.write_exec_d_programs([(
            "counter-execd",
            additional_buildpack_binary_path!("counter-execd"),
        )])?;
        layer.write_metadata(CounterMetadata { builds: build })?;
        layer.write_sboms(&[cyclonedx("counter-hello", &build.to_string())])?;
        say(&format!("layer counter: now builds = {build}"));

        let mut metadata = toml::Table::new();
        metadata.insert("builds".to_owned(), toml::Value::Integer(stored_builds + 1));
        metadata.insert(
            "message".to_owned(),
            toml::Value::String(message.to_owned()),
        );
        say(&format!("store.toml: now {}", describe_table(&metadata)));

        BuildResultBuilder::new()
            .launch(
                LaunchBuilder::new()
                    .process(
                        ProcessBuilder::new(process_type!("web"), ["counter-hello"])
                            .default(true)
                            .build(),
                    )
                    .process(
                        ProcessBuilder::new(process_type!("report"), ["counter-report"]).build(),
                    )
                    .build(),
            )
            .store(Store { metadata })
            .launch_sbom(cyclonedx("libcnb-counter", "0.1.0"))
            .build()
    }

    fn on_error(&self, error: libcnb::Error<Self::Error>) {
        match error {
            libcnb::Error::BuildpackError(CounterError::Io(path, e)) => {
                eprintln!("libcnb-counter: {}: {e}", path.display());
            }
            other => eprintln!("libcnb-counter: {other}"),
        }
    }
}

/// One line of output, prefixed so that tests find it among the platform's.
fn say(line: &str) {
    println!("libcnb-counter: {line}");
}

fn describe_target(target: &Target) -> String {
    format!(
        "target os={} arch={} arch-variant={} distro={} {}",
        target.os,
        target.arch,
        target.arch_variant.as_deref().unwrap_or("(none)"),
        target.distro_name,
        target.distro_version
    )
}

/// A table on one line: `key = value, ...`.
fn describe_table(table: &toml::Table) -> String {
    let mut out = String::new();
    for (i, (key, value)) in table.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{key} = {value}");
    }
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

/// A file's text, or "" when it does not exist.
fn read_optional(path: &Path) -> Result<String, CounterError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(CounterError::Io(path.to_owned(), e)),
    }
}

fn append(path: &Path, text: &str) -> Result<(), CounterError> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| CounterError::Io(path.to_owned(), e))
}

/// An executable `#!/bin/sh` script.
fn write_script(path: &Path, body: &str) -> Result<(), CounterError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| CounterError::Io(path.to_owned(), e);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    fs::write(path, format!("#!/bin/sh\n{body}\n")).map_err(io)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io)
}

/// A `CycloneDX` document naming one component.
fn cyclonedx(name: &str, version: &str) -> Sbom {
    Sbom::from_bytes(
        SbomFormat::CycloneDxJson,
        format!(
            "{{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.4\",\"version\":1,\
             \"components\":[{{\"type\":\"application\",\"name\":\"{name}\",\
             \"version\":\"{version}\"}}]}}\n"
        ),
    )
}

buildpack_main!(CounterBuildpack);
