//! The env buildpacks get in a real sandboxed build: user values win over what earlier
//! buildpacks set, a user's value of a path variable is prepended (the build keeps its
//! tools), `clear-env` buildpacks get no user value but still the platform's files; and
//! service bindings (`--binding NAME=DIR`): read by detect and build, read-only, never in the
//! image or the store, part of the keys of the tasks that see them.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A CNB buildpack `id` in `root/<dir>` with these `bin/detect` and `bin/build` scripts.
fn buildpack(root: &Path, id: &str, extra: &str, detect: &str, build: &str) -> PathBuf {
    let dir = root.join(id.replace('/', "_"));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"1\"\n{extra}"),
    )
    .unwrap();
    for (name, script) in [("detect", detect), ("build", build)] {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    dir
}

/// A launch layer `report` holding `report.txt` with what `lines` print.
fn report_layer(lines: &str) -> String {
    format!(
        "mkdir -p \"$1/report\"\nprintf '[types]\\nlaunch = true\\n' > \"$1/report.toml\"\n{{\n{lines}\n}} > \"$1/report/report.txt\""
    )
}

struct Fixture {
    tmp: tempfile::TempDir,
    app: PathBuf,
    buildpacks: Vec<PathBuf>,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("main.txt"), "hello\n").unwrap();
        date_in_the_past(&app);
        Self {
            tmp,
            app,
            buildpacks: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `strata <command>` of the app with the buildpacks, the fixture's cache and `extra`.
    fn run(&self, command: &str, extra: &[&str]) -> std::process::Output {
        let cache = self.path("cache");
        let mut args = vec![command, self.app.to_str().unwrap()];
        for bp in &self.buildpacks {
            args.extend(["--buildpack", bp.to_str().unwrap()]);
        }
        args.extend(["--cache-dir", cache.to_str().unwrap()]);
        args.extend_from_slice(extra);
        strata(self.tmp.path(), &args)
    }

    /// Builds into `oci:out:app` (uncompressed, so that the blobs can be searched); returns
    /// the tasks by id and status.
    fn build(&self, extra: &[&str]) -> Vec<(String, String)> {
        let out = format!("oci:{}:app", self.path("out").display());
        let mut args = vec!["--output", &out, "--compression", "none", "--json"];
        args.extend_from_slice(extra);
        let result = self.run("build", &args);
        assert_exit(&result, 0);
        let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// `report.txt` of `buildpack`'s report layer in the built image.
    fn report(&self, buildpack: &str) -> String {
        let bundle = self.path("bundle");
        let _ = std::fs::remove_dir_all(&bundle);
        tool(
            "umoci",
            &[
                "unpack",
                "--image",
                &format!("{}:app", self.path("out").display()),
                bundle.to_str().unwrap(),
            ],
        );
        let path = bundle.join(format!(
            "rootfs/layers/{}/report/report.txt",
            buildpack.replace('/', "_")
        ));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// `test/tools` gives later buildpacks a tool on `PATH` and overrides `MODE`; `test/report`
/// reports what it gets; `test/clear` (`clear-env = true`) too.
fn env_fixture() -> Fixture {
    let mut fx = Fixture::new();
    let root = fx.path("buildpacks");
    fx.buildpacks = vec![
        buildpack(
            &root,
            "test/tools",
            "",
            "exit 0",
            "mkdir -p \"$1/tools/bin\" \"$1/tools/env.build\"\n\
             printf '#!/bin/sh\\necho tool-ran\\n' > \"$1/tools/bin/mytool\"\n\
             chmod +x \"$1/tools/bin/mytool\"\n\
             printf buildpack > \"$1/tools/env.build/MODE.override\"\n\
             printf '[types]\\nbuild = true\\n' > \"$1/tools.toml\"",
        ),
        buildpack(
            &root,
            "test/report",
            "",
            // `cat` from the build image's PATH, as a user's PATH must not take it away.
            "cat /dev/null",
            &report_layer(
                "echo \"PATH=$PATH\"\necho \"MODE=$MODE\"\necho \"tool=$(mytool)\"\n\
                 echo \"api=$CNB_PLATFORM_API\"\necho \"home=$HOME\"",
            ),
        ),
        buildpack(
            &root,
            "test/clear",
            "clear-env = true\n",
            "exit 0",
            &report_layer(
                "echo \"MODE=${MODE-unset}\"\necho \"EXTRA=${EXTRA-unset}\"\n\
                 echo \"file=$(cat \"$CNB_PLATFORM_DIR/env/EXTRA\")\"",
            ),
        ),
    ];
    fx
}

#[test]
fn a_users_path_is_prepended_and_user_values_beat_buildpack_overrides() {
    let fx = env_fixture();
    fx.build(&["--env", "PATH=/x", "--env", "MODE=user", "--env", "EXTRA=e"]);
    let report = fx.report("test/report");
    assert!(
        report.contains(
            "PATH=/x:/layers/test_tools/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        ),
        "{report}"
    );
    assert!(report.contains("tool=tool-ran\n"), "{report}");
    assert!(report.contains("MODE=user\n"), "{report}");
    assert!(report.contains("api=0.15\n"), "{report}");
    assert!(report.contains("home=/home/cnb\n"), "{report}");

    // clear-env: no user value in the process env, the earlier buildpack's value stays, and
    // the platform's env files are still there.
    let clear = fx.report("test/clear");
    assert!(clear.contains("MODE=buildpack\n"), "{clear}");
    assert!(clear.contains("EXTRA=unset\n"), "{clear}");
    assert!(clear.contains("file=e\n"), "{clear}");
}

const SECRET: &str = "hunter2-Zq8-s3cret";

/// `test/bound` passes detect only when it can read the binding `db`'s type, and reports what
/// its build sees of the binding (never the secret itself).
fn binding_fixture() -> Fixture {
    let mut fx = Fixture::new();
    fx.buildpacks = vec![buildpack(
        &fx.path("buildpacks"),
        "test/bound",
        "",
        "[ \"$(cat \"$SERVICE_BINDING_ROOT/db/type\")\" = postgresql ] || exit 100",
        &report_layer(
            "echo \"root=$SERVICE_BINDING_ROOT\"\n\
             echo \"type=$(cat \"$CNB_PLATFORM_DIR/bindings/db/type\")\"\n\
             echo \"provider=$(cat \"$SERVICE_BINDING_ROOT/db/provider\")\"\n\
             echo \"password-bytes=$(wc -c < \"$SERVICE_BINDING_ROOT/db/password\")\"\n\
             if touch \"$SERVICE_BINDING_ROOT/db/new\" 2>/dev/null; then echo writable; else echo read-only; fi",
        ),
    )];
    let db = fx.path("bindings/db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("type"), "postgresql").unwrap();
    std::fs::write(db.join("provider"), "acme").unwrap();
    std::fs::write(db.join("password"), SECRET).unwrap();
    fx
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && std::fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

fn status<'a>(tasks: &'a [(String, String)], id: &str) -> &'a str {
    tasks
        .iter()
        .find(|(t, _)| t == id)
        .map_or_else(|| panic!("no task {id} in {tasks:?}"), |(_, s)| s.as_str())
}

#[test]
fn detect_and_build_read_a_binding_that_is_never_stored_and_keys_its_tasks() {
    let fx = binding_fixture();
    let db = fx.path("bindings/db");
    let binding = format!("db={}", db.display());
    let plan = fx.run("plan", &["--binding", &binding]);
    assert_exit(&plan, 0);

    let tasks = fx.build(&["--binding", &binding]);
    assert_eq!(status(&tasks, "test/bound (bin/build)"), "ran");
    let report = fx.report("test/bound");
    assert_eq!(
        report,
        format!(
            "root=/platform/bindings\ntype=postgresql\nprovider=acme\npassword-bytes={}\nread-only\n",
            SECRET.len()
        )
    );
    assert!(!db.join("new").exists());

    // The type is in the image (the report holds it), the secret nowhere.
    assert!(!files_holding(&fx.path("out"), b"postgresql").is_empty());
    for dir in ["out", "cache", "bundle"] {
        let found = files_holding(&fx.path(dir), SECRET.as_bytes());
        assert!(found.is_empty(), "the secret is in {found:?}");
    }

    let tasks = fx.build(&["--binding", &binding]);
    assert_eq!(status(&tasks, "test/bound (bin/build)"), "cached");
    std::fs::write(db.join("password"), format!("{SECRET}-rotated")).unwrap();
    let plan = fx.run("plan", &["--binding", &binding]);
    assert_exit(&plan, 0);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("bindings changed"), "{plan}");
    let tasks = fx.build(&["--binding", &binding]);
    assert_eq!(
        status(&tasks, "test/bound (bin/build)"),
        "ran",
        "a changed binding"
    );
    assert!(
        fx.report("test/bound")
            .contains(&format!("password-bytes={}\n", SECRET.len() + 8))
    );
}

#[test]
fn bad_bindings_are_refused_before_anything_runs() {
    let fx = binding_fixture();
    let db = fx.path("bindings/db");
    let untyped = fx.path("bindings/untyped");
    std::fs::create_dir_all(&untyped).unwrap();
    std::fs::write(untyped.join("password"), "x").unwrap();
    let cases = [
        (format!("db={}", untyped.display()), "has no `type` file"),
        (
            format!("db={}", db.join("password").display()),
            "is not a directory",
        ),
        (
            format!("db={}", fx.path("missing").display()),
            "is not a directory",
        ),
        (format!("../db={}", db.display()), "binding name `../db`"),
        (format!(".db={}", db.display()), "binding name `.db`"),
        ("db".to_owned(), "give NAME=DIR"),
    ];
    for (arg, message) in cases {
        for command in ["build", "plan"] {
            let out = fx.run(command, &["--binding", &arg]);
            assert_exit(&out, 2);
            assert!(
                stderr(&out).contains(message),
                "{command} --binding {arg}: {}",
                stderr(&out)
            );
        }
    }
    let twice = format!("db={}", db.display());
    let out = fx.run("plan", &["--binding", &twice, "--binding", &twice]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("given twice"), "{}", stderr(&out));
    assert!(!fx.path("out").exists());
}

#[test]
fn a_workspace_names_bindings_inside_it_and_a_flag_replaces_one() {
    let fx = binding_fixture();
    std::fs::write(
        fx.path("strata.toml"),
        "[workspace]\nbindings = { db = \"bindings/db\" }\n[[service]]\npath = \"app\"\n",
    )
    .unwrap();
    let bp = fx.buildpacks[0].to_str().unwrap().to_owned();
    let cache = fx.path("cache");
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", ".", "--buildpack", &bp, "--cache-dir"];
        args.push(cache.to_str().unwrap());
        args.extend_from_slice(extra);
        strata(fx.tmp.path(), &args)
    };
    assert_exit(&plan(&[]), 0);
    // A flag of the same name wins: this one has another type, so detect fails.
    let other = fx.path("other/db");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("type"), "mysql").unwrap();
    let out = plan(&["--binding", &format!("db={}", other.display())]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("no buildpack group passed"),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        fx.path("strata.toml"),
        "[workspace]\nbindings = { db = \"/etc\" }\n[[service]]\npath = \"app\"\n",
    )
    .unwrap();
    let out = plan(&[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("binding `db`"), "{}", stderr(&out));
}
