//! Build images: with `--build-image oci:DIR:TAG`, buildpacks run on that image's root
//! filesystem (unpacked into the store once), not the host's: they see its os-release and its
//! tools, none of the host's, as its CNB user; its manifest digest is in every task key.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::runimage::RunImageCopy;
use common::*;

/// A build image: the example busybox image with an os-release of its own, a tool the host
/// has not, and the CNB user 1234:1235 (with a file only it may read); `marker` goes into one more file, so that two images
/// differ in one file.
fn build_image(root: &Path, name: &str, marker: &str) -> String {
    let image = RunImageCopy::new(root, name).layer("build image", |rootfs| {
        std::fs::write(
            rootfs.join("etc/os-release"),
            "ID=strata-test\nVERSION_ID=1\n",
        )
        .unwrap();
        let tool = rootfs.join("usr/bin/only-in-build-image");
        std::fs::write(&tool, "#!/bin/sh\necho tool-ran\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(rootfs.join("etc/marker"), marker).unwrap();
        // Readable by the image's CNB user only.
        let private = rootfs.join("etc/cnb-private");
        std::fs::write(&private, "mine\n").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&private, Some(1234), Some(1235)).unwrap();
    });
    let reference = image.reference();
    let dir = reference
        .strip_prefix("oci:")
        .unwrap()
        .strip_suffix(":busybox")
        .unwrap();
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{dir}:busybox"),
            "--config.env",
            "CNB_USER_ID=1234",
            "--config.env",
            "CNB_GROUP_ID=1235",
            "--config.env",
            "BUILD_IMAGE_VAR=from-the-image",
        ],
    );
    reference
}

/// A buildpack whose build records what it sees into launch layer `l`.
fn probe_buildpack(root: &Path) -> PathBuf {
    let dir = root.join("probe");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"test/probe\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let build = r#"set -e
l="$1/l"; mkdir -p "$l"
cat /etc/os-release > "$l/os-release"
only-in-build-image > "$l/tool"
{ test -e /etc/debian_version || test -e /usr/bin/apt; } && echo present > "$l/host" || echo absent > "$l/host"
id -u > "$l/uid"; id -g > "$l/gid"
echo "$CNB_TARGET_DISTRO_NAME $CNB_TARGET_DISTRO_VERSION" > "$l/distro"
echo "$BUILD_IMAGE_VAR" > "$l/var"
cat /etc/cnb-private > "$l/private"
printf '[types]\nlaunch = true\n' > "$1/l.toml"
"#;
    for (script, body) in [("detect", "exit 0\n"), ("build", build)] {
        let path = dir.join("bin").join(script);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn app(root: &Path) -> PathBuf {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    app
}

#[test]
fn buildpacks_run_on_the_build_image_not_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "build-image", "one");
    let bp = probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let out = tmp.path().join("out");
    let output = format!("oci:{}:app", out.display());
    let result = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--build-image",
            &image,
            "--output",
            &output,
        ],
    );
    assert_exit(&result, 0);
    assert!(
        !stderr(&result).contains("not hermetic"),
        "{}",
        stderr(&result)
    );
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", out.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let layer = bundle.join("rootfs/layers/test_probe/l");
    let read = |name: &str| std::fs::read_to_string(layer.join(name)).unwrap();
    assert_eq!(read("os-release"), "ID=strata-test\nVERSION_ID=1\n");
    assert_eq!(read("tool"), "tool-ran\n");
    assert_eq!(read("host"), "absent\n");
    assert_eq!(read("uid"), "1234\n");
    assert_eq!(read("gid"), "1235\n");
    // The built-in base names no distro: the build image's os-release does.
    assert_eq!(read("distro"), "strata-test 1\n");
    assert_eq!(read("var"), "from-the-image\n");
    assert_eq!(
        read("private"),
        "mine\n",
        "what the image's CNB user owns, it owns"
    );
}

#[test]
fn without_a_build_image_the_build_says_it_is_not_hermetic() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let result = strata(
        tmp.path(),
        &[
            "plan",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
        ],
    );
    assert_exit(&result, 0);
    assert_eq!(
        stderr(&result).matches("not hermetic").count(),
        1,
        "{}",
        stderr(&result)
    );
}

