//! `strata inspect` of the example app, pinned with a snapshot. The image is built on the
//! built-in base, so every digest in it is a function of strata and the examples alone.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use common::*;

#[test]
fn inspect_shows_layers_processes_run_image_and_buildpacks() {
    let tmp = tempfile::tempdir().unwrap();
    let bps = examples().join("buildpacks");
    let builder = tmp.path().join("builder.toml");
    let mut text = String::new();
    for name in ["runtime", "procfile", "motd", "hello-stack"] {
        let uri = bps.join(name);
        text += &["[[buildpacks]]\nuri = \"", uri.to_str().unwrap(), "\"\n\n"].concat();
    }
    text.push_str("[[order]]\n[[order.group]]\nid = \"examples/hello-stack\"\n");
    std::fs::write(&builder, text).unwrap();

    let app = examples().join("apps/hello");
    let out = tmp.path().join("out");
    let output = format!("oci:{}:hello", out.display());
    let built = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--output",
            &output,
        ],
    );
    assert_exit(&built, 0);

    let shown = strata(tmp.path(), &["inspect", "oci:out:hello"]);
    assert_exit(&shown, 0);
    insta::assert_snapshot!(String::from_utf8_lossy(&shown.stdout));

    let json = strata(tmp.path(), &["inspect", "oci:out:hello", "--json"]);
    assert_exit(&json, 0);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["default_process"], "web");
    assert_eq!(report["buildpacks"][0]["id"], "examples/runtime");
    assert_eq!(report["run_image"]["image"], "strata/builtin-base");
    let layers = report["layers"].as_array().unwrap();
    assert!(layers[0]["run_image"].as_bool().unwrap());
    let created_by: Vec<&str> = layers[layers.len() - 3..]
        .iter()
        .map(|l| l["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        created_by,
        [
            "Buildpacks Application Launcher",
            "Buildpacks Launcher Config",
            "Buildpacks Process Types"
        ],
        "the launcher layers are last"
    );
    let web = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "web")
        .unwrap();
    assert_eq!(
        web["command"],
        serde_json::json!(["/bin/sh", "-c", "greet strata"])
    );
}

#[test]
fn inspecting_a_missing_tag_or_a_non_cnb_image_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = strata(tmp.path(), &["inspect", "oci:nowhere:x"]);
    assert_exit(&missing, 2);
    assert!(stderr(&missing).contains("nowhere"), "{}", stderr(&missing));

    let run_image = run_image();
    let plain = strata(tmp.path(), &["inspect", &run_image]);
    assert_exit(&plain, 2);
    assert!(
        stderr(&plain).contains("io.buildpacks.lifecycle.metadata"),
        "{}",
        stderr(&plain)
    );
}
