//! Safe async wrappers over the plugin driver and bus objects: Rust types in,
//! Rust types out. They need no particular runtime: the futures can be
//! awaited on a current-thread or multi-thread tokio runtime, or driven by
//! `futures::executor::block_on` from a plain thread.
//!
//! This is the layer below [`crate::Plugin`]: a plugin creates these
//! wrappers, and they know nothing of plugin loading (only the
//! [`PluginInfo`] of where they came from). A [`Driver`] can also wrap a
//! statically linked driver ([`Driver::native`]), so whatever takes a
//! `Driver` (a local L1, the conformance suite) takes either.

use crate::l2::L2Driver;
use crate::native::Native;
use crate::plugin_info::PluginInfo;
#[cfg(feature = "plugins")]
use abi_stable::std_types::{ROption, RString, RVec};
#[cfg(feature = "plugins")]
use bento_plugin_api::abi::{
    FfiBusBox, FfiBusHandler, FfiBusHandler_TO, FfiDriverBox, FfiReconnectHandler, FfiReconnectHandler_TO, FfiSetItem,
};
use bento_plugin_api::{CacheDriver, Capabilities, DriverError, SetItem};
use std::sync::Arc;
use std::time::Duration;

/// The parameters common to every driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverOptions {
    /// Default TTL for entries set without one. Default: `None` (forever).
    pub default_ttl: Option<Duration>,
    /// Key prefix of the root handle. Default: `""` (the whole keyspace).
    pub prefix: String,
}

impl DriverOptions {
    /// Options with `prefix` and no default TTL.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        DriverOptions { default_ttl: None, prefix: prefix.into() }
    }
}

/// A TTL in whole milliseconds, rounded up so that a sub-millisecond TTL
/// does not become "expire immediately".
#[cfg(feature = "plugins")]
pub(crate) fn ttl_to_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_millis();
    let ms = if Duration::from_millis(ms as u64) < ttl { ms + 1 } else { ms };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(feature = "plugins")]
fn ffi_ttl(ttl: Option<Duration>) -> ROption<u64> {
    match ttl {
        Some(ttl) => ROption::RSome(ttl_to_ms(ttl)),
        None => ROption::RNone,
    }
}

#[cfg(feature = "plugins")]
fn ffi_keys(keys: &[impl AsRef<str>]) -> RVec<RString> {
    keys.iter().map(|key| RString::from(key.as_ref())).collect()
}

/// A value as a driver answered it. A plugin's buffer is read where it
/// is: turning it into a `Vec` copies it, as it belongs to the plugin's
/// allocator.
pub(crate) enum DriverBytes {
    Owned(Vec<u8>),
    #[cfg(feature = "plugins")]
    Plugin(RVec<u8>),
}

impl std::ops::Deref for DriverBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            DriverBytes::Owned(bytes) => bytes,
            #[cfg(feature = "plugins")]
            DriverBytes::Plugin(bytes) => bytes,
        }
    }
}

/// A driver created by a plugin, or a statically linked one
/// ([`Driver::native`]). Cheap to clone (clones share the object).
#[derive(Clone)]
pub struct Driver {
    object: Object,
    plugin: Arc<PluginInfo>,
}

/// What a [`Driver`] calls.
#[derive(Clone)]
enum Object {
    /// Across the plugin ABI.
    #[cfg(feature = "plugins")]
    Plugin(Arc<FfiDriverBox>),
    /// A statically linked driver, called directly.
    Native(Arc<dyn L2Driver>),
}

fn owned_keys(keys: &[impl AsRef<str>]) -> Vec<String> {
    keys.iter().map(|key| key.as_ref().to_string()).collect()
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("plugin", &self.plugin.name).finish()
    }
}

impl Driver {
    #[cfg(feature = "plugins")]
    pub(crate) fn new(object: FfiDriverBox, plugin: Arc<PluginInfo>) -> Self {
        Driver { object: Object::Plugin(Arc::new(object)), plugin }
    }

    /// A statically linked driver behind the same interface as a plugin's.
    /// Its [`Driver::plugin_info`] names the driver type, says it can serve
    /// both layers, and has no options schema.
    pub fn native<D: CacheDriver>(driver: Native<D>) -> Driver {
        let plugin = PluginInfo {
            name: std::any::type_name::<D>().to_string(),
            version: String::new(),
            api_version: bento_plugin_api::API_VERSION.to_string(),
            local: true,
            remote: true,
            provides_driver: true,
            provides_bus: false,
            driver_options_schema: serde_json::Value::Null,
            bus_options_schema: serde_json::Value::Null,
        };
        Driver { object: Object::Native(Arc::new(driver)), plugin: Arc::new(plugin) }
    }

