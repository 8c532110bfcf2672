//! The Debian 12 stack in examples/stack: make.sh gives a build and a run image that skopeo
//! reads with the CNB user, env and labels, that runc runs, and whose digests two runs agree
//! on; the example monorepo builds on it with examples/stack/builder.toml (its buildpacks on
//! the build image) and its images run with runc. It downloads Debian packages and takes
//! minutes, so it runs only with `STRATA_TEST_STACK=1` (CI sets it).

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const TAG: &str = "bookworm";

/// Runs examples/stack/make.sh into `out`; returns the manifest digests of (build, run).
fn make_stack(out: &Path) -> (String, String) {
    let run = Command::new(examples().join("stack/make.sh"))
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "make.sh failed (needs root, mmdebstrap, umoci and a Debian mirror): {}",
        stderr(&run)
    );
    let digest = |kind: &str| {
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(kind).join("layout/index.json")).unwrap(),
        )
        .unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "{kind}: {index}");
        assert_eq!(
            manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
            TAG
        );
        manifests[0]["digest"].as_str().unwrap().to_owned()
    };
    (digest("build"), digest("run"))
}

fn reference(out: &Path, kind: &str) -> String {
    format!("{}:{TAG}", out.join(kind).join("layout").display())
}

/// `skopeo inspect --config` of one image: its OCI config.
fn config(out: &Path, kind: &str) -> serde_json::Value {
    let oci = format!("oci:{}", reference(out, kind));
    let inspect: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", &oci])).unwrap();
    assert_eq!(inspect["Os"], "linux", "{kind}");
    serde_json::from_str(&tool("skopeo", &["inspect", "--config", &oci])).unwrap()
}

fn unpack(out: &Path, kind: &str, bundle: &Path) {
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &reference(out, kind),
            bundle.to_str().unwrap(),
        ],
    );
}

