//! Task keys: blake3 over a canonical encoding that strata owns.
//!
//! A [`TaskKey`] names a task's output in the cache: two tasks with the same key must produce the
//! same output, and any change to what a task reads must change its key. So the bytes behind a
//! key are a contract, written down here, and never `std::hash::Hash`, `Debug` or serde output,
//! all of which may change with a compiler, a crate version or a field rename. Types feed the
//! hasher through the [`CacheKey`] trait, in an order their impl fixes.
//!
//! # Encoding (key schema 2)
//!
//! The hasher starts with [`KEY_SCHEMA`] as 4 bytes little-endian, then the domain (for example
//! `task/layer`) as a string token. Every value after that is a token: one tag byte, then its
//! payload. All integers are little-endian; every length and count is a `u64`.
//!
//! | tag    | token                      | payload                                          |
//! |--------|----------------------------|--------------------------------------------------|
//! | `0x01` | [`KeyHasher::u64`]         | 8 bytes                                          |
//! | `0x02` | [`KeyHasher::bool`]        | 1 byte, `0` or `1`                               |
//! | `0x03` | [`KeyHasher::bytes`]       | length, then the bytes                           |
//! | `0x04` | [`KeyHasher::str`]         | length, then the UTF-8 bytes                     |
//! | `0x05` | [`KeyHasher::field`]       | length, then the field name                      |
//! | `0x06` | [`KeyHasher::list`]        | count, then each item's tokens                   |
//! | `0x07` | [`KeyHasher::key`]         | the 32 bytes of a [`TaskKey`]                    |
//! | `0x08` | `None`                     | nothing                                          |
//! | `0x09` | `Some(v)`                  | `v`'s tokens                                     |
//! | `0x0a` | map ([`BTreeMap`])         | count, then each key's and value's tokens        |
//! | `0x0b` | [`KeyHasher::sorted_strs`] | count, then each string as a `0x04` token        |
//!
//! A map's entries come in key order; [`KeyHasher::sorted_strs`] sorts its strings by their
//! bytes and drops duplicates first. A [`BTreeSet`] is a `0x06` list in its own order. Tuples are
//! their items' tokens in order; a [`SourceFile`](crate::SourceFile) is its path (`0x04`), mode
//! (`0x01`) and content digest (`0x03`).
//!
//!
//! Why this shape: every token says what it is and how long it is, so a stream of tokens reads
//! back in exactly one way. Two different sequences of calls therefore hash different bytes:
//! `"ab","c"` is not `"a","bc"`, a `u64` is not the length of a string, a list of two is not a
//! list of one followed by another value. A [`CacheKey`] impl keeps that property by writing a
//! fixed sequence of tokens for its type (and a discriminant first, for an enum); field tags
//! ([`KeyHasher::field`]) make a key's structure explicit, so that moving a value from one
//! field to another changes the key.
//!
//! Changing anything in this encoding, or in the token sequence of an existing [`CacheKey`]
//! impl, changes keys already in users' caches: bump [`KEY_SCHEMA`] in the same change, so old
//! entries become clean misses instead of wrong hits.
//!
//! Schema 2 added action keys (`task/action`: a task's own definition and the output digest of
//! each task it needs), under which the store keeps outputs since early cutoff.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The version of the key encoding; part of every key.
pub const KEY_SCHEMA: u32 = 2;

const TAG_U64: u8 = 0x01;
const TAG_BOOL: u8 = 0x02;
const TAG_BYTES: u8 = 0x03;
const TAG_STR: u8 = 0x04;
const TAG_FIELD: u8 = 0x05;
const TAG_LIST: u8 = 0x06;
const TAG_KEY: u8 = 0x07;
const TAG_NONE: u8 = 0x08;
const TAG_SOME: u8 = 0x09;
const TAG_MAP: u8 = 0x0a;
const TAG_SET: u8 = 0x0b;

/// Bytes gathered before they go to blake3: big updates let blake3 hash many 1 KiB chunks at
/// once with SIMD, where a stream of 10-byte updates would go one chunk at a time.
const BUFFER: usize = 16 * 1024;

/// The 32-byte blake3 digest that names a task's output in the cache (or any other value hashed
/// with a [`KeyHasher`]). Shown and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TaskKey([u8; 32]);

impl TaskKey {
    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits: enough to tell keys apart in a plan printed for people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// Parses 64 hex digits; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<TaskKey> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl serde::Serialize for TaskKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for TaskKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = TaskKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task key: 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TaskKey, E> {
                TaskKey::from_hex(text)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_str(HexVisitor)
    }
}

/// Builds a [`TaskKey`] from tokens in the canonical encoding described in the
/// [module notes](self).
#[derive(Clone)]
pub struct KeyHasher {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("key", &self.finish())
            .finish()
    }
}

