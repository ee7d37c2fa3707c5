//! Adapters from the authoring traits to the stable ABI objects. Every
//! method converts types, runs the future through [`Guarded`] (runtime
//! context + panic capture) and never lets a panic cross the boundary.

use crate::abi::{
    FfiBus, FfiBusBox, FfiBusHandlerBox, FfiBus_TO, FfiDriver, FfiDriverBox, FfiDriverConfig, FfiDriver_TO, FfiFut,
    FfiReconnectHandlerBox, FfiResult, FfiSetItem,
};
use crate::bus::CacheBus;
use crate::capabilities::Capabilities;
use crate::driver::{CacheDriver, DriverConfig, SetItem};
use crate::error::{DriverError, DriverResult};
use crate::guard::{as_plugin_call, Guarded};
use crate::runtime::PluginRuntime;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use async_ffi::FutureExt as _;
use futures::FutureExt as _;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// The future of one call across the boundary: `future` guarded (panics
/// caught; polled in the plugin runtime's context when `needs_runtime`),
/// its result in the stable form. A hand-written future rather than an
/// async block: the box `into_ffi` allocates is then the size of `future`
/// plus a few words, and nothing moves it again on the first poll.
///
/// `threads`: the driver's preferred plugin-runtime worker count, used
/// when this call is the one that starts the runtime.
fn run<T: 'static, F>(needs_runtime: bool, threads: Option<usize>, future: F) -> FfiFut<T>
where
    F: Future<Output = DriverResult<T>> + Send + 'static,
{
    let runtime = if needs_runtime {
        match PluginRuntime::handle_with_threads(threads) {
            Ok(handle) => Some(handle),
            Err(error) => return async move { RResult::RErr(error.into()) }.into_ffi(),
        }
    } else {
        // The lean path for drivers that never touch tokio: no runtime
        // context; panics still become errors.
        None
    };
    Guarded::new(runtime, future).map(to_ffi_result).into_ffi()
}

fn to_ffi_result<T>(result: DriverResult<T>) -> FfiResult<T> {
    match result {
        Ok(value) => RResult::ROk(value),
        Err(error) => RResult::RErr(error.into()),
    }
}

/// Parse plugin options: the empty string and `null` mean "all defaults";
/// errors name the offending field path.
pub(crate) fn parse_options<O: serde::de::DeserializeOwned>(json: &str) -> DriverResult<O> {
    let json = json.trim();
    let json = if json.is_empty() || json == "null" { "{}" } else { json };
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            DriverError::invalid_options(format!("invalid options: {}", error.inner()))
        } else {
            DriverError::invalid_options(format!("invalid option `{path}`: {}", error.inner()))
        }
    })
}

fn ttl_from_ms(ttl_ms: ROption<u64>) -> Option<Duration> {
    ttl_ms.into_option().map(Duration::from_millis)
}

fn to_ffi_value(value: Option<Vec<u8>>) -> ROption<RVec<u8>> {
    value.map(RVec::from).into()
}

/// Implements the stable [`FfiDriver`] for a [`CacheDriver`].
pub struct DriverAdapter<D> {
    driver: Arc<D>,
}

impl<D: CacheDriver> DriverAdapter<D> {
    /// The `create_driver` entry point of a plugin exporting `D`.
    pub fn create(options_json: RString, config: FfiDriverConfig) -> FfiFut<FfiDriverBox> {
        run(D::NEEDS_RUNTIME, D::RUNTIME_THREADS, async move {
            let options: D::Options = parse_options(options_json.as_str())?;
            let config = DriverConfig { default_ttl: ttl_from_ms(config.default_ttl_ms), prefix: config.prefix.into() };
            let driver = D::connect(options, config).await?;
            Ok(Self::boxed(driver))
        })
    }

    fn boxed(driver: D) -> FfiDriverBox {
        FfiDriver_TO::from_value(DriverAdapter { driver: Arc::new(driver) }, TD_Opaque)
    }

