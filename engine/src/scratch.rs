//! Scratch directories and temp files: private, owned by a live process, and never left
//! behind.
//!
//! A build writes secrets (`--env` values), copies of the app and half-built layers into
//! scratch directories, and blobs on their way into the store or a layout into temp files. All
//! of them must go when the build ends, however it ends:
//!
//! - **Normally or on an error**: a [`ScratchDir`] removes itself when dropped, and a
//!   `NamedTempFile` from [`temp_file_in`] does the same.
//! - **On SIGINT/SIGTERM**: every live [`ScratchDir`] is in a process-wide registry, and
//!   every directory that may hold this process's temp files is a registered [`TempHome`]. The
//!   CLI's signal handler calls [`stop`], then [`remove_all`], which closes the registry (no
//!   new scratch directory or temp file can appear after it), removes every registered
//!   directory and every temp file of this process in the homes.
//! - **On SIGKILL** (or a power loss) nothing of the process runs, so what it leaves must be
//!   recognisable as dead: each name carries its owner, `<prefix><pid>.<start time>.<random>`,
//!   and each directory or file is `flock`ed by its owner for its lifetime. The next user
//!   of the same place calls [`remove_stale`], which removes an entry only when its owner is
//!   gone on both counts: no process with that pid and start time exists, and the lock is
//!   free. The pid check covers the instant between creating an entry and locking it; the
//!   lock covers a live owner whose pid this process cannot see (another pid namespace).
//!
//! Directories are created 0700 and files 0600, whatever the umask: nothing of a build is
//! readable by another user of the machine. What a sandboxed process must read or write in
//! them is handed to its build user by `Sandbox::hand_over`.

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// The mode of every scratch directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every private file (temp files, platform env values).
pub const FILE_MODE: u32 = 0o600;

/// Random characters at the end of each name.
const RANDOM_LEN: usize = 8;

/// Set by [`stop`]: the process is being stopped, no new work starts.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// What this process must remove when it is stopped.
#[derive(Default)]
struct Registry {
    /// Set by [`remove_all`]: nothing new may be created.
    closed: bool,
    next: u64,
    /// Live scratch directories by id.
    dirs: BTreeMap<u64, PathBuf>,
    /// Directories this process may have temp files in, with how many users each has.
    homes: BTreeMap<PathBuf, usize>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    // A thread that panicked while holding it left the maps consistent: every change is
    // one insert or remove.
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The error for creating anything once the process is being stopped.
fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "strata is being stopped")
}

/// A process as the names of its scratch entries record it: pid and start time (clock ticks
/// after boot), so that a later process with the same pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The process id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`; 0 where `/proc` cannot be read.
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        static ME: OnceLock<Owner> = OnceLock::new();
        *ME.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                pid,
                start: start_time(pid).unwrap_or(0),
            }
        })
    }

    /// Whether this process is still running (a pid reused by another process is not).
    pub fn is_alive(self) -> bool {
        self == Owner::me() || start_time(self.pid).is_some_and(|start| start == self.start)
    }

    /// The owner recorded in `name` after `prefix`, if `name` is such a name.
    pub fn of_name(name: &str, prefix: &str) -> Option<Owner> {
        let rest = name.strip_prefix(prefix)?;
        let mut parts = rest.splitn(3, '.');
        let pid = parts.next()?;
        let start = parts.next()?;
        let random = parts.next()?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(pid) || !digits(start) || random.len() != RANDOM_LEN {
            return None;
        }
        Some(Owner {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }

    /// `<prefix><pid>.<start>.`: what a name of this owner starts with.
    fn prefix(self, prefix: &str) -> String {
        format!("{prefix}{}.{}.", self.pid, self.start)
    }
}

/// The start time of process `pid`, from `/proc/<pid>/stat`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything, spaces and
    // parentheses included: the fields after it start after the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A private directory (0700) owned by this process: removed with its content when dropped,
/// or by [`remove_all`] when the process is stopped, or by [`remove_stale`] after the process
/// was killed.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    id: u64,
    /// Held for the directory's lifetime: a free lock means a dead owner.
    _lock: File,
}

