//! Group commit: the services of a build committed to one layout in batches, so that a build of
//! n services does not rewrite `index.json` n times.
//!
//! A workspace build exports each service as soon as its tasks are done, and a commit
//! rewrites the whole `index.json` (read, merge, fsync, rename, directory sync): one commit per
//! service writes O(n²) index bytes. Here an export only queues its staging
//! ([`GroupCommit::submit`]) and goes on; one committer thread ([`GroupCommit::run`]) takes
//! *every* queued staging into one [`Staging::commit_together`] once the oldest has waited
//! `interval`, or at once when the build is done ([`GroupCommit::close`]). Waiting for
//! synchronous commits would not do: on two cores, two exports rarely finish within one
//! commit, so every batch would hold one service.
//!
//! Crash safety is that of one commit: a batch is committed whole or not at all, and a build
//! killed at any point keeps every batch committed before, every tag old or new. What it
//! loses is at most the last `interval` of finished services, whose layers are in the store:
//! the next build exports them again without running a task. Each staging's result is its own
//! ([`GroupCommit::take_results`]), so a bad one fails its service alone.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::layout::{LayoutError, Staging, Tags};

/// Commits to layouts from many threads, batched (see the module docs).
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Stagings waiting for the next commit, with their tags and ticket.
    queued: Vec<(u64, Staging, Tags)>,
    /// When the oldest of `queued` was queued.
    since: Option<Instant>,
    /// Results of finished commits, by ticket.
    results: HashMap<u64, Result<(), LayoutError>>,
    next_ticket: u64,
    /// No more stagings come: commit what is queued now, then stop.
    closed: bool,
    /// How many batches were committed.
    commits: u64,
}

impl GroupCommit {
    /// A committer with nothing queued.
    pub fn new() -> GroupCommit {
        GroupCommit::default()
    }

    /// Queues `staging` to be committed with `tags` as [`Staging::commit`] does; returns its
    /// ticket, under which [`GroupCommit::take_results`] gives its result.
    pub fn submit(&self, staging: Staging, tags: Tags) -> u64 {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        if state.queued.is_empty() {
            state.since = Some(Instant::now());
        }
        state.queued.push((ticket, staging, tags));
        self.changed.notify_all();
        ticket
    }

    /// Commits what is queued, in batches, until [`GroupCommit::close`] and nothing is left:
    /// a batch once its oldest staging has waited `interval`, or at once after the close.
    /// `committed` is called with the ticket of each staging committed, right after its
    /// batch.
    pub fn run(&self, interval: Duration, committed: impl Fn(u64)) {
        let mut state = self.lock();
        loop {
            while state.queued.is_empty() && !state.closed {
                state = self.wait(state, None);
            }
            if state.queued.is_empty() {
                return;
            }
            let deadline = state.since.unwrap_or_else(Instant::now) + interval;
            while !state.closed && Instant::now() < deadline {
                state = self.wait(state, Some(deadline));
            }
            let batch = std::mem::take(&mut state.queued);
            state.since = None;
            drop(state);
            let (tickets, commits): (Vec<u64>, Vec<_>) = batch
                .into_iter()
                .map(|(ticket, staging, tags)| (ticket, (staging, tags)))
                .unzip();
            let results = Staging::commit_together(commits);
            for (ticket, result) in tickets.iter().zip(&results) {
                if result.is_ok() {
                    committed(*ticket);
                }
            }
            state = self.lock();
            state.results.extend(tickets.into_iter().zip(results));
            state.commits += 1;
        }
    }

    /// Tells [`GroupCommit::run`] that nothing more comes: it commits what is queued and
    /// returns.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The results of the stagings committed so far, by ticket.
    pub fn take_results(&self) -> HashMap<u64, Result<(), LayoutError>> {
        std::mem::take(&mut self.lock().results)
    }

    /// How many batches were committed so far.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        until: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        match until {
            None => self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                self.changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::layout::tests::manifest_with;
    use oci_spec::image::Descriptor;
    use std::path::Path;

    fn staged(layout_dir: &Path, layer: &str) -> (Staging, Descriptor) {
        let staging = Staging::new(layout_dir).unwrap();
        let manifest = manifest_with(&staging, layer.as_bytes());
        (staging, manifest)
    }

    #[test]
    fn services_queued_before_a_commit_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let group = GroupCommit::new();
        let tickets: Vec<u64> = (0..10)
            .map(|i| {
                let (staging, manifest) = staged(&layout_dir, &format!("layer {i}"));
                group.submit(staging, vec![(format!("s{i}"), manifest)])
            })
            .collect();
        group.close();
        // However long the interval, a closed committer commits what is queued at once.
        group.run(Duration::from_hours(1), |_| ());
        assert_eq!(group.commits(), 1, "ten services, one commit");
        let results = group.take_results();
        assert!(
            tickets
                .iter()
                .all(|t| matches!(results.get(t), Some(Ok(()))))
        );
        let layout = Layout::open(&layout_dir).unwrap();
        for i in 0..10 {
            let (_, manifest) = layout.resolve(&format!("s{i}")).unwrap();
            assert_eq!(
                layout.read_blob(&manifest.layers()[0]).unwrap(),
                format!("layer {i}").as_bytes()
            );
        }
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no staging directory is left behind");
    }

    #[test]
    fn a_committer_thread_takes_what_comes_and_stops_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let group = GroupCommit::new();
        std::thread::scope(|scope| {
            scope.spawn(|| group.run(Duration::ZERO, |_| ()));
            for i in 0..3 {
                let (staging, manifest) = staged(&layout_dir, &format!("layer {i}"));
                group.submit(staging, vec![(format!("s{i}"), manifest)]);
            }
            group.close();
        });
        assert!((1..=3).contains(&group.commits()));
        assert_eq!(group.take_results().len(), 3);
        let layout = Layout::open(&layout_dir).unwrap();
        assert_eq!(layout.tags().len(), 3);
    }

    #[test]
    fn a_bad_staging_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let (good, good_manifest) = staged(&layout_dir, "good");
        let (bad, bad_manifest) = staged(&layout_dir, "bad");
        let (invalid, invalid_manifest) = staged(&layout_dir, "invalid");
        // The bad staging loses its layer: its manifest is incomplete.
        for entry in std::fs::read_dir(bad.blob_dir()).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::read(&path).unwrap() == b"bad" {
                std::fs::remove_file(path).unwrap();
            }
        }
        let results = Staging::commit_together(vec![
            (good, vec![("good".to_owned(), good_manifest)]),
            (bad, vec![("bad".to_owned(), bad_manifest)]),
            (
                invalid,
                vec![("no tag!".to_owned(), invalid_manifest.clone())],
            ),
        ]);
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(
            matches!(results[1], Err(LayoutError::MissingBlob { .. })),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(results[2], Err(LayoutError::InvalidTag { .. })),
            "{:?}",
            results[2]
        );
        let layout = Layout::open(&layout_dir).unwrap();
        let tags: Vec<String> = layout.tags().into_iter().map(|(t, _)| t).collect();
        assert_eq!(tags, ["good"]);
        assert!(
            !layout.has_blob(&invalid_manifest),
            "nothing of a failed staging moves in"
        );
    }
}
