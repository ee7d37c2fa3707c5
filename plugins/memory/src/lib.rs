//! # bento-driver-memory
//!
//! The reference driver: the whole driver contract (SPEC §3) over the same
//! [`bento_memory_store::MemoryStore`] the host uses for its L1, exported as
//! a plugin that can serve as the local (L1) or remote (L2) layer. Useful
//! for tests, single-process setups, and as the model for new drivers.
//!
//! Options (all optional): `max_items`, `max_size`, `max_entry_size`.
//!
//! Declares [`Capabilities::LOCK`]: locks live in a table of their own
//! (never evicted by the size limits) shared by the root handle and its
//! namespaces. Like the data, they are private to one driver instance: they
//! exclude every handle of this instance, not other processes.
//!
//! This crate is the library: link it statically through `bento::Native`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_driver_memory.so` is built by the thin
//! `bento-driver-memory-plugin` crate (`plugins/memory/plugin`).

/// The driver's options, the same as the host's L1 (`max_items`, `max_size`,
/// `max_entry_size`), re-exported so a native user needs no second crate.
pub use bento_memory_store::MemoryStoreOptions;

use bento_memory_store::MemoryStore;
use bento_plugin_api::{CacheDriver, Capabilities, DriverConfig, DriverError, DriverResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The memory driver: a store handle plus the connection-wide
/// "disconnected" flag and lock table shared by all its namespaces.
pub struct MemoryDriver {
    store: MemoryStore<Vec<u8>>,
    disconnected: Arc<AtomicBool>,
    locks: Arc<Mutex<LockTable>>,
    /// TTL of entries set without one (`None` = forever).
    default_ttl: Option<Duration>,
}

/// Who holds a lock, until when.
struct Lease {
    owner: String,
    expires_at: Instant,
}

/// Locks by stored key. Expired leases are dropped when the table has
/// doubled since the last sweep, so it stays proportional to live locks.
#[derive(Default)]
struct LockTable {
    leases: HashMap<String, Lease>,
    sweep_at_len: usize,
}

impl LockTable {
    fn try_lock(&mut self, key: String, owner: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        if self.leases.len() >= self.sweep_at_len {
            self.leases.retain(|_, lease| lease.expires_at > now);
            self.sweep_at_len = (self.leases.len() * 2).max(1024);
        }
        // Capped at a century so that `Instant` arithmetic cannot overflow.
        let expires_at = now + ttl.min(Duration::from_secs(100 * 365 * 24 * 3600));
        match self.leases.get_mut(&key) {
            Some(lease) if lease.expires_at > now && lease.owner != owner => false,
            Some(lease) => {
                *lease = Lease { owner: owner.to_string(), expires_at };
                true
            }
            None => {
                self.leases.insert(key, Lease { owner: owner.to_string(), expires_at });
                true
            }
        }
    }

    fn unlock(&mut self, key: &str, owner: &str) -> bool {
        let held = self.leases.get(key).is_some_and(|lease| lease.owner == owner && lease.expires_at > Instant::now());
        if held {
            self.leases.remove(key);
        }
        held
    }
}

impl MemoryDriver {
    fn store(&self) -> DriverResult<&MemoryStore<Vec<u8>>> {
        if self.disconnected.load(Ordering::Acquire) {
            Err(DriverError::disconnected())
        } else {
            Ok(&self.store)
        }
    }
}

impl CacheDriver for MemoryDriver {
    type Options = MemoryStoreOptions;
    const NEEDS_RUNTIME: bool = false;

    async fn connect(options: MemoryStoreOptions, config: DriverConfig) -> DriverResult<Self> {
        Ok(MemoryDriver {
            store: MemoryStore::new(&options, &config.prefix),
            disconnected: Arc::new(AtomicBool::new(false)),
            locks: Arc::default(),
            default_ttl: config.default_ttl,
        })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        Ok(MemoryDriver {
            store: self.store()?.namespace(namespace),
            disconnected: self.disconnected.clone(),
            locks: self.locks.clone(),
            default_ttl: self.default_ttl,
        })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        Ok(self.store()?.get(key))
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        Ok(self.store()?.pull(key))
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        let weight = value.len() as u64;
        Ok(self.store()?.insert(key, value, ttl.or(self.default_ttl), weight))
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        Ok(self.store()?.has(key))
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        Ok(self.store()?.remove(key))
    }

    async fn clear(&self) -> DriverResult<()> {
        self.store()?.clear();
        Ok(())
    }

    async fn prune(&self) -> DriverResult<()> {
        self.store()?.prune();
        Ok(())
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.disconnected.store(true, Ordering::Release);
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCK
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let key = self.store()?.prefix().key(key);
        Ok(self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).try_lock(key, owner, ttl))
    }

    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let key = self.store()?.prefix().key(key);
        Ok(self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).unlock(&key, owner))
    }
}
