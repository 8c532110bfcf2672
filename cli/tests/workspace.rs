//! `strata build` of a workspace (`strata.toml`): services sharing a layer run it once and
//! store it once, and their images reference the same blob; a change to one service leaves
//! the others cached with the same digests; `--service` builds a subset; bad workspace input
//! is named, and with `--keep-going` a service that fails detection does not stop the rest.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// A workspace of copies of the example app, built with the example builder.
struct Workspace {
    examples: ExampleCopy,
}

impl Workspace {
    /// `services/<name>` for each name, each a copy of the hello app plus `<name>.txt`, and a
    /// `strata.toml` with `extra` appended.
    fn new(names: &[&str], extra: &str) -> Self {
        let examples = ExampleCopy::new();
        let ws = examples.path("ws");
        for name in names {
            let dir = ws.join("services").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            copy_tree(&examples.path("examples/apps/hello"), &dir);
            std::fs::write(dir.join(format!("{name}.txt")), name).unwrap();
        }
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(
            ws.join("strata.toml"),
            format!(
                "[workspace]\nbuilder = \"../examples/builder.toml\"\noutput = \"oci:out\"\n\
                 services = [\"services/*\"]\n{extra}"
            ),
        )
        .unwrap();
        date_in_the_past(&ws);
        Self { examples }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.examples.path("ws").join(rel)
    }

    /// `strata build ws --json` with `extra` flags.
    fn build(&self, extra: &[&str]) -> Output {
        let ws = self.path("");
        let cache = self.examples.path("cache");
        let mut args = vec![
            "build",
            ws.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        strata(self.examples.tmp.path(), &args)
    }

    /// [`Self::build`], which must succeed; its JSON report.
    fn build_ok(&self, extra: &[&str]) -> Value {
        let out = self.build(extra);
        assert_exit(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The report's service `name`.
fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {report:#}"))
}

/// The names of the report's services, in order.
fn service_names(report: &Value) -> Vec<&str> {
    report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// The layer digests of an image, as skopeo reads them.
fn skopeo_layers(layout: &Path, tag: &str) -> Vec<String> {
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:{tag}", layout.display()),
        ],
    );
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_layer_shared_by_services_runs_once_is_stored_once_and_both_images_use_it() {
    let ws = Workspace::new(&["api", "web"], "");
    let report = ws.build_ok(&[]);
    let greeter: Vec<&Value> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"] == "examples/runtime:greeter")
        .collect();
    assert_eq!(greeter.len(), 1, "one task for both services: {report:#}");
    assert_eq!(greeter[0]["status"], "ran");
    assert_eq!(greeter[0]["services"], serde_json::json!(["api", "web"]));
    // runtime's three layers are shared; procfile, motd, app and image are per service.
    assert_eq!(report["ran"], 3 + 2 * 4, "{report:#}");
    for name in ["api", "web"] {
        assert_eq!(
            service(&report, name)["ran"],
            7,
            "a shared task counts for each"
        );
    }

    let layer_of = |name: &str| {
        service(&report, name)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["created_by"].as_str().unwrap().contains("'greeter'"))
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let digest = layer_of("api");
    assert_eq!(layer_of("web"), digest);
    let out = ws.path("out");
    assert!(skopeo_layers(&out, "api").contains(&digest));
    assert!(skopeo_layers(&out, "web").contains(&digest));

    let hex = digest.strip_prefix("sha256:").unwrap();
    let store = ws.examples.path("cache/store/blobs/sha256");
    let stored: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() == hex)
        .collect();
    assert_eq!(stored.len(), 1, "the layer is stored once");
    let actions = walk_files(&ws.examples.path("cache/store/actions"));
    let key = greeter[0]["key"].as_str().unwrap();
    assert_eq!(
        actions.iter().filter(|p| p.ends_with(key)).count(),
        1,
        "one action entry for the shared key"
    );
}

/// Every file under `dir`, by file name.
fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            let name = path.file_name().unwrap().to_string_lossy();
            out.push(name.trim_end_matches(".json").to_owned());
        }
    }
    out
}

