//! Crash safety of layout commits: `strata rebase --all` of 1,000 images in one layout, and a
//! workspace build committing many services into one layout, each killed (SIGKILL) at random
//! moments. After every kill, every tag of `index.json` names either the manifest it named
//! before or the one an uninterrupted run gives (never a broken one, never none), every blob a
//! tagged manifest names is present and hashes to its name, skopeo reads a sample of the
//! images, and a rerun finishes the job.
//!
//! Kill moments come from a seeded generator (`STRATA_CRASH_SEED` picks another seed), spread
//! over the time an uninterrupted run took; what is asserted does not depend on where a kill
//! lands (it is printed, to see that kills land before, during and after the commit).

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::runimage::RunImageCopy;
use common::*;
use serde_json::Value;
use sha2::Digest as _;

/// Kills per test.
const ROUNDS: usize = 4;

/// xorshift64*: enough randomness for kill points, the same for the same seed.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Self {
        let seed = std::env::var("STRATA_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0xc4a5_40de_ad11_0c4e_u64);
        eprintln!("crash seed {seed} (STRATA_CRASH_SEED replays it)");
        Self((seed ^ salt) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `strata ARGS...` from `cwd`, as the other tests run it, not yet started.
fn command<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("XDG_CACHE_HOME", process_dir("cache"))
        .env("TMPDIR", scratch_tmpdir())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs `args` to the end; returns how long it took.
fn timed<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Duration {
    let start = Instant::now();
    let out = command(cwd, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    start.elapsed()
}

/// When a round kills: a while after the start, or a while after the run reached a phase that
/// can be seen from outside (so that kills land in a commit, which is short, and not only
/// before it).
enum When<'a> {
    After(Duration),
    /// Once the predicate holds for the process (by its id).
    Once(&'a dyn Fn(u32) -> bool, Duration),
}

/// Starts `args` and kills it as `when` says (or finds it finished by then).
fn killed<S: AsRef<OsStr>>(cwd: &Path, args: &[S], when: &When<'_>) -> &'static str {
    let mut child = command(cwd, args).spawn().unwrap();
    let delay = match when {
        When::After(delay) => *delay,
        When::Once(reached, delay) => {
            while !reached(child.id()) && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            *delay
        }
    };
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    if finished { "finished first" } else { "killed" }
}

/// How many files `dir` has.
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// The layout at `dir` replaced by a copy of `from`.
fn restore(dir: &Path, from: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    copy_tree(from, dir);
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// Checks the blob `digest` is present and hashes right, once per digest; returns its bytes
/// when `keep` (a manifest, to follow).
fn checked_blob(
    layout: &Path,
    digest: &str,
    seen: &mut HashSet<String>,
    keep: bool,
) -> Option<Vec<u8>> {
    if !keep && seen.contains(digest) {
        return None;
    }
    let path = blob(layout, digest);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{digest} is named but cannot be read: {e}"));
    assert_eq!(
        format!("sha256:{:x}", sha2::Sha256::digest(&bytes)),
        digest,
        "{} does not hash to its name",
        path.display()
    );
    seen.insert(digest.to_owned());
    keep.then_some(bytes)
}

/// After a kill: `index.json` parses, has exactly the tags of `before`, each once, each naming
/// its `before` or its `after` manifest; every manifest, config and layer they name is present
/// and hashes right; skopeo reads the first and the last image. Returns how many tags moved.
fn assert_old_or_new(
    layout: &Path,
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
) -> usize {
    let now = tags(layout);
    let mut names: Vec<&str> = now.iter().map(|(t, _)| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), now.len(), "a tag has several entries");
    assert_eq!(names.len(), before.len(), "every tag, no more, no less");
    let mut seen = HashSet::new();
    let mut moved = 0;
    for (tag, digest) in &now {
        let old = &before[tag];
        let new = &after[tag];
        assert!(
            digest == old || digest == new,
            "{tag} names {digest}, neither its old {old} nor its new {new}"
        );
        moved += usize::from(digest != old);
        let manifest = checked_blob(layout, digest, &mut seen, true).unwrap();
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap();
        checked_blob(layout, config, &mut seen, false);
        for layer in manifest["layers"].as_array().unwrap() {
            checked_blob(layout, layer["digest"].as_str().unwrap(), &mut seen, false);
        }
    }
    let mut sorted: Vec<&String> = before.keys().collect();
    sorted.sort();
    for tag in [sorted[0], sorted[sorted.len() - 1]] {
        tool(
            "skopeo",
            &["inspect", &format!("oci:{}:{tag}", layout.display())],
        );
    }
    moved
}

/// Adds tags `app-0001`… to `layout` until it has `total` images, each a copy of `seed` with
/// its own label (so its own config and manifest) and the same layers: only JSON is written.
fn fan_out(layout: &Path, seed: &str, total: usize) {
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"][0].clone();
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        seed
    );
    let digest = entry["digest"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(layout, digest)).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value =
        serde_json::from_slice(&std::fs::read(blob(layout, config_digest)).unwrap()).unwrap();
    let put = |value: &Value| {
        let bytes = serde_json::to_vec(value).unwrap();
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));
        std::fs::write(blob(layout, &digest), &bytes).unwrap();
        (digest, bytes.len())
    };
    let entries = index["manifests"].as_array_mut().unwrap();
    for i in 1..total {
        let mut config = config.clone();
        config["config"]["Labels"]["org.example.copy"] = i.to_string().into();
        let (digest, size) = put(&config);
        let mut manifest = manifest.clone();
        manifest["config"]["digest"] = digest.into();
        manifest["config"]["size"] = size.into();
        let (digest, size) = put(&manifest);
        let mut entry = entry.clone();
        entry["digest"] = digest.into();
        entry["size"] = size.into();
        entry["annotations"]["org.opencontainers.image.ref.name"] = format!("app-{i:04}").into();
        entries.push(entry);
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn tag_map(layout: &Path) -> HashMap<String, String> {
    tags(layout).into_iter().collect()
}

/// What killed commits left beside `layout` (staging directories) and in it (temp files),
/// after a commit to it: it removes them.
fn assert_nothing_left(layout: &Path) {
    let staging = format!(
        ".{}.staging-",
        layout.file_name().unwrap().to_string_lossy()
    );
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let left: Vec<String> = names(layout.parent().unwrap())
        .into_iter()
        .filter(|n| n.starts_with(&staging))
        .chain(
            names(layout)
                .into_iter()
                .chain(names(&layout.join("blobs/sha256")))
                .filter(|n| n.starts_with(".tmp-")),
        )
        .collect();
    assert_eq!(left, Vec::<String>::new(), "left behind");
}

#[test]
fn a_rebase_of_1000_images_killed_at_random_leaves_every_tag_old_or_new_and_a_rerun_finishes() {
    let mut rng = Rng::new(1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let base = root.join("base");
    std::os::unix::fs::symlink(run_image_dir(), &base).unwrap();
    let bp = one_layer_buildpack(
        &root.join("bp"),
        "t/crash",
        "data",
        &["*"],
        "cat /workspace/* > \"$1/data\"",
    );
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("app/main.txt"), "app").unwrap();
    let build = command(
        root,
        &[
            "build",
            "app",
            "--buildpack",
            bp.to_str().unwrap(),
            "--run-image",
            "oci:base:busybox",
            "--output",
            "oci:pristine:app-0000",
        ],
    )
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    assert_exit(&build, 0);
    fan_out(&root.join("pristine"), "app-0000", 1000);
    let before = tag_map(&root.join("pristine"));
    assert_eq!(before.len(), 1000);

    // The patched run image under the same name, and what an uninterrupted rebase makes.
    let patched = RunImageCopy::new(root, "patched").layer("patch", |rootfs| {
        std::fs::write(rootfs.join("etc/patch-level"), "2\n").unwrap();
    });
    std::fs::remove_file(&base).unwrap();
    std::os::unix::fs::symlink(patched.dir(), &base).unwrap();
    let rebase = [
        "rebase",
        "--run-image",
        "oci:base:busybox",
        "--all",
        "oci:out",
    ];
    restore(&root.join("out"), &root.join("pristine"));
    let took = timed(root, &rebase);
    let after = tag_map(&root.join("out"));
    assert!(before.iter().all(|(tag, old)| after[tag] != *old));
    eprintln!("an uninterrupted rebase of 1,000 images: {took:?}");

    let span = u64::try_from(took.as_millis()).unwrap().max(1);
    let out = root.join("out");
    let blobs = out.join("blobs/sha256");
    // The killed process's own staging directory (those of earlier kills are still there).
    let staged = |pid: u32| {
        let prefix = format!(".out.staging-{pid}.");
        std::fs::read_dir(root).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&prefix)
        })
    };
    let pristine_blobs = count(&root.join("pristine/blobs/sha256"));
    let moving = |_| count(&blobs) > pristine_blobs;
    let half_moved = |_| count(&blobs) > pristine_blobs + 1000;
    for round in 0..ROUNDS {
        restore(&out, &root.join("pristine"));
        let delay = Duration::from_millis(rng.next() % span);
        let short = Duration::from_millis(rng.next() % 50);
        // Anywhere; while blobs are staged; as the commit moves them in; half-way through.
        let (when, shown) = match round % 4 {
            0 => (When::After(delay), format!("{delay:?} after the start")),
            1 => (
                When::Once(&staged, short),
                format!("{short:?} into staging"),
            ),
            2 => (
                When::Once(&moving, Duration::ZERO),
                "as the commit began".to_owned(),
            ),
            _ => (
                When::Once(&half_moved, Duration::ZERO),
                "half-way through the commit".to_owned(),
            ),
        };
        let what = killed(root, &rebase, &when);
        let moved = assert_old_or_new(&out, &before, &after);
        eprintln!("round {round}: {what} {shown}; {moved} of 1000 tags moved");
        // One commit per layout: all of them or none.
        assert!(moved == 0 || moved == 1000, "{moved} tags moved");
        // A rerun after the kills in the commit, whose blobs may be in the layout already
        // (the others leave what a rebase before any commit leaves; the next round's
        // pristine layout keeps their staging directories beside it).
        if round >= 2 {
            timed(root, &rebase);
            assert_eq!(tag_map(&out), after, "the rerun finishes the rebase");
            if moved == 0 {
                assert_nothing_left(&out);
            }
        }
    }
    let bundle = root.join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:app-0999", root.join("out").display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(bundle.join("rootfs/etc/patch-level").exists());
}

