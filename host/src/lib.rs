//! # bento
//!
//! What applications embed: loading storage-driver plugins (`.so` / `.dll` /
//! `.dylib` built with `bento-plugin-api`) from a file or a folder, and a safe
//! async [`Driver`] over each driver object.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bento::Error> {
//! use bento::{DriverOptions, Plugin};
//!
//! let plugin = Plugin::load("target/release/libbento_driver_memory.so")?;
//! let driver = plugin.create_driver("{}", DriverOptions::with_prefix("app")).await?;
//! driver.set("user:1", b"ada".to_vec(), None).await?;
//! assert_eq!(driver.get("user:1").await?, Some(b"ada".to_vec()));
//! # Ok(()) }
//! ```
//!
//! Plugins are never unloaded: a library that used thread-locals cannot be
//! unloaded safely, so once loaded it stays mapped for the life of the
//! process (loading the same file again returns the same [`Plugin`]).

mod bento;
pub mod bus;
mod cache;
mod config;
mod driver;
pub mod entry;
mod error;
mod events;
mod factory;
mod get_or_set;
mod l1;
mod l2;
mod locks;
mod ops;
pub mod options;
mod plugin;
pub mod serializer;
mod store;
mod tags;
mod telemetry;
mod verbs;

pub use bento::{Bento, BentoBuilder, DEFAULT_STORE};
pub use bento_plugin_api::{DriverError, ErrorKind, SetItem};
pub use cache::{Cache, CacheValue};
pub use driver::{Bus, Driver, DriverOptions};
pub use entry::Entry;
pub use error::{BoxError, Error};
pub use events::{CacheEvent, Layer};
pub use factory::{FactoryContext, FactoryFailed, FactoryWriteOptions};
pub use get_or_set::Factory;
pub use l1::L1Options;
pub use l2::L2Driver;
pub use ops::{CacheFuture, Get, GetOrSet, Set};
pub use options::CacheOptions;
pub use plugin::{plugin_file_name, Plugin, PluginInfo, PluginSet};
pub use serializer::{JsonSerializer, Serializer};
pub use store::{FactoryErrorHook, Store, StoreBuilder};
pub use tags::{HARD_TAG_PREFIX, SOFT_TAG_PREFIX};
