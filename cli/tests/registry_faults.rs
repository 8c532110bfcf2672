//! Registry faults seen through `strata build` and `strata rebase`, against Debian's
//! `docker-registry` on loopback: a blob whose content does not match its digest, an index with
//! an image for another platform only, a registry that goes away in the middle of a push (the
//! rerun pushes only what is missing), a registry that is down. Each is a clear error naming
//! the image, and nothing is half-written.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::Path;

use common::registry::support::{Registry, skopeo};
use common::registry::{
    CutProxy, build, json, platform_index_layout, remote_digest, remote_manifest,
};
use common::*;
use serde_json::Value;

/// A copy of the example app with `file` added (so its app layer is its own).
fn app_with(root: &Path, name: &str, file: &str) -> std::path::PathBuf {
    let app = root.join(name);
    std::fs::create_dir_all(&app).unwrap();
    copy_tree(&examples().join("apps/hello"), &app);
    std::fs::write(app.join(file), name).unwrap();
    app
}

/// stderr with its lines joined: the report wraps long messages.
fn message(out: &std::process::Output) -> String {
    stderr(out).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The registry's storage file of the blob `digest` (`sha256:…`).
fn blob_file(registry: &Registry, digest: &str) -> std::path::PathBuf {
    registry.blob_data(&digest.parse().unwrap())
}

/// Overwrites a blob in the registry's storage with as many other bytes.
fn tamper(registry: &Registry, digest: &str) {
    let file = blob_file(registry, digest);
    let mut bytes = std::fs::read(&file).unwrap();
    for b in &mut bytes {
        *b = b.wrapping_add(1);
    }
    std::fs::write(&file, bytes).unwrap();
}

/// The blobs a repository has (its layer links in the registry's storage).
fn repository_blobs(registry: &Registry, repository: &str) -> usize {
    let dir = registry.dir.path().join(format!(
        "storage/docker/registry/v2/repositories/{repository}/_layers/sha256"
    ));
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.path().join("link").is_file())
            .count()
    })
}

#[test]
fn a_tampered_blob_fails_the_pull_or_its_image_alone_and_writes_nothing() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let insecure = ["--insecure-registry", host.as_str()];

    // A build on a run image whose layer the registry serves altered.
    let run = format!("docker://{host}/stacks/run:24");
    skopeo(&["copy", "--dest-tls-verify=false", &run_image(), &run]);
    let layer = remote_manifest(&registry, "stacks/run:24")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let original = std::fs::read(blob_file(&registry, &layer)).unwrap();
    tamper(&registry, &layer);
    let cache = tmp.path().join("cache");
    let mut flags = insecure.to_vec();
    flags.extend(["--cache-dir", cache.to_str().unwrap()]);
    let out_dir = tmp.path().join("out");
    let output = format!("oci:{}:hello", out_dir.display());
    let app = examples().join("apps/hello");
    let failed = build(tmp.path(), &app, &run, &output, &flags);
    assert_exit(&failed, 1);
    let message = message(&failed);
    assert!(
        message.contains(&format!("cannot pull {run}"))
            && message.contains(&format!("content of {layer}"))
            && message.contains("does not match its digest"),
        "{message}"
    );
    assert!(!out_dir.exists(), "nothing written");
    let hex = layer.trim_start_matches("sha256:");
    let stored = std::process::Command::new("find")
        .arg(&cache)
        .args(["-name", &format!("{hex}*")])
        .output()
        .unwrap();
    assert!(stored.stdout.is_empty(), "no blob kept under its digest");

    // With the layer right again, two apps are pushed; one config is then altered: that
    // image fails alone and keeps its tag, the other is rebased.
    std::fs::write(blob_file(&registry, &layer), original).unwrap();
    for (name, file) in [("a", "a.txt"), ("b", "b.txt")] {
        let app = app_with(tmp.path(), name, file);
        json(&build(
            tmp.path(),
            &app,
            &run,
            &format!("docker://{host}/fleet/{name}:1"),
            &flags,
        ));
    }
    let patched =
        common::runimage::RunImageCopy::new(tmp.path(), "patched").layer("patch", |rootfs| {
            std::fs::write(rootfs.join("etc/patch"), "1\n").unwrap();
        });
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &patched.reference(),
        &run,
    ]);
    let a_before = remote_digest(&registry, "fleet/a:1");
    let a_config = remote_manifest(&registry, "fleet/a:1")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    tamper(&registry, &a_config);
    let a = format!("docker://{host}/fleet/a:1");
    let b = format!("docker://{host}/fleet/b:1");
    let mut args = vec!["rebase", "--run-image", &run, &a, &b, "--json"];
    args.extend_from_slice(&flags);
    let out = strata(tmp.path(), &args);
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["images"].as_array().unwrap();
    assert_eq!(rows[0]["image"], a);
    assert_eq!(rows[0]["status"], "failed");
    let error = rows[0]["error"].as_str().unwrap();
    assert!(
        error.contains("cannot read its config")
            && error.contains(&format!("content of {a_config}"))
            && error.contains("does not match its digest"),
        "{error}"
    );
    assert_eq!(rows[1]["status"], "rebased", "{report:#}");
    // skopeo would read the altered config; the tag is asked for alone.
    let a_now = registry
        .client()
        .fetch_manifest(&registry.reference("fleet/a:1"))
        .unwrap()
        .descriptor
        .digest;
    assert_eq!(a_now.to_string(), a_before, "a keeps its tag");
    assert_eq!(remote_digest(&registry, "fleet/b:1"), rows[1]["new_digest"]);
}

