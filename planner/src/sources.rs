//! Source hashing: which files of an app a build reads, and the blake3 digest of each.
//!
//! A scan walks the app root once and returns a [`SourceTree`]: every file's relative path,
//! mode, size and content digest, sorted by path. Tasks then pick their inputs from the tree
//! with globs ([`SourceTree::select`]) and hash the selection into their key
//! ([`SourceTree::digest_of`]); so one walk serves every layer of a service, and a change to a
//! file changes exactly the keys of the tasks whose globs match it.
//!
//! What the walk sees is what CNB puts in the app directory, nothing more and nothing less:
//! - hidden files are app files, and `.gitignore` is not CNB's notion of what to leave out, so
//!   the `ignore` crate's standard filters are all off;
//! - `project.toml`'s `include` or `exclude` (gitignore syntax) apply; as in pack, a pattern
//!   that matches a directory covers everything inside it (`include = ["src/"]`);
//! - anything named `.git` is never part of the app;
//! - symlinks are recorded (their digest is that of their target path) and never followed;
//!   sockets, FIFOs and devices are left out;
//! - a file that disappears between the directory listing and its hashing was not there.
//!
//! Hashing is what makes a scan slow, so [`StatCache`] remembers digests by stat and a warm
//! scan of an unchanged tree reads no file (see the `statcache` notes for when a cached
//! digest is trusted). The walk uses the parallel walker, whose threads each `lstat` their
//! share of the directories; files that do need hashing are hashed on the rayon pool.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{DirEntry, WalkBuilder, WalkState};
use rayon::prelude::*;

use crate::statcache::{Entry, Stat, now_ns};
use crate::{CacheKey, KeyHasher, StatCache, TaskKey};

/// `st_mode` file type bits, and the type of a symlink.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
/// Below this many files (or bytes) to hash, the rayon pool costs more than it saves.
const PARALLEL_FILES: usize = 8;
const PARALLEL_BYTES: u64 = 1 << 20;
/// Read buffer for hashing: large enough for blake3 to hash many chunks per call.
const READ_BUFFER: usize = 64 * 1024;

/// One file of an app, as a task key sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SourceFile {
    /// Path relative to the app root, `/`-separated.
    pub path: String,
    /// Permission bits (`& 0o7777`), or `0o120000` for a symlink.
    pub mode: u32,
    /// Size in bytes: of the content, or of the target path for a symlink.
    pub size: u64,
    /// blake3 of the content, or of the target path for a symlink.
    pub digest: [u8; 32],
}

/// Path, mode and content digest, in that order; the size is implied by the content.
impl CacheKey for SourceFile {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.str(&self.path)
            .u64(u64::from(self.mode))
            .bytes(&self.digest);
    }
}

/// Every file of an app root that a build may read.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SourceTree {
    /// The directory scanned, as given to [`scan`].
    pub root: PathBuf,
    /// The files, sorted by the bytes of their path.
    pub files: Vec<SourceFile>,
}

impl SourceTree {
    /// The file at `path` (relative, `/`-separated).
    pub fn get(&self, path: &str) -> Option<&SourceFile> {
        self.files
            .binary_search_by(|file| file.path.as_str().cmp(path))
            .ok()
            .map(|at| &self.files[at])
    }

    /// The files whose path matches any of `globs` (see [`glob_set`]), in path order.
    pub fn select<'a>(&'a self, globs: &'a GlobSet) -> impl Iterator<Item = &'a SourceFile> {
        self.files
            .iter()
            .filter(move |file| globs.is_match(&file.path))
    }

    /// The digest of a set of files, for a task key: their paths, modes and content digests in
    /// path order, whatever the order they come in; a file given twice counts once.
    #[allow(
        clippy::unused_self,
        reason = "call sites read `tree.digest_of(tree.select(..))`"
    )]
    pub fn digest_of<'a>(&self, files: impl Iterator<Item = &'a SourceFile>) -> TaskKey {
        let mut files: Vec<&SourceFile> = files.collect();
        if !files.is_sorted_by(|a, b| a.path <= b.path) {
            files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        }
        files.dedup_by(|a, b| a.path == b.path);
        KeyHasher::new("sources/selection").list(&files).finish()
    }
}

/// Which files of the app root a scan takes, as `project.toml` says.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanOptions<'a> {
    /// Gitignore-syntax patterns of the files to take; empty takes all.
    pub include: &'a [String],
    /// Gitignore-syntax patterns of the files to leave out.
    pub exclude: &'a [String],
}

