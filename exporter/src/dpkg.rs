//! The packages of a Debian-based run image, for its SBOM: `/var/lib/dpkg/status` (name,
//! version, architecture, source of each installed package) and the licenses that
//! machine-readable (DEP-5) `/usr/share/doc/<package>/copyright` files name.
//!
//! Everything is read from the image's layer tars in one pass (see
//! [`crate::imagefile::read_image_files`]): no tree is unpacked, no symlink is followed (a
//! copyright file that is a link, as `/usr/share/doc/<package>` often is for `-dev`
//! packages, gives no license), and every file is bounded. An image without a dpkg database
//! (busybox, distroless static) has no packages; that is not an error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path};

use crate::imagefile::{ImageFileError, read_image_files};
use crate::runimage::RunImage;
use crate::sbomdoc::Package;

/// Where dpkg keeps its database of installed packages.
pub const STATUS_PATH: &str = "var/lib/dpkg/status";
/// The largest status file read (Debian's with thousands of packages is a few MB).
pub const STATUS_LIMIT: u64 = 64 << 20;
/// The largest copyright file read; a larger one gives no license.
pub const COPYRIGHT_LIMIT: u64 = 1 << 20;
/// The most read of an image in all (a Debian image's copyright files are a few MB); files
/// past it are left out.
pub const TOTAL_LIMIT: u64 = 256 << 20;
/// Where the distribution is named (`ID=debian`), for the purl namespace.
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
/// The largest os-release file read.
const OS_RELEASE_LIMIT: u64 = 64 << 10;

/// One installed package of a dpkg status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgPackage {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: String,
    /// `Architecture`.
    pub arch: String,
    /// `Source`'s package name, when it names one.
    pub source: Option<String>,
}