    /// What the plugin this driver came from says about itself.
    pub fn plugin_info(&self) -> &PluginInfo {
        &self.plugin
    }

    /// A handle on `prefix:namespace` sharing the connection.
    pub fn namespace(&self, namespace: &str) -> Result<Driver, DriverError> {
        let object = match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Object::Plugin(Arc::new(object.namespace(namespace.into()).into_result()?)),
            Object::Native(driver) => Object::Native(driver.namespace(namespace)?),
        };
        Ok(Driver { object, plugin: self.plugin.clone() })
    }

    /// The value of `key`, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => {
                let value = object.get(key.into()).await.into_result()?;
                Ok(value.into_option().map(RVec::into_vec))
            }
            Object::Native(driver) => driver.get(key).await,
        }
    }

    /// [`Driver::get`] without copying a plugin's answer into a `Vec`
    /// (the L2 read path only reads it).
    pub(crate) async fn get_bytes(&self, key: &str) -> Result<Option<DriverBytes>, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => {
                Ok(object.get(key.into()).await.into_result()?.into_option().map(DriverBytes::Plugin))
            }
            Object::Native(driver) => Ok(driver.get(key).await?.map(DriverBytes::Owned)),
        }
    }

    /// Values of `keys`, in order.
    pub async fn get_many(&self, keys: &[impl AsRef<str>]) -> Result<Vec<Option<Vec<u8>>>, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => {
                let values = object.get_many(ffi_keys(keys)).await.into_result()?;
                Ok(values.into_iter().map(|value| value.into_option().map(RVec::into_vec)).collect())
            }
            Object::Native(driver) => driver.get_many(&owned_keys(keys)).await,
        }
    }

    /// Get and delete atomically.
    pub async fn pull(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => {
                let value = object.pull(key.into()).await.into_result()?;
                Ok(value.into_option().map(RVec::into_vec))
            }
            Object::Native(driver) => driver.pull(key).await,
        }
    }

    /// Store `value` for `ttl` (`None` = forever); true when stored.
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.set(key.into(), value.into(), ffi_ttl(ttl)).await.into_result()?),
            Object::Native(driver) => driver.set(key, value, ttl).await,
        }
    }

    /// Store many entries; true when all were stored.
    pub async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => {
                let items = items
                    .into_iter()
                    .map(|item| FfiSetItem {
                        key: item.key.into(),
                        value: item.value.into(),
                        ttl_ms: ffi_ttl(item.ttl),
                    })
                    .collect();
                Ok(object.set_many(items).await.into_result()?)
            }
            Object::Native(driver) => driver.set_many(items).await,
        }
    }

    /// True iff `get` would return a value.
    pub async fn has(&self, key: &str) -> Result<bool, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.has(key.into()).await.into_result()?),
            Object::Native(driver) => driver.has(key).await,
        }
    }

    /// True iff the key existed.
    pub async fn delete(&self, key: &str) -> Result<bool, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.delete(key.into()).await.into_result()?),
            Object::Native(driver) => driver.delete(key).await,
        }
    }

    /// How many of `keys` existed.
    pub async fn delete_many(&self, keys: &[impl AsRef<str>]) -> Result<u64, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.delete_many(ffi_keys(keys)).await.into_result()?),
            Object::Native(driver) => driver.delete_many(&owned_keys(keys)).await,
        }
    }

    /// Remove everything under this handle's prefix.
    pub async fn clear(&self) -> Result<(), DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.clear().await.into_result()?),
            Object::Native(driver) => driver.clear().await,
        }
    }

    /// Remove expired entries from storage.
    pub async fn prune(&self) -> Result<(), DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.prune().await.into_result()?),
            Object::Native(driver) => driver.prune().await,
        }
    }

    /// Close connections; idempotent.
    pub async fn disconnect(&self) -> Result<(), DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.disconnect().await.into_result()?),
            Object::Native(driver) => driver.disconnect().await,
        }
    }

    /// What the driver declares beyond the base contract. A plugin built
    /// against plugin-api 0.1.0 declares nothing.
    pub fn capabilities(&self) -> Capabilities {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => object.capabilities(),
            Object::Native(driver) => driver.capabilities(),
        }
    }

    /// True when the driver declares a distributed lock
    /// ([`Capabilities::LOCK`]): [`Driver::try_lock`] and [`Driver::unlock`]
    /// are atomic in the backend and exclude every handle, connection and
    /// process on the same storage.
    pub fn supports_lock(&self) -> bool {
        self.capabilities().contains(Capabilities::LOCK)
    }

    /// Take the lock `key` (laid out like a key, apart from cache entries)
    /// for `owner` for `ttl` (rounded up to whole milliseconds). True when
    /// `owner` holds it afterwards: it was free, expired, or already
    /// `owner`'s (its TTL then restarts). Without [`Driver::supports_lock`]
    /// this is an `Unsupported` error.
    pub async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => {
                Ok(object.try_lock(key.into(), owner.into(), ttl_to_ms(ttl).max(1)).await.into_result()?)
            }
            Object::Native(driver) => driver.try_lock(key, owner, ttl).await,
        }
    }

    /// Release the lock `key` if `owner` holds it; true when released.
    /// Without [`Driver::supports_lock`] this is an `Unsupported` error.
    pub async fn unlock(&self, key: &str, owner: &str) -> Result<bool, DriverError> {
        match &self.object {
            #[cfg(feature = "plugins")]
            Object::Plugin(object) => Ok(object.unlock(key.into(), owner.into()).await.into_result()?),
            Object::Native(driver) => driver.unlock(key, owner).await,
        }
    }
}

