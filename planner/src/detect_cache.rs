//! Detect outcomes, cached on disk so that planning an unchanged app spawns no process.
//!
//! An outcome is a function of the buildpack's files, the app's files and the platform (user
//! env, target and execution environment), so its key covers exactly those: the buildpack's
//! content digest, the digest of every app file (detect may read any of them), the user env,
//! the target and the execution environment (unless it is the default). Passes
//! and fails are cached; errors are not (they may be passing faults). Entries are small TOML
//! files written to a temp file and renamed, so a crash leaves no half entry.
//!
//! The cache directory is not trusted: a disk, another tool or a person may have put anything
//! there. An entry is used only when it is a regular file of bounded size that parses, is of
//! this format, names the key it is stored under (a file copied to another key's name is not
//! that key's outcome) and is consistent (a fail carries no plan). Anything else is a miss:
//! detect runs and its outcome replaces what was there.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::key::{KeyHasher, TaskKey};
use crate::sources::{SourceTree, glob_set};
use crate::{BuildPlan, Buildpack, DetectOutcome, Detector, Provide, Require};

/// A [`Detector`] that answers from the cache when it can, and asks `inner` otherwise.
pub struct CachingDetector<'a> {
    inner: &'a dyn Detector,
    app: &'a SourceTree,
    dir: PathBuf,
    context: TaskKey,
    digests: &'a BTreeMap<String, TaskKey>,
    /// Outcomes answered from the cache.
    pub hits: AtomicU64,
    /// Outcomes `inner` was asked for.
    pub misses: AtomicU64,
}

/// The format of an entry; an entry of another format is a miss.
const ENTRY_VERSION: u32 = 1;
/// Entries are a few hundred bytes: a larger file is not one.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    version: u32,
    /// The key (hex) the entry is stored under.
    key: String,
    pass: bool,
    #[serde(default)]
    plan: BuildPlan,
}

