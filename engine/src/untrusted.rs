//! Reading, on the host, files a buildpack made.
//!
//! strata reads what a buildpack left (`<layer>.toml`, `launch.toml`, env files, SBOM files,
//! detect's plan) outside the sandbox, with strata's own rights. A buildpack controls those
//! paths, so a symlink there could make strata read any host file (`/proc/self/environ`, a
//! key) into the image or the store, a FIFO could hang it, and a huge file exhaust memory.
//! Every such read goes through here: the file is opened with `O_NOFOLLOW` (a symlink is an
//! error, not followed) and `O_NONBLOCK` (opening a FIFO does not wait for a writer), must
//! then be a regular file, and is read up to a bound. Directories are checked with
//! `symlink_metadata` before they are listed; the buildpack's processes have exited by then
//! (the sandbox dies with its main process), so nothing swaps them in between.

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most strata reads of a TOML or env file a buildpack wrote: far above any real one.
pub const METADATA_LIMIT: u64 = 1 << 20;

/// The most strata reads of one SBOM file: SBOMs of large images run to megabytes, never
/// near this.
pub const SBOM_LIMIT: u64 = 256 << 20;

/// Why a file a buildpack made is refused.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedError {
    /// The path is a symlink, which strata does not follow.
    #[error("{} is a symlink; strata does not follow links a buildpack made", path.display())]
    Symlink { path: PathBuf },
    /// The path is not a regular file (a FIFO, a socket, a device, a directory).
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    /// The path is not a directory where one is expected.
    #[error("{} is not a directory", path.display())]
    NotADir { path: PathBuf },
    /// The file is larger than strata reads.
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UntrustedError {
    /// The file in question.
    pub fn path(&self) -> &Path {
        match self {
            Self::Symlink { path }
            | Self::NotAFile { path }
            | Self::NotADir { path }
            | Self::TooLarge { path, .. }
            | Self::Io { path, .. } => path,
        }
    }
}

/// Why [`open_regular`] refused a file, for callers with errors of their own.
#[derive(Debug)]
pub enum Refused {
    /// A symlink is at the path (`O_NOFOLLOW` gave `ELOOP`).
    Symlink,
    /// What is there is not a regular file: its type says what it is.
    NotAFile(FileType),
    /// The open (or its `fstat`) failed: `NotFound` when nothing is there.
    Io(io::Error),
}

/// Opens `path` for reading if it is a regular file, without following a symlink at its last
/// component and without blocking on a FIFO; returns the file and its metadata. The one
/// place strata opens a file it does not trust: what buildpacks leave, store entries, output
/// layouts and run images.
///
/// # Errors
///
/// [`Refused`], saying why.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), Refused> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refused::Symlink,
            _ => Refused::Io(e),
        })?;
    let meta = file.metadata().map_err(Refused::Io)?;
    if !meta.is_file() {
        return Err(Refused::NotAFile(meta.file_type()));
    }
    Ok((file, meta))
}

/// Opens the regular file `path` for reading without following a symlink at it and without
/// blocking on a FIFO.
///
/// # Errors
///
/// [`UntrustedError::Symlink`], [`UntrustedError::NotAFile`], or the open's error.
pub fn open(path: &Path) -> Result<File, UntrustedError> {
    let path_buf = || path.to_owned();
    match open_regular(path) {
        Ok((file, _)) => Ok(file),
        Err(Refused::Symlink) => Err(UntrustedError::Symlink { path: path_buf() }),
        Err(Refused::NotAFile(_)) => Err(UntrustedError::NotAFile { path: path_buf() }),
        Err(Refused::Io(source)) => Err(UntrustedError::Io {
            path: path_buf(),
            source,
        }),
    }
}

/// The contents of the regular file `path`, at most `limit` bytes of it.
///
/// # Errors
///
/// As [`open`]; [`UntrustedError::TooLarge`] past `limit`.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, UntrustedError> {
    let file = open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| UntrustedError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(UntrustedError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// As [`read`], as UTF-8 text.
///
/// # Errors
///
/// As [`read`]; an [`UntrustedError::Io`] of kind `InvalidData` when it is not UTF-8.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String, UntrustedError> {
    String::from_utf8(read(path, limit)?).map_err(|e| UntrustedError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// Whether `path` is a real directory: `false` when nothing is there.
///
/// # Errors
///
/// [`UntrustedError::Symlink`] for a symlink, [`UntrustedError::NotADir`] for anything else
/// that is not a directory.
pub fn is_dir(path: &Path) -> Result<bool, UntrustedError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(UntrustedError::Symlink {
            path: path.to_owned(),
        }),
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(UntrustedError::NotADir {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(UntrustedError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_big_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("secret"), "host secret").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), d.join("link")).unwrap();
        std::fs::write(d.join("big"), vec![b'x'; 11]).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(d.join("fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());

        assert_eq!(read(&d.join("secret"), 100).unwrap(), b"host secret");
        assert!(matches!(
            read(&d.join("link"), 100),
            Err(UntrustedError::Symlink { path }) if path == d.join("link")
        ));
        // Does not block waiting for a writer.
        assert!(matches!(
            read(&d.join("fifo"), 100),
            Err(UntrustedError::NotAFile { .. })
        ));
        assert!(matches!(
            read(&d.join("big"), 10),
            Err(UntrustedError::TooLarge { limit: 10, .. })
        ));
        assert_eq!(read(&d.join("big"), 11).unwrap().len(), 11);
    }

    #[test]
    fn directories_are_checked_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("real")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        std::fs::write(d.join("file"), "").unwrap();
        assert!(is_dir(&d.join("real")).unwrap());
        assert!(!is_dir(&d.join("missing")).unwrap());
        assert!(matches!(
            is_dir(&d.join("link")),
            Err(UntrustedError::Symlink { .. })
        ));
        assert!(matches!(
            is_dir(&d.join("file")),
            Err(UntrustedError::NotADir { .. })
        ));
    }
}
