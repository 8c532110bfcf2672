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
//! - `project.toml`'s `include` or `exclude` (gitignore syntax) apply; as in a `.gitignore`, a
//!   pattern that matches a directory covers everything inside it (`include = ["src/"]`). That
//!   is why they are matched here rather than as `ignore` overrides, which match each path
//!   alone and would include no file under `src/`;
//! - anything named `.git` is never part of the app;
//! - symlinks are recorded (their digest is that of their target path) and never followed;
//!   sockets, FIFOs and devices are left out;
//! - a file that disappears between the directory listing and its hashing was not there.
//!
//! Hashing is what makes a scan slow, so [`StatCache`] remembers digests by stat and a warm
//! scan of an unchanged tree reads no file (the [`statcache`](crate::statcache) notes say when
//! a cached digest is trusted). A warm scan is then a stat walk, costing the kernel's lookups:
//! the walk uses `ignore`'s parallel walker, whose threads each list and `lstat` their share of
//! the directories (on two cores, a warm scan of 20,000 files took 40 ms with it and 65 ms with
//! the sequential walker). A caller that scans many roots in parallel (a workspace build, one
//! service per rayon thread) asks for [`ScanOptions::sequential`] instead: there a pool of
//! walker threads per root only adds thread starts and idle polling, and 100 services of a
//! workspace started 200 threads per no-op build. Files that do need hashing are hashed on the
//! rayon pool.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{DirEntry, WalkBuilder, WalkState};
use rayon::prelude::*;

use crate::statcache::{Entry, Stat, now_ns, root_identity};
pub use crate::statcache::{StatCache, StatCacheStatus, stat_cache_path};
use crate::{CacheKey, KeyHasher, TaskKey};

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

    /// The file the symlink at `path` leads to, when it is one of this tree's regular files:
    /// what a task reading the link reads. Resolved on the filesystem, through any chain of
    /// links; a target outside the root, missing, a directory, or not in the tree (left out
    /// by `project.toml`, under `.git`) is an error saying which.
    ///
    /// # Errors
    ///
    /// A message naming the link and why it cannot be read as an input.
    pub fn link_target(&self, path: &str) -> Result<&SourceFile, String> {
        let resolved = crate::safepath::resolve_inside(&self.root, path)
            .map_err(|e| format!("symlink `{path}`: {e}"))?;
        let target = self
            .root
            .canonicalize()
            .ok()
            .and_then(|root| resolved.strip_prefix(root).ok().map(Path::to_owned))
            .and_then(|rel| rel.to_str().map(str::to_owned))
            .unwrap_or_default();
        match self.get(&target) {
            Some(file) if file.mode & S_IFMT != S_IFLNK => Ok(file),
            _ if resolved.is_dir() => Err(format!(
                "symlink `{path}` leads to the directory `{target}`; an input link must lead to \
                 a file (name the directory's files instead)"
            )),
            _ => Err(format!(
                "symlink `{path}` leads to `{target}`, which is not one of the app's files"
            )),
        }
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
    /// Walk on the calling thread rather than with a pool of walker threads: for a caller
    /// that scans many roots in parallel already (a workspace's services), where a pool per
    /// root only adds thread starts and idle polling to the same stat calls.
    pub sequential: bool,
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

impl std::ops::AddAssign<&HashStats> for HashStats {
    fn add_assign(&mut self, other: &HashStats) {
        self.files += other.files;
        self.hashed += other.hashed;
        self.hashed_bytes += other.hashed_bytes;
        self.stat_hits += other.stat_hits;
        self.racy += other.racy;
    }
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
    let mut found = walk(root, &filters, opts.sequential)?;
    found.sort_unstable_by(|a, b| a.path.cmp(&b.path));

    let identity = root_identity(root);
    let old = cache.take_entries(&identity);
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
    cache.replace(&identity, stamp_ns, entries, changed);
    Ok((
        SourceTree {
            root: root.to_path_buf(),
            files,
        },
        stats,
    ))
}

/// The mode a key sees: the owner's bits and the special bits as they are, group and other
/// given the owner's read and execute bits. So the umask of whoever checked the files out does
/// not change a key, exactly as it does not change the app layer (whose tar normalizes modes
/// the same way), while making a file executable does.
fn source_mode(st_mode: u32) -> u32 {
    if st_mode & S_IFMT == S_IFLNK {
        return S_IFLNK;
    }
    let special = st_mode & 0o7000;
    let user = (st_mode >> 6) & 0o7;
    let shared = user & 0o5;
    special | (user << 6) | (shared << 3) | shared
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

fn walk(root: &Path, filters: &Filters, sequential: bool) -> Result<Vec<Found>, SourceError> {
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
        let Some(rel) = relative(&filter_root, entry.path()) else {
            return true;
        };
        let is_dir = entry.file_type().is_some_and(|kind| kind.is_dir());
        !exclude.matched(rel, is_dir).is_ignore()
    });

    let sink: Mutex<(Vec<Found>, Option<SourceError>)> = Mutex::new((Vec::new(), None));
    if sequential {
        let mut collector = Collector {
            root,
            filters,
            found: Vec::new(),
            sink: &sink,
        };
        for entry in builder.build() {
            if matches!(collector.visit(entry), WalkState::Quit) {
                break;
            }
        }
    } else {
        builder.threads(walker_threads()).build_parallel().run(|| {
            let mut collector = Collector {
                root,
                filters,
                found: Vec::new(),
                sink: &sink,
            };
            Box::new(move |entry| collector.visit(entry))
        });
    }
    let (found, error) = sink.into_inner().unwrap_or_else(PoisonError::into_inner);
    match error {
        Some(error) => Err(error),
        None => Ok(found),
    }
}

