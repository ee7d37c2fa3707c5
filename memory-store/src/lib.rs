//! # bento-memory-store
//!
//! The in-process key/value store shared by Bento's built-in L1 (typed,
//! decoded values) and the `memory` driver plugin (byte values): one
//! implementation of TTL, prefixes, namespaces and size limits, on top of
//! `quick_cache` (no hand-written LRU).
//!
//! Not for: anything remote or persistent; grace periods, tags and locks
//! live in the host's cache manager.
//!
//! ```
//! use bento_memory_store::{MemoryStore, MemoryStoreOptions};
//! use std::time::Duration;
//!
//! let store: MemoryStore<Vec<u8>> = MemoryStore::new(&MemoryStoreOptions::default(), "app");
//! store.insert("user:1", b"ada".to_vec(), Some(Duration::from_secs(60)), 3);
//! assert_eq!(store.namespace("user").get("1"), Some(b"ada".to_vec()));
//! ```

mod key;
mod slot;

use bento_plugin_api::Prefix;
use key::{CacheHasher, LookupKey, PrefixHash, StoredKey};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use slot::Clock;
pub use slot::Slot;
use std::sync::Arc;
use std::time::Duration;

/// Size limits of a [`MemoryStore`]. Every limit defaults to "none".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
// Schemas are read by operators (`bento plugins`): plain prose, no links.
#[schemars(description = "Size limits of the in-memory store. Every limit defaults to \"none\".")]
pub struct MemoryStoreOptions {
    /// Maximum number of entries; least valuable entries are evicted first.
    /// Default: unbounded.
    #[serde(default)]
    pub max_items: Option<u64>,
    /// Maximum total size in bytes of all entries (keys + values as
    /// reported by the caller); in options, bytes or `"64mb"`. Default:
    /// unbounded.
    #[serde(default, deserialize_with = "bento_plugin_api::toolkit::optional_size")]
    #[schemars(with = "Option<bento_plugin_api::toolkit::HumanSize>")]
    pub max_size: Option<u64>,
    /// Entries larger than this many bytes are not stored; in options,
    /// bytes or `"1mb"`. Default: no limit.
    #[serde(default, deserialize_with = "bento_plugin_api::toolkit::optional_size")]
    #[schemars(with = "Option<bento_plugin_api::toolkit::HumanSize>")]
    pub max_entry_size: Option<u64>,
}

impl MemoryStoreOptions {
    /// No limits (the default); chain the setters below.
    ///
    /// ```
    /// let options = bento_memory_store::MemoryStoreOptions::new().max_items(10_000).max_entry_size(1 << 20);
    /// assert_eq!(options.max_items, Some(10_000));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `items` entries.
    pub fn max_items(mut self, items: u64) -> Self {
        self.max_items = Some(items);
        self
    }

    /// At most `bytes` bytes in all.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Entries above `bytes` bytes are not stored.
    pub fn max_entry_size(mut self, bytes: u64) -> Self {
        self.max_entry_size = Some(bytes);
        self
    }
}

#[derive(Clone)]
struct SlotWeighter;

impl<V> Weighter<StoredKey, Slot<V>> for SlotWeighter {
    fn weight(&self, _key: &StoredKey, slot: &Slot<V>) -> u64 {
        slot.weight()
    }
}

type SlotCache<V> =
    Cache<StoredKey, Slot<V>, SlotWeighter, CacheHasher, quick_cache::sync::DefaultLifecycle<StoredKey, Slot<V>>>;

struct Shared<V> {
    cache: SlotCache<V>,
    clock: Clock,
    /// Whether quick_cache's weight limit counts entries (only `max_items`
    /// set: every entry weighs 1) rather than bytes.
    counts_items: bool,
    /// Every entry weighs at least this much, so that `max_size` and
    /// `max_items` are both honoured by quick_cache's single weight limit.
    min_weight: u64,
    max_entry_size: Option<u64>,
    /// The weight one shard holds: a larger entry cannot be stored. Kept
    /// here because quick_cache computes it by locking every shard.
    shard_capacity: u64,
}

/// A concurrent in-memory store with per-entry TTL, `prefix:key` layout and
/// cheap namespace handles sharing one cache.
pub struct MemoryStore<V> {
    shared: Arc<Shared<V>>,
    prefix: Prefix,
    prefix_hash: PrefixHash,
}

impl<V> Clone for MemoryStore<V> {
    fn clone(&self) -> Self {
        MemoryStore { shared: self.shared.clone(), prefix: self.prefix.clone(), prefix_hash: self.prefix_hash.clone() }
    }
}

