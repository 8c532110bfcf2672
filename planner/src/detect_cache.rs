//! Detect outcomes, cached on disk so that planning an unchanged app spawns no process.
//!
//! An outcome is a function of the buildpack's files, the app's files and the platform (user
//! env and target), so its key covers exactly those: the buildpack's content digest, the
//! digest of every app file (detect may read any of them), the user env and the target. Passes
//! and fails are cached; errors are not (they may be passing faults). Entries are small TOML
//! files written to a temp file and renamed, so a crash leaves no half entry.

use std::collections::BTreeMap;
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

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    pass: bool,
    #[serde(default)]
    plan: BuildPlan,
}

impl<'a> CachingDetector<'a> {
    /// Caches `inner`'s outcomes in `dir` for the app `app`, user env `env` and `target`;
    /// `digests` gives each buildpack's content digest by `id@version`.
    pub fn new(
        inner: &'a dyn Detector,
        dir: &Path,
        app: &'a SourceTree,
        env: &[(String, String)],
        target: &str,
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

    fn entry_path(&self, buildpack: &Buildpack) -> Option<PathBuf> {
        let digest = *self.digests.get(&buildpack.reference())?;
        let mut h = KeyHasher::new("detect/outcome");
        h.field("buildpack")
            .str(buildpack.id().as_str())
            .str(buildpack.version())
            .key(&digest);
        h.field("context").key(&self.context);
        let key = h.finish().hex();
        Some(self.dir.join(&key[..2]).join(format!("{key}.toml")))
    }

    fn read(path: &Path) -> Option<DetectOutcome> {
        let text = std::fs::read_to_string(path).ok()?;
        let entry: Entry = toml::from_str(&text).ok()?;
        Some(if entry.pass {
            DetectOutcome::Pass(entry.plan)
        } else {
            DetectOutcome::Fail
        })
    }

    fn write(path: &Path, outcome: &DetectOutcome) -> std::io::Result<()> {
        let entry = match outcome {
            DetectOutcome::Pass(plan) => Entry {
                pass: true,
                plan: plan.clone(),
            },
            DetectOutcome::Fail => Entry {
                pass: false,
                plan: BuildPlan::default(),
            },
            DetectOutcome::Error { .. } => return Ok(()),
        };
        let text = toml::to_string(&entry).map_err(std::io::Error::other)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
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
        let path = self.entry_path(buildpack);
        if let Some(outcome) = path.as_deref().and_then(Self::read) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let outcome = self.inner.detect(buildpack);
        if let Some(path) = path {
            // A cache that cannot be written only costs a detect next time.
            let _ = Self::write(&path, &outcome);
        }
        outcome
    }
}
