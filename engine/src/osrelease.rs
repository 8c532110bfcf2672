//! The distribution of a build root, from its os-release file.
//!
//! When the run image names no distribution (no `io.buildpacks.base.distro.*` labels), the
//! lifecycle takes `CNB_TARGET_DISTRO_NAME`/`_VERSION` from the build image's os-release: its
//! `ID` and `VERSION_ID`. [`distro`] reads them from the root the sandbox runs processes in,
//! given as a directory: `/` while that root is the host's system directories, a build image's
//! unpacked rootfs otherwise. As os-release(5) says, `etc/os-release` is read if it exists,
//! else `usr/lib/os-release`; `etc/os-release` is commonly a link to the other, so links are
//! followed, but resolved inside the root (an absolute link target names a path in the root,
//! `..` stops at it), never onto the host's files.
//!
//! [`parse`] reads the file as os-release(5) defines it, a list of shell variable assignments:
//! `NAME=value` lines, blank lines and `#` comments; a value is unquoted, `"double quoted"`
//! (where `\"`, `\\`, `\$` and `` \` `` are escapes) or `'single quoted'`. Anything a shell
//! would read differently (an unquoted `;` or `$`, text after a closing quote, a quote left
//! open) is a [`SyntaxError`] naming the line, never a guess.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::untrusted::{self, UntrustedError};

/// Where os-release(5) puts the file, relative to the root, in the order it is looked for.
pub const OS_RELEASE_PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// The most strata reads of an os-release file: real ones are well under a kilobyte.
const LIMIT: u64 = 64 << 10;

/// How many symlinks a path may go through, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// A distribution as os-release names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    /// `ID`, e.g. `ubuntu`.
    pub name: Option<String>,
    /// `VERSION_ID`, e.g. `24.04`.
    pub version: Option<String>,
}

/// A line of an os-release file that is not a valid assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Why a build root's os-release could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OsReleaseError {
    /// The file is not a valid os-release file.
    #[error("{}: {source}", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: SyntaxError,
    },
    /// The file could not be read: not a regular file, too large, not UTF-8, or an I/O error.
    #[error("cannot read the build root's os-release")]
    Read(#[source] UntrustedError),
    /// A path in the root could not be resolved: a link loop, or an I/O error on the way.
    #[error("cannot resolve {} in the build root {}: {message}", path.display(), root.display())]
    Resolve {
        root: PathBuf,
        path: PathBuf,
        message: String,
    },
}

/// The distribution of the build root `root`: `ID` and `VERSION_ID` of its os-release
/// (empty values count as absent). A root with no os-release has no known distribution.
///
/// # Errors
///
/// [`OsReleaseError::Syntax`] naming the file and line of a malformed file;
/// [`OsReleaseError::Read`] or [`OsReleaseError::Resolve`] when it cannot be read.
pub fn distro(root: &Path) -> Result<Distro, OsReleaseError> {
    for rel in OS_RELEASE_PATHS {
        let Some(path) = resolve_in_root(root, Path::new(rel))? else {
            continue;
        };
        let text = untrusted::read_to_string(&path, LIMIT).map_err(OsReleaseError::Read)?;
        let mut vars = parse(&text).map_err(|source| OsReleaseError::Syntax {
            path: path.clone(),
            source,
        })?;
        let mut take = |name: &str| vars.remove(name).filter(|v| !v.is_empty());
        return Ok(Distro {
            name: take("ID"),
            version: take("VERSION_ID"),
        });
    }
    Ok(Distro::default())
}

/// The host path of `rel` inside `root`, with every symlink on the way resolved as if `root`
/// were `/`; `None` when nothing is there.
fn resolve_in_root(root: &Path, rel: &Path) -> Result<Option<PathBuf>, OsReleaseError> {
    let fail = |message: String| OsReleaseError::Resolve {
        root: root.to_owned(),
        path: rel.to_owned(),
        message,
    };
    // What is still to walk, last component first; `resolved` holds the walked components.
    let mut pending: Vec<PathBuf> = components(rel);
    pending.reverse();
    let mut resolved: Vec<PathBuf> = Vec::new();
    let mut links = 0;
    while let Some(next) = pending.pop() {
        if next.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let host = resolved
            .iter()
            .fold(root.to_owned(), |p, c| p.join(c))
            .join(&next);
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(format!("{}: {e}", host.display()))),
        };
        if !meta.file_type().is_symlink() {
            resolved.push(next);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(fail(format!("more than {MAX_LINKS} symlinks")));
        }
        let target =
            std::fs::read_link(&host).map_err(|e| fail(format!("{}: {e}", host.display())))?;
        if target.is_absolute() {
            resolved.clear();
        }
        pending.extend(components(&target).into_iter().rev());
    }
    Ok(Some(
        resolved.iter().fold(root.to_owned(), |p, c| p.join(c)),
    ))
}

