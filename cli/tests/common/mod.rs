//! Shared helpers for the CLI's integration tests: running `strata`, making the example run
//! image once, copying fixtures, and the third-party tools that check what strata wrote.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod builderimage;
pub mod libcnb;
pub mod registry;
pub mod runimage;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The examples directory.
pub fn examples() -> PathBuf {
    repo().join("examples")
}

/// `strata` with `args`, from `cwd`.
pub fn strata(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("XDG_CACHE_HOME", process_dir("cache"))
        .env("TMPDIR", scratch_tmpdir())
        .output()
        .unwrap()
}

/// Asserts that `out` exited with `code`, showing its output otherwise.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `$TMPDIR/strata-test-NAME-PID`: a directory this test process shares between its tests
/// (the run image made once, the default cache). Nothing removes it when the process ends, so
/// the first call removes those of test processes that have ended: `cargo test` leaves at
/// most one run's worth behind.
pub fn process_dir(name: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix("strata-test-"))
            else {
                continue;
            };
            let ended = rest
                .rsplit_once('-')
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if ended && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    std::env::temp_dir().join(format!("strata-test-{name}-{}", std::process::id()))
}

/// The `TMPDIR` for the `strata` processes a test starts: their scratch directories go there,
/// so those of a build a test kills are swept with the rest (see [`process_dir`]).
pub fn scratch_tmpdir() -> PathBuf {
    let dir = process_dir("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example busybox run image, made once per test binary: `oci:<dir>:busybox`.
pub fn run_image() -> String {
    format!("oci:{}:busybox", run_image_dir().display())
}

/// The layout of [`run_image`].
pub fn run_image_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = process_dir("run-image");
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(examples().join("run-image/make.sh"))
            .arg(&dir)
            .arg("busybox")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make.sh failed (needs busybox-static and umoci): {}",
            stderr(&out)
        );
        dir
    })
    .clone()
}

/// Runs a third-party tool and returns its stdout; fails the test with a hint if it is missing.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); install it: apt-get install {program}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies a directory tree (files, dirs, symlinks, modes).
pub fn copy_tree(src: &Path, dst: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file under `dir` with its content hash, for proving a directory did not change.
pub fn snapshot_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
                out.push((path.display().to_string(), Vec::new()));
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Builds `app` with the example builder into `oci:<out>:<tag>`; returns the manifest digest.
pub fn build_example(cwd: &Path, app: &Path, out: &Path, tag: &str, extra: &[&str]) -> String {
    let run_image = run_image();
    let output = format!("oci:{}:{tag}", out.display());
    let builder = examples().join("builder.toml");
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--builder",
        builder.to_str().unwrap(),
        "--run-image",
        &run_image,
        "--output",
        &output,
        "--json",
    ];
    args.extend_from_slice(extra);
    let result = strata(cwd, &args);
    assert_exit(&result, 0);
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

/// Runs an unpacked bundle as `docker run [--entrypoint ENTRYPOINT] IMAGE ARGS…` would: the
/// process's argv is the image's `Entrypoint` (or `entrypoint`) followed by `args`, or by the
/// image's `Cmd` when there are none (the image config comes from umoci's `config.json`,
/// whose args are `Entrypoint` + `Cmd`; strata images with a launcher have no `Cmd`).
pub fn docker_run(bundle: &Path, entrypoint: Option<&str>, args: &[&str]) -> Output {
    let image_args = image_args(bundle);
    let mut process_args: Vec<&str> = match entrypoint {
        Some(entrypoint) => vec![entrypoint],
        None => image_args.iter().map(String::as_str).collect(),
    };
    process_args.extend_from_slice(args);
    runc(bundle, Some(&process_args))
}

/// The process args umoci gave the bundle (the image's `Entrypoint` + `Cmd`), as unpacked.
fn image_args(bundle: &Path) -> Vec<String> {
    let saved = bundle.join("config.json.image");
    if !saved.exists() {
        std::fs::copy(bundle.join("config.json"), &saved).unwrap();
    }
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(saved).unwrap()).unwrap();
    serde_json::from_value(spec["process"]["args"].clone()).unwrap_or_default()
}

