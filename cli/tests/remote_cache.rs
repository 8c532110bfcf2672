//! The remote task cache in a real registry (Debian's `docker-registry` on loopback, the
//! registry client's harness): runners with empty stores that share one cache repository.
//! A second runner runs no buildpack task and gives the same digests, downloading only what
//! the first pushed and its build uses (a build-only layer only when a task that runs needs
//! it, a poisoned one then failing the build; a layer the cache has is mounted into a registry
//! output, not uploaded); `--shard 1/3 … 3/3` cover the monorepo once, and a
//! fourth runner then runs nothing; a poisoned or truncated blob in the registry is a miss
//! with a warning, never a wrong image; an opaque buildpack's cache layer made on one runner
//! is restored on another (at another path).

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::registry::support::{self, Registry};
use common::*;
use serde_json::Value;

/// A copy of the examples, a registry, and a cache repository in it.
struct Fixture {
    examples: ExampleCopy,
    registry: Registry,
}

impl Fixture {
    fn new() -> Self {
        Self {
            examples: ExampleCopy::new(),
            registry: Registry::start(),
        }
    }

    fn cache(&self) -> String {
        format!("docker://{}/ci/cache", self.registry.host())
    }

    /// `strata build monorepo` on the runner `runner` (its own store and output), with
    /// `extra`; the exit status must be 0. Returns the report and stderr.
    fn build(&self, runner: &str, extra: &[&str]) -> (Value, String) {
        let out = self.run(runner, extra);
        assert_exit(&out, 0);
        (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
    }

    fn run(&self, runner: &str, extra: &[&str]) -> std::process::Output {
        let dir = self.examples.path(runner);
        let (cache, output) = (
            dir.join("cache"),
            format!("oci:{}", dir.join("out").display()),
        );
        let host = self.registry.host();
        let mut args = vec![
            "build",
            "monorepo",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &output,
            "--insecure-registry",
            &host,
            "--json",
        ];
        args.extend_from_slice(extra);
        strata(&self.examples.path("examples"), &args)
    }
}

/// The ids of the tasks a report says ran, but the app and image tasks (the exporter's).
fn buildpack_tasks_ran(report: &Value) -> Vec<String> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "ran" && t["id"] != "app" && t["id"] != "image")
        .map(|t| format!("{} {}", t["id"], t["services"]))
        .collect()
}

/// `name -> digest` of the services a report built.
fn digests(report: &Value) -> BTreeMap<String, String> {
    service_digests(report).into_iter().collect()
}

/// The digests of the blobs the registry served (`GET …/blobs/sha256:…` answered 200) from
/// request `from` of its access log on.
fn blob_gets(registry: &Registry, from: usize) -> Vec<String> {
    registry.requests()[from..]
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/") && r.ends_with(" 200"))
        .map(|r| {
            r.split("/blobs/")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The blobs the action entries of `store` name, by what for.
#[derive(Default)]
struct EntryBlobs {
    /// Every blob.
    all: BTreeSet<String>,
    /// Launch layers of tasks (what an image has).
    launch: BTreeSet<String>,
    /// Layers that are no launch layer: build-only and cache-only.
    not_launch: BTreeSet<String>,
    /// SBOM files and app changes.
    files: BTreeSet<String>,
}

fn entry_blobs(store: &Path) -> EntryBlobs {
    let mut out = EntryBlobs::default();
    for shard in std::fs::read_dir(store.join("actions")).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let entry: Value =
                serde_json::from_slice(&std::fs::read(file.unwrap().path()).unwrap()).unwrap();
            for blob in entry["blobs"].as_array().unwrap() {
                out.all.insert(blob["digest"].as_str().unwrap().to_owned());
            }
            let payload = &entry["payload"];
            for layer in payload["layers"].as_array().into_iter().flatten() {
                if let Some(digest) = layer["blob"]["digest"].as_str() {
                    if layer["types"]["launch"] == true {
                        out.launch.insert(digest.to_owned());
                    } else {
                        out.not_launch.insert(digest.to_owned());
                    }
                }
            }
            for sbom in payload["sbom"].as_array().into_iter().flatten() {
                out.files
                    .insert(sbom["blob"]["digest"].as_str().unwrap().to_owned());
            }
            if let Some(digest) = payload["change"]["tar"]["digest"].as_str() {
                out.files.insert(digest.to_owned());
            }
        }
    }
    out
}

/// The blob of the first layer named `name` that the action entries of `store` record.
fn layer_blob(store: &Path, name: &str) -> Option<String> {
    for shard in std::fs::read_dir(store.join("actions")).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let entry: Value =
                serde_json::from_slice(&std::fs::read(file.unwrap().path()).unwrap()).unwrap();
            for layer in entry["payload"]["layers"].as_array().into_iter().flatten() {
                if layer["name"] == name
                    && let Some(digest) = layer["blob"]["digest"].as_str()
                {
                    return Some(digest.to_owned());
                }
            }
        }
    }
    None
}

