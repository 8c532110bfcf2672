//! Registries end to end, against Debian's `docker-registry` on loopback (the harness the
//! registry client's tests use): `strata build --output docker://…` pushes the image a layout
//! build makes, `docker-archive:` writes a tarball skopeo loads, run images and builders are
//! pulled from a registry (once: a second build transfers no blob), `inspect docker://` reads
//! manifest and config alone, and auth, TLS and a registry that is down fail clearly.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use common::registry::support::{self, Auth, PASSWORD, Registry, skopeo};
use common::registry::{build, json, platform_index_layout, remote_digest, remote_manifest};
use common::*;

#[test]
fn push_gives_the_layout_build_digest_and_skopeo_and_umoci_read_it() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let app = examples().join("apps/hello");
    let layout = json(&build(
        tmp.path(),
        &app,
        &run_image(),
        &format!("oci:{}:hello", tmp.path().join("out").display()),
        &[],
    ));

    let host = registry.host();
    let target = format!("docker://{host}/app:v1");
    let pushed = json(&build(
        tmp.path(),
        &app,
        &run_image(),
        &target,
        &["--insecure-registry", &host, "--tag", "v1", "--tag", "v2"],
    ));
    assert_eq!(pushed["digest"], layout["digest"], "{pushed}");
    assert_eq!(pushed["image"], target);
    assert!(
        pushed["pushed"]["uploaded"].as_u64().unwrap() > 2,
        "{pushed}"
    );
    assert_eq!(pushed["pushed"]["skipped"], 0);
    assert_eq!(
        pushed["pushed"]["references"],
        serde_json::json!([target, format!("docker://{host}/app:v2")])
    );
    assert_eq!(remote_digest(&registry, "app:v1"), layout["digest"]);
    assert_eq!(remote_digest(&registry, "app:v2"), layout["digest"]);

    let back = tmp.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/app:v1"),
        &format!("oci:{}:v1", back.display()),
    ]);
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:v1", back.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(bundle.join("rootfs/workspace").is_dir());

    // Nothing changed: every blob is skipped.
    let again = json(&build(
        tmp.path(),
        &app,
        &run_image(),
        &target,
        &["--insecure-registry", &host],
    ));
    assert_eq!(again["digest"], layout["digest"]);
    assert_eq!(again["pushed"]["uploaded"], 0, "{again}");
    assert!(again["pushed"]["skipped"].as_u64().unwrap() > 2);

    // And the registry image reads from manifest and config alone.
    let uploads = registry.count("GET", "/blobs/");
    let inspect = strata(
        tmp.path(),
        &["inspect", &target, "--insecure-registry", &host, "--json"],
    );
    let inspect = json(&inspect);
    assert_eq!(inspect["digest"], layout["digest"]);
    assert_eq!(inspect["reference"], target);
    assert_eq!(
        registry.count("GET", "/blobs/") - uploads,
        1,
        "only the config is downloaded"
    );
}

#[test]
fn an_app_change_uploads_its_layer_and_the_sbom_layer_plus_config_and_manifest() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    copy_tree(&examples().join("apps/hello"), &app);
    let target = format!("docker://{host}/app:latest");
    let insecure = ["--insecure-registry", host.as_str()];
    let first = json(&build(tmp.path(), &app, &run_image(), &target, &insecure));
    let first_layers = first["layers"].as_array().unwrap().clone();

    std::fs::write(app.join("extra-file.txt"), "a change in the app\n").unwrap();
    let manifests_before = registry.count("PUT", "/manifests/");
    let second = json(&build(tmp.path(), &app, &run_image(), &target, &insecure));
    assert_ne!(second["digest"], first["digest"]);
    let changed: Vec<&str> = second["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| !first_layers.contains(l))
        .map(|l| l["created_by"].as_str().unwrap_or_default())
        .collect();
    // The SBOM layer lists the app's files, so it changes with them.
    assert_eq!(
        changed,
        ["Software Bill-of-Materials", "Application Layer"],
        "the app layer and its SBOM alone changed"
    );
    assert_eq!(
        second["pushed"]["uploaded"], 3,
        "two layers and the config: {second}"
    );
    assert_eq!(registry.count("PUT", "/manifests/") - manifests_before, 1);
    assert_eq!(remote_digest(&registry, "app:latest"), second["digest"]);
}

