//! Builder images as input: `--builder oci:DIR:TAG` reads a builder as `pack builder create`
//! writes it (labels, `/cnb/order.toml`, `/cnb/run.toml`, `/cnb/build-config/env/`, one layer
//! per buildpack), from its layers unpacked into the store, and runs the buildpacks on it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::builderimage::{
    BuilderImageWriter, DIRECTORY, HARDLINK, REGULAR, SYMLINK, Tar, bash_build_image,
};
use common::*;

/// The example buildpacks the example builder carries.
const EXAMPLE_BUILDPACKS: [&str; 5] = ["node", "runtime", "procfile", "motd", "hello-stack"];

/// A directory with a build image (`build`), the example run image (`run`), and the example
/// app (`app`).
struct Setup {
    tmp: tempfile::TempDir,
    build: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let build = bash_build_image(tmp.path(), "build");
        let run = tmp.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        copy_tree(&run_image_dir(), &run);
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        copy_tree(&examples().join("apps/hello"), &app);
        Self { tmp, build }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// The example builder as an image at `builder`, tag `base`, in pack's shape.
    fn example_builder(&self) -> BuilderImageWriter {
        let mut writer = BuilderImageWriter::new(&self.build, &self.path("builder"), "base");
        for bp in EXAMPLE_BUILDPACKS {
            writer = writer.buildpack(&examples().join("buildpacks").join(bp));
        }
        writer
            .group(&[("examples/node", "0.1.0", false)])
            .group(&[("examples/hello-stack", "0.1.0", false)])
            .run_image("oci:run:busybox")
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        strata(self.tmp.path(), args)
    }

    fn cache(&self) -> String {
        self.path("cache").display().to_string()
    }
}

/// A `builder.toml` in `setup` with the example buildpacks (by absolute path), the orders the
/// example builder image has, and the setup's run and build images.
fn example_builder_toml(setup: &Setup) -> PathBuf {
    let mut uris = String::new();
    for bp in EXAMPLE_BUILDPACKS {
        let dir = examples().join("buildpacks").join(bp);
        writeln!(uris, "[[buildpacks]]\nuri = \"{}\"", dir.display()).unwrap();
    }
    let toml = setup.path("builder.toml");
    std::fs::write(
        &toml,
        format!(
            "{uris}\n[[order]]\n[[order.group]]\nid = \"examples/node\"\nversion = \"0.1.0\"\n\n\
             [[order]]\n[[order.group]]\nid = \"examples/hello-stack\"\nversion = \"0.1.0\"\n\n\
             [run]\n[[run.images]]\nimage = \"oci:run:busybox\"\n\n[build]\nimage = \"oci:build:busybox\"\n"
        ),
    )
    .unwrap();
    toml
}

#[test]
fn a_builder_image_gives_the_same_image_as_its_builder_toml() {
    let setup = Setup::new();
    let toml = example_builder_toml(&setup);
    let image = setup.example_builder().write();

    let build = |builder: &str, out: &str| {
        let output = format!("oci:{}:app", setup.path(out).display());
        let result = setup.run(&[
            "build",
            "app",
            "--builder",
            builder,
            "--output",
            &output,
            "--cache-dir",
            &setup.cache(),
            "--json",
        ]);
        assert_exit(&result, 0);
        assert!(
            !stderr(&result).contains("not hermetic"),
            "{}",
            stderr(&result)
        );
        let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        report["digest"].as_str().unwrap().to_owned()
    };
    let from_toml = build(toml.to_str().unwrap(), "out-toml");
    let from_image = build(&image, "out-image");
    assert_eq!(from_image, from_toml);

    // The image's buildpacks ran: its procfile process is there, and it runs.
    let bundle = setup.path("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", setup.path("out-image").display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(bundle.join("rootfs/cnb/process/web").exists());
    // The tree is in the store, once.
    let rootfs = setup.path("cache/store/rootfs");
    let trees: Vec<_> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert_eq!(trees.len(), 2, "the build image and the builder: {trees:?}");
}

#[test]
fn plan_shows_the_builders_order() {
    let setup = Setup::new();
    // An order of its own: motd alone, where the example builder.toml would pick the
    // composite's group.
    let mut writer = BuilderImageWriter::new(&setup.build, &setup.path("builder"), "base");
    for bp in EXAMPLE_BUILDPACKS {
        writer = writer.buildpack(&examples().join("buildpacks").join(bp));
    }
    let image = writer
        .group(&[("examples/node", "0.1.0", false)])
        .group(&[("examples/motd", "0.1.0", false)])
        .group(&[("examples/hello-stack", "0.1.0", false)])
        .write();
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        &image,
        "--cache-dir",
        &setup.cache(),
        "--format",
        "json",
    ]);
    assert_exit(&result, 0);
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let group: Vec<String> = json["services"][0]["group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bp| bp.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(group, ["examples/motd@0.1.0"]);
}

