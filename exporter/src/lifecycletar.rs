//! A lifecycle release tarball, read as pack reads it for `[lifecycle] uri`.
//!
//! The lifecycle's releases (`lifecycle-v<version>+linux.<arch>.tgz`) hold `lifecycle.toml`
//! (its version and the Buildpack and Platform APIs it supports) and `lifecycle/<binary>`
//! (`detector`, `analyzer`, `restorer`, `builder`, `exporter`, `launcher`, `creator`, …,
//! several of them symlinks to one `lifecycle` binary). Pack copies every entry one directory
//! deep to `/cnb/lifecycle/<name>` and links `/lifecycle` to it; so does [`Lifecycle`], into a
//! layer of the one reproducible tar writer (owners root, times normalized, modes kept).
//!
//! The tarball may be gzipped or not. Entries are held in memory (a release is some tens of
//! megabytes); each is bounded so a hostile tarball cannot exhaust memory. Hardlinks, devices
//! and names that are not one plain component are refused: pack would copy a hardlink whose
//! target no longer exists.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use strata_planner::compare_versions;

use crate::archive::{ArchiveError, LayerBuilder};
use crate::builderlabels::{ApiSet, LIFECYCLE_DIR, LifecycleApi, LifecycleApis, LifecycleMetadata};

/// The binaries pack requires of a lifecycle (each may also be `<name>.exe`).
pub const REQUIRED_BINARIES: &[&str] = &[
    "detector", "restorer", "analyzer", "builder", "exporter", "launcher", "creator",
];

/// The most bytes one entry may have.
const MAX_ENTRY: u64 = 512 << 20;
/// The most bytes `lifecycle.toml` may have.
const MAX_DESCRIPTOR: u64 = 1 << 20;

/// A lifecycle read from its release tarball.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// What `io.buildpacks.builder.metadata` says of it.
    pub metadata: LifecycleMetadata,
    /// `/cnb/lifecycle/<name>` entries, in tarball order.
    entries: Vec<(String, Entry)>,
}

#[derive(Debug, Clone)]
enum Entry {
    File { bytes: Vec<u8>, mode: u32 },
    Symlink(String),
    Dir(u32),
}

/// Why a lifecycle tarball cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The tarball could not be read or is not a tar.
    #[error("cannot read lifecycle tarball {}", path.display())]
    Read {
        /// The tarball.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Something in it is not a lifecycle as pack writes them.
    #[error("lifecycle tarball {}: {message}", path.display())]
    Invalid {
        /// The tarball.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Lifecycle {
    /// Reads the tarball at `path` (gzipped or not).
    ///
    /// # Errors
    /// [`LifecycleError::Read`] for an unreadable file or tar, [`LifecycleError::Invalid`] for
    /// a missing or bad `lifecycle.toml`, a missing binary, or an entry strata will not copy.
    pub fn open(path: &Path) -> Result<Lifecycle, LifecycleError> {
        let read_err = |source| LifecycleError::Read {
            path: path.to_owned(),
            source,
        };
        let invalid = |message: String| LifecycleError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut file = BufReader::new(std::fs::File::open(path).map_err(read_err)?);
        let mut magic = [0u8; 2];
        let gzipped = {
            let buf = io::BufRead::fill_buf(&mut file).map_err(read_err)?;
            if buf.len() >= 2 {
                magic.copy_from_slice(&buf[..2]);
            }
            magic == [0x1f, 0x8b]
        };
        let reader: Box<dyn Read> = if gzipped {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut archive = tar::Archive::new(reader);
        let mut descriptor = None;
        let mut entries = Vec::new();
        for entry in archive.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean(&raw_name);
            let kind = entry.header().entry_type();
            if name == "lifecycle.toml" && kind.is_file() {
                let mut text = String::new();
                (&mut entry)
                    .take(MAX_DESCRIPTOR)
                    .read_to_string(&mut text)
                    .map_err(read_err)?;
                descriptor = Some(text);
                continue;
            }
            // Pack's rule: exactly one directory, then one name.
            let Some((_, binary)) = name
                .split_once('/')
                .filter(|(d, b)| !d.is_empty() && !b.is_empty() && !b.contains('/'))
            else {
                continue;
            };
            if binary == "." || binary == ".." {
                return Err(invalid(format!("entry `{raw_name}` has no usable name")));
            }
            let mode = entry.header().mode().map_err(read_err)? & 0o7777;
            let content = if kind.is_file() {
                if entry.size() > MAX_ENTRY {
                    return Err(invalid(format!(
                        "entry `{raw_name}` is larger than {MAX_ENTRY} bytes"
                    )));
                }
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_ENTRY)
                    .read_to_end(&mut bytes)
                    .map_err(read_err)?;
                Entry::File { bytes, mode }
            } else if kind.is_symlink() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| invalid(format!("symlink `{raw_name}` has no target")))?;
                Entry::Symlink(target)
            } else if kind.is_dir() {
                Entry::Dir(mode)
            } else {
                return Err(invalid(format!(
                    "entry `{raw_name}` is a {kind:?} entry; strata copies only files, \
                     directories and symlinks"
                )));
            };
            entries.push((binary.to_owned(), content));
        }
        let Some(text) = descriptor else {
            return Err(invalid("it has no lifecycle.toml".to_owned()));
        };
        let metadata = parse_descriptor(&text).map_err(invalid)?;
        for binary in REQUIRED_BINARIES {
            let exe = format!("{binary}.exe");
            if !entries.iter().any(|(n, _)| n == binary || *n == exe) {
                return Err(invalid(format!("it has no `{binary}`")));
            }
        }
        Ok(Lifecycle { metadata, entries })
    }

    /// Adds `/cnb/lifecycle/` with every binary, and the `/lifecycle` link to it that pack
    /// writes for older platforms.
    ///
    /// # Errors
    /// An [`ArchiveError`] for an entry the layer cannot hold.
    pub fn add_to(&self, layer: &mut LayerBuilder) -> Result<(), ArchiveError> {
        let dir = LIFECYCLE_DIR.trim_start_matches('/');
        layer.add_dir(dir, 0o755)?;
        for (name, entry) in &self.entries {
            let path = format!("{dir}/{name}");
            match entry {
                Entry::File { bytes, mode } => layer.add_bytes(&path, bytes.clone(), *mode)?,
                Entry::Symlink(target) => layer.add_symlink(&path, target)?,
                Entry::Dir(mode) => layer.add_dir(&path, *mode)?,
            }
        }
        layer.add_symlink("lifecycle", LIFECYCLE_DIR)
    }
}