/// What a scan did, for reports and benchmarks.
#[derive(Default, Clone, Debug, serde::Serialize)]
pub struct HashStats {
    /// Files in the tree.
    pub files: u64,
    /// Files read and hashed.
    pub hashed: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Files whose digest came from the stat cache.
    pub stat_hits: u64,
    /// Files hashed although their stat matched, because it was too recent to trust (counted in
    /// `hashed` too).
    pub racy: u64,
}

/// Why a scan, a glob or the stat cache failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SourceError {
    /// A file or directory of the app could not be read.
    #[error("cannot read {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The walk failed for a reason other than an I/O error.
    #[error("cannot walk {path}: {message}", path = path.display())]
    Walk { path: PathBuf, message: String },
    /// The app root is not a directory.
    #[error("{path} is not a directory", path = path.display())]
    NotADirectory { path: PathBuf },
    /// A file name is not UTF-8: task keys and image layers need text paths.
    #[error("file name is not UTF-8: {path}", path = path.display())]
    NonUtf8Path { path: PathBuf },
    /// A glob or include/exclude pattern is invalid.
    #[error("invalid pattern `{pattern}`: {message}")]
    Glob { pattern: String, message: String },
    /// The stat cache could not be written.
    #[error("cannot write the stat cache {path}", path = path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Compiles globs relative to the app root: `*` and `?` stay within one path component, `**`
/// spans any number of them, `dir/` is short for `dir/**`, and a leading `./` or `/` is
/// dropped. An empty list matches nothing.
///
/// # Errors
///
/// [`SourceError::Glob`] naming the first invalid pattern, or one that leaves the root (`..`).
pub fn glob_set(patterns: &[String]) -> Result<GlobSet, SourceError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let invalid = |message: &str| SourceError::Glob {
            pattern: pattern.clone(),
            message: message.to_owned(),
        };
        let mut glob = pattern
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_owned();
        if glob.is_empty() {
            return Err(invalid("empty pattern"));
        }
        if glob.split('/').any(|part| part == "..") {
            return Err(invalid(
                "globs are relative to the app root and cannot leave it",
            ));
        }
        if glob.ends_with('/') {
            glob.push_str("**");
        }
        let compiled = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|err| invalid(&err.kind().to_string()))?;
        set.add(compiled);
    }
    set.build().map_err(|err| SourceError::Glob {
        pattern: patterns.join(", "),
        message: err.to_string(),
    })
}

/// Walks `root` and returns its files with their digests, reusing the digests of `cache` where
/// a file's stat allows and replacing the cache's entries with what the scan found. Save the
/// cache afterwards to keep them.
///
/// # Errors
///
/// [`SourceError::NotADirectory`] or [`SourceError::Io`] for the root; [`SourceError::Glob`]
/// for a bad include/exclude pattern; [`SourceError::Io`], [`SourceError::Walk`] or
/// [`SourceError::NonUtf8Path`] for a file of the tree.
pub fn scan(
    root: &Path,
    opts: &ScanOptions,
    cache: &mut StatCache,
) -> Result<(SourceTree, HashStats), SourceError> {
    // Taken before the first stat: every digest recorded by this scan is computed after it.
    let stamp_ns = now_ns();
    let meta = std::fs::metadata(root).map_err(|source| SourceError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let filters = Filters::new(root, opts)?;
    let mut found = walk(root, &filters)?;
    found.sort_unstable_by(|a, b| a.path.cmp(&b.path));

    let old = cache.take_entries(root);
    let old_len = old.len();
    let plan = join(found, old, cache);
    let hashed = hash_all(root, &plan.to_hash)?;

    let mut stats = HashStats {
        stat_hits: plan.hits.len() as u64,
        racy: plan.racy,
        ..HashStats::default()
    };
    let mut files = Vec::with_capacity(plan.hits.len() + hashed.len());
    let mut entries = Vec::with_capacity(files.capacity());
    for (found, entry) in plan.hits {
        files.push(SourceFile {
            path: found.path,
            mode: source_mode(found.stat.mode),
            size: found.stat.size,
            digest: entry.digest,
        });
        entries.push(entry);
    }
    let mut uncacheable = false;
    for (found, hashed) in plan.to_hash.into_iter().zip(hashed) {
        let Some(hashed) = hashed else { continue };
        stats.hashed += 1;
        stats.hashed_bytes += hashed.size;
        if hashed.cacheable {
            entries.push(Entry {
                path: found.path.as_str().into(),
                stat: found.stat,
                digest: hashed.digest,
            });
        } else {
            uncacheable = true;
        }
        files.push(SourceFile {
            path: found.path,
            mode: source_mode(found.stat.mode),
            size: hashed.size,
            digest: hashed.digest,
        });
    }
    // Two sorted runs each (cache hits, then hashed files): the stable sort merges them.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    stats.files = files.len() as u64;
    let changed = stats.hashed > 0 || uncacheable || entries.len() != old_len;
    cache.replace(root, stamp_ns, entries, changed);
    Ok((
        SourceTree {
            root: root.to_path_buf(),
            files,
        },
        stats,
    ))
}

fn source_mode(st_mode: u32) -> u32 {
    if st_mode & S_IFMT == S_IFLNK {
        S_IFLNK
    } else {
        st_mode & 0o7777
    }
}

/// A file the walk found, with its `lstat`.
struct Found {
    path: String,
    stat: Stat,
}

/// `project.toml`'s include and exclude patterns, matched against root-relative paths.
struct Filters {
    include: Option<Gitignore>,
    exclude: Option<Arc<Gitignore>>,
}

impl Filters {
    fn new(root: &Path, opts: &ScanOptions) -> Result<Filters, SourceError> {
        Ok(Filters {
            include: gitignore(root, opts.include)?,
            exclude: gitignore(root, opts.exclude)?.map(Arc::new),
        })
    }

    /// Whether a file that survived the walk's exclude filter is included.
    fn includes(&self, rel: &Path) -> bool {
        self.include
            .as_ref()
            .is_none_or(|include| include.matched_path_or_any_parents(rel, false).is_ignore())
    }
}

/// A gitignore matcher of `patterns`: "ignored" reads "matched". `None` when there are none.
fn gitignore(root: &Path, patterns: &[String]) -> Result<Option<Gitignore>, SourceError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GitignoreBuilder::new(root);
    for pattern in patterns {
        builder
            .add_line(None, pattern)
            .map_err(|err| SourceError::Glob {
                pattern: pattern.clone(),
                message: err.to_string(),
            })?;
    }
    let matcher = builder.build().map_err(|err| SourceError::Glob {
        pattern: patterns.join(", "),
        message: err.to_string(),
    })?;
    Ok(Some(matcher))
}

