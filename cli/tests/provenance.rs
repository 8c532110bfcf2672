//! Signed provenance and signatures end to end: `strata key generate`, `strata build
//! --sign-key` into a layout and into Debian's `docker-registry` (which has no referrers API,
//! so the `sha256-<hex>` tag schema is what finds the artifacts), `strata sign` and `strata
//! verify-signature`; the referrers API path against that registry with an in-test responder
//! for that one endpoint (`common::registry::ReferrersApi`). Third parties check what strata wrote: Python `cryptography` verifies the
//! DSSE signature, the in-toto attestation framework's protobuf bindings and a JSON Schema of
//! the specs' required fields read the statement, skopeo reads the referrers index. Keys are
//! made per test.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use common::registry::support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use support::{Registry, skopeo};

const PROVENANCE: &str = "application/vnd.in-toto+json";
const SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// `strata key generate` into `dir/<name>.pem`; returns (private, public) paths.
fn key(dir: &Path, name: &str, algorithm: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let out = strata(
        dir,
        &[
            "key",
            "generate",
            "--output",
            private.to_str().unwrap(),
            "--algorithm",
            algorithm,
        ],
    );
    assert_exit(&out, 0);
    (private, dir.join(format!("{name}.pub")))
}

/// A copy of the hello app in a git repository with one commit; returns (dir, commit).
fn git_app(root: &Path) -> (PathBuf, String) {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    copy_tree(&examples().join("apps/hello"), &app);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&app)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "-m",
        "app",
    ]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
    (app, commit)
}

/// `strata build` of `app` with the example builder and run image to `output`, `--json`.
fn build(cwd: &Path, app: &Path, output: &str, extra: &[&str]) -> Value {
    let builder = examples().join("builder.toml");
    let run_image = run_image();
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--builder",
        builder.to_str().unwrap(),
        "--run-image",
        &run_image,
        "--output",
        output,
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = strata(cwd, &args);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A blob of the layout at `layout`, checked against its digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256_hex(&bytes), hex);
    bytes
}

/// Writes `bytes` as a blob of `layout`; returns its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// The referrers index the layout tags `sha256-<hex>` for `digest`, as skopeo reads it.
fn referrers_index(layout: &Path, digest: &str) -> Value {
    let tag = digest.replace(':', "-");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:{tag}", layout.display()),
    ]);
    serde_json::from_str(&raw).unwrap()
}

/// The one entry of `index` with `artifact_type`.
fn entry<'a>(index: &'a Value, artifact_type: &str) -> &'a Value {
    let found: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == artifact_type)
        .collect();
    assert_eq!(found.len(), 1, "{index}");
    found[0]
}

