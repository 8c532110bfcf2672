//! SIGINT and SIGTERM: stop the build, kill its sandboxes, remove what it wrote on the side,
//! and exit 130 or 143.
//!
//! The handler is a thread (signal-hook's iterator), so it may do everything an ordinary
//! thread does. On the first signal it marks the process as stopping (the executor starts no
//! new task), kills every process this one started, with their children (bwrap runs with
//! `--die-with-parent` and a pid namespace, but a `--sandbox none` process has neither), and
//! waits until they are gone, so nothing writes into a scratch directory any more. Then it has
//! the engine remove every scratch directory and temp file this process registered
//! ([`strata_engine::scratch::remove_all`]) and exits. A second signal exits at once.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::process::{Pid, Signal, kill_process};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;
use strata_engine::scratch;

/// How many times the handler looks for processes left to kill: each round kills what the
/// last one left (a child forked while its parent was being killed, one still exiting).
const KILL_ROUNDS: usize = 200;
/// The pause between two rounds.
const KILL_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Set in the signal handler itself, the moment the first signal arrives (before the thread
/// below wakes up).
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Installs the handler.
///
/// # Errors
/// A signal handler cannot be registered.
pub(crate) fn install() -> std::io::Result<()> {
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it runs before the flag is set: a no-op on the first signal,
        // an immediate exit on any later one.
        flag::register_conditional_shutdown(signal, 128 + signal, &SIGNALLED)?;
        flag::register(signal, &SIGNALLED)?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                scratch::stop();
                kill_descendants();
                scratch::remove_all();
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// Waits for the signal handler to exit the process, if it is handling a signal: the command
/// may have returned only because the handler killed its processes, and must not exit with
/// its own code (or print its failure) first.
pub(crate) fn wait_if_stopping() {
    // A signal to the whole process group (Ctrl-C) also kills the sandboxes, so the command
    // can return before the thread below has woken: the flag the handler sets counts too.
    if SIGNALLED.load(Ordering::SeqCst) || scratch::stopping() {
        loop {
            std::thread::park();
        }
    }
}

/// Kills every descendant of this process with SIGKILL and waits until none is left running
/// (zombies are dead: they only wait to be reaped). A killed process's children are
/// reparented away from this process, so each killed pid is waited for by itself.
fn kill_descendants() {
    let me = std::process::id();
    let mut killed: HashSet<u32> = HashSet::new();
    for _ in 0..KILL_ROUNDS {
        let found = descendants(me);
        for &pid in &found {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                // Gone meanwhile is fine.
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        killed.extend(found);
        killed.retain(|&pid| stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X')));
        if killed.is_empty() {
            return;
        }
        std::thread::sleep(KILL_PAUSE);
    }
}

/// The live (not zombie) descendants of `root`, from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut live = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some((state, parent)) = stat(pid) else {
            continue;
        };
        children.entry(parent).or_default().push(pid);
        live.insert(pid, !matches!(state, 'Z' | 'X'));
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if live.get(&child).copied().unwrap_or(false) {
                out.push(child);
            }
            stack.push(child);
        }
    }
    out
}

/// The state and parent pid of `pid`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: fields follow the last `)`.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}