/// The path of a tar entry without `./` in front or `/` behind.
fn clean(name: &str) -> String {
    let mut name = name.trim_end_matches('/');
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name.trim_start_matches('/').to_owned()
}

/// `lifecycle.toml`, with pack's compatibility rule between the deprecated single APIs and the
/// lists: the single API is the earliest of a list, and a list is the single API when only
/// that is given.
fn parse_descriptor(text: &str) -> Result<LifecycleMetadata, String> {
    #[derive(serde::Deserialize, Default)]
    struct Raw {
        #[serde(default)]
        lifecycle: RawInfo,
        #[serde(default)]
        api: LifecycleApi,
        #[serde(default)]
        apis: LifecycleApis,
    }
    #[derive(serde::Deserialize, Default)]
    struct RawInfo {
        version: Option<String>,
    }
    let raw: Raw = toml::from_str(text).map_err(|e| format!("lifecycle.toml: {}", e.message()))?;
    let version = raw
        .lifecycle
        .version
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "lifecycle.toml has no `[lifecycle] version`".to_owned())?;
    let mut metadata = LifecycleMetadata {
        version,
        api: raw.api,
        apis: raw.apis,
    };
    let earliest = |set: &ApiSet| {
        set.deprecated
            .iter()
            .chain(&set.supported)
            .min_by(|a, b| compare_versions(a, b))
            .cloned()
            .unwrap_or_default()
    };
    let apis = &metadata.apis;
    if !apis.buildpack.supported.is_empty() || !apis.platform.supported.is_empty() {
        if !apis.buildpack.supported.is_empty() {
            metadata.api.buildpack = earliest(&apis.buildpack);
        }
        if !metadata.apis.platform.supported.is_empty() {
            metadata.api.platform = earliest(&metadata.apis.platform);
        }
    } else if !metadata.api.buildpack.is_empty() && !metadata.api.platform.is_empty() {
        metadata.apis.buildpack.supported = vec![metadata.api.buildpack.clone()];
        metadata.apis.platform.supported = vec![metadata.api.platform.clone()];
    }
    Ok(metadata)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A lifecycle tarball as the releases are: `lifecycle.toml` and `lifecycle/<binary>`.
    pub(crate) fn write_tarball(path: &Path, descriptor: &str, binaries: &[&str]) {
        let file = std::fs::File::create(path).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut add = |name: &str, bytes: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_uid(1001);
            header.set_mtime(1_700_000_000);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, bytes).unwrap();
        };
        add("lifecycle.toml", descriptor.as_bytes(), 0o644);
        for binary in binaries {
            add(&format!("lifecycle/{binary}"), b"#!/bin/sh\n", 0o755);
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    const DESCRIPTOR: &str = "[apis]\n[apis.buildpack]\ndeprecated = []\n\
        supported = [\"0.10\", \"0.7\", \"0.9\"]\n[apis.platform]\ndeprecated = [\"0.3\"]\n\
        supported = [\"0.13\"]\n[lifecycle]\nversion = \"0.20.0\"\n";

    #[test]
    fn reads_the_descriptor_and_the_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lifecycle.tgz");
        write_tarball(&path, DESCRIPTOR, REQUIRED_BINARIES);
        let lifecycle = Lifecycle::open(&path).unwrap();
        assert_eq!(lifecycle.metadata.version, "0.20.0");
        assert_eq!(lifecycle.metadata.api.buildpack, "0.7");
        assert_eq!(lifecycle.metadata.api.platform, "0.3");
        assert_eq!(lifecycle.entries.len(), REQUIRED_BINARIES.len());
    }

    #[test]
    fn fills_the_lists_from_the_deprecated_apis() {
        let metadata = parse_descriptor(
            "[api]\nbuildpack = \"0.2\"\nplatform = \"0.3\"\n[lifecycle]\nversion = \"0.9.0\"\n",
        )
        .unwrap();
        assert_eq!(metadata.apis.buildpack.supported, ["0.2"]);
        assert_eq!(metadata.apis.platform.supported, ["0.3"]);
    }

    #[test]
    fn refuses_a_tarball_without_a_binary_or_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.tgz");
        write_tarball(&path, DESCRIPTOR, &REQUIRED_BINARIES[1..]);
        let err = Lifecycle::open(&path).unwrap_err().to_string();
        assert!(err.contains("has no `detector`"), "{err}");
        write_tarball(&path, "[lifecycle]\n", REQUIRED_BINARIES);
        let err = Lifecycle::open(&path).unwrap_err().to_string();
        assert!(err.contains("no `[lifecycle] version`"), "{err}");
    }
}