/// Runs the third-party check of a DSSE envelope; returns the statement.
fn check_attestation(envelope: &[u8], public: &Path, digest: &str, dir: &Path) -> Value {
    let path = dir.join("envelope.json");
    std::fs::write(&path, envelope).unwrap();
    let script = repo().join("cli/tests/fixtures/provenance/check_attestation.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .arg(public)
        .arg(digest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_attestation.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What an attacker who can write the layout does: changes the signed payload (a byte of it)
/// and writes a consistent layout around it (new blobs, referrers index and tag), keeping the
/// signature.
fn tamper_signed_payload(out: &Path, index: &Value, digest: &str) {
    let signature = entry(index, SIGNATURE).clone();
    let mut manifest: Value =
        serde_json::from_slice(&blob(out, signature["digest"].as_str().unwrap())).unwrap();
    let mut payload = blob(out, manifest["layers"][0]["digest"].as_str().unwrap());
    let at = payload.iter().position(|b| *b == b'"').unwrap() + 1;
    payload[at] ^= 0x20;
    manifest["layers"][0]["digest"] = Value::from(put_blob(out, &payload));
    manifest["layers"][0]["size"] = Value::from(payload.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(out, &manifest_bytes);
    let mut tampered = index.clone();
    for m in tampered["manifests"].as_array_mut().unwrap() {
        if m["artifactType"] == SIGNATURE {
            m["digest"] = Value::from(manifest_digest.as_str());
            m["size"] = Value::from(manifest_bytes.len());
        }
    }
    let tampered_bytes = serde_json::to_vec(&tampered).unwrap();
    let tampered_digest = put_blob(out, &tampered_bytes);
    let mut top: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    for m in top["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == digest.replace(':', "-") {
            m["digest"] = Value::from(tampered_digest.as_str());
            m["size"] = Value::from(tampered_bytes.len());
        }
    }
    std::fs::write(out.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

/// What the provenance of the hello app, built from a git checkout at `commit` with
/// `--env API_TOKEN=…` into `image`, says.
fn check_statement(statement: &Value, image: &str, commit: &str) {
    assert_eq!(statement["subject"][0]["name"], image);
    let definition = &statement["predicate"]["buildDefinition"];
    let external = &definition["externalParameters"];
    assert!(
        external["env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("API_TOKEN")),
        "{external}"
    );
    assert!(
        !statement.to_string().contains("hunter2"),
        "an env value is in the provenance"
    );
    let deps = definition["resolvedDependencies"].as_array().unwrap();
    let source = deps.iter().find(|d| d["name"] == "source").unwrap();
    assert_eq!(source["digest"]["gitCommit"], commit, "{source}");
    let builder = deps.iter().find(|d| d["name"] == "builder").unwrap();
    let builder_toml = std::fs::read(examples().join("builder.toml")).unwrap();
    assert_eq!(builder["digest"]["sha256"], sha256_hex(&builder_toml));
    assert!(deps.iter().any(|d| d["name"] == "buildpack"), "{deps:?}");
    assert!(deps.iter().any(|d| d["name"] == "runImage"), "{deps:?}");
    let details = &statement["predicate"]["runDetails"];
    assert_eq!(
        details["builder"]["version"]["strata"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        details["metadata"]["startedOn"].as_str().unwrap()
            <= details["metadata"]["finishedOn"].as_str().unwrap()
    );
}

fn verify(cwd: &Path, image: &str, public: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify-signature", image, "--key", public.to_str().unwrap()];
    args.extend_from_slice(extra);
    strata(cwd, &args)
}

#[test]
fn key_generate_writes_a_key_only_its_owner_reads_and_never_overwrites_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = key(tmp.path(), "signer", "ed25519");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is the owner's only");
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let again = strata(
        tmp.path(),
        &["key", "generate", "--output", private.to_str().unwrap()],
    );
    assert_exit(&again, 2);
    assert!(
        stderr(&again).contains("never overwrites"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_signed_layout_build_carries_provenance_and_a_signature_others_can_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, public) = key(tmp.path(), "signer", "ed25519");
    let (app, commit) = git_app(tmp.path());
    let out = tmp.path().join("out");
    let image = format!("oci:{}:hello", out.display());
    let report = build(
        tmp.path(),
        &app,
        &image,
        &[
            "--sign-key",
            private.to_str().unwrap(),
            "--env",
            "API_TOKEN=hunter2-secret",
        ],
    );
    let digest = report["digest"].as_str().unwrap();

    // The referrers index, found by its tag as skopeo reads it, lists both artifacts; each is
    // an OCI artifact manifest whose subject is the image.
    let index = referrers_index(&out, digest);
    let provenance = entry(&index, PROVENANCE);
    assert_eq!(provenance["digest"], report["provenance"], "{report}");
    let signature = entry(&index, SIGNATURE);
    assert_eq!(signature["digest"], report["signature"], "{report}");
    let manifest: Value =
        serde_json::from_slice(&blob(&out, provenance["digest"].as_str().unwrap())).unwrap();
    assert_eq!(manifest["artifactType"], PROVENANCE);
    assert_eq!(manifest["subject"]["digest"], digest);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let envelope = blob(&out, manifest["layers"][0]["digest"].as_str().unwrap());
    let statement = check_attestation(&envelope, &public, digest, tmp.path());
    check_statement(&statement, &image, &commit);

    // The signature verifies with its key, and the layout is whole for `cache verify`.
    let ok = verify(tmp.path(), &image, &public, &[]);
    assert_exit(&ok, 0);
    assert!(stderr(&ok).contains("verified"), "{}", stderr(&ok));
    let layout_check = strata(
        tmp.path(),
        &[
            "cache",
            "verify",
            "--layout",
            &format!("oci:{}", out.display()),
        ],
    );
    assert_exit(&layout_check, 0);

    // Another key: exit 1, saying so.
    let (_, other) = key(tmp.path(), "other", "p256");
    let wrong = verify(tmp.path(), &image, &other, &[]);
    assert_exit(&wrong, 1);
    assert!(
        stderr(&wrong).contains("is not signed by key"),
        "{}",
        stderr(&wrong)
    );

    // A rebuild of the same image keeps one provenance and one signature per key.
    build(
        tmp.path(),
        &app,
        &image,
        &["--sign-key", private.to_str().unwrap()],
    );
    let index = referrers_index(&out, digest);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");

    tamper_signed_payload(&out, &index, digest);
    let bad = verify(tmp.path(), &image, &public, &[]);
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("tampered"), "{}", stderr(&bad));
}

#[test]
fn an_unsigned_image_fails_verification_and_strata_sign_signs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let image = format!("oci:{}:hello", out.display());
    build(tmp.path(), &examples().join("apps/hello"), &image, &[]);
    let (private, public) = key(tmp.path(), "p256", "p256");
    let unsigned = verify(tmp.path(), &image, &public, &[]);
    assert_exit(&unsigned, 1);
    assert!(
        stderr(&unsigned).contains("no signature"),
        "{}",
        stderr(&unsigned)
    );

    let signed = strata(
        tmp.path(),
        &["sign", &image, "--key", private.to_str().unwrap()],
    );
    assert_exit(&signed, 0);
    assert_exit(&verify(tmp.path(), &image, &public, &[]), 0);
    // An archive cannot carry a signature: refused before anything is built.
    let archive = format!("docker-archive:{}", tmp.path().join("app.tar").display());
    let hello = examples().join("apps/hello");
    let builder = examples().join("builder.toml");
    let refused = strata(
        tmp.path(),
        &[
            "build",
            hello.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--output",
            &archive,
            "--sign-key",
            private.to_str().unwrap(),
        ],
    );
    assert_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("cannot carry signatures"),
        "{}",
        stderr(&refused)
    );
    assert!(!tmp.path().join("app.tar").exists());
    // A public key is no signing key: bad input.
    let misuse = strata(
        tmp.path(),
        &["sign", &image, "--key", public.to_str().unwrap()],
    );
    assert_exit(&misuse, 2);
}

#[test]
fn a_signed_push_is_found_through_the_referrers_tag_of_a_registry_without_the_api() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let host = registry.host();
    let (private, public) = key(tmp.path(), "signer", "p256");
    let target = format!("docker://{host}/app:v1");
    let report = build(
        tmp.path(),
        &examples().join("apps/hello"),
        &target,
        &[
            "--insecure-registry",
            &host,
            "--sign-key",
            private.to_str().unwrap(),
        ],
    );
    let digest = report["digest"].as_str().unwrap();

    // Debian's docker-registry has no referrers API: the tag schema index is what lists them.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/app:{}", digest.replace(':', "-")),
    ]);
    let index: Value = serde_json::from_str(&raw).unwrap();
    let provenance = entry(&index, PROVENANCE);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!(
            "docker://{host}/app@{}",
            provenance["digest"].as_str().unwrap()
        ),
    ]);
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["subject"]["digest"], digest);
    let layer: strata_registry::Digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The envelope as the registry stored it.
    let envelope = std::fs::read(registry.blob_data(&layer)).unwrap();
    assert_eq!(sha256_hex(&envelope), layer.hex());
    check_attestation(&envelope, &public, digest, tmp.path());

    let insecure = ["--insecure-registry", host.as_str()];
    assert_exit(&verify(tmp.path(), &target, &public, &insecure), 0);

    // The same build again: the image is there, and so are its artifacts; none is pushed.
    let tag_writes = || registry.count("PUT", &format!("/manifests/{}", digest.replace(':', "-")));
    let before = tag_writes();
    let again = build(
        tmp.path(),
        &examples().join("apps/hello"),
        &target,
        &[
            "--insecure-registry",
            &host,
            "--sign-key",
            private.to_str().unwrap(),
        ],
    );
    assert_eq!(again["provenance"], report["provenance"], "{again}");
    assert_eq!(again["signature"], report["signature"], "{again}");
    assert_eq!(tag_writes(), before, "the referrers tag is left as it is");

    // `strata sign` adds a second key's signature; both verify, a third key does not.
    let (second, second_public) = key(tmp.path(), "second", "ed25519");
    let mut args = vec!["sign", target.as_str(), "--key", second.to_str().unwrap()];
    args.extend_from_slice(&insecure);
    assert_exit(&strata(tmp.path(), &args), 0);
    assert_exit(&verify(tmp.path(), &target, &second_public, &insecure), 0);
    assert_exit(&verify(tmp.path(), &target, &public, &insecure), 0);
    let (_, third) = key(tmp.path(), "third", "ed25519");
    let wrong = verify(tmp.path(), &target, &third, &insecure);
    assert_exit(&wrong, 1);
    assert!(
        stderr(&wrong).contains("is not signed by key"),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn a_layout_with_signed_images_still_rebases_as_a_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (private, _) = key(tmp.path(), "signer", "ed25519");
    let out = tmp.path().join("out");
    let image = format!("oci:{}:hello", out.display());
    build(
        tmp.path(),
        &examples().join("apps/hello"),
        &image,
        &["--sign-key", private.to_str().unwrap()],
    );
    // The referrers tag (`sha256-…`) lists artifacts, not an image to rebase.
    let rebase = strata(
        tmp.path(),
        &[
            "rebase",
            "--run-image",
            &run_image(),
            "--all",
            &format!("oci:{}", out.display()),
            "--json",
        ],
    );
    assert_exit(&rebase, 0);
    let report: Value = serde_json::from_slice(&rebase.stdout).unwrap();
    let images: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, [image.as_str()], "{report}");
}

