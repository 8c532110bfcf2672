//! Images start through the CNB launcher: the image's config and layers as the lifecycle's
//! exporter writes them, and what runs when a container runtime starts the image (runc, with
//! the process args a runtime sets: `Entrypoint` then the user's args), from shell buildpacks
//! that declare launch env, exec.d programs, profile.d scripts and processes of Buildpack API
//! 0.10 (direct) and 0.8 (shell).

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::runimage::RunImageCopy;
use common::*;

/// Where Debian's bash-static puts its binary.
const STATIC_BASH: &str = "/bin/bash-static";

/// Writes `text` to `path` (making its parents), with `mode`.
fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A buildpack `test/<name>` of Buildpack API `api` in `root/<name>` whose `bin/build` is
/// `build` (`$1` is its layers directory).
fn buildpack(root: &Path, name: &str, api: &str, build: &str) -> PathBuf {
    let dir = root.join(name);
    write(
        &dir.join("buildpack.toml"),
        &format!("api = \"{api}\"\n\n[buildpack]\nid = \"test/{name}\"\nversion = \"1\"\n"),
        0o644,
    );
    write(&dir.join("bin/detect"), "#!/bin/sh\nexit 0\n", 0o755);
    write(
        &dir.join("bin/build"),
        &format!("#!/bin/sh\nset -e\n{build}\n"),
        0o755,
    );
    dir
}

/// `test/direct` (API 0.10): a launch layer `runtime` with `bin/greet` (prints
/// `GREETING:ROLE:FROM_EXECD:args`), `GREETING=hello` for every process, `ROLE=worker` for
/// `worker` only, and an exec.d program that sets `FROM_EXECD`; processes `web` (the default,
/// `greet` with default args `world`) and `worker` (`greet w`).
fn direct_buildpack(root: &Path) -> PathBuf {
    buildpack(
        root,
        "direct",
        "0.10",
        r#"l="$1/runtime"
mkdir -p "$l/bin" "$l/env.launch/worker" "$l/exec.d"
printf '#!/bin/sh\necho "$GREETING:$ROLE:$FROM_EXECD:$*"\n' > "$l/bin/greet"
printf '#!/bin/sh\necho '"'"'FROM_EXECD = "yes"'"'"' >&3\n' > "$l/exec.d/setter"
chmod +x "$l/bin/greet" "$l/exec.d/setter"
printf hello > "$l/env.launch/GREETING.override"
printf worker > "$l/env.launch/worker/ROLE.override"
printf '[types]\nlaunch = true\n' > "$1/runtime.toml"
cat > "$1/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["greet"]
args = ["world"]
default = true

[[processes]]
type = "worker"
command = ["greet", "w"]
EOF"#,
    )
}

/// `test/shell` (API 0.8): a launch layer with a profile.d script, and a shell process
/// `shell-web` that prints what profile.d and the app's `.profile` exported.
fn shell_buildpack(root: &Path) -> PathBuf {
    buildpack(
        root,
        "shell",
        "0.8",
        r#"l="$1/prof"
mkdir -p "$l/profile.d"
echo 'export FROM_PROFILE=prof' > "$l/profile.d/a.sh"
printf '[types]\nlaunch = true\n' > "$1/prof.toml"
cat > "$1/launch.toml" <<'EOF'
[[processes]]
type = "shell-web"
command = "echo $FROM_PROFILE:$FROM_DOT_PROFILE"
EOF"#,
    )
}

/// An app with a `.profile`.
fn app(root: &Path) -> PathBuf {
    let app = root.join("app");
    write(&app.join("main.txt"), "hello", 0o644);
    write(
        &app.join(".profile"),
        "export FROM_DOT_PROFILE=dot\n",
        0o644,
    );
    app
}

/// The example run image with Debian's static bash as `/bin/bash` (the launcher runs shell
/// processes with bash), its `User` set to `user` when given.
fn run_image(root: &Path, user: Option<&str>) -> String {
    assert!(
        Path::new(STATIC_BASH).is_file(),
        "{STATIC_BASH} not found: apt-get install bash-static"
    );
    let mut image = RunImageCopy::new(root, "run-image").layer("test: static bash", |rootfs| {
        std::fs::copy(STATIC_BASH, rootfs.join("bin/bash")).unwrap();
    });
    if let Some(user) = user {
        image = image.user(user);
    }
    image.reference()
}

