//! `strata rebase` of images in a registry (Debian's `docker-registry` on loopback): a fleet of
//! 20 images in 4 repositories moves onto a patched run image pushed under the same tag; the
//! result is what a rebuild pushes, no app layer is downloaded (the registry's access log says
//! so), and the run image's new layer goes to each repository once, mounted.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use common::registry::support::{Registry, skopeo};
use common::registry::{json, remote_digest, remote_manifest};
use common::runimage::RunImageCopy;
use common::*;
use serde_json::Value;

const SERVICES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const TAGS: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];

/// Builds the workspace on `run` and pushes it under `tags`: service name → digest.
fn build_fleet(
    cwd: &Path,
    ws: &Path,
    run: &str,
    cache: &Path,
    tags: &[&str],
) -> BTreeMap<String, String> {
    let mut args = vec![
        "build",
        ws.to_str().unwrap(),
        "--run-image",
        run,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ];
    for tag in tags {
        args.extend(["--tag", tag]);
    }
    let report = json(&strata(cwd, &args));
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

/// Blob digests requested with `method` under `/v2/fleet/` in `requests`.
fn fleet_blobs<'a>(requests: &'a [String], method: &str) -> Vec<&'a str> {
    requests
        .iter()
        .filter(|r| r.starts_with(&format!("{method} /v2/fleet/")))
        .filter_map(|r| r.split_once("/blobs/sha256:").map(|(_, rest)| rest))
        .map(|rest| rest.split([' ', '?']).next().unwrap())
        .collect()
}

/// `strata rebase` of the fleet onto `run`: s0 by `--all`, s1 and s2 from a list file, s3
/// tag by tag.
fn rebase_args(cwd: &Path, host: &str, run: &str, cache: &Path) -> Vec<String> {
    let list = cwd.join("fleet.txt");
    let mut text = String::from("# nightly fleet\n\n");
    for s in ["s1", "s2"] {
        for t in TAGS {
            writeln!(text, "docker://{host}/fleet/{s}:{t}").unwrap();
        }
    }
    std::fs::write(&list, text).unwrap();
    let mut args: Vec<String> = [
        "rebase",
        "--run-image",
        run,
        "--all",
        &format!("docker://{host}/fleet/s0"),
        "--from-file",
        list.to_str().unwrap(),
        "--insecure-registry",
        host,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--jobs",
        "4",
        "--json",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(TAGS.iter().map(|t| format!("docker://{host}/fleet/s3:{t}")));
    args
}

/// How many of `requests` write to the registry.
fn writes(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|r| r.starts_with("PUT ") || r.starts_with("POST ") || r.starts_with("PATCH "))
        .count()
}

/// The hex digest of a descriptor.
fn hex(descriptor: &Value) -> String {
    let digest = descriptor["digest"].as_str().unwrap();
    digest.trim_start_matches("sha256:").to_owned()
}

/// The hex digests of a list of descriptors.
fn hexes(descriptors: &Value) -> Vec<String> {
    descriptors.as_array().unwrap().iter().map(hex).collect()
}

/// The image `name` records the run image by its registry name and `HOST/REPO@digest`.
fn assert_records_the_run_image(registry: &Registry, name: &str) {
    let host = registry.host();
    let config: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{host}/{name}"),
    ]))
    .unwrap();
    let label = &config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"];
    let lifecycle: Value = serde_json::from_str(label.as_str().unwrap()).unwrap();
    assert_eq!(
        lifecycle["runImage"]["image"],
        format!("{host}/stacks/run:24")
    );
    let run = remote_digest(registry, "stacks/run:24");
    assert_eq!(
        lifecycle["runImage"]["reference"],
        format!("{host}/stacks/run@{run}")
    );
}

/// In the access log of a rebase of the fleet: the only blobs fetched from the app
/// repositories are the four configs (the five tags of a service share one), each run image
/// layer is asked for once per repository, and the new one mounted once per repository.
fn assert_only_configs_fetched_and_layers_mounted_once(
    requests: &[String],
    configs: &[String],
    run_layers: &[String],
) {
    let fetched = fleet_blobs(requests, "GET");
    assert!(!fetched.is_empty());
    for digest in &fetched {
        assert!(
            configs.iter().any(|c| c == digest),
            "an app layer was fetched: {digest}"
        );
    }
    for layer in run_layers {
        let heads = fleet_blobs(requests, "HEAD")
            .iter()
            .filter(|d| *d == layer)
            .count();
        assert_eq!(heads, 4, "layer {layer}: one HEAD per repository");
    }
    let mounts: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("POST /v2/fleet/") && r.contains("mount="))
        .collect();
    assert_eq!(mounts.len(), 4, "{mounts:#?}");
}

