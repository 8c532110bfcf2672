//! The one reproducible tar writer behind every layer strata exports.
//!
//! A layer's identity is its diffID, the sha256 of its uncompressed tar. For two builds of the
//! same inputs to share layers (and for a cache hit to be worth anything) the tar must be a
//! function of the *content* only, never of where the files sit on the host, when they were
//! written, or which order the directory listing came back in. So [`LayerBuilder`] first
//! collects entries into a map keyed by their path inside the image, then writes them in one
//! pass in byte order of that path, with a header built from scratch for each entry:
//!
//! - owner: the builder's [`Owner`] (or one given per explicit entry), empty uname/gname;
//! - mtime: one value for every entry ([`DEFAULT_MTIME`] or `SOURCE_DATE_EPOCH`), no
//!   atime/ctime (USTAR headers have no room for them, and no PAX record is written);
//! - mode: the permission bits of the file (exec, setuid, setgid and sticky bits kept), or a
//!   value derived from the owner bits with [`ModePolicy::Normalize`];
//! - regular files, directories and symlinks (target bytes kept verbatim); a file with several
//!   hardlinks in the layer is stored once, under its first path in sorted order, and the other
//!   paths become hardlink entries to it; sockets, FIFOs and devices are skipped and reported by
//!   [`LayerBuilder::skipped`];
//! - names: USTAR (`name` plus `prefix`, up to 255 bytes); only a name or link target USTAR
//!   cannot hold gets a GNU long-name entry, whose own header is fixed (mtime 0, uid 0).
//!
//! Directory entries carry no trailing `/`: readers (Go's `archive/tar` in umoci, skopeo and
//! containerd) take the type from the header, and a single spelling keeps the sort order equal
//! to the order of the paths callers pass in.
//!
//! Entries added explicitly ([`LayerBuilder::add_bytes`], [`LayerBuilder::add_dir`],
//! [`LayerBuilder::add_symlink`]) win over entries found by walking a directory, which win over
//! the parent directories implied by a path. Within one kind the later call wins, so adding a
//! directory twice yields one entry.
//!
//! [`LayerBuilder::finish`] streams: each file is copied from disk through the tar builder into
//! a writer that hashes the tar bytes (the diffID) and, for gzip, through a
//! [`crate::pgzip::ParallelGz`] at a fixed level (deflated a megabyte chunk per
//! core at a time, header with no mtime or name) into a second hasher (the blob digest), then
//! into a temp file that is renamed to `<blob_dir>/<hex digest>`. No layer is ever held in
//! memory (a few chunks are). The compressed bytes depend on the flate2 backend, the level and
//! the chunk size, not on the number of cores; the diffID depends on none of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest, MediaType};
use tar::{EntryType, Header};

use strata_engine::hashing::HashingWriter;

use crate::pgzip::ParallelGz;

/// 1980-01-01T00:00:01Z as seconds since the Unix epoch: the mtime of every layer entry, and
/// the `created` time of images, when `SOURCE_DATE_EPOCH` is not set. It is the one the CNB
/// lifecycle uses; one second past 1980 keeps zip-based tools (which cannot store earlier
/// times) from rewriting it.
pub const DEFAULT_MTIME: u64 = 315_532_801;

/// Mode of the parent directories a path implies.
pub const PARENT_DIR_MODE: u32 = 0o755;

/// Mode of a symlink entry; Linux ignores symlink permissions, and this is what `lstat` reports.
const SYMLINK_MODE: u32 = 0o777;

/// gzip level for layer blobs: fixed so the compressed digest is stable across builds. Level 3
/// of zlib-rs deflates about 2.4 times as fast as Go's default level (`umoci insert`), for
/// blobs about 15% larger (benches/monorepo/compare.sh).
const GZIP_LEVEL: u32 = 3;

/// The version of the bytes a [`LayerBuilder`] writes for a given tree and settings: bumped
/// whenever they change (the tar writer, the deflate backend, level or chunking), so that
/// blobs stored or exported by an earlier version are not taken for this one's.
pub const BLOB_FORMAT: u32 = 2;

/// What a USTAR header's `linkname` field holds.
const USTAR_LINKNAME_LEN: usize = 100;

/// Size of the buffer between the tar stream and the blob file.
const WRITE_BUFFER: usize = 256 * 1024;

/// The numeric owner of layer entries. Names are never stored: they would depend on the
/// host's `/etc/passwd`, and the image's own `/etc/passwd` decides what the ids mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// uid 0, gid 0: for launcher and config layers and the base image's system files.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

    /// The owner with these ids.
    pub const fn new(uid: u32, gid: u32) -> Owner {
        Owner { uid, gid }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

pub use strata_engine::layers::{Compression, ParseCompressionError};

/// The OCI media type of a layer blob stored with `compression`.
pub fn media_type(compression: Compression) -> MediaType {
    match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    }
}

/// The compression of a layer blob of media type `media_type`, if it is a layer type strata
/// writes.
pub fn compression_of(media_type: &MediaType) -> Option<Compression> {
    match media_type {
        MediaType::ImageLayer => Some(Compression::None),
        MediaType::ImageLayerGzip => Some(Compression::Gzip),
        MediaType::ImageLayerZstd => Some(Compression::Zstd),
        _ => None,
    }
}

/// Where the mode of an entry found on disk comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ModePolicy {
    /// The file's own permission bits (`mode & 0o7777`), as the CNB lifecycle does. The layer
    /// then depends on the umask the files were created with.
    #[default]
    Preserve,
    /// The owner's bits and the special bits are kept; group and other get the owner's read
    /// and execute bits (so 0644, 0664 and 0600 all become 0644, 0775 and 0700 become 0755).
    /// Use it for trees whose modes come from a checkout, such as the app directory, to make
    /// the layer independent of the umask of whoever checked the files out.
    Normalize,
    /// Pack's rule for buildpack layers: 0755 for directories and for files with any
    /// execute bit, 0644 for every other file (special bits dropped).
    Executable,
}

