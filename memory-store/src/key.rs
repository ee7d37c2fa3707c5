//! Stored keys and the borrowed lookup key, so a lookup through a prefixed
//! handle never builds the `prefix:key` string (measured: concatenating it
//! into a reused buffer cost ~18 ns a lookup, nearly a whole bare
//! quick_cache hit).
//!
//! Identity stays the full `prefix:key` string: `root.get("users:1")` and
//! `root.namespace("users").get("1")` find the same entry. For that, the
//! hash must not depend on where the string is split into prefix and key,
//! so it is fed one `:`-separated segment at a time. Every split falls on a
//! `:`, so the stored key and every (prefix, key) lookup spelling it yield
//! the same segments and thus the same hash. A handle hashes its prefix's
//! segments once ([`PrefixHash`]); a lookup hashes only the key's.
//!
//! The keys compute their final hash themselves (one process-wide random
//! seed), and the cache's hasher ([`CacheHasher`]) passes it through.

use compact_str::CompactString;
use quick_cache::{DefaultHashBuilder, Equivalent};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;

type SegmentHasher = <DefaultHashBuilder as BuildHasher>::Hasher;

/// The seed of every key hash in the process: random per process, so
/// colliding keys cannot be precomputed.
fn segment_hasher() -> SegmentHasher {
    static SEED: OnceLock<DefaultHashBuilder> = OnceLock::new();
    SEED.get_or_init(DefaultHashBuilder::default).build_hasher()
}

/// Feed the `:`-separated segments of `text` to `state`. The hasher mixes
/// each write's length in, so `a:b` and `ab` hash differently.
#[inline]
fn hash_segments<H: Hasher>(text: &str, state: &mut H) {
    let mut rest = text.as_bytes();
    while let Some(colon) = rest.iter().position(|&byte| byte == b':') {
        state.write(&rest[..colon]);
        rest = &rest[colon + 1..];
    }
    state.write(rest);
}

/// The full `prefix:key` string of a stored entry, inline up to 24 bytes
/// (`compact_str`): most keys fit, and a heap key costs a 32-byte
/// allocator chunk per entry on top of its pointer (1 M entries: 32 MB).
/// Longer keys take one exact allocation, as a boxed `str` would.
pub(crate) struct StoredKey(CompactString);

impl StoredKey {
    /// The key `key` stored under `prefix` (`""` for none).
    pub fn new(prefix: &str, key: &str) -> StoredKey {
        if prefix.is_empty() {
            return StoredKey(CompactString::new(key));
        }
        let mut full = CompactString::with_capacity(prefix.len() + 1 + key.len());
        full.push_str(prefix);
        full.push(':');
        full.push_str(key);
        StoredKey(full)
    }

    /// The full `prefix:key` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length in bytes of the full string.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut hasher = segment_hasher();
        hash_segments(&self.0, &mut hasher);
        state.write_u64(hasher.finish());
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &StoredKey) -> bool {
        self.0 == other.0
    }
}

impl Eq for StoredKey {}

/// A handle's prefix with its segments already hashed.
#[derive(Clone)]
pub(crate) struct PrefixHash {
    hasher: SegmentHasher,
}

impl PrefixHash {
    /// The hash state after `prefix`'s segments (none for `""`).
    pub fn new(prefix: &str) -> PrefixHash {
        let mut hasher = segment_hasher();
        if !prefix.is_empty() {
            hash_segments(prefix, &mut hasher);
        }
        PrefixHash { hasher }
    }
}

/// `key` under `prefix`, as borrowed parts: what `get`, `has`, `pull` and
/// `remove` hash and compare instead of a concatenated string.
#[derive(Clone, Copy)]
pub(crate) struct LookupKey<'a> {
    /// The handle's prefix without the trailing `:`, `""` for none.
    pub prefix: &'a str,
    /// [`PrefixHash`] of `prefix`.
    pub prefix_hash: &'a PrefixHash,
    pub key: &'a str,
}