/// The normal and `..` components of `path`, as paths; `/` and `.` name nothing to walk.
fn components(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(PathBuf::from(name)),
            Component::ParentDir => Some(PathBuf::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The variables an os-release file assigns; a later assignment of a name wins, as in a shell.
///
/// # Errors
///
/// A [`SyntaxError`] for the first line that is not blank, a comment or an assignment.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, SyntaxError> {
    let mut vars = BTreeMap::new();
    for (index, line) in text.split('\n').enumerate() {
        let error = |message: String| SyntaxError {
            line: index + 1,
            message,
        };
        let line = line.trim_start_matches([' ', '\t']);
        if is_blank(line) || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(error("expected NAME=value".to_owned()));
        };
        if !valid_name(name) {
            return Err(error(format!(
                "`{}` is not a variable name",
                name.escape_debug()
            )));
        }
        let value = parse_value(value).map_err(error)?;
        vars.insert(name.to_owned(), value);
    }
    Ok(vars)
}

/// Whether `line` holds nothing but whitespace (a `\r` of a CRLF file included).
fn is_blank(line: &str) -> bool {
    line.chars().all(|c| matches!(c, ' ' | '\t' | '\r'))
}

/// A shell variable name: a letter or `_`, then letters, digits and `_`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of an assignment, after the `=`: quoted and unquoted parts up to unquoted
/// whitespace, then at most a comment.
fn parse_value(text: &str) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    None => return Err("a double quote is not closed".to_owned()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => value.push(e),
                        Some(other) => {
                            value.push('\\');
                            value.push(printable(other)?);
                        }
                        None => return Err("a double quote is not closed".to_owned()),
                    },
                    Some(other) => value.push(printable(other)?),
                }
            },
            '\'' => loop {
                match chars.next() {
                    None => return Err("a single quote is not closed".to_owned()),
                    Some('\'') => break,
                    Some(other) => value.push(printable(other)?),
                }
            },
            '\\' => match chars.next() {
                Some(e) => value.push(printable(e)?),
                None => return Err("a line continuation is not allowed".to_owned()),
            },
            ' ' | '\t' | '\r' => {
                let rest = chars.as_str().trim_start_matches([' ', '\t', '\r']);
                if rest.is_empty() || rest.starts_with('#') {
                    break;
                }
                return Err(format!(
                    "unquoted whitespace before `{}`: quote the value",
                    rest.escape_debug()
                ));
            }
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '$' | '`' => {
                return Err(format!("unquoted `{c}`: quote the value"));
            }
            other => value.push(printable(other)?),
        }
    }
    Ok(value)
}