/// `strata build APP --buildpack BP... --run-image RUN --output oci:<root>/<out>:app EXTRA...`.
fn build(root: &Path, out: &str, buildpacks: &[&Path], run: &str, extra: &[&str]) -> Output {
    let app = app(root);
    let output = format!("oci:{}:app", root.join(out).display());
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--run-image",
        run,
        "--output",
        &output,
    ];
    for bp in buildpacks {
        args.extend(["--buildpack", bp.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    let result = strata(root, &args);
    assert_exit(&result, 0);
    result
}

/// The image `oci:<root>/<out>:app`'s config, as skopeo reads it.
fn config(root: &Path, out: &str) -> serde_json::Value {
    let image = format!("oci:{}:app", root.join(out).display());
    serde_json::from_str(&tool("skopeo", &["inspect", "--config", &image])).unwrap()
}

/// A label of `config`, parsed as JSON.
fn label(config: &serde_json::Value, name: &str) -> serde_json::Value {
    serde_json::from_str(config["config"]["Labels"][name].as_str().unwrap()).unwrap()
}

/// The image `oci:<root>/<out>:app` unpacked by umoci; returns the bundle.
fn unpack(root: &Path, out: &str) -> PathBuf {
    let bundle = root.join(format!("bundle-{out}"));
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", root.join(out).display()),
            bundle.to_str().unwrap(),
        ],
    );
    bundle
}

/// What the container printed.
fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One image with both buildpacks on the run image with bash.
struct Built {
    tmp: tempfile::TempDir,
}

impl Built {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let direct = direct_buildpack(root);
        let shell = shell_buildpack(root);
        let run = run_image(root, None);
        build(root, "out", &[&direct, &shell], &run, &[]);
        Self { tmp }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }
}

#[test]
fn the_config_starts_the_launcher_with_the_platform_env_only() {
    let built = Built::new();
    let cfg = config(built.root(), "out");
    let c = &cfg["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/cnb/process/web"]));
    assert!(
        c["Cmd"].is_null() || c["Cmd"] == serde_json::json!([]),
        "{c}"
    );
    assert_eq!(c["WorkingDir"], "/workspace");
    assert_eq!(c["User"], "1000:1000", "the run image's");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for expected in [
        "CNB_LAYERS_DIR=/layers",
        "CNB_APP_DIR=/workspace",
        "CNB_PLATFORM_API=0.15",
        "CNB_DEPRECATION_MODE=quiet",
        "PATH=/cnb/process:/cnb/lifecycle:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ] {
        assert!(env.contains(&expected), "{expected} in {env:?}");
    }
    assert!(
        !env.iter().any(|e| e.starts_with("GREETING=")),
        "buildpack launch env is the launcher's to apply: {env:?}"
    );

    // The history and the labels: launcher, config and process types after the app layer.
    let history: Vec<&str> = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert_eq!(
        history[history.len() - 4..],
        [
            "Application Layer",
            "Buildpacks Application Launcher",
            "Buildpacks Launcher Config",
            "Buildpacks Process Types",
        ]
    );
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    let lifecycle = label(&cfg, "io.buildpacks.lifecycle.metadata");
    assert_eq!(lifecycle["launcher"]["sha"], diff_ids[diff_ids.len() - 3]);
    assert_eq!(lifecycle["config"]["sha"], diff_ids[diff_ids.len() - 2]);
    assert_eq!(
        lifecycle["process-types"]["sha"],
        diff_ids[diff_ids.len() - 1]
    );
    let build_meta = label(&cfg, "io.buildpacks.build.metadata");
    assert_eq!(
        build_meta["launcher"]["version"],
        strata_exporter::launcher::VERSION
    );
    assert!(
        build_meta["launcher"]["source"]["git"].is_object(),
        "{build_meta}"
    );
    let shell = build_meta["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "shell-web")
        .unwrap();
    assert_eq!(
        shell["direct"], false,
        "an API 0.8 process is a shell process"
    );
    assert_eq!(
        shell["command"],
        serde_json::json!(["echo $FROM_PROFILE:$FROM_DOT_PROFILE"])
    );
}

