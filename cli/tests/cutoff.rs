//! Early cutoff through `strata build` and `strata plan`: a task whose needed layers were
//! rebuilt to the same bytes stays cached, and so does an image whose every layer came out
//! the same; a real change still rebuilds everything after it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `checks/decl`: `runtime` (reads `runtime.version` with `$(cat …)`, so blank lines at its
/// end change nothing it writes), `tools` (reads `tools.txt`) and `deps` (reads `deps.lock`,
/// needs both).
fn declared_buildpack(root: &Path) -> PathBuf {
    let dir = root.join("decl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"checks/decl\"\nversion = \"1\"\n\
         [metadata.strata.detect]\nfiles = [\"*\"]\n\
         [[metadata.strata.layers]]\nname = \"runtime\"\ninputs = [\"runtime.version\"]\n\
         run = \"layers/runtime.sh\"\nlaunch = true\nbuild = true\n\
         [[metadata.strata.layers]]\nname = \"tools\"\ninputs = [\"tools.txt\"]\n\
         run = \"layers/tools.sh\"\nbuild = true\n\
         [[metadata.strata.layers]]\nname = \"deps\"\ninputs = [\"deps.lock\"]\n\
         needs = [\"runtime\", \"tools\"]\nrun = \"layers/deps.sh\"\nlaunch = true\n",
    )
    .unwrap();
    script(
        &dir.join("layers/runtime.sh"),
        "v=$(cat runtime.version)\necho \"runtime script ran\"\nprintf '%s' \"$v\" > \"$1/version\"",
    );
    script(&dir.join("layers/tools.sh"), "cat tools.txt > \"$1/tools\"");
    script(
        &dir.join("layers/deps.sh"),
        "echo \"deps script ran\"\ncat deps.lock > \"$1/deps\"",
    );
    dir
}

