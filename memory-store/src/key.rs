//! Stored keys and the borrowed lookup key, so a lookup through a prefixed
//! handle never builds the `prefix:key` string (measured: concatenating it
//! into a reused buffer cost ~18 ns a lookup, nearly a whole bare
//! quick_cache hit).
//!
//! Identity stays the full `prefix:key` string: `root.get("users:1")` and
//! `root.namespace("users").get("1")` find the same entry. For that, the
//! hash must not depend on where the string is split into prefix and key:
//! it is the hash of the full string read as consecutive 8-byte words from
//! its first byte ([`StringHasher`]), whatever parts it arrives in. A
//! handle hashes `prefix:` once ([`PrefixHash`]); a lookup continues from
//! there with the key's bytes only. (An earlier version hashed one
//! `:`-separated segment at a time; scanning for the colons and one hasher
//! call per segment cost more than the bare quick_cache lookup's hashing.)
//!
//! The keys compute their final hash themselves (one process-wide random
//! seed), and the cache's hasher ([`CacheHasher`]) passes it through.

use compact_str::CompactString;
use quick_cache::{DefaultHashBuilder, Equivalent};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;

/// The hash of a string fed in parts: the same for the same string however
/// it is split, because the string is mixed in as its consecutive 8-byte
/// little-endian words from its first byte, then the zero-padded rest with
/// the length — so `"users:" + "1"` and `"users:1"` hash alike.
///
/// Each word is mixed with foldhash's step (quick_cache's default hasher):
/// a 64×64→128-bit multiply by a random per-process constant, the halves
/// xor-ed. The seeds come from foldhash's random state, so colliding keys
/// cannot be precomputed. foldhash itself cannot be fed in parts: it mixes
/// each call's length in, and buffering words in its integer sponge cost
/// as much as the segment-by-segment hashing this replaced.
#[derive(Clone)]
struct StringHasher {
    accumulator: u64,
    multiplier: u64,
    finisher: u64,
    /// The bytes after the last whole word, first byte lowest.
    rest: u64,
    /// Bytes fed so far.
    len: usize,
}

/// foldhash's mixing step: the product's high and low halves xor-ed.
#[inline(always)]
fn folded_multiply(x: u64, y: u64) -> u64 {
    let product = u128::from(x) * u128::from(y);
    (product as u64) ^ ((product >> 64) as u64)
}

impl StringHasher {
    fn new() -> StringHasher {
        static SEEDS: OnceLock<[u64; 3]> = OnceLock::new();
        let [accumulator, multiplier, finisher] = *SEEDS.get_or_init(|| {
            let random = DefaultHashBuilder::default();
            // Odd: a multiplier that is a power of two times something
            // would discard low bits.
            [random.hash_one(0u8), random.hash_one(1u8) | 1, random.hash_one(2u8) | 1]
        });
        StringHasher { accumulator, multiplier, finisher, rest: 0, len: 0 }
    }

    #[inline(always)]
    fn mix(&mut self, word: u64) {
        self.accumulator = folded_multiply(self.accumulator ^ word, self.multiplier);
    }

    /// Feed the next part of the string. Always inlined: a lookup feeds one
    /// short key, and the call cost a noticeable part of an L1 hit (see
    /// [`LookupKey`]'s `Hash`).
    #[inline(always)]
    fn write(&mut self, mut bytes: &[u8]) {
        let filled = self.len % 8;
        self.len += bytes.len();
        if filled != 0 {
            let room = 8 - filled;
            if bytes.len() < room {
                self.rest |= short_word(bytes) << (8 * filled);
                return;
            }
            let (head, tail) = bytes.split_at(room);
            self.mix(self.rest | short_word(head) << (8 * filled));
            bytes = tail;
        }
        let (words, tail) = bytes.as_chunks::<8>();
        for word in words {
            self.mix(u64::from_le_bytes(*word));
        }
        self.rest = short_word(tail);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The length tells "a" from "a\0" (the same zero-padded word). A
        // second multiply spreads a low-entropy rest (the digits of an id)
        // over every bit: hashbrown picks buckets by the low bits.
        let mixed = folded_multiply(self.accumulator ^ self.rest, self.multiplier);
        folded_multiply(mixed ^ self.len as u64, self.finisher)
    }
}

/// Up to 7 bytes as a little-endian word (first byte lowest), without a
/// copy loop: two overlapping 4-byte reads agree on the bytes they share.
#[inline]
fn short_word(bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len() < 8);
    match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        (Some(low), Some(high)) => {
            u64::from(u32::from_le_bytes(*low)) | u64::from(u32::from_le_bytes(*high)) << (8 * (bytes.len() - 4))
        }
        _ => bytes.iter().rev().fold(0, |word, &byte| word << 8 | u64::from(byte)),
    }
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
        let mut hasher = StringHasher::new();
        hasher.write(self.0.as_bytes());
        state.write_u64(hasher.finish());
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &StoredKey) -> bool {
        self.0 == other.0
    }
}

impl Eq for StoredKey {}

/// A handle's `prefix:` already hashed.
#[derive(Clone)]
pub(crate) struct PrefixHash {
    hasher: StringHasher,
}