#[test]
fn the_layers_hold_the_launcher_its_links_its_config_and_its_sbom() {
    let built = Built::new();
    let rootfs = unpack(built.root(), "out").join("rootfs");
    let launcher = std::fs::symlink_metadata(rootfs.join("cnb/lifecycle/launcher")).unwrap();
    assert_eq!((launcher.uid(), launcher.gid()), (0, 0));
    assert_eq!(launcher.mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read(rootfs.join("cnb/lifecycle/launcher")).unwrap(),
        strata_exporter::launcher::BINARY
    );
    for ty in ["web", "worker", "shell-web"] {
        let link = rootfs.join("cnb/process").join(ty);
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "{ty}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../lifecycle/launcher")
        );
    }
    let dir = std::fs::metadata(rootfs.join("cnb/process")).unwrap();
    assert_eq!((dir.uid(), dir.gid()), (0, 0));
    let layer = std::fs::metadata(rootfs.join("layers/test_direct/runtime/bin/greet")).unwrap();
    assert_eq!(
        (layer.uid(), layer.gid()),
        (1000, 1000),
        "layer content stays the CNB user's"
    );

    // What the launcher reads: every process with all it needs, and each buildpack's API.
    let text = std::fs::read_to_string(rootfs.join("layers/config/metadata.toml")).unwrap();
    let meta: toml::Table = text.parse().unwrap();
    let processes = meta["processes"].as_array().unwrap();
    let web = processes
        .iter()
        .find(|p| p["type"].as_str() == Some("web"))
        .unwrap();
    assert_eq!(web["command"], toml::Value::from(vec!["greet"]));
    assert_eq!(web["args"], toml::Value::from(vec!["world"]));
    assert_eq!(web["direct"].as_bool(), Some(true));
    assert_eq!(web["default"].as_bool(), Some(true));
    assert_eq!(web["buildpack-id"].as_str(), Some("test/direct"));
    let shell = processes
        .iter()
        .find(|p| p["type"].as_str() == Some("shell-web"))
        .unwrap();
    assert_eq!(shell["direct"].as_bool(), Some(false));
    assert_eq!(shell["default"].as_bool(), Some(false));
    let apis: Vec<(&str, &str)> = meta["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap(), b["api"].as_str().unwrap()))
        .collect();
    assert_eq!(apis, [("test/direct", "0.10"), ("test/shell", "0.8")]);

    let sbom = rootfs.join("layers/sbom/launch/buildpacksio_lifecycle/launcher/sbom.cdx.json");
    let sbom: serde_json::Value = serde_json::from_slice(&std::fs::read(sbom).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(
        sbom["metadata"]["component"]["version"],
        strata_exporter::launcher::VERSION
    );
}

#[test]
fn the_launcher_layer_is_the_same_for_every_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let direct = direct_buildpack(root);
    let shell = shell_buildpack(root);
    let run = run_image(root, None);
    build(root, "one", &[&direct], &run, &[]);
    build(root, "two", &[&direct, &shell], &run, &[]);
    let sha = |out| {
        label(&config(root, out), "io.buildpacks.lifecycle.metadata")["launcher"]["sha"].clone()
    };
    assert!(sha("one").is_string());
    assert_eq!(sha("one"), sha("two"));
}

/// An image of `test/direct` on a run image with `User: 1002:1000`; returns its temp dir.
fn built_as_1002() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let direct = direct_buildpack(root);
    let run = run_image(root, Some("1002:1000"));
    build(root, "out", &[&direct], &run, &[]);
    tmp
}

#[test]
fn a_run_image_user_is_kept() {
    let tmp = built_as_1002();
    let root = tmp.path();
    assert_eq!(config(root, "out")["config"]["User"], "1002:1000");
    let bundle = unpack(root, "out");
    let greet =
        std::fs::metadata(bundle.join("rootfs/layers/test_direct/runtime/bin/greet")).unwrap();
    assert_eq!((greet.uid(), greet.gid()), (1000, 1000), "the CNB user's");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["user"]["uid"], 1002);
}

#[test]
fn the_process_runs_as_the_run_image_user() {
    let tmp = built_as_1002();
    let bundle = unpack(tmp.path(), "out");
    assert_eq!(
        said(&docker_run(
            &bundle,
            Some("/cnb/lifecycle/launcher"),
            &["--", "id", "-u"]
        )),
        "1002\n",
        "the process runs as the run image's user"
    );
}

#[test]
fn the_default_process_runs_with_its_layers_env_and_exec_d() {
    let built = Built::new();
    let bundle = unpack(built.root(), "out");
    assert_eq!(said(&docker_run(&bundle, None, &[])), "hello::yes:world\n");
}

#[test]
fn user_args_replace_the_default_args() {
    let built = Built::new();
    let bundle = unpack(built.root(), "out");
    assert_eq!(
        said(&docker_run(&bundle, None, &["there", "again"])),
        "hello::yes:there again\n"
    );
}

#[test]
fn another_process_runs_by_its_link_with_its_own_env() {
    let built = Built::new();
    let bundle = unpack(built.root(), "out");
    assert_eq!(
        said(&docker_run(&bundle, Some("/cnb/process/worker"), &[])),
        "hello:worker:yes:w\n"
    );
}

