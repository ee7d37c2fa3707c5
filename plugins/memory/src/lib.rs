//! # bento-driver-memory
//!
//! The reference driver: the whole driver contract (SPEC §3) over the same
//! [`bento_memory_store::MemoryStore`] the host uses for its L1, exported as
//! a plugin that can serve as the local (L1) or remote (L2) layer. Useful
//! for tests, single-process setups, and as the model for new drivers.
//!
//! Options (all optional): `max_items`, `max_size`, `max_entry_size`.

use bento_memory_store::{MemoryStore, MemoryStoreOptions};
use bento_plugin_api::{CacheDriver, DriverConfig, DriverError, DriverResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The memory driver: a store handle plus the connection-wide
/// "disconnected" flag shared by all its namespaces.
pub struct MemoryDriver {
    store: MemoryStore<Vec<u8>>,
    disconnected: Arc<AtomicBool>,
    /// TTL of entries set without one (`None` = forever).
    default_ttl: Option<Duration>,
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
            default_ttl: config.default_ttl,
        })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        Ok(MemoryDriver {
            store: self.store()?.namespace(namespace),
            disconnected: self.disconnected.clone(),
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
}

bento_plugin_api::export_plugin! {
    name: "memory",
    layers: [local, remote],
    driver: MemoryDriver,
}
