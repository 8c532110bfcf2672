//! What a build shows while it runs: on a terminal, an overall bar and a spinner per running
//! task (indicatif); otherwise plain lines, one per event, so logs read well in CI.
//! With `--json` nothing is shown: stdout carries the report and stderr only errors.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress output for one build.
pub(crate) struct Progress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        running: Mutex<HashMap<String, ProgressBar>>,
    },
}

impl Progress {
    /// Bars when stderr is a terminal, lines when it is not, nothing when `quiet`.
    pub(crate) fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} tasks {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix("building");
            Mode::Bars {
                multi,
                overall,
                running: Mutex::new(HashMap::new()),
            }
        } else {
            Mode::Lines
        };
        Self { mode }
    }

    /// A line of text (a phase, a buildpack, a log line).
    pub(crate) fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{text}"),
            Mode::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
        }
    }

    /// A warning: shown even when quiet (`--json` keeps stdout for the report, not stderr).
    pub(crate) fn warn(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => eprintln!("{text}"),
            _ => self.line(text),
        }
    }

    /// How many tasks will run or be answered from the cache.
    pub(crate) fn set_total(&self, tasks: u64) {
        if let Mode::Bars { overall, .. } = &self.mode {
            overall.set_length(tasks);
        }
    }

    /// A task started.
    pub(crate) fn started(&self, id: &str) {
        if let Mode::Bars { multi, running, .. } = &self.mode {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(id.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut running) = running.lock() {
                running.insert(id.to_owned(), bar);
            }
        }
    }

    /// A task ended (`outcome` is `None` on success), with its log.
    pub(crate) fn ended(&self, id: &str, outcome: Option<&str>, log: Option<&Path>) {
        if let Mode::Bars {
            multi,
            overall,
            running,
        } = &self.mode
        {
            if let Some(bar) = running.lock().ok().and_then(|mut r| r.remove(id)) {
                bar.finish_and_clear();
                multi.remove(&bar);
            }
            overall.inc(1);
        }
        match outcome {
            None => self.line(&format!("     {id}")),
            Some(outcome) => self.line(&format!("     {id}: {outcome}")),
        }
        for line in log
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
            .lines()
        {
            self.line(&format!("       {line}"));
        }
    }

    /// Clears the bars, and any spinner still running (a task whose end was never reported
    /// would otherwise keep ticking and redraw over the summary printed after the build).
    pub(crate) fn finish(&self) {
        if let Mode::Bars {
            multi,
            overall,
            running,
        } = &self.mode
        {
            if let Ok(mut running) = running.lock() {
                for (_, bar) in running.drain() {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}