#[test]
fn a_user_command_after_double_dash_gets_the_buildpack_env() {
    let built = Built::new();
    let bundle = unpack(built.root(), "out");
    let out = docker_run(
        &bundle,
        Some("/cnb/lifecycle/launcher"),
        &[
            "--",
            "sh",
            "-c",
            "echo $GREETING:$FROM_EXECD:$CNB_LAYERS_DIR && greet x",
        ],
    );
    assert_eq!(said(&out), "hello:yes:\nhello::yes:x\n");
}

#[test]
fn an_api_0_8_shell_process_starts_with_profile_d_and_dot_profile_sourced() {
    let built = Built::new();
    let bundle = unpack(built.root(), "out");
    assert_eq!(
        said(&docker_run(&bundle, Some("/cnb/process/shell-web"), &[])),
        "prof:dot\n"
    );
}

/// An image of `test/direct` rebased onto a patched run image, and the same built on it
/// (`out` and `rebuilt`); returns the temp dir and the lifecycle label from before the rebase.
fn rebased() -> (tempfile::TempDir, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let direct = direct_buildpack(root);
    let old = run_image(root, None);
    build(root, "out", &[&direct], &old, &[]);
    let before = label(&config(root, "out"), "io.buildpacks.lifecycle.metadata");

    // A new run image: the old one with one more layer.
    let new = RunImageCopy::new(root, "run-image-new")
        .layer("test: static bash", |rootfs| {
            std::fs::copy(STATIC_BASH, rootfs.join("bin/bash")).unwrap();
        })
        .layer("test: patch", |rootfs| {
            std::fs::write(rootfs.join("etc/patch-level"), "patched\n").unwrap();
        })
        .reference();
    // Forced: the new run image has another name than the one recorded at build.
    let image = format!("oci:{}:app", root.join("out").display());
    let rebased = strata(root, &["rebase", "--force", "--run-image", &new, &image]);
    assert_exit(&rebased, 0);
    build(root, "rebuilt", &[&direct], &new, &[]);
    (tmp, before)
}

#[test]
fn rebase_keeps_the_launcher_layers_and_equals_a_rebuild() {
    let (tmp, before) = rebased();
    let root = tmp.path();
    let cfg = config(root, "out");
    let after = label(&cfg, "io.buildpacks.lifecycle.metadata");
    assert_eq!(after["launcher"], before["launcher"]);
    assert_eq!(after["process-types"], before["process-types"]);
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids[diff_ids.len() - 3], before["launcher"]["sha"]);
    assert_eq!(diff_ids[diff_ids.len() - 1], before["process-types"]["sha"]);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/process/web"])
    );

    assert_eq!(
        tags(&root.join("out")),
        tags(&root.join("rebuilt")),
        "rebase and rebuild give the same manifest"
    );
}

#[test]
fn a_rebased_image_runs_its_default_process() {
    let (tmp, _) = rebased();
    let bundle = unpack(tmp.path(), "out");
    assert_eq!(said(&docker_run(&bundle, None, &[])), "hello::yes:world\n");
}

#[test]
fn building_without_the_launcher_after_with_it_exports_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let direct = direct_buildpack(root);
    let run = run_image(root, None);
    build(root, "out", &[&direct], &run, &[]);
    build(root, "out", &[&direct], &run, &["--no-launcher"]);
    let cfg = config(root, "out");
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["greet"]));
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["world"]));
    let lifecycle = label(&cfg, "io.buildpacks.lifecycle.metadata");
    assert!(lifecycle.get("launcher").is_none(), "{lifecycle}");
    build(root, "out", &[&direct], &run, &[]);
    let cfg = config(root, "out");
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/process/web"])
    );
}

#[test]
fn a_workspace_can_build_without_the_launcher() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let direct = direct_buildpack(root);
    let run = run_image(root, None);
    app(root);
    std::fs::write(
        root.join("builder.toml"),
        format!(
            "[[buildpacks]]\nuri = {:?}\n\n[[order]]\n[[order.group]]\nid = \"test/direct\"\n",
            direct.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("strata.toml"),
        format!(
            "[workspace]\nbuilder = \"builder.toml\"\nrun-image = {run:?}\noutput = \"oci:out\"\n\
             launcher = false\n\n[[service]]\nname = \"app\"\npath = \"app\"\n"
        ),
    )
    .unwrap();
    assert_exit(&strata(root, &["build", root.to_str().unwrap()]), 0);
    let cfg = config(root, "out");
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["greet"]));
    let env = cfg["config"]["Env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e == "GREETING=hello"),
        "the launch env is baked in: {env:?}"
    );
}