/// Walker threads for a parallel walk: the walker's own default (the cores, at most 12),
/// found out once per process rather than once per walk, where it costs a few reads of the
/// cgroup's CPU quota each time.
fn walker_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(12)))
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
        let Some(rel) = relative(self.root, entry.path()) else {
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

/// `path` relative to `root`, as [`Path::strip_prefix`] gives it. The walk makes each path by
/// joining names onto `root`, so it starts with `root`'s bytes and a `/`: cut there, rather
/// than comparing every component of the root again for every file (a tenth of a no-op
/// build's instructions, before). Any other path takes `strip_prefix`.
fn relative<'p>(root: &Path, path: &'p Path) -> Option<&'p Path> {
    let root_bytes = root.as_os_str().as_bytes();
    let rest = path.as_os_str().as_bytes().strip_prefix(root_bytes);
    let rest = match rest {
        Some(rest) if root_bytes.ends_with(b"/") => Some(rest),
        Some(rest) => rest.strip_prefix(b"/"),
        None => None,
    };
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with(b"/") => {
            Some(Path::new(std::ffi::OsStr::from_bytes(rest)))
        }
        _ => path.strip_prefix(root).ok(),
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::*;
    use crate::{StatCacheStatus, stat_cache_path};

    fn write(root: &Path, path: &str, content: &[u8]) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn set_mtime(root: &Path, path: &str, time: SystemTime) {
        fs::File::options()
            .write(true)
            .open(root.join(path))
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    fn an_hour_ago() -> SystemTime {
        SystemTime::now() - Duration::from_hours(1)
    }

    /// A tree whose files were last modified an hour ago: out of the racy window.
    fn settled_tree(paths: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for path in paths {
            write(dir.path(), path, path.as_bytes());
            set_mtime(dir.path(), path, an_hour_ago());
        }
        dir
    }

    fn scan_all(root: &Path, cache: &mut StatCache) -> (SourceTree, HashStats) {
        scan(root, &ScanOptions::default(), cache).unwrap()
    }

    fn paths(tree: &SourceTree) -> Vec<&str> {
        tree.files.iter().map(|file| file.path.as_str()).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|&item| item.to_owned()).collect()
    }

    #[test]
    fn scan_lists_app_files_with_their_digests() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "b.txt", b"bee");
        write(root, "a/z.js", b"zed");
        write(root, "a/b/c.rs", b"");
        write(root, ".hidden", b"h");
        write(root, ".gitignore", b"b.txt\n");
        write(root, ".git/HEAD", b"ref");
        write(root, "vendor/dep/.git", b"gitdir: elsewhere");
        fs::set_permissions(root.join("b.txt"), fs::Permissions::from_mode(0o755)).unwrap();
        let (tree, stats) = scan_all(root, &mut StatCache::in_memory());
        assert_eq!(
            paths(&tree),
            [".gitignore", ".hidden", "a/b/c.rs", "a/z.js", "b.txt"]
        );
        let b = tree.get("b.txt").unwrap();
        assert_eq!(
            (b.mode, b.size, b.digest),
            (0o755, 3, *blake3::hash(b"bee").as_bytes())
        );
        assert_eq!(tree.get("a/b/c.rs").unwrap().size, 0);
        assert!(tree.get(".git/HEAD").is_none() && tree.get("nope").is_none());
        assert_eq!(tree.root, root);
        assert_eq!(
            (
                stats.files,
                stats.hashed,
                stats.hashed_bytes,
                stats.stat_hits
            ),
            (5, 5, 13, 0)
        );
    }

    #[test]
    fn symlinks_are_recorded_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "real/file.txt", b"content");
        symlink("real", root.join("dir-link")).unwrap();
        symlink("real/file.txt", root.join("file-link")).unwrap();
        symlink("/nowhere", root.join("dangling")).unwrap();
        let (tree, _) = scan_all(root, &mut StatCache::in_memory());
        assert_eq!(
            paths(&tree),
            ["dangling", "dir-link", "file-link", "real/file.txt"]
        );
        let link = tree.get("file-link").unwrap();
        assert_eq!(link.mode, 0o120_000);
        assert_eq!(link.size, 13);
        assert_eq!(link.digest, *blake3::hash(b"real/file.txt").as_bytes());
        assert_eq!(
            tree.get("dangling").unwrap().digest,
            *blake3::hash(b"/nowhere").as_bytes()
        );
    }

    #[test]
    fn sequential_and_parallel_walks_agree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for n in 0..40 {
            write(root, &format!("d{}/e{}/f{n}.txt", n % 4, n % 3), b"x");
        }
        write(root, ".git/HEAD", b"ref");
        write(root, "sub/.git", b"gitdir: elsewhere");
        symlink("d0", root.join("link")).unwrap();
        let scan_with = |sequential, cache: &mut StatCache| {
            let opts = ScanOptions {
                sequential,
                ..ScanOptions::default()
            };
            scan(root, &opts, cache).unwrap()
        };
        let mut cache = StatCache::in_memory();
        let (parallel, _) = scan_with(false, &mut cache);
        assert_eq!(parallel.files.len(), 41);
        assert!(parallel.get("link").is_some() && parallel.get("sub/.git").is_none());
        let (sequential, _) = scan_with(true, &mut StatCache::in_memory());
        assert_eq!(sequential, parallel);
        // A sequential scan uses and renews the stat cache as a parallel one does.
        let (again, stats) = scan_with(true, &mut cache);
        assert_eq!(again, parallel);
        assert_eq!(stats.files, 41);
        let missing = scan_with_error(&root.join("nowhere"));
        assert!(matches!(missing, SourceError::Io { .. }), "{missing:?}");
    }

    fn scan_with_error(root: &Path) -> SourceError {
        let opts = ScanOptions {
            sequential: true,
            ..ScanOptions::default()
        };
        scan(root, &opts, &mut StatCache::in_memory()).unwrap_err()
    }

    #[test]
    fn relative_paths_are_those_of_strip_prefix() {
        for (root, path) in [
            ("/app", "/app/a/b.txt"),
            ("/app/", "/app/a"),
            ("app", "app/a"),
            ("./app", "./app/a"),
            ("/a/./app", "/a/./app/x"),
            ("/app", "/app"),
            ("/app", "/application/x"),
            ("/app", "/app//x"),
            ("/app", "/other/x"),
            ("/", "/etc/hosts"),
        ] {
            let (root, path) = (Path::new(root), Path::new(path));
            assert_eq!(
                relative(root, path),
                path.strip_prefix(root).ok(),
                "{root:?} {path:?}"
            );
        }
    }

    #[test]
    fn sockets_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", b"a");
        let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        let (tree, _) = scan_all(dir.path(), &mut StatCache::in_memory());
        assert_eq!(paths(&tree), ["a"]);
    }

    #[test]
    fn include_and_exclude_follow_gitignore_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "package.json",
            "README.md",
            "docs/guide.md",
            "src/index.js",
            "src/deep/util.js",
            "src/notes.md",
            "tests/a.test.js",
            "lib/tests/b.js",
        ] {
            write(root, path, b"x");
        }
        let run = |include: &[&str], exclude: &[&str]| {
            let (include, exclude) = (strings(include), strings(exclude));
            let scan_with = |sequential| {
                let opts = ScanOptions {
                    include: &include,
                    exclude: &exclude,
                    sequential,
                };
                scan(root, &opts, &mut StatCache::in_memory()).unwrap().0
            };
            let tree = scan_with(false);
            assert_eq!(
                scan_with(true),
                tree,
                "sequential and parallel walks differ"
            );
            paths(&tree)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(&["src/", "package.json"], &[]),
            [
                "package.json",
                "src/deep/util.js",
                "src/index.js",
                "src/notes.md"
            ]
        );
        assert_eq!(
            run(&["*.js"], &[]),
            [
                "lib/tests/b.js",
                "src/deep/util.js",
                "src/index.js",
                "tests/a.test.js"
            ]
        );
        assert_eq!(run(&["/tests"], &[]), ["tests/a.test.js"]);
        assert_eq!(
            run(&[], &["*.md", "!README.md", "tests/"]),
            [
                "README.md",
                "package.json",
                "src/deep/util.js",
                "src/index.js"
            ]
        );
        assert_eq!(run(&[], &["/tests/", "src/deep"]).len(), 6);
    }

    #[test]
    fn bad_patterns_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let exclude = strings(&["ok", "[z-a]"]);
        let opts = ScanOptions {
            include: &[],
            exclude: &exclude,
            sequential: false,
        };
        let err = scan(dir.path(), &opts, &mut StatCache::in_memory()).unwrap_err();
        assert!(
            matches!(&err, SourceError::Glob { pattern, .. } if pattern == "[z-a]"),
            "{err}"
        );
    }

    #[test]
    fn root_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "file", b"");
        let mut cache = StatCache::in_memory();
        let err = scan(
            &dir.path().join("file"),
            &ScanOptions::default(),
            &mut cache,
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::NotADirectory { .. }));
        let err = scan(
            &dir.path().join("missing"),
            &ScanOptions::default(),
            &mut cache,
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::Io { .. }));
    }

    #[test]
    fn non_utf8_names_are_an_error() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xff");
        fs::write(dir.path().join(name), b"").unwrap();
        let err = scan(
            dir.path(),
            &ScanOptions::default(),
            &mut StatCache::in_memory(),
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::NonUtf8Path { .. }), "{err}");
    }

    #[test]
    fn globs_are_relative_to_the_root() {
        let set = glob_set(&strings(&[
            "*.json",
            "src/**",
            "lib/",
            "./docs/*.md",
            "**/x.js",
        ]))
        .unwrap();
        for path in [
            "package.json",
            "src/a.js",
            "src/a/b/c",
            "lib/x/y",
            "docs/a.md",
            "x.js",
            "a/b/x.js",
        ] {
            assert!(set.is_match(path), "{path}");
        }
        for path in ["a/package.json", "srcx/a", "lib", "docs/a/b.md", "ax.js"] {
            assert!(!set.is_match(path), "{path}");
        }
        assert!(glob_set(&[]).unwrap().is_empty());
        for bad in ["a/[", "../x", "a/../../b", ""] {
            let err = glob_set(&strings(&["ok", bad])).unwrap_err();
            assert!(
                matches!(&err, SourceError::Glob { pattern, .. } if pattern == bad),
                "{err}"
            );
        }
    }

    #[test]
    fn warm_scan_reads_nothing() {
        let dir = settled_tree(&["a.txt", "b/c.txt", "b/d/e.txt"]);
        let cache_file = dir.path().join(".cache-dir/stat.bin");
        let mut cache = StatCache::load(&cache_file);
        let (cold, stats) = scan_all(dir.path(), &mut cache);
        assert_eq!((stats.hashed, stats.stat_hits), (3, 0));
        cache.save().unwrap();

        let mut cache = StatCache::load(&cache_file);
        assert_eq!((cache.status(), cache.len()), (StatCacheStatus::Loaded, 3));
        let excluded = strings(&[".cache-dir/"]);
        let opts = ScanOptions {
            include: &[],
            exclude: &excluded,
            sequential: false,
        };
        let (warm, stats) = scan(dir.path(), &opts, &mut cache).unwrap();
        assert_eq!(
            (stats.files, stats.hashed, stats.stat_hits, stats.racy),
            (3, 0, 3, 0)
        );
        assert_eq!(warm, cold);
        // The same holds for a cache kept in memory across scans.
        let mut cache = StatCache::in_memory();
        scan(dir.path(), &opts, &mut cache).unwrap();
        let (again, stats) = scan(dir.path(), &opts, &mut cache).unwrap();
        assert_eq!((stats.hashed, stats.stat_hits), (0, 3));
        assert_eq!(again, cold);
    }

    #[test]
    fn a_touched_file_is_rehashed_to_the_same_digest() {
        let dir = settled_tree(&["a.txt", "b.txt"]);
        let mut cache = StatCache::in_memory();
        let (before, _) = scan_all(dir.path(), &mut cache);
        set_mtime(dir.path(), "a.txt", an_hour_ago() - Duration::from_mins(1));
        let (after, stats) = scan_all(dir.path(), &mut cache);
        assert_eq!((stats.hashed, stats.stat_hits), (1, 1));
        assert_eq!(after, before);
    }

    #[test]
    fn a_change_hidden_behind_the_old_mtime_is_found() {
        let dir = settled_tree(&["in-place.txt", "renamed.txt"]);
        let root = dir.path();
        let mut cache = StatCache::in_memory();
        let (before, _) = scan_all(root, &mut cache);
        let old = |path: &str| fs::metadata(root.join(path)).unwrap();
        let (old_in_place, old_renamed) = (old("in-place.txt"), old("renamed.txt"));

        // Same size, same mtime: only the ctime, which no program can set back, tells. On a
        // filesystem whose clock ticks coarser than this test, wait for the tick.
        for _ in 0..200 {
            write(root, "in-place.txt", b"IN-PLACE.TXT");
            set_mtime(root, "in-place.txt", old_in_place.modified().unwrap());
            if Stat::of(&old("in-place.txt")).ctime_ns != Stat::of(&old_in_place).ctime_ns {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Same size, same mtime, replaced by a rename: a new inode.
        write(root, "new.tmp", b"RENAMED.TXT");
        set_mtime(root, "new.tmp", old_renamed.modified().unwrap());
        fs::rename(root.join("new.tmp"), root.join("renamed.txt")).unwrap();

        let (after, stats) = scan_all(root, &mut cache);
        assert_eq!(stats.hashed, 2);
        for path in ["in-place.txt", "renamed.txt"] {
            assert_eq!(
                after.get(path).unwrap().size,
                before.get(path).unwrap().size
            );
            assert_ne!(
                after.get(path).unwrap().digest,
                before.get(path).unwrap().digest
            );
        }
    }

    #[test]
    fn recently_modified_files_are_rehashed_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fresh.txt", b"fresh");
        write(dir.path(), "settled.txt", b"settled");
        set_mtime(dir.path(), "settled.txt", an_hour_ago());
        let mut cache = StatCache::in_memory();
        let (first, _) = scan_all(dir.path(), &mut cache);
        let (second, stats) = scan_all(dir.path(), &mut cache);
        assert_eq!((stats.hashed, stats.racy, stats.stat_hits), (1, 1, 1));
        assert_eq!(first, second);
        // A file modified in the future is not trusted either.
        set_mtime(
            dir.path(),
            "settled.txt",
            SystemTime::now() + Duration::from_hours(1),
        );
        scan_all(dir.path(), &mut cache);
        let (_, stats) = scan_all(dir.path(), &mut cache);
        assert_eq!((stats.hashed, stats.racy), (2, 2));
    }

    #[test]
    fn a_corrupt_cache_means_a_full_rehash() {
        let dir = settled_tree(&["a", "b", "c"]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache_file = stat_cache_path(cache_dir.path(), dir.path());
        let mut cache = StatCache::load(&cache_file);
        let (before, _) = scan_all(dir.path(), &mut cache);
        cache.save().unwrap();
        let mut bytes = fs::read(&cache_file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        fs::write(&cache_file, bytes).unwrap();

        let mut cache = StatCache::load(&cache_file);
        assert_eq!(cache.status(), StatCacheStatus::Corrupt);
        let (after, stats) = scan_all(dir.path(), &mut cache);
        assert_eq!((stats.hashed, stats.stat_hits), (3, 0));
        assert_eq!(after, before);
        cache.save().unwrap();
        assert_eq!(
            StatCache::load(&cache_file).status(),
            StatCacheStatus::Loaded
        );
    }

    #[test]
    fn a_root_is_known_by_any_of_its_names() {
        let dir = settled_tree(&["app/a", "app/b/c"]);
        symlink("app", dir.path().join("link")).unwrap();
        let mut cache = StatCache::in_memory();
        let (direct, _) = scan_all(&dir.path().join("app"), &mut cache);
        let (linked, stats) = scan_all(&dir.path().join("link"), &mut cache);
        assert_eq!((stats.hashed, stats.stat_hits), (0, 2));
        assert_eq!(linked.files, direct.files);
        let (dotted, stats) = scan_all(&dir.path().join("app/./b/.."), &mut cache);
        assert_eq!((stats.hashed, stats.stat_hits), (0, 2));
        assert_eq!(dotted.files, direct.files);
    }

    #[test]
    fn a_cache_of_another_root_is_not_used() {
        let one = settled_tree(&["a"]);
        let other = settled_tree(&["a"]);
        let mut cache = StatCache::in_memory();
        scan_all(one.path(), &mut cache);
        let (_, stats) = scan_all(other.path(), &mut cache);
        assert_eq!((stats.hashed, stats.stat_hits), (1, 0));
    }

    #[test]
    fn deleted_files_leave_the_cache() {
        let dir = settled_tree(&["a", "b"]);
        let mut cache = StatCache::in_memory();
        scan_all(dir.path(), &mut cache);
        fs::remove_file(dir.path().join("b")).unwrap();
        let (tree, stats) = scan_all(dir.path(), &mut cache);
        assert_eq!((paths(&tree), stats.hashed, cache.len()), (vec!["a"], 0, 1));
    }

    #[test]
    fn selection_digest_covers_path_mode_and_content() {
        let file = |path: &str, mode, content: &[u8]| SourceFile {
            path: path.to_owned(),
            mode,
            size: content.len() as u64,
            digest: *blake3::hash(content).as_bytes(),
        };
        let tree = SourceTree {
            root: PathBuf::new(),
            files: vec![file("a", 0o644, b"1"), file("b", 0o644, b"2")],
        };
        let digest = |files: &[SourceFile]| tree.digest_of(files.iter());
        let base = digest(&tree.files);
        assert_eq!(
            base,
            tree.digest_of(tree.files.iter().rev().chain(&tree.files))
        );
        assert_ne!(
            base,
            digest(&[file("a", 0o755, b"1"), file("b", 0o644, b"2")])
        );
        assert_ne!(
            base,
            digest(&[file("a", 0o644, b"3"), file("b", 0o644, b"2")])
        );
        assert_ne!(
            base,
            digest(&[file("c", 0o644, b"1"), file("b", 0o644, b"2")])
        );
        assert_ne!(base, digest(&tree.files[..1]));
        assert_ne!(digest(&[]), digest(&tree.files[..1]));
    }

    // ---- properties over generated trees -------------------------------------------------

    /// Globs whose selections the properties compare.
    const GLOBS: &[&str] = &[
        "**",
        "*.md",
        "**/*.js",
        "src/**",
        "a/*",
        "**/x.*",
        "lib/",
        "b/**/*.rs",
    ];

    /// A file: path (directories never have a dot, files always do, so no path is both), mode,
    /// content.
    type Files = std::collections::BTreeMap<String, (u32, Vec<u8>)>;

    fn files() -> impl Strategy<Value = Files> {
        let dir = prop::sample::select(vec!["a", "b", "src", "lib", ".hidden"]);
        let name = prop::sample::select(vec!["x.js", "y.rs", "z.md", "README.md", ".env"]);
        let path = (prop::collection::vec(dir, 0..3), name).prop_map(|(dirs, name)| {
            let mut path = dirs.join("/");
            if !path.is_empty() {
                path.push('/');
            }
            path + name
        });
        let mode = prop::sample::select(vec![0o644_u32, 0o755, 0o600]);
        let content = prop::collection::vec(any::<u8>(), 0..64);
        prop::collection::btree_map(path, (mode, content), 1..16)
    }

    fn materialize<'a>(
        root: &Path,
        files: impl IntoIterator<Item = (&'a String, &'a (u32, Vec<u8>))>,
    ) {
        for (path, (mode, content)) in files {
            write(root, path, content);
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(*mode)).unwrap();
        }
    }

    /// The digest of each glob's selection.
    fn selections(tree: &SourceTree) -> Vec<TaskKey> {
        GLOBS
            .iter()
            .map(|glob| tree.digest_of(tree.select(&glob_set(&[(*glob).to_owned()]).unwrap())))
            .collect()
    }

    #[derive(Clone, Debug)]
    enum Change {
        Content,
        Mode,
        Rename(String),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn how_files_are_found_does_not_matter(
            (files, order) in files().prop_flat_map(|files| {
                let keys: Vec<String> = files.keys().cloned().collect();
                (Just(files), Just(keys).prop_shuffle())
            })
        ) {
            // Created in two orders, which gives two directory listing orders.
            let sorted = tempfile::tempdir().unwrap();
            materialize(sorted.path(), &files);
            let shuffled = tempfile::tempdir().unwrap();
            materialize(shuffled.path(), order.iter().map(|path| (path, &files[path])));
            let (a, _) = scan_all(sorted.path(), &mut StatCache::in_memory());
            let (b, _) = scan_all(shuffled.path(), &mut StatCache::in_memory());
            prop_assert_eq!(&a.files, &b.files);
            prop_assert_eq!(selections(&a), selections(&b));
            // Handed over in any order, with repeats, a selection hashes the same.
            let all = a.digest_of(a.files.iter());
            let by_order = a.digest_of(order.iter().chain(&order).filter_map(|path| a.get(path)));
            prop_assert_eq!(all, by_order);
            let task = |inputs: &TaskKey, globs: &mut dyn Iterator<Item = &String>| {
                let mut h = KeyHasher::new("task/test");
                h.field("inputs").key(inputs);
                h.field("globs").sorted_strs(globs.map(String::as_str));
                h.finish()
            };
            prop_assert_eq!(task(&all, &mut order.iter()), task(&by_order, &mut files.keys()));
        }

        #[test]
        fn a_change_moves_exactly_the_selections_that_hold_the_file(
            (files, victim, change) in files().prop_flat_map(|files| {
                let count = files.len();
                let rename = prop::sample::select(vec!["q.js", "src/q.md", "a/b/q.rs", "lib/x.rs"]);
                let change = prop_oneof![
                    Just(Change::Content),
                    Just(Change::Mode),
                    rename.prop_map(|path| Change::Rename(path.to_owned())),
                ];
                (Just(files), 0..count, change)
            })
        ) {
            let old_path = files.keys().nth(victim).unwrap().clone();
            let new_path = match &change {
                Change::Rename(path) => path.clone(),
                _ => old_path.clone(),
            };
            prop_assume!(new_path == old_path || !files.contains_key(&new_path));
            let dir = tempfile::tempdir().unwrap();
            materialize(dir.path(), &files);
            let mut cache = StatCache::in_memory();
            let (before, _) = scan_all(dir.path(), &mut cache);

            let target = dir.path().join(&old_path);
            match &change {
                Change::Content => {
                    let mut content = files[&old_path].1.clone();
                    content.push(b'!');
                    fs::write(&target, content).unwrap();
                }
                Change::Mode => {
                    let mode = if files[&old_path].0 == 0o755 { 0o644 } else { 0o755 };
                    fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
                }
                Change::Rename(path) => {
                    let to = dir.path().join(path);
                    fs::create_dir_all(to.parent().unwrap()).unwrap();
                    fs::rename(&target, to).unwrap();
                }
            }
            let (after, _) = scan_all(dir.path(), &mut cache);

            let pairs = selections(&before).into_iter().zip(selections(&after));
            for (glob, (old, new)) in GLOBS.iter().zip(pairs) {
                let set = glob_set(&[(*glob).to_owned()]).unwrap();
                let holds = set.is_match(&old_path) || set.is_match(&new_path);
                prop_assert_eq!(holds, old != new, "glob {} for {} ({:?})", glob, old_path, change);
            }
        }
    }

    #[test]
    fn key_modes_ignore_the_umask_but_not_exec_bits() {
        let mode = |m: u32| source_mode(0o100_000 | m);
        assert_eq!(mode(0o644), mode(0o664));
        assert_eq!(mode(0o644), mode(0o600));
        assert_eq!(mode(0o755), mode(0o775));
        assert_ne!(mode(0o644), mode(0o755));
        assert_ne!(mode(0o644), mode(0o744));
        assert_eq!(mode(0o4755), 0o4755);
    }
}