/// Every blob an OCI layout has.
fn layout_blobs(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

#[test]
fn a_second_runner_runs_no_buildpack_task_and_downloads_only_what_it_uses() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let (a, _) = fx.build("a", &["--cache-to", &cache]);
    let ran_a = buildpack_tasks_ran(&a);
    assert!(!ran_a.is_empty());
    let pushed = &a["remote_cache"]["pushed"];
    assert_eq!(
        pushed["entries"].as_u64().unwrap(),
        ran_a.len() as u64,
        "{pushed}"
    );
    assert!(pushed["uploaded"].as_u64().unwrap() > 0, "{pushed}");

    let before = fx.registry.requests().len();
    let (b, warnings) = fx.build("b", &["--cache-from", &cache]);
    assert_eq!(buildpack_tasks_ran(&b), Vec::<String>::new(), "{warnings}");
    assert_eq!(digests(&a), digests(&b));
    assert_eq!(
        b["remote_cache"]["fetched"].as_u64().unwrap(),
        ran_a.len() as u64
    );
    assert_eq!(b["remote_cache"]["refused"], 0, "{warnings}");
    assert!(b["remote_cache"]["pushed"].is_null(), "it only reads");

    // What was downloaded: each blob once; no upload; and every layer blob is one the output
    // has: no build-only or cache-only layer, since no task that needs one runs.
    let requests = &fx.registry.requests()[before..];
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PUT ") || r.starts_with("POST ")),
        "{requests:#?}"
    );
    let gets = blob_gets(&fx.registry, before);
    let unique: BTreeSet<&String> = gets.iter().collect();
    assert_eq!(
        unique.len(),
        gets.len(),
        "a blob downloaded twice: {gets:#?}"
    );
    let output = layout_blobs(&fx.examples.path("b/out"));
    let run_image = layout_blobs(&fx.examples.path("examples/run-image/layout"));
    assert!(
        unique.iter().all(|d| !run_image.contains(*d)),
        "run image layers stay local"
    );
    // The rest: each fetched entry itself, and the SBOM files and app changes entries name,
    // which the export reads. (A's store: B's keeps as whole entries only those whose blobs
    // all came.)
    let entries = entry_blobs(&fx.examples.path("a/cache/store"));
    assert!(
        !entries.not_launch.is_empty(),
        "the monorepo has build-only layers"
    );
    let not_launch: Vec<&&String> = unique
        .iter()
        .filter(|d| entries.not_launch.contains(**d) && !output.contains(**d))
        .collect();
    assert!(
        not_launch.is_empty(),
        "build-only or cache-only layers downloaded: {not_launch:#?}"
    );
    let extra: BTreeSet<&String> = unique
        .iter()
        .copied()
        .filter(|d| !output.contains(*d))
        .collect();
    let configs = extra
        .iter()
        .filter(|d| !entries.files.contains(**d))
        .count();
    assert_eq!(configs, ran_a.len(), "one entry per task: {extra:#?}");
    assert!(
        extra
            .iter()
            .all(|d| entries.files.contains(*d) || !entries.all.contains(*d)),
        "{extra:#?}"
    );

    // A third runner reading the cache again gets the same; the cache stays as it was.
    let tags_before = fx.registry.count("PUT", "/manifests/");
    let (c, _) = fx.build("c", &["--cache-from", &cache, "--cache-to", &cache]);
    assert_eq!(buildpack_tasks_ran(&c), Vec::<String>::new());
    assert_eq!(digests(&a), digests(&c));
    assert_eq!(
        fx.registry.count("PUT", "/manifests/"),
        tags_before,
        "nothing ran, nothing pushed"
    );
}

