//! Group commit: many threads committing to one layout share their `index.json` writes.
//!
//! A workspace build exports each service as soon as its tasks are done, and a commit
//! rewrites the whole `index.json` (read, merge, fsync, rename, directory sync). One commit per
//! service makes a build of n services write O(n²) index bytes. Here a thread that wants to
//! commit queues its staging; if no commit is under way it becomes the committer and takes
//! *every* queued staging into one [`Staging::commit_together`], then hands each thread its
//! own result. Threads that queue while a commit runs wait for the next one, which takes them
//! all. The batching regulates itself: the longer a commit takes (the larger the index), the
//! more services finish meanwhile and share the next.
//!
//! Nothing waits for a batch to fill: a service is committed as soon as no other commit is
//! running, and [`GroupCommit::commit`] returns only once its tags are durable, so a build
//! killed at any point keeps every service whose commit returned, as one commit per service
//! did.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, PoisonError};

use oci_spec::image::Descriptor;

use crate::layout::{LayoutError, Staging};

/// Commits to layouts from many threads, batched (see the module docs).
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Stagings waiting for the next commit, with their tags and ticket.
    queued: Vec<(u64, Staging, Vec<(String, Descriptor)>)>,
    /// Results of finished commits not yet taken by their threads, by ticket.
    results: HashMap<u64, Result<(), LayoutError>>,
    next_ticket: u64,
    /// Whether a thread is committing now.
    committing: bool,
    /// How many commits (index writes at most) were made.
    commits: u64,
}

impl GroupCommit {
    /// A committer with nothing queued.
    pub fn new() -> GroupCommit {
        GroupCommit::default()
    }

    /// Commits `staging` with `tags` as [`Staging::commit`] does, together with whatever
    /// other threads queue meanwhile; returns once it is committed (or failed).
    ///
    /// # Errors
    /// As [`Staging::commit`]; [`LayoutError::Group`] when the commit of the whole batch
    /// failed.
    pub fn commit(
        &self,
        staging: Staging,
        tags: Vec<(String, Descriptor)>,
    ) -> Result<(), LayoutError> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push((ticket, staging, tags));
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if state.committing {
                state = self
                    .done
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // This thread commits every queued staging, its own among them.
            state.committing = true;
            state.commits += 1;
            let batch = std::mem::take(&mut state.queued);
            drop(state);
            let (tickets, commits): (Vec<u64>, Vec<_>) = batch
                .into_iter()
                .map(|(ticket, staging, tags)| (ticket, (staging, tags)))
                .unzip();
            let results = Staging::commit_together(commits);
            state = self.lock();
            state.results.extend(tickets.into_iter().zip(results));
            state.committing = false;
            self.done.notify_all();
        }
    }

    /// How many batches were committed so far.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// How many stagings are waiting for the next commit.
    pub fn queued(&self) -> usize {
        self.lock().queued.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use oci_spec::image::{ImageManifestBuilder, MediaType};
    use std::fs::File;
    use std::path::Path;

    fn staged(layout_dir: &Path, layer: &str) -> (Staging, Descriptor) {
        let staging = Staging::new(layout_dir).unwrap();
        let config = staging
            .put_bytes(
                br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
                MediaType::ImageConfig,
            )
            .unwrap();
        let layer = staging
            .put_bytes(layer.as_bytes(), MediaType::ImageLayer)
            .unwrap();
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(vec![layer])
            .build()
            .unwrap();
        let manifest = staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap();
        (staging, manifest)
    }

    fn wait_for(what: impl Fn() -> bool) {
        while !what() {
            std::thread::yield_now();
        }
    }

    #[test]
    fn services_that_finish_while_a_commit_runs_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let group = GroupCommit::new();
        // Another process commits to the layout: the first commit waits on its lock.
        let other = File::open(dir.path()).unwrap();
        other.lock().unwrap();
        std::thread::scope(|scope| {
            let (group, layout_dir) = (&group, &layout_dir);
            let first = scope.spawn(move || {
                let (staging, manifest) = staged(layout_dir, "layer 0");
                group.commit(staging, vec![("s0".to_owned(), manifest)])
            });
            wait_for(|| group.commits() == 1 && group.queued() == 0);
            let rest: Vec<_> = (1..10)
                .map(|i| {
                    scope.spawn(move || {
                        let (staging, manifest) = staged(layout_dir, &format!("layer {i}"));
                        group.commit(staging, vec![(format!("s{i}"), manifest)])
                    })
                })
                .collect();
            wait_for(|| group.queued() == 9);
            other.unlock().unwrap();
            first.join().unwrap().unwrap();
            for thread in rest {
                thread.join().unwrap().unwrap();
            }
        });
        assert_eq!(group.commits(), 2, "the nine that queued are one commit");
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
            (invalid, vec![("no tag!".to_owned(), invalid_manifest.clone())]),
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
        assert!(!layout.has_blob(&invalid_manifest), "nothing of a failed staging moves in");
    }
}
