//! Unpacking a layer tar (plain or gzip) into a directory: how a cached layer or app change
//! comes back out of the store. The tar is untrusted (a shared cache may come from another
//! machine), so every entry must land inside the directory (the tar crate's `unpack_in`
//! refuses absolute paths, `..` components and entries whose parent resolves outside it), and
//! inside the part of it the tar is for (a layer's own directory, the app's).

use std::io::{self, Read};
use std::path::Path;

/// Unpacks the tar `reader` gives (gunzipped first when `gzip`) into `dir`, keeping
/// permissions and overwriting what is there. Every entry must lie under `inside` (relative
/// to `dir`; empty for anywhere in it), or be one of its parent directories.
///
/// # Errors
/// The stream is not a valid tar (or gzip), an entry lies outside `inside` or would land
/// outside `dir` (`InvalidData`), or a file cannot be written.
pub fn unpack_tar(reader: impl Read, gzip: bool, dir: &Path, inside: &Path) -> io::Result<()> {
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    // As `Archive::unpack`: into an existing, canonical `dir`; directories last, deepest
    // first, so that a read-only directory does not keep its own files from being written.
    std::fs::create_dir_all(dir)?;
    let dir = &dir.canonicalize()?;
    let mut directories = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let is_dir = entry.header().entry_type() == tar::EntryType::Directory;
        if !(path.starts_with(inside) || (is_dir && inside.starts_with(&path))) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the entry {} is outside {}",
                    path.display(),
                    inside.display()
                ),
            ));
        }
        if is_dir {
            directories.push(entry);
        } else if !entry.unpack_in(dir)? {
            return Err(outside(&path));
        }
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut entry in directories {
        let path = entry.path()?.into_owned();
        if !entry.unpack_in(dir)? {
            return Err(outside(&path));
        }
    }
    Ok(())
}

fn outside(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the entry {} would land outside the directory",
            path.display()
        ),
    )
}
