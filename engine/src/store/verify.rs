//! [`Store::verify`]: every blob hashed, every action's blobs checked, for `strata cache
//! verify`. It runs beside builds, so it reports by default and removes only on request, and
//! only files that are still the ones it checked.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::files::{Identity, hash_blob, remove_if_same};
use super::scan::{blob_files, keyed_files, read_action};
use super::{ACTIONS, LOGS, Store, StoreError, digest_hex};

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blob files checked.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Action entries checked.
    pub actions: u64,
    /// Blobs whose bytes do not hash to their name.
    pub corrupt_blobs: Vec<CorruptBlob>,
    /// Actions naming a blob that is missing, corrupt or of another size.
    pub broken_actions: Vec<BrokenAction>,
    /// Action files that do not parse, or belong to another key.
    pub unparsable_actions: Vec<UnparsableAction>,
    /// Files the store does not know (not problems: `gc` removes them).
    pub stray_files: Vec<PathBuf>,
    /// Whether the problems found were removed.
    pub repaired: bool,
}

impl VerifyReport {
    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.corrupt_blobs.len() + self.broken_actions.len() + self.unparsable_actions.len()
    }

    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems() == 0
    }
}

/// A blob whose bytes do not match its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptBlob {
    /// The digest it is named by.
    pub digest: String,
    /// Its file.
    pub path: PathBuf,
    /// What its bytes hash to, if they could be read.
    pub actual: Option<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// An action that cannot be used, and the blob why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenAction {
    /// The action's `TaskKey` (hex).
    pub key: String,
    /// Its file.
    pub path: PathBuf,
    /// The blob it names.
    pub digest: String,
    /// What is wrong with that blob.
    pub problem: ActionProblem,
}

/// What is wrong with a blob an action names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ActionProblem {
    /// Not in the store.
    MissingBlob,
    /// In the store, but its bytes do not match its name.
    CorruptBlob,
    /// Intact, but of another size than the action recorded.
    SizeMismatch {
        /// The size the action recorded.
        recorded: u64,
        /// The blob's size.
        actual: u64,
    },
    /// Not a sha256 digest.
    InvalidDigest,
}

/// An action file that cannot be read as the entry of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnparsableAction {
    /// Its file.
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// A blob's state as `verify` found it.
enum Found {
    Intact(u64),
    Corrupt(Identity),
    Unreadable,
}

impl Store {
    /// Hashes every blob (in parallel) and checks every action's blobs. Reports only, unless
    /// `repair`: then corrupt blobs, broken actions and unparsable actions are removed (a
    /// file another process has replaced since it was checked is left alone). Stray files
    /// are listed, not removed: `gc` does that, when no build can be writing them.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport {
            repaired: repair,
            ..VerifyReport::default()
        };
        let (blobs, mut strays) = blob_files(&self.root)?;
        let hashed: Vec<_> = blobs
            .par_iter()
            .map(|blob| (blob, hash_blob(&blob.path)))
            .collect();
        let mut found: HashMap<String, Found> = HashMap::new();
        for (blob, result) in hashed {
            match result {
                // Removed since it was listed.
                Ok(None) => continue,
                Ok(Some((actual, len, _))) if actual == blob.hex => {
                    self.mark_verified(&blob.hex);
                    found.insert(blob.hex.clone(), Found::Intact(len));
                }
                Ok(Some((actual, _, id))) => {
                    found.insert(blob.hex.clone(), Found::Corrupt(id));
                    report.corrupt_blobs.push(CorruptBlob {
                        digest: format!("sha256:{}", blob.hex),
                        path: blob.path.clone(),
                        actual: Some(format!("sha256:{actual}")),
                        error: None,
                    });
                }
                Err(e) => {
                    found.insert(blob.hex.clone(), Found::Unreadable);
                    report.corrupt_blobs.push(CorruptBlob {
                        digest: format!("sha256:{}", blob.hex),
                        path: blob.path.clone(),
                        actual: None,
                        error: Some(e.to_string()),
                    });
                }
            }
            report.blobs += 1;
            report.blob_bytes += blob.len;
        }

        let (actions, action_strays) = keyed_files(&self.root.join(ACTIONS), "json")?;
        strays.extend(action_strays);
        let mut remove_actions = Vec::new();
        for action in actions {
            let (file, id) = match read_action(&action) {
                Ok(Some(read)) => read,
                Ok(None) => continue,
                Err((error, id)) => {
                    report.unparsable_actions.push(UnparsableAction {
                        path: action.path.clone(),
                        error,
                    });
                    remove_actions.push((action.path, id));
                    continue;
                }
            };
            report.actions += 1;
            let mut broken = false;
            for blob in &file.blobs {
                let problem = match digest_hex(&blob.digest) {
                    Err(_) => Some(ActionProblem::InvalidDigest),
                    Ok(hex) => self.blob_problem(hex, blob.size, &mut found),
                };
                if let Some(problem) = problem {
                    broken = true;
                    report.broken_actions.push(BrokenAction {
                        key: action.key.hex(),
                        path: action.path.clone(),
                        digest: blob.digest.clone(),
                        problem,
                    });
                }
            }
            if broken {
                remove_actions.push((action.path, id));
            }
        }
        let (_, log_strays) = keyed_files(&self.root.join(LOGS), "log")?;
        strays.extend(log_strays);
        strays.sort();
        report.stray_files = strays;

        if repair {
            for blob in &report.corrupt_blobs {
                if let Some(hex) = blob.digest.strip_prefix("sha256:") {
                    self.forget(hex);
                    match found.get(hex) {
                        Some(Found::Corrupt(id)) => {
                            remove_if_same(&blob.path, *id);
                        }
                        // Unreadable: nothing this process could compare, and nothing usable.
                        _ => {
                            let _ = fs::remove_file(&blob.path);
                        }
                    }
                }
            }
            for (path, id) in remove_actions {
                remove_if_same(&path, id);
            }
        }
        Ok(report)
    }

    /// What is wrong with blob `hex` of `size`, for an action that names it. A blob not seen
    /// when the blobs were listed may have been written since: it is hashed now.
    fn blob_problem(
        &self,
        hex: &str,
        size: u64,
        found: &mut HashMap<String, Found>,
    ) -> Option<ActionProblem> {
        if !found.contains_key(hex)
            && let Ok(Some((actual, len, _))) = hash_blob(&self.blobs.join(hex))
            && actual == hex
        {
            self.mark_verified(hex);
            found.insert(hex.to_owned(), Found::Intact(len));
        }
        match found.get(hex) {
            None => Some(ActionProblem::MissingBlob),
            Some(Found::Corrupt(_) | Found::Unreadable) => Some(ActionProblem::CorruptBlob),
            Some(Found::Intact(len)) if *len != size => Some(ActionProblem::SizeMismatch {
                recorded: size,
                actual: *len,
            }),
            Some(Found::Intact(_)) => None,
        }
    }
}