#[test]
fn three_shards_build_each_service_once_and_a_fourth_runner_runs_nothing() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let mut built: Vec<String> = Vec::new();
    let mut all = BTreeMap::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let plan = strata(
            &fx.examples.path("examples"),
            &["plan", "monorepo", "--shard", &shard, "--format", "json"],
        );
        assert_exit(&plan, 0);
        let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(plan["shard"], shard.as_str());
        let planned: Vec<String> = plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        let (report, _) = fx.build(
            &format!("shard-{k}"),
            &[
                "--shard",
                &shard,
                "--cache-from",
                &cache,
                "--cache-to",
                &cache,
            ],
        );
        let names: Vec<String> = digests(&report).into_keys().collect();
        let mut sorted = planned.clone();
        sorted.sort();
        assert_eq!(names, sorted, "the plan says what the shard builds");
        built.extend(names);
        all.extend(digests(&report));
    }
    built.sort();
    let every: Vec<String> = {
        let plan = strata(
            &fx.examples.path("examples"),
            &["plan", "monorepo", "--format", "json"],
        );
        let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
        let mut names: Vec<String> = plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(built, every, "every service exactly once across the shards");

    // The fourth reads the cache its strata.toml names.
    let file = fx.examples.path("examples/monorepo/strata.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replacen(
        "[workspace]\n",
        &format!("[workspace]\ncache = \"{cache}\"\n"),
        1,
    );
    std::fs::write(&file, text).unwrap();
    let (fourth, warnings) = fx.build("fourth", &[]);
    assert_eq!(
        fourth["remote_cache"]["pushed"]["entries"], 0,
        "nothing ran"
    );
    assert_eq!(
        buildpack_tasks_ran(&fourth),
        Vec::<String>::new(),
        "{warnings}"
    );
    assert_eq!(digests(&fourth), all);
}

#[test]
fn bad_shards_are_usage_errors() {
    let examples = ExampleCopy::new();
    for bad in ["0/3", "4/3", "1/0", "junk", "1/3/3"] {
        let out = strata(
            &examples.path("examples"),
            &["plan", "monorepo", "--shard", bad],
        );
        assert_exit(&out, 2);
    }
    let app = examples.path("examples/apps/hello");
    let out = strata(
        &examples.path("examples"),
        &[
            "plan",
            app.to_str().unwrap(),
            "--builder",
            "builder.toml",
            "--shard",
            "1/2",
        ],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--shard needs a workspace"),
        "{}",
        stderr(&out)
    );
}

/// The registry's file for blob `digest`.
fn stored_blob(registry: &Registry, digest: &str) -> PathBuf {
    registry.blob_data(&digest.parse().unwrap())
}