#[test]
fn an_index_for_another_platform_only_is_a_clear_error() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let other = if std::env::consts::ARCH == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let (dir, _) = platform_index_layout(tmp.path(), &[other]);
    let run = format!("docker://{host}/stacks/other:1");
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", dir.display()),
        &run,
    ]);
    let out_dir = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let flags = [
        "--insecure-registry",
        host.as_str(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let failed = build(
        tmp.path(),
        &examples().join("apps/hello"),
        &run,
        &format!("oci:{}:hello", out_dir.display()),
        &flags,
    );
    assert_exit(&failed, 1);
    let message = message(&failed);
    assert!(
        message.contains(&format!("cannot pull {run}"))
            && message.contains("has no image for linux/")
            && message.contains(&format!("it has: linux/{other}")),
        "{message}"
    );
    assert!(!out_dir.exists(), "nothing written");
    assert_eq!(registry.count("GET", "/blobs/"), 0, "no blob fetched");

    // As an image to rebase, an index is refused by name and nothing is written.
    let puts = registry.count("PUT", "");
    let base = run_image();
    let mut args = vec!["rebase", "--run-image", &base, &run, "--json"];
    args.extend_from_slice(&flags);
    let out = strata(tmp.path(), &args);
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["images"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("index") && error.contains("not an image manifest"),
        "{error}"
    );
    assert_eq!(registry.count("PUT", ""), puts);
}

#[test]
fn a_registry_gone_in_the_middle_of_a_push_leaves_no_tag_and_the_rerun_pushes_what_is_missing() {
    let registry = Registry::start();
    let proxy = CutProxy::start(registry.port, 1);
    let host = proxy.host();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("docker://{host}/app:1");
    let app = examples().join("apps/hello");
    let insecure = ["--insecure-registry", host.as_str()];
    let failed = build(tmp.path(), &app, &run_image(), &target, &insecure);
    assert_exit(&failed, 1);
    assert!(proxy.is_down());
    let message = message(&failed);
    assert!(
        message.contains(&format!("cannot push {target}")) && message.contains("unreachable"),
        "{message}"
    );
    assert_eq!(
        registry.count("PUT", "/manifests/"),
        0,
        "no manifest written"
    );
    let committed = repository_blobs(&registry, "app");
    assert!(committed >= 1, "the push was cut after a blob");

    proxy.up();
    let rerun = json(&build(tmp.path(), &app, &run_image(), &target, &insecure));
    let pushed = &rerun["pushed"];
    assert_eq!(pushed["skipped"], committed, "{rerun}");
    let total = pushed["uploaded"].as_u64().unwrap() + pushed["skipped"].as_u64().unwrap();
    assert_eq!(
        usize::try_from(total).unwrap(),
        repository_blobs(&registry, "app")
    );
    assert_eq!(remote_digest(&registry, "app:1"), rerun["digest"]);
}

#[test]
fn a_registry_that_is_down_fails_each_of_its_images_and_the_others_go_on() {
    let mut registry = Registry::start();
    let host = registry.host();
    registry.stop();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("out");
    let local = format!("oci:{}:hello", layout.display());
    json(&build(
        tmp.path(),
        &examples().join("apps/hello"),
        &run_image(),
        &local,
        &[],
    ));

    let remote = format!("docker://{host}/fleet/a:1");
    let all = format!("docker://{host}/fleet/b");
    let out = strata(
        tmp.path(),
        &[
            "rebase",
            "--run-image",
            &run_image(),
            &local,
            &remote,
            "--all",
            &all,
            "--insecure-registry",
            &host,
            "--json",
        ],
    );
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["images"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{report:#}");
    assert_eq!(rows[0]["image"], local);
    assert_eq!(rows[0]["status"], "up_to_date", "the layout image is done");
    for (row, what) in [
        (&rows[1], format!("cannot list the tags of {all}")),
        (&rows[2], "cannot read its manifest".to_owned()),
    ] {
        assert_eq!(row["status"], "failed");
        let error = row["error"].as_str().unwrap();
        assert!(
            error.contains(&what) && error.contains(&format!("registry {host} is unreachable")),
            "{error}"
        );
    }
    let table = strata(
        tmp.path(),
        &[
            "rebase",
            "--run-image",
            &run_image(),
            &remote,
            "--insecure-registry",
            &host,
        ],
    );
    assert_exit(&table, 1);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(&format!("{remote}  ")),
        "the table names the image"
    );
}

#[test]
fn a_failed_push_in_a_workspace_does_not_stop_the_other_services() {
    let registry = Registry::start();
    let host = registry.host();
    let examples = ExampleCopy::new();
    let ws = team_workspace(&examples, &host);
    // The registry cannot store anything in team/api: a file sits where its directory goes.
    let repositories = registry
        .dir
        .path()
        .join("storage/docker/registry/v2/repositories/team");
    std::fs::create_dir_all(&repositories).unwrap();
    std::fs::write(repositories.join("api"), "in the way").unwrap();
    let run = run_image();
    let cache = examples.path("cache");
    let out = strata(
        examples.tmp.path(),
        &[
            "build",
            ws.to_str().unwrap(),
            "--run-image",
            &run,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = report["services"].as_array().unwrap();
    let service = |name: &str| services.iter().find(|s| s["name"] == name).unwrap();
    assert_eq!(service("api")["status"], "failed", "{report:#}");
    let error = service("api")["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("cannot push docker://{host}/team/api:latest")),
        "{error}"
    );
    assert_eq!(
        remote_digest(&registry, "team/web:latest"),
        service("web")["digest"],
        "web is pushed after api failed"
    );
    let message = message(&out);
    assert!(message.contains("api"), "{message}");
}
