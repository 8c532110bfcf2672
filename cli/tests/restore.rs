//! `strata build` restores an opaque buildpack's layers between builds, in the real sandbox:
//! when its task runs again (the app changed), its cache layer's contents and metadata, its
//! SBOM and `store.toml` are there, a launch layer it leaves without a directory is the
//! previous build's layer (same diffID), and everything restored belongs to the build user.
//! An unchanged task is a hit, and what the next run starts from; `--no-cache` restores
//! nothing; services and repositories keep their own state; a tampered store entry is a cold
//! run that writes nothing outside; `gc` evicts the state without breaking the next build.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// `bin/build` of `t/restore`: prints what it found into `/workspace/seen.txt`, counts its
/// builds in a cache layer (contents and `[metadata]`) and in `store.toml`, and makes a
/// launch-only layer `runtime` once, then reuses it by writing only its `runtime.toml`.
const BUILD: &str = r#"#!/bin/sh
set -e
layers="$1"
seen=/workspace/seen.txt
: > "$seen"
n=0
if [ -f "$layers/cache/count" ]; then n=$(cat "$layers/cache/count"); fi
echo "count=$n" >> "$seen"
for f in cache.toml cache.sbom.cdx.json store.toml runtime.toml; do
  if [ -f "$layers/$f" ]; then echo "--- $f"; cat "$layers/$f"; fi >> "$seen"
done
if [ -e "$layers/runtime" ]; then echo "runtime-dir" >> "$seen"; fi
n=$((n + 1))
mkdir -p "$layers/cache"
echo "$n" > "$layers/cache/count"
printf '[types]\ncache = true\n[metadata]\nbuilds = %d\n' "$n" > "$layers/cache.toml"
printf '{"bomFormat":"CycloneDX","specVersion":"1.5","builds":%d}\n' "$n" > "$layers/cache.sbom.cdx.json"
if grep -q 'version = "1"' "$layers/runtime.toml" 2>/dev/null; then
  echo "reused" >> "$seen"
else
  mkdir -p "$layers/runtime"
  echo "made in build $n" > "$layers/runtime/stamp"
fi
printf '[types]\nlaunch = true\n[metadata]\nversion = "1"\n' > "$layers/runtime.toml"
printf '[metadata]\nlast = %d\n' "$n" > "$layers/store.toml"
"#;

/// The buildpack `t/restore` in `dir`.
fn buildpack(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"t/restore\"\nversion = \"1\"\n\
         sbom-formats = [\"application/vnd.cyclonedx+json\"]\n",
    )
    .unwrap();
    for (name, body) in [("detect", "#!/bin/sh\nexit 0\n"), ("build", BUILD)] {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    dir.to_owned()
}

/// An app in `dir` whose one file says `text`.
fn app(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.txt"), text).unwrap();
    date_in_the_past(dir);
    dir.to_owned()
}

/// A fixture: the buildpack, an app, the store and the output layout in one temp dir.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        buildpack(&tmp.path().join("bp"));
        app(&tmp.path().join("app"), "v1");
        Self { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `strata build app --buildpack bp` into `oci:out:app` with `extra` flags.
    fn run(&self, extra: &[&str]) -> Output {
        let (app, bp, cache) = (self.path("app"), self.path("bp"), self.path("cache"));
        let out = format!("oci:{}:app", self.path("out").display());
        let mut args = vec![
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &out,
            "--json",
        ];
        args.extend_from_slice(extra);
        strata(self.tmp.path(), &args)
    }

    /// [`Self::run`], which must succeed: its report.
    fn build(&self, extra: &[&str]) -> Value {
        let out = self.run(extra);
        assert_exit(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Changes the app, so that the buildpack's task runs again.
    fn change_app(&self, text: &str) {
        app(&self.path("app"), text);
    }

    /// What the buildpack saw in the image tagged `app`.
    fn seen(&self) -> String {
        seen(&self.path("out"), "app", &self.path("bundle"))
    }
}

/// `/workspace/seen.txt` of the image `tag` in `layout`, as umoci unpacks it into `bundle`.
fn seen(layout: &Path, tag: &str, bundle: &Path) -> String {
    let _ = std::fs::remove_dir_all(bundle);
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    std::fs::read_to_string(bundle.join("rootfs/workspace/seen.txt")).unwrap()
}

/// The status of the buildpack's task in a report.
fn status(report: &Value) -> &str {
    let task = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t/restore (bin/build)")
        .unwrap_or_else(|| panic!("no buildpack task in {report:#}"));
    task["status"].as_str().unwrap()
}

/// The key (hex) of the buildpack's task in a report.
fn key(report: &Value) -> String {
    let task = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t/restore (bin/build)")
        .unwrap();
    task["key"].as_str().unwrap().to_owned()
}

/// The image config of `tag` in `layout`, as skopeo reads it.
fn config(layout: &Path, tag: &str) -> Value {
    let text = tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:{tag}", layout.display()),
        ],
    );
    serde_json::from_str(&text).unwrap()
}