/// Runs an unpacked bundle with runc (without a terminal), optionally with other process
/// arguments, and removes the container; returns what it printed.
pub fn runc(bundle: &Path, args: Option<&[&str]>) -> Output {
    // Unique among the containers this test binary's threads run at once.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let image_args = image_args(bundle);
    let config_path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = match args {
        Some(args) => serde_json::json!(args),
        None => serde_json::json!(image_args),
    };
    std::fs::write(&config_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let id = format!(
        "strata-test-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let run = Command::new("runc")
        .args(["run", "--bundle", bundle.to_str().unwrap(), &id])
        .output()
        .unwrap();
    let _ = Command::new("runc")
        .args(["delete", "--force", &id])
        .output();
    assert!(run.status.success(), "runc failed: {}", stderr(&run));
    run
}

/// A workspace `ws` in `examples` of two copies of the hello app, `api` and `web`, each with a
/// file of its own, pushed to `docker://HOST/team/<service>` on the plain-HTTP registry `host`
/// (by strata.toml's `insecure-registries`).
pub fn team_workspace(examples: &ExampleCopy, host: &str) -> PathBuf {
    hello_workspace(examples, host, "team", &["api", "web"])
}

/// A workspace `ws` in `examples` of one copy of the hello app per name in `services`, each
/// with a file of its own, pushed to `docker://HOST/NAMESPACE/<service>` on the plain-HTTP
/// registry `host`.
pub fn hello_workspace(
    examples: &ExampleCopy,
    host: &str,
    namespace: &str,
    services: &[&str],
) -> PathBuf {
    let ws = examples.path("ws");
    for &name in services {
        let dir = ws.join("services").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        copy_tree(&examples.path("examples/apps/hello"), &dir);
        std::fs::write(dir.join(format!("{name}.txt")), name).unwrap();
    }
    std::fs::write(
        ws.join("strata.toml"),
        format!(
            "[workspace]\nbuilder = \"../examples/builder.toml\"\noutput = \"docker://{host}/{namespace}\"\n\
             insecure-registries = [\"{host}\"]\nservices = [\"services/*\"]\n"
        ),
    )
    .unwrap();
    ws
}

/// A copy of the examples in a temp dir, with the example run image where the example builder
/// names it, and every file dated in the past so that no stat cache entry is racy.
pub struct ExampleCopy {
    pub tmp: tempfile::TempDir,
}

impl ExampleCopy {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let examples_copy = tmp.path().join("examples");
        copy_tree(&examples(), &examples_copy);
        let layout = examples_copy.join("run-image/layout");
        std::fs::create_dir_all(&layout).unwrap();
        copy_tree(&run_image_dir(), &layout);
        date_in_the_past(&examples_copy);
        Self { tmp }
    }

    /// A path inside the copy's temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
}

/// Dates every file under `dir` 2020-01-01, so that no stat cache entry is racy.
pub fn date_in_the_past(dir: &Path) {
    let status = Command::new("find")
        .arg(dir)
        .args([
            "-exec",
            "touch",
            "-h",
            "-d",
            "2020-01-01T00:00:00Z",
            "{}",
            "+",
        ])
        .status();
    assert!(status.unwrap().success());
}

/// A declared buildpack `id` (version 1) in `dir` that passes detection for any app and
/// builds one launch layer `layer`, reading the app files `inputs` match, with the shell
/// script `script` (the layer directory is `$1`).
pub fn one_layer_buildpack(
    dir: &Path,
    id: &str,
    layer: &str,
    inputs: &[&str],
    script: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("layers")).unwrap();
    let inputs: Vec<String> = inputs.iter().map(|i| format!("\"{i}\"")).collect();
    std::fs::write(
        dir.join("buildpack.toml"),
        format!(
            "api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"1\"\n\
             [metadata.strata.detect]\nfiles = [\"*\"]\n\
             [[metadata.strata.layers]]\nname = \"{layer}\"\ninputs = [{}]\n\
             run = \"layers/{layer}.sh\"\nlaunch = true\n",
            inputs.join(", ")
        ),
    )
    .unwrap();
    let path = dir.join("layers").join(format!("{layer}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir.to_owned()
}

/// `tag -> manifest digest` of every `index.json` entry of the layout at `layout`, in order.
pub fn tags(layout: &Path) -> Vec<(String, String)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `service -> digest` of a `strata build --json` report, in report order.
pub fn service_digests(report: &serde_json::Value) -> Vec<(String, String)> {
    report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