/// A buildpack whose build writes the values of `vars` into launch layer `l`.
fn env_probe(root: &Path, vars: &[&str]) -> PathBuf {
    let dir = root.join("env-probe");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"test/env-probe\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let mut build = String::from("#!/bin/sh\nset -e\nl=\"$1/l\"; mkdir -p \"$l\"\n");
    for var in vars {
        writeln!(build, "printf '%s' \"${var}\" > \"$l/{var}\"").unwrap();
    }
    build.push_str("printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"\n");
    for (script, body) in [("detect", "#!/bin/sh\nexit 0\n"), ("build", build.as_str())] {
        let path = dir.join("bin").join(script);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// A buildpack with one declared layer `d` that writes `$OPERATOR` into it.
fn declared_probe(root: &Path) -> PathBuf {
    let dir = root.join("declared-probe");
    std::fs::create_dir_all(dir.join("layers")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"test/declared-probe\"\nversion = \"1.0.0\"\n\n\
         [[targets]]\nos = \"linux\"\n\n[metadata.strata.detect]\nfiles = [\"index.txt\"]\n\n\
         [[metadata.strata.layers]]\nname = \"d\"\nrun = \"layers/d.sh\"\nlaunch = true\n",
    )
    .unwrap();
    let script = dir.join("layers/d.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '%s' \"$OPERATOR\" > \"$1/OPERATOR\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn build_config_env_reaches_the_buildpacks() {
    let setup = Setup::new();
    let probe = env_probe(
        setup.tmp.path(),
        &["OPERATOR", "USER_KEPT", "FORCED", "JOINED"],
    );
    let declared = declared_probe(setup.tmp.path());
    let image = BuilderImageWriter::new(&setup.build, &setup.path("builder"), "base")
        .buildpack(&probe)
        .buildpack(&declared)
        .group(&[
            ("test/env-probe", "1.0.0", false),
            ("test/declared-probe", "1.0.0", false),
        ])
        // No suffix is `default` for operator env; `.override` wins over the user.
        .build_config_env("OPERATOR", "from-operator")
        .build_config_env("USER_KEPT", "operator-default")
        .build_config_env("FORCED.override", "operator")
        .build_config_env("JOINED.append", "operator")
        .build_config_env("JOINED.delim", ",")
        .write();
    let output = format!("oci:{}:app", setup.path("out").display());
    let result = setup.run(&[
        "build",
        "app",
        "--builder",
        &image,
        "--env",
        "USER_KEPT=user",
        "--env",
        "FORCED=user",
        "--env",
        "JOINED=user",
        "--output",
        &output,
        "--cache-dir",
        &setup.cache(),
    ]);
    assert_exit(&result, 0);
    let bundle = setup.path("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app", setup.path("out").display()),
            bundle.to_str().unwrap(),
        ],
    );
    let layer = bundle.join("rootfs/layers/test_env-probe/l");
    let read = |name: &str| std::fs::read_to_string(layer.join(name)).unwrap();
    assert_eq!(read("OPERATOR"), "from-operator");
    assert_eq!(read("USER_KEPT"), "user");
    assert_eq!(read("FORCED"), "operator");
    assert_eq!(read("JOINED"), "user,operator");
    let declared = bundle.join("rootfs/layers/test_declared-probe/d/OPERATOR");
    assert_eq!(std::fs::read_to_string(declared).unwrap(), "from-operator");
}

/// `text` without whitespace and the frame miette draws, so that a message matches however
/// the report wrapped it.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !"│╰─▶×".contains(*c))
        .collect()
}

/// Runs `plan` with the builder image `image`, expecting bad input (exit 2) with an error
/// naming the image and containing each of `wanted`.
fn refused(setup: &Setup, image: &str, wanted: &[&str]) -> String {
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        image,
        "--cache-dir",
        &setup.cache(),
    ]);
    assert_exit(&result, 2);
    let err = stderr(&result);
    let dir = image
        .strip_prefix("oci:")
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0;
    assert!(
        squash(&err).contains(&squash(dir)),
        "names the image: {err}"
    );
    for want in wanted {
        assert!(squash(&err).contains(&squash(want)), "{want}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_buildpack_the_order_names_that_the_image_lacks_is_an_error() {
    let setup = Setup::new();
    let image = setup
        .example_builder()
        .group(&[("examples/ghost", "1.0.0", false)])
        .write();
    refused(&setup, &image, &["has no buildpack examples/ghost@1.0.0"]);
}

#[test]
fn a_buildpack_layer_the_image_lacks_is_an_error() {
    let setup = Setup::new();
    let mut writer = setup.example_builder();
    writer.omit_layers.push("examples/motd".to_owned());
    let image = writer.write();
    refused(
        &setup,
        &image,
        &[
            "examples/motd@0.1.0",
            "io.buildpacks.buildpack.layers",
            "not a layer",
        ],
    );
}

#[test]
fn a_buildpack_the_layers_label_lists_but_the_tree_lacks_is_an_error() {
    let setup = Setup::new();
    let mut writer = setup.example_builder();
    // The label lists motd in a layer that exists but holds nothing of it.
    writer.omit_layers.push("examples/motd".to_owned());
    let mut empty = Tar::default();
    empty.dir("/cnb/buildpacks/examples_motd");
    let tar = empty.finish();
    let diff_id = common::builderimage::sha256(&tar);
    let writer = writer.extra_layer(tar);
    let image = writer.write();
    // Point the label at the layer that is there.
    let mut layers: serde_json::Value =
        serde_json::from_str(&label(&image, "io.buildpacks.buildpack.layers")).unwrap();
    layers["examples/motd"]["0.1.0"]["layerDiffID"] = diff_id.into();
    set_label(
        &image,
        "io.buildpacks.buildpack.layers",
        &layers.to_string(),
    );
    refused(
        &setup,
        &image,
        &["examples/motd@0.1.0", "/cnb/buildpacks/examples_motd/0.1.0"],
    );
}

/// A label of the image `oci:DIR:TAG`.
fn label(image: &str, key: &str) -> String {
    let image = image.strip_prefix("oci:").unwrap();
    let (dir, tag) = image.rsplit_once(':').unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(dir).join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(Path::new(dir).join("blobs/sha256").join(hex)).unwrap(),
        )
        .unwrap()
    };
    let manifest = blob(manifest["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    config["config"]["Labels"][key].as_str().unwrap().to_owned()
}

fn set_label(image: &str, key: &str, value: &str) {
    let image = image.strip_prefix("oci:").unwrap();
    tool(
        "umoci",
        &[
            "config",
            "--no-history",
            "--image",
            image,
            "--config.label",
            &format!("{key}={value}"),
        ],
    );
}

#[test]
fn malformed_labels_are_errors() {
    let setup = Setup::new();
    let mut writer = setup.example_builder();
    writer.labels.push((
        "io.buildpacks.builder.metadata".to_owned(),
        "{\"buildpacks\": 3".to_owned(),
    ));
    let image = writer.write();
    refused(
        &setup,
        &image,
        &["label io.buildpacks.builder.metadata is malformed"],
    );

    set_label(&image, "io.buildpacks.builder.metadata", "{}");
    set_label(&image, "io.buildpacks.buildpack.layers", "{\"a\": [1]}");
    refused(
        &setup,
        &image,
        &["label io.buildpacks.buildpack.layers is malformed"],
    );
}

#[test]
fn an_image_that_is_no_builder_is_an_error() {
    let setup = Setup::new();
    let image = format!("oci:{}:busybox", setup.build.display());
    refused(
        &setup,
        &image,
        &["io.buildpacks.builder.metadata", "not a CNB builder"],
    );
}

#[test]
fn image_extensions_are_refused() {
    let setup = Setup::new();
    let mut writer = setup.example_builder();
    writer.labels.push((
        "io.buildpacks.buildpack.order-extensions".to_owned(),
        "[{\"group\":[{\"id\":\"samples/curl\",\"version\":\"0.0.1\"}]}]".to_owned(),
    ));
    let image = writer.write();
    refused(&setup, &image, &["image extensions are not supported"]);

    let mut writer = BuilderImageWriter::new(&setup.build, &setup.path("builder2"), "base")
        .buildpack(&examples().join("buildpacks/motd"))
        .group(&[("examples/motd", "0.1.0", false)]);
    writer.labels.push((
        "io.buildpacks.builder.metadata".to_owned(),
        "{\"extensions\":[{\"id\":\"samples/curl\",\"version\":\"0.0.1\"}]}".to_owned(),
    ));
    let image = writer.write();
    refused(
        &setup,
        &image,
        &["samples/curl", "image extensions are not supported"],
    );
}

// Escape tricks: a builder image is untrusted, and its tree is unpacked on the host. Each
// trick is refused (exit 2, naming the image) or contained in the store's rootfs directory.

/// A place on the host outside everything strata was given, and no file in it.
fn outside(setup: &Setup, name: &str) -> PathBuf {
    let dir = setup.path(&format!("outside-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `plan` on the example builder with `layer` added; returns its exit code and stderr.
fn plan_with_layer(setup: &Setup, layer: Vec<u8>) -> (i32, String, String) {
    let image = setup.example_builder().extra_layer(layer).write();
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        &image,
        "--cache-dir",
        &setup.cache(),
    ]);
    let err = stderr(&result);
    assert!(!err.contains("panicked"), "{err}");
    (result.status.code().unwrap(), err, image)
}

/// Enough `../` to climb from any directory of an unpacked tree to the host's `/`.
fn escape_depth(setup: &Setup) -> String {
    let tree = setup.path("cache/store/rootfs/tree/cnb/a/b");
    "../".repeat(tree.components().count())
}

/// Every file under the store's rootfs directory whose name is `name`.
fn in_rootfs(setup: &Setup, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![setup.path("cache/store/rootfs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

#[test]
fn a_dotdot_entry_is_refused() {
    let setup = Setup::new();
    let target = outside(&setup, "dotdot");
    let mut tar = Tar::default();
    let depth = escape_depth(&setup);
    tar.file(
        &format!(
            "{depth}{}/pwned",
            target.display().to_string().trim_start_matches('/')
        ),
        b"x",
    );
    let (code, err, image) = plan_with_layer(&setup, tar.finish());
    assert!(!target.join("pwned").exists());
    assert_eq!(code, 2, "{err}");
    assert!(
        squash(&err).contains(&squash(image.strip_prefix("oci:").unwrap())),
        "{err}"
    );
    assert!(squash(&err).contains("cannotunpacklayer"), "{err}");
}

#[test]
fn an_absolute_entry_lands_inside_the_tree() {
    let setup = Setup::new();
    let target = outside(&setup, "absolute");
    let mut tar = Tar::default();
    tar.file(&format!("{}/pwned", target.display()), b"x");
    let (code, err, _) = plan_with_layer(&setup, tar.finish());
    assert_eq!(code, 0, "{err}");
    assert!(!target.join("pwned").exists());
    let found = in_rootfs(&setup, "pwned");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with(target.strip_prefix("/").unwrap().join("pwned")));
}

#[test]
fn a_write_through_a_symlink_stays_inside_the_tree() {
    let setup = Setup::new();
    let target = outside(&setup, "symlink");
    let mut tar = Tar::default();
    tar.entry("/cnb/evil", SYMLINK, 0o777, target.to_str().unwrap(), b"");
    tar.file("/cnb/evil/pwned", b"x");
    let (code, err, _) = plan_with_layer(&setup, tar.finish());
    assert_eq!(code, 0, "{err}");
    // The link is followed as if the tree were `/`: the file lands in the tree, under the
    // link's target path, never at that path on the host.
    assert!(!target.join("pwned").exists());
    let found = in_rootfs(&setup, "pwned");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with(target.strip_prefix("/").unwrap().join("pwned")));
}

#[test]
fn a_symlink_of_a_lower_layer_is_not_written_through() {
    let setup = Setup::new();
    let target = outside(&setup, "lower-symlink");
    let mut link = Tar::default();
    link.entry("/cnb/evil", SYMLINK, 0o777, target.to_str().unwrap(), b"");
    let mut write = Tar::default();
    write.entry("/cnb/evil", REGULAR, 0o644, "", b"replaced");
    let image = setup
        .example_builder()
        .extra_layer(link.finish())
        .extra_layer(write.finish())
        .write();
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        &image,
        "--cache-dir",
        &setup.cache(),
    ]);
    assert_exit(&result, 0);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    let found = in_rootfs(&setup, "evil");
    assert_eq!(found.len(), 1);
    assert_eq!(std::fs::read(&found[0]).unwrap(), b"replaced");
}

#[test]
fn a_hardlink_to_a_host_file_is_refused() {
    let setup = Setup::new();
    let target = outside(&setup, "hardlink");
    let secret = target.join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let mut tar = Tar::default();
    let depth = escape_depth(&setup);
    tar.entry(
        "/cnb/stolen",
        HARDLINK,
        0o644,
        &format!(
            "{depth}{}",
            secret.display().to_string().trim_start_matches('/')
        ),
        b"",
    );
    let (code, err, image) = plan_with_layer(&setup, tar.finish());
    assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
    assert!(in_rootfs(&setup, "stolen").is_empty());
    assert_eq!(code, 2, "{err}");
    assert!(
        squash(&err).contains(&squash(image.strip_prefix("oci:").unwrap())),
        "{err}"
    );
    assert!(squash(&err).contains("cannotunpacklayer"), "{err}");

    // An absolute target is the tree's own file, never the host's.
    let setup = Setup::new();
    let target = outside(&setup, "hardlink");
    let secret = target.join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let mut tar = Tar::default();
    tar.entry(
        "/cnb/stolen",
        HARDLINK,
        0o644,
        secret.to_str().unwrap(),
        b"",
    );
    let (code, err, _) = plan_with_layer(&setup, tar.finish());
    assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
    assert!(in_rootfs(&setup, "stolen").is_empty());
    assert_eq!(code, 2, "{err}");
    assert!(squash(&err).contains("cannotunpacklayer"), "{err}");
}

#[test]
fn a_buildpack_directory_linked_to_the_host_is_refused() {
    let setup = Setup::new();
    // A buildpack on the host, which the image's link would make strata read and run.
    let host_bp = outside(&setup, "buildpack").join("0.1.0");
    copy_tree_into(&examples().join("buildpacks/motd"), &host_bp);
    let mut writer = setup.example_builder();
    writer.omit_layers.push("examples/motd".to_owned());
    let mut tar = Tar::default();
    tar.entry(
        "/cnb/buildpacks/examples_motd",
        SYMLINK,
        0o777,
        host_bp.parent().unwrap().to_str().unwrap(),
        b"",
    );
    let layer = tar.finish();
    let diff_id = common::builderimage::sha256(&layer);
    let image = writer.extra_layer(layer).write();
    let mut layers: serde_json::Value =
        serde_json::from_str(&label(&image, "io.buildpacks.buildpack.layers")).unwrap();
    layers["examples/motd"]["0.1.0"]["layerDiffID"] = diff_id.into();
    set_label(
        &image,
        "io.buildpacks.buildpack.layers",
        &layers.to_string(),
    );
    refused(
        &setup,
        &image,
        &["/cnb/buildpacks/examples_motd/0.1.0 is refused"],
    );

    // A linked `buildpack.toml` is refused the same way.
    let setup = Setup::new();
    let host_toml = outside(&setup, "toml").join("buildpack.toml");
    std::fs::copy(
        examples().join("buildpacks/motd/buildpack.toml"),
        &host_toml,
    )
    .unwrap();
    let mut writer = setup.example_builder();
    writer.omit_layers.push("examples/motd".to_owned());
    let mut tar = Tar::default();
    tar.dir("/cnb/buildpacks/examples_motd");
    tar.dir("/cnb/buildpacks/examples_motd/0.1.0");
    tar.entry(
        "/cnb/buildpacks/examples_motd/0.1.0/buildpack.toml",
        SYMLINK,
        0o777,
        host_toml.to_str().unwrap(),
        b"",
    );
    tar.entry(
        "/cnb/buildpacks/examples_motd/0.1.0/bin",
        DIRECTORY,
        0o755,
        "",
        b"",
    );
    let layer = tar.finish();
    let diff_id = common::builderimage::sha256(&layer);
    let image = writer.extra_layer(layer).write();
    let mut layers: serde_json::Value =
        serde_json::from_str(&label(&image, "io.buildpacks.buildpack.layers")).unwrap();
    layers["examples/motd"]["0.1.0"]["layerDiffID"] = diff_id.into();
    set_label(
        &image,
        "io.buildpacks.buildpack.layers",
        &layers.to_string(),
    );
    refused(
        &setup,
        &image,
        &["/cnb/buildpacks/examples_motd/0.1.0/buildpack.toml is refused"],
    );
}

fn copy_tree_into(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    copy_tree(src, dst);
}

#[test]
fn a_workspace_names_a_builder_image_relative_to_itself() {
    let setup = Setup::new();
    setup.example_builder().write();
    std::fs::write(
        setup.path("strata.toml"),
        "[workspace]\nbuilder = \"oci:builder:base\"\nservices = [\"app\"]\n",
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let result = strata(
        elsewhere.path(),
        &[
            "plan",
            setup.tmp.path().to_str().unwrap(),
            "--cache-dir",
            &setup.cache(),
            "--format",
            "json",
        ],
    );
    assert_exit(&result, 0);
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["services"][0]["group"][0], "examples/runtime@0.1.0");
}

#[test]
fn a_builder_image_on_the_host_root_still_reads_its_buildpacks_from_the_image() {
    let setup = Setup::new();
    let image = setup.example_builder().write();
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        &image,
        "--build-image",
        "host",
        "--cache-dir",
        &setup.cache(),
        "--format",
        "json",
    ]);
    assert_exit(&result, 0);
    assert!(
        stderr(&result).contains("not hermetic"),
        "{}",
        stderr(&result)
    );
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["services"][0]["group"][0], "examples/runtime@0.1.0");
}

