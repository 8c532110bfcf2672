//! Promised blobs: an entry from a remote cache whose blobs are not all here yet.
//!
//! A remote hit need not bring every blob its entry names: a build-only layer that no task
//! of this build runs with, or a cache-only layer no buildpack of this build restores, is
//! never read. So [`Store::put_promised_action`] records such an entry with those blobs
//! *promised*: known digest and size, and where they come from (the entry, for messages),
//! but not on disk. The entry answers [`Store::get_action`] like any other; whoever is about
//! to read a blob asks [`Store::fetch_blob`] first, with the [`BlobFetcher`] that keeps the
//! promise (the CLI's remote cache), which brings it in verified; each promised blob is
//! fetched once per process, whoever asks first, and the others wait for that.
//!
//! A remote hit may also bring *facts*: what would be computed from a blob it leaves
//! promised (the file list of a launch layer whose SBOM the export writes, see
//! `strata_exporter::sbomlayer`). [`Store::put_fact`] keeps one for this handle only, and
//! only whoever reads in place of a promised blob asks [`Store::fact`]: a fact is never
//! an entry, never settled, and never answers for a blob that is here.
//!
//! Promises live in this [`Store`] handle only, never on disk: `strata cache verify` and
//! `gc` see only whole entries, and the next build asks the remote again. At the end of a
//! build, [`Store::settle_promised`] writes the entries whose blobs all came in as ordinary
//! entries.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use strata_planner::TaskKey;

use super::{ActionEntry, BlobRef, Store, StoreError, digest_hex, lock};

/// A blob an entry names that is not in the store yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromisedBlob {
    /// Its digest and size.
    pub blob: BlobRef,
    /// Where it comes from, as messages name it (the remote entry).
    pub from: String,
}

/// Brings promised blobs into the store.
pub trait BlobFetcher: Sync {
    /// Puts `blob` into `store` (through [`Store::adopt_blob`]), after every check that
    /// applies to it; returns why not.
    ///
    /// # Errors
    /// Why the blob could not be brought in whole.
    fn fetch_blob(&self, store: &Store, blob: &PromisedBlob) -> Result<(), String>;
}

/// What one store handle was promised.
#[derive(Debug, Default)]
pub(super) struct Promises {
    actions: HashMap<TaskKey, ActionEntry>,
    blobs: HashMap<String, Arc<Promise>>,
    facts: HashMap<TaskKey, serde_json::Value>,
}

#[derive(Debug)]
struct Promise {
    blob: PromisedBlob,
    /// Set once the blob was fetched, or why that failed.
    done: OnceLock<Result<(), String>>,
}

