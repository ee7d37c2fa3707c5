//! # bento-plugin-api
//!
//! The contract between the Bento host and its plugins, in two layers:
//!
//! * [`abi`]: the stable, `abi_stable`-checked types that cross the shared
//!   library boundary (root module, driver and bus trait objects, errors,
//!   metadata). The host and the conformance tool use these; a driver author
//!   normally never does.
//! * the authoring layer: implement [`CacheDriver`] (and optionally
//!   [`CacheBus`]) as plain async Rust, then call [`export_plugin!`] once.
//!   The layer deserializes options with serde, owns a small tokio runtime
//!   for the plugin, turns every panic into an [`ErrorKind::PANICKED`] error
//!   and adapts everything to the stable ABI.
//!
//! This crate is not for applications: they depend on `bento`, which loads
//! plugins and builds caches from them.
//!
//! ## ABI versioning
//!
//! This crate's version is the ABI version, read as a generation and a
//! revision (`0.y.z`: generation `0.y`, revision `z`; `x.y.z` with x ≥ 1:
//! generation `x`, revision `y`). A host loads a plugin of the same
//! generation and a revision not newer than its own
//! ([`abi::api_versions_compatible`]); anything else is refused with both
//! versions named. A revision may only append: methods after the last
//! prefix method of a `#[sabi_trait]`, each with a default that reports
//! "absent"; fields after the last prefix field of [`abi::PluginMod`]; new
//! [`ErrorKind`] values and [`Capabilities`] bits. It freezes the layout it
//! replaces (like [`abi::v0_1_0`]) so older plugins are still checked.
//! Changing or removing anything, or changing a fixed-layout struct such as
//! [`abi::PluginMetadata`], needs a new generation. The full rules, and how
//! they are tested with real builds, are in `docs/abi-versioning.md`.
//!
//! Since 0.1.1 a driver may declare [`Capabilities::LOCK`] and implement
//! [`CacheDriver::try_lock`] / [`CacheDriver::unlock`], a lock held in the
//! backend on which the host builds fleet-wide stampede protection.
//!
//! ```no_run
//! use bento_plugin_api::{CacheDriver, DriverConfig, DriverResult, Prefix};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema, Default)]
//! #[serde(deny_unknown_fields)]
//! struct NoOptions {}
//!
//! struct Nothing { prefix: Prefix }
//!
//! impl CacheDriver for Nothing {
//!     type Options = NoOptions;
//!     async fn connect(_: NoOptions, config: DriverConfig) -> DriverResult<Self> {
//!         Ok(Nothing { prefix: Prefix::new(&config.prefix) })
//!     }
//!     fn namespace(&self, namespace: &str) -> DriverResult<Self> {
//!         Ok(Nothing { prefix: self.prefix.namespace(namespace) })
//!     }
//!     async fn get(&self, _key: &str) -> DriverResult<Option<Vec<u8>>> { Ok(None) }
//!     async fn pull(&self, _key: &str) -> DriverResult<Option<Vec<u8>>> { Ok(None) }
//!     async fn set(&self, _key: &str, _value: Vec<u8>, _ttl: Option<std::time::Duration>) -> DriverResult<bool> { Ok(false) }
//!     async fn delete(&self, _key: &str) -> DriverResult<bool> { Ok(false) }
//!     async fn clear(&self) -> DriverResult<()> { Ok(()) }
//!     async fn disconnect(&self) -> DriverResult<()> { Ok(()) }
//! }
//!
//! bento_plugin_api::export_plugin! {
//!     name: "nothing",
//!     layers: [remote],
//!     driver: Nothing,
//! }
//! ```

pub mod abi;
mod adapter;
mod bus;
mod capabilities;
mod driver;
mod error;
mod export;
mod prefix;
mod runtime;
pub mod toolkit;

pub use adapter::{BusAdapter, DriverAdapter};
pub use bus::{BusMessageHandler, CacheBus, ReconnectHandler};
pub use capabilities::Capabilities;
pub use driver::{CacheDriver, DriverConfig, SetItem};
pub use error::{DriverError, DriverResult, ErrorKind};
pub use prefix::Prefix;
pub use runtime::PluginRuntime;

/// The version of `bento-plugin-api` this crate is; compiled into every
/// plugin so the host can refuse one built against an incompatible API.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Re-exports used by [`export_plugin!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
    pub use schemars;
    pub use serde_json;
}
