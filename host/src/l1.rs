//! The built-in L1: a [`MemoryStore`] of decoded values, so a hit costs a
//! hash lookup and an `Arc` clone, never a deserialization. Freshness
//! (logical expiry) is checked by the caller; the store only enforces the
//! physical TTL (ttl + grace) and the size limits.

use crate::entry::ms_after;
use bento_memory_store::{MemoryStore, MemoryStoreOptions};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// Size limits of the built-in L1 (`max_items`, `max_size` in bytes,
/// `max_entry_size` in bytes); all unbounded by default. Sizes are measured
/// on the serialized entry when a size limit is set.
pub type L1Options = MemoryStoreOptions;

/// Sentinel for "never" in the compact millisecond fields below.
pub(crate) const NEVER: u64 = u64::MAX;

/// One L1 entry: the decoded value plus the entry metadata. Cloning is two
/// reference-count increments.
#[derive(Clone)]
pub(crate) struct L1Entry {
    pub value: Arc<dyn Any + Send + Sync>,
    pub created_at: u64,
    /// Logical expiration in ms, [`NEVER`] for forever.
    pub logical_expiration: u64,
    /// A thin pointer (8 bytes): most entries have no tags, and 1 M
    /// entries must fit in < 300 MB.
    pub tags: Option<Arc<Vec<String>>>,
}

impl L1Entry {
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.logical_expiration
    }

    pub fn tags(&self) -> &[String] {
        self.tags.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn logical_expiration(&self) -> Option<u64> {
        (self.logical_expiration != NEVER).then_some(self.logical_expiration)
    }

    pub fn downcast<T: Clone + 'static>(&self) -> Option<T> {
        self.value.downcast_ref::<T>().cloned()
    }
}

/// A handle on the L1 store at one prefix (namespaces share the store).
#[derive(Clone)]
pub(crate) struct L1 {
    store: MemoryStore<L1Entry>,
    measures_size: bool,
}

impl L1 {
    /// The store-wide handle with the empty prefix.
    pub fn new(options: &L1Options) -> L1 {
        let measures_size = options.max_size.is_some() || options.max_entry_size.is_some();
        L1 { store: MemoryStore::new(options, ""), measures_size }
    }

    pub fn namespace(&self, namespace: &str) -> L1 {
        if namespace.is_empty() {
            return self.clone();
        }
        L1 { store: self.store.namespace(namespace), measures_size: self.measures_size }
    }

    /// Whether writers should pass the serialized size as the weight.
    pub fn measures_size(&self) -> bool {
        self.measures_size
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<L1Entry> {
        self.store.get(key)
    }

    /// The entry of `key` even if physically expired: only for callers that
    /// then require it to be logically fresh (logical expiration ≤ physical
    /// expiration), which makes the physical check redundant.
    #[inline]
    pub fn get_for_freshness_check(&self, key: &str) -> Option<L1Entry> {
        self.store.get_ignoring_expiry(key)
    }

    /// The physical expiration (ms, [`NEVER`] for forever) of an entry
    /// with `logical_expiration` under `grace`: ttl + grace.
    pub fn physical_expiration(logical_expiration: u64, grace: Option<Duration>) -> u64 {
        match logical_expiration {
            NEVER => NEVER,
            at => ms_after(at, grace.unwrap_or_default()),
        }
    }

    /// Store `entry` until `physical_expiration` (ms, [`NEVER`] = forever).
    pub fn set(&self, key: &str, entry: L1Entry, physical_expiration: u64, now: u64, weight: u64) -> bool {
        let ttl = match physical_expiration {
            NEVER => None,
            at if at <= now => {
                self.store.remove(key);
                return false;
            }
            at => Some(Duration::from_millis(at - now)),
        };
        self.store.insert(key, entry, ttl, weight)
    }

    /// Make `key` logically expired, keeping the stale copy until its
    /// original physical expiration (logical + `grace`), so an operation
    /// with grace can still serve it.
    pub fn expire(&self, key: &str, now: u64, grace: Option<Duration>) -> bool {
        let Some(mut entry) = self.store.get(key) else { return false };
        let physical_expiration = L1::physical_expiration(entry.logical_expiration, grace);
        entry.logical_expiration = entry.logical_expiration.min(now);
        self.set(key, entry, physical_expiration, now, 0);
        true
    }

    pub fn delete(&self, key: &str) -> bool {
        self.store.remove(key)
    }

    pub fn clear(&self) {
        self.store.clear()
    }

    pub fn prune(&self) {
        self.store.prune()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::now_ms;

    fn entry(value: u32, logical: u64) -> L1Entry {
        L1Entry { value: Arc::new(value), created_at: 1, logical_expiration: logical, tags: None }
    }

    #[test]
    fn expire_keeps_a_stale_copy() {
        let l1 = L1::new(&L1Options::default()).namespace("p");
        let now = now_ms();
        l1.set("k", entry(7, NEVER), NEVER, now, 0);
        assert!(l1.expire("k", now, Some(Duration::from_secs(60))));
        let stale = l1.get("k").unwrap();
        assert!(!stale.is_fresh(now));
        assert_eq!(stale.downcast::<u32>(), Some(7));
        assert_eq!(stale.downcast::<String>(), None);
    }

    #[test]
    fn physically_expired_entries_are_not_stored() {
        let l1 = L1::new(&L1Options::default());
        let now = now_ms();
        assert!(!l1.set("k", entry(1, now - 10), now - 5, now, 0));
        assert!(l1.get("k").is_none());
    }
}