/// The diffID of layer `layer` of `t/restore` in the image, from the lifecycle metadata label,
/// checked to be one of the image's diffIDs.
fn layer_diff_id(layout: &Path, tag: &str, layer: &str) -> String {
    let config = config(layout, tag);
    let label = config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]
        .as_str()
        .unwrap();
    let metadata: Value = serde_json::from_str(label).unwrap();
    let sha = metadata["buildpacks"][0]["layers"][layer]["sha"]
        .as_str()
        .unwrap_or_else(|| panic!("no layer {layer} in {metadata:#}"))
        .to_owned();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert!(
        diff_ids.iter().any(|d| d == &sha),
        "{sha} not in {diff_ids:?}"
    );
    sha
}

#[test]
fn a_buildpack_that_runs_again_finds_its_cache_metadata_and_store_and_reuses_its_launch_layer() {
    let fx = Fixture::new();
    let first = fx.build(&[]);
    assert_eq!(status(&first), "ran");
    let seen = fx.seen();
    assert!(
        seen.starts_with("count=0\n"),
        "a first build is cold:\n{seen}"
    );
    assert!(!seen.contains("---"), "nothing restored:\n{seen}");
    let runtime = layer_diff_id(&fx.path("out"), "app", "runtime");

    // Unchanged: the task is a hit (the image is exported again from the store).
    std::fs::remove_dir_all(fx.path("out")).unwrap();
    let hit = fx.build(&[]);
    assert_eq!(status(&hit), "cached");
    assert!(fx.seen().starts_with("count=0\n"));

    fx.change_app("v2");
    let second = fx.build(&[]);
    assert_eq!(status(&second), "ran");
    let seen = fx.seen();
    assert!(
        seen.starts_with("count=1\n"),
        "the cache layer is back:\n{seen}"
    );
    assert!(
        seen.contains("--- cache.toml\n[metadata]\nbuilds = 1\n"),
        "its metadata is back, without [types]:\n{seen}"
    );
    assert!(
        seen.contains("--- cache.sbom.cdx.json\n{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\",\"builds\":1}\n"),
        "its SBOM is back:\n{seen}"
    );
    assert!(
        seen.contains("--- store.toml\n[metadata]\nlast = 1\n"),
        "store.toml is back:\n{seen}"
    );
    assert!(
        seen.contains("--- runtime.toml\n[metadata]\nversion = \"1\"\n"),
        "the launch layer's metadata is back:\n{seen}"
    );
    assert!(!seen.contains("[types]"), "{seen}");
    assert!(
        !seen.contains("runtime-dir"),
        "a launch-only layer's contents are not restored:\n{seen}"
    );
    assert!(seen.contains("reused"), "{seen}");
    assert_eq!(
        layer_diff_id(&fx.path("out"), "app", "runtime"),
        runtime,
        "the launch layer left without its directory is the previous build's"
    );

    // The reused layer is restorable again; the count goes on.
    fx.change_app("v3");
    fx.build(&[]);
    let seen = fx.seen();
    assert!(seen.starts_with("count=2\n"), "{seen}");
    assert!(seen.contains("reused"), "{seen}");
    assert_eq!(layer_diff_id(&fx.path("out"), "app", "runtime"), runtime);
}

#[test]
fn a_hit_is_what_the_next_run_starts_from() {
    let fx = Fixture::new();
    fx.build(&[]);
    fx.change_app("v2");
    fx.build(&[]);
    assert!(fx.seen().starts_with("count=1\n"), "{}", fx.seen());
    // Back to the first app: a hit, whose image has the first build's layers.
    fx.change_app("v1");
    assert_eq!(status(&fx.build(&[])), "cached");
    fx.change_app("v3");
    fx.build(&[]);
    let seen = fx.seen();
    assert!(
        seen.starts_with("count=1\n"),
        "the run after a hit starts from the hit's layers, not the older run's:\n{seen}"
    );
}

#[test]
fn no_cache_restores_nothing() {
    let fx = Fixture::new();
    fx.build(&[]);
    fx.change_app("v2");
    let report = fx.build(&["--no-cache"]);
    assert_eq!(status(&report), "ran");
    let seen = fx.seen();
    assert!(seen.starts_with("count=0\n"), "{seen}");
    assert!(!seen.contains("---"), "{seen}");
    // What the --no-cache build made is the next build's state.
    fx.change_app("v3");
    fx.build(&[]);
    assert!(fx.seen().starts_with("count=1\n"), "{}", fx.seen());
}

