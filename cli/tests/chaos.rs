//! Chaos: several `strata build`s at once on one store and one output layout, some killed
//! (SIGKILL) at random points, round after round. Whatever was killed where, the builds that
//! follow succeed, every tag names the image a clean build gives, every blob of the layout
//! hashes to its name, the store verifies clean, and no scratch, staging or temp file of a
//! killed build is left.
//!
//! The kill points come from a seeded generator (`STRATA_CHAOS_SEED` picks another seed), so
//! a failing schedule can be replayed; what is asserted does not depend on when a kill lands.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// Rounds of concurrent builds, and builds per round.
const ROUNDS: usize = 4;
const APPS: [&str; 3] = ["a", "b", "c"];

/// xorshift64*: enough randomness for kill points, the same for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A declared buildpack whose layer takes a moment and some MiB, so kills land while tasks
/// run, while layers are stored, and while images are exported.
fn buildpack(root: &Path) -> PathBuf {
    one_layer_buildpack(
        &root.join("bp"),
        "t/chaos",
        "data",
        &["*"],
        "sleep 0.2\ncat /workspace/* > \"$1/seed\"\nhead -c 4M /dev/zero | tr '\\0' 'x' > \"$1/data\"",
    )
}

fn build(root: &Path, app: &str, bp: &Path, cache: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("build")
        .arg(root.join(app))
        .arg("--buildpack")
        .arg(bp)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--output")
        .arg(format!("oci:{}:{app}", out.display()))
        .arg("--json")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("TMPDIR", scratch_tmpdir())
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn digest_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

#[test]
fn concurrent_builds_killed_at_random_leave_every_image_and_blob_whole() {
    let seed = std::env::var("STRATA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c4a0_5eed_c4a0_u64);
    eprintln!("chaos seed {seed} (STRATA_CHAOS_SEED replays it)");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bp = buildpack(root);
    let mut clean = Vec::new();
    for app in APPS {
        std::fs::create_dir_all(root.join(app)).unwrap();
        std::fs::write(root.join(app).join("main.txt"), app).unwrap();
        let output = build(
            root,
            app,
            &bp,
            &root.join("clean-cache"),
            &root.join("clean"),
        )
        .output()
        .unwrap();
        clean.push(digest_of(&output));
    }

    let cache = root.join("cache");
    let out = root.join("out");
    for _ in 0..ROUNDS {
        // `a` twice: two builds of one tag meet in the store and in the layout.
        let children: Vec<(Child, Option<u64>)> = APPS
            .iter()
            .chain(&["a"])
            .map(|app| {
                let child = build(root, app, &bp, &cache, &out).spawn().unwrap();
                // Two builds in three are killed, somewhere in their first 1.2 s.
                let kill = (!rng.next().is_multiple_of(3)).then(|| rng.next() % 1200);
                (child, kill)
            })
            .collect();
        let mut waited = 0;
        let mut pending: Vec<(Child, Option<u64>)> = children;
        pending.sort_by_key(|(_, kill)| kill.unwrap_or(u64::MAX));
        for (mut child, kill) in pending {
            if let Some(at) = kill {
                std::thread::sleep(Duration::from_millis(at.saturating_sub(waited)));
                waited = waited.max(at);
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    // The builds after the chaos, at once too: each succeeds with the clean digest.
    let finals: Vec<Child> = APPS
        .iter()
        .map(|app| build(root, app, &bp, &cache, &out).spawn().unwrap())
        .collect();
    for (child, expected) in finals.into_iter().zip(&clean) {
        assert_eq!(&digest_of(&child.wait_with_output().unwrap()), expected);
    }
    assert_whole(root, &out, &cache, &clean);
}

/// Every tag names its clean digest, every blob hashes to its name, the store and the
/// layout verify clean, umoci unpacks every image, and nothing temporary is left.
fn assert_whole(root: &Path, out: &Path, cache: &Path, clean: &[String]) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    for (app, expected) in APPS.iter().zip(clean) {
        let tagged: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == *app)
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(tagged, [expected.as_str()], "tag {app}");
    }
    for blob in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let path = blob.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            sha256_hex(&std::fs::read(&path).unwrap()),
            name,
            "{}",
            path.display()
        );
    }
    let layout = format!("oci:{}", out.display());
    let verify = strata(
        root,
        &[
            "cache",
            "verify",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--layout",
            &layout,
        ],
    );
    assert_exit(&verify, 0);
    for app in APPS {
        let bundle = root.join(format!("bundle-{app}"));
        let unpack = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{app}", out.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            unpack.status.success(),
            "umoci unpacks {app}: {}",
            String::from_utf8_lossy(&unpack.stderr)
        );
    }
    // What killed builds left (task scratch dirs, half-written store files, layout staging
    // dirs) was removed by the builds that followed.
    let leftovers = |dir: &Path, part: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(part))
            .collect()
    };
    assert_eq!(
        leftovers(&cache.join("store/tmp"), ""),
        Vec::<String>::new()
    );
    assert_eq!(leftovers(root, ".staging-"), Vec::<String>::new());
}