    fn call<T: 'static, F, Fut>(&self, operation: F) -> FfiFut<T>
    where
        F: FnOnce(Arc<D>) -> Fut + Send + 'static,
        Fut: Future<Output = DriverResult<T>> + Send + 'static,
    {
        let driver = self.driver.clone();
        // The async block defers the call into the guarded poll, so even a
        // driver method that panics before returning its future is caught.
        run(D::NEEDS_RUNTIME, D::RUNTIME_THREADS, async move { operation(driver).await })
    }
}

impl<D: CacheDriver> FfiDriver for DriverAdapter<D> {
    fn namespace(&self, namespace: RStr<'_>) -> RResult<FfiDriverBox, crate::abi::FfiError> {
        match as_plugin_call(|| catch_unwind(AssertUnwindSafe(|| self.driver.namespace(namespace.as_str())))) {
            Ok(Ok(driver)) => RResult::ROk(Self::boxed(driver)),
            Ok(Err(error)) => RResult::RErr(error.into()),
            Err(payload) => RResult::RErr(DriverError::from_panic(payload).into()),
        }
    }

    fn get(&self, key: RString) -> FfiFut<ROption<RVec<u8>>> {
        self.call(move |d| async move { d.get(&key).await.map(to_ffi_value) })
    }

    fn get_many(&self, keys: RVec<RString>) -> FfiFut<RVec<ROption<RVec<u8>>>> {
        self.call(move |d| async move {
            let keys: Vec<String> = keys.into_iter().map(String::from).collect();
            let values = d.get_many(&keys).await?;
            if values.len() != keys.len() {
                return Err(DriverError::backend(format!(
                    "get_many returned {} values for {} keys",
                    values.len(),
                    keys.len()
                )));
            }
            Ok(values.into_iter().map(to_ffi_value).collect())
        })
    }

    fn pull(&self, key: RString) -> FfiFut<ROption<RVec<u8>>> {
        self.call(move |d| async move { d.pull(&key).await.map(to_ffi_value) })
    }

    fn set(&self, key: RString, value: RVec<u8>, ttl_ms: ROption<u64>) -> FfiFut<bool> {
        self.call(move |d| async move { d.set(&key, value.into_vec(), ttl_from_ms(ttl_ms)).await })
    }

    fn set_many(&self, items: RVec<FfiSetItem>) -> FfiFut<bool> {
        self.call(move |d| async move {
            let items = items
                .into_iter()
                .map(|item| SetItem {
                    key: item.key.into(),
                    value: item.value.into_vec(),
                    ttl: ttl_from_ms(item.ttl_ms),
                })
                .collect();
            d.set_many(items).await
        })
    }

    fn has(&self, key: RString) -> FfiFut<bool> {
        self.call(move |d| async move { d.has(&key).await })
    }

    fn delete(&self, key: RString) -> FfiFut<bool> {
        self.call(move |d| async move { d.delete(&key).await })
    }

    fn delete_many(&self, keys: RVec<RString>) -> FfiFut<u64> {
        self.call(move |d| async move {
            let keys: Vec<String> = keys.into_iter().map(String::from).collect();
            d.delete_many(&keys).await
        })
    }

    fn clear(&self) -> FfiFut<()> {
        self.call(|d| async move { d.clear().await })
    }

    fn prune(&self) -> FfiFut<()> {
        self.call(|d| async move { d.prune().await })
    }

    fn disconnect(&self) -> FfiFut<()> {
        self.call(|d| async move { d.disconnect().await })
    }

    fn capabilities(&self) -> Capabilities {
        // A driver that panics while answering declares nothing.
        catch_unwind(AssertUnwindSafe(|| self.driver.capabilities())).unwrap_or(Capabilities::NONE)
    }

    fn try_lock(&self, key: RString, owner: RString, ttl_ms: u64) -> FfiFut<bool> {
        let ttl = Duration::from_millis(ttl_ms.max(1));
        self.call(move |d| async move { d.try_lock(&key, &owner, ttl).await })
    }