#[cfg(feature = "plugins")]
struct MessageCallback<F>(F);

#[cfg(feature = "plugins")]
impl<F: Fn(&str, Vec<u8>) + Send + Sync + 'static> FfiBusHandler for MessageCallback<F> {
    fn on_message(&self, channel: abi_stable::std_types::RStr<'_>, payload: RVec<u8>) {
        (self.0)(channel.as_str(), payload.into_vec())
    }
}

#[cfg(feature = "plugins")]
struct ReconnectCallback<F>(F);

#[cfg(feature = "plugins")]
impl<F: Fn() + Send + Sync + 'static> FfiReconnectHandler for ReconnectCallback<F> {
    fn on_reconnect(&self) {
        (self.0)()
    }
}

/// A bus created by a plugin. Cheap to clone.
#[cfg(feature = "plugins")]
#[derive(Clone)]
pub struct Bus {
    object: Arc<FfiBusBox>,
    plugin: Arc<PluginInfo>,
}

#[cfg(feature = "plugins")]
impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("plugin", &self.plugin.name).finish()
    }
}

#[cfg(feature = "plugins")]
impl Bus {
    pub(crate) fn new(object: FfiBusBox, plugin: Arc<PluginInfo>) -> Self {
        Bus { object: Arc::new(object), plugin }
    }

    /// What the plugin this bus came from says about itself.
    pub fn plugin_info(&self) -> &PluginInfo {
        &self.plugin
    }

    /// Publish `payload` on `channel`.
    pub async fn publish(&self, channel: &str, payload: Vec<u8>) -> Result<(), DriverError> {
        Ok(self.object.publish(channel.into(), payload.into()).await.into_result()?)
    }

    /// Deliver every message on `channel` to `handler`, which runs on the
    /// plugin's threads: keep it short (e.g. send into a channel).
    pub async fn subscribe(
        &self,
        channel: &str,
        handler: impl Fn(&str, Vec<u8>) + Send + Sync + 'static,
    ) -> Result<(), DriverError> {
        let handler = FfiBusHandler_TO::from_value(MessageCallback(handler), abi_stable::sabi_trait::TD_Opaque);
        Ok(self.object.subscribe(channel.into(), handler).await.into_result()?)
    }

    /// Stop delivering `channel`.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), DriverError> {
        Ok(self.object.unsubscribe(channel.into()).await.into_result()?)
    }

    /// Run `handler` after every reconnection of the bus.
    pub fn on_reconnect(&self, handler: impl Fn() + Send + Sync + 'static) {
        let handler = FfiReconnectHandler_TO::from_value(ReconnectCallback(handler), abi_stable::sabi_trait::TD_Opaque);
        self.object.on_reconnect(handler)
    }

    /// Close the bus; idempotent.
    pub async fn disconnect(&self) -> Result<(), DriverError> {
        Ok(self.object.disconnect().await.into_result()?)
    }
}

#[cfg(all(test, feature = "plugins"))]
mod tests {
    use super::ttl_to_ms;
    use std::time::Duration;

    #[test]
    fn ttl_rounds_up_to_the_millisecond() {
        assert_eq!(ttl_to_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_to_ms(Duration::from_millis(100)), 100);
        assert_eq!(ttl_to_ms(Duration::from_micros(100_500)), 101);
    }
}
