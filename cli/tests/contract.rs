//! The CNB build contract between buildpacks: Buildpack Plans after `build.toml` `[[unmet]]`,
//! layers without types, the default process, execution environments, detect errors of a
//! passing build, and image extensions (refused). Each with real shell buildpacks, and the
//! image read with skopeo and umoci.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// A component buildpack `test/<name>` (version 1) in `root/<name>`: `extra` is appended to
/// its `buildpack.toml` (`[buildpack]` is its last table, so `extra` may add keys to it).
fn buildpack(
    root: &Path,
    name: &str,
    api: &str,
    extra: &str,
    detect: &str,
    build: &str,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        format!("api = \"{api}\"\n\n[buildpack]\nid = \"test/{name}\"\nversion = \"1\"\n{extra}"),
    )
    .unwrap();
    for (script, body) in [("detect", detect), ("build", build)] {
        let path = dir.join("bin").join(script);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// An app with one file.
fn app(root: &Path) -> PathBuf {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    app
}

/// `strata build APP --buildpack BP... --output oci:<root>/out:app EXTRA...` from `root`.
fn build(root: &Path, app: &Path, buildpacks: &[&Path], extra: &[&str]) -> Output {
    let output = format!("oci:{}:app", root.join("out").display());
    let mut args = vec!["build", app.to_str().unwrap(), "--output", &output];
    for bp in buildpacks {
        args.extend(["--buildpack", bp.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    strata(root, &args)
}

/// The image's rootfs, unpacked by umoci into `<root>/bundle-<n>`.
fn unpack(root: &Path, n: usize) -> PathBuf {
    let bundle = root.join(format!("bundle-{n}"));
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", root.join("out").display()),
            bundle.to_str().unwrap(),
        ],
    );
    bundle.join("rootfs")
}

/// The image's config, as skopeo reads it.
fn config(root: &Path) -> serde_json::Value {
    let image = format!("oci:{}:app", root.join("out").display());
    serde_json::from_str(&tool("skopeo", &["inspect", "--config", &image])).unwrap()
}

/// A label of the image's config, parsed as JSON.
fn label(config: &serde_json::Value, name: &str) -> serde_json::Value {
    serde_json::from_str(config["config"]["Labels"][name].as_str().unwrap()).unwrap()
}

/// The process types in `io.buildpacks.build.metadata`, sorted.
fn process_types(config: &serde_json::Value) -> Vec<String> {
    let meta = label(config, "io.buildpacks.build.metadata");
    let mut types: Vec<String> = meta["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    types
}

/// Builds a `launch.toml` from `(type, command, extra TOML lines)`.
fn launch_toml(processes: &[(&str, &str, &str)]) -> String {
    let mut text = String::new();
    for (ty, command, extra) in processes {
        let _ = writeln!(
            text,
            "[[processes]]\ntype = \"{ty}\"\ncommand = [\"{command}\"]\n{extra}"
        );
    }
    text
}

/// A build script that writes `launch.toml`.
fn writes_launch_toml(text: &str) -> String {
    format!("cat > \"$1/launch.toml\" <<'EOF'\n{text}EOF")
}

#[test]
fn a_met_plan_entry_leaves_the_next_providers_plan_and_an_unmet_one_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Both provide node and yarn; the second requires them. The first meets node only.
    let first = buildpack(
        root,
        "first",
        "0.10",
        "",
        "printf '[[provides]]\\nname = \"node\"\\n[[provides]]\\nname = \"yarn\"\\n' > \"$2\"",
        "printf '[[unmet]]\\nname = \"yarn\"\\n' > \"$1/build.toml\"",
    );
    let second = buildpack(
        root,
        "second",
        "0.10",
        "",
        "printf '[[provides]]\\nname = \"node\"\\n[[provides]]\\nname = \"yarn\"\\n\
         [[requires]]\\nname = \"node\"\\n[requires.metadata]\\nversion = \"20\"\\n\
         [[requires]]\\nname = \"yarn\"\\n[requires.metadata]\\nversion = \"4\"\\n' > \"$2\"",
        "mkdir -p \"$1/plan\" && cp \"$3\" \"$1/plan/plan.toml\" && \
         printf '[types]\\nlaunch = true\\n' > \"$1/plan.toml\"",
    );
    let app = app(root);
    let out = build(root, &app, &[&first, &second], &[]);
    assert_exit(&out, 0);
    let rootfs = unpack(root, 0);
    let plan: toml::Table = toml::from_str(
        &std::fs::read_to_string(rootfs.join("layers/test_second/plan/plan.toml")).unwrap(),
    )
    .unwrap();
    let entries = plan["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["yarn"], "node was met by test/first: {plan}");
    assert_eq!(entries[0]["metadata"]["version"].as_str(), Some("4"));
}

#[test]
fn a_layer_without_types_is_not_seen_by_the_next_buildpack_nor_in_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let first = buildpack(
        root,
        "first",
        "0.10",
        "",
        "exit 0",
        "mkdir -p \"$1/scratch\" \"$1/kept\" && echo temp > \"$1/scratch/file\" && \
         echo kept > \"$1/kept/file\" && \
         printf '[types]\\nlaunch = false\\n[metadata]\\nnote = \"tmp\"\\n' > \"$1/scratch.toml\" && \
         printf '[types]\\nlaunch = true\\nbuild = true\\n' > \"$1/kept.toml\"",
    );
    let second = buildpack(
        root,
        "second",
        "0.10",
        "",
        "exit 0",
        "mkdir -p \"$1/seen\" && ls -A /layers/test_first > \"$1/seen/list\" && \
         printf '[types]\\nlaunch = true\\n' > \"$1/seen.toml\"",
    );
    let app = app(root);
    let out = build(root, &app, &[&first, &second], &[]);
    assert_exit(&out, 0);
    let rootfs = unpack(root, 0);
    let seen = std::fs::read_to_string(rootfs.join("layers/test_second/seen/list")).unwrap();
    assert_eq!(seen.split_whitespace().collect::<Vec<_>>(), ["kept"]);
    assert!(rootfs.join("layers/test_first/kept/file").is_file());
    assert!(!rootfs.join("layers/test_first/scratch").exists());
    assert!(!rootfs.join("layers/test_first/scratch.ignore").exists());
    let lifecycle = label(&config(root), "io.buildpacks.lifecycle.metadata");
    let layers = &lifecycle["buildpacks"][0]["layers"];
    assert!(layers.get("kept").is_some(), "{lifecycle}");
    assert!(layers.get("scratch").is_none(), "{lifecycle}");
}

#[test]
fn web_is_the_default_only_when_marked_and_a_plain_redefinition_unsets_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = app(root);

    // `web` without `default = true`: no default process, so the bare launcher.
    let plain = buildpack(
        root,
        "plain",
        "0.10",
        "",
        "exit 0",
        &writes_launch_toml(&launch_toml(&[("web", "/bin/web", "")])),
    );
    assert_exit(&build(root, &app, &[&plain], &[]), 0);
    let cfg = config(root);
    assert_eq!(process_types(&cfg), ["web"]);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/lifecycle/launcher"]),
        "{cfg}"
    );
    let meta = label(&cfg, "io.buildpacks.build.metadata");
    assert!(
        meta.get("buildpack-default-process-type").is_none(),
        "{meta}"
    );

    // A default `web`, redefined later without `default`: no default. Redefining another
    // type keeps the default.
    let marked = buildpack(
        root,
        "marked",
        "0.10",
        "",
        "exit 0",
        &writes_launch_toml(&launch_toml(&[
            ("web", "/bin/web", "default = true"),
            ("worker", "/bin/worker", ""),
        ])),
    );
    let other = buildpack(
        root,
        "other",
        "0.10",
        "",
        "exit 0",
        &writes_launch_toml(&launch_toml(&[("worker", "/bin/other-worker", "")])),
    );
    assert_exit(&build(root, &app, &[&marked, &other], &[]), 0);
    let cfg = config(root);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/process/web"])
    );
    let redefine = buildpack(
        root,
        "redefine",
        "0.10",
        "",
        "exit 0",
        &writes_launch_toml(&launch_toml(&[("web", "/bin/other-web", "")])),
    );
    assert_exit(&build(root, &app, &[&marked, &redefine], &[]), 0);
    let cfg = config(root);
    assert_eq!(process_types(&cfg), ["web", "worker"]);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/lifecycle/launcher"]),
        "{cfg}"
    );
    let meta = label(&cfg, "io.buildpacks.build.metadata");
    assert!(
        meta.get("buildpack-default-process-type").is_none(),
        "{meta}"
    );
    let web = &meta["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "web")
        .unwrap()["command"];
    assert_eq!(*web, serde_json::json!(["/bin/other-web"]));
}

