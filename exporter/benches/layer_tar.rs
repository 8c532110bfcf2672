//! Layer writing with [`LayerBuilder`]: a generated tree of 500 files (20 directories of 25, 1
//! to 31 KiB each, 7.8 MiB in all; half of each file pseudo-random bytes, half text, so gzip
//! has work on both) walked into a layer and written as a blob, uncompressed and gzipped, as
//! the exporter does for a buildpack layer. Each write ends as every blob strata writes does,
//! with an fsync and a rename, so the disk is part of the figure; the page cache is warm for
//! the reads. `walk` is the `add_dir_tree` part alone. `sbom_none` and `sbom_gzip` read such a
//! blob back and list its files with their SHA-256 and SHA-1, as the SBOM layer does for a
//! layer without a buildpack SBOM (once per diffID: the list is kept in the store).
//!
//! ```text
//! cargo bench -p strata-exporter --bench layer_tar
//! ```

#![allow(
    clippy::expect_used,
    reason = "a bench whose setup fails has nothing to measure"
)]

use std::hint::black_box;
use std::io;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_exporter::archive::{Compression, DEFAULT_MTIME, LayerBlob, LayerBuilder, Owner};

const DIRS: usize = 20;
const FILES: usize = 25;
const WORDS: [&str; 12] = [
    "layer", "image", "build", "cache", "node", "module", "index", "export", "const", "return",
    "function", "require",
];

/// Writes the tree; every file's size and content depend only on its index.
fn generate(root: &Path) -> io::Result<u64> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut total = 0;
    for dir in 0..DIRS {
        let dir_path = root.join(format!("lib{dir:02}"));
        std::fs::create_dir_all(&dir_path)?;
        for file in 0..FILES {
            let n = dir * FILES + file;
            let size = 1024 * (1 + (n * 17) % 31);
            let mut content = Vec::with_capacity(size);
            while content.len() < size / 2 {
                // xorshift64: cheap bytes that gzip cannot shrink.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                content.extend_from_slice(&state.to_le_bytes());
            }
            let mut word = n;
            while content.len() < size {
                content.extend_from_slice(WORDS[word % WORDS.len()].as_bytes());
                content.push(if word.is_multiple_of(9) { b'\n' } else { b' ' });
                word = (word * 31 + 7) % 1021;
            }
            content.truncate(size);
            std::fs::write(dir_path.join(format!("file{file:02}.js")), &content)?;
            total += size as u64;
        }
    }
    Ok(total)
}

fn layer_of(tree: &Path) -> LayerBuilder {
    let mut layer = LayerBuilder::new(Owner::new(1000, 1000), DEFAULT_MTIME);
    layer
        .add_dir_tree(tree, "workspace")
        .expect("the generated tree is readable");
    layer
}

fn write(tree: &Path, compression: Compression, blobs: &Path) -> LayerBlob {
    layer_of(tree)
        .finish(compression, blobs)
        .expect("the blob directory is writable")
}

fn benches(c: &mut Criterion) {
    let tree = tempfile::tempdir().expect("a temp dir for the tree");
    let bytes = generate(tree.path()).expect("the tree is written");
    let blobs = tempfile::tempdir().expect("a temp dir for the blobs");
    let (tree, blobs) = (tree.path(), blobs.path());

    let mut group = c.benchmark_group("layer_tar_500_files");
    group.sample_size(10);
    // The walk stats files and reads none; the writes read and tar every byte.
    group.throughput(Throughput::Elements((DIRS * FILES) as u64));
    group.bench_function("walk", |b| b.iter(|| layer_of(black_box(tree))));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("none", |b| {
        b.iter(|| write(black_box(tree), Compression::None, blobs));
    });
    group.bench_function("gzip", |b| {
        b.iter(|| write(black_box(tree), Compression::Gzip, blobs));
    });
    for (name, compression) in [
        ("sbom_none", Compression::None),
        ("sbom_gzip", Compression::Gzip),
    ] {
        let blob = write(tree, compression, blobs);
        group.bench_function(name, |b| {
            b.iter(|| {
                let file = std::fs::File::open(&blob.path).expect("the blob is there");
                let reader =
                    strata_exporter::unpack::decoder(io::BufReader::new(file), compression)
                        .expect("a decoder");
                strata_exporter::sbomlayer::tar_files(reader).expect("the blob is a tar")
            });
        });
    }
    group.finish();
}

criterion_group!(layer_tar, benches);
criterion_main!(layer_tar);