impl KeyHasher {
    /// A hasher for keys of one kind: `domain` (such as `task/layer`) keeps keys of different
    /// kinds apart even when their fields happen to encode alike.
    pub fn new(domain: &str) -> Self {
        let mut hasher = Self {
            hasher: blake3::Hasher::new(),
            buffer: Vec::with_capacity(BUFFER),
        };
        hasher.raw(&KEY_SCHEMA.to_le_bytes());
        hasher.str(domain);
        hasher
    }

    /// Adds an integer.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&[TAG_U64]).raw(&v.to_le_bytes())
    }

    /// Adds a boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.raw(&[TAG_BOOL, u8::from(v)])
    }

    /// Adds a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.raw(&[TAG_STR]).len(s.len()).raw(s.as_bytes())
    }

    /// Adds a byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.raw(&[TAG_BYTES]).len(b.len()).raw(b)
    }

    /// Names the field whose value follows: write one before each field of a key.
    pub fn field(&mut self, name: &str) -> &mut Self {
        self.raw(&[TAG_FIELD]).len(name.len()).raw(name.as_bytes())
    }

    /// Adds a list: its length, then each item in the order given.
    pub fn list<T: CacheKey>(&mut self, items: &[T]) -> &mut Self {
        self.raw(&[TAG_LIST]).len(items.len());
        for item in items {
            item.cache_key(self);
        }
        self
    }

    /// Adds a set of strings: the order in which they come does not matter, nor do duplicates.
    pub fn sorted_strs<'a>(&mut self, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let mut items: Vec<&str> = items.into_iter().collect();
        items.sort_unstable();
        items.dedup();
        self.raw(&[TAG_SET]).len(items.len());
        for item in items {
            self.str(item);
        }
        self
    }

    /// Adds another key, such as the key of a task this one needs.
    pub fn key(&mut self, k: &TaskKey) -> &mut Self {
        self.raw(&[TAG_KEY]).raw(&k.0)
    }

    /// Adds any value that knows how to feed a hasher.
    pub fn value<T: CacheKey + ?Sized>(&mut self, value: &T) -> &mut Self {
        value.cache_key(self);
        self
    }

    /// The key of everything added so far. The hasher can go on after this.
    pub fn finish(&self) -> TaskKey {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.buffer);
        TaskKey(*hasher.finalize().as_bytes())
    }

    fn option_tag(&mut self, some: bool) -> &mut Self {
        self.raw(&[if some { TAG_SOME } else { TAG_NONE }])
    }

    fn map_header(&mut self, count: usize) -> &mut Self {
        self.raw(&[TAG_MAP]).len(count)
    }

    fn len(&mut self, n: usize) -> &mut Self {
        // `usize` is at most 64 bits on every target strata runs on.
        self.raw(&(n as u64).to_le_bytes())
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        if self.buffer.len() + bytes.len() > BUFFER {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
            if bytes.len() > BUFFER {
                self.hasher.update(bytes);
                return self;
            }
        }
        self.buffer.extend_from_slice(bytes);
        self
    }
}

/// A value that can be part of a [`TaskKey`]: it writes a fixed sequence of tokens for its type,
/// so that two different values never write the same tokens (see the
/// [module notes](self)).
pub trait CacheKey {
    /// Feeds this value to the hasher.
    fn cache_key(&self, h: &mut KeyHasher);
}

impl CacheKey for str {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.str(self);
    }
}

impl CacheKey for String {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.str(self);
    }
}

impl CacheKey for u64 {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.u64(*self);
    }
}

impl CacheKey for u32 {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.u64(u64::from(*self));
    }
}

impl CacheKey for bool {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.bool(*self);
    }
}

impl CacheKey for TaskKey {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.key(self);
    }
}

impl<T: CacheKey + ?Sized> CacheKey for &T {
    fn cache_key(&self, h: &mut KeyHasher) {
        (**self).cache_key(h);
    }
}

impl<T: CacheKey> CacheKey for [T] {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.list(self);
    }
}

impl<T: CacheKey> CacheKey for Vec<T> {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.list(self);
    }
}

impl<T: CacheKey> CacheKey for Option<T> {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.option_tag(self.is_some());
        if let Some(value) = self {
            value.cache_key(h);
        }
    }
}

impl<K: CacheKey, V: CacheKey> CacheKey for BTreeMap<K, V> {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.map_header(self.len());
        for (key, value) in self {
            key.cache_key(h);
            value.cache_key(h);
        }
    }
}

/// A set is a list in its own order (the type's `Ord`), which does not depend on insertion.
impl<T: CacheKey> CacheKey for BTreeSet<T> {
    fn cache_key(&self, h: &mut KeyHasher) {
        h.raw(&[TAG_LIST]).len(self.len());
        for item in self {
            item.cache_key(h);
        }
    }
}