#[test]
fn a_poisoned_or_truncated_remote_blob_is_a_miss_with_a_warning_never_a_wrong_image() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let (a, _) = fx.build(
        "a",
        &[
            "--cache-to",
            &cache,
            "--service",
            "api",
            "--service",
            "docs",
        ],
    );
    // Two layer blobs the images have (not the run image's): one gets other bytes of the
    // same size, the other loses its tail.
    let run_image = layout_blobs(&fx.examples.path("examples/run-image/layout"));
    let mut layers: Vec<String> = Vec::new();
    for service in a["services"].as_array().unwrap() {
        for layer in service["layers"].as_array().unwrap() {
            let digest = layer["digest"].as_str().unwrap().to_owned();
            let path = stored_blob(&fx.registry, &digest);
            if !run_image.contains(&digest) && path.exists() && !layers.contains(&digest) {
                layers.push(digest);
            }
        }
    }
    assert!(layers.len() >= 2, "{a}");
    let poisoned = stored_blob(&fx.registry, &layers[0]);
    let size = std::fs::read(&poisoned).unwrap().len();
    std::fs::write(&poisoned, vec![b'x'; size]).unwrap();
    let truncated = stored_blob(&fx.registry, &layers[1]);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let (b, warnings) = fx.build(
        "b",
        &[
            "--cache-from",
            &cache,
            "--service",
            "api",
            "--service",
            "docs",
        ],
    );
    assert_eq!(
        digests(&a),
        digests(&b),
        "the tasks ran again and made the same images"
    );
    assert!(
        b["remote_cache"]["refused"].as_u64().unwrap() >= 2,
        "{}",
        b["remote_cache"]
    );
    for digest in &layers[..2] {
        assert!(
            warnings.contains(digest.as_str()),
            "no warning names {digest}:\n{warnings}"
        );
    }
    assert!(warnings.contains("its task runs"), "{warnings}");
    assert!(!buildpack_tasks_ran(&b).is_empty());
    // What B's store has is good: `cache verify` finds nothing wrong.
    let verify = strata(
        fx.examples.tmp.path(),
        &[
            "cache",
            "verify",
            "--cache-dir",
            fx.examples.path("b/cache").to_str().unwrap(),
        ],
    );
    assert_exit(&verify, 0);
}

/// `bin/build` of `t/count`: counts its builds in a `cache = true` layer and records the
/// count it found in the app (so the image says what the run started from).
const COUNT_BUILD: &str = r#"#!/bin/sh
set -e
layers="$1"
n=0
if [ -f "$layers/counter/count" ]; then n=$(cat "$layers/counter/count"); fi
echo "found=$n" > /workspace/found.txt
mkdir -p "$layers/counter"
echo $((n + 1)) > "$layers/counter/count"
printf '[types]\ncache = true\n' > "$layers/counter.toml"
"#;

/// A workspace with one service, `web`, built by the opaque buildpack `t/count`.
fn count_workspace(root: &Path, text: &str) -> PathBuf {
    let bp = root.join("bp");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::write(
        bp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/count\"\nversion = \"1\"\n",
    )
    .unwrap();
    for (name, body) in [("detect", "#!/bin/sh\nexit 0\n"), ("build", COUNT_BUILD)] {
        let path = bp.join("bin").join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let ws = root.join("ws");
    std::fs::create_dir_all(ws.join("services/web")).unwrap();
    std::fs::write(
        ws.join("strata.toml"),
        "[workspace]\nservices = [\"services/*\"]\n",
    )
    .unwrap();
    std::fs::write(ws.join("services/web/index.txt"), text).unwrap();
    date_in_the_past(root);
    ws
}

/// Builds [`count_workspace`] as runner `runner` under `tmp` (its own store and layout) with
/// `flags`, from the plain-HTTP registry `host`; what the built image's `found.txt` says, and
/// the build's stderr.
fn count_build(
    tmp: &Path,
    host: &str,
    runner: &str,
    text: &str,
    flags: &[&str],
) -> (String, String) {
    let root = tmp.join(runner);
    let ws = count_workspace(&root, text);
    let output = format!("oci:{}", root.join("out").display());
    let store = root.join("cache");
    let bp = root.join("bp");
    let mut args = vec![
        "build",
        ws.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "--cache-dir",
        store.to_str().unwrap(),
        "--output",
        &output,
        "--insecure-registry",
        host,
    ];
    args.extend_from_slice(flags);
    let out = strata(tmp, &args);
    assert_exit(&out, 0);
    let bundle = root.join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:web", root.join("out").display()),
            bundle.to_str().unwrap(),
        ],
    );
    let found = std::fs::read_to_string(bundle.join("rootfs/workspace/found.txt")).unwrap();
    (found, stderr(&out))
}

