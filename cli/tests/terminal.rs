//! A build in a real terminal (a tmux pane of 120×50): the progress bars and spinners go away and
//! the summary stays on the screen, every row of it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::ExampleCopy;

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Self {
        Self {
            socket: format!("strata-test-{name}-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux ({e}); install it: apt-get install tmux"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in a detached 120×50 session and returns the screen once the command has
    /// printed `marker` (the shell prints it after the command exits).
    fn screen_after(&self, command: &str, marker: &str) -> String {
        let session = format!("{command}; echo {marker}; sleep 600");
        self.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "50",
            "sh",
            "-c",
            &session,
        ]);
        let started = Instant::now();
        loop {
            // Let the steady-tick spinners draw once more: a stale one redraws over the rows.
            std::thread::sleep(Duration::from_millis(500));
            let screen = self.run(&["capture-pane", "-p", "-t", "t"]);
            if screen.lines().any(|l| l.trim() == marker) {
                std::thread::sleep(Duration::from_millis(500));
                return self.run(&["capture-pane", "-p", "-t", "t"]);
            }
            assert!(
                started.elapsed() < Duration::from_mins(5),
                "the build did not finish in the terminal:\n{screen}"
            );
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// Spinners are braille characters; none may be left on the screen after a build.
fn spinner_lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| l.chars().any(|c| ('\u{2800}'..='\u{28ff}').contains(&c)))
        .collect()
}

fn strata_in_terminal(tmux: &Tmux, tmp: &ExampleCopy, cwd: &Path, args: &str) -> String {
    let command = format!(
        "cd '{}' && XDG_CACHE_HOME='{}' '{}' {args}",
        cwd.display(),
        tmp.path("xdg").display(),
        env!("CARGO_BIN_EXE_strata"),
    );
    tmux.screen_after(&command, "__STRATA_DONE__")
}

#[test]
fn a_cold_monorepo_build_leaves_the_whole_summary_and_no_spinner() {
    let tmp = ExampleCopy::new();
    let examples = tmp.path("examples");
    let services: Vec<String> = ["services", "legacy"]
        .iter()
        .flat_map(|d| std::fs::read_dir(examples.join("monorepo").join(d)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(services.len(), 10, "{services:?}");

    let tmux = Tmux::new("monorepo");
    let screen = strata_in_terminal(
        &tmux,
        &tmp,
        &examples,
        &format!(
            "build monorepo --cache-dir '{}'",
            tmp.path("cache").display()
        ),
    );
    assert!(spinner_lines(&screen).is_empty(), "spinner left:\n{screen}");
    let header = screen
        .lines()
        .position(|l| l.starts_with("SERVICE "))
        .unwrap_or_else(|| panic!("no summary header:\n{screen}"));
    let rows: Vec<&str> = screen.lines().skip(header + 1).take(10).collect();
    for service in &services {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("{service} ")) && r.ends_with("built")),
            "no row for {service}:\n{screen}"
        );
    }
    assert!(
        screen
            .lines()
            .nth(header + 11)
            .is_some_and(|l| l.starts_with("10 services (0 failed),")),
        "no totals line:\n{screen}"
    );
}

#[test]
fn a_single_app_build_leaves_no_spinner() {
    let tmp = ExampleCopy::new();
    let tmux = Tmux::new("app");
    let screen = strata_in_terminal(
        &tmux,
        &tmp,
        &tmp.path("examples"),
        &format!(
            "build apps/hello --builder builder.toml --output 'oci:{}:hello' --cache-dir '{}'",
            tmp.path("out").display(),
            tmp.path("cache").display()
        ),
    );
    assert!(spinner_lines(&screen).is_empty(), "spinner left:\n{screen}");
    assert!(
        !screen.contains("tasks 0s") && !screen.contains("building ["),
        "progress bar left:\n{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("oci:") && l.contains(":hello sha256:")),
        "no image line:\n{screen}"
    );
}
