//! Source scanning and task-key costs over a generated app of 20,000 files (100 directories of
//! 200 files, 1-8 KB each): a cold scan (no stat cache: every file hashed), a warm scan (every
//! digest from the stat cache), the stat cache's load and save, and the keys of selections.
//! The page cache is warm throughout: "cold" is about the stat cache, not the disk. Cold scans
//! report bytes hashed per second, warm scans files per second.
//!
//! ```text
//! cargo bench -p strata-planner --bench sources
//! ```

use std::hint::black_box;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_planner::{ScanOptions, SourceTree, StatCache, glob_set, scan};

const DIRS: usize = 100;
const FILES: usize = 200;

/// Writes the tree; every file's size and content depend only on its index, and its mtime is
/// a day old, out of the stat cache's racy window.
fn generate(root: &Path) -> io::Result<()> {
    let pool: Vec<u8> = (0..9000_u32)
        .map(|i| b'a' + u8::try_from(i * 7 % 26).unwrap_or(0))
        .collect();
    let day_ago = SystemTime::now() - Duration::from_hours(24);
    for dir in 0..DIRS {
        let dir_path = root.join(format!("dir{dir:03}"));
        std::fs::create_dir_all(&dir_path)?;
        for file in 0..FILES {
            let n = dir * FILES + file;
            let size = 1024 + (n * 7919) % 7169;
            let start = (n * 31) % 800;
            let mut content = format!("file {n}\n").into_bytes();
            content.extend_from_slice(&pool[start..start + size - content.len()]);
            let path = dir_path.join(format!("file{file:03}.txt"));
            std::fs::write(&path, &content)?;
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(day_ago)?;
        }
    }
    Ok(())
}

fn scanned(root: &Path, cache: &mut StatCache) -> SourceTree {
    match scan(root, &ScanOptions::default(), cache) {
        Ok((tree, _)) => tree,
        Err(err) => panic!("scan failed: {err}"),
    }
}

fn benches(c: &mut Criterion) {
    let dir = match tempfile::tempdir().and_then(|dir| generate(dir.path()).map(|()| dir)) {
        Ok(dir) => dir,
        Err(err) => panic!("cannot generate the benchmark tree: {err}"),
    };
    let root = dir.path().join(".");
    let root = root.as_path();

    let mut warm = StatCache::in_memory();
    let tree = scanned(root, &mut warm);
    match scan(root, &ScanOptions::default(), &mut warm) {
        Ok((_, stats)) if stats.hashed == 0 => {}
        Ok((_, stats)) => panic!("a warm scan hashed {} files", stats.hashed),
        Err(err) => panic!("scan failed: {err}"),
    }
    let bytes: u64 = tree.files.iter().map(|file| file.size).sum();
    let mut group = c.benchmark_group("scan_20k");
    group.sample_size(10);
    // A cold scan's cost is its reading and hashing, a warm one's its stat calls.
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("cold", |b| {
        b.iter(|| scanned(black_box(root), &mut StatCache::in_memory()));
    });
    group.throughput(Throughput::Elements(tree.files.len() as u64));
    group.bench_function("warm", |b| b.iter(|| scanned(black_box(root), &mut warm)));
    group.finish();

    let cache_dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("cannot make a cache directory: {err}"),
    };
    let cache_file = cache_dir.path().join("stat.bin");
    let mut saved = StatCache::load(&cache_file);
    scanned(root, &mut saved);
    let mut group = c.benchmark_group("stat_cache_20k");
    group.bench_function("save", |b| {
        b.iter(|| saved.save().map_err(|err| panic!("save failed: {err}")));
    });
    group.bench_function("load", |b| {
        b.iter(|| StatCache::load(black_box(&cache_file)));
    });
    group.finish();

    let globs = match glob_set(&["dir0[0-4]*/**".to_owned(), "**/file1*.txt".to_owned()]) {
        Ok(globs) => globs,
        Err(err) => panic!("{err}"),
    };
    let mut group = c.benchmark_group("key_20k");
    group.bench_function("digest_of_all", |b| {
        b.iter(|| tree.digest_of(black_box(&tree.files).iter()));
    });
    group.bench_function("select_and_digest", |b| {
        b.iter(|| tree.digest_of(tree.select(black_box(&globs))));
    });
    group.finish();
}

criterion_group!(sources, benches);
criterion_main!(sources);