/// The paragraphs of a deb822 file: each a map of field name (lowercased) to value, with
/// continuation lines joined by newlines.
fn paragraphs(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut all = Vec::new();
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|k| current.get_mut(k)) {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if line.starts_with('#') {
            // A comment (allowed in DEP-5 files).
        } else if let Some((key, value)) = line.split_once(':') {
            let key = key.trim().to_ascii_lowercase();
            current.insert(key.clone(), value.trim().to_owned());
            last = Some(key);
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// The installed packages of a dpkg status file, by name and architecture. Paragraphs that
/// are not installed (`Status: deinstall ok config-files`) or lack a name or version are
/// left out.
pub fn parse_status(text: &str) -> Vec<DpkgPackage> {
    let mut packages: Vec<DpkgPackage> = paragraphs(text)
        .into_iter()
        .filter(|p| {
            p.get("status")
                .is_some_and(|s| s.split_whitespace().last() == Some("installed"))
        })
        .filter_map(|p| {
            Some(DpkgPackage {
                name: p.get("package").filter(|n| !n.is_empty())?.clone(),
                version: p.get("version").filter(|v| !v.is_empty())?.clone(),
                arch: p.get("architecture").cloned().unwrap_or_default(),
                source: p
                    .get("source")
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_owned),
            })
        })
        .collect();
    packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    packages
}

/// The license names a machine-readable (DEP-5) copyright file gives in its `License:`
/// fields (the first line of each, the short name), sorted and distinct; `None` for a file
/// that is not machine-readable.
pub fn dep5_licenses(text: &str) -> Option<Vec<String>> {
    let all = paragraphs(text);
    let header = all.first()?;
    if !header
        .get("format")
        .is_some_and(|f| f.contains("copyright-format") || f.contains("dep5"))
    {
        return None;
    }
    let mut names: Vec<String> = all
        .iter()
        .filter_map(|p| p.get("license"))
        .filter_map(|l| l.lines().next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

/// A package URL string component: what purl leaves as it is, else percent-encoded.
fn purl_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~+".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The package URL of a Debian package: `pkg:deb/<distro>/<name>@<version>?arch=<arch>`.
pub fn purl(distro: &str, package: &DpkgPackage) -> String {
    let mut purl = format!(
        "pkg:deb/{}/{}@{}",
        purl_encode(distro),
        purl_encode(&package.name),
        purl_encode(&package.version)
    );
    if !package.arch.is_empty() {
        let _ = write!(purl, "?arch={}", purl_encode(&package.arch));
    }
    purl
}

/// The distribution `ID` of an os-release file, if it is a plain lowercase name.
fn os_release_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .filter(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

/// Whether `path` is `usr/share/doc/<one name>/copyright`.
fn is_copyright(path: &Path) -> bool {
    let parts: Vec<Component<'_>> = path.components().collect();
    parts.len() == 5
        && path.starts_with("usr/share/doc")
        && path.file_name().is_some_and(|n| n == "copyright")
}

/// The packages installed in `image`, with their licenses where machine-readable; none for
/// an image without a dpkg status.
///
/// # Errors
/// A layer cannot be read (see [`ImageFileError`]).
pub fn image_packages(image: &RunImage) -> Result<Vec<Package>, ImageFileError> {
    let wanted = |path: &Path| {
        if path == Path::new(STATUS_PATH) {
            Some(STATUS_LIMIT)
        } else if OS_RELEASE.iter().any(|o| path == Path::new(o)) {
            Some(OS_RELEASE_LIMIT)
        } else {
            is_copyright(path).then_some(COPYRIGHT_LIMIT)
        }
    };
    let files = read_image_files(image, &wanted, TOTAL_LIMIT)?;
    let Some(status) = files.get(Path::new(STATUS_PATH)) else {
        return Ok(Vec::new());
    };
    let distro = OS_RELEASE
        .iter()
        .filter_map(|o| files.get(Path::new(o)))
        .find_map(|bytes| os_release_id(&String::from_utf8_lossy(bytes)))
        .unwrap_or_else(|| "debian".to_owned());
    let packages = parse_status(&String::from_utf8_lossy(status));
    Ok(packages
        .into_iter()
        .map(|p| {
            let copyright = Path::new("usr/share/doc").join(&p.name).join("copyright");
            let licenses = files
                .get(&copyright)
                .and_then(|bytes| dep5_licenses(&String::from_utf8_lossy(bytes)))
                .unwrap_or_default();
            Package {
                purl: Some(purl(&distro, &p)),
                name: p.name,
                version: Some(p.version),
                licenses,
                arch: Some(p.arch).filter(|a| !a.is_empty()),
                source: p.source,
            }
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 1:2024a-0+deb12u1
";

    #[test]
    fn installed_packages_with_version_arch_and_source() {
        let packages = parse_status(STATUS);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "libc6", "tzdata"]);
        assert_eq!(packages[1].source.as_deref(), Some("glibc"));
        assert_eq!(packages[0].source, None);
        assert_eq!(
            purl("debian", &packages[0]),
            "pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64"
        );
        assert_eq!(
            purl("debian", &packages[2]),
            "pkg:deb/debian/tzdata@1%3A2024a-0+deb12u1?arch=all"
        );
    }

    #[test]
    fn licenses_only_from_machine_readable_copyright() {
        let dep5 = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib

Files: *
Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
License: Zlib

Files: debian/*
License: GPL-2+
 This program is free software.

License: Zlib
 The full text.
";
        assert_eq!(
            dep5_licenses(dep5),
            Some(vec!["GPL-2+".to_owned(), "Zlib".to_owned()])
        );
        assert_eq!(
            dep5_licenses("This is zlib, by Jean-loup Gailly.\nLicense: zlib\n"),
            None
        );
        assert_eq!(
            os_release_id("NAME=\"Debian\"\nID=debian\n").as_deref(),
            Some("debian")
        );
        assert!(is_copyright(Path::new("usr/share/doc/zlib1g/copyright")));
        assert!(!is_copyright(Path::new("usr/share/doc/zlib1g/x/copyright")));
    }
}
