//! # bento-fixture-plugin
//!
//! A plugin for the host's own tests. It stores values in memory, but every
//! operation goes through the plugin's tokio runtime (a timer and a spawned
//! task), so it proves that tokio works inside a plugin whatever runtime the
//! host uses. Options make it misbehave on purpose: `panic_in` names an
//! operation that panics, `hang_in` one that never completes.

use bento_memory_store::{MemoryStore, MemoryStoreOptions};
use bento_plugin_api::{CacheDriver, DriverConfig, DriverResult};
use std::time::Duration;

/// Options of the fixture driver.
#[derive(serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FixtureOptions {
    /// Name of an operation (`get`, `set`, `connect`, `namespace`, …) that panics.
    #[serde(default)]
    pub panic_in: Option<String>,
    /// Name of an operation that never completes.
    #[serde(default)]
    pub hang_in: Option<String>,
}

/// The fixture driver.
pub struct FixtureDriver {
    store: MemoryStore<Vec<u8>>,
    panic_in: Option<String>,
    hang_in: Option<String>,
}

impl FixtureDriver {
    async fn step(&self, operation: &str) {
        if self.panic_in.as_deref() == Some(operation) {
            panic!("fixture panics in {operation}");
        }
        if self.hang_in.as_deref() == Some(operation) {
            std::future::pending::<()>().await;
        }
        // Real tokio work inside the plugin's runtime: a timer and a task.
        tokio::time::sleep(Duration::from_micros(100)).await;
        tokio::spawn(async { tokio::task::yield_now().await }).await.expect("fixture task completes");
    }
}

impl CacheDriver for FixtureDriver {
    type Options = FixtureOptions;

    async fn connect(options: FixtureOptions, config: DriverConfig) -> DriverResult<Self> {
        let driver = FixtureDriver {
            store: MemoryStore::new(&MemoryStoreOptions::default(), &config.prefix),
            panic_in: options.panic_in,
            hang_in: options.hang_in,
        };
        driver.step("connect").await;
        Ok(driver)
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        if self.panic_in.as_deref() == Some("namespace") {
            panic!("fixture panics in namespace");
        }
        Ok(FixtureDriver {
            store: self.store.namespace(namespace),
            panic_in: self.panic_in.clone(),
            hang_in: self.hang_in.clone(),
        })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        self.step("get").await;
        Ok(self.store.get(key))
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        self.step("pull").await;
        Ok(self.store.pull(key))
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        self.step("set").await;
        let weight = value.len() as u64;
        Ok(self.store.insert(key, value, ttl, weight))
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        self.step("delete").await;
        Ok(self.store.remove(key))
    }

    async fn clear(&self) -> DriverResult<()> {
        self.step("clear").await;
        self.store.clear();
        Ok(())
    }

    async fn disconnect(&self) -> DriverResult<()> {
        Ok(())
    }
}

bento_plugin_api::export_plugin! {
    name: "fixture",
    layers: [remote],
    driver: FixtureDriver,
}
