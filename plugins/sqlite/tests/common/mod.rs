//! Helpers shared by this crate's scenario tests: connect the driver
//! in-process (the rlib) with JSON options, as the plugin would parse them.

#![allow(dead_code)] // each test file uses a different subset

use bento_driver_sqlite::{SqliteDriver, SqliteDriverOptions};
use bento_plugin_api::{CacheDriver, DriverConfig, DriverResult};

/// A driver from `options` (JSON) with `prefix`.
pub async fn try_connect(options: serde_json::Value, prefix: &str) -> DriverResult<SqliteDriver> {
    let options: SqliteDriverOptions = serde_json::from_value(options).expect("valid options JSON");
    SqliteDriver::connect(options, DriverConfig { default_ttl: None, prefix: prefix.to_string() }).await
}

/// A driver from `options` (JSON) with `prefix`, expected to connect.
pub async fn connect(options: serde_json::Value, prefix: &str) -> SqliteDriver {
    try_connect(options, prefix).await.expect("the SQLite driver connects")
}