#[test]
fn a_registry_run_image_of_a_builder_is_pulled_and_run_image_replaces_it() {
    let setup = Setup::new();
    // A registry on loopback that is not there: the run image is pulled, and that fails.
    let image = setup
        .example_builder()
        .run_image("127.0.0.1:1/cnb/run:latest")
        .write();
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        &image,
        "--cache-dir",
        &setup.cache(),
    ]);
    assert_exit(&result, 1);
    let err = squash(&stderr(&result));
    assert!(
        err.contains("cannotpulldocker://127.0.0.1:1/cnb/run:latest"),
        "{err}"
    );

    let run = format!("oci:{}:busybox", setup.path("run").display());
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        &image,
        "--run-image",
        &run,
        "--cache-dir",
        &setup.cache(),
    ]);
    assert_exit(&result, 0);
}

#[test]
fn the_builder_images_content_keys_every_task() {
    let setup = Setup::new();
    let one = setup.example_builder().write();
    let mut marker = Tar::default();
    marker.file("/etc/marker", b"two");
    let mut changed = BuilderImageWriter::new(&setup.build, &setup.path("changed"), "base");
    for bp in EXAMPLE_BUILDPACKS {
        changed = changed.buildpack(&examples().join("buildpacks").join(bp));
    }
    let changed = changed
        .group(&[("examples/node", "0.1.0", false)])
        .group(&[("examples/hello-stack", "0.1.0", false)])
        .run_image("oci:run:busybox")
        .extra_layer(marker.finish())
        .write();
    let keys = |image: &str| -> (Vec<String>, u64) {
        let result = setup.run(&[
            "plan",
            "app",
            "--builder",
            image,
            "--cache-dir",
            &setup.cache(),
            "--format",
            "json",
        ]);
        assert_exit(&result, 0);
        let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        let keys: Vec<String> = json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] != "image")
            .map(|t| t["key"].as_str().unwrap().to_owned())
            .collect();
        assert!(!keys.is_empty());
        (keys, json["stats"]["detect_ran"].as_u64().unwrap())
    };
    let (first, ran) = keys(&one);
    assert!(ran > 0);
    let (again, ran) = keys(&one);
    assert_eq!(again, first);
    assert_eq!(ran, 0, "an unchanged builder: detect is a hit");
    let (other, _) = keys(&changed);
    for key in &other {
        assert!(!first.contains(key), "one file changed: every key changes");
    }
}

