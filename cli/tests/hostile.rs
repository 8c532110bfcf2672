//! `strata build` against a hostile buildpack and a tampered store, in the real sandbox:
//! links a buildpack leaves for strata to follow on the host are refused, naming the
//! buildpack and the file, and no host content reaches the image, the layout or the store;
//! a store entry whose paths leave the workspace deletes nothing outside it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// An opaque buildpack `t/evil` in `dir` that passes detection and runs `script` as its
/// `bin/build` (`$1` is its layers directory); it may write `CycloneDX` SBOMs.
fn opaque_buildpack(dir: &Path, script: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/evil\"\nversion = \"1\"\n\
         sbom-formats = [\"application/vnd.cyclonedx+json\"]\n",
    )
    .unwrap();
    for (name, body) in [("detect", "exit 0"), ("build", script)] {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    dir.to_owned()
}

/// `strata build app --buildpack bp` into `out` with the store in `cache`; the process's
/// environment holds `env_marker`.
fn build(root: &Path, app: &Path, bp: &Path, env_marker: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
        ])
        .arg("--cache-dir")
        .arg(root.join("cache"))
        .arg("--output")
        .arg(format!("oci:{}:app", root.join("out").display()))
        .arg("--json")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("STRATA_TEST_CREDENTIAL", env_marker)
        .current_dir(root)
        .output()
        .unwrap()
}

/// Every file under `dir` (blobs, index, store entries) that contains `needle`, gunzipping
/// gzip blobs first.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    snapshot_tree(dir)
        .into_iter()
        .filter(|(_, bytes)| {
            let mut text = bytes.clone();
            if bytes.starts_with(&[0x1f, 0x8b]) {
                let mut plain = Vec::new();
                let _ = std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(bytes.as_slice()),
                    &mut plain,
                );
                text = plain;
            }
            text.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn links_a_buildpack_leaves_are_refused_and_nothing_of_the_host_leaks() {
    let env_marker = "env-marker-5f1c9e";
    let file_marker = "file-marker-a83d20";
    let layer = "printf '[types]\\nlaunch = true\\n' > \"$1/web.toml\"\nmkdir -p \"$1/web\"";
    let cases = [
        (
            "env.launch/X",
            format!(
                "{layer}\nmkdir -p \"$1/web/env.launch\"\nln -s /proc/self/environ \"$1/web/env.launch/X\""
            ),
        ),
        (
            "env.launch/SECRET",
            format!(
                "{layer}\nmkdir -p \"$1/web/env.launch\"\nln -s \"$SECRET\" \"$1/web/env.launch/SECRET\""
            ),
        ),
        (
            "env.launch",
            format!("{layer}\nln -s \"$SECRET_DIR\" \"$1/web/env.launch\""),
        ),
        (
            "launch.sbom.cdx.json",
            "ln -s \"$SECRET\" \"$1/launch.sbom.cdx.json\"".to_owned(),
        ),
        (
            "web.sbom.cdx.json",
            format!("{layer}\nln -s \"$SECRET\" \"$1/web.sbom.cdx.json\""),
        ),
        ("web.toml", "ln -s \"$SECRET\" \"$1/web.toml\"".to_owned()),
        (
            "launch.toml",
            "ln -s \"$SECRET\" \"$1/launch.toml\"".to_owned(),
        ),
    ];
    for (file, script) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let secret_dir = root.join("host-secrets");
        std::fs::create_dir_all(&secret_dir).unwrap();
        let secret = secret_dir.join("SECRET");
        std::fs::write(&secret, format!("labels = [{{ key = \"k\", value = \"{file_marker}\" }}]\n[types]\nlaunch = true\n[metadata]\nm = \"{file_marker}\"\n")).unwrap();
        let app = root.join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("index.txt"), "app").unwrap();
        let script = format!(
            "SECRET='{}'\nSECRET_DIR='{}'\n{script}",
            secret.display(),
            secret_dir.display()
        );
        let bp = opaque_buildpack(&root.join("bp"), &script);

        let out = build(root, &app, &bp, env_marker);
        let err = stderr(&out);
        assert!(!out.status.success(), "{file}: the build succeeded\n{err}");
        assert_ne!(
            out.status.code(),
            Some(101),
            "{file}: strata panicked\n{err}"
        );
        assert!(
            err.contains("t/evil") && err.contains(file) && err.contains("symlink"),
            "{file}: the error must name the buildpack, the file and the link\n{err}"
        );
        for marker in [env_marker, file_marker] {
            for dir in [root.join("out"), root.join("cache")] {
                let found = files_containing(&dir, marker);
                assert!(found.is_empty(), "{file}: host content in {found:?}");
            }
        }
    }
}

#[test]
fn a_fifo_a_buildpack_leaves_fails_the_build_instead_of_hanging_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.txt"), "app").unwrap();
    let bp = opaque_buildpack(&root.join("bp"), "mkfifo \"$1/launch.toml\"");
    let out = build(root, &app, &bp, "-");
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("t/evil") && err.contains("launch.toml") && err.contains("not a regular file"),
        "{err}"
    );
}