#[test]
fn a_fleet_of_20_registry_images_is_rebased_in_place_and_equals_a_rebuild() {
    let registry = Registry::start();
    let host = registry.host();
    let examples = ExampleCopy::new();
    let cwd = examples.tmp.path();
    let run = format!("docker://{host}/stacks/run:24");
    skopeo(&["copy", "--dest-tls-verify=false", &run_image(), &run]);
    let ws = hello_workspace(&examples, &host, "fleet", &SERVICES);
    let cache = examples.path("cache");
    let before = build_fleet(cwd, &ws, &run, &cache, &TAGS);
    assert_eq!(before.len(), 4);

    // The run image gets a patch, pushed under the same tag.
    let patched = RunImageCopy::new(cwd, "patched").layer("patch /etc/patch-level", |rootfs| {
        std::fs::write(rootfs.join("etc/patch-level"), "patched\n").unwrap();
    });
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &patched.reference(),
        &run,
    ]);
    let run_layers = hexes(&remote_manifest(&registry, "stacks/run:24")["layers"]);
    let configs: Vec<String> = SERVICES
        .iter()
        .map(|s| hex(&remote_manifest(&registry, &format!("fleet/{s}:t0"))["config"]))
        .collect();

    let args = rebase_args(cwd, &host, &run, &cache);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // A dry run reads and computes all of it and writes nothing.
    let logged = registry.requests().len();
    let dry = json(&strata(cwd, &[&args[..], &["--dry-run"]].concat()));
    assert_eq!(dry["summary"]["rebased"], 20, "{dry:#}");
    assert!(
        dry["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "would_rebase")
    );
    assert_eq!(
        writes(&registry.requests()[logged..]),
        0,
        "a dry run writes nothing"
    );
    let logged = registry.requests().len();
    let out = strata(cwd, &args);
    let report = json(&out);
    let requests = registry.requests()[logged..].to_vec();

    let rows = report["images"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "{report:#}");
    assert_eq!(report["summary"]["rebased"], 20, "{report:#}");
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(
        report["run_image"]["name"],
        format!("{host}/stacks/run:24"),
        "named as the images record it"
    );

    // A rebuild on the patched run image pushes exactly the rebased manifests.
    let rebuilt = build_fleet(cwd, &ws, &run, &cache, &["rebuilt"]);
    for row in rows {
        let image = row["image"].as_str().unwrap();
        let name = image.strip_prefix(&format!("docker://{host}/")).unwrap();
        let service = name.split([':', '/']).nth(1).unwrap();
        assert_eq!(row["status"], "rebased", "{row}");
        assert_eq!(row["old_digest"], before[service], "{row}");
        assert_eq!(
            row["new_digest"], rebuilt[service],
            "rebase equals rebuild: {row}"
        );
        assert_eq!(remote_digest(&registry, name), rebuilt[service], "{name}");
    }
    assert_records_the_run_image(&registry, "fleet/s0:t3");

    assert_only_configs_fetched_and_layers_mounted_once(&requests, &configs, &run_layers);
    assert_eq!(report["pushed"]["mounted"], 4, "{report:#}");
    assert_eq!(report["pushed"]["uploaded"], 4, "a config per repository");
    assert_eq!(report["pushed"]["manifests"], 20);

    // Done: a second rebase finds every image up to date and writes nothing.
    let logged = registry.requests().len();
    let again = json(&strata(cwd, &args));
    // The rebuild's tags are in s0 now, which --all takes too.
    assert_eq!(again["summary"]["up_to_date"], 21, "{again:#}");
    assert_eq!(again["summary"]["rebased"], 0);
    assert_eq!(again["pushed"]["manifests"], 0);
    assert_eq!(writes(&registry.requests()[logged..]), 0);
}

#[test]
fn a_bad_list_line_is_exit_2_naming_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("fleet.txt");
    std::fs::write(
        &list,
        "# fleet\ndocker://127.0.0.1:1/fleet/a:1\n\ndocker://127.0.0.1:1/Fleet/B:1\n",
    )
    .unwrap();
    let out = strata(
        tmp.path(),
        &[
            "rebase",
            "--run-image",
            &run_image(),
            "--from-file",
            list.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 2);
    let message = stderr(&out);
    assert!(
        message.contains(&format!("{}:4:", list.display())),
        "{message}"
    );
}