impl ModePolicy {
    /// The mode stored for a file whose `st_mode` is `mode` (with its file type bits, which
    /// [`ModePolicy::Executable`] reads).
    pub fn apply(self, mode: u32) -> u32 {
        let is_dir = mode & 0o170_000 == 0o040_000;
        let mode = mode & 0o7777;
        match self {
            ModePolicy::Executable if is_dir || mode & 0o111 != 0 => 0o755,
            ModePolicy::Executable => 0o644,
            ModePolicy::Preserve => mode,
            ModePolicy::Normalize => {
                let special = mode & 0o7000;
                let user = (mode >> 6) & 0o7;
                let shared = user & 0o5;
                special | (user << 6) | (shared << 3) | shared
            }
        }
    }
}

/// A finished layer blob in a blob directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// `sha256:<hex>` of the uncompressed tar: the layer's identity in `rootfs.diff_ids`.
    pub diff_id: String,
    /// `sha256:<hex>` of the blob as stored; equals `diff_id` for [`Compression::None`].
    pub digest: String,
    /// Size in bytes of the blob as stored.
    pub size: u64,
    /// The media type for its compression (see [`media_type`]).
    pub media_type: MediaType,
    /// `<blob_dir>/<hex of digest>`.
    pub path: PathBuf,
}

impl LayerBlob {
    /// The descriptor of this blob for a manifest's `layers`.
    ///
    /// # Errors
    /// [`ArchiveError::InvalidDigest`] if `digest` was changed into something that is not a
    /// digest.
    pub fn descriptor(&self) -> Result<Descriptor, ArchiveError> {
        let digest = Digest::from_str(&self.digest).map_err(|_| ArchiveError::InvalidDigest {
            digest: self.digest.clone(),
        })?;
        Ok(Descriptor::new(self.media_type.clone(), self.size, digest))
    }
}

