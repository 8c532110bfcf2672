//! Unpacking a layer tar (plain or gzip) into a directory: how a cached layer or app change
//! comes back out of the store. The tar is untrusted (a shared cache may come from another
//! machine), so every entry must land inside the directory: the tar crate's `unpack` refuses
//! absolute paths, `..` components and entries whose parent resolves outside it.

use std::io::{self, Read};
use std::path::Path;

/// Unpacks the tar `reader` gives (gunzipped first when `gzip`) into `dir`, keeping
/// permissions and overwriting what is there.
///
/// # Errors
/// The stream is not a valid tar (or gzip), an entry would land outside `dir`, or a file
/// cannot be written.
pub fn unpack_tar(reader: impl Read, gzip: bool, dir: &Path) -> io::Result<()> {
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(dir)
}
