//! # bento
//!
//! What applications embed: a multi-tier cache (the Rust counterpart of
//! Node's BentoCache, wire-compatible with it) whose storage drivers are
//! shared-library plugins.
//!
//! * The cache manager: [`Bento`] holds named [`Store`]s, each an optional
//!   L1 (the built-in store of decoded values, no deserialization on a hit,
//!   or a "local" plugin via [`StoreBuilder::l1_plugin`]), an optional
//!   L2 (any plugin [`Driver`], or anything implementing [`L2Driver`]) and an
//!   optional bus ([`bus::BusNode`]) keeping other instances' L1 coherent.
//!   Every [`Cache`] (a store or a namespace of it) offers `get`,
//!   `get_or_set` (stampede-protected, with grace periods, soft/hard
//!   timeouts), `set`, tags, events and the rest of SPEC §5.
//! * Plugin loading: [`Plugin::load`] / [`Plugin::load_folder`] and a safe
//!   async [`Driver`] / [`Bus`] over each plugin object. Files are checked
//!   before the dynamic loader maps them (a truncated copy is an error, not
//!   a crash); names resolve per kind ([`PluginSet`]).
//! * Configuration: [`BentoConfig`], the TOML shape an operator writes
//!   (also embeddable in an application's own config), built with
//!   [`Bento::from_config`]; [`parse_duration`] / [`parse_size`] read
//!   `"10m"` and `"64mb"`. The `bento` command (crate `bento-cli`) works
//!   from the same config.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bento::Error> {
//! use bento::{Bento, BoxError, L1Options, Store};
//! use std::time::Duration;
//!
//! let bento = Bento::builder().store("main", Store::builder().l1(L1Options::default())).build().await?;
//! let name: String = bento
//!     .get_or_set("user:1", |_ctx| async { Ok::<_, BoxError>("Ada".to_string()) })
//!     .ttl(Duration::from_secs(60))
//!     .grace(Duration::from_secs(3600))
//!     .await?;
//! assert_eq!(bento.get::<String>("user:1").await?, Some(name));
//! # Ok(()) }
//! ```
//!
//! With an L2 plugin:
//!
//! ```no_run
//! # async fn demo() -> Result<(), bento::Error> {
//! use bento::{Bento, DriverOptions, L1Options, Plugin, Store};
//!
//! let plugin = Plugin::load("target/release/libbento_driver_redis.so")?;
//! let redis = plugin.create_driver(r#"{"url":"redis://127.0.0.1:6379"}"#, DriverOptions::default()).await?;
//! let store = Store::builder().l1(L1Options::default()).l2(redis);
//! let bento = Bento::builder().store("main", store).build().await?;
//! # Ok(()) }
//! ```
//!
//! ## Cargo features
//!
//! All on by default; `default-features = false` leaves the cache itself
//! (L1, any [`L2Driver`], [`Native`] drivers and buses, the bus node),
//! without `abi_stable`, `libloading`, `async-ffi`, `toml` or `metrics`.
//!
//! | feature | default | what it brings |
//! |---|---|---|
//! | `plugins` | on | loading drivers and buses from plugin files: `Plugin`, `PluginSet`, `Bus`, `StoreBuilder::bus_plugin` (pulls in `abi_stable`, `libloading`, `async-ffi`) |
//! | `config` | on | `BentoConfig`, `Bento::from_config`: stores described in TOML over plugins (pulls in `toml`; implies `plugins`) |
//! | `metrics` | on | counters, gauges and histograms through the `metrics` facade; without it the metric calls compile to nothing |
//!
//! With `plugins`, the type pages of these docs end in a long list of
//! blanket implementations (`AlignerFor`, `SelfOps`, `TypeIdentity`, …):
//! rustdoc lists every blanket impl of every crate in the dependency graph,
//! and `abi_stable` brings these. They apply to every type and are not part
//! of `bento`'s API; FFI types themselves stay in
//! `bento_plugin_api::abi` and are not re-exported here.
//!
//! Not for: blocking callers without a tokio runtime — `get_or_set` runs its
//! factory on a spawned tokio task (so it can finish after a timeout), so
//! use it inside a tokio runtime. Plain L1 hits need no runtime.
//!
//! Plugins are never unloaded: a library that used thread-locals cannot be
//! unloaded safely, so once loaded it stays mapped for the life of the
//! process (loading the same file again returns the same [`Plugin`]).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod bento;
pub mod bus;
mod cache;
#[cfg(feature = "config")]
mod config;
mod driver;
pub mod entry;
mod erased;
mod error;
mod events;
mod factory;
mod get_or_set;
#[cfg(feature = "plugins")]
mod host_runtime;
mod human;
mod l1;
mod l2;
mod locks;
mod native;
mod ops;
pub mod options;
mod ordering;
#[cfg(feature = "plugins")]
mod plugin;
#[cfg(feature = "plugins")]
mod plugin_file;
mod plugin_info;
mod read;
mod recovery;
pub mod serializer;
mod store;
mod store_core;
mod tags;
mod telemetry;
mod typed;
mod verbs;
mod write;

pub use bento::{Bento, BentoBuilder, DEFAULT_STORE};
pub use bento_plugin_api::{CacheBus, CacheDriver, Capabilities, DriverError, ErrorKind, SetItem};
pub use cache::{Cache, CacheValue};
#[cfg(feature = "config")]
pub use config::{BentoConfig, L1Config, PluginRef, StoreConfig};
#[cfg(feature = "plugins")]
pub use driver::Bus;
pub use driver::{Driver, DriverOptions};
pub use entry::Entry;
pub use error::{BoxError, Error};
pub use events::{CacheEvent, Layer};
pub use factory::{FactoryContext, FactoryFailed, FactoryWriteOptions};
pub use get_or_set::{Factory, FLEET_POLL_INTERVAL};
pub use human::{parse_duration, parse_size};
pub use l1::L1Options;
pub use l2::L2Driver;
pub use native::{Native, NativeBus};
pub use ops::{CacheFuture, Get, GetOrSet, Set};
pub use options::CacheOptions;
#[cfg(feature = "plugins")]
pub use plugin::{plugin_file_name, plugin_files, Plugin, PluginKind, PluginSet};
pub use plugin_info::PluginInfo;
pub use serializer::{JsonSerializer, Serializer};
pub use store::{Store, StoreBuilder};
pub use store_core::FactoryErrorHook;
pub use tags::{HARD_TAG_PREFIX, SOFT_TAG_PREFIX};
pub use typed::TypedCache;
pub use verbs::DISCONNECT_TIMEOUT;
pub use write::AUTO_RECOVERY_INTERVAL;