impl ScratchDir {
    /// Creates `<parent>/<prefix><pid>.<start>.<random>` (and `parent` if missing).
    ///
    /// # Errors
    /// The directory cannot be created or locked, or the process is being stopped
    /// ([`io::ErrorKind::Interrupted`]).
    pub fn create(parent: &Path, prefix: &str) -> io::Result<ScratchDir> {
        let mut registry = registry();
        if registry.closed {
            return Err(stopped());
        }
        fs::create_dir_all(parent)?;
        let path = tempfile::Builder::new()
            .prefix(&Owner::me().prefix(prefix))
            .rand_bytes(RANDOM_LEN)
            .permissions(Permissions::from_mode(DIR_MODE))
            .disable_cleanup(true)
            .tempdir_in(parent)?
            .keep();
        let locked = File::open(&path).and_then(|dir| {
            dir.lock()?;
            // The umask may only have narrowed the mode; make it exact.
            dir.set_permissions(Permissions::from_mode(DIR_MODE))?;
            Ok(dir)
        });
        let lock = match locked {
            Ok(lock) => lock,
            Err(e) => {
                let _ = fs::remove_dir(&path);
                return Err(e);
            }
        };
        let id = registry.next;
        registry.next += 1;
        registry.dirs.insert(id, path.clone());
        Ok(ScratchDir {
            path,
            id,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
        registry().dirs.remove(&self.id);
    }
}

/// A directory where this process may create temp files with [`temp_file_in`]; while it is
/// registered, [`remove_all`] removes this process's temp files there. Unregistered on drop.
#[derive(Debug)]
pub struct TempHome {
    dir: PathBuf,
}

impl TempHome {
    /// Registers `dir`.
    pub fn new(dir: &Path) -> TempHome {
        *registry().homes.entry(dir.to_owned()).or_insert(0) += 1;
        TempHome {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let mut registry = registry();
        if let Some(users) = registry.homes.get_mut(&self.dir) {
            *users -= 1;
            if *users == 0 {
                registry.homes.remove(&self.dir);
            }
        }
    }
}

/// A temp file (0600) in `dir`, named `<prefix><pid>.<start>.<random>` and locked by this
/// process while it is open, so that [`remove_stale`] and [`remove_all`] know it. Create it
/// in a registered [`TempHome`] (or inside a [`ScratchDir`]) for a signal to remove it.
///
/// # Errors
/// The file cannot be created, or the process is being stopped
/// ([`io::ErrorKind::Interrupted`]).
pub fn temp_file_in(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    let registry = registry();
    if registry.closed {
        return Err(stopped());
    }
    let temp = tempfile::Builder::new()
        .prefix(&Owner::me().prefix(prefix))
        .rand_bytes(RANDOM_LEN)
        .permissions(Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)?;
    temp.as_file().lock()?;
    drop(registry);
    Ok(temp)
}

/// Marks the process as being stopped: [`stopping`] is true from now on.
pub fn stop() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Whether the process is being stopped: no new task should start.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Removes every live [`ScratchDir`] and every temp file of this process in a registered
/// [`TempHome`], and closes the registry: creating a scratch directory or temp file fails
/// from now on. For a signal handler, right before the process exits.
pub fn remove_all() {
    stop();
    let mut registry = registry();
    registry.closed = true;
    for dir in registry.dirs.values() {
        remove_tree(dir);
    }
    let me = Owner::me();
    for home in registry.homes.keys() {
        let Ok(entries) = fs::read_dir(home) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if owner_in(name).is_some_and(|owner| owner == me) {
                remove_entry(&entry.path());
            }
        }
    }
}

/// The owner in `name`, whatever its prefix: `<anything><pid>.<start>.<random>`.
fn owner_in(name: &str) -> Option<Owner> {
    let head = name.rsplitn(3, '.').nth(2)?;
    let pid_len = head.bytes().rev().take_while(u8::is_ascii_digit).count();
    Owner::of_name(name, &head[..head.len() - pid_len])
}

/// Removes the entries of `dir` named `<prefix><pid>.<start>.<random>` whose owner is gone
/// (see the module notes), and returns them. An entry of a live process, this one included,
/// is never touched; one that cannot be removed stays for the next try.
pub fn remove_stale(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    sweep(dir, |name| Owner::of_name(name, prefix))
}

/// [`remove_stale`] for every prefix: for a directory that holds only scratch entries (the
/// store's `tmp/`).
pub fn remove_stale_any(dir: &Path) -> Vec<PathBuf> {
    sweep(dir, owner_in)
}

fn sweep(dir: &Path, owner_of: impl Fn(&str) -> Option<Owner>) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(&owner_of) else {
            continue;
        };
        if owner.is_alive() {
            continue;
        }
        let path = entry.path();
        // Only what this module makes: a FIFO or a device must not block the open below.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !(meta.is_dir() || meta.is_file()) {
            continue;
        }
        let Ok(lock) = File::open(&path) else {
            continue;
        };
        // Taken, the lock is held while removing: the owner cannot be alive behind it.
        if lock.try_lock().is_err() {
            continue;
        }
        if remove_entry(&path) {
            removed.push(path);
        }
    }
    removed
}