/// `test/main`, whose detect and build record the exec env they saw and whose processes are
/// for one environment each, and `test/testing`, for test builds only.
fn exec_env_buildpacks(root: &Path) -> (PathBuf, PathBuf) {
    // Records the exec env detect saw (in its plan) and build saw; its processes are for one
    // environment each.
    let main = buildpack(
        root,
        "main",
        "0.12",
        "",
        "printf '[[provides]]\\nname = \"seen-%s\"\\n[[requires]]\\nname = \"seen-%s\"\\n' \
         \"$CNB_EXEC_ENV\" \"$CNB_EXEC_ENV\" > \"$2\"",
        &format!(
            "mkdir -p \"$1/env\" && echo \"$CNB_EXEC_ENV\" > \"$1/env/build\" && \
             cp \"$3\" \"$1/env/plan.toml\" && \
             printf '[types]\\nlaunch = true\\n' > \"$1/env.toml\"\n{}",
            writes_launch_toml(&launch_toml(&[
                (
                    "web",
                    "/bin/web",
                    "default = true\nexec-env = [\"production\"]"
                ),
                (
                    "tests",
                    "/bin/tests",
                    "exec-env = [\"test\", \"development\"]"
                ),
                ("shell", "/bin/sh", ""),
            ]))
        ),
    );
    // Only for test builds.
    let testing = buildpack(
        root,
        "testing",
        "0.12",
        "exec-env = [\"test\"]\n",
        "exit 0",
        "mkdir -p \"$1/tools\" && echo tools > \"$1/tools/file\" && \
         printf '[types]\\nlaunch = true\\n' > \"$1/tools.toml\"",
    );
    (main, testing)
}