/// The manifest digests of the artifacts `index` lists, sorted.
fn listed(index: &Value) -> Vec<String> {
    let mut digests: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_owned())
        .collect();
    digests.sort();
    digests
}

#[test]
fn an_up_to_date_build_keeps_its_artifacts_and_another_key_adds_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, first_public) = key(tmp.path(), "first", "p256");
    let app = examples().join("apps/hello");
    let out = tmp.path().join("out");
    let image = format!("oci:{}:hello", out.display());
    let sign_with = |key: &Path| ["--sign-key".to_owned(), key.display().to_string()];
    let args = sign_with(&first);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = build(tmp.path(), &app, &image, &args);
    let digest = report["digest"].as_str().unwrap().to_owned();
    let index_json = std::fs::read(out.join("index.json")).unwrap();

    // Nothing changed: the same image, the same two artifacts, index.json byte for byte.
    let again = build(tmp.path(), &app, &image, &args);
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["provenance"], report["provenance"], "{again}");
    assert_eq!(again["signature"], report["signature"], "{again}");
    assert_eq!(
        std::fs::read(out.join("index.json")).unwrap(),
        index_json,
        "no new referrer, no new referrers index"
    );

    // A build with another key adds that key's signature and provenance beside the first's.
    let (second, second_public) = key(tmp.path(), "second", "ed25519");
    let args = sign_with(&second);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let other = build(tmp.path(), &app, &image, &args);
    assert_eq!(other["digest"], digest.as_str());
    let index = referrers_index(&out, &digest);
    let mut expected: Vec<String> = [&report, &other]
        .iter()
        .flat_map(|r| [&r["provenance"], &r["signature"]])
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(listed(&index), expected, "{index}");
    for public in [&first_public, &second_public] {
        assert_exit(&verify(tmp.path(), &image, public, &[]), 0);
    }
}

