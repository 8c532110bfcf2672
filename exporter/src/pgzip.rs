//! Gzip on every core, with the same bytes on any number of cores.
//!
//! The input is cut into fixed chunks of [`CHUNK`] bytes. Each chunk is deflated on its own,
//! primed with the 32 KiB of input before it as a preset dictionary (so matches reach back as
//! far as in one stream), and ended with a sync flush, which byte-aligns it without ending
//! the stream; the last chunk ends the stream. The deflate streams of consecutive chunks
//! concatenate into one valid deflate stream, wrapped in one gzip member with the CRC-32 and
//! length of the whole input: any gzip reader reads it. Since a chunk's output depends only
//! on its bytes, its dictionary and the level, where the chunks are compressed and how many
//! at once does not change the output.
//!
//! Chunks are compressed on a pool of their own, one thread per core, while the writer goes
//! on reading input (a worker of the build's executor never waits for a job queued behind
//! itself); at most two chunks per thread are in flight, so memory stays bounded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::mpsc;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use rayon::ThreadPool;

/// Input bytes per chunk.
pub const CHUNK: usize = 1 << 20;
/// The deflate window: how much input before a chunk primes it.
const WINDOW: usize = 32 << 10;
/// ID1 ID2 CM FLG MTIME(4) XFL OS(unknown).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The compression pool: one thread per core (one when it cannot be made).
fn pool() -> Option<&'static ThreadPool> {
    static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("strata-gzip-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

type Pending = mpsc::Receiver<io::Result<Vec<u8>>>;

/// A gzip writer that deflates chunks in parallel.
pub struct ParallelGz<W: Write> {
    inner: W,
    level: u32,
    pool: Option<&'static ThreadPool>,
    /// Input not yet handed to a job (less than a chunk).
    pending: Vec<u8>,
    /// The last [`WINDOW`] bytes of input handed to jobs.
    window: Vec<u8>,
    /// Chunks being compressed, in order.
    in_flight: VecDeque<Pending>,
    crc: Crc,
}

impl<W: Write> ParallelGz<W> {
    /// A writer of gzip at `level` (0–9) into `inner`, compressing on the shared pool.
    ///
    /// # Errors
    /// An error writing the header.
    pub fn new(inner: W, level: u32) -> io::Result<Self> {
        Self::on(inner, level, pool())
    }

    /// Like [`Self::new`], on `pool` (`None`: on this thread).
    ///
    /// # Errors
    /// An error writing the header.
    pub fn on(mut inner: W, level: u32, pool: Option<&'static ThreadPool>) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        Ok(Self {
            inner,
            level,
            pool,
            pending: Vec::with_capacity(CHUNK),
            window: Vec::new(),
            in_flight: VecDeque::new(),
            crc: Crc::new(),
        })
    }

    /// Starts compressing `data` (after the input before it), then writes finished chunks
    /// while too many are in flight.
    fn start(&mut self, data: Vec<u8>, last: bool) -> io::Result<()> {
        let dict = self.window.clone();
        self.window
            .extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
        let excess = self.window.len().saturating_sub(WINDOW);
        self.window.drain(..excess);
        let (tx, rx) = mpsc::channel();
        let level = self.level;
        let job = move || {
            let _ = tx.send(deflate(level, &dict, &data, last));
        };
        match self.pool {
            Some(pool) => pool.spawn(job),
            None => job(),
        }
        self.in_flight.push_back(rx);
        let limit = 2 * self.pool.map_or(1, ThreadPool::current_num_threads);
        while self.in_flight.len() > limit {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk in flight and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.in_flight.pop_front() {
            let chunk = rx
                .recv()
                .map_err(|_| io::Error::other("a gzip job ended without a result"))??;
            self.inner.write_all(&chunk)?;
        }
        Ok(())
    }

    /// Ends the stream (the last chunk and the trailer) and returns the inner writer.
    ///
    /// # Errors
    /// An error writing to the inner writer, or from deflate.
    pub fn finish(mut self) -> io::Result<W> {
        let rest = std::mem::take(&mut self.pending);
        self.start(rest, true)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        let mut rest = buf;
        while !rest.is_empty() {
            let take = (CHUNK - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == CHUNK {
                let data = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
                self.start(data, false)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Raw deflate of `data` primed with `dict`: ended with a sync flush, or, when `last`, the
/// end of the stream.
fn deflate(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        compress.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = usize::try_from(compress.total_in()).map_err(io::Error::other)?;
        let status = compress
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(compress.total_in()).map_err(io::Error::other)? == data.len();
        // Done when the stream ended, or (sync) all input is in and deflate left room in the
        // output, which means it had nothing more to flush.
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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

    /// `data` gzipped on a pool of `threads` (0: on this thread), written `writes` bytes at a
    /// time.
    fn gzip(data: &[u8], threads: usize, writes: usize) -> Vec<u8> {
        let pool: Option<&'static ThreadPool> = (threads > 0).then(|| {
            &*Box::leak(Box::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap(),
            ))
        });
        let mut gz = ParallelGz::on(Vec::new(), 6, pool).unwrap();
        for piece in data.chunks(writes.max(1)) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_at_every_size_around_the_chunk_edges() {
        for len in [0, 1, WINDOW - 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7] {
            let data = sample(len);
            let gz = gzip(&data, 2, 65536);
            assert_eq!(gunzip(&gz), data, "len {len}");
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_threads_or_write_sizes() {
        let data = sample(9 * CHUNK + 12345);
        let one = gzip(&data, 0, 4096);
        assert_eq!(gzip(&data, 1, 1 << 20), one);
        assert_eq!(gzip(&data, 2, 3 * CHUNK), one);
        assert_eq!(gzip(&data, 4, 777), one);
        assert!(one.len() < data.len() * 3 / 4, "it compresses");
    }

    #[test]
    fn gzip_reads_it() {
        let data = sample(3 * CHUNK + 99);
        let gz = gzip(&data, 2, 8192);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, &gz).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }
}
