//! `strata plan`: the task graph of the example app, its keys and reasons, and that an
//! unchanged app plans without spawning a process or reading a file's content.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::process::Command;

use common::*;

type Fixture = ExampleCopy;

/// `strata plan` of the example app with the example builder and the copy's cache dir.
trait Plans {
    fn plan(&self, format: &str) -> std::process::Output {
        self.plan_with(format, &[])
    }
    fn plan_with(&self, format: &str, extra: &[&str]) -> std::process::Output;
    fn json(&self) -> serde_json::Value {
        self.json_with(&[])
    }
    fn json_with(&self, extra: &[&str]) -> serde_json::Value {
        let out = self.plan_with("json", extra);
        assert_exit(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Plans for Fixture {
    fn plan_with(&self, format: &str, extra: &[&str]) -> std::process::Output {
        let app = self.path("examples/apps/hello");
        let builder = self.path("examples/builder.toml");
        let cache = self.path("cache");
        let mut args = vec![
            "plan",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--format",
            format,
        ];
        args.extend_from_slice(extra);
        strata(self.tmp.path(), &args)
    }
}

fn keys(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_plan_table_of_the_example() {
    let fx = Fixture::new();
    let out = fx.plan("table");
    assert_exit(&out, 0);
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn an_unchanged_app_plans_without_processes_or_hashing() {
    let fx = Fixture::new();
    let first = fx.json();
    assert!(
        first["stats"]["detect_ran"].as_u64().unwrap() > 0,
        "{}",
        first["stats"]
    );
    assert!(first["stats"]["hashed"].as_u64().unwrap() > 0);
    let second = fx.json();
    assert_eq!(second["stats"]["detect_ran"], 0, "{}", second["stats"]);
    assert_eq!(second["stats"]["hashed"], 0, "{}", second["stats"]);
    assert_eq!(second["stats"]["files"], first["stats"]["files"]);
    assert_eq!(keys(&first), keys(&second));
}

#[test]
fn a_changed_lock_file_changes_only_the_layers_that_read_it_and_what_follows() {
    let fx = Fixture::new();
    let before = keys(&fx.json());
    std::fs::write(fx.path("examples/apps/hello/greeter.lock"), "polite 1.1\n").unwrap();
    let after = keys(&fx.json());
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.as_str())
        .collect();
    let ids: Vec<&str> = before.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        ids.contains(&"examples/runtime:greeter") && ids.contains(&"examples/runtime:tools"),
        "{ids:?}"
    );
    for unchanged in ["examples/runtime:greeter", "examples/runtime:tools"] {
        assert!(
            !changed.contains(&unchanged),
            "{unchanged} must keep its key: {changed:?}"
        );
    }
    for rebuilt in [
        "examples/runtime:phrases",
        "examples/procfile (bin/build)",
        "app",
        "image",
    ] {
        assert!(
            changed.contains(&rebuilt),
            "{rebuilt} must change: {changed:?}"
        );
    }
}

#[test]
fn dot_output_is_a_graph_of_every_task() {
    let fx = Fixture::new();
    let out = fx.plan("dot");
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("digraph plan {"), "{text}");
    assert!(text.contains("examples/runtime:phrases"));
    assert!(text.contains(" -> "));
    if let Ok(dot) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        let mut dot = dot;
        dot.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(
            dot.wait_with_output().unwrap().status.success(),
            "Graphviz reads the plan"
        );
    }
}

#[test]
fn a_layer_needing_a_layer_no_buildpack_declares_is_an_error_at_that_line() {
    let fx = Fixture::new();
    let toml = fx.path("examples/buildpacks/procfile/buildpack.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    std::fs::create_dir_all(fx.path("examples/buildpacks/procfile/layers")).unwrap();
    let script = fx.path("examples/buildpacks/procfile/layers/x.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    assert!(
        Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap()
            .success()
    );
    text.push_str("\n[[metadata.strata.layers]]\nname = \"x\"\nneeds = [\"examples/runtime:nope\"]\nrun = \"layers/x.sh\"\n");
    std::fs::write(&toml, &text).unwrap();
    let out = fx.plan("table");
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("examples/runtime:nope"), "{err}");
    assert!(err.contains("buildpack.toml"), "{err}");
}

#[test]
fn after_a_build_the_plan_shows_cached_tasks_and_why_others_run() {
    let fx = Fixture::new();
    let app = fx.path("examples/apps/hello");
    let builder = fx.path("examples/builder.toml");
    let cache = fx.path("cache");
    let out = format!("oci:{}:hello", fx.path("out").display());
    let built = strata(
        fx.tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &out,
        ],
    );
    assert_exit(&built, 0);
    // The image task's key covers the run image name the image records, which the build
    // records from the directory holding its output: the plan is told the same output.
    let plan = fx.json_with(&["--output", &out]);
    let statuses: Vec<&str> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == "cached"), "{statuses:?}");

    std::fs::write(fx.path("examples/apps/hello/greeter.lock"), "polite 1.1\n").unwrap();
    let plan = fx.json_with(&["--output", &out]);
    let reason = |id: &str| {
        let task = plan["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone();
        (
            task["status"].as_str().unwrap().to_owned(),
            task["reason"].clone(),
        )
    };
    assert_eq!(reason("examples/runtime:greeter").0, "cached");
    assert_eq!(
        reason("examples/runtime:phrases"),
        (
            "will-run".to_owned(),
            serde_json::json!({"reason": "input-changed", "detail": "greeter.lock"})
        )
    );
    assert_eq!(
        reason("image").1,
        serde_json::json!({"reason": "needs-rebuilt", "detail": "app"})
    );
}