#[test]
fn the_exec_env_selects_buildpacks_and_processes_and_reaches_detect_and_build() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = app(root);
    let (main, testing) = exec_env_buildpacks(root);

    let group = |cfg: &serde_json::Value| -> Vec<String> {
        label(cfg, "io.buildpacks.build.metadata")["buildpacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };

    assert_exit(&build(root, &app, &[&main, &testing], &[]), 0);
    let cfg = config(root);
    assert_eq!(group(&cfg), ["test/main"]);
    assert_eq!(process_types(&cfg), ["shell", "web"]);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/process/web"])
    );
    assert_eq!(
        cfg["config"]["Labels"]["io.buildpacks.exec-env"],
        "production"
    );
    let rootfs = unpack(root, 0);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("layers/test_main/env/build")).unwrap(),
        "production\n"
    );
    let plan = std::fs::read_to_string(rootfs.join("layers/test_main/env/plan.toml")).unwrap();
    assert!(plan.contains("seen-production"), "{plan}");

    let out = build(root, &app, &[&main, &testing], &["--exec-env", "test"]);
    assert_exit(&out, 0);
    let cfg = config(root);
    assert_eq!(group(&cfg), ["test/main", "test/testing"]);
    assert_eq!(process_types(&cfg), ["shell", "tests"]);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/cnb/lifecycle/launcher"]),
        "web is not for test: {cfg}"
    );
    assert_eq!(cfg["config"]["Labels"]["io.buildpacks.exec-env"], "test");
    assert_eq!(
        label(&cfg, "io.buildpacks.lifecycle.metadata")["exec-env"],
        "test"
    );
    let rootfs = unpack(root, 1);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("layers/test_main/env/build")).unwrap(),
        "test\n",
        "the task ran again for test, not taken from the production build's cache"
    );
    let plan = std::fs::read_to_string(rootfs.join("layers/test_main/env/plan.toml")).unwrap();
    assert!(plan.contains("seen-test"), "detect saw test: {plan}");
    assert!(rootfs.join("layers/test_testing/tools/file").is_file());

    let bad = build(root, &app, &[&main], &["--exec-env", "a/b"]);
    assert_exit(&bad, 2);
    assert!(stderr(&bad).contains("--exec-env"), "{}", stderr(&bad));
}