#[test]
fn a_cache_layer_made_on_one_runner_is_restored_on_another() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let cache = format!("docker://{}/ci/cache", registry.host());
    let host = registry.host();
    let build = |runner: &str, text: &str, flags: &[&str]| {
        count_build(tmp.path(), &host, runner, text, flags).0
    };
    assert_eq!(build("a", "v1", &["--cache-to", &cache]), "found=0\n");
    // Runner B, at another path, with a changed app: the buildpack runs again and starts
    // from A's cache layer.
    assert_eq!(
        build("b", "v2", &["--cache-from", &cache, "--cache-to", &cache]),
        "found=1\n"
    );
    // And C from B's, which B pushed.
    assert_eq!(build("c", "v3", &["--cache-from", &cache]), "found=2\n");
    // Without the cache, a fresh runner starts cold.
    assert_eq!(build("d", "v4", &[]), "found=0\n");
    // A runner whose hit (B's run) left its cache layer in the registry, since no task
    // needed it: its next build, with a changed app, still starts from that layer.
    assert_eq!(build("e", "v2", &["--cache-from", &cache]), "found=1\n");
    assert_eq!(build("e", "v5", &["--cache-from", &cache]), "found=2\n");
}

#[test]
fn a_poisoned_cache_layer_of_a_restore_state_is_a_cold_run_with_a_warning() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let cache = format!("docker://{}/ci/cache", registry.host());
    let host = registry.host();
    let build = |runner: &str, text: &str, flags: &[&str]| {
        count_build(tmp.path(), &host, runner, text, flags)
    };
    build("a", "v1", &["--cache-to", &cache]);
    let counter = layer_blob(&tmp.path().join("a/cache/store"), "counter")
        .expect("the buildpack's cache layer");
    let poisoned = registry.blob_data(&counter.parse().unwrap());
    let size = std::fs::read(&poisoned).unwrap().len();
    std::fs::write(&poisoned, vec![b'x'; size]).unwrap();
    // Runner B's buildpack runs (a changed app) and would start from A's cache layer: it
    // comes in bad, so it starts cold, and says which blob of which entry.
    let (found, warnings) = build("b", "v2", &["--cache-from", &cache]);
    assert_eq!(found, "found=0\n");
    let warning = warnings
        .lines()
        .find(|l| l.contains(&counter))
        .unwrap_or_else(|| panic!("no warning names {counter}:\n{warnings}"));
    assert!(
        warning.contains("docker://") && warning.contains("/ci/cache:r-"),
        "{warning}"
    );
}

#[test]
fn a_cache_that_cannot_be_reached_is_one_warning_and_the_build_goes_on() {
    let mut registry = Registry::start();
    let cache = format!("docker://{}/ci/cache", registry.host());
    let host = registry.host();
    registry.stop();
    let tmp = tempfile::tempdir().unwrap();
    let ws = count_workspace(tmp.path(), "v1");
    let output = format!("oci:{}", tmp.path().join("out").display());
    let (bp, store) = (tmp.path().join("bp"), tmp.path().join("cache"));
    let out = strata(
        tmp.path(),
        &[
            "build",
            ws.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--cache-dir",
            store.to_str().unwrap(),
            "--output",
            &output,
            "--insecure-registry",
            &host,
            "--cache-from",
            &cache,
            "--cache-to",
            &cache,
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert_eq!(err.matches("cannot be read").count(), 1, "{err}");
    assert!(err.contains("was not updated"), "{err}");
}

#[test]
fn a_task_cut_off_after_a_need_ran_is_asked_of_the_remote_too() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let only = ["--service", "api", "--service", "auth"];
    let mut flags = vec!["--cache-to", cache.as_str()];
    flags.extend(only);
    fx.build("a", &flags);
    // The same runtime version, spelled with a blank line: the greeter layer's key changes
    // (its input did), its output does not (the script trims it). So the layers that need it
    // are keyed only once it ran, and then found in the remote cache.
    for service in ["api", "auth"] {
        let file = fx.examples.path(&format!(
            "examples/monorepo/services/{service}/.runtime-version"
        ));
        std::fs::write(&file, "1.2\n\n").unwrap();
        date_in_the_past(&file);
    }
    let mut flags = vec!["--cache-from", cache.as_str()];
    flags.extend(only);
    let (b, warnings) = fx.build("b", &flags);
    // The greeter layer runs, and each Procfile build (it reads the whole app); not the
    // phrases layer that needs the greeter.
    let ran = buildpack_tasks_ran(&b);
    assert_eq!(ran.len(), 3, "{ran:?}\n{warnings}");
    assert!(
        ran.iter().any(|t| t.contains("examples/runtime:greeter")),
        "{ran:?}"
    );
    assert!(ran.iter().all(|t| !t.contains("phrases")), "{ran:?}");
    // The phrases layer, keyed only once the greeter came out as before, was not in this
    // empty store: it came from the remote cache, asked for on its own.
    let phrases: Vec<&Value> = b["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"] == "examples/runtime:phrases")
        .collect();
    assert!(!phrases.is_empty(), "{:#?}", b["tasks"]);
    for task in phrases {
        assert_eq!(task["status"], "cached", "{task:#?}");
    }
}