fn blobs(cache: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in walk(cache) {
        if entry.parent().is_some_and(|p| p.ends_with("blobs/sha256")) {
            out.insert(entry.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The report's task `id`.
fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {report}"))
}

/// The diffID of each layer of the report's image, by what created it.
fn layers(report: &Value) -> Vec<(String, String)> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["created_by"].as_str().unwrap_or_default().to_owned(),
                l["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

struct App {
    tmp: tempfile::TempDir,
    bp: PathBuf,
}

impl App {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let bp = declared_buildpack(tmp.path());
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("runtime.version"), "1.0\n").unwrap();
        std::fs::write(app.join("deps.lock"), "left-pad 1\n").unwrap();
        std::fs::write(app.join("tools.txt"), "make\n").unwrap();
        Self { tmp, bp }
    }

    fn args<'a>(&'a self, command: &'a str, extra: &[&'a str]) -> Vec<String> {
        let root = self.tmp.path();
        let mut args: Vec<String> = vec![
            command.into(),
            root.join("app").display().to_string(),
            "--buildpack".into(),
            self.bp.display().to_string(),
            "--cache-dir".into(),
            root.join("cache").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    fn run(&self, command: &str, extra: &[&str]) -> std::process::Output {
        let args = self.args(command, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        strata(self.tmp.path(), &args)
    }

    /// `strata build --json`: its report.
    fn build(&self) -> Value {
        let out = format!("oci:{}:app", self.tmp.path().join("out").display());
        let result = self.run("build", &["--output", &out, "--json"]);
        assert_exit(&result, 0);
        serde_json::from_slice(&result.stdout).unwrap()
    }

    /// `strata build`, as people see it: what it printed.
    fn build_text(&self) -> String {
        let out = format!("oci:{}:app", self.tmp.path().join("out").display());
        let result = self.run("build", &["--output", &out]);
        assert_exit(&result, 0);
        stderr(&result)
    }

    fn plan(&self, format: &str) -> String {
        let result = self.run("plan", &["--format", format]);
        assert_exit(&result, 0);
        String::from_utf8(result.stdout).unwrap()
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.tmp.path().join("app").join(file), text).unwrap();
    }
}

#[test]
fn a_layer_whose_needed_layer_came_out_the_same_is_a_cut_off_hit() {
    let app = App::new();
    let first = app.build();
    assert_eq!(task(&first, "checks/decl:deps")["status"], "ran");

    // Blank lines at the end: `runtime` reads them, and writes the same bytes.
    app.write("runtime.version", "1.0\n\n\n");
    let plan: Value = serde_json::from_str(&app.plan("json")).unwrap();
    let planned = |id: &str| {
        plan["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(planned("checks/decl:runtime")["status"], "will-run");
    let deps = planned("checks/decl:deps");
    assert_eq!(deps["status"], "may-run", "{deps}");
    assert_eq!(deps["cut_off"], true, "{deps}");
    assert_eq!(
        deps["reason"],
        serde_json::json!({"reason": "needs-rebuilt", "detail": "checks/decl:runtime"})
    );
    let table = app.plan("table");
    assert!(
        table.contains(
            "may run: needs rebuilt: checks/decl:runtime (cut off if checks/decl:runtime is unchanged)"
        ),
        "{table}"
    );

    let before = blobs(&app.tmp.path().join("cache"));
    let second = app.build();
    let runtime = task(&second, "checks/decl:runtime");
    assert_eq!(runtime["status"], "ran", "{second}");
    let deps = task(&second, "checks/decl:deps");
    assert_eq!(deps["status"], "cached", "{second}");
    assert_eq!(deps["cut_off"], true, "{second}");
    assert_eq!(deps["reason"], "needs rebuilt: checks/decl:runtime");
    // The runtime's and the deps' layers are the ones of the first build; only the app layer
    // (`runtime.version` is in the app) and the SBOM layer that lists its files are new, and
    // no layer blob of the buildpack is new in the store.
    let (old, new) = (layers(&first), layers(&second));
    assert_eq!(old.len(), new.len());
    let changed: Vec<&String> = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(_, b)| &b.0)
        .collect();
    assert_eq!(
        changed,
        ["Software Bill-of-Materials", "Application Layer"],
        "{old:?}\n{new:?}"
    );
    let after = blobs(&app.tmp.path().join("cache"));
    let added: Vec<&String> = after.difference(&before).collect();
    let layer_blobs: BTreeSet<String> = new
        .iter()
        .filter(|(by, _)| by.contains("checks/decl"))
        .map(|(_, digest)| digest.trim_start_matches("sha256:").to_owned())
        .collect();
    assert!(
        added.iter().all(|blob| !layer_blobs.contains(*blob)),
        "{added:?}"
    );

    // A real change: both run, and `deps` says why.
    app.write("runtime.version", "2.0\n");
    let third = app.build();
    assert_eq!(task(&third, "checks/decl:runtime")["status"], "ran");
    let deps = task(&third, "checks/decl:deps");
    assert_eq!(deps["status"], "ran", "{third}");
    assert_eq!(deps["cut_off"], false);
    assert_eq!(deps["reason"], "needs rebuilt: checks/decl:runtime");
    assert_ne!(layers(&second), layers(&third));

    // What people see of a cut-off hit: that it was cut off, and why it was to run.
    app.write("runtime.version", "2.0\n\n");
    let text = app.build_text();
    assert!(text.contains("runtime script ran"), "{text}");
    assert!(!text.contains("deps script ran"), "{text}");
    assert!(
        text.contains("checks/decl:deps: cached (cut off): needs rebuilt: checks/decl:runtime"),
        "{text}"
    );

    // Both needs run again and only the second comes out changed: the reason names it, not
    // the first.
    app.write("runtime.version", "2.0\n\n\n\n");
    app.write("tools.txt", "make\ncc\n");
    let fourth = app.build();
    assert_eq!(task(&fourth, "checks/decl:runtime")["status"], "ran");
    assert_eq!(task(&fourth, "checks/decl:tools")["status"], "ran");
    let deps = task(&fourth, "checks/decl:deps");
    assert_eq!(deps["status"], "ran", "{fourth}");
    assert_eq!(deps["reason"], "needs rebuilt: checks/decl:tools");
}

/// A workspace of `count` services over a builder of `t/rt` (a `runtime` layer every service
/// shares: it reads nothing of the app) and `t/svc` (each service's `deps`, reading its
/// `deps.txt`, needing the runtime).
fn runtime_workspace(root: &Path, count: usize) -> PathBuf {
    let ws = root.join("ws");
    let rt = ws.join("buildpacks/rt");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::write(
        rt.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/rt\"\nversion = \"1\"\n\
         [metadata.strata.detect]\nfiles = [\"*\"]\n\
         [[metadata.strata.layers]]\nname = \"runtime\"\nrun = \"layers/runtime.sh\"\n\
         launch = true\nbuild = true\n",
    )
    .unwrap();
    script(
        &rt.join("layers/runtime.sh"),
        "printf 'runtime 1' > \"$1/version\"",
    );
    let svc = ws.join("buildpacks/svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/svc\"\nversion = \"1\"\n\
         [metadata.strata.detect]\nfiles = [\"*\"]\n\
         [[metadata.strata.layers]]\nname = \"deps\"\ninputs = [\"deps.txt\"]\n\
         needs = [\"t/rt:runtime\"]\nrun = \"layers/deps.sh\"\nlaunch = true\n",
    )
    .unwrap();
    script(&svc.join("layers/deps.sh"), "cat deps.txt > \"$1/deps\"");
    std::fs::write(
        ws.join("builder.toml"),
        "[[buildpacks]]\nuri = \"buildpacks/rt\"\n[[buildpacks]]\nuri = \"buildpacks/svc\"\n\
         [[order]]\n[[order.group]]\nid = \"t/rt\"\nversion = \"1\"\n\
         [[order.group]]\nid = \"t/svc\"\nversion = \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("strata.toml"),
        "[workspace]\nbuilder = \"builder.toml\"\noutput = \"oci:out\"\nservices = [\"services/*\"]\n",
    )
    .unwrap();
    for i in 0..count {
        let dir = ws.join(format!("services/s{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("deps.txt"), format!("deps of s{i:02}\n")).unwrap();
    }
    ws
}

fn build_workspace(root: &Path, ws: &Path) -> Value {
    let cache = root.join("cache");
    let result = strata(
        root,
        &[
            "build",
            ws.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&result, 0);
    serde_json::from_slice(&result.stdout).unwrap()
}

fn ran(report: &Value) -> Vec<String> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "ran")
        .map(|t| format!("{} {}", t["id"], t["services"]))
        .collect()
}

#[test]
fn a_buildpack_change_that_leaves_a_shared_runtime_the_same_reruns_only_the_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = runtime_workspace(tmp.path(), 20);
    let first = build_workspace(tmp.path(), &ws);
    assert_eq!(first["services"].as_array().unwrap().len(), 20);
    let tagged = tags(&ws.join("out"));

    // A comment in the runtime's script: the buildpack changed, its layer did not.
    script(
        &ws.join("buildpacks/rt/layers/runtime.sh"),
        "# the same runtime, said differently\nprintf 'runtime 1' > \"$1/version\"",
    );
    let second = build_workspace(tmp.path(), &ws);
    let all: Vec<String> = (0..20).map(|i| format!("\"s{i:02}\"")).collect();
    assert_eq!(
        ran(&second),
        [format!("\"t/rt:runtime\" [{}]", all.join(","))],
        "the runtime reruns once, and nothing else"
    );
    for service in second["services"].as_array().unwrap() {
        assert_eq!(service["status"], "up-to-date", "{service}");
        assert_eq!(service["ran"], 1, "{service}");
    }
    let deps_cut_off = second["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"] == "t/svc:deps" && t["cut_off"] == true && t["status"] == "cached")
        .count();
    assert_eq!(deps_cut_off, 20);
    assert_eq!(tags(&ws.join("out")), tagged, "no new manifest");

    // And the next build of the same tree runs nothing.
    let third = build_workspace(tmp.path(), &ws);
    assert!(ran(&third).is_empty(), "{:?}", ran(&third));
    for service in third["services"].as_array().unwrap() {
        assert_eq!(service["status"], "up-to-date", "{service}");
    }

    // A change to the runtime's bytes rebuilds every service.
    script(
        &ws.join("buildpacks/rt/layers/runtime.sh"),
        "printf 'runtime 2' > \"$1/version\"",
    );
    let fourth = build_workspace(tmp.path(), &ws);
    for service in fourth["services"].as_array().unwrap() {
        assert_eq!(service["status"], "built", "{service}");
    }
    // The runtime, then each service's deps, app layer and image.
    assert_eq!(ran(&fourth).len(), 1 + 20 * 3, "{:?}", ran(&fourth));
}

#[test]
fn an_opaque_buildpack_after_a_layer_that_came_out_the_same_is_a_cut_off_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ws = runtime_workspace(root, 0);
    let rt = ws.join("buildpacks/rt");
    let tool = root.join("tool");
    std::fs::create_dir_all(&tool).unwrap();
    std::fs::write(
        tool.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/tool\"\nversion = \"1\"\n",
    )
    .unwrap();
    script(&tool.join("bin/detect"), "exit 0");
    script(
        &tool.join("bin/build"),
        "echo \"tool build ran\"\nmkdir -p \"$1/tool\"\necho tool > \"$1/tool/bin\"\n\
         printf '[types]\\nlaunch = true\\n' > \"$1/tool.toml\"",
    );
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "main").unwrap();
    let out = format!("oci:{}:app", root.join("out").display());
    let build = || {
        let result = strata(
            root,
            &[
                "build",
                app.to_str().unwrap(),
                "--buildpack",
                rt.to_str().unwrap(),
                "--buildpack",
                tool.to_str().unwrap(),
                "--cache-dir",
                root.join("cache").to_str().unwrap(),
                "--output",
                &out,
                "--json",
            ],
        );
        assert_exit(&result, 0);
        serde_json::from_slice::<Value>(&result.stdout).unwrap()
    };
    let first = build();
    assert_eq!(task(&first, "t/tool (bin/build)")["status"], "ran");
    let tagged = tags(&root.join("out"));

    script(
        &rt.join("layers/runtime.sh"),
        "# reworded\nprintf 'runtime 1' > \"$1/version\"",
    );
    let second = build();
    assert_eq!(ran(&second), ["\"t/rt:runtime\" [\"app\"]"], "{second}");
    let tool_task = task(&second, "t/tool (bin/build)");
    assert_eq!(tool_task["status"], "cached", "{second}");
    assert_eq!(tool_task["cut_off"], true);
    assert_eq!(tool_task["reason"], "needs rebuilt: t/rt:runtime");
    assert_eq!(second["services"][0]["status"], "up-to-date", "{second}");
    assert_eq!(tags(&root.join("out")), tagged, "no new manifest");

    script(
        &rt.join("layers/runtime.sh"),
        "printf 'runtime 2' > \"$1/version\"",
    );
    let third = build();
    let tool_task = task(&third, "t/tool (bin/build)");
    assert_eq!(tool_task["status"], "ran", "{third}");
    assert_eq!(tool_task["reason"], "needs rebuilt: t/rt:runtime");
    assert_eq!(third["services"][0]["status"], "built");
}