#[test]
fn the_exec_env_is_part_of_the_task_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = app(root);
    let (main, testing) = exec_env_buildpacks(root);
    let keys = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["plan", app.to_str().unwrap(), "--format", "json"];
        for bp in [&main, &testing] {
            args.extend(["--buildpack", bp.to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        let out = strata(root, &args);
        assert_exit(&out, 0);
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        plan["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["buildpack"] == "test/main@1")
            .map(|t| t["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let (production, test) = (keys(&[]), keys(&["--exec-env", "test"]));
    assert_eq!(production.len(), 1);
    assert_ne!(production, test);
}

/// A `builder.toml` in `root` with the buildpacks `uris` (relative to `root`) and `rest`.
fn builder(root: &Path, uris: &[&str], rest: &str) -> PathBuf {
    let mut text = String::new();
    for uri in uris {
        let _ = writeln!(text, "[[buildpacks]]\nuri = \"{uri}\"\n");
    }
    text.push_str(rest);
    let path = root.join("builder.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_detect_error_in_a_passing_build_is_reported_with_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = app(root);
    buildpack(root, "good", "0.10", "", "exit 0", "exit 0");
    buildpack(
        root,
        "broken",
        "0.10",
        "",
        "echo 'broken: cannot read the lock file' >&2; exit 3",
        "exit 0",
    );
    let builder = builder(
        root,
        &["good", "broken"],
        "[[order]]\n[[order.group]]\nid = \"test/good\"\n\
         [[order.group]]\nid = \"test/broken\"\noptional = true\n",
    );
    let builder = builder.to_str().unwrap();
    let plan = strata(root, &["plan", app.to_str().unwrap(), "--builder", builder]);
    assert_exit(&plan, 0);
    let err = stderr(&plan);
    assert!(err.contains("test/broken@1"), "names the buildpack: {err}");
    assert!(err.contains("exit status 3"), "says how it failed: {err}");
    assert!(
        err.contains("broken: cannot read the lock file"),
        "shows its output: {err}"
    );
    let json = strata(
        root,
        &[
            "plan",
            app.to_str().unwrap(),
            "--builder",
            builder,
            "--format",
            "json",
        ],
    );
    assert_exit(&json, 0);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let errors = &json["services"][0]["detect_errors"];
    assert_eq!(errors[0]["buildpack"], "test/broken@1", "{json}");
    assert_eq!(errors[0]["message"], "exit status 3", "{json}");
    assert_eq!(
        json["services"][0]["group"],
        serde_json::json!(["test/good@1"])
    );
    let output = format!("oci:{}:app", root.join("out").display());
    let built = strata(
        root,
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder,
            "--output",
            &output,
            "--json",
        ],
    );
    assert_exit(&built, 0);
    // Even with the report on stdout, the warning is on stderr.
    let err = stderr(&built);
    assert!(err.contains("test/broken@1"), "{err}");
    assert!(err.contains("broken: cannot read the lock file"), "{err}");
}

/// Whether `err` shows line `line` of a file named `file`.
fn shows_line(err: &str, file: &str, line: usize) -> bool {
    err.contains(file) && (err.contains(&format!("{line} │")) || err.contains(&format!(":{line}:")))
}

#[test]
fn image_extensions_are_refused_naming_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = app(root);
    buildpack(root, "good", "0.10", "", "exit 0", "exit 0");
    let order = "[[order]]\n[[order.group]]\nid = \"test/good\"\n";
    let plan = |builder: &Path| {
        strata(
            root,
            &[
                "plan",
                app.to_str().unwrap(),
                "--builder",
                builder.to_str().unwrap(),
            ],
        )
    };

    for (table, rest) in [
        (
            "[[extensions]]",
            "[[extensions]]\nid = \"test/ext\"\nuri = \"ext\"\n",
        ),
        (
            "[[order-extensions]]",
            "[[order-extensions]]\n[[order-extensions.group]]\nid = \"test/ext\"\n",
        ),
    ] {
        // The table comes after the order: line 7.
        let path = builder(root, &["good"], &format!("{order}\n{rest}"));
        let out = plan(&path);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("image extensions are not supported"), "{err}");
        assert!(err.contains(table), "names the table: {err}");
        assert!(shows_line(&err, "builder.toml", 7), "{err}");
    }

    // A buildpack descriptor with an [extension] table.
    let ext = root.join("ext");
    std::fs::create_dir_all(&ext).unwrap();
    std::fs::write(
        ext.join("buildpack.toml"),
        "api = \"0.10\"\n\n[extension]\nid = \"test/ext\"\nversion = \"1\"\n",
    )
    .unwrap();
    let out = plan(&builder(root, &["good", "ext"], order));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("image extension"), "{err}");
    assert!(shows_line(&err, "buildpack.toml", 3), "{err}");

    // A directory with an extension.toml.
    std::fs::remove_file(ext.join("buildpack.toml")).unwrap();
    std::fs::write(
        ext.join("extension.toml"),
        "api = \"0.10\"\n[extension]\nid = \"test/ext\"\nversion = \"1\"\n",
    )
    .unwrap();
    let out = plan(&builder(root, &["good", "ext"], order));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("image extension"), "{err}");
    assert!(shows_line(&err, "extension.toml", 2), "{err}");

    // project.toml naming one.
    std::fs::write(
        app.join("project.toml"),
        "[_]\nschema-version = \"0.2\"\n\n[[io.buildpacks.group]]\nid = \"test/good\"\n\n\
         [[io.buildpacks.extensions]]\nid = \"test/ext\"\n",
    )
    .unwrap();
    let out = plan(&builder(root, &["good"], order));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("image extensions are not supported"), "{err}");
    assert!(shows_line(&err, "project.toml", 7), "{err}");
}