impl<A: CacheKey, B: CacheKey> CacheKey for (A, B) {
    fn cache_key(&self, h: &mut KeyHasher) {
        self.0.cache_key(h);
        self.1.cache_key(h);
    }
}

impl<A: CacheKey, B: CacheKey, C: CacheKey> CacheKey for (A, B, C) {
    fn cache_key(&self, h: &mut KeyHasher) {
        self.0.cache_key(h);
        self.1.cache_key(h);
        self.2.cache_key(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(build: impl FnOnce(&mut KeyHasher)) -> TaskKey {
        let mut h = KeyHasher::new("test");
        build(&mut h);
        h.finish()
    }

    #[test]
    fn length_prefixes_keep_concatenations_apart() {
        assert_ne!(
            key(|h| {
                h.str("ab").str("c");
            }),
            key(|h| {
                h.str("a").str("bc");
            })
        );
        assert_ne!(
            key(|h| {
                h.bytes(b"ab").bytes(b"");
            }),
            key(|h| {
                h.bytes(b"").bytes(b"ab");
            })
        );
        let ab_c: Vec<String> = vec!["ab".into(), "c".into()];
        let a_bc: Vec<String> = vec!["a".into(), "bc".into()];
        assert_ne!(
            key(|h| {
                h.list(&ab_c);
            }),
            key(|h| {
                h.list(&a_bc);
            })
        );
        assert_ne!(
            key(|h| {
                h.sorted_strs(["ab", "c"]);
            }),
            key(|h| {
                h.sorted_strs(["a", "bc"]);
            })
        );
    }

    #[test]
    fn list_boundaries_matter() {
        let one: Vec<Vec<u64>> = vec![vec![1, 2]];
        let two: Vec<Vec<u64>> = vec![vec![1], vec![2]];
        assert_ne!(
            key(|h| {
                h.list(&one);
            }),
            key(|h| {
                h.list(&two);
            })
        );
        assert_ne!(
            key(|h| {
                h.list(&[1_u64]).u64(2);
            }),
            key(|h| {
                h.list(&[1_u64, 2]);
            })
        );
    }

    #[test]
    fn tokens_of_different_types_differ() {
        // The length prefix of an 8-byte string is the bytes of `u64(8)`.
        assert_ne!(
            key(|h| {
                h.str("abcdefgh");
            }),
            key(|h| {
                h.u64(8).u64(u64::from_le_bytes(*b"abcdefgh"));
            })
        );
        assert_ne!(
            key(|h| {
                h.str("x");
            }),
            key(|h| {
                h.bytes(b"x");
            })
        );
        assert_ne!(
            key(|h| {
                h.str("x");
            }),
            key(|h| {
                h.field("x");
            })
        );
        assert_ne!(
            key(|h| {
                h.bool(true);
            }),
            key(|h| {
                h.u64(1);
            })
        );
        assert_ne!(
            key(|h| {
                h.value(&None::<u64>);
            }),
            key(|h| {
                h.value(&Some(0_u64));
            })
        );
        assert_ne!(
            key(|_| {}),
            key(|h| {
                h.value(&None::<u64>);
            })
        );
    }

    #[test]
    fn field_tags_matter() {
        assert_ne!(
            key(|h| {
                h.field("name").str("x").field("run").str("y");
            }),
            key(|h| {
                h.field("name").str("y").field("run").str("x");
            })
        );
        assert_ne!(
            key(|h| {
                h.field("inputs").str("x");
            }),
            key(|h| {
                h.field("needs").str("x");
            })
        );
        assert_ne!(
            key(|h| {
                h.field("a").str("x");
            }),
            key(|h| {
                h.str("x");
            })
        );
    }

    #[test]
    fn sorted_strs_ignores_order_and_duplicates() {
        let a = key(|h| {
            h.sorted_strs(["b", "a", "c"]);
        });
        assert_eq!(
            a,
            key(|h| {
                h.sorted_strs(["c", "b", "a", "a"]);
            })
        );
        assert_ne!(
            a,
            key(|h| {
                h.sorted_strs(["a", "b"]);
            })
        );
        assert_ne!(
            a,
            key(|h| {
                h.list(&["a", "b", "c"]);
            })
        );
    }

    #[test]
    fn schema_and_domain_are_part_of_the_key() {
        assert_ne!(
            KeyHasher::new("task/layer").finish(),
            KeyHasher::new("task/buildpack").finish()
        );
        // The schema, domain "test", nothing else: the bytes the module notes describe.
        let mut bytes = KEY_SCHEMA.to_le_bytes().to_vec();
        bytes.extend([TAG_STR]);
        bytes.extend(4_u64.to_le_bytes());
        bytes.extend(b"test");
        assert_eq!(
            KeyHasher::new("test").finish().as_bytes(),
            blake3::hash(&bytes).as_bytes()
        );
        let mut other_schema = bytes.clone();
        other_schema[0] += 1;
        assert_ne!(
            KeyHasher::new("test").finish().as_bytes(),
            blake3::hash(&other_schema).as_bytes()
        );
    }

    /// A string-like token, written by hand.
    fn text(out: &mut Vec<u8>, tag: u8, s: &str) {
        out.push(tag);
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    #[test]
    fn pinned_encoding() {
        // A change here changes every key in users' caches: bump KEY_SCHEMA with it.
        let mut env = BTreeMap::new();
        env.insert("B".to_string(), "2".to_string());
        env.insert("A".to_string(), "1".to_string());
        let k = key(|h| {
            h.field("kind").str("layer");
            h.field("launch").bool(true);
            h.field("env").value(&env);
            h.field("needs").list(&[TaskKey::from_bytes([7; 32])]);
            h.field("globs").sorted_strs(["b", "a"]);
            h.field("size").value(&Some(3_u64));
        });
        // The same bytes, written out from the table in the module notes.
        let mut bytes = KEY_SCHEMA.to_le_bytes().to_vec();
        text(&mut bytes, 0x04, "test");
        text(&mut bytes, 0x05, "kind");
        text(&mut bytes, 0x04, "layer");
        text(&mut bytes, 0x05, "launch");
        bytes.extend([0x02, 1]);
        text(&mut bytes, 0x05, "env");
        bytes.push(0x0a);
        bytes.extend(2_u64.to_le_bytes());
        for s in ["A", "1", "B", "2"] {
            text(&mut bytes, 0x04, s);
        }
        text(&mut bytes, 0x05, "needs");
        bytes.push(0x06);
        bytes.extend(1_u64.to_le_bytes());
        bytes.push(0x07);
        bytes.extend([7; 32]);
        text(&mut bytes, 0x05, "globs");
        bytes.push(0x0b);
        bytes.extend(2_u64.to_le_bytes());
        text(&mut bytes, 0x04, "a");
        text(&mut bytes, 0x04, "b");
        text(&mut bytes, 0x05, "size");
        bytes.push(0x09);
        bytes.push(0x01);
        bytes.extend(3_u64.to_le_bytes());
        assert_eq!(k.as_bytes(), blake3::hash(&bytes).as_bytes());
        assert_eq!(
            k.hex(),
            "0850d43fa9da4ce3375fa93dc12917bc98a40cc26aff7261a1e510e4ba0c734f"
        );
    }

    #[test]
    fn long_input_goes_through_the_buffer_unchanged() {
        let big = vec![5_u8; 3 * BUFFER + 17];
        let mut streamed = KeyHasher::new("test");
        for chunk in big.chunks(1000) {
            streamed.raw(chunk);
        }
        let mut whole = KeyHasher::new("test");
        whole.raw(&big);
        assert_eq!(streamed.finish(), whole.finish());
    }

    #[test]
    fn hex_round_trip_and_serde() {
        let k = key(|h| {
            h.u64(1);
        });
        assert_eq!(k.hex().len(), 64);
        assert_eq!(k.short(), k.hex()[..12]);
        assert_eq!(k.to_string(), k.hex());
        assert_eq!(TaskKey::from_hex(&k.hex()), Some(k));
        assert_eq!(TaskKey::from_hex(&k.hex().to_uppercase()), Some(k));
        assert_eq!(TaskKey::from_hex(&k.hex()[1..]), None);
        assert_eq!(TaskKey::from_hex("zz"), None);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{k}\""));
        assert_eq!(serde_json::from_str::<TaskKey>(&json).unwrap(), k);
        assert!(serde_json::from_str::<TaskKey>("\"00\"").is_err());
    }

    proptest! {
        #[test]
        fn sorted_strs_is_order_insensitive(
            (items, shuffled) in proptest::collection::vec("[a-c]{0,3}", 0..8)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            prop_assert_eq!(
                key(|h| { h.sorted_strs(items.iter().map(String::as_str)); }),
                key(|h| { h.sorted_strs(shuffled.iter().map(String::as_str)); })
            );
        }

        #[test]
        fn distinct_string_lists_give_distinct_keys(
            a in proptest::collection::vec("[ab]{0,3}", 0..4),
            b in proptest::collection::vec("[ab]{0,3}", 0..4),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(key(|h| { h.list(&a); }), key(|h| { h.list(&b); }));
            let flat = |v: &[String]| key(|h| { for s in v { h.str(s); } });
            prop_assert_ne!(flat(&a), flat(&b));
        }
    }
}