/// Removes a file or a directory tree; whether it is gone.
fn remove_entry(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => remove_tree(path),
        Ok(_) => fs::remove_file(path).is_ok() || !path.exists(),
        Err(_) => true,
    }
}

/// Removes a directory tree, retrying while something still writes into it (a sandboxed
/// process that is being killed); whether it is gone.
fn remove_tree(path: &Path) -> bool {
    for _ in 0..5 {
        match fs::remove_dir_all(path) {
            Ok(()) => return true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn names_carry_their_owner() {
        let me = Owner::me();
        assert!(me.start > 0, "/proc is readable in tests");
        let name = format!("strata-{}.{}.abcdefgh", me.pid, me.start);
        assert_eq!(Owner::of_name(&name, "strata-"), Some(me));
        assert_eq!(owner_in(&name), Some(me));
        assert_eq!(
            owner_in(&format!(".out.staging-{}.{}.abcdefgh", me.pid, me.start)),
            Some(me)
        );
        for bad in [
            "strata-",
            "strata-1.2",
            "strata-x.2.abcdefgh",
            "strata-1.2.abc",
            "other-1.2.abcdefgh",
        ] {
            assert_eq!(Owner::of_name(bad, "strata-"), None, "{bad}");
        }
        assert!(me.is_alive());
        assert!(
            !Owner {
                pid: me.pid,
                start: me.start + 1
            }
            .is_alive()
        );
    }

    #[test]
    fn scratch_dirs_are_private_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let dir = ScratchDir::create(parent.path(), "t-").unwrap();
        let path = dir.path().to_owned();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, DIR_MODE);
        fs::write(path.join("f"), "x").unwrap();
        // Alive and locked: never stale.
        assert!(remove_stale(parent.path(), "t-").is_empty());
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn stale_entries_of_dead_owners_go_and_locked_ones_stay() {
        let parent = tempfile::tempdir().unwrap();
        // A pid that cannot exist: past the kernel's maximum.
        let dead = parent.path().join("t-4194305.1.abcdefgh");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("secret"), "x").unwrap();
        let dead_file = parent.path().join("t-4194305.1.ijklmnop");
        fs::write(&dead_file, "x").unwrap();
        // A dead pid but a held lock (an owner in another pid namespace): kept.
        let locked = parent.path().join("t-4194306.1.qrstuvwx");
        fs::create_dir(&locked).unwrap();
        let held = File::open(&locked).unwrap();
        held.lock().unwrap();
        let foreign = parent.path().join("unrelated");
        fs::create_dir(&foreign).unwrap();
        let mut removed = remove_stale(parent.path(), "t-");
        removed.sort();
        assert_eq!(removed, [dead.clone(), dead_file.clone()]);
        assert!(locked.exists() && foreign.exists());
        drop(held);
        assert_eq!(remove_stale(parent.path(), "t-"), [locked]);
    }

    #[test]
    fn temp_files_are_private_and_locked() {
        let dir = tempfile::tempdir().unwrap();
        let temp = temp_file_in(dir.path(), ".tmp-").unwrap();
        assert_eq!(temp.as_file().metadata().unwrap().mode() & 0o777, FILE_MODE);
        let other = File::open(temp.path()).unwrap();
        assert!(other.try_lock().is_err(), "held by its writer");
        assert!(remove_stale(dir.path(), ".tmp-").is_empty());
    }
}
