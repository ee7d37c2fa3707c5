//! The built-in L1: a [`MemoryStore`] of decoded values, so a hit costs a
//! hash lookup and an `Arc` clone, never a deserialization. Freshness
//! (logical expiry) is checked by the caller; the store only enforces the
//! physical TTL (ttl + grace) and the size limits.

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
    /// Physical expiration in ms, [`NEVER`] for forever (kept so that a
    /// logically expired copy can be re-inserted with the same lifetime).
    pub physical_expiration: u64,
    pub tags: Option<Arc<[String]>>,
}

impl L1Entry {
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.logical_expiration
    }

    pub fn tags(&self) -> &[String] {
        self.tags.as_deref().unwrap_or(&[])
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

    /// Store `entry`; its physical expiration decides the store TTL.
    pub fn set(&self, key: &str, entry: L1Entry, now: u64, weight: u64) -> bool {
        let ttl = match entry.physical_expiration {
            NEVER => None,
            at if at <= now => {
                self.store.remove(key);
                return false;
            }
            at => Some(Duration::from_millis(at - now)),
        };
        self.store.insert(key, entry, ttl, weight)
    }

    /// Make `key` logically expired, keeping a stale copy for grace.
    pub fn expire(&self, key: &str, now: u64) -> bool {
        let Some(mut entry) = self.store.get(key) else { return false };
        entry.logical_expiration = entry.logical_expiration.min(now);
        self.set(key, entry, now, 0);
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

    fn entry(value: u32, logical: u64, physical: u64) -> L1Entry {
        L1Entry {
            value: Arc::new(value),
            created_at: 1,
            logical_expiration: logical,
            physical_expiration: physical,
            tags: None,
        }
    }

    #[test]
    fn expire_keeps_a_stale_copy() {
        let l1 = L1::new(&L1Options::default()).namespace("p");
        let now = now_ms();
        l1.set("k", entry(7, NEVER, NEVER), now, 0);
        assert!(l1.expire("k", now));
        let stale = l1.get("k").unwrap();
        assert!(!stale.is_fresh(now));
        assert_eq!(stale.downcast::<u32>(), Some(7));
        assert_eq!(stale.downcast::<String>(), None);
    }

    #[test]
    fn physically_expired_entries_are_not_stored() {
        let l1 = L1::new(&L1Options::default());
        let now = now_ms();
        assert!(!l1.set("k", entry(1, now - 10, now - 5), now, 0));
        assert!(l1.get("k").is_none());
    }
}