/// The store entries under `cache` whose text contains `needle`.
fn entries_containing(cache: &Path, needle: &str) -> Vec<PathBuf> {
    snapshot_tree(&cache.join("store/actions"))
        .into_iter()
        .filter(|(_, bytes)| String::from_utf8_lossy(bytes).contains(needle))
        .map(|(path, _)| PathBuf::from(path))
        .collect()
}

#[test]
fn a_stored_deletion_outside_the_workspace_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let victim = root.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.txt"), "app").unwrap();
    std::fs::write(app.join("gone-file"), "deleted by the build").unwrap();
    date_in_the_past(&app);
    let bp = opaque_buildpack(
        &root.join("bp"),
        "rm /workspace/gone-file\necho made > /workspace/made",
    );

    let first = build(root, &app, &bp, "-");
    assert_exit(&first, 0);
    let entries = entries_containing(&root.join("cache"), "\"gone-file\"");
    assert_eq!(entries.len(), 1, "one entry records the deletion");
    // A shared cache serves this entry: its deletion now climbs out of the workspace.
    let escape = format!(
        "{}{}",
        "../".repeat(40),
        victim.display().to_string().trim_start_matches('/')
    );
    let text = std::fs::read_to_string(&entries[0]).unwrap();
    std::fs::write(
        &entries[0],
        text.replace("\"gone-file\"", &format!("{escape:?}")),
    )
    .unwrap();

    // Without its output the build exports again, replaying each task's stored change.
    std::fs::remove_dir_all(root.join("out")).unwrap();
    let second = build(root, &app, &bp, "-");
    assert!(
        victim.join("precious").exists(),
        "a store entry deleted a host directory\n{}",
        stderr(&second)
    );
    // A miss: the buildpack runs again and the image is the same.
    assert_exit(&second, 0);
    let digest = |out: &Output| {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["digest"].as_str().unwrap().to_owned()
    };
    assert_eq!(digest(&first), digest(&second));
}

#[test]
fn a_project_names_buildpacks_inside_the_app_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let outside = opaque_buildpack(&root.join("outside-bp"), "true");
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.txt"), "app").unwrap();
    opaque_buildpack(&app.join(".bp"), "true");
    std::os::unix::fs::symlink(&outside, app.join("linked-bp")).unwrap();
    let plan = |uri: &str| {
        std::fs::write(
            app.join("project.toml"),
            format!("[_]\nschema-version = \"0.2\"\n[[io.buildpacks.group]]\nuri = \"{uri}\"\n"),
        )
        .unwrap();
        strata(root, &["plan", app.to_str().unwrap()])
    };
    for uri in [
        "../outside-bp".to_owned(),
        outside.display().to_string(),
        format!("file://{}", outside.display()),
        "linked-bp".to_owned(),
    ] {
        let out = plan(&uri);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{uri}: planned with a buildpack outside the app"
        );
        assert!(
            err.contains("project.toml") && err.contains("inside the app"),
            "{uri}: {err}"
        );
    }
    assert_exit(&plan(".bp"), 0);
}

#[test]
fn a_service_outside_the_repository_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("services/web")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::os::unix::fs::symlink(root.join("outside"), repo.join("services/evil")).unwrap();
    for (services, table, line) in [
        (
            "",
            "[[service]]\nname = \"x\"\npath = \"../outside\"\n",
            "5 │",
        ),
        (
            "",
            "[[service]]\nname = \"x\"\npath = \"/etc/ssh\"\n",
            "5 │",
        ),
        ("services = [\"services/*\"]\n", "", "3 │"),
    ] {
        std::fs::write(
            repo.join("strata.toml"),
            format!("[workspace]\noutput = \"oci:out\"\n{services}{table}"),
        )
        .unwrap();
        let out = strata(&repo, &["plan", "."]);
        let err = stderr(&out);
        assert_exit(&out, 2);
        assert!(
            err.contains("strata.toml") && err.contains("outside") && err.contains(line),
            "{services}{table}: {err}"
        );
    }
}

#[test]
fn a_detect_plan_linked_to_a_host_file_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let marker = "plan-marker-7c2b91";
    let secret = root.join("secret.toml");
    std::fs::write(
        &secret,
        format!("[[provides]]\nname = \"{marker}\"\n[[requires]]\nname = \"{marker}\"\n"),
    )
    .unwrap();
    let bp = opaque_buildpack(&root.join("bp"), "true");
    std::fs::write(
        bp.join("bin/detect"),
        format!(
            "#!/bin/sh\nrm -f \"$2\"\nln -s '{}' \"$2\"\nexit 0\n",
            secret.display()
        ),
    )
    .unwrap();
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.txt"), "app").unwrap();
    let out = strata(
        root,
        &[
            "plan",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
        ],
    );
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("symlink"), "{all}");
    assert!(!all.contains(marker), "{all}");
}
