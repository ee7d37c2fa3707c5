//! # bento-abi-next-fixture
//!
//! A driver built against a bento-plugin-api revision newer than the host's
//! (`../plugin-api`: today's sources as 0.1.3). The host must refuse to load
//! it, naming both versions; so it never runs and stores nothing.

use bento_plugin_api::{CacheDriver, DriverConfig, DriverError, DriverResult};
use std::time::Duration;

/// No options.
#[derive(serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// A driver whose every operation fails: it exists to be refused.
pub struct FutureDriver;

fn never() -> DriverError {
    DriverError::unsupported("the abi-next fixture must never be loaded")
}

impl CacheDriver for FutureDriver {
    type Options = NoOptions;
    const NEEDS_RUNTIME: bool = false;

    async fn connect(_: NoOptions, _: DriverConfig) -> DriverResult<Self> {
        Err(never())
    }
    fn namespace(&self, _: &str) -> DriverResult<Self> {
        Err(never())
    }
    async fn get(&self, _: &str) -> DriverResult<Option<Vec<u8>>> {
        Err(never())
    }
    async fn pull(&self, _: &str) -> DriverResult<Option<Vec<u8>>> {
        Err(never())
    }
    async fn set(&self, _: &str, _: Vec<u8>, _: Option<Duration>) -> DriverResult<bool> {
        Err(never())
    }
    async fn delete(&self, _: &str) -> DriverResult<bool> {
        Err(never())
    }
    async fn clear(&self) -> DriverResult<()> {
        Err(never())
    }
    async fn disconnect(&self) -> DriverResult<()> {
        Err(never())
    }
}

bento_plugin_api::export_plugin! {
    name: "abi-next-fixture",
    layers: [remote],
    driver: FutureDriver,
}
