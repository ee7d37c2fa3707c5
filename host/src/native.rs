//! Drivers and buses linked statically: the bundled plugin crates (and any
//! crate implementing [`CacheDriver`] / [`CacheBus`]) used as ordinary Rust
//! dependencies, with typed options and no FFI.
//!
//! [`Native`] adapts any [`CacheDriver`] to the host's [`L2Driver`], and
//! [`NativeBus`] any [`CacheBus`] to the bus's [`BusTransport`]. Unlike a
//! loaded plugin, a native driver runs on the caller's tokio runtime (SPEC
//! §2): its futures are polled by whoever awaits them, with no plugin-owned
//! runtime in between, so a driver that needs tokio needs the application
//! to run inside one (which `get_or_set` needs anyway). A panic in a driver
//! method is still turned into an [`ErrorKind::PANICKED`] error, as the
//! plugin layer does.
//!
//! Any number of bundled drivers and buses link into one executable: their
//! library crates (`bento-driver-redis`, `bento-bus-redis`, …) export no
//! plugin symbols; the plugin files are built by the thin `cdylib` crates
//! next to them (`bento-driver-redis-plugin` → `libbento_driver_redis.so`).
//! A crate of your own that calls `export_plugin!` should be split the same
//! way if it is to be linked next to another plugin.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bento::Error> {
//! use bento::{Bento, DriverOptions, L1Options, Native, Store};
//! use bento_driver_redis::{RedisDriver, RedisOptions};
//!
//! let options = RedisOptions { url: Some("redis://127.0.0.1:6379".into()), ..RedisOptions::default() };
//! let redis = Native::<RedisDriver>::connect(options, DriverOptions::default()).await?;
//! let store = Store::builder().l1(L1Options::default()).l2(redis);
//! let bento = Bento::builder().store("main", store).build().await?;
//! # Ok(()) }
//! ```
//!
//! [`ErrorKind::PANICKED`]: bento_plugin_api::ErrorKind::PANICKED

use crate::bus::{BusTransport, PayloadHandler, ReconnectHook};
use crate::driver::DriverOptions;
use crate::l2::L2Driver;
use async_trait::async_trait;
use bento_plugin_api::{CacheBus, CacheDriver, Capabilities, DriverConfig, DriverError, SetItem};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Await `future`, turning a panic inside it into a driver error.
async fn guarded<T>(future: impl Future<Output = Result<T, DriverError>>) -> Result<T, DriverError> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(DriverError::from_panic(payload)),
    }
}

/// A statically linked [`CacheDriver`] serving as a store's L2 (or as the
/// driver of the conformance suite). Cheap to clone: clones share the
/// driver handle.
pub struct Native<D> {
    driver: Arc<D>,
}

impl<D> Clone for Native<D> {
    fn clone(&self) -> Self {
        Native { driver: self.driver.clone() }
    }
}

impl<D> std::fmt::Debug for Native<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native").field("driver", &std::any::type_name::<D>()).finish()
    }
}

impl<D: CacheDriver> Native<D> {
    /// Adapt a driver connected with `D::connect`.
    pub fn new(driver: D) -> Self {
        Native { driver: Arc::new(driver) }
    }

    /// Connect a `D` with its typed `options` and the common parameters.
    pub async fn connect(options: D::Options, config: DriverOptions) -> Result<Self, DriverError> {
        let config = DriverConfig { default_ttl: config.default_ttl, prefix: config.prefix };
        Ok(Native::new(guarded(D::connect(options, config)).await?))
    }

    /// The driver itself, for its own methods beyond the contract.
    pub fn driver(&self) -> &D {
        &self.driver
    }
}

#[async_trait]
impl<D: CacheDriver> L2Driver for Native<D> {
    fn namespace(&self, namespace: &str) -> Result<Arc<dyn L2Driver>, DriverError> {
        match catch_unwind(AssertUnwindSafe(|| self.driver.namespace(namespace))) {
            Ok(driver) => Ok(Arc::new(Native::new(driver?))),
            Err(payload) => Err(DriverError::from_panic(payload)),
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        guarded(async { self.driver.get(key).await }).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError> {
        guarded(async { self.driver.get_many(keys).await }).await
    }
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError> {
        guarded(async { self.driver.set(key, value, ttl).await }).await
    }
    async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError> {
        guarded(async { self.driver.set_many(items).await }).await
    }
    async fn has(&self, key: &str) -> Result<bool, DriverError> {
        guarded(async { self.driver.has(key).await }).await
    }
    async fn pull(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        guarded(async { self.driver.pull(key).await }).await
    }
    async fn delete(&self, key: &str) -> Result<bool, DriverError> {
        guarded(async { self.driver.delete(key).await }).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64, DriverError> {
        guarded(async { self.driver.delete_many(keys).await }).await
    }
    async fn clear(&self) -> Result<(), DriverError> {
        guarded(async { self.driver.clear().await }).await
    }
    async fn prune(&self) -> Result<(), DriverError> {
        guarded(async { self.driver.prune().await }).await
    }
    fn capabilities(&self) -> Capabilities {
        self.driver.capabilities()
    }
    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, DriverError> {
        guarded(async { self.driver.try_lock(key, owner, ttl).await }).await
    }
    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, DriverError> {
        guarded(async { self.driver.unlock(key, owner).await }).await
    }
    async fn disconnect(&self) -> Result<(), DriverError> {
        guarded(async { self.driver.disconnect().await }).await
    }
}

/// A statically linked [`CacheBus`] serving as the transport of a
/// [`BusNode`](crate::bus::BusNode). Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), bento::Error> {
/// use bento::bus::BusNode;
/// use bento::NativeBus;
/// use bento_bus_redis::{RedisBus, RedisBusOptions};
///
/// let transport = NativeBus::<RedisBus>::connect(RedisBusOptions::default()).await?;
/// let node = BusNode::new(transport, Default::default());
/// # Ok(()) }
/// ```
pub struct NativeBus<B> {
    bus: Arc<B>,
}

impl<B> Clone for NativeBus<B> {
    fn clone(&self) -> Self {
        NativeBus { bus: self.bus.clone() }
    }
}

impl<B> std::fmt::Debug for NativeBus<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeBus").field("bus", &std::any::type_name::<B>()).finish()
    }
}

impl<B: CacheBus> NativeBus<B> {
    /// Adapt a bus connected with `B::connect`.
    pub fn new(bus: B) -> Self {
        NativeBus { bus: Arc::new(bus) }
    }

    /// Connect a `B` with its typed `options`.
    pub async fn connect(options: B::Options) -> Result<Self, DriverError> {
        Ok(NativeBus::new(guarded(B::connect(options)).await?))
    }

    /// The bus itself.
    pub fn bus(&self) -> &B {
        &self.bus
    }
}

impl<B: CacheBus> BusTransport for NativeBus<B> {
    fn publish<'a>(&'a self, channel: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(guarded(async move { self.bus.publish(channel, payload).await }))
    }

    fn subscribe<'a>(&'a self, channel: &'a str, handler: PayloadHandler) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(guarded(async move { self.bus.subscribe(channel, handler).await }))
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(guarded(async move { self.bus.unsubscribe(channel).await }))
    }

    fn on_reconnect(&self, hook: ReconnectHook) {
        self.bus.on_reconnect(hook)
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(guarded(async move { self.bus.disconnect().await }))
    }
}