impl<V: Clone + Send + Sync + 'static> MemoryStore<V> {
    /// A new, empty store whose root handle has `prefix`.
    pub fn new(options: &MemoryStoreOptions, prefix: &str) -> Self {
        let (estimated_items, capacity, min_weight) = match (options.max_items, options.max_size) {
            (Some(items), Some(size)) => (items, size.max(1), (size / items.max(1)).max(1)),
            (Some(items), None) => (items, items.max(1), 1),
            (None, Some(size)) => ((size / 256).clamp(64, 1 << 20), size.max(1), 1),
            (None, None) => (16 * 1024, u64::MAX / 2, 1),
        };
        let cache = Cache::with(
            usize::try_from(estimated_items.max(16)).unwrap_or(usize::MAX),
            capacity,
            SlotWeighter,
            CacheHasher::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        let shard_capacity = cache.capacity() / cache.num_shards() as u64;
        let shared = Shared {
            cache,
            shard_capacity,
            clock: Clock::new(),
            counts_items: options.max_items.is_some() && options.max_size.is_none(),
            min_weight,
            max_entry_size: options.max_entry_size,
        };
        MemoryStore::with_prefix(Arc::new(shared), Prefix::new(prefix))
    }

    fn with_prefix(shared: Arc<Shared<V>>, prefix: Prefix) -> Self {
        let prefix_hash = PrefixHash::new(prefix.as_str());
        MemoryStore { shared, prefix, prefix_hash }
    }

    /// A handle on `prefix:namespace` sharing this store.
    pub fn namespace(&self, namespace: &str) -> Self {
        MemoryStore::with_prefix(self.shared.clone(), self.prefix.namespace(namespace))
    }

    /// This handle's prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    fn lookup<'a>(&'a self, key: &'a str) -> LookupKey<'a> {
        LookupKey { prefix: self.prefix.as_str(), prefix_hash: &self.prefix_hash, key }
    }

    /// The live value of `key`. An expired entry is removed and not returned.
    #[inline]
    pub fn get(&self, key: &str) -> Option<V> {
        let lookup = self.lookup(key);
        let slot = self.shared.cache.get(&lookup)?;
        if slot.is_live(&self.shared.clock) {
            Some(slot.value)
        } else {
            self.remove_if_expired(lookup);
            None
        }
    }

    /// The value of `key` without checking its physical expiry, for a
    /// caller that applies a stricter expiry of its own (the host's L1
    /// checks the logical expiration, never later than the physical one).
    /// Saves a clock read on the hit path; an expired entry is left for
    /// [`MemoryStore::get`] or [`MemoryStore::prune`] to remove.
    #[inline]
    pub fn get_ignoring_expiry(&self, key: &str) -> Option<V> {
        self.get_slot_ignoring_expiry(key).map(Slot::into_inner)
    }

    /// [`MemoryStore::get_ignoring_expiry`], handing out the clone as
    /// quick_cache returned it, slot and all, for the caller to read in
    /// place: moving the value out of its slot copies it, and the copy's
    /// wide loads of what the lookup had just written with narrower
    /// stores stall the CPU (store forwarding fails). Reading it in place,
    /// the host's L1 hit of an `Arc<String>` took 51 ns instead of 60 on
    /// the benchmark VM (BENCHMARKS.md).
    #[inline]
    pub fn get_slot_ignoring_expiry(&self, key: &str) -> Option<Slot<V>> {
        self.shared.cache.get(&self.lookup(key))
    }

    /// True iff [`MemoryStore::get`] would return a value.
    pub fn has(&self, key: &str) -> bool {
        self.shared.cache.peek(&self.lookup(key)).is_some_and(|slot| slot.is_live(&self.shared.clock))
    }

    fn remove_if_expired(&self, lookup: LookupKey<'_>) {
        let now = self.shared.clock.now_ms();
        self.shared.cache.remove_if(&lookup, |slot| !slot.is_live_at(now));
    }

    /// Store `value` for `ttl` (`None` = forever). `weight` is the entry's
    /// size in bytes as the caller counts it (above 128 KiB it is rounded
    /// up by less than 0.002%). Returns false, storing nothing and removing
    /// any previous value, when the entry exceeds `max_entry_size` or the
    /// whole store.
    pub fn insert(&self, key: &str, value: V, ttl: Option<Duration>, weight: u64) -> bool {
        let stored_key = StoredKey::new(self.prefix.as_str(), key);
        let weight = if self.shared.counts_items {
            1
        } else {
            weight.saturating_add(stored_key.len() as u64).max(self.shared.min_weight)
        };
        let slot = Slot::new(value, ttl, weight, &self.shared.clock);
        let weight = slot.weight();
        let too_big = self.shared.max_entry_size.is_some_and(|max| weight > max) || weight > self.shared.shard_capacity;
        if too_big {
            self.shared.cache.remove(&self.lookup(key));
            return false;
        }
        self.shared.cache.insert(stored_key, slot);
        true
    }

    /// Get and remove atomically: of concurrent pulls exactly one gets it.
    pub fn pull(&self, key: &str) -> Option<V> {
        let (_, slot) = self.shared.cache.remove(&self.lookup(key))?;
        slot.is_live(&self.shared.clock).then_some(slot.value)
    }

    /// Remove `key`; true iff it existed and was live.
    pub fn remove(&self, key: &str) -> bool {
        self.shared.cache.remove(&self.lookup(key)).is_some_and(|(_, slot)| slot.is_live(&self.shared.clock))
    }

    /// Remove every entry under this handle's prefix (nested namespaces
    /// included, exact-prefix match); with an empty prefix, everything.
    pub fn clear(&self) {
        if self.prefix.is_empty() {
            self.shared.cache.clear();
        } else {
            self.shared.cache.retain(|key, _| !self.prefix.owns(key.as_str()));
        }
    }

    /// Remove every entry under this handle's prefix that `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&str, &V) -> bool) {
        self.shared.cache.retain(|key, slot| !self.prefix.owns(key.as_str()) || keep(key.as_str(), &slot.value));
    }

    /// Remove expired entries (of the whole store).
    pub fn prune(&self) {
        let now = self.shared.clock.now_ms();
        self.shared.cache.retain(|_, slot| slot.is_live_at(now));
    }

    /// Number of entries in the whole store, expired ones included until
    /// they are read or pruned.
    pub fn len(&self) -> usize {
        self.shared.cache.len()
    }

    /// True when the whole store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.shared.cache.is_empty()
    }

    /// Total accounted weight (bytes, or entries when only `max_items` is set).
    pub fn weight(&self) -> u64 {
        self.shared.cache.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(options: MemoryStoreOptions) -> MemoryStore<Vec<u8>> {
        MemoryStore::new(&options, "")
    }

    #[test]
    fn ttl_expires_with_ms_precision() {
        let s = store(MemoryStoreOptions::default());
        s.insert("k", b"v".to_vec(), Some(Duration::from_millis(50)), 1);
        assert!(s.has("k"));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(s.get("k"), None);
        assert!(!s.remove("k"));
    }

    #[test]
    fn the_lookups_ignoring_expiry_still_find_an_expired_entry_until_it_is_removed() {
        let s = store(MemoryStoreOptions::default());
        s.insert("k", b"v".to_vec(), Some(Duration::from_millis(20)), 1);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(s.get_ignoring_expiry("k"), Some(b"v".to_vec()));
        let mut slot = s.get_slot_ignoring_expiry("k").expect("not removed yet");
        assert_eq!(slot.get(), b"v");
        slot.get_mut().push(b'!');
        assert_eq!(slot.into_inner(), b"v!");
        assert_eq!(s.get_ignoring_expiry("k"), Some(b"v".to_vec()), "a clone: the stored value is unchanged");
        assert_eq!(s.get("k"), None, "`get` checks the expiry and removes the entry");
        assert!(s.get_slot_ignoring_expiry("k").is_none() && s.get_ignoring_expiry("k").is_none());
    }

    #[test]
    fn clear_is_exact_prefix() {
        let root = store(MemoryStoreOptions::default());
        root.insert("users:1", vec![1], None, 1);
        root.insert("usersAbc", vec![2], None, 1);
        root.namespace("users").clear();
        assert_eq!(root.get("users:1"), None);
        assert_eq!(root.get("usersAbc"), Some(vec![2]));
    }

    #[test]
    fn max_items_is_honoured() {
        let s = store(MemoryStoreOptions { max_items: Some(100), ..Default::default() });
        for i in 0..1000 {
            s.insert(&format!("k{i}"), vec![0; 10], None, 10);
        }
        assert!(s.len() <= 100, "{} entries", s.len());
    }

    #[test]
    fn max_items_counts_entries_not_bytes() {
        let s = store(MemoryStoreOptions { max_items: Some(1000), ..Default::default() });
        for i in 0..500 {
            s.insert(&format!("key:{i}"), vec![0; 100], None, 100);
        }
        assert_eq!(s.weight(), 500);
        assert!(s.len() >= 450, "{} entries", s.len());
    }

    #[test]
    fn a_key_is_the_same_entry_through_every_handle() {
        let root = store(MemoryStoreOptions::default());
        let users = root.namespace("app").namespace("users");
        root.insert("app:users:1:name", vec![1], None, 1);
        assert_eq!(users.get("1:name"), Some(vec![1]));
        assert_eq!(root.namespace("app:users:1").get("name"), Some(vec![1]));
        users.insert("2", vec![2], None, 1);
        assert_eq!(root.get("app:users:2"), Some(vec![2]));
        assert!(root.namespace("app").remove("users:2"));
        assert_eq!(users.get("2"), None);
        assert_eq!(root.len(), 1);
    }

    #[test]
    fn max_size_is_honoured() {
        let s = store(MemoryStoreOptions { max_size: Some(100_000), ..Default::default() });
        for i in 0..10_000 {
            s.insert(&format!("k{i}"), vec![0; 100], None, 100);
        }
        assert!(s.weight() <= 110_000, "{} bytes", s.weight());
    }

    #[test]
    fn max_entry_size_rejects_and_removes_old_value() {
        let s = store(MemoryStoreOptions { max_entry_size: Some(64), ..Default::default() });
        assert!(s.insert("k", vec![0; 8], None, 8));
        assert!(!s.insert("k", vec![0; 100], None, 100));
        assert_eq!(s.get("k"), None);
    }
}