impl Hash for LookupKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut hasher = self.prefix_hash.hasher.clone();
        hash_segments(self.key, &mut hasher);
        state.write_u64(hasher.finish());
    }
}

impl Equivalent<StoredKey> for LookupKey<'_> {
    fn equivalent(&self, stored: &StoredKey) -> bool {
        let full = stored.0.as_bytes();
        let (prefix, key) = (self.prefix.as_bytes(), self.key.as_bytes());
        if prefix.is_empty() {
            return full == key;
        }
        // The length check first makes `full[prefix.len()]` in bounds.
        full.len() == prefix.len() + 1 + key.len()
            && full[prefix.len()] == b':'
            && full[prefix.len() + 1..] == *key
            && full[..prefix.len()] == *prefix
    }
}

/// The cache's hasher: keys hand it their finished hash (`write_u64`).
#[derive(Default)]
pub(crate) struct PassThroughHasher {
    hash: u64,
}

impl Hasher for PassThroughHasher {
    fn write_u64(&mut self, hash: u64) {
        self.hash = hash;
    }

    /// Never called by [`StoredKey`] or [`LookupKey`], the only types this
    /// cache hashes; folds the bytes in (FNV-1a) rather than panicking.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The cache's [`BuildHasher`]: see [`PassThroughHasher`].
pub(crate) type CacheHasher = BuildHasherDefault<PassThroughHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(value: impl Hash) -> u64 {
        CacheHasher::default().hash_one(value)
    }

    fn lookup<'a>(prefix: &'a str, prefix_hash: &'a PrefixHash, key: &'a str) -> LookupKey<'a> {
        LookupKey { prefix, prefix_hash, key }
    }

    #[test]
    fn every_split_of_a_key_hashes_and_compares_like_the_stored_key() {
        let stored = StoredKey::new("bentocache:users", "1:avatar");
        for (prefix, key) in
            [("", "bentocache:users:1:avatar"), ("bentocache", "users:1:avatar"), ("bentocache:users:1", "avatar")]
        {
            let prefix_hash = PrefixHash::new(prefix);
            let lookup = lookup(prefix, &prefix_hash, key);
            assert_eq!(hash(lookup), hash(&stored), "{prefix} / {key}");
            assert!(lookup.equivalent(&stored), "{prefix} / {key}");
        }
    }

    #[test]
    fn different_keys_differ() {
        let stored = StoredKey::new("users", "1");
        for (prefix, key) in [("users", "2"), ("users", "1:"), ("user", "s:1"), ("usersx", "1"), ("", "users1")] {
            let prefix_hash = PrefixHash::new(prefix);
            assert!(!lookup(prefix, &prefix_hash, key).equivalent(&stored), "{prefix} / {key}");
        }
        let users = PrefixHash::new("users");
        assert!(!lookup("users", &users, "").equivalent(&StoredKey::new("", "users")));
        assert!(lookup("users", &users, "").equivalent(&StoredKey::new("", "users:")));
    }

    #[test]
    fn short_keys_are_inline_and_long_ones_round_trip() {
        assert_eq!(size_of::<StoredKey>(), 24);
        let short = StoredKey::new("users", "key:123456789");
        assert!(!short.0.is_heap_allocated(), "24 bytes or fewer need no allocation");
        let long = StoredKey::new("bentocache:users", "1:avatar:large");
        assert!(long.0.is_heap_allocated());
        assert_eq!((short.as_str(), long.as_str()), ("users:key:123456789", "bentocache:users:1:avatar:large"));
        let prefix_hash = PrefixHash::new("bentocache");
        let lookup = lookup("bentocache", &prefix_hash, "users:1:avatar:large");
        assert_eq!(hash(lookup), hash(&long));
        assert!(lookup.equivalent(&long));
    }

    #[test]
    fn segment_boundaries_change_the_hash() {
        let hash = |key: &str| hash(StoredKey::new("", key));
        assert_ne!(hash("a:b"), hash("ab"));
        assert_ne!(hash("a::b"), hash("a:b"));
        assert_ne!(hash("a:b"), hash("b:a"));
    }
}