impl Store {
    /// Records `entry` as the output of `key` for this handle, with the blobs in `promised`
    /// not here yet. With nothing promised this is [`put_action`](Self::put_action).
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`] if a blob of the entry is neither in the store (intact,
    /// of its size) nor promised; [`StoreError::InvalidDigest`] for a promised digest that
    /// is not one.
    pub fn put_promised_action(
        &self,
        key: &TaskKey,
        entry: &ActionEntry,
        promised: &[PromisedBlob],
    ) -> Result<(), StoreError> {
        let promised: Vec<&PromisedBlob> = promised
            .iter()
            .filter(|p| entry.blobs.contains(&p.blob) && !self.check_blob(&p.blob))
            .collect();
        if promised.is_empty() {
            return self.put_action(key, entry);
        }
        for p in &promised {
            digest_hex(&p.blob.digest)?;
        }
        if let Some(blob) = entry
            .blobs
            .iter()
            .find(|b| !promised.iter().any(|p| p.blob == **b) && !self.check_blob(b))
        {
            return Err(StoreError::MissingBlob {
                key: key.hex(),
                digest: blob.digest.clone(),
            });
        }
        let mut held = lock(&self.promises);
        for p in promised {
            held.blobs.entry(p.blob.digest.clone()).or_insert_with(|| {
                Arc::new(Promise {
                    blob: p.clone(),
                    done: OnceLock::new(),
                })
            });
        }
        held.actions.insert(*key, entry.clone());
        Ok(())
    }

    /// Keeps `payload` as the fact of `key` for this handle only (what a remote hit says of
    /// a blob it left promised, see the module doc).
    pub fn put_fact(&self, key: &TaskKey, payload: serde_json::Value) {
        lock(&self.promises).facts.insert(*key, payload);
    }

    /// The fact kept for `key` by [`put_fact`](Self::put_fact).
    pub fn fact(&self, key: &TaskKey) -> Option<serde_json::Value> {
        lock(&self.promises).facts.get(key).cloned()
    }

    /// The promised entry of `key`, if every blob it names is here or promised.
    pub(super) fn promised_action(&self, key: &TaskKey) -> Option<ActionEntry> {
        let entry = lock(&self.promises).actions.get(key).cloned()?;
        entry
            .blobs
            .iter()
            .all(|b| self.is_promised(b) || self.check_blob(b))
            .then_some(entry)
    }

    /// Whether this handle has a promised entry for `key`.
    pub(super) fn has_promised_action(&self, key: &TaskKey) -> bool {
        lock(&self.promises).actions.contains_key(key)
    }

    /// Whether `blob` is promised and not fetched (nor failed) yet.
    pub fn is_promised(&self, blob: &BlobRef) -> bool {
        lock(&self.promises)
            .blobs
            .get(&blob.digest)
            .is_some_and(|p| p.blob.blob == *blob && p.done.get().is_none())
    }

    /// Makes sure `blob` is in the store before it is read: a blob that is here (intact) is
    /// fine; a promised one is fetched with `fetcher` (once per handle, concurrent callers
    /// wait for the first) and checked again.
    ///
    /// # Errors
    /// [`StoreError::FetchFailed`] naming the blob and where it was promised from, when it
    /// is promised and could not be brought in (or no fetcher is given);
    /// [`StoreError::MissingBlob`] when it is neither here nor promised.
    pub fn fetch_blob(
        &self,
        blob: &BlobRef,
        fetcher: Option<&dyn BlobFetcher>,
    ) -> Result<(), StoreError> {
        if self.check_blob(blob) {
            return Ok(());
        }
        let promise = lock(&self.promises).blobs.get(&blob.digest).cloned();
        let Some(promise) = promise.filter(|p| p.blob.blob == *blob) else {
            return Err(StoreError::MissingBlob {
                key: "<this build>".to_owned(),
                digest: blob.digest.clone(),
            });
        };
        let result = promise.done.get_or_init(|| {
            let brought = match fetcher {
                Some(fetcher) => fetcher.fetch_blob(self, &promise.blob),
                None => Err("no remote cache to fetch it from".to_owned()),
            };
            brought.and_then(|()| {
                if self.check_blob(blob) {
                    Ok(())
                } else {
                    Err("it is not in the store after fetching".to_owned())
                }
            })
        });
        result.clone().map_err(|why| StoreError::FetchFailed {
            digest: blob.digest.clone(),
            from: promise.blob.from.clone(),
            why,
        })
    }

    /// Writes each promised entry whose blobs all came in as an ordinary entry, and
    /// returns how many. The others stay promises, and are forgotten with this handle.
    pub fn settle_promised(&self) -> usize {
        let actions: Vec<(TaskKey, ActionEntry)> = lock(&self.promises)
            .actions
            .iter()
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        let mut settled = 0;
        for (key, entry) in actions {
            if entry.blobs.iter().all(|b| self.check_blob(b))
                && self.put_action(&key, &entry).is_ok()
            {
                lock(&self.promises).actions.remove(&key);
                settled += 1;
            }
        }
        settled
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Fetcher {
        bytes: Vec<u8>,
        calls: AtomicUsize,
    }

    impl BlobFetcher for Fetcher {
        fn fetch_blob(&self, store: &Store, _blob: &PromisedBlob) -> Result<(), String> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            store
                .put_blob_bytes(&self.bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }

    fn blob_of(bytes: &[u8]) -> BlobRef {
        use sha2::Digest as _;
        BlobRef {
            digest: format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn a_promised_entry_is_a_hit_and_its_blob_comes_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = TaskKey::from_bytes([3; 32]);
        let here = store.put_blob_bytes(b"here").unwrap();
        let later = blob_of(b"later");
        let entry = ActionEntry {
            blobs: vec![here, later.clone()],
            payload: serde_json::Value::Null,
        };
        let promised = PromisedBlob {
            blob: later.clone(),
            from: "docker://r/c:k-x".to_owned(),
        };
        // Nothing promised and a blob missing: refused, as put_action refuses it.
        assert!(store.put_promised_action(&key, &entry, &[]).is_err());
        store
            .put_promised_action(&key, &entry, std::slice::from_ref(&promised))
            .unwrap();
        assert_eq!(store.get_action(&key), Some(entry.clone()));
        assert!(store.has_action(&key));
        assert!(store.is_promised(&later));
        // Not written to disk: another handle does not see it, and settling waits.
        assert!(!Store::open(dir.path()).unwrap().has_action(&key));
        assert_eq!(store.settle_promised(), 0);

        let fetcher = Fetcher {
            bytes: b"later".to_vec(),
            calls: AtomicUsize::new(0),
        };
        store.fetch_blob(&later, Some(&fetcher)).unwrap();
        store.fetch_blob(&later, Some(&fetcher)).unwrap();
        assert_eq!(fetcher.calls.load(Ordering::Relaxed), 1);
        assert_eq!(store.settle_promised(), 1);
        assert_eq!(
            Store::open(dir.path()).unwrap().get_action(&key),
            Some(entry)
        );
    }

    #[test]
    fn a_fact_is_for_this_handle_only_and_never_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = TaskKey::from_bytes([5; 32]);
        let fact = serde_json::json!({"files": []});
        store.put_fact(&key, fact.clone());
        assert_eq!(store.fact(&key), Some(fact));
        assert!(store.get_action(&key).is_none() && !store.has_action(&key));
        assert_eq!(store.settle_promised(), 0);
        assert!(Store::open(dir.path()).unwrap().fact(&key).is_none());
    }

    #[test]
    fn a_promised_blob_that_comes_wrong_fails_naming_blob_and_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = TaskKey::from_bytes([4; 32]);
        let later = blob_of(b"later");
        let entry = ActionEntry {
            blobs: vec![later.clone()],
            payload: serde_json::Value::Null,
        };
        let from = "docker://r/c:k-y".to_owned();
        store
            .put_promised_action(
                &key,
                &entry,
                &[PromisedBlob {
                    blob: later.clone(),
                    from: from.clone(),
                }],
            )
            .unwrap();
        // The fetcher brings other bytes: the blob is still not here.
        let fetcher = Fetcher {
            bytes: b"other".to_vec(),
            calls: AtomicUsize::new(0),
        };
        let err = store
            .fetch_blob(&later, Some(&fetcher))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&later.digest) && err.contains(&from), "{err}");
        assert!(store.fetch_blob(&later, None).is_err());
        assert_eq!(fetcher.calls.load(Ordering::Relaxed), 1);
        assert_eq!(store.settle_promised(), 0);
    }
}