fn walk(root: &Path, filters: &Filters) -> Result<Vec<Found>, SourceError> {
    let mut builder = WalkBuilder::new(root);
    builder.standard_filters(false).follow_links(false);
    let exclude = filters.exclude.clone();
    let filter_root = root.to_path_buf();
    builder.filter_entry(move |entry| {
        if entry.depth() == 0 {
            return true;
        }
        if entry.file_name() == ".git" {
            return false;
        }
        let Some(exclude) = &exclude else {
            return true;
        };
        let Ok(rel) = entry.path().strip_prefix(&filter_root) else {
            return true;
        };
        let is_dir = entry.file_type().is_some_and(|kind| kind.is_dir());
        !exclude.matched(rel, is_dir).is_ignore()
    });

    let sink: Mutex<(Vec<Found>, Option<SourceError>)> = Mutex::new((Vec::new(), None));
    builder.build_parallel().run(|| {
        let mut collector = Collector {
            root,
            filters,
            found: Vec::new(),
            sink: &sink,
        };
        Box::new(move |entry| collector.visit(entry))
    });
    let (found, error) = sink.into_inner().unwrap_or_else(PoisonError::into_inner);
    match error {
        Some(error) => Err(error),
        None => Ok(found),
    }
}

/// One walker thread's findings, handed to the shared sink when the thread is done.
struct Collector<'s> {
    root: &'s Path,
    filters: &'s Filters,
    found: Vec<Found>,
    sink: &'s Mutex<(Vec<Found>, Option<SourceError>)>,
}

impl Collector<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        match self.found(entry) {
            Ok(Some(found)) => {
                self.found.push(found);
                WalkState::Continue
            }
            Ok(None) => WalkState::Continue,
            Err(error) => {
                let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
                sink.1.get_or_insert(error);
                WalkState::Quit
            }
        }
    }

    fn found(&self, entry: Result<DirEntry, ignore::Error>) -> Result<Option<Found>, SourceError> {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => return walk_error(self.root, err),
        };
        if entry.file_type().is_none_or(|kind| kind.is_dir()) {
            return Ok(None);
        }
        let Ok(rel) = entry.path().strip_prefix(self.root) else {
            return Ok(None);
        };
        let Some(path) = rel.to_str() else {
            return Err(SourceError::NonUtf8Path {
                path: entry.path().to_path_buf(),
            });
        };
        if !self.filters.includes(rel) {
            return Ok(None);
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(err) => return walk_error(self.root, err),
        };
        let stat = Stat::of(&meta);
        // The lstat, not the directory listing, says what the file is now.
        if !matches!(stat.mode & S_IFMT, S_IFREG | S_IFLNK) {
            return Ok(None);
        }
        Ok(Some(Found {
            path: path.to_owned(),
            stat,
        }))
    }
}

