//! zstd on every core, with the same bytes on any number of cores.
//!
//! libzstd's own multi-threaded mode does the work: the input is cut into jobs whose size
//! follows from the level alone (not from the number of workers), each job is compressed by a
//! worker with the tail of the job before it as its history, and the blocks are written in
//! order into one frame. With one worker or many the frame is the same; only zero workers
//! (the blocking single-thread mode) would write other bytes, so this writer always asks for
//! at least one. The frame carries a content checksum, so a truncated or damaged blob fails
//! when read rather than unpacking to a wrong tree.

use std::io::{self, Write};

use zstd::stream::write::Encoder;
use zstd::zstd_safe::CParameter;

/// zstd level for layer blobs, fixed so the compressed digest is stable across builds. Level 3
/// (zstd's default) writes blobs smaller than gzip at Go's default level (`umoci insert`) at
/// several times its speed; higher levels buy a few percent of size for twice the time or more
/// (benches/layers/zstd.sh).
pub const LEVEL: i32 = 3;

/// A zstd writer into `inner` at [`LEVEL`] on one worker thread per core.
///
/// # Errors
/// libzstd refusing a parameter (it cannot make the context or the worker threads).
pub fn encoder<W: Write>(inner: W) -> io::Result<Encoder<'static, W>> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    encoder_on(inner, workers)
}

/// Like [`encoder`], on `workers` threads (at least one: see the module note).
///
/// # Errors
/// libzstd refusing a parameter.
pub fn encoder_on<W: Write>(inner: W, workers: usize) -> io::Result<Encoder<'static, W>> {
    let mut encoder = Encoder::new(inner, LEVEL)?;
    let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    encoder.set_parameter(CParameter::NbWorkers(workers))?;
    encoder.set_parameter(CParameter::ChecksumFlag(true))?;
    Ok(encoder)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes, some compressible and some not.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if (i / 4096) % 2 == 0 {
                    b"strata layers "[i % 14]
                } else {
                    state.to_le_bytes()[0]
                }
            })
            .collect()
    }

    fn compress(data: &[u8], workers: usize, writes: usize) -> Vec<u8> {
        let mut encoder = encoder_on(Vec::new(), workers).unwrap();
        for piece in data.chunks(writes.max(1)) {
            encoder.write_all(piece).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn the_bytes_do_not_depend_on_workers_or_write_sizes() {
        // Several jobs' worth (a job is a few MiB at this level).
        let data = sample(40 << 20);
        let one = compress(&data, 1, 4096);
        assert_eq!(compress(&data, 2, 1 << 20), one);
        assert_eq!(compress(&data, 4, 777_777), one);
        assert_eq!(compress(&data, 8, 3 << 20), one);
        assert!(one.len() < data.len() * 3 / 4, "it compresses");
    }

    #[test]
    fn zstd_reads_it() {
        for len in [0, 1, 5 << 20] {
            let data = sample(len);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.zst");
            std::fs::write(&path, compress(&data, 2, 8192)).unwrap();
            let out = std::process::Command::new("zstd")
                .args(["-dc", "--"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "len {len}");
            assert_eq!(out.stdout, data, "len {len}");
        }
    }
}
