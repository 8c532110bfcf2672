//! The Debian 12 stack in examples/stack: make.sh gives a build and a run image that skopeo
//! reads with the CNB user, env and labels, that runc runs, and whose digests two runs agree
//! on. It downloads Debian packages and takes minutes, so it runs only with
//! `STRATA_TEST_STACK=1` (CI sets it).

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
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
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

    assert_eq!(
        make_stack(&second),
        digests,
        "a second run gives the same image digests"
    );
}