impl PrefixHash {
    /// The hash state after `prefix` and its `:` (nothing for `""`).
    pub fn new(prefix: &str) -> PrefixHash {
        let mut hasher = StringHasher::new();
        if !prefix.is_empty() {
            hasher.write(prefix.as_bytes());
            hasher.write(b":");
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

// The lookup's hash and comparison are inlined into quick_cache's lookup:
// out of line, each was a call of its own on every L1 hit, and a hit of an
// `Arc<String>` took 57–58 ns instead of 48–50 ns (`User`: 86–88 vs
// 82–86; scratch loop of 4 M hits, session 20).
impl Hash for LookupKey<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut hasher = self.prefix_hash.hasher.clone();
        hasher.write(self.key.as_bytes());
        state.write_u64(hasher.finish());
    }
}

impl Equivalent<StoredKey> for LookupKey<'_> {
    #[inline]
    fn equivalent(&self, stored: &StoredKey) -> bool {
        let full = stored.0.as_bytes();
        let (prefix, key) = (self.prefix.as_bytes(), self.key.as_bytes());
        if prefix.is_empty() {
            return full.len() == key.len() && same_bytes(full, key);
        }
        // The length check first makes `full[prefix.len()]` in bounds.
        full.len() == prefix.len() + 1 + key.len()
            && full[prefix.len()] == b':'
            && same_bytes(&full[prefix.len() + 1..], key)
            && same_bytes(&full[..prefix.len()], prefix)
    }
}

/// `one == other` for slices of the same length. Keys and prefixes are
/// short: up to 16 bytes, two overlapping word comparisons instead of a
/// call to `memcmp`, whose call and size dispatch outweigh comparing a few
/// bytes (a prefixed lookup compares two parts).
#[inline(always)]
fn same_bytes(one: &[u8], other: &[u8]) -> bool {
    debug_assert_eq!(one.len(), other.len());
    let word = |bytes: &[u8; 8]| u64::from_ne_bytes(*bytes);
    let half = |bytes: &[u8; 4]| u32::from_ne_bytes(*bytes);
    match one.len() {
        8..=16 => {
            one.first_chunk().map(word) == other.first_chunk().map(word)
                && one.last_chunk().map(word) == other.last_chunk().map(word)
        }
        4..=7 => {
            one.first_chunk().map(half) == other.first_chunk().map(half)
                && one.last_chunk().map(half) == other.last_chunk().map(half)
        }
        _ => one == other,
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
    fn byte_comparison_sees_every_byte_at_every_length() {
        for len in 0..=40 {
            let one: Vec<u8> = (0..len as u8).collect();
            assert!(same_bytes(&one, &one.clone()), "{len}");
            for at in 0..len {
                let mut other = one.clone();
                other[at] ^= 0x80;
                assert!(!same_bytes(&one, &other), "{len} bytes, differing at {at}");
            }
        }
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
    fn a_string_hashes_alike_however_it_is_split() {
        let text = "bentocache:users:123456789:avatar:large:x";
        let whole = {
            let mut hasher = StringHasher::new();
            hasher.write(text.as_bytes());
            hasher.finish()
        };
        for first in 0..=text.len() {
            for second in first..=text.len() {
                let mut hasher = StringHasher::new();
                for part in [&text[..first], &text[first..second], &text[second..]] {
                    hasher.write(part.as_bytes());
                }
                assert_eq!(hasher.finish(), whole, "split at {first} and {second}");
            }
        }
        // Every prefix length, so the prefix leaves 0 to 7 bytes pending.
        for colon in text.match_indices(':').map(|(at, _)| at) {
            let (prefix, key) = (&text[..colon], &text[colon + 1..]);
            let prefix_hash = PrefixHash::new(prefix);
            assert_eq!(hash(lookup(prefix, &prefix_hash, key)), hash(StoredKey::new("", text)), "{prefix} / {key}");
        }
    }

    #[test]
    fn different_strings_hash_differently() {
        let hash = |key: &str| hash(StoredKey::new("", key));
        for (one, other) in [
            ("a:b", "ab"),
            ("a::b", "a:b"),
            ("a:b", "b:a"),
            ("a", "a\0"),
            ("12345678", "12345678\0\0\0\0\0\0\0\0"),
            ("", "\0"),
        ] {
            assert_ne!(hash(one), hash(other), "{one:?} / {other:?}");
        }
    }

    #[test]
    fn hashes_spread_over_buckets_and_control_bytes() {
        // What hashbrown uses: low bits pick the bucket, the top 7 bits
        // are the control byte. 2^16 keys in 2^16 buckets: a random hash
        // leaves ~1/e of them empty and no bucket with more than ~9.
        let keys = 1 << 16;
        type KeyShape = (&'static str, fn(usize) -> String);
        let shapes: [KeyShape; 3] = [
            ("users", |i| format!("key:{i}")),
            ("", |i| format!("{i}:profile")),
            ("bentocache:tenant-7", |i| format!("orders:{}:line:{}", i / 16, i % 16)),
        ];
        for (prefix, key) in shapes {
            let mut buckets = vec![0u32; keys];
            let mut controls = [0u32; 128];
            for i in 0..keys {
                let hash = hash(StoredKey::new(prefix, &key(i)));
                buckets[hash as usize % keys] += 1;
                controls[(hash >> 57) as usize] += 1;
            }
            let empty = buckets.iter().filter(|&&count| count == 0).count() as f64 / keys as f64;
            assert!((0.34..0.40).contains(&empty), "{prefix}: {empty} of the buckets empty");
            assert!(buckets.iter().all(|&count| count <= 12), "{prefix}: a bucket got {:?}", buckets.iter().max());
            let expected = keys as u32 / 128;
            assert!(controls.iter().all(|&count| count.abs_diff(expected) < expected / 4), "{prefix}: {controls:?}");
        }
    }
}