#[test]
fn a_workspace_build_killed_while_it_commits_leaves_every_tag_old_or_new() {
    const SERVICES: usize = 16;
    let mut rng = Rng::new(2);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bp = one_layer_buildpack(
        &root.join("bp"),
        "t/crash",
        "data",
        &["*"],
        "cat /workspace/* > \"$1/data\"",
    );
    let ws = root.join("ws");
    let write_services = |version: &str| {
        for i in 0..SERVICES {
            let dir = ws.join(format!("services/s{i:02}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("main.txt"), format!("s{i:02} {version}")).unwrap();
        }
    };
    write_services("v1");
    std::fs::write(
        ws.join("strata.toml"),
        "[workspace]\noutput = \"oci:out\"\nservices = [\"services/*\"]\n",
    )
    .unwrap();
    let cache = root.join("cache");
    let build = |output: &str| -> Vec<OsString> {
        vec![
            "build".into(),
            "ws".into(),
            "--buildpack".into(),
            bp.clone().into(),
            "--cache-dir".into(),
            cache.clone().into(),
            "--output".into(),
            output.into(),
        ]
    };
    let run = |output: &str| timed(root, &build(output));
    run("oci:ws/pristine");
    let before = tag_map(&ws.join("pristine"));
    assert_eq!(before.len(), SERVICES);

    // Every service changes; a build elsewhere says what each tag moves to, and a second one,
    // with every task cached, how long exporting and committing them takes.
    write_services("v2");
    run("oci:ws/reference");
    let after = tag_map(&ws.join("reference"));
    assert!(before.iter().all(|(tag, old)| after[tag] != *old));
    let took = run("oci:ws/timing");
    assert_eq!(
        tag_map(&ws.join("timing")),
        after,
        "the build is reproducible"
    );
    eprintln!("exporting {SERVICES} services with every task cached: {took:?}");

    let out = build("oci:ws/out");
    let span = u64::try_from(took.as_millis()).unwrap().max(1);
    let first_moved = |_| {
        std::fs::read(ws.join("out/index.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|index| {
                let entries = index["manifests"].as_array()?.clone();
                Some(entries.iter().any(|m| {
                    let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str();
                    tag.is_some_and(|t| before.get(t).is_some_and(|old| m["digest"] != **old))
                }))
            })
            .unwrap_or(false)
    };
    for round in 0..ROUNDS {
        restore(&ws.join("out"), &ws.join("pristine"));
        let delay = Duration::from_millis(rng.next() % span);
        let short = Duration::from_millis(rng.next() % 200);
        // Anywhere; among the commits, once the first has landed; right after it.
        let (when, shown) = match round % 3 {
            0 => (When::After(delay), format!("{delay:?} after the start")),
            1 => (
                When::Once(&first_moved, short),
                format!("{short:?} after the first commit"),
            ),
            _ => (
                When::Once(&first_moved, Duration::ZERO),
                "as the first commit landed".to_owned(),
            ),
        };
        let what = killed(root, &out, &when);
        let moved = assert_old_or_new(&ws.join("out"), &before, &after);
        eprintln!("round {round}: {what} {shown}; {moved} of {SERVICES} tags moved");
        timed(root, &out);
        assert_eq!(
            tag_map(&ws.join("out")),
            after,
            "the rerun finishes the build"
        );
        if moved < SERVICES {
            assert_nothing_left(&ws.join("out"));
        }
    }
}