#[test]
fn docker_archive_output_loads_with_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("app.tar");
    let out = json(&build(
        tmp.path(),
        &examples().join("apps/hello"),
        &run_image(),
        &format!("docker-archive:{}:example/app:v1", archive.display()),
        &[],
    ));
    assert!(archive.is_file());
    let loaded = tmp.path().join("loaded");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:app", loaded.display()),
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:app", loaded.display()),
    ]))
    .unwrap();
    assert!(
        inspect["config"]["Labels"]["io.buildpacks.lifecycle.metadata"].is_string(),
        "{inspect}"
    );
    let manifest: serde_json::Value = serde_json::from_str(&tool(
        "tar",
        &["-xOf", archive.to_str().unwrap(), "manifest.json"],
    ))
    .unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["example/app:v1"])
    );
    assert!(
        out["image"]
            .as_str()
            .unwrap()
            .starts_with("docker-archive:")
    );
}

#[test]
fn a_registry_run_image_is_pulled_once_and_recorded_by_name_and_digest() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let (multi, manifest) = platform_index_layout(tmp.path(), &["arm64", "amd64"]);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", multi.display()),
        &format!("docker://{host}/stacks/run:24"),
    ]);
    let run = format!("docker://{host}/stacks/run:24");
    let app = examples().join("apps/hello");
    let out = tmp.path().join("out");
    let output = format!("oci:{}:hello", out.display());
    let cache = tmp.path().join("cache");
    let flags = [
        "--insecure-registry",
        host.as_str(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let first = json(&build(tmp.path(), &app, &run, &output, &flags));
    let pulls = registry.count("GET", "/blobs/");
    assert!(pulls > 0);

    let config: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:hello", out.display()),
    ]))
    .unwrap();
    let lifecycle: serde_json::Value = serde_json::from_str(
        config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    // The index resolves to the host's image: its manifest is what the image records.
    assert_eq!(
        lifecycle["runImage"]["image"],
        format!("{host}/stacks/run:24")
    );
    assert_eq!(
        lifecycle["runImage"]["reference"],
        format!("{host}/stacks/run@{manifest}")
    );

    // The same image built from the layout has the same layers: only the names differ.
    let second = json(&build(
        tmp.path(),
        &app,
        &run,
        &format!("oci:{}:again", out.display()),
        &flags,
    ));
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(
        registry.count("GET", "/blobs/"),
        pulls,
        "a second build pulls no blob"
    );
}

