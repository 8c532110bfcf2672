//! Sharding a workspace across CI runners: `--shard K/N` picks the services shard K of N
//! builds, by rendezvous (highest random weight) hashing of each service's name.
//!
//! Each service goes to the shard whose weight `blake3(schema, K, N, name)` is highest. That
//! needs no list of the other services, so N runners that each see the whole workspace agree
//! with no coordination, every service is in exactly one shard, and adding or removing a
//! service moves no other service (its weights do not change). Changing N does move services,
//! as any such scheme must.
//!
//! A task that services of several shards share (a runtime layer, say) is in each of those
//! shards' plans: it runs in every shard that needs it and does not find it in the cache. With
//! a remote cache and shards that start together, two shards may both build it (and push the
//! same entry, which is harmless: entries are content-addressed, one manifest per key); a
//! shard that starts after another pushed it gets a hit. Waiting for another shard instead
//! would make every shard depend on the slowest runner and on a lock service the registry does
//! not have.

use std::fmt;
use std::str::FromStr;

use crate::key::KeyHasher;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a `K/N` does not name a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard `{text}`: {why} (expected K/N with 1 <= K <= N, as in 2/3)")]
pub struct ShardError {
    text: String,
    why: &'static str,
}

impl Shard {
    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`ShardError`] unless `1 <= index <= count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        let err = |why| ShardError {
            text: format!("{index}/{count}"),
            why,
        };
        if count == 0 {
            return Err(err("there is no shard of 0"));
        }
        if index == 0 || index > count {
            return Err(err("K is out of range"));
        }
        Ok(Self { index, count })
    }

    /// Its number, 1-based.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard (1-based) of `count` that builds the service `name`.
    pub fn of(name: &str, count: u32) -> u32 {
        (1..=count)
            .max_by_key(|k| (weight(name, *k, count), *k))
            .unwrap_or(1)
    }

    /// Whether this shard builds the service `name`.
    pub fn contains(&self, name: &str) -> bool {
        Self::of(name, self.count) == self.index
    }
}

/// The weight of shard `k` of `count` for `name`.
fn weight(name: &str, k: u32, count: u32) -> [u8; 32] {
    let mut h = KeyHasher::new("shard/rendezvous");
    h.u64(u64::from(k)).u64(u64::from(count)).str(name);
    *h.finish().as_bytes()
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, ShardError> {
        let err = |why| ShardError {
            text: text.to_owned(),
            why,
        };
        let (k, n) = text.split_once('/').ok_or_else(|| err("no `/`"))?;
        let number = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
        };
        let (Some(k), Some(n)) = (number(k), number(n)) else {
            return Err(err("K and N must be whole numbers"));
        };
        Self::new(k, n).map_err(|e| ShardError {
            text: text.to_owned(),
            why: e.why,
        })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in [
            "0/3", "4/3", "1/0", "0/0", "junk", "1/", "/3", "1/3/4", "+1/3", "-1/3", " 1/3",
            "1.0/3", "",
        ] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_service_is_in_exactly_one_shard() {
        let names: Vec<String> = (0..300).map(|i| format!("svc-{i:03}")).collect();
        for count in 1..=7 {
            let mut sizes = vec![0usize; count as usize];
            for name in &names {
                let owners: Vec<u32> = (1..=count)
                    .filter(|k| Shard::new(*k, count).unwrap().contains(name))
                    .collect();
                assert_eq!(owners.len(), 1, "{name} in {owners:?} of {count}");
                sizes[owners[0] as usize - 1] += 1;
            }
            // Roughly even: no shard of 300 services gets under half its share.
            let share = names.len() / count as usize;
            assert!(sizes.iter().all(|s| *s * 2 >= share), "{count}: {sizes:?}");
        }
    }

    #[test]
    fn the_assignment_is_pinned() {
        // Runners of different strata builds must agree: the hash may not drift.
        let got: Vec<u32> = ["api", "auth", "billing", "docs", "search"]
            .iter()
            .map(|n| Shard::of(n, 3))
            .collect();
        assert_eq!(got, PINNED);
    }
    const PINNED: [u32; 5] = [1, 2, 2, 2, 1];

    proptest! {
        /// Adding a service moves no other service to another shard.
        #[test]
        fn adding_a_service_moves_only_that_service(
            names in proptest::collection::btree_set("[a-z][a-z0-9-]{0,12}", 1..40),
            added in "[a-z][a-z0-9-]{0,12}",
            count in 1u32..9,
        ) {
            let before: Vec<u32> = names.iter().map(|n| Shard::of(n, count)).collect();
            let mut grown = names.clone();
            grown.insert(added.clone());
            for (name, shard) in names.iter().zip(before) {
                prop_assert_eq!(Shard::of(name, count), shard);
            }
            let shard = Shard::of(&added, count);
            prop_assert!((1..=count).contains(&shard));
        }
    }
}
