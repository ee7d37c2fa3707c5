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
//! Cargo feature `ffi` (default): the [`abi`] module, the adapters and
//! [`export_plugin!`], with `abi_stable` and `async-ffi`. Without it only
//! the authoring traits, errors and toolkit remain: what `bento` needs to
//! link drivers statically.
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
//! replaces (like [`abi::v0_1_0`], [`abi::v0_1_1`]) so older plugins are
//! still checked; even one appended optional field needs a new revision.
//! Changing or removing anything, or changing a fixed-layout struct such as
//! [`abi::PluginMetadata`], needs a new generation. The full rules, and how
//! they are tested with real builds, are in `docs/abi-versioning.md`.
//!
//! Since 0.1.1 a driver may declare [`Capabilities::LOCK`] and implement
//! [`CacheDriver::try_lock`] / [`CacheDriver::unlock`], a lock held in the
//! backend on which the host builds fleet-wide stampede protection. Since
//! 0.1.2 the host also lends its tokio runtime: a driver may run its
//! socket on the caller's runtime ([`HostStream`], [`spawn_on_host`])
//! instead of the plugin's, saving two cross-thread wake-ups per request.
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
//! # #[cfg(feature = "ffi")]
//! bento_plugin_api::export_plugin! {
//!     name: "nothing",
//!     layers: [remote],
//!     driver: Nothing,
//! }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "ffi")]
pub mod abi;
#[cfg(feature = "ffi")]
mod adapter;
mod bus;
mod capabilities;
mod driver;
mod error;
#[cfg(feature = "ffi")]
mod export;
#[cfg(feature = "ffi")]
mod guard;
#[cfg(feature = "ffi")]
mod host_io;
mod prefix;
mod runtime;
pub mod toolkit;

#[cfg(feature = "ffi")]
pub use adapter::{BusAdapter, DriverAdapter};
pub use bus::{BusMessageHandler, CacheBus, ReconnectHandler};
pub use capabilities::Capabilities;
pub use driver::{CacheDriver, DriverConfig, SetItem};
pub use error::{DriverError, DriverResult, ErrorKind};
#[cfg(feature = "ffi")]
pub use host_io::{host_io_available, spawn_on_host, HostStream};
pub use prefix::Prefix;
pub use runtime::PluginRuntime;

/// The version of `bento-plugin-api` this crate is; compiled into every
/// plugin so the host can refuse one built against an incompatible API.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Re-exports used by [`export_plugin!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "ffi")]
    pub use abi_stable;
    pub use schemars;
    pub use serde_json;

    /// The `attach_host_runtime` entry point of [`crate::export_plugin!`].
    #[cfg(feature = "ffi")]
    pub fn attach_host_runtime(runtime: crate::abi::FfiHostRuntimeBox) {
        // Never unwind into the host.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::host_io::attach(runtime)));
    }
}