/// A repository at `root` with services `api` and `web`, each an app, built by `t/restore`.
fn repository(root: &Path, bp: &Path) {
    for name in ["api", "web"] {
        app(&root.join("services").join(name), name);
    }
    std::fs::write(
        root.join("builder.toml"),
        format!(
            "[[buildpacks]]\nuri = \"{}\"\n[[order]]\n[[order.group]]\nid = \"t/restore\"\n\
             version = \"1\"\n",
            bp.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("strata.toml"),
        "[workspace]\nbuilder = \"builder.toml\"\noutput = \"oci:out\"\n\
         services = [\"services/*\"]\n",
    )
    .unwrap();
}

#[test]
fn services_and_repositories_keep_their_own_state() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = buildpack(&tmp.path().join("bp"));
    let cache = tmp.path().join("cache");
    let build = |repo: &Path| {
        let out = strata(
            tmp.path(),
            &[
                "build",
                repo.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--json",
            ],
        );
        assert_exit(&out, 0);
    };
    let bundle = tmp.path().join("bundle");
    let seen = |repo: &Path, service: &str| seen(&repo.join("out"), service, &bundle);
    let a = tmp.path().join("a");
    repository(&a, &bp);
    build(&a);
    // Only api changes: api runs from its own state, web is a hit.
    app(&a.join("services/api"), "api v2");
    build(&a);
    assert!(
        seen(&a, "api").starts_with("count=1\n"),
        "{}",
        seen(&a, "api")
    );
    // Both change: each finds its own count.
    app(&a.join("services/api"), "api v3");
    app(&a.join("services/web"), "web v2");
    build(&a);
    assert!(
        seen(&a, "api").starts_with("count=2\n"),
        "{}",
        seen(&a, "api")
    );
    assert!(
        seen(&a, "web").starts_with("count=1\n"),
        "{}",
        seen(&a, "web")
    );

    // Another repository with services of the same names, on the same store, starts cold.
    let b = tmp.path().join("b");
    repository(&b, &bp);
    app(&b.join("services/api"), "api of b");
    build(&b);
    assert!(
        seen(&b, "api").starts_with("count=0\n"),
        "{}",
        seen(&b, "api")
    );
}

/// The action entry of `key` (hex) in the store under `cache`.
fn action(cache: &Path, key: &str) -> PathBuf {
    cache
        .join("store/actions")
        .join(&key[..2])
        .join(format!("{key}.json"))
}

/// After a tampered state: the next build (the app changed) is a cold run, and the one after
/// it restores what that cold run left.
fn cold_then_restored(fx: &Fixture) {
    fx.change_app("after tampering");
    assert_eq!(status(&fx.build(&[])), "ran");
    let seen = fx.seen();
    assert!(
        seen.starts_with("count=0\n") && !seen.contains("---"),
        "a tampered state is a cold run:\n{seen}"
    );
    fx.change_app("after the cold run");
    fx.build(&[]);
    let seen = fx.seen();
    assert!(seen.starts_with("count=1\n"), "{seen}");
}

/// Rewrites every `{"digest": from, "size": _}` in `value` to name `to` of `size` bytes.
fn renamed_blob(value: &mut Value, from: &str, to: &str, size: usize) {
    match value {
        Value::Object(map) => {
            if map.get("digest").and_then(Value::as_str) == Some(from) {
                map.insert("digest".into(), to.into());
                map.insert("size".into(), size.into());
            }
            map.values_mut()
                .for_each(|v| renamed_blob(v, from, to, size));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| renamed_blob(v, from, to, size)),
        _ => {}
    }
}