    fn unlock(&self, key: RString, owner: RString) -> FfiFut<bool> {
        self.call(move |d| async move { d.unlock(&key, &owner).await })
    }
}

/// Implements the stable [`FfiBus`] for a [`CacheBus`].
pub struct BusAdapter<B> {
    bus: Arc<B>,
}

impl<B: CacheBus> BusAdapter<B> {
    /// The `create_bus` entry point of a plugin exporting `B`.
    pub fn create(options_json: RString) -> FfiFut<FfiBusBox> {
        run(true, None, async move {
            let options: B::Options = parse_options(options_json.as_str())?;
            let bus = B::connect(options).await?;
            Ok(FfiBus_TO::from_value(BusAdapter { bus: Arc::new(bus) }, TD_Opaque))
        })
    }

    fn call<T: 'static, F, Fut>(&self, operation: F) -> FfiFut<T>
    where
        F: FnOnce(Arc<B>) -> Fut + Send + 'static,
        Fut: Future<Output = DriverResult<T>> + Send + 'static,
    {
        let bus = self.bus.clone();
        run(true, None, async move { operation(bus).await })
    }
}

impl<B: CacheBus> FfiBus for BusAdapter<B> {
    fn publish(&self, channel: RString, payload: RVec<u8>) -> FfiFut<()> {
        self.call(move |b| async move { b.publish(&channel, payload.into_vec()).await })
    }

    fn subscribe(&self, channel: RString, handler: FfiBusHandlerBox) -> FfiFut<()> {
        let handler = Arc::new(handler);
        let on_message: crate::bus::BusMessageHandler = Arc::new(move |channel: &str, payload: Vec<u8>| {
            // The host's handler is plain Rust behind the ABI; a panic there
            // must not unwind into the plugin's connection task either.
            let _ = catch_unwind(AssertUnwindSafe(|| handler.on_message(channel.into(), payload.into())));
        });
        self.call(move |b| async move { b.subscribe(&channel, on_message).await })
    }

    fn unsubscribe(&self, channel: RString) -> FfiFut<()> {
        self.call(move |b| async move { b.unsubscribe(&channel).await })
    }

    fn on_reconnect(&self, handler: FfiReconnectHandlerBox) {
        let handler = Arc::new(handler);
        let callback: crate::bus::ReconnectHandler = Arc::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(|| handler.on_reconnect()));
        });
        let _ = catch_unwind(AssertUnwindSafe(|| self.bus.on_reconnect(callback)));
    }

    fn disconnect(&self) -> FfiFut<()> {
        self.call(|b| async move { b.disconnect().await })
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_options, to_ffi_result, Guarded};
    use futures::FutureExt as _;

    #[test]
    fn the_boxed_call_holds_the_driver_future_once() {
        // What `run` boxes into the `FfiFuture`: the driver's future plus a
        // few words, not an async block holding it twice.
        let driver_future = async {
            let state = std::hint::black_box([0u8; 4096]);
            std::future::ready(()).await;
            Ok::<usize, crate::DriverError>(state.len())
        };
        let driver_size = std::mem::size_of_val(&driver_future);
        let call = Guarded::new(None, driver_future).map(to_ffi_result);
        assert!(
            std::mem::size_of_val(&call) <= driver_size + 64,
            "{} bytes boxed for a {driver_size}-byte driver future",
            std::mem::size_of_val(&call)
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Options {
        url: Option<String>,
        timeout_ms: Option<u64>,
    }

    #[test]
    fn unknown_field_is_named() {
        let error = parse_options::<Options>(r#"{"urll":"x"}"#).unwrap_err();
        assert!(error.message.contains("urll"), "{error}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let error = parse_options::<Options>(r#"{"timeout_ms":"soon"}"#).unwrap_err();
        assert!(error.message.contains("timeout_ms"), "{error}");
    }

    #[test]
    fn empty_means_defaults() {
        assert!(parse_options::<Options>("").is_ok());
        assert!(parse_options::<Options>("null").is_ok());
    }
}