impl<'a> CachingDetector<'a> {
    /// Caches `inner`'s outcomes in `dir` for the app `app`, user env `env`, `target` and
    /// execution environment `exec_env`; `digests` gives each buildpack's content digest by
    /// `id@version`.
    pub fn new(
        inner: &'a dyn Detector,
        dir: &Path,
        app: &'a SourceTree,
        env: &[(String, String)],
        target: &str,
        exec_env: &str,
        digests: &'a BTreeMap<String, TaskKey>,
    ) -> Self {
        let mut h = KeyHasher::new("detect/context");
        h.field("app").list(&app.files);
        let mut env: Vec<(String, String)> = env.to_vec();
        env.sort();
        h.field("env").u64(env.len() as u64);
        for (k, v) in &env {
            h.str(k).str(v);
        }
        h.field("target").str(target);
        // Detect sees `CNB_EXEC_ENV`; the default is left out so that entries made before it
        // was part of the key still answer.
        if exec_env != crate::exec_env::DEFAULT_EXEC_ENV {
            h.field("exec-env").str(exec_env);
        }
        Self {
            inner,
            app,
            dir: dir.to_owned(),
            context: h.finish(),
            digests,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The same cache for a detect that also sees service bindings with this digest
    /// ([`crate::bindings_digest`]): a changed binding is a miss. `None` changes nothing.
    #[must_use]
    pub fn with_bindings(mut self, bindings: Option<TaskKey>) -> Self {
        if let Some(bindings) = bindings {
            let mut h = KeyHasher::new("detect/context+bindings");
            h.field("context").key(&self.context);
            h.field("bindings").key(&bindings);
            self.context = h.finish();
        }
        self
    }

    /// The same cache for a detect that runs on the build image with manifest digest
    /// `build_image`: another image (its tools, its env) is a miss. `host` changes nothing, so
    /// that entries made on the host before build images still answer.
    #[must_use]
    pub fn with_build_image(mut self, build_image: &str) -> Self {
        if build_image != "host" {
            let mut h = KeyHasher::new("detect/context+build-image");
            h.field("context").key(&self.context);
            h.field("build-image").str(build_image);
            self.context = h.finish();
        }
        self
    }

    /// The outcome of a `[metadata.strata.detect]`: a pass when any of its `files` globs
    /// matches an app file, with the provides and requires it declares.
    fn declared(&self, buildpack: &Buildpack) -> Option<DetectOutcome> {
        let detect = buildpack.descriptor.strata.as_ref()?.detect.as_ref()?;
        let found = match glob_set(&detect.files) {
            Ok(set) => self.app.select(&set).next().is_some(),
            Err(e) => {
                return Some(DetectOutcome::Error {
                    message: e.to_string(),
                    output: String::new(),
                });
            }
        };
        if !found {
            return Some(DetectOutcome::Fail);
        }
        Some(DetectOutcome::Pass(BuildPlan {
            provides: detect
                .provides
                .iter()
                .map(|name| Provide { name: name.clone() })
                .collect(),
            requires: detect
                .requires
                .iter()
                .map(|name| Require {
                    name: name.clone(),
                    metadata: toml::Table::new(),
                })
                .collect(),
            or: Vec::new(),
        }))
    }

    /// Where the entry for `buildpack` is, and its key (hex).
    fn entry_path(&self, buildpack: &Buildpack) -> Option<(PathBuf, String)> {
        let digest = *self.digests.get(&buildpack.reference())?;
        let mut h = KeyHasher::new("detect/outcome");
        h.field("buildpack")
            .str(buildpack.id().as_str())
            .str(buildpack.version())
            .key(&digest);
        h.field("context").key(&self.context);
        let key = h.finish().hex();
        Some((self.dir.join(&key[..2]).join(format!("{key}.toml")), key))
    }

    /// The outcome stored at `path` for `key`, if it is a valid entry (see the module notes).
    fn read(path: &Path, key: &str) -> Option<DetectOutcome> {
        // Neither a FIFO (which would block the read) nor a link to elsewhere.
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_ENTRY_BYTES {
            return None;
        }
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(MAX_ENTRY_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        let entry: Entry = toml::from_str(&text).ok()?;
        if entry.version != ENTRY_VERSION || entry.key != key {
            return None;
        }
        match entry.pass {
            true => Some(DetectOutcome::Pass(entry.plan)),
            false if entry.plan == BuildPlan::default() => Some(DetectOutcome::Fail),
            false => None,
        }
    }

    fn write(path: &Path, key: &str, outcome: &DetectOutcome) -> std::io::Result<()> {
        let (pass, plan) = match outcome {
            DetectOutcome::Pass(plan) => (true, plan.clone()),
            DetectOutcome::Fail => (false, BuildPlan::default()),
            DetectOutcome::Error { .. } => return Ok(()),
        };
        let entry = Entry {
            version: ENTRY_VERSION,
            key: key.to_owned(),
            pass,
            plan,
        };
        let text = toml::to_string(&entry).map_err(std::io::Error::other)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // Whatever is in the way (a directory, a FIFO, a link) goes: a rename cannot replace a
        // directory, and the entry must be rewritten.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path)?,
            Ok(meta) if !meta.is_file() => std::fs::remove_file(path)?,
            _ => {}
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Detector for CachingDetector<'_> {
    fn detect(&self, buildpack: &Buildpack) -> DetectOutcome {
        if let Some(outcome) = self.declared(buildpack) {
            return outcome;
        }
        let entry = self.entry_path(buildpack);
        if let Some(outcome) = entry.as_ref().and_then(|(path, key)| Self::read(path, key)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let outcome = self.inner.detect(buildpack);
        if let Some((path, key)) = entry {
            // A cache that cannot be written only costs a detect next time.
            let _ = Self::write(&path, &key, &outcome);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::component;
    use std::sync::Mutex;

    /// Passes `test/pass` with a plan, fails everything else; records what it was asked.
    #[derive(Default)]
    struct Fake {
        asked: Mutex<Vec<String>>,
    }

    impl Detector for Fake {
        fn detect(&self, buildpack: &Buildpack) -> DetectOutcome {
            self.asked
                .lock()
                .unwrap()
                .push(buildpack.id().as_str().to_owned());
            if buildpack.id().as_str() == "test/pass" {
                DetectOutcome::Pass(BuildPlan {
                    provides: vec![Provide {
                        name: "thing".to_owned(),
                    }],
                    ..BuildPlan::default()
                })
            } else {
                DetectOutcome::Fail
            }
        }
    }

    struct Setup {
        tmp: tempfile::TempDir,
        pass: Buildpack,
        fail: Buildpack,
        app: SourceTree,
        digests: BTreeMap<String, TaskKey>,
    }

    impl Setup {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let pass = Buildpack::load(&component(tmp.path(), "pass", "test/pass", "1")).unwrap();
            let fail = Buildpack::load(&component(tmp.path(), "fail", "test/fail", "1")).unwrap();
            let digests = [(pass.reference(), 1u8), (fail.reference(), 2u8)]
                .into_iter()
                .map(|(r, n)| (r, TaskKey::from_bytes([n; 32])))
                .collect();
            let app = SourceTree {
                root: tmp.path().join("app"),
                files: Vec::new(),
            };
            Self {
                tmp,
                pass,
                fail,
                app,
                digests,
            }
        }

        /// Detects `buildpack` with a fresh caching detector; the outcome and whether the
        /// inner detector ran.
        fn detect(&self, buildpack: &Buildpack) -> (DetectOutcome, bool) {
            let fake = Fake::default();
            let cache = self.tmp.path().join("cache");
            let detector = CachingDetector::new(
                &fake,
                &cache,
                &self.app,
                &[],
                "linux/amd64",
                "production",
                &self.digests,
            );
            let outcome = detector.detect(buildpack);
            let ran = !fake.asked.lock().unwrap().is_empty();
            (outcome, ran)
        }

        fn path(&self, buildpack: &Buildpack) -> PathBuf {
            self.path_for(buildpack, "production")
        }

        fn path_for(&self, buildpack: &Buildpack, exec_env: &str) -> PathBuf {
            let fake = Fake::default();
            let cache = self.tmp.path().join("cache");
            let detector = CachingDetector::new(
                &fake,
                &cache,
                &self.app,
                &[],
                "linux/amd64",
                exec_env,
                &self.digests,
            );
            detector.entry_path(buildpack).unwrap().0
        }
    }

    fn passed(outcome: &DetectOutcome) -> bool {
        matches!(outcome, DetectOutcome::Pass(plan) if plan.provides[0].name == "thing")
    }

    #[test]
    fn outcomes_are_cached() {
        let setup = Setup::new();
        let (outcome, ran) = setup.detect(&setup.pass);
        assert!(passed(&outcome) && ran);
        let (outcome, ran) = setup.detect(&setup.pass);
        assert!(passed(&outcome) && !ran, "a hit");
        assert!(matches!(
            setup.detect(&setup.fail),
            (DetectOutcome::Fail, true)
        ));
        assert!(matches!(
            setup.detect(&setup.fail),
            (DetectOutcome::Fail, false)
        ));
    }

    #[test]
    fn a_changed_binding_is_a_miss() {
        let setup = Setup::new();
        let cache = setup.tmp.path().join("cache");
        let ran = |bindings: Option<u8>| {
            let fake = Fake::default();
            let detector = CachingDetector::new(
                &fake,
                &cache,
                &setup.app,
                &[],
                "linux/amd64",
                "production",
                &setup.digests,
            )
            .with_bindings(bindings.map(|n| TaskKey::from_bytes([n; 32])));
            detector.detect(&setup.pass);
            !fake.asked.lock().unwrap().is_empty()
        };
        assert!(ran(None));
        assert!(!ran(None));
        assert!(ran(Some(1)), "bindings are part of the key");
        assert!(!ran(Some(1)));
        assert!(ran(Some(2)), "a changed binding is a miss");
        assert!(!ran(None), "no bindings: the key without them");
    }

    #[test]
    fn the_exec_env_is_part_of_the_key() {
        let setup = Setup::new();
        assert_ne!(
            setup.path_for(&setup.pass, "production"),
            setup.path_for(&setup.pass, "test")
        );
    }

    #[test]
    fn garbage_entries_are_misses_and_are_rewritten() {
        let setup = Setup::new();
        setup.detect(&setup.pass);
        setup.detect(&setup.fail);
        let pass_entry = setup.path(&setup.pass);
        let fail_entry = setup.path(&setup.fail);
        let valid_pass = std::fs::read(&pass_entry).unwrap();

        // Another key's entry copied over this one: the group must not change.
        std::fs::write(&fail_entry, &valid_pass).unwrap();
        assert!(matches!(
            setup.detect(&setup.fail),
            (DetectOutcome::Fail, true)
        ));
        assert!(matches!(
            setup.detect(&setup.fail),
            (DetectOutcome::Fail, false)
        ));

        let key = fail_entry.file_stem().unwrap().to_str().unwrap().to_owned();
        let garbage: Vec<Vec<u8>> = vec![
            vec![0xff, 0x00, 0x13, 0x37],
            b"pass = 1\n".to_vec(),
            b"[[[".to_vec(),
            // A fail with a plan is no outcome detect gives.
            format!(
                "version = 1\nkey = \"{key}\"\npass = false\n[[plan.provides]]\nname = \"x\"\n"
            )
            .into_bytes(),
            format!("version = 9\nkey = \"{key}\"\npass = false\n").into_bytes(),
            format!("version = 1\nkey = \"{key}\"\npass = false\nextra = 1\n").into_bytes(),
            vec![b'#'; 2 << 20],
        ];
        for bytes in garbage {
            std::fs::write(&fail_entry, &bytes).unwrap();
            assert!(
                matches!(setup.detect(&setup.fail), (DetectOutcome::Fail, true)),
                "{:?} is a miss",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            );
            assert!(
                matches!(setup.detect(&setup.fail), (DetectOutcome::Fail, false)),
                "and was rewritten"
            );
        }

        // Not a file at all: a directory, a FIFO (must not block), a symlink elsewhere.
        std::fs::remove_file(&pass_entry).unwrap();
        std::fs::create_dir_all(pass_entry.join("sub")).unwrap();
        let (outcome, ran) = setup.detect(&setup.pass);
        assert!(passed(&outcome) && ran);
        assert!(pass_entry.is_file(), "the directory was replaced");
        std::fs::remove_file(&pass_entry).unwrap();
        let mkfifo = std::process::Command::new("mkfifo")
            .arg(&pass_entry)
            .status();
        assert!(mkfifo.unwrap().success());
        let (outcome, ran) = setup.detect(&setup.pass);
        assert!(passed(&outcome) && ran);
        std::fs::remove_file(&pass_entry).unwrap();
        let elsewhere = setup.tmp.path().join("elsewhere.toml");
        std::fs::write(&elsewhere, &valid_pass).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &pass_entry).unwrap();
        let (outcome, ran) = setup.detect(&setup.pass);
        assert!(passed(&outcome) && ran, "a link is not followed");
        assert!(!pass_entry.is_symlink() && pass_entry.is_file());
        assert!(passed(&setup.detect(&setup.pass).0) && !setup.detect(&setup.pass).1);
    }
}