impl Drop for Collector<'_> {
    fn drop(&mut self) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        sink.0.append(&mut self.found);
    }
}

/// A walk error is fatal, except for a file that vanished since its directory was listed.
fn walk_error<T>(root: &Path, err: ignore::Error) -> Result<Option<T>, SourceError> {
    let path = walk_error_path(&err).unwrap_or(root).to_path_buf();
    match err.into_io_error() {
        Some(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Some(source) => Err(SourceError::Io { path, source }),
        None => Err(SourceError::Walk {
            path,
            message: "the directory walk failed".to_owned(),
        }),
    }
}

fn walk_error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error_path(err)
        }
        _ => None,
    }
}

/// The walk joined with the cache: what is known and what must be read.
struct Plan {
    hits: Vec<(Found, Entry)>,
    to_hash: Vec<Found>,
    racy: u64,
}

/// Joins the sorted walk with the sorted cache entries in one pass.
fn join(found: Vec<Found>, old: Vec<Entry>, cache: &StatCache) -> Plan {
    let mut plan = Plan {
        hits: Vec::with_capacity(old.len().min(found.len())),
        to_hash: Vec::new(),
        racy: 0,
    };
    let mut old = old.into_iter().peekable();
    for found in found {
        while old.next_if(|entry| *entry.path < *found.path).is_some() {}
        let Some(entry) = old.next_if(|entry| *entry.path == *found.path) else {
            plan.to_hash.push(found);
            continue;
        };
        if entry.stat != found.stat {
            plan.to_hash.push(found);
        } else if cache.is_racy(found.stat.mtime_ns) {
            plan.racy += 1;
            plan.to_hash.push(found);
        } else {
            plan.hits.push((found, entry));
        }
    }
    plan
}

/// What reading a file gave.
struct Hashed {
    digest: [u8; 32],
    /// Bytes hashed.
    size: u64,
    /// Whether the file stayed as its `lstat` described it while it was read, so that the
    /// digest may be cached under that stat.
    cacheable: bool,
}

/// Hashes the files, on the rayon pool when there are enough; `None` for a file that vanished.
fn hash_all(root: &Path, files: &[Found]) -> Result<Vec<Option<Hashed>>, SourceError> {
    let bytes: u64 = files.iter().map(|file| file.stat.size).sum();
    if files.len() >= PARALLEL_FILES || bytes >= PARALLEL_BYTES {
        files.par_iter().map(|file| hash_file(root, file)).collect()
    } else {
        files.iter().map(|file| hash_file(root, file)).collect()
    }
}

fn hash_file(root: &Path, file: &Found) -> Result<Option<Hashed>, SourceError> {
    let path = root.join(&file.path);
    let read_failed = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Ok(None)
        } else {
            Err(SourceError::Io {
                path: path.clone(),
                source,
            })
        }
    };
    if file.stat.mode & S_IFMT == S_IFLNK {
        let target = match std::fs::read_link(&path) {
            Ok(target) => target,
            Err(err) => return read_failed(err),
        };
        let target = target.as_os_str().as_bytes();
        return Ok(Some(Hashed {
            digest: *blake3::hash(target).as_bytes(),
            size: target.len() as u64,
            cacheable: true,
        }));
    }
    let mut opened = match std::fs::File::open(&path) {
        Ok(opened) => opened,
        Err(err) => return read_failed(err),
    };
    let (digest, size) = match hash_reader(&mut opened) {
        Ok(hashed) => hashed,
        Err(err) => return read_failed(err),
    };
    let after = match opened.metadata() {
        Ok(meta) => Stat::of(&meta),
        Err(err) => return read_failed(err),
    };
    Ok(Some(Hashed {
        digest,
        size,
        cacheable: after == file.stat && size == file.stat.size,
    }))
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUFFER]);
}

/// blake3 of everything `reader` gives, and how many bytes that was.
fn hash_reader(reader: &mut impl Read) -> std::io::Result<([u8; 32], u64)> {
    BUFFER.with_borrow_mut(|buffer| {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0_u64;
        loop {
            let n = match reader.read(buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            hasher.update(&buffer[..n]);
            size += n as u64;
        }
        Ok((*hasher.finalize().as_bytes(), size))
    })
}