/// Errors building a layer.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A path inside the image is not a clean relative path.
    #[error("invalid path in layer `{path}`: {reason}")]
    InvalidImagePath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The directory to add is not a directory.
    #[error("cannot add `{}` to a layer: not a directory", path.display())]
    NotADirectory {
        /// The host path.
        path: PathBuf,
    },
    /// Reading the host tree failed.
    #[error("cannot read `{}` for a layer", path.display())]
    Read {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file changed between being listed and being written.
    #[error("`{}` changed while its layer was being written ({what})", path.display())]
    Changed {
        /// The host path.
        path: PathBuf,
        /// What changed.
        what: &'static str,
    },
    /// An entry sits below a path that is not a directory in this layer.
    #[error("layer entry `{path}` is below `{parent}`, which is not a directory in the layer")]
    ParentNotDirectory {
        /// The entry's path in the image.
        path: String,
        /// Its parent's path in the image.
        parent: String,
    },
    /// Writing one entry into the tar stream failed.
    #[error("cannot write layer entry `{path}`")]
    Entry {
        /// The entry's path in the image.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Creating, writing or renaming the blob file failed.
    #[error("cannot write layer blob in `{}`", dir.display())]
    Write {
        /// The blob directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A [`LayerBlob::digest`] that does not parse.
    #[error("`{digest}` is not a valid digest")]
    InvalidDigest {
        /// The digest string.
        digest: String,
    },
}

/// Collects the entries of one layer and writes them as a reproducible tar blob.
#[derive(Debug)]
pub struct LayerBuilder {
    owner: Owner,
    mtime: u64,
    mode_policy: ModePolicy,
    entries: BTreeMap<Vec<u8>, Entry>,
    skipped: Vec<PathBuf>,
}

#[derive(Debug)]
struct Entry {
    content: Content,
    mode: u32,
    owner: Owner,
    origin: Origin,
}

#[derive(Debug)]
enum Content {
    Dir,
    File {
        host: PathBuf,
        dev: u64,
        ino: u64,
        nlink: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
    Bytes(Vec<u8>),
}

/// Which kind of call produced an entry; a higher origin replaces a lower one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Parent,
    Tree,
    Explicit,
}

impl LayerBuilder {
    /// An empty layer whose entries are owned by `owner` and dated `mtime` (seconds since the
    /// epoch; pass `SOURCE_DATE_EPOCH` or [`DEFAULT_MTIME`]).
    pub fn new(owner: Owner, mtime: u64) -> LayerBuilder {
        LayerBuilder {
            owner,
            mtime,
            mode_policy: ModePolicy::default(),
            entries: BTreeMap::new(),
            skipped: Vec::new(),
        }
    }

    /// Sets how modes of files found on disk are stored (default [`ModePolicy::Preserve`]).
    /// Applies to trees added after this call.
    #[must_use]
    pub fn with_mode_policy(mut self, policy: ModePolicy) -> LayerBuilder {
        self.mode_policy = policy;
        self
    }

    /// Adds `host_dir` itself as the directory `image_path` and everything under it (files,
    /// directories, symlinks; symlinks are not followed), plus the parents of `image_path`
    /// as directories with mode [`PARENT_DIR_MODE`]. `image_path` is relative with no leading
    /// `/` (`layers/examples_runtime/runtime`); an empty `image_path` puts the contents of
    /// `host_dir` at the root of the layer.
    ///
    /// # Errors
    /// An invalid `image_path`, a `host_dir` that is not a directory, or an unreadable entry.
    pub fn add_dir_tree(&mut self, host_dir: &Path, image_path: &str) -> Result<(), ArchiveError> {
        self.add_tree(host_dir, image_path, None)
    }

    /// Like [`Self::add_dir_tree`], but only paths for which `filter` returns true, with the
    /// directories leading to them. `filter` sees every file, directory and symlink below
    /// `host_dir`, relative to it (`public/app.css`); selecting a directory does not select
    /// its contents. `image_path` itself and its parents are always added. This is how an app
    /// directory is split into slices: one layer per filter.
    ///
    /// # Errors
    /// As [`Self::add_dir_tree`].
    pub fn add_dir_tree_filtered(
        &mut self,
        host_dir: &Path,
        image_path: &str,
        filter: &dyn Fn(&Path) -> bool,
    ) -> Result<(), ArchiveError> {
        self.add_tree(host_dir, image_path, Some(filter))
    }

    /// Adds a regular file with these contents, owned by the builder's owner.
    ///
    /// # Errors
    /// An invalid `image_path`.
    pub fn add_bytes(
        &mut self,
        image_path: &str,
        bytes: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<(), ArchiveError> {
        self.add_bytes_owned(image_path, bytes, mode, self.owner)
    }

    /// Adds a regular file with these contents and this owner.
    ///
    /// # Errors
    /// An invalid `image_path`.
    pub fn add_bytes_owned(
        &mut self,
        image_path: &str,
        bytes: impl Into<Vec<u8>>,
        mode: u32,
        owner: Owner,
    ) -> Result<(), ArchiveError> {
        self.add_explicit(image_path, Content::Bytes(bytes.into()), mode, owner)
    }

    /// Adds a directory, owned by the builder's owner.
    ///
    /// # Errors
    /// An invalid `image_path`.
    pub fn add_dir(&mut self, image_path: &str, mode: u32) -> Result<(), ArchiveError> {
        self.add_dir_owned(image_path, mode, self.owner)
    }

    /// Adds a directory with this owner.
    ///
    /// # Errors
    /// An invalid `image_path`.
    pub fn add_dir_owned(
        &mut self,
        image_path: &str,
        mode: u32,
        owner: Owner,
    ) -> Result<(), ArchiveError> {
        self.add_explicit(image_path, Content::Dir, mode, owner)
    }

    /// Adds a symlink to `target` (stored verbatim, absolute or relative), owned by the
    /// builder's owner.
    ///
    /// # Errors
    /// An invalid `image_path` or an empty target.
    pub fn add_symlink(&mut self, image_path: &str, target: &str) -> Result<(), ArchiveError> {
        if target.is_empty() || target.contains('\0') {
            return Err(ArchiveError::InvalidImagePath {
                path: image_path.to_owned(),
                reason: "a symlink target must be non-empty and contain no NUL",
            });
        }
        let content = Content::Symlink {
            target: target.as_bytes().to_vec(),
        };
        self.add_explicit(image_path, content, SYMLINK_MODE, self.owner)
    }

    /// Host paths found while walking trees that are neither files, directories nor symlinks
    /// (sockets, FIFOs, devices) and were left out of the layer.
    pub fn skipped(&self) -> &[PathBuf] {
        &self.skipped
    }

    /// Number of entries the layer will have.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the layer to `<blob_dir>/<hex digest>` (through a temp file in `blob_dir`, so a
    /// reader never sees a partial blob) and returns its digests.
    ///
    /// # Errors
    /// An entry below a non-directory, a file that vanished or changed while being read, or
    /// an I/O error writing the blob. No blob is left behind on error.
    pub fn finish(
        self,
        compression: Compression,
        blob_dir: &Path,
    ) -> Result<LayerBlob, ArchiveError> {
        self.check_parents()?;
        let write_err = |source| ArchiveError::Write {
            dir: blob_dir.to_path_buf(),
            source,
        };
        let (file, temp_path) = strata_engine::scratch::temp_file_in(blob_dir, ".layer-")
            .map_err(write_err)?
            .into_parts();
        let out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let sink = match compression {
            Compression::None => Sink::Plain(Counting::new(out)),
            Compression::Gzip => Sink::Gzip(Box::new(
                ParallelGz::new(HashingWriter::new(out), GZIP_LEVEL).map_err(write_err)?,
            )),
            Compression::Zstd => Sink::Zstd(Box::new(
                crate::zstdlayer::encoder(HashingWriter::new(out)).map_err(write_err)?,
            )),
        };
        let mut tar = tar::Builder::new(HashingWriter::new(sink));
        self.write_entries(&mut tar)?;
        let tar_stream = tar.into_inner().map_err(write_err)?;
        let (diff_hex, tar_len, sink) = tar_stream.into_parts();
        let (digest_hex, size, out) = match sink {
            Sink::Plain(counting) => {
                let (len, out) = counting.into_parts();
                debug_assert_eq!(len, tar_len);
                (diff_hex.clone(), len, out)
            }
            Sink::Gzip(encoder) => encoder.finish().map_err(write_err)?.into_parts(),
            Sink::Zstd(encoder) => encoder.finish().map_err(write_err)?.into_parts(),
        };
        let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        // Temp files are created 0600; blobs are meant to be shared like the rest of a layout.
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        drop(file);
        let path = blob_dir.join(&digest_hex);
        temp_path.persist(&path).map_err(|e| write_err(e.error))?;
        Ok(LayerBlob {
            diff_id: format!("sha256:{diff_hex}"),
            digest: format!("sha256:{digest_hex}"),
            size,
            media_type: media_type(compression),
            path,
        })
    }

    fn add_explicit(
        &mut self,
        image_path: &str,
        content: Content,
        mode: u32,
        owner: Owner,
    ) -> Result<(), ArchiveError> {
        check_image_path(image_path, false)?;
        self.add_parents(image_path);
        self.insert(
            image_path.as_bytes().to_vec(),
            Entry {
                content,
                mode: mode & 0o7777,
                owner,
                origin: Origin::Explicit,
            },
        );
        Ok(())
    }

    fn add_tree(
        &mut self,
        host_dir: &Path,
        image_path: &str,
        filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), ArchiveError> {
        check_image_path(image_path, true)?;
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ArchiveError::Read { path, source }
        };
        let root_meta = fs::metadata(host_dir).map_err(read_err(host_dir))?;
        if !root_meta.is_dir() {
            return Err(ArchiveError::NotADirectory {
                path: host_dir.to_path_buf(),
            });
        }

        // Walk the whole tree first: a filtered entry may need directories listed before it.
        let mut found: Vec<(PathBuf, Entry)> = Vec::new();
        let mut pending = vec![PathBuf::new()];
        while let Some(rel_dir) = pending.pop() {
            let dir = host_dir.join(&rel_dir);
            for dir_entry in fs::read_dir(&dir).map_err(read_err(&dir))? {
                let dir_entry = dir_entry.map_err(read_err(&dir))?;
                let host = dir_entry.path();
                let meta = fs::symlink_metadata(&host).map_err(read_err(&host))?;
                let rel = rel_dir.join(dir_entry.file_name());
                let file_type = meta.file_type();
                let content = if file_type.is_dir() {
                    pending.push(rel.clone());
                    Content::Dir
                } else if file_type.is_file() {
                    Content::File {
                        host,
                        dev: meta.dev(),
                        ino: meta.ino(),
                        nlink: meta.nlink(),
                    }
                } else if file_type.is_symlink() {
                    let target = fs::read_link(&host).map_err(read_err(&host))?;
                    Content::Symlink {
                        target: target.into_os_string().into_vec(),
                    }
                } else {
                    self.skipped.push(host);
                    continue;
                };
                let mode = if file_type.is_symlink() {
                    SYMLINK_MODE
                } else {
                    self.mode_policy.apply(meta.mode())
                };
                let entry = Entry {
                    content,
                    mode,
                    owner: self.owner,
                    origin: Origin::Tree,
                };
                found.push((rel, entry));
            }
        }

        let keep: Option<BTreeSet<PathBuf>> = filter.map(|filter| {
            let mut keep = BTreeSet::new();
            for (rel, _) in &found {
                if filter(rel) {
                    for ancestor in rel.ancestors() {
                        if ancestor.as_os_str().is_empty() || !keep.insert(ancestor.to_path_buf()) {
                            break;
                        }
                    }
                }
            }
            keep
        });

        if !image_path.is_empty() {
            self.add_parents(image_path);
            self.insert(
                image_path.as_bytes().to_vec(),
                Entry {
                    content: Content::Dir,
                    mode: self.mode_policy.apply(root_meta.mode()),
                    owner: self.owner,
                    origin: Origin::Tree,
                },
            );
        }
        for (rel, entry) in found {
            if keep.as_ref().is_some_and(|keep| !keep.contains(&rel)) {
                continue;
            }
            let rel = rel.as_os_str().as_bytes();
            let key = if image_path.is_empty() {
                rel.to_vec()
            } else {
                [image_path.as_bytes(), b"/", rel].concat()
            };
            self.insert(key, entry);
        }
        Ok(())
    }

    /// Adds the directories above `image_path` unless something already sits there.
    fn add_parents(&mut self, image_path: &str) {
        for (i, _) in image_path.match_indices('/') {
            self.entries
                .entry(image_path.as_bytes()[..i].to_vec())
                .or_insert(Entry {
                    content: Content::Dir,
                    mode: PARENT_DIR_MODE,
                    owner: self.owner,
                    origin: Origin::Parent,
                });
        }
    }

    fn insert(&mut self, key: Vec<u8>, entry: Entry) {
        match self.entries.get(&key) {
            Some(existing) if existing.origin > entry.origin => {}
            _ => {
                self.entries.insert(key, entry);
            }
        }
    }

    fn check_parents(&self) -> Result<(), ArchiveError> {
        for key in self.entries.keys() {
            let Some(slash) = key.iter().rposition(|&b| b == b'/') else {
                continue;
            };
            let parent = &key[..slash];
            if !matches!(
                self.entries.get(parent),
                Some(Entry {
                    content: Content::Dir,
                    ..
                })
            ) {
                return Err(ArchiveError::ParentNotDirectory {
                    path: String::from_utf8_lossy(key).into_owned(),
                    parent: String::from_utf8_lossy(parent).into_owned(),
                });
            }
        }
        Ok(())
    }

    fn write_entries<W: Write>(&self, tar: &mut tar::Builder<W>) -> Result<(), ArchiveError> {
        // (dev, inode) of a multiply-linked file -> the first path it was written under.
        let mut written_inodes: HashMap<(u64, u64), &[u8]> = HashMap::new();
        for (key, entry) in &self.entries {
            let path = Path::new(OsStr::from_bytes(key));
            let mut header = Header::new_ustar();
            header.set_mode(entry.mode);
            header.set_uid(u64::from(entry.owner.uid));
            header.set_gid(u64::from(entry.owner.gid));
            header.set_mtime(self.mtime);
            header.set_size(0);
            let entry_err = |source| ArchiveError::Entry {
                path: String::from_utf8_lossy(key).into_owned(),
                source,
            };
            match &entry.content {
                Content::Dir => {
                    header.set_entry_type(EntryType::Directory);
                    tar.append_data(&mut header, path, io::empty())
                        .map_err(entry_err)?;
                }
                Content::Bytes(bytes) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    tar.append_data(&mut header, path, bytes.as_slice())
                        .map_err(entry_err)?;
                }
                Content::Symlink { target } => {
                    header.set_entry_type(EntryType::Symlink);
                    append_link(tar, &mut header, path, target).map_err(entry_err)?;
                }
                Content::File {
                    host,
                    dev,
                    ino,
                    nlink,
                } => {
                    if *nlink > 1 {
                        if let Some(first) = written_inodes.get(&(*dev, *ino)) {
                            header.set_entry_type(EntryType::Link);
                            append_link(tar, &mut header, path, first).map_err(entry_err)?;
                            continue;
                        }
                        written_inodes.insert((*dev, *ino), key);
                    }
                    let read_err = |source| ArchiveError::Read {
                        path: host.clone(),
                        source,
                    };
                    // A buildpack made this file: opened without following a link or waiting
                    // on a FIFO that replaced it since the walk.
                    let file = match strata_engine::untrusted::open(host) {
                        Ok(file) => file,
                        Err(strata_engine::untrusted::UntrustedError::Io { source, .. }) => {
                            return Err(read_err(source));
                        }
                        Err(_) => {
                            return Err(ArchiveError::Changed {
                                path: host.clone(),
                                what: "it was replaced",
                            });
                        }
                    };
                    let meta = file.metadata().map_err(read_err)?;
                    if !meta.is_file() || meta.dev() != *dev || meta.ino() != *ino {
                        return Err(ArchiveError::Changed {
                            path: host.clone(),
                            what: "it was replaced",
                        });
                    }
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(meta.len());
                    let mut reader = ExactReader {
                        inner: file,
                        remaining: meta.len(),
                        changed: None,
                    };
                    let result = tar.append_data(&mut header, path, &mut reader);
                    if let Some(what) = reader.changed {
                        return Err(ArchiveError::Changed {
                            path: host.clone(),
                            what,
                        });
                    }
                    result.map_err(entry_err)?;
                }
            }
        }
        Ok(())
    }
}

/// Appends a symlink or hardlink entry whose target is stored byte for byte: the tar crate's
/// own link setter normalises the target as a path (dropping `./` and trailing `/`), which
/// would change what the link means.
fn append_link<W: Write>(
    tar: &mut tar::Builder<W>,
    header: &mut Header,
    path: &Path,
    target: &[u8],
) -> io::Result<()> {
    if target.len() > USTAR_LINKNAME_LEN {
        // GNU long link name: a `K` entry whose data is the NUL-terminated target.
        let mut long = Header::new_gnu();
        if let Some(gnu) = long.as_gnu_mut() {
            let name = b"././@LongLink";
            gnu.name[..name.len()].copy_from_slice(name);
        }
        long.set_mode(0o644);
        long.set_uid(0);
        long.set_gid(0);
        long.set_mtime(0);
        long.set_size(target.len() as u64 + 1);
        long.set_entry_type(EntryType::GNULongLink);
        long.set_cksum();
        tar.append(&long, target.chain(&[0u8][..]))?;
        header.set_link_name_literal(&target[..USTAR_LINKNAME_LEN])?;
    } else {
        header.set_link_name_literal(target)?;
    }
    tar.append_data(header, path, io::empty())
}

/// Checks that `path` is relative, has no empty, `.` or `..` components and no NUL.
fn check_image_path(path: &str, allow_empty: bool) -> Result<(), ArchiveError> {
    let invalid = |reason| {
        Err(ArchiveError::InvalidImagePath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            invalid("it is empty")
        };
    }
    if path.starts_with('/') {
        return invalid("it must be relative (no leading `/`)");
    }
    if path.contains('\0') {
        return invalid("it contains a NUL byte");
    }
    for component in path.split('/') {
        match component {
            "" => return invalid("it has an empty component (`//` or a trailing `/`)"),
            "." | ".." => return invalid("it has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`1980-01-01T00:00:01Z`), the form of
/// `created` in image configs and history.
pub fn format_timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01, by whole 400-year eras (146097
/// days each) counted from 0000-03-01, so that leap days fall at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Reads exactly the size written in the tar header, and notices a file that shrank or grew
/// since: either would corrupt the archive or silently cut the content.
struct ExactReader {
    inner: File,
    remaining: u64,
    changed: Option<&'static str>,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                self.changed = Some("it grew while being read");
                return Err(io::Error::other("file grew while being read"));
            }
            return Ok(0);
        }
        let max = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            self.changed = Some("it shrank while being read");
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Passes bytes through while counting them (an uncompressed blob's digest is its diffID).
struct Counting<W> {
    inner: W,
    len: u64,
}

impl<W> Counting<W> {
    fn new(inner: W) -> Self {
        Counting { inner, len: 0 }
    }

    fn into_parts(self) -> (u64, W) {
        (self.len, self.inner)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where the tar stream goes once it is hashed.
enum Sink {
    Plain(Counting<BufWriter<File>>),
    Gzip(Box<ParallelGz<HashingWriter<BufWriter<File>>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<File>>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
            Sink::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
            // A zstd flush ends a block where the caller happened to flush: the bytes would
            // then depend on the writes, so nothing is flushed before the frame ends.
            Sink::Zstd(_) => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};
    use std::fs::FileTimes;
    use std::time::{Duration, SystemTime};

    /// One entry read back from a layer blob.
    #[derive(Debug)]
    struct ReadEntry {
        path: Vec<u8>,
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        uname: Vec<u8>,
        gname: Vec<u8>,
        link: Option<Vec<u8>>,
        data: Vec<u8>,
    }

    fn tar_bytes(blob: &LayerBlob) -> Vec<u8> {
        let stored = fs::read(&blob.path).unwrap();
        if blob.media_type == MediaType::ImageLayerGzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(stored.as_slice())
                .read_to_end(&mut out)
                .unwrap();
            out
        } else if blob.media_type == MediaType::ImageLayerZstd {
            zstd::decode_all(stored.as_slice()).unwrap()
        } else {
            stored
        }
    }

    fn read_back(blob: &LayerBlob) -> Vec<ReadEntry> {
        let bytes = tar_bytes(blob);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push(ReadEntry {
                path: entry.path_bytes().into_owned(),
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                uname: header.username_bytes().unwrap().to_vec(),
                gname: header.groupname_bytes().unwrap().to_vec(),
                link: entry.link_name_bytes().map(std::borrow::Cow::into_owned),
                data,
            });
        }
        out
    }

    fn paths(entries: &[ReadEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8(e.path.clone()).unwrap())
            .collect()
    }

    fn find<'a>(entries: &'a [ReadEntry], path: &str) -> &'a ReadEntry {
        entries
            .iter()
            .find(|e| e.path == path.as_bytes())
            .unwrap_or_else(|| panic!("no entry {path} in {:?}", paths(entries)))
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Writes the same small tree under `root`, creating entries in the order given so two
    /// calls can produce different directory listing orders, and dating every file `time`.
    fn make_tree(root: &Path, reverse: bool, time: SystemTime) {
        let mut files = vec![
            ("bin/run", b"#!/bin/sh\necho hi\n".as_slice(), 0o755),
            ("lib/a.txt", b"aaa".as_slice(), 0o644),
            ("lib/b.txt", b"".as_slice(), 0o600),
            ("lib/z/deep.txt", b"deep".as_slice(), 0o644),
            ("env/PATH.append", b":/x".as_slice(), 0o644),
        ];
        if reverse {
            files.reverse();
        }
        for (path, data, mode) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, data).unwrap();
            set_mode(&path, mode);
            let times = FileTimes::new().set_accessed(time).set_modified(time);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_times(times)
                .unwrap();
        }
        std::os::unix::fs::symlink("../bin/run", root.join("lib/run-link")).unwrap();
        for dir in ["bin", "lib", "lib/z", "env"] {
            set_mode(&root.join(dir), 0o755);
        }
        set_mode(root, 0o755);
    }

    fn build(root: &Path, compression: Compression, blob_dir: &Path) -> LayerBlob {
        let mut layer = LayerBuilder::new(Owner::new(1000, 1001), DEFAULT_MTIME);
        layer
            .add_dir_tree(root, "layers/examples_runtime/runtime")
            .unwrap();
        layer.finish(compression, blob_dir).unwrap()
    }

    #[test]
    fn same_tree_in_different_places_and_times_gives_identical_blobs() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        make_tree(&one.path().join("src-one"), false, past);
        make_tree(
            &two.path().join("nested/other-name"),
            true,
            SystemTime::now(),
        );
        for compression in [Compression::None, Compression::Gzip] {
            let a = build(&one.path().join("src-one"), compression, one.path());
            let b = build(
                &two.path().join("nested/other-name"),
                compression,
                two.path(),
            );
            assert_eq!(a.diff_id, b.diff_id, "{compression}");
            assert_eq!(a.digest, b.digest, "{compression}");
            assert_eq!(a.size, b.size);
            assert_eq!(fs::read(&a.path).unwrap(), fs::read(&b.path).unwrap());
            assert_eq!(a.media_type, media_type(compression));
        }
    }

    #[test]
    fn entries_are_sorted_owned_dated_and_nameless() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        make_tree(&root, true, SystemTime::now());
        let blob = build(&root, Compression::None, dir.path());
        let entries = read_back(&blob);
        assert_eq!(
            paths(&entries),
            [
                "layers",
                "layers/examples_runtime",
                "layers/examples_runtime/runtime",
                "layers/examples_runtime/runtime/bin",
                "layers/examples_runtime/runtime/bin/run",
                "layers/examples_runtime/runtime/env",
                "layers/examples_runtime/runtime/env/PATH.append",
                "layers/examples_runtime/runtime/lib",
                "layers/examples_runtime/runtime/lib/a.txt",
                "layers/examples_runtime/runtime/lib/b.txt",
                "layers/examples_runtime/runtime/lib/run-link",
                "layers/examples_runtime/runtime/lib/z",
                "layers/examples_runtime/runtime/lib/z/deep.txt",
            ]
        );
        for entry in &entries {
            assert_eq!((entry.uid, entry.gid), (1000, 1001), "{entry:?}");
            assert_eq!(entry.mtime, DEFAULT_MTIME);
            assert!(
                entry.uname.is_empty() && entry.gname.is_empty(),
                "{entry:?}"
            );
        }
        assert_eq!(find(&entries, "layers").mode, PARENT_DIR_MODE);
        assert_eq!(find(&entries, "layers").kind, EntryType::Directory);
        let run = find(&entries, "layers/examples_runtime/runtime/bin/run");
        assert_eq!(run.mode, 0o755);
        assert_eq!(run.data, b"#!/bin/sh\necho hi\n");
        assert_eq!(
            find(&entries, "layers/examples_runtime/runtime/lib/b.txt").mode,
            0o600
        );
        let link = find(&entries, "layers/examples_runtime/runtime/lib/run-link");
        assert_eq!(link.kind, EntryType::Symlink);
        assert_eq!(link.link.as_deref(), Some(b"../bin/run".as_slice()));
        // The tar is a whole number of 512-byte blocks and ends in two zero blocks.
        let bytes = tar_bytes(&blob);
        assert_eq!(bytes.len() % 512, 0);
        assert!(bytes[bytes.len() - 1024..].iter().all(|&b| b == 0));
    }

    #[test]
    fn keeps_special_mode_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("suid"), b"x").unwrap();
        set_mode(&root.join("suid"), 0o4755);
        fs::create_dir(root.join("sticky")).unwrap();
        set_mode(&root.join("sticky"), 0o1777);
        let mut layer = LayerBuilder::new(Owner::ROOT, 1);
        layer.add_dir_tree(&root, "t").unwrap();
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        assert_eq!(find(&entries, "t/suid").mode, 0o4755);
        assert_eq!(find(&entries, "t/sticky").mode, 0o1777);
    }

    #[test]
    fn normalize_policy_ignores_group_and_other_bits() {
        assert_eq!(ModePolicy::Normalize.apply(0o100_664), 0o644);
        assert_eq!(ModePolicy::Normalize.apply(0o600), 0o644);
        assert_eq!(ModePolicy::Normalize.apply(0o700), 0o755);
        assert_eq!(ModePolicy::Normalize.apply(0o775), 0o755);
        assert_eq!(ModePolicy::Normalize.apply(0o4750), 0o4755);
        assert_eq!(ModePolicy::Normalize.apply(0o444), 0o444);
        assert_eq!(ModePolicy::Preserve.apply(0o100_664), 0o664);
    }

    #[test]
    fn hardlinks_are_stored_once_under_the_first_sorted_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("z-original"), b"shared content").unwrap();
        fs::hard_link(root.join("z-original"), root.join("a/link")).unwrap();
        fs::hard_link(root.join("z-original"), root.join("m")).unwrap();
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer.add_dir_tree(&root, "app").unwrap();
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        let first = find(&entries, "app/a/link");
        assert_eq!(first.kind, EntryType::Regular);
        assert_eq!(first.data, b"shared content");
        for later in ["app/m", "app/z-original"] {
            let entry = find(&entries, later);
            assert_eq!(entry.kind, EntryType::Link, "{later}");
            assert_eq!(entry.link.as_deref(), Some(b"app/a/link".as_slice()));
            assert!(entry.data.is_empty());
        }
    }

    #[test]
    fn hardlink_whose_first_path_is_replaced_falls_to_the_next_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("b"), b"linked").unwrap();
        fs::hard_link(root.join("b"), root.join("c")).unwrap();
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer.add_dir_tree(&root, "x").unwrap();
        layer.add_bytes("x/b", "explicit", 0o644).unwrap();
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        assert_eq!(find(&entries, "x/b").data, b"explicit");
        assert_eq!(find(&entries, "x/c").kind, EntryType::Regular);
        assert_eq!(find(&entries, "x/c").data, b"linked");
    }

    #[test]
    fn symlink_targets_are_kept_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir(&root).unwrap();
        let long_target = format!("../{}/file", "d".repeat(150));
        let exactly_100 = "e".repeat(100);
        let targets = [
            ("abs", "/usr/bin/env"),
            ("dotted", "./a/./b/"),
            ("dangling", "../../nowhere"),
            ("long", long_target.as_str()),
            ("hundred", exactly_100.as_str()),
        ];
        for (name, target) in targets {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        }
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer.add_dir_tree(&root, "s").unwrap();
        layer
            .add_symlink("cnb/process/web", "../lifecycle/launcher")
            .unwrap();
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        for (name, target) in targets {
            let entry = find(&entries, &format!("s/{name}"));
            assert_eq!(entry.kind, EntryType::Symlink);
            assert_eq!(entry.link.as_deref(), Some(target.as_bytes()), "{name}");
        }
        let web = find(&entries, "cnb/process/web");
        assert_eq!(
            web.link.as_deref(),
            Some(b"../lifecycle/launcher".as_slice())
        );
        assert_eq!(find(&entries, "cnb/process").kind, EntryType::Directory);
    }

    #[test]
    fn long_paths_round_trip_and_stay_deterministic() {
        let medium = format!("{}/{}", "m".repeat(90), "n".repeat(60)); // USTAR prefix + name
        let long = format!("{}/{}/f", "a".repeat(120), "b".repeat(200)); // needs GNU long name
        let mut blobs = Vec::new();
        for _ in 0..2 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("t");
            fs::create_dir_all(root.join(&medium)).unwrap();
            fs::create_dir_all(root.join(&long).parent().unwrap()).unwrap();
            fs::write(root.join(&long), b"long").unwrap();
            set_mode(&root.join(&long), 0o644);
            for d in [
                root.clone(),
                root.join(&medium),
                root.join(medium.split('/').next().unwrap()),
            ] {
                set_mode(&d, 0o755);
            }
            set_mode(&root.join("a".repeat(120)), 0o755);
            set_mode(root.join(&long).parent().unwrap(), 0o755);
            let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
            layer.add_dir_tree(&root, "w").unwrap();
            let blob = layer.finish(Compression::None, dir.path()).unwrap();
            let entries = read_back(&blob);
            assert_eq!(find(&entries, &format!("w/{long}")).data, b"long");
            find(&entries, &format!("w/{medium}"));
            blobs.push((blob.diff_id, fs::read(&blob.path).unwrap()));
            drop(dir);
        }
        assert_eq!(blobs[0], blobs[1]);
    }

    #[test]
    fn gzip_digest_is_of_the_stored_blob_and_diff_id_of_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        make_tree(&root, false, SystemTime::now());
        let gz = build(&root, Compression::Gzip, dir.path());
        let plain = build(&root, Compression::None, dir.path());
        let stored = fs::read(&gz.path).unwrap();
        assert_eq!(gz.digest, sha256_hex(&stored));
        assert_eq!(gz.size, stored.len() as u64);
        assert_eq!(gz.path, dir.path().join(&gz.digest["sha256:".len()..]));
        assert_eq!(gz.diff_id, sha256_hex(&tar_bytes(&gz)));
        assert_ne!(gz.digest, gz.diff_id);
        // The same entries give the same tar whatever the compression.
        assert_eq!(gz.diff_id, plain.diff_id);
        assert_eq!(plain.digest, plain.diff_id);
        assert_eq!(plain.digest, sha256_hex(&fs::read(&plain.path).unwrap()));
        // gzip header: no mtime (bytes 4..8) and no file name flag.
        assert_eq!(&stored[4..8], &[0, 0, 0, 0]);
        assert_eq!(stored[3] & 0x08, 0);
        assert_eq!(fs::metadata(&gz.path).unwrap().mode() & 0o777, 0o644);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn explicit_entries_win_and_duplicates_collapse() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/file"), b"from disk").unwrap();
        let mut layer = LayerBuilder::new(Owner::new(5, 6), DEFAULT_MTIME);
        layer.add_bytes("top/sub/file", "explicit", 0o640).unwrap();
        layer.add_dir_tree(&root, "top").unwrap();
        layer.add_dir("top/extra", 0o700).unwrap();
        layer.add_dir("top/extra", 0o750).unwrap();
        layer
            .add_dir_owned("top/root-owned", 0o755, Owner::ROOT)
            .unwrap();
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        let file = find(&entries, "top/sub/file");
        assert_eq!(
            (file.data.as_slice(), file.mode),
            (b"explicit".as_slice(), 0o640)
        );
        let extra: Vec<_> = entries.iter().filter(|e| e.path == b"top/extra").collect();
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].mode, 0o750);
        let owned = find(&entries, "top/root-owned");
        assert_eq!((owned.uid, owned.gid), (0, 0));
        assert_eq!(
            (find(&entries, "top").uid, find(&entries, "top").gid),
            (5, 6)
        );
    }

    #[test]
    fn filtered_tree_keeps_selected_paths_and_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        fs::create_dir_all(root.join("public/css")).unwrap();
        fs::create_dir_all(root.join("src")).unwrap();
        fs::write(root.join("public/css/site.css"), b"css").unwrap();
        fs::write(root.join("public/index.html"), b"html").unwrap();
        fs::write(root.join("src/main.rs"), b"rs").unwrap();
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer
            .add_dir_tree_filtered(&root, "workspace", &|p: &Path| {
                p.extension().is_some_and(|e| e == "css")
            })
            .unwrap();
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        assert_eq!(
            paths(&entries),
            [
                "workspace",
                "workspace/public",
                "workspace/public/css",
                "workspace/public/css/site.css"
            ]
        );
    }

    #[test]
    fn tree_at_root_and_skipped_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hostname"), b"h").unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer.add_dir_tree(&root, "").unwrap();
        assert_eq!(layer.skipped(), [root.join("sock")]);
        let entries = read_back(&layer.finish(Compression::None, dir.path()).unwrap());
        assert_eq!(paths(&entries), ["etc", "etc/hostname"]);
    }

    #[test]
    fn rejects_bad_paths_and_entries_below_files() {
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        for bad in ["/abs", "a//b", "a/", "./a", "a/../b", ""] {
            assert!(
                matches!(
                    layer.add_bytes(bad, "x", 0o644),
                    Err(ArchiveError::InvalidImagePath { .. })
                ),
                "{bad:?}"
            );
        }
        layer.add_bytes("a/b", "x", 0o644).unwrap();
        layer.add_bytes("a", "file now", 0o644).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = layer.finish(Compression::None, dir.path()).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::ParentNotDirectory { path, parent } if path == "a/b" && parent == "a"),
            "{err:?}"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no blob or temp file left"
        );

        let missing = LayerBuilder::new(Owner::ROOT, 0).add_dir_tree(&dir.path().join("nope"), "x");
        assert!(matches!(missing, Err(ArchiveError::Read { .. })));
        fs::write(dir.path().join("file"), b"").unwrap();
        let not_dir = LayerBuilder::new(Owner::ROOT, 0).add_dir_tree(&dir.path().join("file"), "x");
        assert!(matches!(not_dir, Err(ArchiveError::NotADirectory { .. })));
    }

    #[test]
    fn a_file_removed_before_finish_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("gone"), b"x").unwrap();
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer.add_dir_tree(&root, "t").unwrap();
        fs::remove_file(root.join("gone")).unwrap();
        let err = layer.finish(Compression::Gzip, dir.path()).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Read { path, .. } if path.ends_with("gone")),
            "{err:?}"
        );
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["tree"], "no blob or temp file left behind");
    }

    #[test]
    fn empty_layer_is_two_zero_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let blob = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME)
            .finish(Compression::None, dir.path())
            .unwrap();
        assert_eq!(blob.size, 1024);
        assert_eq!(blob.diff_id, sha256_hex(&[0u8; 1024]));
    }

    #[test]
    fn compression_parses_and_formats_timestamps() {
        assert_eq!("gzip".parse(), Ok(Compression::Gzip));
        assert_eq!("none".parse(), Ok(Compression::None));
        assert_eq!("zstd".parse(), Ok(Compression::Zstd));
        assert!("brotli".parse::<Compression>().is_err());
        assert_eq!(Compression::Zstd.to_string(), "zstd");
        assert_eq!(format_timestamp(DEFAULT_MTIME), "1980-01-01T00:00:01Z");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_timestamp(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn descriptor_matches_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
        layer.add_bytes("f", "x", 0o644).unwrap();
        let blob = layer.finish(Compression::Gzip, dir.path()).unwrap();
        let desc = blob.descriptor().unwrap();
        assert_eq!(desc.digest().to_string(), blob.digest);
        assert_eq!(desc.size(), blob.size);
        assert_eq!(desc.media_type(), &MediaType::ImageLayerGzip);
    }
}