/// `sha256:<hex>` of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

#[test]
fn an_entry_recording_a_wrong_diff_id_is_a_miss_with_a_warning_never_a_wrong_image() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let only = ["--service", "api"];
    let mut flags = vec!["--cache-to", cache.as_str()];
    flags.extend(only);
    let (a, _) = fx.build("a", &flags);
    let image_layers: BTreeSet<String> = a["services"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();

    // An entry A pushed with a compressed launch layer: its config (the entry) gets another
    // diffID for that layer, and a manifest naming the new config goes under its tag. Every
    // digest and size still matches; only the diffID is false.
    let client = fx.registry.client();
    let keys: Vec<String> = std::fs::read_dir(fx.examples.path("a/cache/store/actions"))
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|f| {
            let path = f.unwrap().path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    let mut forged = None;
    for key in &keys {
        let tag = format!("k-{key}");
        let reference =
            strata_registry::Reference::with_tag(&fx.registry.host(), "ci/cache", &tag).unwrap();
        let Some(Ok(Some(fetched))) = client
            .fetch_manifests(std::slice::from_ref(&reference))
            .pop()
        else {
            continue;
        };
        let mut manifest: Value = serde_json::from_slice(&fetched.bytes).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
        let mut entry: Value =
            serde_json::from_slice(&std::fs::read(stored_blob(&fx.registry, &config)).unwrap())
                .unwrap();
        let Some(blob) = entry["payload"]["layers"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|l| l.get_mut("blob"))
            .find(|b| {
                b["compression"] != "none"
                    && image_layers.contains(b["digest"].as_str().unwrap_or_default())
            })
        else {
            continue;
        };
        blob["diff_id"] = Value::from(sha256(b"another tar"));
        let digest = blob["digest"].as_str().unwrap().to_owned();
        let layout = support::Layout::new(fx.examples.tmp.path().join("forged"));
        for layer in manifest["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            std::fs::copy(
                stored_blob(&fx.registry, d),
                layout.blobs().path(&d.parse().unwrap()),
            )
            .unwrap();
        }
        let config = layout.add(
            &serde_json::to_vec(&entry).unwrap(),
            "application/vnd.strata.cache.entry.v1+json",
        );
        manifest["config"]["digest"] = Value::from(config.digest.to_string());
        manifest["config"]["size"] = Value::from(config.size);
        let root = layout.add(
            &serde_json::to_vec(&manifest).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        client
            .push(&layout.blobs(), &root, &reference, None)
            .unwrap();
        forged = Some((tag, digest));
        break;
    }
    let (tag, digest) = forged.expect("an entry with a compressed image layer");

    let mut flags = vec!["--cache-from", cache.as_str()];
    flags.extend(only);
    let (b, warnings) = fx.build("b", &flags);
    assert_eq!(
        digests(&a),
        digests(&b),
        "the task ran again and made the same image"
    );
    let warning = warnings
        .lines()
        .find(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no warning names {tag}:\n{warnings}"));
    assert!(warning.contains(&digest), "{warning}");
    assert!(warning.contains("diffID"), "{warning}");
    assert!(warning.contains("its task runs"), "{warning}");
    assert_eq!(b["remote_cache"]["refused"], 1, "{}", b["remote_cache"]);
    assert_eq!(buildpack_tasks_ran(&b).len(), 1, "{warnings}");
}

#[test]
fn a_build_layer_comes_when_a_task_that_runs_needs_it_and_a_poisoned_one_is_a_miss() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let only = ["--service", "api"];
    let mut flags = vec!["--cache-to", cache.as_str()];
    flags.extend(only);
    fx.build("a", &flags);
    let tools = layer_blob(&fx.examples.path("a/cache/store"), "tools")
        .expect("the runtime's build-only layer");

    // A new file in the app: the Procfile build (it reads the whole app) runs, with the
    // runtime's build layers; the layer tasks are hits. The build-only layer is downloaded
    // then, once, and the output does not have it.
    let app = fx.examples.path("examples/monorepo/services/api/extra.txt");
    std::fs::write(&app, "more\n").unwrap();
    date_in_the_past(&app);
    let mut flags = vec!["--cache-from", cache.as_str()];
    flags.extend(only);
    let before = fx.registry.requests().len();
    let (b, warnings) = fx.build("b", &flags);
    let ran = buildpack_tasks_ran(&b);
    assert!(
        ran.iter().all(|t| t.contains("examples/procfile")) && !ran.is_empty(),
        "{ran:?}\n{warnings}"
    );
    let gets = blob_gets(&fx.registry, before);
    assert_eq!(gets.iter().filter(|d| **d == tools).count(), 1, "{gets:#?}");
    assert!(!layout_blobs(&fx.examples.path("b/out")).contains(&tools));
    // B fetched every blob of that entry: it is kept whole.
    assert!(
        entry_blobs(&fx.examples.path("b/cache/store"))
            .all
            .contains(&tools)
    );

    // The same build-only layer with other bytes in the registry: the runner that needs it
    // warns, naming the blob and the cache entry, and builds again with that entry a miss:
    // the task that made the layer runs too, and the image is B's.
    let poisoned = stored_blob(&fx.registry, &tools);
    let size = std::fs::read(&poisoned).unwrap().len();
    std::fs::write(&poisoned, vec![b'x'; size]).unwrap();
    let (c, warnings) = fx.build("c", &flags);
    let warning = warnings
        .lines()
        .find(|l| l.contains(&tools))
        .unwrap_or_else(|| panic!("no warning names {tools}:\n{warnings}"));
    assert!(
        warning.contains("docker://") && warning.contains(":k-"),
        "{warning}"
    );
    assert!(warning.contains("its task runs"), "{warning}");
    assert_eq!(digests(&b), digests(&c), "{warnings}");
    let ran_c = buildpack_tasks_ran(&c);
    assert!(ran_c.len() > ran.len(), "{ran_c:?}\n{warnings}");
    assert!(c["remote_cache"]["refused"].as_u64().unwrap() >= 1);
    // What C's store kept is good.
    let verify = strata(
        fx.examples.tmp.path(),
        &[
            "cache",
            "verify",
            "--cache-dir",
            fx.examples.path("c/cache").to_str().unwrap(),
        ],
    );
    assert_exit(&verify, 0);
}

#[test]
fn layers_a_cache_on_the_output_registry_has_are_mounted_from_it_not_uploaded() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let (a, _) = fx.build("a", &["--cache-to", &cache, "--service", "api"]);
    let entries = entry_blobs(&fx.examples.path("a/cache/store"));
    let in_cache: Vec<String> = a["services"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .filter(|d| entries.launch.contains(d))
        .collect();
    assert!(!in_cache.is_empty(), "{a}");

    // Runner B pushes api to another repository of the cache's registry.
    let host = fx.registry.host();
    let store = fx.examples.path("b/cache");
    let output = format!("docker://{host}/apps");
    let before = fx.registry.requests().len();
    let out = strata(
        &fx.examples.path("examples"),
        &[
            "build",
            "monorepo",
            "--cache-dir",
            store.to_str().unwrap(),
            "--output",
            &output,
            "--tag",
            "v1",
            "--insecure-registry",
            &host,
            "--cache-from",
            &cache,
            "--service",
            "api",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(buildpack_tasks_ran(&b), Vec::<String>::new(), "{b}");
    // The same layers (the configs differ: a layout output records its relative run image
    // name from the directory holding the layout, a registry output as written).
    let layers = |report: &Value| -> Vec<String> {
        report["services"][0]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(layers(&a), layers(&b), "the same layers");
    let requests = fx.registry.requests()[before..].to_vec();
    for digest in &in_cache {
        // As the access log has it: the query's `:` percent-encoded.
        let digest = digest.replace(':', "%3A");
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("POST /v2/apps/api/blobs/uploads/")
                    && r.contains(&format!("mount={digest}"))
                    && r.ends_with(" 201")),
            "{digest} not mounted: {requests:#?}"
        );
        assert!(
            !requests
                .iter()
                .any(|r| r.starts_with("PUT ") && r.contains(&format!("digest={digest}"))),
            "{digest} uploaded: {requests:#?}"
        );
    }
}

#[test]
fn a_hit_pushed_to_the_caches_registry_downloads_no_layer_blob() {
    let fx = Fixture::new();
    let cache = fx.cache();
    let host = fx.registry.host();
    let push = |runner: &str, namespace: &str, extra: &[&str]| -> Value {
        let store = fx.examples.path(runner).join("cache");
        let output = format!("docker://{host}/{namespace}");
        let mut args = vec![
            "build",
            "monorepo",
            "--cache-dir",
            store.to_str().unwrap(),
            "--output",
            &output,
            "--tag",
            "v1",
            "--insecure-registry",
            &host,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = strata(&fx.examples.path("examples"), &args);
        assert_exit(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = push("a", "a", &["--cache-to", &cache]);
    let entries = entry_blobs(&fx.examples.path("a/cache/store"));
    assert!(!entries.launch.is_empty());

    // Runner B pushes the workspace to other repositories of the cache's registry.
    let before = fx.registry.requests().len();
    let b = push("b", "b", &["--cache-from", &cache]);
    assert_eq!(buildpack_tasks_ran(&b), Vec::<String>::new(), "{b}");
    assert_eq!(digests(&a), digests(&b));
    assert_eq!(b["remote_cache"]["refused"], 0, "{}", b["remote_cache"]);

    // What B downloaded: the entries (configs), and the SBOM files and app changes they
    // name; no layer of any image, and no layer an entry names.
    let gets = blob_gets(&fx.registry, before);
    let image_layers: BTreeSet<String> = b["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["layers"].as_array().unwrap().iter())
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    let layers: Vec<&String> = gets
        .iter()
        .filter(|d| image_layers.contains(*d) || entries.launch.contains(*d))
        .chain(gets.iter().filter(|d| entries.not_launch.contains(*d)))
        .collect();
    assert!(layers.is_empty(), "layer blobs downloaded: {layers:#?}");
    let configs: Vec<&String> = gets.iter().filter(|d| !entries.all.contains(*d)).collect();
    assert_eq!(
        configs.len() as u64,
        b["remote_cache"]["fetched"].as_u64().unwrap(),
        "one config per entry: {gets:#?}"
    );
    assert!(
        gets.iter()
            .all(|d| entries.files.contains(d) || configs.contains(&d)),
        "{gets:#?}"
    );
    // Some launch layers' SBOMs are strata's: their entries carry the file lists.
    let with_facts = configs
        .iter()
        .filter(|c| {
            let entry: Value =
                serde_json::from_slice(&std::fs::read(stored_blob(&fx.registry, c)).unwrap())
                    .unwrap();
            entry["facts"].as_object().is_some_and(|f| !f.is_empty())
        })
        .count();
    assert!(with_facts > 0, "no entry lists a launch layer's files");
    // The launch layers went into B's repositories by mount, from the cache; and B's
    // images are whole there, as skopeo reads them back.
    let requests = &fx.registry.requests()[before..];
    for digest in &entries.launch {
        let digest = digest.replace(':', "%3A");
        assert!(
            !requests
                .iter()
                .any(|r| r.starts_with("PUT ") && r.contains(&format!("digest={digest}"))),
            "{digest} uploaded"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST /v2/b/") && r.contains("mount=") && r.ends_with(" 201")),
        "{requests:#?}"
    );
    let copy = fx.examples.path("copied");
    support::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/b/api:v1"),
        &format!("oci:{}:api", copy.display()),
    ]);
    let api = &digests(&b)["api"];
    assert!(
        std::fs::read_to_string(copy.join("index.json"))
            .unwrap()
            .contains(api.as_str())
    );
}