#[test]
fn a_builder_image_from_a_registry_builds() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("builder.toml");
    let text = std::fs::read_to_string(examples().join("builder.toml"))
        .unwrap()
        .replace("uri = \"", &format!("uri = \"{}/", examples().display()))
        .replace("image = \"host\"", &format!("image = \"{}\"", run_image()))
        .replace(
            "image = \"oci:run-image/layout:busybox\"",
            &format!("image = \"{}\"", run_image()),
        );
    std::fs::write(&config, text).unwrap();
    let made = strata(
        tmp.path(),
        &[
            "builder",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "oci:builder:b",
        ],
    );
    assert_exit(&made, 0);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:b", tmp.path().join("builder").display()),
        &format!("docker://{host}/builders/example:1"),
    ]);
    let cache = tmp.path().join("cache");
    let args = |tag: &str| {
        vec![
            "build".to_owned(),
            examples().join("apps/hello").display().to_string(),
            "--builder".to_owned(),
            format!("docker://{host}/builders/example:1"),
            "--run-image".to_owned(),
            run_image(),
            "--build-image".to_owned(),
            "host".to_owned(),
            "--output".to_owned(),
            format!("oci:{}:{tag}", tmp.path().join("out").display()),
            "--insecure-registry".to_owned(),
            host.clone(),
            "--cache-dir".to_owned(),
            cache.display().to_string(),
            "--json".to_owned(),
        ]
    };
    let first = strata(
        tmp.path(),
        &args("one").iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let first = json(&first);
    let pulls = registry.count("GET", "/blobs/");
    let second = strata(
        tmp.path(),
        &args("two").iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let second = json(&second);
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(
        registry.count("GET", "/blobs/"),
        pulls,
        "nothing pulled again"
    );
}

#[test]
fn auth_needs_credentials_and_reads_docker_config() {
    let registry = Registry::start_with(Auth::Htpasswd, false);
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("docker://{host}/private/app:1");
    let app = examples().join("apps/hello");
    let empty = tmp.path().join("nobody");
    std::fs::create_dir_all(&empty).unwrap();
    let denied = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(tmp.path())
        .env("DOCKER_CONFIG", &empty)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("TMPDIR", scratch_tmpdir())
        .args(["inspect", &target, "--insecure-registry", &host])
        .output()
        .unwrap();
    assert_exit(&denied, 1);
    let message = stderr(&denied);
    assert!(
        message.contains(&format!("cannot read {target}")) && message.contains("credentials"),
        "{message}"
    );

    let docker = support::docker_config(tmp.path(), &host, PASSWORD);
    let pushed = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(tmp.path())
        .env("DOCKER_CONFIG", &docker)
        .env("TMPDIR", scratch_tmpdir())
        .args([
            "build",
            app.to_str().unwrap(),
            "--builder",
            examples().join("builder.toml").to_str().unwrap(),
            "--run-image",
            &run_image(),
            "--output",
            &target,
            "--insecure-registry",
            &host,
            "--json",
        ])
        .output()
        .unwrap();
    let pushed = json(&pushed);
    assert_eq!(
        remote_digest_with_creds(&registry, "private/app:1"),
        pushed["digest"]
    );
}

/// As [`remote_digest`], logged in.
fn remote_digest_with_creds(registry: &Registry, name: &str) -> String {
    let url = format!("docker://{}/{name}", registry.host());
    let creds = format!("{}:{PASSWORD}", support::USER);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--creds", &creds, &url]);
    let inspect: serde_json::Value = serde_json::from_str(&raw).unwrap();
    inspect["Digest"].as_str().unwrap().to_owned()
}

#[test]
fn tls_works_with_registry_ca_and_fails_clearly_without() {
    let registry = Registry::start_with(Auth::None, true);
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let target = format!("docker://{host}/secure/app:1");
    let app = examples().join("apps/hello");
    let ca = registry.dir.path().join("tls.crt");

    let refused = build(tmp.path(), &app, &run_image(), &target, &[]);
    assert_exit(&refused, 1);
    let message = stderr(&refused);
    assert!(
        message.contains(&format!("cannot push {target}")) && message.contains("TLS"),
        "{message}"
    );

    let pushed = json(&build(
        tmp.path(),
        &app,
        &run_image(),
        &target,
        &["--registry-ca", ca.to_str().unwrap()],
    ));
    assert!(pushed["pushed"]["uploaded"].as_u64().unwrap() > 0);
}

#[test]
fn a_registry_that_is_down_is_a_clear_error() {
    let mut registry = Registry::start();
    let host = registry.host();
    registry.stop();
    let tmp = tempfile::tempdir().unwrap();
    let run = format!("docker://{host}/stacks/run:24");
    let out = build(
        tmp.path(),
        &examples().join("apps/hello"),
        &run,
        &format!("oci:{}:x", tmp.path().join("out").display()),
        &["--insecure-registry", &host],
    );
    assert_exit(&out, 1);
    let message = stderr(&out);
    assert!(
        message.contains(&format!("cannot pull {}", &run[..])) && message.contains("unreachable"),
        "{message}"
    );
    assert!(!tmp.path().join("out").exists(), "nothing written");
}

#[test]
fn a_workspace_pushes_each_service_to_its_repository_under_the_namespace() {
    let registry = Registry::start();
    let host = registry.host();
    let examples = ExampleCopy::new();
    // The registry is plain HTTP by strata.toml's `insecure-registries`, not by a flag.
    let ws = team_workspace(&examples, &host);
    let cache = examples.path("cache");
    let run = run_image();
    let out = strata(
        examples.tmp.path(),
        &[
            "build",
            ws.to_str().unwrap(),
            "--run-image",
            &run,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--tag",
            "1.0",
            "--tag",
            "stable",
            "--json",
        ],
    );
    let report = json(&out);
    for service in report["services"].as_array().unwrap() {
        let name = service["name"].as_str().unwrap();
        assert_eq!(service["image"], format!("docker://{host}/team/{name}:1.0"));
        for tag in ["1.0", "stable"] {
            assert_eq!(
                remote_digest(&registry, &format!("team/{name}:{tag}")),
                service["digest"],
                "{name}:{tag}"
            );
        }
    }
    assert_eq!(report["services"].as_array().unwrap().len(), 2);

    // The service pushed second mounts what it shares with the first (the run image's layers,
    // the launcher, shared layers) from the first one's repository, and uploads the rest.
    let services = report["services"].as_array().unwrap();
    let blobs = |name: &str| -> std::collections::BTreeSet<String> {
        let manifest = remote_manifest(&registry, &format!("team/{name}:1.0"));
        std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().unwrap())
            .map(|d| d["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let (first, second) = (&services[0], &services[1]);
    let shared = blobs(first["name"].as_str().unwrap())
        .intersection(&blobs(second["name"].as_str().unwrap()))
        .count();
    assert!(shared > 1, "{report:#}");
    let pushed = &second["pushed"];
    assert_eq!(pushed["mounted"], shared, "{report:#}");
    assert_eq!(
        pushed["uploaded"],
        blobs(second["name"].as_str().unwrap()).len() - shared,
        "{report:#}"
    );
    assert_eq!(first["pushed"]["mounted"], 0, "{report:#}");
}

#[test]
fn a_builder_toml_names_a_registry_run_image_and_its_mirrors() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &run_image(),
        &format!("docker://{host}/stacks/run:24"),
    ]);
    // Written without a transport, as other platforms write it: a registry name.
    let text = std::fs::read_to_string(examples().join("builder.toml"))
        .unwrap()
        .replace("uri = \"", &format!("uri = \"{}/", examples().display()))
        .replace(
            "image = \"oci:run-image/layout:busybox\"",
            &format!("image = \"{host}/stacks/run:24\"\nmirrors = [\"mirror.example.com/run:24\"]"),
        );
    let builder = tmp.path().join("builder.toml");
    std::fs::write(&builder, text).unwrap();
    let out = tmp.path().join("out");
    let result = strata(
        tmp.path(),
        &[
            "build",
            examples().join("apps/hello").to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--output",
            &format!("oci:{}:hello", out.display()),
            "--insecure-registry",
            &host,
            "--json",
        ],
    );
    json(&result);
    let config: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:hello", out.display()),
    ]))
    .unwrap();
    let lifecycle: serde_json::Value = serde_json::from_str(
        config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let run = &lifecycle["runImage"];
    assert_eq!(run["image"], format!("{host}/stacks/run:24"));
    assert_eq!(
        run["mirrors"],
        serde_json::json!(["mirror.example.com/run:24"])
    );
    assert_eq!(
        run["reference"],
        format!(
            "{host}/stacks/run@{}",
            remote_digest(&registry, "stacks/run:24")
        )
    );
}