#[test]
fn a_change_to_one_service_leaves_the_others_cached_and_unchanged() {
    let ws = Workspace::new(&["api", "web", "worker"], "");
    let first = ws.build_ok(&[]);
    let noop = ws.build_ok(&[]);
    assert_eq!(noop["ran"], 0, "nothing changed, nothing runs: {noop:#}");

    std::fs::write(ws.path("services/web/Procfile"), "web: greet web\n").unwrap();
    let second = ws.build_ok(&[]);
    for name in ["api", "worker"] {
        let before = service(&first, name);
        let after = service(&second, name);
        assert_eq!(after["digest"], before["digest"], "{name}");
        assert_eq!(after["ran"], 0, "{name}: {second:#}");
        assert_eq!(after["status"], "up-to-date");
    }
    let web = service(&second, "web");
    assert_ne!(web["digest"], service(&first, "web")["digest"]);
    let ran: Vec<&str> = second["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "ran")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ran.len(), 4, "web's procfile, motd, app and image: {ran:?}");
    assert!(
        second["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "ran")
            .all(|t| t["services"] == serde_json::json!(["web"])),
        "{second:#}"
    );
}

#[test]
fn service_builds_only_the_named_services_and_refuses_unknown_names() {
    let ws = Workspace::new(&["api", "web", "worker"], "");
    let report = ws.build_ok(&["--service", "worker", "--service", "api"]);
    assert_eq!(service_names(&report), ["api", "worker"]);
    let index: Value =
        serde_json::from_slice(&std::fs::read(ws.path("out/index.json")).unwrap()).unwrap();
    let mut tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["api", "worker"]);

    let out = ws.build(&["--service", "nope"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("nope"), "{err}");
    assert!(
        err.contains("api, web, worker"),
        "lists the known ones: {err}"
    );
}

#[test]
fn bad_workspace_input_is_named() {
    let missing = Workspace::new(
        &["api"],
        "[[service]]\nname = \"gone\"\npath = \"legacy/gone\"\n",
    );
    let out = missing.build(&[]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("legacy/gone"), "{err}");
    assert!(!missing.path("out").exists(), "nothing written");

    let twice = Workspace::new(
        &["api"],
        "[[service]]\nname = \"api\"\npath = \"services/api\"\n",
    );
    let out = twice.build(&[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("api"), "{}", stderr(&out));

    let empty_glob = Workspace::new(&["api"], "");
    let text = std::fs::read_to_string(empty_glob.path("strata.toml")).unwrap();
    std::fs::write(
        empty_glob.path("strata.toml"),
        text.replace("[\"services/*\"]", "[\"services/*\", \"jobs/*\"]"),
    )
    .unwrap();
    let out = empty_glob.build(&[]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("warning") && err.contains("jobs/*"), "{err}");
}

#[test]
fn with_keep_going_a_service_that_fails_detection_does_not_stop_the_rest() {
    let ws = Workspace::new(&["api", "web"], "");
    let docs = ws.path("services/docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("README"), "no app here\n").unwrap();

    let out = ws.build(&[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("docs"), "{}", stderr(&out));
    assert!(
        !ws.path("out").exists(),
        "detection fails before anything is written"
    );

    let out = ws.build(&["--keep-going"]);
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(service(&report, "docs")["status"], "failed");
    let error = service(&report, "docs")["error"].as_str().unwrap();
    assert!(
        error.contains("detect") || error.contains("group"),
        "{error}"
    );
    for name in ["api", "web"] {
        assert_eq!(service(&report, name)["status"], "built", "{report:#}");
        let digest = service(&report, name)["digest"].as_str().unwrap();
        let layers = skopeo_layers(&ws.path("out"), name);
        assert!(!layers.is_empty(), "{name} {digest}");
    }
    let err = stderr(&out);
    assert!(err.contains("1 of 3 services failed: docs"), "{err}");
}

#[test]
fn a_service_is_exported_while_a_slower_one_still_builds() {
    let ws = Workspace::new(&["fast"], "");
    // `slow` has its own builder: one declared layer that sleeps before it writes.
    one_layer_buildpack(
        &ws.path("slow-bp"),
        "t/slow",
        "nap",
        &[],
        "sleep 3\necho rested > \"$1/rested\"",
    );
    std::fs::write(
        ws.path("slow-builder.toml"),
        "[[buildpacks]]\nuri = \"slow-bp\"\n[[order]]\n[[order.group]]\nid = \"t/slow\"\nversion = \"1\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(ws.path("slow")).unwrap();
    std::fs::write(ws.path("slow/app.txt"), "slow\n").unwrap();
    let toml = std::fs::read_to_string(ws.path("strata.toml")).unwrap();
    std::fs::write(
        ws.path("strata.toml"),
        format!(
            "{toml}run-image = \"{}\"\n[[service]]\nname = \"slow\"\npath = \"slow\"\nbuilder = \"slow-builder.toml\"\n",
            run_image()
        ),
    )
    .unwrap();

    // Without --json, progress lines come in the order things happen.
    let cache = ws.examples.path("cache");
    let out = strata(
        ws.examples.tmp.path(),
        &[
            "build",
            ws.path("").to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--jobs",
            "2",
        ],
    );
    assert_exit(&out, 0);
    let err = stderr(&out);
    let line = |needle: &str| {
        err.lines()
            .position(|l| l.trim() == needle)
            .unwrap_or_else(|| panic!("no line `{needle}` in\n{err}"))
    };
    assert!(
        line("fast: image") < line("slow: t/slow:nap"),
        "fast is exported before slow's layer is done:\n{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fast"));
}

#[test]
fn a_workspace_builds_the_same_digests_on_another_path_with_another_cache() {
    let digests = |ws: &Workspace| -> Vec<(String, String)> { service_digests(&ws.build_ok(&[])) };
    let one = Workspace::new(&["api", "web"], "");
    let two = Workspace::new(&["api", "web"], "");
    assert_ne!(one.path(""), two.path(""));
    let first = digests(&one);
    assert_eq!(first.len(), 2);
    assert_eq!(digests(&two), first);
}

#[test]
fn in_a_service_directory_strata_builds_that_service_of_the_workspace_around_it() {
    let ws = Workspace::new(&["api", "web"], "");
    let cache = ws.examples.path("cache");
    let out = strata(
        &ws.path("services/web"),
        &["build", "--cache-dir", cache.to_str().unwrap(), "--json"],
    );
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(service_names(&report), ["web"]);
    assert!(!skopeo_layers(&ws.path("out"), "web").is_empty());

    // With a builder on the command line it is one app, as anywhere else.
    let builder = ws.examples.path("examples/builder.toml");
    let out = strata(
        &ws.path("services/web"),
        &[
            "build",
            "--builder",
            builder.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
}

#[test]
fn a_no_op_reports_its_tasks_in_the_same_order_every_run() {
    let ws = Workspace::new(&["a", "b", "c", "d", "e", "f"], "");
    ws.build_ok(&[]);
    let order = |report: &Value| -> Vec<String> {
        report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| format!("{}:{}", t["services"], t["id"]))
            .collect()
    };
    let first = order(&ws.build_ok(&[]));
    assert!(first.len() > 6, "{first:?}");
    for _ in 0..3 {
        assert_eq!(order(&ws.build_ok(&[])), first);
    }
}