#[test]
fn concurrent_signatures_of_one_layout_image_are_all_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let image = format!("oci:{}:hello", out.display());
    build(tmp.path(), &examples().join("apps/hello"), &image, &[]);
    let keys: Vec<(PathBuf, PathBuf)> = (0..8)
        .map(|i| key(tmp.path(), &format!("k{i}"), "ed25519"))
        .collect();
    // Eight processes attach to the same referrers index at once.
    let signing: Vec<std::process::Child> = keys
        .iter()
        .map(|(private, _)| {
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(["sign", &image, "--key", private.to_str().unwrap()])
                .current_dir(tmp.path())
                .env("TMPDIR", scratch_tmpdir())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in signing {
        let done = child.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    for (_, public) in &keys {
        let checked = verify(tmp.path(), &image, public, &[]);
        assert_exit(&checked, 0);
    }
    let digest = strata_digest(&out);
    assert_eq!(
        referrers_index(&out, &digest)["manifests"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

/// The manifest digest `out`'s index.json tags `hello`.
fn strata_digest(out: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "hello")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Debian's docker-registry has no referrers API; [`ReferrersApi`] answers that one endpoint
/// from the registry's storage, so this is the path of a registry that has it: the artifacts
/// are listed by the registry, no `sha256-<hex>` tag is written, and they are found and
/// checked through the API.
#[test]
fn a_registry_with_the_referrers_api_lists_the_artifacts_without_a_referrers_tag() {
    let registry = Registry::start();
    let api = common::registry::ReferrersApi::start(&registry);
    let tmp = tempfile::tempdir().unwrap();
    let host = api.host();
    let (private, public) = key(tmp.path(), "signer", "ed25519");
    let target = format!("docker://{host}/app:v1");
    let insecure = ["--insecure-registry", host.as_str()];
    let report = build(
        tmp.path(),
        &examples().join("apps/hello"),
        &target,
        &[
            insecure[0],
            insecure[1],
            "--sign-key",
            private.to_str().unwrap(),
        ],
    );
    let digest = report["digest"].as_str().unwrap();
    assert!(
        api.answered.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the referrers API was asked"
    );
    let tag = digest.replace(':', "-");
    assert_eq!(
        registry.count("PUT", &format!("/manifests/{tag}")),
        0,
        "no referrers tag: {:?}",
        registry.requests()
    );
    assert_exit(&verify(tmp.path(), &target, &public, &insecure), 0);
    // The provenance, as the API lists it, is the one the build reported.
    let listed = http_get(&host, &format!("/v2/app/referrers/{digest}"));
    let entry = entry(&listed, PROVENANCE);
    assert_eq!(entry["digest"], report["provenance"], "{listed}");
}

/// A GET over plain HTTP/1.1, for a JSON body.
fn http_get(host: &str, path: &str) -> Value {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}