#[test]
fn the_build_images_content_keys_every_buildpack_task() {
    let tmp = tempfile::tempdir().unwrap();
    let one = build_image(tmp.path(), "one", "one");
    let changed = build_image(tmp.path(), "changed", "two");
    let bp = probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let cache = tmp.path().join("cache");
    let keys = |image: &str| {
        let result = strata(
            tmp.path(),
            &[
                "plan",
                app.to_str().unwrap(),
                "--buildpack",
                bp.to_str().unwrap(),
                "--build-image",
                image,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--format",
                "json",
            ],
        );
        assert_exit(&result, 0);
        let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        let detect_ran = json["stats"]["detect_ran"].as_u64().unwrap();
        let keys: Vec<(String, String)> = json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "buildpack")
            .map(|t| {
                (
                    t["key"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(!keys.is_empty());
        (keys, detect_ran)
    };
    let out = tmp.path().join("out");
    let output = format!("oci:{}:app", out.display());
    let built = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--build-image",
            &one,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &output,
        ],
    );
    assert_exit(&built, 0);
    let (first, detect_ran) = keys(&one);
    assert!(
        first.iter().all(|(_, s)| s == "cached"),
        "unchanged: hits {first:?}"
    );
    assert_eq!(detect_ran, 0, "unchanged: detect is a hit too");
    let (other, detect_ran) = keys(&changed);
    assert_eq!(detect_ran, 1, "another build image: detect runs on it");
    for (key, status) in &other {
        assert!(
            !first.iter().any(|(k, _)| k == key),
            "one file changed: every key changes"
        );
        assert_ne!(status, "cached", "and every buildpack task reruns");
    }
    let (host, _) = keys("host");
    assert!(host.iter().all(|(k, _)| !first.iter().any(|(f, _)| f == k)));
    // Unpacked once per image, however often planned.
    let rootfs = std::fs::read_dir(cache.join("store/rootfs")).map(|d| {
        d.filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
    });
    assert_eq!(rootfs.ok(), Some(2));
}

/// The paths of the image's layer blobs, bottom first.
fn layer_blobs(reference: &str) -> Vec<PathBuf> {
    let dir = Path::new(
        reference
            .strip_prefix("oci:")
            .unwrap()
            .strip_suffix(":busybox")
            .unwrap(),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        dir.join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "busybox")
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(manifest["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_corrupt_build_image_layer_is_refused_and_leaves_no_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "build-image", "one");
    // One byte of the top layer flipped, its size kept.
    let blob = layer_blobs(&image).pop().unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let bp = probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let cache = tmp.path().join("cache");
    let result = strata(
        tmp.path(),
        &[
            "plan",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--build-image",
            &image,
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_exit(&result, 2);
    assert!(
        stderr(&result).contains("build image"),
        "{}",
        stderr(&result)
    );
    let left: Vec<_> = std::fs::read_dir(cache.join("store/rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_builders_oci_build_image_is_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "build-image", "one");
    probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let builder = tmp.path().join("builder.toml");
    std::fs::write(
        &builder,
        format!(
            "[[buildpacks]]\nuri = \"probe\"\n\n[[order]]\n[[order.group]]\nid = \"test/probe\"\n\n\
             [build]\nimage = \"{image}\"\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let output = format!("oci:{}:app", out.display());
    let args = [
        "build",
        app.to_str().unwrap(),
        "--builder",
        builder.to_str().unwrap(),
        "--output",
        &output,
    ];
    let result = strata(tmp.path(), &args);
    assert_exit(&result, 0);
    assert!(
        !stderr(&result).contains("not hermetic"),
        "{}",
        stderr(&result)
    );
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", out.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let seen = std::fs::read_to_string(bundle.join("rootfs/layers/test_probe/l/os-release"));
    assert_eq!(seen.unwrap(), "ID=strata-test\nVERSION_ID=1\n");
    // `--build-image host` asks for the host's directories.
    let mut host = args.to_vec();
    host.extend(["--build-image", "host"]);
    let result = strata(tmp.path(), &host);
    assert!(
        stderr(&result).contains("not hermetic"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn a_build_image_needs_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "build-image", "one");
    let bp = probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let result = strata(
        tmp.path(),
        &[
            "plan",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--build-image",
            &image,
            "--sandbox",
            "none",
        ],
    );
    assert_exit(&result, 2);
    assert!(
        stderr(&result).contains("--sandbox none"),
        "{}",
        stderr(&result)
    );
}

/// A build image whose config names its build user `user` (and sets `env`), with the users
/// `builder` (1234:1235) and group `builders` (1236) in its own /etc/passwd and /etc/group.
fn named_user_image(root: &Path, name: &str, user: &str, env: &[&str]) -> String {
    let image = RunImageCopy::new(root, name)
        .layer("build user", |rootfs| {
            let append = |file: &str, line: &str| {
                let path = rootfs.join(file);
                let mut text = std::fs::read_to_string(&path).unwrap_or_default();
                text.push_str(line);
                std::fs::write(&path, text).unwrap();
            };
            append("etc/passwd", "builder:x:1234:1235::/home/builder:/bin/sh\n");
            append("etc/group", "builders:x:1236:builder\n");
            std::fs::write(rootfs.join("etc/os-release"), "ID=strata-test\n").unwrap();
            let tool = rootfs.join("usr/bin/only-in-build-image");
            std::fs::write(&tool, "#!/bin/sh\necho tool-ran\n").unwrap();
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
            let private = rootfs.join("etc/cnb-private");
            std::fs::write(&private, "mine\n").unwrap();
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&private, Some(1234), Some(1235)).unwrap();
        })
        .user(user);
    let reference = image.reference();
    let dir = reference.strip_prefix("oci:").unwrap();
    // Without the example image's CNB_USER_ID/CNB_GROUP_ID: only `env`.
    let mut args = vec!["config", "--image", dir, "--clear=config.env"];
    args.extend(["--config.env", "PATH=/usr/bin:/bin"]);
    for var in env {
        args.extend(["--config.env", var]);
    }
    tool("umoci", &args);
    reference
}

/// Builds the probe on `image`; the uid and gid it ran as, or the failed run.
fn build_as(root: &Path, image: &str) -> Result<String, std::process::Output> {
    let bp = probe_buildpack(root);
    let app = app(root);
    let out = root.join("out");
    let output = format!("oci:{}:app", out.display());
    let result = strata(
        root,
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--build-image",
            image,
            "--output",
            &output,
        ],
    );
    if !result.status.success() {
        return Err(result);
    }
    let bundle = root.join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", out.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let layer = bundle.join("rootfs/layers/test_probe/l");
    let read = |name: &str| std::fs::read_to_string(layer.join(name)).unwrap();
    assert_eq!(read("private"), "mine\n", "the build user owns its files");
    Ok(format!("{}:{}", read("uid").trim(), read("gid").trim()))
}

#[test]
fn a_build_user_by_name_is_looked_up_in_the_images_passwd_and_group() {
    let tmp = tempfile::tempdir().unwrap();
    for (user, expected) in [("builder", "1234:1235"), ("builder:builders", "1234:1236")] {
        let name = format!("image-{}", user.replace(':', "-"));
        let image = named_user_image(tmp.path(), &name, user, &[]);
        assert_eq!(build_as(tmp.path(), &image).unwrap(), expected, "{user}");
    }
    // A name the image does not know: the image's CNB_USER_ID/CNB_GROUP_ID, else an error.
    let image = named_user_image(
        tmp.path(),
        "image-env",
        "nobody-here",
        &["CNB_USER_ID=1234", "CNB_GROUP_ID=1235"],
    );
    assert_eq!(build_as(tmp.path(), &image).unwrap(), "1234:1235");
    let image = named_user_image(tmp.path(), "image-unknown", "nobody-here", &[]);
    let failed = build_as(tmp.path(), &image).unwrap_err();
    assert_exit(&failed, 2);
    // One line, as miette wraps it.
    let err = stderr(&failed).replace('│', " ");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        err.contains(&format!("build image `{image}` runs as User `nobody-here`"))
            && err.contains("no user `nobody-here`"),
        "{err}"
    );
}

#[test]
fn errors_about_a_build_image_name_it() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "build-image", "one");
    let bp = probe_buildpack(tmp.path());
    let app = app(tmp.path());
    let plan = |image: &str| {
        strata(
            tmp.path(),
            &[
                "plan",
                app.to_str().unwrap(),
                "--buildpack",
                bp.to_str().unwrap(),
                "--build-image",
                image,
            ],
        )
    };
    let untagged = image.replace(":busybox", ":nosuchtag");
    // One line, as miette wraps it.
    let said = |result: &std::process::Output| {
        let err = stderr(result).replace('│', " ");
        err.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let result = plan(&untagged);
    assert_exit(&result, 2);
    let err = said(&result);
    assert!(
        err.contains(&format!("cannot load build image `{untagged}`")),
        "{err}"
    );
    assert!(!err.contains("run image"), "{err}");
    // A layer blob gone.
    let blob = layer_blobs(&image).pop().unwrap();
    std::fs::remove_file(&blob).unwrap();
    let result = plan(&image);
    assert_exit(&result, 2);
    let err = said(&result);
    assert!(
        err.contains(&format!("build image `{image}` is incomplete")),
        "{err}"
    );
    assert!(!err.contains("run image"), "{err}");
}
