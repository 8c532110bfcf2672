//! Chaos: several `strata build`s of the example monorepo at once, on one store and one
//! output layout, killed with SIGKILL at random moments over a few rounds. Whatever was
//! killed where, the next build must leave every tag equal to a clean build's digest, every
//! blob of the layout hashing to its name, `strata cache verify` clean, and no scratch or
//! staging directory behind.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A small deterministic generator (xorshift), so a failing round can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A copy of the example monorepo with its run image, at `<dir>/examples`.
fn monorepo(dir: &Path) -> PathBuf {
    let examples = dir.join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    copy_tree(&common::examples(), &examples);
    let _ = std::fs::remove_dir_all(examples.join("monorepo/out"));
    let _ = std::fs::remove_dir_all(examples.join("run-image/layout"));
    let made = Command::new(examples.join("run-image/make.sh"))
        .arg(examples.join("run-image/layout"))
        .arg("busybox")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    examples.join("monorepo")
}

fn build_command(repo: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .arg("build")
        .arg(repo)
        .arg(format!("--output=oci:{}", out.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .args(["--json", "--jobs", "2"])
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// Each service's digest from a `--json` report.
fn digests(report: &[u8]) -> BTreeMap<String, String> {
    service_digests(&serde_json::from_slice(report).unwrap())
        .into_iter()
        .collect()
}

fn hex_sha256(path: &Path) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Names under `dir` (not recursive) that start with `prefix` or contain `part`.
fn leftovers(dir: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(part))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn concurrent_builds_killed_at_random_leave_a_consistent_store_and_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = monorepo(tmp.path());

    // What a clean build gives, and how long it takes: kills land anywhere in that span.
    let started = std::time::Instant::now();
    let clean = build_command(
        &repo,
        &tmp.path().join("clean-cache"),
        &tmp.path().join("clean"),
        &[],
    )
    .output()
    .unwrap();
    assert_exit(&clean, 0);
    let span = u64::try_from(started.elapsed().as_millis())
        .unwrap()
        .max(20);
    let expected = digests(&clean.stdout);
    assert_eq!(expected.len(), 10);

    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out");
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for round in 0..6 {
        let mut children: Vec<Child> = (0..3)
            .map(|i| {
                // Some rebuild everything into the shared store, some take what is there.
                let extra: &[&str] = if (round + i) % 2 == 0 {
                    &["--no-cache"]
                } else {
                    &[]
                };
                build_command(&repo, &cache, &out, extra)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5 + rng.below(span)));
        for child in &mut children {
            if rng.below(4) != 0 {
                let _ = child.kill();
            }
        }
        for child in &mut children {
            let status = child.wait().unwrap();
            eprintln!("round {round}: {status}");
        }
        eprintln!(
            "after round {round}: staging {:?}, store tmp {:?}",
            leftovers(tmp.path(), ".staging-"),
            leftovers(&cache.join("store/tmp"), "")
        );
    }

    // The next build, alone, on what the killed ones left.
    let after = build_command(&repo, &cache, &out, &[]).output().unwrap();
    assert_exit(&after, 0);
    assert_eq!(digests(&after.stdout), expected);
    assert_eq!(
        tags(&out).into_iter().collect::<BTreeMap<_, _>>(),
        expected,
        "every tag is a clean build's"
    );

    for entry in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "a temp file in the layout: {name}");
        assert_eq!(hex_sha256(&path), name, "a blob of the layout is corrupt");
    }
    let verify = strata(
        tmp.path(),
        &[
            "cache",
            "verify",
            &format!("--cache-dir={}", cache.display()),
        ],
    );
    assert_exit(&verify, 0);

    assert_eq!(leftovers(tmp.path(), ".staging-"), Vec::<String>::new());
    let store_tmp = cache.join("store/tmp");
    assert_eq!(
        leftovers(&store_tmp, ""),
        Vec::<String>::new(),
        "{}",
        store_tmp.display()
    );
}