/// `c`, unless it is a control character, which os-release values must not hold.
fn printable(c: char) -> Result<char, String> {
    if c.is_control() && c != '\t' {
        Err(format!("control character {c:?} in a value"))
    } else {
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap().into_iter().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn reads_real_files() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                      VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\n\
                      ID=debian\nHOME_URL=\"https://www.debian.org/\"\n";
        let got = parse(debian).unwrap();
        assert_eq!(got["ID"], "debian");
        assert_eq!(got["VERSION_ID"], "12");
        assert_eq!(got["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        let ubuntu =
            "# comment\n\nNAME=\"Ubuntu\"\nVERSION_ID='24.04'\nID=ubuntu\nID_LIKE=debian\n";
        let got = parse(ubuntu).unwrap();
        assert_eq!(
            (got["ID"].as_str(), got["VERSION_ID"].as_str()),
            ("ubuntu", "24.04")
        );
    }

    #[test]
    fn quotes_escapes_and_comments_follow_the_shell() {
        assert_eq!(
            vars(concat!(
                "  # indented comment\n",
                "A=\"say \\\"hi\\\" \\\\ \\$HOME \\`x\\` \\n\"\n",
                "B='single \"as is\" \\n'\n",
                "C=plain\\ escaped\n",
                "D=\"\"\n",
                "E=glued\"to\"'gether'\n",
                "F=value   # trailing comment\n",
                "G=\"crlf\"\r\n",
                "A=\"later wins\"\n",
                "\t\n",
            )),
            pairs(&[
                ("A", "later wins"),
                ("B", "single \"as is\" \\n"),
                ("C", "plain escaped"),
                ("D", ""),
                ("E", "gluedtogether"),
                ("F", "value"),
                ("G", "crlf"),
            ])
        );
        assert_eq!(
            vars("A=\"say \\\"hi\\\" \\\\ \\$HOME \\`x\\` \\n\"")[0].1,
            "say \"hi\" \\ $HOME `x` \\n"
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        for (text, line, message) in [
            ("ID=debian\nnot an assignment\n", 2, "expected NAME=value"),
            ("ID=\"debian\n", 1, "a double quote is not closed"),
            ("\nID='debian\n", 2, "a single quote is not closed"),
            ("1ID=x\n", 1, "`1ID` is not a variable name"),
            ("I D=x\n", 1, "`I D` is not a variable name"),
            ("=x\n", 1, "`` is not a variable name"),
            (
                "ID=two words\n",
                1,
                "unquoted whitespace before `words`: quote the value",
            ),
            (
                "ID=\"a\" b\n",
                1,
                "unquoted whitespace before `b`: quote the value",
            ),
            ("ID=a;rm\n", 1, "unquoted `;`: quote the value"),
            ("ID=$(x)\n", 1, "unquoted `$`: quote the value"),
            ("ID=a\\\n", 1, "a line continuation is not allowed"),
            ("ID=\"a\u{0}b\"\n", 1, "control character '\\0' in a value"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(
                (err.line, err.message.as_str()),
                (line, message),
                "{text:?}"
            );
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn etc_wins_over_usr_lib_and_links_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(distro(root).unwrap(), Distro::default(), "no os-release");

        write(
            root,
            "usr/lib/os-release",
            "ID=ubuntu\nVERSION_ID=\"24.04\"\n",
        );
        let noble = Distro {
            name: Some("ubuntu".to_owned()),
            version: Some("24.04".to_owned()),
        };
        assert_eq!(distro(root).unwrap(), noble, "the fallback");

        // Debian's relative link, and an absolute one, which names the root's file.
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
        assert_eq!(distro(root).unwrap(), noble);
        std::fs::remove_file(root.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        assert_eq!(
            distro(root).unwrap(),
            noble,
            "not the host's /usr/lib/os-release"
        );
        std::fs::remove_file(root.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../../../usr/lib/os-release",
            root.join("etc/os-release"),
        )
        .unwrap();
        assert_eq!(distro(root).unwrap(), noble, "`..` stops at the root");

        // An /etc/os-release of its own is used alone, even without a VERSION_ID.
        std::fs::remove_file(root.join("etc/os-release")).unwrap();
        write(root, "etc/os-release", "ID=alpine\nVERSION_ID=\n");
        assert_eq!(
            distro(root).unwrap(),
            Distro {
                name: Some("alpine".to_owned()),
                version: None,
            }
        );
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "etc/os-release", "ID=debian\nVERSION_ID=\"12\n");
        let err = distro(root).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: line 2: a double quote is not closed",
                root.join("etc/os-release").display()
            )
        );

        std::fs::remove_file(root.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink("os-release", root.join("etc/os-release")).unwrap();
        let err = distro(root).unwrap_err();
        assert!(matches!(err, OsReleaseError::Resolve { .. }), "{err:?}");
        assert!(err.to_string().contains("more than 40 symlinks"), "{err}");

        std::fs::remove_file(root.join("etc/os-release")).unwrap();
        std::fs::create_dir(root.join("etc/os-release")).unwrap();
        let err = distro(root).unwrap_err();
        assert!(
            matches!(err, OsReleaseError::Read(UntrustedError::NotAFile { .. })),
            "{err:?}"
        );

        std::fs::remove_dir(root.join("etc/os-release")).unwrap();
        std::fs::write(root.join("etc/os-release"), [b'I', b'D', b'=', 0xff]).unwrap();
        let err = distro(root).unwrap_err();
        assert!(matches!(err, OsReleaseError::Read(_)), "{err:?}");
    }

    #[test]
    fn the_hosts_root_has_a_distro() {
        // The sandbox's root today: every Linux distribution strata runs on ships os-release.
        let host = distro(Path::new("/")).unwrap();
        assert!(host.name.is_some(), "{host:?}");
    }
}
