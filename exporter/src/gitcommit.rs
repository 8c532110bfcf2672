//! The git commit an app directory is checked out at, for provenance, read from the
//! repository's files without running git (an app repository is untrusted input, and its
//! `.git/config` may name programs git would run).
//!
//! The nearest ancestor with a `.git` directory is the checkout. `.git` itself, `HEAD`, the
//! loose ref and `packed-refs` must be what they say, a real directory and regular files:
//! no symlink is followed (one could lead out of the checkout), and a `.git` *file* (a linked
//! worktree or submodule, pointing elsewhere) gives no commit. `HEAD` is a commit id
//! (detached) or `ref: refs/...`; the ref is looked up as a loose file, then in
//! `packed-refs`. A ref name with `..`, an empty component or a character git does not allow
//! in refs is not looked up. Anything unexpected means "no commit", never an error: the
//! commit is extra information.

use std::fs::{self, File};
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// The largest `HEAD` or loose ref read.
const MAX_REF_FILE: u64 = 4 << 10;

/// The largest `packed-refs` read.
const MAX_PACKED_REFS: u64 = 16 << 20;

/// The commit id (40 or 64 hex digits) `dir` is checked out at, if it is in a git checkout.
pub fn git_commit(dir: &Path) -> Option<String> {
    let git = dir
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| fs::symlink_metadata(g).is_ok())?;
    if !fs::symlink_metadata(&git).ok()?.is_dir() {
        return None;
    }
    let head = read_regular(&git.join("HEAD"), MAX_REF_FILE)?;
    let head = head.trim();
    if let Some(name) = head.strip_prefix("ref:") {
        resolve_ref(&git, name.trim())
    } else {
        is_commit_id(head).then(|| head.to_owned())
    }
}

fn resolve_ref(git: &Path, name: &str) -> Option<String> {
    if !valid_ref(name) {
        return None;
    }
    // Each directory on the way must be a real directory, not a link out.
    let mut at = git.to_path_buf();
    let components: Vec<&str> = name.split('/').collect();
    let (file, dirs) = components.split_last()?;
    let mut loose = true;
    for component in dirs {
        at.push(component);
        if !fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
            loose = false;
            break;
        }
    }
    if loose {
        at.push(file);
        if let Some(text) = read_regular(&at, MAX_REF_FILE) {
            let id = text.trim();
            return is_commit_id(id).then(|| id.to_owned());
        }
    }
    let packed = read_regular(&git.join("packed-refs"), MAX_PACKED_REFS)?;
    packed.lines().find_map(|line| {
        let (id, ref_name) = line.split_once(' ')?;
        (ref_name == name && is_commit_id(id)).then(|| id.to_owned())
    })
}

/// A ref under `refs/`, with git's rules for names (`git check-ref-format`), strictly.
fn valid_ref(name: &str) -> bool {
    name.starts_with("refs/")
        && name.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && !std::path::Path::new(c)
                    .extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("lock"))
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+@".contains(&b))
        })
        && !name.contains("..")
}

fn is_commit_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A regular file's text, at most `max` bytes; never through a symlink, never a FIFO.
fn read_regular(path: &Path, max: u64) -> Option<String> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text).ok()?;
    (text.len() as u64 <= max).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn heads_loose_refs_and_packed_refs_are_read() {
        let root = tempfile::tempdir().unwrap();
        let git = root.path().join(".git");
        fs::create_dir_all(git.join("refs/heads")).unwrap();
        let app = root.path().join("services/api");
        fs::create_dir_all(&app).unwrap();
        fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert_eq!(git_commit(&app), None, "an unborn branch has no commit");
        fs::write(
            git.join("packed-refs"),
            format!("# pack-refs\n{ID} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(git_commit(&app).as_deref(), Some(ID));
        let other = ID.replace('0', "f");
        fs::write(git.join("refs/heads/main"), format!("{other}\n")).unwrap();
        assert_eq!(git_commit(&app).as_deref(), Some(other.as_str()));
        fs::write(git.join("HEAD"), format!("{ID}\n")).unwrap();
        assert_eq!(git_commit(&app).as_deref(), Some(ID));
    }

    #[test]
    fn links_and_odd_refs_give_no_commit() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("main"), format!("{ID}\n")).unwrap();
        let git = root.path().join(".git");
        fs::create_dir_all(git.join("refs")).unwrap();
        std::os::unix::fs::symlink(outside.path(), git.join("refs/heads")).unwrap();
        fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert_eq!(git_commit(root.path()), None);
        fs::write(git.join("HEAD"), "ref: refs/../../etc/passwd\n").unwrap();
        assert_eq!(git_commit(root.path()), None);
        fs::remove_file(git.join("HEAD")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("main"), git.join("HEAD")).unwrap();
        assert_eq!(git_commit(root.path()), None);
    }
}