#[test]
fn debian_stack_is_cnb_labelled_runnable_and_reproducible() {
    if std::env::var_os("STRATA_TEST_STACK").is_none_or(|v| v != "1") {
        eprintln!("skipped: set STRATA_TEST_STACK=1 to make the Debian stack (needs a mirror)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The first stack is made where examples/stack/builder.toml names it, in a copy of the
    // examples, for the monorepo build below.
    let examples_copy = tmp.path().join("examples");
    copy_tree(&examples(), &examples_copy);
    date_in_the_past(&examples_copy);
    let (first, second) = (examples_copy.join("stack"), tmp.path().join("second"));
    let digests = make_stack(&first);
    for kind in ["build", "run"] {
        assert!(
            first.join(kind).join("layout/oci-layout").is_file(),
            "{kind}"
        );
    }

    for kind in ["build", "run"] {
        let config = config(&first, kind);
        let c = &config["config"];
        assert_eq!(c["User"], "1000:1000", "{kind}");
        let labels = &c["Labels"];
        assert_eq!(labels["io.buildpacks.base.distro.name"], "debian", "{kind}");
        assert_eq!(labels["io.buildpacks.base.distro.version"], "12", "{kind}");
        assert_eq!(
            labels["io.buildpacks.stack.id"], "io.strata.stacks.bookworm",
            "{kind}"
        );
        assert!(
            labels["io.buildpacks.base.maintainer"].is_string(),
            "{kind}"
        );
        let env: Vec<&str> = c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for var in ["CNB_USER_ID=1000", "CNB_GROUP_ID=1000"] {
            assert!(env.contains(&var), "{kind}: {env:?}");
        }
        assert!(env.iter().any(|v| v.starts_with("PATH=")), "{kind}");
        // Fixed times: the config's and the history's are SOURCE_DATE_EPOCH, not today.
        assert_eq!(config["created"], "2023-06-10T00:00:00Z", "{kind}");
        for entry in config["history"].as_array().unwrap() {
            assert_eq!(entry["created"], "2023-06-10T00:00:00Z", "{kind}");
        }
        if kind == "run" {
            assert_eq!(labels["io.buildpacks.rebasable"], "true");
        }

        let bundle = tmp.path().join(format!("bundle-{kind}"));
        unpack(&first, kind, &bundle);
        let rootfs = bundle.join("rootfs");
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(
            passwd
                .lines()
                .any(|l| l == "cnb:x:1000:1000:cnb:/home/cnb:/bin/bash"),
            "{kind}: {passwd}"
        );
        let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
        assert!(group.lines().any(|l| l == "cnb:x:1000:"), "{kind}: {group}");
        assert!(
            rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
            "{kind}"
        );
        assert_eq!(
            rootfs.join("usr/bin/tree").exists(),
            kind == "build",
            "{kind}: tree is the build image's own tool"
        );

        // runc starts the image as its CNB user, on Debian 12.
        let run = runc(
            &bundle,
            Some(&["/bin/bash", "-c", "id -u; id -g; cat /etc/os-release"]),
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.starts_with("1000\n1000\n"), "{kind}: {stdout}");
        assert!(stdout.contains("VERSION_ID=\"12\""), "{kind}: {stdout}");
        assert!(stdout.contains("ID=debian"), "{kind}: {stdout}");
        if kind == "build" {
            let run = runc(&bundle, Some(&["tree", "--version"]));
            assert!(String::from_utf8_lossy(&run.stdout).starts_with("tree v"));
        }
    }

    monorepo_builds_on_the_stack_and_runs_with_runc(tmp.path());

    assert_eq!(
        make_stack(&second),
        digests,
        "a second run gives the same image digests"
    );
}

/// The README's command for the monorepo on the stack, in the copy of the examples under
/// `tmp`: every service builds with its buildpacks on the Debian build image, and its images
/// run on the Debian run image.
fn monorepo_builds_on_the_stack_and_runs_with_runc(tmp: &Path) {
    let build = strata(
        tmp,
        &[
            "build",
            "examples/monorepo",
            "--builder",
            "examples/stack/builder.toml",
            "--json",
        ],
    );
    assert_exit(&build, 0);
    let report: serde_json::Value = serde_json::from_slice(&build.stdout).unwrap();
    let services = service_digests(&report);
    assert_eq!(services.len(), 10, "{report}");
    // On the build image, so the build says nothing about running on the host.
    assert!(
        !stderr(&build).contains("not hermetic"),
        "{}",
        stderr(&build)
    );

    let layout = tmp.join("examples/monorepo/out");
    let unpack = |service: &str| {
        let bundle = tmp.join(format!("bundle-{service}"));
        tool(
            "umoci",
            &[
                "unpack",
                "--image",
                &format!("{}:{service}", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        bundle
    };
    // The greeter runtime and the Procfile's web process, run by the launcher.
    let api = unpack("api");
    // The run image's SBOM lists its Debian packages with their versions.
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            api.join("rootfs/layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.cdx.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let base_files = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "base-files")
        .unwrap_or_else(|| panic!("no base-files in the run image SBOM: {sbom}"));
    let version = base_files["version"].as_str().unwrap();
    assert!(version.starts_with("12."), "{base_files}");
    assert!(
        base_files["purl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pkg:deb/debian/base-files@{version}?arch=")),
        "{base_files}"
    );
    let out = docker_run(&api, None, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Hi from greeter 1.2: orders API on :8080\n  GET    /v1/orders\n"),
        "{stdout}"
    );
    // On the Debian run image, as its CNB user.
    let out = docker_run(
        &api,
        Some("/cnb/lifecycle/launcher"),
        &[
            "--",
            "sh",
            "-c",
            "id -u; . /etc/os-release; echo $ID $VERSION_ID",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1000\ndebian 12\n");
    // A static site: the site layer built with the build image's find, sort and gzip.
    let docs = unpack("docs");
    let out = docker_run(&docs, None, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            "Developer documentation (production): 4 file(s), served from /layers/examples_static/site/public\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("/guides/deploy.html"), "{stdout}");
    buildpacks_run_on_the_build_image(tmp);
}

/// A buildpack built with the stack's builder finds the build image's own tool (tree) and its
/// os-release, and runs as its CNB user; none of the host's files is there.
fn buildpacks_run_on_the_build_image(tmp: &Path) {
    let probe = tmp.join("probe");
    std::fs::create_dir_all(probe.join("bin")).unwrap();
    std::fs::write(
        probe.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/probe\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let script = |path: &str, body: &str| {
        let path = probe.join(path);
        std::fs::write(&path, body).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
    };
    script("bin/detect", "#!/bin/sh\nexit 0\n");
    // A tool of this host (the tests need it) that the Debian build image does not have.
    let host_only = tool("sh", &["-c", "command -v umoci"]);
    let host_only = host_only.trim();
    assert!(Path::new(host_only).is_absolute(), "{host_only}");
    script(
        "bin/build",
        &format!(
            "#!/bin/bash\nset -e\nmkdir -p \"$1/probe\"\n{{ tree --version; id -u; id -g; \
             . /etc/os-release; echo \"$PRETTY_NAME\"; \
             test -e {host_only} && echo host-file-seen || echo no-host-file; }} > \"$1/probe/found\"\n\
             printf '[types]\\nlaunch = true\\n' > \"$1/probe.toml\"\n"
        ),
    );
    let app = tmp.join("probe-app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("README"), "probe").unwrap();
    let output = format!("oci:{}:probe", tmp.join("probe-out").display());
    let build = strata(
        tmp,
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            "examples/stack/builder.toml",
            "--buildpack",
            probe.to_str().unwrap(),
            "--output",
            &output,
        ],
    );
    assert_exit(&build, 0);
    let bundle = tmp.join("bundle-probe");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:probe", tmp.join("probe-out").display()),
            bundle.to_str().unwrap(),
        ],
    );
    let found =
        std::fs::read_to_string(bundle.join("rootfs/layers/test_probe/probe/found")).unwrap();
    let lines: Vec<&str> = found.lines().collect();
    assert!(lines[0].starts_with("tree v"), "{found}");
    assert_eq!(
        lines[1..],
        [
            "1000",
            "1000",
            "Debian GNU/Linux 12 (bookworm)",
            "no-host-file"
        ],
        "{found}"
    );
}