/// Puts `bytes` into the store under `cache` as a blob named by its digest; returns it.
fn put_blob(cache: &Path, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hex = format!("{:x}", sha2::Sha256::digest(bytes));
    std::fs::write(cache.join("store/blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

#[test]
fn a_tampered_restore_entry_is_a_cold_run_that_writes_nothing_outside() {
    // The layer's name leaves the layers directory.
    let fx = Fixture::new();
    let first = fx.build(&[]);
    let entry = action(&fx.path("cache"), &key(&first));
    let victim = fx.path("victim");
    let escape = format!(
        "{}{}",
        "../".repeat(30),
        victim.display().to_string().trim_start_matches('/')
    );
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(text.contains("\"name\":\"cache\""), "{text}");
    std::fs::write(
        &entry,
        text.replace("\"name\":\"cache\"", &format!("\"name\":{escape:?}")),
    )
    .unwrap();
    cold_then_restored(&fx);
    assert!(std::fs::symlink_metadata(&victim).is_err());
    assert!(std::fs::symlink_metadata(format!("{}.toml", victim.display())).is_err());

    // A layer blob whose bytes are not its name's.
    let fx = Fixture::new();
    fx.build(&[]);
    let blobs = fx.path("cache/store/blobs/sha256");
    for blob in std::fs::read_dir(&blobs).unwrap() {
        let path = blob.unwrap().path();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        std::fs::set_permissions(&path, perms).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::write(&path, vec![b'x'; usize::try_from(len).unwrap()]).unwrap();
    }
    cold_then_restored(&fx);

    // A ref that is a link to a host file.
    let fx = Fixture::new();
    fx.build(&[]);
    let only = |dir: &Path| {
        let mut entries = std::fs::read_dir(dir).unwrap();
        let first = entries.next().unwrap().unwrap().path();
        assert!(entries.next().is_none());
        first
    };
    let file = only(&only(&fx.path("cache/store/restore")));
    let elsewhere = fx.path("elsewhere.json");
    std::fs::rename(&file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    cold_then_restored(&fx);
}

#[test]
fn a_stored_tar_that_leaves_its_layer_is_a_cold_run_that_writes_nothing_outside() {
    // The cache layer's tar, intact under its digest, gets a link out of the layer and a file
    // written through it, and then a file beside the layer.
    let fx = Fixture::new();
    let first = fx.build(&[]);
    let cache = fx.path("cache");
    let entry = action(&cache, &key(&first));
    let mut json: Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    let layer = json["payload"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "cache")
        .unwrap()
        .clone();
    let outside = fx.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let (one, two) = (fx.path("tar1"), fx.path("tar2"));
    let layer_dir = "layers/t_restore/cache";
    std::fs::create_dir_all(one.join(layer_dir)).unwrap();
    std::fs::write(one.join(layer_dir).join("count"), "41\n").unwrap();
    std::os::unix::fs::symlink(&outside, one.join(layer_dir).join("link")).unwrap();
    std::fs::create_dir_all(two.join(layer_dir).join("link")).unwrap();
    std::fs::write(two.join(layer_dir).join("link/pwned"), "x").unwrap();
    std::fs::write(
        two.join("layers/t_restore/store.toml"),
        "[metadata]\nlast = 41\n",
    )
    .unwrap();
    let tar = fx.path("evil.tar");
    let tar_arg = tar.to_str().unwrap();
    tool(
        "tar",
        &["-cf", tar_arg, "-C", one.to_str().unwrap(), layer_dir],
    );
    let two_arg = two.to_str().unwrap();
    tool(
        "tar",
        &[
            "-rf",
            tar_arg,
            "-C",
            two_arg,
            &format!("{layer_dir}/link/pwned"),
        ],
    );
    tool(
        "tar",
        &["-rf", tar_arg, "-C", two_arg, "layers/t_restore/store.toml"],
    );
    let mut bytes = std::fs::read(&tar).unwrap();
    if layer["blob"]["gzip"] == true {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        bytes = gz.finish().unwrap();
    }
    let digest = put_blob(&cache, &bytes);
    let old = layer["blob"]["digest"].as_str().unwrap().to_owned();
    renamed_blob(&mut json, &old, &digest, bytes.len());
    std::fs::write(&entry, serde_json::to_vec(&json).unwrap()).unwrap();
    cold_then_restored(&fx);
    assert!(
        !outside.join("pwned").exists(),
        "a stored tar wrote through a link"
    );
    assert!(!fx.seen().contains("41"), "{}", fx.seen());
}

#[test]
fn gc_keeps_the_state_it_can_use_and_an_evicted_one_is_a_cold_run() {
    let fx = Fixture::new();
    fx.build(&[]);
    let cache = fx.path("cache");
    let gc = |extra: &[&str]| {
        let mut args = vec!["cache", "gc", "--cache-dir", cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = strata(fx.tmp.path(), &args);
        assert_exit(&out, 0);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gc(&[]);
    fx.change_app("v2");
    fx.build(&[]);
    assert!(fx.seen().starts_with("count=1\n"), "{}", fx.seen());

    let report = gc(&["--max-size", "0"]);
    assert!(
        report.lines().any(|l| l
            .split_whitespace()
            .take(4)
            .eq(["stale", "restore", "refs", "1"])),
        "the ref of the evicted entry goes with it:\n{report}"
    );
    assert!(
        std::fs::read_dir(cache.join("store/restore"))
            .unwrap()
            .all(|shard| std::fs::read_dir(shard.unwrap().path())
                .unwrap()
                .next()
                .is_none()),
        "no ref is kept"
    );
    fx.change_app("v3");
    fx.build(&[]);
    let seen = fx.seen();
    assert!(seen.starts_with("count=0\n"), "{seen}");
}
