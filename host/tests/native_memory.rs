//! Statically linked drivers and buses (issue 13): the bundled plugin
//! crates used as ordinary dependencies through [`bento::Native`] and
//! [`bento::NativeBus`], with typed options, on the test's own tokio
//! runtime.
//!
//! Several bundled crates link into one binary too: see `native_many.rs`.

use bento::{Bento, Driver, DriverOptions, L2Driver, Native, Store};
use bento_driver_memory::MemoryDriver;
use bento_memory_store::MemoryStoreOptions;
use std::time::Duration;

#[tokio::test]
async fn a_store_over_the_native_memory_driver() {
    let memory = Native::<MemoryDriver>::connect(MemoryStoreOptions::default(), DriverOptions::default())
        .await
        .expect("memory driver connects");
    let bento = Bento::builder().store("main", Store::builder().l2(memory.clone())).build().await.expect("builds");
    bento.set("user:1", "Ada".to_string()).await.expect("set");
    assert_eq!(bento.get::<String>("user:1").await.expect("get"), Some("Ada".to_string()));
    // The value went through the driver: it holds a BentoCache entry.
    let bytes = memory.get("bentocache:user:1").await.expect("raw get").expect("stored in the driver");
    let entry: serde_json::Value = serde_json::from_slice(&bytes).expect("an entry");
    assert_eq!(entry["value"], "Ada");
    bento.disconnect_all().await.expect("disconnects");
    let error = memory.get("bentocache:user:1").await.expect_err("disconnected");
    assert_eq!(error.kind, bento::ErrorKind::DISCONNECTED);
}

#[tokio::test]
async fn the_native_memory_driver_as_a_local_l1() {
    let memory = Native::<MemoryDriver>::connect(MemoryStoreOptions::default(), DriverOptions::default())
        .await
        .expect("memory driver connects");
    let store = Store::builder().l1_plugin(Driver::native(memory));
    let bento = Bento::builder().store("main", store).build().await.expect("a native driver can serve the local layer");
    bento.set("answer", 42u32).await.expect("set");
    assert_eq!(bento.get::<u32>("answer").await.expect("get"), Some(42));
}

#[tokio::test]
async fn a_panicking_native_driver_call_is_an_error() {
    use bento_plugin_api::{CacheDriver, DriverConfig, DriverResult};

    struct Panics;
    impl CacheDriver for Panics {
        type Options = MemoryStoreOptions;
        async fn connect(_: MemoryStoreOptions, _: DriverConfig) -> DriverResult<Self> {
            Ok(Panics)
        }
        fn namespace(&self, _: &str) -> DriverResult<Self> {
            panic!("namespace exploded")
        }
        async fn get(&self, _: &str) -> DriverResult<Option<Vec<u8>>> {
            panic!("get exploded")
        }
        async fn pull(&self, _: &str) -> DriverResult<Option<Vec<u8>>> {
            Ok(None)
        }
        async fn set(&self, _: &str, _: Vec<u8>, _: Option<Duration>) -> DriverResult<bool> {
            Ok(true)
        }
        async fn delete(&self, _: &str) -> DriverResult<bool> {
            Ok(false)
        }
        async fn clear(&self) -> DriverResult<()> {
            Ok(())
        }
        async fn disconnect(&self) -> DriverResult<()> {
            Ok(())
        }
    }
    let driver = Native::new(Panics);
    let error = driver.get("k").await.expect_err("a panic is an error");
    assert_eq!(error.kind, bento::ErrorKind::PANICKED);
    assert!(error.message.contains("get exploded"), "{error}");
    let error = driver.namespace("ns").err().expect("a panic is an error");
    assert_eq!(error.kind, bento::ErrorKind::PANICKED);
}