/// The example app's plan with `image`: its group, or the error.
fn plan_group(setup: &Setup, image: &str) -> Result<Vec<String>, String> {
    let result = setup.run(&[
        "plan",
        "app",
        "--builder",
        image,
        "--cache-dir",
        &setup.cache(),
        "--format",
        "json",
    ]);
    if result.status.code() != Some(0) {
        return Err(stderr(&result));
    }
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    Ok(json["services"][0]["group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bp| bp.as_str().unwrap().to_owned())
        .collect())
}

#[test]
fn without_the_files_the_labels_give_the_order_and_the_run_image() {
    let setup = Setup::new();
    let mut writer = setup.example_builder();
    writer.no_order_file = true;
    writer.no_run_file = true;
    writer.no_stack_file = true;
    let image = writer.write();
    let group = plan_group(&setup, &image).unwrap();
    assert_eq!(group[0], "examples/runtime@0.1.0");
}

#[test]
fn the_files_win_over_the_labels_and_stack_toml_is_the_fallback() {
    let setup = Setup::new();
    // The labels name a run image that is not there: only the files make this plan work.
    let mut writer = setup.example_builder();
    writer.label_run_image = Some("oci:nowhere:x".to_owned());
    writer.no_run_file = true;
    let image = writer.write();
    plan_group(&setup, &image).unwrap();

    let setup = Setup::new();
    let mut writer = setup.example_builder();
    writer.label_run_image = Some("oci:nowhere:x".to_owned());
    writer.no_stack_file = true;
    let image = writer.write();
    plan_group(&setup, &image).unwrap();

    let setup = Setup::new();
    let mut writer = setup.example_builder();
    writer.no_run_file = true;
    writer.no_stack_file = true;
    writer.label_run_image = Some("oci:nowhere:x".to_owned());
    let image = writer.write();
    let err = plan_group(&setup, &image).unwrap_err();
    assert!(squash(&err).contains("nowhere:x"), "{err}");
}

#[test]
fn a_builder_made_by_builder_create_gives_the_same_image_as_its_builder_toml() {
    let setup = Setup::new();
    let toml = example_builder_toml(&setup);
    // The builder layout sits beside builder.toml, so the run image name it records (relative
    // to the directory holding the layout) is the one builder.toml gives.
    let builder = format!("oci:{}:example", setup.path("builder-layout").display());
    let created = setup.run(&[
        "builder",
        "create",
        "--config",
        toml.to_str().unwrap(),
        "--output",
        &builder,
    ]);
    assert_exit(&created, 0);

    let build = |builder: &str, out: &str| {
        let output = format!("oci:{}:app", setup.path(out).display());
        let result = setup.run(&[
            "build",
            "app",
            "--builder",
            builder,
            "--output",
            &output,
            "--cache-dir",
            &setup.cache(),
            "--json",
        ]);
        assert_exit(&result, 0);
        let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        (
            report["digest"].as_str().unwrap().to_owned(),
            report["buildpacks"].clone(),
        )
    };
    let (from_toml, buildpacks) = build(toml.to_str().unwrap(), "out-toml");
    let (from_image, image_buildpacks) = build(&builder, "out-image");
    assert_eq!(from_image, from_toml);
    assert_eq!(image_buildpacks, buildpacks);
    assert!(
        buildpacks.as_array().is_some_and(|b| !b.is_empty()),
        "{buildpacks}"
    );

    // Moved elsewhere with its run image, the builder layout still finds it; an image built
    // beside them records the same relative run image name, so it is the same image.
    std::fs::create_dir_all(setup.path("moved")).unwrap();
    for dir in ["builder-layout", "run"] {
        copy_tree(&setup.path(dir), &setup.path(&format!("moved/{dir}")));
    }
    let moved = format!(
        "oci:{}:example",
        setup.path("moved/builder-layout").display()
    );
    let (from_moved, _) = build(&moved, "moved/out-moved");
    assert_eq!(from_moved, from_toml);
}
